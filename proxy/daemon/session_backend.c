/*
 * session_backend.c - the backend side of a session: the FIFO of
 * expected replies (backend replies and the proxy's own, in command
 * order), what each kind of pending reply does when it arrives
 * (pending_rules), the injected headers, XCLIENT and the PROXY header,
 * and (re)connecting the backend. See session_int.h.
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
#include "daemon/backends.h"
#include "daemon/net.h"
#include "protocol/smtp_cmd.h"
#include "daemon/snapshot.h"
#include "tls/tls.h"

/* ---- the FIFO of expected replies ---- */

static struct pending *fifo_head(struct session *s) {
    return s->fifo_len ? &s->fifo[s->fifo_head] : NULL;
}

static void fifo_pop(struct session *s) {
    s->fifo_head = (s->fifo_head + 1) % PIPELINE_MAX;
    s->fifo_len--;
}

void fifo_push(struct session *s, enum pending_kind kind, const char *text,
                      int close_after) {
    /* process_client_input reads no command while the FIFO is full, and
     * a command queues one entry at most. */
    assert(s->fifo_len < PIPELINE_MAX);
    struct pending *p = &s->fifo[(s->fifo_head + s->fifo_len) % PIPELINE_MAX];
    p->kind = kind;
    p->text = text;
    p->close_after = close_after;
    p->sync = 0;
    s->fifo_len++;
}

/* backend_restart ends the backend connection at STARTTLS; a new one is
 * opened when the handshake is done (tls_established). The backend must
 * forget everything from before TLS too (RFC 3207 4.2), and a new
 * session is the one way that holds for every backend: RSET keeps the
 * HELO, and OpenSMTPD refuses a second EHLO in one session ("503 5.5.1
 * Already identified"), which made senders bounce. The new session also
 * carries the post-TLS HELO in the backend's own Received header, and
 * its identity (XCLIENT, PROXY) is sent again. Every earlier reply has
 * been relayed, so nothing is owed on the old connection: a best-effort
 * QUIT, then close. */
void backend_restart(struct session *s) {
    if (s->backend.fd >= 0 && s->backend.out.len == 0) {
        ssize_t ignored = send(s->backend.fd, "QUIT\r\n", 6, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)ignored;
    }
    session_close_backend(s);
    smtp_reply_reset(&s->reply);
    s->backend_eof = 0;
    s->backend_restart = 1;
}

/* drain_local writes the proxy's own replies that have reached the head
 * of the FIFO: nothing from the backend is owed before them. */
void drain_local(struct session *s) {
    struct pending *p;
    while ((p = fifo_head(s)) != NULL && pending_is_local(p)) {
        if (p->kind == PEND_STARTTLS) {
            /* Nothing is read after STARTTLS, so nothing is behind it. */
            fifo_pop(s);
            starttls_begin(s);
            return;
        }
        to_client_str(s, p->text);
        int close_after = p->close_after;
        fifo_pop(s);
        if (close_after) {
            session_close_backend(s);
            session_set_state(s, STATE_CLOSING);
            return;
        }
    }
}

/* reply_local queues the proxy's own reply to the current command; it
 * is written once the command's line has left the input buffer and every
 * earlier reply is out (process_command_line drains the FIFO). */
void reply_local(struct session *s, const char *text, int close_after) {
    fifo_push(s, PEND_LOCAL, text, close_after);
    /* The backend never sees these, so its own error limits cannot
     * apply: the proxy counts them (max_errors). */
    if (text[0] == '4' || text[0] == '5') {
        s->errors++;
    }
    if (close_after) {
        s->input_closed = 1;
    }
}

/* forward sends a command line to the backend and expects its reply. */
void forward(struct session *s, const char *line, size_t len,
                    enum pending_kind kind) {
    if (!buffer_append(&s->backend.out, line, len) ||
        !buffer_append(&s->backend.out, "\r\n", 2)) {
        session_fail(s, "4.3.0", "Out of memory, try again later", "out_of_memory");
        return;
    }
    fifo_push(s, kind, NULL, 0);
}

/* ---- backend replies ---- */

static void write_injected_headers(struct session *s) {
    char id[48];
    int tls = s->tls == CLIENT_TLS_ON;
    /* An RFC 5321 Atom: letters, digits and '-', no '.'. */
    snprintf(id, sizeof(id), "%s-%u", s->id, s->messages_started);
    struct header_facts f = {
        .proxy_hostname = s->cfg->hostname,
        .helo = s->helo[0] ? s->helo : NULL,
        /* Whatever is known now: a lookup still running counts as none. */
        .client_name = s->client_name[0] ? s->client_name : NULL,
        .client_addr = s->client_ip,
        .client_is_ipv6 = s->client_is_ipv6,
        .protocol = headers_protocol(s->esmtp, tls, s->authenticated, s->utf8),
        .id = id,
        .listener = s->listener->name,
        .local_port = s->local_port,
        .mode = tls ? s->tls_mode : "none",
        .tls_version = tls ? s->tls_version : NULL,
        .cipher = tls ? s->tls_cipher : NULL,
        .group = tls && s->tls_group[0] ? s->tls_group : NULL,
        .sni = tls && s->sni[0] ? s->sni : NULL,
        .country = s->geo.country[0] ? s->geo.country : NULL,
        .scope = addr_scope_name(s->scope),
        .asn = s->geo.asn,
        .status_name = s->cfg->status_header,
        .now = time(NULL),
    };
    if (!headers_write(&f, &s->backend.out)) {
        session_fail(s, "4.3.0", "Out of memory, try again later", "out_of_memory");
    }
}

static void relay_reply(struct session *s) {
    to_client(s, buffer_head(&s->reply.text), s->reply.text.len);
}

/* How much of a backend reply a log line quotes. */
#define LOG_REPLY_TEXT_MAX 200

/* first_line_length is the length of a reply's first line without CRLF,
 * for logs (the text is sanitised by the caller's format). */
static size_t first_line_length(const struct smtp_reply *r) {
    const char *p = buffer_head(&r->text);
    size_t n = 0;
    while (n < r->text.len && n < LOG_REPLY_TEXT_MAX && p[n] != '\r' && p[n] >= 0x20 && p[n] < 0x7f &&
           p[n] != '"') {
        n++;
    }
    return n;
}

/* send_xclient tells a Postfix-style backend who the client is, right
 * after its greeting and before the client sees anything (ARCHITECTURE.md §4).
 * One command carries everything: Postfix authorises XCLIENT against the
 * address it currently believes, so a second one would be refused. HELO
 * and PROTO are left to the client's own EHLO, which the backend sees and
 * which replaces them anyway. */
static void send_xclient(struct session *s) {
    const char *name = s->client_name[0]               ? s->client_name
                       : s->rdns_status == DNS_TEMP_FAIL ? "[TEMPUNAVAIL]"
                                                        : NULL; /* [UNAVAILABLE] */
    struct xclient_facts f = {
        .client = &s->client_addr,
        .name = name,
        .local = s->local_addr.len ? &s->local_addr : NULL,
    };
    if (!xclient_command(&f, &s->backend.out)) {
        session_fail(s, "4.3.0", "Cannot pass the client's identity, try again later",
                     "xclient_failed");
        return;
    }
    fifo_push(s, PEND_XCLIENT, NULL, 0);
}

/* xclient_after_greeting sends XCLIENT, or, while the reverse lookup
 * runs, leaves it to backend_name_known: NAME= is what lets the backend
 * judge the client's name (reject_unknown_client_hostname), and the
 * lookup's deadline ([dns] timeout from accept) bounds the wait. */
static void xclient_after_greeting(struct session *s) {
    if (s->rdns != NULL) {
        log_debug("session=%s event=xclient_waits_for_dns", s->id);
        s->xclient_waiting = 1;
        return;
    }
    send_xclient(s);
}

void backend_name_known(struct session *s) {
    if (s->xclient_waiting && !session_over(s)) {
        s->xclient_waiting = 0;
        s->progress++; /* the XCLIENT reply gets a whole timeout */
        send_xclient(s);
    }
}

/* backend_restarted takes the greeting of the backend connection opened
 * after STARTTLS: the client was greeted long ago and is waiting to send
 * its EHLO, so a 220 is swallowed and anything else ends the session. */
static void backend_restarted(struct session *s) {
    s->backend_restart = 0;
    if (s->reply.code != 220) {
        log_warning("session=%s event=backend_refused_after_tls code=%d", s->id, s->reply.code);
        session_fail(s, "4.3.0", "Mail backend refused the connection, try again later",
                     "backend_refused");
        return;
    }
    log_debug("session=%s event=backend_restarted", s->id);
    session_set_state(s, STATE_COMMAND);
}

/* reply_positive: a 2xx completion (RFC 5321 4.2.1). */
static int reply_positive(const struct session *s) {
    return s->reply.code >= 200 && s->reply.code < 300;
}

/* ---- what each pending kind does with its reply ----
 *
 * A handler returns 1 when the reply was an ordinary one (a 421 still
 * ends the session, and the proxy's own replies queued behind it go
 * out), 0 when it has already decided what comes next. */

/* greeting_received takes the greeting the client is to see: relayed,
 * or swallowed on the backend connection opened after STARTTLS. */
static int greeting_received(struct session *s) {
    if (s->backend_restart) {
        backend_restarted(s);
        return 0;
    }
    relay_reply(s);
    s->greeted = 1;
    session_set_state(s, STATE_COMMAND);
    return 1;
}

/* identity_before_greeting: the PROXY header went out before the
 * backend greeted, so the backend knew the client when it chose its
 * greeting. With XCLIENT (sent after the greeting) or no identity, the
 * greeting can only be about the proxy. */
static int identity_before_greeting(const struct session *s) {
    return s->cfg->backend.identity == IDENTITY_PROXY_V1 ||
           s->cfg->backend.identity == IDENTITY_PROXY_V2;
}

static int on_greeting_reply(struct session *s) {
    int refused = s->reply.code >= 400 && s->reply.code < 600;
    if (refused && identity_before_greeting(s)) {
        /* The backend's policy for this client (Postfix anvil's "too
         * many connections from", postscreen): relayed, like any other
         * policy reply. The backend answered, so it is up: no failover,
         * which would hand the client to a backend that would only say
         * the same, and no mark-down, which would turn one client's
         * refusal into a 421 for every other client. */
        backends_greeted(&s->cfg->backend.targets[s->backend_target]);
        log_info("session=%s event=backend_refused_client backend=%s code=%d reply=\"%.*s\"",
                 s->id, s->cfg->backend.targets[s->backend_target].text, s->reply.code,
                 (int)first_line_length(&s->reply), buffer_head(&s->reply.text));
        return greeting_received(s);
    }
    if (refused) {
        /* The backend refused the proxy (it cannot know the client yet):
         * another backend may serve the client. */
        char text[LOG_REPLY_TEXT_MAX + 1];
        snprintf(text, sizeof(text), "%.*s", (int)first_line_length(&s->reply),
                 buffer_head(&s->reply.text));
        if (backend_failed(s, s->reply.code >= 500 ? BACKEND_GREETING_5XX : BACKEND_GREETING_4XX,
                           text) ||
            session_over(s)) {
            return 0;
        }
        /* Only the connection opened after STARTTLS is left: its refusal
         * ends the session (backend_restarted). */
        return greeting_received(s);
    }
    if (s->reply.code == 220) {
        backends_greeted(&s->cfg->backend.targets[s->backend_target]);
    }
    if (s->cfg->backend.identity == IDENTITY_XCLIENT && s->reply.code == 220) {
        xclient_after_greeting(s);
        return 0;
    }
    return greeting_received(s);
}

static int on_xclient_reply(struct session *s) {
    if (s->reply.code != 220) {
        /* The backend would treat the client as the proxy, which it
         * usually trusts (mynetworks): never go on without XCLIENT. */
        log_error("session=%s event=xclient_refused code=%d reply=\"%.*s\"", s->id,
                  s->reply.code, (int)first_line_length(&s->reply), buffer_head(&s->reply.text));
        session_fail(s, "4.3.0", "Mail backend refused the client's identity, try again later",
                     "xclient_refused");
        return 0;
    }
    /* XCLIENT restarts the backend's session: its new 220 is the
     * greeting the client sees (XCLIENT_README). */
    return greeting_received(s);
}

static int on_ehlo_reply(struct session *s) {
    if (s->reply.code != 250) {
        relay_reply(s);
        return 1;
    }
    s->exts = ehlo_extensions(buffer_head(&s->reply.text), s->reply.text.len);
    accept_helo(s, 1);
    int starttls = s->listener->tls == TLS_MODE_STARTTLS && s->tls == CLIENT_TLS_OFF;
    int withheld = starttls && starttls_withheld(s);
    struct ehlo_policy policy = {
        .offer_starttls = starttls && !withheld,
        .hide_auth = s->listener->auth_requires_tls && s->tls != CLIENT_TLS_ON,
        .size_reserve = HEADERS_RESERVE,
    };
    if (!ehlo_rewrite(buffer_head(&s->reply.text), s->reply.text.len, &policy,
                      &s->client.out)) {
        session_fail(s, "4.3.0", "Out of memory, try again later", "out_of_memory");
        return 0;
    }
    if (policy.offer_starttls) {
        s->starttls_note = "offered";
        metrics_starttls(s->host->metrics, session_listener_index(s), MS_OFFERED);
    } else if (withheld) {
        metrics_starttls(s->host->metrics, session_listener_index(s), MS_WITHHELD);
    }
    return 1;
}

static int on_helo_reply(struct session *s) {
    if (s->reply.code == 250) {
        accept_helo(s, 0);
        s->exts = 0; /* no extensions, no PIPELINING */
    }
    relay_reply(s);
    return 1;
}

static int on_mail_reply(struct session *s) {
    if (reply_positive(s)) {
        s->in_transaction = 1;
        s->utf8 = s->mail_utf8;
    }
    relay_reply(s);
    return 1;
}

static int on_reset_reply(struct session *s) {
    if (reply_positive(s)) {
        s->in_transaction = 0;
    }
    relay_reply(s);
    return 1;
}

static int on_data_reply(struct session *s) {
    if (s->reply.code == 354) {
        s->messages_started++;
        s->message_open = 1;
        s->message_bytes = 0;
        write_injected_headers(s);
        data_scan_init(&s->scan, s->cfg->status_header);
        session_set_state(s, STATE_DATA);
    } else {
        session_set_state(s, STATE_COMMAND);
    }
    relay_reply(s);
    return 1;
}

static int on_dot_reply(struct session *s) {
    if (reply_positive(s)) {
        s->messages_accepted++;
    }
    session_count_message(s, reply_positive(s) ? MR_ACCEPTED : MR_REJECTED);
    s->in_transaction = 0; /* whatever the reply, this message is over */
    log_info("session=%s event=message number=%u code=%d", s->id, s->messages_started,
             s->reply.code);
    relay_reply(s);
    return 1;
}

static int on_quit_reply(struct session *s) {
    relay_reply(s);
    s->result = "quit";
    session_close_backend(s);
    session_set_state(s, STATE_CLOSING);
    return 0;
}

static int on_auth_reply(struct session *s) {
    relay_reply(s);
    if (s->reply.code == 334) {
        s->auth_continuation = 1; /* stay in AUTH_WAIT for the response */
        return 1;
    }
    /* A refused AUTH (e.g. 503 "already authenticated") leaves an
     * earlier success standing. */
    if (s->reply.code == 235) {
        s->authenticated = 1;
    }
    session_set_state(s, STATE_COMMAND);
    return 1;
}

static int on_other_reply(struct session *s) {
    relay_reply(s);
    return 1;
}

/* One row per pending kind, read by on_reply, drain_local,
 * current_timeout and waiting_for_backend. A kind without a handler is
 * answered by the proxy itself as soon as it reaches the head of the
 * FIFO (drain_local), so no backend reply can ever meet it. */
const struct pending_rule pending_rules[PEND_COUNT] = {
    [PEND_GREETING] = {on_greeting_reply, 0},
    [PEND_EHLO] = {on_ehlo_reply, 0},
    [PEND_DATA] = {on_data_reply, 0},
    [PEND_DOT] = {on_dot_reply, 1},
    [PEND_QUIT] = {on_quit_reply, 0},
    [PEND_OTHER] = {on_other_reply, 0},
    [PEND_LOCAL] = {NULL, 0},
    [PEND_STARTTLS] = {NULL, 0},
    [PEND_HELO] = {on_helo_reply, 0},
    [PEND_AUTH] = {on_auth_reply, 0},
    [PEND_XCLIENT] = {on_xclient_reply, 0},
    [PEND_MAIL] = {on_mail_reply, 0},
    [PEND_RESET] = {on_reset_reply, 0},
};

/* on_reply acts on one complete backend reply, matched to its command. */
static void on_reply(struct session *s) {
    struct pending *p = fifo_head(s);
    if (p == NULL) {
        /* Unsolicited: only "421 closing" is legitimate (RFC 5321 3.8). */
        if (s->reply.code == 421) {
            relay_reply(s);
            s->result = "backend_421";
            session_close_backend(s);
            session_set_state(s, STATE_CLOSING);
            return;
        }
        metrics_backend_error(s->host->metrics, MB_PROTOCOL);
        log_warning("session=%s event=backend_protocol_error reason=unsolicited_reply code=%d",
                    s->id, s->reply.code);
        session_fail(s, "4.3.0", "Mail backend protocol error, try again later",
                     "backend_protocol_error");
        return;
    }
    const struct pending_rule *rule = &pending_rules[p->kind];
    /* drain_local answers local kinds the moment they reach the head. */
    assert(rule->on_reply != NULL);
    fifo_pop(s);
    if (!rule->on_reply(s)) {
        return;
    }
    if (s->reply.code == 421 && !session_over(s)) {
        /* The backend is closing the channel: so do we. */
        s->result = "backend_421";
        session_close_backend(s);
        session_set_state(s, STATE_CLOSING);
        return;
    }
    drain_local(s);
}

void process_backend_input(struct session *s) {
    struct buffer *in = &s->backend.in;
    /* Replies wait while the client's TLS is being set up: they must go
     * out encrypted (the implicit-TLS greeting) or after the 220. */
    if (s->tls == CLIENT_TLS_HANDSHAKE || s->starttls_ready) {
        return;
    }
    while (in->len > 0 && !session_over(s)) {
        if (s->client.out.len >= CONN_OUT_HIGH) {
            return; /* backpressure: the client must read first */
        }
        size_t used = 0;
        const struct pending *head = fifo_head(s);
        /* auth_line_max counts the CRLF, the reply parser does not. */
        s->reply.line_max =
            head != NULL && head->kind == PEND_AUTH ? s->cfg->auth_line_max - 2 : 0;
        enum reply_status st = smtp_reply_feed(&s->reply, buffer_head(in), in->len, &used);
        buffer_consume(in, used);
        if (st == REPLY_INCOMPLETE) {
            return;
        }
        if (st == REPLY_BAD) {
            log_warning("session=%s event=backend_protocol_error reason=bad_reply", s->id);
            metrics_backend_error(s->host->metrics, MB_PROTOCOL);
            session_fail(s, "4.3.0", "Mail backend protocol error, try again later",
                         "backend_protocol_error");
            return;
        }
        on_reply(s);
        s->progress++;
        smtp_reply_reset(&s->reply);
    }
}

static void connect_failed_locally(struct session *s, int err);

void backend_connected(struct session *s) {
    int err = net_connect_result(s->backend.fd);
    if (err != 0 && net_connect_error_is_local(err)) {
        connect_failed_locally(s, err);
        return;
    }
    if (err != 0) {
        backend_failed(s, BACKEND_REFUSED, strerror(err));
        return;
    }
    fifo_push(s, PEND_GREETING, NULL, 0);
    session_set_state(s, STATE_GREETING);
}

/* send_proxy_header queues the PROXY protocol header: it goes out first,
 * as soon as the backend connection is up, before any SMTP byte. */
static void send_proxy_header(struct session *s) {
    const struct net_addr *local = s->local_addr.len ? &s->local_addr : NULL;
    int ok = 1;
    switch (s->cfg->backend.identity) {
    case IDENTITY_PROXY_V1:
        ok = proxy_v1_header(&s->client_addr, local, &s->backend.out);
        break;
    case IDENTITY_PROXY_V2:
        ok = proxy_v2_header(&s->client_addr, local, &s->backend.out);
        break;
    case IDENTITY_NONE:
    case IDENTITY_XCLIENT:
        break;
    }
    if (!ok) {
        session_fail(s, "4.3.0", "Out of memory, try again later", "out_of_memory");
    }
}

/* ---- connecting, and the next backend ---- */

static const struct backend_target *current_target(const struct session *s) {
    return &s->cfg->backend.targets[s->backend_target];
}

static void connect_target(struct session *s, size_t index);

/* utc writes unix time |t| as ISO 8601 UTC, for logs. */
static const char *utc(double t, char *out, size_t outlen) {
    time_t secs = (time_t)t;
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL || strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        snprintf(out, outlen, "-");
    }
    return out;
}

/* connect_failed_locally ends the session whose backend connection
 * could not be made for want of something on this side (a descriptor,
 * memory, a local port) or because the backend's AF_UNIX backlog is full
 * for now (net_connect_error_is_local). The backend said nothing, so it
 * is neither marked down nor counted as failed, and no other target is
 * tried: the shortage would meet that one too. The client is to retry. */
static void connect_failed_locally(struct session *s, int err) {
    log_warning("session=%s event=backend_connect_local_error backend=%s error=\"%s\"", s->id,
                current_target(s)->text, strerror(err));
    session_fail(s, "4.3.0", "Temporarily out of resources, try again later",
                 "backend_connect_local_error");
}

/* fail_unavailable is the proxy's own answer when no backend can serve
 * the client. */
static void fail_unavailable(struct session *s) {
    session_fail(s, "4.4.1", "Mail backend unavailable, try again later", "backend_unavailable");
}

/* fail_as_one_backend ends the session as a proxy with one backend always
 * did: the same log line, the same 421. */
static void fail_as_one_backend(struct session *s, enum backend_failure why,
                                const char *detail) {
    const char *text = current_target(s)->text;
    switch (why) {
    case BACKEND_REFUSED:
        log_warning("session=%s event=backend_connect_failed backend=%s error=\"%s\"", s->id,
                    text, detail ? detail : "");
        fail_unavailable(s);
        break;
    case BACKEND_TIMEOUT:
        log_warning("session=%s event=backend_timeout backend=%s state=%s", s->id, text,
                    session_state_name(s->state));
        session_fail(s, "4.4.2", "Mail backend did not answer in time, try again later",
                     "backend_timeout");
        break;
    case BACKEND_CLOSED:
        log_info("session=%s event=backend_closed backend=%s state=%s", s->id, text,
                 session_state_name(s->state));
        session_fail(s, "4.4.2", "Mail backend closed the connection, try again later",
                     "backend_closed");
        break;
    case BACKEND_GREETING_4XX:
    case BACKEND_GREETING_5XX:
        /* A backend that refused the proxy has nothing to say to the
         * client (its 5xx would bounce the mail): the client hears what
         * it hears when every backend is down. After STARTTLS the
         * caller ends the session (backend_restarted). */
        if (!s->backend_restart) {
            fail_unavailable(s);
        }
        break;
    case BACKEND_FAILURE_COUNT:
        break;
    }
}

/* backend_failed (session_int.h). Only a connection whose greeting the
 * client has not seen is replaced, so nothing the client saw is lost;
 * the connection opened after STARTTLS stays with the target that served
 * the session. The identity (PROXY header, XCLIENT) goes to the next
 * target as to the first. */
int backend_failed(struct session *s, enum backend_failure why, const char *detail) {
    const struct backend_config *b = &s->cfg->backend;
    const struct backend_target *t = current_target(s);
    double now = ev_now(s->host->loop);
    static const enum metrics_backend kinds[BACKEND_FAILURE_COUNT] = {
        [BACKEND_REFUSED] = MB_CONNECT, [BACKEND_TIMEOUT] = MB_TIMEOUT,
        [BACKEND_CLOSED] = MB_CLOSED, [BACKEND_GREETING_4XX] = MB_COUNT,
        [BACKEND_GREETING_5XX] = MB_COUNT};
    if (kinds[why] != MB_COUNT) {
        metrics_backend_error(s->host->metrics, kinds[why]);
    }
    double until = backends_failed(b, t, why, now);
    char when[32];
    log_warning("session=%s event=backend_down backend=%s reason=%s until=%s%s%s%s", s->id,
                t->text, backend_failure_name(why), utc(until, when, sizeof(when)),
                detail ? " detail=\"" : "", detail ? detail : "", detail ? "\"" : "");
    int next = -1;
    if (!s->greeted && !s->backend_restart && !session_over(s) &&
        s->backend_tries < b->max_tries) {
        next = backends_pick(b, s->backend_tried, now);
    }
    if (next < 0) {
        fail_as_one_backend(s, why, detail);
        return 0;
    }
    log_warning("session=%s event=backend_failover backend=%s reason=%s next=%s", s->id,
                t->text, backend_failure_name(why), b->targets[next].text);
    /* Before the greeting only the greeting and XCLIENT are owed. */
    for (unsigned i = 0; i < s->fifo_len; i++) {
        enum pending_kind k = s->fifo[(s->fifo_head + i) % PIPELINE_MAX].kind;
        assert(k == PEND_GREETING || k == PEND_XCLIENT);
        (void)k;
    }
    session_close_backend(s);
    smtp_reply_reset(&s->reply);
    s->fifo_head = s->fifo_len = 0;
    s->backend_eof = 0;
    s->xclient_waiting = 0;
    connect_target(s, (size_t)next);
    return 1;
}

/* connect_target starts the connection to target |index| (and queues
 * the PROXY header, which goes first). Every try gets a whole
 * connect_timeout. */
static void connect_target(struct session *s, size_t index) {
    const struct backend_target *t = &s->cfg->backend.targets[index];
    s->backend_target = index;
    s->backend_tried |= (uint64_t)1 << index;
    s->backend_tries++;
    session_set_state(s, STATE_CONNECTING);
    s->progress++;
    log_debug("session=%s event=backend_connect backend=%s try=%u", s->id, t->text,
              s->backend_tries);
    int bfd = net_connect(&t->addr);
    int err = errno;
    if (bfd < 0 && net_connect_error_is_local(err)) {
        connect_failed_locally(s, err); /* no attempt reached the backend */
        return;
    }
    backends_connecting(t);
    if (bfd < 0) {
        backend_failed(s, BACKEND_REFUSED, strerror(err));
        return;
    }
    conn_init(&s->backend, bfd, on_backend_io, s);
    send_proxy_header(s);
}

/* connect_backend starts the backend connection: to the target the pool
 * picks for a new session, or, after STARTTLS, to the one that served it
 * (backend_restart). */
void connect_backend(struct session *s) {
    if (s->backend_restart) {
        connect_target(s, s->backend_target);
        return;
    }
    int index = backends_pick(&s->cfg->backend, s->backend_tried, ev_now(s->host->loop));
    /* A session that tried nothing always gets one (backend_pool.h). */
    connect_target(s, index >= 0 ? (size_t)index : 0);
}
