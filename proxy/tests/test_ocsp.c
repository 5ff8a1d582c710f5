/*
 * test_ocsp.c - ocsp.h: reading OCSP responses (a real one from `openssl
 * ocsp` and ones built here field by field) and the decision to staple:
 * only a response for this certificate (serial, issuer name and key
 * hashes, SHA-1 or SHA-256), saying good, and current.
 */
#include <openssl/sha.h>
#include <stdarg.h>
#include <string.h>

#include "protocol/der.h"
#include "protocol/ocsp.h"
#include "test_pki_fixture.h"
#include "unit.h"

/* ---- building DER ---- */

struct blob {
    uint8_t b[2048];
    size_t n;
};

static struct blob raw(const void *p, size_t n) {
    struct blob out = {.n = n};
    memcpy(out.b, p, n);
    return out;
}

/* cat joins |count| blobs. */
static struct blob cat(int count, ...) {
    struct blob out = {.n = 0};
    va_list ap;
    va_start(ap, count);
    for (int i = 0; i < count; i++) {
        const struct blob *part = va_arg(ap, const struct blob *);
        memcpy(out.b + out.n, part->b, part->n);
        out.n += part->n;
    }
    va_end(ap);
    return out;
}

static struct blob tlv(uint8_t tag, const struct blob *content) {
    struct blob out = {.n = 0};
    out.b[out.n++] = tag;
    if (content->n < 0x80) {
        out.b[out.n++] = (uint8_t)content->n;
    } else if (content->n < 0x100) {
        out.b[out.n++] = 0x81;
        out.b[out.n++] = (uint8_t)content->n;
    } else {
        out.b[out.n++] = 0x82;
        out.b[out.n++] = (uint8_t)(content->n >> 8);
        out.b[out.n++] = (uint8_t)content->n;
    }
    memcpy(out.b + out.n, content->b, content->n);
    out.n += content->n;
    return out;
}

static struct blob str(const char *s) {
    return raw(s, strlen(s));
}

static const struct blob empty = {.n = 0};

static const uint8_t oid_sha1[] = {0x2b, 0x0e, 0x03, 0x02, 0x1a};
static const uint8_t oid_sha256[] = {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01};
static const uint8_t oid_md5[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05};
static const uint8_t oid_basic[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01};
static const uint8_t oid_other[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x02};

enum spec_hash { SPEC_SHA1, SPEC_SHA256, SPEC_MD5 };

/* One SingleResponse. */
struct spec {
    enum spec_hash hash;
    struct blob name_hash, key_hash, serial;
    enum ocsp_cert_status status;
    const char *this_update;
    const char *next_update; /* NULL: absent */
    int extensions;          /* singleExtensions present */
};

static struct blob single(const struct spec *s) {
    const uint8_t *oid = s->hash == SPEC_SHA1 ? oid_sha1 : s->hash == SPEC_SHA256 ? oid_sha256
                                                                                  : oid_md5;
    size_t oid_len = s->hash == SPEC_SHA1 ? sizeof(oid_sha1)
                     : s->hash == SPEC_SHA256 ? sizeof(oid_sha256)
                                              : sizeof(oid_md5);
    struct blob o = raw(oid, oid_len), n = raw("", 0);
    struct blob oid_tlv = tlv(DER_OID, &o), null_tlv = tlv(DER_NULL, &n);
    struct blob alg_in = cat(2, &oid_tlv, &null_tlv), alg = tlv(DER_SEQUENCE, &alg_in);
    struct blob nh = tlv(DER_OCTET_STRING, &s->name_hash), kh = tlv(DER_OCTET_STRING, &s->key_hash);
    struct blob sn = tlv(DER_INTEGER, &s->serial);
    struct blob id_in = cat(4, &alg, &nh, &kh, &sn), id = tlv(DER_SEQUENCE, &id_in);
    struct blob status;
    if (s->status == OCSP_STATUS_GOOD) {
        status = tlv(DER_CONTEXT(0), &empty);
    } else if (s->status == OCSP_STATUS_UNKNOWN) {
        status = tlv(DER_CONTEXT(2), &empty);
    } else {
        struct blob when = str("20260101000000Z"), t = tlv(DER_GENERALIZED_TIME, &when);
        status = tlv(DER_CONTEXT_CONSTRUCTED(1), &t);
    }
    struct blob tu_text = str(s->this_update), tu = tlv(DER_GENERALIZED_TIME, &tu_text);
    struct blob out_in = cat(3, &id, &status, &tu);
    if (s->next_update != NULL) {
        struct blob nu_text = str(s->next_update), nu = tlv(DER_GENERALIZED_TIME, &nu_text);
        struct blob explicit = tlv(DER_CONTEXT_CONSTRUCTED(0), &nu);
        out_in = cat(2, &out_in, &explicit);
    }
    if (s->extensions) {
        struct blob ext_seq = tlv(DER_SEQUENCE, &empty);
        struct blob ext = tlv(DER_CONTEXT_CONSTRUCTED(1), &ext_seq);
        out_in = cat(2, &out_in, &ext);
    }
    return tlv(DER_SEQUENCE, &out_in);
}

/* response builds a successful OCSPResponse around |n| SingleResponses,
 * of response type |type| (NULL: id-pkix-ocsp-basic). */
static struct blob response_typed(const struct spec *specs, size_t n, const struct blob *type) {
    struct blob singles = {.n = 0};
    for (size_t i = 0; i < n; i++) {
        struct blob one = single(&specs[i]);
        singles = cat(2, &singles, &one);
    }
    struct blob responses = tlv(DER_SEQUENCE, &singles);
    struct blob key = str("01234567890123456789"), key_hash = tlv(DER_OCTET_STRING, &key);
    struct blob responder = tlv(DER_CONTEXT_CONSTRUCTED(2), &key_hash); /* byKey */
    struct blob produced_text = str("20261202182422Z");
    struct blob produced = tlv(DER_GENERALIZED_TIME, &produced_text);
    struct blob data_in = cat(3, &responder, &produced, &responses);
    struct blob data = tlv(DER_SEQUENCE, &data_in);
    struct blob sig_oid_text = raw(oid_sha256, sizeof(oid_sha256));
    struct blob sig_oid = tlv(DER_OID, &sig_oid_text), sig_alg = tlv(DER_SEQUENCE, &sig_oid);
    static const uint8_t sig_bits[] = {0x00, 0xaa, 0xbb};
    struct blob sig_text = raw(sig_bits, sizeof(sig_bits)), sig = tlv(DER_BIT_STRING, &sig_text);
    struct blob basic_in = cat(3, &data, &sig_alg, &sig);
    struct blob basic = tlv(DER_SEQUENCE, &basic_in);
    struct blob octets = tlv(DER_OCTET_STRING, &basic);
    struct blob type_text = type ? *type : raw(oid_basic, sizeof(oid_basic));
    struct blob type_tlv = tlv(DER_OID, &type_text);
    struct blob bytes_in = cat(2, &type_tlv, &octets), bytes = tlv(DER_SEQUENCE, &bytes_in);
    struct blob explicit = tlv(DER_CONTEXT_CONSTRUCTED(0), &bytes);
    static const uint8_t successful[] = {0x00};
    struct blob st_text = raw(successful, 1), st = tlv(DER_ENUMERATED, &st_text);
    struct blob top = cat(2, &st, &explicit);
    return tlv(DER_SEQUENCE, &top);
}

static struct blob response(const struct spec *specs, size_t n) {
    return response_typed(specs, n, NULL);
}

/* ---- the certificate the responses are checked against ---- */

static const uint8_t serial_bytes[] = {0x00, 0xa1, 0xb2, 0xc3};

/* the_cert: serial 00a1b2c3, with hashes of "issuer name" and "issuer
 * key" standing in for those of real DER. */
static struct ocsp_cert_id the_cert(int has_issuer_key) {
    struct ocsp_cert_id id = {.serial = {serial_bytes, sizeof(serial_bytes)}};
    SHA1((const uint8_t *)"issuer name", 11, id.name_sha1);
    SHA256((const uint8_t *)"issuer name", 11, id.name_sha256);
    id.has_issuer_key = has_issuer_key;
    SHA1((const uint8_t *)"issuer key", 10, id.key_sha1);
    SHA256((const uint8_t *)"issuer key", 10, id.key_sha256);
    return id;
}

/* spec_for: a SingleResponse for the_cert with |hash|, good, current from
 * 2026-01-01 to 2026-01-08. */
static struct spec spec_for(enum spec_hash hash) {
    struct ocsp_cert_id id = the_cert(1);
    struct spec s = {.hash = hash,
                     .serial = raw(serial_bytes, sizeof(serial_bytes)),
                     .status = OCSP_STATUS_GOOD,
                     .this_update = "20260101000000Z",
                     .next_update = "20260108000000Z"};
    if (hash == SPEC_SHA256) {
        s.name_hash = raw(id.name_sha256, 32);
        s.key_hash = raw(id.key_sha256, 32);
    } else {
        s.name_hash = raw(id.name_sha1, 20);
        s.key_hash = raw(id.key_sha1, 20);
    }
    return s;
}

#define JAN1_2026 1767225600
#define DAY 86400

static enum ocsp_verdict verdict(const struct spec *specs, size_t n, int has_issuer_key,
                                 int64_t now, int64_t *until) {
    struct blob der = response(specs, n);
    struct ocsp_response r;
    if (!ocsp_parse(der.b, der.n, &r)) {
        return OCSP_UNPARSABLE;
    }
    struct ocsp_cert_id id = the_cert(has_issuer_key);
    int64_t ignored;
    return ocsp_check(&r, &id, now, until ? until : &ignored);
}

/* ---- the real response ---- */

UNIT_TEST(ocsp_parse_reads_a_response_made_by_openssl_ocsp) {
    struct ocsp_response r;
    CHECK(ocsp_parse(fixture_ocsp_der, fixture_ocsp_der_len, &r));
    CHECK_INT(r.response_status, 0);
    CHECK_INT(r.nsingle, 1);
    const struct ocsp_single *s = &r.single[0];
    CHECK_INT(s->hash, OCSP_HASH_SHA1);
    CHECK_INT(s->status, OCSP_STATUS_GOOD);
    CHECK_INT(s->this_update, FIXTURE_OCSP_THIS_UPDATE);
    CHECK(s->has_next_update);
    CHECK_INT(s->next_update, FIXTURE_OCSP_NEXT_UPDATE);
    static const uint8_t want_serial[] = {0x00, 0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07, 0x18};
    CHECK(s->serial.n == sizeof(want_serial) &&
          memcmp(s->serial.p, want_serial, sizeof(want_serial)) == 0);
    CHECK_INT(s->issuer_name_hash.n, 20);
    CHECK_INT(s->issuer_key_hash.n, 20);
}

UNIT_TEST(ocsp_check_staples_the_openssl_response_for_its_certificate_only) {
    struct ocsp_response r;
    CHECK(ocsp_parse(fixture_ocsp_der, fixture_ocsp_der_len, &r));
    struct der_cert leaf, ca, rsa;
    CHECK(der_cert_parse(fixture_leaf_der, fixture_leaf_der_len, &leaf));
    CHECK(der_cert_parse(fixture_ca_der, fixture_ca_der_len, &ca));
    CHECK(der_cert_parse(fixture_rsa_der, fixture_rsa_der_len, &rsa));
    struct ocsp_cert_id id = {.serial = leaf.serial, .has_issuer_key = 1};
    SHA1(leaf.issuer.p, leaf.issuer.n, id.name_sha1);
    SHA256(leaf.issuer.p, leaf.issuer.n, id.name_sha256);
    SHA1(ca.public_key.p, ca.public_key.n, id.key_sha1);
    SHA256(ca.public_key.p, ca.public_key.n, id.key_sha256);
    int64_t until = 0, in_force = FIXTURE_OCSP_THIS_UPDATE + 3600;
    CHECK_INT(ocsp_check(&r, &id, in_force, &until), OCSP_STAPLE);
    CHECK_INT(until, FIXTURE_OCSP_NEXT_UPDATE);
    CHECK_INT(ocsp_check(&r, &id, FIXTURE_OCSP_NEXT_UPDATE, &until), OCSP_STALE);
    /* Another certificate of the same CA: the serial differs. */
    id.serial = rsa.serial;
    CHECK_INT(ocsp_check(&r, &id, in_force, &until), OCSP_MISMATCH);
    /* The leaf, but a chain whose second certificate is not its issuer. */
    id.serial = leaf.serial;
    SHA1(leaf.public_key.p, leaf.public_key.n, id.key_sha1);
    CHECK_INT(ocsp_check(&r, &id, in_force, &until), OCSP_MISMATCH);
    /* Without the issuer in the chain, serial and issuer name decide. */
    id.has_issuer_key = 0;
    CHECK_INT(ocsp_check(&r, &id, in_force, &until), OCSP_STAPLE);
}

UNIT_TEST(ocsp_parse_refuses_every_truncation_and_trailing_bytes) {
    struct ocsp_response r;
    for (size_t n = 0; n < fixture_ocsp_der_len; n++) {
        if (ocsp_parse(fixture_ocsp_der, n, &r)) {
            unit_fail(__FILE__, __LINE__, "a response cut at %zu octets parsed", n);
        }
    }
    uint8_t longer[1024];
    memcpy(longer, fixture_ocsp_der, fixture_ocsp_der_len);
    longer[fixture_ocsp_der_len] = 0;
    CHECK(!ocsp_parse(longer, fixture_ocsp_der_len + 1, &r));
    /* A certificate is no response. */
    CHECK(!ocsp_parse(fixture_leaf_der, fixture_leaf_der_len, &r));
}

/* ---- built responses ---- */

UNIT_TEST(ocsp_check_staples_a_good_current_response_until_next_update) {
    int64_t until = 0;
    for (int h = SPEC_SHA1; h <= SPEC_SHA256; h++) {
        struct spec s = spec_for((enum spec_hash)h);
        CHECK_INT(verdict(&s, 1, 1, JAN1_2026 + DAY, &until), OCSP_STAPLE);
        CHECK_INT(until, JAN1_2026 + 7 * DAY);
        s.extensions = 1;
        CHECK_INT(verdict(&s, 1, 1, JAN1_2026 + DAY, &until), OCSP_STAPLE);
    }
}

UNIT_TEST(ocsp_check_says_stale_before_this_update_and_from_next_update_on) {
    struct spec s = spec_for(SPEC_SHA1);
    int64_t until = 0;
    CHECK_INT(verdict(&s, 1, 1, JAN1_2026 + 7 * DAY - 1, &until), OCSP_STAPLE);
    CHECK_INT(verdict(&s, 1, 1, JAN1_2026 + 7 * DAY, &until), OCSP_STALE);
    CHECK_INT(until, JAN1_2026 + 7 * DAY);
    CHECK_INT(verdict(&s, 1, 1, JAN1_2026 + 30 * DAY, &until), OCSP_STALE);
    /* A responder clock a little ahead is tolerated, a day is not. */
    CHECK_INT(verdict(&s, 1, 1, JAN1_2026 - OCSP_CLOCK_SKEW, &until), OCSP_STAPLE);
    CHECK_INT(verdict(&s, 1, 1, JAN1_2026 - OCSP_CLOCK_SKEW - 1, &until), OCSP_STALE);
    CHECK_INT(verdict(&s, 1, 1, JAN1_2026 - DAY, &until), OCSP_STALE);
}

UNIT_TEST(ocsp_check_without_next_update_staples_for_seven_days_from_this_update) {
    struct spec s = spec_for(SPEC_SHA256);
    s.next_update = NULL;
    int64_t until = 0;
    CHECK_INT(verdict(&s, 1, 1, JAN1_2026 + 6 * DAY, &until), OCSP_STAPLE);
    CHECK_INT(until, JAN1_2026 + OCSP_NO_NEXT_UPDATE_VALIDITY);
    CHECK_INT(verdict(&s, 1, 1, JAN1_2026 + OCSP_NO_NEXT_UPDATE_VALIDITY, &until), OCSP_STALE);
}

UNIT_TEST(ocsp_check_never_staples_revoked_or_unknown) {
    struct spec s = spec_for(SPEC_SHA1);
    s.status = OCSP_STATUS_REVOKED;
    CHECK_INT(verdict(&s, 1, 1, JAN1_2026 + DAY, NULL), OCSP_REVOKED);
    s.status = OCSP_STATUS_UNKNOWN;
    CHECK_INT(verdict(&s, 1, 1, JAN1_2026 + DAY, NULL), OCSP_UNKNOWN);
}

UNIT_TEST(ocsp_check_says_mismatch_for_another_serial_issuer_or_hash) {
    struct spec s = spec_for(SPEC_SHA1);
    static const uint8_t other_serial[] = {0xa1, 0xb2, 0xc3}; /* the same number, not DER */
    s.serial = raw(other_serial, sizeof(other_serial));
    CHECK_INT(verdict(&s, 1, 1, JAN1_2026 + DAY, NULL), OCSP_MISMATCH);

    s = spec_for(SPEC_SHA1);
    s.key_hash.b[0] ^= 1;
    CHECK_INT(verdict(&s, 1, 1, JAN1_2026 + DAY, NULL), OCSP_MISMATCH);
    /* The key hash is not compared when the chain has no issuer. */
    CHECK_INT(verdict(&s, 1, 0, JAN1_2026 + DAY, NULL), OCSP_STAPLE);

    s = spec_for(SPEC_SHA256);
    s.name_hash.b[31] ^= 1;
    CHECK_INT(verdict(&s, 1, 0, JAN1_2026 + DAY, NULL), OCSP_MISMATCH);

    /* A hash we cannot compute never matches. */
    s = spec_for(SPEC_SHA1);
    s.hash = SPEC_MD5;
    CHECK_INT(verdict(&s, 1, 1, JAN1_2026 + DAY, NULL), OCSP_MISMATCH);
}

UNIT_TEST(ocsp_check_finds_the_certificate_among_several_responses) {
    struct spec specs[3] = {spec_for(SPEC_SHA1), spec_for(SPEC_SHA256), spec_for(SPEC_SHA1)};
    static const uint8_t other_serial[] = {0x05};
    specs[0].serial = raw(other_serial, 1);
    specs[0].status = OCSP_STATUS_REVOKED; /* someone else's revocation */
    specs[1].this_update = "20260102000000Z";
    specs[2].status = OCSP_STATUS_REVOKED; /* after the first match: not read */
    int64_t until = 0;
    CHECK_INT(verdict(specs, 3, 1, JAN1_2026 + 2 * DAY, &until), OCSP_STAPLE);
    CHECK_INT(until, JAN1_2026 + 7 * DAY);
}

UNIT_TEST(ocsp_parse_gives_unsuccessful_statuses_without_responses) {
    /* tryLater (3): OCSPResponse ::= SEQUENCE { ENUMERATED 3 } */
    static const uint8_t try_later[] = {0x30, 0x03, 0x0a, 0x01, 0x03};
    struct ocsp_response r;
    CHECK(ocsp_parse(try_later, sizeof(try_later), &r));
    CHECK_INT(r.response_status, 3);
    CHECK_INT(r.nsingle, 0);
    struct ocsp_cert_id id = the_cert(1);
    int64_t until;
    CHECK_INT(ocsp_check(&r, &id, JAN1_2026, &until), OCSP_UNSUCCESSFUL);
    /* successful, but without responseBytes */
    static const uint8_t bare[] = {0x30, 0x03, 0x0a, 0x01, 0x00};
    CHECK(!ocsp_parse(bare, sizeof(bare), &r));
}

UNIT_TEST(ocsp_parse_refuses_other_response_types_and_bad_single_responses) {
    struct spec s = spec_for(SPEC_SHA1);
    struct ocsp_response r;
    struct blob other = raw(oid_other, sizeof(oid_other));
    struct blob der = response_typed(&s, 1, &other);
    CHECK(!ocsp_parse(der.b, der.n, &r));

    der = response(&s, 0); /* no SingleResponse */
    CHECK(!ocsp_parse(der.b, der.n, &r));

    s.this_update = "20260101000000"; /* not a DER GeneralizedTime */
    der = response(&s, 1);
    CHECK(!ocsp_parse(der.b, der.n, &r));

    s = spec_for(SPEC_SHA1);
    s.serial = raw("", 0); /* an empty INTEGER */
    der = response(&s, 1);
    CHECK(!ocsp_parse(der.b, der.n, &r));

    s = spec_for(SPEC_SHA1);
    der = response(&s, 1);
    CHECK(ocsp_parse(der.b, der.n, &r));
}

UNIT_TEST(ocsp_parse_keeps_the_first_responses_of_a_long_list) {
    struct spec specs[OCSP_SINGLE_MAX + 4];
    static const uint8_t other_serial[] = {0x05};
    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
        specs[i] = spec_for(SPEC_SHA1);
        specs[i].serial = raw(other_serial, 1);
        specs[i].name_hash = raw("x", 1);
        specs[i].key_hash = raw("y", 1);
    }
    struct blob der = response(specs, sizeof(specs) / sizeof(specs[0]));
    struct ocsp_response r;
    CHECK(ocsp_parse(der.b, der.n, &r));
    CHECK_INT(r.nsingle, OCSP_SINGLE_MAX);
}

UNIT_TEST(ocsp_verdict_names_are_the_log_reasons) {
    CHECK_STR(ocsp_verdict_name(OCSP_STAPLE), "stapled");
    CHECK_STR(ocsp_verdict_name(OCSP_UNREADABLE), "unreadable");
    CHECK_STR(ocsp_verdict_name(OCSP_UNPARSABLE), "unparsable");
    CHECK_STR(ocsp_verdict_name(OCSP_UNSUCCESSFUL), "unsuccessful");
    CHECK_STR(ocsp_verdict_name(OCSP_MISMATCH), "mismatch");
    CHECK_STR(ocsp_verdict_name(OCSP_REVOKED), "revoked");
    CHECK_STR(ocsp_verdict_name(OCSP_UNKNOWN), "unknown");
    CHECK_STR(ocsp_verdict_name(OCSP_STALE), "stale");
}
