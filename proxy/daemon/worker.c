/*
 * worker.c - worker threads, their loops, accepting and shutting down.
 */
#include "daemon/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/client_table.h"
#include "obs/metrics.h"
#include "protocol/headers.h"
#include "core/log.h"
#include "daemon/dns.h"
#include "daemon/net.h"
#include "daemon/redis_memory.h"
#include "daemon/session.h"
#include "daemon/snapshot.h"

atomic_uint sessions_live;

/* The counters; one shard per worker (workers_set_metrics). */
static struct metrics *worker_metrics;

void workers_set_metrics(struct metrics *m) {
    worker_metrics = m;
}

/* Live sessions per client address, all workers together. */
static struct client_table *per_client;

/* The listening sockets, one per listener, shared by every worker: one
 * socket per port is what makes a second process fail to bind it (see
 * net_listen). Level-triggered watchers in several loops may all wake
 * for one connection; those that lose the race get EAGAIN. */
static int *shared_fds;
static size_t nshared;
/* Workers that have stopped watching them; the last one closes them. */
static atomic_int workers_unwatched;
static int nworkers_watching;

/* Accepts per readiness event: fairness between listeners and sessions. */
#define ACCEPT_BURST 32
/* How long accepting pauses when descriptors or memory run out. */
#define ACCEPT_PAUSE 0.5

static void refuse(int fd, const char *hostname, int implicit_tls) {
    if (implicit_tls) {
        close(fd); /* a plaintext reply would be garbage to a TLS client */
        return;
    }
    char line[HEADERS_VALUE_MAX + 64]; /* the hostname and the reply text */
    int n = snprintf(line, sizeof(line),
                     "421 4.7.0 %s Too many connections, try again later\r\n", hostname);
    /* Best effort on a fresh socket; the client retries either way. */
    ssize_t ignored = send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)ignored;
    close(fd);
}

static void set_accepting(struct worker *w, int on) {
    for (size_t i = 0; i < w->nlisteners; i++) {
        if (w->listen_fds[i] < 0) {
            continue;
        }
        if (on) {
            ev_io_start(w->loop, &w->accept_io[i]);
        } else {
            ev_io_stop(w->loop, &w->accept_io[i]);
        }
    }
}

static void on_accept_resume(struct ev_loop *loop, ev_timer *t, int revents) {
    (void)loop;
    (void)revents;
    struct worker *w = t->data;
    if (!w->stopping) {
        set_accepting(w, 1);
    }
}

/* pause_accepting stops accepting for a moment: the listening sockets
 * stay readable while descriptors are exhausted, and level-triggered
 * watchers would otherwise spin (and log) without end. */
static void pause_accepting(struct worker *w, int err) {
    log_warning("event=accept_paused worker=%d error=\"%s\" seconds=%.1f", w->id,
                strerror(err), ACCEPT_PAUSE);
    set_accepting(w, 0);
    ev_timer_set(&w->accept_pause, ACCEPT_PAUSE, 0.);
    ev_timer_start(w->loop, &w->accept_pause);
}

/* follow_config applies a reloaded snapshot to what the worker holds
 * itself, its Redis client: once per generation, at the first accept
 * under it, which is where the sessions that use it start. A Redis
 * named by a reload is connected then; one no longer named is closed
 * (host.redis NULL) but kept, for sessions that still hold lookups. */
static void follow_config(struct worker *w, const struct snapshot *snap) {
    if (snap->generation == w->generation) {
        return;
    }
    w->generation = snap->generation;
    const struct config *cfg = snap->cfg;
    if (w->redis == NULL) {
        /* Published atomically: the main thread reads it for the metrics
         * (workers_redis_stats). */
        __atomic_store_n(&w->redis, redis_memory_new(w->loop, w->id, cfg), __ATOMIC_RELEASE);
    } else {
        redis_memory_configure(w->redis, cfg);
    }
    /* Atomic: workers_redis_stats counts only clients in use. */
    __atomic_store_n(&w->host.redis, cfg->memory.redis != NULL ? w->redis : NULL,
                     __ATOMIC_RELEASE);
}

static void on_accept(struct ev_loop *loop, ev_io *io, int revents) {
    (void)loop;
    (void)revents;
    struct worker *w = io->data;
    size_t index = (size_t)(io - w->accept_io);
    for (int i = 0; i < ACCEPT_BURST; i++) {
        struct net_addr peer = {.len = sizeof(peer.ss)};
        int fd = accept4(io->fd, (struct sockaddr *)&peer.ss, &peer.len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                pause_accepting(w, errno);
            } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                       errno != ECONNABORTED) {
                log_warning("event=accept_failed error=\"%s\"", strerror(errno));
            }
            return;
        }
        struct snapshot *snap = snapshot_acquire();
        follow_config(w, snap);
        if (atomic_fetch_add(&sessions_live, 1) >= snap->cfg->max_connections) {
            atomic_fetch_sub(&sessions_live, 1);
            log_warning("event=refused reason=max_connections limit=%u",
                        snap->cfg->max_connections);
            metrics_refusal(w->host.metrics, MRF_MAX_CONNECTIONS);
            refuse(fd, snap->cfg->hostname,
                   snap->cfg->listeners[index].tls == TLS_MODE_IMPLICIT);
            snapshot_release(snap);
            continue;
        }
        /* Behind a load balancer the client is known only from its PROXY
         * header: the session asks for admission then (worker_admit). */
        int behind_balancer = snap->cfg->listeners[index].proxy_protocol != PROXY_PROTOCOL_NO;
        if (!behind_balancer &&
            !client_table_enter(per_client, &peer, snap->cfg->max_per_client)) {
            atomic_fetch_sub(&sessions_live, 1);
            char ip[64];
            net_addr_format(&peer, ip, sizeof(ip), NULL);
            log_warning("event=refused reason=max_per_client client=%s limit=%u", ip,
                        snap->cfg->max_per_client);
            metrics_refusal(w->host.metrics, MRF_MAX_PER_CLIENT);
            refuse(fd, snap->cfg->hostname,
                   snap->cfg->listeners[index].tls == TLS_MODE_IMPLICIT);
            snapshot_release(snap);
            continue;
        }
        struct session *s = session_new(&w->host, fd, &peer, index, snap, w->sessions_started);
        if (s == NULL) {
            if (!behind_balancer) {
                client_table_leave(per_client, &peer);
            }
            atomic_fetch_sub(&sessions_live, 1);
            continue;
        }
        /* The worker's own bookkeeping, undone in session_gone. */
        metrics_active(w->host.metrics, index, 1);
        session_link(s, &w->sessions);
        w->nsessions++;
        w->sessions_started++;
        session_begin(s);
    }
}

_Static_assert(offsetof(struct worker, host) == 0, "session_gone casts the host back");

/* session_gone is every session's host callback: it undoes what
 * on_accept counted. */
static void session_gone(struct session_host *host, struct session *s,
                         const struct net_addr *client, const struct session_summary *summary) {
    struct worker *w = (struct worker *)host; /* host is the first member */
    metrics_active(host->metrics, summary->listener_index, -1);
    metrics_connection(host->metrics, summary->listener_index,
                       metrics_tls_of(summary->tls_version), summary->scope_id);
    if (client != NULL) {
        client_table_leave(per_client, client);
    }
    session_unlink(s, &w->sessions);
    w->nsessions--;
    atomic_fetch_sub(&sessions_live, 1);
    if (w->stopping && w->nsessions == 0) {
        ev_break(w->loop, EVBREAK_ALL);
    }
}

/* worker_admit is every session's admission to the per-client table,
 * for clients named by a PROXY header. */
static int worker_admit(struct session_host *host, const struct net_addr *client) {
    struct snapshot *snap = snapshot_acquire();
    unsigned limit = snap->cfg->max_per_client;
    snapshot_release(snap);
    (void)host;
    return client_table_enter(per_client, client, limit);
}

static void on_grace_over(struct ev_loop *loop, ev_timer *t, int revents) {
    (void)loop;
    (void)revents;
    struct worker *w = t->data;
    log_info("event=shutdown_grace_over worker=%d sessions=%u", w->id, w->nsessions);
    struct session *s = w->sessions;
    while (s != NULL) {
        struct session *next = session_next(s);
        session_shutdown(s);
        s = next;
    }
}

static void close_shared_fds(void) {
    for (size_t i = 0; i < nshared; i++) {
        if (shared_fds[i] >= 0) {
            close(shared_fds[i]);
        }
    }
    free(shared_fds);
    shared_fds = NULL;
    nshared = 0;
}

static void on_wakeup(struct ev_loop *loop, ev_async *a, int revents) {
    (void)revents;
    struct worker *w = a->data;
    if (!atomic_load(&w->stop_requested) || w->stopping) {
        return;
    }
    w->stopping = 1;
    for (size_t i = 0; i < w->nlisteners; i++) {
        ev_io_stop(loop, &w->accept_io[i]);
        w->listen_fds[i] = -1;
    }
    /* No worker accepts once every one has stopped its watchers: the
     * last closes the sockets, so new clients are refused at once
     * rather than queued until the drain is over. */
    if (atomic_fetch_add(&workers_unwatched, 1) + 1 == nworkers_watching) {
        close_shared_fds();
    }
    ev_async_stop(loop, a);
    ev_timer_stop(loop, &w->accept_pause);
    /* Idle sessions end now; busy ones when their transaction is done,
     * or when the grace period is over. */
    struct session *s = w->sessions;
    while (s != NULL) {
        struct session *next = session_next(s);
        session_drain(s);
        s = next;
    }
    if (w->nsessions == 0) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    ev_timer_init(&w->grace_timer, on_grace_over, w->shutdown_grace, 0.);
    w->grace_timer.data = w;
    ev_timer_start(loop, &w->grace_timer);
}

static void *worker_main(void *arg) {
    struct worker *w = arg;
    ev_run(w->loop, 0);
    /* Closing sessions may have left the loop early; finish them. */
    while (w->nsessions > 0) {
        ev_run(w->loop, EVRUN_ONCE);
    }
    return NULL;
}

static void worker_free(struct worker *w) {
    free(w->listen_fds);
    free(w->accept_io);
    /* Every session is gone, and with it every lookup it started. */
    dns_resolver_free(w->host.dns);
    w->host.dns = NULL;
    /* Their Redis lookups too (cancelled): nothing calls back. */
    redis_memory_free(w->redis);
    w->redis = NULL;
    w->host.redis = NULL;
    if (w->loop != NULL) {
        ev_loop_destroy(w->loop);
    }
}

/* worker_init sets up |w| to accept from the shared sockets of |cfg|'s
 * listeners. */
static int worker_init(struct worker *w, int id, const struct config *cfg, char *err,
                       size_t errlen) {
    memset(w, 0, sizeof(*w));
    w->id = id;
    w->shutdown_grace = cfg->shutdown_grace;
    w->loop = ev_loop_new(EVFLAG_AUTO);
    w->host.loop = w->loop;
    w->host.id = id;
    w->host.gone = session_gone;
    w->host.admit = worker_admit;
    w->host.metrics = metrics_shard(worker_metrics, id);
    /* The worker's own c-ares channel, on its loop (daemon/dns.h). */
    w->host.dns = w->loop != NULL ? dns_resolver_new(w->loop) : NULL;
    /* The shared STARTTLS memory's Redis client, on the loop; it connects
     * once the loop runs. Out of memory: the local memory only. */
    if (w->loop != NULL && cfg->memory.redis != NULL) {
        w->redis = redis_memory_new(w->loop, id, cfg);
        if (w->redis == NULL) {
            log_error("event=redis_unavailable worker=%d reason=out_of_memory", id);
        }
    }
    w->host.redis = w->redis;
    w->listen_fds = calloc(cfg->nlisteners, sizeof(int));
    w->accept_io = calloc(cfg->nlisteners, sizeof(ev_io));
    if (w->loop == NULL || w->host.dns == NULL || w->listen_fds == NULL ||
        w->accept_io == NULL) {
        snprintf(err, errlen, "out of memory");
        return 0;
    }
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        w->listen_fds[i] = -1;
    }
    w->nlisteners = cfg->nlisteners;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        w->listen_fds[i] = shared_fds[i];
        ev_io_init(&w->accept_io[i], on_accept, w->listen_fds[i], EV_READ);
        w->accept_io[i].data = w;
        ev_io_start(w->loop, &w->accept_io[i]);
    }
    ev_init(&w->accept_pause, on_accept_resume);
    w->accept_pause.data = w;
    ev_async_init(&w->wakeup, on_wakeup);
    w->wakeup.data = w;
    ev_async_start(w->loop, &w->wakeup);
    return 1;
}

/* open_shared_fds binds every listener of |cfg|, or none. */
static int open_shared_fds(const struct config *cfg, char *err, size_t errlen) {
    shared_fds = calloc(cfg->nlisteners, sizeof(int));
    if (shared_fds == NULL) {
        snprintf(err, errlen, "out of memory");
        return 0;
    }
    nshared = cfg->nlisteners;
    for (size_t i = 0; i < nshared; i++) {
        shared_fds[i] = -1;
    }
    for (size_t i = 0; i < nshared; i++) {
        const struct listener_config *l = &cfg->listeners[i];
        char why[200];
        shared_fds[i] = net_listen(&l->addr, why, sizeof(why));
        if (shared_fds[i] < 0) {
            snprintf(err, errlen, "listener %s (%s): %s", l->name, l->address, why);
            close_shared_fds();
            return 0;
        }
    }
    return 1;
}

int workers_open_listeners(const struct config *cfg, char *err, size_t errlen) {
    return shared_fds != NULL || open_shared_fds(cfg, err, errlen);
}

void workers_close_listeners(void) {
    close_shared_fds();
}

struct worker *workers_start(int n, char *err, size_t errlen) {
    if (per_client == NULL && (per_client = client_table_new()) == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    struct snapshot *snap = snapshot_acquire();
    if (!workers_open_listeners(snap->cfg, err, errlen)) {
        snapshot_release(snap);
        return NULL;
    }
    struct worker *ws = calloc((size_t)n, sizeof(*ws));
    int ok = ws != NULL;
    if (!ok) {
        snprintf(err, errlen, "out of memory"); /* the contract: err says why */
    }
    int made = 0;
    for (; ok && made < n; made++) {
        ok = worker_init(&ws[made], made, snap->cfg, err, errlen);
        if (!ok) {
            worker_free(&ws[made]);
        } else {
            ws[made].generation = snap->generation;
        }
    }
    snapshot_release(snap);
    if (!ok) {
        for (int i = 0; i < made - 1; i++) {
            worker_free(&ws[i]);
        }
        free(ws);
        close_shared_fds();
        return NULL;
    }
    atomic_store(&workers_unwatched, 0);
    nworkers_watching = n;
    for (int i = 0; i < n; i++) {
        if (pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]) != 0) {
            log_error("event=fatal reason=\"cannot start worker thread\"");
            abort();
        }
    }
    return ws;
}

void workers_redis_stats(struct worker *ws, int n, struct redis_memory_stats *sum,
                         unsigned *clients, unsigned *up) {
    memset(sum, 0, sizeof(*sum));
    *clients = *up = 0;
    for (int i = 0; i < n; i++) {
        /* The client the current configuration uses: one kept after a
         * reload removed Redis is not "down". */
        struct redis_memory *r = __atomic_load_n(&ws[i].host.redis, __ATOMIC_ACQUIRE);
        if (r == NULL) {
            continue;
        }
        struct redis_memory_stats st;
        redis_memory_get_stats(r, &st);
        (*clients)++;
        *up += st.up != 0;
        sum->lookups += st.lookups;
        sum->remembered += st.remembered;
        sum->late += st.late;
        sum->errors += st.errors;
        sum->reconnects += st.reconnects;
        sum->unavailable += st.unavailable;
    }
}

void workers_stop(struct worker *ws, int n) {
    for (int i = 0; i < n; i++) {
        atomic_store(&ws[i].stop_requested, 1);
        ev_async_send(ws[i].loop, &ws[i].wakeup);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(ws[i].thread, NULL);
        worker_free(&ws[i]);
    }
    free(ws);
    close_shared_fds(); /* already closed unless a worker never stopped */
    client_table_free(per_client);
    per_client = NULL;
}
