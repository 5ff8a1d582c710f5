/*
 * test_addr.c - addr.h: parsing, formatting and IPv4-mapped folding.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "core/addr.h"
#include "unit.h"

static struct net_addr parsed(const char *text) {
    struct net_addr a;
    char err[128] = "";
    if (!net_addr_parse(text, &a, err, sizeof(err))) {
        unit_fail(__FILE__, __LINE__, "parse %s: %s", text, err);
    }
    return a;
}

UNIT_TEST(addr_ipv4_mapped_ipv6_folds_to_ipv4_everywhere) {
    struct net_addr a = parsed("[::ffff:192.0.2.7]:2525");
    struct ip_addr ip;
    CHECK_INT(net_addr_ip(&a, &ip), 1);
    CHECK_INT(ip.family, AF_INET);
    CHECK(memcmp(ip.bytes, "\xc0\x00\x02\x07", 4) == 0);
    CHECK_INT(ip.port, 2525);
    CHECK_INT(net_addr_is_ipv6(&a), 0);
    char text[64];
    unsigned port = 0;
    net_addr_format(&a, text, sizeof(text), &port);
    CHECK_STR(text, "192.0.2.7");
    CHECK_INT(port, 2525);
}

UNIT_TEST(addr_ipv4_and_its_mapped_form_share_one_table_key) {
    struct net_addr v4 = parsed("192.0.2.7:25"), mapped = parsed("[::ffff:192.0.2.7]:26");
    struct ip_addr a, b;
    uint8_t ka[16], kb[16];
    CHECK_INT(net_addr_ip(&v4, &a), 1);
    CHECK_INT(net_addr_ip(&mapped, &b), 1);
    ip_addr_key(&a, ka);
    ip_addr_key(&b, kb);
    CHECK(memcmp(ka, kb, 16) == 0);
    CHECK(memcmp(ka, "\0\0\0\0\0\0\0\0\0\0\xff\xff\xc0\x00\x02\x07", 16) == 0);
}

UNIT_TEST(addr_real_ipv6_stays_ipv6) {
    struct net_addr a = parsed("[2001:db8::1]:25");
    struct ip_addr ip;
    CHECK_INT(net_addr_ip(&a, &ip), 1);
    CHECK_INT(ip.family, AF_INET6);
    CHECK_INT(net_addr_is_ipv6(&a), 1);
    char text[64];
    net_addr_format(&a, text, sizeof(text), NULL);
    CHECK_STR(text, "2001:db8::1");
}

UNIT_TEST(addr_unix_path_and_null_are_no_ip) {
    struct net_addr a = parsed("/run/legacy.sock");
    struct ip_addr ip;
    CHECK_INT(net_addr_ip(&a, &ip), 0);
    CHECK_INT(net_addr_ip(NULL, &ip), 0);
    CHECK_INT(net_addr_is_ipv6(&a), 0);
    char text[64];
    net_addr_format(&a, text, sizeof(text), NULL);
    CHECK_STR(text, "/run/legacy.sock");
}

UNIT_TEST(addr_parse_refuses_names_and_bad_ports) {
    struct net_addr a;
    char err[128];
    CHECK_INT(net_addr_parse("mx.example.net:25", &a, err, sizeof(err)), 0);
    CHECK(strstr(err, "numeric") != NULL);
    CHECK_INT(net_addr_parse("127.0.0.1:0", &a, err, sizeof(err)), 0);
    CHECK_INT(net_addr_parse("127.0.0.1:65536", &a, err, sizeof(err)), 0);
    CHECK_INT(net_addr_parse("[::1:25", &a, err, sizeof(err)), 0);
}
