/*
 * test_backend_pool.c - core/backend_pool.h: failover order, round-robin
 * rotation, down targets skipped until their time passes (time passed
 * in), every target down, state kept by text across a reload, counters,
 * and two threads at once.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend_pool.h"
#include "unit.h"

#define NOW 1000.0

/* targets makes |n| targets named by |texts| (addresses do not matter). */
static struct backend_target *targets(const char *const *texts, size_t n) {
    struct backend_target *t = calloc(n, sizeof(*t));
    for (size_t i = 0; i < n; i++) {
        t[i].text = strdup(texts[i]);
    }
    return t;
}

static void free_targets(struct backend_target *t, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(t[i].text);
    }
    free(t);
}

static struct backend_pool *pool_of(const struct backend_target *t, size_t n) {
    struct backend_pool *p = backend_pool_new();
    CHECK(p != NULL);
    CHECK(backend_pool_configure(p, t, n));
    return p;
}

#define BIT(i) ((uint64_t)1 << (i))

UNIT_TEST(backend_pool_failover_takes_the_first_up_target_in_order) {
    const char *names[] = {"a:25", "b:25", "c:25"};
    struct backend_target *t = targets(names, 3);
    struct backend_pool *p = pool_of(t, 3);
    for (int i = 0; i < 3; i++) {
        CHECK_INT(backend_pool_pick(p, t, 3, BALANCE_FAILOVER, 0, NOW), 0);
    }
    CHECK_INT(backend_pool_pick(p, t, 3, BALANCE_FAILOVER, BIT(0), NOW), 1);
    CHECK_INT(backend_pool_pick(p, t, 3, BALANCE_FAILOVER, BIT(0) | BIT(1), NOW), 2);
    CHECK_INT(backend_pool_pick(p, t, 3, BALANCE_FAILOVER, BIT(0) | BIT(1) | BIT(2), NOW), -1);
    /* a is down: b comes first; a failed session of b goes on to c */
    backend_pool_mark_down(p, "a:25", NOW + 30);
    CHECK_INT(backend_pool_pick(p, t, 3, BALANCE_FAILOVER, 0, NOW), 1);
    CHECK_INT(backend_pool_pick(p, t, 3, BALANCE_FAILOVER, BIT(1), NOW), 2);
    /* a tried b and c: a is down, so there is nothing left */
    CHECK_INT(backend_pool_pick(p, t, 3, BALANCE_FAILOVER, BIT(1) | BIT(2), NOW), -1);
    backend_pool_free(p);
    free_targets(t, 3);
}

UNIT_TEST(backend_pool_round_robin_rotates_among_the_up_targets) {
    const char *names[] = {"a:25", "b:25", "c:25"};
    struct backend_target *t = targets(names, 3);
    struct backend_pool *p = pool_of(t, 3);
    int want[] = {0, 1, 2, 0, 1, 2};
    for (int i = 0; i < 6; i++) {
        CHECK_INT(backend_pool_pick(p, t, 3, BALANCE_ROUND_ROBIN, 0, NOW), want[i]);
    }
    /* b down: a and c in turn, evenly */
    backend_pool_mark_down(p, "b:25", NOW + 30);
    int count[3] = {0, 0, 0};
    for (int i = 0; i < 10; i++) {
        count[backend_pool_pick(p, t, 3, BALANCE_ROUND_ROBIN, 0, NOW)]++;
    }
    CHECK_INT(count[0], 5);
    CHECK_INT(count[1], 0);
    CHECK_INT(count[2], 5);
    /* a retry never repeats a target the session tried */
    for (int i = 0; i < 4; i++) {
        CHECK_INT(backend_pool_pick(p, t, 3, BALANCE_ROUND_ROBIN, BIT(0), NOW), 2);
    }
    backend_pool_free(p);
    free_targets(t, 3);
}

UNIT_TEST(backend_pool_down_target_is_skipped_until_its_down_time_ends) {
    const char *names[] = {"a:25", "b:25"};
    struct backend_target *t = targets(names, 2);
    struct backend_pool *p = pool_of(t, 2);
    backend_pool_mark_down(p, "a:25", NOW + 30);
    CHECK(!backend_pool_is_up(p, "a:25", NOW));
    CHECK(!backend_pool_is_up(p, "a:25", NOW + 29.9));
    CHECK_INT(backend_pool_pick(p, t, 2, BALANCE_FAILOVER, 0, NOW + 29.9), 1);
    CHECK(backend_pool_is_up(p, "a:25", NOW + 30));
    CHECK_INT(backend_pool_pick(p, t, 2, BALANCE_FAILOVER, 0, NOW + 30), 0);
    /* A later failure pushes the time further, an earlier one never back. */
    backend_pool_mark_down(p, "a:25", NOW + 60);
    backend_pool_mark_down(p, "a:25", NOW + 40);
    CHECK(!backend_pool_is_up(p, "a:25", NOW + 50));
    /* A greeting brings it back at once. */
    backend_pool_mark_up(p, "a:25");
    CHECK(backend_pool_is_up(p, "a:25", NOW));
    CHECK_INT(backend_pool_pick(p, t, 2, BALANCE_FAILOVER, 0, NOW), 0);
    backend_pool_free(p);
    free_targets(t, 2);
}

UNIT_TEST(backend_pool_all_down_gives_a_new_session_the_first_to_come_back) {
    const char *names[] = {"a:25", "b:25", "c:25"};
    struct backend_target *t = targets(names, 3);
    struct backend_pool *p = pool_of(t, 3);
    backend_pool_mark_down(p, "a:25", NOW + 50);
    backend_pool_mark_down(p, "b:25", NOW + 20);
    backend_pool_mark_down(p, "c:25", NOW + 40);
    for (int i = 0; i < 3; i++) {
        /* one try, whatever the balance */
        CHECK_INT(backend_pool_pick(p, t, 3, BALANCE_FAILOVER, 0, NOW), 1);
        CHECK_INT(backend_pool_pick(p, t, 3, BALANCE_ROUND_ROBIN, 0, NOW), 1);
    }
    /* and no second try while every one is down */
    CHECK_INT(backend_pool_pick(p, t, 3, BALANCE_FAILOVER, BIT(1), NOW), -1);
    CHECK_INT(backend_pool_pick(p, t, 3, BALANCE_ROUND_ROBIN, BIT(1), NOW), -1);
    /* the one try failed again: b is now the last to come back */
    backend_pool_mark_down(p, "b:25", NOW + 60);
    CHECK_INT(backend_pool_pick(p, t, 3, BALANCE_FAILOVER, 0, NOW), 2);
    /* a single backend that is down is still tried */
    struct backend_pool *one = pool_of(t, 1);
    backend_pool_mark_down(one, "a:25", NOW + 30);
    CHECK_INT(backend_pool_pick(one, t, 1, BALANCE_FAILOVER, 0, NOW), 0);
    CHECK_INT(backend_pool_pick(one, t, 1, BALANCE_FAILOVER, BIT(0), NOW), -1);
    backend_pool_free(one);
    backend_pool_free(p);
    free_targets(t, 3);
}

/* A session whose tries failed while every target was down picks again
 * from what the pool knows now, not from what it knew at its first pick:
 * a target that greeted another session meanwhile, or whose down time
 * ended, is the one it gets. */
UNIT_TEST(backend_pool_a_session_whose_tries_failed_gets_a_target_back_up) {
    const char *names[] = {"a:25", "b:25", "c:25"};
    struct backend_target *t = targets(names, 3);
    struct backend_pool *p = pool_of(t, 3);
    backend_pool_mark_down(p, "a:25", NOW + 50);
    backend_pool_mark_down(p, "b:25", NOW + 20);
    backend_pool_mark_down(p, "c:25", NOW + 40);
    /* every one down: the session's one try is b, and it fails again */
    CHECK_INT(backend_pool_pick(p, t, 3, BALANCE_FAILOVER, 0, NOW), 1);
    backend_pool_mark_down(p, "b:25", NOW + 1 + 30);
    CHECK_INT(backend_pool_pick(p, t, 3, BALANCE_FAILOVER, BIT(1), NOW + 1), -1);
    /* a greets another session: this one's next try is a */
    backend_pool_mark_up(p, "a:25");
    CHECK_INT(backend_pool_pick(p, t, 3, BALANCE_FAILOVER, BIT(1), NOW + 1), 0);
    CHECK_INT(backend_pool_pick(p, t, 3, BALANCE_ROUND_ROBIN, BIT(1), NOW + 1), 0);
    /* a fails too; c's down time has ended by now: c */
    backend_pool_mark_down(p, "a:25", NOW + 2 + 30);
    CHECK_INT(backend_pool_pick(p, t, 3, BALANCE_FAILOVER, BIT(0) | BIT(1), NOW + 40), 2);
    CHECK_INT(backend_pool_pick(p, t, 3, BALANCE_FAILOVER, BIT(0) | BIT(1), NOW + 39.9), -1);
    backend_pool_free(p);
    free_targets(t, 3);
}

UNIT_TEST(backend_pool_reload_keeps_state_and_counters_by_text) {
    const char *before[] = {"a:25", "b:25"};
    const char *after[] = {"c:25", "a:25"};
    struct backend_target *t1 = targets(before, 2), *t2 = targets(after, 2);
    struct backend_pool *p = pool_of(t1, 2);
    backend_pool_count_connect(p, "a:25");
    backend_pool_count_connect(p, "a:25");
    backend_pool_count_failure(p, "a:25", BACKEND_TIMEOUT);
    backend_pool_mark_down(p, "a:25", NOW + 30);
    backend_pool_mark_down(p, "b:25", NOW + 30);
    CHECK(backend_pool_configure(p, t2, 2));
    CHECK(!backend_pool_is_up(p, "a:25", NOW)); /* kept */
    CHECK(backend_pool_is_up(p, "c:25", NOW));  /* new */
    CHECK(backend_pool_is_up(p, "b:25", NOW));  /* gone: unknown counts as up */
    CHECK_INT(backend_pool_pick(p, t2, 2, BALANCE_FAILOVER, 0, NOW), 0);
    /* A session under the old configuration still picks among its own. */
    CHECK_INT(backend_pool_pick(p, t1, 2, BALANCE_FAILOVER, 0, NOW), 1);
    backend_pool_mark_down(p, "b:25", NOW + 30); /* nothing to record */
    backend_pool_count_connect(p, "b:25");
    struct backend_stat *st = NULL;
    size_t n = backend_pool_stats(p, NOW, &st);
    CHECK_INT(n, 2);
    if (n == 2) {
        CHECK_STR(st[0].text, "c:25");
        CHECK_INT(st[0].up, 1);
        CHECK_INT(st[0].connects, 0);
        CHECK_STR(st[1].text, "a:25");
        CHECK_INT(st[1].up, 0);
        CHECK(st[1].down_until == NOW + 30);
        CHECK_INT(st[1].connects, 2);
        CHECK_INT(st[1].failures[BACKEND_TIMEOUT], 1);
        CHECK_INT(st[1].failures[BACKEND_REFUSED], 0);
    }
    backend_pool_stats_free(st, n);
    backend_pool_free(p);
    free_targets(t1, 2);
    free_targets(t2, 2);
}

UNIT_TEST(backend_pool_counts_and_names_failures) {
    const char *names[] = {"/run/mta.sock"};
    struct backend_target *t = targets(names, 1);
    struct backend_pool *p = pool_of(t, 1);
    for (int r = 0; r < BACKEND_FAILURE_COUNT; r++) {
        for (int k = 0; k <= r; k++) {
            backend_pool_count_failure(p, "/run/mta.sock", (enum backend_failure)r);
        }
    }
    backend_pool_count_failure(p, "/run/mta.sock", BACKEND_FAILURE_COUNT); /* ignored */
    struct backend_stat *st = NULL;
    size_t n = backend_pool_stats(p, NOW, &st);
    CHECK_INT(n, 1);
    for (int r = 0; n == 1 && r < BACKEND_FAILURE_COUNT; r++) {
        CHECK_INT(st[0].failures[r], r + 1);
    }
    backend_pool_stats_free(st, n);
    CHECK_STR(backend_failure_name(BACKEND_REFUSED), "refused");
    CHECK_STR(backend_failure_name(BACKEND_TIMEOUT), "timeout");
    CHECK_STR(backend_failure_name(BACKEND_CLOSED), "closed");
    CHECK_STR(backend_failure_name(BACKEND_GREETING_4XX), "greeting_4xx");
    CHECK_STR(backend_failure_name(BACKEND_GREETING_5XX), "greeting_5xx");
    /* an empty pool has nothing to show */
    struct backend_pool *empty = backend_pool_new();
    CHECK_INT(backend_pool_stats(empty, NOW, &st), 0);
    CHECK(st == NULL);
    CHECK_INT(backend_pool_pick(empty, t, 1, BALANCE_FAILOVER, 0, NOW), 0);
    backend_pool_free(empty);
    backend_pool_free(p);
    free_targets(t, 1);
}

/* Two workers at once: round-robin turns are never lost or doubled, and
 * every count arrives. */
struct worker_arg {
    struct backend_pool *pool;
    const struct backend_target *t;
    int picks[4];
};

#define ROUNDS 20000

static void *hammer(void *arg) {
    struct worker_arg *w = arg;
    for (int i = 0; i < ROUNDS; i++) {
        int k = backend_pool_pick(w->pool, w->t, 4, BALANCE_ROUND_ROBIN, 0, NOW);
        if (k >= 0 && k < 4) {
            w->picks[k]++;
            backend_pool_count_connect(w->pool, w->t[k].text);
        }
        /* a target that was never up for long: down in the past, up again */
        backend_pool_mark_down(w->pool, w->t[i % 4].text, NOW - 1);
        backend_pool_mark_up(w->pool, w->t[(i + 1) % 4].text);
    }
    return NULL;
}

UNIT_TEST(backend_pool_two_threads_share_one_rotation) {
    const char *names[] = {"a:25", "b:25", "c:25", "d:25"};
    struct backend_target *t = targets(names, 4);
    struct backend_pool *p = pool_of(t, 4);
    struct worker_arg a = {p, t, {0}}, b = {p, t, {0}};
    pthread_t ta, tb;
    CHECK_INT(pthread_create(&ta, NULL, hammer, &a), 0);
    CHECK_INT(pthread_create(&tb, NULL, hammer, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    struct backend_stat *st = NULL;
    size_t n = backend_pool_stats(p, NOW, &st);
    CHECK_INT(n, 4);
    for (size_t k = 0; k < n; k++) {
        /* 2 * ROUNDS turns over 4 targets that were always up */
        CHECK_INT(a.picks[k] + b.picks[k], 2 * ROUNDS / 4);
        CHECK_INT(st[k].connects, 2 * ROUNDS / 4);
        CHECK_INT(st[k].up, 1);
    }
    backend_pool_stats_free(st, n);
    backend_pool_free(p);
    free_targets(t, 4);
}
