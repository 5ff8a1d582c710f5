/*
 * identity.h - telling the backend who the client is (ARCHITECTURE.md §4).
 *
 * Encoders only: the Postfix XCLIENT command (values in RFC 3461 xtext)
 * and the HAProxy PROXY protocol header, text (v1) or binary (v2). They
 * write into a caller's buffer and do no I/O; the session sends the
 * PROXY header before any SMTP byte, or XCLIENT after the backend's
 * greeting, and reads the backend's reply itself.
 *
 * What Postfix 3.7 does with them (checked against a private Postfix):
 * - XCLIENT succeeds with a new "220" greeting and resets the session to
 *   its start: an earlier EHLO is forgotten (HELO name "unknown",
 *   protocol SMTP) until the client sends EHLO again, and the client's
 *   EHLO then replaces any HELO/PROTO the XCLIENT gave.
 * - Authorization is checked against the *announced* address, so a
 *   second XCLIENT after ADDR= named a non-authorized address is refused
 *   ("550 5.7.0 Error: insufficient authorization"): everything must go
 *   in one command, hence the HELO truncation below.
 * - Each raw (still encoded) value may hold at most 255 octets ("501
 *   5.5.4 Error: attribute value too long"); NAME must be a valid host
 *   name or the whole command fails with "501 5.5.4 Bad NAME syntax".
 *   Any refusal leaves the backend seeing the proxy's own address, which
 *   is usually trusted: a session must treat a non-220 reply to XCLIENT
 *   as fatal, never carry on.
 * - The PROXY parser accepts v1 TCP4/TCP6 and v2 PROXY over TCP4/TCP6 or
 *   the v2 LOCAL command; it refuses "PROXY UNKNOWN" and v2 PROXY with
 *   AF_UNSPEC ("421 4.3.0 Server local error").
 */
#ifndef SMTP_TLS_PROXY_IDENTITY_H
#define SMTP_TLS_PROXY_IDENTITY_H

#include <stddef.h>

#include "core/buffer.h"
#include "core/addr.h"

/* RFC 5321 4.5.3.1.4, which XCLIENT_README asks clients to respect:
 * the command line, CRLF included. */
#define XCLIENT_LINE_MAX 512
/* Postfix's limit on one attribute value as sent (xtext-encoded). */
#define XCLIENT_VALUE_MAX 255

/* The longest PROXY headers we write: v1 TCP6 is 104 octets (spec 2.1),
 * v2 over IPv6 is 16 + 36. */
#define PROXY_V1_MAX 107
#define PROXY_V2_MAX 52

/* xtext_encode appends the RFC 3461 section 4 xtext form of the |n|
 * bytes at |src| to |out|. Bytes 33..126 stand for themselves; every
 * other byte, '+' and '=' (as the RFC requires) and also '"', '\', '<',
 * '>', '[' and ']' become "+XX" with upper-case hex digits. The RFC lets
 * any byte be escaped and every decoder reads them back; we escape those
 * six because Postfix's command tokenizer reads them as quoting: left
 * bare, a client's HELO containing '"' swallowed the XCLIENT attributes
 * after it. Returns 1, or 0 when memory cannot be had (|out| is then
 * unchanged). */
int xtext_encode(const char *src, size_t n, struct buffer *out);

struct xclient_facts {
    const struct net_addr *client; /* ADDR/PORT; NULL or non-IP: [UNAVAILABLE] */
    const char *name;              /* NAME; NULL: [UNAVAILABLE]; "[TEMPUNAVAIL]"
                                      for a temporary lookup failure */
    const char *helo;              /* HELO, client-controlled; NULL or empty:
                                      omit */
    const char *proto;             /* "SMTP" or "ESMTP"; NULL: omit */
    const char *login;             /* LOGIN: only a name the proxy itself
                                      authenticated - Postfix then treats the
                                      session as SASL-authenticated ("ESMTPA",
                                      permit_sasl_authenticated); NULL or
                                      empty: omit */
    const struct net_addr *local;  /* DESTADDR/DESTPORT; NULL or non-IP: omit */
};

/* xclient_name_valid accepts what Postfix's valid_hostname() accepts:
 * labels of 1..63 letters, digits, '-' or '_', no hyphen at either end
 * of a label, no empty label or trailing dot, at most 255 octets, and
 * not all digits and dots (an address). The reverse lookup
 * (daemon/dns.c) keeps no other name. */
int xclient_name_valid(const char *name);

/* xclient_command appends one "XCLIENT ...\r\n" line describing |f| to
 * |out|, attributes in the order NAME ADDR PORT PROTO HELO LOGIN DESTADDR
 * DESTPORT, values xtext-encoded.
 *
 * - ADDR is dotted-quad IPv4 (also for IPv4-mapped IPv6 addresses) or
 *   "IPV6:" and the RFC 5952 text; ports are decimal.
 * - NAME is written only if it is a host name Postfix accepts (labels of
 *   letters, digits, '-' and '_', at most 255 octets, not all-numeric)
 *   or "[TEMPUNAVAIL]"; anything else becomes "[UNAVAILABLE]", because a
 *   refused NAME would lose ADDR too.
 * - HELO is the only value the client chose. It is cut, never splitting
 *   an escape, so that its encoded form fits in XCLIENT_VALUE_MAX octets
 *   and the whole line in XCLIENT_LINE_MAX; if nothing of it fits (or it
 *   is empty) the attribute is left out.
 *
 * Returns 1, or 0 with |out| unchanged when |proto| is neither "SMTP" nor
 * "ESMTP", when |login| encodes to more than XCLIENT_VALUE_MAX octets,
 * when the line would exceed XCLIENT_LINE_MAX even without HELO (a long
 * NAME together with a long LOGIN), or when memory cannot be had. */
int xclient_command(const struct xclient_facts *f, struct buffer *out);

/* proxy_v1_header appends the PROXY protocol v1 line for a connection
 * from |src| to |dst| (the client's address and the address it
 * reached): "PROXY TCP4 a b p q\r\n" when both are IPv4 (IPv4-mapped
 * IPv6 counts as IPv4), "PROXY TCP6 ...\r\n" when both are IPv6, and
 * "PROXY UNKNOWN\r\n" otherwise (NULL, AF_UNIX, mixed families) - which
 * the spec allows but Postfix refuses. Returns 1, or 0 when memory
 * cannot be had (|out| is then unchanged). */
int proxy_v1_header(const struct net_addr *src, const struct net_addr *dst,
                    struct buffer *out);

/* proxy_v2_header appends the PROXY protocol v2 binary header, without
 * TLVs: the 12-byte signature, 0x21 (version 2, PROXY), 0x11 (TCP over
 * IPv4) or 0x21 (TCP over IPv6), the address block length (12 or 36)
 * and the addresses and ports in network byte order, source first. When
 * the pair is not both IPv4 or both IPv6 it writes the LOCAL command
 * (0x20) with AF_UNSPEC (0x00) and length 0, as the spec advises for
 * unsupported families: the receiver then uses the real endpoints (the
 * proxy's), and Postfix accepts that, whereas it refuses PROXY with
 * AF_UNSPEC. Returns 1, or 0 when memory cannot be had (|out| is then
 * unchanged). */
int proxy_v2_header(const struct net_addr *src, const struct net_addr *dst,
                    struct buffer *out);

#endif
