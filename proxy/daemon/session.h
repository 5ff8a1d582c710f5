/*
 * session.h - one client connection and its backend connection.
 */
#ifndef SMTP_TLS_PROXY_SESSION_H
#define SMTP_TLS_PROXY_SESSION_H

#include <stddef.h>

#include "config/config.h"
#include "protocol/scope.h"

struct snapshot;
struct session;
struct ev_loop;
struct metrics_shard;
struct dns_resolver;

/* What a finished session was, for the log line and, later, metrics.
 * The strings live as long as the call it is passed to. */
struct session_summary {
    const char *id;
    const char *client;    /* address text */
    const char *client_name; /* forward-confirmed reverse DNS name; "" when none; raw */
    unsigned port;         /* the client's port */
    const char *listener;
    size_t listener_index; /* in the configuration, for per-listener counters */
    unsigned local_port;   /* the listener's port the client reached */
    const char *scope;     /* addr_scope_name */
    enum addr_scope scope_id;
    const char *country;   /* "" when unknown */
    unsigned long asn;     /* 0 when unknown */
    const char *as_org;    /* "" when unknown; raw */
    const char *helo;      /* "" when none was accepted; raw */
    const char *tls_version; /* NULL: plaintext */
    const char *cipher;
    const char *group;     /* key exchange; NULL: plaintext or unknown */
    const char *sni;       /* "" when none; raw */
    const char *starttls;  /* none, offered, withheld, used, failed */
    unsigned messages, accepted, forged_removed, errors, sync_violations;
    int pregreet;
    unsigned long long bytes_in, bytes_out;
    const char *result;
    double duration;       /* seconds */
};

/* What a session needs from whoever runs it: a loop, a number for its
 * ids, the loop's resolver, and a call when it is gone. The session
 * knows nothing else of its host (worker.c embeds one). */
struct session_host {
    struct ev_loop *loop;
    int id;
    struct metrics_shard *metrics; /* obs/metrics.h: this host's counters */
    struct dns_resolver *dns; /* daemon/dns.h; NULL: no reverse lookups */
    /* daemon/redis_memory.h: the STARTTLS memory shared through Redis, on
     * this loop; NULL: none configured (local memory only). */
    struct redis_memory *redis;
    /* admit counts |client| in the per-client limit (sessions whose
     * client a PROXY header names); 0: over the limit. */
    int (*admit)(struct session_host *host, const struct net_addr *client);
    /* gone is called once, as |s| is freed, with what it was; |client|
     * is the address admitted, NULL when none was. */
    void (*gone)(struct session_host *host, struct session *s, const struct net_addr *client,
                 const struct session_summary *summary);
};

/* session_new takes over the accepted socket |fd| from |peer| on
 * listener |listener_index| of |snap| (taking over the caller's
 * reference) for |host|; |serial| numbers it within the host. Nothing
 * runs until session_begin. Returns the session, or NULL when none could
 * be made: the socket is closed and the reference dropped. */
struct session *session_new(struct session_host *host, int fd, const struct net_addr *peer,
                            size_t listener_index, struct snapshot *snap,
                            unsigned long long serial);

/* session_begin starts |s|: from here on it may end, and call its host's
 * gone, at any event (even before session_begin returns). */
void session_begin(struct session *s);

/* session_summary_log writes the event=end line of |sum|. */
void session_summary_log(const struct session_summary *sum);

/* session_drain asks |s| to end at its next idle point: at once when no
 * command is in flight, otherwise once the replies owed (and a message
 * being transferred) are done. The client then gets 421. May free |s|. */
void session_drain(struct session *s);

/* session_shutdown ends |s| because the proxy is stopping: the client
 * gets 421 and a message in progress is abandoned (never acknowledged).
 * May free |s|. */
void session_shutdown(struct session *s);

/* For the worker's list. */
struct session *session_next(struct session *s);
void session_link(struct session *s, struct session **head);
void session_unlink(struct session *s, struct session **head);

#endif
