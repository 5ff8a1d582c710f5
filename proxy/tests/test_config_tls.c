/*
 * test_config_tls.c - config.h, the TLS parts: listener keys tls,
 * require_tls, force_require_tls, auth_requires_tls, min_tls_version and
 * ciphers with their defaults by kind; [tls]; [certificate NAME]. A
 * listener without ciphers keeps NULL; the suites that then apply are
 * tls.h's, checked here against BoringSSL's own reading of them.
 */
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>

#include "config/config.h"
#include "tls/tls.h"
#include "unit.h"

/* TBASE ends with one certificate; sections appended start at line 10. */
#define TBASE                                                                            \
    "[proxy]\n"                    /* 1 */                                               \
    "hostname = mx.example.test\n" /* 2 */                                               \
    "\n"                           /* 3 */                                               \
    "[backend]\n"                  /* 4 */                                               \
    "address = 127.0.0.1:10026\n"  /* 5 */                                               \
    "\n"                           /* 6 */                                               \
    "[certificate main]\n"         /* 7 */                                               \
    "cert = /etc/proxy/main.crt\n" /* 8 */                                               \
    "key = /etc/proxy/main.key\n"  /* 9 */

/* NOCERT ends without certificates; sections appended start at line 7. */
#define NOCERT                                                                           \
    "[proxy]\n"                    /* 1 */                                               \
    "hostname = mx.example.test\n" /* 2 */                                               \
    "\n"                           /* 3 */                                               \
    "[backend]\n"                  /* 4 */                                               \
    "address = 127.0.0.1:10026\n"  /* 5 */                                               \
    "\n"                           /* 6 */

/* SMTP_L is a kind smtp listener section of three lines. */
#define SMTP_L "[listener smtp]\naddress = 127.0.0.1:25\nkind = smtp\n"

/* check_error parses |text| and expects failure with "t.conf:LINE: "
 * (any line when |want_line| is 0) and a reason containing |reason|. */
static void check_error(const char *text, int want_line, const char *reason, int line) {
    char err[512] = "";
    struct config *c = config_parse("t.conf", text, err, sizeof(err));
    if (c != NULL) {
        unit_fail(__FILE__, line, "parsed, want error at line %d (%s)", want_line,
                  reason ? reason : "any reason");
        config_free(c);
        return;
    }
    char prefix[64];
    if (want_line > 0) {
        snprintf(prefix, sizeof(prefix), "t.conf:%d: ", want_line);
    } else {
        snprintf(prefix, sizeof(prefix), "t.conf:");
    }
    if (strncmp(err, prefix, strlen(prefix)) != 0) {
        unit_fail(__FILE__, line, "error \"%s\", want prefix \"%s\"", err, prefix);
    }
    if (want_line == 0) {
        const char *p = err + strlen(prefix);
        if (*p < '1' || *p > '9') {
            unit_fail(__FILE__, line, "error \"%s\" names no line", err);
        }
    }
    if (strlen(err) <= strlen(prefix)) {
        unit_fail(__FILE__, line, "error \"%s\" has no reason", err);
    } else if (reason != NULL && strstr(err, reason) == NULL) {
        unit_fail(__FILE__, line, "error \"%s\" does not mention \"%s\"", err, reason);
    }
}

static struct config *parse_ok(const char *text, int line) {
    char err[512] = "";
    struct config *c = config_parse("t.conf", text, err, sizeof(err));
    if (c == NULL) {
        unit_fail(__FILE__, line, "parse failed: %s", err);
    }
    return c;
}

static const struct listener_config *listener(const struct config *c, const char *name,
                                              int line) {
    for (size_t i = 0; c != NULL && i < c->nlisteners; i++) {
        if (strcmp(c->listeners[i].name, name) == 0) {
            return &c->listeners[i];
        }
    }
    unit_fail(__FILE__, line, "no listener \"%s\"", name);
    return NULL;
}

static const struct cert_config *cert(const struct config *c, const char *name, int line) {
    for (size_t i = 0; c != NULL && i < c->ncerts; i++) {
        if (strcmp(c->certs[i].name, name) == 0) {
            return &c->certs[i];
        }
    }
    unit_fail(__FILE__, line, "no certificate \"%s\"", name);
    return NULL;
}

/* ---- defaults by kind ---- */

UNIT_TEST(config_tls_every_listener_kind_gets_documented_defaults) {
    struct config *c = parse_ok(TBASE
                                "\n"                                  /* 10 */
                                "[certificate rsa]\n"                 /* 11 */
                                "cert = /etc/proxy/rsa.crt\n"         /* 12 */
                                "key = /etc/proxy/rsa.key\n"          /* 13 */
                                "\n"                                  /* 14 */
                                "[listener smtp]\n"                   /* 15 */
                                "address = 0.0.0.0:25\n"              /* 16 */
                                "kind = smtp\n"                       /* 17 */
                                "[listener sub]\n"                    /* 18 */
                                "address = 0.0.0.0:587\n"             /* 19 */
                                "kind = submission\n"                 /* 20 */
                                "[listener subs]\n"                   /* 21 */
                                "address = 0.0.0.0:465\n"             /* 22 */
                                "kind = submissions\n"                /* 23 */
                                "[listener plain]\n"                  /* 24 */
                                "address = 127.0.0.1:2525\n"          /* 25 */
                                "kind = smtp\n"                       /* 26 */
                                "tls = none\n",                       /* 27 */
                                __LINE__);
    if (c == NULL) {
        return;
    }
    CHECK_INT(c->nlisteners, 4);
    CHECK_INT(c->ncerts, 2);

    const struct listener_config *l = listener(c, "smtp", __LINE__);
    if (l != NULL) {
        CHECK_INT(l->kind, KIND_SMTP);
        CHECK_INT(l->tls, TLS_MODE_STARTTLS);
        CHECK_INT(l->min_tls_version, CONFIG_TLS1_0);
        CHECK_INT(l->require_tls, 0);
        CHECK_INT(l->force_require_tls, 0);
        CHECK_INT(l->auth_requires_tls, 1);
        CHECK(l->ciphers == NULL);
        CHECK_INT(l->line, 15);
    }
    l = listener(c, "sub", __LINE__);
    if (l != NULL) {
        CHECK_INT(l->kind, KIND_SUBMISSION);
        CHECK_INT(l->tls, TLS_MODE_STARTTLS);
        CHECK_INT(l->require_tls, 1);
        CHECK_INT(l->min_tls_version, CONFIG_TLS1_2);
        CHECK_INT(l->auth_requires_tls, 1);
        CHECK(l->ciphers == NULL);
        CHECK_INT(l->line, 18);
    }
    l = listener(c, "subs", __LINE__);
    if (l != NULL) {
        CHECK_INT(l->kind, KIND_SUBMISSIONS);
        CHECK_INT(l->tls, TLS_MODE_IMPLICIT);
        CHECK_INT(l->min_tls_version, CONFIG_TLS1_2);
        CHECK_INT(l->auth_requires_tls, 1);
        CHECK_INT(l->line, 21);
    }
    l = listener(c, "plain", __LINE__);
    if (l != NULL) {
        CHECK_INT(l->kind, KIND_SMTP);
        CHECK_INT(l->tls, TLS_MODE_NONE);
        CHECK_INT(l->require_tls, 0);
        CHECK_INT(l->auth_requires_tls, 0);
        CHECK_INT(l->line, 24);
    }

    /* [tls] defaults: some positive timeout, the library's groups */
    CHECK(c->handshake_timeout > 0);
    CHECK(c->groups == NULL);

    const struct cert_config *m = cert(c, "main", __LINE__);
    if (m != NULL) {
        CHECK_STR(m->cert_path, "/etc/proxy/main.crt");
        CHECK_STR(m->key_path, "/etc/proxy/main.key");
        CHECK(m->names == NULL);
        CHECK_INT(m->nnames, 0);
        CHECK_INT(m->is_default, 1);
        CHECK_INT(m->line, 7);
    }
    const struct cert_config *r = cert(c, "rsa", __LINE__);
    if (r != NULL) {
        CHECK_STR(r->cert_path, "/etc/proxy/rsa.crt");
        CHECK_STR(r->key_path, "/etc/proxy/rsa.key");
        CHECK_INT(r->is_default, 0);
        CHECK_INT(r->line, 11);
    }
    config_free(c);
}

UNIT_TEST(config_tls_smtp_listener_before_certificates_still_defaults_to_starttls) {
    struct config *c = parse_ok(NOCERT SMTP_L
                                "[certificate main]\n"
                                "cert = /etc/proxy/main.crt\n"
                                "key = /etc/proxy/main.key\n",
                                __LINE__);
    if (c != NULL && c->nlisteners == 1) {
        CHECK_INT(c->listeners[0].tls, TLS_MODE_STARTTLS);
        CHECK_INT(c->listeners[0].auth_requires_tls, 1);
    }
    config_free(c);
}

UNIT_TEST(config_tls_smtp_listener_without_certificates_defaults_to_none) {
    struct config *c = parse_ok(NOCERT SMTP_L, __LINE__);
    if (c != NULL && c->nlisteners == 1) {
        CHECK_INT(c->listeners[0].tls, TLS_MODE_NONE);
        CHECK_INT(c->listeners[0].auth_requires_tls, 0);
        CHECK_INT(c->ncerts, 0);
    }
    config_free(c);
}

UNIT_TEST(config_tls_explicit_values_override_defaults) {
    struct config *c = parse_ok(TBASE
                                "[listener sub]\n"
                                "address = 0.0.0.0:587\n"
                                "kind = submission\n"
                                "tls = starttls\n"
                                "require_tls = no\n"
                                "auth_requires_tls = no\n"
                                "min_tls_version = TLSv1.3\n"
                                "ciphers = ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256\n"
                                "[listener mx]\n"
                                "address = 0.0.0.0:25\n"
                                "kind = smtp\n"
                                "tls = implicit\n",
                                __LINE__);
    const struct listener_config *l = listener(c, "sub", __LINE__);
    if (l != NULL) {
        CHECK_INT(l->tls, TLS_MODE_STARTTLS);
        CHECK_INT(l->require_tls, 0);
        CHECK_INT(l->auth_requires_tls, 0);
        CHECK_INT(l->min_tls_version, CONFIG_TLS1_3);
        CHECK_STR(l->ciphers, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256");
    }
    l = listener(c, "mx", __LINE__);
    if (l != NULL) {
        CHECK_INT(l->tls, TLS_MODE_IMPLICIT);
        CHECK_INT(l->min_tls_version, CONFIG_TLS1_0);
    }
    config_free(c);
}

/* ---- require_tls on port 25 (RFC 3207 4) ---- */

UNIT_TEST(config_tls_require_tls_on_smtp_kind_is_an_error_naming_rfc3207) {
    /* explicit starttls */
    check_error(TBASE "\n"                       /* 10 */
                      "[listener mx]\n"          /* 11 */
                      "address = 0.0.0.0:25\n"   /* 12 */
                      "kind = smtp\n"            /* 13 */
                      "tls = starttls\n"         /* 14 */
                      "require_tls = yes\n",     /* 15 */
                11, "RFC 3207", __LINE__);
    /* starttls by default */
    check_error(TBASE "[listener mx]\n"          /* 10 */
                      "address = 0.0.0.0:25\n"   /* 11 */
                      "kind = smtp\n"            /* 12 */
                      "require_tls = yes\n",     /* 13 */
                10, "RFC 3207", __LINE__);
    /* with force_require_tls = no spelled out */
    check_error(TBASE "[listener mx]\n"
                      "address = 0.0.0.0:25\n"
                      "kind = smtp\n"
                      "require_tls = yes\n"
                      "force_require_tls = no\n",
                10, "RFC 3207", __LINE__);
}

UNIT_TEST(config_tls_require_tls_on_smtp_kind_with_force_is_accepted) {
    struct config *c = parse_ok(TBASE "[listener mx]\n"
                                      "address = 0.0.0.0:25\n"
                                      "kind = smtp\n"
                                      "tls = starttls\n"
                                      "require_tls = yes\n"
                                      "force_require_tls = yes\n",
                                __LINE__);
    if (c != NULL && c->nlisteners == 1) {
        CHECK_INT(c->listeners[0].require_tls, 1);
        CHECK_INT(c->listeners[0].force_require_tls, 1);
        CHECK_INT(c->listeners[0].tls, TLS_MODE_STARTTLS);
    }
    config_free(c);
    /* the order of the two keys does not matter */
    c = parse_ok(TBASE "[listener mx]\n"
                       "address = 0.0.0.0:25\n"
                       "kind = smtp\n"
                       "force_require_tls = yes\n"
                       "require_tls = yes\n",
                 __LINE__);
    if (c != NULL && c->nlisteners == 1) {
        CHECK_INT(c->listeners[0].require_tls, 1);
    }
    config_free(c);
}

/* ---- TLS without certificates ---- */

UNIT_TEST(config_tls_starttls_without_any_certificate_is_an_error) {
    check_error(NOCERT "[listener mx]\n"
                       "address = 0.0.0.0:25\n"
                       "kind = smtp\n"
                       "tls = starttls\n",
                0, "certificate", __LINE__);
}

UNIT_TEST(config_tls_implicit_without_any_certificate_is_an_error) {
    check_error(NOCERT "[listener subs]\n"
                       "address = 0.0.0.0:465\n"
                       "kind = submissions\n",
                0, "certificate", __LINE__);
}

/* ---- listener key errors ---- */

UNIT_TEST(config_tls_submissions_with_starttls_is_an_error) {
    check_error(TBASE "[listener subs]\n"        /* 10 */
                      "address = 0.0.0.0:465\n"  /* 11 */
                      "kind = submissions\n"     /* 12 */
                      "tls = starttls\n",        /* 13 */
                10, "implicit", __LINE__);
}

UNIT_TEST(config_tls_ciphers_on_tls_none_listener_is_an_error) {
    check_error(TBASE "[listener plain]\n"       /* 10 */
                      "address = 0.0.0.0:25\n"   /* 11 */
                      "kind = smtp\n"            /* 12 */
                      "tls = none\n"             /* 13 */
                      "ciphers = HIGH\n",        /* 14 */
                10, "ciphers", __LINE__);
}

UNIT_TEST(config_tls_min_tls_version_accepts_every_spelling) {
    static const struct {
        const char *text;
        int want;
    } cases[] = {
        {"TLSv1", CONFIG_TLS1_0},   {"TLSv1.0", CONFIG_TLS1_0}, {"TLSv1.1", CONFIG_TLS1_1},
        {"TLSv1.2", CONFIG_TLS1_2}, {"TLSv1.3", CONFIG_TLS1_3},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[1024];
        snprintf(text, sizeof(text), TBASE SMTP_L "min_tls_version = %s\n", cases[i].text);
        char err[512] = "";
        struct config *c = config_parse("t.conf", text, err, sizeof(err));
        if (c == NULL) {
            unit_fail(__FILE__, __LINE__, "min_tls_version = %s: %s", cases[i].text, err);
            continue;
        }
        if (c->nlisteners != 1 || c->listeners[0].min_tls_version != cases[i].want) {
            unit_fail(__FILE__, __LINE__, "min_tls_version = %s gave 0x%04x, want 0x%04x",
                      cases[i].text, c->nlisteners ? c->listeners[0].min_tls_version : 0,
                      cases[i].want);
        }
        config_free(c);
    }
}

UNIT_TEST(config_tls_min_tls_version_bad_values_are_errors_on_their_line) {
    /* TBASE (9) + SMTP_L (3): the key is on line 13 */
    check_error(TBASE SMTP_L "min_tls_version = SSLv3\n", 13, "SSLv3", __LINE__);
    check_error(TBASE SMTP_L "min_tls_version = TLSv1.4\n", 13, "TLSv1.4", __LINE__);
    check_error(TBASE SMTP_L "min_tls_version = 1.2\n", 13, NULL, __LINE__);
    check_error(TBASE SMTP_L "min_tls_version = TLSv1.2x\n", 13, NULL, __LINE__);
}

UNIT_TEST(config_tls_bad_bools_in_tls_keys_are_errors_on_their_line) {
    check_error(TBASE SMTP_L "force_require_tls = sure\n", 13, "sure", __LINE__);
    check_error(TBASE SMTP_L "auth_requires_tls = 2\n", 13, NULL, __LINE__);
}

UNIT_TEST(config_tls_version_names) {
    /* "and so on": TLS 1.0 may be "TLSv1" (as OpenSSL names it) or "TLSv1.0" */
    const char *v10 = tls_version_name(CONFIG_TLS1_0);
    CHECK(v10 != NULL && (strcmp(v10, "TLSv1") == 0 || strcmp(v10, "TLSv1.0") == 0));
    CHECK_STR(tls_version_name(CONFIG_TLS1_1), "TLSv1.1");
    CHECK_STR(tls_version_name(CONFIG_TLS1_2), "TLSv1.2");
    CHECK_STR(tls_version_name(CONFIG_TLS1_3), "TLSv1.3");
}

/* ---- [tls] ---- */

UNIT_TEST(config_tls_section_handshake_timeout_and_groups_parse) {
    struct config *c = parse_ok(TBASE SMTP_L
                                "[tls]\n"
                                "handshake_timeout = 10s\n"
                                "groups = X25519:P-256\n",
                                __LINE__);
    if (c != NULL) {
        CHECK(c->handshake_timeout == 10.0);
        CHECK_STR(c->groups, "X25519:P-256");
    }
    config_free(c);
    c = parse_ok(TBASE SMTP_L "[tls]\nhandshake_timeout = 1m\n", __LINE__);
    if (c != NULL) {
        CHECK(c->handshake_timeout == 60.0);
        CHECK(c->groups == NULL);
    }
    config_free(c);
}

UNIT_TEST(config_tls_section_bad_handshake_timeout_is_an_error_on_its_line) {
    check_error(TBASE SMTP_L "[tls]\nhandshake_timeout = soon\n", 14, "soon", __LINE__);
    check_error(TBASE SMTP_L "[tls]\nhandshake_timeout = 0\n", 14, NULL, __LINE__);
}

UNIT_TEST(config_tls_section_unknown_key_names_its_line) {
    check_error(TBASE SMTP_L "[tls]\n"                 /* 13 */
                             "groups = X25519\n"       /* 14 */
                             "session_ticket = no\n",  /* 15 */
                15, "session_ticket", __LINE__);
}

UNIT_TEST(config_tls_session_tickets_default_on_with_a_twelve_hour_rotation) {
    struct config *c = parse_ok(TBASE SMTP_L, __LINE__);
    if (c != NULL) {
        CHECK_INT(c->tls_session_tickets, 1);
        CHECK(c->tls_ticket_rotation == 12 * 3600);
    }
    config_free(c);
    c = parse_ok(TBASE SMTP_L "[tls]\nsession_tickets = no\nticket_rotation = 30m\n", __LINE__);
    if (c != NULL) {
        CHECK_INT(c->tls_session_tickets, 0);
        CHECK(c->tls_ticket_rotation == 1800);
    }
    config_free(c);
}

UNIT_TEST(config_tls_ticket_rotation_beyond_seven_days_is_an_error_on_its_line) {
    /* RFC 8446 4.6.1: a ticket lives seven days at most. */
    check_error(TBASE SMTP_L "[tls]\nticket_rotation = 8d\n", 14, NULL, __LINE__);
    check_error(TBASE SMTP_L "[tls]\nticket_rotation = 0\n", 14, NULL, __LINE__);
}

/* ---- [certificate NAME] ---- */

UNIT_TEST(config_tls_certificate_unknown_key_names_its_line) {
    check_error(TBASE "chain = /etc/proxy/chain.pem\n" SMTP_L, 10, "chain", __LINE__);
}

UNIT_TEST(config_tls_certificate_without_key_is_an_error_at_its_line) {
    check_error(TBASE SMTP_L "\n"                      /* 13 */
                             "[certificate other]\n"   /* 14 */
                             "cert = /etc/o.crt\n",    /* 15 */
                14, "key", __LINE__);
}

UNIT_TEST(config_tls_certificate_without_cert_is_an_error_at_its_line) {
    check_error(TBASE SMTP_L "[certificate other]\n"   /* 13 */
                             "key = /etc/o.key\n",     /* 14 */
                13, "cert", __LINE__);
}

UNIT_TEST(config_tls_duplicate_certificate_section_is_an_error) {
    check_error(TBASE SMTP_L "[certificate main]\n"    /* 13 */
                             "cert = /etc/o.crt\n"
                             "key = /etc/o.key\n",
                13, "main", __LINE__);
}

UNIT_TEST(config_tls_two_default_certificates_are_an_error) {
    check_error(TBASE "default = yes\n"               /* 10 */
                      "[certificate rsa]\n"           /* 11 */
                      "cert = /etc/r.crt\n"           /* 12 */
                      "key = /etc/r.key\n"            /* 13 */
                      "default = yes\n" SMTP_L,       /* 14 */
                0, "default", __LINE__);
}

UNIT_TEST(config_tls_first_certificate_is_default_unless_another_says_so) {
    struct config *c = parse_ok(TBASE "[certificate rsa]\ncert = /etc/r.crt\nkey = /etc/r.key\n"
                                      "[certificate other]\ncert = /etc/o.crt\n"
                                      "key = /etc/o.key\n" SMTP_L,
                                __LINE__);
    if (c != NULL && c->ncerts == 3) {
        CHECK_STR(c->certs[0].name, "main");
        CHECK_INT(c->certs[0].is_default, 1);
        CHECK_INT(c->certs[1].is_default, 0);
        CHECK_INT(c->certs[2].is_default, 0);
    } else {
        CHECK(c != NULL && c->ncerts == 3);
    }
    config_free(c);

    c = parse_ok(TBASE "[certificate rsa]\ncert = /etc/r.crt\nkey = /etc/r.key\n"
                       "default = yes\n" SMTP_L,
                 __LINE__);
    const struct cert_config *m = cert(c, "main", __LINE__);
    const struct cert_config *r = cert(c, "rsa", __LINE__);
    if (m != NULL && r != NULL) {
        CHECK_INT(m->is_default, 0);
        CHECK_INT(r->is_default, 1);
    }
    config_free(c);

    /* default = no on the first does not make it default by itself */
    c = parse_ok(TBASE "default = no\n"
                       "[certificate rsa]\ncert = /etc/r.crt\nkey = /etc/r.key\n"
                       "default = yes\n" SMTP_L,
                 __LINE__);
    m = cert(c, "main", __LINE__);
    r = cert(c, "rsa", __LINE__);
    if (m != NULL && r != NULL) {
        CHECK_INT(m->is_default, 0);
        CHECK_INT(r->is_default, 1);
    }
    config_free(c);
}

UNIT_TEST(config_tls_certificate_names_are_split_trimmed_and_lower_cased) {
    struct config *c =
        parse_ok(TBASE "names = a.example, *.b.example, C.Example\n" SMTP_L, __LINE__);
    const struct cert_config *m = cert(c, "main", __LINE__);
    if (m != NULL) {
        CHECK_INT(m->nnames, 3);
        if (m->nnames == 3 && m->names != NULL) {
            CHECK_STR(m->names[0], "a.example");
            CHECK_STR(m->names[1], "*.b.example");
            CHECK_STR(m->names[2], "c.example");
        }
    }
    config_free(c);

    c = parse_ok(TBASE "names = MX.Example.TEST\n" SMTP_L, __LINE__);
    m = cert(c, "main", __LINE__);
    if (m != NULL) {
        CHECK_INT(m->nnames, 1);
        if (m->nnames == 1 && m->names != NULL) {
            CHECK_STR(m->names[0], "mx.example.test");
        }
    }
    config_free(c);
}

/* check_bad_names expects "names = |v|" in the first certificate to be an
 * error on its line (10). */
static void check_bad_names(const char *v, int line) {
    char text[1024];
    snprintf(text, sizeof(text), TBASE "names = %s\n" SMTP_L, v);
    char err[512] = "";
    struct config *c = config_parse("t.conf", text, err, sizeof(err));
    if (c != NULL) {
        const struct cert_config *m = c->ncerts > 0 ? &c->certs[0] : NULL;
        unit_fail(__FILE__, line, "names = %s accepted as %zu name(s)%s%s%s", v,
                  m ? m->nnames : 0, m && m->nnames > 0 ? ", first \"" : "",
                  m && m->nnames > 0 ? m->names[0] : "", m && m->nnames > 0 ? "\"" : "");
        config_free(c);
    } else if (strncmp(err, "t.conf:10: ", 11) != 0) {
        unit_fail(__FILE__, line, "names = %s: \"%s\", want line 10", v, err);
    }
}

UNIT_TEST(config_tls_bad_certificate_names_are_errors_on_their_line) {
    check_bad_names("*a.example", __LINE__);
    check_bad_names("**.x", __LINE__);
    check_bad_names("a.*.x", __LINE__);
    check_bad_names("good.example, a.*.x", __LINE__);
    check_bad_names("a.example, *a.example", __LINE__);
    check_bad_names("a_b.example", __LINE__);
}

/* The brief for these tests: names are separated by commas, so "a b" is
 * one name with a space in it, not two names. */
UNIT_TEST(config_tls_certificate_name_with_inner_space_is_an_error) {
    check_bad_names("a b", __LINE__);
}

UNIT_TEST(config_tls_certificate_names_with_empty_labels_are_errors) {
    check_bad_names("*.", __LINE__);
    check_bad_names(".example", __LINE__);
    check_bad_names("a..example", __LINE__);
}

/* ---- the default cipher suites by kind (tls.h, issue 9) ---- */

/* default_list returns a context with |ciphers|, as tls.c builds it
 * (strict), or NULL after a failure. */
static SSL_CTX *default_list(const char *ciphers, int line) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    if (ctx == NULL || !SSL_CTX_set_strict_cipher_list(ctx, ciphers)) {
        unit_fail(__FILE__, line, "BoringSSL refuses \"%s\"", ciphers);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static int has_suite(const STACK_OF(SSL_CIPHER) *list, uint16_t id) {
    for (size_t i = 0; i < sk_SSL_CIPHER_num(list); i++) {
        if (SSL_CIPHER_get_protocol_id(sk_SSL_CIPHER_value(list, i)) == id) {
            return 1;
        }
    }
    return 0;
}

UNIT_TEST(config_tls_smtp_default_ciphers_have_no_3des_rc4_export_or_null) {
    SSL_CTX *ctx = default_list(TLS_SMTP_CIPHERS, __LINE__);
    if (ctx == NULL) {
        return;
    }
    const STACK_OF(SSL_CIPHER) *list = SSL_CTX_get_ciphers(ctx);
    CHECK(sk_SSL_CIPHER_num(list) > 0);
    for (size_t i = 0; i < sk_SSL_CIPHER_num(list); i++) {
        const SSL_CIPHER *c = sk_SSL_CIPHER_value(list, i);
        const char *name = SSL_CIPHER_get_name(c);
        int bulk = SSL_CIPHER_get_cipher_nid(c);
        if (bulk == NID_des_ede3_cbc || bulk == NID_rc4 || bulk == NID_undef ||
            strstr(name, "DES") != NULL || strstr(name, "RC4") != NULL ||
            strstr(name, "NULL") != NULL || strstr(name, "EXP") != NULL) {
            unit_fail(__FILE__, __LINE__, "kind smtp offers %s", name);
        }
        int bits = 0;
        SSL_CIPHER_get_bits(c, &bits);
        if (bits < 128) {
            unit_fail(__FILE__, __LINE__, "kind smtp offers %s with %d bits", name, bits);
        }
    }
    /* what the library alone would have offered on port 25 */
    CHECK(!has_suite(list, 0x000A)); /* DES-CBC3-SHA */
    SSL_CTX_free(ctx);
}

UNIT_TEST(config_tls_smtp_default_ciphers_put_static_rsa_after_every_ecdhe_suite) {
    SSL_CTX *ctx = default_list(TLS_SMTP_CIPHERS, __LINE__);
    if (ctx == NULL) {
        return;
    }
    const STACK_OF(SSL_CIPHER) *list = SSL_CTX_get_ciphers(ctx);
    size_t last_ecdhe = 0, first_rsa = (size_t)-1, nrsa = 0;
    for (size_t i = 0; i < sk_SSL_CIPHER_num(list); i++) {
        const SSL_CIPHER *c = sk_SSL_CIPHER_value(list, i);
        int kx = SSL_CIPHER_get_kx_nid(c);
        if (kx == NID_kx_ecdhe) {
            last_ecdhe = i;
        } else if (kx == NID_kx_rsa) {
            first_rsa = i < first_rsa ? i : first_rsa;
            nrsa++;
        } else {
            unit_fail(__FILE__, __LINE__, "kind smtp offers %s: neither ECDHE nor RSA",
                      SSL_CIPHER_get_name(c));
        }
    }
    CHECK(nrsa > 0);
    CHECK(last_ecdhe < first_rsa);
    /* the last resort, for TLS 1.2 and for TLS 1.0 senders without ECDHE */
    CHECK(has_suite(list, 0x009C)); /* AES128-GCM-SHA256 */
    CHECK(has_suite(list, 0x002F)); /* AES128-SHA */
    SSL_CTX_free(ctx);
}

UNIT_TEST(config_tls_smtp_default_ciphers_serve_tls10_senders_with_ecdhe_first) {
    SSL_CTX *ctx = default_list(TLS_SMTP_CIPHERS, __LINE__);
    if (ctx == NULL) {
        return;
    }
    const STACK_OF(SSL_CIPHER) *list = SSL_CTX_get_ciphers(ctx);
    CHECK(has_suite(list, 0xC013)); /* ECDHE-RSA-AES128-SHA */
    CHECK(has_suite(list, 0xC009)); /* ECDHE-ECDSA-AES128-SHA */
    size_t tls10 = 0;
    for (size_t i = 0; i < sk_SSL_CIPHER_num(list); i++) {
        tls10 += SSL_CIPHER_get_min_version(sk_SSL_CIPHER_value(list, i)) <= TLS1_VERSION;
    }
    CHECK(tls10 >= 4);
    SSL_CTX_free(ctx);
}

UNIT_TEST(config_tls_submission_default_ciphers_are_all_forward_secret) {
    SSL_CTX *ctx = default_list(TLS_SUBMISSION_CIPHERS, __LINE__);
    if (ctx == NULL) {
        return;
    }
    const STACK_OF(SSL_CIPHER) *list = SSL_CTX_get_ciphers(ctx);
    CHECK(sk_SSL_CIPHER_num(list) > 0);
    for (size_t i = 0; i < sk_SSL_CIPHER_num(list); i++) {
        const SSL_CIPHER *c = sk_SSL_CIPHER_value(list, i);
        if (SSL_CIPHER_get_kx_nid(c) != NID_kx_ecdhe) {
            unit_fail(__FILE__, __LINE__, "submission offers %s", SSL_CIPHER_get_name(c));
        }
    }
    SSL_CTX_free(ctx);
}

UNIT_TEST(config_tls_smtp_default_ciphers_begin_with_the_submission_list) {
    SSL_CTX *smtp = default_list(TLS_SMTP_CIPHERS, __LINE__);
    SSL_CTX *sub = default_list(TLS_SUBMISSION_CIPHERS, __LINE__);
    if (smtp != NULL && sub != NULL) {
        const STACK_OF(SSL_CIPHER) *a = SSL_CTX_get_ciphers(smtp);
        const STACK_OF(SSL_CIPHER) *b = SSL_CTX_get_ciphers(sub);
        CHECK(sk_SSL_CIPHER_num(a) > sk_SSL_CIPHER_num(b));
        for (size_t i = 0; i < sk_SSL_CIPHER_num(b) && i < sk_SSL_CIPHER_num(a); i++) {
            CHECK_INT(SSL_CIPHER_get_protocol_id(sk_SSL_CIPHER_value(a, i)),
                      SSL_CIPHER_get_protocol_id(sk_SSL_CIPHER_value(b, i)));
        }
    }
    SSL_CTX_free(smtp);
    SSL_CTX_free(sub);
}
