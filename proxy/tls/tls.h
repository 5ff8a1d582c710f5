/*
 * tls.h - the TLS side of a snapshot: certificates, the SNI table and one
 * SSL_CTX per TLS listener carrying that listener's policy.
 *
 * Everything is built from a config in one go; any failure (unreadable
 * file, key not matching its certificate, unknown cipher) fails the whole
 * build with "file:line: reason", so a reload with a broken certificate
 * changes nothing. What does not stop a certificate from being served
 * (it expires soon, its OCSP response cannot be stapled, its next key
 * cannot be read) is kept and logged by tls_store_report.
 */
#ifndef SMTP_TLS_PROXY_TLS_H
#define SMTP_TLS_PROXY_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

struct tls_store;

/* The cipher suites for TLS 1.2 and older of a listener without
 * `ciphers` (TLS 1.3 suites are not configurable), in BoringSSL's syntax.
 *  - Submission kinds: forward-secret suites only; their clients are MUAs
 *    that all do ECDHE.
 *  - Kind smtp: port 25 is opportunistic (RFC 7435): a sender that fails
 *    the handshake falls back to plaintext, so old senders must still
 *    find a suite, but 3DES (SWEET32) and RC4 protect nobody who could
 *    not do better. In the manner of Postfix's "medium" grade: the same
 *    ECDHE suites first, then static RSA key exchange (AES-GCM, AES-CBC)
 *    as the last resort for senders without ECDHE; no 3DES, RC4, export
 *    or NULL suites. The ECDHE-PSK suites the ECDHE aliases take in are
 *    never negotiated: the proxy sets no PSK callback. */
#define TLS_SUBMISSION_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20:ECDHE+AES"
#define TLS_SMTP_CIPHERS TLS_SUBMISSION_CIPHERS ":RSA+AESGCM:RSA+AES"

/* Where the store reads its files (certificates, keys, OCSP responses):
 * the disk by default. With privilege separation (daemon/privsep.h) the
 * unprivileged proxy reads what the privileged parent read for it. A
 * reader returns 1 and a malloc'ed copy in *out (length *len), or 0 with
 * |err| saying why ("cannot open PATH: reason"). */
typedef int tls_file_reader(void *arg, const char *path, uint8_t **out, size_t *len,
                            char *err, size_t errlen);

/* tls_set_file_reader replaces the reader (NULL: the disk). Main thread,
 * before a store is built. */
void tls_set_file_reader(tls_file_reader *fn, void *arg);

/* tls_read_file reads |path| through the reader in force. */
int tls_read_file(const char *path, uint8_t **out, size_t *len, char *err, size_t errlen);

/* tls_store_new loads every certificate of |cfg| and builds the listener
 * contexts. Returns NULL with |err| set on failure; a config without TLS
 * listeners gives an empty store. */
struct tls_store *tls_store_new(const struct config *cfg, char *err, size_t errlen);

void tls_store_free(struct tls_store *store);

/* tls_new_server returns a server SSL for listener |index| on |fd|, or
 * NULL (the listener has no TLS, or memory ran out). */
SSL *tls_new_server(const struct tls_store *store, size_t index, int fd);

/* tls_describe_error writes the reason for the last failed TLS call (the
 * error queue, or |fallback|) into |out| and clears the queue. */
void tls_describe_error(char *out, size_t outlen, const char *fallback);

/* The length of a SHA-256 hash of a SubjectPublicKeyInfo: the data of a
 * TLSA 3 1 1 record (protocol/tlsa.h). */
#define TLS_SPKI_HASH_LEN 32

/* What the metrics and the TLSA records say of a loaded certificate;
 * every pointer lives as long as the store. */
struct tls_cert_info {
    const char *name;     /* [certificate NAME] */
    const char *key_type; /* "ecdsa" or "rsa" */
    double not_after;     /* seconds since 1970 */
    const char *const *names; /* the names it serves: names =, else its DNS
                                 subjectAltNames, else its common name */
    size_t nnames;
    const uint8_t *spki_sha256;      /* SHA-256 of the leaf's SubjectPublicKeyInfo */
    const uint8_t *next_spki_sha256; /* of next_key or next_cert; NULL: none or unreadable */
    const char *next_path;           /* next_key or next_cert; NULL: neither */
    int next_is_key;                 /* next_path is next_key */
    const char *next_error;          /* why next_path could not be read; NULL: it could */
};

/* tls_store_certificate fills |out| for the |i|th certificate of |s|
 * (in the order of the configuration); 0 past the last (or |s| NULL). */
int tls_store_certificate(const struct tls_store *s, size_t i, struct tls_cert_info *out);

/* tls_store_certificates fills up to |max| entries of |out|; returns how
 * many. */
size_t tls_store_certificates(const struct tls_store *s, struct tls_cert_info *out,
                              size_t max);

/* tls_store_spki gives the SPKI hashes of [certificate |name|]: the key in
 * use in |current| and, when *has_next, the next one (next_key or
 * next_cert) in |next|. Returns 0 when |s| (NULL is fine) has no such
 * certificate. */
int tls_store_spki(const struct tls_store *s, const char *name,
                   uint8_t current[TLS_SPKI_HASH_LEN], uint8_t next[TLS_SPKI_HASH_LEN],
                   int *has_next);

/* tls_store_report logs what the load of |s| found, once |s| is in force
 * (at start, and at a reload with the store it replaces as |previous|,
 * NULL at start): certificates expired or expiring within [tls]
 * expiry_warning (event=certificate_expired, certificate_expiring), OCSP
 * responses stapled or not (event=ocsp_stapled, ocsp_not_stapled with a
 * reason), next keys that cannot be read, and keys that changed
 * (tls/dane.h dane_report_changes). Main thread. */
void tls_store_report(const struct tls_store *s, const struct tls_store *previous);

#endif
