/*
 * scope.c - address scope by prefix tables, IPv4 and IPv6.
 */
#include "protocol/scope.h"

#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

struct prefix {
    unsigned char bytes[16]; /* network order; only the first |bits| count */
    unsigned bits;
    enum addr_scope scope;
};

static const struct prefix v4_prefixes[] = {
    {{127}, 8, SCOPE_LOOPBACK},
    {{169, 254}, 16, SCOPE_LOOPBACK}, /* link-local, RFC 3927 */
    {{10}, 8, SCOPE_PRIVATE},
    {{172, 16}, 12, SCOPE_PRIVATE},
    {{192, 168}, 16, SCOPE_PRIVATE},
    {{100, 64}, 10, SCOPE_PRIVATE}, /* shared address space, RFC 6598 */
};

static const struct prefix v6_prefixes[] = {
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, SCOPE_LOOPBACK},
    {{0xfe, 0x80}, 10, SCOPE_LOOPBACK}, /* link-local */
    {{0xfc}, 7, SCOPE_PRIVATE},         /* unique local, RFC 4193 */
};

/* prefix_match tells whether the first |p->bits| bits of |addr| equal
 * the prefix's. */
static int prefix_match(const unsigned char *addr, const struct prefix *p) {
    unsigned whole = p->bits / 8, rest = p->bits % 8;
    if (memcmp(addr, p->bytes, whole) != 0) {
        return 0;
    }
    if (rest == 0) {
        return 1;
    }
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (addr[whole] & mask) == (p->bytes[whole] & mask);
}

static enum addr_scope classify(const unsigned char *addr, const struct prefix *table,
                                size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (prefix_match(addr, &table[i])) {
            return table[i].scope;
        }
    }
    return SCOPE_GLOBAL;
}

enum addr_scope addr_scope_of(const struct net_addr *a) {
    struct ip_addr ip;
    if (a != NULL && a->ss.ss_family == AF_UNIX) {
        return SCOPE_LOOPBACK;
    }
    if (!net_addr_ip(a, &ip)) {
        return SCOPE_GLOBAL;
    }
    if (ip.family == AF_INET) {
        return classify(ip.bytes, v4_prefixes, sizeof(v4_prefixes) / sizeof(v4_prefixes[0]));
    }
    return classify(ip.bytes, v6_prefixes, sizeof(v6_prefixes) / sizeof(v6_prefixes[0]));
}

const char *addr_scope_name(enum addr_scope scope) {
    switch (scope) {
    case SCOPE_PRIVATE:
        return "private";
    case SCOPE_LOOPBACK:
        return "loopback";
    case SCOPE_GLOBAL:
    default:
        return "global";
    }
}
