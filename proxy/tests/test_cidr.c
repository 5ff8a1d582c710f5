/*
 * test_cidr.c - cidr.h: parsing, formatting, containment at the prefix
 * edges, IPv4-mapped folding and lists.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "core/cidr.h"
#include "unit.h"

static struct net_addr v4(const char *ip) {
    struct net_addr a = {.len = sizeof(struct sockaddr_in)};
    struct sockaddr_in *sin = (struct sockaddr_in *)&a.ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(25);
    inet_pton(AF_INET, ip, &sin->sin_addr);
    return a;
}

static struct net_addr v6(const char *ip) {
    struct net_addr a = {.len = sizeof(struct sockaddr_in6)};
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a.ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(25);
    inet_pton(AF_INET6, ip, &sin6->sin6_addr);
    return a;
}

/* parsed parses |text|, failing the test when it does not parse. */
static struct cidr parsed(const char *text) {
    struct cidr c;
    char why[160] = "";
    memset(&c, 0xaa, sizeof(c));
    if (!cidr_parse(text, &c, why, sizeof(why))) {
        unit_fail(__FILE__, __LINE__, "cidr_parse(%s): %s", text, why);
    }
    return c;
}

/* formatted is cidr_format of cidr_parse of |text| (static buffer). */
static const char *formatted(const char *text) {
    static char out[CIDR_TEXT_MAX];
    struct cidr c = parsed(text);
    cidr_format(&c, out, sizeof(out));
    return out;
}

/* rejected says whether |text| fails to parse, with the reason in |why|. */
static int rejected(const char *text, char *why, size_t whylen) {
    struct cidr c;
    why[0] = '\0';
    return cidr_parse(text, &c, why, whylen) == 0 && why[0] != '\0';
}

static int contains(const char *prefix, struct net_addr a) {
    struct cidr c = parsed(prefix);
    return cidr_contains(&c, &a);
}

static int covers(const char *outer, const char *inner) {
    struct cidr o = parsed(outer), i = parsed(inner);
    return cidr_covers(&o, &i);
}

UNIT_TEST(cidr_parses_ipv4_and_ipv6_prefixes) {
    struct cidr c = parsed("192.0.2.0/24");
    CHECK_INT(c.family, AF_INET);
    CHECK_INT(c.prefix, 24);
    CHECK(memcmp(c.addr, "\xc0\x00\x02\x00", 4) == 0);
    CHECK(memcmp(c.addr + 4, "\0\0\0\0\0\0\0\0\0\0\0\0", 12) == 0);
    c = parsed("2001:db8::/32");
    CHECK_INT(c.family, AF_INET6);
    CHECK_INT(c.prefix, 32);
    CHECK(memcmp(c.addr, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\0", 16) == 0);
    CHECK_STR(formatted("192.0.2.0/24"), "192.0.2.0/24");
    CHECK_STR(formatted("2001:db8::/32"), "2001:db8::/32");
    CHECK_STR(formatted("2001:DB8:0:0::/64"), "2001:db8::/64");
    CHECK_STR(formatted("0.0.0.0/0"), "0.0.0.0/0");
    CHECK_STR(formatted("::/0"), "::/0");
}

UNIT_TEST(cidr_bare_address_is_a_full_length_prefix) {
    CHECK_STR(formatted("198.51.100.7"), "198.51.100.7/32");
    CHECK_STR(formatted("2001:db8::1"), "2001:db8::1/128");
    CHECK_STR(formatted("::1"), "::1/128");
}

UNIT_TEST(cidr_ipv4_mapped_prefix_folds_into_ipv4) {
    struct cidr c = parsed("::ffff:1.2.3.4/120");
    CHECK_INT(c.family, AF_INET);
    CHECK_INT(c.prefix, 24);
    CHECK_STR(formatted("::ffff:1.2.3.4/120"), "1.2.3.0/24");
    CHECK_STR(formatted("::ffff:1.2.3.4"), "1.2.3.4/32");
    CHECK_STR(formatted("::ffff:0:0/96"), "0.0.0.0/0");
    /* shorter than /96 it is an IPv6 prefix that merely starts there */
    CHECK_STR(formatted("::ffff:1.2.3.4/64"), "::/64");
    CHECK(cidr_equal(&(struct cidr){0}, &(struct cidr){0}) == 0);
    struct cidr a = parsed("::ffff:192.0.2.0/120"), b = parsed("192.0.2.0/24");
    CHECK(cidr_equal(&a, &b));
}

UNIT_TEST(cidr_host_bits_beyond_the_prefix_are_cleared) {
    CHECK_STR(formatted("192.0.2.77/24"), "192.0.2.0/24");
    CHECK_STR(formatted("192.0.3.255/23"), "192.0.2.0/23");
    CHECK_STR(formatted("10.255.255.255/0"), "0.0.0.0/0");
    CHECK_STR(formatted("2001:db8:1:2:ffff::1/64"), "2001:db8:1:2::/64");
    CHECK_STR(formatted("2001:db8:1:2:ffff::1/65"), "2001:db8:1:2:8000::/65");
    CHECK_STR(formatted("2001:db8::ff/127"), "2001:db8::fe/127");
    struct cidr a = parsed("192.0.2.77/24"), b = parsed("192.0.2.0/24");
    CHECK(memcmp(&a, &b, sizeof(a)) == 0);
}

UNIT_TEST(cidr_rejects_bad_prefix_lengths_with_a_reason_naming_the_text) {
    char why[160];
    CHECK(rejected("192.0.2.0/33", why, sizeof(why)));
    CHECK(strstr(why, "192.0.2.0/33") != NULL);
    CHECK(strstr(why, "32") != NULL);
    CHECK(rejected("2001:db8::/129", why, sizeof(why)));
    CHECK(strstr(why, "2001:db8::/129") != NULL);
    CHECK(rejected("192.0.2.0/", why, sizeof(why)));
    CHECK(rejected("192.0.2.0/-1", why, sizeof(why)));
    CHECK(rejected("192.0.2.0/+8", why, sizeof(why)));
    CHECK(rejected("192.0.2.0/ 8", why, sizeof(why)));
    CHECK(rejected("192.0.2.0/8 ", why, sizeof(why)));
    CHECK(rejected("192.0.2.0/0008", why, sizeof(why)));
    CHECK(rejected("192.0.2.0/24/8", why, sizeof(why)));
    CHECK(rejected("192.0.2.0/1e1", why, sizeof(why)));
    CHECK(rejected("::/999", why, sizeof(why)));
}

UNIT_TEST(cidr_rejects_junk_and_empty_text) {
    char why[160];
    CHECK(rejected("", why, sizeof(why)));
    CHECK(strstr(why, "empty") != NULL);
    CHECK(rejected("mx.example.net", why, sizeof(why)));
    CHECK(strstr(why, "\"mx.example.net\"") != NULL);
    CHECK(rejected("/24", why, sizeof(why)));
    CHECK(rejected("192.0.2/24", why, sizeof(why)));
    CHECK(rejected("192.0.2.256", why, sizeof(why)));
    CHECK(rejected(" 192.0.2.1", why, sizeof(why)));
    CHECK(rejected("2001:db8:::1/64", why, sizeof(why)));
    CHECK(rejected("[2001:db8::]/32", why, sizeof(why)));
    CHECK(rejected("192.0.2.1\x01", why, sizeof(why)));
    CHECK(strchr(why, '\x01') == NULL); /* shown as '?', not raw */
    CHECK(rejected("1234567890123456789012345678901234567890123456789012345678901234567890",
                   why, sizeof(why)));
    CHECK(strstr(why, "...") != NULL);
    /* a NULL or tiny why is fine */
    struct cidr c;
    CHECK_INT(cidr_parse("junk", &c, NULL, 0), 0);
    char one[1];
    CHECK_INT(cidr_parse("junk", &c, one, sizeof(one)), 0);
    CHECK_INT(one[0], '\0');
}

UNIT_TEST(cidr_format_truncates_and_marks_invalid_prefixes) {
    char out[CIDR_TEXT_MAX];
    struct cidr bad = {.family = AF_INET, .prefix = 40};
    cidr_format(&bad, out, sizeof(out));
    CHECK_STR(out, "invalid");
    struct cidr none = {0};
    cidr_format(&none, out, sizeof(out));
    CHECK_STR(out, "invalid");
    struct cidr c = parsed("192.0.2.0/24");
    char small[6];
    cidr_format(&c, small, sizeof(small));
    CHECK_STR(small, "192.0");
    struct cidr longest = parsed("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128");
    cidr_format(&longest, out, sizeof(out));
    CHECK_STR(out, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128");
}

UNIT_TEST(cidr_normalize_folds_and_clears_hand_built_prefixes) {
    struct cidr c = {.family = AF_INET6, .prefix = 104};
    memcpy(c.addr, "\0\0\0\0\0\0\0\0\0\0\xff\xff\xc0\x00\x02\x63", 16);
    CHECK_INT(cidr_normalize(&c), 1);
    struct cidr want = parsed("192.0.0.0/8");
    CHECK(memcmp(&c, &want, sizeof(c)) == 0);
    struct cidr v = {.family = AF_INET, .prefix = 16, .addr = {10, 1, 2, 3, 9, 9}};
    CHECK_INT(cidr_normalize(&v), 1);
    want = parsed("10.1.0.0/16");
    CHECK(memcmp(&v, &want, sizeof(v)) == 0);
    struct cidr bad = {.family = AF_INET, .prefix = 33};
    CHECK_INT(cidr_normalize(&bad), 0);
    struct cidr unix_family = {.family = AF_UNIX, .prefix = 0};
    CHECK_INT(cidr_normalize(&unix_family), 0);
}

UNIT_TEST(cidr_of_addr_keys_a_client_by_its_network) {
    struct cidr c;
    struct net_addr a = v4("192.0.2.77");
    CHECK_INT(cidr_of_addr(&a, 24, 64, &c), 1);
    struct cidr want = parsed("192.0.2.0/24");
    CHECK(memcmp(&c, &want, sizeof(c)) == 0);
    struct net_addr m = v6("::ffff:192.0.2.78");
    CHECK_INT(cidr_of_addr(&m, 24, 64, &c), 1);
    CHECK(memcmp(&c, &want, sizeof(c)) == 0);
    struct net_addr b = v6("2001:db8:1:2:3:4:5:6");
    CHECK_INT(cidr_of_addr(&b, 24, 64, &c), 1);
    want = parsed("2001:db8:1:2::/64");
    CHECK(memcmp(&c, &want, sizeof(c)) == 0);
    CHECK_INT(cidr_of_addr(&b, 24, 200, &c), 1); /* clamped to /128 */
    want = parsed("2001:db8:1:2:3:4:5:6");
    CHECK(memcmp(&c, &want, sizeof(c)) == 0);
    CHECK_INT(cidr_of_addr(&a, 0, 0, &c), 1);
    CHECK(cidr_equal(&c, &(struct cidr){.family = AF_INET}));
}

UNIT_TEST(cidr_of_addr_refuses_unix_sockets_and_null) {
    struct net_addr u;
    char err[128];
    CHECK_INT(net_addr_parse("/run/legacy.sock", &u, err, sizeof(err)), 1);
    struct cidr c;
    memset(&c, 0xaa, sizeof(c));
    CHECK_INT(cidr_of_addr(&u, 24, 64, &c), 0);
    CHECK_INT(c.family, 0);
    CHECK_INT(cidr_of_addr(NULL, 24, 64, &c), 0);
    struct cidr all = parsed("0.0.0.0/0");
    CHECK_INT(cidr_contains(&all, &u), 0);
    CHECK_INT(cidr_contains(&all, NULL), 0);
}

UNIT_TEST(cidr_contains_at_the_prefix_edges) {
    CHECK(contains("0.0.0.0/0", v4("255.255.255.255")));
    CHECK(contains("0.0.0.0/0", v4("0.0.0.0")));
    CHECK(contains("192.0.2.7/32", v4("192.0.2.7")));
    CHECK(!contains("192.0.2.7/32", v4("192.0.2.6")));
    CHECK(contains("192.0.2.0/24", v4("192.0.2.255")));
    CHECK(!contains("192.0.2.0/24", v4("192.0.3.0")));
    /* /23: the odd bit is the last of the third byte */
    CHECK(contains("192.0.2.0/23", v4("192.0.3.255")));
    CHECK(!contains("192.0.2.0/23", v4("192.0.4.0")));
    CHECK(!contains("192.0.2.0/23", v4("192.0.1.255")));
    CHECK(contains("::/0", v6("ffff::1")));
    CHECK(contains("2001:db8::1/128", v6("2001:db8::1")));
    CHECK(!contains("2001:db8::1/128", v6("2001:db8::2")));
    CHECK(contains("2001:db8:1:2::/64", v6("2001:db8:1:2:ffff:ffff:ffff:ffff")));
    CHECK(!contains("2001:db8:1:2::/64", v6("2001:db8:1:3::")));
    /* /65: the first bit of the interface identifier */
    CHECK(contains("2001:db8:1:2::/65", v6("2001:db8:1:2:7fff:ffff:ffff:ffff")));
    CHECK(!contains("2001:db8:1:2::/65", v6("2001:db8:1:2:8000::")));
    CHECK(contains("2001:db8:1:2:8000::/65", v6("2001:db8:1:2:ffff::")));
}

UNIT_TEST(cidr_ipv4_mapped_client_matches_an_ipv4_entry) {
    CHECK(contains("192.0.2.0/24", v6("::ffff:192.0.2.9")));
    CHECK(contains("192.0.2.9", v6("::ffff:192.0.2.9")));
    CHECK(!contains("192.0.2.0/24", v6("::ffff:192.0.3.9")));
    CHECK(contains("::ffff:192.0.2.0/120", v4("192.0.2.9")));
    CHECK(contains("0.0.0.0/0", v6("::ffff:10.0.0.1")));
}

UNIT_TEST(cidr_families_never_cover_each_other) {
    CHECK(!contains("::/0", v4("192.0.2.1")));
    CHECK(!contains("::/0", v6("::ffff:192.0.2.1")));
    CHECK(!contains("0.0.0.0/0", v6("2001:db8::1")));
    CHECK(!covers("::/0", "192.0.2.0/24"));
    CHECK(!covers("0.0.0.0/0", "2001:db8::/32"));
}

UNIT_TEST(cidr_covers_wider_prefixes_only) {
    CHECK(covers("0.0.0.0/0", "192.0.2.0/24"));
    CHECK(covers("0.0.0.0/0", "0.0.0.0/0"));
    CHECK(covers("192.0.2.0/23", "192.0.3.0/24"));
    CHECK(covers("192.0.2.0/23", "192.0.2.0/23"));
    CHECK(!covers("192.0.2.0/24", "192.0.2.0/23")); /* inner is wider */
    CHECK(!covers("192.0.2.0/23", "192.0.4.0/24"));
    CHECK(covers("192.0.2.0/24", "192.0.2.7"));
    CHECK(covers("192.0.2.7/32", "192.0.2.7/32"));
    CHECK(!covers("192.0.2.7/32", "192.0.2.6/32"));
    CHECK(covers("::/0", "2001:db8::/32"));
    CHECK(covers("2001:db8::/32", "2001:db8:ffff::/48"));
    CHECK(!covers("2001:db8::/32", "2001:db9::/48"));
    CHECK(covers("2001:db8:1:2::/64", "2001:db8:1:2:8000::/65"));
    CHECK(covers("2001:db8:1:2::/64", "2001:db8:1:2::1/128"));
    CHECK(!covers("2001:db8:1:2::/65", "2001:db8:1:2:8000::/66"));
    CHECK(covers("2001:db8:1:2:8000::/65", "2001:db8:1:2:c000::/66"));
}

UNIT_TEST(cidr_equal_compares_family_length_and_bits) {
    struct cidr a = parsed("192.0.2.0/24"), b = parsed("192.0.2.9/24"), c = parsed("192.0.2.0/25"),
                d = parsed("::ffff:192.0.2.0/120"), e = parsed("::c000:200/120");
    CHECK(cidr_equal(&a, &b));
    CHECK(!cidr_equal(&a, &c));
    CHECK(cidr_equal(&a, &d));
    CHECK(!cidr_equal(&a, &e)); /* IPv4-compatible form is IPv6, not mapped */
}

UNIT_TEST(cidr_list_takes_commas_blanks_newlines_and_comments) {
    struct cidr_list l = {0};
    char why[200] = "";
    const char *file = "# trusted front ends\n"
                       "192.0.2.0/24, 198.51.100.7\n"
                       "\t2001:db8::/32   # the v6 range\r\n"
                       ",,  ,\n"
                       "203.0.113.0/25#no blank before the comment\n"
                       "# 10.0.0.0/8 is commented out\n"
                       "::ffff:100.64.0.0/106";
    CHECK_INT(cidr_list_add_text(&l, file, why, sizeof(why)), 1);
    CHECK_INT(l.n, 5);
    char out[CIDR_TEXT_MAX];
    const char *want[5] = {"192.0.2.0/24", "198.51.100.7/32", "2001:db8::/32", "203.0.113.0/25",
                           "100.64.0.0/10"};
    for (size_t i = 0; i < 5 && i < l.n; i++) {
        cidr_format(&l.items[i], out, sizeof(out));
        CHECK_STR(out, want[i]);
    }
    CHECK(cidr_list_contains(&l, &(struct net_addr){0}) == 0);
    struct net_addr in = v4("198.51.100.7"), out4 = v4("10.0.0.1"), mapped = v6("::ffff:100.127.1.1"),
                    in6 = v6("2001:db8:5::1");
    CHECK(cidr_list_contains(&l, &in));
    CHECK(!cidr_list_contains(&l, &out4));
    CHECK(cidr_list_contains(&l, &mapped));
    CHECK(cidr_list_contains(&l, &in6));
    struct cidr sub = parsed("203.0.113.64/26"), over = parsed("203.0.113.0/24");
    CHECK(cidr_list_covers(&l, &sub));
    CHECK(!cidr_list_covers(&l, &over));
    /* appending adds to what is there */
    CHECK_INT(cidr_list_add_text(&l, "10.0.0.0/8", why, sizeof(why)), 1);
    CHECK_INT(l.n, 6);
    CHECK(cidr_list_contains(&l, &out4));
    cidr_list_free(&l);
    CHECK(l.items == NULL);
    CHECK_INT(l.n, 0);
    cidr_list_free(&l);
    cidr_list_free(NULL);
}

UNIT_TEST(cidr_list_empty_text_adds_nothing_and_succeeds) {
    struct cidr_list l = {0};
    char why[200];
    CHECK_INT(cidr_list_add_text(&l, "", why, sizeof(why)), 1);
    CHECK_INT(cidr_list_add_text(&l, " \n\t, ,\r\n", why, sizeof(why)), 1);
    CHECK_INT(cidr_list_add_text(&l, "# only a comment\n#another", why, sizeof(why)), 1);
    CHECK_INT(l.n, 0);
    CHECK(l.items == NULL);
    struct net_addr a = v4("192.0.2.1");
    CHECK(!cidr_list_contains(&l, &a));
    cidr_list_free(&l);
}

UNIT_TEST(cidr_list_bad_item_is_named_and_leaves_the_list_as_it_was) {
    struct cidr_list l = {0};
    char why[200] = "";
    CHECK_INT(cidr_list_add_text(&l, "192.0.2.0/24", why, sizeof(why)), 1);
    CHECK_INT(cidr_list_add_text(&l, "10.0.0.0/8, 172.16.0.0/33 192.168.0.0/16", why, sizeof(why)),
              0);
    CHECK(strstr(why, "item 2") != NULL);
    CHECK(strstr(why, "172.16.0.0/33") != NULL);
    CHECK_INT(l.n, 1);
    struct net_addr a = v4("10.1.1.1");
    CHECK(!cidr_list_contains(&l, &a));
    CHECK_INT(cidr_list_add_text(&l, "# a file\nexample.org\n", why, sizeof(why)), 0);
    CHECK(strstr(why, "item 1") != NULL);
    CHECK(strstr(why, "example.org") != NULL);
    CHECK_INT(cidr_list_add_text(&l, "2001:db8::/32 "
                                     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/64",
                                 why, sizeof(why)),
              0);
    CHECK(strstr(why, "item 2") != NULL);
    CHECK(strstr(why, "too long") != NULL);
    CHECK_INT(l.n, 1);
    cidr_list_free(&l);
}
