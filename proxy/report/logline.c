/*
 * logline.c - text and JSON log lines as fields; the event=end record.
 */
#include "report/logline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/when.h"

static int parse_text(struct logline *out, const char *line, size_t n) {
    struct log_cursor c;
    struct log_field f;
    int keyed = 0;
    log_cursor_init(&c, line, n);
    while (log_cursor_next(&c, &f)) {
        if (out->nfields < LOGLINE_FIELDS_MAX) {
            out->f[out->nfields++] = f;
        }
        if (!(f.key_len == 4 && memcmp(f.key, "time", 4) == 0) &&
            !(f.key_len == 3 && memcmp(f.key, "msg", 3) == 0)) {
            keyed = 1;
        }
    }
    return keyed;
}

/* ---- a small JSON object reader ---- */

struct jreader {
    const char *s;
    size_t n, i;
    char *scratch;
    size_t used, cap;
};

static void jskip(struct jreader *r) {
    while (r->i < r->n &&
           (r->s[r->i] == ' ' || r->s[r->i] == '\t' || r->s[r->i] == '\r' || r->s[r->i] == '\n')) {
        r->i++;
    }
}

static int hex4(const char *s, unsigned *out) {
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        v <<= 4;
        if (c >= '0' && c <= '9') {
            v |= (unsigned)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            v |= (unsigned)(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            v |= (unsigned)(c - 'A' + 10);
        } else {
            return 0;
        }
    }
    *out = v;
    return 1;
}

static int jput(struct jreader *r, unsigned char c) {
    if (r->used >= r->cap) {
        return 0;
    }
    r->scratch[r->used++] = (char)c;
    return 1;
}

/* junicode decodes the \uXXXX escape at r->i (a surrogate pair taken
 * whole): the bytes before the last go to the scratch buffer, the last
 * to *c. */
static int junicode(struct jreader *r, unsigned char *c) {
    unsigned u;
    if (r->i + 4 > r->n || !hex4(r->s + r->i, &u)) {
        return 0;
    }
    r->i += 4;
    if (u >= 0xd800 && u <= 0xdbff) {
        unsigned lo;
        if (r->i + 6 > r->n || r->s[r->i] != '\\' || r->s[r->i + 1] != 'u' ||
            !hex4(r->s + r->i + 2, &lo) || lo < 0xdc00 || lo > 0xdfff) {
            return 0;
        }
        r->i += 6;
        u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
    } else if (u >= 0xdc00 && u <= 0xdfff) {
        return 0;
    }
    if (u < 0x100) { /* one byte: the inverse of log_json_escape */
        *c = (unsigned char)u;
        return 1;
    }
    if (u < 0x800) {
        if (!jput(r, (unsigned char)(0xc0 | (u >> 6)))) {
            return 0;
        }
    } else if (u < 0x10000) {
        if (!jput(r, (unsigned char)(0xe0 | (u >> 12))) ||
            !jput(r, (unsigned char)(0x80 | ((u >> 6) & 0x3f)))) {
            return 0;
        }
    } else {
        if (!jput(r, (unsigned char)(0xf0 | (u >> 18))) ||
            !jput(r, (unsigned char)(0x80 | ((u >> 12) & 0x3f))) ||
            !jput(r, (unsigned char)(0x80 | ((u >> 6) & 0x3f)))) {
            return 0;
        }
    }
    *c = (unsigned char)(0x80 | (u & 0x3f));
    return 1;
}

/* jescape decodes the escape after a backslash at r->i; the byte to
 * store (the last, for a multi-byte \u) goes to *c. */
static int jescape(struct jreader *r, unsigned char *c) {
    if (r->i >= r->n) {
        return 0;
    }
    char e = r->s[r->i++];
    switch (e) {
    case '"':
    case '\\':
    case '/':
        *c = (unsigned char)e;
        return 1;
    case 'b':
        *c = '\b';
        return 1;
    case 'f':
        *c = '\f';
        return 1;
    case 'n':
        *c = '\n';
        return 1;
    case 'r':
        *c = '\r';
        return 1;
    case 't':
        *c = '\t';
        return 1;
    case 'u':
        return junicode(r, c);
    default:
        return 0;
    }
}

/* jstring decodes the string at r->i into the scratch buffer. */
static int jstring(struct jreader *r, const char **out, size_t *len) {
    if (r->i >= r->n || r->s[r->i] != '"') {
        return 0;
    }
    r->i++;
    size_t start = r->used;
    while (r->i < r->n && r->s[r->i] != '"') {
        unsigned char c = (unsigned char)r->s[r->i++];
        if (c < 0x20) {
            return 0;
        }
        if (c == '\\' && !jescape(r, &c)) {
            return 0;
        }
        if (!jput(r, c)) {
            return 0;
        }
    }
    if (r->i >= r->n) {
        return 0;
    }
    r->i++;
    *out = r->scratch + start;
    *len = r->used - start;
    return 1;
}

/* jskip_nested skips a nested object or array (strings inside honoured). */
static int jskip_nested(struct jreader *r) {
    int depth = 0;
    while (r->i < r->n) {
        char c = r->s[r->i];
        if (c == '"') {
            size_t mark = r->used;
            const char *ignored;
            size_t ignored_len;
            if (!jstring(r, &ignored, &ignored_len)) {
                return 0;
            }
            r->used = mark;
            continue;
        }
        r->i++;
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth == 0) {
                return 1;
            }
        }
    }
    return 0;
}

static int parse_json(struct logline *out, const char *line, size_t n) {
    struct jreader r = {line, n, 0, out->scratch, 0, sizeof(out->scratch)};
    jskip(&r);
    if (r.i >= r.n || line[r.i] != '{') {
        return 0;
    }
    r.i++;
    jskip(&r);
    if (r.i < r.n && line[r.i] == '}') {
        r.i++;
    } else {
        for (;;) {
            struct log_field f;
            jskip(&r);
            if (!jstring(&r, &f.key, &f.key_len)) {
                return 0;
            }
            jskip(&r);
            if (r.i >= r.n || line[r.i++] != ':') {
                return 0;
            }
            jskip(&r);
            if (r.i >= r.n) {
                return 0;
            }
            int keep = 1;
            char c = line[r.i];
            if (c == '"') {
                if (!jstring(&r, &f.value, &f.value_len)) {
                    return 0;
                }
            } else if (c == '{' || c == '[') {
                if (!jskip_nested(&r)) {
                    return 0;
                }
                keep = 0;
            } else {
                size_t start = r.i;
                while (r.i < r.n && line[r.i] != ',' && line[r.i] != '}' && line[r.i] != ' ' &&
                       line[r.i] != '\t' && line[r.i] != '\r' && line[r.i] != '\n') {
                    r.i++;
                }
                if (r.i == start) {
                    return 0;
                }
                f.value = line + start;
                f.value_len = r.i - start;
            }
            if (keep && out->nfields < LOGLINE_FIELDS_MAX) {
                out->f[out->nfields++] = f;
            }
            jskip(&r);
            if (r.i < r.n && line[r.i] == ',') {
                r.i++;
                continue;
            }
            if (r.i < r.n && line[r.i] == '}') {
                r.i++;
                break;
            }
            return 0;
        }
    }
    jskip(&r);
    return r.i == r.n;
}

int logline_parse(struct logline *out, const char *line, size_t n) {
    out->nfields = 0;
    size_t i = 0;
    while (i < n && (line[i] == ' ' || line[i] == '\t')) {
        i++;
    }
    if (i < n && line[i] == '{') {
        if (parse_json(out, line + i, n - i)) {
            return 1;
        }
        out->nfields = 0;
        return 0;
    }
    return parse_text(out, line, n);
}

const char *logline_get(const struct logline *l, const char *key, size_t *len) {
    size_t k = strlen(key);
    for (size_t i = 0; i < l->nfields; i++) {
        if (l->f[i].key_len == k && memcmp(l->f[i].key, key, k) == 0) {
            *len = l->f[i].value_len;
            return l->f[i].value;
        }
    }
    return NULL;
}

/* copy_field copies the value of |key| into |out|; "-" and a missing
 * field give "". Returns whether the field was present. */
static int copy_field(const struct logline *l, const char *key, char *out, size_t out_size) {
    size_t len;
    const char *v = logline_get(l, key, &len);
    out[0] = '\0';
    if (v == NULL) {
        return 0;
    }
    if (len == 1 && v[0] == '-') {
        return 1;
    }
    if (len >= out_size) {
        len = out_size - 1;
    }
    memcpy(out, v, len);
    out[len] = '\0';
    return 1;
}

static unsigned long long number_field(const struct logline *l, const char *key) {
    char text[32];
    copy_field(l, key, text, sizeof(text));
    return strtoull(text, NULL, 10);
}

/* starttls_field reads starttls= (issue 12); missing, "-" or a value
 * not listed here is unknown. */
static enum session_starttls starttls_field(const struct logline *l) {
    static const struct {
        const char *name;
        enum session_starttls value;
    } names[] = {
        {"none", SESSION_STARTTLS_NONE},
        {"offered", SESSION_STARTTLS_OFFERED},
        {"used", SESSION_STARTTLS_USED},
        {"withheld", SESSION_STARTTLS_WITHHELD},
        {"failed", SESSION_STARTTLS_FAILED},
    };
    size_t len;
    const char *v = logline_get(l, "starttls", &len);
    for (size_t i = 0; v != NULL && i < sizeof(names) / sizeof(names[0]); i++) {
        if (strlen(names[i].name) == len && memcmp(names[i].name, v, len) == 0) {
            return names[i].value;
        }
    }
    return SESSION_STARTTLS_UNKNOWN;
}

int session_record_from_logline(const struct logline *l, struct session_record *r) {
    size_t len;
    const char *event = logline_get(l, "event", &len);
    if (event == NULL || len != 3 || memcmp(event, "end", 3) != 0) {
        return 0;
    }
    memset(r, 0, sizeof(*r));
    const char *t = logline_get(l, "time", &len);
    r->has_time = t != NULL && when_parse_iso8601(t, len, &r->time_ms);
    copy_field(l, "session", r->session, sizeof(r->session));
    copy_field(l, "listener", r->listener, sizeof(r->listener));
    copy_field(l, "local_port", r->local_port, sizeof(r->local_port));
    copy_field(l, "client", r->client, sizeof(r->client));
    copy_field(l, "port", r->port, sizeof(r->port));
    copy_field(l, "scope", r->scope, sizeof(r->scope));
    copy_field(l, "country", r->country, sizeof(r->country));
    copy_field(l, "asn", r->asn, sizeof(r->asn));
    copy_field(l, "helo", r->helo, sizeof(r->helo));
    copy_field(l, "name", r->name, sizeof(r->name));
    if (!copy_field(l, "tls", r->tls, sizeof(r->tls)) || r->tls[0] == '\0') {
        snprintf(r->tls, sizeof(r->tls), "none");
    }
    copy_field(l, "cipher", r->cipher, sizeof(r->cipher));
    copy_field(l, "group", r->group, sizeof(r->group));
    copy_field(l, "sni", r->sni, sizeof(r->sni));
    copy_field(l, "result", r->result, sizeof(r->result));
    r->starttls = starttls_field(l);
    r->messages = (unsigned long)number_field(l, "messages");
    r->accepted = (unsigned long)number_field(l, "accepted");
    r->bytes_in = number_field(l, "bytes_in");
    r->bytes_out = number_field(l, "bytes_out");
    char d[32];
    copy_field(l, "duration", d, sizeof(d));
    r->duration = strtod(d, NULL);
    if (strcmp(r->asn, "0") == 0) {
        r->asn[0] = '\0';
    }
    return 1;
}

int session_record_encrypted(const struct session_record *r) {
    return r->tls[0] != '\0' && strcmp(r->tls, "none") != 0;
}
