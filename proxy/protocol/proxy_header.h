/*
 * proxy_header.h - reading the HAProxy PROXY protocol header (v1 text,
 * v2 binary) that a load balancer sends before any SMTP or TLS byte.
 *
 * The decoder counterpart of identity.h's encoders, checked against
 * haproxy doc/proxy-protocol.txt (revision 2026/04/27). Pure: bytes in,
 * a verdict out, no I/O and no state between calls. The caller hands in
 * everything received so far on a connection, every time; the answer
 * for a longer input never contradicts the answer for a shorter one:
 * the statuses of the prefixes of any input are NEED_MORE for the short
 * ones, then either ERROR or DONE (with the same header) for all longer
 * ones.
 *
 * What the text leaves to the receiver, and what this module does:
 *
 * v1 (section 2.1)
 * - "PROXY", one space, "TCP4", "TCP6" or "UNKNOWN", all case-sensitive
 *   ("matching exactly"); then for TCP4/TCP6 exactly one space between
 *   source address, destination address, source port, destination port,
 *   and CRLF right after the destination port (no trailing space).
 * - TCP4 addresses: 4 decimal numbers 0..255, single dots, no heading
 *   zeroes ("0" itself is fine).
 * - TCP6 addresses: the RFC 4291 2.2 text forms: 1 to 4 hex digits per
 *   group, either case, at most one "::" standing for at least one zero
 *   group, and optionally the last 32 bits as an IPv4 dotted quad (the
 *   spec asks for "sets of 4 hexadecimal digits ... the total number of
 *   decoded bits must exactly be 128"; HAProxy itself writes a mixed
 *   IPv4/IPv6 pair as TCP6 with inet_ntop's "::ffff:a.b.c.d" and reads
 *   TCP6 with inet_pton, whose forms these are). Not required: the
 *   RFC 5952 canonical form ("::" on the longest run, lower case).
 * - Ports: decimal 0..65535, no heading zeroes.
 * - UNKNOWN: followed by CRLF or by one space and anything up to the
 *   first CRLF ("the receiver must ignore anything presented before the
 *   CRLF"), except a CR not followed by LF or a lone LF, which are
 *   refused ("must not tolerate a single CR or LF character to end the
 *   line"). Read as local = 1 ("use the real connection's parameters").
 * - The whole line, CRLF included, is at most 107 octets (PROXY_V1_MAX):
 *   longer is an error, for every protocol (a TCP6 line with two mixed
 *   IPv4 tails could otherwise reach 116).
 *
 * v2 (section 2.2)
 * - The 12-octet signature, then the version nibble 2 (anything else is
 *   refused: "the receiver must only accept this value"), command LOCAL
 *   (0) or PROXY (1) (others: "Receivers must drop connections").
 * - LOCAL: the family byte and the |len| octets after the first 16 are
 *   skipped uninterpreted ("discard the protocol block including the
 *   family which is ignored"; "must not assume zero is presented"):
 *   local = 1, whatever the family byte says.
 * - PROXY: a family nibble above 3 or a protocol nibble above 2 is
 *   refused ("must be rejected as invalid by receivers"). TCP over IPv4
 *   (0x11) or IPv6 (0x21) gives the addresses; |len| must cover the 12
 *   or 36 octets of the address block. UDP (0x12, 0x22) and AF_UNIX
 *   (0x31, 0x32) need their 12, 36 or 216 octets and then fall back to
 *   local = 1 ("falls back to the UNSPEC mode for the valid combinations
 *   above that it does not support"; a connection to an SMTP listener is
 *   not a datagram, and a UNIX path names nothing here). A combination
 *   with AF_UNSPEC or protocol UNSPEC (0x00, 0x01, 0x10, 0x20 ...) is
 *   accepted as local = 1 with its |len| octets skipped ("free to accept
 *   the connection anyway and use the real endpoint addresses ... should
 *   ignore address information").
 * - After the address block come TLVs (type, 16-bit length, value). Each
 *   is skipped ("may choose to skip over and ignore the TLVs"), but the
 *   sequence must tile the rest of the header exactly: a TLV running past
 *   the header's end, or 1 or 2 octets left over that cannot hold a TLV
 *   header, is an error (as HAProxy does; the NOOP TLV is the spec's way
 *   to pad). One PP2_TYPE_CRC32C TLV (0x03) is checked: its value must be
 *   4 octets and equal to the CRC32c (RFC 4960 appendix B, sent in
 *   network order) of the whole header with those 4 octets zeroed; a
 *   second CRC32C TLV is an error. The TLVs are not parsed for LOCAL or
 *   the UNSPEC fallbacks (their whole block is skipped).
 * - A v2 header longer than |v2_max| octets (16 + len) is an error.
 *
 * Early refusal: the first octet decides between v1 ('P') and v2 (CR);
 * anything else ("EHLO", a TLS record's 0x16) is refused at once. Past
 * that, the header is checked octet by octet as it arrives, so NEED_MORE
 * always means the octets so far can still be completed into a header
 * this listener accepts (including within 107 octets for v1, within
 * |v2_max| for v2).
 */
#ifndef SMTP_TLS_PROXY_PROXY_HEADER_H
#define SMTP_TLS_PROXY_PROXY_HEADER_H

#include <stddef.h>
#include <stdint.h>

#include "core/addr.h" /* struct net_addr */

/* The spec's maximum v1 line, CRLF included (the same value identity.h
 * defines for what it writes). */
#define PROXY_V1_MAX 107
/* v2 header + addresses + TLVs we accept by default. */
#define PROXY_V2_MAX_DEFAULT 1024
/* The shortest v2 header: signature, version/command, family, length. */
#define PROXY_V2_HEADER 16

enum proxy_accept { PROXY_ACCEPT_V1 = 1, PROXY_ACCEPT_V2 = 2 };
enum proxy_status { PROXY_NEED_MORE = 0, PROXY_DONE = 1, PROXY_ERROR = 2 };

struct proxy_header {
    int version;              /* 1 or 2 */
    int local;                /* 1: v1 UNKNOWN, v2 LOCAL command, or v2 AF_UNSPEC/
                                 unsupported family: use the socket's own addresses
                                 (a health check) */
    struct net_addr src, dst; /* set when !local: AF_INET or AF_INET6 sockaddr with
                                 ports (both the same family); all zero when local */
    size_t length;            /* octets the header occupies: consume exactly this many */
};

/* proxy_header_parse looks at the first |n| octets received on a
 * connection (|p| may be NULL when |n| is 0).
 * PROXY_NEED_MORE: every one of the |n| octets belongs to a header that
 * is not complete yet (so the caller may consume them all and read more)
 * - never returned when the octets already cannot be a header this
 * listener accepts.
 * PROXY_DONE: |out| filled, 0 < out->length <= n; the octets after
 * out->length are not looked at.
 * PROXY_ERROR: not a header this listener accepts (|accept| bits, 0 or a
 * |v2_max| below 16 accepting nothing of that version), malformed, or
 * longer than |v2_max|; |why| (when not NULL) says what, e.g.
 * "v1: bad source address", "v2: length 65551 exceeds 1024",
 * "not a PROXY protocol header", "v2: version 3".
 * |out| is zeroed first, whatever the result. */
enum proxy_status proxy_header_parse(const uint8_t *p, size_t n, unsigned accept,
                                     size_t v2_max, struct proxy_header *out, char *why,
                                     size_t whylen);

#endif
