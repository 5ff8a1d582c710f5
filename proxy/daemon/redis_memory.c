/*
 * redis_memory.c - the shared STARTTLS failure memory's Redis client,
 * one per worker loop (redis_memory.h).
 *
 * hiredis 0.14's asynchronous API has no timeouts of its own: the
 * connect + greeting bound (handshake), each lookup's deadline and the
 * stall watchdog are ev_timers of this module.
 *
 * Who owns what, so that nothing is used after it is freed:
 * - Every command sent (AUTH, PING, GET, SET, DEL) has a record, struct
 *   redis_lookup, which is hiredis's privdata for it. hiredis calls its
 *   callback exactly once: with the reply, or with NULL when the context
 *   is freed or lost. That callback, on_reply, is the only place a record
 *   is freed. A caller's handle is a record: cancelling it, or its
 *   deadline expiring, only clears its callback (and stops its timer);
 *   the record waits for hiredis, and a late reply finds no one to tell.
 * - While its context is the current one (r->ac), a record is linked in
 *   r's list (oldest first, the order Redis answers in), which gives the
 *   in-flight count and the watchdog's oldest age. A context being
 *   dropped is detached first: r->ac = NULL and the list emptied, so the
 *   NULL replies hiredis then delivers are recognised as the old
 *   context's ("ac != r->ac") and only free their records (a lookup still
 *   waiting hears REDIS_UNKNOWN). A context is alive whenever hiredis
 *   calls back for it, so comparing its address with r->ac is sound.
 * - A context is dropped in two ways. hiredis drops it (EOF, a read
 *   error, connect refused): the first NULL reply, a failed connect
 *   callback or the disconnect callback, whichever comes first, detaches
 *   it (connection_lost), and hiredis frees it; we must not. We drop it
 *   (AUTH refused, a bad PING reply, the handshake or stall timer, a
 *   reconfiguration): detach, then redisAsyncFree, which hiredis defers
 *   to the end of the callback when called from one. Never from the
 *   connect or disconnect callbacks.
 * - r outlives every context: redis_memory_free frees the current one
 *   (its records with it) before r.
 *
 * A reply nobody asked for: hiredis 0.14 asserts (aborts the process) on
 * a non-error reply when no callback is pending. The reader's object
 * functions are wrapped (guarded_fns) so that such a reply is refused
 * while it is parsed: the reader then fails, hiredis drops the context
 * as on any read error, and this module says why.
 */
#include "daemon/redis_memory.h"

#include <ev.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libev.h>

#include "core/addr.h"
#include "core/log.h"

/* The value redis_memory_record writes: reason, time, hostname. */
#define VALUE_REASON_MAX 63
#define HOSTNAME_TEXT_MAX 255
#define VALUE_MAX (VALUE_REASON_MAX + HOSTNAME_TEXT_MAX + 64)
#define REASON_TEXT_MAX 200

enum rm_state {
    RM_IDLE = 0,   /* no context: waiting for a retry, or no address */
    RM_CONNECTING, /* connect, AUTH, PING in progress */
    RM_UP,         /* PING answered */
};

enum rm_kind { RK_AUTH, RK_PING, RK_GET, RK_SET, RK_DEL };

/* One command sent; for RK_GET, the caller's handle too. */
struct redis_lookup {
    struct redis_memory *r;
    struct redis_lookup *prev, *next; /* r's list, while sent on r->ac */
    unsigned linked : 1;
    enum rm_kind kind;
    double sent;       /* ev_now when sent */
    ev_timer deadline; /* RK_GET: redis_timeout */
    void (*cb)(void *arg, enum redis_answer a); /* NULL: nobody is waiting */
    void *arg;
};

struct redis_memory {
    struct ev_loop *loop;
    int worker_id;
    char *address;  /* as configured; NULL: none */
    char *password; /* NULL: no AUTH */
    char *prefix;
    char *hostname;
    double timeout;

    redisAsyncContext *ac; /* the current context; NULL in RM_IDLE */
    enum rm_state state;
    int logged;              /* the last transition logged: 0 none, 1 up, 2 down */
    int write_error_logged;  /* an error reply to SET or DEL, on this connection */
    int unsolicited;         /* the reply guard refused a reply on r->ac */
    unsigned long attempts;  /* connections attempted */
    double backoff;          /* the delay of the next retry */
    ev_timer retry;          /* the next connection attempt */
    ev_timer handshake;      /* connect + AUTH + PING */
    ev_timer watchdog;       /* the oldest command's reply is overdue */
    struct redis_lookup *head, *tail;
    unsigned inflight;       /* records linked */
    redisReplyObjectFunctions *hiredis_fns; /* the reader's own, called by guarded_fns */

    atomic_ullong lookups, remembered, late, errors, reconnects, unavailable;
    atomic_int up;
};

static void count(atomic_ullong *c) {
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* ---- the reply guard ---- */

static struct redis_memory *task_owner(const redisReadTask *task) {
    const redisAsyncContext *ac = task->privdata;
    return ac->data;
}

/* reply_wanted says whether the reply being parsed has a callback: only
 * a top-level object can be one nobody asked for. */
static int reply_wanted(const redisReadTask *task) {
    const redisAsyncContext *ac = task->privdata;
    if (task->parent != NULL || ac->replies.head != NULL) {
        return 1;
    }
    task_owner(task)->unsolicited = 1;
    return 0; /* NULL: the reader fails ("out of memory"), hiredis drops the context */
}

static void *guard_string(const redisReadTask *task, char *str, size_t len) {
    return reply_wanted(task) ? task_owner(task)->hiredis_fns->createString(task, str, len)
                              : NULL;
}

static void *guard_array(const redisReadTask *task, int elements) {
    return reply_wanted(task) ? task_owner(task)->hiredis_fns->createArray(task, elements)
                              : NULL;
}

static void *guard_integer(const redisReadTask *task, long long value) {
    return reply_wanted(task) ? task_owner(task)->hiredis_fns->createInteger(task, value)
                              : NULL;
}

static void *guard_nil(const redisReadTask *task) {
    return reply_wanted(task) ? task_owner(task)->hiredis_fns->createNil(task) : NULL;
}

/* Read-only after initialisation: shared by every worker's contexts. */
static redisReplyObjectFunctions guarded_fns = {
    guard_string, guard_array, guard_integer, guard_nil, freeReplyObject,
};

/* ---- the list of commands in flight ---- */

static void req_link(struct redis_memory *r, struct redis_lookup *q) {
    q->prev = r->tail;
    q->next = NULL;
    if (r->tail != NULL) {
        r->tail->next = q;
    } else {
        r->head = q;
    }
    r->tail = q;
    q->linked = 1;
    r->inflight++;
}

static void req_unlink(struct redis_memory *r, struct redis_lookup *q) {
    if (q->prev != NULL) {
        q->prev->next = q->next;
    } else {
        r->head = q->next;
    }
    if (q->next != NULL) {
        q->next->prev = q->prev;
    } else {
        r->tail = q->prev;
    }
    q->prev = q->next = NULL;
    q->linked = 0;
    r->inflight--;
}

/* ---- the connection's states ---- */

static void schedule_retry(struct redis_memory *r) {
    ev_timer_stop(r->loop, &r->retry);
    if (r->address == NULL) {
        return;
    }
    ev_timer_set(&r->retry, r->backoff, 0.);
    ev_timer_start(r->loop, &r->retry);
    r->backoff = r->backoff * 2 > REDIS_BACKOFF_MAX ? REDIS_BACKOFF_MAX : r->backoff * 2;
}

/* detach makes |r| forget its context: its records stay with hiredis. */
static void detach(struct redis_memory *r) {
    while (r->head != NULL) {
        req_unlink(r, r->head);
    }
    r->ac = NULL;
    r->state = RM_IDLE;
    atomic_store(&r->up, 0);
    ev_timer_stop(r->loop, &r->handshake);
    ev_timer_stop(r->loop, &r->watchdog);
}

/* quotable copies |text| for a quoted log value: blanks stay, bytes
 * that are not printable ASCII, quotes and backslashes become '?' (a
 * Redis error text, or a fake Redis's, is the network's). */
static void quotable(const char *text, char *out, size_t outlen) {
    size_t o = 0;
    for (; *text != '\0' && o + 1 < outlen; text++) {
        unsigned char c = (unsigned char)*text;
        out[o++] = c >= 0x20 && c <= 0x7e && c != '"' && c != '\\' ? (char)c : '?';
    }
    out[o] = '\0';
}

/* note_down logs a transition to down (once), the rest at debug. */
static void note_down(struct redis_memory *r, const char *reason) {
    char why[REASON_TEXT_MAX];
    quotable(reason, why, sizeof(why));
    if (r->logged != 2) {
        log_warning("event=redis_down worker=%d redis=%s reason=\"%s\"", r->worker_id,
                    r->address != NULL ? r->address : "none", why);
        r->logged = 2;
    } else {
        log_debug("event=redis_retry_failed worker=%d redis=%s reason=\"%s\" next_retry=%.1f",
                  r->worker_id, r->address != NULL ? r->address : "none", why, r->backoff);
    }
}

static void became_up(struct redis_memory *r) {
    ev_timer_stop(r->loop, &r->handshake);
    r->state = RM_UP;
    r->backoff = REDIS_BACKOFF_MIN;
    r->write_error_logged = 0;
    atomic_store(&r->up, 1);
    if (r->logged != 1) {
        log_info("event=redis_up worker=%d redis=%s", r->worker_id, r->address);
        r->logged = 1;
    }
    if (r->head != NULL && !ev_is_active(&r->watchdog)) {
        ev_timer_set(&r->watchdog, REDIS_STALL_TIMEOUT, 0.);
        ev_timer_start(r->loop, &r->watchdog);
    }
}

/* connection_lost: hiredis is dropping r->ac (and will free it). */
static void connection_lost(struct redis_memory *r, const redisAsyncContext *ac) {
    char reason[REASON_TEXT_MAX];
    int connected = (ac->c.flags & REDIS_CONNECTED) != 0;
    if (r->unsolicited) {
        count(&r->errors);
        snprintf(reason, sizeof(reason), "a reply that no command asked for (not Redis?)");
    } else if (ac->c.err != 0) {
        snprintf(reason, sizeof(reason), "%s%s", connected ? "" : "connect: ", ac->c.errstr);
    } else {
        snprintf(reason, sizeof(reason), "connection closed");
    }
    detach(r);
    note_down(r, reason);
    schedule_retry(r);
}

/* fail_connection: we drop r->ac. From a timer or a reply callback only. */
static void fail_connection(struct redis_memory *r, const char *reason) {
    redisAsyncContext *ac = r->ac;
    detach(r);
    note_down(r, reason);
    schedule_retry(r);
    /* At once from a timer (records answered from here), at the end of
     * the callback from one. */
    redisAsyncFree(ac);
}

/* status_is: |reply| is the status reply |text|. */
static int status_is(const redisReply *reply, const char *text) {
    return reply != NULL && reply->type == REDIS_REPLY_STATUS && reply->str != NULL &&
           strcmp(reply->str, text) == 0;
}

/* reply_text describes an unexpected reply, for a log. */
static void reply_text(const redisReply *reply, char *out, size_t outlen) {
    switch (reply->type) {
    case REDIS_REPLY_ERROR:
        snprintf(out, outlen, "error reply: %.120s", reply->str != NULL ? reply->str : "");
        break;
    case REDIS_REPLY_STATUS:
        snprintf(out, outlen, "status reply: %.120s", reply->str != NULL ? reply->str : "");
        break;
    case REDIS_REPLY_STRING:
        snprintf(out, outlen, "a string reply");
        break;
    case REDIS_REPLY_INTEGER:
        snprintf(out, outlen, "an integer reply");
        break;
    case REDIS_REPLY_NIL:
        snprintf(out, outlen, "a nil reply");
        break;
    case REDIS_REPLY_ARRAY:
        snprintf(out, outlen, "an array reply");
        break;
    default:
        snprintf(out, outlen, "a reply of type %d", reply->type);
        break;
    }
}

/* on_reply is hiredis's callback for every record (the only free). */
static void on_reply(redisAsyncContext *ac, void *reply_arg, void *privdata) {
    struct redis_lookup *q = privdata;
    struct redis_memory *r = q->r;
    const redisReply *reply = reply_arg;
    int current = ac == r->ac;
    if (q->linked) {
        req_unlink(r, q);
    }
    if (reply == NULL && current) {
        /* hiredis is freeing the context: lost, or refused at connect. */
        connection_lost(r, ac);
        current = 0;
    }
    char why[REASON_TEXT_MAX];
    enum redis_answer answer = REDIS_UNKNOWN;
    switch (q->kind) {
    case RK_AUTH:
        if (current && !status_is(reply, "OK")) {
            count(&r->errors);
            char text[160];
            reply_text(reply, text, sizeof(text));
            snprintf(why, sizeof(why), "AUTH refused: %s", text);
            fail_connection(r, why);
        }
        break;
    case RK_PING:
        if (current && status_is(reply, "PONG")) {
            became_up(r);
        } else if (current) {
            count(&r->errors);
            char text[160];
            reply_text(reply, text, sizeof(text));
            snprintf(why, sizeof(why), "PING answered with %s", text);
            fail_connection(r, why);
        }
        break;
    case RK_GET:
        if (reply == NULL) {
            answer = REDIS_UNKNOWN;
        } else if (reply->type == REDIS_REPLY_NIL) {
            answer = REDIS_NOT_REMEMBERED;
        } else if (reply->type == REDIS_REPLY_STRING) {
            answer = REDIS_REMEMBERED;
        } else {
            /* An error (WRONGTYPE: someone stored a list there), a
             * status, an integer, an array: not an answer. */
            count(&r->errors);
            if (log_enabled(LOG_LEVEL_DEBUG)) {
                char text[160];
                reply_text(reply, text, sizeof(text));
                quotable(text, why, sizeof(why));
                log_debug("event=redis_bad_reply worker=%d command=GET reply=\"%s\"",
                          r->worker_id, why);
            }
        }
        break;
    case RK_SET:
    case RK_DEL:
        if (reply != NULL &&
            (q->kind == RK_SET ? !status_is(reply, "OK") : reply->type != REDIS_REPLY_INTEGER)) {
            count(&r->errors);
            if (!r->write_error_logged) {
                /* READONLY (a replica), OOM (maxmemory): once a connection. */
                r->write_error_logged = 1;
                char text[160];
                reply_text(reply, text, sizeof(text));
                quotable(text, why, sizeof(why));
                log_warning("event=redis_write_failed worker=%d redis=%s command=%s reply=\"%s\"",
                            r->worker_id, r->address != NULL ? r->address : "none",
                            q->kind == RK_SET ? "SET" : "DEL", why);
            }
        }
        break;
    }
    void (*cb)(void *, enum redis_answer) = q->cb;
    void *arg = q->arg;
    if (cb != NULL) {
        ev_timer_stop(r->loop, &q->deadline);
    }
    free(q);
    if (cb != NULL) {
        if (answer == REDIS_REMEMBERED) {
            count(&r->remembered);
        }
        cb(arg, answer);
    }
}

static void on_connect(const redisAsyncContext *ac, int status) {
    struct redis_memory *r = ac->data;
    if (ac == r->ac && status != REDIS_OK) {
        connection_lost(r, ac); /* hiredis frees it on return */
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    (void)status;
    struct redis_memory *r = ac->data;
    if (ac == r->ac) {
        connection_lost(r, ac); /* lost with nothing in flight */
    }
}

/* send_command sends |q| on r->ac. Returns 0 (|q| still the caller's)
 * when hiredis refused it. */
static int send_command(struct redis_memory *r, struct redis_lookup *q, int argc,
                        const char **argv, const size_t *lens) {
    q->r = r;
    if (r->ac == NULL || redisAsyncCommandArgv(r->ac, on_reply, q, argc, argv, lens) != REDIS_OK) {
        return 0;
    }
    q->sent = ev_now(r->loop);
    req_link(r, q);
    if (!ev_is_active(&r->watchdog)) {
        ev_timer_set(&r->watchdog, REDIS_STALL_TIMEOUT, 0.);
        ev_timer_start(r->loop, &r->watchdog);
    }
    return 1;
}

/* send_simple sends a command whose record nobody holds. */
static int send_simple(struct redis_memory *r, enum rm_kind kind, int argc, const char **argv,
                       const size_t *lens) {
    struct redis_lookup *q = calloc(1, sizeof(*q));
    if (q == NULL) {
        return 0;
    }
    q->kind = kind;
    if (!send_command(r, q, argc, argv, lens)) {
        free(q);
        return 0;
    }
    return 1;
}

/* start_connect makes a new context for r->address and greets it. */
static void start_connect(struct redis_memory *r) {
    if (r->address == NULL || r->ac != NULL) {
        return;
    }
    if (r->attempts++ > 0) {
        count(&r->reconnects);
    }
    r->unsolicited = 0;
    redisAsyncContext *ac;
    int tcp = strncmp(r->address, "unix:", 5) != 0;
    if (!tcp) {
        ac = redisAsyncConnectUnix(r->address + 5);
    } else {
        struct net_addr a;
        char ip[64], why[200];
        unsigned port = 0;
        if (!net_addr_parse(r->address, &a, why, sizeof(why))) {
            /* The configuration checked it: not retried. */
            note_down(r, why);
            return;
        }
        net_addr_format(&a, ip, sizeof(ip), &port);
        ac = redisAsyncConnect(ip, (int)port);
    }
    if (ac == NULL || ac->err != 0) {
        char why[REASON_TEXT_MAX];
        snprintf(why, sizeof(why), "connect: %s", ac != NULL ? ac->errstr : "out of memory");
        if (ac != NULL) {
            redisAsyncFree(ac);
        }
        note_down(r, why);
        schedule_retry(r);
        return;
    }
    /* hiredis opens its socket without FD_CLOEXEC. */
    int flags = fcntl(ac->c.fd, F_GETFD);
    if (flags >= 0) {
        (void)fcntl(ac->c.fd, F_SETFD, flags | FD_CLOEXEC);
    }
    if (tcp) {
        /* A peer that vanished without a RST is found while idle too.
         * (Not on a unix socket: hiredis would take EOPNOTSUPP as the
         * context's error.) */
        (void)redisEnableKeepAlive(&ac->c);
    }
    ac->data = r;
    r->hiredis_fns = ac->c.reader->fn;
    ac->c.reader->fn = &guarded_fns;
    ac->c.reader->privdata = ac; /* (redisReaderSetPrivdata casts a pointer to int) */
    if (redisLibevAttach(r->loop, ac) != REDIS_OK) {
        redisAsyncFree(ac);
        note_down(r, "connect: cannot attach to the loop");
        schedule_retry(r);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    r->ac = ac;
    r->state = RM_CONNECTING;
    ev_timer_set(&r->handshake, REDIS_CONNECT_TIMEOUT, 0.);
    ev_timer_start(r->loop, &r->handshake);
    /* Sent once connected; PING's answer says the connection is ready. */
    int ok = 1;
    if (r->password != NULL) {
        const char *argv[] = {"AUTH", r->password};
        const size_t lens[] = {4, strlen(r->password)};
        ok = send_simple(r, RK_AUTH, 2, argv, lens);
    }
    if (ok) {
        const char *argv[] = {"PING"};
        const size_t lens[] = {4};
        ok = send_simple(r, RK_PING, 1, argv, lens);
    }
    if (!ok) {
        fail_connection(r, "out of memory");
    }
}

static void on_retry(struct ev_loop *loop, ev_timer *t, int revents) {
    (void)loop;
    (void)revents;
    struct redis_memory *r = t->data;
    if (r->ac != NULL) {
        /* A reconfiguration (logged as event=redis_reconfigured): the
         * old connection goes now, from the loop. */
        redisAsyncContext *ac = r->ac;
        detach(r);
        redisAsyncFree(ac); /* lookups on it hear REDIS_UNKNOWN */
        if (ev_is_active(&r->retry)) {
            return; /* reconfigured again from a callback: that timer connects */
        }
    }
    start_connect(r);
}

static void on_handshake_timeout(struct ev_loop *loop, ev_timer *t, int revents) {
    (void)loop;
    (void)revents;
    struct redis_memory *r = t->data;
    if (r->ac == NULL || r->state != RM_CONNECTING) {
        return;
    }
    char why[REASON_TEXT_MAX];
    snprintf(why, sizeof(why), "%s within %.1fs",
             (r->ac->c.flags & REDIS_CONNECTED) ? "no answer to PING" : "connect: no connection",
             REDIS_CONNECT_TIMEOUT);
    fail_connection(r, why);
}

static void on_watchdog(struct ev_loop *loop, ev_timer *t, int revents) {
    (void)revents;
    struct redis_memory *r = t->data;
    if (r->ac == NULL || r->state != RM_UP || r->head == NULL) {
        return; /* the handshake has its own timer */
    }
    double age = ev_now(loop) - r->head->sent;
    if (age >= REDIS_STALL_TIMEOUT - 0.001) {
        char why[REASON_TEXT_MAX];
        snprintf(why, sizeof(why), "no reply for %.1fs, %u commands in flight", age, r->inflight);
        fail_connection(r, why);
        return;
    }
    ev_timer_set(t, REDIS_STALL_TIMEOUT - age, 0.);
    ev_timer_start(loop, t);
}

/* ---- configuration ---- */

static int same_text(const char *a, const char *b) {
    return a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0;
}

/* replace_text sets *at to a copy of |text| (NULL: NULL). 0: out of
 * memory, *at unchanged. */
static int replace_text(char **at, const char *text) {
    char *copy = NULL;
    if (text != NULL && (copy = strdup(text)) == NULL) {
        return 0;
    }
    free(*at);
    *at = copy;
    return 1;
}

static double timeout_of(const struct config *cfg) {
    double t = cfg->memory.redis_timeout;
    return t >= 0.001 ? t : 0.001; /* also NaN */
}

struct redis_memory *redis_memory_new(struct ev_loop *loop, int worker_id,
                                      const struct config *cfg) {
    if (cfg->memory.redis == NULL) {
        return NULL;
    }
    struct redis_memory *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return NULL;
    }
    r->loop = loop;
    r->worker_id = worker_id;
    r->timeout = timeout_of(cfg);
    r->backoff = REDIS_BACKOFF_MIN;
    if (!replace_text(&r->address, cfg->memory.redis) ||
        !replace_text(&r->password, cfg->memory.redis_password) ||
        !replace_text(&r->prefix, cfg->memory.redis_prefix != NULL ? cfg->memory.redis_prefix : "") ||
        !replace_text(&r->hostname, cfg->hostname != NULL ? cfg->hostname : "")) {
        free(r->address);
        free(r->password);
        free(r->prefix);
        free(r->hostname);
        free(r);
        return NULL;
    }
    ev_init(&r->retry, on_retry);
    r->retry.data = r;
    ev_init(&r->handshake, on_handshake_timeout);
    r->handshake.data = r;
    ev_init(&r->watchdog, on_watchdog);
    r->watchdog.data = r;
    /* The first connection from the loop, in the worker's thread. */
    ev_timer_set(&r->retry, 0., 0.);
    ev_timer_start(loop, &r->retry);
    return r;
}

void redis_memory_free(struct redis_memory *r) {
    if (r == NULL) {
        return;
    }
    ev_timer_stop(r->loop, &r->retry);
    for (struct redis_lookup *q = r->head; q != NULL; q = q->next) {
        if (q->cb != NULL) {
            ev_timer_stop(r->loop, &q->deadline);
            q->cb = NULL; /* free never calls back */
        }
    }
    redisAsyncContext *ac = r->ac;
    detach(r);
    if (ac != NULL) {
        redisAsyncFree(ac); /* its records are freed in on_reply */
    }
    free(r->address);
    free(r->password);
    free(r->prefix);
    free(r->hostname);
    free(r);
}

void redis_memory_configure(struct redis_memory *r, const struct config *cfg) {
    if (r == NULL) {
        return;
    }
    r->timeout = timeout_of(cfg);
    /* Out of memory: the old prefix or hostname stays. */
    (void)replace_text(&r->prefix, cfg->memory.redis_prefix != NULL ? cfg->memory.redis_prefix : "");
    (void)replace_text(&r->hostname, cfg->hostname != NULL ? cfg->hostname : "");
    if (same_text(r->address, cfg->memory.redis) &&
        same_text(r->password, cfg->memory.redis_password)) {
        return;
    }
    char *address = NULL, *password = NULL;
    if (!replace_text(&address, cfg->memory.redis) ||
        !replace_text(&password, cfg->memory.redis_password)) {
        free(address);
        log_error("event=redis_reconfigure_failed worker=%d reason=out_of_memory", r->worker_id);
        return;
    }
    log_info("event=redis_reconfigured worker=%d redis=%s was=%s", r->worker_id,
             address != NULL ? address : "none", r->address != NULL ? r->address : "none");
    free(r->address);
    free(r->password);
    r->address = address;
    r->password = password;
    r->backoff = REDIS_BACKOFF_MIN;
    r->attempts = 0;
    r->logged = 0; /* the new address's first state is logged */
    /* From the loop: on_retry drops the old connection, then connects. */
    ev_timer_stop(r->loop, &r->retry);
    ev_timer_set(&r->retry, 0., 0.);
    ev_timer_start(r->loop, &r->retry);
}

/* ---- lookups and writes ---- */

/* key_text writes prefix + cidr text into |out|. 0: too long (never with
 * a sane prefix). */
static int key_text(const struct redis_memory *r, const struct cidr *key, char *out,
                    size_t outlen, size_t *len) {
    char cidr[CIDR_TEXT_MAX];
    cidr_format(key, cidr, sizeof(cidr));
    int n = snprintf(out, outlen, "%s%s", r->prefix, cidr);
    if (n < 0 || (size_t)n >= outlen) {
        return 0;
    }
    *len = (size_t)n;
    return 1;
}

static void on_deadline(struct ev_loop *loop, ev_timer *t, int revents) {
    (void)loop;
    (void)revents;
    struct redis_lookup *q = t->data;
    void (*cb)(void *, enum redis_answer) = q->cb;
    if (cb == NULL) {
        return;
    }
    /* The record waits for its reply (or the context's end) in hiredis. */
    q->cb = NULL;
    count(&q->r->late);
    cb(q->arg, REDIS_UNKNOWN);
}

/* sendable: up, room for one more command. */
static int sendable(struct redis_memory *r) {
    if (r->state != RM_UP || r->ac == NULL || r->inflight >= REDIS_MAX_INFLIGHT) {
        count(&r->unavailable);
        return 0;
    }
    return 1;
}

#define KEY_MAX 1024

struct redis_lookup *redis_memory_lookup(struct redis_memory *r, const struct cidr *key,
                                         void (*cb)(void *arg, enum redis_answer a),
                                         void *arg) {
    if (r == NULL || !sendable(r)) {
        return NULL;
    }
    char k[KEY_MAX];
    size_t klen;
    if (!key_text(r, key, k, sizeof(k), &klen)) {
        count(&r->unavailable);
        return NULL;
    }
    struct redis_lookup *q = calloc(1, sizeof(*q));
    if (q == NULL) {
        count(&r->unavailable);
        return NULL;
    }
    q->kind = RK_GET;
    q->cb = cb;
    q->arg = arg;
    ev_init(&q->deadline, on_deadline);
    q->deadline.data = q;
    const char *argv[] = {"GET", k};
    const size_t lens[] = {3, klen};
    if (!send_command(r, q, 2, argv, lens)) {
        free(q);
        count(&r->unavailable);
        return NULL;
    }
    count(&r->lookups);
    ev_timer_set(&q->deadline, r->timeout, 0.);
    ev_timer_start(r->loop, &q->deadline);
    return q;
}

void redis_memory_cancel(struct redis_lookup *l) {
    if (l == NULL || l->cb == NULL) {
        return;
    }
    ev_timer_stop(l->r->loop, &l->deadline);
    l->cb = NULL; /* freed when hiredis lets go of it */
}

/* value_word copies |text| into |out| as one word: blanks and bytes that
 * are not printable ASCII become '_'; "-" when empty. */
static void value_word(const char *text, char *out, size_t outlen, size_t max) {
    size_t n = 0;
    for (; text != NULL && text[n] != '\0' && n < max && n + 1 < outlen; n++) {
        unsigned char c = (unsigned char)text[n];
        out[n] = c > 0x20 && c < 0x7f ? (char)c : '_';
    }
    if (n == 0 && outlen > 1) {
        out[n++] = '-';
    }
    out[n] = '\0';
}

void redis_memory_record(struct redis_memory *r, const struct cidr *key, const char *reason,
                         double ttl) {
    if (r == NULL || !sendable(r)) {
        return;
    }
    char k[KEY_MAX];
    size_t klen;
    if (!key_text(r, key, k, sizeof(k), &klen)) {
        count(&r->unavailable);
        return;
    }
    char why[VALUE_REASON_MAX + 1], host[HOSTNAME_TEXT_MAX + 1];
    value_word(reason, why, sizeof(why), VALUE_REASON_MAX);
    value_word(r->hostname, host, sizeof(host), HOSTNAME_TEXT_MAX);
    char value[VALUE_MAX];
    int vlen = snprintf(value, sizeof(value), "reason=%s time=%lld proxy=%s", why,
                        (long long)time(NULL), host);
    /* Whole seconds, rounded up: at least 1 (also for NaN), at most ten years. */
    long long secs = 1;
    if (ttl > 315360000.0) {
        secs = 315360000;
    } else if (ttl > 1.0) {
        secs = (long long)ttl;
        if ((double)secs < ttl) {
            secs++;
        }
    }
    char ex[24];
    int exlen = snprintf(ex, sizeof(ex), "%lld", secs);
    const char *argv[] = {"SET", k, value, "EX", ex};
    const size_t lens[] = {3, klen, (size_t)vlen, 2, (size_t)exlen};
    if (!send_simple(r, RK_SET, 5, argv, lens)) {
        count(&r->unavailable);
    }
}

void redis_memory_forget(struct redis_memory *r, const struct cidr *key) {
    if (r == NULL || !sendable(r)) {
        return;
    }
    char k[KEY_MAX];
    size_t klen;
    if (!key_text(r, key, k, sizeof(k), &klen)) {
        count(&r->unavailable);
        return;
    }
    const char *argv[] = {"DEL", k};
    const size_t lens[] = {3, klen};
    if (!send_simple(r, RK_DEL, 2, argv, lens)) {
        count(&r->unavailable);
    }
}

/* ---- state ---- */

int redis_memory_up(const struct redis_memory *r) {
    return r != NULL && atomic_load(&r->up);
}

static unsigned long long read_count(const atomic_ullong *c) {
    return atomic_load_explicit(c, memory_order_relaxed);
}

void redis_memory_get_stats(const struct redis_memory *r, struct redis_memory_stats *out) {
    memset(out, 0, sizeof(*out));
    if (r == NULL) {
        return;
    }
    out->lookups = read_count(&r->lookups);
    out->remembered = read_count(&r->remembered);
    out->late = read_count(&r->late);
    out->errors = read_count(&r->errors);
    out->reconnects = read_count(&r->reconnects);
    out->unavailable = read_count(&r->unavailable);
    out->up = redis_memory_up(r);
}
