/*
 * test_failmem.c - failmem.h: the STARTTLS failure memory. Time is
 * passed in, so expiry is tested without waiting.
 */
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/failmem.h"
#include "unit.h"

#define T0 1700000000.0
#define TTL 3600.0

static struct cidr key(const char *text) {
    struct cidr c;
    char why[160] = "";
    memset(&c, 0, sizeof(c));
    if (!cidr_parse(text, &c, why, sizeof(why))) {
        unit_fail(__FILE__, __LINE__, "cidr_parse(%s): %s", text, why);
    }
    return c;
}

/* key_n is the n-th of many distinct /24s, 10.a.b.0/24. */
static struct cidr key_n(unsigned n) {
    struct cidr c = {.family = AF_INET, .prefix = 24};
    c.addr[0] = 10;
    c.addr[1] = (uint8_t)(n >> 8);
    c.addr[2] = (uint8_t)n;
    return c;
}

static int has(struct failmem *m, const char *text, double now) {
    struct cidr k = key(text);
    return failmem_lookup(m, &k, now, NULL);
}

static int record(struct failmem *m, const char *text, const char *reason, double now) {
    struct cidr k = key(text);
    return failmem_record(m, &k, reason, now, TTL);
}

/* keys_in_order lists the live keys, most recently used first, as
 * "a b c" (static buffer). */
static const char *keys_in_order(struct failmem *m, double now) {
    static char out[1024];
    struct failmem_entry e[16];
    size_t n = failmem_list(m, now, e, 16);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        char one[CIDR_TEXT_MAX];
        cidr_format(&e[i].key, one, sizeof(one));
        if (i > 0) {
            strcat(out, " ");
        }
        strcat(out, one);
    }
    return out;
}

/* snapshot is the serialized state (caller frees), for "unchanged". */
static char *snapshot(struct failmem *m, double now) {
    size_t len = 0;
    char *s = failmem_serialize(m, now, &len);
    CHECK(s != NULL);
    return s;
}

UNIT_TEST(failmem_records_a_new_key_then_counts_updates) {
    struct failmem *m = failmem_new(100);
    CHECK(m != NULL);
    CHECK_INT(record(m, "192.0.2.0/24", "no shared cipher", T0), 1);
    CHECK_INT(record(m, "192.0.2.0/24", "unknown protocol", T0 + 10), 0);
    CHECK_INT(record(m, "192.0.2.0/24", "handshake timeout", T0 + 20), 0);
    struct cidr k = key("192.0.2.0/24");
    struct failmem_entry e;
    CHECK_INT(failmem_lookup(m, &k, T0 + 30, &e), 1);
    CHECK_INT(e.count, 3);
    CHECK_STR(e.reason, "handshake timeout");
    CHECK(e.first_seen == T0);
    CHECK(e.last_seen == T0 + 20);
    CHECK(e.expires == T0 + 20 + TTL);
    CHECK(cidr_equal(&e.key, &k));
    CHECK_INT(failmem_count(m), 1);
    failmem_free(m);
}

UNIT_TEST(failmem_unknown_keys_are_absent) {
    struct failmem *m = failmem_new(100);
    struct failmem_entry e;
    struct cidr k = key("198.51.100.0/24");
    CHECK_INT(failmem_lookup(m, &k, T0, &e), 0); /* empty, no buckets yet */
    CHECK_INT(record(m, "192.0.2.0/24", "x", T0), 1);
    CHECK_INT(failmem_lookup(m, &k, T0, &e), 0);
    CHECK_INT(has(m, "192.0.2.0/25", T0), 0); /* same bits, other length */
    CHECK_INT(has(m, "2001:db8::/64", T0), 0);
    CHECK_INT(failmem_forget(m, &k), 0);
    failmem_free(m);
    failmem_free(NULL);
}

UNIT_TEST(failmem_entry_expires_after_its_ttl_by_the_time_passed_in) {
    struct failmem *m = failmem_new(100);
    CHECK_INT(record(m, "192.0.2.0/24", "x", T0), 1);
    CHECK_INT(has(m, "192.0.2.0/24", T0 + TTL - 0.001), 1);
    CHECK_INT(failmem_count(m), 1);
    CHECK_INT(has(m, "192.0.2.0/24", T0 + TTL), 0); /* expires <= now: gone */
    CHECK_INT(failmem_count(m), 0);                 /* and removed when met */
    CHECK_INT(has(m, "192.0.2.0/24", T0), 0);       /* not back when time is earlier */
    /* a failure after expiry starts over */
    CHECK_INT(record(m, "192.0.2.0/24", "y", T0 + 2 * TTL), 1);
    struct cidr k = key("192.0.2.0/24");
    struct failmem_entry e;
    CHECK_INT(failmem_lookup(m, &k, T0 + 2 * TTL, &e), 1);
    CHECK_INT(e.count, 1);
    CHECK(e.first_seen == T0 + 2 * TTL);
    failmem_free(m);
}

UNIT_TEST(failmem_update_extends_the_ttl) {
    struct failmem *m = failmem_new(100);
    CHECK_INT(record(m, "192.0.2.0/24", "x", T0), 1);
    CHECK_INT(record(m, "192.0.2.0/24", "x", T0 + 3000), 0);
    CHECK_INT(has(m, "192.0.2.0/24", T0 + TTL + 1), 1);
    CHECK_INT(has(m, "192.0.2.0/24", T0 + 3000 + TTL), 0);
    failmem_free(m);
}

UNIT_TEST(failmem_reason_is_truncated_and_kept_printable) {
    struct failmem *m = failmem_new(10);
    char longer[200];
    memset(longer, 'a', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    CHECK_INT(record(m, "192.0.2.0/24", longer, T0), 1);
    struct cidr k = key("192.0.2.0/24");
    struct failmem_entry e;
    CHECK_INT(failmem_lookup(m, &k, T0, &e), 1);
    CHECK_INT(strlen(e.reason), FAILMEM_REASON_MAX - 1);
    CHECK_INT(record(m, "192.0.2.0/24", "bad\r\nline\x7f\xc3\xa9 ok", T0), 0);
    CHECK_INT(failmem_lookup(m, &k, T0, &e), 1);
    CHECK_STR(e.reason, "bad??line??? ok");
    CHECK_INT(record(m, "192.0.2.0/24", NULL, T0), 0);
    CHECK_INT(failmem_lookup(m, &k, T0, &e), 1);
    CHECK_STR(e.reason, "");
    failmem_free(m);
}

UNIT_TEST(failmem_keys_are_taken_in_canonical_form) {
    struct failmem *m = failmem_new(10);
    /* host bits set and the IPv4-mapped spelling: the same /24 */
    struct cidr hand = {.family = AF_INET, .prefix = 24, .addr = {192, 0, 2, 99}};
    CHECK_INT(failmem_record(m, &hand, "x", T0, TTL), 1);
    struct cidr mapped = {.family = AF_INET6, .prefix = 120};
    memcpy(mapped.addr, "\0\0\0\0\0\0\0\0\0\0\xff\xff\xc0\x00\x02\x01", 16);
    CHECK_INT(failmem_record(m, &mapped, "x", T0, TTL), 0);
    CHECK_INT(has(m, "192.0.2.0/24", T0), 1);
    CHECK_INT(failmem_count(m), 1);
    failmem_free(m);
}

UNIT_TEST(failmem_record_rejects_invalid_keys_and_non_finite_times) {
    struct failmem *m = failmem_new(10);
    struct cidr bad = {.family = AF_INET, .prefix = 33};
    CHECK_INT(failmem_record(m, &bad, "x", T0, TTL), -1);
    struct cidr none = {0};
    CHECK_INT(failmem_record(m, &none, "x", T0, TTL), -1);
    CHECK_INT(failmem_lookup(m, &none, T0, NULL), 0);
    struct cidr k = key("192.0.2.0/24");
    CHECK_INT(failmem_record(m, &k, "x", NAN, TTL), -1);
    CHECK_INT(failmem_record(m, &k, "x", T0, INFINITY), -1);
    CHECK_INT(failmem_record(m, &k, "x", 1e308, 1e308), -1);
    CHECK_INT(failmem_count(m), 0);
    failmem_free(m);
}

UNIT_TEST(failmem_full_table_evicts_the_least_recently_used) {
    struct failmem *m = failmem_new(3);
    CHECK_INT(record(m, "192.0.2.1", "x", T0), 1);
    CHECK_INT(record(m, "192.0.2.2", "x", T0 + 1), 1);
    CHECK_INT(record(m, "192.0.2.3", "x", T0 + 2), 1);
    CHECK_INT(record(m, "192.0.2.4", "x", T0 + 3), 1);
    CHECK_INT(failmem_count(m), 3);
    CHECK_INT(failmem_evicted(m), 1);
    CHECK_STR(keys_in_order(m, T0 + 4), "192.0.2.4/32 192.0.2.3/32 192.0.2.2/32");
    CHECK_INT(record(m, "192.0.2.5", "x", T0 + 4), 1);
    CHECK_STR(keys_in_order(m, T0 + 5), "192.0.2.5/32 192.0.2.4/32 192.0.2.3/32");
    CHECK_INT(failmem_evicted(m), 2);
    failmem_free(m);
}

UNIT_TEST(failmem_lookup_and_update_count_as_use_against_eviction) {
    struct failmem *m = failmem_new(3);
    record(m, "192.0.2.1", "x", T0);
    record(m, "192.0.2.2", "x", T0);
    record(m, "192.0.2.3", "x", T0);
    CHECK_INT(has(m, "192.0.2.1", T0), 1); /* .1 is now the most recent */
    CHECK_INT(record(m, "192.0.2.4", "x", T0), 1);
    CHECK_INT(has(m, "192.0.2.2", T0), 0); /* .2 was the least recent */
    CHECK_STR(keys_in_order(m, T0), "192.0.2.4/32 192.0.2.1/32 192.0.2.3/32");
    CHECK_INT(record(m, "192.0.2.3", "again", T0), 0); /* an update is a use too */
    CHECK_INT(record(m, "192.0.2.5", "x", T0), 1);
    CHECK_STR(keys_in_order(m, T0), "192.0.2.5/32 192.0.2.3/32 192.0.2.4/32");
    failmem_free(m);
}

UNIT_TEST(failmem_full_table_drops_an_expired_tail_without_counting_an_eviction) {
    struct failmem *m = failmem_new(2);
    struct cidr a = key("192.0.2.1"), b = key("192.0.2.2"), c = key("192.0.2.3");
    CHECK_INT(failmem_record(m, &a, "x", T0, 10), 1);
    CHECK_INT(failmem_record(m, &b, "x", T0, TTL), 1);
    CHECK_INT(failmem_record(m, &c, "x", T0 + 20, TTL), 1);
    CHECK_INT(failmem_evicted(m), 0);
    CHECK_INT(failmem_count(m), 2);
    CHECK_STR(keys_in_order(m, T0 + 20), "192.0.2.3/32 192.0.2.2/32");
    failmem_free(m);
}

UNIT_TEST(failmem_set_max_shrinking_evicts_the_oldest_and_gives_memory_back) {
    struct failmem *m = failmem_new(1000);
    for (unsigned i = 0; i < 1000; i++) {
        struct cidr k = key_n(i);
        CHECK_INT(failmem_record(m, &k, "x", T0 + i, TTL * 10), 1);
    }
    /* keep a few old ones alive by using them */
    for (unsigned i = 0; i < 3; i++) {
        struct cidr k = key_n(i);
        CHECK_INT(failmem_lookup(m, &k, T0 + 1000, NULL), 1);
    }
    size_t before = failmem_memory_bytes(m);
    failmem_set_max(m, 10);
    CHECK_INT(failmem_count(m), 10);
    CHECK_INT(failmem_evicted(m), 990);
    CHECK(failmem_memory_bytes(m) <= failmem_bound_bytes(10));
    CHECK(failmem_memory_bytes(m) < before / 50);
    CHECK_STR(keys_in_order(m, T0 + 1000),
              "10.0.2.0/24 10.0.1.0/24 10.0.0.0/24 10.3.231.0/24 10.3.230.0/24 10.3.229.0/24 "
              "10.3.228.0/24 10.3.227.0/24 10.3.226.0/24 10.3.225.0/24");
    for (unsigned i = 0; i < 3; i++) {
        struct cidr k = key_n(i);
        CHECK_INT(failmem_lookup(m, &k, T0 + 1000, NULL), 1);
    }
    for (unsigned i = 993; i < 1000; i++) {
        struct cidr k = key_n(i);
        CHECK_INT(failmem_lookup(m, &k, T0 + 1000, NULL), 1);
    }
    struct cidr gone = key_n(500);
    CHECK_INT(failmem_lookup(m, &gone, T0 + 1000, NULL), 0);
    /* the shrunk table still works: records evict at the new bound */
    CHECK_INT(failmem_record(m, &gone, "x", T0 + 1001, TTL), 1);
    CHECK_INT(failmem_count(m), 10);
    CHECK_INT(failmem_evicted(m), 991);
    failmem_free(m);
}

UNIT_TEST(failmem_set_max_growing_keeps_every_entry) {
    struct failmem *m = failmem_new(2);
    record(m, "192.0.2.1", "x", T0);
    record(m, "192.0.2.2", "x", T0);
    failmem_set_max(m, 5);
    record(m, "192.0.2.3", "x", T0);
    record(m, "192.0.2.4", "x", T0);
    CHECK_INT(failmem_count(m), 4);
    CHECK_INT(failmem_evicted(m), 0);
    CHECK_STR(keys_in_order(m, T0), "192.0.2.4/32 192.0.2.3/32 192.0.2.2/32 192.0.2.1/32");
    failmem_set_max(m, 0); /* taken as 1 */
    CHECK_INT(failmem_count(m), 1);
    CHECK_STR(keys_in_order(m, T0), "192.0.2.4/32");
    failmem_free(m);
}

UNIT_TEST(failmem_forget_removes_exactly_one_key) {
    struct failmem *m = failmem_new(10);
    record(m, "192.0.2.0/24", "x", T0);
    record(m, "192.0.2.0/25", "x", T0);
    struct cidr k = key("192.0.2.0/24");
    CHECK_INT(failmem_forget(m, &k), 1);
    CHECK_INT(failmem_forget(m, &k), 0);
    CHECK_INT(has(m, "192.0.2.0/24", T0), 0);
    CHECK_INT(has(m, "192.0.2.0/25", T0), 1);
    CHECK_INT(failmem_count(m), 1);
    failmem_free(m);
}

UNIT_TEST(failmem_forget_within_removes_a_range_and_slash_zero_a_family) {
    struct failmem *m = failmem_new(100);
    record(m, "192.0.2.0/24", "x", T0);
    record(m, "192.0.3.0/24", "x", T0);
    record(m, "192.0.4.0/24", "x", T0);
    record(m, "198.51.100.0/24", "x", T0);
    record(m, "2001:db8:1::/64", "x", T0);
    record(m, "2001:db8:2::/64", "x", T0);
    record(m, "2001:db9::/64", "x", T0);
    struct cidr r = key("192.0.2.0/23");
    CHECK_INT(failmem_forget_within(m, &r), 2);
    CHECK_INT(has(m, "192.0.4.0/24", T0), 1);
    r = key("192.0.2.0/24");
    CHECK_INT(failmem_forget_within(m, &r), 0);
    r = key("192.0.4.7"); /* narrower than the entry: covers nothing */
    CHECK_INT(failmem_forget_within(m, &r), 0);
    r = key("2001:db8::/32");
    CHECK_INT(failmem_forget_within(m, &r), 2);
    r = key("0.0.0.0/0");
    CHECK_INT(failmem_forget_within(m, &r), 2);
    CHECK_INT(failmem_count(m), 1);
    CHECK_STR(keys_in_order(m, T0), "2001:db9::/64");
    r = key("::/0");
    CHECK_INT(failmem_forget_within(m, &r), 1);
    CHECK_INT(failmem_count(m), 0);
    struct cidr bad = {.family = AF_INET6, .prefix = 200};
    CHECK_INT(failmem_forget_within(m, &bad), 0);
    failmem_free(m);
}

UNIT_TEST(failmem_forget_all_empties_the_table_and_frees_its_entries) {
    struct failmem *m = failmem_new(1000);
    size_t empty = failmem_memory_bytes(m);
    for (unsigned i = 0; i < 500; i++) {
        struct cidr k = key_n(i);
        failmem_record(m, &k, "x", T0, TTL);
    }
    CHECK(failmem_memory_bytes(m) > empty);
    CHECK_INT(failmem_forget_all(m), 500);
    CHECK_INT(failmem_count(m), 0);
    CHECK_INT(failmem_memory_bytes(m), empty);
    CHECK_STR(keys_in_order(m, T0), "");
    CHECK_INT(failmem_forget_all(m), 0);
    CHECK_INT(record(m, "192.0.2.0/24", "x", T0), 1); /* usable again */
    CHECK_INT(has(m, "192.0.2.0/24", T0), 1);
    failmem_free(m);
}

UNIT_TEST(failmem_expire_removes_only_expired_entries) {
    struct failmem *m = failmem_new(100);
    struct cidr a = key("192.0.2.1"), b = key("192.0.2.2"), c = key("192.0.2.3");
    failmem_record(m, &a, "x", T0, 10);
    failmem_record(m, &b, "x", T0, 20);
    failmem_record(m, &c, "x", T0, 30);
    CHECK_INT(failmem_expire(m, T0 + 5), 0);
    CHECK_INT(failmem_expire(m, T0 + 20), 2);
    CHECK_INT(failmem_count(m), 1);
    CHECK_INT(has(m, "192.0.2.3", T0 + 20), 1);
    CHECK_INT(failmem_expire(m, T0 + 30), 1);
    CHECK_INT(failmem_count(m), 0);
    CHECK_INT(failmem_evicted(m), 0);
    failmem_free(m);
}

UNIT_TEST(failmem_list_is_most_recent_first_live_only_and_bounded_by_n) {
    struct failmem *m = failmem_new(100);
    struct cidr a = key("192.0.2.1"), b = key("192.0.2.2"), c = key("192.0.2.3"),
                d = key("192.0.2.4");
    failmem_record(m, &a, "a", T0, TTL);
    failmem_record(m, &b, "b", T0 + 1, 5); /* expires at T0 + 6 */
    failmem_record(m, &c, "c", T0 + 2, TTL);
    failmem_record(m, &d, "d", T0 + 3, TTL);
    failmem_record(m, &a, "a2", T0 + 4, TTL);
    struct failmem_entry e[8];
    CHECK_INT(failmem_list(m, T0 + 10, e, 8), 3);
    CHECK_STR(e[0].reason, "a2");
    CHECK_INT(e[0].count, 2);
    CHECK_STR(e[1].reason, "d");
    CHECK_STR(e[2].reason, "c");
    CHECK_INT(failmem_count(m), 3); /* the expired one was removed */
    CHECK_INT(failmem_list(m, T0 + 10, e, 2), 2);
    CHECK_STR(e[1].reason, "d");
    CHECK_INT(failmem_list(m, T0 + 10, e, 0), 0);
    /* listing is no use: the order stays */
    CHECK_STR(keys_in_order(m, T0 + 10), "192.0.2.1/32 192.0.2.4/32 192.0.2.3/32");
    failmem_free(m);
}

UNIT_TEST(failmem_ten_thousand_then_five_thousand_more_stay_within_the_bound) {
    struct failmem *m = failmem_new(10000);
    for (unsigned i = 0; i < 15000; i++) {
        struct cidr k = key_n(i);
        CHECK_INT(failmem_record(m, &k, "no shared cipher", T0 + i, TTL * 10), 1);
        if (i == 9999) {
            CHECK_INT(failmem_count(m), 10000);
            CHECK_INT(failmem_evicted(m), 0);
        }
    }
    CHECK_INT(failmem_count(m), 10000);
    CHECK_INT(failmem_evicted(m), 5000);
    int oldest_gone = 1, newest_kept = 1;
    for (unsigned i = 0; i < 15000; i++) {
        struct cidr k = key_n(i);
        int found = failmem_lookup(m, &k, T0 + 15000, NULL);
        if (i < 5000 && found) {
            oldest_gone = 0;
        }
        if (i >= 5000 && !found) {
            newest_kept = 0;
        }
    }
    CHECK(oldest_gone);
    CHECK(newest_kept);
    size_t used = failmem_memory_bytes(m), bound = failmem_bound_bytes(10000);
    CHECK(used <= bound);
    CHECK(bound <= 2u * 1024 * 1024);
    CHECK(bound / 10000 <= 160);
    failmem_free(m);
}

UNIT_TEST(failmem_small_table_holds_memory_for_its_entries_not_its_bound) {
    struct failmem *m = failmem_new(100000);
    size_t empty = failmem_memory_bytes(m);
    CHECK(empty < 2048); /* the struct: mostly the count of keys by prefix length */
    for (unsigned i = 0; i < 10; i++) {
        struct cidr k = key_n(i);
        failmem_record(m, &k, "x", T0, TTL);
    }
    CHECK(failmem_memory_bytes(m) < 4096);
    CHECK(failmem_bound_bytes(100000) > 100000u * 128);
    /* the bound is monotonic and clamped */
    CHECK(failmem_bound_bytes(0) == failmem_bound_bytes(1));
    CHECK(failmem_bound_bytes(10) < failmem_bound_bytes(11));
    CHECK(failmem_bound_bytes((size_t)-1) == failmem_bound_bytes(FAILMEM_MAX_LIMIT));
    failmem_free(m);
}

UNIT_TEST(failmem_serialize_writes_the_documented_format) {
    struct failmem *m = failmem_new(10);
    struct cidr a = key("192.0.2.0/24"), b = key("2001:db8:1:2::/64");
    failmem_record(m, &a, "no shared cipher", 1000.25, 60);
    failmem_record(m, &b, NULL, 1001, 60);
    failmem_record(m, &a, "wrong version number", 1002.5, 60);
    size_t len = 0;
    char *s = failmem_serialize(m, 1003, &len);
    CHECK(s != NULL);
    CHECK_MEM(s, len,
              "smtp-tls-proxy starttls-memory 1\n"
              "2001:db8:1:2::/64 1001.000 1001.000 1061.000 1 -\n"
              "192.0.2.0/24 1000.250 1002.500 1062.500 2 wrong_version_number\n"
              "end 2\n");
    free(s);
    /* expired entries are left out and the end line counts what was written */
    s = failmem_serialize(m, 1061.5, &len);
    CHECK_MEM(s, len,
              "smtp-tls-proxy starttls-memory 1\n"
              "192.0.2.0/24 1000.250 1002.500 1062.500 2 wrong_version_number\n"
              "end 1\n");
    free(s);
    failmem_forget_all(m);
    s = failmem_serialize(m, 1003, &len);
    CHECK_MEM(s, len, "smtp-tls-proxy starttls-memory 1\nend 0\n");
    free(s);
    failmem_free(m);
}

UNIT_TEST(failmem_serialize_then_deserialize_round_trips_entries_and_order) {
    struct failmem *m = failmem_new(100);
    const char *keys[5] = {"192.0.2.0/24", "2001:db8::/64", "198.51.100.0/24", "203.0.113.0/24",
                           "2001:db8:ffff::/48"};
    for (int i = 0; i < 5; i++) {
        struct cidr k = key(keys[i]);
        failmem_record(m, &k, "first", T0 + i, TTL);
        failmem_record(m, &k, "tls_alert:handshake_failure", T0 + i + 0.5, TTL);
    }
    CHECK_INT(has(m, "198.51.100.0/24", T0 + 10), 1); /* reorder a little */
    CHECK_INT(has(m, "192.0.2.0/24", T0 + 10), 1);
    struct failmem_entry before[8], after[8];
    size_t nb = failmem_list(m, T0 + 10, before, 8);
    size_t len = 0;
    char *s = failmem_serialize(m, T0 + 10, &len);
    CHECK(s != NULL);

    struct failmem *n = failmem_new(100);
    char why[200] = "";
    CHECK_INT(failmem_deserialize(n, s, len, T0 + 10, why, sizeof(why)), 5);
    CHECK_STR(why, "");
    size_t na = failmem_list(n, T0 + 10, after, 8);
    CHECK_INT(na, nb);
    for (size_t i = 0; i < na && i < nb; i++) {
        CHECK(cidr_equal(&after[i].key, &before[i].key));
        CHECK_STR(after[i].reason, before[i].reason);
        CHECK(after[i].first_seen == before[i].first_seen);
        CHECK(after[i].last_seen == before[i].last_seen);
        CHECK(after[i].expires == before[i].expires);
        CHECK_INT(after[i].count, before[i].count);
    }
    size_t len2 = 0;
    char *s2 = failmem_serialize(n, T0 + 10, &len2);
    CHECK_MEM(s2, len2, s); /* byte for byte the same file */
    free(s);
    free(s2);
    failmem_free(m);
    failmem_free(n);
}

UNIT_TEST(failmem_deserialize_skips_expired_entries) {
    const char *file = "smtp-tls-proxy starttls-memory 1\n"
                       "192.0.2.0/24 100.000 100.000 200.000 1 old\n"
                       "198.51.100.0/24 100.000 150.000 400.000 3 live\n"
                       "203.0.113.0/24 100.000 100.000 300.000 1 at_the_edge\n"
                       "end 3\n";
    struct failmem *m = failmem_new(10);
    char why[200] = "";
    CHECK_INT(failmem_deserialize(m, file, strlen(file), 300, why, sizeof(why)), 1);
    CHECK_INT(failmem_count(m), 1);
    CHECK_STR(keys_in_order(m, 300), "198.51.100.0/24");
    struct cidr k = key("198.51.100.0/24");
    struct failmem_entry e;
    CHECK_INT(failmem_lookup(m, &k, 300, &e), 1);
    CHECK_INT(e.count, 3);
    CHECK_STR(e.reason, "live");
    CHECK(e.last_seen == 150);
    /* all expired: nothing loaded, no error */
    CHECK_INT(failmem_deserialize(m, file, strlen(file), 1000, why, sizeof(why)), 0);
    failmem_free(m);
}

UNIT_TEST(failmem_deserialize_overwrites_existing_keys_and_evicts_beyond_max) {
    struct failmem *m = failmem_new(3);
    record(m, "192.0.2.1", "mine", T0);
    record(m, "192.0.2.2", "mine", T0);
    const char *file = "smtp-tls-proxy starttls-memory 1\r\n"
                       "192.0.2.9/32 1.000 2.000 1800000000.000 7 -\r\n"
                       "192.0.2.2/32 1.000 2.000 1800000000.000 4 loaded\r\n"
                       "192.0.2.8/32 1.000 2.000 1800000000.000 1 x\r\n"
                       "end 3"; /* CRLF, and no LF after the end line */
    char why[200] = "";
    CHECK_INT(failmem_deserialize(m, file, strlen(file), T0, why, sizeof(why)), 3);
    CHECK_STR(why, "");
    CHECK_INT(failmem_count(m), 3);
    CHECK_INT(failmem_evicted(m), 1);
    CHECK_STR(keys_in_order(m, T0), "192.0.2.8/32 192.0.2.2/32 192.0.2.9/32");
    struct cidr k = key("192.0.2.2");
    struct failmem_entry e;
    CHECK_INT(failmem_lookup(m, &k, T0, &e), 1);
    CHECK_INT(e.count, 4);
    CHECK_STR(e.reason, "loaded");
    k = key("192.0.2.9");
    CHECK_INT(failmem_lookup(m, &k, T0, &e), 1);
    CHECK_STR(e.reason, "");
    failmem_free(m);
}

/* rejects loads |file| into a table of two entries and checks that it
 * fails with a reason containing |want| and leaves the table as it was. */
static void rejects(const char *file, size_t len, const char *want, int line) {
    struct failmem *m = failmem_new(2);
    record(m, "192.0.2.1", "mine", T0);
    record(m, "192.0.2.2", "mine", T0 + 1);
    char *before = snapshot(m, T0 + 2);
    size_t evicted = failmem_evicted(m);
    char why[200] = "";
    long got = failmem_deserialize(m, file, len, T0 + 2, why, sizeof(why));
    if (got != -1) {
        unit_fail(__FILE__, line, "deserialize returned %ld, want -1", got);
    }
    if (strstr(why, want) == NULL) {
        unit_fail(__FILE__, line, "why \"%s\" does not say \"%s\"", why, want);
    }
    char *after = snapshot(m, T0 + 2);
    if (strcmp(before, after) != 0) {
        unit_fail(__FILE__, line, "the table changed:\n%s\n-- to --\n%s", before, after);
    }
    if (failmem_evicted(m) != evicted) {
        unit_fail(__FILE__, line, "evictions changed");
    }
    free(before);
    free(after);
    failmem_free(m);
}

#define REJECTS(file, want) rejects(file, strlen(file), want, __LINE__)

#define HDR "smtp-tls-proxy starttls-memory 1\n"
#define GOOD "198.51.100.0/24 1700000000.000 1700000000.000 1800000000.000 1 x\n"

UNIT_TEST(failmem_deserialize_rejects_a_foreign_file_and_leaves_the_table_unchanged) {
    REJECTS("", "empty");
    REJECTS("# smtp-tls-proxy state\n" GOOD "end 1\n", "line 1: not a STARTTLS memory file");
    REJECTS("smtp-tls-proxy starttls-memory 2\n" GOOD "end 1\n", "line 1: unsupported version");
    REJECTS("smtp-tls-proxy starttls-memory 1 \n" GOOD "end 1\n", "line 1:");
    REJECTS("\x89PNG\r\n\x1a\n", "line 1: not a STARTTLS memory file");
}

UNIT_TEST(failmem_deserialize_rejects_a_truncated_file_and_leaves_the_table_unchanged) {
    REJECTS(HDR, "line 1: the text ends without the \"end N\" line");
    REJECTS(HDR GOOD GOOD, "line 3: the text ends without the \"end N\" line");
    REJECTS(HDR GOOD "198.51.100.0/24 1700000000.000 17000", "line 3:");
    REJECTS(HDR GOOD GOOD "end 1\n", "line 4: the end line counts 1 entries but 2 came before");
    REJECTS(HDR GOOD "end 2\n", "line 3: the end line counts 2");
    REJECTS(HDR GOOD "end\n", "line 3: the end line must be");
    REJECTS(HDR GOOD "end one\n", "line 3: the end line must be");
    REJECTS(HDR GOOD "end 1\n" GOOD, "line 4: text after the end line");
    REJECTS(HDR GOOD "end 1\n\n", "line 4: text after the end line");
}

UNIT_TEST(failmem_deserialize_rejects_garbage_lines_and_leaves_the_table_unchanged) {
    REJECTS(HDR GOOD "not an entry at all\nend 2\n", "line 3: expected 6 fields");
    REJECTS(HDR "192.0.2.0/33 1.000 2.000 1800000000.000 1 x\nend 1\n", "line 2: bad prefix");
    REJECTS(HDR "mx.example.net 1.000 2.000 1800000000.000 1 x\nend 1\n", "line 2: bad prefix");
    REJECTS(HDR "192.0.2.0/24 inf 2.000 1800000000.000 1 x\nend 1\n",
            "line 2: first_seen is not a finite");
    REJECTS(HDR "192.0.2.0/24 1.000 nan 1800000000.000 1 x\nend 1\n",
            "line 2: last_seen is not a finite");
    REJECTS(HDR "192.0.2.0/24 1.000 2.000 1e400 1 x\nend 1\n", "line 2: expires is not a finite");
    REJECTS(HDR "192.0.2.0/24 1.000 2.000 0x1p40 1 x\nend 1\n", "expires is not a finite");
    REJECTS(HDR "192.0.2.0/24 1.000 2.000 1800000000. 1 x\nend 1\n", "expires is not a finite");
    REJECTS(HDR "192.0.2.0/24 1.000 2.000 1800000000.000 0 x\nend 1\n", "line 2: count");
    REJECTS(HDR "192.0.2.0/24 1.000 2.000 1800000000.000 -1 x\nend 1\n", "line 2: count");
    REJECTS(HDR "192.0.2.0/24 1.000 2.000 1800000000.000 99999999999999999999999 x\nend 1\n",
            "line 2: count");
    REJECTS(HDR "192.0.2.0/24 1.000 2.000 1800000000.000 1 two words\nend 1\n",
            "line 2: reason has a blank");
    REJECTS(HDR "192.0.2.0/24 1.000 2.000 1800000000.000 1 tab\there\nend 1\n",
            "line 2: reason has a blank");
    REJECTS(HDR "192.0.2.0/24 1.000 2.000 1800000000.000 1 "
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\nend 1\n",
            "line 2: reason is longer");
    REJECTS(HDR "192.0.2.0/24  1.000 2.000 1800000000.000 1 x\nend 1\n", "line 2: field 2");
    REJECTS(HDR "192.0.2.0/24 1.000 2.000 1800000000.000 1 \nend 1\n", "line 2: field 6");
    REJECTS(HDR "192.0.2.0/24 1.000 2.000 1800000000.000 1\nend 1\n", "line 2: expected 6 fields");
    REJECTS(HDR GOOD "\nend 2\n", "line 3:");
}

UNIT_TEST(failmem_deserialize_rejects_nul_bytes_and_leaves_the_table_unchanged) {
    const char file[] = HDR GOOD "198.51.100.0/24 1.000 2.000 1800000000.000 1 a\0b\nend 2\n";
    rejects(file, sizeof(file) - 1, "line 3: a NUL byte", __LINE__);
    const char tail[] = HDR GOOD "end 1\n\0";
    rejects(tail, sizeof(tail) - 1, "line 4: a NUL byte", __LINE__);
}

UNIT_TEST(failmem_deserialize_of_an_empty_memory_loads_nothing) {
    struct failmem *m = failmem_new(10);
    char why[200] = "";
    const char *file = HDR "end 0\n";
    CHECK_INT(failmem_deserialize(m, file, strlen(file), T0, why, sizeof(why)), 0);
    CHECK_INT(failmem_count(m), 0);
    CHECK_INT(failmem_deserialize(m, NULL, 0, T0, why, sizeof(why)), -1);
    CHECK_INT(failmem_deserialize(m, "x", 1, T0, NULL, 0), -1); /* no why is fine */
    failmem_free(m);
}

/* ---- two workers at once ---- */

#define ROUNDS 20000
#define OWN_KEYS 500

struct worker_arg {
    struct failmem *m;
    unsigned base;
    int misses;
};

static void *worker(void *p) {
    struct worker_arg *w = p;
    struct cidr shared = {.family = AF_INET, .prefix = 24, .addr = {192, 0, 2, 0}};
    for (unsigned i = 0; i < ROUNDS; i++) {
        struct cidr own = key_n(w->base + i % OWN_KEYS);
        /* one clock for both: a worker behind the other must not find
         * entries expired by its own earlier time */
        failmem_record(w->m, &shared, "shared", T0, TTL);
        failmem_record(w->m, &own, "own", T0, TTL);
        if (!failmem_lookup(w->m, &own, T0, NULL) || !failmem_lookup(w->m, &shared, T0, NULL)) {
            w->misses++;
        }
    }
    return NULL;
}

UNIT_TEST(failmem_two_threads_recording_and_looking_up_end_with_consistent_counts) {
    struct failmem *m = failmem_new(10000);
    struct worker_arg a = {m, 0, 0}, b = {m, 1000, 0};
    pthread_t ta, tb;
    CHECK_INT(pthread_create(&ta, NULL, worker, &a), 0);
    CHECK_INT(pthread_create(&tb, NULL, worker, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK_INT(a.misses, 0);
    CHECK_INT(b.misses, 0);
    CHECK_INT(failmem_count(m), 1 + 2 * OWN_KEYS);
    CHECK_INT(failmem_evicted(m), 0);
    struct cidr shared = {.family = AF_INET, .prefix = 24, .addr = {192, 0, 2, 0}};
    struct failmem_entry e;
    CHECK_INT(failmem_lookup(m, &shared, T0, &e), 1);
    CHECK_INT(e.count, 2 * ROUNDS);
    unsigned long total = 0;
    for (unsigned i = 0; i < OWN_KEYS; i++) {
        struct cidr k = key_n(i);
        CHECK_INT(failmem_lookup(m, &k, T0, &e), 1);
        total += e.count;
        k = key_n(1000 + i);
        CHECK_INT(failmem_lookup(m, &k, T0, &e), 1);
        total += e.count;
    }
    CHECK_INT(total, 2 * ROUNDS);
    failmem_free(m);
}

UNIT_TEST(failmem_two_threads_on_a_small_table_keep_it_bounded) {
    /* eviction under contention: every record evicts, nothing breaks */
    struct failmem *m = failmem_new(64);
    struct worker_arg a = {m, 0, 0}, b = {m, 1000, 0};
    pthread_t ta, tb;
    CHECK_INT(pthread_create(&ta, NULL, worker, &a), 0);
    CHECK_INT(pthread_create(&tb, NULL, worker, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK_INT(failmem_count(m), 64);
    CHECK(failmem_memory_bytes(m) <= failmem_bound_bytes(64));
    CHECK(failmem_evicted(m) > 0);
    struct failmem_entry e[64];
    CHECK_INT(failmem_list(m, T0, e, 64), 64);
    failmem_free(m);
}

UNIT_TEST(failmem_lookup_covering_finds_an_entry_of_any_prefix_length) {
    struct failmem *m = failmem_new(10);
    record(m, "192.0.2.0/24", "old /24 key", T0);
    record(m, "198.51.100.7/32", "a /32 key", T0);
    struct cidr client = key("192.0.2.77/32");
    struct failmem_entry e;
    CHECK_INT(failmem_lookup_covering(m, &client, T0 + 1, &e), 1);
    CHECK_STR(e.reason, "old /24 key");
    client = key("192.0.3.1/32");
    CHECK_INT(failmem_lookup_covering(m, &client, T0 + 1, &e), 0);
    client = key("198.51.100.7/32");
    CHECK_INT(failmem_lookup_covering(m, &client, T0 + 1, &e), 1);
    CHECK_STR(e.reason, "a /32 key");
    /* IPv6 entries never cover IPv4 clients and the other way round. */
    record(m, "::/0", "all of IPv6", T0);
    client = key("192.0.3.1/32");
    CHECK_INT(failmem_lookup_covering(m, &client, T0 + 1, NULL), 0);
    client = key("2001:db8::1/128");
    CHECK_INT(failmem_lookup_covering(m, &client, T0 + 1, NULL), 1);
    /* Expired entries do not count and are dropped. */
    client = key("192.0.2.77/32");
    CHECK_INT(failmem_lookup_covering(m, &client, T0 + TTL + 1, NULL), 0);
    CHECK_INT(failmem_count(m), 2);
    failmem_free(m);
}

UNIT_TEST(failmem_lookup_covering_prefers_the_most_specific_entry) {
    struct failmem *m = failmem_new(10);
    record(m, "10.0.0.0/8", "wide", T0);
    record(m, "10.1.0.0/16", "narrow", T0);
    struct cidr client = key("10.1.2.3/32");
    struct failmem_entry e;
    CHECK_INT(failmem_lookup_covering(m, &client, T0, &e), 1);
    CHECK_STR(e.reason, "narrow");
    failmem_free(m);
}

UNIT_TEST(failmem_forget_covering_removes_every_entry_over_an_address) {
    struct failmem *m = failmem_new(10);
    record(m, "10.0.0.0/8", "a", T0);
    record(m, "10.1.0.0/16", "b", T0);
    record(m, "10.1.2.3/32", "c", T0);
    record(m, "10.2.0.0/16", "d", T0);
    struct cidr client = key("10.1.2.3/32");
    CHECK_INT(failmem_forget_covering(m, &client), 3);
    CHECK_INT(failmem_count(m), 1);
    CHECK_INT(failmem_lookup_covering(m, &client, T0, NULL), 0);
    struct cidr other = key("10.2.9.9/32");
    CHECK_INT(failmem_lookup_covering(m, &other, T0, NULL), 1);
    /* The per-length counts follow removals: nothing left to find. */
    CHECK_INT(failmem_forget_covering(m, &other), 1);
    CHECK_INT(failmem_lookup_covering(m, &other, T0, NULL), 0);
    CHECK_INT(failmem_count(m), 0);
    failmem_free(m);
}

UNIT_TEST(failmem_deserialize_rejects_times_out_of_order_or_far_ahead) {
    struct failmem *m = failmem_new(10);
    char why[200] = "";
    const char *backwards = "smtp-tls-proxy starttls-memory 1\n"
                            "192.0.2.1/32 1700000100.000 1700000000.000 1800000000.000 1 x\n"
                            "end 1\n";
    CHECK_INT(failmem_deserialize(m, backwards, strlen(backwards), T0, why, sizeof(why)), -1);
    CHECK(strstr(why, "line 2: the times are out of order") != NULL);
    const char *forever = "smtp-tls-proxy starttls-memory 1\n"
                          "192.0.2.1/32 1700000000.000 1700000000.000 1e300 1 x\n"
                          "end 1\n";
    CHECK_INT(failmem_deserialize(m, forever, strlen(forever), T0, why, sizeof(why)), -1);
    CHECK_INT(failmem_count(m), 0);
    failmem_free(m);
}
