/*
 * watch.h - [tls] watch: reload when a certificate file changes.
 *
 * inotify on the directories that hold every [certificate] cert, key,
 * ocsp, next_key and next_cert file, and on the directory of every
 * symbolic link met on the way to them (certbot's live/ and archive/, a
 * Kubernetes secret's ..data), filtered by name. Files are replaced by
 * renaming, so the directories are watched, not the files. A burst of
 * changes is one call: |fire| runs watch_delay after the last relevant
 * event, once, and the watches are armed again afterwards (links may
 * point elsewhere now; core/path_links.h finds the directories). The
 * module knows a configuration and a callback, nothing of snapshots or
 * sessions: the caller's callback reloads, or asks whoever reloads
 * (ARCHITECTURE.md §3). A change that a failed reload did not take is
 * taken by the next change's reload.
 */
#ifndef SMTP_TLS_PROXY_WATCH_H
#define SMTP_TLS_PROXY_WATCH_H

#include <ev.h>

#include "config/config.h"

struct cert_watch;

/* cert_watch_new makes a watcher on |loop|, off until configured.
 * |fire|(|arg|) is called on the loop after a quiet watch_delay; it is
 * logged first as event=watch_reload files="...". NULL: out of memory. */
struct cert_watch *cert_watch_new(struct ev_loop *loop, void (*fire)(void *arg), void *arg);

/* cert_watch_configure (re)arms the watches for the files of |cfg| when
 * cfg->tls_watch, with cfg->tls_watch_delay; without it, every watch is
 * removed. Keeps nothing of |cfg|: it may be freed after. A directory
 * that cannot be watched is logged (event=watch_failed) and skipped.
 * May be called from |fire|. |w| NULL: nothing (a process that leaves
 * the watching to another, e.g. a privilege-separated child). */
void cert_watch_configure(struct cert_watch *w, const struct config *cfg);

/* cert_watch_free: every watch removed; NULL is fine. */
void cert_watch_free(struct cert_watch *w);

#endif
