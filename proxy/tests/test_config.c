/*
 * test_config.c - config.h: parsing, errors with "path:line: reason",
 * addresses and durations.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/un.h>
#include <unistd.h>

#include "config/config.h"
#include "protocol/smtp_cmd.h"
#include "unit.h"

/* loopback_conf_path finds configs/loopback.conf from this file's path
 * (the build compiles proxy/tests/test_config.c from the top directory),
 * falling back to the current directory. */
static const char *loopback_conf_path(void) {
    static char path[4096];
    const char *me = __FILE__;
    const char *tail = strstr(me, "proxy/tests/test_config.c");
    if (tail != NULL) {
        snprintf(path, sizeof(path), "%.*sconfigs/loopback.conf", (int)(tail - me), me);
        FILE *f = fopen(path, "r");
        if (f != NULL) {
            fclose(f);
            return path;
        }
    }
    return "configs/loopback.conf";
}

static char *read_all(const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *s = malloc(cap);
    len = fread(s, 1, cap - 1, f);
    fclose(f);
    s[len] = '\0';
    return s;
}

static void addr_text(const struct net_addr *a, char *out, size_t n, unsigned *port) {
    net_addr_format(a, out, n, port);
}

UNIT_TEST(config_real_loopback_file_has_three_tls_listeners_and_four_certificates) {
    const char *path = loopback_conf_path();
    char *text = read_all(path);
    CHECK(text != NULL);
    if (text == NULL) {
        return;
    }
    char err[512] = "";
    struct config *c = config_parse("configs/loopback.conf", text, err, sizeof(err));
    CHECK(c != NULL);
    if (c == NULL) {
        unit_fail(__FILE__, __LINE__, "error: %s", err);
        free(text);
        return;
    }
    CHECK_STR(c->hostname, "mx.example.test");
    CHECK_STR(c->status_header, "X-TLS-Status");
    CHECK_INT(c->workers, 2);
    CHECK_STR(c->backend.address, "127.0.0.1:10026");
    char a[128];
    unsigned port = 0;
    CHECK_INT(c->backend.ntargets, 1);
    CHECK_STR(c->backend.targets[0].text, "127.0.0.1:10026");
    addr_text(&c->backend.targets[0].addr, a, sizeof(a), &port);
    CHECK_INT(c->backend.targets[0].addr.ss.ss_family, AF_INET);
    CHECK_STR(a, "127.0.0.1");
    CHECK_INT(port, 10026);
    CHECK_INT(c->nlisteners, 3);
    if (c->nlisteners == 3) {
        struct listener_config *l = &c->listeners[0];
        CHECK_STR(l->name, "smtp");
        CHECK_STR(l->address, "127.0.0.1:10025");
        CHECK_INT(l->kind, KIND_SMTP);
        CHECK_INT(l->tls, TLS_MODE_STARTTLS);
        CHECK_INT(l->require_tls, 0);
        addr_text(&l->addr, a, sizeof(a), &port);
        CHECK_STR(a, "127.0.0.1");
        CHECK_INT(port, 10025);
        l = &c->listeners[1];
        CHECK_STR(l->name, "submission");
        CHECK_STR(l->address, "127.0.0.1:10587");
        CHECK_INT(l->kind, KIND_SUBMISSION);
        CHECK_INT(l->tls, TLS_MODE_STARTTLS);
        CHECK_INT(l->require_tls, 1);
        l = &c->listeners[2];
        CHECK_STR(l->name, "submissions");
        CHECK_STR(l->address, "127.0.0.1:10465");
        CHECK_INT(l->kind, KIND_SUBMISSIONS);
        CHECK_INT(l->tls, TLS_MODE_IMPLICIT);
        CHECK_INT(l->require_tls, 1);
    }
    CHECK_INT(c->ncerts, 4);
    if (c->ncerts == 4) {
        CHECK_STR(c->certs[0].name, "mx-ecdsa");
        CHECK_INT(c->certs[0].is_default, 1);
    }
    config_free(c);
    free(text);
}

UNIT_TEST(config_load_reads_the_real_loopback_file) {
    char err[512] = "";
    struct config *c = config_load(loopback_conf_path(), err, sizeof(err));
    CHECK(c != NULL);
    if (c == NULL) {
        unit_fail(__FILE__, __LINE__, "error: %s", err);
        return;
    }
    CHECK_STR(c->hostname, "mx.example.test");
    CHECK_INT(c->nlisteners, 3);
    config_free(c);
}

UNIT_TEST(config_load_of_missing_file_names_the_path) {
    char err[512] = "";
    struct config *c = config_load("/nonexistent/dir/x.conf", err, sizeof(err));
    CHECK(c == NULL);
    CHECK(strncmp(err, "/nonexistent/dir/x.conf:", 24) == 0);
    config_free(c);
}

UNIT_TEST(config_embedded_default_equals_loopback_file_and_parses) {
    char *text = read_all(loopback_conf_path());
    CHECK(text != NULL);
    if (text != NULL) {
        CHECK(strcmp(default_config_text, text) == 0);
    }
    free(text);
    char err[512] = "";
    struct config *c = config_parse("(default)", default_config_text, err, sizeof(err));
    CHECK(c != NULL);
    if (c != NULL) {
        CHECK_STR(c->hostname, "mx.example.test");
        CHECK_INT(c->nlisteners, 3);
        CHECK_STR(c->backend.address, "127.0.0.1:10026");
    } else {
        unit_fail(__FILE__, __LINE__, "error: %s", err);
    }
    config_free(c);
}

/* ---- errors ---- */

#define BASE                                                                             \
    "[proxy]\n"                         /* 1 */                                          \
    "hostname = mx.example.test\n"      /* 2 */                                          \
    "\n"                                /* 3 */                                          \
    "[backend]\n"                       /* 4 */                                          \
    "address = 127.0.0.1:10026\n"       /* 5 */                                          \
    "\n"                                /* 6 */                                          \
    "[listener smtp]\n"                 /* 7 */                                          \
    "address = 127.0.0.1:10025\n"       /* 8 */                                          \
    "kind = smtp\n"                     /* 9 */

/* check_error parses |text| and expects failure with "t.conf:LINE: "
 * followed by a reason containing |reason| (case-sensitive). */
static void check_error(const char *text, int want_line, const char *reason, int line) {
    char err[512] = "";
    struct config *c = config_parse("t.conf", text, err, sizeof(err));
    if (c != NULL) {
        unit_fail(__FILE__, line, "parsed, want error at line %d (%s)", want_line, reason);
        config_free(c);
        return;
    }
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "t.conf:%d: ", want_line);
    if (strncmp(err, prefix, strlen(prefix)) != 0) {
        unit_fail(__FILE__, line, "error \"%s\", want prefix \"%s\"", err, prefix);
    }
    if (strlen(err) <= strlen(prefix)) {
        unit_fail(__FILE__, line, "error \"%s\" has no reason", err);
    } else if (reason != NULL && strstr(err, reason) == NULL) {
        unit_fail(__FILE__, line, "error \"%s\" does not mention \"%s\"", err, reason);
    }
}

static void check_ok(const char *text, struct config **out, int line) {
    char err[512] = "";
    *out = config_parse("t.conf", text, err, sizeof(err));
    if (*out == NULL) {
        unit_fail(__FILE__, line, "parse failed: %s", err);
    }
}

UNIT_TEST(config_base_text_parses) {
    struct config *c;
    check_ok(BASE, &c, __LINE__);
    config_free(c);
}

UNIT_TEST(config_unknown_key_names_its_line) {
    check_error(BASE "bogus = 1\n", 10, "bogus", __LINE__);
    check_error("[proxy]\nhostname = a\nhostnmae = b\n" "[backend]\naddress = 127.0.0.1:1\n",
                3, "hostnmae", __LINE__);
}

UNIT_TEST(config_unknown_section_names_its_line) {
    check_error(BASE "\n[frontend]\naddress = 127.0.0.1:1\n", 11, "frontend", __LINE__);
}

UNIT_TEST(config_key_outside_any_section_is_an_error) {
    check_error("hostname = x\n" BASE, 1, "hostname", __LINE__);
}

UNIT_TEST(config_line_without_equals_is_an_error) {
    check_error("[proxy]\nhostname\n", 2, NULL, __LINE__);
}

UNIT_TEST(config_key_without_value_is_an_error) {
    check_error("[proxy]\nhostname =\n", 2, "hostname", __LINE__);
}

UNIT_TEST(config_missing_backend_is_an_error) {
    const char text[] = "[proxy]\nhostname = a\n[listener smtp]\naddress = 127.0.0.1:25\n"
                        "kind = smtp\n";
    char err[512] = "";
    struct config *c = config_parse("t.conf", text, err, sizeof(err));
    CHECK(c == NULL);
    CHECK(strncmp(err, "t.conf:", 7) == 0);
    CHECK(strstr(err, "backend") != NULL);
    config_free(c);
}

UNIT_TEST(config_backend_without_address_is_an_error) {
    const char text[] = "[backend]\n[listener smtp]\naddress = 127.0.0.1:25\nkind = smtp\n";
    char err[512] = "";
    struct config *c = config_parse("t.conf", text, err, sizeof(err));
    CHECK(c == NULL);
    CHECK(strncmp(err, "t.conf:", 7) == 0);
    CHECK(strstr(err, "backend") != NULL);
    config_free(c);
}

UNIT_TEST(config_without_listener_is_an_error) {
    const char text[] = "[backend]\naddress = 127.0.0.1:25\n";
    char err[512] = "";
    struct config *c = config_parse("t.conf", text, err, sizeof(err));
    CHECK(c == NULL);
    CHECK(strncmp(err, "t.conf:", 7) == 0);
    CHECK(strstr(err, "listener") != NULL);
    config_free(c);
}

UNIT_TEST(config_listener_without_address_names_section_line) {
    check_error(BASE "\n[listener sub]\nkind = submission\n", 11, "address", __LINE__);
}

UNIT_TEST(config_listener_without_kind_names_section_line) {
    check_error(BASE "\n[listener other]\naddress = 127.0.0.1:2525\n", 11, "kind", __LINE__);
}

UNIT_TEST(config_bad_port_is_an_error_on_its_line) {
    check_error("[proxy]\n[backend]\naddress = 127.0.0.1:0\n", 3, "port", __LINE__);
    check_error("[proxy]\n[backend]\naddress = 127.0.0.1:70000\n", 3, "port", __LINE__);
    check_error("[proxy]\n[backend]\naddress = 127.0.0.1:x\n", 3, "port", __LINE__);
    check_error("[proxy]\n[backend]\naddress = 127.0.0.1:\n", 3, "port", __LINE__);
    check_error("[proxy]\n[backend]\naddress = 127.0.0.1:25x\n", 3, "port", __LINE__);
    check_error(BASE "\n[listener b]\naddress = [::1]:65536\nkind = smtp\n", 12, "port",
                __LINE__);
}

UNIT_TEST(config_listener_host_names_are_refused_numeric_only) {
    /* A listener binds at start: only [backend] address resolves names. */
    check_error(BASE "[listener x]\naddress = mail.example.test:25\nkind = smtp\n", 11,
                "numeric", __LINE__);
}

UNIT_TEST(config_address_without_port_is_an_error) {
    check_error("[backend]\naddress = 127.0.0.1\n", 2, NULL, __LINE__);
    check_error("[backend]\naddress = [::1]\n", 2, NULL, __LINE__);
    check_error("[backend]\naddress = [::1]25\n", 2, NULL, __LINE__);
}

UNIT_TEST(config_duplicate_listener_names_second_section_line) {
    check_error(BASE "\n[listener smtp]\naddress = 127.0.0.1:2525\nkind = smtp\n", 11,
                "smtp", __LINE__);
}

UNIT_TEST(config_duplicate_backend_is_an_error) {
    check_error(BASE "[backend]\naddress = 127.0.0.1:1\n", 10, "backend", __LINE__);
}

UNIT_TEST(config_submissions_with_tls_none_is_an_error) {
    check_error(BASE "\n[listener subs]\naddress = 127.0.0.1:465\nkind = submissions\n"
                     "tls = none\n",
                11, "implicit", __LINE__);
}

UNIT_TEST(config_require_tls_on_tls_none_listener_is_an_error) {
    check_error(BASE "\n[listener sub]\naddress = 127.0.0.1:587\nkind = submission\n"
                     "tls = none\nrequire_tls = yes\n",
                11, "require_tls", __LINE__);
}

UNIT_TEST(config_bad_bool_kind_and_tls_values_are_errors) {
    check_error(BASE "require_tls = maybe\n", 10, "maybe", __LINE__);
    check_error(BASE "tls = sometimes\n", 10, "sometimes", __LINE__);
    check_error(BASE "\n[listener b]\naddress = 127.0.0.1:1\nkind = lmtp\n", 13, "lmtp",
                __LINE__);
}

UNIT_TEST(config_status_header_with_colon_is_an_error) {
    check_error("[proxy]\nstatus_header = X-Foo:\n" BASE, 2, NULL, __LINE__);
    check_error("[proxy]\nstatus_header = X Foo\n" BASE, 2, NULL, __LINE__);
}

UNIT_TEST(config_status_header_named_received_is_an_error) {
    check_error("[proxy]\nstatus_header = Received\n" BASE, 2, "Received", __LINE__);
    check_error("[proxy]\nstatus_header = received\n" BASE, 2, "Received", __LINE__);
}

UNIT_TEST(config_status_header_custom_name_is_kept) {
    struct config *c;
    check_ok("[proxy]\nstatus_header = X-Proxy-Info\n" BASE, &c, __LINE__);
    if (c != NULL) {
        CHECK_STR(c->status_header, "X-Proxy-Info");
    }
    config_free(c);
}

UNIT_TEST(config_bad_duration_names_its_line) {
    check_error(BASE "[proxy]\ncommand_timeout = 5x\n", 11, "5x", __LINE__);
    check_error(BASE "[proxy]\ndata_timeout = -5s\n", 11, NULL, __LINE__);
    check_error(BASE "[proxy]\ndata_timeout = s\n", 11, NULL, __LINE__);
    check_error(BASE "[proxy]\ndata_timeout = 0\n", 11, NULL, __LINE__);
}

UNIT_TEST(config_durations_accept_s_m_h_ms_and_plain_seconds) {
    struct config *c;
    check_ok("[proxy]\n"
             "connect_timeout = 30s\n"
             "greeting_timeout = 5m\n"
             "command_timeout = 1h\n"
             "reply_timeout = 250ms\n"
             "data_timeout = 45\n"
             "data_end_timeout = 10m\n"
             "shutdown_grace = 2s\n" BASE,
             &c, __LINE__);
    if (c != NULL) {
        CHECK(c->connect_timeout == 30.0);
        CHECK(c->greeting_timeout == 300.0);
        CHECK(c->command_timeout == 3600.0);
        CHECK(c->reply_timeout > 0.2499 && c->reply_timeout < 0.2501);
        CHECK(c->data_timeout == 45.0);
        CHECK(c->data_end_timeout == 600.0);
        CHECK(c->shutdown_grace == 2.0);
    }
    config_free(c);
}

UNIT_TEST(config_defaults_follow_rfc5321_timeouts) {
    struct config *c;
    check_ok(BASE, &c, __LINE__);
    if (c != NULL) {
        CHECK(c->greeting_timeout == 300.0);
        CHECK(c->data_timeout == 180.0);
        CHECK(c->data_end_timeout == 600.0);
        CHECK_INT(c->command_line_max, SMTP_CMD_LINE_MAX_DEFAULT);
        CHECK_STR(c->status_header, "X-TLS-Status");
    }
    config_free(c);
}

UNIT_TEST(config_ipv6_listener_address_parses) {
    struct config *c;
    check_ok("[backend]\naddress = 127.0.0.1:10026\n[listener v6]\naddress = [::1]:25\n"
             "kind = smtp\n",
             &c, __LINE__);
    if (c != NULL && c->nlisteners == 1) {
        CHECK_INT(c->listeners[0].addr.ss.ss_family, AF_INET6);
        CHECK_INT(c->listeners[0].addr.len, sizeof(struct sockaddr_in6));
        char a[128];
        unsigned port = 0;
        net_addr_format(&c->listeners[0].addr, a, sizeof(a), &port);
        CHECK_STR(a, "::1");
        CHECK_INT(port, 25);
        CHECK_STR(c->listeners[0].address, "[::1]:25");
    }
    config_free(c);
}

UNIT_TEST(config_unix_path_backend_parses) {
    struct config *c;
    check_ok("[backend]\naddress = /run/x.sock\n[listener smtp]\naddress = 127.0.0.1:25\n"
             "kind = smtp\n",
             &c, __LINE__);
    if (c != NULL) {
        CHECK_INT(c->backend.ntargets, 1);
        const struct net_addr *ba = &c->backend.targets[0].addr;
        CHECK_INT(ba->ss.ss_family, AF_UNIX);
        CHECK_STR(((const struct sockaddr_un *)&ba->ss)->sun_path, "/run/x.sock");
        char a[128];
        unsigned port = 99;
        net_addr_format(ba, a, sizeof(a), &port);
        CHECK_STR(a, "/run/x.sock");
        CHECK_INT(port, 0);
    }
    config_free(c);
}

UNIT_TEST(config_unix_path_listener_is_refused) {
    check_error("[backend]\naddress = 127.0.0.1:1\n[listener u]\naddress = /run/l.sock\n"
                "kind = smtp\n",
                3, NULL, __LINE__);
}

UNIT_TEST(config_comments_blank_lines_and_crlf_endings_are_accepted) {
    struct config *c;
    check_ok("# a comment\r\n"
             "; another comment\r\n"
             "\r\n"
             "   \r\n"
             "[proxy]\r\n"
             "  # indented comment\r\n"
             "hostname = mx.example.test\r\n"
             "workers = 3\r\n"
             "\r\n"
             "[backend]\r\n"
             "address = 127.0.0.1:10026\r\n"
             "[listener smtp]\r\n"
             "address = 127.0.0.1:10025\r\n"
             "kind = smtp\r\n",
             &c, __LINE__);
    if (c != NULL) {
        CHECK_STR(c->hostname, "mx.example.test");
        CHECK_INT(c->workers, 3);
        CHECK_STR(c->backend.address, "127.0.0.1:10026");
        CHECK_INT(c->nlisteners, 1);
        if (c->nlisteners == 1) {
            CHECK_STR(c->listeners[0].name, "smtp");
            CHECK_STR(c->listeners[0].address, "127.0.0.1:10025");
        }
    }
    config_free(c);
}

UNIT_TEST(config_crlf_errors_still_count_lines_right) {
    check_error("# c\r\n\r\n[proxy]\r\nnope = 1\r\n", 4, "nope", __LINE__);
}

UNIT_TEST(config_listener_defaults_by_kind) {
    struct config *c;
    check_ok(BASE, &c, __LINE__);
    if (c != NULL && c->nlisteners == 1) {
        CHECK_INT(c->listeners[0].tls, TLS_MODE_NONE);
        CHECK_INT(c->listeners[0].require_tls, 0);
        CHECK_INT(c->listeners[0].line, 7);
    }
    config_free(c);
}

UNIT_TEST(config_names_of_kinds_and_tls_modes) {
    CHECK_STR(listener_kind_name(KIND_SMTP), "smtp");
    CHECK_STR(listener_kind_name(KIND_SUBMISSION), "submission");
    CHECK_STR(listener_kind_name(KIND_SUBMISSIONS), "submissions");
    CHECK_STR(tls_mode_name(TLS_MODE_NONE), "none");
    CHECK_STR(tls_mode_name(TLS_MODE_STARTTLS), "starttls");
    CHECK_STR(tls_mode_name(TLS_MODE_IMPLICIT), "implicit");
}

UNIT_TEST(config_net_addr_parse_accepts_numeric_forms) {
    struct net_addr a;
    char err[256], text[128];
    unsigned port;
    CHECK_INT(net_addr_parse("192.0.2.1:25", &a, err, sizeof(err)), 1);
    net_addr_format(&a, text, sizeof(text), &port);
    CHECK_STR(text, "192.0.2.1");
    CHECK_INT(port, 25);
    CHECK_INT(net_addr_parse("[2001:db8::1]:587", &a, err, sizeof(err)), 1);
    net_addr_format(&a, text, sizeof(text), &port);
    CHECK_STR(text, "2001:db8::1");
    CHECK_INT(port, 587);
    CHECK_INT(net_addr_parse("127.0.0.1:65535", &a, err, sizeof(err)), 1);
    CHECK_INT(net_addr_parse("127.0.0.1:1", &a, err, sizeof(err)), 1);
}

UNIT_TEST(config_net_addr_parse_refuses_names_and_bad_ports) {
    struct net_addr a;
    char err[256];
    static const char *const bad[] = {
        "localhost:25", "127.0.0.1:0", "127.0.0.1:70000", "127.0.0.1:x", "[::1]:0",
        "[::1", "relative/path.sock", "", ":25", "1.2.3.4.5:25",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (net_addr_parse(bad[i], &a, err, sizeof(err)) != 0) {
            unit_fail(__FILE__, __LINE__, "net_addr_parse(\"%s\") accepted", bad[i]);
        } else if (err[0] == '\0') {
            unit_fail(__FILE__, __LINE__, "net_addr_parse(\"%s\") gave no reason", bad[i]);
        }
    }
}

UNIT_TEST(config_line_limits_errors_and_pregreet_have_safe_defaults) {
    struct config *c;
    check_ok(BASE, &c, __LINE__);
    if (c != NULL) {
        CHECK_INT(c->command_line_max, 512);
        CHECK_INT(c->mail_line_max, 2048);
        CHECK_INT(c->auth_line_max, 12288);
        CHECK_INT(c->max_errors, 20);
        CHECK_INT(c->pregreet, PREGREET_LOG);
        CHECK(c->pregreet_wait == 1.0);
    }
    config_free(c);
}

UNIT_TEST(config_pregreet_reject_and_zero_wait_parse) {
    struct config *c;
    check_ok("[proxy]\npregreet = reject\npregreet_wait = 0\nmax_errors = 0\n"
             "auth_line_max = 16384\n[backend]\naddress = 127.0.0.1:1\n"
             "[listener a]\naddress = 127.0.0.1:2\nkind = smtp\n",
             &c, __LINE__);
    if (c != NULL) {
        CHECK_INT(c->pregreet, PREGREET_REJECT);
        CHECK(c->pregreet_wait == 0.0);
        CHECK_INT(c->max_errors, 0);
        CHECK_INT(c->auth_line_max, 16384);
    }
    config_free(c);
}

UNIT_TEST(config_bad_pregreet_and_short_line_limits_name_their_line) {
    check_error("[proxy]\npregreet = maybe\n", 2, "ignore, log or reject", __LINE__);
    check_error("[proxy]\nauth_line_max = 100\n", 2, "at least 512", __LINE__);
    check_error("[proxy]\nmail_line_max = 40000\n", 2, NULL, __LINE__);
    check_error("[proxy]\ncommand_line_max = 1024\nmail_line_max = 600\n[backend]\n"
                "address = 127.0.0.1:1\n[listener a]\naddress = 127.0.0.1:2\nkind = smtp\n",
                3, "mail_line_max", __LINE__);
}

UNIT_TEST(config_dns_defaults_look_names_up_with_the_system_resolver) {
    struct config *c;
    check_ok(BASE, &c, __LINE__);
    if (c != NULL) {
        CHECK_INT(c->dns_reverse_lookup, 1);
        CHECK(c->dns_timeout == 5.0);
        CHECK(c->dns_servers == NULL);
    }
    config_free(c);
}

UNIT_TEST(config_dns_section_sets_lookup_timeout_and_servers) {
    struct config *c;
    check_ok(BASE "[dns]\nreverse_lookup = no\ntimeout = 1500ms\n"
                  "servers = 127.0.0.1:5353 , 192.0.2.53, [::1]:53, 2001:db8::53, [2001:db8::1]\n",
             &c, __LINE__);
    if (c != NULL) {
        CHECK_INT(c->dns_reverse_lookup, 0);
        CHECK(c->dns_timeout == 1.5);
        CHECK_STR(c->dns_servers, "127.0.0.1:5353,192.0.2.53,[::1]:53,[2001:db8::53],[2001:db8::1]");
    }
    config_free(c);
}

UNIT_TEST(config_dns_servers_are_numeric_with_valid_ports) {
    check_error(BASE "[dns]\nservers = dns.example\n", 11, "numeric", __LINE__);
    check_error(BASE "[dns]\nservers = 127.0.0.1:0\n", 11, "port", __LINE__);
    check_error(BASE "[dns]\nservers = 127.0.0.1:65536\n", 11, "port", __LINE__);
    check_error(BASE "[dns]\nservers = 127.0.0.1:53x\n", 11, "port", __LINE__);
    check_error(BASE "[dns]\nservers = [::1\n", 11, "IPv6", __LINE__);
    check_error(BASE "[dns]\nservers = [127.0.0.1]:53\n", 11, "numeric", __LINE__);
    check_error(BASE "[dns]\nservers = 127.0.0.1,\t,\n", 11, NULL, __LINE__);
    check_error(BASE "[dns]\nservers = ,\n", 11, "at least one", __LINE__);
    check_error(BASE "[dns]\ntimeout = 0\n", 11, "duration", __LINE__);
    check_error(BASE "[dns]\nreverse_lookup = maybe\n", 11, "yes or no", __LINE__);
    check_error(BASE "[dns]\nnameserver = 127.0.0.1\n", 11, "[dns]", __LINE__);
}

UNIT_TEST(config_every_key_in_the_table_is_documented_in_example_conf) {
    /* example.conf documents every key: the table (--keys) and the file
     * must name the same keys, section by section. */
    char example[4096];
    const char *lb = loopback_conf_path();
    snprintf(example, sizeof(example), "%.*sexample.conf",
             (int)(strlen(lb) - strlen("loopback.conf")), lb);
    char *doc = read_all(example);
    CHECK(doc != NULL);
    char *keys = NULL;
    size_t keys_len = 0;
    FILE *out = open_memstream(&keys, &keys_len);
    config_print_keys(out);
    fclose(out);
    if (doc == NULL || keys == NULL) {
        free(doc);
        free(keys);
        return;
    }
    char section[64] = "";
    for (char *line = strtok(keys, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (line[0] == '[') {
            snprintf(section, sizeof(section), "%s", line);
            continue;
        }
        char name[64];
        if (sscanf(line, "%63s", name) != 1) {
            continue;
        }
        /* "name =" at the start of a line, commented out or not */
        char want[80], want_commented[84];
        snprintf(want, sizeof(want), "\n%s = ", name);
        snprintf(want_commented, sizeof(want_commented), "\n# %s = ", name);
        if (strstr(doc, want) == NULL && strstr(doc, want_commented) == NULL) {
            unit_fail(__FILE__, __LINE__, "%s %s is not in configs/example.conf", section, name);
        }
    }
    free(doc);
    free(keys);
}

UNIT_TEST(config_starttls_memory_defaults_remember_a_day_by_address_and_slash_64) {
    struct config *c;
    check_ok(BASE, &c, __LINE__);
    if (c != NULL) {
        CHECK_INT(c->memory.enabled, 1);
        CHECK(c->memory.ttl == 86400.0);
        CHECK_INT(c->memory.ipv4_prefix, 32);
        CHECK_INT(c->memory.ipv6_prefix, 64);
        CHECK_INT(c->memory.max_entries, 100000);
        CHECK(c->memory.save_interval == 300.0);
        CHECK_INT(c->memory.never_offer.n, 0);
        CHECK_INT(c->memory.always_offer.n, 0);
        CHECK(c->state_dir == NULL);
        CHECK(c->control_socket == NULL);
        CHECK_INT(listener_tls_optional(&c->listeners[0]), 0); /* no certificate: tls none */
    }
    config_free(c);
}

UNIT_TEST(config_starttls_memory_section_sets_ttl_prefixes_and_lists) {
    struct config *c;
    check_ok(BASE "[starttls_memory]\nenabled = no\nttl = 7d\nipv4_prefix = 24\n"
                  "ipv6_prefix = 48\nmax_entries = 10\n"
                  "never_offer = 192.0.2.0/24, 2001:db8:bad::/48\nalways_offer = 198.51.100.7\n"
                  "save_interval = 30s\n"
                  "[proxy]\nstate_dir = /var/lib/stp\ncontrol_socket = /run/stp/control.sock\n",
             &c, __LINE__);
    if (c != NULL) {
        CHECK_INT(c->memory.enabled, 0);
        CHECK(c->memory.ttl == 7 * 86400.0);
        CHECK_INT(c->memory.ipv4_prefix, 24);
        CHECK_INT(c->memory.ipv6_prefix, 48);
        CHECK_INT(c->memory.max_entries, 10);
        CHECK_INT(c->memory.never_offer.n, 2);
        CHECK_INT(c->memory.always_offer.n, 1);
        CHECK_STR(c->memory.never_offer_text, "192.0.2.0/24, 2001:db8:bad::/48");
        CHECK(c->memory.save_interval == 30.0);
        CHECK_STR(c->state_dir, "/var/lib/stp");
        CHECK_STR(c->control_socket, "/run/stp/control.sock");
    }
    config_free(c);
}

UNIT_TEST(config_starttls_memory_never_offer_reads_a_file_of_cidrs) {
    char path[] = "/tmp/stp-never-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    const char body[] = "# broken senders\n192.0.2.0/24\n\n2001:db8::/32 # a comment\n";
    CHECK(write(fd, body, sizeof(body) - 1) == (ssize_t)(sizeof(body) - 1));
    close(fd);
    char text[1024];
    snprintf(text, sizeof(text), BASE "[starttls_memory]\nnever_offer = %s\n", path);
    struct config *c;
    check_ok(text, &c, __LINE__);
    if (c != NULL) {
        CHECK_INT(c->memory.never_offer.n, 2);
    }
    config_free(c);
    unlink(path);
    snprintf(text, sizeof(text), BASE "[starttls_memory]\nnever_offer = %s\n", path);
    check_error(text, 11, "cannot open", __LINE__);
}

UNIT_TEST(config_starttls_memory_bad_values_name_their_line) {
    check_error(BASE "[starttls_memory]\nttl = 31d\n", 11, "duration", __LINE__);
    check_error(BASE "[starttls_memory]\nipv4_prefix = 33\n", 11, "32", __LINE__);
    check_error(BASE "[starttls_memory]\nipv4_prefix = 0\n", 11, "at least 1", __LINE__);
    check_error(BASE "[starttls_memory]\nipv6_prefix = 129\n", 11, "128", __LINE__);
    check_error(BASE "[starttls_memory]\nmax_entries = 0\n", 11, "at least 1", __LINE__);
    check_error(BASE "[starttls_memory]\nnever_offer = 192.0.2.0/33\n", 11, "never_offer",
                __LINE__);
    check_error(BASE "[starttls_memory]\nalways_offer = mx.example\n", 11, "always_offer",
                __LINE__);
    check_error(BASE "[starttls_memory]\nremember = yes\n", 11, "[starttls_memory]", __LINE__);
}

UNIT_TEST(config_listener_proxy_protocol_needs_trusted_peers) {
    struct config *c;
    check_ok(BASE "proxy_protocol = v2\nproxy_trusted = 10.0.0.10, 10.0.0.0/24\n", &c, __LINE__);
    if (c != NULL) {
        CHECK_INT(c->listeners[0].proxy_protocol, PROXY_PROTOCOL_V2);
        CHECK_INT(c->listeners[0].proxy_trusted.n, 2);
        CHECK(c->proxy_protocol_timeout == 5.0);
    }
    config_free(c);
    check_ok(BASE, &c, __LINE__);
    if (c != NULL) {
        CHECK_INT(c->listeners[0].proxy_protocol, PROXY_PROTOCOL_NO);
    }
    config_free(c);
    check_error(BASE "proxy_protocol = any\n", 7, "proxy_trusted", __LINE__);
    check_error(BASE "proxy_trusted = 10.0.0.1\n", 7, "without proxy_protocol", __LINE__);
    check_error(BASE "proxy_protocol = v3\n", 10, "no, v1, v2 or any", __LINE__);
    check_error(BASE "proxy_protocol = v1\nproxy_trusted = lb.example\n", 11, "proxy_trusted",
                __LINE__);
}

UNIT_TEST(config_starttls_memory_redis_is_numeric_or_a_unix_path) {
    struct config *c;
    check_ok(BASE "[starttls_memory]\nredis = 127.0.0.1:6379\nredis_timeout = 20ms\n", &c,
             __LINE__);
    if (c != NULL) {
        CHECK_STR(c->memory.redis, "127.0.0.1:6379");
        CHECK_STR(c->memory.redis_prefix, "smtp-tls-proxy:starttls:");
        CHECK(c->memory.redis_timeout > 0.0199 && c->memory.redis_timeout < 0.0201);
    }
    config_free(c);
    check_ok(BASE "[starttls_memory]\nredis = unix:/run/redis/redis.sock\n", &c, __LINE__);
    config_free(c);
    check_error(BASE "[starttls_memory]\nredis = redis.example:6379\n", 0, "numeric", __LINE__);
}

/* ---- environment overrides ---- */

static struct config *parse_env(const char *text, char *const *env, char *err, size_t n) {
    return config_parse_env("t.conf", text, env, err, n);
}

UNIT_TEST(config_environment_override_wins_over_the_file_and_is_noted) {
    char *env[] = {"PATH=/bin", "SMTP_TLS_PROXY__BACKEND__ADDRESS=127.0.0.1:2599",
                   "SMTP_TLS_PROXY__PROXY__WORKERS=3", NULL};
    char err[512] = "";
    struct config *c = parse_env(BASE, env, err, sizeof(err));
    CHECK(c != NULL);
    if (c != NULL) {
        CHECK_STR(c->backend.address, "127.0.0.1:2599");
        CHECK_INT(c->workers, 3);
        CHECK_INT(c->nenv_notes, 2);
        CHECK(strstr(c->env_notes[0], "[backend] address = 127.0.0.1:2599") != NULL);
        CHECK(strstr(c->env_notes[0], "SMTP_TLS_PROXY__BACKEND__ADDRESS") != NULL);
    }
    config_free(c);
}

UNIT_TEST(config_environment_override_reaches_a_named_section_dashes_as_underscores) {
    char *env[] = {"SMTP_TLS_PROXY__LISTENER__SMTP__ADDRESS=127.0.0.1:2700",
                   "SMTP_TLS_PROXY__LISTENER__MY_SUB__ADDRESS=127.0.0.1:2701",
                   "SMTP_TLS_PROXY__LISTENER__MY_SUB__KIND=submission",
                   "SMTP_TLS_PROXY__LISTENER__MY_SUB__TLS=none", NULL};
    char err[512] = "";
    struct config *c = parse_env(BASE "[listener my-sub]\naddress = 127.0.0.1:1\nkind = smtp\n",
                                 env, err, sizeof(err));
    CHECK(c != NULL);
    if (c != NULL) {
        CHECK_INT(c->nlisteners, 2);
        CHECK_STR(c->listeners[0].address, "127.0.0.1:2700");
        CHECK_STR(c->listeners[1].name, "my-sub");
        CHECK_STR(c->listeners[1].address, "127.0.0.1:2701");
        CHECK_INT(c->listeners[1].kind, KIND_SUBMISSION);
    }
    config_free(c);
}

UNIT_TEST(config_environment_override_typos_are_errors_naming_the_variable) {
    char err[512] = "";
    char *section[] = {"SMTP_TLS_PROXY__BAKEND__ADDRESS=x", NULL};
    CHECK(parse_env(BASE, section, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "t.conf: environment SMTP_TLS_PROXY__BAKEND__ADDRESS: unknown section") ==
          err);
    char *key[] = {"SMTP_TLS_PROXY__PROXY__WORKRS=1", NULL};
    CHECK(parse_env(BASE, key, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "unknown key \"workrs\"") != NULL);
    char *value[] = {"SMTP_TLS_PROXY__PROXY__WORKERS=many", NULL};
    CHECK(parse_env(BASE, value, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "SMTP_TLS_PROXY__PROXY__WORKERS") != NULL);
    char *shape[] = {"SMTP_TLS_PROXY__WORKERS=1", NULL};
    CHECK(parse_env(BASE, shape, err, sizeof(err)) == NULL);
    char *empty[] = {"SMTP_TLS_PROXY__PROXY__WORKERS=", NULL};
    CHECK(parse_env(BASE, empty, err, sizeof(err)) == NULL);
}

UNIT_TEST(config_environment_without_our_prefix_changes_nothing) {
    char *env[] = {"SMTP_TLS_PROXY_BACKEND=1", "HOME=/root", NULL};
    char err[512] = "";
    struct config *c = parse_env(BASE, env, err, sizeof(err));
    CHECK(c != NULL);
    if (c != NULL) {
        CHECK_STR(c->backend.address, "127.0.0.1:10026");
        CHECK_INT(c->nenv_notes, 0);
    }
    config_free(c);
}

UNIT_TEST(config_privilege_and_log_keys_are_checked_together) {
    struct config *c;
    check_ok(BASE, &c, __LINE__);
    if (c != NULL) {
        CHECK(c->user == NULL);
        CHECK_INT(c->allow_root, 0);
        CHECK_INT(c->log_target, LOG_TARGET_STDERR);
        CHECK_INT(c->log_facility, LOG_FACILITY_MAIL);
        CHECK(c->tls_expiry_warning == 30 * 86400.0);
        CHECK_INT(c->tls_watch, 0);
    }
    config_free(c);
    check_error(BASE "[proxy]\nlog_target = file\n", 0, "log_file", __LINE__);
    check_error(BASE "[proxy]\ngroup = mail\n", 0, "group needs user", __LINE__);
    check_error(BASE "[proxy]\nlog_facility = kern\n", 11, "local7", __LINE__);
    check_error(BASE "[certificate a]\ncert = a.crt\nkey = a.key\nnext_key = n.key\n"
                     "next_cert = n.crt\n", 10, "give one", __LINE__);
}
