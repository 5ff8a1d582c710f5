/*
 * test_headers.c - headers.h: Received: and status fields (ARCHITECTURE.md §5.5).
 */
#include <stdio.h>
#include <stdlib.h>

#include "protocol/headers.h"
#include "unit.h"

/* 2026-11-22 10:00:00 UTC, a Sunday */
#define NOW ((time_t)1795341600)

/* ---- sanitize ---- */

UNIT_TEST(headers_sanitize_null_and_empty_give_unknown) {
    char out[HEADERS_VALUE_MAX + 1];
    CHECK_STR(headers_sanitize(out, sizeof(out), NULL), "unknown");
    CHECK_STR(headers_sanitize(out, sizeof(out), ""), "unknown");
}

UNIT_TEST(headers_sanitize_keeps_allowed_characters) {
    char out[HEADERS_VALUE_MAX + 1];
    CHECK_STR(headers_sanitize(out, sizeof(out), "Mail-01.example_test:[IPv6:::1]"),
              "Mail-01.example_test:[IPv6:::1]");
}

UNIT_TEST(headers_sanitize_turns_other_bytes_into_underscore) {
    char out[HEADERS_VALUE_MAX + 1];
    CHECK_STR(headers_sanitize(out, sizeof(out), "a b(c)d;e=f\"g\\h<i>j,k@l"),
              "a_b_c_d_e_f_g_h_i_j_k_l");
    CHECK_STR(headers_sanitize(out, sizeof(out), "x\r\ny\tz\x7f\xc3\xa9"), "x__y_z___");
}

UNIT_TEST(headers_sanitize_never_lets_parens_crlf_or_space_through) {
    char out[HEADERS_VALUE_MAX + 1];
    headers_sanitize(out, sizeof(out), "evil)\r\nX-Injected: 1 (");
    CHECK_STR(out, "evil___X-Injected:_1__");
    CHECK(strpbrk(out, "()\r\n \t") == NULL);
}

UNIT_TEST(headers_sanitize_caps_length_at_value_max) {
    char src[1000], out[HEADERS_VALUE_MAX + 1];
    memset(src, 'a', sizeof(src) - 1);
    src[sizeof(src) - 1] = '\0';
    headers_sanitize(out, sizeof(out), src);
    CHECK_INT(strlen(out), HEADERS_VALUE_MAX);
    char big[2000];
    headers_sanitize(big, sizeof(big), src);
    CHECK_INT(strlen(big), HEADERS_VALUE_MAX);
}

UNIT_TEST(headers_sanitize_returns_out) {
    char out[HEADERS_VALUE_MAX + 1];
    CHECK(headers_sanitize(out, sizeof(out), "x") == out);
}

/* ---- write ---- */

static struct header_facts plain_facts(void) {
    struct header_facts f = {
        .proxy_hostname = "mx.example.test",
        .helo = "client.example",
        .client_addr = "203.0.113.7",
        .client_is_ipv6 = 0,
        .protocol = "ESMTP",
        .id = "a1b2c3.1",
        .listener = "smtp",
        .local_port = 25,
        .mode = "none",
        .status_name = "X-TLS-Status",
        .now = NOW,
    };
    return f;
}

static struct header_facts tls_facts(void) {
    struct header_facts f = plain_facts();
    f.protocol = "ESMTPS";
    f.listener = "submissions";
    f.local_port = 465;
    f.mode = "implicit";
    f.tls_version = "TLSv1.3";
    f.cipher = "TLS_AES_256_GCM_SHA384";
    f.group = "X25519";
    f.sni = "mx.example.test";
    return f;
}

/* write_text runs headers_write into a NUL-terminated heap string. */
static char *write_text(const struct header_facts *f, size_t *len) {
    struct buffer out = {0};
    CHECK_INT(headers_write(f, &out), 1);
    char *s = malloc(out.len + 1);
    if (out.len) {
        memcpy(s, buffer_head(&out), out.len);
    }
    s[out.len] = '\0';
    *len = out.len;
    buffer_free(&out);
    return s;
}

/* check_syntax: only CRLF line ends; each line at most 998 octets; each
 * line either starts a field ("Received:" or the status name) or is a
 * continuation starting with TAB; the text ends with CRLF; exactly two
 * fields. */
static void check_syntax(const char *s, size_t len, const char *status_name, int line) {
    size_t fields = 0;
    size_t i = 0;
    if (len < 2 || s[len - 2] != '\r' || s[len - 1] != '\n') {
        unit_fail(__FILE__, line, "does not end in CRLF");
    }
    while (i < len) {
        size_t start = i;
        while (i < len && s[i] != '\r' && s[i] != '\n') {
            i++;
        }
        size_t l = i - start;
        if (l > 998) {
            unit_fail(__FILE__, line, "line of %zu octets", l);
        }
        if (i + 1 < len + 1 && (i + 1 >= len || s[i] != '\r' || s[i + 1] != '\n')) {
            unit_fail(__FILE__, line, "bare CR or LF at %zu", i);
            return;
        }
        if (s[start] == '\t') {
            if (fields == 0) {
                unit_fail(__FILE__, line, "continuation before any field");
            }
        } else if (strncmp(s + start, "Received: ", 10) == 0 ||
                   (strncmp(s + start, status_name, strlen(status_name)) == 0 &&
                    s[start + strlen(status_name)] == ':')) {
            fields++;
        } else {
            unit_fail(__FILE__, line, "line %s neither starts a field nor a TAB fold",
                      unit_show_bytes(s + start, l > 60 ? 60 : l));
        }
        if (l > 0 && (s[start + l - 1] == ' ' || s[start + l - 1] == '\t')) {
            /* harmless but a sign of a sloppy fold */
            unit_fail(__FILE__, line, "line ends with white space");
        }
        i += 2;
    }
    if (fields != 2) {
        unit_fail(__FILE__, line, "%zu fields, want 2", fields);
    }
}

UNIT_TEST(headers_plaintext_fields_are_byte_exact) {
    struct header_facts f = plain_facts();
    size_t len;
    char *s = write_text(&f, &len);
    CHECK_MEM(s, len,
              "Received: from client.example (unknown [203.0.113.7])\r\n"
              "\tby mx.example.test (smtp-tls-proxy) with ESMTP id a1b2c3.1;\r\n"
              "\tSun, 22 Nov 2026 10:00:00 +0000\r\n"
              "X-TLS-Status: tls=none; listener=smtp; port=25; mode=none; "
              "client=203.0.113.7\r\n");
    check_syntax(s, len, "X-TLS-Status", __LINE__);
    free(s);
}

UNIT_TEST(headers_plaintext_date_is_rfc5322_utc) {
    struct header_facts f = plain_facts();
    size_t len;
    char *s = write_text(&f, &len);
    CHECK(strstr(s, "Sun, 22 Nov 2026 10:00:00 +0000") != NULL);
    f.now = 0;
    free(s);
    s = write_text(&f, &len);
    CHECK(strstr(s, "Thu, 01 Jan 1970 00:00:00 +0000") != NULL);
    free(s);
}

/* unfold_in_place turns each fold (CRLF TAB, written where a blank was)
 * back into that blank, for substring checks. */
static void unfold_in_place(char *s) {
    char *o = s;
    for (const char *i = s; *i != '\0'; i++) {
        if (i[0] == '\r' && i[1] == '\n' && i[2] == '\t') {
            *o++ = ' ';
            i += 2;
        } else {
            *o++ = *i;
        }
    }
    *o = '\0';
}

UNIT_TEST(headers_tls_fields_name_protocol_cipher_and_details) {
    struct header_facts f = tls_facts();
    size_t len;
    char *s = write_text(&f, &len);
    CHECK(strstr(s, "with ESMTPS") != NULL);
    CHECK(strstr(s, "tls TLS_AES_256_GCM_SHA384") != NULL);
    check_syntax(s, len, "X-TLS-Status", __LINE__);
    unfold_in_place(s);
    CHECK(strstr(s, "(TLSv1.3 group X25519 sni mx.example.test port 465)") != NULL);
    CHECK(strstr(s, "X-TLS-Status: tls=TLSv1.3;") != NULL);
    CHECK(strstr(s, "cipher=TLS_AES_256_GCM_SHA384") != NULL);
    CHECK(strstr(s, "group=X25519") != NULL);
    CHECK(strstr(s, "sni=mx.example.test") != NULL);
    CHECK(strstr(s, "listener=submissions") != NULL);
    CHECK(strstr(s, "mode=implicit") != NULL);
    CHECK(strstr(s, "port=465") != NULL);
    CHECK(strstr(s, "client=203.0.113.7") != NULL);
    CHECK(strstr(s, "tls=none") == NULL);
    free(s);
}

/* status_value returns the status field's value unfolded (CRLF removed,
 * RFC 5322 2.2.3), or NULL. */
static char *status_value(const char *s, const char *name) {
    char key[80];
    snprintf(key, sizeof(key), "\r\n%s:", name);
    const char *p = strstr(s, key);
    if (p == NULL) {
        return NULL;
    }
    p += strlen(key);
    char *v = malloc(strlen(p) + 1);
    size_t o = 0;
    for (; *p; p++) {
        if (p[0] == '\r' && p[1] == '\n') {
            if (p[2] != ' ' && p[2] != '\t') {
                break;
            }
            p++;
            continue;
        }
        v[o++] = *p;
    }
    v[o] = '\0';
    return v;
}

/* check_pairs: the unfolded value is "key=value" items separated by ';',
 * each item one token (no white space inside); each of |keys| appears
 * exactly once and no other key does. */
static void check_pairs(const char *value, const char *const *keys, size_t nkeys,
                        int line) {
    char *copy = strdup(value);
    size_t items = 0, seen[16] = {0};
    char *save = NULL;
    for (char *item = strtok_r(copy, ";", &save); item != NULL;
         item = strtok_r(NULL, ";", &save)) {
        while (*item == ' ' || *item == '\t') {
            item++;
        }
        size_t n = strlen(item);
        while (n > 0 && (item[n - 1] == ' ' || item[n - 1] == '\t')) {
            item[--n] = '\0';
        }
        items++;
        if (strpbrk(item, " \t") != NULL || strchr(item, '=') == NULL) {
            unit_fail(__FILE__, line, "status item \"%s\" is not one key=value", item);
            continue;
        }
        size_t klen = (size_t)(strchr(item, '=') - item);
        int known = 0;
        for (size_t k = 0; k < nkeys && k < 16; k++) {
            if (strlen(keys[k]) == klen && strncmp(item, keys[k], klen) == 0) {
                seen[k]++;
                known = 1;
            }
        }
        if (!known) {
            unit_fail(__FILE__, line, "unexpected status item \"%s\"", item);
        }
    }
    for (size_t k = 0; k < nkeys && k < 16; k++) {
        if (seen[k] != 1) {
            unit_fail(__FILE__, line, "status key %s seen %zu times", keys[k], seen[k]);
        }
    }
    (void)items;
    free(copy);
}

UNIT_TEST(headers_status_pairs_stay_semicolon_separated_when_folded) {
    struct header_facts f = tls_facts();
    f.country = "DE";
    f.scope = "global";
    size_t len;
    char *s = write_text(&f, &len);
    char *v = status_value(s, "X-TLS-Status");
    CHECK(v != NULL);
    if (v != NULL) {
        static const char *const keys[] = {"tls",  "cipher", "group",  "sni",   "listener",
                                           "port", "mode",   "client", "scope", "country"};
        check_pairs(v, keys, sizeof(keys) / sizeof(keys[0]), __LINE__);
    }
    free(v);
    free(s);
}

UNIT_TEST(headers_plaintext_status_pairs_are_semicolon_separated) {
    struct header_facts f = plain_facts();
    f.country = "DE";
    f.scope = "global";
    size_t len;
    char *s = write_text(&f, &len);
    char *v = status_value(s, "X-TLS-Status");
    CHECK(v != NULL);
    if (v != NULL) {
        static const char *const keys[] = {"tls",  "listener", "port",  "mode",
                                           "client", "scope",  "country"};
        check_pairs(v, keys, sizeof(keys) / sizeof(keys[0]), __LINE__);
    }
    free(v);
    free(s);
}

UNIT_TEST(headers_tls_without_group_or_sni_omits_them) {
    struct header_facts f = tls_facts();
    f.group = NULL;
    f.sni = NULL;
    size_t len;
    char *s = write_text(&f, &len);
    CHECK(strstr(s, "(TLSv1.3 port 465)") != NULL);
    CHECK(strstr(s, "group") == NULL);
    CHECK(strstr(s, "sni") == NULL);
    check_syntax(s, len, "X-TLS-Status", __LINE__);
    free(s);
}

UNIT_TEST(headers_plaintext_has_no_tls_clause) {
    struct header_facts f = plain_facts();
    size_t len;
    char *s = write_text(&f, &len);
    CHECK(strstr(s, " tls ") == NULL);
    CHECK(strstr(s, "cipher=") == NULL);
    free(s);
}

UNIT_TEST(headers_hostile_sni_cannot_inject_lines_or_close_the_comment) {
    struct header_facts f = tls_facts();
    f.sni = "evil)\r\nX-Injected: 1";
    size_t len;
    char *s = write_text(&f, &len);
    CHECK(strstr(s, "\nX-Injected") == NULL);
    check_syntax(s, len, "X-TLS-Status", __LINE__);
    unfold_in_place(s);
    len = strlen(s);
    CHECK(strstr(s, "sni evil___X-Injected:_1 port 465)") != NULL);
    CHECK(strstr(s, "sni=evil___X-Injected:_1") != NULL);
    /* exactly the parentheses the format itself writes */
    size_t open = 0, close = 0;
    for (size_t i = 0; i < len; i++) {
        open += s[i] == '(';
        close += s[i] == ')';
    }
    CHECK_INT(open, 3);
    CHECK_INT(close, 3);
    check_syntax(s, len, "X-TLS-Status", __LINE__);
    free(s);
}

UNIT_TEST(headers_hostile_helo_cannot_inject_lines_or_parentheses) {
    struct header_facts f = plain_facts();
    f.helo = "x (y)\r\nX-Injected: 1; tls=TLSv1.3";
    size_t len;
    char *s = write_text(&f, &len);
    CHECK(strncmp(s, "Received: from x__y___X-Injected:_1__tls_TLSv1.3 (unknown", 57) == 0);
    CHECK(strstr(s, "\nX-Injected") == NULL);
    CHECK(strstr(s, "tls=TLSv1.3") == NULL);
    size_t open = 0;
    for (size_t i = 0; i < len; i++) {
        open += s[i] == '(';
    }
    CHECK_INT(open, 2);
    check_syntax(s, len, "X-TLS-Status", __LINE__);
    free(s);
}

UNIT_TEST(headers_missing_helo_is_unknown) {
    struct header_facts f = plain_facts();
    f.helo = NULL;
    size_t len;
    char *s = write_text(&f, &len);
    CHECK(strncmp(s, "Received: from unknown (unknown [203.0.113.7])", 46) == 0);
    free(s);
}

UNIT_TEST(headers_missing_client_name_is_unknown_as_postfix_writes_it) {
    struct header_facts f = plain_facts();
    f.client_name = NULL;
    size_t len;
    char *s = write_text(&f, &len);
    CHECK(strncmp(s, "Received: from client.example (unknown [203.0.113.7])\r\n", 55) == 0);
    free(s);
}

UNIT_TEST(headers_confirmed_client_name_goes_before_the_address) {
    struct header_facts f = plain_facts();
    f.client_name = "mail.client.example";
    size_t len;
    char *s = write_text(&f, &len);
    CHECK_MEM(s, len,
              "Received: from client.example (mail.client.example [203.0.113.7])\r\n"
              "\tby mx.example.test (smtp-tls-proxy) with ESMTP id a1b2c3.1;\r\n"
              "\tSun, 22 Nov 2026 10:00:00 +0000\r\n"
              "X-TLS-Status: tls=none; listener=smtp; port=25; mode=none; "
              "client=203.0.113.7\r\n");
    check_syntax(s, len, "X-TLS-Status", __LINE__);
    free(s);
}

UNIT_TEST(headers_ipv6_client_name_and_address_literal) {
    struct header_facts f = plain_facts();
    f.client_addr = "2001:db8::25";
    f.client_is_ipv6 = 1;
    f.client_name = "v6.client.example";
    size_t len;
    char *s = write_text(&f, &len);
    CHECK(strstr(s, "(v6.client.example [IPv6:2001:db8::25])") != NULL);
    check_syntax(s, len, "X-TLS-Status", __LINE__);
    free(s);
}

UNIT_TEST(headers_hostile_client_name_is_sanitised_like_the_helo) {
    /* dns.c keeps only valid host names; the header does not rely on it. */
    struct header_facts f = plain_facts();
    f.client_name = "x) [6.6.6.6])\r\nX-Injected: 1 (";
    size_t len;
    char *s = write_text(&f, &len);
    CHECK(strstr(s, "(x__[6.6.6.6]___X-Injected:_1__ [203.0.113.7])") != NULL);
    CHECK(strstr(s, "\nX-Injected") == NULL);
    size_t open = 0, close = 0;
    for (size_t i = 0; i < len; i++) {
        open += s[i] == '(';
        close += s[i] == ')';
    }
    CHECK_INT(open, 2);
    CHECK_INT(close, 2);
    check_syntax(s, len, "X-TLS-Status", __LINE__);
    free(s);
}

UNIT_TEST(headers_ipv6_client_is_an_ipv6_address_literal) {
    struct header_facts f = plain_facts();
    f.client_addr = "::1";
    f.client_is_ipv6 = 1;
    size_t len;
    char *s = write_text(&f, &len);
    CHECK(strstr(s, "(unknown [IPv6:::1])") != NULL);
    CHECK(strstr(s, "client=::1") != NULL);
    check_syntax(s, len, "X-TLS-Status", __LINE__);
    free(s);
}

static char *repeat(char c, size_t n) {
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

UNIT_TEST(headers_long_helo_name_and_sni_fold_with_tab_and_stay_under_998) {
    char *helo = repeat('h', 255);
    char *sni = repeat('s', 255);
    char *name = repeat('n', 255);
    struct header_facts f = tls_facts();
    f.helo = helo;
    f.sni = sni;
    f.client_name = name;
    f.client_addr = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
    f.client_is_ipv6 = 1;
    size_t len;
    char *s = write_text(&f, &len);
    check_syntax(s, len, "X-TLS-Status", __LINE__);
    CHECK(strstr(s, helo) != NULL);
    CHECK(strstr(s, sni) != NULL);
    CHECK(strstr(s, name) != NULL);
    CHECK(len <= HEADERS_RESERVE);
    free(s);
    free(helo);
    free(sni);
    free(name);
}

UNIT_TEST(headers_maximal_inputs_fit_in_headers_reserve) {
    char *hostname = repeat('m', 253);
    char *helo = repeat('h', 2000);  /* capped to HEADERS_VALUE_MAX */
    char *sni = repeat('s', 2000);
    char *status = repeat('Z', 64);
    char *listener = repeat('l', 32);
    struct header_facts f = {
        .proxy_hostname = hostname,
        .helo = helo,
        .client_addr = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
        .client_is_ipv6 = 1,
        .protocol = "ESMTPSA",
        .id = "0123456789abcdef0123456789abcdef.4294967295",
        .listener = listener,
        .local_port = 65535,
        .mode = "starttls",
        .tls_version = "TLSv1.2",
        .cipher = "ECDHE-RSA-CHACHA20-POLY1305-SHA256-LONGER-NAME",
        .group = "X25519MLKEM768",
        .sni = sni,
        .country = "ZZ",
        .scope = "loopback",
        .status_name = status,
        .now = NOW,
    };
    size_t len;
    char *s = write_text(&f, &len);
    if (len > HEADERS_RESERVE) {
        unit_fail(__FILE__, __LINE__, "%zu octets > HEADERS_RESERVE %d", len,
                  HEADERS_RESERVE);
    }
    check_syntax(s, len, status, __LINE__);
    free(s);
    free(hostname);
    free(helo);
    free(sni);
    free(status);
    free(listener);
}

UNIT_TEST(headers_status_has_country_and_scope_when_given) {
    struct header_facts f = plain_facts();
    f.country = "DE";
    f.scope = "global";
    size_t len;
    char *s = write_text(&f, &len);
    CHECK(strstr(s, "country=DE") != NULL);
    CHECK(strstr(s, "scope=global") != NULL);
    check_syntax(s, len, "X-TLS-Status", __LINE__);
    free(s);
}

UNIT_TEST(headers_status_omits_country_and_scope_when_null) {
    struct header_facts f = plain_facts();
    size_t len;
    char *s = write_text(&f, &len);
    CHECK(strstr(s, "country") == NULL);
    CHECK(strstr(s, "scope") == NULL);
    free(s);
}

UNIT_TEST(headers_status_uses_configured_name) {
    struct header_facts f = plain_facts();
    f.status_name = "X-Proxy-Info";
    size_t len;
    char *s = write_text(&f, &len);
    CHECK(strstr(s, "\r\nX-Proxy-Info: tls=none;") != NULL);
    CHECK(strstr(s, "X-TLS-Status") == NULL);
    check_syntax(s, len, "X-Proxy-Info", __LINE__);
    free(s);
}

UNIT_TEST(headers_write_appends_after_existing_output) {
    struct header_facts f = plain_facts();
    struct buffer out = {0};
    CHECK_INT(buffer_append_str(&out, "PRE"), 1);
    CHECK_INT(headers_write(&f, &out), 1);
    CHECK(out.len > 3 && memcmp(buffer_head(&out), "PREReceived: from ", 18) == 0);
    buffer_free(&out);
}

UNIT_TEST(headers_protocol_follows_rfc3848_and_rfc6531) {
    CHECK_STR(headers_protocol(0, 1, 1, 1), "SMTP");
    CHECK_STR(headers_protocol(1, 0, 0, 0), "ESMTP");
    CHECK_STR(headers_protocol(1, 1, 0, 0), "ESMTPS");
    CHECK_STR(headers_protocol(1, 0, 1, 0), "ESMTPA");
    CHECK_STR(headers_protocol(1, 1, 1, 0), "ESMTPSA");
    CHECK_STR(headers_protocol(1, 0, 0, 1), "UTF8SMTP");
    CHECK_STR(headers_protocol(1, 1, 0, 1), "UTF8SMTPS");
    CHECK_STR(headers_protocol(1, 0, 1, 1), "UTF8SMTPA");
    CHECK_STR(headers_protocol(1, 1, 1, 1), "UTF8SMTPSA");
}

UNIT_TEST(headers_lines_stay_within_78_octets_whatever_the_lengths) {
    /* RFC 5322 2.1.1: SHOULD be 78 or fewer. A line may pass only when a
     * single token on it is longer than that. */
    char helo[200], sni[200], host[100];
    for (size_t h = 1; h < 90; h += 1) {
        for (size_t k = 0; k < 60; k += 7) {
            memset(helo, 'h', h);
            helo[h] = '\0';
            memset(sni, 's', k);
            sni[k] = '\0';
            snprintf(host, sizeof(host), "mx%zu.example.test", h % 13);
            struct header_facts f = tls_facts();
            f.helo = helo;
            f.sni = k ? sni : NULL;
            f.proxy_hostname = host;
            size_t len;
            char *s = write_text(&f, &len);
            size_t start = 0;
            for (size_t i = 0; i + 1 < len; i++) {
                if (s[i] == '\r' && s[i + 1] == '\n') {
                    size_t l = i - start;
                    const char *sp = memchr(s + start + 1, ' ', l > 1 ? l - 1 : 0);
                    if (l > 78 && sp != NULL) {
                        unit_fail(__FILE__, __LINE__, "helo %zu sni %zu: line of %zu: %s", h,
                                  k, l, unit_show_bytes(s + start, l));
                        h = 90;
                        break;
                    }
                    start = i + 2;
                }
            }
            free(s);
        }
    }
}
