/*
 * scope.h - how far away a client address is, for the encrypted-share
 * metrics (ARCHITECTURE.md §8): global, private or loopback.
 *
 * - private: RFC 1918 (10/8, 172.16/12, 192.168/16), RFC 6598 shared
 *   address space (100.64/10, carrier-grade NAT) and IPv6 unique local
 *   addresses (fc00::/7, RFC 4193).
 * - loopback: loopback and link-local, i.e. traffic that cannot have
 *   crossed a router: 127/8, ::1, 169.254/16 (RFC 3927), fe80::/10, and
 *   unix-domain sockets (same host).
 * - global: everything else, including the documentation ranges
 *   (192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32), the
 *   unspecified addresses, multicast and the deprecated fec0::/10. The
 *   question answered is "private network or not", not "routable".
 *
 * An IPv4-mapped IPv6 address (::ffff:a.b.c.d, a dual-stack socket's
 * IPv4 peer) is classified by its IPv4 address. Pure; no I/O.
 */
#ifndef SMTP_TLS_PROXY_SCOPE_H
#define SMTP_TLS_PROXY_SCOPE_H

#include "core/addr.h"

enum addr_scope {
    SCOPE_GLOBAL = 0,
    SCOPE_PRIVATE = 1,
    SCOPE_LOOPBACK = 2, /* loopback or link-local */
};

/* addr_scope_of classifies |a| as described above. NULL and families
 * other than IPv4, IPv6 and unix are SCOPE_GLOBAL. */
enum addr_scope addr_scope_of(const struct net_addr *a);

/* addr_scope_name gives "global", "private" or "loopback" (the metric
 * label and the status header value); "global" for unknown values. */
const char *addr_scope_name(enum addr_scope scope);

#endif
