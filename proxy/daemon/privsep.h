/*
 * privsep.h - privilege separation (ARCHITECTURE.md §3.1).
 *
 * Started as root with [proxy] user, the proxy binds its ports and loads
 * its first snapshot as root, then forks:
 *
 *  - the parent stays root and does one thing: when the child asks, it
 *    reads the configuration file and the certificate, key and OCSP files
 *    that configuration names, and sends their bytes to the child. It
 *    serves no connection, parses nothing from the network, and forwards
 *    the signals it gets (HUP, TERM, INT, USR1) to the child. It exits
 *    when the child does, with the child's status.
 *  - the child drops to the user (setgroups, setgid, setuid; checked
 *    irreversible) and is the proxy. A reload asks the parent for the
 *    files, so renewed root-only keys (Let's Encrypt's privkey.pem) are
 *    served without the child ever being able to read them itself.
 *
 * The child can only ask for "the files of the configuration": the parent
 * decides which files those are from its own reading of the file, and
 * reads none that the child's user could redirect (a link planted in a
 * directory it can write), so a compromised child cannot make it read
 * anything else.
 */
#ifndef SMTP_TLS_PROXY_PRIVSEP_H
#define SMTP_TLS_PROXY_PRIVSEP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct config;
struct ev_loop;

/* What the parent sent: the configuration text and files by path. */
struct privsep_bundle;

/* privsep_resolve looks up cfg->user and cfg->group. Returns 1, or 0 with
 * |err| set (an unknown user or group). */
int privsep_resolve(const struct config *cfg, uid_t *uid, gid_t *gid, char *err, size_t errlen);

/* privsep_start forks. In the parent it never returns: it calls
 * |parent_cleanup|(|arg|) (to free what only the proxy needs), serves the
 * child and exits with its status. In the child it drops to |uid|/|gid|
 * and returns 1, or 0 with |err| set (the drop failed: the caller must
 * exit). |config_path| NULL: the embedded default (which names files
 * too). Before any thread or event loop exists. */
int privsep_start(const char *config_path, const char *user, uid_t uid, gid_t gid,
                  void (*parent_cleanup)(void *), void *arg, char *err, size_t errlen);

/* A hook the parent runs with the configuration it read, once its loop
 * exists and after every answer to the child (the certificate watcher,
 * [tls] watch): |fire|(|arg|) makes the child reload. */
typedef void privsep_parent_hook(struct ev_loop *loop, const struct config *cfg,
                                 void (*fire)(void *), void *arg);
void privsep_set_parent_hook(privsep_parent_hook *hook);

/* privsep_active: this process is the child of a privileged parent. */
int privsep_active(void);

/* privsep_fetch asks the parent for the configuration and its files.
 * Returns the bundle, or NULL with |err| set. Main thread of the child. */
struct privsep_bundle *privsep_fetch(char *err, size_t errlen);

/* privsep_bundle_config is the configuration text of |b|. */
const char *privsep_bundle_config(const struct privsep_bundle *b);

/* privsep_bundle_reader is a tls_file_reader (tls/tls.h) over |b|. */
int privsep_bundle_reader(void *b, const char *path, uint8_t **out, size_t *len, char *err,
                          size_t errlen);

/* privsep_bundle_free wipes (key material) and frees |b|. */
void privsep_bundle_free(struct privsep_bundle *b);

#endif
