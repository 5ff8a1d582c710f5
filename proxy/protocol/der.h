/*
 * der.h - a small reader of DER (X.690) for the few structures the proxy
 * looks into itself: the parts of an X.509 certificate that DANE and OCSP
 * stapling need, and OCSP responses (protocol/ocsp.h).
 *
 * Pure: bytes in, views into those bytes out; nothing is copied or
 * allocated. Only what DER allows is accepted: one-octet tags (tag
 * numbers below 31), definite lengths in their shortest form, no element
 * longer than what contains it.
 */
#ifndef SMTP_TLS_PROXY_DER_H
#define SMTP_TLS_PROXY_DER_H

#include <stddef.h>
#include <stdint.h>

/* Tag octets (class, constructed bit and number in one). */
#define DER_INTEGER 0x02
#define DER_BIT_STRING 0x03
#define DER_OCTET_STRING 0x04
#define DER_NULL 0x05
#define DER_OID 0x06
#define DER_ENUMERATED 0x0a
#define DER_GENERALIZED_TIME 0x18
#define DER_SEQUENCE 0x30
#define DER_CONTEXT(n) (0x80 | (n))             /* [n] IMPLICIT, primitive */
#define DER_CONTEXT_CONSTRUCTED(n) (0xa0 | (n)) /* [n] EXPLICIT, or constructed */

/* A view of |n| octets at |p|: what is left to read. */
struct der {
    const uint8_t *p;
    size_t n;
};

/* der_get reads the next element of |in|, which must carry |tag|: 1,
 * with its contents in *content (NULL: not wanted) and |in| moved past
 * it; 0 (|in| unchanged) when the next element has another tag, is
 * malformed or |in| is empty. */
int der_get(struct der *in, uint8_t tag, struct der *content);

/* der_get_element is der_get that also gives the whole element, tag and
 * length included, in *whole. */
int der_get_element(struct der *in, uint8_t tag, struct der *content, struct der *whole);

/* der_skip reads the next element whatever its tag: 1, or 0 when it is
 * malformed or |in| is empty. */
int der_skip(struct der *in);

/* der_peek says whether the next element of |in| carries |tag| (its
 * well-formedness is for der_get to check). */
int der_peek(const struct der *in, uint8_t tag);

/* der_generalized_time reads the contents of a GeneralizedTime in the
 * form DER demands (RFC 5280 4.1.2.5.2): YYYYMMDDHHMMSS, optional
 * fractional seconds (ignored), Z. Returns 1 and seconds since 1970 in
 * *out, or 0. */
int der_generalized_time(const struct der *content, int64_t *out);

/* The parts of a certificate (RFC 5280 4.1) that the TLS layer needs,
 * as views into the certificate. */
struct der_cert {
    struct der serial;     /* the serialNumber INTEGER's contents */
    struct der issuer;     /* the issuer Name, whole (tag and length) */
    struct der spki;       /* subjectPublicKeyInfo, whole: what a TLSA
                              record with selector 1 (RFC 6698 2.1.2) hashes */
    struct der public_key; /* subjectPublicKey's bits, without the BIT
                              STRING's unused-bits octet: what an OCSP
                              CertID's issuerKeyHash hashes (RFC 6960 4.1.1) */
};

/* der_cert_parse finds those parts in the DER certificate |der|. Returns
 * 1, or 0 when it is no certificate. Nothing is verified. */
int der_cert_parse(const uint8_t *der, size_t len, struct der_cert *out);

/* der_spki_parse checks that |der| is one whole SubjectPublicKeyInfo
 * (nothing after it) and gives its subjectPublicKey bits as above. */
int der_spki_parse(const uint8_t *der, size_t len, struct der *public_key);

#endif
