/*
 * when.h - the times smtp-tls-proxy report compares: ISO 8601 (the log
 * timestamps, --since and --until) and RFC 5322 dates (the end of a
 * Received header). Pure; no I/O, no time zone database.
 */
#ifndef SMTP_TLS_PROXY_WHEN_H
#define SMTP_TLS_PROXY_WHEN_H

#include <stddef.h>

/* when_parse_iso8601 reads |n| bytes of "YYYY-MM-DD", optionally
 * followed by 'T' or a blank and "HH:MM", ":SS", a fraction, and a zone
 * ("Z", "+HH:MM", "+HHMM", "+HH"; none means UTC, as the proxy logs).
 * Sets *ms to milliseconds since 1970-01-01T00:00:00Z. Returns 1, or 0
 * when the text is not such a time (or has anything after it). */
int when_parse_iso8601(const char *s, size_t n, long long *ms);

/* when_parse_rfc5322 reads an RFC 5322 3.3 date-time ("Tue, 14 May 2024
 * 10:00:00 +0000 (UTC)": the day name, the seconds and a trailing
 * comment are optional; obsolete zones UT, GMT, Z and the US zones are
 * understood, other letters mean +0000). Returns 1 and *ms, or 0. */
int when_parse_rfc5322(const char *s, size_t n, long long *ms);

/* when_format writes |ms| as "YYYY-MM-DDTHH:MM:SSZ" into |out| (at
 * least 32 bytes). */
void when_format(long long ms, char *out, size_t out_size);

#endif
