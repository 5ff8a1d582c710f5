/*
 * log.h - one-line, key=value logging to stderr.
 *
 * Every line starts with a timestamp and a level, then free-form
 * key=value fields. Values that come from the network are passed through
 * log_sanitize first so a hostile peer cannot forge log lines.
 */
#ifndef SMTP_TLS_PROXY_LOG_H
#define SMTP_TLS_PROXY_LOG_H

#include <stddef.h>

enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARNING = 1,
    LOG_LEVEL_INFO = 2,
    LOG_LEVEL_DEBUG = 3,
};

void log_set_level(enum log_level level);
int log_enabled(enum log_level level);

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

#endif
