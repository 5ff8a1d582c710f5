/*
 * tlsa.h - DANE TLSA records (RFC 6698, RFC 7671, RFC 7672) as zone-file
 * lines: "_25._tcp.mx.example.net. IN TLSA 3 1 1 <hex>".
 *
 * Only the form RFC 7672 3.1.1 recommends for SMTP is written:
 * DANE-EE(3), SPKI(1), SHA2-256(1), which survives certificate renewals
 * with the same key. The hash is the caller's (it has the crypto
 * library): SHA-256 of the DER SubjectPublicKeyInfo (protocol/der.h
 * der_cert_parse gives it for a certificate). Pure.
 */
#ifndef SMTP_TLS_PROXY_TLSA_H
#define SMTP_TLS_PROXY_TLSA_H

#include <stddef.h>
#include <stdint.h>

#define TLSA_HASH_LEN 32

/* What a name can be as the base of a TLSA owner name. */
enum tlsa_name {
    TLSA_NAME_OK = 0,
    /* "*.example.net": the TLSA records are those of the MX host names
     * (RFC 7672 2.2.3), and a wildcard is none; it has no owner name. */
    TLSA_NAME_WILDCARD = 1,
    /* empty, too long, or with octets that are not letters, digits,
     * '-', '_' or '.' between labels: nothing to write in a zone file */
    TLSA_NAME_INVALID = 2,
};

enum tlsa_name tlsa_name_check(const char *name);

/* tlsa_hex writes the lowercase hex of |hash| (65 octets with the NUL). */
void tlsa_hex(char out[2 * TLSA_HASH_LEN + 1], const uint8_t hash[TLSA_HASH_LEN]);

/* tlsa_record writes the record for |name| (TLSA_NAME_OK; one trailing
 * dot is allowed) on TCP |port| into |out|, without a newline. Returns
 * its length, or 0 when the name is not OK or |out| is too small (320
 * octets always suffice). */
size_t tlsa_record(char *out, size_t outlen, unsigned port, const char *name,
                   const uint8_t hash[TLSA_HASH_LEN]);

#endif
