/*
 * test_proxy_header.c - proxy_header.h: reading PROXY protocol v1 and v2.
 *
 * Vectors come from haproxy doc/proxy-protocol.txt: section 2.1 (the
 * example line, the maximum line lengths it lists, the field rules),
 * section 2.2 (the v2 layout, built here octet by octet), 2.2.3 (CRC32c:
 * the value below was computed with an independent bitwise CRC32c that
 * gives the RFC 4960 check value 0xE3069283 for "123456789"). Address
 * text is cross-checked against inet_pton over every short string of a
 * small alphabet, and identity.c's encoders are parsed back.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/un.h>

#include "core/buffer.h"
#include "protocol/identity.h"
#include "protocol/proxy_header.h"
#include "unit.h"

#define BOTH (PROXY_ACCEPT_V1 | PROXY_ACCEPT_V2)
#define LIT(s) (const uint8_t *)(s), (sizeof(s) - 1)

/* The v2 signature, version 2 (spec 2.2). */
#define SIG 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A

static char why[256];

static enum proxy_status parse(const uint8_t *p, size_t n, struct proxy_header *h) {
    return proxy_header_parse(p, n, BOTH, PROXY_V2_MAX_DEFAULT, h, why, sizeof(why));
}

static enum proxy_status parse_str(const char *s, struct proxy_header *h) {
    return parse((const uint8_t *)s, strlen(s), h);
}

/* CHECK_ADDR compares |a| with family, numeric text and port. */
#define CHECK_ADDR(a, family, text, port) check_addr(__LINE__, (a), (family), (text), (port))

static void check_addr(int line, const struct net_addr *a, int family, const char *text,
                       unsigned port) {
    char got[INET6_ADDRSTRLEN] = "";
    unsigned got_port = 0;
    int got_family = a->ss.ss_family;
    if (got_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->ss;
        inet_ntop(AF_INET, &sin->sin_addr, got, sizeof(got));
        got_port = ntohs(sin->sin_port);
        if (a->len != sizeof(*sin)) {
            unit_fail(__FILE__, line, "len %u for AF_INET", (unsigned)a->len);
        }
    } else if (got_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, got, sizeof(got));
        got_port = ntohs(sin6->sin6_port);
        if (a->len != sizeof(*sin6)) {
            unit_fail(__FILE__, line, "len %u for AF_INET6", (unsigned)a->len);
        }
    }
    if (got_family != family || strcmp(got, text) != 0 || got_port != port) {
        unit_fail(__FILE__, line, "address family %d %s port %u, want family %d %s port %u",
                  got_family, got, got_port, family, text, port);
    }
}

/* check_prefixes: every proper prefix of the |len|-octet header at |p|
 * (the empty one too) is NEED_MORE, never ERROR, and the whole is DONE
 * with length |len|. */
#define CHECK_PREFIXES(...) check_prefixes(__LINE__, __VA_ARGS__)

static void check_prefixes(int line, const uint8_t *p, size_t len, unsigned accept,
                           size_t v2max) {
    struct proxy_header h;
    for (size_t k = 0; k < len; k++) {
        enum proxy_status s = proxy_header_parse(p, k, accept, v2max, &h, why, sizeof(why));
        if (s != PROXY_NEED_MORE) {
            unit_fail(__FILE__, line, "prefix of %zu of %zu octets: status %d (%s)", k, len,
                      (int)s, why);
            return;
        }
    }
    enum proxy_status s = proxy_header_parse(p, len, accept, v2max, &h, why, sizeof(why));
    if (s != PROXY_DONE || h.length != len) {
        unit_fail(__FILE__, line, "whole header: status %d length %zu, want DONE %zu (%s)",
                  (int)s, h.length, len, why);
    }
}

/* first_error returns the shortest prefix of |p| that is an ERROR (|n| + 1
 * if none is), checking that all shorter ones are NEED_MORE. */
static size_t first_error(const uint8_t *p, size_t n) {
    struct proxy_header h;
    for (size_t k = 0; k <= n; k++) {
        enum proxy_status s = parse(p, k, &h);
        if (s == PROXY_ERROR) {
            return k;
        }
        if (s != PROXY_NEED_MORE) {
            unit_fail(__FILE__, __LINE__, "prefix %zu: status %d", k, (int)s);
            return n + 1;
        }
    }
    return n + 1;
}

/* ---- v1 ------------------------------------------------------------ */

UNIT_TEST(proxy_header_v1_tcp4_spec_example_line) {
    static const char in[] = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
                             "GET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n";
    struct proxy_header h;
    CHECK_INT(parse(LIT(in), &h), PROXY_DONE);
    CHECK_INT(h.version, 1);
    CHECK_INT(h.local, 0);
    CHECK_INT(h.length, strlen("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"));
    CHECK_INT(h.length, 47);
    CHECK_ADDR(&h.src, AF_INET, "192.168.0.1", 56324);
    CHECK_ADDR(&h.dst, AF_INET, "192.168.0.11", 443);
    CHECK_STR(why, "");
    CHECK_PREFIXES((const uint8_t *)in, 47, BOTH, PROXY_V2_MAX_DEFAULT);
}

UNIT_TEST(proxy_header_v1_tcp4_longest_line_is_56_octets) {
    static const char in[] = "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
    struct proxy_header h;
    CHECK_INT(parse(LIT(in), &h), PROXY_DONE);
    CHECK_INT(h.length, 56);
    CHECK_ADDR(&h.src, AF_INET, "255.255.255.255", 65535);
    CHECK_ADDR(&h.dst, AF_INET, "255.255.255.255", 65535);
    CHECK_PREFIXES(LIT(in), BOTH, PROXY_V2_MAX_DEFAULT);
}

UNIT_TEST(proxy_header_v1_tcp4_zero_address_and_ports) {
    static const char in[] = "PROXY TCP4 0.0.0.0 10.0.0.1 0 0\r\n";
    struct proxy_header h;
    CHECK_INT(parse(LIT(in), &h), PROXY_DONE);
    CHECK_ADDR(&h.src, AF_INET, "0.0.0.0", 0);
    CHECK_ADDR(&h.dst, AF_INET, "10.0.0.1", 0);
    CHECK_PREFIXES(LIT(in), BOTH, PROXY_V2_MAX_DEFAULT);
}

UNIT_TEST(proxy_header_v1_tcp6_compressed_addresses) {
    static const char in[] = "PROXY TCP6 2001:db8::1 2001:DB8:0:0:0:0:0:19 49152 25\r\n";
    struct proxy_header h;
    CHECK_INT(parse(LIT(in), &h), PROXY_DONE);
    CHECK_INT(h.version, 1);
    CHECK_INT(h.local, 0);
    CHECK_INT(h.length, sizeof(in) - 1);
    CHECK_ADDR(&h.src, AF_INET6, "2001:db8::1", 49152);
    CHECK_ADDR(&h.dst, AF_INET6, "2001:db8::19", 25);
    CHECK_PREFIXES(LIT(in), BOTH, PROXY_V2_MAX_DEFAULT);
}

UNIT_TEST(proxy_header_v1_tcp6_longest_spec_line_is_104_octets) {
    static const char in[] = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                             "FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF 65535 65535\r\n";
    struct proxy_header h;
    CHECK_INT(sizeof(in) - 1, 104);
    CHECK_INT(parse(LIT(in), &h), PROXY_DONE);
    CHECK_INT(h.length, 104);
    CHECK_ADDR(&h.src, AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
    CHECK_ADDR(&h.dst, AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
    CHECK_PREFIXES(LIT(in), BOTH, PROXY_V2_MAX_DEFAULT);
}

UNIT_TEST(proxy_header_v1_tcp6_forms_inet_pton_reads) {
    static const struct {
        const char *text, *want;
    } ok[] = {
        {"::", "::"},
        {"::1", "::1"},
        {"1::", "1::"},
        {"0000:0000:0000:0000:0000:0000:0000:0001", "::1"},
        {"1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"},
        {"1::2:3:4:5:6:7", "1:0:2:3:4:5:6:7"},
        {"1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"},
        {"::ffff:192.0.2.1", "::ffff:192.0.2.1"},
        {"1:2:3:4:5:6:10.0.0.1", "1:2:3:4:5:6:a00:1"},
        {"1:2:3:4:5::0.0.0.0", "1:2:3:4:5::"},
        {"::0.0.0.1", "::1"},
        {"aBcD::eF", "abcd::ef"},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char line[200];
        snprintf(line, sizeof(line), "PROXY TCP6 %s ::1 1 2\r\n", ok[i].text);
        struct proxy_header h;
        if (parse_str(line, &h) != PROXY_DONE) {
            unit_fail(__FILE__, __LINE__, "%s refused: %s", ok[i].text, why);
            continue;
        }
        CHECK_ADDR(&h.src, AF_INET6, ok[i].want, 1);
        CHECK_PREFIXES((const uint8_t *)line, strlen(line), BOTH, PROXY_V2_MAX_DEFAULT);
    }
}

UNIT_TEST(proxy_header_v1_tcp6_bad_forms_are_refused) {
    static const char *const bad[] = {
        ":::",     "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "1::2::3",        "12345::",
        "1:",      ":1",                "1:2:3:4:5:6:7:8::", "::1.2.3.04",  "g::",
        "1.2.3.4", "::1.2.3",           "1:2:3:4:5:6::1.2.3.4", "::1.2.3.4.5", "::256.0.0.0",
        "::1.2.3.4:1", "1:2:3:4:5:6:7:1.2.3.4", "[::1]", "::%1", "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char line[200];
        snprintf(line, sizeof(line), "PROXY TCP6 %s ::1 1 2\r\n", bad[i]);
        struct proxy_header h;
        if (parse_str(line, &h) != PROXY_ERROR) {
            unit_fail(__FILE__, __LINE__, "\"%s\" accepted", bad[i]);
            continue;
        }
        CHECK_STR(why, "v1: bad source address");
        /* The same as destination address. */
        snprintf(line, sizeof(line), "PROXY TCP6 ::1 %s 1 2\r\n", bad[i]);
        CHECK_INT(parse_str(line, &h), PROXY_ERROR);
        CHECK_STR(why, "v1: bad destination address");
    }
}

/* Every string of up to 7 octets over "01f:." as a TCP6 address: the
 * parser accepts exactly what inet_pton(AF_INET6) accepts, and a prefix
 * it calls NEED_MORE has a completion inet_pton accepts (one of the
 * shortest completions the scanner's states need). */
UNIT_TEST(proxy_header_v1_tcp6_addresses_agree_with_inet_pton) {
    static const char alphabet[] = "01f:.";
    static const char *const completions[] = {"",    ":",      "0",      "::",  ".0",
                                              ".0.0", ".0.0.0", "0.0.0", "0.0"};
    size_t mismatches = 0, more = 0;
    for (size_t len = 1; len <= 7; len++) {
        size_t count = 1;
        for (size_t k = 0; k < len; k++) {
            count *= 5;
        }
        for (size_t idx = 0; idx < count && mismatches < 5; idx++) {
            char t[16];
            size_t v = idx;
            for (size_t k = 0; k < len; k++) {
                t[k] = alphabet[v % 5];
                v /= 5;
            }
            t[len] = '\0';
            struct in6_addr a;
            int want = inet_pton(AF_INET6, t, &a) == 1;
            char line[64];
            snprintf(line, sizeof(line), "PROXY TCP6 %s ::1 1 2\r\n", t);
            struct proxy_header h;
            enum proxy_status s = parse_str(line, &h);
            if ((s == PROXY_DONE) != want) {
                unit_fail(__FILE__, __LINE__, "\"%s\": status %d, inet_pton %d", t, (int)s, want);
                mismatches++;
                continue;
            }
            if (want) {
                const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&h.src.ss;
                if (memcmp(&sin6->sin6_addr, &a, 16) != 0) {
                    unit_fail(__FILE__, __LINE__, "\"%s\": other address than inet_pton", t);
                    mismatches++;
                }
            }
            /* The prefix alone. */
            snprintf(line, sizeof(line), "PROXY TCP6 %s", t);
            s = parse_str(line, &h);
            int completes = 0;
            for (size_t c = 0; c < sizeof(completions) / sizeof(completions[0]); c++) {
                char longer[32];
                snprintf(longer, sizeof(longer), "%s%s", t, completions[c]);
                if (inet_pton(AF_INET6, longer, &a) == 1) {
                    completes = 1;
                }
            }
            if (s == PROXY_NEED_MORE) {
                more++;
            }
            if ((s == PROXY_NEED_MORE) != completes || s == PROXY_DONE) {
                unit_fail(__FILE__, __LINE__, "prefix \"%s\": status %d, completable %d", t,
                          (int)s, completes);
                mismatches++;
            }
        }
    }
    CHECK_INT(mismatches, 0);
    CHECK(more > 1000);
}

/* Every string of up to 8 octets over "015." as a TCP4 address agrees
 * with inet_pton(AF_INET) (which, like the spec, refuses heading zeroes
 * and numbers above 255). */
UNIT_TEST(proxy_header_v1_tcp4_addresses_agree_with_inet_pton) {
    static const char alphabet[] = "015.";
    size_t mismatches = 0;
    for (size_t len = 1; len <= 8; len++) {
        size_t count = (size_t)1 << (2 * len);
        for (size_t idx = 0; idx < count && mismatches < 5; idx++) {
            char t[16];
            size_t v = idx;
            for (size_t k = 0; k < len; k++) {
                t[k] = alphabet[v % 4];
                v /= 4;
            }
            t[len] = '\0';
            struct in_addr a;
            int want = inet_pton(AF_INET, t, &a) == 1;
            char line[64];
            snprintf(line, sizeof(line), "PROXY TCP4 %s 1.1.1.1 1 2\r\n", t);
            struct proxy_header h;
            enum proxy_status s = parse_str(line, &h);
            if ((s == PROXY_DONE) != want) {
                unit_fail(__FILE__, __LINE__, "\"%s\": status %d, inet_pton %d", t, (int)s, want);
                mismatches++;
            } else if (want && memcmp(&((const struct sockaddr_in *)&h.src.ss)->sin_addr, &a,
                                      4) != 0) {
                unit_fail(__FILE__, __LINE__, "\"%s\": other address than inet_pton", t);
                mismatches++;
            }
        }
    }
    CHECK_INT(mismatches, 0);
}

UNIT_TEST(proxy_header_v1_tcp4_bad_addresses_are_refused) {
    static const char *const bad[] = {
        "256.1.1.1", "01.2.3.4", "1.2.3.00", "1.2.3",   "1.2.3.4.5", "1..2.3", ".1.2.3",
        "1.2.3.",    "::1",      "a.b.c.d",  "1.2.3.4x", "+1.2.3.4", "1.2.3.4/8", "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char line[200];
        struct proxy_header h;
        snprintf(line, sizeof(line), "PROXY TCP4 %s 1.1.1.1 1 2\r\n", bad[i]);
        if (parse_str(line, &h) != PROXY_ERROR) {
            unit_fail(__FILE__, __LINE__, "\"%s\" accepted", bad[i]);
        }
        CHECK_STR(why, "v1: bad source address");
        snprintf(line, sizeof(line), "PROXY TCP4 1.1.1.1 %s 1 2\r\n", bad[i]);
        CHECK_INT(parse_str(line, &h), PROXY_ERROR);
        CHECK_STR(why, "v1: bad destination address");
    }
}

UNIT_TEST(proxy_header_v1_ports_are_0_to_65535_without_heading_zeroes) {
    char line[100];
    struct proxy_header h;
    for (unsigned port = 0; port <= 70000; port++) {
        snprintf(line, sizeof(line), "PROXY TCP4 1.1.1.1 2.2.2.2 %u 25\r\n", port);
        enum proxy_status s = parse_str(line, &h);
        if (port <= 65535) {
            if (s != PROXY_DONE || ntohs(((struct sockaddr_in *)&h.src.ss)->sin_port) != port) {
                unit_fail(__FILE__, __LINE__, "port %u: status %d", port, (int)s);
                break;
            }
        } else if (s != PROXY_ERROR || strcmp(why, "v1: bad source port") != 0) {
            unit_fail(__FILE__, __LINE__, "port %u: status %d", port, (int)s);
            break;
        }
    }
    static const char *const bad[] = {"00", "01", "0443", "-1", "+1", "1e3", "", "65536",
                                      "99999", "4294967321", "1.5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(line, sizeof(line), "PROXY TCP4 1.1.1.1 2.2.2.2 %s 25\r\n", bad[i]);
        if (parse_str(line, &h) != PROXY_ERROR) {
            unit_fail(__FILE__, __LINE__, "source port \"%s\" accepted", bad[i]);
        }
        CHECK_STR(why, "v1: bad source port");
        snprintf(line, sizeof(line), "PROXY TCP4 1.1.1.1 2.2.2.2 25 %s\r\n", bad[i]);
        if (parse_str(line, &h) != PROXY_ERROR) {
            unit_fail(__FILE__, __LINE__, "destination port \"%s\" accepted", bad[i]);
        }
        CHECK_STR(why, "v1: bad destination port");
    }
}

UNIT_TEST(proxy_header_v1_unknown_short_form_is_local) {
    static const char in[] = "PROXY UNKNOWN\r\nEHLO x\r\n";
    struct proxy_header h;
    CHECK_INT(parse(LIT(in), &h), PROXY_DONE);
    CHECK_INT(h.version, 1);
    CHECK_INT(h.local, 1);
    CHECK_INT(h.length, 15);
    CHECK_INT(h.src.ss.ss_family, AF_UNSPEC);
    CHECK_INT(h.dst.len, 0);
    CHECK_PREFIXES((const uint8_t *)in, 15, BOTH, PROXY_V2_MAX_DEFAULT);
}

UNIT_TEST(proxy_header_v1_unknown_with_addresses_ignores_them) {
    static const char in[] = "PROXY UNKNOWN 192.0.2.1 192.0.2.2 1 2\r\n";
    struct proxy_header h;
    CHECK_INT(parse(LIT(in), &h), PROXY_DONE);
    CHECK_INT(h.local, 1);
    CHECK_INT(h.length, sizeof(in) - 1);
    /* "the receiver must ignore anything presented before the CRLF". */
    static const char junk[] = "PROXY UNKNOWN not even addresses \x01\x7f\xff\r\n";
    CHECK_INT(parse(LIT(junk), &h), PROXY_DONE);
    CHECK_INT(h.length, sizeof(junk) - 1);
    CHECK_PREFIXES(LIT(junk), BOTH, PROXY_V2_MAX_DEFAULT);
}

UNIT_TEST(proxy_header_v1_worst_case_107_octet_line_is_accepted) {
    static const char in[] = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                             "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    struct proxy_header h;
    CHECK_INT(sizeof(in) - 1, PROXY_V1_MAX);
    CHECK_INT(parse(LIT(in), &h), PROXY_DONE);
    CHECK_INT(h.length, 107);
    CHECK_INT(h.local, 1);
    CHECK_PREFIXES(LIT(in), BOTH, PROXY_V2_MAX_DEFAULT);
}

UNIT_TEST(proxy_header_v1_no_crlf_within_107_octets_is_an_error) {
    uint8_t line[120];
    memcpy(line, "PROXY UNKNOWN ", 14);
    memset(line + 14, 'x', sizeof(line) - 14);
    struct proxy_header h;
    /* 105 octets without CR can still end at 107 ... */
    CHECK_INT(parse(line, 105, &h), PROXY_NEED_MORE);
    /* ... 106 cannot (the CR would be the 107th octet, the LF the 108th). */
    CHECK_INT(parse(line, 106, &h), PROXY_ERROR);
    CHECK_STR(why, "v1: no CRLF within 107 octets");
    CHECK_INT(parse(line, 108, &h), PROXY_ERROR);
    CHECK_STR(why, "v1: no CRLF within 107 octets");
    /* A CR as the 106th octet may still be followed by the LF. */
    line[105] = '\r';
    CHECK_INT(parse(line, 106, &h), PROXY_NEED_MORE);
    line[106] = '\n';
    CHECK_INT(parse(line, 107, &h), PROXY_DONE);
    CHECK_INT(h.length, 107);
    /* A 108-octet line with its CRLF is one too long. */
    line[105] = 'x';
    line[106] = '\r';
    line[107] = '\n';
    CHECK_INT(parse(line, 107, &h), PROXY_ERROR);
    CHECK_INT(parse(line, 108, &h), PROXY_ERROR);
    CHECK_STR(why, "v1: no CRLF within 107 octets");
}

/* A TCP6 line with IPv4 tails can be longer than the spec's 104: the
 * 107 limit still holds, and is applied as soon as the shortest possible
 * rest of the line would pass it. */
UNIT_TEST(proxy_header_v1_tcp6_with_ipv4_tails_stays_within_107_octets) {
    static const char in107[] = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 "
                                "ffff:ffff:ffff:ffff::255.255.255.255 65535 65535\r\n";
    CHECK_INT(sizeof(in107) - 1, 107);
    struct proxy_header h;
    CHECK_INT(parse(LIT(in107), &h), PROXY_DONE);
    CHECK_ADDR(&h.src, AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
    CHECK_ADDR(&h.dst, AF_INET6, "ffff:ffff:ffff:ffff::ffff:ffff", 65535);
    CHECK_PREFIXES(LIT(in107), BOTH, PROXY_V2_MAX_DEFAULT);

    /* 108 octets: "...6553" (105) could still end "\r\n" at 107, the
     * 106th octet makes it impossible. */
    static const char in108[] = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 "
                                "ffff:ffff:ffff:fff:f::255.255.255.255 65535 65535\r\n";
    CHECK_INT(sizeof(in108) - 1, 108);
    CHECK_INT(first_error(LIT(in108)), 106);
    CHECK_STR(why, "v1: no CRLF within 107 octets");

    /* Two full IPv4 tails: after "...255.255.255.25" of the destination
     * (101 octets) " 0 0\r\n" still fits, one more digit does not. */
    static const char in116[] = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 "
                                "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 65535 65535\r\n";
    CHECK_INT(sizeof(in116) - 1, 116);
    CHECK_INT(first_error(LIT(in116)), 102);
    CHECK_STR(why, "v1: no CRLF within 107 octets");
    CHECK_INT(parse((const uint8_t *)"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 "
                    "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.25 0 0\r\n", 107, &h),
              PROXY_DONE);
}

UNIT_TEST(proxy_header_v1_single_spaces_only) {
    static const char *const bad[] = {
        "PROXY  TCP4 1.1.1.1 2.2.2.2 1 2\r\n", "PROXY TCP4  1.1.1.1 2.2.2.2 1 2\r\n",
        "PROXY TCP4 1.1.1.1  2.2.2.2 1 2\r\n", "PROXY TCP4 1.1.1.1 2.2.2.2  1 2\r\n",
        "PROXY TCP4 1.1.1.1 2.2.2.2 1  2\r\n", "PROXY TCP4 1.1.1.1 2.2.2.2 1 2 \r\n",
        "PROXY\tTCP4 1.1.1.1 2.2.2.2 1 2\r\n", "PROXY TCP4\t1.1.1.1 2.2.2.2 1 2\r\n",
        "PROXY TCP4 1.1.1.1 2.2.2.2 1\r\n",   "PROXY TCP4 1.1.1.1 2.2.2.2\r\n",
        "PROXY TCP4\r\n",                      "PROXY\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct proxy_header h;
        if (parse_str(bad[i], &h) != PROXY_ERROR) {
            unit_fail(__FILE__, __LINE__, "%s accepted", unit_show_bytes(bad[i], strlen(bad[i])));
        }
    }
    struct proxy_header h;
    CHECK_INT(parse_str("PROXY  TCP4 1.1.1.1 2.2.2.2 1 2\r\n", &h), PROXY_ERROR);
    CHECK_STR(why, "v1: bad protocol");
    CHECK_INT(parse_str("PROXY TCP4 1.1.1.1 2.2.2.2 1  2\r\n", &h), PROXY_ERROR);
    CHECK_STR(why, "v1: bad destination port");
}

UNIT_TEST(proxy_header_v1_keywords_are_case_sensitive) {
    struct proxy_header h;
    CHECK_INT(parse_str("proxy TCP4 1.1.1.1 2.2.2.2 1 2\r\n", &h), PROXY_ERROR);
    CHECK_STR(why, "not a PROXY protocol header");
    CHECK_INT(parse_str("Proxy TCP4 1.1.1.1 2.2.2.2 1 2\r\n", &h), PROXY_ERROR);
    CHECK_INT(parse_str("PROXY tcp4 1.1.1.1 2.2.2.2 1 2\r\n", &h), PROXY_ERROR);
    CHECK_STR(why, "v1: bad protocol");
    CHECK_INT(parse_str("PROXY unknown\r\n", &h), PROXY_ERROR);
    CHECK_INT(parse_str("PROXY TCP5 1.1.1.1 2.2.2.2 1 2\r\n", &h), PROXY_ERROR);
    CHECK_INT(parse_str("PROXY UDP4 1.1.1.1 2.2.2.2 1 2\r\n", &h), PROXY_ERROR);
    CHECK_INT(parse_str("PROXY UNKNOWNX\r\n", &h), PROXY_ERROR);
    CHECK_STR(why, "v1: bad protocol");
    /* TCP4 wants IPv4 text and TCP6 IPv6 text. */
    CHECK_INT(parse_str("PROXY TCP4 ::1 ::1 1 2\r\n", &h), PROXY_ERROR);
    CHECK_STR(why, "v1: bad source address");
    CHECK_INT(parse_str("PROXY TCP6 1.1.1.1 2.2.2.2 1 2\r\n", &h), PROXY_ERROR);
    CHECK_STR(why, "v1: bad source address");
    CHECK_INT(parse_str("PROXY TCP6 ::1 2.2.2.2 1 2\r\n", &h), PROXY_ERROR);
    CHECK_STR(why, "v1: bad destination address");
}

UNIT_TEST(proxy_header_v1_needs_a_full_crlf) {
    struct proxy_header h;
    /* A lone LF ... */
    CHECK_INT(parse_str("PROXY TCP4 1.1.1.1 2.2.2.2 1 2\nEHLO x\r\n", &h), PROXY_ERROR);
    CHECK_STR(why, "v1: bad destination port");
    CHECK_INT(parse_str("PROXY UNKNOWN\nEHLO x\r\n", &h), PROXY_ERROR);
    CHECK_STR(why, "v1: LF without CR");
    CHECK_INT(parse_str("PROXY UNKNOWN x\ny\r\n", &h), PROXY_ERROR);
    CHECK_STR(why, "v1: LF without CR");
    /* ... or a lone CR does not end the line. */
    CHECK_INT(parse_str("PROXY TCP4 1.1.1.1 2.2.2.2 1 2\rEHLO x\r\n", &h), PROXY_ERROR);
    CHECK_STR(why, "v1: CR without LF");
    CHECK_INT(parse_str("PROXY UNKNOWN x\ry\r\n", &h), PROXY_ERROR);
    CHECK_STR(why, "v1: CR without LF");
    CHECK_INT(parse_str("PROXY UNKNOWN\r\r\n", &h), PROXY_ERROR);
    /* A CR at the end may be followed by its LF. */
    CHECK_INT(parse_str("PROXY TCP4 1.1.1.1 2.2.2.2 1 2\r", &h), PROXY_NEED_MORE);
    CHECK_INT(parse_str("PROXY UNKNOWN\r", &h), PROXY_NEED_MORE);
}

/* ---- v2 ------------------------------------------------------------ */

/* TCP over IPv4 from 192.0.2.1:56324 to 198.51.100.7:25 (spec 2.2: 16
 * octets, then 4 + 4 address octets and 2 + 2 port octets). */
static const uint8_t v2_inet[] = {SIG,  0x21, 0x11, 0x00, 0x0C, 0xC0, 0x00, 0x02, 0x01, 0xC6,
                                  0x33, 0x64, 0x07, 0xDC, 0x04, 0x00, 0x19};

/* TCP over IPv6 from [2001:db8::1]:49152 to [2001:db8::25]:587. */
static const uint8_t v2_inet6[] = {
    SIG,  0x21, 0x21, 0x00, 0x24, 0x20, 0x01, 0x0D, 0xB8, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0D, 0xB8, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x25, 0xC0, 0x00,
    0x02, 0x4B,
};

UNIT_TEST(proxy_header_v2_tcp_over_ipv4) {
    struct proxy_header h;
    CHECK_INT(sizeof(v2_inet), 28);
    CHECK_INT(parse(v2_inet, sizeof(v2_inet), &h), PROXY_DONE);
    CHECK_INT(h.version, 2);
    CHECK_INT(h.local, 0);
    CHECK_INT(h.length, 28);
    CHECK_ADDR(&h.src, AF_INET, "192.0.2.1", 56324);
    CHECK_ADDR(&h.dst, AF_INET, "198.51.100.7", 25);
    CHECK_PREFIXES(v2_inet, sizeof(v2_inet), BOTH, PROXY_V2_MAX_DEFAULT);
}

UNIT_TEST(proxy_header_v2_tcp_over_ipv6) {
    struct proxy_header h;
    CHECK_INT(sizeof(v2_inet6), 52);
    CHECK_INT(parse(v2_inet6, sizeof(v2_inet6), &h), PROXY_DONE);
    CHECK_INT(h.version, 2);
    CHECK_INT(h.local, 0);
    CHECK_INT(h.length, 52);
    CHECK_ADDR(&h.src, AF_INET6, "2001:db8::1", 49152);
    CHECK_ADDR(&h.dst, AF_INET6, "2001:db8::25", 587);
    CHECK_PREFIXES(v2_inet6, sizeof(v2_inet6), BOTH, PROXY_V2_MAX_DEFAULT);
}

UNIT_TEST(proxy_header_v2_local_uses_the_real_endpoints) {
    static const uint8_t local[] = {SIG, 0x20, 0x00, 0x00, 0x00};
    struct proxy_header h;
    CHECK_INT(parse(local, sizeof(local), &h), PROXY_DONE);
    CHECK_INT(h.version, 2);
    CHECK_INT(h.local, 1);
    CHECK_INT(h.length, 16);
    CHECK_INT(h.src.len, 0);
    CHECK_PREFIXES(local, sizeof(local), BOTH, PROXY_V2_MAX_DEFAULT);
    /* "must not assume zero is presented for LOCAL connections": a LOCAL
     * with an address block is skipped whole, the family ignored. */
    uint8_t with[sizeof(v2_inet)];
    memcpy(with, v2_inet, sizeof(with));
    with[12] = 0x20;
    CHECK_INT(parse(with, sizeof(with), &h), PROXY_DONE);
    CHECK_INT(h.local, 1);
    CHECK_INT(h.length, 28);
    CHECK_PREFIXES(with, sizeof(with), BOTH, PROXY_V2_MAX_DEFAULT);
    static const uint8_t odd_family[] = {SIG, 0x20, 0xFF, 0x00, 0x03, 0x01, 0x02, 0x03};
    CHECK_INT(parse(odd_family, sizeof(odd_family), &h), PROXY_DONE);
    CHECK_INT(h.local, 1);
    CHECK_INT(h.length, 19);
}

UNIT_TEST(proxy_header_v2_proxy_with_af_unspec_is_local) {
    static const uint8_t unspec[] = {SIG, 0x21, 0x00, 0x00, 0x00};
    struct proxy_header h;
    CHECK_INT(parse(unspec, sizeof(unspec), &h), PROXY_DONE);
    CHECK_INT(h.local, 1);
    CHECK_INT(h.length, 16);
    /* Address information present but ignored, TLVs or not. */
    static const uint8_t unspec_data[] = {SIG, 0x21, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5};
    CHECK_INT(parse(unspec_data, sizeof(unspec_data), &h), PROXY_DONE);
    CHECK_INT(h.local, 1);
    CHECK_INT(h.length, 21);
    CHECK_PREFIXES(unspec_data, sizeof(unspec_data), BOTH, PROXY_V2_MAX_DEFAULT);
    /* A family with protocol UNSPEC, or UNSPEC with STREAM, likewise. */
    static const uint8_t inet_unspec[] = {SIG, 0x21, 0x10, 0x00, 0x00};
    CHECK_INT(parse(inet_unspec, sizeof(inet_unspec), &h), PROXY_DONE);
    CHECK_INT(h.local, 1);
    static const uint8_t unspec_stream[] = {SIG, 0x21, 0x01, 0x00, 0x00};
    CHECK_INT(parse(unspec_stream, sizeof(unspec_stream), &h), PROXY_DONE);
    CHECK_INT(h.local, 1);
}

UNIT_TEST(proxy_header_v2_af_unix_falls_back_to_local) {
    uint8_t u[16 + 216 + 4];
    memset(u, 0, sizeof(u));
    static const uint8_t head[] = {SIG, 0x21, 0x31, 0x00, 0xD8};
    memcpy(u, head, sizeof(head));
    memcpy(u + 16, "/run/lb.sock", 12);
    memcpy(u + 16 + 108, "/run/smtp.sock", 14);
    struct proxy_header h;
    CHECK_INT(parse(u, 16 + 216, &h), PROXY_DONE);
    CHECK_INT(h.local, 1);
    CHECK_INT(h.length, 232);
    CHECK_PREFIXES(u, 232, BOTH, PROXY_V2_MAX_DEFAULT);
    u[13] = 0x32; /* UNIX datagram */
    CHECK_INT(parse(u, 232, &h), PROXY_DONE);
    CHECK_INT(h.local, 1);
    /* The 216 octets are "exactly 108 bytes each": fewer is malformed. */
    u[15] = 0xD7;
    CHECK_INT(parse(u, 232, &h), PROXY_ERROR);
    CHECK_STR(why, "v2: 215 octets for a 216-octet address block");
    /* A TLV after the block is read (here a 1-octet NOOP). */
    u[15] = 0xDC;
    u[232] = 0x04;
    u[233] = 0x00;
    u[234] = 0x01;
    CHECK_INT(parse(u, 236, &h), PROXY_DONE);
    CHECK_INT(h.length, 236);
    u[234] = 0x02;
    CHECK_INT(parse(u, 236, &h), PROXY_ERROR);
}

UNIT_TEST(proxy_header_v2_udp_falls_back_to_local) {
    uint8_t udp[sizeof(v2_inet)];
    memcpy(udp, v2_inet, sizeof(udp));
    udp[13] = 0x12;
    struct proxy_header h;
    CHECK_INT(parse(udp, sizeof(udp), &h), PROXY_DONE);
    CHECK_INT(h.local, 1);
    CHECK_INT(h.length, 28);
    uint8_t udp6[sizeof(v2_inet6)];
    memcpy(udp6, v2_inet6, sizeof(udp6));
    udp6[13] = 0x22;
    CHECK_INT(parse(udp6, sizeof(udp6), &h), PROXY_DONE);
    CHECK_INT(h.local, 1);
    CHECK_INT(h.length, 52);
}

UNIT_TEST(proxy_header_v2_tlvs_are_skipped) {
    static const uint8_t in[] = {
        SIG, 0x21, 0x11, 0x00, 0x39,                         /* 12 + 45 */
        0xC0, 0x00, 0x02, 0x01, 0xC6, 0x33, 0x64, 0x07, 0xDC, 0x04, 0x00, 0x19,
        0x04, 0x00, 0x00,                                    /* NOOP, empty */
        0x01, 0x00, 0x04, 's', 'm', 't', 'p',                /* ALPN */
        0x02, 0x00, 0x0E, 'm', 'x', '.', 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'n',
        'e', 't',                                            /* AUTHORITY */
        0x20, 0x00, 0x0C, 0x01, 0x00, 0x00, 0x00, 0x00,      /* SSL: client, verify */
        0x21, 0x00, 0x04, '1', '.', '3', '!',                /*   VERSION (value opaque) */
        0xE0, 0x00, 0x00,                                    /* custom, empty */
        'E', 'H', 'L', 'O', ' ', 'x', '\r', '\n',            /* not the header */
    };
    struct proxy_header h;
    CHECK_INT(parse(in, sizeof(in), &h), PROXY_DONE);
    CHECK_INT(h.length, 16 + 57);
    CHECK_INT(h.length, sizeof(in) - 8);
    CHECK_INT(h.local, 0);
    CHECK_ADDR(&h.src, AF_INET, "192.0.2.1", 56324);
    CHECK_ADDR(&h.dst, AF_INET, "198.51.100.7", 25);
    CHECK_PREFIXES(in, sizeof(in) - 8, BOTH, PROXY_V2_MAX_DEFAULT);
}

UNIT_TEST(proxy_header_v2_tlv_running_past_the_header_is_an_error) {
    /* A TLV claiming 5 octets with 4 left in the header: refused as soon
     * as its length is seen (octet 31), not when the rest arrives. */
    static const uint8_t in[] = {SIG,  0x21, 0x11, 0x00, 0x13, 0xC0, 0x00, 0x02, 0x01,
                                 0xC6, 0x33, 0x64, 0x07, 0xDC, 0x04, 0x00, 0x19, 0x01,
                                 0x00, 0x05, 'a',  'b',  'c',  'd',  'e'};
    struct proxy_header h;
    CHECK_INT(first_error(in, sizeof(in)), 31);
    CHECK_STR(why, "v2: TLV 0x01 of 5 octets overruns the header");
    CHECK_INT(parse(in, sizeof(in), &h), PROXY_ERROR);
    /* A huge TLV length. */
    static const uint8_t in2[] = {SIG,  0x21, 0x11, 0x00, 0x0F, 0xC0, 0x00, 0x02, 0x01,
                                  0xC6, 0x33, 0x64, 0x07, 0xDC, 0x04, 0x00, 0x19, 0xEE,
                                  0xFF, 0xFF};
    CHECK_INT(parse(in2, sizeof(in2), &h), PROXY_ERROR);
    CHECK_STR(why, "v2: TLV 0xee of 65535 octets overruns the header");
}

UNIT_TEST(proxy_header_v2_leftover_shorter_than_a_tlv_is_an_error) {
    /* 12 address octets and 1 or 2 more: no room for type and length.
     * Known from the length field alone, so refused at octet 16. */
    for (unsigned extra = 1; extra <= 2; extra++) {
        uint8_t in[sizeof(v2_inet) + 2];
        memcpy(in, v2_inet, sizeof(v2_inet));
        in[15] = (uint8_t)(12 + extra);
        in[28] = 0x04;
        in[29] = 0x00;
        CHECK_INT(first_error(in, sizeof(v2_inet) + extra), 16);
        char want[64];
        snprintf(want, sizeof(want), "v2: %u octets after the last TLV", extra);
        CHECK_STR(why, want);
    }
    /* And after a complete TLV. */
    static const uint8_t after[] = {SIG,  0x21, 0x11, 0x00, 0x11, 0xC0, 0x00, 0x02, 0x01,
                                    0xC6, 0x33, 0x64, 0x07, 0xDC, 0x04, 0x00, 0x19, 0x04,
                                    0x00, 0x00, 0x04, 0x00};
    CHECK_INT(first_error(after, sizeof(after)), 31);
    CHECK_STR(why, "v2: 2 octets after the last TLV");
}

/* The value was computed by an independent CRC32c (see the top). */
static const uint8_t v2_crc[] = {SIG,  0x21, 0x11, 0x00, 0x13, 0xC0, 0x00, 0x02, 0x01,
                                 0xC6, 0x33, 0x64, 0x07, 0xDC, 0x04, 0x00, 0x19, 0x03,
                                 0x00, 0x04, 0x8B, 0x1D, 0xCE, 0x42};

UNIT_TEST(proxy_header_v2_crc32c_is_verified) {
    struct proxy_header h;
    CHECK_INT(parse(v2_crc, sizeof(v2_crc), &h), PROXY_DONE);
    CHECK_INT(h.length, 35);
    CHECK_ADDR(&h.src, AF_INET, "192.0.2.1", 56324);
    CHECK_PREFIXES(v2_crc, sizeof(v2_crc), BOTH, PROXY_V2_MAX_DEFAULT);
    /* Any changed octet outside the checksum, or in it, fails it. */
    for (size_t i = 16; i < sizeof(v2_crc); i++) {
        if (i >= 28 && i < 31) {
            continue; /* the TLV's own type and length */
        }
        uint8_t bad[sizeof(v2_crc)];
        memcpy(bad, v2_crc, sizeof(bad));
        bad[i] ^= 0x01;
        if (parse(bad, sizeof(bad), &h) != PROXY_ERROR || strcmp(why, "v2: CRC32C mismatch")) {
            unit_fail(__FILE__, __LINE__, "octet %zu changed: %s", i, why);
        }
    }
}

UNIT_TEST(proxy_header_v2_crc32c_tlv_must_be_4_octets_and_single) {
    struct proxy_header h;
    static const uint8_t three[] = {SIG,  0x21, 0x11, 0x00, 0x12, 0xC0, 0x00, 0x02, 0x01,
                                    0xC6, 0x33, 0x64, 0x07, 0xDC, 0x04, 0x00, 0x19, 0x03,
                                    0x00, 0x03, 0x00, 0x00, 0x00};
    CHECK_INT(parse(three, sizeof(three), &h), PROXY_ERROR);
    CHECK_STR(why, "v2: CRC32C TLV of 3 octets");
    uint8_t twice[sizeof(v2_crc) + 7];
    memcpy(twice, v2_crc, sizeof(v2_crc));
    memcpy(twice + sizeof(v2_crc), v2_crc + 28, 7);
    twice[15] = 0x13 + 7;
    CHECK_INT(parse(twice, sizeof(twice), &h), PROXY_ERROR);
    CHECK_STR(why, "v2: more than one CRC32C TLV");
}

UNIT_TEST(proxy_header_v2_longer_than_the_limit_is_an_error) {
    struct proxy_header h;
    static const uint8_t big[] = {SIG, 0x21, 0x11, 0xFF, 0xFF};
    CHECK_INT(parse(big, sizeof(big), &h), PROXY_ERROR);
    CHECK_STR(why, "v2: length 65551 exceeds 1024");
    /* Refused at the length field, before the body is read. */
    CHECK_INT(parse(big, 15, &h), PROXY_NEED_MORE);
    static const uint8_t over[] = {SIG, 0x20, 0x00, 0x03, 0xF1};
    CHECK_INT(parse(over, sizeof(over), &h), PROXY_ERROR);
    CHECK_STR(why, "v2: length 1025 exceeds 1024");
    /* Exactly the limit is fine. */
    uint8_t at[1024];
    memset(at, 0, sizeof(at));
    static const uint8_t head[] = {SIG, 0x20, 0x00, 0x03, 0xF0};
    memcpy(at, head, sizeof(head));
    CHECK_INT(parse(at, sizeof(at), &h), PROXY_DONE);
    CHECK_INT(h.length, 1024);
    /* A smaller limit: the IPv4 header needs 28 octets; with 27, the
     * family octet already decides. */
    CHECK_INT(proxy_header_parse(v2_inet, 13, BOTH, 27, &h, why, sizeof(why)),
              PROXY_NEED_MORE);
    CHECK_INT(proxy_header_parse(v2_inet, 14, BOTH, 27, &h, why, sizeof(why)), PROXY_ERROR);
    CHECK_STR(why, "v2: length 28 exceeds 27");
    CHECK_PREFIXES(v2_inet, sizeof(v2_inet), BOTH, 28);
    /* Below 16 no v2 header fits. */
    CHECK_INT(proxy_header_parse(v2_inet, 1, BOTH, 15, &h, why, sizeof(why)), PROXY_ERROR);
    CHECK_STR(why, "v2 header, but only v1 is accepted");
    CHECK_INT(proxy_header_parse(v2_inet, 1, PROXY_ACCEPT_V2, 15, &h, why, sizeof(why)),
              PROXY_ERROR);
    CHECK_STR(why, "v2: limit 15 is below the 16-octet header");
}

UNIT_TEST(proxy_header_v2_address_block_must_fit_the_family) {
    struct proxy_header h;
    uint8_t in[sizeof(v2_inet)];
    memcpy(in, v2_inet, sizeof(in));
    in[15] = 11;
    CHECK_INT(parse(in, 16, &h), PROXY_ERROR);
    CHECK_STR(why, "v2: 11 octets for a 12-octet address block");
    uint8_t in6[sizeof(v2_inet6)];
    memcpy(in6, v2_inet6, sizeof(in6));
    in6[15] = 12;
    CHECK_INT(parse(in6, 28, &h), PROXY_ERROR);
    CHECK_STR(why, "v2: 12 octets for a 36-octet address block");
}

UNIT_TEST(proxy_header_v2_version_nibble_must_be_2) {
    struct proxy_header h;
    static const uint8_t versions[] = {0x01, 0x11, 0x31, 0xF1, 0x00};
    for (size_t i = 0; i < sizeof(versions); i++) {
        uint8_t in[sizeof(v2_inet)];
        memcpy(in, v2_inet, sizeof(in));
        in[12] = versions[i];
        CHECK_INT(first_error(in, sizeof(in)), 13);
        char want[32];
        snprintf(want, sizeof(want), "v2: version %u", versions[i] >> 4);
        CHECK_STR(why, want);
    }
    CHECK_INT(parse(v2_inet, 12, &h), PROXY_NEED_MORE);
}

UNIT_TEST(proxy_header_v2_unassigned_commands_are_refused) {
    for (unsigned cmd = 2; cmd <= 15; cmd++) {
        uint8_t in[sizeof(v2_inet)];
        memcpy(in, v2_inet, sizeof(in));
        in[12] = (uint8_t)(0x20 | cmd);
        CHECK_INT(first_error(in, sizeof(in)), 13);
        char want[32];
        snprintf(want, sizeof(want), "v2: command %u", cmd);
        CHECK_STR(why, want);
    }
}

UNIT_TEST(proxy_header_v2_unassigned_families_and_protocols_are_refused) {
    static const uint8_t fams[] = {0x41, 0x51, 0xF1, 0x13, 0x1F, 0x03};
    static const char *const whys[] = {"v2: address family 4", "v2: address family 5",
                                       "v2: address family 15", "v2: transport protocol 3",
                                       "v2: transport protocol 15", "v2: transport protocol 3"};
    for (size_t i = 0; i < sizeof(fams); i++) {
        uint8_t in[sizeof(v2_inet)];
        memcpy(in, v2_inet, sizeof(in));
        in[13] = fams[i];
        CHECK_INT(first_error(in, sizeof(in)), 14);
        CHECK_STR(why, whys[i]);
    }
}

UNIT_TEST(proxy_header_v2_signature_must_match_exactly) {
    for (size_t i = 0; i < 12; i++) {
        uint8_t in[sizeof(v2_inet)];
        memcpy(in, v2_inet, sizeof(in));
        in[i] ^= 0x20;
        CHECK_INT(first_error(in, sizeof(in)), i + 1);
        CHECK_STR(why, "not a PROXY protocol header");
    }
}

/* ---- both ---------------------------------------------------------- */

UNIT_TEST(proxy_header_smtp_is_refused_at_the_first_octet) {
    static const char *const smtp[] = {"EHLO x\r\n", "HELO x\r\n", "QUIT\r\n", "\r\n\r\nQUIT\r\n",
                                       "PASS\r\n", "\x00"};
    for (size_t i = 0; i < sizeof(smtp) / sizeof(smtp[0]); i++) {
        size_t len = strlen(smtp[i]);
        if (len == 0) {
            len = 1;
        }
        size_t e = first_error((const uint8_t *)smtp[i], len);
        /* "PASS" and "\r\n\r\nQ" share their start with a header. */
        if (e != (smtp[i][0] == 'P' ? 2 : smtp[i][0] == '\r' ? 5 : 1)) {
            unit_fail(__FILE__, __LINE__, "%s refused at %zu", unit_show_bytes(smtp[i], len), e);
        }
        CHECK_STR(why, "not a PROXY protocol header");
    }
}

UNIT_TEST(proxy_header_tls_client_hello_is_refused_at_the_first_octet) {
    static const uint8_t hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC};
    struct proxy_header h;
    CHECK_INT(first_error(hello, sizeof(hello)), 1);
    CHECK_STR(why, "not a PROXY protocol header");
    CHECK_INT(parse(hello, 3, &h), PROXY_ERROR);
}

UNIT_TEST(proxy_header_consumes_only_the_header) {
    static const char v1[] = "PROXY TCP4 192.0.2.1 198.51.100.7 1 25\r\nEHLO client\r\n";
    struct proxy_header h;
    CHECK_INT(parse(LIT(v1), &h), PROXY_DONE);
    CHECK_INT(h.length, strlen("PROXY TCP4 192.0.2.1 198.51.100.7 1 25\r\n"));
    CHECK_MEM(v1 + h.length, sizeof(v1) - 1 - h.length, "EHLO client\r\n");
    /* v2 followed by a TLS ClientHello, and by something that looks like
     * another header: neither is part of this one. */
    uint8_t v2[sizeof(v2_inet) + sizeof(v2_inet)];
    memcpy(v2, v2_inet, sizeof(v2_inet));
    memcpy(v2 + sizeof(v2_inet), v2_inet, sizeof(v2_inet));
    CHECK_INT(parse(v2, sizeof(v2), &h), PROXY_DONE);
    CHECK_INT(h.length, 28);
    static const uint8_t tls[] = {SIG,  0x21, 0x11, 0x00, 0x0C, 0xC0, 0x00, 0x02,
                                  0x01, 0xC6, 0x33, 0x64, 0x07, 0xDC, 0x04, 0x00,
                                  0x19, 0x16, 0x03, 0x01, 0x02, 0x00};
    CHECK_INT(parse(tls, sizeof(tls), &h), PROXY_DONE);
    CHECK_INT(h.length, 28);
}

UNIT_TEST(proxy_header_accept_bits_choose_the_versions) {
    struct proxy_header h;
    static const char v1[] = "PROXY TCP4 192.0.2.1 198.51.100.7 1 25\r\n";
    CHECK_INT(proxy_header_parse(LIT(v1), PROXY_ACCEPT_V1, 1024, &h, why, sizeof(why)),
              PROXY_DONE);
    CHECK_INT(proxy_header_parse(LIT(v1), PROXY_ACCEPT_V2, 1024, &h, why, sizeof(why)),
              PROXY_ERROR);
    CHECK_STR(why, "v1 header, but only v2 is accepted");
    CHECK_INT(proxy_header_parse(LIT(v1), 0, 1024, &h, why, sizeof(why)), PROXY_ERROR);
    CHECK_STR(why, "no PROXY protocol version accepted");
    CHECK_INT(proxy_header_parse(NULL, 0, 0, 1024, &h, why, sizeof(why)), PROXY_ERROR);
    CHECK_INT(proxy_header_parse(v2_inet, sizeof(v2_inet), PROXY_ACCEPT_V2, 1024, &h, why,
                                 sizeof(why)),
              PROXY_DONE);
    CHECK_INT(proxy_header_parse(v2_inet, sizeof(v2_inet), PROXY_ACCEPT_V1, 1024, &h, why,
                                 sizeof(why)),
              PROXY_ERROR);
    CHECK_STR(why, "v2 header, but only v1 is accepted");
    /* From the first octet on. */
    CHECK_INT(proxy_header_parse(v2_inet, 1, PROXY_ACCEPT_V1, 1024, &h, why, sizeof(why)),
              PROXY_ERROR);
    CHECK_INT(proxy_header_parse(LIT("P"), PROXY_ACCEPT_V2, 1024, &h, why, sizeof(why)),
              PROXY_ERROR);
    CHECK_PREFIXES(LIT(v1), PROXY_ACCEPT_V1, 0);
    CHECK_PREFIXES(v2_inet, sizeof(v2_inet), PROXY_ACCEPT_V2, 1024);
    /* Nothing yet: a header may still come. */
    CHECK_INT(proxy_header_parse(NULL, 0, BOTH, 1024, &h, why, sizeof(why)), PROXY_NEED_MORE);
}

UNIT_TEST(proxy_header_why_may_be_null_or_short) {
    struct proxy_header h;
    CHECK_INT(proxy_header_parse(LIT("EHLO"), BOTH, 1024, &h, NULL, 0), PROXY_ERROR);
    char small[5] = "zzzz";
    CHECK_INT(proxy_header_parse(LIT("EHLO"), BOTH, 1024, &h, small, sizeof(small)),
              PROXY_ERROR);
    CHECK_STR(small, "not ");
    CHECK_INT(proxy_header_parse(v2_inet, sizeof(v2_inet), BOTH, 1024, &h, small,
                                 sizeof(small)),
              PROXY_DONE);
    CHECK_STR(small, "");
}

/* ---- against identity.c's encoders --------------------------------- */

static struct net_addr ip(const char *text, unsigned port) {
    struct net_addr a;
    memset(&a, 0, sizeof(a));
    if (strchr(text, ':') != NULL) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a.ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((unsigned short)port);
        if (inet_pton(AF_INET6, text, &sin6->sin6_addr) != 1) {
            unit_fail(__FILE__, __LINE__, "bad test address %s", text);
        }
        a.len = sizeof(*sin6);
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)&a.ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((unsigned short)port);
        if (inet_pton(AF_INET, text, &sin->sin_addr) != 1) {
            unit_fail(__FILE__, __LINE__, "bad test address %s", text);
        }
        a.len = sizeof(*sin);
    }
    return a;
}

/* same_ip compares what net_addr_ip makes of two addresses. */
static int same_ip(const struct net_addr *a, const struct net_addr *b) {
    struct ip_addr x, y;
    if (!net_addr_ip(a, &x) || !net_addr_ip(b, &y)) {
        return 0;
    }
    size_t n = x.family == AF_INET ? 4 : 16;
    return x.family == y.family && x.port == y.port && memcmp(x.bytes, y.bytes, n) == 0;
}

UNIT_TEST(proxy_header_reads_what_identity_writes) {
    static const struct {
        const char *src, *dst;
        unsigned sport, dport;
        int family; /* what comes back, after IPv4-mapped folding */
    } pairs[] = {
        {"192.0.2.1", "198.51.100.7", 56324, 25, AF_INET},
        {"0.0.0.0", "255.255.255.255", 0, 65535, AF_INET},
        {"2001:db8::1", "2001:db8::25", 49152, 587, AF_INET6},
        {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::", 65535, 0, AF_INET6},
        {"::ffff:192.0.2.9", "::ffff:198.51.100.7", 1234, 25, AF_INET},
        {"fe80::1:2:3:4", "1:2:3:4:5:6:7:8", 1, 2, AF_INET6},
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        struct net_addr s = ip(pairs[i].src, pairs[i].sport);
        struct net_addr d = ip(pairs[i].dst, pairs[i].dport);
        for (int version = 1; version <= 2; version++) {
            struct buffer b = {0};
            CHECK(version == 1 ? proxy_v1_header(&s, &d, &b) : proxy_v2_header(&s, &d, &b));
            struct proxy_header h;
            CHECK_INT(parse((const uint8_t *)buffer_head(&b), b.len, &h), PROXY_DONE);
            CHECK_INT(h.version, version);
            CHECK_INT(h.local, 0);
            CHECK_INT(h.length, b.len);
            CHECK_INT(h.src.ss.ss_family, pairs[i].family);
            if (!same_ip(&h.src, &s) || !same_ip(&h.dst, &d)) {
                unit_fail(__FILE__, __LINE__, "pair %zu v%d: other addresses came back", i,
                          version);
            }
            CHECK_PREFIXES((const uint8_t *)buffer_head(&b), b.len, BOTH, PROXY_V2_MAX_DEFAULT);
            buffer_free(&b);
        }
    }
    /* What identity writes when it cannot name the pair: UNKNOWN for v1,
     * LOCAL for v2; both read as local. */
    struct net_addr un;
    memset(&un, 0, sizeof(un));
    struct sockaddr_un *sun = (struct sockaddr_un *)&un.ss;
    sun->sun_family = AF_UNIX;
    snprintf(sun->sun_path, sizeof(sun->sun_path), "/run/x.sock");
    un.len = sizeof(*sun);
    struct net_addr v4 = ip("192.0.2.1", 1), v6 = ip("2001:db8::1", 2);
    const struct net_addr *odd[3][2] = {{&un, &v4}, {&v4, &v6}, {NULL, &v4}};
    for (size_t i = 0; i < 3; i++) {
        for (int version = 1; version <= 2; version++) {
            struct buffer b = {0};
            CHECK(version == 1 ? proxy_v1_header(odd[i][0], odd[i][1], &b)
                               : proxy_v2_header(odd[i][0], odd[i][1], &b));
            struct proxy_header h;
            CHECK_INT(parse((const uint8_t *)buffer_head(&b), b.len, &h), PROXY_DONE);
            CHECK_INT(h.local, 1);
            CHECK_INT(h.length, b.len);
            buffer_free(&b);
        }
    }
}
