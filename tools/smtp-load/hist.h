/*
 * hist.h - latency histograms for smtp-load: fixed memory, mergeable,
 * percentiles good to better than 0.4 %.
 *
 * A benchmark records millions of latencies; keeping them to sort would
 * make memory grow with the run. Instead every value (nanoseconds) goes
 * into one of HIST_BUCKETS log-linear buckets, HdrHistogram's layout:
 * values below 256 ns have a bucket each, and every power of two above
 * is split into 128 equal buckets, so a bucket is never wider than 1/128
 * of its lower bound and its midpoint is within 1/256 of any value in
 * it. The range ends at HIST_MAX_NS (about 137 s, beyond any --timeout
 * a run would use); longer values are counted as HIST_MAX_NS. Pure: no
 * I/O, no allocation; each worker thread has its own and they are
 * merged at the end.
 */
#ifndef SMTP_LOAD_HIST_H
#define SMTP_LOAD_HIST_H

#include <stddef.h>
#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_MAX_BITS 37
/* The largest value with its own bucket: 2^37 - 1 ns. */
#define HIST_MAX_NS ((UINT64_C(1) << HIST_MAX_BITS) - 1)
/* 256 exact buckets, then 128 for each power of two from 2^8 to 2^36. */
#define HIST_BUCKETS ((HIST_MAX_BITS - HIST_SUB_BITS + 1) << HIST_SUB_BITS)

struct hist {
    uint64_t count;
    uint64_t min; /* UINT64_MAX while empty */
    uint64_t max;
    uint64_t sum; /* for the mean; 2^64 ns is 584 years */
    uint64_t bucket[HIST_BUCKETS];
};

/* hist_init empties |h|. */
void hist_init(struct hist *h);

/* hist_record counts one value of |ns| nanoseconds (clamped to
 * HIST_MAX_NS). */
void hist_record(struct hist *h, uint64_t ns);

/* hist_merge adds every count of |from| to |into|. */
void hist_merge(struct hist *into, const struct hist *from);

/* hist_percentile returns the value at or below which |pct| percent
 * (0..100) of the recorded values lie: the midpoint of the bucket that
 * holds the value of rank ceil(pct/100 * count), kept within [min, max];
 * the first and the last rank are min and max exactly. Returns 0 for an
 * empty histogram. */
uint64_t hist_percentile(const struct hist *h, double pct);

/* hist_index returns the bucket of a value of |ns| (clamped). */
size_t hist_index(uint64_t ns);

/* hist_bucket_low and hist_bucket_high return the smallest and the
 * largest value bucket |i| (< HIST_BUCKETS) holds. */
uint64_t hist_bucket_low(size_t i);
uint64_t hist_bucket_high(size_t i);

#endif
