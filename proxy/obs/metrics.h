/*
 * metrics.h - the proxy's counters and their Prometheus text rendering
 * (ARCHITECTURE.md §8).
 *
 * Every worker counts into its own shard, with relaxed atomic adds and
 * no lock, so counting never slows a session; the HTTP thread sums the
 * shards when /metrics is scraped. Label spaces are fixed enums (and the
 * listener list, fixed at start): nothing a client sends (SNI, HELO)
 * ever becomes a label, and a scrape allocates only its output.
 */
#ifndef SMTP_TLS_PROXY_METRICS_H
#define SMTP_TLS_PROXY_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "core/backend_pool.h"
#include "core/buffer.h"
#include "protocol/scope.h"

enum metrics_tls {
    MT_NONE = 0,
    MT_TLS10,
    MT_TLS11,
    MT_TLS12,
    MT_TLS13,
    MT_TLS_COUNT,
};

enum metrics_result {
    MR_ACCEPTED = 0, /* the backend's 2xx to the final dot */
    MR_REJECTED,     /* the backend's 4xx/5xx to the final dot */
    MR_ABORTED,      /* cut off before the backend answered the dot */
    MR_COUNT,
};

enum metrics_fail {
    MF_TIMEOUT = 0,
    MF_NO_SHARED_CIPHER,
    MF_PROTOCOL_VERSION,
    MF_ALERT_RECEIVED,
    MF_CLOSED,
    MF_NO_CLIENT_HELLO, /* nothing came after the 220 (or implicit TLS accept) */
    MF_OTHER,
    MF_COUNT,
};

enum metrics_starttls {
    MS_OFFERED = 0, /* STARTTLS in an EHLO reply */
    MS_USED,        /* a STARTTLS handshake completed */
    MS_WITHHELD,    /* not offered to a client that could have had it */
    MS_FAILED,      /* a STARTTLS handshake failed */
    MS_COUNT,
};

enum metrics_backend {
    MB_CONNECT = 0,
    MB_TIMEOUT,
    MB_CLOSED,
    MB_PROTOCOL,
    MB_COUNT,
};

enum metrics_refusal {
    MRF_MAX_CONNECTIONS = 0,
    MRF_MAX_PER_CLIENT,
    MRF_LINE_TOO_LONG,
    MRF_XCLIENT,
    MRF_BDAT,
    MRF_STARTTLS_INJECTION,
    MRF_TOO_MANY_ERRORS,
    MRF_PREGREET,
    MRF_SYNC_VIOLATION,
    MRF_PROXY_PROTOCOL, /* untrusted peer, bad or missing PROXY header */
    MRF_COUNT,
};

/* Key-exchange groups with a label of their own; others are "other". */
#define METRICS_GROUPS 6

struct metrics;
struct metrics_shard;

/* metrics_new makes counters for |nlisteners| listeners named |names|
 * (copied) and |nshards| shards. NULL when out of memory. */
struct metrics *metrics_new(size_t nlisteners, const char *const *names, int nshards);
void metrics_free(struct metrics *m);
struct metrics_shard *metrics_shard(struct metrics *m, int i);

/* Counting, from the worker that owns |sh|; listener indexes are those
 * of the configuration. */
void metrics_connection(struct metrics_shard *sh, size_t listener, enum metrics_tls tls,
                        enum addr_scope scope);
void metrics_active(struct metrics_shard *sh, size_t listener, int delta);
void metrics_handshake(struct metrics_shard *sh, size_t listener, enum metrics_tls tls,
                       const char *group);
void metrics_handshake_failure(struct metrics_shard *sh, size_t listener,
                               enum metrics_fail reason);
void metrics_starttls(struct metrics_shard *sh, size_t listener, enum metrics_starttls event);
void metrics_message(struct metrics_shard *sh, size_t listener, enum metrics_tls tls,
                     enum addr_scope scope, enum metrics_result result, uint64_t bytes);
/* metrics_country counts a message by ISO country code (two letters A-Z). */
void metrics_country(struct metrics_shard *sh, const char *country, enum metrics_tls tls);
void metrics_backend_error(struct metrics_shard *sh, enum metrics_backend kind);
void metrics_refusal(struct metrics_shard *sh, enum metrics_refusal reason);

/* Process-wide facts, from the main thread. */
void metrics_reload(struct metrics *m, int ok, double when);
/* metrics_set_certificates replaces the certificate list (copied). */
void metrics_set_certificates(struct metrics *m, size_t n, const char *const *names,
                              const char *const *key_types, const double *not_after);
void metrics_set_build(struct metrics *m, const char *version, const char *tls_library);
/* The fleet's STARTTLS memory in Redis, summed over the workers'
 * clients (daemon/redis_memory.h); clients == 0: no Redis configured. */
struct metrics_redis {
    unsigned clients, up;
    unsigned long long lookups, remembered, late, errors, reconnects, unavailable;
};
void metrics_set_redis(struct metrics *m, const struct metrics_redis *r);
void metrics_get_redis(struct metrics *m, struct metrics_redis *out);

/* metrics_set_memory gives the STARTTLS failure memory's size (entries
 * now, its bound, evictions so far), read at each scrape. */
void metrics_set_memory(struct metrics *m, size_t (*entries)(void), size_t (*evictions)(void),
                        size_t max_entries);

/* metrics_set_backends names the backend pool whose targets are rendered
 * (backend_up, backend_connects_total, backend_failures_total), read at
 * each scrape; the labels are the configured targets' texts. */
void metrics_set_backends(struct metrics *m, struct backend_pool *pool);

/* metrics_render appends the Prometheus text exposition (format 0.0.4)
 * of every counter, summed over the shards, to |out|. Returns 1, or 0
 * when |out| cannot grow. */
int metrics_render(struct metrics *m, struct buffer *out);

/* Mapping what the session knows to label values. */
enum metrics_tls metrics_tls_of(const char *version); /* NULL or "": MT_NONE */
/* metrics_fail_of classifies a handshake failure reason as logged. */
enum metrics_fail metrics_fail_of(const char *reason);

#endif
