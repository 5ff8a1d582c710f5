/*
 * client.c - smtp-load's client run: workers, slots, the stop, the report.
 *
 * The main thread builds everything (one loop, SSL_CTX and slots per
 * worker) before any thread starts, so a failure to start is reported
 * at once; then it only waits: for SIGINT/SIGTERM (blocked in every
 * thread, taken with sigtimedwait), for -d, for --hold, and for the
 * workers to end. To stop, it sets run->stopping and wakes each loop
 * with its ev_async; connections finish the message under way and QUIT.
 * Only completed work is counted. See client_int.h for the slots.
 */
#include "client.h"

#include <errno.h>
#include <openssl/err.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "client_int.h"

/* claim takes up to |want| units of -n work. Returns how many (0: the
 * work is all handed out). Without -n there is no limit. */
static uint64_t claim(struct run *r, uint64_t want) {
    uint64_t total = r->o->count;
    if (total == 0) {
        return want;
    }
    uint64_t cur = atomic_load(&r->claimed);
    for (;;) {
        if (cur >= total) {
            return 0;
        }
        uint64_t k = total - cur < want ? total - cur : want;
        if (atomic_compare_exchange_weak(&r->claimed, &cur, cur + k)) {
            return k;
        }
    }
}

void worker_maybe_end(struct worker *w) {
    int idle = w->run->o->idle != 0;
    if (w->live != 0 || w->pending != 0) {
        return;
    }
    /* An --idle worker waits for the stop even with nothing open: the
     * run holds until SIGTERM whatever opened. */
    if (idle && !w->stop_seen) {
        return;
    }
    ev_break(w->loop, EVBREAK_ALL);
}

/* slot_start opens |slot|'s next connection, if there is work. */
static void slot_start(struct ev_loop *loop, ev_timer *t, int revents) {
    struct slot *slot = t->data;
    struct worker *w = slot->w;
    const struct load_opts *o = w->run->o;
    (void)loop;
    (void)revents;
    slot->scheduled = 0;
    w->pending--;
    if (atomic_load(&w->run->stopping)) {
        worker_maybe_end(w);
        return;
    }
    if (o->idle != 0) {
        if (w->idle_started < w->idle_quota) {
            w->idle_started++;
            conn_open(w, slot, 0);
        }
        worker_maybe_end(w);
        return;
    }
    uint64_t k = claim(w->run, o->messages == 0 ? 1 : o->messages);
    if (k != 0) {
        conn_open(w, slot, o->messages == 0 ? 0 : k);
    }
    worker_maybe_end(w);
}

void worker_slot_next(struct slot *slot, double delay) {
    struct worker *w = slot->w;
    if (slot->scheduled) {
        return;
    }
    slot->scheduled = 1;
    w->pending++;
    ev_timer_set(&slot->restart, delay, 0);
    ev_timer_start(w->loop, &slot->restart);
}

void worker_idle_attempt_done(struct worker *w) {
    struct run *r = w->run;
    uint64_t done = atomic_fetch_add(&r->idle_done, 1) + 1;
    if (done == r->o->idle && !atomic_exchange(&r->idle_reported, 1)) {
        printf("idle-ready %llu\n", (unsigned long long)atomic_load(&r->idle_open));
        fflush(stdout);
    }
}

/* on_wake runs in a worker when the main thread stops the run. */
static void on_wake(struct ev_loop *loop, ev_async *a, int revents) {
    struct worker *w = a->data;
    (void)loop;
    (void)revents;
    if (!atomic_load(&w->run->stopping) || w->stop_seen) {
        return;
    }
    w->stop_seen = 1;
    conn_stop_idle(w);
    worker_maybe_end(w);
}

/* make_ctx builds a worker's client SSL_CTX: one version, no
 * verification, the session callback with --resume. */
static SSL_CTX *make_ctx(const struct load_opts *o) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    if (ctx == NULL) {
        return NULL;
    }
    uint16_t v = o->tls_version == 12 ? TLS1_2_VERSION : TLS1_3_VERSION;
    if (!SSL_CTX_set_min_proto_version(ctx, v) || !SSL_CTX_set_max_proto_version(ctx, v)) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (o->resume) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT);
        SSL_CTX_sess_set_new_cb(ctx, conn_new_session);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
    return ctx;
}

/* share returns worker |i|'s part of |total| split over |n| workers. */
static uint64_t share(uint64_t total, unsigned n, unsigned i) {
    return total / n + (i < total % n ? 1 : 0);
}

/* worker_new builds worker |i| of |n|. Returns NULL when it cannot. */
static struct worker *worker_new(struct run *r, unsigned i, unsigned n) {
    struct worker *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return NULL;
    }
    w->run = r;
    w->index = i;
    w->nslots = (unsigned)share(r->o->connections, n, i);
    w->idle_quota = share(r->o->idle, n, i);
    w->loop = ev_loop_new(EVBACKEND_EPOLL);
    w->ctx = make_ctx(r->o);
    w->slots = calloc(w->nslots, sizeof(*w->slots));
    if (w->loop == NULL || w->ctx == NULL || w->slots == NULL) {
        return w; /* the caller sees the missing part and frees */
    }
    stats_init(&w->stats);
    ev_async_init(&w->wake, on_wake);
    w->wake.data = w;
    ev_async_start(w->loop, &w->wake);
    for (unsigned k = 0; k < w->nslots; k++) {
        w->slots[k].w = w;
        ev_init(&w->slots[k].restart, slot_start);
        w->slots[k].restart.data = &w->slots[k];
    }
    return w;
}

/* worker_free releases what worker_new made. */
static void worker_free(struct worker *w) {
    if (w == NULL) {
        return;
    }
    for (unsigned k = 0; w->slots != NULL && k < w->nslots; k++) {
        SSL_SESSION_free(w->slots[k].session);
    }
    free(w->slots);
    SSL_CTX_free(w->ctx);
    if (w->loop != NULL) {
        ev_loop_destroy(w->loop);
    }
    free(w);
}

/* worker_main runs one worker's loop until its work is done. */
static void *worker_main(void *arg) {
    struct worker *w = arg;
    for (unsigned k = 0; k < w->nslots; k++) {
        worker_slot_next(&w->slots[k], 0);
    }
    /* A loop with no slot would wait for nothing but a stop. */
    if (w->nslots > 0 || w->run->o->idle != 0) {
        ev_run(w->loop, 0);
    }
    w->end_ns = now_ns();
    atomic_fetch_sub(&w->run->workers_left, 1);
    return NULL;
}

/* stop_all asks every worker to stop (once). */
static void stop_all(struct run *r, struct worker **ws, unsigned n) {
    if (atomic_exchange(&r->stopping, 1)) {
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        ev_async_send(ws[i]->loop, &ws[i]->wake);
    }
}

/* wait_for_end is the main thread's part: signals, -d and --hold,
 * until the workers have all ended. */
static void wait_for_end(struct run *r, struct worker **ws, unsigned n, const sigset_t *sigs) {
    const struct load_opts *o = r->o;
    uint64_t ready_at = 0;
    struct timespec slice = {0, 20 * 1000 * 1000};
    while (atomic_load(&r->workers_left) > 0) {
        if (sigtimedwait(sigs, NULL, &slice) > 0) {
            stop_all(r, ws, n);
        }
        uint64_t now = now_ns();
        if (o->duration > 0 && now - r->start_ns >= (uint64_t)(o->duration * 1e9)) {
            stop_all(r, ws, n);
        }
        if (o->idle != 0 && ready_at == 0 && atomic_load(&r->idle_reported)) {
            ready_at = now;
        }
        if (o->hold > 0 && ready_at != 0 && now - ready_at >= (uint64_t)(o->hold * 1e9)) {
            stop_all(r, ws, n);
        }
    }
}

/* cpu_seconds returns this process's user and system CPU time. */
static void cpu_seconds(double *user, double *sys) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
    *sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* report merges the workers' counts and prints the report. Returns the
 * exit status. */
static int report(struct run *r, struct worker **ws, unsigned n, double u0, double s0) {
    struct load_stats *all = malloc(sizeof(*all));
    struct buffer out = {0};
    uint64_t end = r->start_ns;
    if (all == NULL) {
        return 1;
    }
    stats_init(all);
    for (unsigned i = 0; i < n; i++) {
        stats_merge(all, &ws[i]->stats);
        end = ws[i]->end_ns > end ? ws[i]->end_ns : end;
    }
    struct load_report rep = {.opts = r->o, .stats = all};
    rep.elapsed_s = (double)(end - r->start_ns) / 1e9;
    cpu_seconds(&rep.cpu_user_s, &rep.cpu_system_s);
    rep.cpu_user_s -= u0;
    rep.cpu_system_s -= s0;
    int ok = r->o->json ? report_json(&rep, &out) : report_text(&rep, &out);
    if (ok && out.len > 0) {
        fwrite(buffer_head(&out), 1, out.len, stdout);
        fflush(stdout);
    }
    int status = stats_errors(all) == 0 && ok ? 0 : 1;
    buffer_free(&out);
    free(all);
    return status;
}

/* start_workers builds and starts |n| workers. Returns 1, or 0 (those
 * built are in |ws|, none started). */
static int start_workers(struct run *r, struct worker **ws, unsigned n) {
    for (unsigned i = 0; i < n; i++) {
        ws[i] = worker_new(r, i, n);
        if (ws[i] == NULL || ws[i]->loop == NULL || ws[i]->ctx == NULL ||
            ws[i]->slots == NULL) {
            fprintf(stderr, "smtp-load: cannot set up worker %u (memory, epoll or TLS)\n", i);
            return 0;
        }
    }
    atomic_store(&r->workers_left, n);
    r->start_ns = now_ns();
    for (unsigned i = 0; i < n; i++) {
        if (pthread_create(&ws[i]->thread, NULL, worker_main, ws[i]) != 0) {
            fprintf(stderr, "smtp-load: cannot start thread %u\n", i);
            abort(); /* the started ones share |r|: nothing clean to do */
        }
    }
    return 1;
}

/* prepare_run resolves the target and builds the message. */
static int prepare_run(struct run *r, const struct load_opts *o) {
    char why[256];
    memset(r, 0, sizeof(*r));
    r->o = o;
    if (!net_resolve(o->target, &r->target, why, sizeof(why)) ||
        !msg_layout_init(&r->msg, o->size, o->from, o->to, o->ehlo, why, sizeof(why))) {
        fprintf(stderr, "smtp-load: %s\n", why);
        return 0;
    }
    return 1;
}

int client_run(const struct load_opts *o) {
    static struct run r;
    sigset_t sigs;
    double u0, s0;
    if (!prepare_run(&r, o)) {
        return 2;
    }
    uint64_t fds = net_raise_nofile();
    if (o->idle != 0 && fds < o->idle + 16) {
        fprintf(stderr, "smtp-load: --idle %llu needs as many descriptors; the limit is %llu\n",
                (unsigned long long)o->idle, (unsigned long long)fds);
    }
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    unsigned n = o->threads < o->connections ? o->threads : o->connections;
    struct worker **ws = calloc(n, sizeof(*ws));
    cpu_seconds(&u0, &s0);
    if (ws == NULL || !start_workers(&r, ws, n)) {
        return 1;
    }
    wait_for_end(&r, ws, n, &sigs);
    for (unsigned i = 0; i < n; i++) {
        pthread_join(ws[i]->thread, NULL);
    }
    int status = report(&r, ws, n, u0, s0);
    for (unsigned i = 0; i < n; i++) {
        worker_free(ws[i]);
    }
    free(ws);
    msg_layout_free(&r.msg);
    return status;
}
