/*
 * report.h - what a client run counts, and the report made of it.
 *
 * Each worker thread counts into its own load_stats (no sharing, no
 * atomics on the hot path); the main thread merges them when the
 * workers have ended and formats the report as a table or as one JSON
 * object (the interface `make bench` reads: keys in report.c). Pure.
 */
#ifndef SMTP_LOAD_REPORT_H
#define SMTP_LOAD_REPORT_H

#include <stdint.h>

#include "core/buffer.h"
#include "hist.h"
#include "options.h"

/* The timed phases (smtp-load --help, README.md). */
enum lat_phase {
    LAT_CONNECT = 0, /* connect() to writable */
    LAT_GREETING,    /* connected (implicit TLS: handshake done) to the 220 */
    LAT_HANDSHAKE,   /* first SSL_do_handshake to done (STARTTLS: from its 220) */
    LAT_DATA,        /* DATA sent to the 250 after the final dot */
    LAT_COUNT,
};

/* Where a session failed: the step whose reply was not 2xx/3xx, or
 * ERR_TIMEOUT / ERR_CLOSED (the peer closed before the step's reply). */
enum err_kind {
    ERR_CONNECT = 0,
    ERR_GREETING,
    ERR_TLS,
    ERR_EHLO,
    ERR_STARTTLS,
    ERR_MAIL,
    ERR_RCPT,
    ERR_DATA,
    ERR_DOT,
    ERR_QUIT,
    ERR_TIMEOUT,
    ERR_CLOSED,
    ERR_COUNT,
};

struct load_stats {
    uint64_t sessions;      /* ended with QUIT's 221 */
    uint64_t messages;      /* 250 after the final dot */
    uint64_t message_bytes; /* their octets (--size each) */
    uint64_t handshakes;    /* TLS handshakes completed */
    uint64_t resumed;       /* of which resumed a session */
    uint64_t errors[ERR_COUNT];
    struct hist lat[LAT_COUNT];
};

struct load_report {
    const struct load_opts *opts;
    const struct load_stats *stats;
    double elapsed_s; /* first connect to the last connection's end */
    double cpu_user_s, cpu_system_s;
};

/* stats_init empties |s|. */
void stats_init(struct load_stats *s);

/* stats_merge adds everything |from| counted to |into|. */
void stats_merge(struct load_stats *into, const struct load_stats *from);

/* stats_errors returns the number of errors of every kind. */
uint64_t stats_errors(const struct load_stats *s);

/* err_name and lat_name return the JSON key of a kind or a phase. */
const char *err_name(enum err_kind k);
const char *lat_name(enum lat_phase p);

/* report_json appends the report as one JSON object and a newline.
 * Returns 1, or 0 when |out| cannot grow. */
int report_json(const struct load_report *r, struct buffer *out);

/* report_text appends the report as a readable table. Returns 1 or 0. */
int report_text(const struct load_report *r, struct buffer *out);

#endif
