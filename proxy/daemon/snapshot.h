/*
 * snapshot.h - everything read-only that sessions need, as one immutable,
 * reference-counted object (ARCHITECTURE.md §3).
 *
 * A session takes a reference when it starts and keeps it to the end, so
 * a reload never changes the rules under a session's feet. Reload builds
 * a complete new snapshot and publishes it only when every part of it
 * succeeded; the old one dies with its last session.
 */
#ifndef SMTP_TLS_PROXY_SNAPSHOT_H
#define SMTP_TLS_PROXY_SNAPSHOT_H

#include <stdatomic.h>

#include "config/config.h"

struct tls_store;
struct geoip;

struct snapshot {
    atomic_uint refs;
    unsigned generation;
    struct config *cfg;
    struct tls_store *tls; /* certificates and listener SSL_CTXs */
    struct geoip *geoip;   /* country and AS databases */
};

/* snapshot_new wraps |cfg| (taking ownership) with one reference.
 * Returns NULL with |err| set when a part cannot be built. */
struct snapshot *snapshot_new(struct config *cfg, char *err, size_t errlen);

/* snapshot_publish makes |s| the current snapshot (taking over the
 * caller's reference) and drops the reference to the previous one. The
 * backend pool (daemon/backends.h) takes its targets. Main thread only. */
void snapshot_publish(struct snapshot *s);

/* snapshot_acquire returns the current snapshot with a new reference. */
struct snapshot *snapshot_acquire(void);

/* snapshot_clear unpublishes the current snapshot and frees the backend
 * pool (at exit, once the workers and /metrics are stopped). */
void snapshot_clear(void);

/* snapshot_release drops a reference; NULL is fine. */
void snapshot_release(struct snapshot *s);

#endif
