/*
 * unit.h - a minimal unit-test runner for the pure modules.
 *
 * Each test is a function registered with UNIT_TEST(name); CHECK and
 * CHECK_* record a failure with file:line and go on, so one run shows
 * every broken expectation. The runner prints one line per failing test
 * and ends with "unit: N passed, N failed".
 */
#ifndef SMTP_TLS_PROXY_UNIT_H
#define SMTP_TLS_PROXY_UNIT_H

#include <stddef.h>
#include <string.h>

struct unit_test {
    const char *name;
    void (*fn)(void);
    struct unit_test *next;
};

void unit_register(struct unit_test *t);
void unit_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* unit_show_bytes renders bytes for failure messages (static buffer). */
const char *unit_show_bytes(const char *p, size_t n);

#define UNIT_TEST(name)                                                  \
    static void name(void);                                              \
    __attribute__((constructor)) static void register_##name(void) {     \
        static struct unit_test t = {#name, name, NULL};                 \
        unit_register(&t);                                               \
    }                                                                    \
    static void name(void)

#define CHECK(cond)                                                      \
    do {                                                                 \
        if (!(cond)) {                                                   \
            unit_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);           \
        }                                                                \
    } while (0)

#define CHECK_INT(got, want)                                             \
    do {                                                                 \
        long long g_ = (long long)(got), w_ = (long long)(want);         \
        if (g_ != w_) {                                                  \
            unit_fail(__FILE__, __LINE__, "%s == %lld, want %lld", #got, g_, w_); \
        }                                                                \
    } while (0)

#define CHECK_STR(got, want)                                             \
    do {                                                                 \
        const char *g_ = (got), *w_ = (want);                            \
        if (g_ == NULL || strcmp(g_, w_) != 0) {                         \
            unit_fail(__FILE__, __LINE__, "%s == \"%s\", want \"%s\"", #got, \
                      g_ ? g_ : "(null)", w_);                           \
        }                                                                \
    } while (0)

/* CHECK_MEM compares |n| bytes at |got| with the string |want|. */
#define CHECK_MEM(got, n, want)                                          \
    do {                                                                 \
        const char *g_ = (const char *)(got), *w_ = (want);              \
        size_t n_ = (n);                                                 \
        if (n_ != strlen(w_) || memcmp(g_, w_, n_) != 0) {               \
            unit_fail(__FILE__, __LINE__, "%s:\n      got  %s", #got,     \
                      unit_show_bytes(g_, n_));                          \
            unit_fail(__FILE__, __LINE__, "      want %s",               \
                      unit_show_bytes(w_, strlen(w_)));                  \
        }                                                                \
    } while (0)

#endif
