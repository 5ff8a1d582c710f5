/*
 * sink.c - the sink's sockets and loops; the conversation itself is
 * sink_proto.c.
 *
 * Each of the -t threads runs its own libev loop (epoll) with its own
 * listening socket: with more than one, every socket is bound to the
 * same port with SO_REUSEPORT, so the kernel spreads new connections
 * over the threads and each accept happens in the loop that serves the
 * connection. One shared socket watched by every loop (what the proxy
 * does) would wake all loops for each connection and let them race
 * for it; a benchmark backend should cost as little as possible.
 *
 * A connection costs its descriptor, its watcher and a few counters:
 * input waiting for the end of a command line and replies the socket
 * did not take are in buffers that exist only while non-empty (a
 * blocked client stops being read until its replies are gone). Replies
 * are built in the thread's scratch area and sent at once.
 */
#include "sink.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "core/buffer.h"
#include "net.h"
#include "sink_proto.h"

#define SINK_READ 65536
#define SINK_OUT 16384

struct sink_worker {
    pthread_t thread;
    struct ev_loop *loop;
    ev_async wake;
    int lfd;
    ev_io accept_io;
    ev_timer accept_pause; /* out of descriptors: accept again later */
    uint64_t sessions, messages, message_bytes;
    struct sink_conn *conns; /* open connections, freed at the end */
    char rbuf[SINK_READ];
    char obuf[SINK_OUT];
};

struct sink_conn {
    struct sink_worker *w;
    struct sink_conn *prev, *next;
    int fd;
    int closing; /* close once the queued replies are sent */
    ev_io io;
    struct sink_session s;
    struct buffer in;
    struct buffer out;
};

static void on_conn(struct ev_loop *loop, ev_io *io, int revents);

/* conn_close ends a connection. */
static void conn_close(struct sink_conn *c) {
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        c->w->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    ev_io_stop(c->w->loop, &c->io);
    close(c->fd);
    buffer_free(&c->in);
    buffer_free(&c->out);
    free(c);
}

/* rewatch waits for writability while replies are queued, else for input. */
static void rewatch(struct sink_conn *c) {
    int ev = c->out.len > 0 ? EV_WRITE : EV_READ;
    if ((c->io.events & (EV_READ | EV_WRITE)) == ev && ev_is_active(&c->io)) {
        return;
    }
    ev_io_stop(c->w->loop, &c->io);
    ev_io_set(&c->io, c->fd, ev);
    ev_io_start(c->w->loop, &c->io);
}

/* send_out writes |n| octets of replies; what the socket does not take
 * is queued. Returns 1, or 0 when the connection broke (closed). */
static int send_out(struct sink_conn *c, const char *p, size_t n) {
    ssize_t w = 0;
    if (c->out.len == 0) {
        w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
            conn_close(c);
            return 0;
        }
        w = w < 0 ? 0 : w;
    }
    if ((size_t)w < n && !buffer_append(&c->out, p + w, n - (size_t)w)) {
        conn_close(c);
        return 0;
    }
    return 1;
}

/* account moves the session's message counts to the worker's. */
static void account(struct sink_conn *c) {
    c->w->messages += c->s.messages;
    c->w->message_bytes += c->s.message_bytes;
    c->s.messages = 0;
    c->s.message_bytes = 0;
}

/* serve runs |p| (|n| octets) through the conversation, sending the
 * replies as they are made. Returns the octets consumed (fewer than |n|
 * when a line is incomplete or the socket stopped taking replies), or
 * -1 when the connection is gone. */
static ssize_t serve(struct sink_conn *c, const char *p, size_t n) {
    size_t pos = 0;
    for (;;) {
        size_t olen = 0, used = 0;
        enum sink_result r =
            sink_feed(&c->s, p + pos, n - pos, c->w->obuf, SINK_OUT, &olen, &used);
        pos += used;
        account(c);
        if (olen > 0 && !send_out(c, c->w->obuf, olen)) {
            return -1;
        }
        if (r == SINK_CLOSE) {
            c->closing = 1;
            if (c->out.len == 0) {
                conn_close(c);
                return -1;
            }
            return (ssize_t)n; /* the rest after QUIT is not read */
        }
        if (r == SINK_MORE || c->out.len > 0) {
            return (ssize_t)pos;
        }
    }
}

/* serve_held runs the input held in c->in. Returns 1, or 0 when the
 * connection is gone. */
static int serve_held(struct sink_conn *c) {
    ssize_t used = serve(c, buffer_head(&c->in), c->in.len);
    if (used < 0) {
        return 0;
    }
    buffer_consume(&c->in, (size_t)used);
    return 1;
}

/* on_read reads once and serves what came. */
static void on_read(struct sink_conn *c) {
    char *buf = c->w->rbuf;
    ssize_t n = recv(c->fd, buf, SINK_READ, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (n <= 0) {
        conn_close(c);
        return;
    }
    if (c->in.len > 0) {
        if (!buffer_append(&c->in, buf, (size_t)n)) {
            conn_close(c);
            return;
        }
        if (!serve_held(c)) {
            return;
        }
    } else {
        ssize_t used = serve(c, buf, (size_t)n);
        if (used < 0) {
            return;
        }
        if (used < n && !buffer_append(&c->in, buf + used, (size_t)(n - used))) {
            conn_close(c);
            return;
        }
    }
    rewatch(c);
}

/* on_write sends queued replies; once they are gone, reading resumes
 * with whatever input waited. */
static void on_write(struct sink_conn *c) {
    ssize_t w = send(c->fd, buffer_head(&c->out), c->out.len, MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN && errno != EINTR) {
        conn_close(c);
        return;
    }
    if (w > 0) {
        buffer_consume(&c->out, (size_t)w);
    }
    if (c->out.len > 0) {
        return;
    }
    if (c->closing) {
        conn_close(c);
        return;
    }
    if (c->in.len > 0 && !serve_held(c)) {
        return;
    }
    rewatch(c);
}

/* on_conn serves a connection's readiness: replies out, or input in. */
static void on_conn(struct ev_loop *loop, ev_io *io, int revents) {
    struct sink_conn *c = io->data;
    (void)loop;
    if (revents & EV_WRITE) {
        on_write(c);
    } else if (revents & EV_READ) {
        on_read(c);
    }
}

/* conn_new greets a new connection and starts reading it. */
static void conn_new(struct sink_worker *w, int fd) {
    int one = 1;
    struct sink_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return;
    }
    c->w = w;
    c->fd = fd;
    c->next = w->conns;
    if (w->conns != NULL) {
        w->conns->prev = c;
    }
    w->conns = c;
    ev_io_init(&c->io, on_conn, fd, EV_READ);
    c->io.data = c;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    w->sessions++;
    if (send_out(c, SINK_GREETING, strlen(SINK_GREETING))) {
        rewatch(c);
    }
}

/* on_accept takes new connections from the worker's listener. */
static void on_accept(struct ev_loop *loop, ev_io *io, int revents) {
    struct sink_worker *w = io->data;
    (void)revents;
    /* A bounded batch, so one busy listener cannot starve the sessions. */
    for (int i = 0; i < 64; i++) {
        int fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            conn_new(w, fd);
            continue;
        }
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            /* The listener would stay readable: pause it instead of spinning. */
            ev_io_stop(loop, &w->accept_io);
            ev_timer_set(&w->accept_pause, 0.1, 0);
            ev_timer_start(loop, &w->accept_pause);
        }
        return;
    }
}

/* on_accept_pause resumes accepting after a shortage of descriptors. */
static void on_accept_pause(struct ev_loop *loop, ev_timer *t, int revents) {
    struct sink_worker *w = t->data;
    (void)revents;
    ev_io_start(loop, &w->accept_io);
}

/* on_wake ends the worker's loop: the sink is stopping. */
static void on_wake(struct ev_loop *loop, ev_async *a, int revents) {
    (void)a;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

/* sink_main runs one worker's loop (its thread). */
static void *sink_main(void *arg) {
    struct sink_worker *w = arg;
    ev_run(w->loop, 0);
    return NULL;
}

/* write_port_file writes |port| to |path| through a temporary file and
 * rename, so a reader never sees a partial number. Returns 1 or 0. */
static int write_port_file(const char *path, unsigned port) {
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        return 0;
    }
    int ok = fprintf(f, "%u\n", port) > 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return 0;
    }
    return 1;
}

/* open_listeners gives every worker its socket on the same port (the
 * first one's, when the port asked for is 0). Returns 1 or 0. */
static int open_listeners(const struct load_opts *o, struct sink_worker *ws, unsigned n,
                          struct net_target *bound) {
    char why[256];
    if (!net_resolve(o->listen, bound, why, sizeof(why))) {
        fprintf(stderr, "smtp-load --sink: %s\n", why);
        return 0;
    }
    for (unsigned i = 0; i < n; i++) {
        ws[i].lfd = net_listen(bound, n > 1, why, sizeof(why));
        if (ws[i].lfd < 0) {
            fprintf(stderr, "smtp-load --sink: %s: %s\n", o->listen, why);
            return 0;
        }
        if (i == 0) {
            /* The others take the port the kernel chose for the first. */
            bound->len = sizeof(bound->ss);
            getsockname(ws[0].lfd, (struct sockaddr *)&bound->ss, &bound->len);
        }
    }
    return 1;
}

/* start_loops makes each worker's loop and watchers. Returns 1 or 0. */
static int start_loops(struct sink_worker *ws, unsigned n) {
    for (unsigned i = 0; i < n; i++) {
        struct sink_worker *w = &ws[i];
        w->loop = ev_loop_new(EVBACKEND_EPOLL);
        if (w->loop == NULL) {
            fprintf(stderr, "smtp-load --sink: no epoll loop\n");
            return 0;
        }
        ev_io_init(&w->accept_io, on_accept, w->lfd, EV_READ);
        w->accept_io.data = w;
        ev_io_start(w->loop, &w->accept_io);
        ev_init(&w->accept_pause, on_accept_pause);
        w->accept_pause.data = w;
        ev_async_init(&w->wake, on_wake);
        ev_async_start(w->loop, &w->wake);
    }
    return 1;
}

/* free_workers closes every connection and listener and frees the
 * loops (the threads have ended). */
static void free_workers(struct sink_worker *ws, unsigned n) {
    for (unsigned i = 0; i < n; i++) {
        while (ws[i].conns != NULL) {
            conn_close(ws[i].conns);
        }
        if (ws[i].loop != NULL) {
            ev_loop_destroy(ws[i].loop);
        }
        if (ws[i].lfd > 0) {
            close(ws[i].lfd);
        }
    }
    free(ws);
}

/* print_counts writes the totals of every worker. */
static void print_counts(const struct load_opts *o, struct sink_worker *ws, unsigned n) {
    unsigned long long s = 0, m = 0, b = 0;
    for (unsigned i = 0; i < n; i++) {
        s += ws[i].sessions;
        m += ws[i].messages;
        b += ws[i].message_bytes;
    }
    if (o->json) {
        printf("{\"sessions\":%llu,\"messages\":%llu,\"message_bytes\":%llu}\n", s, m, b);
    } else {
        printf("sessions %llu\nmessages %llu\nmessage_bytes %llu\n", s, m, b);
    }
    fflush(stdout);
}

int sink_run(const struct load_opts *o) {
    unsigned n = o->threads;
    struct net_target bound;
    char where[300];
    sigset_t sigs;
    int sig;
    struct sink_worker *ws = calloc(n, sizeof(*ws));
    net_raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    if (ws == NULL || !open_listeners(o, ws, n, &bound) || !start_loops(ws, n)) {
        return 1;
    }
    net_format(&bound.ss, where, sizeof(where));
    unsigned port = bound.ss.ss_family == AF_INET6
                        ? ntohs(((struct sockaddr_in6 *)&bound.ss)->sin6_port)
                        : ntohs(((struct sockaddr_in *)&bound.ss)->sin_port);
    if (o->port_file != NULL && !write_port_file(o->port_file, port)) {
        fprintf(stderr, "smtp-load --sink: cannot write %s\n", o->port_file);
        return 1;
    }
    printf("listening %s\n", where);
    fflush(stdout);
    for (unsigned i = 0; i < n; i++) {
        if (pthread_create(&ws[i].thread, NULL, sink_main, &ws[i]) != 0) {
            fprintf(stderr, "smtp-load --sink: cannot start thread %u\n", i);
            return 1;
        }
    }
    while (sigwait(&sigs, &sig) != 0) {
    }
    for (unsigned i = 0; i < n; i++) {
        ev_async_send(ws[i].loop, &ws[i].wake);
        pthread_join(ws[i].thread, NULL);
    }
    print_counts(o, ws, n);
    free_workers(ws, n);
    return 0;
}
