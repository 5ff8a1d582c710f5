/*
 * session_int.h - the inside of a session, shared by its three files and
 * included by nothing else:
 *
 *   session.c          state, failure, the run loop, timers, lifecycle
 *   session_client.c   the command table, client input, TLS with the client
 *   session_backend.c  the FIFO of expected replies and what each backend
 *                      reply does, header injection, XCLIENT/PROXY
 *   session_tls.c      TLS with the client: start, handshake, outcome
 *   session_summary.c  the summary of a finished session, its log line,
 *                      the per-message counters
 *
 * The state machine is one enum and one mutator (session_set_state); the
 * commands are one table (command_table); the pending replies are one
 * table (pending_rules).
 */
#ifndef SMTP_TLS_PROXY_SESSION_INT_H
#define SMTP_TLS_PROXY_SESSION_INT_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/conn.h"
#include "obs/metrics.h"
#include "protocol/data_scan.h"
#include "daemon/dns.h"
#include "daemon/geoip.h"
#include "protocol/headers.h"
#include "protocol/scope.h"
#include "daemon/session.h"
#include "protocol/smtp_reply.h"

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
    STATE_PROXY_WAIT = 9, /* the load balancer's PROXY header (session_proxy.c) */
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
 * has arrived: a minimum data rate against slow-drip clients (ARCHITECTURE.md §7). */
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
    /* Several backends (daemon/backends.h): the one in use
     * (cfg->backend.targets[backend_target]), those this session tried
     * (bit i: targets[i]) and how many tries that was. */
    size_t backend_target;
    uint64_t backend_tried;
    unsigned backend_tries;
    char client_ip[64];
    unsigned client_port;
    struct net_addr client_addr;
    struct net_addr local_addr;
    struct geoip_result geo;
    enum addr_scope scope;
    int client_is_ipv6;
    unsigned local_port;
    /* Reverse DNS (daemon/dns.h), started at accept: |rdns| is the
     * lookup while it runs. XCLIENT waits for it (xclient_waiting); the
     * Received header and the log take what is known when they are
     * written. */
    struct dns_lookup *rdns;
    enum dns_status rdns_status;        /* once answered; DNS_NO_NAME when off */
    unsigned xclient_waiting : 1;       /* the backend greeted; XCLIENT waits for |rdns| */
    char client_name[DNS_NAME_MAX + 1]; /* forward-confirmed; "" when none */
    /* The inbound PROXY header (session_proxy.c): what was taken of it. */
    uint8_t *proxy_buf;
    size_t proxy_have;
    ev_tstamp proxy_deadline;
    unsigned admitted : 1;              /* counted in the per-client table */

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
    char shutdown_reply[HEADERS_VALUE_MAX + 64];
    unsigned message_open : 1;        /* 354 seen, the dot's reply not yet */
    unsigned long long message_bytes; /* of the open message, from the client */

    enum client_tls tls;
    const char *tls_mode;             /* "none", "starttls", "implicit" */
    char tls_version[16];
    char tls_cipher[64];
    char tls_group[32];
    char sni[256];                    /* raw; sanitised wherever it is written */
    size_t injected_bytes;            /* plaintext sent after STARTTLS */
    /* The STARTTLS failure memory (daemon/starttls_memory.h), asked once
     * per session when STARTTLS would be offered or is sent. */
    unsigned starttls_decided : 1;
    unsigned starttls_withheld : 1;
    unsigned starttls_remembered : 1; /* withheld by a remembered failure */
    struct redis_lookup *redis_lookup;  /* the fleet's memory asked, not answered yet */
    int redis_answer;                   /* enum redis_answer once answered */
    unsigned mail_attempted : 1;      /* the client sent MAIL at least once */
    const char *starttls_note;        /* none, offered, withheld, used, failed: event=end */
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

/* ---- session.c: state, failure, the run loop, timers, lifecycle ---- */

/* session_set_state is the one place the state changes. */
void session_set_state(struct session *s, enum session_state next);
const char *session_state_name(enum session_state state);
/* session_over: closing or dead; nothing more is processed. */
int session_over(const struct session *s);
/* to_client queues bytes for the client (dropped once it is unwritable). */
void to_client(struct session *s, const char *p, size_t n);
void to_client_str(struct session *s, const char *p);
/* session_close_backend drops the backend connection. */
void session_close_backend(struct session *s);
/* session_set_client makes |client| (and |local|, the address it
 * reached) the session's client: addresses, text, GeoIP and scope. */
void session_set_client(struct session *s, const struct net_addr *client,
                        const struct net_addr *local);
/* session_begin_identified starts the session once its client is known
 * (at once, or after the PROXY header). */
void session_begin_identified(struct session *s);
/* session_fail ends the session with "421 <enh> <host> <text>". */
void session_fail(struct session *s, const char *enh, const char *text, const char *result);
/* ---- session_summary.c: the summary, the end line, message counters ---- */

/* session_summarize describes |s| as it ends (strings borrowed from |s|). */
void session_summarize(const struct session *s, struct session_summary *m);
/* session_listener_index is the listener's index in the configuration. */
size_t session_listener_index(const struct session *s);
/* session_count_message counts the open message with |result|. */
void session_count_message(struct session *s, enum metrics_result result);
/* session_run feeds the machine to a fixed point; may free |s|. */
void session_run(struct session *s);
void on_backend_io(struct ev_loop *loop, ev_io *w, int revents);

/* ---- session_backend.c: expected replies and the backend side ---- */

/* fifo_push queues what the next reply answers (bounded: asserted). */
void fifo_push(struct session *s, enum pending_kind kind, const char *text, int close_after);
/* forward sends a command line to the backend and expects its reply. */
void forward(struct session *s, const char *line, size_t len, enum pending_kind kind);
/* reply_local queues the proxy's own reply, in command order. */
void reply_local(struct session *s, const char *text, int close_after);
/* drain_local writes the proxy's replies that reached the FIFO's head. */
void drain_local(struct session *s);
/* process_backend_input matches complete backend replies to the FIFO. */
void process_backend_input(struct session *s);
/* connect_backend opens the backend connection (PROXY header first): to
 * the target the pool picks, or after STARTTLS to the one in use. */
void connect_backend(struct session *s);
void backend_connected(struct session *s);
/* backend_failed: the backend connection failed before its greeting
 * (refused, timed out, closed, or a 4xx/5xx greeting the backend gave
 * without knowing the client). The target is marked down; before the
 * client was greeted the next one is tried (returns 1). Otherwise
 * (returns 0) the session has failed with the proxy's own 421, except
 * for a 4xx/5xx greeting on the connection opened after STARTTLS, which
 * the caller ends (backend_restarted). */
int backend_failed(struct session *s, enum backend_failure why, const char *detail);
/* backend_restart ends the backend connection at STARTTLS. */
void backend_restart(struct session *s);
/* backend_name_known sends the XCLIENT that waited for the reverse lookup. */
void backend_name_known(struct session *s);

/* ---- session_client.c: commands, client input, TLS with the client ---- */

/* process_client_input runs commands, SASL lines and message data. */
void process_client_input(struct session *s);
/* accept_helo records an EHLO/HELO the backend accepted. */
void accept_helo(struct session *s, int esmtp);
/* starttls_withheld says whether STARTTLS is withheld from this client
 * (remembered failure or never_offer); decided, logged once. */
int starttls_withheld(struct session *s);

/* starttls_memory_begin asks the fleet's memory (Redis) about the
 * client as soon as it is known; starttls_memory_waiting: an EHLO reply
 * must wait for the answer (at most redis_timeout);
 * starttls_memory_session_gone cancels the question. */
void starttls_memory_begin(struct session *s);
int starttls_memory_waiting(const struct session *s);
void starttls_memory_session_gone(struct session *s);

/* starttls_memory_session_end releases a remembered sender that left
 * without MAIL when STARTTLS was withheld (it requires TLS). */
void starttls_memory_session_end(struct session *s);

/* client_sent_nothing: no TLS octet from the client since the handshake
 * began (no ClientHello). */
int client_sent_nothing(const struct session *s);

/* starttls_begin answers STARTTLS (every earlier reply is out). */
void starttls_begin(struct session *s);
/* pregreet_check notices a client that talked before its greeting. */
void pregreet_check(struct session *s);
/* ---- session_proxy.c: the inbound PROXY protocol ---- */

/* proxy_header_begin: 1 when the listener expects a PROXY header (the
 * session waits for it, or was refused), 0 to go on at once. */
int proxy_header_begin(struct session *s);
/* proxy_header_read takes what arrived of the header. */
void proxy_header_read(struct session *s);
void proxy_header_timeout(struct session *s);

/* ---- session_tls.c: TLS with the client ---- */

int start_client_tls(struct session *s, const char *mode);
void client_handshake(struct session *s);
void tls_failed(struct session *s, const char *reason);

#endif
