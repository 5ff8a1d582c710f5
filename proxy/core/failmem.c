/*
 * failmem.c - the STARTTLS failure memory (see failmem.h).
 *
 * Entries live in one slab (an array of struct node, grown by doubling
 * up to the bound) and are named by their 32-bit index, which keeps the
 * links small: a hash chain link and the two LRU links are 12 bytes
 * where pointers would be 24. Free slots are chained through |next| and
 * marked by key.family == 0. The hash array holds the index of each
 * chain's first node (NIL for none); it doubles while there are more
 * entries than buckets, up to the power of two that fits the bound.
 *
 * The hash is seeded from the table's own address (ASLR), so that which
 * prefixes collide is not the same in every process; that is no keyed
 * hash, and a chain is in any case no longer than the table is bounded.
 */
#include "core/failmem.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NIL UINT32_MAX
#define MIN_BUCKETS 16
#define MIN_SLAB 8
#define HEADER "smtp-tls-proxy starttls-memory 1"
#define HEADER_PREFIX "smtp-tls-proxy starttls-memory "
/* No entry is written to expire further ahead than the longest ttl (30
 * days); ten years ahead is no clock skew but a file not written by us
 * (and a time that would overflow time_t when shown). */
#define FAILMEM_AHEAD_MAX (10 * 366 * 86400.0)

struct node {
    double first_seen, last_seen, expires;
    unsigned long count;
    uint32_t hnext;      /* next in the hash chain */
    uint32_t prev, next; /* LRU neighbours (towards head, towards tail); next also links free slots */
    struct cidr key;     /* key.family == 0: a free slot */
    char reason[FAILMEM_REASON_MAX];
};

_Static_assert(sizeof(struct node) <= 128, "failmem: keep a node within 128 bytes");

struct failmem {
    pthread_mutex_t lock;
    struct node *nodes;
    size_t cap; /* slots in nodes */
    uint32_t *buckets;
    size_t nbuckets; /* 0 or a power of two */
    uint32_t head, tail; /* most and least recently used */
    uint32_t free_head;
    size_t count, max, evicted;
    uint64_t seed;
    /* Entries by family (0: IPv4, 1: IPv6) and prefix length: the lengths
     * a covering lookup must try. */
    uint32_t lengths[2][129];
};

static void set_why(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_why(char *why, size_t whylen, const char *fmt, ...) {
    if (why == NULL || whylen == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

static size_t clamp_max(size_t max) {
    return max == 0 ? 1 : max > FAILMEM_MAX_LIMIT ? FAILMEM_MAX_LIMIT : max;
}

/* buckets_for is the largest hash array a table of |max| entries gets. */
static size_t buckets_for(size_t max) {
    size_t nb = MIN_BUCKETS;
    while (nb < max) {
        nb *= 2;
    }
    return nb;
}

static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static size_t bucket_of(const struct failmem *m, const struct cidr *k) {
    uint64_t w0, w1;
    memcpy(&w0, k->addr, 8);
    memcpy(&w1, k->addr + 8, 8);
    uint64_t h = mix(m->seed ^ ((uint64_t)k->family << 8 | k->prefix));
    h = mix(h ^ w0);
    h = mix(h ^ w1);
    return (size_t)(h & (m->nbuckets - 1));
}

static int expired(const struct node *n, double now) {
    return n->expires <= now;
}

static uint32_t find(const struct failmem *m, const struct cidr *k) {
    if (m->nbuckets == 0) {
        return NIL;
    }
    for (uint32_t i = m->buckets[bucket_of(m, k)]; i != NIL; i = m->nodes[i].hnext) {
        if (memcmp(&m->nodes[i].key, k, sizeof(*k)) == 0) {
            return i;
        }
    }
    return NIL;
}

static void chain_insert(struct failmem *m, uint32_t i) {
    size_t b = bucket_of(m, &m->nodes[i].key);
    m->nodes[i].hnext = m->buckets[b];
    m->buckets[b] = i;
}

/* chain_ref returns the link that points at node |i| in its chain. */
static uint32_t *chain_ref(struct failmem *m, uint32_t i) {
    uint32_t *p = &m->buckets[bucket_of(m, &m->nodes[i].key)];
    while (*p != i) {
        p = &m->nodes[*p].hnext;
    }
    return p;
}

static void lru_unlink(struct failmem *m, uint32_t i) {
    struct node *n = &m->nodes[i];
    if (n->prev != NIL) {
        m->nodes[n->prev].next = n->next;
    } else {
        m->head = n->next;
    }
    if (n->next != NIL) {
        m->nodes[n->next].prev = n->prev;
    } else {
        m->tail = n->prev;
    }
}

static void lru_push_front(struct failmem *m, uint32_t i) {
    struct node *n = &m->nodes[i];
    n->prev = NIL;
    n->next = m->head;
    if (m->head != NIL) {
        m->nodes[m->head].prev = i;
    } else {
        m->tail = i;
    }
    m->head = i;
}

static void touch(struct failmem *m, uint32_t i) {
    if (m->head != i) {
        lru_unlink(m, i);
        lru_push_front(m, i);
    }
}

/* drop removes node |i| from its chain and the LRU list and frees its
 * slot. */
static uint32_t *length_count(struct failmem *m, const struct cidr *k) {
    return &m->lengths[k->family == AF_INET6][k->prefix];
}

static void drop(struct failmem *m, uint32_t i) {
    (*length_count(m, &m->nodes[i].key))--;
    uint32_t *ref = chain_ref(m, i);
    *ref = m->nodes[i].hnext;
    lru_unlink(m, i);
    m->nodes[i].key.family = 0;
    m->nodes[i].next = m->free_head;
    m->free_head = i;
    m->count--;
}

/* rehash rebuilds every chain for the current nbuckets. */
static void rehash(struct failmem *m) {
    memset(m->buckets, 0xff, m->nbuckets * sizeof(*m->buckets));
    for (uint32_t i = m->head; i != NIL; i = m->nodes[i].next) {
        chain_insert(m, i);
    }
}

static int ensure_buckets(struct failmem *m) {
    if (m->nbuckets != 0) {
        return 1;
    }
    m->buckets = malloc(MIN_BUCKETS * sizeof(*m->buckets));
    if (m->buckets == NULL) {
        return 0;
    }
    m->nbuckets = MIN_BUCKETS;
    memset(m->buckets, 0xff, MIN_BUCKETS * sizeof(*m->buckets));
    return 1;
}

/* grow_buckets doubles the hash array while there are more entries than
 * buckets; best effort: out of memory, the chains just get longer. */
static void grow_buckets(struct failmem *m) {
    if (m->count <= m->nbuckets || m->nbuckets >= buckets_for(m->max)) {
        return;
    }
    uint32_t *b = realloc(m->buckets, 2 * m->nbuckets * sizeof(*b));
    if (b != NULL) {
        m->buckets = b;
        m->nbuckets *= 2;
        rehash(m);
    }
}

/* grow_slab makes room for at least |want| (<= max) nodes. */
static int grow_slab(struct failmem *m, size_t want) {
    if (m->cap >= want) {
        return 1;
    }
    size_t cap = m->cap != 0 ? 2 * m->cap : MIN_SLAB;
    while (cap < want) {
        cap *= 2;
    }
    if (cap > m->max) {
        cap = m->max;
    }
    struct node *nodes = realloc(m->nodes, cap * sizeof(*nodes));
    if (nodes == NULL) {
        return 0;
    }
    m->nodes = nodes;
    for (size_t i = cap; i-- > m->cap;) {
        nodes[i].key.family = 0;
        nodes[i].next = m->free_head;
        m->free_head = (uint32_t)i;
    }
    m->cap = cap;
    return 1;
}

/* insert_new adds a node for |k| (not present) as the most recently
 * used, making room first when the table is full. Returns its index, or
 * NIL when out of memory (nothing changed). */
static uint32_t insert_new(struct failmem *m, const struct cidr *k, double now) {
    if (!ensure_buckets(m)) {
        return NIL;
    }
    if (m->count >= m->max) {
        if (!expired(&m->nodes[m->tail], now)) {
            m->evicted++;
        }
        drop(m, m->tail);
    }
    if (m->free_head == NIL && (m->cap >= m->max || !grow_slab(m, m->cap + 1))) {
        return NIL;
    }
    uint32_t i = m->free_head;
    struct node *n = &m->nodes[i];
    m->free_head = n->next;
    memset(n, 0, sizeof(*n));
    n->key = *k;
    chain_insert(m, i);
    lru_push_front(m, i);
    m->count++;
    (*length_count(m, k))++;
    grow_buckets(m);
    return i;
}

static void copy_reason(char out[FAILMEM_REASON_MAX], const char *reason) {
    size_t i = 0;
    memset(out, 0, FAILMEM_REASON_MAX);
    if (reason == NULL) {
        return;
    }
    for (; reason[i] != '\0' && i < FAILMEM_REASON_MAX - 1; i++) {
        unsigned char c = (unsigned char)reason[i];
        out[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
}

static void to_entry(const struct node *n, struct failmem_entry *e) {
    memset(e, 0, sizeof(*e));
    e->key = n->key;
    memcpy(e->reason, n->reason, sizeof(e->reason));
    e->first_seen = n->first_seen;
    e->last_seen = n->last_seen;
    e->expires = n->expires;
    e->count = n->count;
}

struct failmem *failmem_new(size_t max_entries) {
    struct failmem *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return NULL;
    }
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        return NULL;
    }
    m->head = m->tail = m->free_head = NIL;
    m->max = clamp_max(max_entries);
    m->seed = mix((uint64_t)(uintptr_t)m ^ 0x9e3779b97f4a7c15ULL);
    return m;
}

void failmem_free(struct failmem *m) {
    if (m == NULL) {
        return;
    }
    pthread_mutex_destroy(&m->lock);
    free(m->nodes);
    free(m->buckets);
    free(m);
}

/* compact moves every node at index >= |cap| into a free slot below it
 * (count <= cap), gives the slab's tail back and rebuilds the free list. */
static void compact(struct failmem *m, size_t cap) {
    size_t dst = 0;
    for (size_t src = cap; src < m->cap; src++) {
        if (m->nodes[src].key.family == 0) {
            continue;
        }
        while (m->nodes[dst].key.family != 0) {
            dst++;
        }
        uint32_t s = (uint32_t)src, d = (uint32_t)dst;
        *chain_ref(m, s) = d;
        m->nodes[d] = m->nodes[s];
        struct node *n = &m->nodes[d];
        if (n->prev != NIL) {
            m->nodes[n->prev].next = d;
        } else {
            m->head = d;
        }
        if (n->next != NIL) {
            m->nodes[n->next].prev = d;
        } else {
            m->tail = d;
        }
        m->nodes[s].key.family = 0;
    }
    struct node *nodes = realloc(m->nodes, cap * sizeof(*nodes));
    if (nodes != NULL) { /* else keep the larger block: still correct */
        m->nodes = nodes;
        m->cap = cap;
    }
    m->free_head = NIL;
    for (size_t i = m->cap; i-- > 0;) {
        if (m->nodes[i].key.family == 0) {
            m->nodes[i].next = m->free_head;
            m->free_head = (uint32_t)i;
        }
    }
}

void failmem_set_max(struct failmem *m, size_t max_entries) {
    size_t max = clamp_max(max_entries);
    pthread_mutex_lock(&m->lock);
    m->max = max;
    while (m->count > max) {
        drop(m, m->tail);
        m->evicted++;
    }
    if (m->cap > max) {
        compact(m, max);
    }
    size_t nb = buckets_for(max);
    if (m->nbuckets > nb) {
        uint32_t *b = realloc(m->buckets, nb * sizeof(*b));
        if (b != NULL) {
            m->buckets = b;
            m->nbuckets = nb;
            rehash(m);
        }
    }
    pthread_mutex_unlock(&m->lock);
}

int failmem_record(struct failmem *m, const struct cidr *key, const char *reason, double now,
                   double ttl) {
    struct cidr k = *key;
    if (!cidr_normalize(&k) || !isfinite(now) || !isfinite(ttl) || !isfinite(now + ttl)) {
        return -1;
    }
    pthread_mutex_lock(&m->lock);
    uint32_t i = find(m, &k);
    if (i != NIL && expired(&m->nodes[i], now)) {
        drop(m, i);
        i = NIL;
    }
    int fresh = i == NIL;
    if (fresh) {
        i = insert_new(m, &k, now);
        if (i == NIL) {
            pthread_mutex_unlock(&m->lock);
            return -1;
        }
        m->nodes[i].count = 1;
        m->nodes[i].first_seen = now;
    } else {
        if (m->nodes[i].count < ULONG_MAX) {
            m->nodes[i].count++;
        }
        touch(m, i);
    }
    struct node *n = &m->nodes[i];
    n->last_seen = now;
    n->expires = now + ttl;
    copy_reason(n->reason, reason);
    pthread_mutex_unlock(&m->lock);
    return fresh;
}

int failmem_lookup(struct failmem *m, const struct cidr *key, double now,
                   struct failmem_entry *out) {
    struct cidr k = *key;
    if (!cidr_normalize(&k)) {
        return 0;
    }
    pthread_mutex_lock(&m->lock);
    uint32_t i = find(m, &k);
    int found = 0;
    if (i != NIL && expired(&m->nodes[i], now)) {
        drop(m, i);
    } else if (i != NIL) {
        touch(m, i);
        if (out != NULL) {
            to_entry(&m->nodes[i], out);
        }
        found = 1;
    }
    pthread_mutex_unlock(&m->lock);
    return found;
}

/* covering finds, most specific first, a live entry whose key covers
 * |k| (skipping |from| lengths already tried: pass k->prefix + 1 to
 * start); expired ones met are dropped. Locked by the caller. */
static uint32_t covering(struct failmem *m, const struct cidr *k, int *from, double now) {
    for (int len = *from - 1; len >= 0; len--) {
        if (m->lengths[k->family == AF_INET6][len] == 0) {
            continue;
        }
        struct cidr c = *k;
        c.prefix = (uint8_t)len;
        cidr_normalize(&c);
        uint32_t i = find(m, &c);
        if (i == NIL) {
            continue;
        }
        if (expired(&m->nodes[i], now)) {
            drop(m, i);
            continue;
        }
        *from = len;
        return i;
    }
    *from = 0;
    return NIL;
}

int failmem_lookup_covering(struct failmem *m, const struct cidr *key, double now,
                            struct failmem_entry *out) {
    struct cidr k = *key;
    if (!cidr_normalize(&k)) {
        return 0;
    }
    pthread_mutex_lock(&m->lock);
    int from = k.prefix + 1;
    uint32_t i = covering(m, &k, &from, now);
    if (i != NIL) {
        touch(m, i);
        if (out != NULL) {
            to_entry(&m->nodes[i], out);
        }
    }
    pthread_mutex_unlock(&m->lock);
    return i != NIL;
}

size_t failmem_forget_covering(struct failmem *m, const struct cidr *key) {
    struct cidr k = *key;
    if (!cidr_normalize(&k)) {
        return 0;
    }
    size_t gone = 0;
    pthread_mutex_lock(&m->lock);
    /* Expired entries are dropped on the way, live ones counted. */
    int from = k.prefix + 1;
    for (uint32_t i; (i = covering(m, &k, &from, -1e300)) != NIL;) {
        drop(m, i);
        gone++;
    }
    pthread_mutex_unlock(&m->lock);
    return gone;
}

int failmem_forget(struct failmem *m, const struct cidr *key) {
    struct cidr k = *key;
    if (!cidr_normalize(&k)) {
        return 0;
    }
    pthread_mutex_lock(&m->lock);
    uint32_t i = find(m, &k);
    if (i != NIL) {
        drop(m, i);
    }
    pthread_mutex_unlock(&m->lock);
    return i != NIL;
}

size_t failmem_forget_within(struct failmem *m, const struct cidr *range) {
    struct cidr r = *range;
    if (!cidr_normalize(&r)) {
        return 0;
    }
    size_t gone = 0;
    pthread_mutex_lock(&m->lock);
    for (uint32_t i = m->head, next; i != NIL; i = next) {
        next = m->nodes[i].next;
        if (cidr_covers(&r, &m->nodes[i].key)) {
            drop(m, i);
            gone++;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return gone;
}

size_t failmem_forget_all(struct failmem *m) {
    pthread_mutex_lock(&m->lock);
    size_t gone = m->count;
    free(m->nodes);
    free(m->buckets);
    m->nodes = NULL;
    m->buckets = NULL;
    m->cap = m->nbuckets = m->count = 0;
    m->head = m->tail = m->free_head = NIL;
    memset(m->lengths, 0, sizeof(m->lengths));
    pthread_mutex_unlock(&m->lock);
    return gone;
}

size_t failmem_expire(struct failmem *m, double now) {
    size_t gone = 0;
    pthread_mutex_lock(&m->lock);
    for (uint32_t i = m->head, next; i != NIL; i = next) {
        next = m->nodes[i].next;
        if (expired(&m->nodes[i], now)) {
            drop(m, i);
            gone++;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return gone;
}

size_t failmem_count(struct failmem *m) {
    pthread_mutex_lock(&m->lock);
    size_t n = m->count;
    pthread_mutex_unlock(&m->lock);
    return n;
}

size_t failmem_evicted(struct failmem *m) {
    pthread_mutex_lock(&m->lock);
    size_t n = m->evicted;
    pthread_mutex_unlock(&m->lock);
    return n;
}

size_t failmem_memory_bytes(struct failmem *m) {
    pthread_mutex_lock(&m->lock);
    size_t n = sizeof(*m) + m->cap * sizeof(struct node) + m->nbuckets * sizeof(uint32_t);
    pthread_mutex_unlock(&m->lock);
    return n;
}

size_t failmem_bound_bytes(size_t max_entries) {
    size_t max = clamp_max(max_entries);
    return sizeof(struct failmem) + max * sizeof(struct node) + buckets_for(max) * sizeof(uint32_t);
}

size_t failmem_list(struct failmem *m, double now, struct failmem_entry *out, size_t n) {
    size_t got = 0;
    pthread_mutex_lock(&m->lock);
    for (uint32_t i = m->head, next; i != NIL && got < n; i = next) {
        next = m->nodes[i].next;
        if (expired(&m->nodes[i], now)) {
            drop(m, i);
        } else {
            to_entry(&m->nodes[i], &out[got++]);
        }
    }
    pthread_mutex_unlock(&m->lock);
    return got;
}

/* ---- the state file ---- */

struct text {
    char *p;
    size_t len, cap;
    int failed;
};

static void appendf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void appendf(struct text *t, const char *fmt, ...) {
    if (t->failed) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        t->failed = 1;
        return;
    }
    if ((size_t)n >= t->cap - t->len) {
        size_t cap = 2 * t->cap;
        if (cap < t->len + (size_t)n + 1) {
            cap = t->len + (size_t)n + 1;
        }
        char *p = realloc(t->p, cap);
        if (p == NULL) {
            t->failed = 1;
            return;
        }
        t->p = p;
        t->cap = cap;
        va_start(ap, fmt);
        vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
    }
    t->len += (size_t)n;
}

char *failmem_serialize(struct failmem *m, double now, size_t *len) {
    /* Copy the live entries under the lock, format them without it: the
     * workers ask the table at every port-25 EHLO. */
    pthread_mutex_lock(&m->lock);
    size_t cap = m->count;
    struct failmem_entry *entries = malloc((cap ? cap : 1) * sizeof(*entries));
    size_t n = 0;
    for (uint32_t i = m->tail, prev; entries != NULL && i != NIL; i = prev) {
        prev = m->nodes[i].prev;
        if (expired(&m->nodes[i], now)) {
            drop(m, i);
        } else {
            to_entry(&m->nodes[i], &entries[n++]);
        }
    }
    pthread_mutex_unlock(&m->lock);
    if (entries == NULL) {
        return NULL;
    }
    struct text t = {.cap = 64 + n * 96};
    t.p = malloc(t.cap);
    if (t.p == NULL) {
        free(entries);
        return NULL;
    }
    appendf(&t, "%s\n", HEADER);
    for (size_t j = 0; j < n; j++) {
        const struct failmem_entry *e = &entries[j];
        char key[CIDR_TEXT_MAX], reason[FAILMEM_REASON_MAX];
        cidr_format(&e->key, key, sizeof(key));
        size_t r = 0;
        for (; e->reason[r] != '\0'; r++) {
            reason[r] = e->reason[r] == ' ' ? '_' : e->reason[r];
        }
        reason[r] = '\0';
        appendf(&t, "%s %.3f %.3f %.3f %lu %s\n", key, e->first_seen, e->last_seen, e->expires,
                e->count, r == 0 ? "-" : reason);
    }
    appendf(&t, "end %zu\n", n);
    free(entries);
    if (t.failed) {
        free(t.p);
        return NULL;
    }
    if (len != NULL) {
        *len = t.len;
    }
    return t.p;
}

/* parse_time reads a decimal "[-]digits[.digits]" of |n| bytes. */
static int parse_time(const char *p, size_t n, double *out) {
    char buf[400];
    size_t i = 0;
    if (n == 0 || n >= sizeof(buf)) {
        return 0;
    }
    if (p[i] == '-') {
        i++;
    }
    size_t digits = 0;
    while (i < n && p[i] >= '0' && p[i] <= '9') {
        i++;
        digits++;
    }
    if (digits == 0) {
        return 0;
    }
    if (i < n && p[i] == '.') {
        i++;
        digits = 0;
        while (i < n && p[i] >= '0' && p[i] <= '9') {
            i++;
            digits++;
        }
        if (digits == 0) {
            return 0;
        }
    }
    if (i != n) {
        return 0;
    }
    memcpy(buf, p, n);
    buf[n] = '\0';
    *out = strtod(buf, NULL);
    return isfinite(*out);
}

/* parse_decimal reads exactly |n| bytes of decimal digits (no sign, no
 * blanks; the text need not be NUL-terminated). */
static int parse_decimal(const char *p, size_t n, unsigned long *out) {
    char buf[24];
    if (n == 0 || n >= sizeof(buf)) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return 0;
        }
    }
    memcpy(buf, p, n);
    buf[n] = '\0';
    errno = 0;
    *out = strtoul(buf, NULL, 10);
    return errno == 0;
}

/* parse_entry reads one entry line (|n| bytes, no line end) into |e|. */
static int parse_entry(const char *line, size_t n, struct failmem_entry *e, char *err,
                       size_t errlen) {
    static const char *const names[6] = {"prefix", "first_seen", "last_seen",
                                         "expires", "count", "reason"};
    const char *f[6];
    size_t fl[6], pos = 0;
    for (int k = 0; k < 6; k++) {
        if (pos > n) {
            set_why(err, errlen, "expected 6 fields, \"<prefix> <first_seen> <last_seen> "
                                 "<expires> <count> <reason>\", found %d", k);
            return 0;
        }
        const char *sp = k < 5 ? memchr(line + pos, ' ', n - pos) : NULL;
        size_t end = sp != NULL ? (size_t)(sp - line) : n;
        f[k] = line + pos;
        fl[k] = end - pos;
        if (fl[k] == 0) {
            set_why(err, errlen, "field %d (%s) is empty", k + 1, names[k]);
            return 0;
        }
        pos = k < 5 && sp == NULL ? n + 1 : end + 1;
    }
    memset(e, 0, sizeof(*e));
    char text[CIDR_TEXT_MAX], inner[160];
    if (fl[0] >= sizeof(text)) {
        set_why(err, errlen, "bad prefix: too long");
        return 0;
    }
    memcpy(text, f[0], fl[0]);
    text[fl[0]] = '\0';
    if (!cidr_parse(text, &e->key, inner, sizeof(inner))) {
        set_why(err, errlen, "bad prefix: %s", inner);
        return 0;
    }
    double *times[3] = {&e->first_seen, &e->last_seen, &e->expires};
    for (int k = 0; k < 3; k++) {
        if (!parse_time(f[k + 1], fl[k + 1], times[k])) {
            set_why(err, errlen, "%s is not a finite decimal number of seconds", names[k + 1]);
            return 0;
        }
    }
    if (!parse_decimal(f[4], fl[4], &e->count) || e->count == 0) {
        set_why(err, errlen, "count is not a decimal number of at least 1");
        return 0;
    }
    if (fl[5] >= FAILMEM_REASON_MAX) {
        set_why(err, errlen, "reason is longer than %d bytes", FAILMEM_REASON_MAX - 1);
        return 0;
    }
    for (size_t i = 0; i < fl[5]; i++) {
        unsigned char c = (unsigned char)f[5][i];
        if (c <= 0x20 || c >= 0x7f) {
            set_why(err, errlen, "reason has a blank or a byte that is not printable ASCII");
            return 0;
        }
    }
    if (!(fl[5] == 1 && f[5][0] == '-')) {
        memcpy(e->reason, f[5], fl[5]);
    }
    return 1;
}

/* apply loads one parsed entry into |m| (room is reserved). */
static void apply(struct failmem *m, const struct failmem_entry *e, double now) {
    uint32_t i = find(m, &e->key);
    if (i != NIL) {
        touch(m, i);
    } else {
        i = insert_new(m, &e->key, now);
    }
    struct node *n = &m->nodes[i];
    memcpy(n->reason, e->reason, sizeof(n->reason));
    n->first_seen = e->first_seen;
    n->last_seen = e->last_seen;
    n->expires = e->expires;
    n->count = e->count;
}

/* walk reads the whole text; with |m| NULL it only checks it. Returns
 * the number of live entries, or -1 with |why| set. */
static long walk(struct failmem *m, const char *text, size_t len, double now, char *why,
                 size_t whylen) {
    size_t pos = 0, lineno = 0, entries = 0;
    long live = 0;
    int ended = 0;
    while (pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl != NULL ? (size_t)(nl - line) : len - pos;
        pos += n + (nl != NULL);
        lineno++;
        if (n > 0 && line[n - 1] == '\r') {
            n--;
        }
        if (ended) {
            set_why(why, whylen, "line %zu: text after the end line", lineno);
            return -1;
        }
        if (lineno == 1) {
            if (n == strlen(HEADER) && memcmp(line, HEADER, n) == 0) {
                continue;
            }
            if (n > strlen(HEADER_PREFIX) && memcmp(line, HEADER_PREFIX, strlen(HEADER_PREFIX)) == 0) {
                set_why(why, whylen, "line 1: unsupported version of the STARTTLS memory file "
                                     "(this proxy reads \"%s\")", HEADER);
            } else {
                set_why(why, whylen, "line 1: not a STARTTLS memory file (the first line must "
                                     "be \"%s\")", HEADER);
            }
            return -1;
        }
        if (n >= 3 && memcmp(line, "end", 3) == 0 && (n == 3 || line[3] == ' ')) {
            unsigned long said;
            if (n == 3 || !parse_decimal(line + 4, n - 4, &said)) {
                set_why(why, whylen, "line %zu: the end line must be \"end <number of entries>\"",
                        lineno);
                return -1;
            }
            if (said != entries) {
                set_why(why, whylen, "line %zu: the end line counts %lu entries but %zu came "
                                     "before it (a truncated or edited file?)", lineno, said, entries);
                return -1;
            }
            ended = 1;
            continue;
        }
        struct failmem_entry e;
        char err[200];
        if (!parse_entry(line, n, &e, err, sizeof(err))) {
            set_why(why, whylen, "line %zu: %s", lineno, err);
            return -1;
        }
        entries++;
        if (e.expires > now + FAILMEM_AHEAD_MAX || e.first_seen > e.last_seen ||
            e.last_seen > e.expires) {
            set_why(why, whylen, "line %zu: the times are out of order or expire more than "
                                 "ten years from now", lineno);
            return -1;
        }
        if (e.expires <= now) {
            continue;
        }
        live++;
        if (m != NULL) {
            apply(m, &e, now);
        }
    }
    if (lineno == 0) {
        set_why(why, whylen, "empty text: the first line must be \"%s\"", HEADER);
        return -1;
    }
    if (!ended) {
        set_why(why, whylen, "line %zu: the text ends without the \"end N\" line (a truncated "
                             "file?)", lineno);
        return -1;
    }
    return live;
}

long failmem_deserialize(struct failmem *m, const char *text, size_t len, double now, char *why,
                         size_t whylen) {
    if (text == NULL) {
        len = 0;
    }
    const char *nul = len != 0 ? memchr(text, '\0', len) : NULL;
    if (nul != NULL) {
        size_t lineno = 1;
        for (const char *p = text; p < nul; p++) {
            lineno += *p == '\n';
        }
        set_why(why, whylen, "line %zu: a NUL byte", lineno);
        return -1;
    }
    long live = walk(NULL, text, len, now, why, whylen);
    if (live <= 0) {
        return live;
    }
    pthread_mutex_lock(&m->lock);
    size_t want = m->count + (size_t)live;
    if (want > m->max) {
        want = m->max;
    }
    if (!ensure_buckets(m) || !grow_slab(m, want)) {
        pthread_mutex_unlock(&m->lock);
        set_why(why, whylen, "out of memory for %ld entries", live);
        return -1;
    }
    walk(m, text, len, now, NULL, 0);
    pthread_mutex_unlock(&m->lock);
    return live;
}
