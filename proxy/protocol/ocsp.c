/*
 * ocsp.c - OCSPResponse, BasicOCSPResponse and SingleResponse (RFC 6960
 * 4.2.1), read with protocol/der.h.
 */
#include "protocol/ocsp.h"

#include <string.h>

/* id-pkix-ocsp-basic, 1.3.6.1.5.5.7.48.1.1 */
static const uint8_t oid_ocsp_basic[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01};
/* id-sha1, 1.3.14.3.2.26 */
static const uint8_t oid_sha1[] = {0x2b, 0x0e, 0x03, 0x02, 0x1a};
/* id-sha256, 2.16.840.1.101.3.4.2.1 */
static const uint8_t oid_sha256[] = {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01};

static int is_oid(const struct der *oid, const uint8_t *want, size_t n) {
    return oid->n == n && memcmp(oid->p, want, n) == 0;
}

static int read_time(struct der *in, int64_t *out) {
    struct der t;
    return der_get(in, DER_GENERALIZED_TIME, &t) && der_generalized_time(&t, out);
}

/* read_cert_id reads CertID ::= SEQUENCE { hashAlgorithm, issuerNameHash,
 * issuerKeyHash, serialNumber }. */
static int read_cert_id(struct der *in, struct ocsp_single *s) {
    struct der id, alg, oid;
    if (!der_get(in, DER_SEQUENCE, &id) || !der_get(&id, DER_SEQUENCE, &alg) ||
        !der_get(&alg, DER_OID, &oid)) {
        return 0;
    }
    /* The parameters, if any, are NULL (RFC 5754 2): not looked at. */
    s->hash = is_oid(&oid, oid_sha1, sizeof(oid_sha1))       ? OCSP_HASH_SHA1
              : is_oid(&oid, oid_sha256, sizeof(oid_sha256)) ? OCSP_HASH_SHA256
                                                             : OCSP_HASH_OTHER;
    return der_get(&id, DER_OCTET_STRING, &s->issuer_name_hash) &&
           der_get(&id, DER_OCTET_STRING, &s->issuer_key_hash) &&
           der_get(&id, DER_INTEGER, &s->serial) && s->serial.n > 0 && id.n == 0;
}

/* read_single reads SingleResponse ::= SEQUENCE { certID, certStatus,
 * thisUpdate, nextUpdate [0] OPTIONAL, singleExtensions [1] OPTIONAL }. */
static int read_single(struct der *in, struct ocsp_single *s) {
    struct der sr, status;
    if (!der_get(in, DER_SEQUENCE, &sr) || !read_cert_id(&sr, s)) {
        return 0;
    }
    /* CertStatus ::= CHOICE { good [0] IMPLICIT NULL, revoked [1]
     * IMPLICIT RevokedInfo, unknown [2] IMPLICIT UnknownInfo (NULL) } */
    if (der_peek(&sr, DER_CONTEXT(0))) {
        s->status = OCSP_STATUS_GOOD;
        if (!der_get(&sr, DER_CONTEXT(0), &status) || status.n != 0) {
            return 0;
        }
    } else if (der_peek(&sr, DER_CONTEXT(2))) {
        s->status = OCSP_STATUS_UNKNOWN;
        if (!der_get(&sr, DER_CONTEXT(2), &status) || status.n != 0) {
            return 0;
        }
    } else if (der_get(&sr, DER_CONTEXT_CONSTRUCTED(1), NULL)) {
        s->status = OCSP_STATUS_REVOKED;
    } else {
        return 0;
    }
    if (!read_time(&sr, &s->this_update)) {
        return 0;
    }
    s->has_next_update = 0;
    struct der next;
    if (der_get(&sr, DER_CONTEXT_CONSTRUCTED(0), &next)) {
        if (!read_time(&next, &s->next_update) || next.n != 0) {
            return 0;
        }
        s->has_next_update = 1;
    }
    if (der_peek(&sr, DER_CONTEXT_CONSTRUCTED(1)) && !der_skip(&sr)) {
        return 0;
    }
    return sr.n == 0;
}

/* read_basic reads BasicOCSPResponse ::= SEQUENCE { tbsResponseData,
 * signatureAlgorithm, signature, certs [0] OPTIONAL }, of which only the
 * ResponseData ::= SEQUENCE { version [0] DEFAULT v1, responderID,
 * producedAt, responses, responseExtensions [1] OPTIONAL } matters. */
static int read_basic(struct der in, struct ocsp_response *out) {
    struct der basic, data, responses;
    if (!der_get(&in, DER_SEQUENCE, &basic) || in.n != 0 ||
        !der_get(&basic, DER_SEQUENCE, &data) || !der_get(&basic, DER_SEQUENCE, NULL) ||
        !der_get(&basic, DER_BIT_STRING, NULL)) {
        return 0;
    }
    if (der_peek(&basic, DER_CONTEXT_CONSTRUCTED(0)) && !der_skip(&basic)) {
        return 0;
    }
    if (basic.n != 0) {
        return 0;
    }
    if (der_peek(&data, DER_CONTEXT_CONSTRUCTED(0)) && !der_skip(&data)) {
        return 0;
    }
    /* ResponderID ::= CHOICE { byName [1] Name, byKey [2] KeyHash } */
    int64_t produced;
    if (!(der_get(&data, DER_CONTEXT_CONSTRUCTED(1), NULL) ||
          der_get(&data, DER_CONTEXT_CONSTRUCTED(2), NULL)) ||
        !read_time(&data, &produced) || !der_get(&data, DER_SEQUENCE, &responses)) {
        return 0;
    }
    if (der_peek(&data, DER_CONTEXT_CONSTRUCTED(1)) && !der_skip(&data)) {
        return 0;
    }
    if (data.n != 0) {
        return 0;
    }
    out->nsingle = 0;
    while (responses.n > 0) {
        struct ocsp_single s;
        if (!read_single(&responses, &s)) {
            return 0;
        }
        if (out->nsingle < OCSP_SINGLE_MAX) {
            out->single[out->nsingle++] = s;
        }
    }
    return out->nsingle > 0;
}

int ocsp_parse(const uint8_t *der, size_t len, struct ocsp_response *out) {
    /* OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED,
     *     responseBytes [0] EXPLICIT ResponseBytes OPTIONAL }
     * ResponseBytes ::= SEQUENCE { responseType OID, response OCTET STRING } */
    struct der in = {der, len}, resp, status, explicit, bytes, type, response;
    memset(out, 0, sizeof(*out));
    if (!der_get(&in, DER_SEQUENCE, &resp) || in.n != 0 ||
        !der_get(&resp, DER_ENUMERATED, &status) || status.n != 1 || status.p[0] > 0x7f) {
        return 0;
    }
    out->response_status = status.p[0];
    if (out->response_status != 0) {
        /* Only a successful response has responseBytes (4.2.1). */
        return 1;
    }
    if (!der_get(&resp, DER_CONTEXT_CONSTRUCTED(0), &explicit) || resp.n != 0 ||
        !der_get(&explicit, DER_SEQUENCE, &bytes) || explicit.n != 0 ||
        !der_get(&bytes, DER_OID, &type) || !is_oid(&type, oid_ocsp_basic, sizeof(oid_ocsp_basic)) ||
        !der_get(&bytes, DER_OCTET_STRING, &response) || bytes.n != 0) {
        return 0;
    }
    return read_basic(response, out);
}

static int same(const struct der *d, const uint8_t *want, size_t n) {
    return d->n == n && memcmp(d->p, want, n) == 0;
}

static int is_for(const struct ocsp_single *s, const struct ocsp_cert_id *id) {
    if (s->serial.n != id->serial.n || memcmp(s->serial.p, id->serial.p, id->serial.n) != 0) {
        return 0;
    }
    switch (s->hash) {
    case OCSP_HASH_SHA1:
        return same(&s->issuer_name_hash, id->name_sha1, sizeof(id->name_sha1)) &&
               (!id->has_issuer_key ||
                same(&s->issuer_key_hash, id->key_sha1, sizeof(id->key_sha1)));
    case OCSP_HASH_SHA256:
        return same(&s->issuer_name_hash, id->name_sha256, sizeof(id->name_sha256)) &&
               (!id->has_issuer_key ||
                same(&s->issuer_key_hash, id->key_sha256, sizeof(id->key_sha256)));
    case OCSP_HASH_OTHER:
        break;
    }
    return 0;
}

enum ocsp_verdict ocsp_check(const struct ocsp_response *r, const struct ocsp_cert_id *id,
                             int64_t now, int64_t *valid_until) {
    if (r->response_status != 0) {
        return OCSP_UNSUCCESSFUL;
    }
    for (size_t i = 0; i < r->nsingle; i++) {
        const struct ocsp_single *s = &r->single[i];
        if (!is_for(s, id)) {
            continue;
        }
        if (s->status == OCSP_STATUS_REVOKED) {
            return OCSP_REVOKED;
        }
        if (s->status == OCSP_STATUS_UNKNOWN) {
            return OCSP_UNKNOWN;
        }
        *valid_until = s->has_next_update ? s->next_update
                                          : s->this_update + OCSP_NO_NEXT_UPDATE_VALIDITY;
        if (s->this_update > now + OCSP_CLOCK_SKEW || now >= *valid_until) {
            return OCSP_STALE;
        }
        return OCSP_STAPLE;
    }
    return OCSP_MISMATCH;
}

const char *ocsp_verdict_name(enum ocsp_verdict v) {
    switch (v) {
    case OCSP_STAPLE:
        return "stapled";
    case OCSP_UNREADABLE:
        return "unreadable";
    case OCSP_UNPARSABLE:
        return "unparsable";
    case OCSP_UNSUCCESSFUL:
        return "unsuccessful";
    case OCSP_MISMATCH:
        return "mismatch";
    case OCSP_REVOKED:
        return "revoked";
    case OCSP_UNKNOWN:
        return "unknown";
    case OCSP_STALE:
        return "stale";
    }
    return "?";
}
