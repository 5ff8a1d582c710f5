/*
 * dns.h - the client's name, looked up without blocking (ARCHITECTURE.md
 * §4 step 2): a PTR query for its address, then a forward query (A for
 * IPv4, AAAA for IPv6) for the name found, which must return the address
 * again. Only such a forward-confirmed name is reported, as Postfix does
 * before it calls a client anything but "unknown".
 *
 * One resolver per worker thread (worker.c owns it, sessions reach it
 * through struct session_host): a c-ares channel driven by that worker's
 * libev loop, with an ev_io per c-ares socket and an ev_timer for
 * c-ares's own retries. Nothing here blocks and nothing runs on another
 * thread. A session starts one lookup at accept and may cancel it at any
 * time before it answers: after dns_lookup_cancel the callback never
 * runs, whatever c-ares still has in flight (the lookup's memory lives
 * until c-ares lets go of it).
 */
#ifndef SMTP_TLS_PROXY_DNS_H
#define SMTP_TLS_PROXY_DNS_H

#include "core/addr.h"

struct ev_loop;
struct dns_resolver;
struct dns_lookup;

/* The longest name a lookup reports (what XCLIENT's NAME can carry). */
#define DNS_NAME_MAX 255

enum dns_status {
    DNS_CONFIRMED = 0, /* a PTR name whose forward lookup has the address */
    DNS_NO_NAME = 1,   /* NXDOMAIN, no PTR, no or another forward address, a bad name */
    DNS_TEMP_FAIL = 2, /* a timeout, SERVFAIL, REFUSED, an unreachable server */
};

/* dns_status_name: "confirmed", "none" or "tempfail", for logs. */
const char *dns_status_name(enum dns_status status);

/* A lookup's answer: |name| is the confirmed name for DNS_CONFIRMED and
 * NULL otherwise; |reason| is one log token saying why ("confirmed",
 * "ptr_nxdomain", "forward_mismatch", "timeout", ...). Both live only
 * for the call. The handle given by dns_reverse_start is gone once this
 * runs: never cancel it afterwards. */
typedef void (*dns_done_fn)(void *arg, enum dns_status status, const char *name,
                            const char *reason);

/* dns_resolver_new makes |loop|'s resolver; the c-ares channel is made on
 * the first lookup (in the loop's thread). NULL: out of memory. */
struct dns_resolver *dns_resolver_new(struct ev_loop *loop);

/* dns_resolver_free ends every lookup still in flight (cancelled ones
 * included) without calling back, and frees |r|. NULL is fine. */
void dns_resolver_free(struct dns_resolver *r);

/* dns_reverse_start looks up the confirmed name of |client| with the
 * servers |servers| ("host[:port],...", numeric; NULL: the system's
 * resolv.conf) within |timeout| seconds in all: |done| is called exactly
 * once, from the loop and never from inside this call, unless the lookup
 * is cancelled first. A change of |servers| makes a new channel for new
 * lookups; lookups in flight finish on the old one. Returns the handle,
 * or NULL when no memory could be had (|done| is then never called). */
struct dns_lookup *dns_reverse_start(struct dns_resolver *r, const struct net_addr *client,
                                     const char *servers, double timeout, dns_done_fn done,
                                     void *arg);

/* dns_lookup_cancel: |done| will not be called for |l|. */
void dns_lookup_cancel(struct dns_lookup *l);

#endif
