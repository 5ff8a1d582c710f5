/*
 * decimal.c - see decimal.h.
 */
#include "core/decimal.h"

int decimal_parse(const char *p, size_t n, unsigned long long *out, size_t *out_len) {
    unsigned long long v = 0;
    size_t i = 0;
    while (i < n && p[i] >= '0' && p[i] <= '9') {
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (DECIMAL_MAX - d) / 10) {
            return 0;
        }
        v = v * 10 + d;
        i++;
    }
    if (i == 0) {
        return 0;
    }
    *out = v;
    *out_len = i;
    return 1;
}
