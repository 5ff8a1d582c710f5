/*
 * log.c - timestamped key=value lines, one write(2) per line so lines
 * from worker threads never interleave. With log_format = json the same
 * line is formatted first and then rewritten as one JSON object, so both
 * formats carry the same keys whatever a call site writes.
 *
 * The target (stderr, syslog, a file) is one small state behind a mutex:
 * a line is formatted outside it and written under it, and switching or
 * reopening swaps the state under it, so a line goes whole to the old
 * target or the new one. Writes are short and the kernel serialises
 * writes to one file anyway, so the lock costs nothing that matters.
 */
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/* Set by the main thread (start, reload), read by every worker. */
static atomic_int current_level = LOG_LEVEL_INFO;
static atomic_int current_format = LOG_FORMAT_TEXT;

static const char *const level_names[] = {"error", "warning", "info", "debug"};

/* The syslog identity: openlog keeps the pointer. */
static const char syslog_ident[] = "smtp-tls-proxy";

/* The target; every field under target_lock. |kind| is also readable
 * without it, to format a line for the target before taking the lock. */
static pthread_mutex_t target_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    int facility; /* syslog: LOG_MAIL ... */
    int fd;       /* file: the open file; -1 otherwise */
    char *path;   /* file: its path */
} target = {.facility = LOG_MAIL, .fd = -1};
static atomic_int target_kind = LOG_OUTPUT_STDERR;

void log_set_level(enum log_level level) {
    atomic_store_explicit(&current_level, (int)level, memory_order_relaxed);
}

void log_set_format(enum log_format format) {
    atomic_store_explicit(&current_format, (int)format, memory_order_relaxed);
}

int log_enabled(enum log_level level) {
    return (int)level <= atomic_load_explicit(&current_level, memory_order_relaxed);
}

int log_syslog_facility(int index) {
    static const int codes[] = {LOG_MAIL,   LOG_DAEMON, LOG_LOCAL0, LOG_LOCAL1, LOG_LOCAL2,
                                LOG_LOCAL3, LOG_LOCAL4, LOG_LOCAL5, LOG_LOCAL6, LOG_LOCAL7};
    if (index < 0 || (size_t)index >= sizeof(codes) / sizeof(codes[0])) {
        return -1;
    }
    return codes[index];
}

int log_syslog_priority(enum log_level level) {
    switch (level) {
    case LOG_LEVEL_ERROR:
        return LOG_ERR;
    case LOG_LEVEL_WARNING:
        return LOG_WARNING;
    case LOG_LEVEL_INFO:
        return LOG_INFO;
    case LOG_LEVEL_DEBUG:
        break;
    }
    return LOG_DEBUG;
}

static size_t format_body(char *line, size_t n, enum log_level level, const char *fmt,
                          va_list ap) __attribute__((format(printf, 4, 0)));
static size_t format_line_v(char *out, const struct timeval *when, enum log_level level,
                            enum log_format format, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));
static size_t format_line(char *out, const struct timeval *when, enum log_level level,
                          enum log_format format, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* format_body writes the level and |fmt| (printf) into |line| (size
 * LOG_LINE_MAX) after |n| bytes already there, cut to leave room for
 * the newline. Returns the length, or 0 when |fmt| fails. */
static size_t format_body(char *line, size_t n, enum log_level level, const char *fmt,
                          va_list ap) {
    n += (size_t)snprintf(line + n, LOG_LINE_MAX - n, "level=%s ", level_names[level]);
    int w = vsnprintf(line + n, LOG_LINE_MAX - n, fmt, ap);
    if (w < 0) {
        return 0;
    }
    n += (size_t)w;
    return n > LOG_LINE_MAX - 1 ? LOG_LINE_MAX - 1 : n;
}

static size_t stamp(char *line, const struct timeval *when) {
    if (when == NULL) {
        return 0;
    }
    struct tm tm;
    time_t sec = when->tv_sec;
    gmtime_r(&sec, &tm);
    size_t n = strftime(line, LOG_LINE_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, LOG_LINE_MAX - n, ".%03ldZ ", (long)(when->tv_usec / 1000));
    return n;
}

/* format_line_v formats the text line and writes it, or its JSON form,
 * into |out| (LOG_OUT_MAX bytes) with the newline. Returns the length,
 * or 0 when |fmt| fails. */
static size_t format_line_v(char *out, const struct timeval *when, enum log_level level,
                            enum log_format format, const char *fmt, va_list ap) {
    char line[LOG_LINE_MAX];
    size_t n = format_body(line, stamp(line, when), level, fmt, ap);
    if (n == 0) {
        return 0;
    }
    if (format == LOG_FORMAT_JSON) {
        size_t j = log_text_to_json(out, LOG_OUT_MAX - 1, line, n);
        if (j > 0) { /* always: the buffer holds the worst case */
            out[j++] = '\n';
            return j;
        }
    }
    memcpy(out, line, n);
    out[n++] = '\n';
    return n;
}

static size_t format_line(char *out, const struct timeval *when, enum log_level level,
                          enum log_format format, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t n = format_line_v(out, when, level, format, fmt, ap);
    va_end(ap);
    return n;
}

size_t log_format_line(char *out, const struct timeval *when, enum log_level level,
                       enum log_format format, const char *body) {
    return format_line(out, when, level, format, "%s", body);
}

/* write_all writes the whole line: a short write (a full pipe, a signal)
 * goes on where it stopped. A failure has nowhere to be reported. */
static void write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

void log_msg(enum log_level level, const char *fmt, ...) {
    if (!log_enabled(level)) {
        return;
    }
    enum log_format format =
        (enum log_format)atomic_load_explicit(&current_format, memory_order_relaxed);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char out[LOG_OUT_MAX];
    /* Formatted for the target it will go to: syslog has no timestamp.
     * When the target changed meanwhile (a reload), once more. */
    for (;;) {
        int kind = atomic_load_explicit(&target_kind, memory_order_acquire);
        va_list ap;
        va_start(ap, fmt);
        size_t n = format_line_v(out, kind == LOG_OUTPUT_SYSLOG ? NULL : &tv, level, format,
                                 fmt, ap);
        va_end(ap);
        if (n == 0) {
            return;
        }
        pthread_mutex_lock(&target_lock);
        if (atomic_load_explicit(&target_kind, memory_order_relaxed) != kind) {
            pthread_mutex_unlock(&target_lock);
            continue;
        }
        if (kind == LOG_OUTPUT_SYSLOG) {
            syslog(target.facility | log_syslog_priority(level), "%.*s", (int)(n - 1), out);
        } else {
            write_all(kind == LOG_OUTPUT_FILE ? target.fd : STDERR_FILENO, out, n);
        }
        pthread_mutex_unlock(&target_lock);
        return;
    }
}

/* ---- the target ---- */

static int open_log_file(const char *path, char *err, size_t errlen) {
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open log_file %s: %s", path, strerror(errno));
    }
    return fd;
}

enum log_output log_output_in_use(void) {
    return (enum log_output)atomic_load_explicit(&target_kind, memory_order_acquire);
}

int log_set_target(enum log_output output, int facility, const char *path, char *err,
                   size_t errlen) {
    int code = LOG_MAIL;
    if (output == LOG_OUTPUT_SYSLOG && (code = log_syslog_facility(facility)) < 0) {
        snprintf(err, errlen, "unknown log facility %d", facility);
        return 0;
    }
    if (output == LOG_OUTPUT_FILE && path == NULL) {
        snprintf(err, errlen, "log_target = file needs log_file");
        return 0;
    }
    /* Only this thread changes the target: reading it needs no lock. */
    enum log_output kind = log_output_in_use();
    if (kind == output && (output == LOG_OUTPUT_STDERR ||
                           (output == LOG_OUTPUT_SYSLOG && target.facility == code) ||
                           (output == LOG_OUTPUT_FILE && strcmp(target.path, path) == 0))) {
        return 1;
    }
    int fd = -1;
    char *copy = NULL;
    if (output == LOG_OUTPUT_FILE) {
        if ((fd = open_log_file(path, err, errlen)) < 0) {
            return 0;
        }
        if ((copy = strdup(path)) == NULL) {
            close(fd);
            snprintf(err, errlen, "out of memory");
            return 0;
        }
    }
    pthread_mutex_lock(&target_lock);
    int old_fd = target.fd;
    char *old_path = target.path;
    if (kind == LOG_OUTPUT_SYSLOG) {
        closelog();
    }
    if (output == LOG_OUTPUT_SYSLOG) {
        openlog(syslog_ident, LOG_PID | LOG_NDELAY, code);
    }
    target.facility = code;
    target.fd = fd;
    target.path = copy;
    atomic_store_explicit(&target_kind, (int)output, memory_order_release);
    pthread_mutex_unlock(&target_lock);
    if (old_fd >= 0) {
        close(old_fd);
    }
    free(old_path);
    return 1;
}

int log_reopen(char *err, size_t errlen) {
    if (log_output_in_use() != LOG_OUTPUT_FILE) {
        return 1;
    }
    int fd = open_log_file(target.path, err, errlen);
    if (fd < 0) {
        return 0;
    }
    pthread_mutex_lock(&target_lock);
    int old_fd = target.fd;
    target.fd = fd;
    pthread_mutex_unlock(&target_lock);
    close(old_fd);
    return 1;
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
