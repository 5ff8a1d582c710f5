/*
 * backends.c - the process's backend pool (see backends.h).
 */
#include "daemon/backends.h"

#include <stddef.h>

#include "core/log.h"

/* Made and configured on the main thread before the workers start, and
 * never replaced while they run (only its contents change, under its
 * mutex): workers read the pointer without a lock. */
static struct backend_pool *pool;

int backends_configure(const struct config *cfg) {
    if (pool == NULL && (pool = backend_pool_new()) == NULL) {
        log_error("event=backends_failed reason=out_of_memory");
        return 0;
    }
    const struct backend_config *b = &cfg->backend;
    if (!backend_pool_configure(pool, b->targets, b->ntargets)) {
        log_error("event=backends_failed reason=out_of_memory");
        return 0;
    }
    for (size_t i = 0; i < b->ntargets; i++) {
        log_debug("event=backend_target backend=%s order=%zu balance=%s", b->targets[i].text,
                  i + 1, backend_balance_name(b->balance));
    }
    return 1;
}

struct backend_pool *backends_pool(void) {
    return pool;
}

void backends_stop(void) {
    backend_pool_free(pool);
    pool = NULL;
}

int backends_pick(const struct backend_config *b, uint64_t tried, double now) {
    if (pool != NULL) {
        return backend_pool_pick(pool, b->targets, b->ntargets, b->balance, tried, now);
    }
    for (size_t i = 0; i < b->ntargets && i < BACKEND_TARGETS_MAX; i++) {
        if (!(tried & ((uint64_t)1 << i))) {
            return (int)i;
        }
    }
    return -1;
}

void backends_connecting(const struct backend_target *t) {
    if (pool != NULL) {
        backend_pool_count_connect(pool, t->text);
    }
}

double backends_failed(const struct backend_config *b, const struct backend_target *t,
                       enum backend_failure why, double now) {
    double until = now + b->down_time;
    if (pool != NULL) {
        backend_pool_count_failure(pool, t->text, why);
        backend_pool_mark_down(pool, t->text, until);
    }
    return until;
}

void backends_greeted(const struct backend_target *t) {
    if (pool != NULL) {
        backend_pool_mark_up(pool, t->text);
    }
}
