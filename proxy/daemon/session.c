/*
 * session.c - the SMTP session state machine: one client, one backend
 * (ARCHITECTURE.md §5): state, failure, the run loop, timers and
 * lifecycle. session_client.c and session_backend.c hold the two sides.
 *
 *   accept -> connect backend -> relay greeting -> command loop
 *     EHLO      forwarded; the capability list is rewritten on the way back
 *     STARTTLS  answered by the proxy once every earlier reply is out; the
 *               backend connection is replaced by a new one after the
 *               handshake, so nothing learned before TLS survives
 *     AUTH      forwarded; its SASL continuation lines are relayed raw
 *     DATA      forwarded; on 354 the injected headers go first, then the
 *               message streams through the DATA scanner
 *     QUIT/EOF  both sides closed
 *
 * On implicit-TLS listeners the handshake runs while the backend is
 * being connected; its greeting waits until the handshake is done.
 *
 * Commands are forwarded as they arrive (PIPELINING intact). Each one
 * leaves an entry in a FIFO of expected replies; backend replies are
 * matched to entries in order, and replies the proxy gives itself
 * (refusals) wait in the same FIFO, so the client always sees replies in
 * the order of its commands.
 *
 * The proxy also answers for what only it can see: refusals of its own
 * count towards max_errors; a client that talks before the greeting or
 * sends a command before the reply it had to wait for (RFC 2920 3.1) is
 * logged or refused (pregreet); no line longer than the backend is known
 * to read is ever forwarded (client_line_limit).
 *
 * Event handlers only read and write bytes and then call session_run(),
 * which feeds the machine until nothing more can happen without a new
 * event. A session is freed only at the end of session_run(), never in
 * the middle of processing.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "daemon/session_int.h"

#include "protocol/ehlo.h"
#include "protocol/identity.h"
#include "core/log.h"
#include "daemon/net.h"
#include "protocol/smtp_cmd.h"
#include "daemon/snapshot.h"
#include "tls/tls.h"

static void on_client_io(struct ev_loop *loop, ev_io *w, int revents);
static void on_timeout(struct ev_loop *loop, ev_timer *t, int revents);

/* ---- state and small helpers ---- */

static const char *const state_names[] = {
    "connecting", "greeting", "command", "data-wait", "data", "auth-wait", "closing", "dead",
    "greet-wait", "proxy-wait",
};

const char *session_state_name(enum session_state state) {
    return state_names[state];
}

/* session_set_state is the one place the state changes. */
void session_set_state(struct session *s, enum session_state next) {
    if (s->state == next) {
        return;
    }
    s->progress++;
    log_debug("session=%s event=state from=%s to=%s", s->id, session_state_name(s->state),
              session_state_name(next));
    s->state = next;
}

int session_over(const struct session *s) {
    return s->state == STATE_CLOSING || s->state == STATE_DEAD;
}

void to_client(struct session *s, const char *p, size_t n) {
    if (!s->client_error && !buffer_append(&s->client.out, p, n)) {
        s->client_error = 1;
        s->result = "out_of_memory";
    }
}

void to_client_str(struct session *s, const char *p) {
    to_client(s, p, strlen(p));
}

/* session_close_backend drops the backend connection. A message whose
 * final dot was not sent is abandoned by the backend, never delivered. */
void session_close_backend(struct session *s) {
    conn_close(s->host->loop, &s->backend);
}

/* session_fail ends the session: the client gets "421 <enh> <host>
 * <text>" (RFC 5321 3.8) and the backend connection is dropped. */
void session_fail(struct session *s, const char *enh, const char *text,
                         const char *result) {
    if (session_over(s)) {
        return;
    }
    char line[512];
    snprintf(line, sizeof(line), "421 %s %s %s\r\n", enh, s->cfg->hostname, text);
    to_client_str(s, line);
    if (s->result == NULL) {
        s->result = result;
    }
    log_info("session=%s event=fail reason=%s state=%s", s->id, result,
             session_state_name(s->state));
    session_close_backend(s);
    s->input_closed = 1;
    session_set_state(s, STATE_CLOSING);
}

/* ---- running the machine ---- */

static double current_timeout(const struct session *s) {
    const struct config *c = s->cfg;
    if (s->tls == CLIENT_TLS_HANDSHAKE && !session_over(s)) {
        double left = s->tls_deadline - ev_now(s->host->loop);
        return left > 0.001 ? left : 0.001;
    }
    switch (s->state) {
    case STATE_PROXY_WAIT: {
        double left = s->proxy_deadline - ev_now(s->host->loop);
        return left > 0.001 ? left : 0.001;
    }
    case STATE_GREET_WAIT:
        return c->pregreet_wait;
    case STATE_CONNECTING:
        return c->connect_timeout;
    case STATE_GREETING:
        return c->greeting_timeout;
    case STATE_CLOSING:
    case STATE_DEAD:
        return CLOSING_TIMEOUT;
    case STATE_DATA:
        return c->data_timeout;
    case STATE_COMMAND:
    case STATE_DATA_WAIT:
    case STATE_AUTH_WAIT:
        break;
    }
    const struct pending *p = s->fifo_len ? &s->fifo[s->fifo_head] : NULL;
    if (p != NULL && !pending_is_local(p)) {
        return pending_rules[p->kind].data_end ? c->data_end_timeout : c->reply_timeout;
    }
    return c->command_timeout;
}

/* waiting_for_backend says whether the session is stalled on the backend
 * (rather than on the client) — who is to blame for a timeout. */
static int waiting_for_backend(const struct session *s) {
    if (s->starttls_ready || s->tls == CLIENT_TLS_HANDSHAKE) {
        return 0; /* the client has yet to read the 220 or to handshake */
    }
    if (s->state == STATE_CONNECTING || s->state == STATE_GREETING) {
        return 1;
    }
    return s->fifo_len > 0 && !pending_is_local(&s->fifo[s->fifo_head]);
}

static void on_timeout(struct ev_loop *loop, ev_timer *t, int revents) {
    (void)loop;
    (void)revents;
    struct session *s = t->data;
    if (session_over(s)) {
        s->result = s->result ? s->result : "closing_timeout";
        session_set_state(s, STATE_DEAD);
    } else if (s->state == STATE_PROXY_WAIT) {
        proxy_header_timeout(s);
    } else if (s->tls == CLIENT_TLS_HANDSHAKE) {
        tls_failed(s, client_sent_nothing(s) ? "handshake_timeout_no_client_hello"
                                             : "handshake_timeout");
    } else if (s->state == STATE_GREET_WAIT) {
        connect_backend(s); /* the client kept quiet */
    } else if (s->state == STATE_CONNECTING || s->state == STATE_GREETING) {
        backend_failed(s, BACKEND_TIMEOUT, NULL); /* the next backend, or 421 */
    } else if (waiting_for_backend(s)) {
        metrics_backend_error(s->host->metrics, MB_TIMEOUT);
        log_warning("session=%s event=backend_timeout state=%s", s->id,
                    session_state_name(s->state));
        session_fail(s, "4.4.2", "Mail backend did not answer in time, try again later",
                     "backend_timeout");
    } else {
        /* Mid-message, this abandons the message: no 250 was given. */
        session_fail(s, "4.4.2", "Error: timeout exceeded", "client_timeout");
    }
    session_run(s);
}

enum timer_kind {
    TIMER_CLOSING = 0,
    TIMER_HANDSHAKE = 1,
    TIMER_BACKEND = 2,
    TIMER_CLIENT = 3,
};

static enum timer_kind timer_kind(const struct session *s) {
    if (session_over(s)) {
        return TIMER_CLOSING;
    }
    if (s->tls == CLIENT_TLS_HANDSHAKE) {
        return TIMER_HANDSHAKE;
    }
    return waiting_for_backend(s) ? TIMER_BACKEND : TIMER_CLIENT;
}

/* arm_timer restarts the session's timeout when there was progress or
 * the session now waits on someone else; otherwise the running timeout
 * keeps counting. */
static void arm_timer(struct session *s) {
    enum timer_kind kind = timer_kind(s);
    if (s->progress == s->armed_progress && (int)kind == s->armed_kind &&
        ev_is_active(&s->timer)) {
        return;
    }
    s->armed_progress = s->progress;
    s->armed_kind = (int)kind;
    s->timer.repeat = current_timeout(s);
    ev_timer_again(s->host->loop, &s->timer);
}

/* check_end decides whether a session is over after a round of work. */
static void check_end(struct session *s) {
    if (s->state == STATE_DEAD) {
        return;
    }
    if (s->client_error) {
        s->result = s->result ? s->result : "client_error";
        session_set_state(s, STATE_DEAD);
        return;
    }
    if (s->state == STATE_CLOSING) {
        if (s->client.out.len == 0) {
            session_set_state(s, STATE_DEAD);
        }
        return;
    }
    if (s->backend_eof && (s->state == STATE_CONNECTING || s->state == STATE_GREETING)) {
        backend_failed(s, BACKEND_CLOSED, NULL); /* the next backend, or 421 */
        return;
    }
    if (s->backend_eof) {
        /* Replies already complete were relayed above; anything still
         * owed is lost, and a message in flight was not accepted. */
        log_info("session=%s event=backend_closed state=%s", s->id, session_state_name(s->state));
        metrics_backend_error(s->host->metrics, MB_CLOSED);
        session_fail(s, "4.4.2", "Mail backend closed the connection, try again later",
                     "backend_closed");
        return;
    }
    if (s->draining && s->state == STATE_PROXY_WAIT) {
        s->result = "shutdown"; /* not an SMTP client yet: nothing to say */
        session_set_state(s, STATE_DEAD);
        return;
    }
    /* A transaction begins with an accepted MAIL: it may finish first. */
    if (s->draining && (s->state == STATE_GREET_WAIT ||
                        (s->state == STATE_COMMAND && s->fifo_len == 0 && !s->in_transaction))) {
        session_fail(s, "4.3.2", "Service shutting down, try again later", "shutdown");
        return;
    }
    if (s->client_eof) {
        /* A message the client did not end is abandoned: closing the
         * backend without the final dot discards it. Replies still owed
         * for commands the client did send are waited for. */
        int mid_message = s->state == STATE_DATA || s->state == STATE_DATA_WAIT;
        int idle = s->fifo_len == 0 && s->backend.out.len == 0;
        if (mid_message || idle) {
            if (s->result == NULL) {
                s->result = mid_message ? "client_closed_in_data" : "client_closed";
            }
            session_set_state(s, STATE_DEAD);
        }
    }
}

/* client_events derives the client watcher's mask from what the session
 * wants and what TLS needs. */
static int client_events(const struct session *s) {
    const struct conn *c = &s->client;
    if (s->client_error) {
        return 0;
    }
    if (s->tls == CLIENT_TLS_HANDSHAKE) {
        return c->tls_read_wants ? c->tls_read_wants : EV_READ;
    }
    int ev = 0;
    if (c->out.len > 0) {
        ev |= EV_WRITE;
        if (c->tls_write_wants == EV_READ) {
            ev |= EV_READ;
        }
    }
    /* After the 220 to STARTTLS, the next bytes are the client's TLS
     * handshake: leave them in the socket for the TLS library. */
    if (!s->client_eof && !session_over(s) && c->in.len < CONN_IN_MAX &&
        s->backend.out.len < CONN_OUT_HIGH && c->out.len < CONN_OUT_HIGH &&
        !s->input_closed && !s->starttls_ready) {
        ev |= EV_READ;
        if (c->tls_read_wants == EV_WRITE) {
            ev |= EV_WRITE;
        }
    }
    return ev;
}

static void update_events(struct session *s) {
    struct ev_loop *loop = s->host->loop;
    int cev = client_events(s), bev = 0;
    if (s->backend.fd >= 0) {
        if (s->backend.out.len > 0 || s->state == STATE_CONNECTING) {
            bev |= EV_WRITE;
        }
        if (s->state != STATE_CONNECTING && !s->backend_eof &&
            s->backend.in.len < CONN_IN_MAX && s->client.out.len < CONN_OUT_HIGH) {
            bev |= EV_READ;
        }
    }
    conn_set_events(loop, &s->client, cev);
    conn_set_events(loop, &s->backend, bev);
    /* Decrypted bytes already inside TLS make no socket event. */
    if ((cev & EV_READ) && s->tls == CLIENT_TLS_ON && conn_tls_pending(&s->client)) {
        ev_feed_event(loop, &s->client.io, EV_READ);
    }
}

static void session_destroy(struct session *s) {
    struct ev_loop *loop = s->host->loop;
    ev_timer_stop(loop, &s->timer);
    if (s->message_open) {
        session_count_message(s, MR_ABORTED); /* never acknowledged */
    }
    if (s->rdns != NULL) {
        dns_lookup_cancel(s->rdns); /* it never calls back into |s| */
        s->rdns = NULL;
    }
    starttls_memory_session_end(s);
    starttls_memory_session_gone(s);
    struct session_summary summary;
    session_summarize(s, &summary);
    session_summary_log(&summary);
    conn_close(loop, &s->client);
    conn_close(loop, &s->backend);
    smtp_reply_reset(&s->reply);
    free(s->proxy_buf);
    s->host->gone(s->host, s, s->admitted ? &s->client_addr : NULL, &summary);
    snapshot_release(s->snap);
    free(s);
}

/* What a round of session_run can change; equal before and after a
 * round means nothing more can happen until the next event. */
struct run_mark {
    size_t client_in, backend_in, client_out, backend_out;
    unsigned long progress;
    enum session_state state;
};

static struct run_mark run_mark(const struct session *s) {
    struct run_mark m = {s->client.in.len, s->backend.in.len, s->client.out.len,
                         s->backend.out.len, s->progress, s->state};
    return m;
}

static int run_mark_same(const struct run_mark *a, const struct run_mark *b) {
    return a->client_in == b->client_in && a->backend_in == b->backend_in &&
           a->client_out == b->client_out && a->backend_out == b->backend_out &&
           a->progress == b->progress && a->state == b->state;
}

/* session_round processes both inputs once and flushes both outputs. */
static void session_round(struct session *s) {
    pregreet_check(s);
    /* An EHLO reply waits for the fleet's STARTTLS memory to answer. */
    if (!session_over(s) && !starttls_memory_waiting(s)) {
        process_backend_input(s);
    }
    if (!session_over(s)) {
        process_client_input(s);
    }
    if (s->backend.fd >= 0 && s->state != STATE_CONNECTING &&
        conn_flush(&s->backend) == CONN_IO_ERROR) {
        s->backend_eof = 1;
    }
    /* A backend slowly taking a large message is progress too, in the
     * same units a client must deliver. */
    if (s->backend.bytes_out - s->backend_out_mark >= DATA_PROGRESS_BYTES) {
        s->backend_out_mark = s->backend.bytes_out;
        s->progress++;
    }
    if (!s->client_error && s->tls != CLIENT_TLS_HANDSHAKE &&
        conn_flush(&s->client) == CONN_IO_ERROR) {
        s->client_error = 1;
    }
}

/* session_run feeds the machine after any event, writes what it
 * produced, and frees the session when it is over. It runs rounds until
 * a fixed point: input parked behind a full output buffer must be
 * processed as soon as a flush makes room, because no socket event will
 * announce bytes that are already buffered. Every round that changes
 * something consumes input or moves output, so this ends. */
void session_run(struct session *s) {
    struct run_mark before = run_mark(s);
    for (;;) {
        session_round(s);
        struct run_mark after = run_mark(s);
        if (run_mark_same(&before, &after) || s->client_error) {
            break;
        }
        before = after;
    }
    if (s->starttls_ready && s->client.out.len == 0 && !session_over(s) && !s->client_error) {
        if (start_client_tls(s, "starttls")) {
            client_handshake(s);
        } else {
            session_fail(s, "4.3.0", "TLS not available, try again later", "tls_setup_failed");
        }
    }
    check_end(s);
    if (s->state == STATE_DEAD) {
        session_destroy(s);
        return;
    }
    update_events(s);
    arm_timer(s);
}

/* ---- I/O events ---- */

static void read_into(struct conn *c, unsigned *eof, unsigned *error) {
    enum conn_io r = conn_read(c);
    if (r == CONN_IO_EOF) {
        *eof = 1;
    } else if (r == CONN_IO_ERROR) {
        *eof = 1;
        if (error != NULL) {
            *error = 1;
        }
    }
}

static void on_client_io(struct ev_loop *loop, ev_io *w, int revents) {
    (void)loop;
    struct session *s = w->data;
    if (s->state == STATE_PROXY_WAIT) {
        proxy_header_read(s);
    } else if (s->tls == CLIENT_TLS_HANDSHAKE) {
        client_handshake(s);
    } else if ((revents & EV_READ) || s->client.tls_read_wants == EV_WRITE) {
        unsigned eof = s->client_eof, err = s->client_error;
        read_into(&s->client, &eof, &err);
        s->client_eof = eof;
        s->client_error = err;
    }
    session_run(s);
}

void on_backend_io(struct ev_loop *loop, ev_io *w, int revents) {
    (void)loop;
    struct session *s = w->data;
    if (s->state == STATE_CONNECTING) {
        backend_connected(s);
    } else if (revents & EV_READ) {
        unsigned eof = s->backend_eof;
        read_into(&s->backend, &eof, NULL);
        s->backend_eof = eof;
    }
    session_run(s);
}

/* ---- start and stop ---- */

void session_drain(struct session *s) {
    s->draining = 1;
    session_run(s);
}

void session_shutdown(struct session *s) {
    if (s->state == STATE_DEAD) {
        return;
    }
    session_fail(s, "4.3.2", "Service shutting down, try again later", "shutdown");
    session_run(s);
}

void session_set_client(struct session *s, const struct net_addr *client,
                        const struct net_addr *local) {
    s->client_addr = *client;
    net_addr_format(client, s->client_ip, sizeof(s->client_ip), &s->client_port);
    s->client_is_ipv6 = net_addr_is_ipv6(client);
    s->local_addr = *local;
    s->local_port = 0;
    if (local->len > 0) {
        char ignored[64];
        net_addr_format(local, ignored, sizeof(ignored), &s->local_port);
    }
    geoip_lookup(s->snap->geoip, client, &s->geo);
    s->scope = addr_scope_of(client);
}

static void describe_endpoints(struct session *s, int fd, const struct net_addr *peer) {
    struct net_addr local = {.len = sizeof(local.ss)};
    if (getsockname(fd, (struct sockaddr *)&local.ss, &local.len) != 0) {
        local.len = 0;
    }
    session_set_client(s, peer, &local);
}

struct session *session_new(struct session_host *host, int fd, const struct net_addr *peer,
                            size_t listener_index, struct snapshot *snap,
                            unsigned long long serial) {
    struct session *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        log_error("event=accept_failed reason=out_of_memory");
        snapshot_release(snap);
        close(fd);
        return NULL;
    }
    s->host = host;
    s->snap = snap;
    s->cfg = snap->cfg;
    s->listener = &snap->cfg->listeners[listener_index];
    s->started = ev_now(host->loop);
    snprintf(s->id, sizeof(s->id), "%08lx%02x%06llx", (unsigned long)time(NULL) & 0xffffffffUL,
             (unsigned)host->id & 0xff, serial & 0xffffff);
    net_set_nodelay(fd);
    describe_endpoints(s, fd, peer);
    /* The worker admitted |peer| already, except behind a load balancer
     * (the client is known from the PROXY header). */
    s->admitted = s->listener->proxy_protocol == PROXY_PROTOCOL_NO;
    conn_init(&s->client, fd, on_client_io, s);
    conn_init(&s->backend, -1, on_backend_io, s);
    ev_init(&s->timer, on_timeout);
    s->timer.data = s;
    s->tls_mode = "none";
    s->starttls_note = "none";
    snprintf(s->too_many_errors, sizeof(s->too_many_errors),
             "421 4.7.0 %s Error: too many errors; closing\r\n", s->cfg->hostname);
    snprintf(s->shutdown_reply, sizeof(s->shutdown_reply),
             "421 4.3.2 %s Service shutting down, try again later\r\n", s->cfg->hostname);
    return s;
}

/* on_reverse_dns takes the answer of the lookup started at accept. */
static void on_reverse_dns(void *arg, enum dns_status status, const char *name,
                           const char *reason) {
    struct session *s = arg;
    s->rdns = NULL; /* gone with this call */
    s->rdns_status = status;
    if (name != NULL) {
        snprintf(s->client_name, sizeof(s->client_name), "%s", name);
    }
    char logged[DNS_NAME_MAX + 1];
    log_debug("session=%s event=reverse_dns result=%s name=%s reason=%s", s->id,
              dns_status_name(status),
              name ? log_sanitize(logged, sizeof(logged), name, strlen(name)) : "-", reason);
    if (s->xclient_waiting) {
        backend_name_known(s);
        session_run(s);
    }
}

/* start_reverse_dns looks the client's name up ([dns] reverse_lookup),
 * in parallel with TLS and the backend connection. */
static void start_reverse_dns(struct session *s) {
    s->rdns_status = DNS_NO_NAME;
    if (!s->cfg->dns_reverse_lookup || s->host->dns == NULL) {
        return;
    }
    s->rdns = dns_reverse_start(s->host->dns, &s->client_addr, s->cfg->dns_servers,
                                s->cfg->dns_timeout, on_reverse_dns, s);
    if (s->rdns == NULL) {
        s->rdns_status = DNS_TEMP_FAIL; /* out of memory: try again later */
    }
}

void session_begin_identified(struct session *s) {
    if (!s->admitted) {
        /* Behind a load balancer the per-client limit applies to the
         * client the PROXY header named, not to the balancer. */
        if (!s->host->admit(s->host, &s->client_addr)) {
            log_warning("session=%s event=refused reason=max_per_client client=%s limit=%u",
                        s->id, s->client_ip, s->cfg->max_per_client);
            metrics_refusal(s->host->metrics, MRF_MAX_PER_CLIENT);
            if (s->listener->tls == TLS_MODE_IMPLICIT) {
                s->client_error = 1; /* plaintext would be garbage to a TLS client */
                s->result = "max_per_client";
                session_set_state(s, STATE_DEAD);
            } else {
                session_fail(s, "4.7.0", "Too many connections, try again later",
                             "max_per_client");
            }
            return;
        }
        s->admitted = 1;
    }
    if (s->listener->tls == TLS_MODE_IMPLICIT && !start_client_tls(s, "implicit")) {
        s->client_error = 1;
        s->result = "tls_setup_failed";
        session_set_state(s, STATE_DEAD);
        return;
    }
    start_reverse_dns(s);
    starttls_memory_begin(s);
    if (s->cfg->pregreet == PREGREET_REJECT && s->cfg->pregreet_wait > 0) {
        /* Listen before speaking: a client that talks now is refused
         * before the backend ever hears of it. */
        session_set_state(s, STATE_GREET_WAIT);
    } else {
        connect_backend(s);
    }
}

void session_begin(struct session *s) {
    log_info("session=%s event=connect client=%s port=%u listener=%s local_port=%u", s->id,
             s->client_ip, s->client_port, s->listener->name, s->local_port);
    /* Behind a load balancer its PROXY header comes first; the rest
     * starts once it has named the client (session_proxy.c). */
    if (!proxy_header_begin(s)) {
        session_begin_identified(s);
    }
    session_run(s);
}

/* ---- the worker's list ---- */

struct session *session_next(struct session *s) {
    return s->next;
}

void session_link(struct session *s, struct session **head) {
    s->prev = NULL;
    s->next = *head;
    if (*head != NULL) {
        (*head)->prev = s;
    }
    *head = s;
}

void session_unlink(struct session *s, struct session **head) {
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else {
        *head = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }
}

