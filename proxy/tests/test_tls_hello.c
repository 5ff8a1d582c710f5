/*
 * test_tls_hello.c - tls_hello.h: can a client authenticate an ECDSA
 * certificate? Extension bodies are byte-exact as on the wire:
 *   signature_algorithms: 2-byte length, then 2-byte schemes
 *   supported_versions (ClientHello): 1-byte length, then 2-byte versions
 *   cipher suites: 2-byte suites, no length prefix (SSL_CLIENT_HELLO)
 * Every call copies its inputs into heap blocks of exactly their size, so
 * the sanitizer build catches any read past the end.
 */
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdlib.h>

#include "protocol/tls_hello.h"
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

/* BoringSSL's ECDHE_ECDSA suites, as a listener with the library's
 * default list (or the submission default) has them enabled; checked
 * against the library by tls_hello_default_listener_list_is_boringssls. */
static const struct tls_suite all_ecdsa[] = {
    {0xC02B, 0x0303}, /* ECDHE-ECDSA-AES128-GCM-SHA256 */
    {0xC02C, 0x0303}, /* ECDHE-ECDSA-AES256-GCM-SHA384 */
    {0xCCA9, 0x0303}, /* ECDHE-ECDSA-CHACHA20-POLY1305 */
    {0xC009, 0x0300}, /* ECDHE-ECDSA-AES128-SHA */
    {0xC00A, 0x0300}, /* ECDHE-ECDSA-AES256-SHA */
};
/* ciphers = ECDHE+AESGCM */
static const struct tls_suite aesgcm_ecdsa[] = {{0xC02B, 0x0303}, {0xC02C, 0x0303}};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* check runs the choice for a key on |curve|, a ClientHello with
 * |legacy_version| and a listener with |ls| enabled, with every block
 * (and the listener's list) copied into an allocation of exactly its size
 * (ASan sees overreads). */
static int check(uint16_t legacy_version, const uint8_t *sa, size_t sa_len, const uint8_t *sv,
                 size_t sv_len, const uint8_t *gr, size_t gr_len, const uint8_t *cs,
                 size_t cs_len, enum ecdsa_curve curve, const struct tls_suite *ls,
                 size_t nls) {
    struct tls_hello_view h = {
        .legacy_version = legacy_version,
        .sigalgs = copy_exact(sa, sa_len), .sigalgs_len = sa_len,
        .versions = copy_exact(sv, sv_len), .versions_len = sv_len,
        .groups = copy_exact(gr, gr_len), .groups_len = gr_len,
        .suites = copy_exact(cs, cs_len), .suites_len = cs_len,
    };
    struct tls_suite *list = malloc(nls ? nls * sizeof(*list) : 1);
    if (list == NULL) {
        unit_fail(__FILE__, __LINE__, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < nls; i++) {
        list[i] = ls[i];
    }
    int r = tls_hello_accepts_ecdsa(&h, curve, list, nls);
    free(list);
    const uint8_t *blocks[4] = {h.sigalgs, h.versions, h.groups, h.suites};
    for (int i = 0; i < 4; i++) {
        if (blocks[i] != empty_block) {
            free((void *)blocks[i]);
        }
    }
    return r;
}

/* accepts_groups: a TLS 1.2 legacy_version and a listener with every
 * ECDSA suite BoringSSL has. */
static int accepts_groups(const uint8_t *sa, size_t sa_len, const uint8_t *sv, size_t sv_len,
                          const uint8_t *gr, size_t gr_len, const uint8_t *cs, size_t cs_len,
                          enum ecdsa_curve curve) {
    return check(0x0303, sa, sa_len, sv, sv_len, gr, gr_len, cs, cs_len, curve, all_ecdsa,
                 COUNT(all_ecdsa));
}

/* accepts: the same, for a P-256 key, no supported_groups extension. */
static int accepts(const uint8_t *sa, size_t sa_len, const uint8_t *sv, size_t sv_len,
                   const uint8_t *cs, size_t cs_len) {
    return accepts_groups(sa, sa_len, sv, sv_len, NULL, 0, cs, cs_len, ECDSA_P256);
}

/* accepts_on: legacy_version |lv|, a P-256 key, a listener with |ls|. */
static int accepts_on(const struct tls_suite *ls, size_t nls, uint16_t lv, const uint8_t *sa,
                      size_t sa_len, const uint8_t *sv, size_t sv_len, const uint8_t *cs,
                      size_t cs_len) {
    return check(lv, sa, sa_len, sv, sv_len, NULL, 0, cs, cs_len, ECDSA_P256, ls, nls);
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

/* ---- only suites the listener would negotiate count (issue 9) ---- */

UNIT_TEST(tls_hello_tls12_ecdsa_suites_boringssl_lacks_do_not_earn_ecdsa) {
    /* ECDHE-ECDSA-AES128-SHA256 / -AES256-SHA384 (0xC023/0xC024) and the
     * ECDHE_ECDSA CCM suites exist in OpenSSL, not in BoringSSL: an ECDSA
     * certificate would leave only the RSA suites, i.e. no shared cipher */
    static const uint8_t suites[][2] = {{0xC0, 0x23}, {0xC0, 0x24}, {0xC0, 0xAC}, {0xC0, 0xAD}};
    for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
        int r = accepts(B(0x00, 0x02, 0x04, 0x03), NONE, suites[i], 2);
        if (r != 0) {
            unit_fail(__FILE__, __LINE__, "suite 0x%02X%02X: got %d, want 0", suites[i][0],
                      suites[i][1], r);
        }
    }
}

UNIT_TEST(tls_hello_tls12_client_of_issue_9_gets_rsa) {
    /* openssl s_client -tls1_2 -cipher
     * 'ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-GCM-SHA256' */
    const uint8_t sigalgs[] = {0x00, 0x06, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01};
    const uint8_t groups[] = {0x00, 0x04, 0x00, 0x1d, 0x00, 0x17};
    const uint8_t suites[] = {0xC0, 0x23, 0xC0, 0x2F, 0x00, 0xFF};
    CHECK_INT(accepts_groups(sigalgs, sizeof(sigalgs), NULL, 0, groups, sizeof(groups), suites,
                             sizeof(suites), ECDSA_P256), 0);
    /* with an ECDSA suite BoringSSL has, the same client gets ECDSA */
    const uint8_t with_gcm[] = {0xC0, 0x23, 0xC0, 0x2B, 0xC0, 0x2F, 0x00, 0xFF};
    CHECK_INT(accepts_groups(sigalgs, sizeof(sigalgs), NULL, 0, groups, sizeof(groups),
                             with_gcm, sizeof(with_gcm), ECDSA_P256), 1);
}

UNIT_TEST(tls_hello_tls12_ecdsa_suite_the_listener_disabled_does_not_earn_ecdsa) {
    /* ciphers = ECDHE+AESGCM and a client offering ECDHE-ECDSA-AES128-SHA
     * and ECDHE-RSA-AES128-GCM-SHA256 */
    const struct tls_suite *ls = aesgcm_ecdsa;
    size_t n = COUNT(aesgcm_ecdsa);
    CHECK_INT(accepts_on(ls, n, 0x0303, B(0x00, 0x02, 0x04, 0x03), NONE, B(0xC0, 0x09, 0xC0, 0x2F)),
              0);
    CHECK_INT(accepts_on(ls, n, 0x0303, B(0x00, 0x02, 0x04, 0x03), NONE,
                         B(0xC0, 0x09, 0xC0, 0x0A, 0xCC, 0xA9, 0xC0, 0x2F)),
              0);
    /* an ECDSA suite it does have */
    CHECK_INT(accepts_on(ls, n, 0x0303, B(0x00, 0x02, 0x04, 0x03), NONE, B(0xC0, 0x09, 0xC0, 0x2C)),
              1);
}

UNIT_TEST(tls_hello_listener_without_ecdsa_suites_gives_tls12_clients_rsa) {
    /* e.g. ciphers = ECDHE-RSA-AES128-GCM-SHA256 */
    CHECK_INT(accepts_on(NULL, 0, 0x0303, B(0x00, 0x02, 0x04, 0x03), NONE, B(0xC0, 0x2B)), 0);
    CHECK_INT(accepts_on(NULL, 0, 0x0301, NONE, NONE, B(0xC0, 0x09)), 0);
}

UNIT_TEST(tls_hello_tls13_does_not_depend_on_the_listener_tls12_suites) {
    CHECK_INT(accepts_on(NULL, 0, 0x0303, B(0x00, 0x02, 0x04, 0x03), V13, S13), 1);
    CHECK_INT(accepts_on(aesgcm_ecdsa, COUNT(aesgcm_ecdsa), 0x0303, B(0x00, 0x02, 0x04, 0x03),
                         V13, B(0x13, 0x01, 0xC0, 0x09)),
              1);
    CHECK_INT(accepts_on(all_ecdsa, COUNT(all_ecdsa), 0x0303, B(0x00, 0x02, 0x08, 0x04), V13,
                         B(0x13, 0x01, 0xC0, 0x2B)),
              0);
}

/* ---- the version the client would negotiate ---- */

UNIT_TEST(tls_hello_tls10_client_offering_only_tls12_ecdsa_suites_gets_rsa) {
    /* legacy_version TLS 1.0 and ECDHE-ECDSA-AES128-GCM-SHA256 (TLS 1.2
     * only) beside ECDHE-RSA-AES128-SHA: ECDSA would fail the handshake */
    CHECK_INT(accepts_on(all_ecdsa, COUNT(all_ecdsa), 0x0301, NONE, NONE,
                         B(0xC0, 0x2B, 0xC0, 0x13)),
              0);
    CHECK_INT(accepts_on(all_ecdsa, COUNT(all_ecdsa), 0x0302, NONE, NONE,
                         B(0xC0, 0x2B, 0xCC, 0xA9, 0xC0, 0x13)),
              0);
    /* a CBC ECDSA suite works from TLS 1.0 on */
    CHECK_INT(accepts_on(all_ecdsa, COUNT(all_ecdsa), 0x0301, NONE, NONE,
                         B(0xC0, 0x2B, 0xC0, 0x0A, 0xC0, 0x13)),
              1);
}

UNIT_TEST(tls_hello_supported_versions_decide_over_legacy_version) {
    const struct tls_suite *ls = all_ecdsa;
    size_t n = COUNT(all_ecdsa);
    /* supported_versions {TLS 1.1, TLS 1.0}, legacy_version 1.2 */
    CHECK_INT(accepts_on(ls, n, 0x0303, B(0x00, 0x02, 0x04, 0x03), B(0x04, 0x03, 0x02, 0x03, 0x01),
                         B(0xC0, 0x2B)),
              0);
    /* supported_versions {GREASE, TLS 1.2}, legacy_version 1.0 */
    CHECK_INT(accepts_on(ls, n, 0x0301, B(0x00, 0x02, 0x04, 0x03), B(0x04, 0x7A, 0x7A, 0x03, 0x03),
                         B(0xC0, 0x2B)),
              1);
    /* the highest wins wherever it is listed */
    CHECK_INT(accepts_on(ls, n, 0x0301, B(0x00, 0x02, 0x04, 0x03),
                         B(0x06, 0x03, 0x01, 0x03, 0x03, 0x03, 0x02), B(0xC0, 0x2B)),
              1);
}

UNIT_TEST(tls_hello_tls13_only_versions_without_sigalgs_refuse_tls12_ecdsa) {
    /* nothing up to TLS 1.2 is offered, and TLS 1.3 needs sigalgs */
    CHECK_INT(accepts_on(all_ecdsa, COUNT(all_ecdsa), 0x0303, NONE, B(0x02, 0x03, 0x04),
                         B(0xC0, 0x2B)),
              0);
}

UNIT_TEST(tls_hello_legacy_version_above_tls12_means_tls12) {
    /* no supported_versions: BoringSSL negotiates TLS 1.2 at most */
    CHECK_INT(accepts_on(all_ecdsa, COUNT(all_ecdsa), 0x0304, B(0x00, 0x02, 0x04, 0x03), NONE,
                         B(0xC0, 0x2B)),
              1);
    CHECK_INT(accepts_on(all_ecdsa, COUNT(all_ecdsa), 0x7F7F, B(0x00, 0x02, 0x04, 0x03), NONE,
                         B(0xC0, 0x2B)),
              1);
}

UNIT_TEST(tls_hello_legacy_version_below_ssl3_refuses) {
    static const struct tls_suite any_version[] = {{0xC009, 0x0000}};
    CHECK_INT(accepts_on(any_version, 1, 0x0200, NONE, NONE, B(0xC0, 0x09)), 0);
    CHECK_INT(accepts_on(any_version, 1, 0x0000, NONE, NONE, B(0xC0, 0x09)), 0);
}

UNIT_TEST(tls_hello_malformed_supported_versions_refuse_tls12_ecdsa) {
    const struct tls_suite *ls = all_ecdsa;
    size_t n = COUNT(all_ecdsa);
    /* length past the data, odd length, present but empty */
    CHECK_INT(accepts_on(ls, n, 0x0303, B(0x00, 0x02, 0x04, 0x03), B(0x04, 0x03, 0x03),
                         B(0xC0, 0x09)),
              0);
    CHECK_INT(accepts_on(ls, n, 0x0303, B(0x00, 0x02, 0x04, 0x03), B(0x03, 0x03, 0x03, 0x03),
                         B(0xC0, 0x09)),
              0);
    CHECK_INT(accepts_on(ls, n, 0x0303, B(0x00, 0x02, 0x04, 0x03), (const uint8_t *)"", 0,
                         B(0xC0, 0x09)),
              0);
}

UNIT_TEST(tls_hello_default_listener_list_is_boringssls) {
    /* all_ecdsa above is what the library enables by default: if BoringSSL
     * changes, the tests above must follow */
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    if (ctx == NULL) {
        unit_fail(__FILE__, __LINE__, "SSL_CTX_new failed");
        return;
    }
    const STACK_OF(SSL_CIPHER) *list = SSL_CTX_get_ciphers(ctx);
    size_t found = 0;
    for (size_t i = 0; i < sk_SSL_CIPHER_num(list); i++) {
        const SSL_CIPHER *c = sk_SSL_CIPHER_value(list, i);
        if (SSL_CIPHER_get_auth_nid(c) != NID_auth_ecdsa) {
            continue;
        }
        found++;
        uint16_t id = SSL_CIPHER_get_protocol_id(c);
        size_t k = 0;
        while (k < COUNT(all_ecdsa) && all_ecdsa[k].id != id) {
            k++;
        }
        if (k == COUNT(all_ecdsa)) {
            unit_fail(__FILE__, __LINE__, "BoringSSL has ECDSA suite 0x%04X, the test not", id);
        } else if (all_ecdsa[k].min_version != SSL_CIPHER_get_min_version(c)) {
            unit_fail(__FILE__, __LINE__, "suite 0x%04X: min version 0x%04X, the test 0x%04X", id,
                      SSL_CIPHER_get_min_version(c), all_ecdsa[k].min_version);
        }
    }
    CHECK_INT(found, COUNT(all_ecdsa));
    SSL_CTX_free(ctx);
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
    const struct tls_suite *ls = all_ecdsa;
    size_t n = COUNT(all_ecdsa);
    CHECK_INT(accepts_on(ls, n, 0x0301, NONE, NONE, B(0xC0, 0x0A)), 1);
    CHECK_INT(accepts_on(ls, n, 0x0301, NONE, NONE, B(0x00, 0x2F, 0x00, 0x35, 0xC0, 0x0A)), 1);
    CHECK_INT(accepts_on(ls, n, 0x0302, NONE, NONE, B(0xC0, 0x09)), 1);
    CHECK_INT(accepts_on(ls, n, 0x0301, NONE, NONE, B(0x00, 0x2F)), 0);
    CHECK_INT(accepts_on(ls, n, 0x0301, NONE, NONE, B(0x00, 0x2F, 0xC0, 0x14)), 0);
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
