/*
 * test_tls_hello.c - tls_hello.h: can a client authenticate an ECDSA
 * certificate? Extension bodies are byte-exact as on the wire:
 *   signature_algorithms: 2-byte length, then 2-byte schemes
 *   supported_versions (ClientHello): 1-byte length, then 2-byte versions
 *   cipher suites: 2-byte suites, no length prefix (SSL_CLIENT_HELLO)
 * Every call copies its inputs into heap blocks of exactly their size, so
 * the sanitizer build catches any read past the end.
 */
#include <stdint.h>
#include <stdlib.h>

#include "tls_hello.h"
#include "unit.h"

/* copy_exact copies |n| bytes into a block of exactly |n| bytes (NULL for
 * NULL). malloc(0) gives a non-NULL block of no bytes with glibc and the
 * sanitizer, so a present but empty extension stays present. */
static uint8_t empty_block[1];

static uint8_t *copy_exact(const uint8_t *p, size_t n) {
    if (p == NULL) {
        return NULL;
    }
    uint8_t *q = malloc(n);
    if (q == NULL) {
        return n == 0 ? empty_block : NULL;
    }
    if (n > 0) {
        memcpy(q, p, n);
    }
    return q;
}

/* accepts_groups runs the check for a key on |curve| with every block
 * copied into an allocation of exactly its size (ASan sees overreads). */
static int accepts_groups(const uint8_t *sa, size_t sa_len, const uint8_t *sv, size_t sv_len,
                          const uint8_t *gr, size_t gr_len, const uint8_t *cs, size_t cs_len,
                          enum ecdsa_curve curve) {
    struct tls_hello_view h = {
        .sigalgs = copy_exact(sa, sa_len), .sigalgs_len = sa_len,
        .versions = copy_exact(sv, sv_len), .versions_len = sv_len,
        .groups = copy_exact(gr, gr_len), .groups_len = gr_len,
        .suites = copy_exact(cs, cs_len), .suites_len = cs_len,
    };
    int r = tls_hello_accepts_ecdsa(&h, curve);
    const uint8_t *blocks[4] = {h.sigalgs, h.versions, h.groups, h.suites};
    for (int i = 0; i < 4; i++) {
        if (blocks[i] != empty_block) {
            free((void *)blocks[i]);
        }
    }
    return r;
}

/* accepts: a P-256 key, no supported_groups extension. */
static int accepts(const uint8_t *sa, size_t sa_len, const uint8_t *sv, size_t sv_len,
                   const uint8_t *cs, size_t cs_len) {
    return accepts_groups(sa, sa_len, sv, sv_len, NULL, 0, cs, cs_len, ECDSA_P256);
}

#define B(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})
#define NONE NULL, 0

/* supported_versions offering TLS 1.3 and 1.2 */
#define V13 B(0x04, 0x03, 0x04, 0x03, 0x03)
/* TLS 1.3 suites only */
#define S13 B(0x13, 0x01, 0x13, 0x02, 0x13, 0x03)

/* ---- TLS 1.3 ---- */

UNIT_TEST(tls_hello_tls13_with_ecdsa_p256_sigalg_accepts) {
    CHECK_INT(accepts(B(0x00, 0x02, 0x04, 0x03), V13, S13), 1);
}

UNIT_TEST(tls_hello_tls13_with_ecdsa_among_others_accepts) {
    /* a typical browser list: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256,
     * rsa_pkcs1_sha256, ecdsa_secp384r1_sha384, ... */
    CHECK_INT(accepts(B(0x00, 0x10, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01, 0x05, 0x03, 0x08,
                        0x05, 0x05, 0x01, 0x08, 0x06, 0x06, 0x01),
                      V13, S13),
              1);
    /* ECDSA last in the list */
    CHECK_INT(accepts(B(0x00, 0x06, 0x08, 0x04, 0x04, 0x01, 0x04, 0x03), V13, S13), 1);
}

UNIT_TEST(tls_hello_tls13_with_only_rsa_sigalgs_refuses) {
    CHECK_INT(accepts(B(0x00, 0x04, 0x08, 0x04, 0x04, 0x01), V13, S13), 0);
}

UNIT_TEST(tls_hello_tls13_with_only_eddsa_sigalgs_refuses) {
    /* ed25519 and ed448 are not ECDSA */
    CHECK_INT(accepts(B(0x00, 0x04, 0x08, 0x07, 0x08, 0x08), V13, S13), 0);
}

UNIT_TEST(tls_hello_tls13_needs_no_ecdhe_ecdsa_suite) {
    /* TLS 1.3 suites do not name the certificate type */
    CHECK_INT(accepts(B(0x00, 0x02, 0x04, 0x03), V13, B(0x13, 0x01)), 1);
    /* even with only TLS 1.2 RSA suites besides */
    CHECK_INT(accepts(B(0x00, 0x02, 0x04, 0x03), V13, B(0x13, 0x01, 0xC0, 0x2F)), 1);
}

UNIT_TEST(tls_hello_tls13_found_among_grease_versions) {
    CHECK_INT(accepts(B(0x00, 0x02, 0x04, 0x03), B(0x06, 0x0A, 0x0A, 0x03, 0x04, 0x03, 0x03),
                      S13),
              1);
}

/* ---- TLS 1.2 and older ---- */

UNIT_TEST(tls_hello_tls12_with_ecdsa_sigalg_and_ecdhe_ecdsa_suite_accepts) {
    /* no supported_versions: a TLS 1.2 client; ECDHE-ECDSA-AES128-GCM-SHA256 */
    CHECK_INT(accepts(B(0x00, 0x04, 0x04, 0x03, 0x04, 0x01), NONE, B(0xC0, 0x2F, 0xC0, 0x2B)),
              1);
    CHECK_INT(accepts(B(0x00, 0x02, 0x04, 0x03), NONE, B(0xC0, 0x2B)), 1);
}

UNIT_TEST(tls_hello_tls12_other_ecdhe_ecdsa_suites_accept) {
    static const uint8_t suites[][2] = {
        {0xC0, 0x09}, /* ECDHE-ECDSA-AES128-SHA */
        {0xC0, 0x0A}, /* ECDHE-ECDSA-AES256-SHA */
        {0xC0, 0x23}, /* ECDHE-ECDSA-AES128-SHA256 */
        {0xC0, 0x24}, /* ECDHE-ECDSA-AES256-SHA384 */
        {0xC0, 0x2C}, /* ECDHE-ECDSA-AES256-GCM-SHA384 */
        {0xCC, 0xA9}, /* ECDHE-ECDSA-CHACHA20-POLY1305 */
    };
    for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
        int r = accepts(B(0x00, 0x02, 0x04, 0x03), NONE, suites[i], 2);
        if (r != 1) {
            unit_fail(__FILE__, __LINE__, "suite 0x%02X%02X: got %d, want 1", suites[i][0],
                      suites[i][1], r);
        }
    }
}

UNIT_TEST(tls_hello_tls12_with_ecdsa_sigalg_but_only_ecdhe_rsa_suites_refuses) {
    CHECK_INT(accepts(B(0x00, 0x02, 0x04, 0x03), NONE, B(0xC0, 0x2F)), 0);
    /* ECDHE-RSA-AES256-GCM, ECDHE-RSA-CHACHA20, AES128-SHA */
    CHECK_INT(accepts(B(0x00, 0x04, 0x04, 0x03, 0x05, 0x03), NONE,
                      B(0xC0, 0x30, 0xCC, 0xA8, 0x00, 0x2F)),
              0);
}

UNIT_TEST(tls_hello_tls12_with_ecdhe_ecdsa_suite_but_no_ecdsa_sigalg_refuses) {
    CHECK_INT(accepts(B(0x00, 0x04, 0x04, 0x01, 0x08, 0x04), NONE, B(0xC0, 0x2B)), 0);
}

UNIT_TEST(tls_hello_supported_versions_without_tls13_uses_tls12_rules) {
    /* supported_versions listing only TLS 1.2 and 1.1 */
    CHECK_INT(accepts(B(0x00, 0x02, 0x04, 0x03), B(0x04, 0x03, 0x03, 0x03, 0x02),
                      B(0xC0, 0x2F)),
              0);
    CHECK_INT(accepts(B(0x00, 0x02, 0x04, 0x03), B(0x04, 0x03, 0x03, 0x03, 0x02),
                      B(0xC0, 0x2B)),
              1);
}

UNIT_TEST(tls_hello_tls10_without_sigalgs_needs_only_an_ecdhe_ecdsa_suite) {
    /* TLS 1.0/1.1 clients send no signature_algorithms */
    CHECK_INT(accepts(NONE, NONE, B(0xC0, 0x0A)), 1);
    CHECK_INT(accepts(NONE, NONE, B(0x00, 0x2F, 0x00, 0x35, 0xC0, 0x0A)), 1);
    CHECK_INT(accepts(NONE, NONE, B(0x00, 0x2F)), 0);
    CHECK_INT(accepts(NONE, NONE, B(0x00, 0x2F, 0xC0, 0x14)), 0);
}

UNIT_TEST(tls_hello_no_suites_at_all_refuses_for_tls12) {
    CHECK_INT(accepts(B(0x00, 0x02, 0x04, 0x03), NONE, NONE), 0);
    CHECK_INT(accepts(NONE, NONE, NONE), 0);
}

UNIT_TEST(tls_hello_grease_suites_and_sigalgs_are_ignored) {
    CHECK_INT(accepts(B(0x00, 0x04, 0x0A, 0x0A, 0x04, 0x03), NONE,
                      B(0x2A, 0x2A, 0xC0, 0x2B)),
              1);
    CHECK_INT(accepts(B(0x00, 0x04, 0x0A, 0x0A, 0x04, 0x01), NONE,
                      B(0x2A, 0x2A, 0xC0, 0x2B)),
              0);
}

/* ---- malformed input: never crash, never read past the end ---- */

UNIT_TEST(tls_hello_sigalgs_length_longer_than_data_refuses) {
    /* claims 4 bytes, has 2 (an ECDSA scheme) */
    CHECK_INT(accepts(B(0x00, 0x04, 0x04, 0x03), V13, S13), 0);
    CHECK_INT(accepts(B(0x00, 0x04, 0x04, 0x03), NONE, B(0xC0, 0x2B)), 0);
    /* claims 65535 */
    CHECK_INT(accepts(B(0xFF, 0xFF, 0x04, 0x03), V13, S13), 0);
    /* claims 3 with 3 present, the last scheme cut: 0x04 0x03 would need
     * one byte more */
    CHECK_INT(accepts(B(0x00, 0x03, 0x08, 0x04, 0x04), V13, S13), 0);
}

UNIT_TEST(tls_hello_sigalgs_odd_length_refuses) {
    /* the declared and the actual length odd: 0x0403 would start at the
     * third byte only by misreading */
    CHECK_INT(accepts(B(0x00, 0x03, 0x04, 0x03, 0x05), V13, S13), 0);
    CHECK_INT(accepts(B(0x00, 0x01, 0x04), V13, S13), 0);
    CHECK_INT(accepts(B(0x00, 0x03, 0x04, 0x03, 0x05), NONE, B(0xC0, 0x2B)), 0);
}

UNIT_TEST(tls_hello_sigalgs_zero_length_refuses) {
    CHECK_INT(accepts(B(0x00, 0x00), V13, S13), 0);
    CHECK_INT(accepts(B(0x00, 0x00), NONE, B(0xC0, 0x2B)), 0);
}

UNIT_TEST(tls_hello_sigalgs_body_too_short_for_its_length_field_refuses) {
    /* a present but empty or 1-byte body */
    CHECK_INT(accepts((const uint8_t *)"", 0, V13, S13), 0);
    CHECK_INT(accepts(B(0x00), V13, S13), 0);
    CHECK_INT(accepts(B(0x04), NONE, B(0xC0, 0x2B)), 0);
}

UNIT_TEST(tls_hello_sigalgs_bytes_past_the_declared_length_are_not_used) {
    /* declares 2 bytes (rsa_pss) but ecdsa follows: strict or lenient,
     * the ECDSA scheme is outside the list */
    CHECK_INT(accepts(B(0x00, 0x02, 0x08, 0x04, 0x04, 0x03), V13, S13), 0);
    CHECK_INT(accepts(B(0x00, 0x02, 0x08, 0x04, 0x04, 0x03), NONE, B(0xC0, 0x2B)), 0);
}

UNIT_TEST(tls_hello_malformed_versions_do_not_crash) {
    /* length byte past the data; only RSA suites, so the answer is 0
     * whether the extension is rejected or treated as absent */
    CHECK_INT(accepts(B(0x00, 0x02, 0x04, 0x03), B(0x04, 0x03, 0x04), B(0xC0, 0x2F)), 0);
    CHECK_INT(accepts(B(0x00, 0x02, 0x04, 0x03), B(0xFF, 0x03, 0x04), B(0xC0, 0x2F)), 0);
    CHECK_INT(accepts(B(0x00, 0x02, 0x04, 0x03), B(0x00), B(0xC0, 0x2F)), 0);
    CHECK_INT(accepts(B(0x00, 0x02, 0x04, 0x03), (const uint8_t *)"", 0, B(0xC0, 0x2F)), 0);
    /* odd list lengths: 0x0304 is only there by reading past the end */
    CHECK_INT(accepts(B(0x00, 0x02, 0x04, 0x03), B(0x01, 0x03), B(0xC0, 0x2F)), 0);
    CHECK_INT(accepts(B(0x00, 0x02, 0x04, 0x03), B(0x03, 0x03, 0x03, 0x03), B(0xC0, 0x2F)),
              0);
    /* odd length with a whole 0x0304 inside: any answer, no crash */
    (void)accepts(B(0x00, 0x02, 0x04, 0x03), B(0x03, 0x03, 0x04, 0x03), B(0xC0, 0x2F));
}

UNIT_TEST(tls_hello_odd_suite_list_does_not_read_past_the_end) {
    /* the trailing 0xC0 would only make 0xC02B/0xC00A by over-reading */
    CHECK_INT(accepts(B(0x00, 0x02, 0x04, 0x03), NONE, B(0x00, 0x2F, 0xC0)), 0);
    CHECK_INT(accepts(NONE, NONE, B(0xC0)), 0);
    /* a whole ECDSA suite followed by a stray byte: any answer, no crash */
    (void)accepts(B(0x00, 0x02, 0x04, 0x03), NONE, B(0xC0, 0x2B, 0x00));
}

UNIT_TEST(tls_hello_every_truncation_is_safe) {
    const uint8_t sa[] = {0x00, 0x08, 0x08, 0x04, 0x04, 0x01, 0x05, 0x03, 0x04, 0x03};
    const uint8_t sv[] = {0x06, 0x0A, 0x0A, 0x03, 0x04, 0x03, 0x03};
    const uint8_t cs[] = {0x13, 0x01, 0x00, 0x2F, 0xC0, 0x2F, 0xC0, 0x2B};
    for (size_t i = 0; i <= sizeof(sa); i++) {
        for (size_t j = 0; j <= sizeof(sv); j++) {
            for (size_t k = 0; k <= sizeof(cs); k++) {
                int r = accepts(sa, i, sv, j, cs, k);
                if (r != 0 && r != 1) {
                    unit_fail(__FILE__, __LINE__, "truncated %zu/%zu/%zu gave %d", i, j, k, r);
                }
                /* a truncated sigalgs list is malformed: never 1 */
                if (i < sizeof(sa) && r != 0) {
                    unit_fail(__FILE__, __LINE__,
                              "sigalgs cut to %zu bytes (versions %zu, suites %zu) gave %d", i,
                              j, k, r);
                }
            }
        }
    }
}

UNIT_TEST(tls_hello_random_bytes_are_safe) {
    uint32_t x = 12345;
    uint8_t buf[3][40];
    for (int iter = 0; iter < 20000; iter++) {
        size_t len[3];
        for (int b = 0; b < 3; b++) {
            x = x * 1103515245u + 12345u;
            len[b] = (x >> 16) % 41;
            for (size_t i = 0; i < len[b]; i++) {
                x = x * 1103515245u + 12345u;
                buf[b][i] = (uint8_t)(x >> 16);
            }
            /* keep the length fields plausible half the time */
            if (len[b] > 2 && (iter & 1)) {
                if (b == 0) {
                    buf[0][0] = 0;
                    buf[0][1] = (uint8_t)(len[0] - 2 + (iter % 3) - 1);
                } else if (b == 1) {
                    buf[1][0] = (uint8_t)(len[1] - 1 + (iter % 3) - 1);
                }
            }
        }
        int r = accepts(iter % 5 == 0 ? NULL : buf[0], iter % 5 == 0 ? 0 : len[0],
                        iter % 7 == 0 ? NULL : buf[1], iter % 7 == 0 ? 0 : len[1], buf[2],
                        len[2]);
        if (r != 0 && r != 1) {
            unit_fail(__FILE__, __LINE__, "random input %d gave %d", iter, r);
            break;
        }
    }
}

/* ---- the key's curve (RFC 8446 4.2.3, RFC 8422 5.1) ---- */

UNIT_TEST(tls_hello_tls13_p384_only_client_refuses_a_p256_key_and_accepts_a_p384_key) {
    const uint8_t sigalgs[] = {0x00, 0x04, 0x05, 0x03, 0x08, 0x04};
    const uint8_t versions[] = {0x02, 0x03, 0x04};
    CHECK_INT(accepts_groups(sigalgs, sizeof(sigalgs), versions, sizeof(versions), NULL, 0,
                             NULL, 0, ECDSA_P256), 0);
    CHECK_INT(accepts_groups(sigalgs, sizeof(sigalgs), versions, sizeof(versions), NULL, 0,
                             NULL, 0, ECDSA_P384), 1);
}

UNIT_TEST(tls_hello_tls12_needs_the_key_curve_among_supported_groups) {
    const uint8_t sigalgs[] = {0x00, 0x02, 0x04, 0x03};
    const uint8_t p384_only[] = {0x00, 0x02, 0x00, 0x18};
    const uint8_t x25519_p256[] = {0x00, 0x04, 0x00, 0x1d, 0x00, 0x17};
    const uint8_t suites[] = {0xC0, 0x2B};
    CHECK_INT(accepts_groups(sigalgs, sizeof(sigalgs), NULL, 0, p384_only, sizeof(p384_only),
                             suites, sizeof(suites), ECDSA_P256), 0);
    CHECK_INT(accepts_groups(sigalgs, sizeof(sigalgs), NULL, 0, x25519_p256,
                             sizeof(x25519_p256), suites, sizeof(suites), ECDSA_P256), 1);
    CHECK_INT(accepts_groups(sigalgs, sizeof(sigalgs), NULL, 0, p384_only, sizeof(p384_only),
                             suites, sizeof(suites), ECDSA_P384), 1);
}

UNIT_TEST(tls_hello_malformed_supported_groups_refuse_ecdsa_for_tls12) {
    const uint8_t sigalgs[] = {0x00, 0x02, 0x04, 0x03};
    const uint8_t bad_groups[] = {0x00, 0x09, 0x00, 0x17};
    const uint8_t suites[] = {0xC0, 0x2B};
    CHECK_INT(accepts_groups(sigalgs, sizeof(sigalgs), NULL, 0, bad_groups, sizeof(bad_groups),
                             suites, sizeof(suites), ECDSA_P256), 0);
}
