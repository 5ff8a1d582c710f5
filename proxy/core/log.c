/*
 * log.c - timestamped key=value lines on stderr, one write(2) per line so
 * lines from worker threads never interleave. With log_format = json the
 * same line is formatted first and then rewritten as one JSON object, so
 * both formats carry the same keys whatever a call site writes.
 */
#include "core/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Set by the main thread (start, reload), read by every worker. */
static atomic_int current_level = LOG_LEVEL_INFO;
static atomic_int current_format = LOG_FORMAT_TEXT;

static const char *const level_names[] = {"error", "warning", "info", "debug"};

void log_set_level(enum log_level level) {
    atomic_store_explicit(&current_level, (int)level, memory_order_relaxed);
}

void log_set_format(enum log_format format) {
    atomic_store_explicit(&current_format, (int)format, memory_order_relaxed);
}

int log_enabled(enum log_level level) {
    return (int)level <= atomic_load_explicit(&current_level, memory_order_relaxed);
}

void log_msg(enum log_level level, const char *fmt, ...) {
    if (!log_enabled(level)) {
        return;
    }
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ level=%s ",
                          (long)(tv.tv_usec / 1000), level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    if (w < 0) {
        return;
    }
    n += (size_t)w;
    if (n > sizeof(line) - 2) {
        n = sizeof(line) - 2;
    }
    line[n++] = '\n';
    const char *out = line;
    char json[sizeof(line) * 6 + 16];
    if (atomic_load_explicit(&current_format, memory_order_relaxed) == LOG_FORMAT_JSON) {
        size_t j = log_text_to_json(json, sizeof(json) - 1, line, n - 1);
        if (j > 0) { /* always: the buffer holds the worst case */
            json[j++] = '\n';
            out = json;
            n = j;
        }
    }
    /* A failed log write has nowhere to be reported. */
    ssize_t ignored = write(STDERR_FILENO, out, n);
    (void)ignored;
}

char *log_sanitize(char *out, size_t out_size, const char *src, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < out_size; i++) {
        unsigned char c = (unsigned char)src[i];
        out[o++] = (c >= 0x21 && c <= 0x7e && c != '"' && c != '\\') ? (char)c : '?';
    }
    out[o] = '\0';
    return out;
}

/* ---- text lines as fields ---- */

static int is_blank(char c) {
    return c == ' ' || c == '\t';
}

static int is_key_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '.';
}

/* key_at returns the length of the key of a key=value token at |i|, or 0
 * when the token there is not one. */
static size_t key_at(const char *p, size_t n, size_t i) {
    size_t k = i;
    while (k < n && is_key_char(p[k])) {
        k++;
    }
    return (k > i && k < n && p[k] == '=') ? k - i : 0;
}

static size_t skip_blanks(const char *p, size_t n, size_t i) {
    while (i < n && is_blank(p[i])) {
        i++;
    }
    return i;
}

void log_cursor_init(struct log_cursor *c, const char *line, size_t n) {
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
        n--;
    }
    *c = (struct log_cursor){.line = line, .n = n};
}

int log_cursor_next(struct log_cursor *c, struct log_field *f) {
    const char *p = c->line;
    size_t n = c->n;
    size_t i = skip_blanks(p, n, c->pos);
    if (i >= n) {
        c->pos = n;
        return 0;
    }
    size_t end = i;
    while (end < n && !is_blank(p[end])) {
        end++;
    }
    if (!c->started) {
        c->started = 1;
        if (memchr(p + i, '=', end - i) == NULL) {
            *f = (struct log_field){"time", 4, p + i, end - i};
            c->pos = end;
            return 1;
        }
    }
    size_t klen = key_at(p, n, i);
    if (klen == 0) {
        size_t e = n;
        while (e > i && is_blank(p[e - 1])) {
            e--;
        }
        *f = (struct log_field){"msg", 3, p + i, e - i};
        c->pos = n;
        return 1;
    }
    f->key = p + i;
    f->key_len = klen;
    size_t v = i + klen + 1;
    if (v < n && p[v] == '"') {
        /* The closing quote ends the line or comes before a blank and
         * another key=value token; failing that, the first quote before
         * a blank; failing that, the rest of the line. */
        size_t close = n, loose = n;
        for (size_t j = v + 1; j < n; j++) {
            if (p[j] != '"') {
                continue;
            }
            if (j + 1 == n) {
                close = j;
                break;
            }
            if (is_blank(p[j + 1])) {
                if (loose == n) {
                    loose = j;
                }
                if (key_at(p, n, skip_blanks(p, n, j + 1)) > 0) {
                    close = j;
                    break;
                }
            }
        }
        if (close == n) {
            close = loose;
        }
        f->value = p + v + 1;
        f->value_len = (close < n ? close : n) - (v + 1);
        c->pos = close < n ? close + 1 : n;
        return 1;
    }
    f->value = p + v;
    f->value_len = end - v;
    c->pos = end;
    /* "key=value: why": the colon belongs to the free text after it. */
    size_t next = skip_blanks(p, n, end);
    if (f->value_len > 0 && p[end - 1] == ':' && next < n && key_at(p, n, next) == 0) {
        f->value_len--;
    }
    return 1;
}

/* utf8_valid returns the length of the valid UTF-8 sequence (RFC 3629:
 * no overlong forms, no surrogates, nothing past U+10FFFF) starting at
 * |s|, or 0. */
static size_t utf8_valid(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0) {
            lo = 0xa0;
        } else if (c == 0xed) {
            hi = 0x9f;
        }
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0) {
            lo = 0x90;
        } else if (c == 0xf4) {
            hi = 0x8f;
        }
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t k = 2; k < len; k++) {
        if (s[k] < 0x80 || s[k] > 0xbf) {
            return 0;
        }
    }
    return len;
}

size_t log_json_escape(char *out, size_t out_size, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0;
#define PUT(ch)                   \
    do {                          \
        if (o + 1 >= out_size) {  \
            return 0;             \
        }                         \
        out[o++] = (char)(ch);    \
    } while (0)
    PUT('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = u[i];
        if (c == '"' || c == '\\') {
            PUT('\\');
            PUT(c);
        } else if (c == '\n') {
            PUT('\\');
            PUT('n');
        } else if (c == '\r') {
            PUT('\\');
            PUT('r');
        } else if (c == '\t') {
            PUT('\\');
            PUT('t');
        } else if (c >= 0x20 && c < 0x7f) {
            PUT(c);
        } else {
            size_t len = c >= 0x80 ? utf8_valid(u + i, n - i) : 0;
            if (len > 0) {
                for (size_t k = 0; k < len; k++) {
                    PUT(u[i + k]);
                }
                i += len - 1;
            } else {
                PUT('\\');
                PUT('u');
                PUT('0');
                PUT('0');
                PUT(hex[c >> 4]);
                PUT(hex[c & 15]);
            }
        }
    }
    PUT('"');
#undef PUT
    out[o] = '\0';
    return o;
}

size_t log_text_to_json(char *out, size_t out_size, const char *line, size_t n) {
    struct log_cursor c;
    struct log_field f;
    size_t o = 0;
    if (out_size < 3) {
        return 0;
    }
    out[o++] = '{';
    log_cursor_init(&c, line, n);
    while (log_cursor_next(&c, &f)) {
        if (o > 1) {
            out[o++] = ',';
        }
        size_t k = log_json_escape(out + o, out_size - o, f.key, f.key_len);
        if (k == 0 || o + k + 2 >= out_size) {
            return 0;
        }
        o += k;
        out[o++] = ':';
        size_t v = log_json_escape(out + o, out_size - o, f.value, f.value_len);
        if (v == 0 || o + v + 2 >= out_size) {
            return 0;
        }
        o += v;
    }
    out[o++] = '}';
    out[o] = '\0';
    return o;
}
