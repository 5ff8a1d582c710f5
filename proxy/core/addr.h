/*
 * addr.h - socket addresses: parsing configuration text, formatting for
 * logs and headers, and the one place where an IPv4-mapped IPv6 address
 * (a dual-stack socket's IPv4 peer, ::ffff:a.b.c.d) is folded into
 * plain IPv4.
 *
 * Pure functions, no I/O: config, identity, scope, the client table,
 * GeoIP and the session all take a struct net_addr and ask this module
 * what it is, rather than each looking into sockaddr families.
 */
#ifndef SMTP_TLS_PROXY_ADDR_H
#define SMTP_TLS_PROXY_ADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct net_addr {
    struct sockaddr_storage ss;
    socklen_t len;
};

/* An IP address as the wire formats and tables need it. */
struct ip_addr {
    int family;        /* AF_INET or AF_INET6 */
    uint8_t bytes[16]; /* 4 or 16 bytes, network order */
    unsigned port;
};

/* net_addr_parse parses "host:port", "[v6]:port" (numeric hosts only: the
 * proxy must not depend on DNS to start) or an absolute unix socket path
 * into |out|. Returns 1, or 0 with |err| set. */
int net_addr_parse(const char *text, struct net_addr *out, char *err, size_t errlen);

/* net_addr_format writes |a| as text ("1.2.3.4", "::1", a unix path;
 * IPv4-mapped shown as IPv4) into |out| and, when |out_port| is not
 * NULL, its port. */
void net_addr_format(const struct net_addr *a, char *out, size_t outlen,
                     unsigned *out_port);

/* net_addr_ip fills |out| from |a|, IPv4-mapped IPv6 folded into IPv4.
 * Returns 0 for NULL and for anything that is not IPv4 or IPv6. */
int net_addr_ip(const struct net_addr *a, struct ip_addr *out);

/* net_addr_is_ipv6 says whether |a| is a real IPv6 address (not an
 * IPv4-mapped one): what an address literal must be tagged "IPv6:" for. */
int net_addr_is_ipv6(const struct net_addr *a);

/* ip_addr_key writes |ip| as 16 bytes of IPv6, IPv4 as ::ffff:a.b.c.d,
 * so both families compare in one table. */
void ip_addr_key(const struct ip_addr *ip, uint8_t key[16]);

#endif
