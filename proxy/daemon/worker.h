/*
 * worker.h - worker threads: each runs its own libev loop, accepts
 * connections from the listening sockets (one per listener, opened once
 * and watched by every worker) and owns the sessions it accepted.
 * Workers share nothing else on the hot path.
 */
#ifndef SMTP_TLS_PROXY_WORKER_H
#define SMTP_TLS_PROXY_WORKER_H

#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "daemon/session.h"

struct config;

struct worker {
    struct session_host host; /* first: the session's gone callback finds us */
    int id;
    pthread_t thread;
    struct ev_loop *loop;
    ev_async wakeup;      /* another thread asked us to stop */
    ev_timer grace_timer; /* how long sessions may finish after a stop */
    ev_timer accept_pause; /* out of descriptors: accepting resumes later */
    int *listen_fds;      /* the shared sockets; closed by the last worker to stop */
    ev_io *accept_io;
    size_t nlisteners;
    struct session *sessions; /* doubly linked, for shutdown */
    unsigned nsessions;
    unsigned long long sessions_started;
    atomic_int stop_requested;
    int stopping;
    double shutdown_grace;
    /* The shared STARTTLS memory's Redis client (daemon/redis_memory.h),
     * made once Redis is configured and kept to the end; host.redis is
     * it while the current configuration names a Redis, NULL otherwise. */
    struct redis_memory *redis;
    unsigned generation; /* the snapshot generation applied to it */
};

struct metrics;
struct redis_memory_stats;

/* workers_redis_stats sums the counters of the workers' Redis clients
 * (|clients| made, |up| connected); from any thread while they run. */
void workers_redis_stats(struct worker *ws, int n, struct redis_memory_stats *sum,
                         unsigned *clients, unsigned *up);

/* workers_set_metrics gives the workers their counters (one shard per
 * worker, so at least as many as workers); before workers_start. */
void workers_set_metrics(struct metrics *m);

/* workers_open_listeners binds every listener of |cfg| now (before the
 * privileges are dropped: ports below 1024), or none; workers_start then
 * uses those sockets. workers_close_listeners closes them (the privileged
 * parent, which serves no connection). */
int workers_open_listeners(const struct config *cfg, char *err, size_t errlen);
void workers_close_listeners(void);

/* workers_start opens a listening socket for every listener of the
 * current snapshot, creates |n| workers that all accept from them, and
 * starts their threads.
 * Returns the array, or NULL with |err| set (nothing left running). */
struct worker *workers_start(int n, char *err, size_t errlen);

/* workers_stop asks every worker to stop accepting, lets sessions finish
 * for the configured grace period, then ends the rest, and joins them. */
void workers_stop(struct worker *w, int n);

/* The number of live sessions across all workers. */
extern atomic_uint sessions_live;

#endif
