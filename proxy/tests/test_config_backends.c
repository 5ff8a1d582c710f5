/*
 * test_config_backends.c - [backend] with several targets: the list,
 * DNS names (localhost through /etc/hosts; others through a stub
 * resolver, so no test depends on the network), balance, down_time,
 * max_tries, and errors naming the line.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "config/config.h"
#include "unit.h"

#define LISTENER "[listener smtp]\naddress = 127.0.0.1:10025\nkind = smtp\n"

static struct config *parse(const char *text, char *err, size_t errlen) {
    return config_parse("b.conf", text, err, errlen);
}

static const char *target_ip(const struct backend_target *t, unsigned *port) {
    static char ip[64];
    net_addr_format(&t->addr, ip, sizeof(ip), port);
    return ip;
}

/* The stub: "two.test" has two addresses, "dup.test" one address twice,
 * "v6.test" an IPv6 one; everything else does not resolve. */
static int stub_calls;
static size_t stub_resolver(const char *host, struct net_addr *out, size_t max, char *err,
                            size_t errlen) {
    stub_calls++;
    const char *addrs[3] = {NULL, NULL, NULL};
    if (strcmp(host, "two.test") == 0) {
        addrs[0] = "192.0.2.1:1";
        addrs[1] = "192.0.2.2:1";
    } else if (strcmp(host, "dup.test") == 0) {
        addrs[0] = "192.0.2.9:1";
        addrs[1] = "192.0.2.9:1";
    } else if (strcmp(host, "v6.test") == 0) {
        addrs[0] = "[2001:db8::25]:1";
    } else {
        snprintf(err, errlen, "Name or service not known");
        return 0;
    }
    size_t n = 0;
    char why[128];
    for (size_t i = 0; i < 3 && addrs[i] != NULL && n < max; i++) {
        if (net_addr_parse(addrs[i], &out[n], why, sizeof(why))) {
            n++;
        }
    }
    return n;
}

UNIT_TEST(config_backend_single_address_keeps_its_defaults) {
    char err[512] = "";
    struct config *c = parse("[backend]\naddress = 127.0.0.1:10026\n" LISTENER, err,
                             sizeof(err));
    CHECK(c != NULL);
    if (c == NULL) {
        unit_fail(__FILE__, __LINE__, "%s", err);
        return;
    }
    CHECK_STR(c->backend.address, "127.0.0.1:10026");
    CHECK_INT(c->backend.ntargets, 1);
    CHECK_STR(c->backend.targets[0].text, "127.0.0.1:10026");
    CHECK_INT(c->backend.balance, BALANCE_FAILOVER);
    CHECK(c->backend.down_time == 30.0);
    CHECK_INT(c->backend.max_tries, 1); /* 3, but there is one target */
    config_free(c);
}

UNIT_TEST(config_backend_list_of_numeric_unix_and_v6_targets_in_order) {
    char err[512] = "";
    struct config *c = parse("[backend]\naddress = 127.0.0.1:2525 ,[::1]:2526,/run/mta.sock,"
                             "  192.0.2.7:25\nbalance = round-robin\ndown_time = 2m\n"
                             "max_tries = 2\n" LISTENER,
                             err, sizeof(err));
    CHECK(c != NULL);
    if (c == NULL) {
        unit_fail(__FILE__, __LINE__, "%s", err);
        return;
    }
    CHECK_INT(c->backend.ntargets, 4);
    if (c->backend.ntargets == 4) {
        unsigned port = 0;
        CHECK_STR(c->backend.targets[0].text, "127.0.0.1:2525");
        CHECK_STR(target_ip(&c->backend.targets[0], &port), "127.0.0.1");
        CHECK_INT(port, 2525);
        CHECK_STR(c->backend.targets[1].text, "[::1]:2526");
        CHECK_INT(c->backend.targets[1].addr.ss.ss_family, AF_INET6);
        CHECK_STR(target_ip(&c->backend.targets[1], &port), "::1");
        CHECK_INT(port, 2526);
        CHECK_STR(c->backend.targets[2].text, "/run/mta.sock");
        CHECK_INT(c->backend.targets[2].addr.ss.ss_family, AF_UNIX);
        CHECK_STR(c->backend.targets[3].text, "192.0.2.7:25");
    }
    CHECK_INT(c->backend.balance, BALANCE_ROUND_ROBIN);
    CHECK_STR(backend_balance_name(c->backend.balance), "round-robin");
    CHECK(c->backend.down_time == 120.0);
    CHECK_INT(c->backend.max_tries, 2);
    config_free(c);
}

UNIT_TEST(config_backend_max_tries_is_at_most_the_number_of_targets) {
    char err[512] = "";
    struct config *c = parse("[backend]\naddress = 127.0.0.1:1, 127.0.0.1:2\nmax_tries = 10\n"
                             LISTENER, err, sizeof(err));
    CHECK(c != NULL);
    if (c != NULL) {
        CHECK_INT(c->backend.max_tries, 2);
    }
    config_free(c);
}

UNIT_TEST(config_backend_localhost_resolves_through_the_system) {
    char err[512] = "";
    struct config *c = parse("[backend]\naddress = localhost:25\n" LISTENER, err, sizeof(err));
    CHECK(c != NULL);
    if (c == NULL) {
        unit_fail(__FILE__, __LINE__, "%s", err);
        return;
    }
    CHECK(c->backend.ntargets >= 1);
    int found = 0;
    for (size_t i = 0; i < c->backend.ntargets; i++) {
        const struct backend_target *t = &c->backend.targets[i];
        unsigned port = 0;
        const char *ip = target_ip(t, &port);
        CHECK_INT(port, 25);
        char want[96];
        snprintf(want, sizeof(want), "localhost:25@%s", ip);
        CHECK_STR(t->text, want);
        found |= strcmp(ip, "127.0.0.1") == 0;
    }
    CHECK(found);
    CHECK_STR(c->backend.address, "localhost:25");
    config_free(c);
}

UNIT_TEST(config_backend_name_with_two_addresses_is_two_targets_in_order) {
    config_set_resolver(stub_resolver);
    char err[512] = "";
    struct config *c = parse("[backend]\naddress = 127.0.0.1:1, two.test:2525, v6.test:25,"
                             " dup.test:26\n" LISTENER, err, sizeof(err));
    CHECK(c != NULL);
    if (c == NULL) {
        unit_fail(__FILE__, __LINE__, "%s", err);
    } else {
        CHECK_INT(c->backend.ntargets, 5);
        if (c->backend.ntargets == 5) {
            unsigned port = 0;
            CHECK_STR(c->backend.targets[0].text, "127.0.0.1:1");
            CHECK_STR(c->backend.targets[1].text, "two.test:2525@192.0.2.1");
            CHECK_STR(target_ip(&c->backend.targets[1], &port), "192.0.2.1");
            CHECK_INT(port, 2525);
            CHECK_STR(c->backend.targets[2].text, "two.test:2525@192.0.2.2");
            CHECK_STR(c->backend.targets[3].text, "v6.test:25@2001:db8::25");
            CHECK_STR(target_ip(&c->backend.targets[3], &port), "2001:db8::25");
            CHECK_INT(port, 25);
            CHECK_STR(c->backend.targets[4].text, "dup.test:26@192.0.2.9");
        }
    }
    config_free(c);
    config_set_resolver(NULL);
}

static void check_backend_error(const char *text, int want_line, const char *reason, int line) {
    char err[512] = "";
    struct config *c = parse(text, err, sizeof(err));
    if (c != NULL) {
        unit_fail(__FILE__, line, "parsed, want an error at line %d", want_line);
        config_free(c);
        return;
    }
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "b.conf:%d: ", want_line);
    if (strncmp(err, prefix, strlen(prefix)) != 0 || strstr(err, reason) == NULL) {
        unit_fail(__FILE__, line, "error \"%s\", want \"%s...%s...\"", err, prefix, reason);
    }
}

UNIT_TEST(config_backend_bad_items_name_the_line) {
    config_set_resolver(stub_resolver);
    stub_calls = 0;
    check_backend_error("[proxy]\n[backend]\n\naddress = 127.0.0.1:1, nowhere.test:25\n" LISTENER,
                        4, "cannot resolve nowhere.test", __LINE__);
    check_backend_error("[backend]\naddress = 127.0.0.1:1,, 127.0.0.1:2\n" LISTENER, 2,
                        "empty item", __LINE__);
    check_backend_error("[backend]\naddress = 127.0.0.1:1, 127.0.0.1:0\n" LISTENER, 2, "port",
                        __LINE__);
    check_backend_error("[backend]\naddress = 127.0.0.1:1, 127.0.0.1\n" LISTENER, 2,
                        "host:port", __LINE__);
    check_backend_error("[backend]\naddress = two.test\n" LISTENER, 2, "host:port", __LINE__);
    check_backend_error("[backend]\naddress = two.test:0\n" LISTENER, 2, "port", __LINE__);
    check_backend_error("[backend]\naddress = 999.1.1.1:25\n" LISTENER, 2, "numeric", __LINE__);
    check_backend_error("[backend]\naddress = bad_name.test:25\n" LISTENER, 2, "numeric",
                        __LINE__);
    check_backend_error("[backend]\naddress = [::1]25\n" LISTENER, 2, "IPv6", __LINE__);
    check_backend_error("[backend]\naddress = 127.0.0.1:1, 127.0.0.1:1\n" LISTENER, 2,
                        "listed twice", __LINE__);
    check_backend_error("[backend]\naddress = two.test:1, two.test:1\n" LISTENER, 2,
                        "listed twice", __LINE__);
    check_backend_error("[backend]\naddress = ,\n" LISTENER, 2, "empty item", __LINE__);
    check_backend_error("[backend]\naddress = 127.0.0.1:1\nbalance = random\n" LISTENER, 3,
                        "failover or round-robin", __LINE__);
    check_backend_error("[backend]\naddress = 127.0.0.1:1\nmax_tries = 0\n" LISTENER, 3,
                        "at least 1", __LINE__);
    check_backend_error("[backend]\naddress = 127.0.0.1:1\nmax_tries = 65\n" LISTENER, 3,
                        "0 to 64", __LINE__);
    check_backend_error("[backend]\naddress = 127.0.0.1:1\ndown_time = 0\n" LISTENER, 3,
                        "duration", __LINE__);
    CHECK(stub_calls >= 2); /* the names went to the resolver, numbers did not */
    config_set_resolver(NULL);
}

UNIT_TEST(config_backend_more_than_64_targets_is_an_error) {
    char text[4096] = "[backend]\naddress = ";
    for (int i = 1; i <= 65; i++) {
        snprintf(text + strlen(text), sizeof(text) - strlen(text), "%s127.0.0.1:%d",
                 i > 1 ? "," : "", i);
    }
    snprintf(text + strlen(text), sizeof(text) - strlen(text), "\n%s", LISTENER);
    check_backend_error(text, 2, "more than 64", __LINE__);
}

UNIT_TEST(config_backend_second_address_line_replaces_the_first) {
    char err[512] = "";
    struct config *c = parse("[backend]\naddress = 127.0.0.1:1, 127.0.0.1:2\n"
                             "address = 127.0.0.1:3\n" LISTENER, err, sizeof(err));
    CHECK(c != NULL);
    if (c != NULL) {
        CHECK_INT(c->backend.ntargets, 1);
        CHECK_STR(c->backend.targets[0].text, "127.0.0.1:3");
        CHECK_STR(c->backend.address, "127.0.0.1:3");
    }
    config_free(c);
}
