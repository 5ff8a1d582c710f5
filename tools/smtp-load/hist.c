/*
 * hist.c - log-linear latency histograms (see hist.h for the layout).
 */
#include "hist.h"

#include <string.h>

#define SUB (UINT64_C(1) << HIST_SUB_BITS)

void hist_init(struct hist *h) {
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

size_t hist_index(uint64_t ns) {
    if (ns > HIST_MAX_NS) {
        ns = HIST_MAX_NS;
    }
    if (ns < 2 * SUB) {
        return (size_t)ns;
    }
    /* The highest set bit picks the power of two; the HIST_SUB_BITS bits
     * below it pick the linear bucket inside it. */
    unsigned msb = 63u - (unsigned)__builtin_clzll(ns);
    unsigned shift = msb - HIST_SUB_BITS;
    return (size_t)(SUB * shift + (ns >> shift));
}

uint64_t hist_bucket_low(size_t i) {
    if (i < 2 * SUB) {
        return i;
    }
    unsigned shift = (unsigned)(i / SUB) - 1;
    uint64_t mantissa = SUB + i % SUB;
    return mantissa << shift;
}

uint64_t hist_bucket_high(size_t i) {
    if (i < 2 * SUB) {
        return i;
    }
    unsigned shift = (unsigned)(i / SUB) - 1;
    uint64_t mantissa = SUB + i % SUB;
    return ((mantissa + 1) << shift) - 1;
}

void hist_record(struct hist *h, uint64_t ns) {
    if (ns > HIST_MAX_NS) {
        ns = HIST_MAX_NS;
    }
    h->bucket[hist_index(ns)]++;
    h->count++;
    h->sum += ns;
    if (ns < h->min) {
        h->min = ns;
    }
    if (ns > h->max) {
        h->max = ns;
    }
}

void hist_merge(struct hist *into, const struct hist *from) {
    if (from->count == 0) {
        return;
    }
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        into->bucket[i] += from->bucket[i];
    }
    into->count += from->count;
    into->sum += from->sum;
    if (from->min < into->min) {
        into->min = from->min;
    }
    if (from->max > into->max) {
        into->max = from->max;
    }
}

uint64_t hist_percentile(const struct hist *h, double pct) {
    if (h->count == 0) {
        return 0;
    }
    if (pct < 0) {
        pct = 0;
    }
    if (pct > 100) {
        pct = 100;
    }
    /* rank = ceil(pct/100 * count), at least 1, computed without libm. */
    double want = pct / 100.0 * (double)h->count;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want) {
        rank++;
    }
    /* The extremes are known exactly. */
    if (rank <= 1) {
        return h->min;
    }
    if (rank >= h->count) {
        return h->max;
    }
    uint64_t seen = 0;
    size_t i = 0;
    for (; i < HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank) {
            break;
        }
    }
    uint64_t lo = hist_bucket_low(i), hi = hist_bucket_high(i);
    uint64_t mid = lo + (hi - lo) / 2;
    if (mid < h->min) {
        mid = h->min;
    }
    if (mid > h->max) {
        mid = h->max;
    }
    return mid;
}
