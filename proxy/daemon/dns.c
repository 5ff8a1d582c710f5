/*
 * dns.c - forward-confirmed reverse lookups on c-ares, driven by the
 * worker's libev loop (dns.h).
 *
 * A lookup is a PTR query for the client's address, then an A or AAAA
 * query for the first PTR name; the name is kept only when that answer
 * holds the client's address. ares_query is used for both, never
 * ares_gethostbyaddr: the latter reads /etc/hosts first and reports a
 * timeout as "not found", and a timeout must become [TEMPUNAVAIL].
 *
 * Who frees what, so that nothing calls into freed memory:
 * - A lookup holds a reference on its channel and counts the c-ares
 *   queries it has in flight. It is freed (maybe_free) once it has
 *   answered its caller or been cancelled, c-ares holds no query for it
 *   and its deadline timer is stopped. A cancelled lookup stays until
 *   c-ares calls back and is then dropped without a word.
 * - A channel is referenced by its lookups and, while it is the current
 *   one, by the resolver. One without references is freed by reap, which
 *   does nothing while a c-ares call is on the stack (depth > 0): every
 *   way in (a socket event, a timer, starting, cancelling) ends with it.
 * - The deadline is the lookup's own ev_timer: when it fires first the
 *   caller hears DNS_TEMP_FAIL, whatever c-ares is still trying.
 */
#include "daemon/dns.h"

#include <ares.h>
#include <ev.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/log.h"
#include "protocol/identity.h"

/* RFC 1035 3.2.2 and 3.2.4, RFC 3596 2.1. */
#define DNS_CLASS_IN 1
#define DNS_TYPE_A 1
#define DNS_TYPE_PTR 12
#define DNS_TYPE_AAAA 28

/* c-ares tries each query twice, half the lookup's time per try (the
 * second try is given double by c-ares): two sends fit in the deadline. */
#define DNS_TRIES 2
#define DNS_TRY_MIN_MS 50

struct dns_watch {
    ev_io io; /* first: the callback casts back */
    struct dns_channel *c;
    struct dns_watch *next;
};

struct dns_channel {
    struct dns_resolver *r;
    ares_channel ares;     /* NULL: it could not be made; lookups fail at once */
    char *servers;         /* what it was made for; NULL: the system's */
    int timeout_ms;
    unsigned refs;         /* its lookups, and 1 while it is the current one */
    int closing;           /* being destroyed: references no longer matter */
    struct dns_watch *watches;
    ev_timer timer;        /* c-ares's next retry or timeout */
    struct dns_channel *next;
};

struct dns_resolver {
    struct ev_loop *loop;
    struct dns_channel *channels; /* all, current first */
    struct dns_channel *current;
    unsigned depth;               /* c-ares calls on the stack */
};

struct dns_lookup {
    struct dns_channel *c;
    struct ip_addr addr;
    ev_timer deadline;
    unsigned queries;          /* c-ares queries in flight for it */
    unsigned starting : 1;     /* inside dns_reverse_start: answer later */
    unsigned answered : 1;     /* status and reason are set */
    unsigned delivered : 1;    /* the caller has been told */
    unsigned cancelled : 1;
    enum dns_status status;
    const char *reason;
    char name[DNS_NAME_MAX + 1];
    dns_done_fn done;
    void *arg;
};

const char *dns_status_name(enum dns_status status) {
    switch (status) {
    case DNS_CONFIRMED:
        return "confirmed";
    case DNS_NO_NAME:
        return "none";
    case DNS_TEMP_FAIL:
        return "tempfail";
    }
    return "unknown";
}

/* ---- channels ---- */

static pthread_once_t library_once = PTHREAD_ONCE_INIT;

static void library_init(void) {
    int rc = ares_library_init(ARES_LIB_INIT_ALL);
    if (rc != ARES_SUCCESS) {
        log_error("event=dns_init_failed reason=\"%s\"", ares_strerror(rc));
    }
}

static void channel_arm(struct dns_channel *c) {
    struct ev_loop *loop = c->r->loop;
    struct timeval tv;
    ev_timer_stop(loop, &c->timer);
    if (c->ares != NULL && ares_timeout(c->ares, NULL, &tv) != NULL) {
        double after = (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
        ev_timer_set(&c->timer, after > 0.001 ? after : 0.001, 0.);
        ev_timer_start(loop, &c->timer);
    }
}

/* reap frees every channel nobody references, unless c-ares is running. */
static void reap(struct dns_resolver *r);

static void channel_process(struct dns_channel *c, ares_socket_t rfd, ares_socket_t wfd) {
    struct dns_resolver *r = c->r;
    c->refs++; /* the callbacks may drop every other reference */
    r->depth++;
    ares_process_fd(c->ares, rfd, wfd);
    r->depth--;
    channel_arm(c);
    c->refs--;
    reap(r);
}

static void on_channel_io(struct ev_loop *loop, ev_io *w, int revents) {
    (void)loop;
    struct dns_watch *wa = (struct dns_watch *)w;
    int fd = w->fd;
    /* |wa| may be freed inside: c-ares closes sockets as it goes. */
    channel_process(wa->c, (revents & EV_READ) ? fd : ARES_SOCKET_BAD,
                    (revents & EV_WRITE) ? fd : ARES_SOCKET_BAD);
}

static void on_channel_timer(struct ev_loop *loop, ev_timer *t, int revents) {
    (void)loop;
    (void)revents;
    channel_process(t->data, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
}

/* on_sock_state is c-ares telling which of its sockets to watch. */
static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable) {
    struct dns_channel *c = data;
    struct ev_loop *loop = c->r->loop;
    struct dns_watch **at = &c->watches;
    while (*at != NULL && (*at)->io.fd != fd) {
        at = &(*at)->next;
    }
    struct dns_watch *wa = *at;
    if (!readable && !writable) {
        if (wa != NULL) {
            ev_io_stop(loop, &wa->io);
            *at = wa->next;
            free(wa);
        }
        return;
    }
    if (wa == NULL) {
        wa = calloc(1, sizeof(*wa));
        if (wa == NULL) {
            /* Unwatched, its query ends at the lookup's deadline. */
            log_error("event=dns_watch_failed reason=out_of_memory");
            return;
        }
        wa->c = c;
        ev_init(&wa->io, on_channel_io);
        wa->next = c->watches;
        c->watches = wa;
    }
    ev_io_stop(loop, &wa->io);
    ev_io_set(&wa->io, fd, (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
    ev_io_start(loop, &wa->io);
}

static void channel_free(struct dns_channel *c) {
    struct ev_loop *loop = c->r->loop;
    c->closing = 1;
    if (c->ares != NULL) {
        /* Queries still in flight call back with ARES_EDESTRUCTION and
         * their lookups are freed; sockets are closed (on_sock_state). */
        ares_destroy(c->ares);
        c->ares = NULL;
    }
    ev_timer_stop(loop, &c->timer);
    while (c->watches != NULL) {
        struct dns_watch *wa = c->watches;
        c->watches = wa->next;
        ev_io_stop(loop, &wa->io);
        free(wa);
    }
    free(c->servers);
    free(c);
}

static void reap(struct dns_resolver *r) {
    if (r->depth > 0) {
        return;
    }
    struct dns_channel **at = &r->channels;
    while (*at != NULL) {
        struct dns_channel *c = *at;
        if (c->refs == 0 && c != r->current) {
            *at = c->next;
            channel_free(c);
        } else {
            at = &c->next;
        }
    }
}

/* channel_new makes a channel for |servers| (NULL: resolv.conf). One
 * that c-ares refuses is kept too, without c-ares: it says so once and
 * its lookups fail at once, rather than logging every session. */
static struct dns_channel *channel_new(struct dns_resolver *r, const char *servers,
                                       int timeout_ms) {
    struct dns_channel *c = calloc(1, sizeof(*c));
    if (c == NULL || (servers != NULL && (c->servers = strdup(servers)) == NULL)) {
        free(c);
        return NULL;
    }
    c->r = r;
    c->timeout_ms = timeout_ms;
    ev_init(&c->timer, on_channel_timer);
    c->timer.data = c;
    pthread_once(&library_once, library_init);
    struct ares_options o;
    memset(&o, 0, sizeof(o));
    o.sock_state_cb = on_sock_state;
    o.sock_state_cb_data = c;
    o.timeout = timeout_ms / 2 > DNS_TRY_MIN_MS ? timeout_ms / 2 : DNS_TRY_MIN_MS;
    o.tries = DNS_TRIES;
    int rc = ares_init_options(&c->ares, &o,
                               ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (rc != ARES_SUCCESS) {
        log_error("event=dns_unavailable reason=\"%s\"", ares_strerror(rc));
        c->ares = NULL;
    } else if (servers != NULL && (rc = ares_set_servers_ports_csv(c->ares, servers)) !=
                                      ARES_SUCCESS) {
        log_error("event=dns_unavailable servers=%s reason=\"%s\"", servers, ares_strerror(rc));
        ares_destroy(c->ares);
        c->ares = NULL;
    }
    c->next = r->channels;
    r->channels = c;
    return c;
}

/* resolver_channel is the channel for |servers| and |timeout_ms|: the
 * current one, or a new one that becomes current (the old one lives on
 * while its lookups do). */
static struct dns_channel *resolver_channel(struct dns_resolver *r, const char *servers,
                                            int timeout_ms) {
    struct dns_channel *c = r->current;
    if (c != NULL && c->timeout_ms == timeout_ms &&
        (c->servers == NULL ? servers == NULL
                            : servers != NULL && strcmp(c->servers, servers) == 0)) {
        return c;
    }
    c = channel_new(r, servers, timeout_ms);
    if (c == NULL) {
        return NULL;
    }
    if (r->current != NULL) {
        r->current->refs--; /* reap frees it once its lookups are done */
    }
    r->current = c;
    c->refs++;
    return c;
}

/* ---- the resolver ---- */

struct dns_resolver *dns_resolver_new(struct ev_loop *loop) {
    struct dns_resolver *r = calloc(1, sizeof(*r));
    if (r != NULL) {
        r->loop = loop;
    }
    return r;
}

void dns_resolver_free(struct dns_resolver *r) {
    if (r == NULL) {
        return;
    }
    r->current = NULL;
    while (r->channels != NULL) {
        struct dns_channel *c = r->channels;
        r->channels = c->next;
        channel_free(c);
    }
    free(r);
}

/* ---- lookups ---- */

static void lookup_deliver(struct dns_lookup *l) {
    l->delivered = 1;
    l->done(l->arg, l->status, l->status == DNS_CONFIRMED ? l->name : NULL, l->reason);
}

static void maybe_free(struct dns_lookup *l) {
    if (l->starting || l->queries > 0 || ev_is_active(&l->deadline) ||
        !(l->delivered || l->cancelled)) {
        return;
    }
    l->c->refs--;
    free(l);
}

/* answer settles |l| and tells its caller, unless it is still being
 * started (dns_reverse_start then tells it from the loop). */
static void answer(struct dns_lookup *l, enum dns_status status, const char *reason) {
    if (l->answered || l->cancelled) {
        return;
    }
    l->answered = 1;
    l->status = status;
    l->reason = reason;
    if (l->starting) {
        return;
    }
    ev_timer_stop(l->c->r->loop, &l->deadline);
    lookup_deliver(l);
}

static void on_deadline(struct ev_loop *loop, ev_timer *t, int revents) {
    (void)loop;
    (void)revents;
    struct dns_lookup *l = t->data;
    struct dns_resolver *r = l->c->r;
    if (!l->answered) {
        l->answered = 1;
        l->status = DNS_TEMP_FAIL;
        l->reason = "timeout";
    }
    if (!l->cancelled) {
        lookup_deliver(l);
    }
    maybe_free(l);
    reap(r);
}

/* failure_status: NXDOMAIN and "no such record" are answers; anything
 * else may be different next time. */
static enum dns_status failure_status(int status) {
    return status == ARES_ENOTFOUND || status == ARES_ENODATA ? DNS_NO_NAME : DNS_TEMP_FAIL;
}

static const char *failure_reason(int forward, int status) {
    switch (status) {
    case ARES_ENOTFOUND:
        return forward ? "forward_nxdomain" : "ptr_nxdomain";
    case ARES_ENODATA:
        return forward ? "forward_nodata" : "ptr_nodata";
    case ARES_ETIMEOUT:
        return forward ? "forward_timeout" : "ptr_timeout";
    case ARES_ESERVFAIL:
        return forward ? "forward_servfail" : "ptr_servfail";
    case ARES_EREFUSED:
        return forward ? "forward_refused" : "ptr_refused";
    case ARES_ECONNREFUSED:
        return forward ? "forward_unreachable" : "ptr_unreachable";
    case ARES_EBADRESP:
        return forward ? "forward_bad_reply" : "ptr_bad_reply";
    default:
        return forward ? "forward_error" : "ptr_error";
    }
}

/* query_done is the common start of both callbacks: it says whether the
 * answer still matters. */
static int query_done(struct dns_lookup *l, int status) {
    l->queries--;
    if (status == ARES_EDESTRUCTION) {
        /* The channel is being destroyed (the resolver with it): no
         * caller is left to tell. */
        l->cancelled = 1;
        ev_timer_stop(l->c->r->loop, &l->deadline);
    }
    if (l->answered || l->cancelled) {
        maybe_free(l);
        return 0;
    }
    return 1;
}

static void on_forward(void *arg, int status, int timeouts, unsigned char *abuf, int alen) {
    (void)timeouts;
    struct dns_lookup *l = arg;
    if (!query_done(l, status)) {
        return;
    }
    if (status != ARES_SUCCESS) {
        answer(l, failure_status(status), failure_reason(1, status));
        maybe_free(l);
        return;
    }
    struct hostent *he = NULL;
    int v4 = l->addr.family == AF_INET;
    int rc = v4 ? ares_parse_a_reply(abuf, alen, &he, NULL, NULL)
                : ares_parse_aaaa_reply(abuf, alen, &he, NULL, NULL);
    if (rc != ARES_SUCCESS) {
        answer(l, failure_status(rc), failure_reason(1, rc));
    } else {
        size_t len = v4 ? 4 : 16;
        int match = 0;
        for (char **a = he->h_addr_list; !match && a != NULL && *a != NULL; a++) {
            match = (size_t)he->h_length == len && memcmp(*a, l->addr.bytes, len) == 0;
        }
        answer(l, match ? DNS_CONFIRMED : DNS_NO_NAME, match ? "confirmed" : "forward_mismatch");
    }
    if (he != NULL) {
        ares_free_hostent(he);
    }
    maybe_free(l);
}

static void on_ptr(void *arg, int status, int timeouts, unsigned char *abuf, int alen) {
    (void)timeouts;
    struct dns_lookup *l = arg;
    if (!query_done(l, status)) {
        return;
    }
    if (status != ARES_SUCCESS) {
        answer(l, failure_status(status), failure_reason(0, status));
        maybe_free(l);
        return;
    }
    int v4 = l->addr.family == AF_INET;
    struct hostent *he = NULL;
    int rc = ares_parse_ptr_reply(abuf, alen, l->addr.bytes, v4 ? 4 : 16,
                                  v4 ? AF_INET : AF_INET6, &he);
    const char *why = NULL;
    if (rc != ARES_SUCCESS) {
        answer(l, failure_status(rc), failure_reason(0, rc));
    } else if (he->h_name == NULL || strlen(he->h_name) > DNS_NAME_MAX ||
               !xclient_name_valid(he->h_name)) {
        why = "ptr_bad_name"; /* an address, a label with odd bytes, ... */
    } else {
        snprintf(l->name, sizeof(l->name), "%s", he->h_name);
    }
    if (he != NULL) {
        ares_free_hostent(he);
    }
    if (why != NULL) {
        answer(l, DNS_NO_NAME, why);
    }
    if (l->answered) {
        maybe_free(l);
        return;
    }
    struct dns_channel *c = l->c;
    l->queries++;
    c->r->depth++;
    /* May call on_forward at once, which may free |l|: not used after. */
    ares_query(c->ares, l->name, DNS_CLASS_IN, v4 ? DNS_TYPE_A : DNS_TYPE_AAAA, on_forward, l);
    c->r->depth--;
}

/* reverse_name writes the PTR owner name of |ip| (RFC 1035 3.5, RFC 3596
 * 2.5) into |out| (at least 74 octets). */
static void reverse_name(const struct ip_addr *ip, char *out, size_t outlen) {
    const uint8_t *b = ip->bytes;
    if (ip->family == AF_INET) {
        snprintf(out, outlen, "%u.%u.%u.%u.in-addr.arpa", b[3], b[2], b[1], b[0]);
        return;
    }
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 15; i >= 0 && o + 4 < outlen; i--) {
        out[o++] = hex[b[i] & 0x0f];
        out[o++] = '.';
        out[o++] = hex[b[i] >> 4];
        out[o++] = '.';
    }
    snprintf(out + o, outlen - o, "ip6.arpa");
}

struct dns_lookup *dns_reverse_start(struct dns_resolver *r, const struct net_addr *client,
                                     const char *servers, double timeout, dns_done_fn done,
                                     void *arg) {
    struct dns_lookup *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        return NULL;
    }
    double ms = timeout * 1000.0;
    int timeout_ms = ms < 1.0 ? 1 : ms > 86400000.0 ? 86400000 : (int)ms;
    struct dns_channel *c = resolver_channel(r, servers, timeout_ms);
    if (c == NULL) {
        free(l);
        return NULL;
    }
    c->refs++;
    l->c = c;
    l->done = done;
    l->arg = arg;
    ev_init(&l->deadline, on_deadline);
    l->deadline.data = l;
    l->starting = 1;
    if (!net_addr_ip(client, &l->addr)) {
        answer(l, DNS_NO_NAME, "not_ip");
    } else if (c->ares == NULL) {
        answer(l, DNS_TEMP_FAIL, "resolver_unavailable");
    } else {
        char qname[80];
        reverse_name(&l->addr, qname, sizeof(qname));
        l->queries++;
        r->depth++;
        ares_query(c->ares, qname, DNS_CLASS_IN, DNS_TYPE_PTR, on_ptr, l);
        r->depth--;
        channel_arm(c);
    }
    l->starting = 0;
    /* An answer already known (at once, or a failure c-ares reported
     * inside ares_query) goes out from the loop, never from here. */
    ev_timer_set(&l->deadline, l->answered ? 0. : timeout, 0.);
    ev_timer_start(r->loop, &l->deadline);
    reap(r);
    return l;
}

void dns_lookup_cancel(struct dns_lookup *l) {
    struct dns_resolver *r = l->c->r;
    l->cancelled = 1;
    ev_timer_stop(r->loop, &l->deadline);
    maybe_free(l);
    reap(r);
}
