/*
 * report.c - counting and formatting a client run (see report.h).
 */
#include "report.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const ERR_NAMES[ERR_COUNT] = {
    "connect", "greeting", "tls", "ehlo", "starttls", "mail",
    "rcpt",    "data",     "dot", "quit", "timeout",  "closed",
};
static const char *const LAT_NAMES[LAT_COUNT] = {"connect", "greeting", "handshake", "data"};
static const char *const MODE_NAMES[] = {"plain", "starttls", "tls"};

const char *err_name(enum err_kind k) {
    return k < ERR_COUNT ? ERR_NAMES[k] : "?";
}

const char *lat_name(enum lat_phase p) {
    return p < LAT_COUNT ? LAT_NAMES[p] : "?";
}

void stats_init(struct load_stats *s) {
    memset(s, 0, sizeof(*s));
    for (int i = 0; i < LAT_COUNT; i++) {
        hist_init(&s->lat[i]);
    }
}

void stats_merge(struct load_stats *into, const struct load_stats *from) {
    into->sessions += from->sessions;
    into->messages += from->messages;
    into->message_bytes += from->message_bytes;
    into->handshakes += from->handshakes;
    into->resumed += from->resumed;
    for (int i = 0; i < ERR_COUNT; i++) {
        into->errors[i] += from->errors[i];
    }
    for (int i = 0; i < LAT_COUNT; i++) {
        hist_merge(&into->lat[i], &from->lat[i]);
    }
}

uint64_t stats_errors(const struct load_stats *s) {
    uint64_t n = 0;
    for (int i = 0; i < ERR_COUNT; i++) {
        n += s->errors[i];
    }
    return n;
}

/* bprintf appends formatted text to |b|. Returns 1 or 0 (no memory). */
__attribute__((format(printf, 2, 3))) static int bprintf(struct buffer *b, const char *fmt,
                                                          ...) {
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        return 0;
    }
    return buffer_append(b, tmp, (size_t)n);
}

/* per_s divides |n| by the elapsed time (0 when none elapsed). */
static double per_s(const struct load_report *r, double n) {
    return r->elapsed_s > 0 ? n / r->elapsed_s : 0;
}

/* ms converts nanoseconds to milliseconds. */
static double ms(uint64_t ns) {
    return (double)ns / 1e6;
}

/* json_latency appends the "latency_ms" object. */
static int json_latency(const struct load_report *r, struct buffer *out) {
    int ok = bprintf(out, "\"latency_ms\":{");
    for (int i = 0; i < LAT_COUNT; i++) {
        const struct hist *h = &r->stats->lat[i];
        ok = ok && bprintf(out, "%s\"%s\":{\"p50\":%.3f,\"p99\":%.3f,\"n\":%llu}",
                           i ? "," : "", LAT_NAMES[i], ms(hist_percentile(h, 50)),
                           ms(hist_percentile(h, 99)), (unsigned long long)h->count);
    }
    return ok && bprintf(out, "},");
}

int report_json(const struct load_report *r, struct buffer *out) {
    const struct load_opts *o = r->opts;
    const struct load_stats *s = r->stats;
    int ok = bprintf(out,
                     "{\"mode\":\"%s\",\"tls_version\":\"%s\",\"resume\":%s,"
                     "\"connections\":%u,\"threads\":%u,\"elapsed_s\":%.3f,",
                     MODE_NAMES[o->mode], o->tls_version == 12 ? "1.2" : "1.3",
                     o->resume ? "true" : "false", o->connections, o->threads, r->elapsed_s);
    ok = ok && bprintf(out,
                       "\"sessions\":%llu,\"messages\":%llu,\"message_bytes\":%llu,"
                       "\"handshakes\":%llu,\"resumed\":%llu,",
                       (unsigned long long)s->sessions, (unsigned long long)s->messages,
                       (unsigned long long)s->message_bytes, (unsigned long long)s->handshakes,
                       (unsigned long long)s->resumed);
    ok = ok && bprintf(out,
                       "\"msgs_per_s\":%.1f,\"handshakes_per_s\":%.1f,\"sessions_per_s\":%.1f,"
                       "\"mb_per_s\":%.3f,",
                       per_s(r, (double)s->messages), per_s(r, (double)s->handshakes),
                       per_s(r, (double)s->sessions), per_s(r, (double)s->message_bytes) / 1e6);
    ok = ok && json_latency(r, out) && bprintf(out, "\"errors\":{");
    for (int i = 0; i < ERR_COUNT; i++) {
        ok = ok && bprintf(out, "%s\"%s\":%llu", i ? "," : "", ERR_NAMES[i],
                           (unsigned long long)s->errors[i]);
    }
    return ok && bprintf(out, "},\"cpu_s\":{\"user\":%.3f,\"system\":%.3f}}\n", r->cpu_user_s,
                         r->cpu_system_s);
}

/* text_latency appends the latency table. */
static int text_latency(const struct load_report *r, struct buffer *out) {
    int ok = bprintf(out, "latency ms   %10s %10s %10s %10s %10s\n", "n", "p50", "p90", "p99",
                     "max");
    for (int i = 0; i < LAT_COUNT; i++) {
        const struct hist *h = &r->stats->lat[i];
        ok = ok && bprintf(out, "  %-10s %10llu %10.3f %10.3f %10.3f %10.3f\n", LAT_NAMES[i],
                           (unsigned long long)h->count, ms(hist_percentile(h, 50)),
                           ms(hist_percentile(h, 90)), ms(hist_percentile(h, 99)),
                           ms(h->count ? h->max : 0));
    }
    return ok;
}

int report_text(const struct load_report *r, struct buffer *out) {
    const struct load_opts *o = r->opts;
    const struct load_stats *s = r->stats;
    int ok = bprintf(out, "smtp-load %s: mode %s%s%s, %u connections, %u threads\n",
                     o->target ? o->target : "", MODE_NAMES[o->mode],
                     o->mode == MODE_PLAIN ? "" : (o->tls_version == 12 ? " TLS 1.2" : " TLS 1.3"),
                     o->resume ? " resume" : "", o->connections, o->threads);
    ok = ok && bprintf(out, "elapsed      %10.3f s   cpu user %.3f s, system %.3f s\n",
                       r->elapsed_s, r->cpu_user_s, r->cpu_system_s);
    ok = ok && bprintf(out, "%-12s %10s %12s\n", "", "count", "per second");
    ok = ok && bprintf(out, "%-12s %10llu %12.1f\n", "sessions",
                       (unsigned long long)s->sessions, per_s(r, (double)s->sessions));
    ok = ok && bprintf(out, "%-12s %10llu %12.1f\n", "messages",
                       (unsigned long long)s->messages, per_s(r, (double)s->messages));
    ok = ok && bprintf(out, "%-12s %10llu %12.3f MB/s\n", "bytes",
                       (unsigned long long)s->message_bytes,
                       per_s(r, (double)s->message_bytes) / 1e6);
    ok = ok && bprintf(out, "%-12s %10llu %12.1f   resumed %llu\n", "handshakes",
                       (unsigned long long)s->handshakes, per_s(r, (double)s->handshakes),
                       (unsigned long long)s->resumed);
    ok = ok && text_latency(r, out);
    ok = ok && bprintf(out, "errors       %llu", (unsigned long long)stats_errors(s));
    for (int i = 0; i < ERR_COUNT; i++) {
        if (s->errors[i] != 0) {
            ok = ok && bprintf(out, "  %s %llu", ERR_NAMES[i], (unsigned long long)s->errors[i]);
        }
    }
    return ok && bprintf(out, "\n");
}
