/*
 * headers.h - the header fields the proxy writes into every message
 * (ARCHITECTURE.md §5.5): a Received: trace field (RFC 5321 4.4, with RFC 3848
 * protocol names and the RFC 8314 "tls" clause) and one structured status
 * field whose name is configurable (default X-TLS-Status).
 *
 * Everything that came from the client (HELO name, SNI) or from its DNS
 * (its name) is sanitised here: printable ASCII without comment or
 * separator characters, bounded, so no value can break the header syntax
 * or inject a line.
 */
#ifndef SMTP_TLS_PROXY_HEADERS_H
#define SMTP_TLS_PROXY_HEADERS_H

#include <stddef.h>
#include <time.h>

#include "core/buffer.h"

/* The most octets headers_write can produce; SIZE limits are lowered by
 * this much (ehlo.c, smtp_cmd.c). */
#define HEADERS_RESERVE 2048

/* Longest sanitised client value kept (a domain name's 253 octets plus
 * room for an address literal). */
#define HEADERS_VALUE_MAX 255

struct header_facts {
    const char *proxy_hostname; /* "by" */
    const char *helo;           /* client's HELO/EHLO argument, or NULL */
    const char *client_name;    /* forward-confirmed reverse DNS name, or NULL:
                                   "unknown", as Postfix writes it */
    const char *client_addr;    /* textual address, no brackets */
    int client_is_ipv6;
    const char *protocol;       /* headers_protocol() */
    const char *id;             /* session id and message number: an Atom */
    const char *listener;       /* listener name */
    unsigned local_port;        /* port the client connected to */
    const char *mode;           /* "none", "starttls", "implicit" */
    /* TLS facts; tls_version NULL when the session is plaintext */
    const char *tls_version;    /* "TLSv1.3" */
    const char *cipher;         /* IANA name, "TLS_AES_256_GCM_SHA384" */
    const char *group;          /* "X25519", or NULL */
    const char *sni;            /* raw SNI from the client, or NULL */
    const char *country;        /* ISO 3166 code, or NULL */
    unsigned long asn;          /* autonomous system number, 0: unknown */
    const char *scope;          /* "global", "private", "loopback", or NULL */
    const char *status_name;    /* name of the status header field */
    time_t now;
};

/* headers_write appends both fields, each ending in CRLF, to |out|.
 * Returns 1, or 0 when |out| cannot grow. */
int headers_write(const struct header_facts *f, struct buffer *out);

/* headers_protocol is the Received "with" value: SMTP for HELO, else
 * ESMTP with S for TLS and A for AUTH (RFC 3848), and for a transaction
 * that used SMTPUTF8 (RFC 6531 3.7.3) UTF8SMTP, UTF8SMTPS, UTF8SMTPA,
 * UTF8SMTPSA. */
const char *headers_protocol(int esmtp, int tls, int authenticated, int utf8);

/* headers_sanitize copies |src| into |out| (size |out_size| >=
 * HEADERS_VALUE_MAX + 1), keeping letters, digits and ". - _ : [ ]" and
 * turning any other byte into '_'; at most HEADERS_VALUE_MAX octets.
 * An empty or NULL |src| gives "unknown". Returns out. */
char *headers_sanitize(char *out, size_t out_size, const char *src);

#endif
