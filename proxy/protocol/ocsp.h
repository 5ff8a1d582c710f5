/*
 * ocsp.h - reading an OCSP response (RFC 6960 4.2.1) and deciding whether
 * it may be stapled to a certificate.
 *
 * Pure: the caller hashes (it has the crypto library), this module only
 * reads DER and compares. The response's signature is not checked: the
 * client that asked for the staple checks it against the issuer it
 * trusts; what the proxy must not do is staple a response that is for
 * another certificate, says revoked, or is out of date.
 */
#ifndef SMTP_TLS_PROXY_OCSP_H
#define SMTP_TLS_PROXY_OCSP_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/der.h"

/* SingleResponses read from one response; further ones are ignored (a
 * responder answers a stapling server's request for one certificate). */
#define OCSP_SINGLE_MAX 16

/* A response without nextUpdate says "newer information is always
 * available" (RFC 6960 4.2.2.1); one that old is not stapled. */
#define OCSP_NO_NEXT_UPDATE_VALIDITY (7 * 86400)

/* How far in the future thisUpdate may be (the responder's clock ahead
 * of ours) and still count. */
#define OCSP_CLOCK_SKEW 300

enum ocsp_hash {
    OCSP_HASH_OTHER = 0, /* never matches: we cannot compute it */
    OCSP_HASH_SHA1 = 1,
    OCSP_HASH_SHA256 = 2,
};

enum ocsp_cert_status {
    OCSP_STATUS_GOOD = 0,
    OCSP_STATUS_REVOKED = 1,
    OCSP_STATUS_UNKNOWN = 2,
};

/* One SingleResponse; the views point into the parsed buffer. */
struct ocsp_single {
    enum ocsp_hash hash; /* CertID's hashAlgorithm */
    struct der issuer_name_hash;
    struct der issuer_key_hash;
    struct der serial; /* the serialNumber INTEGER's contents */
    enum ocsp_cert_status status;
    int64_t this_update; /* seconds since 1970 */
    int has_next_update;
    int64_t next_update;
};

struct ocsp_response {
    unsigned response_status; /* 0: successful; then the rest is set */
    size_t nsingle;
    struct ocsp_single single[OCSP_SINGLE_MAX];
};

/* ocsp_parse reads the DER OCSPResponse |der|. Returns 1 with *out set,
 * or 0 when it is no OCSPResponse, or a successful one that is not a
 * well-formed BasicOCSPResponse with at least one SingleResponse. A
 * response whose status is not successful parses (response_status says
 * which) with no SingleResponses. Trailing octets after it are refused. */
int ocsp_parse(const uint8_t *der, size_t len, struct ocsp_response *out);

/* What the certificate is, by the CertID fields (RFC 6960 4.1.1), hashed
 * by the caller with each algorithm: the leaf's issuer Name (DER) and,
 * when the chain has the issuer, its subjectPublicKey bits. */
struct ocsp_cert_id {
    struct der serial; /* the leaf's serialNumber contents */
    uint8_t name_sha1[20];
    uint8_t name_sha256[32];
    int has_issuer_key; /* 0: the chain is the leaf alone; the key is not compared */
    uint8_t key_sha1[20];
    uint8_t key_sha256[32];
};

enum ocsp_verdict {
    OCSP_STAPLE = 0,       /* for this certificate, good, current */
    OCSP_UNREADABLE = 1,   /* the file (the caller's verdict) */
    OCSP_UNPARSABLE = 2,   /* no OCSPResponse, see ocsp_parse */
    OCSP_UNSUCCESSFUL = 3, /* responseStatus is not successful (tryLater, ...) */
    OCSP_MISMATCH = 4,     /* no SingleResponse is for this certificate */
    OCSP_REVOKED = 5,
    OCSP_UNKNOWN = 6,      /* the responder does not know the certificate */
    OCSP_STALE = 7,        /* now is not within thisUpdate .. nextUpdate */
};

/* ocsp_check decides for the certificate |id| at |now| (seconds since
 * 1970). With OCSP_STAPLE, *valid_until is when it stops being current
 * (nextUpdate, or thisUpdate + OCSP_NO_NEXT_UPDATE_VALIDITY); with
 * OCSP_STALE too. The first SingleResponse for the certificate decides. */
enum ocsp_verdict ocsp_check(const struct ocsp_response *r, const struct ocsp_cert_id *id,
                             int64_t now, int64_t *valid_until);

/* ocsp_verdict_name: "stapled", "unreadable", "unparsable", ... (the
 * reason= of the log). */
const char *ocsp_verdict_name(enum ocsp_verdict v);

#endif
