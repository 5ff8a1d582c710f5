/*
 * when.c - ISO 8601 and RFC 5322 times as milliseconds since the epoch,
 * by the civil-from-days arithmetic (no timegm, no TZ).
 */
#include "report/when.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* days_from_civil counts days from 1970-01-01 to y-m-d (proleptic
 * Gregorian; H. Hinnant's algorithm). */
static long long days_from_civil(long long y, unsigned m, unsigned d) {
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

static int leap(long long y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned month_days(long long y, unsigned m) {
    static const unsigned char days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : days[m - 1];
}

/* digits reads exactly |count| decimal digits at s[*i]. */
static int digits(const char *s, size_t n, size_t *i, unsigned count, unsigned *out) {
    unsigned v = 0;
    for (unsigned k = 0; k < count; k++) {
        if (*i >= n || s[*i] < '0' || s[*i] > '9') {
            return 0;
        }
        v = v * 10 + (unsigned)(s[(*i)++] - '0');
    }
    *out = v;
    return 1;
}

static int make_time(long long y, unsigned mo, unsigned d, unsigned h, unsigned mi, unsigned sec,
                     unsigned ms, long zone_minutes, long long *out) {
    if (mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo) || h > 23 || mi > 59 || sec > 60) {
        return 0;
    }
    long long t = days_from_civil(y, mo, d) * 86400 + h * 3600LL + mi * 60LL + sec;
    t -= zone_minutes * 60;
    *out = t * 1000 + ms;
    return 1;
}

int when_parse_iso8601(const char *s, size_t n, long long *out) {
    size_t i = 0;
    unsigned y, mo, d, h = 0, mi = 0, sec = 0, ms = 0;
    long zone = 0;
    if (!digits(s, n, &i, 4, &y) || i >= n || s[i++] != '-' || !digits(s, n, &i, 2, &mo) ||
        i >= n || s[i++] != '-' || !digits(s, n, &i, 2, &d)) {
        return 0;
    }
    if (i < n && (s[i] == 'T' || s[i] == 't' || s[i] == ' ')) {
        i++;
        if (!digits(s, n, &i, 2, &h) || i >= n || s[i++] != ':' || !digits(s, n, &i, 2, &mi)) {
            return 0;
        }
        if (i < n && s[i] == ':') {
            i++;
            if (!digits(s, n, &i, 2, &sec)) {
                return 0;
            }
            if (i < n && (s[i] == '.' || s[i] == ',')) {
                i++;
                unsigned scale = 100, got = 0;
                while (i < n && s[i] >= '0' && s[i] <= '9') {
                    ms += (unsigned)(s[i++] - '0') * scale;
                    scale /= 10;
                    got++;
                }
                if (got == 0) {
                    return 0;
                }
            }
        }
        if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
            i++;
        } else if (i < n && (s[i] == '+' || s[i] == '-')) {
            int sign = s[i++] == '-' ? -1 : 1;
            unsigned zh, zm = 0;
            if (!digits(s, n, &i, 2, &zh)) {
                return 0;
            }
            if (i < n && s[i] == ':') {
                i++;
            }
            if (i < n && !digits(s, n, &i, 2, &zm)) {
                return 0;
            }
            if (zh > 23 || zm > 59) {
                return 0;
            }
            zone = sign * (long)(zh * 60 + zm);
        }
    }
    if (i != n) {
        return 0;
    }
    return make_time(y, mo, d, h, mi, sec, ms, zone, out);
}

static size_t skip_cfws(const char *s, size_t n, size_t i) {
    for (;;) {
        while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) {
            i++;
        }
        if (i < n && s[i] == '(') {
            int depth = 0;
            while (i < n) {
                if (s[i] == '\\' && i + 1 < n) {
                    i += 2;
                    continue;
                }
                if (s[i] == '(') {
                    depth++;
                } else if (s[i] == ')' && --depth == 0) {
                    i++;
                    break;
                }
                i++;
            }
            continue;
        }
        return i;
    }
}

static int number(const char *s, size_t n, size_t *i, unsigned min_digits, unsigned max_digits,
                  unsigned *out) {
    unsigned v = 0, got = 0;
    while (*i < n && s[*i] >= '0' && s[*i] <= '9' && got < max_digits) {
        v = v * 10 + (unsigned)(s[(*i)++] - '0');
        got++;
    }
    if (got < min_digits) {
        return 0;
    }
    *out = v;
    return 1;
}

int when_parse_rfc5322(const char *s, size_t n, long long *out) {
    static const char *const months[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                         "jul", "aug", "sep", "oct", "nov", "dec"};
    static const struct {
        const char *name;
        long minutes;
    } zones[] = {{"UT", 0},        {"UTC", 0},       {"GMT", 0},       {"Z", 0},
                 {"EST", -5 * 60}, {"EDT", -4 * 60}, {"CST", -6 * 60}, {"CDT", -5 * 60},
                 {"MST", -7 * 60}, {"MDT", -6 * 60}, {"PST", -8 * 60}, {"PDT", -7 * 60}};
    size_t i = skip_cfws(s, n, 0);
    /* An optional day name and comma. */
    size_t j = i;
    while (j < n && ((s[j] >= 'A' && s[j] <= 'Z') || (s[j] >= 'a' && s[j] <= 'z'))) {
        j++;
    }
    if (j > i) {
        j = skip_cfws(s, n, j);
        if (j >= n || s[j] != ',') {
            return 0;
        }
        i = skip_cfws(s, n, j + 1);
    }
    unsigned d, y, h, mi, sec = 0;
    if (!number(s, n, &i, 1, 2, &d)) {
        return 0;
    }
    i = skip_cfws(s, n, i);
    if (i + 3 > n) {
        return 0;
    }
    unsigned mo = 0;
    for (unsigned k = 0; k < 12; k++) {
        if (strncasecmp(s + i, months[k], 3) == 0) {
            mo = k + 1;
        }
    }
    if (mo == 0) {
        return 0;
    }
    i = skip_cfws(s, n, i + 3);
    if (!number(s, n, &i, 2, 4, &y)) {
        return 0;
    }
    if (y < 50) { /* RFC 5322 4.3: two-digit years */
        y += 2000;
    } else if (y < 1000) {
        y += 1900;
    }
    i = skip_cfws(s, n, i);
    if (!number(s, n, &i, 1, 2, &h) || i >= n || s[i++] != ':' ||
        !number(s, n, &i, 2, 2, &mi)) {
        return 0;
    }
    if (i < n && s[i] == ':') {
        i++;
        if (!number(s, n, &i, 2, 2, &sec)) {
            return 0;
        }
    }
    i = skip_cfws(s, n, i);
    long zone = 0;
    if (i < n && (s[i] == '+' || s[i] == '-')) {
        int sign = s[i++] == '-' ? -1 : 1;
        unsigned z;
        size_t start = i;
        if (!number(s, n, &i, 4, 4, &z) || i - start != 4 || z % 100 > 59) {
            return 0;
        }
        zone = sign * (long)((z / 100) * 60 + z % 100);
    } else {
        size_t k = i;
        while (k < n && ((s[k] >= 'A' && s[k] <= 'Z') || (s[k] >= 'a' && s[k] <= 'z'))) {
            k++;
        }
        if (k == i) {
            return 0;
        }
        for (size_t z = 0; z < sizeof(zones) / sizeof(zones[0]); z++) {
            if (strlen(zones[z].name) == k - i && strncasecmp(s + i, zones[z].name, k - i) == 0) {
                zone = zones[z].minutes;
            }
        }
        i = k;
    }
    if (skip_cfws(s, n, i) != n) {
        return 0;
    }
    return make_time(y, mo, d, h, mi, sec, 0, zone, out);
}

void when_format(long long ms, char *out, size_t out_size) {
    long long t = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    long long days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
    long long secs = t - days * 86400;
    /* civil_from_days (H. Hinnant) */
    long long z = days + 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long y = (long long)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned d = doy - (153 * mp + 2) / 5 + 1;
    unsigned m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;
    snprintf(out, out_size, "%04lld-%02u-%02uT%02lld:%02lld:%02lldZ", y, m, d, secs / 3600,
             secs / 60 % 60, secs % 60);
}
