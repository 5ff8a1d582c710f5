/*
 * tls_hello.c - ClientHello extension parsing for certificate choice.
 * Runs in the select-certificate callback on every worker thread: no
 * state outside the arguments.
 */
#include "protocol/tls_hello.h"

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
/* The TLS 1.3 signature scheme and the named group of each curve. */
static const unsigned curve_sigalg13[] = {0x0403, 0x0503, 0x0603};
static const unsigned curve_group[] = {23, 24, 25};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

#define SSL3 0x0300u
#define TLS12 0x0303u

/* tls12_version is the version a client negotiates when TLS 1.3 is not
 * in play: its highest offered one up to TLS 1.2, read as BoringSSL reads
 * it (supported_versions when sent, else legacy_version, capped at TLS
 * 1.2). 0: none, or a malformed supported_versions (the handshake fails
 * then anyway). */
static unsigned tls12_version(const struct tls_hello_view *h) {
    if (h->versions == NULL) {
        unsigned v = h->legacy_version > TLS12 ? TLS12 : h->legacy_version;
        return v >= SSL3 ? v : 0;
    }
    if (h->versions_len < 1) {
        return 0;
    }
    size_t body = h->versions[0];
    if (body + 1 > h->versions_len || body % 2 != 0) {
        return 0;
    }
    unsigned best = 0;
    for (size_t i = 1; i + 1 < 1 + body; i += 2) {
        unsigned v = get16(h->versions + i);
        if (v >= SSL3 && v <= TLS12 && v > best) {
            best = v; /* GREASE (0x?A?A) and TLS 1.3 are above TLS 1.2 */
        }
    }
    return best;
}

/* offers_listener_suite says whether the client offers one of the
 * listener's |n| ECDHE_ECDSA suites that works at |version|. */
static int offers_listener_suite(const struct tls_hello_view *h, unsigned version,
                                 const struct tls_suite *listener, size_t n) {
    for (size_t i = 0; i + 1 < h->suites_len; i += 2) {
        unsigned v = get16(h->suites + i);
        for (size_t k = 0; k < n; k++) {
            if (v == listener[k].id && listener[k].min_version <= version) {
                return 1;
            }
        }
    }
    return 0;
}

int tls_hello_accepts_ecdsa(const struct tls_hello_view *h, enum ecdsa_curve curve,
                            const struct tls_suite *ecdsa_suites, size_t n) {
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
    unsigned version = tls12_version(h);
    return version != 0 && offers_listener_suite(h, version, ecdsa_suites, n);
}
