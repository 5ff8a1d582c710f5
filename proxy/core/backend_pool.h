/*
 * backend_pool.h - which of several backends a session connects to
 * ([backend] address = a list, balance, down_time, max_tries).
 *
 * The configuration gives the targets in order (struct backend_target);
 * the pool remembers, for each, until when it is down and what it has
 * counted (connection attempts, failures by reason). One pool is shared
 * by all workers: every function takes the pool's own mutex. It is pure
 * otherwise: no I/O, no clock; the caller passes the time, unix seconds.
 *
 * State is keyed by the target's text, so a reload that keeps a target
 * keeps what is known of it (backend_pool_configure); a text the pool
 * does not know (a session still running under the configuration before
 * a reload that dropped it) counts as up and nothing is recorded for it.
 *
 * Choosing (backend_pool_pick), for one session, among the targets it
 * has not tried yet:
 *   failover     the first one, in the configured order, that is up;
 *   round-robin  the up ones in turn (one rotation shared by all sessions).
 * When none of those is up: a session that has tried nothing yet gets the
 * target whose down time ends first anyway (one try: a proxy whose only
 * backend was down a moment ago must not refuse mail for down_time
 * without trying); a session that has tried one already gets none, and
 * answers 421.
 */
#ifndef SMTP_TLS_PROXY_BACKEND_POOL_H
#define SMTP_TLS_PROXY_BACKEND_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "core/addr.h"

/* The most targets one configuration may list (a session's tried set is
 * one bit each). */
#define BACKEND_TARGETS_MAX 64

/* One backend, as configured: "127.0.0.1:2525", "[::1]:25",
 * "/run/mta.sock", or, for a DNS name, the name and the address it
 * resolved to: "mta1.example:25@192.0.2.1". The text names it in logs
 * and metrics labels, and keys its state in the pool. */
struct backend_target {
    char *text;
    struct net_addr addr;
};

enum backend_balance {
    BALANCE_FAILOVER = 0,    /* always the first target that is up */
    BALANCE_ROUND_ROBIN = 1, /* the up ones in turn */
};

/* Why a target failed before its greeting reached the client. */
enum backend_failure {
    BACKEND_REFUSED = 0,      /* the connection failed (refused, unreachable) */
    BACKEND_TIMEOUT,          /* connect_timeout or greeting_timeout */
    BACKEND_CLOSED,           /* closed before its greeting */
    BACKEND_GREETING_4XX,
    BACKEND_GREETING_5XX,
    BACKEND_FAILURE_COUNT,
};

/* backend_failure_name: "refused", "timeout", "closed", "greeting_4xx",
 * "greeting_5xx" (log and label values). */
const char *backend_failure_name(enum backend_failure why);

struct backend_pool;

/* backend_pool_new returns an empty pool, or NULL when out of memory. */
struct backend_pool *backend_pool_new(void);
void backend_pool_free(struct backend_pool *p);

/* backend_pool_configure makes |t| (|n| targets) the pool's targets:
 * those whose text it knew keep their state and counters, new ones are
 * up with nothing counted, others are forgotten. Returns 1, or 0 when
 * out of memory (the pool is unchanged). */
int backend_pool_configure(struct backend_pool *p, const struct backend_target *t, size_t n);

/* backend_pool_pick chooses the target a session connects to next among
 * |t| (|n| targets, at most BACKEND_TARGETS_MAX), by |balance|, leaving
 * out those whose bit is set in |tried| (bit i: t[i]). Returns its index
 * in |t|, or -1 when there is none to try (see above). */
int backend_pool_pick(struct backend_pool *p, const struct backend_target *t, size_t n,
                      enum backend_balance balance, uint64_t tried, double now);

/* backend_pool_mark_down records that |text| failed: it is skipped until
 * |until| (a later failure may push that further, never back). */
void backend_pool_mark_down(struct backend_pool *p, const char *text, double until);

/* backend_pool_mark_up records that |text| greeted: up from now on. */
void backend_pool_mark_up(struct backend_pool *p, const char *text);

/* backend_pool_is_up says whether |text| is up at |now| (unknown: up). */
int backend_pool_is_up(struct backend_pool *p, const char *text, double now);

/* Counters, per target (for metrics). */
void backend_pool_count_connect(struct backend_pool *p, const char *text);
void backend_pool_count_failure(struct backend_pool *p, const char *text,
                                enum backend_failure why);

/* What the pool knows of one target, copied out (backend_pool_stats). */
struct backend_stat {
    char *text;
    int up;
    double down_until; /* 0: never marked down */
    unsigned long long connects;
    unsigned long long failures[BACKEND_FAILURE_COUNT];
};

/* backend_pool_stats copies the state of every target, in the configured
 * order, into a new array (*out, free with backend_pool_stats_free).
 * Returns the count; 0 with *out NULL when out of memory or empty. */
size_t backend_pool_stats(struct backend_pool *p, double now, struct backend_stat **out);
void backend_pool_stats_free(struct backend_stat *st, size_t n);

#endif
