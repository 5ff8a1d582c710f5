/*
 * test_client_table.c - the per-client session counter.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "core/client_table.h"
#include "unit.h"

static struct net_addr v4(const char *ip, unsigned port) {
    struct net_addr a = {.len = sizeof(struct sockaddr_in)};
    struct sockaddr_in *sin = (struct sockaddr_in *)&a.ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, ip, &sin->sin_addr);
    return a;
}

static struct net_addr v6(const char *ip) {
    struct net_addr a = {.len = sizeof(struct sockaddr_in6)};
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a.ss;
    sin6->sin6_family = AF_INET6;
    inet_pton(AF_INET6, ip, &sin6->sin6_addr);
    return a;
}

UNIT_TEST(client_table_counts_up_to_the_limit_per_address_whatever_the_port) {
    struct client_table *t = client_table_new();
    struct net_addr a1 = v4("192.0.2.1", 1000), a2 = v4("192.0.2.1", 2000);
    CHECK_INT(client_table_enter(t, &a1, 2), 1);
    CHECK_INT(client_table_enter(t, &a2, 2), 1);
    CHECK_INT(client_table_enter(t, &a1, 2), 0);
    CHECK_INT(client_table_count(t, &a1), 2);
    client_table_leave(t, &a2);
    CHECK_INT(client_table_enter(t, &a1, 2), 1);
    client_table_free(t);
}

UNIT_TEST(client_table_addresses_are_counted_separately) {
    struct client_table *t = client_table_new();
    struct net_addr a = v4("192.0.2.1", 1), b = v4("192.0.2.2", 1), c = v6("2001:db8::1");
    CHECK_INT(client_table_enter(t, &a, 1), 1);
    CHECK_INT(client_table_enter(t, &b, 1), 1);
    CHECK_INT(client_table_enter(t, &c, 1), 1);
    CHECK_INT(client_table_enter(t, &a, 1), 0);
    CHECK_INT(client_table_count(t, &b), 1);
    client_table_free(t);
}

UNIT_TEST(client_table_ipv4_mapped_ipv6_is_the_same_client_as_ipv4) {
    struct client_table *t = client_table_new();
    struct net_addr a = v4("198.51.100.7", 1), m = v6("::ffff:198.51.100.7");
    CHECK_INT(client_table_enter(t, &a, 1), 1);
    CHECK_INT(client_table_enter(t, &m, 1), 0);
    client_table_free(t);
}

UNIT_TEST(client_table_forgets_an_address_when_its_last_session_leaves) {
    struct client_table *t = client_table_new();
    char ip[32];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 5000; i++) {
            snprintf(ip, sizeof(ip), "10.%d.%d.1", i / 256, i % 256);
            struct net_addr a = v4(ip, 1);
            CHECK_INT(client_table_enter(t, &a, 1), 1);
        }
        for (int i = 0; i < 5000; i++) {
            snprintf(ip, sizeof(ip), "10.%d.%d.1", i / 256, i % 256);
            struct net_addr a = v4(ip, 1);
            client_table_leave(t, &a);
            CHECK_INT(client_table_count(t, &a), 0);
        }
    }
    client_table_free(t); /* ASan/LSan: nothing left behind */
}

UNIT_TEST(client_table_limit_zero_counts_nobody) {
    struct client_table *t = client_table_new();
    struct net_addr a = v4("192.0.2.9", 1);
    CHECK_INT(client_table_enter(t, &a, 0), 0);
    CHECK_INT(client_table_count(t, &a), 0);
    client_table_free(t);
}
