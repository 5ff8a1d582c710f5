/*
 * decimal.h - the one decimal number reader for protocol text (SIZE=,
 * BDAT chunk sizes, EHLO SIZE limits): bounded, no locale, no sign, no
 * overflow, no NUL terminator needed.
 */
#ifndef SMTP_TLS_PROXY_DECIMAL_H
#define SMTP_TLS_PROXY_DECIMAL_H

#include <stddef.h>

/* The largest value decimal_parse accepts: 18 digits always fit. */
#define DECIMAL_MAX 999999999999999999ULL

/* decimal_parse reads the run of ASCII digits at the start of |p| (|n|
 * bytes). Returns 1 with the value in *out and the run's length in
 * *out_len when there is at least one digit and the value is at most
 * DECIMAL_MAX; 0 otherwise (nothing written). What follows the run is
 * the caller's to check. */
int decimal_parse(const char *p, size_t n, unsigned long long *out, size_t *out_len);

#endif
