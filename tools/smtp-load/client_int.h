/*
 * client_int.h - what the client's run (client.c) and its connections
 * (conn.c) share: the run, the workers, the slots.
 *
 * A run has --threads workers; each owns a libev loop, an SSL_CTX and
 * its share of the -c connection slots, and counts into its own
 * load_stats. A slot runs one connection at a time; when it ends the
 * slot starts the next one (from a zero timer, so a connection that
 * fails at once never recurses) until the run's work is claimed or the
 * run is stopping. With --idle the slots are the openers: a session
 * that reaches idle leaves its slot, which opens the next. The only
 * state shared between threads is in struct run, atomic.
 */
#ifndef SMTP_LOAD_CLIENT_INT_H
#define SMTP_LOAD_CLIENT_INT_H

#include <ev.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "core/buffer.h"
#include "message.h"
#include "net.h"
#include "options.h"
#include "protocol/smtp_reply.h"
#include "report.h"

#define READ_CHUNK 65536

struct run {
    const struct load_opts *o;
    struct msg_layout msg;
    struct net_target target;
    uint64_t start_ns;
    atomic_uint_fast64_t claimed;   /* -n work handed out (messages or, -m 0, sessions) */
    atomic_int stopping;            /* -d, a signal or --hold: no new work */
    atomic_uint_fast64_t src_next;  /* --source-range turn */
    atomic_uint_fast64_t idle_open; /* sessions idle now */
    atomic_uint_fast64_t idle_done; /* --idle attempts finished (idle or failed) */
    atomic_int idle_reported;       /* "idle-ready" printed */
    atomic_uint workers_left;
};

struct worker;
struct conn;

struct slot {
    struct worker *w;
    struct conn *conn;    /* the connection it runs (or opens), NULL */
    SSL_SESSION *session; /* --resume: the last one a connection got */
    ev_timer restart;
    int scheduled;
};

struct worker {
    struct run *run;
    unsigned index;
    pthread_t thread;
    struct ev_loop *loop;
    ev_async wake;
    SSL_CTX *ctx;
    struct slot *slots;
    unsigned nslots;
    unsigned pending; /* slots whose restart timer runs */
    uint64_t idle_quota, idle_started;
    struct conn *conns; /* every live connection */
    unsigned live;
    uint64_t msg_seq; /* Message-ID sequence */
    uint64_t end_ns;
    int stop_seen;
    struct load_stats stats;
    char rbuf[READ_CHUNK];
};

/* conn_open starts a connection for |slot| that will send |messages|
 * messages (idle mode: none, it stays open). Failures are counted and
 * the slot goes on. */
void conn_open(struct worker *w, struct slot *slot, uint64_t messages);

/* conn_stop_idle sends QUIT on every idle connection of |w|. */
void conn_stop_idle(struct worker *w);

/* worker_slot_next schedules |slot|'s next connection in |delay|
 * seconds (client.c). */
void worker_slot_next(struct slot *slot, double delay);

/* worker_idle_attempt_done counts one --idle attempt as finished (idle
 * or failed) and prints "idle-ready K" after the last one, K being the
 * sessions idle then. */
void worker_idle_attempt_done(struct worker *w);

/* worker_maybe_end stops |w|'s loop when it has nothing left to do. */
void worker_maybe_end(struct worker *w);

/* conn_new_session is the SSL_CTX new-session callback (--resume): the
 * connection's slot keeps |session| for its next connection. */
int conn_new_session(SSL *ssl, SSL_SESSION *session);

#endif
