/*
 * tls.h - the TLS side of a snapshot: certificates, the SNI table and one
 * SSL_CTX per TLS listener carrying that listener's policy.
 *
 * Everything is built from a config in one go; any failure (unreadable
 * file, key not matching its certificate, unknown cipher) fails the whole
 * build with "file:line: reason", so a reload with a broken certificate
 * changes nothing.
 */
#ifndef SMTP_TLS_PROXY_TLS_H
#define SMTP_TLS_PROXY_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

#include "config.h"

struct tls_store;

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

#endif
