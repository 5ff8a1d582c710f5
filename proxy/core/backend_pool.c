/*
 * backend_pool.c - the state of several backends (see backend_pool.h).
 *
 * A handful of targets at most (BACKEND_TARGETS_MAX): one array, looked
 * up by text under one mutex. Each session takes it a few times (pick,
 * the connection attempt, its outcome), never while doing I/O.
 */
#include "core/backend_pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    char *text;
    double down_until; /* 0: never down */
    unsigned long long connects;
    unsigned long long failures[BACKEND_FAILURE_COUNT];
};

struct backend_pool {
    pthread_mutex_t lock;
    struct entry *entries;
    size_t n;
    unsigned long rotation; /* round-robin: the next turn */
};

static const char *const failure_names[BACKEND_FAILURE_COUNT] = {
    "refused", "timeout", "closed", "greeting_4xx", "greeting_5xx",
};

const char *backend_failure_name(enum backend_failure why) {
    return (unsigned)why < BACKEND_FAILURE_COUNT ? failure_names[why] : "unknown";
}

struct backend_pool *backend_pool_new(void) {
    struct backend_pool *p = calloc(1, sizeof(*p));
    if (p != NULL) {
        pthread_mutex_init(&p->lock, NULL);
    }
    return p;
}

static void free_entries(struct entry *e, size_t n) {
    for (size_t i = 0; e != NULL && i < n; i++) {
        free(e[i].text);
    }
    free(e);
}

void backend_pool_free(struct backend_pool *p) {
    if (p == NULL) {
        return;
    }
    free_entries(p->entries, p->n);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* find returns the entry named |text|, or NULL (the lock is held). */
static struct entry *find(struct backend_pool *p, const char *text) {
    for (size_t i = 0; text != NULL && i < p->n; i++) {
        if (strcmp(p->entries[i].text, text) == 0) {
            return &p->entries[i];
        }
    }
    return NULL;
}

int backend_pool_configure(struct backend_pool *p, const struct backend_target *t, size_t n) {
    struct entry *next = calloc(n ? n : 1, sizeof(*next));
    if (next == NULL) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if ((next[i].text = strdup(t[i].text)) == NULL) {
            free_entries(next, i);
            return 0;
        }
    }
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < n; i++) {
        const struct entry *old = find(p, next[i].text);
        if (old != NULL) {
            char *text = next[i].text;
            next[i] = *old;
            next[i].text = text;
        }
    }
    free_entries(p->entries, p->n);
    p->entries = next;
    p->n = n;
    pthread_mutex_unlock(&p->lock);
    return 1;
}

/* down_until of |text| (the lock is held); unknown targets are up. */
static double down_until(struct backend_pool *p, const char *text) {
    const struct entry *e = find(p, text);
    return e != NULL ? e->down_until : 0;
}

int backend_pool_pick(struct backend_pool *p, const struct backend_target *t, size_t n,
                      enum backend_balance balance, uint64_t tried, double now) {
    if (n > BACKEND_TARGETS_MAX) {
        n = BACKEND_TARGETS_MAX;
    }
    int up[BACKEND_TARGETS_MAX];
    size_t nup = 0;
    int soonest = -1;
    double soonest_until = 0;
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < n; i++) {
        if (tried & ((uint64_t)1 << i)) {
            continue;
        }
        double until = down_until(p, t[i].text);
        if (until <= now) {
            up[nup++] = (int)i;
        } else if (soonest < 0 || until < soonest_until) {
            soonest = (int)i;
            soonest_until = until;
        }
    }
    int chosen = -1;
    if (nup > 0) {
        chosen = balance == BALANCE_ROUND_ROBIN ? up[p->rotation++ % nup] : up[0];
    } else if (tried == 0) {
        chosen = soonest; /* every one is down: try the first to come back */
    }
    pthread_mutex_unlock(&p->lock);
    return chosen;
}

void backend_pool_mark_down(struct backend_pool *p, const char *text, double until) {
    pthread_mutex_lock(&p->lock);
    struct entry *e = find(p, text);
    if (e != NULL && until > e->down_until) {
        e->down_until = until;
    }
    pthread_mutex_unlock(&p->lock);
}

void backend_pool_mark_up(struct backend_pool *p, const char *text) {
    pthread_mutex_lock(&p->lock);
    struct entry *e = find(p, text);
    if (e != NULL) {
        e->down_until = 0;
    }
    pthread_mutex_unlock(&p->lock);
}

int backend_pool_is_up(struct backend_pool *p, const char *text, double now) {
    pthread_mutex_lock(&p->lock);
    int up = down_until(p, text) <= now;
    pthread_mutex_unlock(&p->lock);
    return up;
}

void backend_pool_count_connect(struct backend_pool *p, const char *text) {
    pthread_mutex_lock(&p->lock);
    struct entry *e = find(p, text);
    if (e != NULL) {
        e->connects++;
    }
    pthread_mutex_unlock(&p->lock);
}

void backend_pool_count_failure(struct backend_pool *p, const char *text,
                                enum backend_failure why) {
    if ((unsigned)why >= BACKEND_FAILURE_COUNT) {
        return;
    }
    pthread_mutex_lock(&p->lock);
    struct entry *e = find(p, text);
    if (e != NULL) {
        e->failures[why]++;
    }
    pthread_mutex_unlock(&p->lock);
}

size_t backend_pool_stats(struct backend_pool *p, double now, struct backend_stat **out) {
    *out = NULL;
    pthread_mutex_lock(&p->lock);
    size_t n = p->n;
    struct backend_stat *st = n ? calloc(n, sizeof(*st)) : NULL;
    for (size_t i = 0; st != NULL && i < n; i++) {
        const struct entry *e = &p->entries[i];
        if ((st[i].text = strdup(e->text)) == NULL) {
            backend_pool_stats_free(st, i);
            st = NULL;
            break;
        }
        st[i].up = e->down_until <= now;
        st[i].down_until = e->down_until;
        st[i].connects = e->connects;
        memcpy(st[i].failures, e->failures, sizeof(st[i].failures));
    }
    pthread_mutex_unlock(&p->lock);
    *out = st;
    return st != NULL ? n : 0;
}

void backend_pool_stats_free(struct backend_stat *st, size_t n) {
    for (size_t i = 0; st != NULL && i < n; i++) {
        free(st[i].text);
    }
    free(st);
}
