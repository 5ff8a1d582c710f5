/*
 * test_identity.c - identity.h: xtext, XCLIENT lines, PROXY v1 and v2.
 *
 * Expected bytes come from the specs: RFC 3461 section 4 (xtext), the
 * HAProxy proxy-protocol.txt sections 2.1 (v1 lines and their maximum
 * lengths) and 2.2 (v2 layout), and XCLIENT_README plus what Postfix 3.7
 * accepted in a live check (the v2 IPv4 header below is byte for byte
 * one that Postfix took).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/un.h>

#include "protocol/identity.h"
#include "unit.h"

/* ip builds a net_addr from numeric text ("192.0.2.1", "2001:db8::1"). */
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

static struct net_addr unix_addr(const char *path) {
    struct net_addr a;
    memset(&a, 0, sizeof(a));
    struct sockaddr_un *sun = (struct sockaddr_un *)&a.ss;
    sun->sun_family = AF_UNIX;
    snprintf(sun->sun_path, sizeof(sun->sun_path), "%s", path);
    a.len = sizeof(*sun);
    return a;
}

/* CHECK_BYTES compares binary output (NULs allowed) and names the first
 * differing offset. */
#define CHECK_BYTES(got, n, want, wn)                                           \
    do {                                                                        \
        const unsigned char *g_ = (const unsigned char *)(got);                 \
        const unsigned char *w_ = (const unsigned char *)(want);                \
        size_t gn_ = (n), wn_ = (wn), i_ = 0;                                   \
        while (i_ < gn_ && i_ < wn_ && g_[i_] == w_[i_]) {                      \
            i_++;                                                               \
        }                                                                       \
        if (gn_ != wn_ || i_ != gn_) {                                          \
            unit_fail(__FILE__, __LINE__, "%s: %zu bytes, want %zu; first "     \
                      "difference at offset %zu", #got, gn_, wn_, i_);          \
        }                                                                       \
    } while (0)

/* xt encodes a string literal of |n| bytes into a fresh buffer. */
static struct buffer xt(const char *s, size_t n) {
    struct buffer b = {0};
    CHECK(xtext_encode(s, n, &b));
    return b;
}

#define LIT(s) (s), (sizeof(s) - 1)

/* count_line_breaks counts CR and LF bytes in |b|. */
static size_t count_line_breaks(const struct buffer *b) {
    size_t k = 0;
    for (size_t i = 0; i < b->len; i++) {
        if (buffer_head(b)[i] == '\r' || buffer_head(b)[i] == '\n') {
            k++;
        }
    }
    return k;
}

/* attr_value_len finds " ATTR=" in the line |b|, points *out at the
 * value and returns its length (up to the next space or CR), or
 * (size_t)-1 when the attribute is absent. */
static size_t attr_value_len(const struct buffer *b, const char *attr, const char **out) {
    char needle[32];
    snprintf(needle, sizeof(needle), " %s=", attr);
    size_t nl = strlen(needle);
    for (size_t i = 0; i + nl <= b->len; i++) {
        if (memcmp(buffer_head(b) + i, needle, nl) == 0) {
            size_t j = i + nl;
            while (j < b->len && buffer_head(b)[j] != ' ' && buffer_head(b)[j] != '\r') {
                j++;
            }
            *out = buffer_head(b) + i + nl;
            return j - i - nl;
        }
    }
    *out = NULL;
    return (size_t)-1;
}

/* ---- xtext ---- */

UNIT_TEST(identity_xtext_plus_equals_and_space_become_hex_escapes) {
    struct buffer b = xt(LIT("+"));
    CHECK_MEM(buffer_head(&b), b.len, "+2B");
    buffer_free(&b);
    b = xt(LIT("="));
    CHECK_MEM(buffer_head(&b), b.len, "+3D");
    buffer_free(&b);
    b = xt(LIT(" "));
    CHECK_MEM(buffer_head(&b), b.len, "+20");
    buffer_free(&b);
    b = xt(LIT("a+b=c d"));
    CHECK_MEM(buffer_head(&b), b.len, "a+2Bb+3Dc+20d");
    buffer_free(&b);
}

UNIT_TEST(identity_xtext_printable_ascii_33_to_126_passes_through) {
    struct buffer b = xt(LIT("!mx-1.example.org#$%&'()*,/:;?@^_`{|}~"));
    CHECK_MEM(buffer_head(&b), b.len, "!mx-1.example.org#$%&'()*,/:;?@^_`{|}~");
    buffer_free(&b);
}

UNIT_TEST(identity_xtext_escapes_the_bytes_postfix_reads_as_quoting) {
    /* RFC 3461 lets any xchar be a hexchar; Postfix's tokenizer would
     * otherwise let '"' or a trailing '\' join the next attribute. */
    struct buffer b = xt(LIT("x\"y\\z<a>[b]"));
    CHECK_MEM(buffer_head(&b), b.len, "x+22y+5Cz+3Ca+3E+5Bb+5D");
    buffer_free(&b);
}

UNIT_TEST(identity_xtext_controls_del_high_bytes_and_nul_use_upper_case_hex) {
    struct buffer b = xt("\r\n\t\x7f\x80\xff\x00\x1f", 8);
    CHECK_MEM(buffer_head(&b), b.len, "+0D+0A+09+7F+80+FF+00+1F");
    buffer_free(&b);
    b = xt(LIT("\xc3\xa9")); /* UTF-8 e-acute, octet by octet */
    CHECK_MEM(buffer_head(&b), b.len, "+C3+A9");
    buffer_free(&b);
}

UNIT_TEST(identity_xtext_empty_input_appends_nothing) {
    struct buffer b = {0};
    CHECK(xtext_encode("", 0, &b));
    CHECK_INT(b.len, 0);
    CHECK(b.data == NULL);
}

UNIT_TEST(identity_xtext_appends_after_existing_bytes) {
    struct buffer b = {0};
    CHECK(buffer_append_str(&b, "HELO="));
    CHECK(xtext_encode(LIT("a b"), &b));
    CHECK_MEM(buffer_head(&b), b.len, "HELO=a+20b");
    buffer_free(&b);
}

/* ---- XCLIENT ---- */

UNIT_TEST(identity_xclient_ipv4_line_has_all_attributes_in_order) {
    struct net_addr client = ip("192.0.2.10", 40001), local = ip("198.51.100.25", 25);
    struct xclient_facts f = {.client = &client,
                              .name = "mx.example.org",
                              .helo = "mx.example.org",
                              .proto = "ESMTP",
                              .login = "alice",
                              .local = &local};
    struct buffer b = {0};
    CHECK(xclient_command(&f, &b));
    CHECK_MEM(buffer_head(&b), b.len,
              "XCLIENT NAME=mx.example.org ADDR=192.0.2.10 PORT=40001 PROTO=ESMTP "
              "HELO=mx.example.org LOGIN=alice DESTADDR=198.51.100.25 DESTPORT=25\r\n");
    buffer_free(&b);
}

UNIT_TEST(identity_xclient_name_valid_is_postfix_valid_hostname) {
    /* What the reverse lookup keeps (daemon/dns.c) and NAME= carries. */
    CHECK(xclient_name_valid("mail.client.example"));
    CHECK(xclient_name_valid("a_b-c.example"));
    CHECK(xclient_name_valid("3com.example"));
    CHECK(!xclient_name_valid(""));
    CHECK(!xclient_name_valid("192.0.2.1"));  /* an address posing as a name */
    CHECK(!xclient_name_valid("a..example"));
    CHECK(!xclient_name_valid("example."));
    CHECK(!xclient_name_valid("-a.example"));
    CHECK(!xclient_name_valid("a b.example"));
    CHECK(!xclient_name_valid("a\\.example"));
}

UNIT_TEST(identity_xclient_temporary_name_failure_is_tempunavail) {
    struct net_addr client = ip("192.0.2.10", 40001);
    struct xclient_facts f = {.client = &client, .name = "[TEMPUNAVAIL]"};
    struct buffer b = {0};
    CHECK(xclient_command(&f, &b));
    CHECK_MEM(buffer_head(&b), b.len, "XCLIENT NAME=[TEMPUNAVAIL] ADDR=192.0.2.10 PORT=40001\r\n");
    buffer_free(&b);
}

UNIT_TEST(identity_xclient_ipv6_addresses_carry_the_ipv6_prefix) {
    struct net_addr client = ip("2001:db8::1", 40006), local = ip("2001:db8::25", 587);
    struct xclient_facts f = {.client = &client, .helo = "v6.client.example",
                              .proto = "SMTP", .local = &local};
    struct buffer b = {0};
    CHECK(xclient_command(&f, &b));
    CHECK_MEM(buffer_head(&b), b.len,
              "XCLIENT NAME=[UNAVAILABLE] ADDR=IPV6:2001:db8::1 PORT=40006 PROTO=SMTP "
              "HELO=v6.client.example DESTADDR=IPV6:2001:db8::25 DESTPORT=587\r\n");
    buffer_free(&b);
}

UNIT_TEST(identity_xclient_ipv4_mapped_client_is_written_as_ipv4) {
    struct net_addr client = ip("::ffff:203.0.113.7", 1234), local = ip("::ffff:192.0.2.25", 25);
    struct xclient_facts f = {.client = &client, .local = &local};
    struct buffer b = {0};
    CHECK(xclient_command(&f, &b));
    CHECK_MEM(buffer_head(&b), b.len,
              "XCLIENT NAME=[UNAVAILABLE] ADDR=203.0.113.7 PORT=1234 "
              "DESTADDR=192.0.2.25 DESTPORT=25\r\n");
    buffer_free(&b);
}

UNIT_TEST(identity_xclient_minimal_facts_omit_optional_attributes) {
    struct net_addr client = ip("203.0.113.7", 40001);
    struct xclient_facts f = {.client = &client};
    struct buffer b = {0};
    CHECK(xclient_command(&f, &b));
    CHECK_MEM(buffer_head(&b), b.len,
              "XCLIENT NAME=[UNAVAILABLE] ADDR=203.0.113.7 PORT=40001\r\n");
    buffer_free(&b);
}

UNIT_TEST(identity_xclient_non_ip_client_has_unavailable_addr_and_port) {
    struct net_addr sock = unix_addr("/run/smtp.sock");
    struct xclient_facts f = {.client = &sock, .local = &sock};
    struct buffer b = {0};
    CHECK(xclient_command(&f, &b));
    CHECK_MEM(buffer_head(&b), b.len,
              "XCLIENT NAME=[UNAVAILABLE] ADDR=[UNAVAILABLE] PORT=[UNAVAILABLE]\r\n");
    buffer_free(&b);
    struct xclient_facts none = {.client = NULL};
    CHECK(xclient_command(&none, &b));
    CHECK_MEM(buffer_head(&b), b.len,
              "XCLIENT NAME=[UNAVAILABLE] ADDR=[UNAVAILABLE] PORT=[UNAVAILABLE]\r\n");
    buffer_free(&b);
}

UNIT_TEST(identity_xclient_login_is_xtext_encoded) {
    struct net_addr client = ip("192.0.2.1", 25);
    struct xclient_facts f = {.client = &client, .login = "user+tag=x y"};
    struct buffer b = {0};
    CHECK(xclient_command(&f, &b));
    CHECK_MEM(buffer_head(&b), b.len,
              "XCLIENT NAME=[UNAVAILABLE] ADDR=192.0.2.1 PORT=25 LOGIN=user+2Btag+3Dx+20y\r\n");
    buffer_free(&b);
}

/* name_written runs xclient_command with |name| and returns whether the
 * NAME value equals |want|. */
static int name_written(const char *name, const char *want) {
    struct net_addr client = ip("192.0.2.1", 25);
    struct xclient_facts f = {.client = &client, .name = name};
    struct buffer b = {0};
    const char *v;
    int ok = xclient_command(&f, &b);
    size_t n = attr_value_len(&b, "NAME", &v);
    ok = ok && n == strlen(want) && memcmp(v, want, n) == 0;
    buffer_free(&b);
    return ok;
}

UNIT_TEST(identity_xclient_name_postfix_would_refuse_becomes_unavailable) {
    static char long_label[80], long_name[300];
    memset(long_label, 'a', 64);
    memcpy(long_label + 64, ".example", 9);
    memset(long_name, 'a', 256);
    long_name[256] = '\0';
    for (size_t i = 50; i < 256; i += 51) {
        long_name[i] = '.';
    }
    const char *bad[] = {"bad name", "-x.example", "x-.example", "1.2.3.4", "a..b",
                         "x.example.", ".x", "", "x=y", "caf\xc3\xa9.example",
                         long_label, long_name};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (!name_written(bad[i], "[UNAVAILABLE]")) {
            unit_fail(__FILE__, __LINE__, "name \"%s\" was not replaced", bad[i]);
        }
    }
}

UNIT_TEST(identity_xclient_valid_names_and_placeholders_pass_unchanged) {
    static char label63[80];
    memset(label63, 'b', 63);
    memcpy(label63 + 63, ".example", 9);
    const char *good[] = {"mx.example.org", "under_score.example", "x1-2.example",
                          "localhost", "123.example", "[TEMPUNAVAIL]", "[UNAVAILABLE]",
                          label63};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (!name_written(good[i], good[i])) {
            unit_fail(__FILE__, __LINE__, "name \"%s\" was not kept", good[i]);
        }
    }
    /* placeholders are written literally, in XCLIENT_README's case */
    CHECK(name_written("[tempunavail]", "[TEMPUNAVAIL]"));
    CHECK(name_written("[unavailable]", "[UNAVAILABLE]"));
}

UNIT_TEST(identity_xclient_unknown_proto_is_refused_and_buffer_unchanged) {
    struct net_addr client = ip("192.0.2.1", 25);
    struct xclient_facts f = {.client = &client, .proto = "LMTP"};
    struct buffer b = {0};
    CHECK(buffer_append_str(&b, "keep"));
    CHECK_INT(xclient_command(&f, &b), 0);
    CHECK_MEM(buffer_head(&b), b.len, "keep");
    buffer_free(&b);
}

UNIT_TEST(identity_xclient_login_longer_than_255_encoded_is_refused) {
    static char login[300];
    struct net_addr client = ip("192.0.2.1", 25);
    struct xclient_facts f = {.client = &client, .login = login};
    struct buffer b = {0};
    memset(login, '+', 85); /* 85 escapes: 255 octets encoded */
    CHECK(xclient_command(&f, &b));
    buffer_free(&b);
    memset(login, '+', 86); /* 258 */
    CHECK_INT(xclient_command(&f, &b), 0);
    CHECK_INT(b.len, 0);
    memset(login, 'l', 256);
    CHECK_INT(xclient_command(&f, &b), 0);
    CHECK_INT(b.len, 0);
}

UNIT_TEST(identity_xclient_hostile_helo_is_escaped_into_one_line) {
    struct net_addr client = ip("192.0.2.1", 25);
    struct xclient_facts f = {.client = &client,
                              .helo = "evil helo=x+y\r\nMAIL FROM:<a@b>\r\n"};
    struct buffer b = {0};
    CHECK(xclient_command(&f, &b));
    CHECK_MEM(buffer_head(&b), b.len,
              "XCLIENT NAME=[UNAVAILABLE] ADDR=192.0.2.1 PORT=25 "
              "HELO=evil+20helo+3Dx+2By+0D+0AMAIL+20FROM:+3Ca@b+3E+0D+0A\r\n");
    CHECK_INT(count_line_breaks(&b), 2);
    buffer_free(&b);
}

UNIT_TEST(identity_xclient_quote_in_helo_cannot_swallow_later_attributes) {
    struct net_addr client = ip("192.0.2.1", 25);
    struct xclient_facts f = {.client = &client, .helo = "x\"y\\", .login = "alice"};
    struct buffer b = {0};
    CHECK(xclient_command(&f, &b));
    CHECK_MEM(buffer_head(&b), b.len,
              "XCLIENT NAME=[UNAVAILABLE] ADDR=192.0.2.1 PORT=25 HELO=x+22y+5C LOGIN=alice\r\n");
    buffer_free(&b);
}

UNIT_TEST(identity_xclient_300_octet_helo_is_cut_to_255) {
    static char helo[301];
    memset(helo, 'h', 300);
    struct net_addr client = ip("192.0.2.1", 25);
    struct xclient_facts f = {.client = &client, .helo = helo, .proto = "ESMTP"};
    struct buffer b = {0};
    const char *v;
    CHECK(xclient_command(&f, &b));
    CHECK_INT(attr_value_len(&b, "HELO", &v), 255);
    CHECK(b.len <= XCLIENT_LINE_MAX);
    CHECK_INT(count_line_breaks(&b), 2);
    CHECK(b.len >= 2 && memcmp(buffer_head(&b) + b.len - 2, "\r\n", 2) == 0);
    buffer_free(&b);
}

UNIT_TEST(identity_xclient_helo_cut_never_splits_an_escape) {
    static char helo[120];
    helo[0] = 'h';
    memset(helo + 1, ' ', 100); /* 1 + 84 * 3 = 253 fits, one more is 256 */
    struct net_addr client = ip("192.0.2.1", 25);
    struct xclient_facts f = {.client = &client, .helo = helo};
    struct buffer b = {0};
    const char *v;
    CHECK(xclient_command(&f, &b));
    size_t n = attr_value_len(&b, "HELO", &v);
    CHECK_INT(n, 253);
    CHECK(n == 253 && memcmp(v + n - 3, "+20", 3) == 0);
    buffer_free(&b);
}

UNIT_TEST(identity_xclient_hostile_300_octet_helo_with_controls_stays_one_short_line) {
    static char helo[301];
    for (size_t i = 0; i < 300; i++) {
        helo[i] = "a =+\r\n\x01"[i % 7];
    }
    struct net_addr client = ip("2001:db8:1111:2222:3333:4444:5555:6666", 65535);
    struct net_addr local = ip("2001:db8:1111:2222:3333:4444:5555:7777", 65535);
    struct xclient_facts f = {.client = &client, .name = "mx.example.org", .helo = helo,
                              .proto = "ESMTP", .login = "alice", .local = &local};
    struct buffer b = {0};
    const char *v;
    CHECK(xclient_command(&f, &b));
    CHECK(b.len <= XCLIENT_LINE_MAX);
    CHECK(attr_value_len(&b, "HELO", &v) <= XCLIENT_VALUE_MAX);
    CHECK_INT(count_line_breaks(&b), 2);
    CHECK(attr_value_len(&b, "DESTPORT", &v) == 5 && memcmp(v, "65535", 5) == 0);
    buffer_free(&b);
}

/* line_with_login runs xclient_command with a long NAME, IPv6 ends, a
 * plain 300-octet HELO and a LOGIN of |k| octets. */
static int line_with_login(size_t k, struct buffer *b) {
    static char name[254], login[300], helo[301];
    memset(name, 'n', 253);
    for (size_t i = 60; i < 253; i += 61) {
        name[i] = '.';
    }
    memset(helo, 'h', 300);
    memset(login, 0, sizeof(login));
    memset(login, 'l', k);
    struct net_addr client = ip("2001:db8:1111:2222:3333:4444:5555:6666", 65535);
    struct net_addr local = ip("2001:db8:1111:2222:3333:4444:5555:7777", 65535);
    struct xclient_facts f = {.client = &client, .name = name, .helo = helo,
                              .proto = "ESMTP", .login = k ? login : NULL, .local = &local};
    return xclient_command(&f, b);
}

UNIT_TEST(identity_xclient_line_limit_cuts_helo_to_the_room_left) {
    struct buffer b = {0};
    const char *v;
    /* Without LOGIN: 408 octets besides HELO, so HELO gets 512 - 408 - 6. */
    CHECK(line_with_login(0, &b));
    CHECK_INT(b.len, XCLIENT_LINE_MAX);
    CHECK_INT(attr_value_len(&b, "HELO", &v), 98);
    buffer_free(&b);
    /* A 90-octet LOGIN (97 with " LOGIN=") leaves one octet for HELO. */
    CHECK(line_with_login(90, &b));
    CHECK_INT(b.len, XCLIENT_LINE_MAX);
    CHECK_INT(attr_value_len(&b, "HELO", &v), 1);
    buffer_free(&b);
}

UNIT_TEST(identity_xclient_helo_is_omitted_when_no_room_is_left) {
    struct buffer b = {0};
    const char *v;
    CHECK(line_with_login(91, &b));
    CHECK_INT(attr_value_len(&b, "HELO", &v), (size_t)-1);
    CHECK_INT(b.len, XCLIENT_LINE_MAX - 6);
    buffer_free(&b);
    /* 97: the line without HELO is exactly 512 octets. */
    CHECK(line_with_login(97, &b));
    CHECK_INT(attr_value_len(&b, "HELO", &v), (size_t)-1);
    CHECK_INT(b.len, XCLIENT_LINE_MAX);
    buffer_free(&b);
}

UNIT_TEST(identity_xclient_over_512_without_helo_is_refused) {
    struct buffer b = {0};
    CHECK_INT(line_with_login(98, &b), 0);
    CHECK_INT(b.len, 0);
    CHECK_INT(line_with_login(200, &b), 0);
    CHECK_INT(b.len, 0);
}

UNIT_TEST(identity_xclient_empty_helo_and_login_are_omitted) {
    struct net_addr client = ip("192.0.2.1", 25);
    struct xclient_facts f = {.client = &client, .helo = "", .proto = "SMTP", .login = ""};
    struct buffer b = {0};
    CHECK(xclient_command(&f, &b));
    CHECK_MEM(buffer_head(&b), b.len,
              "XCLIENT NAME=[UNAVAILABLE] ADDR=192.0.2.1 PORT=25 PROTO=SMTP\r\n");
    buffer_free(&b);
}

/* ---- PROXY v1 ---- */

/* v1 runs proxy_v1_header and compares with |want|. */
static void check_v1(const struct net_addr *s, const struct net_addr *d, const char *want,
                     int line) {
    struct buffer b = {0};
    if (!proxy_v1_header(s, d, &b)) {
        unit_fail(__FILE__, line, "proxy_v1_header failed");
    } else if (b.len != strlen(want) || memcmp(buffer_head(&b), want, b.len) != 0) {
        unit_fail(__FILE__, line, "got  %s", unit_show_bytes(buffer_head(&b), b.len));
        unit_fail(__FILE__, line, "want %s", unit_show_bytes(want, strlen(want)));
    }
    buffer_free(&b);
}

UNIT_TEST(identity_proxy_v1_tcp4_matches_the_spec_example) {
    struct net_addr s = ip("192.168.0.1", 56324), d = ip("192.168.0.11", 443);
    check_v1(&s, &d, "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", __LINE__);
}

UNIT_TEST(identity_proxy_v1_longest_tcp4_line_is_56_octets_as_the_spec_says) {
    struct net_addr s = ip("255.255.255.255", 65535), d = ip("255.255.255.255", 65535);
    const char *want = "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
    CHECK_INT(strlen(want), 56);
    check_v1(&s, &d, want, __LINE__);
}

UNIT_TEST(identity_proxy_v1_tcp6_uses_compressed_text) {
    struct net_addr s = ip("2001:db8::1", 40000), d = ip("2001:db8::2", 25);
    check_v1(&s, &d, "PROXY TCP6 2001:db8::1 2001:db8::2 40000 25\r\n", __LINE__);
}

UNIT_TEST(identity_proxy_v1_longest_tcp6_line_is_104_octets_as_the_spec_says) {
    const char *full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    struct net_addr s = ip(full, 65535), d = ip(full, 65535);
    char want[200];
    snprintf(want, sizeof(want), "PROXY TCP6 %s %s 65535 65535\r\n", full, full);
    CHECK_INT(strlen(want), 104);
    check_v1(&s, &d, want, __LINE__);
}

UNIT_TEST(identity_proxy_v1_ipv4_mapped_pair_is_tcp4) {
    struct net_addr s = ip("::ffff:198.51.100.3", 40001), d = ip("::ffff:192.0.2.25", 25);
    check_v1(&s, &d, "PROXY TCP4 198.51.100.3 192.0.2.25 40001 25\r\n", __LINE__);
    struct net_addr plain = ip("192.0.2.25", 25);
    check_v1(&s, &plain, "PROXY TCP4 198.51.100.3 192.0.2.25 40001 25\r\n", __LINE__);
}

UNIT_TEST(identity_proxy_v1_mixed_unix_or_missing_is_unknown) {
    struct net_addr v4 = ip("192.0.2.1", 1), v6 = ip("2001:db8::1", 2);
    struct net_addr mapped = ip("::ffff:192.0.2.1", 1), sock = unix_addr("/run/x");
    check_v1(&v4, &v6, "PROXY UNKNOWN\r\n", __LINE__);
    check_v1(&v6, &mapped, "PROXY UNKNOWN\r\n", __LINE__);
    check_v1(&sock, &sock, "PROXY UNKNOWN\r\n", __LINE__);
    check_v1(NULL, &v4, "PROXY UNKNOWN\r\n", __LINE__);
    check_v1(&v4, NULL, "PROXY UNKNOWN\r\n", __LINE__);
}

/* ---- PROXY v2 ---- */

#define V2_SIG 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A

UNIT_TEST(identity_proxy_v2_ipv4_header_is_28_bytes_in_network_order) {
    struct net_addr s = ip("192.168.0.1", 56324), d = ip("192.168.0.11", 443);
    static const unsigned char want[] = {
        V2_SIG,
        0x21,                   /* version 2, PROXY */
        0x11,                   /* AF_INET, STREAM */
        0x00, 0x0C,             /* 12 address bytes */
        0xC0, 0xA8, 0x00, 0x01, /* 192.168.0.1 */
        0xC0, 0xA8, 0x00, 0x0B, /* 192.168.0.11 */
        0xDC, 0x04,             /* 56324 */
        0x01, 0xBB,             /* 443 */
    };
    struct buffer b = {0};
    CHECK(proxy_v2_header(&s, &d, &b));
    CHECK_BYTES(buffer_head(&b), b.len, want, sizeof(want));
    buffer_free(&b);
}

UNIT_TEST(identity_proxy_v2_ipv4_header_matches_one_postfix_accepted) {
    /* 203.0.113.5:40002 -> 192.0.2.25:25, sent to Postfix 3.7 with
     * smtpd_upstream_proxy_protocol = haproxy: it logged
     * "client=unknown[203.0.113.5]". */
    static const unsigned char want[] = {
        V2_SIG, 0x21, 0x11, 0x00, 0x0c, 0xcb, 0x00, 0x71, 0x05,
        0xc0, 0x00, 0x02, 0x19, 0x9c, 0x42, 0x00, 0x19,
    };
    struct net_addr s = ip("203.0.113.5", 40002), d = ip("192.0.2.25", 25);
    struct buffer b = {0};
    CHECK(proxy_v2_header(&s, &d, &b));
    CHECK_BYTES(buffer_head(&b), b.len, want, sizeof(want));
    buffer_free(&b);
}

UNIT_TEST(identity_proxy_v2_ipv6_header_is_52_bytes_in_network_order) {
    struct net_addr s = ip("2001:db8::1", 40000), d = ip("2001:db8::2", 25);
    static const unsigned char want[] = {
        V2_SIG,
        0x21,       /* version 2, PROXY */
        0x21,       /* AF_INET6, STREAM */
        0x00, 0x24, /* 36 address bytes */
        0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
        0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
        0x9C, 0x40, /* 40000 */
        0x00, 0x19, /* 25 */
    };
    struct buffer b = {0};
    CHECK(proxy_v2_header(&s, &d, &b));
    CHECK_BYTES(buffer_head(&b), b.len, want, sizeof(want));
    CHECK_INT(b.len, PROXY_V2_MAX);
    buffer_free(&b);
}

UNIT_TEST(identity_proxy_v2_ipv4_mapped_pair_is_tcp_over_ipv4) {
    struct net_addr s = ip("::ffff:192.168.0.1", 56324), d = ip("::ffff:192.168.0.11", 443);
    static const unsigned char want[] = {
        V2_SIG, 0x21, 0x11, 0x00, 0x0C, 0xC0, 0xA8, 0x00, 0x01,
        0xC0, 0xA8, 0x00, 0x0B, 0xDC, 0x04, 0x01, 0xBB,
    };
    struct buffer b = {0};
    CHECK(proxy_v2_header(&s, &d, &b));
    CHECK_BYTES(buffer_head(&b), b.len, want, sizeof(want));
    buffer_free(&b);
}

UNIT_TEST(identity_proxy_v2_unsupported_pair_is_local_unspec_with_no_addresses) {
    static const unsigned char want[] = {V2_SIG, 0x20, 0x00, 0x00, 0x00};
    struct net_addr v4 = ip("192.0.2.1", 1), v6 = ip("2001:db8::1", 2);
    struct net_addr sock = unix_addr("/run/x");
    struct buffer b = {0};
    CHECK(proxy_v2_header(&v4, &v6, &b));
    CHECK_BYTES(buffer_head(&b), b.len, want, sizeof(want));
    buffer_free(&b);
    CHECK(proxy_v2_header(&sock, &sock, &b));
    CHECK_BYTES(buffer_head(&b), b.len, want, sizeof(want));
    buffer_free(&b);
    CHECK(proxy_v2_header(NULL, NULL, &b));
    CHECK_BYTES(buffer_head(&b), b.len, want, sizeof(want));
    buffer_free(&b);
}

UNIT_TEST(identity_proxy_headers_append_after_existing_bytes) {
    struct net_addr s = ip("192.0.2.1", 1), d = ip("192.0.2.2", 2);
    struct buffer b = {0};
    CHECK(buffer_append_str(&b, "x"));
    CHECK(proxy_v1_header(&s, &d, &b));
    CHECK(proxy_v2_header(&s, &d, &b));
    CHECK_INT(b.len, 1 + strlen("PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n") + 28);
    CHECK(b.len > 1 && buffer_head(&b)[0] == 'x');
    buffer_free(&b);
}
