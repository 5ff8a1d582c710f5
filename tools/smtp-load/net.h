/*
 * net.h - the little socket plumbing smtp-load's client and sink share:
 * the clock, address resolution, descriptor limits, listening sockets.
 */
#ifndef SMTP_LOAD_NET_H
#define SMTP_LOAD_NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct net_target {
    struct sockaddr_storage ss;
    socklen_t len;
};

/* now_ns returns CLOCK_MONOTONIC in nanoseconds. */
uint64_t now_ns(void);

/* net_resolve turns "HOST:PORT" (numeric or a name, resolved once) into
 * an address. Returns 1, or 0 with |why| set. */
int net_resolve(const char *hostport, struct net_target *out, char *why, size_t whylen);

/* net_raise_nofile raises RLIMIT_NOFILE's soft limit to the hard one and
 * returns the new soft limit. */
uint64_t net_raise_nofile(void);

/* net_listen opens a non-blocking listening socket on |addr| with
 * SO_REUSEADDR, and SO_REUSEPORT when |reuseport|. Returns the
 * descriptor, or -1 with |why| set. */
int net_listen(const struct net_target *addr, int reuseport, char *why, size_t whylen);

/* net_format writes "HOST:PORT" ("[V6]:PORT") of |ss| to |out|. */
void net_format(const struct sockaddr_storage *ss, char *out, size_t cap);

#endif
