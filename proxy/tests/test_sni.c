/*
 * test_sni.c - sni.h: which certificate answers a server name. Exact
 * match in any case, a trailing dot ignored, wildcards one label deep
 * (RFC 6125 6.4.3), exact before wildcard, one certificate per key type.
 */
#include <stdio.h>
#include <stdlib.h>

#include "protocol/sni.h"
#include "unit.h"

/* add expects sni_table_add to succeed. */
static void add(struct sni_table *t, const char *name, enum sni_key key, size_t cert,
                int line) {
    enum sni_add_result r = sni_table_add(t, name, key, cert);
    if (r != SNI_ADD_OK) {
        unit_fail(__FILE__, line, "sni_table_add(\"%s\", %d, %zu) == %d, want SNI_ADD_OK",
                  name, (int)key, cert, (int)r);
    }
}

/* check_cert expects |host| to find an entry whose |key| certificate is
 * |want| (SNI_NONE: found, without a certificate of that type). */
static void check_cert(const struct sni_table *t, const char *host, enum sni_key key,
                       size_t want, int line) {
    const struct sni_entry *e = sni_lookup(t, host);
    if (e == NULL) {
        unit_fail(__FILE__, line, "sni_lookup(\"%s\") == NULL, want an entry", host);
        return;
    }
    if (e->cert[key] != want) {
        unit_fail(__FILE__, line, "sni_lookup(\"%s\")->cert[%d] == %zu, want %zu", host,
                  (int)key, e->cert[key], want);
    }
}

static void check_name(const struct sni_table *t, const char *host, const char *want,
                       int line) {
    const struct sni_entry *e = sni_lookup(t, host);
    if (e == NULL) {
        unit_fail(__FILE__, line, "sni_lookup(\"%s\") == NULL, want \"%s\"", host, want);
    } else if (e->name == NULL || strcmp(e->name, want) != 0) {
        unit_fail(__FILE__, line, "sni_lookup(\"%s\")->name == \"%s\", want \"%s\"", host,
                  e->name ? e->name : "(null)", want);
    }
}

static void check_none(const struct sni_table *t, const char *host, int line) {
    const struct sni_entry *e = sni_lookup(t, host);
    if (e != NULL) {
        unit_fail(__FILE__, line, "sni_lookup(\"%s\") found \"%s\", want NULL",
                  host ? host : "(null)", e->name ? e->name : "(null)");
    }
}

/* ---- exact names ---- */

UNIT_TEST(sni_exact_name_matches_in_any_case) {
    struct sni_table t = {0};
    add(&t, "mail.example.test", SNI_KEY_ECDSA, 4, __LINE__);
    sni_table_sort(&t);
    check_cert(&t, "mail.example.test", SNI_KEY_ECDSA, 4, __LINE__);
    check_cert(&t, "MAIL.EXAMPLE.TEST", SNI_KEY_ECDSA, 4, __LINE__);
    check_cert(&t, "Mail.Example.Test", SNI_KEY_ECDSA, 4, __LINE__);
    check_name(&t, "MaIl.ExAmPlE.tEsT", "mail.example.test", __LINE__);
    sni_table_free(&t);
}

UNIT_TEST(sni_name_added_in_upper_case_is_stored_lower_case) {
    struct sni_table t = {0};
    add(&t, "MX.Example.TEST", SNI_KEY_RSA, 1, __LINE__);
    sni_table_sort(&t);
    check_name(&t, "mx.example.test", "mx.example.test", __LINE__);
    check_cert(&t, "MX.EXAMPLE.TEST", SNI_KEY_RSA, 1, __LINE__);
    sni_table_free(&t);
}

UNIT_TEST(sni_trailing_dot_in_host_is_ignored) {
    struct sni_table t = {0};
    add(&t, "mail.example.test", SNI_KEY_ECDSA, 2, __LINE__);
    sni_table_sort(&t);
    check_cert(&t, "mail.example.test.", SNI_KEY_ECDSA, 2, __LINE__);
    check_cert(&t, "MAIL.EXAMPLE.TEST.", SNI_KEY_ECDSA, 2, __LINE__);
    sni_table_free(&t);
}

UNIT_TEST(sni_unknown_name_gives_null) {
    struct sni_table t = {0};
    add(&t, "mail.example.test", SNI_KEY_ECDSA, 0, __LINE__);
    add(&t, "*.wild.test", SNI_KEY_ECDSA, 1, __LINE__);
    sni_table_sort(&t);
    check_none(&t, "other.example.test", __LINE__);
    check_none(&t, "example.test", __LINE__);
    check_none(&t, "mail.example.test.evil", __LINE__);
    check_none(&t, "xmail.example.test", __LINE__);
    check_none(&t, "mail.example.tes", __LINE__);
    check_none(&t, "", __LINE__);
    check_none(&t, ".", __LINE__);
    check_none(&t, "*.wild.test.x", __LINE__);
    sni_table_free(&t);
}

UNIT_TEST(sni_null_host_gives_null) {
    struct sni_table t = {0};
    add(&t, "mail.example.test", SNI_KEY_ECDSA, 0, __LINE__);
    sni_table_sort(&t);
    check_none(&t, NULL, __LINE__);
    sni_table_free(&t);
}

UNIT_TEST(sni_empty_table_finds_nothing) {
    struct sni_table t = {0};
    sni_table_sort(&t);
    check_none(&t, "mail.example.test", __LINE__);
    check_none(&t, "a.wild.test", __LINE__);
    check_none(&t, NULL, __LINE__);
    sni_table_free(&t);
}

/* ---- wildcards ---- */

UNIT_TEST(sni_wildcard_matches_one_label_in_any_case) {
    struct sni_table t = {0};
    add(&t, "*.wild.test", SNI_KEY_ECDSA, 7, __LINE__);
    sni_table_sort(&t);
    check_cert(&t, "a.wild.test", SNI_KEY_ECDSA, 7, __LINE__);
    check_cert(&t, "A.WILD.TEST", SNI_KEY_ECDSA, 7, __LINE__);
    check_cert(&t, "mail-1.Wild.Test", SNI_KEY_ECDSA, 7, __LINE__);
    check_cert(&t, "a.wild.test.", SNI_KEY_ECDSA, 7, __LINE__);
    check_name(&t, "b.wild.test", "*.wild.test", __LINE__);
    sni_table_free(&t);
}

UNIT_TEST(sni_wildcard_does_not_match_the_bare_parent_name) {
    struct sni_table t = {0};
    add(&t, "*.wild.test", SNI_KEY_ECDSA, 7, __LINE__);
    sni_table_sort(&t);
    check_none(&t, "wild.test", __LINE__);
    check_none(&t, "WILD.TEST.", __LINE__);
    sni_table_free(&t);
}

UNIT_TEST(sni_wildcard_does_not_match_two_labels_deep) {
    struct sni_table t = {0};
    add(&t, "*.wild.test", SNI_KEY_ECDSA, 7, __LINE__);
    sni_table_sort(&t);
    check_none(&t, "a.b.wild.test", __LINE__);
    check_none(&t, "A.B.WILD.TEST", __LINE__);
    sni_table_free(&t);
}

UNIT_TEST(sni_wildcard_does_not_match_an_empty_first_label) {
    struct sni_table t = {0};
    add(&t, "*.wild.test", SNI_KEY_ECDSA, 7, __LINE__);
    sni_table_sort(&t);
    check_none(&t, ".wild.test", __LINE__);
    check_none(&t, "..wild.test", __LINE__);
    sni_table_free(&t);
}

UNIT_TEST(sni_host_spelled_as_wildcard_is_not_treated_as_one) {
    /* a client sending "*.wild.test" literally: whatever it finds, it must
     * not crash, and it is never matched as a wildcard of "wild.test". */
    struct sni_table t = {0};
    add(&t, "wild.test", SNI_KEY_ECDSA, 1, __LINE__);
    sni_table_sort(&t);
    check_none(&t, "*.wild.test", __LINE__);
    sni_table_free(&t);
}

/* sni.c: the rest after the first label must contain a dot, so "*.test"
 * (a wildcard over a whole top-level domain) never matches "a.test". */
UNIT_TEST(sni_wildcard_over_a_single_label_suffix_never_matches) {
    struct sni_table t = {0};
    sni_table_add(&t, "*.test", SNI_KEY_ECDSA, 3); /* the add itself may be refused */
    sni_table_sort(&t);
    check_none(&t, "a.test", __LINE__);
    check_none(&t, "A.TEST.", __LINE__);
    check_none(&t, "test", __LINE__);
    sni_table_free(&t);
}

UNIT_TEST(sni_exact_name_beats_wildcard) {
    struct sni_table t = {0};
    /* the wildcard first, so insertion order cannot decide */
    add(&t, "*.wild.test", SNI_KEY_ECDSA, 1, __LINE__);
    add(&t, "exact.wild.test", SNI_KEY_ECDSA, 2, __LINE__);
    sni_table_sort(&t);
    check_cert(&t, "exact.wild.test", SNI_KEY_ECDSA, 2, __LINE__);
    check_cert(&t, "EXACT.Wild.test.", SNI_KEY_ECDSA, 2, __LINE__);
    check_name(&t, "exact.wild.test", "exact.wild.test", __LINE__);
    check_cert(&t, "other.wild.test", SNI_KEY_ECDSA, 1, __LINE__);
    sni_table_free(&t);

    struct sni_table u = {0};
    add(&u, "exact.wild.test", SNI_KEY_RSA, 5, __LINE__);
    add(&u, "*.wild.test", SNI_KEY_RSA, 6, __LINE__);
    sni_table_sort(&u);
    check_cert(&u, "exact.wild.test", SNI_KEY_RSA, 5, __LINE__);
    check_cert(&u, "x.wild.test", SNI_KEY_RSA, 6, __LINE__);
    sni_table_free(&u);
}

/* ---- long and hostile names ---- */

UNIT_TEST(sni_host_over_255_chars_gives_null_without_crashing) {
    struct sni_table t = {0};
    add(&t, "*.wild.test", SNI_KEY_ECDSA, 1, __LINE__);
    add(&t, "mail.example.test", SNI_KEY_ECDSA, 2, __LINE__);
    sni_table_sort(&t);

    static const size_t lens[] = {256, 257, 300, 1000, 5000};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        size_t n = lens[i];
        char *h = malloc(n + 1);
        /* all 'a' */
        memset(h, 'a', n);
        h[n] = '\0';
        check_none(&t, h, __LINE__);
        /* a long first label then a name that would match as a wildcard */
        const char *suffix = ".wild.test";
        memcpy(h + n - strlen(suffix), suffix, strlen(suffix));
        check_none(&t, h, __LINE__);
        /* dotted labels ending in an exact entry */
        for (size_t j = 0; j < n; j++) {
            h[j] = (j % 4 == 3) ? '.' : 'b';
        }
        suffix = ".mail.example.test";
        memcpy(h + n - strlen(suffix), suffix, strlen(suffix));
        check_none(&t, h, __LINE__);
        /* with a trailing dot */
        h[n - 1] = '.';
        check_none(&t, h, __LINE__);
        free(h);
    }
    sni_table_free(&t);
}

UNIT_TEST(sni_longest_legal_dns_name_253_chars_is_found) {
    /* four labels: 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 */
    char name[254];
    size_t o = 0;
    static const size_t labels[] = {63, 63, 63, 61};
    for (size_t i = 0; i < 4; i++) {
        if (i > 0) {
            name[o++] = '.';
        }
        memset(name + o, (int)('a' + i), labels[i]);
        o += labels[i];
    }
    name[o] = '\0';
    CHECK_INT(strlen(name), 253);

    struct sni_table t = {0};
    add(&t, name, SNI_KEY_RSA, 9, __LINE__);
    sni_table_sort(&t);
    check_cert(&t, name, SNI_KEY_RSA, 9, __LINE__);
    char dotted[256];
    snprintf(dotted, sizeof(dotted), "%s.", name);
    check_cert(&t, dotted, SNI_KEY_RSA, 9, __LINE__);
    sni_table_free(&t);
}

UNIT_TEST(sni_adding_an_over_long_name_does_not_crash) {
    struct sni_table t = {0};
    char *h = malloc(1001);
    memset(h, 'x', 1000);
    h[1000] = '\0';
    enum sni_add_result r = sni_table_add(&t, h, SNI_KEY_ECDSA, 0);
    CHECK(r == SNI_ADD_OK || r == SNI_ADD_DUPLICATE || r == SNI_ADD_NOMEM);
    sni_table_sort(&t);
    /* a lookup must not find it through a host longer than 255 */
    check_none(&t, h, __LINE__);
    free(h);
    sni_table_free(&t);
}

/* ---- key types ---- */

UNIT_TEST(sni_ecdsa_and_rsa_for_one_name_share_one_entry) {
    struct sni_table t = {0};
    add(&t, "mx.example.test", SNI_KEY_ECDSA, 0, __LINE__);
    add(&t, "MX.example.test", SNI_KEY_RSA, 1, __LINE__);
    sni_table_sort(&t);
    CHECK_INT(t.n, 1);
    const struct sni_entry *e = sni_lookup(&t, "mx.example.test");
    CHECK(e != NULL);
    if (e != NULL) {
        CHECK_INT(e->cert[SNI_KEY_ECDSA], 0);
        CHECK_INT(e->cert[SNI_KEY_RSA], 1);
    }
    sni_table_free(&t);
}

UNIT_TEST(sni_missing_key_type_is_sni_none) {
    struct sni_table t = {0};
    add(&t, "ecdsa.example.test", SNI_KEY_ECDSA, 0, __LINE__);
    add(&t, "rsa.example.test", SNI_KEY_RSA, 1, __LINE__);
    sni_table_sort(&t);
    check_cert(&t, "ecdsa.example.test", SNI_KEY_RSA, SNI_NONE, __LINE__);
    check_cert(&t, "rsa.example.test", SNI_KEY_ECDSA, SNI_NONE, __LINE__);
    sni_table_free(&t);
}

UNIT_TEST(sni_choose_prefers_ecdsa_when_the_client_can_use_it) {
    struct sni_entry both = {"mx.example.test", {3, 8}};
    CHECK_INT(sni_choose(&both, 1), 3);
    CHECK_INT(sni_choose(&both, 0), 8);
}

UNIT_TEST(sni_choose_falls_back_to_whatever_exists) {
    struct sni_entry ecdsa_only = {"e.example.test", {5, SNI_NONE}};
    struct sni_entry rsa_only = {"r.example.test", {SNI_NONE, 6}};
    CHECK_INT(sni_choose(&ecdsa_only, 1), 5);
    CHECK_INT(sni_choose(&ecdsa_only, 0), 5);
    CHECK_INT(sni_choose(&rsa_only, 1), 6);
    CHECK_INT(sni_choose(&rsa_only, 0), 6);
}

UNIT_TEST(sni_choose_on_looked_up_entries) {
    struct sni_table t = {0};
    add(&t, "mx.example.test", SNI_KEY_RSA, 11, __LINE__);
    add(&t, "mx.example.test", SNI_KEY_ECDSA, 10, __LINE__);
    add(&t, "*.wild.test", SNI_KEY_RSA, 12, __LINE__);
    sni_table_sort(&t);
    const struct sni_entry *e = sni_lookup(&t, "MX.example.test");
    CHECK(e != NULL);
    if (e != NULL) {
        CHECK_INT(sni_choose(e, 1), 10);
        CHECK_INT(sni_choose(e, 0), 11);
    }
    e = sni_lookup(&t, "a.wild.test");
    CHECK(e != NULL);
    if (e != NULL) {
        CHECK_INT(sni_choose(e, 1), 12);
        CHECK_INT(sni_choose(e, 0), 12);
    }
    sni_table_free(&t);
}

UNIT_TEST(sni_duplicate_name_and_key_type_is_refused_first_stays) {
    struct sni_table t = {0};
    add(&t, "mx.example.test", SNI_KEY_ECDSA, 1, __LINE__);
    CHECK_INT(sni_table_add(&t, "mx.example.test", SNI_KEY_ECDSA, 2), SNI_ADD_DUPLICATE);
    CHECK_INT(sni_table_add(&t, "MX.EXAMPLE.TEST", SNI_KEY_ECDSA, 3), SNI_ADD_DUPLICATE);
    add(&t, "mx.example.test", SNI_KEY_RSA, 4, __LINE__);
    CHECK_INT(sni_table_add(&t, "Mx.Example.Test", SNI_KEY_RSA, 5), SNI_ADD_DUPLICATE);
    add(&t, "*.wild.test", SNI_KEY_RSA, 6, __LINE__);
    CHECK_INT(sni_table_add(&t, "*.WILD.test", SNI_KEY_RSA, 7), SNI_ADD_DUPLICATE);
    sni_table_sort(&t);
    CHECK_INT(t.n, 2);
    check_cert(&t, "mx.example.test", SNI_KEY_ECDSA, 1, __LINE__);
    check_cert(&t, "mx.example.test", SNI_KEY_RSA, 4, __LINE__);
    check_cert(&t, "a.wild.test", SNI_KEY_RSA, 6, __LINE__);
    check_cert(&t, "a.wild.test", SNI_KEY_ECDSA, SNI_NONE, __LINE__);
    sni_table_free(&t);
}

/* ---- many names ---- */

UNIT_TEST(sni_thousand_names_sorted_are_all_found) {
    struct sni_table t = {0};
    char name[64];
    /* added in descending order, with both key types on every third */
    for (int i = 999; i >= 0; i--) {
        snprintf(name, sizeof(name), "Host%d.Example.Test", i);
        add(&t, name, i % 2 ? SNI_KEY_RSA : SNI_KEY_ECDSA, (size_t)i, __LINE__);
        if (i % 3 == 0) {
            add(&t, name, i % 2 ? SNI_KEY_ECDSA : SNI_KEY_RSA, (size_t)(i + 5000), __LINE__);
        }
    }
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "*.zone%d.test", i);
        add(&t, name, SNI_KEY_ECDSA, (size_t)(i + 10000), __LINE__);
    }
    sni_table_sort(&t);
    CHECK_INT(t.n, 1100);
    for (size_t i = 1; i < t.n; i++) {
        if (strcmp(t.entries[i - 1].name, t.entries[i].name) >= 0) {
            unit_fail(__FILE__, __LINE__, "entries not sorted at %zu: \"%s\", \"%s\"", i,
                      t.entries[i - 1].name, t.entries[i].name);
            break;
        }
    }
    int missing = 0;
    for (int i = 0; i < 1000 && missing < 5; i++) {
        snprintf(name, sizeof(name), "host%d.example.test", i);
        const struct sni_entry *e = sni_lookup(&t, name);
        enum sni_key k = i % 2 ? SNI_KEY_RSA : SNI_KEY_ECDSA;
        if (e == NULL || e->cert[k] != (size_t)i ||
            (i % 3 == 0 && e->cert[1 - k] != (size_t)(i + 5000)) ||
            (i % 3 != 0 && e->cert[1 - k] != SNI_NONE)) {
            unit_fail(__FILE__, __LINE__, "\"%s\" not found right", name);
            missing++;
        }
    }
    for (int i = 0; i < 100 && missing < 5; i++) {
        snprintf(name, sizeof(name), "MAIL.zone%d.test.", i);
        const struct sni_entry *e = sni_lookup(&t, name);
        if (e == NULL || e->cert[SNI_KEY_ECDSA] != (size_t)(i + 10000)) {
            unit_fail(__FILE__, __LINE__, "\"%s\" not found right", name);
            missing++;
        }
    }
    check_none(&t, "host1000.example.test", __LINE__);
    check_none(&t, "host-1.example.test", __LINE__);
    check_none(&t, "zone5.test", __LINE__);
    check_none(&t, "a.b.zone5.test", __LINE__);
    check_none(&t, "a.zone100.test", __LINE__);
    sni_table_free(&t);
}

UNIT_TEST(sni_free_of_empty_table_is_fine) {
    struct sni_table t = {0};
    sni_table_free(&t);
    struct sni_table u = {0};
    sni_table_sort(&u);
    sni_table_free(&u);
}
