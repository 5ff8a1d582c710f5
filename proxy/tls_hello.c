/*
 * tls_hello.c - ClientHello extension parsing for certificate choice.
 */
#include "tls_hello.h"

static unsigned get16(const uint8_t *p) {
    return (unsigned)p[0] << 8 | p[1];
}

/* list16_has walks a vector of 16-bit values with a |prefix|-byte length
 * and says whether |match| accepts one of them. */
static int list16_has(const uint8_t *p, size_t len, size_t prefix, int (*match)(unsigned)) {
    if (p == NULL || len < prefix) {
        return 0;
    }
    size_t body = prefix == 2 ? get16(p) : p[0];
    if (body + prefix > len || body % 2 != 0) {
        return 0;
    }
    for (size_t i = prefix; i + 1 < prefix + body; i += 2) {
        if (match(get16(p + i))) {
            return 1;
        }
    }
    return 0;
}

static int is_ecdsa_sigalg(unsigned v) {
    /* ecdsa_secp256r1_sha256, _secp384r1_sha384, _secp521r1_sha512, ecdsa_sha1 */
    return v == 0x0403 || v == 0x0503 || v == 0x0603 || v == 0x0203;
}

static int is_tls13(unsigned v) {
    return v == 0x0304;
}

static int is_ecdhe_ecdsa_suite(unsigned v) {
    switch (v) {
    case 0xC009: case 0xC00A: case 0xC023: case 0xC024: /* CBC */
    case 0xC02B: case 0xC02C: case 0xCCA9:              /* AEAD */
        return 1;
    }
    return 0;
}

int tls_hello_accepts_ecdsa(const uint8_t *sigalgs, size_t sigalgs_len,
                            const uint8_t *versions, size_t versions_len,
                            const uint8_t *suites, size_t suites_len) {
    int sigalg_ok = sigalgs == NULL || list16_has(sigalgs, sigalgs_len, 2, is_ecdsa_sigalg);
    if (!sigalg_ok) {
        return 0;
    }
    if (sigalgs != NULL && list16_has(versions, versions_len, 1, is_tls13)) {
        return 1;
    }
    /* The suite list is given without its length prefix. */
    for (size_t i = 0; i + 1 < suites_len; i += 2) {
        if (is_ecdhe_ecdsa_suite(get16(suites + i))) {
            return 1;
        }
    }
    return 0;
}
