/*
 * redis_memory.h - the STARTTLS failure memory shared by several proxies
 * through Redis (ARCHITECTURE.md §5.6, issue 13 part 2): one client per
 * worker loop, on hiredis's asynchronous API and its libev adapter.
 *
 * Keys are [starttls_memory] redis_prefix + the cidr_format text of the
 * client's key ("smtp-tls-proxy:starttls:192.0.2.7/32"); a key that
 * holds a string is remembered, a missing key is not. Entries are
 * written with SET ... EX (the memory's ttl) and removed with DEL; both
 * are fire and forget. The local table (starttls_memory.h) stays the
 * fallback: whenever Redis cannot answer in time the answer is
 * REDIS_UNKNOWN and the caller asks the local memory.
 *
 * Nothing here blocks, and nothing is shared between workers: each
 * worker's struct redis_memory lives on that worker's loop, and every
 * function but redis_memory_up and redis_memory_get_stats must be
 * called on that loop's thread. Those two read atomics and may be called
 * from any thread while the object exists.
 *
 * The connection: connect, then AUTH (when a password is set) and PING,
 * all within REDIS_CONNECT_TIMEOUT; only then is it up. Refused, lost,
 * too slow to connect or to greet, AUTH refused, a reply nobody asked
 * for, or no reply to the oldest command for REDIS_STALL_TIMEOUT: it is
 * down, logged once per transition (event=redis_down worker=N redis=ADDR
 * reason="...", event=redis_up worker=N redis=ADDR), and retried after
 * REDIS_BACKOFF_MIN, doubling to REDIS_BACKOFF_MAX, back to the minimum
 * once up again. While it is not up, lookups are not asked (NULL) and
 * records are dropped. hiredis writes with write(2): the process must
 * ignore SIGPIPE (main.c does).
 */
#ifndef SMTP_TLS_PROXY_REDIS_MEMORY_H
#define SMTP_TLS_PROXY_REDIS_MEMORY_H

#include "config/config.h"
#include "core/cidr.h"

struct ev_loop;
struct redis_memory; /* one per worker loop */
struct redis_lookup; /* one outstanding GET */

/* Seconds. */
#define REDIS_CONNECT_TIMEOUT 1.0 /* connect + AUTH + PING */
#define REDIS_STALL_TIMEOUT 3.0   /* the oldest command unanswered: the connection is dropped */
#define REDIS_BACKOFF_MIN 0.1
#define REDIS_BACKOFF_MAX 30.0
/* Commands in flight on one connection (lookups, records, forgets,
 * late lookups still owed a reply): beyond this, nothing more is sent. */
#define REDIS_MAX_INFLIGHT 1024

enum redis_answer {
    REDIS_NOT_REMEMBERED = 0, /* the key does not exist */
    REDIS_REMEMBERED = 1,     /* the key holds a string */
    REDIS_UNKNOWN = 2,        /* down, late, an error reply, a wrong type, garbage */
};

/* redis_memory_new makes the client of worker |worker_id| on |loop| for
 * |cfg|'s [starttls_memory] redis (NULL: returns NULL). The first
 * connection is attempted from the loop, not from this call, so it may
 * be called before the worker's thread runs. NULL when out of memory:
 * the worker then runs with its local memory only. */
struct redis_memory *redis_memory_new(struct ev_loop *loop, int worker_id,
                                      const struct config *cfg);

/* redis_memory_free closes the connection and frees |r| (NULL ok), on
 * the loop's thread, never from inside a lookup's callback. Callers
 * cancel their lookups first; a lookup still pending is dropped without
 * its callback. */
void redis_memory_free(struct redis_memory *r);

/* redis_memory_configure applies a reloaded |cfg|: prefix, timeout and
 * hostname for what is sent from now on; a changed address or password
 * closes the connection and connects again (from the loop, so no
 * callback runs inside this call). A cfg without redis closes it for
 * good: lookups then return NULL until a cfg names an address again. */
void redis_memory_configure(struct redis_memory *r, const struct config *cfg);

/* redis_memory_lookup asks whether |key| is remembered: GET <prefix><key>.
 * |cb| runs exactly once, from the loop and never inside this call, with
 * the answer, at the latest redis_timeout after this call (then
 * REDIS_UNKNOWN, counted late), unless redis_memory_cancel is called
 * first. Returns the handle, which is gone once |cb| has run; or NULL
 * when the question cannot be asked (|r| NULL, not up, REDIS_MAX_INFLIGHT
 * reached, out of memory): the caller takes that as REDIS_UNKNOWN at
 * once, and |cb| never runs. */
struct redis_lookup *redis_memory_lookup(struct redis_memory *r, const struct cidr *key,
                                         void (*cb)(void *arg, enum redis_answer a),
                                         void *arg);

/* redis_memory_cancel: the callback of |l| will not run. Only before it
 * has run. */
void redis_memory_cancel(struct redis_lookup *l);

/* redis_memory_record remembers |key| in Redis for |ttl| seconds
 * (rounded up, at least 1): SET <prefix><key> "reason=R time=UNIX
 * proxy=HOSTNAME" EX <ttl>, where R is |reason| (NULL: "-") with blanks
 * and bytes that are not printable ASCII written '_', at most 63 bytes.
 * Fire and forget: dropped when not up; an error reply is counted and
 * logged (once per connection). |r| NULL: nothing. */
void redis_memory_record(struct redis_memory *r, const struct cidr *key, const char *reason,
                         double ttl);

/* redis_memory_forget removes |key| from Redis: DEL <prefix><key>. Fire
 * and forget, like redis_memory_record. */
void redis_memory_forget(struct redis_memory *r, const struct cidr *key);

/* redis_memory_up: 1 when connected and authenticated (PING answered),
 * 0 otherwise (and for NULL). Any thread. */
int redis_memory_up(const struct redis_memory *r);

/* Counters since redis_memory_new, for metrics. */
struct redis_memory_stats {
    unsigned long long lookups;     /* GETs sent */
    unsigned long long remembered;  /* of them answered REDIS_REMEMBERED */
    unsigned long long late;        /* of them answered REDIS_UNKNOWN at redis_timeout */
    unsigned long long errors;      /* replies that were errors or of the wrong type, to any
                                     * command (AUTH refused included), and replies nobody
                                     * asked for */
    unsigned long long reconnects;  /* connection attempts after the first */
    unsigned long long unavailable; /* lookups not asked and records/forgets dropped:
                                     * not up, or REDIS_MAX_INFLIGHT reached */
    int up;                         /* redis_memory_up */
};

/* redis_memory_get_stats copies |r|'s counters into |out| (all zero for
 * NULL). Any thread; each counter is read on its own (relaxed). */
void redis_memory_get_stats(const struct redis_memory *r, struct redis_memory_stats *out);

#endif
