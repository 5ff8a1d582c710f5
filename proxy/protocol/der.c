/*
 * der.c - reading DER: elements, GeneralizedTime, certificate parts.
 */
#include "protocol/der.h"

/* read_element reads the next element of |in| into its tag, contents and
 * whole, without moving |in|. Returns the element's length, or 0. */
static size_t read_element(const struct der *in, uint8_t *tag, struct der *content) {
    if (in->n < 2) {
        return 0;
    }
    uint8_t t = in->p[0];
    if ((t & 0x1f) == 0x1f) {
        return 0; /* high tag numbers: nothing we read has them */
    }
    size_t header = 2, len = in->p[1];
    if (len & 0x80) {
        size_t octets = len & 0x7f;
        /* 0: the indefinite form, which DER forbids; more than 4: more
         * than anything we could hold. */
        if (octets == 0 || octets > 4 || in->n < 2 + octets || in->p[2] == 0) {
            return 0;
        }
        len = 0;
        for (size_t i = 0; i < octets; i++) {
            len = (len << 8) | in->p[2 + i];
        }
        if (len < 0x80) {
            return 0; /* the short form was due */
        }
        header += octets;
    }
    if (len > in->n - header) {
        return 0;
    }
    *tag = t;
    content->p = in->p + header;
    content->n = len;
    return header + len;
}

int der_get_element(struct der *in, uint8_t tag, struct der *content, struct der *whole) {
    uint8_t t;
    struct der c;
    size_t total = read_element(in, &t, &c);
    if (total == 0 || t != tag) {
        return 0;
    }
    if (content != NULL) {
        *content = c;
    }
    if (whole != NULL) {
        whole->p = in->p;
        whole->n = total;
    }
    in->p += total;
    in->n -= total;
    return 1;
}

int der_get(struct der *in, uint8_t tag, struct der *content) {
    return der_get_element(in, tag, content, NULL);
}

int der_skip(struct der *in) {
    uint8_t t;
    struct der c;
    size_t total = read_element(in, &t, &c);
    if (total == 0) {
        return 0;
    }
    in->p += total;
    in->n -= total;
    return 1;
}

int der_peek(const struct der *in, uint8_t tag) {
    return in->n > 0 && in->p[0] == tag;
}

/* digits reads |n| decimal digits at |p|; -1 when one is not a digit. */
static int digits(const uint8_t *p, int n) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

static int is_leap(int y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* leap_days_before counts the leap years in 1 .. y-1. */
static int64_t leap_days_before(int y) {
    int64_t p = y - 1;
    return p / 4 - p / 100 + p / 400;
}

int der_generalized_time(const struct der *content, int64_t *out) {
    static const int month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const uint8_t *p = content->p;
    size_t n = content->n;
    if (n < 15 || p[n - 1] != 'Z') {
        return 0;
    }
    if (n > 15) {
        /* Fractional seconds: a dot and at least one digit. */
        if (p[14] != '.' || n < 17) {
            return 0;
        }
        for (size_t i = 15; i < n - 1; i++) {
            if (p[i] < '0' || p[i] > '9') {
                return 0;
            }
        }
    }
    int year = digits(p, 4), mon = digits(p + 4, 2), day = digits(p + 6, 2);
    int hour = digits(p + 8, 2), min = digits(p + 10, 2), sec = digits(p + 12, 2);
    if (year < 1 || mon < 1 || mon > 12 || day < 1 || hour < 0 || hour > 23 || min < 0 ||
        min > 59 || sec < 0 || sec > 59) {
        return 0;
    }
    int mdays = month_days[mon - 1] + (mon == 2 && is_leap(year));
    if (day > mdays) {
        return 0;
    }
    int64_t days = 365 * (int64_t)(year - 1970) + leap_days_before(year) - leap_days_before(1970);
    for (int m = 1; m < mon; m++) {
        days += month_days[m - 1] + (m == 2 && is_leap(year));
    }
    days += day - 1;
    *out = days * 86400 + hour * 3600 + min * 60 + sec;
    return 1;
}

int der_spki_parse(const uint8_t *der, size_t len, struct der *public_key) {
    struct der in = {der, len}, spki, bits;
    if (!der_get(&in, DER_SEQUENCE, &spki) || in.n != 0 ||
        !der_get(&spki, DER_SEQUENCE, NULL) || !der_get(&spki, DER_BIT_STRING, &bits) ||
        spki.n != 0 || bits.n < 1 || bits.p[0] != 0) {
        return 0; /* a key is whole octets: no unused bits */
    }
    public_key->p = bits.p + 1;
    public_key->n = bits.n - 1;
    return 1;
}

int der_cert_parse(const uint8_t *der, size_t len, struct der_cert *out) {
    struct der in = {der, len}, cert, tbs;
    if (!der_get(&in, DER_SEQUENCE, &cert) || in.n != 0 || !der_get(&cert, DER_SEQUENCE, &tbs)) {
        return 0;
    }
    if (der_peek(&tbs, DER_CONTEXT_CONSTRUCTED(0)) && !der_skip(&tbs)) {
        return 0; /* version */
    }
    if (!der_get(&tbs, DER_INTEGER, &out->serial) || out->serial.n == 0 ||
        !der_get(&tbs, DER_SEQUENCE, NULL) ||                      /* signature */
        !der_get_element(&tbs, DER_SEQUENCE, NULL, &out->issuer) || /* issuer */
        !der_get(&tbs, DER_SEQUENCE, NULL) ||                      /* validity */
        !der_get(&tbs, DER_SEQUENCE, NULL) ||                      /* subject */
        !der_get_element(&tbs, DER_SEQUENCE, NULL, &out->spki)) {
        return 0;
    }
    return der_spki_parse(out->spki.p, out->spki.n, &out->public_key);
}
