/*
 * metrics.c - counters in per-worker shards, summed when rendered (see
 * metrics.h).
 */
#include "obs/metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef _Atomic unsigned long long counter;

#define SCOPES 3
#define COUNTRIES (26 * 26)

static const char *const tls_names[MT_TLS_COUNT] = {"none", "TLSv1", "TLSv1.1", "TLSv1.2",
                                                     "TLSv1.3"};
static const char *const result_names[MR_COUNT] = {"accepted", "rejected", "aborted"};
static const char *const fail_names[MF_COUNT] = {
    "timeout", "no_shared_cipher", "protocol_version", "alert_received", "closed",
    "no_client_hello", "other"};
static const char *const starttls_names[MS_COUNT] = {"offered", "used", "withheld", "failed"};
static const char *const backend_names[MB_COUNT] = {"connect", "timeout", "closed", "protocol"};
static const char *const refusal_names[MRF_COUNT] = {
    "max_connections", "max_per_client", "line_too_long", "xclient", "bdat",
    "starttls_injection", "too_many_errors", "pregreet", "sync_violation", "proxy_protocol"};
static const char *const group_names[METRICS_GROUPS] = {"X25519", "P-256", "P-384", "P-521",
                                                        "X25519Kyber768Draft00", "other"};

/* The counters of one worker; each array is indexed by listener first. */
struct metrics_shard {
    counter *connections;  /* [l][tls][scope] */
    _Atomic long long *active; /* [l] */
    counter *handshakes;   /* [l][tls][group] */
    counter *failures;     /* [l][reason] */
    counter *starttls;     /* [l][event] */
    counter *messages;     /* [l][tls][scope][result] */
    counter *bytes;        /* [l][tls][scope][result] */
    counter countries[COUNTRIES][MT_TLS_COUNT];
    counter backend[MB_COUNT];
    counter refusals[MRF_COUNT];
};

struct metrics {
    struct metrics_redis redis;     /* clients == 0: no Redis */
    struct backend_pool *backends;  /* NULL: none rendered */
    size_t (*memory_entries)(void); /* NULL: no STARTTLS memory */
    size_t (*memory_evictions)(void);
    size_t memory_max;
    size_t nlisteners;
    char **names;
    int nshards;
    struct metrics_shard *shards;
    pthread_mutex_t lock; /* the process-wide facts below */
    unsigned long long reloads[2];
    double last_reload;
    size_t ncerts;
    char **cert_names, **cert_types;
    double *cert_not_after;
    char *version, *tls_library;
};

static int shard_init(struct metrics_shard *sh, size_t nl) {
    sh->connections = calloc(nl * MT_TLS_COUNT * SCOPES, sizeof(counter));
    sh->active = calloc(nl, sizeof(*sh->active));
    sh->handshakes = calloc(nl * MT_TLS_COUNT * METRICS_GROUPS, sizeof(counter));
    sh->failures = calloc(nl * MF_COUNT, sizeof(counter));
    sh->starttls = calloc(nl * MS_COUNT, sizeof(counter));
    sh->messages = calloc(nl * MT_TLS_COUNT * SCOPES * MR_COUNT, sizeof(counter));
    sh->bytes = calloc(nl * MT_TLS_COUNT * SCOPES * MR_COUNT, sizeof(counter));
    return sh->connections && sh->active && sh->handshakes && sh->failures && sh->starttls &&
           sh->messages && sh->bytes;
}

static void shard_free(struct metrics_shard *sh) {
    free(sh->connections);
    free(sh->active);
    free(sh->handshakes);
    free(sh->failures);
    free(sh->starttls);
    free(sh->messages);
    free(sh->bytes);
}

static void free_strings(char **v, size_t n) {
    for (size_t i = 0; v != NULL && i < n; i++) {
        free(v[i]);
    }
    free(v);
}

struct metrics *metrics_new(size_t nlisteners, const char *const *names, int nshards) {
    struct metrics *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return NULL;
    }
    pthread_mutex_init(&m->lock, NULL);
    m->nlisteners = nlisteners;
    m->nshards = nshards;
    m->names = calloc(nlisteners ? nlisteners : 1, sizeof(char *));
    m->shards = calloc((size_t)nshards, sizeof(struct metrics_shard));
    int ok = m->names != NULL && m->shards != NULL;
    for (size_t i = 0; ok && i < nlisteners; i++) {
        ok = (m->names[i] = strdup(names[i])) != NULL;
    }
    for (int i = 0; ok && i < nshards; i++) {
        ok = shard_init(&m->shards[i], nlisteners);
    }
    if (!ok) {
        metrics_free(m);
        return NULL;
    }
    return m;
}

void metrics_free(struct metrics *m) {
    if (m == NULL) {
        return;
    }
    for (int i = 0; m->shards != NULL && i < m->nshards; i++) {
        shard_free(&m->shards[i]);
    }
    free(m->shards);
    free_strings(m->names, m->nlisteners);
    free_strings(m->cert_names, m->ncerts);
    free_strings(m->cert_types, m->ncerts);
    free(m->cert_not_after);
    free(m->version);
    free(m->tls_library);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

struct metrics_shard *metrics_shard(struct metrics *m, int i) {
    return &m->shards[i];
}

static void add(counter *c, unsigned long long n) {
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static size_t scope_index(enum addr_scope scope) {
    return (size_t)scope < SCOPES ? (size_t)scope : 0;
}

/* ---- counting ---- */

void metrics_connection(struct metrics_shard *sh, size_t l, enum metrics_tls tls,
                        enum addr_scope scope) {
    add(&sh->connections[(l * MT_TLS_COUNT + tls) * SCOPES + scope_index(scope)], 1);
}

void metrics_active(struct metrics_shard *sh, size_t l, int delta) {
    atomic_fetch_add_explicit(&sh->active[l], delta, memory_order_relaxed);
}

void metrics_handshake(struct metrics_shard *sh, size_t l, enum metrics_tls tls,
                       const char *group) {
    size_t g = METRICS_GROUPS - 1;
    for (size_t i = 0; group != NULL && i + 1 < METRICS_GROUPS; i++) {
        if (strcmp(group, group_names[i]) == 0) {
            g = i;
        }
    }
    add(&sh->handshakes[(l * MT_TLS_COUNT + tls) * METRICS_GROUPS + g], 1);
}

void metrics_handshake_failure(struct metrics_shard *sh, size_t l, enum metrics_fail reason) {
    add(&sh->failures[l * MF_COUNT + reason], 1);
}

void metrics_starttls(struct metrics_shard *sh, size_t l, enum metrics_starttls event) {
    add(&sh->starttls[l * MS_COUNT + event], 1);
}

void metrics_message(struct metrics_shard *sh, size_t l, enum metrics_tls tls,
                     enum addr_scope scope, enum metrics_result result, uint64_t bytes) {
    size_t i = ((l * MT_TLS_COUNT + tls) * SCOPES + scope_index(scope)) * MR_COUNT + result;
    add(&sh->messages[i], 1);
    add(&sh->bytes[i], bytes);
}

void metrics_country(struct metrics_shard *sh, const char *cc, enum metrics_tls tls) {
    if (cc == NULL || cc[0] < 'A' || cc[0] > 'Z' || cc[1] < 'A' || cc[1] > 'Z') {
        return;
    }
    add(&sh->countries[(cc[0] - 'A') * 26 + (cc[1] - 'A')][tls], 1);
}

void metrics_backend_error(struct metrics_shard *sh, enum metrics_backend kind) {
    add(&sh->backend[kind], 1);
}

void metrics_refusal(struct metrics_shard *sh, enum metrics_refusal reason) {
    add(&sh->refusals[reason], 1);
}

/* ---- process-wide facts ---- */

void metrics_reload(struct metrics *m, int ok, double when) {
    pthread_mutex_lock(&m->lock);
    m->reloads[ok ? 0 : 1]++;
    if (ok) {
        m->last_reload = when;
    }
    pthread_mutex_unlock(&m->lock);
}

static char **copy_strings(const char *const *v, size_t n) {
    char **out = calloc(n ? n : 1, sizeof(char *));
    for (size_t i = 0; out != NULL && i < n; i++) {
        if ((out[i] = strdup(v[i])) == NULL) {
            free_strings(out, i);
            return NULL;
        }
    }
    return out;
}

void metrics_set_certificates(struct metrics *m, size_t n, const char *const *names,
                              const char *const *key_types, const double *not_after) {
    char **nn = copy_strings(names, n), **tt = copy_strings(key_types, n);
    double *na = calloc(n ? n : 1, sizeof(double));
    if (nn == NULL || tt == NULL || na == NULL) {
        free_strings(nn, n);
        free_strings(tt, n);
        free(na);
        return; /* the last list stays */
    }
    memcpy(na, not_after, n * sizeof(double));
    pthread_mutex_lock(&m->lock);
    free_strings(m->cert_names, m->ncerts);
    free_strings(m->cert_types, m->ncerts);
    free(m->cert_not_after);
    m->cert_names = nn;
    m->cert_types = tt;
    m->cert_not_after = na;
    m->ncerts = n;
    pthread_mutex_unlock(&m->lock);
}

void metrics_set_build(struct metrics *m, const char *version, const char *tls_library) {
    pthread_mutex_lock(&m->lock);
    free(m->version);
    free(m->tls_library);
    m->version = strdup(version);
    m->tls_library = strdup(tls_library);
    pthread_mutex_unlock(&m->lock);
}

void metrics_set_redis(struct metrics *m, const struct metrics_redis *r) {
    pthread_mutex_lock(&m->lock);
    m->redis = *r;
    pthread_mutex_unlock(&m->lock);
}

void metrics_get_redis(struct metrics *m, struct metrics_redis *out) {
    pthread_mutex_lock(&m->lock);
    *out = m->redis;
    pthread_mutex_unlock(&m->lock);
}

void metrics_set_memory(struct metrics *m, size_t (*entries)(void), size_t (*evictions)(void),
                        size_t max_entries) {
    pthread_mutex_lock(&m->lock);
    m->memory_entries = entries;
    m->memory_evictions = evictions;
    m->memory_max = max_entries;
    pthread_mutex_unlock(&m->lock);
}

void metrics_set_backends(struct metrics *m, struct backend_pool *pool) {
    pthread_mutex_lock(&m->lock);
    m->backends = pool;
    pthread_mutex_unlock(&m->lock);
}

/* ---- rendering ---- */

static unsigned long long sum(const struct metrics *m, size_t offset_in_shard_array,
                              counter *(*array)(struct metrics_shard *)) {
    unsigned long long total = 0;
    for (int i = 0; i < m->nshards; i++) {
        total += atomic_load_explicit(&array(&m->shards[i])[offset_in_shard_array],
                                      memory_order_relaxed);
    }
    return total;
}

static counter *connections_of(struct metrics_shard *s) { return s->connections; }
static counter *handshakes_of(struct metrics_shard *s) { return s->handshakes; }
static counter *failures_of(struct metrics_shard *s) { return s->failures; }
static counter *starttls_of(struct metrics_shard *s) { return s->starttls; }
static counter *messages_of(struct metrics_shard *s) { return s->messages; }
static counter *bytes_of(struct metrics_shard *s) { return s->bytes; }
static counter *backend_of(struct metrics_shard *s) { return s->backend; }
static counter *refusals_of(struct metrics_shard *s) { return s->refusals; }
static counter *countries_of(struct metrics_shard *s) { return &s->countries[0][0]; }

struct out {
    struct buffer *b;
    int ok;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line) || !buffer_append(o->b, line, (size_t)n)) {
        o->ok = 0;
    }
}

static void family(struct out *o, const char *name, const char *type, const char *help) {
    put(o, "# HELP smtp_tls_proxy_%s %s\n# TYPE smtp_tls_proxy_%s %s\n", name, help, name, type);
}

/* label_value escapes a label value (text exposition: \\, \" and \n). */
static const char *label_value(char *out, size_t outlen, const char *v) {
    size_t o = 0;
    for (; v != NULL && *v != '\0' && o + 3 < outlen; v++) {
        if (*v == '\\' || *v == '"') {
            out[o++] = '\\';
            out[o++] = *v;
        } else if (*v == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *v;
        }
    }
    out[o] = '\0';
    return out;
}

static void render_listener_families(struct metrics *m, struct out *o) {
    const size_t nl = m->nlisteners;
    family(o, "connections_total", "counter", "Finished client connections.");
    for (size_t l = 0; l < nl; l++)
        for (int t = 0; t < MT_TLS_COUNT; t++)
            for (int sc = 0; sc < SCOPES; sc++)
                put(o, "smtp_tls_proxy_connections_total{listener=\"%s\",tls=\"%s\",scope=\"%s\"} %llu\n",
                    m->names[l], tls_names[t], addr_scope_name((enum addr_scope)sc),
                    sum(m, (l * MT_TLS_COUNT + (size_t)t) * SCOPES + (size_t)sc, connections_of));
    family(o, "sessions_active", "gauge", "Client sessions open now.");
    for (size_t l = 0; l < nl; l++) {
        long long active = 0;
        for (int i = 0; i < m->nshards; i++) {
            active += atomic_load_explicit(&m->shards[i].active[l], memory_order_relaxed);
        }
        put(o, "smtp_tls_proxy_sessions_active{listener=\"%s\"} %lld\n", m->names[l], active);
    }
    family(o, "tls_handshakes_total", "counter", "Completed TLS handshakes.");
    for (size_t l = 0; l < nl; l++)
        for (int t = 1; t < MT_TLS_COUNT; t++)
            for (int g = 0; g < METRICS_GROUPS; g++)
                put(o, "smtp_tls_proxy_tls_handshakes_total{listener=\"%s\",version=\"%s\",group=\"%s\"} %llu\n",
                    m->names[l], tls_names[t], group_names[g],
                    sum(m, (l * MT_TLS_COUNT + (size_t)t) * METRICS_GROUPS + (size_t)g,
                        handshakes_of));
    family(o, "tls_handshake_failures_total", "counter", "Failed TLS handshakes by reason.");
    for (size_t l = 0; l < nl; l++)
        for (int r = 0; r < MF_COUNT; r++)
            put(o, "smtp_tls_proxy_tls_handshake_failures_total{listener=\"%s\",reason=\"%s\"} %llu\n",
                m->names[l], fail_names[r], sum(m, l * MF_COUNT + (size_t)r, failures_of));
    family(o, "starttls_total", "counter", "STARTTLS offered, used and withheld.");
    for (size_t l = 0; l < nl; l++)
        for (int e = 0; e < MS_COUNT; e++)
            put(o, "smtp_tls_proxy_starttls_total{listener=\"%s\",event=\"%s\"} %llu\n",
                m->names[l], starttls_names[e], sum(m, l * MS_COUNT + (size_t)e, starttls_of));
}

static void render_message_families(struct metrics *m, struct out *o) {
    counter *(*arrays[2])(struct metrics_shard *) = {messages_of, bytes_of};
    const char *fams[2] = {"messages_total", "message_bytes_total"};
    const char *helps[2] = {"Messages by the backend's answer to the final dot.",
                            "Message bytes from clients, by result."};
    for (int k = 0; k < 2; k++) {
        family(o, fams[k], "counter", helps[k]);
        for (size_t l = 0; l < m->nlisteners; l++)
            for (int t = 0; t < MT_TLS_COUNT; t++)
                for (int sc = 0; sc < SCOPES; sc++)
                    for (int r = 0; r < MR_COUNT; r++)
                        put(o, "smtp_tls_proxy_%s{listener=\"%s\",tls=\"%s\",scope=\"%s\",result=\"%s\"} %llu\n",
                            fams[k], m->names[l], tls_names[t],
                            addr_scope_name((enum addr_scope)sc), result_names[r],
                            sum(m, ((l * MT_TLS_COUNT + (size_t)t) * SCOPES + (size_t)sc) *
                                       MR_COUNT + (size_t)r, arrays[k]));
    }
    family(o, "messages_by_country_total", "counter",
           "Messages by client country (GeoIP) and TLS state.");
    for (int c = 0; c < COUNTRIES; c++)
        for (int t = 0; t < MT_TLS_COUNT; t++) {
            unsigned long long n = sum(m, (size_t)c * MT_TLS_COUNT + (size_t)t, countries_of);
            if (n > 0) {
                put(o, "smtp_tls_proxy_messages_by_country_total{country=\"%c%c\",tls=\"%s\"} %llu\n",
                    'A' + c / 26, 'A' + c % 26, tls_names[t], n);
            }
        }
}

static void render_process_families(struct metrics *m, struct out *o) {
    family(o, "backend_errors_total", "counter", "Backend connect errors, timeouts, closes.");
    for (int k = 0; k < MB_COUNT; k++)
        put(o, "smtp_tls_proxy_backend_errors_total{kind=\"%s\"} %llu\n", backend_names[k],
            sum(m, (size_t)k, backend_of));
    family(o, "refusals_total", "counter", "The proxy's own refusals by reason.");
    for (int r = 0; r < MRF_COUNT; r++)
        put(o, "smtp_tls_proxy_refusals_total{reason=\"%s\"} %llu\n", refusal_names[r],
            sum(m, (size_t)r, refusals_of));
    char a[256], b[256];
    pthread_mutex_lock(&m->lock);
    family(o, "reloads_total", "counter", "Configuration reloads by result.");
    put(o, "smtp_tls_proxy_reloads_total{result=\"ok\"} %llu\n", m->reloads[0]);
    put(o, "smtp_tls_proxy_reloads_total{result=\"failed\"} %llu\n", m->reloads[1]);
    family(o, "last_reload_success_timestamp_seconds", "gauge",
           "When the running configuration was loaded.");
    put(o, "smtp_tls_proxy_last_reload_success_timestamp_seconds %.3f\n", m->last_reload);
    family(o, "certificate_not_after_timestamp_seconds", "gauge",
           "Each loaded certificate's notAfter.");
    for (size_t i = 0; i < m->ncerts; i++)
        put(o, "smtp_tls_proxy_certificate_not_after_timestamp_seconds{certificate=\"%s\",key_type=\"%s\"} %.0f\n",
            label_value(a, sizeof(a), m->cert_names[i]), label_value(b, sizeof(b), m->cert_types[i]),
            m->cert_not_after[i]);
    if (m->memory_entries != NULL) {
        family(o, "starttls_memory_entries", "gauge",
               "Senders not offered STARTTLS because a handshake of theirs failed.");
        put(o, "smtp_tls_proxy_starttls_memory_entries %zu\n", m->memory_entries());
        family(o, "starttls_memory_max_entries", "gauge", "The bound of that table.");
        put(o, "smtp_tls_proxy_starttls_memory_max_entries %zu\n", m->memory_max);
        family(o, "starttls_memory_evictions_total", "counter",
               "Entries dropped by the bound, least recently used first.");
        put(o, "smtp_tls_proxy_starttls_memory_evictions_total %zu\n", m->memory_evictions());
    }
    if (m->redis.clients > 0) {
        const struct metrics_redis *r = &m->redis;
        family(o, "redis_clients", "gauge", "Redis clients of the shared STARTTLS memory.");
        put(o, "smtp_tls_proxy_redis_clients %u\n", r->clients);
        family(o, "redis_up", "gauge", "Of them, connected and answering.");
        put(o, "smtp_tls_proxy_redis_up %u\n", r->up);
        family(o, "redis_lookups_total", "counter",
               "Lookups sent to Redis, and how many were answered remembered or too late.");
        put(o, "smtp_tls_proxy_redis_lookups_total{result=\"sent\"} %llu\n", r->lookups);
        put(o, "smtp_tls_proxy_redis_lookups_total{result=\"remembered\"} %llu\n",
            r->remembered);
        put(o, "smtp_tls_proxy_redis_lookups_total{result=\"late\"} %llu\n", r->late);
        put(o, "smtp_tls_proxy_redis_lookups_total{result=\"not_asked\"} %llu\n",
            r->unavailable);
        family(o, "redis_errors_total", "counter", "Error, wrong-type or unasked-for replies.");
        put(o, "smtp_tls_proxy_redis_errors_total %llu\n", r->errors);
        family(o, "redis_reconnects_total", "counter", "Connection attempts after the first.");
        put(o, "smtp_tls_proxy_redis_reconnects_total %llu\n", r->reconnects);
    }
    family(o, "build_info", "gauge", "Version and TLS library; always 1.");
    put(o, "smtp_tls_proxy_build_info{version=\"%s\",tls_library=\"%s\"} 1\n",
        label_value(a, sizeof(a), m->version ? m->version : ""),
        label_value(b, sizeof(b), m->tls_library ? m->tls_library : ""));
    pthread_mutex_unlock(&m->lock);
}

/* render_backend_families: each configured backend, as the pool knows it
 * now (its own counters: the set of backends changes with reloads). */
static void render_backend_families(struct metrics *m, struct out *o) {
    pthread_mutex_lock(&m->lock);
    struct backend_pool *pool = m->backends;
    pthread_mutex_unlock(&m->lock);
    if (pool == NULL) {
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct backend_stat *st = NULL;
    size_t n = backend_pool_stats(pool, (double)ts.tv_sec + ts.tv_nsec / 1e9, &st);
    char a[512];
    family(o, "backend_up", "gauge", "1 while the backend is not marked down after a failure.");
    for (size_t i = 0; i < n; i++)
        put(o, "smtp_tls_proxy_backend_up{backend=\"%s\"} %d\n",
            label_value(a, sizeof(a), st[i].text), st[i].up);
    family(o, "backend_connects_total", "counter", "Connection attempts to each backend.");
    for (size_t i = 0; i < n; i++)
        put(o, "smtp_tls_proxy_backend_connects_total{backend=\"%s\"} %llu\n",
            label_value(a, sizeof(a), st[i].text), st[i].connects);
    family(o, "backend_failures_total", "counter",
           "Backend connections that failed before their greeting, by reason.");
    for (size_t i = 0; i < n; i++)
        for (int r = 0; r < BACKEND_FAILURE_COUNT; r++)
            put(o, "smtp_tls_proxy_backend_failures_total{backend=\"%s\",reason=\"%s\"} %llu\n",
                label_value(a, sizeof(a), st[i].text),
                backend_failure_name((enum backend_failure)r), st[i].failures[r]);
    backend_pool_stats_free(st, n);
}

int metrics_render(struct metrics *m, struct buffer *out) {
    struct out o = {out, 1};
    render_listener_families(m, &o);
    render_message_families(m, &o);
    render_backend_families(m, &o);
    render_process_families(m, &o);
    return o.ok;
}

enum metrics_tls metrics_tls_of(const char *version) {
    for (int t = 1; version != NULL && t < MT_TLS_COUNT; t++) {
        if (strcmp(version, tls_names[t]) == 0) {
            return (enum metrics_tls)t;
        }
    }
    return MT_NONE;
}

enum metrics_fail metrics_fail_of(const char *reason) {
    if (reason == NULL) {
        return MF_OTHER;
    }
    if (strstr(reason, "no_client_hello") != NULL ||
        strstr(reason, "before_client_hello") != NULL) {
        return MF_NO_CLIENT_HELLO;
    }
    if (strstr(reason, "timeout") != NULL) {
        return MF_TIMEOUT;
    }
    if (strstr(reason, "NO_SHARED_CIPHER") != NULL || strstr(reason, "NO_SHARED_GROUP") != NULL) {
        return MF_NO_SHARED_CIPHER;
    }
    if (strstr(reason, "PROTOCOL_VERSION") != NULL ||
        strstr(reason, "UNSUPPORTED_PROTOCOL") != NULL) {
        return MF_PROTOCOL_VERSION;
    }
    if (strstr(reason, "ALERT") != NULL) {
        return MF_ALERT_RECEIVED;
    }
    if (strstr(reason, "closed") != NULL || strstr(reason, "connection_error") != NULL) {
        return MF_CLOSED;
    }
    return MF_OTHER;
}
