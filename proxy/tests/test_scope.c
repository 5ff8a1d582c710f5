/*
 * test_scope.c - scope.h: global / private / loopback at every range edge.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/un.h>

#include "protocol/scope.h"
#include "unit.h"

/* scope_of classifies numeric text ("10.0.0.1", "fe80::1"). */
static enum addr_scope scope_of(const char *text) {
    struct net_addr a;
    memset(&a, 0, sizeof(a));
    if (strchr(text, ':') != NULL) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a.ss;
        sin6->sin6_family = AF_INET6;
        if (inet_pton(AF_INET6, text, &sin6->sin6_addr) != 1) {
            unit_fail(__FILE__, __LINE__, "bad test address %s", text);
        }
        a.len = sizeof(*sin6);
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)&a.ss;
        sin->sin_family = AF_INET;
        if (inet_pton(AF_INET, text, &sin->sin_addr) != 1) {
            unit_fail(__FILE__, __LINE__, "bad test address %s", text);
        }
        a.len = sizeof(*sin);
    }
    return addr_scope_of(&a);
}

struct scope_case {
    const char *addr;
    enum addr_scope want;
};

static void check_cases(const struct scope_case *c, size_t n, int line) {
    for (size_t i = 0; i < n; i++) {
        enum addr_scope got = scope_of(c[i].addr);
        if (got != c[i].want) {
            unit_fail(__FILE__, line, "%s is %s, want %s", c[i].addr, addr_scope_name(got),
                      addr_scope_name(c[i].want));
        }
    }
}

#define CHECK_CASES(c) check_cases((c), sizeof(c) / sizeof((c)[0]), __LINE__)

UNIT_TEST(scope_rfc1918_ranges_are_private_at_both_edges) {
    static const struct scope_case c[] = {
        {"10.0.0.0", SCOPE_PRIVATE},       {"10.255.255.255", SCOPE_PRIVATE},
        {"9.255.255.255", SCOPE_GLOBAL},   {"11.0.0.0", SCOPE_GLOBAL},
        {"172.15.255.255", SCOPE_GLOBAL},  {"172.16.0.0", SCOPE_PRIVATE},
        {"172.31.255.255", SCOPE_PRIVATE}, {"172.32.0.0", SCOPE_GLOBAL},
        {"192.167.255.255", SCOPE_GLOBAL}, {"192.168.0.0", SCOPE_PRIVATE},
        {"192.168.255.255", SCOPE_PRIVATE}, {"192.169.0.0", SCOPE_GLOBAL},
    };
    CHECK_CASES(c);
}

UNIT_TEST(scope_shared_address_space_100_64_10_is_private_at_both_edges) {
    static const struct scope_case c[] = {
        {"100.63.255.255", SCOPE_GLOBAL},
        {"100.64.0.0", SCOPE_PRIVATE},
        {"100.127.255.255", SCOPE_PRIVATE},
        {"100.128.0.0", SCOPE_GLOBAL},
    };
    CHECK_CASES(c);
}

UNIT_TEST(scope_ipv4_loopback_and_link_local_are_loopback) {
    static const struct scope_case c[] = {
        {"127.0.0.1", SCOPE_LOOPBACK},     {"127.0.0.0", SCOPE_LOOPBACK},
        {"127.255.255.255", SCOPE_LOOPBACK}, {"126.255.255.255", SCOPE_GLOBAL},
        {"128.0.0.0", SCOPE_GLOBAL},       {"169.254.1.1", SCOPE_LOOPBACK},
        {"169.254.0.0", SCOPE_LOOPBACK},   {"169.254.255.255", SCOPE_LOOPBACK},
        {"169.253.255.255", SCOPE_GLOBAL}, {"169.255.0.0", SCOPE_GLOBAL},
    };
    CHECK_CASES(c);
}

UNIT_TEST(scope_ipv4_public_and_documentation_ranges_are_global) {
    static const struct scope_case c[] = {
        {"8.8.8.8", SCOPE_GLOBAL},     {"192.0.2.1", SCOPE_GLOBAL},
        {"198.51.100.1", SCOPE_GLOBAL}, {"203.0.113.1", SCOPE_GLOBAL},
        {"0.0.0.0", SCOPE_GLOBAL},     {"255.255.255.255", SCOPE_GLOBAL},
        {"224.0.0.1", SCOPE_GLOBAL},
    };
    CHECK_CASES(c);
}

UNIT_TEST(scope_ipv6_loopback_link_local_and_ula) {
    static const struct scope_case c[] = {
        {"::1", SCOPE_LOOPBACK},
        {"::", SCOPE_GLOBAL},
        {"::2", SCOPE_GLOBAL},
        {"fe80::1", SCOPE_LOOPBACK},
        {"febf:ffff::1", SCOPE_LOOPBACK}, /* last of fe80::/10 */
        {"fec0::1", SCOPE_GLOBAL},        /* deprecated site-local */
        {"fe00::1", SCOPE_GLOBAL},
        {"fc00::1", SCOPE_PRIVATE},
        {"fd12::1", SCOPE_PRIVATE},
        {"fdff:ffff::1", SCOPE_PRIVATE},
        {"fbff:ffff::1", SCOPE_GLOBAL},
        {"2001:db8::1", SCOPE_GLOBAL},
        {"2a00:1450::1", SCOPE_GLOBAL},
        {"ff02::1", SCOPE_GLOBAL},
    };
    CHECK_CASES(c);
}

UNIT_TEST(scope_ipv4_mapped_ipv6_is_classified_by_its_ipv4_address) {
    static const struct scope_case c[] = {
        {"::ffff:192.168.1.1", SCOPE_PRIVATE},
        {"::ffff:8.8.8.8", SCOPE_GLOBAL},
        {"::ffff:127.0.0.1", SCOPE_LOOPBACK},
        {"::ffff:100.64.0.1", SCOPE_PRIVATE},
        {"::ffff:169.254.9.9", SCOPE_LOOPBACK},
        {"::192.168.1.1", SCOPE_GLOBAL}, /* IPv4-compatible, not mapped */
    };
    CHECK_CASES(c);
}

UNIT_TEST(scope_unix_socket_is_loopback_and_unknown_is_global) {
    struct net_addr a;
    memset(&a, 0, sizeof(a));
    struct sockaddr_un *sun = (struct sockaddr_un *)&a.ss;
    sun->sun_family = AF_UNIX;
    snprintf(sun->sun_path, sizeof(sun->sun_path), "/run/smtp.sock");
    CHECK_INT(addr_scope_of(&a), SCOPE_LOOPBACK);
    a.ss.ss_family = AF_UNSPEC;
    CHECK_INT(addr_scope_of(&a), SCOPE_GLOBAL);
    CHECK_INT(addr_scope_of(NULL), SCOPE_GLOBAL);
}

UNIT_TEST(scope_names_match_the_metric_labels) {
    CHECK_STR(addr_scope_name(SCOPE_GLOBAL), "global");
    CHECK_STR(addr_scope_name(SCOPE_PRIVATE), "private");
    CHECK_STR(addr_scope_name(SCOPE_LOOPBACK), "loopback");
    CHECK_STR(addr_scope_name((enum addr_scope)7), "global");
}
