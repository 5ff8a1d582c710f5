/*
 * tls_hello.h - reading the part of a ClientHello that chooses between
 * an ECDSA and an RSA certificate for the same name.
 *
 * Pure functions over extension bodies (as SSL_early_callback_ctx_
 * extension_get returns them), so hostile input is unit-tested without
 * a handshake.
 */
#ifndef SMTP_TLS_PROXY_TLS_HELLO_H
#define SMTP_TLS_PROXY_TLS_HELLO_H

#include <stddef.h>
#include <stdint.h>

/* The curves an ECDSA certificate key can be on. */
enum ecdsa_curve {
    ECDSA_P256 = 0,
    ECDSA_P384 = 1,
    ECDSA_P521 = 2,
};

/* What the ClientHello offered; a NULL pointer means the extension was
 * absent. Extension bodies are as on the wire (with their own length
 * prefixes); |suites| is the cipher suite list without its prefix. */
struct tls_hello_view {
    uint16_t legacy_version; /* ClientHello.(legacy_)version, e.g. 0x0303 */
    const uint8_t *sigalgs;  /* signature_algorithms */
    size_t sigalgs_len;
    const uint8_t *versions; /* supported_versions */
    size_t versions_len;
    const uint8_t *groups;   /* supported_groups */
    size_t groups_len;
    const uint8_t *suites;
    size_t suites_len;
};

/* One ECDHE_ECDSA cipher suite the listener would negotiate (its
 * enabled list: SSL_get_ciphers, SSL_CIPHER_get_auth_nid == NID_auth_ecdsa)
 * and the oldest protocol version it works in. */
struct tls_suite {
    uint16_t id;          /* IANA number, SSL_CIPHER_get_protocol_id */
    uint16_t min_version; /* SSL_CIPHER_get_min_version, e.g. 0x0303 */
};

/* tls_hello_accepts_ecdsa says whether the client can verify an ECDSA
 * certificate whose key is on |curve| and this listener can then complete
 * the handshake with it. |ecdsa_suites| (|n| of them) are the listener's
 * ECDHE_ECDSA suites.
 *  - TLS 1.3 (0x0304 offered, signature_algorithms sent): the ECDSA
 *    algorithm for that very curve must be offered (RFC 8446 4.2.3 ties
 *    each ECDSA algorithm to one curve). Suites do not name the
 *    certificate type there, so |ecdsa_suites| does not matter.
 *  - TLS 1.2 and older: the client offers one of |ecdsa_suites| that works
 *    at the version it would negotiate (its highest up to TLS 1.2: from
 *    supported_versions when sent, else legacy_version); an ECDSA
 *    algorithm when signature_algorithms is sent; and the curve among the
 *    supported groups when those are sent (RFC 8422 5.1). A suite the
 *    client offers that the listener would not pick (not enabled there,
 *    or not implemented by the library) does not count: with it the
 *    ECDSA certificate would end the handshake in NO_SHARED_CIPHER. */
int tls_hello_accepts_ecdsa(const struct tls_hello_view *h, enum ecdsa_curve curve,
                            const struct tls_suite *ecdsa_suites, size_t n);

#endif
