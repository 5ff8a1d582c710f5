/*
 * backends.h - the backends of the running proxy: one pool for the whole
 * process (core/backend_pool.h, its own mutex), so a backend one worker
 * found down is skipped by all, and what is known of a backend survives
 * a reload that keeps it.
 *
 * snapshot_publish gives the pool the targets of each configuration it
 * publishes (main thread, at start and at reload); sessions pick a
 * target through it and report how each connection went; /metrics reads
 * it (metrics_set_backends).
 */
#ifndef SMTP_TLS_PROXY_BACKENDS_H
#define SMTP_TLS_PROXY_BACKENDS_H

#include <stdint.h>

#include "config/config.h"
#include "core/backend_pool.h"

/* backends_configure makes the pool follow |cfg|'s targets (the pool is
 * made at the first call). Returns 0, logged, when out of memory. */
int backends_configure(const struct config *cfg);

/* backends_pool is the pool, or NULL before backends_configure. */
struct backend_pool *backends_pool(void);

/* backends_stop frees the pool (at exit, nothing uses it any more). */
void backends_stop(void);

/* backends_pick chooses the next target of a session that has tried
 * |tried| (bit i: b->targets[i]) by b->balance; -1: none. Without a pool
 * the targets are taken in order. */
int backends_pick(const struct backend_config *b, uint64_t tried, double now);

/* A connection attempt to |t| starts. */
void backends_connecting(const struct backend_target *t);

/* |t| failed for |why|: counted and down until |now| + b->down_time.
 * Returns that time. */
double backends_failed(const struct backend_config *b, const struct backend_target *t,
                       enum backend_failure why, double now);

/* |t| greeted with 220: up. */
void backends_greeted(const struct backend_target *t);

#endif
