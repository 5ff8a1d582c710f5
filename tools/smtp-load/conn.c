/*
 * conn.c - one client connection of smtp-load: connect, greeting, TLS
 * (implicit or STARTTLS), EHLO, the transactions, QUIT; timed and
 * counted into its worker's stats.
 *
 * One state (the step: what the connection waits for) and one event
 * handler: every readiness event first flushes what is queued, then
 * reads and acts on whole replies (protocol/smtp_reply.c). Output is
 * a small per-connection buffer followed by a "tail" pointing into the
 * run's shared message bytes, so the message body is never copied for
 * plain connections; under TLS the header and the first record's worth
 * of body go out as one SSL_write, so a small message is one record.
 * Buffers exist only while they hold bytes: an idle session holds none.
 * Every function that can end the connection returns 0 when it did
 * (the connection is freed), 1 when it is still there.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "client_int.h"
#include "protocol/ehlo.h"

enum step {
    S_CONNECT = 0,
    S_HANDSHAKE,
    S_GREETING,
    S_EHLO,
    S_STARTTLS,
    S_MAIL,
    S_RCPT,
    S_DATA,
    S_DOT,
    S_QUIT,
    S_IDLE,
};

/* The error a failure in each step counts as. */
static const enum err_kind STEP_ERR[] = {
    ERR_CONNECT, ERR_TLS, ERR_GREETING, ERR_EHLO, ERR_STARTTLS, ERR_MAIL,
    ERR_RCPT,    ERR_DATA, ERR_DOT,     ERR_QUIT, ERR_CLOSED,
};

/* One TLS record's plaintext: what a message's first write carries. */
#define RECORD 16384

struct conn {
    struct worker *w;
    struct slot *slot;
    struct conn *prev, *next;
    int fd;
    ev_io io;
    ev_timer timer;
    SSL *ssl;
    enum step step;
    int events;           /* what io watches now */
    int hs_wants;         /* EV_READ/EV_WRITE the handshake waits for */
    int wr_wants;         /* what a blocked write waits for (TLS may need a read) */
    int rd_wants;         /* EV_WRITE when SSL_read needs to write first */
    uint64_t msgs_left;
    uint64_t t0;          /* start of the phase being timed */
    uint64_t t_data;
    struct smtp_reply reply;
    struct buffer in;     /* a reply line not complete yet */
    struct buffer out;    /* queued bytes, sent before the tail */
    const char *tail;     /* then these shared bytes */
    size_t tail_len;
    unsigned tls_on : 1;
    unsigned pipelining : 1;
    unsigned attempt : 1; /* --idle: this open is not counted yet */
    unsigned backoff : 1; /* the connect failed: the slot waits a little */
};

static void on_io(struct ev_loop *loop, ev_io *io, int revents);
static int drain(struct conn *c);

/* conn_free closes and frees |c| and lets its slot go on. */
static void conn_free(struct conn *c) {
    struct worker *w = c->w;
    ev_io_stop(w->loop, &c->io);
    ev_timer_stop(w->loop, &c->timer);
    if (c->ssl != NULL) {
        SSL_free(c->ssl);
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    buffer_free(&c->in);
    buffer_free(&c->out);
    smtp_reply_reset(&c->reply);
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        w->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    w->live--;
    if (c->slot->conn == c) {
        c->slot->conn = NULL;
        /* A server that refuses would otherwise be retried in a busy loop. */
        worker_slot_next(c->slot, c->backoff ? 0.01 : 0);
    }
    free(c);
    worker_maybe_end(w);
}

/* fail counts an error of |kind|, ends the connection and returns 0. */
static int fail(struct conn *c, enum err_kind kind) {
    c->w->stats.errors[kind]++;
    c->backoff = kind == ERR_CONNECT;
    ERR_clear_error();
    if (c->attempt) {
        c->attempt = 0;
        worker_idle_attempt_done(c->w);
    }
    if (c->step == S_IDLE) {
        atomic_fetch_sub(&c->w->run->idle_open, 1);
    }
    conn_free(c);
    return 0;
}

/* fail_step fails |c| as its current step. */
static int fail_step(struct conn *c) {
    return fail(c, STEP_ERR[c->step]);
}

/* set_step moves |c| to |step| and restarts the step's timeout. */
static void set_step(struct conn *c, enum step step) {
    c->step = step;
    if (step == S_IDLE) {
        ev_timer_stop(c->w->loop, &c->timer);
    } else {
        ev_timer_again(c->w->loop, &c->timer);
    }
}

/* watch makes the io watcher wait for |events|. */
static void watch(struct conn *c, int events) {
    if (events == c->events) {
        return;
    }
    ev_io_stop(c->w->loop, &c->io);
    ev_io_set(&c->io, c->fd, events);
    if (events != 0) {
        ev_io_start(c->w->loop, &c->io);
    }
    c->events = events;
}

/* ssl_want says what |ret| of an SSL call on |c| waits for: EV_READ or
 * EV_WRITE to try again later, 0 for a failure or the end. */
static int ssl_want(struct conn *c, int ret) {
    int err = SSL_get_error(c->ssl, ret);
    if (err == SSL_ERROR_WANT_READ) {
        return EV_READ;
    }
    if (err == SSL_ERROR_WANT_WRITE) {
        return EV_WRITE;
    }
    return 0;
}

/* write_some sends queued bytes once. Returns the octets sent, 0 when
 * the socket is full, -1 on failure. */
static ssize_t write_some(struct conn *c) {
    if (!c->tls_on) {
        struct iovec iov[2];
        int n = 0;
        if (c->out.len > 0) {
            iov[n++] = (struct iovec){(void *)buffer_head(&c->out), c->out.len};
        }
        if (c->tail_len > 0) {
            iov[n++] = (struct iovec){(void *)c->tail, c->tail_len};
        }
        ssize_t r = writev(c->fd, iov, n);
        if (r < 0) {
            c->wr_wants = EV_WRITE;
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        }
        return r;
    }
    const char *p = c->out.len > 0 ? buffer_head(&c->out) : c->tail;
    size_t len = c->out.len > 0 ? c->out.len : c->tail_len;
    int r = SSL_write(c->ssl, p, len > (1u << 30) ? (1 << 30) : (int)len);
    if (r > 0) {
        return r;
    }
    c->wr_wants = ssl_want(c, r);
    return c->wr_wants != 0 ? 0 : -1;
}

/* flush sends what is queued until done or the socket is full. */
static int flush(struct conn *c) {
    c->wr_wants = 0;
    while (c->out.len > 0 || c->tail_len > 0) {
        ssize_t n = write_some(c);
        if (n < 0) {
            return fail(c, ERR_CLOSED);
        }
        if (n == 0) {
            return 1;
        }
        size_t k = (size_t)n;
        size_t from_out = k < c->out.len ? k : c->out.len;
        buffer_consume(&c->out, from_out);
        k -= from_out;
        c->tail += k;
        c->tail_len -= k;
    }
    return 1;
}

/* rewatch sets the io watcher from the step and what is queued. */
static void rewatch(struct conn *c) {
    int ev = EV_READ | c->rd_wants;
    if (c->step == S_CONNECT) {
        ev = EV_WRITE;
    } else if (c->step == S_HANDSHAKE) {
        ev = c->hs_wants;
    } else if (c->out.len > 0 || c->tail_len > 0) {
        ev |= c->wr_wants;
    }
    watch(c, ev);
}

/* send_text queues |s| and sends it. */
static int send_text(struct conn *c, const char *s) {
    if (!buffer_append_str(&c->out, s)) {
        return fail(c, ERR_CLOSED);
    }
    return flush(c);
}

/* send_cmd queues "VERB arg\r\n" built from |fmt| and sends it. */
__attribute__((format(printf, 2, 3))) static int send_cmd(struct conn *c, const char *fmt,
                                                         ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    return send_text(c, line);
}

/* record times phase |p| as ending now. */
static void record(struct conn *c, enum lat_phase p, uint64_t since) {
    hist_record(&c->w->stats.lat[p], now_ns() - since);
}

/* send_message queues the header block and the shared body, then sends. */
static int send_message(struct conn *c) {
    const struct msg_layout *m = &c->w->run->msg;
    /* Under TLS the first record's worth of body is copied after the header. */
    char *hdr = buffer_reserve(&c->out, MSG_HEADER_MAX + (c->tls_on ? RECORD : 0));
    if (hdr == NULL) {
        return fail(c, ERR_DATA);
    }
    size_t n = msg_header(m, c->w->index, c->w->msg_seq++, (int64_t)ev_now(c->w->loop), hdr);
    buffer_commit(&c->out, n);
    c->tail = m->wire;
    c->tail_len = m->wire_len;
    if (c->tls_on && n < RECORD) {
        /* Fill the first record: one SSL_write, one record, one syscall
         * for a small message. */
        size_t k = RECORD - n < c->tail_len ? RECORD - n : c->tail_len;
        memcpy(hdr + n, c->tail, k);
        buffer_commit(&c->out, k);
        c->tail += k;
        c->tail_len -= k;
    }
    set_step(c, S_DOT);
    return flush(c);
}

/* next_message starts the next transaction, or QUIT when none is left
 * or the run is stopping. */
static int next_message(struct conn *c) {
    const struct load_opts *o = c->w->run->o;
    if (c->msgs_left == 0 || atomic_load(&c->w->run->stopping)) {
        set_step(c, S_QUIT);
        return send_text(c, "QUIT\r\n");
    }
    c->msgs_left--;
    set_step(c, S_MAIL);
    if (c->pipelining) {
        c->t_data = now_ns();
        return send_cmd(c, "MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n", o->from, o->to);
    }
    return send_cmd(c, "MAIL FROM:<%s>\r\n", o->from);
}

/* ready is reached after the (last) EHLO: transactions, or idling. */
static int ready(struct conn *c) {
    struct worker *w = c->w;
    if (w->run->o->idle == 0) {
        return next_message(c);
    }
    set_step(c, S_IDLE);
    atomic_fetch_add(&w->run->idle_open, 1);
    c->attempt = 0;
    worker_idle_attempt_done(w);
    /* The session no longer needs its slot: the slot opens the next. */
    c->slot->conn = NULL;
    worker_slot_next(c->slot, 0);
    if (atomic_load(&w->run->stopping)) {
        atomic_fetch_sub(&w->run->idle_open, 1);
        set_step(c, S_QUIT);
        return send_text(c, "QUIT\r\n");
    }
    return 1;
}

/* send_ehlo sends EHLO and waits for its reply. */
static int send_ehlo(struct conn *c) {
    set_step(c, S_EHLO);
    return send_cmd(c, "EHLO %s\r\n", c->w->run->o->ehlo);
}

/* handshake_done counts the handshake and moves on: the greeting after
 * implicit TLS, EHLO again after STARTTLS. */
static int handshake_done(struct conn *c) {
    struct load_stats *st = &c->w->stats;
    record(c, LAT_HANDSHAKE, c->t0);
    st->handshakes++;
    if (SSL_session_reused(c->ssl)) {
        st->resumed++;
    }
    c->tls_on = 1;
    if (c->w->run->o->mode == MODE_TLS) {
        c->t0 = now_ns();
        set_step(c, S_GREETING);
        /* The greeting may have come with the last handshake flight. */
        return drain(c);
    }
    return send_ehlo(c);
}

/* handshake drives SSL_do_handshake. */
static int handshake(struct conn *c) {
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        return handshake_done(c);
    }
    c->hs_wants = ssl_want(c, r);
    return c->hs_wants != 0 ? 1 : fail(c, ERR_TLS);
}

int conn_new_session(SSL *ssl, SSL_SESSION *session) {
    struct conn *c = SSL_get_app_data(ssl);
    struct slot *slot = c->slot;
    /* TLS 1.3 tickets come after the handshake, one or more: the last
     * one is offered next (BoringSSL clients use a ticket once). */
    if (slot->session != NULL) {
        SSL_SESSION_free(slot->session);
    }
    slot->session = session;
    return 1;
}

/* start_tls makes the SSL object and sends the ClientHello. */
static int start_tls(struct conn *c) {
    struct worker *w = c->w;
    const struct load_opts *o = w->run->o;
    c->ssl = SSL_new(w->ctx);
    if (c->ssl == NULL || !SSL_set_fd(c->ssl, c->fd)) {
        return fail(c, ERR_TLS);
    }
    SSL_set_connect_state(c->ssl);
    SSL_set_app_data(c->ssl, c);
    if (o->sni != NULL) {
        SSL_set_tlsext_host_name(c->ssl, o->sni);
    }
    if (o->resume && c->slot->session != NULL) {
        SSL_set_session(c->ssl, c->slot->session);
    }
    set_step(c, S_HANDSHAKE);
    c->t0 = now_ns();
    return handshake(c);
}

/* on_ehlo acts on the EHLO reply: STARTTLS first if asked for, else the
 * session is ready. */
static int on_ehlo(struct conn *c) {
    const struct load_opts *o = c->w->run->o;
    unsigned ext = ehlo_extensions(buffer_head(&c->reply.text), c->reply.text.len);
    c->pipelining = o->pipelining && (ext & EHLO_PIPELINING) != 0;
    if (o->mode == MODE_STARTTLS && !c->tls_on) {
        set_step(c, S_STARTTLS);
        return send_text(c, "STARTTLS\r\n");
    }
    return ready(c);
}

/* on_done ends a session after QUIT's reply. */
static int on_done(struct conn *c) {
    c->w->stats.sessions++;
    conn_free(c);
    return 0;
}

/* on_reply acts on the complete reply with |code| for the current step. */
static int on_reply(struct conn *c, int code) {
    struct load_stats *st = &c->w->stats;
    int ok = code / 100 == 2;
    switch (c->step) {
    case S_GREETING:
        if (code != 220) {
            return fail_step(c);
        }
        record(c, LAT_GREETING, c->t0);
        return send_ehlo(c);
    case S_EHLO:
        return ok ? on_ehlo(c) : fail_step(c);
    case S_STARTTLS:
        return code == 220 ? start_tls(c) : fail_step(c);
    case S_MAIL:
        if (!ok) {
            return fail_step(c);
        }
        set_step(c, S_RCPT);
        return c->pipelining ? 1 : send_cmd(c, "RCPT TO:<%s>\r\n", c->w->run->o->to);
    case S_RCPT:
        if (!ok) {
            return fail_step(c);
        }
        set_step(c, S_DATA);
        if (c->pipelining) {
            return 1;
        }
        c->t_data = now_ns();
        return send_text(c, "DATA\r\n");
    case S_DATA:
        return code == 354 ? send_message(c) : fail_step(c);
    case S_DOT:
        if (!ok) {
            return fail_step(c);
        }
        record(c, LAT_DATA, c->t_data);
        st->messages++;
        st->message_bytes += c->w->run->msg.size;
        return next_message(c);
    case S_QUIT:
        return ok ? on_done(c) : fail_step(c);
    default:
        /* A reply nobody asked for (an idle session's 421): the server
         * is ending the session. */
        return fail(c, ERR_CLOSED);
    }
}

/* feed parses replies from |p| (|n| octets) and acts on each. Returns 0
 * when the connection ended; *out_used gets the octets consumed. */
static int feed(struct conn *c, const char *p, size_t n, size_t *out_used) {
    size_t pos = 0;
    *out_used = 0;
    while (pos < n) {
        size_t used = 0;
        enum reply_status st = smtp_reply_feed(&c->reply, p + pos, n - pos, &used);
        pos += used;
        *out_used = pos;
        if (st == REPLY_BAD) {
            return fail_step(c);
        }
        if (st == REPLY_INCOMPLETE) {
            return 1;
        }
        int code = c->reply.code;
        int alive = on_reply(c, code);
        if (!alive) {
            return 0;
        }
        smtp_reply_reset(&c->reply);
        if (c->step == S_HANDSHAKE) {
            /* Nothing may follow STARTTLS's 220 in plaintext. */
            *out_used = n;
            return 1;
        }
    }
    return 1;
}

/* take consumes |n| read octets: straight from the read chunk when no
 * partial line is waiting, else after it. The unused end is kept. */
static int take(struct conn *c, const char *p, size_t n) {
    size_t used;
    if (c->in.len == 0) {
        if (!feed(c, p, n, &used)) {
            return 0;
        }
        if (used < n && !buffer_append(&c->in, p + used, n - used)) {
            return fail(c, ERR_CLOSED);
        }
        return 1;
    }
    if (!buffer_append(&c->in, p, n)) {
        return fail(c, ERR_CLOSED);
    }
    /* |c| may be freed by feed: never touch it afterwards on 0. */
    if (!feed(c, buffer_head(&c->in), c->in.len, &used)) {
        return 0;
    }
    buffer_consume(&c->in, used);
    return 1;
}

/* read_some reads once into the worker's chunk. Returns the octets,
 * 0 for "nothing now", -1 for the end of the connection. */
static ssize_t read_some(struct conn *c) {
    char *buf = c->w->rbuf;
    if (!c->tls_on) {
        ssize_t r = recv(c->fd, buf, READ_CHUNK, 0);
        if (r < 0) {
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        }
        return r == 0 ? -1 : r;
    }
    c->rd_wants = 0;
    int r = SSL_read(c->ssl, buf, READ_CHUNK);
    if (r > 0) {
        return r;
    }
    int want = ssl_want(c, r);
    c->rd_wants = want == EV_WRITE ? EV_WRITE : 0;
    return want != 0 ? 0 : -1;
}

/* drain reads and acts on everything available. */
static int drain(struct conn *c) {
    for (;;) {
        ssize_t n = read_some(c);
        if (n < 0) {
            return fail(c, ERR_CLOSED);
        }
        if (n == 0) {
            return 1;
        }
        if (!take(c, c->w->rbuf, (size_t)n)) {
            return 0;
        }
        /* A short read emptied the socket (level-triggered epoll says
         * when there is more), unless TLS still holds bytes it read. */
        if (c->step == S_HANDSHAKE ||
            ((size_t)n < READ_CHUNK && (!c->tls_on || !SSL_has_pending(c->ssl)))) {
            return 1;
        }
    }
}

/* connected ends the connect phase: TLS first, or wait for the greeting. */
static int connected(struct conn *c) {
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        return fail(c, ERR_CONNECT);
    }
    record(c, LAT_CONNECT, c->t0);
    c->t0 = now_ns();
    if (c->w->run->o->mode == MODE_TLS) {
        return start_tls(c);
    }
    set_step(c, S_GREETING);
    return 1;
}

/* on_io is the connection's one readiness handler: it moves the
 * connect or the handshake on, or sends what is queued and reads. */
static void on_io(struct ev_loop *loop, ev_io *io, int revents) {
    struct conn *c = io->data;
    int alive;
    (void)loop;
    (void)revents;
    if (c->step == S_CONNECT) {
        alive = connected(c);
    } else if (c->step == S_HANDSHAKE) {
        alive = handshake(c);
    } else {
        alive = flush(c) && drain(c);
    }
    if (alive) {
        rewatch(c);
    }
}

/* on_timeout ends a connection whose step took longer than --timeout. */
static void on_timeout(struct ev_loop *loop, ev_timer *t, int revents) {
    (void)loop;
    (void)revents;
    fail(t->data, ERR_TIMEOUT);
}

/* bind_source binds |fd| to the next of 127.0.0.1..N (--source-range),
 * leaving the port to connect() (IP_BIND_ADDRESS_NO_PORT), so each
 * source address has its own ephemeral ports. Returns 1 or 0. */
static int bind_source(struct worker *w, int fd) {
    unsigned n = w->run->o->source_range;
    if (n <= 1 || w->run->target.ss.ss_family != AF_INET) {
        return 1;
    }
    uint64_t turn = atomic_fetch_add(&w->run->src_next, 1);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(turn % n));
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    return bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
}

/* conn_connect opens the socket and starts connect(). */
static int conn_connect(struct conn *c) {
    const struct net_target *t = &c->w->run->target;
    int one = 1;
    c->t0 = now_ns();
    c->fd = socket(t->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        return fail(c, ERR_CONNECT);
    }
    /* SMTP is lock-step small writes: Nagle would add delayed-ACK waits. */
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (!bind_source(c->w, c->fd)) {
        return fail(c, ERR_CONNECT);
    }
    if (connect(c->fd, (const struct sockaddr *)&t->ss, t->len) != 0 && errno != EINPROGRESS) {
        return fail(c, ERR_CONNECT);
    }
    set_step(c, S_CONNECT);
    rewatch(c);
    return 1;
}

void conn_open(struct worker *w, struct slot *slot, uint64_t messages) {
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        w->stats.errors[ERR_CONNECT]++;
        if (w->run->o->idle != 0) {
            worker_idle_attempt_done(w);
        }
        worker_slot_next(slot, 0.01);
        return;
    }
    c->w = w;
    c->slot = slot;
    c->fd = -1;
    c->msgs_left = messages;
    c->attempt = w->run->o->idle != 0;
    slot->conn = c;
    c->next = w->conns;
    if (w->conns != NULL) {
        w->conns->prev = c;
    }
    w->conns = c;
    w->live++;
    ev_init(&c->io, on_io);
    c->io.data = c;
    ev_init(&c->timer, on_timeout);
    c->timer.repeat = w->run->o->timeout;
    c->timer.data = c;
    conn_connect(c);
}

void conn_stop_idle(struct worker *w) {
    struct conn *next;
    for (struct conn *c = w->conns; c != NULL; c = next) {
        next = c->next;
        if (c->step != S_IDLE) {
            continue;
        }
        set_step(c, S_QUIT);
        if (send_text(c, "QUIT\r\n")) {
            rewatch(c);
        }
    }
}
