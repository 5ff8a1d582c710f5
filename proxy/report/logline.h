/*
 * logline.h - one line of the proxy's own log, text or JSON, as fields,
 * and the session-end record (event=end) the report counts.
 *
 * Text lines are read by the same cursor the JSON writer uses
 * (core/log.h log_cursor_next), so both formats give the same fields.
 * Pure; no I/O.
 */
#ifndef SMTP_TLS_PROXY_LOGLINE_H
#define SMTP_TLS_PROXY_LOGLINE_H

#include <stddef.h>

#include "core/log.h"

#define LOGLINE_FIELDS_MAX 64
#define LOGLINE_SCRATCH 16384

struct logline {
    size_t nfields;
    struct log_field f[LOGLINE_FIELDS_MAX];
    char scratch[LOGLINE_SCRATCH]; /* decoded JSON strings */
};

/* logline_parse reads |n| bytes: a JSON object when the first non-blank
 * byte is '{' (string keys; string, number, true, false and null values
 * kept as text; nested values skipped), otherwise a text line. Returns
 * 1 with the fields in *out, or 0 for a line that is neither (a JSON
 * syntax error, a line without any key=value field). Fields past
 * LOGLINE_FIELDS_MAX are dropped. JSON \u0080-\u00ff decode to the one
 * byte, the inverse of log_json_escape's escape of invalid UTF-8. */
int logline_parse(struct logline *out, const char *line, size_t n);

/* logline_get returns the value of the first field named |key| and its
 * length in *len, or NULL when there is none. */
const char *logline_get(const struct logline *l, const char *key, size_t *len);

/* What the listener did with STARTTLS in the session (the starttls=
 * field, issue 12 "STARTTLS failure memory"). A log from before the
 * field, "-" and any other value are UNKNOWN, never WITHHELD. */
enum session_starttls {
    SESSION_STARTTLS_UNKNOWN = 0,
    SESSION_STARTTLS_NONE,     /* "none": not offered (implicit TLS, tls=none) */
    SESSION_STARTTLS_OFFERED,  /* "offered": offered, not used */
    SESSION_STARTTLS_USED,     /* "used": the handshake succeeded */
    SESSION_STARTTLS_WITHHELD, /* "withheld": left out of EHLO, the client is remembered */
    SESSION_STARTTLS_FAILED,   /* "failed": the handshake after STARTTLS failed */
};

/* A finished session, as the event=end line says. Strings are "" when
 * the line does not say (a field missing, or "-"). */
struct session_record {
    long long time_ms; /* the line's timestamp */
    int has_time;
    char session[40];
    char listener[64];
    char local_port[8];
    char client[64];
    char port[8];
    char scope[16];
    char country[8];
    char asn[16];
    char helo[256];
    char name[256]; /* the confirmed name (FCrDNS); "" when unknown or absent */
    char tls[24];   /* "none" for plaintext */
    char cipher[64];
    char group[32];
    char sni[256];
    char result[40];
    enum session_starttls starttls;
    unsigned long messages, accepted;
    unsigned long long bytes_in, bytes_out;
    double duration;
};

/* session_record_from_logline fills *r from |l| when it is an event=end
 * line. Returns 1, or 0 for any other line. */
int session_record_from_logline(const struct logline *l, struct session_record *r);

/* session_record_encrypted: the session ran under TLS. */
int session_record_encrypted(const struct session_record *r);

#endif
