/*
 * path_links.h - the directory entries a path's meaning depends on.
 *
 * A file reached through symbolic links changes when any link on the
 * way is replaced (certbot's live/NAME/fullchain.pem -> ../../archive/
 * NAME/fullchain3.pem, a Kubernetes secret's tls.crt -> ..data/tls.crt
 * with ..data -> ..2024_05_01...), not only when the final file does.
 * path_links_each names them all, so [tls] watch (daemon/watch.c) can
 * watch their directories. Pure: links are read through a callback.
 */
#ifndef SMTP_TLS_PROXY_PATH_LINKS_H
#define SMTP_TLS_PROXY_PATH_LINKS_H

#include <stddef.h>

/* Reads the link at |path| into |buf| (|size| bytes, no NUL needed):
 * its length, or -1 when |path| is no link (or does not exist). */
typedef long (*path_readlink_fn)(const char *path, char *buf, size_t size, void *ctx);

/* path_links_each resolves |path| (absolute, or relative to |cwd|)
 * component by component, as the kernel does, and calls |entry|(dir,
 * name, |arg|) for each symbolic link met (the file itself or a
 * directory above it: the link's directory and name), then once for the
 * final file's directory and name. "." and ".." are resolved as the
 * kernel would (after the links before them). At most 40 links are
 * followed, as the kernel; a component after that is taken as it is.
 * Returns the number of calls, or -1 when a path grows past PATH_MAX
 * (no call is made then after the ones already made). */
int path_links_each(const char *path, const char *cwd, path_readlink_fn readlink_fn, void *ctx,
                    void (*entry)(const char *dir, const char *name, void *arg), void *arg);

#endif
