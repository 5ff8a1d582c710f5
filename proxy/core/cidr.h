/*
 * cidr.h - address prefixes ("192.0.2.0/24", "2001:db8::/32") and lists
 * of them: the STARTTLS failure memory keys its entries by the client's
 * prefix, and trusted-address lists (PROXY protocol, exemptions) are
 * lists of prefixes read from configuration text or a file.
 *
 * Pure functions, no I/O. A struct cidr is always kept in one canonical
 * form, so two equal prefixes are equal byte for byte:
 *   - IPv4 is AF_INET; an IPv4-mapped IPv6 prefix of length 96 or more
 *     (::ffff:a.b.c.d/96+n) is folded into AF_INET /n, as addr.h folds
 *     mapped client addresses, so an IPv4 client on a dual-stack socket
 *     matches IPv4 entries;
 *   - every bit after the prefix is zero, and so are addr[4..15] of an
 *     IPv4 prefix.
 * The families never cover each other: ::/0 covers no IPv4 client.
 */
#ifndef SMTP_TLS_PROXY_CIDR_H
#define SMTP_TLS_PROXY_CIDR_H

#include <stddef.h>
#include <stdint.h>

#include "core/addr.h"

/* Room for the longest cidr_format text and its NUL
 * ("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128"). */
#define CIDR_TEXT_MAX 56

struct cidr {
    uint8_t family;   /* AF_INET or AF_INET6 */
    uint8_t prefix;   /* 0..32 or 0..128 */
    uint8_t addr[16]; /* network order, 4 or 16 bytes used, bits beyond prefix zero */
};

/* A plain array: n items at items (NULL when n is 0). Zero-initialise
 * it before the first cidr_list_add_text. */
struct cidr_list {
    struct cidr *items;
    size_t n;
};

/* cidr_of_addr writes into |out| the prefix of |a| of length |v4_prefix|
 * (IPv4, including IPv4-mapped IPv6 folded by net_addr_ip) or
 * |v6_prefix| (IPv6), host bits cleared: the key of "this client's
 * network". Lengths beyond 32 or 128 are taken as 32 or 128. Returns 1,
 * or 0 (|out| zeroed) when |a| is NULL, a unix socket or anything that
 * is not IP. */
int cidr_of_addr(const struct net_addr *a, unsigned v4_prefix, unsigned v6_prefix,
                 struct cidr *out);

/* cidr_parse reads one prefix: "192.0.2.0/24", "2001:db8::/32", a bare
 * address (= /32 or /128), "::ffff:192.0.2.0/120" (folded to
 * 192.0.2.0/24). The address is numeric (inet_pton), the length 1 to 3
 * decimal digits; no blanks anywhere. Host bits set after the prefix
 * ("192.0.2.77/24") are accepted and cleared. Returns 1, or 0 with |why|
 * (if not NULL) an English reason that quotes the text: empty, not an
 * address, a missing or bad prefix length. */
int cidr_parse(const char *text, struct cidr *out, char *why, size_t whylen);

/* cidr_format writes |c| as "192.0.2.0/24" or "2001:db8::/64" (the
 * address in inet_ntop form) into |out|, truncated to |outlen|;
 * CIDR_TEXT_MAX always suffices. An invalid |c| is written "invalid". */
void cidr_format(const struct cidr *c, char *out, size_t outlen);

/* cidr_normalize puts a struct cidr filled by hand into the canonical
 * form above (folds IPv4-mapped /96 and longer, clears host bits and
 * unused bytes). Returns 1, or 0 when the family is neither AF_INET nor
 * AF_INET6 or the prefix is too long for it (|c| unchanged). */
int cidr_normalize(struct cidr *c);

/* cidr_contains says whether |c| covers the address |a| (IPv4-mapped
 * folded into IPv4; ports ignored). 0 for anything that is not IP. */
int cidr_contains(const struct cidr *c, const struct net_addr *a);

/* cidr_covers says whether the prefix |outer| covers the whole of
 * |inner|: same family, outer->prefix <= inner->prefix and the same
 * first outer->prefix bits. Every prefix covers itself. */
int cidr_covers(const struct cidr *outer, const struct cidr *inner);

/* cidr_equal says whether |a| and |b| are the same prefix (family,
 * length and the bits within the length). */
int cidr_equal(const struct cidr *a, const struct cidr *b);

/* cidr_list_add_text parses the prefixes in |text| and appends them to
 * |l|. Items are separated by commas and/or blanks, tabs, CR and LF; a
 * '#' starts a comment that runs to the end of the line, so the contents
 * of a file can be passed as they are. A text with no items (empty,
 * blanks, comments only) adds nothing and succeeds. All or nothing:
 * returns 1, or 0 with |why| naming the bad item ("item 3: ...") and |l|
 * holding what it held before (also when out of memory). */
int cidr_list_add_text(struct cidr_list *l, const char *text, char *why, size_t whylen);

/* cidr_list_contains says whether any item of |l| covers the address
 * |a| (cidr_contains). A linear scan: lists are short. */
int cidr_list_contains(const struct cidr_list *l, const struct net_addr *a);

/* cidr_list_covers says whether any item of |l| covers the prefix |c|
 * (cidr_covers). */
int cidr_list_covers(const struct cidr_list *l, const struct cidr *c);

/* cidr_list_free frees the items of |l| and zeroes it (NULL ok). */
void cidr_list_free(struct cidr_list *l);

#endif
