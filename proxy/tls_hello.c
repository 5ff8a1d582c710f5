/*
 * tls_hello.c - ClientHello extension parsing for certificate choice.
 * Runs in the select-certificate callback on every worker thread: no
 * state outside the arguments.
 */
#include "tls_hello.h"

static unsigned get16(const uint8_t *p) {
    return (unsigned)p[0] << 8 | p[1];
}

/* list_has says whether a vector of 16-bit values with a |prefix|-byte
 * length (1 or 2) holds one of the |n| values in |set|. A malformed
 * vector holds nothing. */
static int list_has(const uint8_t *p, size_t len, size_t prefix, const unsigned *set,
                    size_t n) {
    if (p == NULL || len < prefix) {
        return 0;
    }
    size_t body = prefix == 2 ? get16(p) : p[0];
    if (body + prefix > len || body % 2 != 0) {
        return 0;
    }
    for (size_t i = prefix; i + 1 < prefix + body; i += 2) {
        unsigned v = get16(p + i);
        for (size_t k = 0; k < n; k++) {
            if (v == set[k]) {
                return 1;
            }
        }
    }
    return 0;
}

/* ecdsa_secp256r1_sha256, _secp384r1_sha384, _secp521r1_sha512, ecdsa_sha1 */
static const unsigned ecdsa_sigalgs[] = {0x0403, 0x0503, 0x0603, 0x0203};
static const unsigned tls13[] = {0x0304};
/* ECDHE_ECDSA suites: CBC, then AEAD. */
static const unsigned ecdhe_ecdsa_suites[] = {0xC009, 0xC00A, 0xC023, 0xC024,
                                              0xC02B, 0xC02C, 0xCCA9};
/* The TLS 1.3 signature scheme and the named group of each curve. */
static const unsigned curve_sigalg13[] = {0x0403, 0x0503, 0x0603};
static const unsigned curve_group[] = {23, 24, 25};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int suites_have_ecdhe_ecdsa(const struct tls_hello_view *h) {
    for (size_t i = 0; i + 1 < h->suites_len; i += 2) {
        unsigned v = get16(h->suites + i);
        for (size_t k = 0; k < COUNT(ecdhe_ecdsa_suites); k++) {
            if (v == ecdhe_ecdsa_suites[k]) {
                return 1;
            }
        }
    }
    return 0;
}

int tls_hello_accepts_ecdsa(const struct tls_hello_view *h, enum ecdsa_curve curve) {
    if (h->sigalgs != NULL && list_has(h->versions, h->versions_len, 1, tls13, 1)) {
        return list_has(h->sigalgs, h->sigalgs_len, 2, &curve_sigalg13[curve], 1);
    }
    if (h->sigalgs != NULL &&
        !list_has(h->sigalgs, h->sigalgs_len, 2, ecdsa_sigalgs, COUNT(ecdsa_sigalgs))) {
        return 0;
    }
    if (h->groups != NULL && !list_has(h->groups, h->groups_len, 2, &curve_group[curve], 1)) {
        return 0;
    }
    return suites_have_ecdhe_ecdsa(h);
}
