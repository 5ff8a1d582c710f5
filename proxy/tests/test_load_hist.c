/*
 * test_load_hist.c - smtp-load's hist.h: the bucket layout is contiguous
 * and tight, percentiles are within the promised error, merging equals
 * recording everything in one.
 */
#include "smtp-load/hist.h"
#include "unit.h"

#include <stdlib.h>

UNIT_TEST(load_hist_buckets_tile_the_range_without_gaps) {
    CHECK_INT(hist_bucket_low(0), 0);
    for (size_t i = 1; i < HIST_BUCKETS; i++) {
        if (hist_bucket_low(i) != hist_bucket_high(i - 1) + 1) {
            unit_fail(__FILE__, __LINE__, "gap before bucket %zu", i);
            break;
        }
    }
    CHECK_INT(hist_bucket_high(HIST_BUCKETS - 1), HIST_MAX_NS);
    CHECK_INT(hist_index(HIST_MAX_NS), HIST_BUCKETS - 1);
    CHECK_INT(hist_index(HIST_MAX_NS + 12345), HIST_BUCKETS - 1);
}

UNIT_TEST(load_hist_every_value_lands_in_the_bucket_that_holds_it) {
    uint64_t v = 0;
    /* Every value below 4096, then a geometric walk up to the end. */
    for (int step = 0; step < 200000 && v <= HIST_MAX_NS; step++) {
        size_t i = hist_index(v);
        if (v < hist_bucket_low(i) || v > hist_bucket_high(i)) {
            unit_fail(__FILE__, __LINE__, "%llu not in bucket %zu", (unsigned long long)v, i);
            break;
        }
        v = v < 4096 ? v + 1 : v + v / 1000 + 1;
    }
}

UNIT_TEST(load_hist_buckets_are_narrower_than_one_percent) {
    for (size_t i = 256; i < HIST_BUCKETS; i++) {
        uint64_t lo = hist_bucket_low(i), hi = hist_bucket_high(i);
        /* width <= lo/128: the midpoint is within 1/256 of every member */
        if ((hi - lo + 1) * 128 > lo) {
            unit_fail(__FILE__, __LINE__, "bucket %zu [%llu, %llu] too wide", i,
                      (unsigned long long)lo, (unsigned long long)hi);
            break;
        }
    }
}

UNIT_TEST(load_hist_empty_histogram_reports_zero) {
    struct hist *h = malloc(sizeof(*h));
    hist_init(h);
    CHECK_INT(hist_percentile(h, 50), 0);
    CHECK_INT(hist_percentile(h, 99), 0);
    CHECK_INT(h->count, 0);
    free(h);
}

/* within says whether |got| is within 0.4 % of |want|. */
static int within(uint64_t got, uint64_t want) {
    uint64_t d = got > want ? got - want : want - got;
    return d * 250 <= want;
}

UNIT_TEST(load_hist_percentiles_of_a_uniform_run_are_within_the_error) {
    struct hist *h = malloc(sizeof(*h));
    hist_init(h);
    /* 1..100000 microseconds, each once. */
    for (uint64_t us = 1; us <= 100000; us++) {
        hist_record(h, us * 1000);
    }
    CHECK_INT(h->count, 100000);
    CHECK(within(hist_percentile(h, 50), 50000 * 1000ull));
    CHECK(within(hist_percentile(h, 99), 99000 * 1000ull));
    CHECK(within(hist_percentile(h, 90), 90000 * 1000ull));
    CHECK_INT(hist_percentile(h, 100), 100000 * 1000ull);
    CHECK_INT(hist_percentile(h, 0), 1000);
    free(h);
}

UNIT_TEST(load_hist_single_value_is_exact) {
    struct hist *h = malloc(sizeof(*h));
    hist_init(h);
    hist_record(h, 123456789);
    /* min and max clamp the midpoint: one value is reported exactly. */
    CHECK_INT(hist_percentile(h, 50), 123456789);
    CHECK_INT(hist_percentile(h, 99), 123456789);
    free(h);
}

UNIT_TEST(load_hist_percentile_rank_is_ceiling) {
    struct hist *h = malloc(sizeof(*h));
    hist_init(h);
    /* 99 fast values and 1 slow: p99 is the 99th value (fast), p99.5 the slow. */
    for (int i = 0; i < 99; i++) {
        hist_record(h, 100);
    }
    hist_record(h, 1000000);
    CHECK_INT(hist_percentile(h, 99), 100);
    CHECK(within(hist_percentile(h, 99.5), 1000000));
    free(h);
}

UNIT_TEST(load_hist_merge_equals_recording_in_one) {
    struct hist *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b)), *all = malloc(sizeof(*all));
    hist_init(a);
    hist_init(b);
    hist_init(all);
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 50000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint64_t v = x % 5000000000ull;
        hist_record(i % 3 ? a : b, v);
        hist_record(all, v);
    }
    hist_merge(a, b);
    CHECK_INT(a->count, all->count);
    CHECK_INT(a->sum, all->sum);
    CHECK_INT(a->min, all->min);
    CHECK_INT(a->max, all->max);
    CHECK(memcmp(a->bucket, all->bucket, sizeof(a->bucket)) == 0);
    CHECK_INT(hist_percentile(a, 99), hist_percentile(all, 99));
    free(a);
    free(b);
    free(all);
}

UNIT_TEST(load_hist_values_beyond_the_range_are_clamped) {
    struct hist *h = malloc(sizeof(*h));
    hist_init(h);
    hist_record(h, UINT64_MAX);
    CHECK_INT(h->max, HIST_MAX_NS);
    CHECK_INT(hist_percentile(h, 50), HIST_MAX_NS);
    free(h);
}
