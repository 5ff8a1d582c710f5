/*
 * log.c - timestamped key=value lines on stderr, one write(2) per line so
 * lines from worker threads never interleave.
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

static const char *const level_names[] = {"error", "warning", "info", "debug"};

void log_set_level(enum log_level level) {
    atomic_store_explicit(&current_level, (int)level, memory_order_relaxed);
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
    /* A failed log write has nowhere to be reported. */
    ssize_t ignored = write(STDERR_FILENO, line, n);
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
