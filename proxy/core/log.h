/*
 * log.h - one-line, key=value logging to stderr, syslog or a file.
 *
 * Every line starts with a timestamp and a level, then free-form
 * key=value fields (syslog lines leave the timestamp to syslog). Values
 * that come from the network are passed through log_sanitize first so a
 * hostile peer cannot forge log lines.
 */
#ifndef SMTP_TLS_PROXY_LOG_H
#define SMTP_TLS_PROXY_LOG_H

#include <stddef.h>
#include <sys/time.h>

enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARNING = 1,
    LOG_LEVEL_INFO = 2,
    LOG_LEVEL_DEBUG = 3,
};

/* How a line is written ([proxy] log_format): text is
 * "TIMESTAMP level=... key=value ..."; json is one object per line with
 * the same keys, the timestamp as "time" (log_text_to_json). */
enum log_format {
    LOG_FORMAT_TEXT = 0,
    LOG_FORMAT_JSON = 1,
};

void log_set_level(enum log_level level);
int log_enabled(enum log_level level);
void log_set_format(enum log_format format);

/* Where lines go ([proxy] log_target; the values of config.h's enum
 * log_target, which this layer cannot include). */
enum log_output {
    LOG_OUTPUT_STDERR = 0,
    LOG_OUTPUT_SYSLOG = 1, /* openlog("smtp-tls-proxy", LOG_PID | LOG_NDELAY, facility) */
    LOG_OUTPUT_FILE = 2,   /* appended to a file; log_reopen after logrotate */
};

/* log_set_target sends every later line to |output|: |facility| is the
 * index of [proxy] log_facility (log_syslog_facility), used by syslog;
 * |path| is the file, used by file. The new target is opened before the
 * old one is let go, so a failure (0, with |err|) keeps the old target.
 * The target in use asked for again changes nothing (1): reopening the
 * file is log_reopen's job. The file is opened O_APPEND | O_CLOEXEC,
 * mode 0640, with the rights of the caller at that moment. */
int log_set_target(enum log_output output, int facility, const char *path, char *err,
                   size_t errlen);

/* log_reopen opens the file of a file target again (logrotate renamed
 * it: SIGUSR1) and writes on to the new one; other targets: nothing.
 * Every line goes whole to the old file or to the new one, none is lost.
 * 0 with |err| when the file cannot be opened: the old one stays.
 *
 * log_set_target and log_reopen are called by one thread (the main
 * thread); log_msg by any. */
int log_reopen(char *err, size_t errlen);

/* log_output_in_use: the target lines go to now. */
enum log_output log_output_in_use(void);

/* ---- pure parts of the writer ---- */

/* The longest text line, newline included (longer ones are cut), and
 * the buffer log_format_line needs for any line in either format. */
#define LOG_LINE_MAX 2048
#define LOG_OUT_MAX (6 * LOG_LINE_MAX + 16)

/* log_format_line writes the line of |body| at |level|: "TIMESTAMP
 * level=NAME BODY\n" with the UTC time |when| (milliseconds), or, with
 * |when| NULL, "level=NAME BODY\n" (syslog stamps lines itself). The
 * text line is cut to LOG_LINE_MAX; with LOG_FORMAT_JSON it is then
 * rewritten by log_text_to_json. |out| holds LOG_OUT_MAX bytes; returns
 * the length (the newline included, no NUL). */
size_t log_format_line(char *out, const struct timeval *when, enum log_level level,
                       enum log_format format, const char *body);

/* log_syslog_facility maps [proxy] log_facility's index (mail, daemon,
 * local0 .. local7) to LOG_MAIL ...; -1 for anything else. */
int log_syslog_facility(int index);

/* log_syslog_priority maps a level to LOG_ERR, LOG_WARNING, LOG_INFO or
 * LOG_DEBUG. */
int log_syslog_priority(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)                                \
    do {                                              \
        if (log_enabled(LOG_LEVEL_DEBUG)) {           \
            log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__);    \
        }                                             \
    } while (0)

/* log_sanitize copies at most |n| bytes of |src| into |out| (size
 * |out_size|, always NUL-terminated), replacing every byte that is not
 * printable ASCII, and the quote and backslash, with '?'. Returns out. */
char *log_sanitize(char *out, size_t out_size, const char *src, size_t n);

/* ---- reading a text line back as fields (pure; the JSON writer and
 * smtp-tls-proxy report read lines the same way) ----
 *
 * A text line is: an optional first token without '=' (the timestamp),
 * the field "time"; then key=value tokens, a key being letters, digits,
 * '_', '-' and '.'; a value is everything up to the next blank, or, when
 * it starts with '"', everything up to the closing '"' (the first '"'
 * that ends the line or is followed by a blank and a key=value token, so
 * a quote inside a quoted value survives). The first token that is not
 * key=value starts free text ("event=x file=y: why"): it and the rest
 * of the line are the field "msg", and the ':' that ended the value
 * before it is not part of that value. Trailing CR/LF are ignored. */
struct log_field {
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
};

struct log_cursor {
    const char *line;
    size_t n, pos;
    int started;
};

void log_cursor_init(struct log_cursor *c, const char *line, size_t n);
/* log_cursor_next gives the next field: 1 and *f, or 0 at the end. The
 * pointers in *f point into the line. */
int log_cursor_next(struct log_cursor *c, struct log_field *f);

/* log_json_escape writes the JSON string literal (quotes included) of
 * the |n| bytes at |s| into |out| (size |out_size|, NUL-terminated):
 * '"' and '\\' escaped, control bytes and DEL as \n, \r, \t or \u00XX,
 * valid UTF-8 as is, and every byte of an invalid sequence as \u00XX.
 * Returns the length, or 0 when |out| is too small (6 * n + 3 always
 * suffices). */
size_t log_json_escape(char *out, size_t out_size, const char *s, size_t n);

/* log_text_to_json writes the text line |line| (|n| bytes) as one JSON
 * object of string values, in the order of the fields, without a
 * newline. Returns the length, or 0 when |out| is too small (6 * n +
 * 16 always suffices). */
size_t log_text_to_json(char *out, size_t out_size, const char *line, size_t n);

#endif
