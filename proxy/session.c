/*
 * session.c - the SMTP session state machine: one client, one backend.
 *
 * Everything a session does is decided here, in one place:
 *
 *   accept -> connect backend -> relay greeting -> command loop
 *     EHLO      forwarded; the capability list is rewritten on the way back
 *     STARTTLS  answered by the proxy once every earlier reply is out; the
 *               backend gets RSET so nothing learned before TLS survives
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
#include "session.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "data_scan.h"
#include "ehlo.h"
#include "geoip.h"
#include "headers.h"
#include "identity.h"
#include "log.h"
#include "net.h"
#include "smtp_cmd.h"
#include "scope.h"
#include "smtp_reply.h"
#include "snapshot.h"
#include "tls.h"

enum session_state {
    STATE_CONNECTING = 0, /* backend connect in progress */
    STATE_GREETING = 1,   /* waiting for the backend's greeting */
    STATE_COMMAND = 2,    /* the command loop */
    STATE_DATA_WAIT = 3,  /* DATA sent; client input held until its reply */
    STATE_DATA = 4,       /* relaying a message through the scanner */
    STATE_AUTH_WAIT = 5,  /* AUTH sent; client input held until its reply */
    STATE_CLOSING = 6,    /* backend gone; last reply going to the client */
    STATE_DEAD = 7,       /* to be freed at the end of session_run */
    STATE_GREET_WAIT = 8, /* pregreet = reject: silence before the backend */
};

static const char *const state_names[] = {
    "connecting", "greeting", "command", "data-wait", "data", "auth-wait", "closing", "dead",
    "greet-wait",
};

/* TLS on the client side, orthogonal to the SMTP state. */
enum client_tls {
    CLIENT_TLS_OFF = 0,
    CLIENT_TLS_HANDSHAKE = 1,
    CLIENT_TLS_ON = 2,
};

/* What the next reply in the FIFO answers. */
enum pending_kind {
    PEND_GREETING = 0,
    PEND_EHLO = 1,
    PEND_DATA = 2,
    PEND_DOT = 3,   /* the end of a message */
    PEND_QUIT = 4,
    PEND_OTHER = 5,      /* relayed as it is */
    PEND_LOCAL = 6,      /* the proxy's own reply, |text| */
    PEND_STARTTLS = 7,   /* the proxy's 220, then the handshake */
    PEND_HELO = 8,       /* relayed; a 2xx restarts the session without extensions */
    PEND_AUTH = 9,       /* AUTH or one of its continuation lines */
    PEND_XCLIENT = 10,   /* the proxy's XCLIENT; its 220 becomes the greeting */
    PEND_MAIL = 11,      /* relayed; a 2xx opens a transaction */
    PEND_RESET = 12,     /* RSET: relayed; a 2xx ends any transaction */
    PEND_COUNT = 13,
};

/* What a pending kind does (pending_rules, next to the handlers). */
struct pending_rule {
    int (*on_reply)(struct session *s); /* NULL: the proxy answers it itself */
    unsigned data_end : 1;              /* its reply may take data_end_timeout */
};

struct session;
extern const struct pending_rule pending_rules[PEND_COUNT];

/* pending_is_local says whether the proxy answers |p| itself. */
#define pending_is_local(p) (pending_rules[(p)->kind].on_reply == NULL)

struct pending {
    enum pending_kind kind;
    int close_after; /* PEND_LOCAL: end the session after this reply */
    unsigned sync : 1; /* the client must wait for this reply (RFC 2920) */
    const char *text;
};

/* In DATA, the timeout restarts only once this much more of the message
 * has arrived: a minimum data rate against slow-drip clients (DESIGN 5). */
#define DATA_PROGRESS_BYTES 1024

/* Commands one client may have in flight; more wait unread. */
#define PIPELINE_MAX 64
/* How long a closing session may take to hand over its last reply. */
#define CLOSING_TIMEOUT 10.0

struct session {
    struct session *prev, *next;
    struct session_host *host;
    struct snapshot *snap;
    const struct config *cfg;
    const struct listener_config *listener;
    char id[32];
    ev_tstamp started;

    struct conn client;
    struct conn backend;
    char client_ip[64];
    unsigned client_port;
    struct net_addr client_addr;
    struct net_addr local_addr;
    struct geoip_result geo;
    enum addr_scope scope;
    int client_is_ipv6;
    unsigned local_port;

    enum session_state state;
    struct pending fifo[PIPELINE_MAX];
    unsigned fifo_head, fifo_len;
    struct smtp_reply reply;
    struct data_scan scan;
    ev_timer timer;

    char helo[HEADERS_VALUE_MAX + 1]; /* as accepted; sanitised when written */
    int esmtp;                        /* EHLO, not HELO, was accepted */
    char helo_sent[HEADERS_VALUE_MAX + 1]; /* the last EHLO/HELO, awaiting its 250 */
    unsigned long long discard;       /* BDAT chunk bytes to drop */
    unsigned input_closed : 1;        /* no more client commands (QUIT, fatal) */
    unsigned client_eof : 1;
    unsigned client_error : 1;        /* client unwritable: drop its output */
    unsigned backend_eof : 1;
    unsigned draining : 1;            /* proxy stopping: end at the next idle point */
    unsigned starttls_queued : 1;     /* STARTTLS accepted: read no more commands */
    unsigned starttls_ready : 1;      /* 220 queued: handshake once it is out */
    unsigned helo_since_tls : 1;      /* EHLO/HELO given since TLS began */
    unsigned auth_continuation : 1;   /* next client line answers a 334 */
    unsigned authenticated : 1;       /* the backend said 235 */
    unsigned in_transaction : 1;      /* MAIL accepted, message not yet ended */
    unsigned mail_utf8 : 1;           /* the last MAIL asked for SMTPUTF8 */
    unsigned utf8 : 1;                /* this transaction uses SMTPUTF8 (RFC 6531) */
    unsigned backend_restart : 1;     /* new backend after STARTTLS: swallow its greeting */
    unsigned greeted : 1;             /* the client has been sent the greeting */
    unsigned pregreet : 1;            /* the client talked before it */
    unsigned exts;                    /* EHLO_* / SMTP_EXT_* of the last EHLO */
    unsigned errors;                  /* the proxy's own refusals */
    unsigned sync_violations;         /* commands sent before their turn */
    char too_many_errors[HEADERS_VALUE_MAX + 64];

    enum client_tls tls;
    const char *tls_mode;             /* "none", "starttls", "implicit" */
    char tls_version[16];
    char tls_cipher[64];
    char tls_group[32];
    char sni[256];                    /* raw; sanitised wherever it is written */
    size_t injected_bytes;            /* plaintext sent after STARTTLS */
    ev_tstamp tls_deadline;           /* the handshake must be done by then */
    /* Timeouts restart on protocol progress only (a whole command, a
     * whole reply, a state change, DATA_PROGRESS_BYTES of message), never
     * on a single byte: a client dripping bytes cannot hold a session. */
    unsigned long progress;
    unsigned long armed_progress;
    int armed_kind;
    size_t data_since_progress;
    unsigned long long backend_out_mark; /* backend bytes_out at last progress */

    unsigned messages_started;  /* 354 received */
    unsigned messages_accepted; /* 2xx after the final dot */
    unsigned forged_removed;
    const char *result;         /* why it ended, for the log line */
};

static void session_run(struct session *s);
static void on_client_io(struct ev_loop *loop, ev_io *w, int revents);
static void on_backend_io(struct ev_loop *loop, ev_io *w, int revents);

/* ---- state and small helpers ---- */

/* session_set_state is the one place the state changes. */
static void session_set_state(struct session *s, enum session_state next) {
    if (s->state == next) {
        return;
    }
    s->progress++;
    log_debug("session=%s event=state from=%s to=%s", s->id, state_names[s->state],
              state_names[next]);
    s->state = next;
}

static int session_over(const struct session *s) {
    return s->state == STATE_CLOSING || s->state == STATE_DEAD;
}

static void to_client(struct session *s, const char *p, size_t n) {
    if (!s->client_error && !buffer_append(&s->client.out, p, n)) {
        s->client_error = 1;
        s->result = "out_of_memory";
    }
}

static void to_client_str(struct session *s, const char *p) {
    to_client(s, p, strlen(p));
}

/* session_close_backend drops the backend connection. A message whose
 * final dot was not sent is abandoned by the backend, never delivered. */
static void session_close_backend(struct session *s) {
    conn_close(s->host->loop, &s->backend);
}

/* session_fail ends the session: the client gets "421 <enh> <host>
 * <text>" (RFC 5321 3.8) and the backend connection is dropped. */
static void session_fail(struct session *s, const char *enh, const char *text,
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
             state_names[s->state]);
    session_close_backend(s);
    s->input_closed = 1;
    session_set_state(s, STATE_CLOSING);
}

/* ---- the FIFO of expected replies ---- */

static struct pending *fifo_head(struct session *s) {
    return s->fifo_len ? &s->fifo[s->fifo_head] : NULL;
}

static void fifo_pop(struct session *s) {
    s->fifo_head = (s->fifo_head + 1) % PIPELINE_MAX;
    s->fifo_len--;
}

static void fifo_push(struct session *s, enum pending_kind kind, const char *text,
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

static void forward(struct session *s, const char *line, size_t len, enum pending_kind kind);

static void connect_backend(struct session *s);

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
static void backend_restart(struct session *s) {
    if (s->backend.fd >= 0 && s->backend.out.len == 0) {
        ssize_t ignored = send(s->backend.fd, "QUIT\r\n", 6, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)ignored;
    }
    session_close_backend(s);
    smtp_reply_reset(&s->reply);
    s->backend_eof = 0;
    s->backend_restart = 1;
}

/* starttls_begin answers STARTTLS once every earlier reply is out
 * (RFC 3207 4). Whatever the client sent after STARTTLS arrived as
 * plaintext, before TLS protects anything: it is an injection attempt
 * (CVE-2011-0411) and is discarded, never executed. */
static void starttls_begin(struct session *s) {
    if (s->client.in.len > 0) {
        s->injected_bytes += s->client.in.len;
        log_warning("session=%s event=starttls_injection client=%s bytes=%zu", s->id,
                    s->client_ip, s->client.in.len);
        buffer_free(&s->client.in);
    }
    to_client_str(s, "220 2.0.0 Ready to start TLS\r\n");
    /* RFC 3207 4.2: forget everything learned before TLS. */
    s->helo[0] = '\0';
    s->esmtp = 0;
    s->helo_since_tls = 0;
    s->exts = 0;
    s->in_transaction = 0;
    backend_restart(s);
    s->starttls_ready = 1;
}

/* drain_local writes the proxy's own replies that have reached the head
 * of the FIFO: nothing from the backend is owed before them. */
static void drain_local(struct session *s) {
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
static void reply_local(struct session *s, const char *text, int close_after) {
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
static void forward(struct session *s, const char *line, size_t len,
                    enum pending_kind kind) {
    if (!buffer_append(&s->backend.out, line, len) ||
        !buffer_append(&s->backend.out, "\r\n", 2)) {
        session_fail(s, "4.3.0", "Out of memory, try again later", "out_of_memory");
        return;
    }
    fifo_push(s, kind, NULL, 0);
}

/* ---- the command table ---- */

typedef void command_action(struct session *s, const struct smtp_cmd *cmd,
                            const char *line, size_t len);

static void act_forward(struct session *s, const struct smtp_cmd *cmd,
                        const char *line, size_t len) {
    (void)cmd;
    forward(s, line, len, PEND_OTHER);
}

/* remember_helo keeps the name the client gave; it becomes the Received
 * "from" only when the backend accepts it (accept_helo). */
static void remember_helo(struct session *s, const struct smtp_cmd *cmd) {
    size_t n = cmd->arg_len < HEADERS_VALUE_MAX ? cmd->arg_len : HEADERS_VALUE_MAX;
    /* Only the first word: "EHLO name junk" names "name". */
    const char *space = memchr(cmd->arg, ' ', n);
    if (space != NULL) {
        n = (size_t)(space - cmd->arg);
    }
    memcpy(s->helo_sent, cmd->arg, n);
    s->helo_sent[n] = '\0';
    s->helo_since_tls = 1;
}

/* accept_helo records an EHLO or HELO the backend said 250 to. A refused
 * one leaves the session as it was (RFC 5321 4.1.4). */
static void accept_helo(struct session *s, int esmtp) {
    memcpy(s->helo, s->helo_sent, sizeof(s->helo));
    s->esmtp = esmtp;
    s->in_transaction = 0;
}

static void act_ehlo(struct session *s, const struct smtp_cmd *cmd, const char *line,
                     size_t len) {
    remember_helo(s, cmd);
    forward(s, line, len, PEND_EHLO);
}

static void act_helo(struct session *s, const struct smtp_cmd *cmd, const char *line,
                     size_t len) {
    remember_helo(s, cmd);
    forward(s, line, len, PEND_HELO);
}

static void act_rset(struct session *s, const struct smtp_cmd *cmd, const char *line,
                     size_t len) {
    (void)cmd;
    forward(s, line, len, PEND_RESET);
}

static size_t client_line_limit(const struct session *s, enum smtp_verb verb);

static void act_mail(struct session *s, const struct smtp_cmd *cmd, const char *line,
                     size_t len) {
    /* The backend receives the client's message plus our headers; a SIZE
     * declaration must say so, or a message near the limit is refused
     * only after it was transferred. */
    struct buffer mail = {0};
    if (!smtp_mail_add_size(line, len, HEADERS_RESERVE, &mail)) {
        buffer_free(&mail);
        session_fail(s, "4.3.0", "Out of memory, try again later", "out_of_memory");
        return;
    }
    /* The raised SIZE may add digits: the line as sent must still fit. */
    if (mail.len > client_line_limit(s, cmd->verb)) {
        buffer_free(&mail);
        s->result = "line_too_long";
        reply_local(s, "500 5.5.2 Line too long; closing\r\n", 1);
        return;
    }
    if (!buffer_append(&s->backend.out, buffer_head(&mail), mail.len)) {
        buffer_free(&mail);
        session_fail(s, "4.3.0", "Out of memory, try again later", "out_of_memory");
        return;
    }
    buffer_free(&mail);
    s->mail_utf8 = smtp_mail_param(line, len, "SMTPUTF8", NULL, NULL) ? 1 : 0;
    fifo_push(s, PEND_MAIL, NULL, 0);
}

static void act_data(struct session *s, const struct smtp_cmd *cmd, const char *line,
                     size_t len) {
    (void)cmd;
    forward(s, line, len, PEND_DATA);
    /* What follows DATA is either the message (after 354) or commands
     * (after a refusal): only the backend's reply can tell. */
    if (!session_over(s)) {
        session_set_state(s, STATE_DATA_WAIT);
    }
}

static void act_quit(struct session *s, const struct smtp_cmd *cmd, const char *line,
                     size_t len) {
    (void)cmd;
    forward(s, line, len, PEND_QUIT);
    s->input_closed = 1;
}

/* bdat_chunk_size reads "BDAT size [LAST]" (RFC 3030). Returns 1 and
 * the size, or 0 when the argument is not that. */
static int bdat_chunk_size(const struct smtp_cmd *cmd, unsigned long long *out) {
    unsigned long long size = 0;
    size_t i = 0;
    while (i < cmd->arg_len && i < 18 && cmd->arg[i] >= '0' && cmd->arg[i] <= '9') {
        size = size * 10 + (unsigned long long)(cmd->arg[i] - '0');
        i++;
    }
    if (i == 0 || (i < cmd->arg_len && cmd->arg[i] != ' ')) {
        return 0;
    }
    *out = size;
    return 1;
}

/* refuse_command answers a command locally. A refused BDAT is followed
 * by its chunk, which must be dropped, never read as commands. */
static void refuse_command(struct session *s, const struct smtp_cmd *cmd, const char *reply) {
    unsigned long long size = 0;
    if (cmd->verb == VERB_BDAT) {
        if (!bdat_chunk_size(cmd, &size)) {
            reply_local(s, "501 5.5.4 BDAT without a chunk size; closing\r\n", 1);
            return;
        }
        s->discard = size;
    }
    reply_local(s, reply, 0);
}

static void act_bdat(struct session *s, const struct smtp_cmd *cmd, const char *line,
                     size_t len) {
    (void)line;
    (void)len;
    /* CHUNKING is never offered (the chunk would bypass the scanner), but
     * a client that sends BDAT anyway is followed by its chunk. */
    refuse_command(s, cmd, "502 5.5.1 BDAT is not supported: CHUNKING is not offered\r\n");
}

static void act_starttls(struct session *s, const struct smtp_cmd *cmd,
                         const char *line, size_t len) {
    (void)line;
    (void)len;
    if (s->tls == CLIENT_TLS_ON) {
        reply_local(s, "554 5.5.1 Error: TLS already active\r\n", 0);
    } else if (s->listener->tls != TLS_MODE_STARTTLS) {
        reply_local(s, "502 5.5.1 STARTTLS is not offered on this port\r\n", 0);
    } else if (cmd->arg_len > 0) {
        reply_local(s, "501 5.5.4 Syntax: STARTTLS\r\n", 0);
    } else if (s->authenticated) {
        /* RFC 3207 4.2 wants everything learned before TLS forgotten, but
         * the backend cannot be made to forget a successful AUTH (RSET
         * keeps it): rather than carry a plaintext login into TLS, refuse.
         * Only reachable with auth_requires_tls = no. */
        reply_local(s, "503 5.5.1 Error: STARTTLS is not allowed after AUTH\r\n", 0);
    } else {
        s->starttls_queued = 1;
        fifo_push(s, PEND_STARTTLS, NULL, 0);
    }
}

static void act_auth(struct session *s, const struct smtp_cmd *cmd, const char *line,
                     size_t len) {
    (void)cmd;
    if (s->listener->auth_requires_tls && s->tls != CLIENT_TLS_ON) {
        /* RFC 4954 4 and 6: no credentials over plaintext. */
        reply_local(s, "538 5.7.11 Encryption required for requested authentication "
                       "mechanism\r\n", 0);
        return;
    }
    forward(s, line, len, PEND_AUTH);
    /* What follows may be SASL data, not commands: wait for the reply. */
    if (!session_over(s)) {
        session_set_state(s, STATE_AUTH_WAIT);
    }
}

static void act_refuse_identity(struct session *s, const struct smtp_cmd *cmd,
                                const char *line, size_t len) {
    (void)line;
    (void)len;
    /* The backend trusts XCLIENT/XFORWARD from the proxy's address; a
     * client must never reach them, or it could claim any identity. */
    reply_local(s, cmd->verb == VERB_XCLIENT
                       ? "550 5.7.0 XCLIENT is not accepted from clients\r\n"
                       : "550 5.7.0 XFORWARD is not accepted from clients\r\n",
                0);
}

/* What each verb does, and when it may be used. */
struct command_rule {
    command_action *action;
    unsigned before_tls : 1; /* allowed before TLS where TLS is required */
    unsigned needs_helo : 1; /* refused after STARTTLS until EHLO/HELO again */
    unsigned sync : 1;       /* the client must wait for its reply: RFC 2920
                              * 3.1 (EHLO, DATA, VRFY, EXPN, QUIT, NOOP),
                              * and HELO and STARTTLS, which restart the
                              * session */
};

static const struct command_rule command_table[VERB_COUNT] = {
    [VERB_UNKNOWN] = {act_forward, 0, 0, 0},
    [VERB_HELO] = {act_helo, 1, 0, 1},
    [VERB_EHLO] = {act_ehlo, 1, 0, 1},
    [VERB_MAIL] = {act_mail, 0, 1, 0},
    [VERB_RCPT] = {act_forward, 0, 1, 0},
    [VERB_DATA] = {act_data, 0, 1, 1},
    [VERB_BDAT] = {act_bdat, 0, 1, 0},
    [VERB_RSET] = {act_rset, 1, 0, 0},
    [VERB_NOOP] = {act_forward, 1, 0, 1},
    [VERB_QUIT] = {act_quit, 1, 0, 1},
    [VERB_VRFY] = {act_forward, 0, 0, 1},
    [VERB_EXPN] = {act_forward, 0, 0, 1},
    [VERB_HELP] = {act_forward, 0, 0, 0},
    [VERB_STARTTLS] = {act_starttls, 1, 0, 1},
    [VERB_AUTH] = {act_auth, 0, 1, 0},
    [VERB_XCLIENT] = {act_refuse_identity, 1, 0, 0},
    [VERB_XFORWARD] = {act_refuse_identity, 1, 0, 0},
};

/* client_line_limit is the longest line, CRLF included, accepted for
 * |verb| now: RFC 5321's 512 octets unless the backend's own EHLO
 * advertised extensions that lengthen MAIL and RCPT, and AUTH's limit
 * for SASL. A backend reading commands into a 512-octet buffer must
 * never be given a longer one: it would run the rest as a command. */
static size_t client_line_limit(const struct session *s, enum smtp_verb verb) {
    const struct smtp_line_limits limits = {
        .command = s->cfg->command_line_max,
        .mail = s->cfg->mail_line_max,
        .auth = s->cfg->auth_line_max,
    };
    return smtp_line_limit(verb, s->exts, &limits);
}

/* line_bound is how far to look for the end of the line at the head of
 * the client's input: its verb's limit, or the largest while the verb is
 * still incomplete. */
static size_t line_bound(const struct session *s) {
    enum smtp_verb verb;
    const struct buffer *in = &s->client.in;
    if (smtp_verb_peek(buffer_head(in), in->len, &verb)) {
        return client_line_limit(s, verb);
    }
    size_t most = s->cfg->auth_line_max;
    return s->cfg->mail_line_max > most ? s->cfg->mail_line_max : most;
}

/* fifo_owes_sync says whether a reply the client must wait for is still
 * owed: a command arriving now was sent before its turn. */
static int fifo_owes_sync(const struct session *s) {
    for (unsigned i = 0; i < s->fifo_len; i++) {
        if (s->fifo[(s->fifo_head + i) % PIPELINE_MAX].sync) {
            return 1;
        }
    }
    return 0;
}

/* mark_sync flags the replies the last command queued (from FIFO
 * position |from| on) as ones the client must wait for: a command the
 * protocol makes a synchronisation point, or any command while PIPELINING
 * is not in effect (before EHLO, after HELO). */
static void mark_sync(struct session *s, unsigned from, const struct command_rule *rule) {
    int sync = rule->sync || !(s->exts & EHLO_PIPELINING);
    for (unsigned i = from; i < s->fifo_len; i++) {
        s->fifo[(s->fifo_head + i) % PIPELINE_MAX].sync = sync ? 1 : 0;
    }
}

/* sync_violation handles a command that arrived before the reply its
 * client had to wait for (RFC 2920 3.1; RFC 5321 4.3.1 without
 * PIPELINING). Early talkers are the classic spambot signal, and no
 * backend behind the proxy can see it. Returns 1 when the session was
 * ended for it. */
static int sync_violation(struct session *s, enum smtp_verb verb) {
    if (s->cfg->pregreet == PREGREET_IGNORE) {
        return 0;
    }
    if (s->sync_violations++ == 0) {
        log_info("session=%s event=sync_violation client=%s verb=%s pipelining=%s", s->id,
                 s->client_ip, smtp_verb_name(verb),
                 (s->exts & EHLO_PIPELINING) ? "yes" : "no");
    }
    if (s->cfg->pregreet != PREGREET_REJECT) {
        return 0;
    }
    s->result = "sync_violation";
    reply_local(s, "554 5.5.1 Error: command sent before the previous reply; closing\r\n", 1);
    return 1;
}

/* ---- client input ---- */

/* process_command_line handles the line at the head of the client's
 * input. Returns 1 when it consumed something and may be called again. */
/* line_too_long ends a session whose command line is over its limit:
 * nothing of it reaches the backend, and no resynchronising guess is
 * made about where the next command starts. */
static void line_too_long(struct session *s, size_t limit) {
    log_info("session=%s event=line_too_long limit=%zu", s->id, limit);
    s->result = "line_too_long";
    reply_local(s, "500 5.5.2 Line too long; closing\r\n", 1);
    drain_local(s);
}

static int process_command_line(struct session *s) {
    struct buffer *in = &s->client.in;
    if (s->cfg->max_errors > 0 && s->errors >= s->cfg->max_errors) {
        /* Postfix's smtpd_hard_error_limit, for what only the proxy sees. */
        log_info("session=%s event=too_many_errors client=%s errors=%u", s->id, s->client_ip,
                 s->errors);
        s->result = "too_many_errors";
        reply_local(s, s->too_many_errors, 1);
        drain_local(s);
        return 0;
    }
    size_t len = 0, used = 0;
    size_t bound = line_bound(s);
    enum line_status st = smtp_line_find(buffer_head(in), in->len, bound, &len, &used);
    switch (st) {
    case LINE_INCOMPLETE:
        return 0;
    case LINE_TOO_LONG:
        line_too_long(s, bound);
        return 0;
    case LINE_BAD_BYTE:
        buffer_consume(in, used);
        reply_local(s, "500 5.5.2 Syntax error: NUL or bare CR in command\r\n", 0);
        drain_local(s);
        return 1;
    case LINE_OK:
        break;
    }
    struct smtp_cmd cmd;
    struct buffer line = {0};
    if (!smtp_cmd_parse(buffer_head(in), len, &cmd)) {
        buffer_consume(in, used);
        reply_local(s, "500 5.5.2 Syntax error, command unrecognized\r\n", 0);
        drain_local(s);
        return 1;
    }
    if (!smtp_cmd_canonical(&cmd, &line)) {
        session_fail(s, "4.3.0", "Out of memory, try again later", "out_of_memory");
        return 0;
    }
    /* From here on only the canonical form is used: what reaches the
     * backend is exactly the verb the proxy decided on. */
    smtp_cmd_parse(buffer_head(&line), line.len, &cmd);
    /* As the backend will receive it: canonical, with CRLF. */
    if (line.len + 2 > client_line_limit(s, cmd.verb)) {
        buffer_free(&line);
        line_too_long(s, client_line_limit(s, cmd.verb));
        return 0;
    }
    buffer_consume(in, used);
    log_debug("session=%s event=command verb=%s", s->id, smtp_verb_name(cmd.verb));
    const struct command_rule *rule = &command_table[cmd.verb];
    unsigned queued = s->fifo_len;
    if (fifo_owes_sync(s) && sync_violation(s, cmd.verb)) {
        /* refused and closing: the command is not run */
    } else if (s->listener->require_tls && s->tls != CLIENT_TLS_ON && !rule->before_tls) {
        refuse_command(s, &cmd, "530 5.7.0 Must issue a STARTTLS command first\r\n");
    } else if (s->tls == CLIENT_TLS_ON && !s->helo_since_tls && rule->needs_helo) {
        refuse_command(s, &cmd, "503 5.5.1 Error: send EHLO/HELO first\r\n");
    } else {
        rule->action(s, &cmd, buffer_head(&line), line.len);
    }
    mark_sync(s, queued, rule);
    buffer_free(&line);
    drain_local(s);
    return 1;
}

/* process_data feeds the message to the scanner. Returns 1 when the end
 * of data was found and commands follow. */
static int process_data(struct session *s) {
    struct buffer *in = &s->client.in;
    size_t used = 0;
    enum data_result r =
        data_scan_feed(&s->scan, buffer_head(in), in->len, &s->backend.out, &used);
    buffer_consume(in, used);
    s->data_since_progress += used;
    if (s->data_since_progress >= DATA_PROGRESS_BYTES) {
        s->data_since_progress = 0;
        s->progress++;
    }
    if (r == DATA_NOMEM) {
        session_fail(s, "4.3.0", "Out of memory, try again later", "out_of_memory");
        return 0;
    }
    if (r != DATA_END) {
        return 0;
    }
    s->forged_removed += (unsigned)s->scan.dropped_fields;
    if (s->scan.dropped_fields || s->scan.bare_endings || s->scan.lines_broken ||
        s->scan.nul_removed) {
        log_info("session=%s event=message_cleaned forged_status_headers=%zu "
                 "bare_line_endings=%zu long_lines_broken=%zu nul_removed=%zu", s->id,
                 s->scan.dropped_fields, s->scan.bare_endings, s->scan.lines_broken,
                 s->scan.nul_removed);
    }
    fifo_push(s, PEND_DOT, NULL, 0);
    session_set_state(s, STATE_COMMAND);
    return 1;
}

/* process_auth_line relays one SASL response line (RFC 4954 4) as it is:
 * it is base64 data, and must never be read as a command even when it
 * happens to spell one. Returns 1 when a line was relayed. */
static int process_auth_line(struct session *s) {
    struct buffer *in = &s->client.in;
    size_t len = 0, used = 0;
    enum line_status st =
        smtp_line_find(buffer_head(in), in->len, s->cfg->auth_line_max, &len, &used);
    if (st == LINE_INCOMPLETE) {
        return 0;
    }
    if (st == LINE_TOO_LONG || len + 2 > s->cfg->auth_line_max) {
        line_too_long(s, s->cfg->auth_line_max);
        return 0;
    }
    s->auth_continuation = 0;
    if (st == LINE_BAD_BYTE) {
        forward(s, "*", 1, PEND_AUTH); /* cancels the exchange (RFC 4954 4) */
    } else {
        forward(s, buffer_head(in), len, PEND_AUTH);
    }
    buffer_consume(in, used);
    return 1;
}

static void process_client_input(struct session *s) {
    struct buffer *in = &s->client.in;
    while (in->len > 0 && !session_over(s)) {
        /* Backpressure both ways: the backend must catch up with what we
         * send it, and the client must read the replies (the proxy's own
         * refusals would otherwise pile up without bound). */
        if (s->backend.out.len >= CONN_OUT_HIGH || s->client.out.len >= CONN_OUT_HIGH) {
            return;
        }
        if (s->state == STATE_DATA) {
            if (!process_data(s)) {
                return;
            }
            continue;
        }
        if (s->state == STATE_AUTH_WAIT) {
            if (!s->auth_continuation || !process_auth_line(s)) {
                return;
            }
            s->progress++;
            continue;
        }
        /* Draining, a session in a transaction may finish it (README). */
        if (s->state != STATE_COMMAND || s->input_closed || s->fifo_len >= PIPELINE_MAX ||
            (s->draining && !s->in_transaction) || s->starttls_queued ||
            s->tls == CLIENT_TLS_HANDSHAKE) {
            return;
        }
        if (s->discard > 0) {
            size_t n = in->len < s->discard ? in->len : (size_t)s->discard;
            buffer_consume(in, n);
            s->discard -= n;
            continue;
        }
        if (!process_command_line(s)) {
            return;
        }
        s->progress++;
    }
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

/* first_line_length is the length of a reply's first line without CRLF,
 * for logs (the text is sanitised by the caller's format). */
static size_t first_line_length(const struct smtp_reply *r) {
    const char *p = buffer_head(&r->text);
    size_t n = 0;
    while (n < r->text.len && n < 200 && p[n] != '\r' && p[n] >= 0x20 && p[n] < 0x7f &&
           p[n] != '"') {
        n++;
    }
    return n;
}

/* send_xclient tells a Postfix-style backend who the client is, right
 * after its greeting and before the client sees anything (DESIGN 3.6).
 * One command carries everything: Postfix authorises XCLIENT against the
 * address it currently believes, so a second one would be refused. HELO
 * and PROTO are left to the client's own EHLO, which the backend sees and
 * which replaces them anyway. */
static void send_xclient(struct session *s) {
    struct xclient_facts f = {
        .client = &s->client_addr,
        .local = s->local_addr.len ? &s->local_addr : NULL,
    };
    if (!xclient_command(&f, &s->backend.out)) {
        session_fail(s, "4.3.0", "Cannot pass the client's identity, try again later",
                     "xclient_failed");
        return;
    }
    fifo_push(s, PEND_XCLIENT, NULL, 0);
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

/* ---- what each pending kind does with its reply ----
 *
 * A handler returns 1 when the reply was an ordinary one (a 421 still
 * ends the session, and the proxy's own replies queued behind it go
 * out), 0 when it has already decided what comes next. */

static int on_greeting_reply(struct session *s) {
    if (s->cfg->backend.identity == IDENTITY_XCLIENT && s->reply.code == 220) {
        send_xclient(s);
        return 0;
    }
    if (s->backend_restart) {
        backend_restarted(s);
        return 0;
    }
    relay_reply(s);
    s->greeted = 1;
    session_set_state(s, STATE_COMMAND);
    return 1;
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
    if (s->backend_restart) {
        backend_restarted(s);
        return 0;
    }
    relay_reply(s);
    s->greeted = 1;
    session_set_state(s, STATE_COMMAND);
    return 1;
}

static int on_ehlo_reply(struct session *s) {
    if (s->reply.code != 250) {
        relay_reply(s);
        return 1;
    }
    s->exts = ehlo_extensions(buffer_head(&s->reply.text), s->reply.text.len);
    accept_helo(s, 1);
    struct ehlo_policy policy = {
        .offer_starttls = s->listener->tls == TLS_MODE_STARTTLS && s->tls == CLIENT_TLS_OFF,
        .hide_auth = s->listener->auth_requires_tls && s->tls != CLIENT_TLS_ON,
        .size_reserve = HEADERS_RESERVE,
    };
    if (!ehlo_rewrite(buffer_head(&s->reply.text), s->reply.text.len, &policy,
                      &s->client.out)) {
        session_fail(s, "4.3.0", "Out of memory, try again later", "out_of_memory");
        return 0;
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
    if (s->reply.code >= 200 && s->reply.code < 300) {
        s->in_transaction = 1;
        s->utf8 = s->mail_utf8;
    }
    relay_reply(s);
    return 1;
}

static int on_reset_reply(struct session *s) {
    if (s->reply.code >= 200 && s->reply.code < 300) {
        s->in_transaction = 0;
    }
    relay_reply(s);
    return 1;
}

static int on_data_reply(struct session *s) {
    if (s->reply.code == 354) {
        s->messages_started++;
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
    if (s->reply.code >= 200 && s->reply.code < 300) {
        s->messages_accepted++;
    }
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

static void process_backend_input(struct session *s) {
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
        s->reply.line_max = head != NULL && head->kind == PEND_AUTH ? s->cfg->auth_line_max : 0;
        enum reply_status st = smtp_reply_feed(&s->reply, buffer_head(in), in->len, &used);
        buffer_consume(in, used);
        if (st == REPLY_INCOMPLETE) {
            return;
        }
        if (st == REPLY_BAD) {
            log_warning("session=%s event=backend_protocol_error reason=bad_reply", s->id);
            session_fail(s, "4.3.0", "Mail backend protocol error, try again later",
                         "backend_protocol_error");
            return;
        }
        on_reply(s);
        s->progress++;
        smtp_reply_reset(&s->reply);
    }
}

/* ---- TLS with the client ---- */

static void tls_established(struct session *s) {
    SSL *ssl = s->client.ssl;
    s->tls = CLIENT_TLS_ON;
    s->progress++;
    snprintf(s->tls_version, sizeof(s->tls_version), "%s", SSL_get_version(ssl));
    const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
    snprintf(s->tls_cipher, sizeof(s->tls_cipher), "%s",
             cipher ? SSL_CIPHER_standard_name(cipher) : "unknown");
    const char *group = SSL_get_curve_name(SSL_get_curve_id(ssl));
    snprintf(s->tls_group, sizeof(s->tls_group), "%s", group ? group : "");
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    snprintf(s->sni, sizeof(s->sni), "%s", sni ? sni : "");
    char sni_log[80];
    log_info("session=%s event=tls mode=%s version=%s cipher=%s group=%s sni=%s", s->id,
             s->tls_mode, s->tls_version, s->tls_cipher, s->tls_group[0] ? s->tls_group : "-",
             s->sni[0] ? log_sanitize(sni_log, sizeof(sni_log), s->sni, strlen(s->sni)) : "-");
    if (s->backend_restart) {
        connect_backend(s); /* its greeting is swallowed: backend_restarted */
    }
}

/* tls_failed ends a session whose handshake failed. Nothing is said in
 * plaintext (the client is speaking TLS) and there is no fallback to
 * plaintext on this connection. */
static void tls_failed(struct session *s, const char *reason) {
    log_info("session=%s event=tls_handshake_failed client=%s listener=%s mode=%s reason=%s",
             s->id, s->client_ip, s->listener->name, s->tls_mode, reason);
    s->result = "tls_handshake_failed";
    session_close_backend(s);
    s->client_error = 1; /* nothing more may be written to it */
    session_set_state(s, STATE_DEAD);
}

static void client_handshake(struct session *s) {
    switch (conn_handshake(&s->client)) {
    case CONN_IO_OK:
        tls_established(s);
        break;
    case CONN_IO_AGAIN:
        break;
    case CONN_IO_EOF: {
        char reason[128];
        tls_describe_error(reason, sizeof(reason), "client_closed_connection");
        tls_failed(s, reason);
        break;
    }
    case CONN_IO_ERROR: {
        char reason[128];
        tls_describe_error(reason, sizeof(reason), "connection_error");
        tls_failed(s, reason);
        break;
    }
    }
}

/* start_client_tls switches the client connection to TLS (after the 220
 * for STARTTLS, at once for implicit TLS). */
static int start_client_tls(struct session *s, const char *mode) {
    s->client.ssl = tls_new_server(s->snap->tls, (size_t)(s->listener - s->cfg->listeners),
                                   s->client.fd);
    if (s->client.ssl == NULL) {
        log_error("session=%s event=tls_setup_failed", s->id);
        return 0;
    }
    s->tls_mode = mode;
    s->tls = CLIENT_TLS_HANDSHAKE;
    s->progress++;
    /* A deadline, not an idle timer: a client dripping its handshake a
     * byte at a time must not hold the connection. */
    s->tls_deadline = ev_now(s->host->loop) + s->cfg->handshake_timeout;
    s->starttls_ready = 0;
    s->starttls_queued = 0;
    return 1;
}

/* ---- running the machine ---- */

static double current_timeout(const struct session *s) {
    const struct config *c = s->cfg;
    if (s->tls == CLIENT_TLS_HANDSHAKE && !session_over(s)) {
        double left = s->tls_deadline - ev_now(s->host->loop);
        return left > 0.001 ? left : 0.001;
    }
    switch (s->state) {
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
    } else if (s->tls == CLIENT_TLS_HANDSHAKE) {
        tls_failed(s, "handshake_timeout");
    } else if (s->state == STATE_GREET_WAIT) {
        connect_backend(s); /* the client kept quiet */
    } else if (waiting_for_backend(s)) {
        log_warning("session=%s event=backend_timeout state=%s", s->id,
                    state_names[s->state]);
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
    if (s->backend_eof) {
        /* Replies already complete were relayed above; anything still
         * owed is lost, and a message in flight was not accepted. */
        log_info("session=%s event=backend_closed state=%s", s->id, state_names[s->state]);
        session_fail(s, "4.4.2", "Mail backend closed the connection, try again later",
                     "backend_closed");
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

/* as_org_for_log makes an AS organisation ("Example Networks, Inc.")
 * one safe log token. */
static const char *as_org_for_log(char *out, size_t outlen, const char *org) {
    log_sanitize(out, outlen, org, strlen(org));
    for (size_t i = 0; org[i] != '\0' && i + 1 < outlen; i++) {
        if (org[i] == ' ') {
            out[i] = '_';
        }
    }
    return out;
}

void session_summary_log(const struct session_summary *m) {
    char helo[80], sni[80], org[100];
    log_info("session=%s event=end client=%s port=%u listener=%s scope=%s country=%s asn=%lu "
             "as_org=\"%s\" helo=%s tls=%s cipher=%s "
             "sni=%s messages=%u accepted=%u forged_removed=%u errors=%u pregreet=%s "
             "sync_violations=%u bytes_in=%llu bytes_out=%llu result=%s duration=%.3f",
             m->id, m->client, m->port, m->listener, m->scope,
             m->country[0] ? m->country : "-", m->asn,
             as_org_for_log(org, sizeof(org), m->as_org),
             m->helo[0] ? log_sanitize(helo, sizeof(helo), m->helo, strlen(m->helo)) : "-",
             m->tls_version ? m->tls_version : "none", m->tls_version ? m->cipher : "-",
             m->sni[0] ? log_sanitize(sni, sizeof(sni), m->sni, strlen(m->sni)) : "-",
             m->messages, m->accepted, m->forged_removed, m->errors,
             m->pregreet ? "yes" : "no", m->sync_violations, m->bytes_in, m->bytes_out,
             m->result, m->duration);
}

/* session_summarize describes |s| as it ends. */
static void session_summarize(const struct session *s, struct session_summary *m) {
    int tls = s->tls == CLIENT_TLS_ON;
    *m = (struct session_summary){
        .id = s->id,
        .client = s->client_ip,
        .port = s->client_port,
        .listener = s->listener->name,
        .scope = addr_scope_name(s->scope),
        .country = s->geo.country,
        .asn = s->geo.asn,
        .as_org = s->geo.as_org,
        .helo = s->helo,
        .tls_version = tls ? s->tls_version : NULL,
        .cipher = tls ? s->tls_cipher : NULL,
        .sni = s->sni,
        .messages = s->messages_started,
        .accepted = s->messages_accepted,
        .forged_removed = s->forged_removed,
        .errors = s->errors,
        .sync_violations = s->sync_violations,
        .pregreet = s->pregreet,
        .bytes_in = s->client.bytes_in,
        .bytes_out = s->client.bytes_out,
        .result = s->result ? s->result : "unknown",
        .duration = ev_now(s->host->loop) - s->started,
    };
}

static void session_destroy(struct session *s) {
    struct ev_loop *loop = s->host->loop;
    ev_timer_stop(loop, &s->timer);
    struct session_summary summary;
    session_summarize(s, &summary);
    session_summary_log(&summary);
    conn_close(loop, &s->client);
    conn_close(loop, &s->backend);
    smtp_reply_reset(&s->reply);
    s->host->gone(s->host, s, &s->client_addr, &summary);
    snapshot_release(s->snap);
    free(s);
}

/* pregreet_check notices a client that talked before it was greeted
 * (RFC 5321 3.1: clients wait for the 220). With pregreet = reject the
 * client gets 554 and the connection ends; in GREET_WAIT the backend was
 * never contacted. */
static void pregreet_check(struct session *s) {
    if (s->greeted || s->pregreet || s->client.in.len == 0 ||
        s->cfg->pregreet == PREGREET_IGNORE) {
        return;
    }
    s->pregreet = 1;
    log_info("session=%s event=pregreet client=%s bytes=%zu state=%s", s->id, s->client_ip,
             s->client.in.len, state_names[s->state]);
    if (s->cfg->pregreet != PREGREET_REJECT) {
        return;
    }
    char line[HEADERS_VALUE_MAX + 80];
    snprintf(line, sizeof(line), "554 5.5.1 %s Error: talked before the greeting\r\n",
             s->cfg->hostname);
    to_client_str(s, line);
    s->result = "pregreet";
    s->input_closed = 1;
    buffer_free(&s->client.in);
    session_close_backend(s);
    session_set_state(s, STATE_CLOSING);
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
    if (!session_over(s)) {
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
static void session_run(struct session *s) {
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
    if (s->tls == CLIENT_TLS_HANDSHAKE) {
        client_handshake(s);
    } else if ((revents & EV_READ) || s->client.tls_read_wants == EV_WRITE) {
        unsigned eof = s->client_eof, err = s->client_error;
        read_into(&s->client, &eof, &err);
        s->client_eof = eof;
        s->client_error = err;
    }
    session_run(s);
}

static void backend_connected(struct session *s) {
    int err = net_connect_result(s->backend.fd);
    if (err != 0) {
        log_warning("session=%s event=backend_connect_failed backend=%s error=\"%s\"", s->id,
                    s->cfg->backend.address, strerror(err));
        session_fail(s, "4.4.1", "Mail backend unavailable, try again later",
                     "backend_unavailable");
        return;
    }
    fifo_push(s, PEND_GREETING, NULL, 0);
    session_set_state(s, STATE_GREETING);
}

static void on_backend_io(struct ev_loop *loop, ev_io *w, int revents) {
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

static void describe_endpoints(struct session *s, int fd, const struct net_addr *peer) {
    s->client_addr = *peer;
    net_addr_format(peer, s->client_ip, sizeof(s->client_ip), &s->client_port);
    s->client_is_ipv6 = net_addr_is_ipv6(peer);
    s->local_addr.len = sizeof(s->local_addr.ss);
    if (getsockname(fd, (struct sockaddr *)&s->local_addr.ss, &s->local_addr.len) == 0) {
        char ignored[64];
        net_addr_format(&s->local_addr, ignored, sizeof(ignored), &s->local_port);
    } else {
        s->local_addr.len = 0;
    }
    geoip_lookup(s->snap->geoip, peer, &s->geo);
    s->scope = addr_scope_of(peer);
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
    conn_init(&s->client, fd, on_client_io, s);
    conn_init(&s->backend, -1, on_backend_io, s);
    ev_init(&s->timer, on_timeout);
    s->timer.data = s;
    s->tls_mode = "none";
    snprintf(s->too_many_errors, sizeof(s->too_many_errors),
             "421 4.7.0 %s Error: too many errors; closing\r\n", s->cfg->hostname);
    return s;
}

void session_begin(struct session *s) {
    log_info("session=%s event=connect client=%s port=%u listener=%s local_port=%u", s->id,
             s->client_ip, s->client_port, s->listener->name, s->local_port);
    if (s->listener->tls == TLS_MODE_IMPLICIT && !start_client_tls(s, "implicit")) {
        s->client_error = 1;
        s->result = "tls_setup_failed";
        session_set_state(s, STATE_DEAD);
        session_run(s);
        return;
    }
    if (s->cfg->pregreet == PREGREET_REJECT && s->cfg->pregreet_wait > 0) {
        /* Listen before speaking: a client that talks now is refused
         * before the backend ever hears of it. */
        session_set_state(s, STATE_GREET_WAIT);
    } else {
        connect_backend(s);
    }
    session_run(s);
}

/* connect_backend starts the backend connection (and queues the PROXY
 * header, which goes first). */
static void connect_backend(struct session *s) {
    session_set_state(s, STATE_CONNECTING);
    int bfd = net_connect(&s->cfg->backend.addr);
    if (bfd < 0) {
        log_warning("session=%s event=backend_connect_failed backend=%s error=\"%s\"", s->id,
                    s->cfg->backend.address, strerror(errno));
        session_fail(s, "4.4.1", "Mail backend unavailable, try again later",
                     "backend_unavailable");
    } else {
        conn_init(&s->backend, bfd, on_backend_io, s);
        send_proxy_header(s);
    }
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
