/*
 * test_der.c - der.h: DER elements as DER allows them and no others,
 * GeneralizedTime, the parts of a certificate, and the SHA-256 of its
 * SubjectPublicKeyInfo (the data of a TLSA 3 1 1 record) as the OpenSSL
 * command line computes it:
 *   openssl x509 -noout -pubkey | openssl pkey -pubin -outform DER |
 *   openssl dgst -sha256
 */
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "protocol/der.h"
#include "protocol/tlsa.h"
#include "test_pki_fixture.h"
#include "unit.h"

static struct der view(const void *p, size_t n) {
    struct der d = {p, n};
    return d;
}

/* hex_of writes the lowercase hex of |n| octets (static buffer). */
static const char *hex_of(const uint8_t *p, size_t n) {
    static char out[1024];
    size_t o = 0;
    for (size_t i = 0; i < n && o + 3 < sizeof(out); i++) {
        o += (size_t)snprintf(out + o, sizeof(out) - o, "%02x", p[i]);
    }
    out[o] = '\0';
    return out;
}

static const char *sha1_hex(const struct der *d) {
    uint8_t h[SHA_DIGEST_LENGTH];
    SHA1(d->p, d->n, h);
    return hex_of(h, sizeof(h));
}

static const char *sha256_hex(const struct der *d) {
    uint8_t h[SHA256_DIGEST_LENGTH];
    SHA256(d->p, d->n, h);
    return hex_of(h, sizeof(h));
}

UNIT_TEST(der_reads_short_and_long_lengths_and_moves_past_the_element) {
    static const uint8_t two[] = {0x04, 0x02, 'h', 'i', 0x05, 0x00};
    struct der in = view(two, sizeof(two)), c;
    CHECK(der_peek(&in, DER_OCTET_STRING));
    CHECK(!der_peek(&in, DER_NULL));
    CHECK(der_get(&in, DER_OCTET_STRING, &c));
    CHECK_MEM(c.p, c.n, "hi");
    CHECK_INT(in.n, 2);
    CHECK(der_get(&in, DER_NULL, &c));
    CHECK_INT(c.n, 0);
    CHECK_INT(in.n, 0);
    CHECK(!der_get(&in, DER_NULL, &c)); /* empty */

    uint8_t long_form[3 + 200];
    long_form[0] = DER_OCTET_STRING;
    long_form[1] = 0x81;
    long_form[2] = 200;
    memset(long_form + 3, 'x', 200);
    in = view(long_form, sizeof(long_form));
    struct der whole;
    CHECK(der_get_element(&in, DER_OCTET_STRING, &c, &whole));
    CHECK_INT(c.n, 200);
    CHECK(c.p == long_form + 3);
    CHECK_INT(whole.n, sizeof(long_form));
    CHECK(whole.p == long_form);
}

UNIT_TEST(der_refuses_what_der_forbids_and_leaves_the_input_alone) {
    static const struct {
        const char *what;
        uint8_t bytes[8];
        size_t n;
    } bad[] = {
        {"indefinite length", {0x30, 0x80, 0x00, 0x00}, 4},
        {"long form for a short length", {0x04, 0x81, 0x01, 'x'}, 4},
        {"leading zero in a long length", {0x04, 0x82, 0x00, 0x81}, 4},
        {"length past the end", {0x04, 0x05, 'a', 'b'}, 4},
        {"long length past the end", {0x04, 0x82, 0x01}, 3},
        {"high tag number", {0x1f, 0x22, 0x00}, 3},
        {"tag only", {0x04}, 1},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct der in = view(bad[i].bytes, bad[i].n), c;
        if (der_get(&in, bad[i].bytes[0], &c) || der_skip(&in)) {
            unit_fail(__FILE__, __LINE__, "accepted: %s", bad[i].what);
        }
        CHECK(in.p == bad[i].bytes && in.n == bad[i].n);
    }
    static const uint8_t other_tag[] = {0x02, 0x01, 0x05};
    struct der in = view(other_tag, sizeof(other_tag));
    CHECK(!der_get(&in, DER_OCTET_STRING, NULL));
    CHECK_INT(in.n, 3);
    CHECK(der_skip(&in));
    CHECK_INT(in.n, 0);
}

static int64_t gtime(const char *text, int *ok) {
    struct der d = view(text, strlen(text));
    int64_t t = -12345;
    *ok = der_generalized_time(&d, &t);
    return t;
}

UNIT_TEST(der_generalized_time_counts_seconds_since_1970_in_utc) {
    static const struct {
        const char *text;
        int64_t want;
    } good[] = {
        {"19700101000000Z", 0},
        {"19691231235959Z", -1},
        {"20000229123456Z", 951827696}, /* a leap day in a year divisible by 400 */
        {"20240101000000Z", 1704067200},
        {"20991231235959Z", 4102444799},
        {"20261202182422Z", FIXTURE_OCSP_THIS_UPDATE},
        {"20240101000000.5Z", 1704067200}, /* fractions are ignored */
        {"20240101000000.123Z", 1704067200},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int ok;
        int64_t t = gtime(good[i].text, &ok);
        if (!ok || t != good[i].want) {
            unit_fail(__FILE__, __LINE__, "%s: ok %d, %lld, want %lld", good[i].text, ok,
                      (long long)t, (long long)good[i].want);
        }
    }
}

UNIT_TEST(der_generalized_time_refuses_local_times_and_impossible_dates) {
    static const char *const bad[] = {
        "20240101000000",     /* no Z: local time */
        "202401010000Z",      /* no seconds */
        "20241301000000Z",    /* month 13 */
        "20230229000000Z",    /* not a leap year */
        "21000229000000Z",    /* divisible by 100, not by 400 */
        "20240431000000Z",    /* April has 30 days */
        "20240101240000Z",    /* hour 24 */
        "20240101006000Z",    /* minute 60 */
        "20240101000060Z",    /* second 60 */
        "2024010100000aZ",    /* not a digit */
        "20240101000000.Z",   /* a dot without digits */
        "20240101000000.5xZ", /* not a digit in the fraction */
        "20240101000000+0100",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int ok;
        gtime(bad[i], &ok);
        if (ok) {
            unit_fail(__FILE__, __LINE__, "accepted \"%s\"", bad[i]);
        }
    }
}

UNIT_TEST(der_cert_parse_finds_serial_issuer_and_public_key_of_a_certificate) {
    struct der_cert leaf, ca;
    CHECK(der_cert_parse(fixture_leaf_der, fixture_leaf_der_len, &leaf));
    CHECK(der_cert_parse(fixture_ca_der, fixture_ca_der_len, &ca));
    /* serial=A1B2C3D4E5F60718: positive, so its INTEGER starts with 00. */
    CHECK_STR(hex_of(leaf.serial.p, leaf.serial.n), "00a1b2c3d4e5f60718");
    CHECK_STR(hex_of(ca.serial.p, ca.serial.n), "0102");
    /* The CertID hashes `openssl ocsp` made for the leaf: the issuer's
     * Name as in the leaf, and the CA's key bits. */
    CHECK_STR(sha1_hex(&leaf.issuer), "edfc60e6f813a71cd40a9502f376333633d59446");
    CHECK_STR(sha256_hex(&leaf.issuer),
              "f65080eef8cfbd5d78f8d56a938ed44be07ca0c96a50b86afe4754c2cff38728");
    CHECK_STR(sha1_hex(&ca.public_key), "1d9e2a8c3583032218748c8f25ee1befc6c48434");
    CHECK_STR(sha256_hex(&ca.public_key),
              "744b45358e3df1b1e32a0fee7c63c77886271591c429eef1bb6d6d78327c0752");
    /* An uncompressed P-256 point: 04, x, y. */
    CHECK_INT(ca.public_key.n, 65);
    CHECK_INT(ca.public_key.p[0], 0x04);
}

UNIT_TEST(spki_sha256_of_ecdsa_and_rsa_certificates_is_what_openssl_computes) {
    static const struct {
        const unsigned char *der;
        const size_t *len;
        const char *want;
    } certs[] = {
        {fixture_leaf_der, &fixture_leaf_der_len,
         "d0c24732788a014d2bdec9e694d806ed1dac440f6767627bd2eac76e8fdcfe16"},
        {fixture_rsa_der, &fixture_rsa_der_len,
         "bd3f9c23fd5395fdd2a45bb12a633cb4bdda53f35b8b095df48bd4f65e6f24c8"},
        {fixture_ca_der, &fixture_ca_der_len,
         "a0a58363f19b04829145c769369b45d6ec762d9f1da106b3255038dc56f24ccd"},
    };
    for (size_t i = 0; i < sizeof(certs) / sizeof(certs[0]); i++) {
        struct der_cert c;
        CHECK(der_cert_parse(certs[i].der, *certs[i].len, &c));
        uint8_t h[TLSA_HASH_LEN];
        SHA256(c.spki.p, c.spki.n, h);
        char hex[2 * TLSA_HASH_LEN + 1];
        tlsa_hex(hex, h);
        CHECK_STR(hex, certs[i].want);
        /* The SPKI is whole: it parses again on its own. */
        struct der bits;
        CHECK(der_spki_parse(c.spki.p, c.spki.n, &bits));
        CHECK(bits.p == c.public_key.p && bits.n == c.public_key.n);
    }
}

UNIT_TEST(der_cert_parse_refuses_every_truncation_and_trailing_bytes) {
    struct der_cert c;
    for (size_t n = 0; n < fixture_leaf_der_len; n++) {
        if (der_cert_parse(fixture_leaf_der, n, &c)) {
            unit_fail(__FILE__, __LINE__, "a certificate cut at %zu octets parsed", n);
        }
    }
    uint8_t longer[1024];
    memcpy(longer, fixture_leaf_der, fixture_leaf_der_len);
    longer[fixture_leaf_der_len] = 0;
    CHECK(!der_cert_parse(longer, fixture_leaf_der_len + 1, &c));
    /* An OCSP response is a SEQUENCE too, but no certificate. */
    CHECK(!der_cert_parse(fixture_ocsp_der, fixture_ocsp_der_len, &c));
}
