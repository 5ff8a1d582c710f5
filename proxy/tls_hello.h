/*
 * tls_hello.h - reading the part of a ClientHello that chooses between
 * an ECDSA and an RSA certificate for the same name.
 *
 * Pure functions over extension bytes (as SSL_early_callback_ctx_
 * extension_get returns them), so hostile input is unit-tested without
 * a handshake.
 */
#ifndef SMTP_TLS_PROXY_TLS_HELLO_H
#define SMTP_TLS_PROXY_TLS_HELLO_H

#include <stddef.h>
#include <stdint.h>

/* tls_hello_accepts_ecdsa says whether a client can authenticate an
 * ECDSA certificate. |sigalgs| is the signature_algorithms extension
 * body (NULL when absent), |versions| the supported_versions body (NULL
 * when absent) and |suites| the cipher suite list.
 *  - TLS 1.3 (0x0304 offered): an ECDSA signature algorithm suffices.
 *  - TLS 1.2 and older: an ECDHE_ECDSA cipher suite is needed too, and,
 *    when signature_algorithms is sent, an ECDSA algorithm in it. */
int tls_hello_accepts_ecdsa(const uint8_t *sigalgs, size_t sigalgs_len,
                            const uint8_t *versions, size_t versions_len,
                            const uint8_t *suites, size_t suites_len);

#endif
