/*
 * net.h - socket set-up: listening sockets (one per listener, shared by
 * the workers) and non-blocking connects to the backend.
 */
#ifndef SMTP_TLS_PROXY_NET_H
#define SMTP_TLS_PROXY_NET_H

#include <stddef.h>

#include "core/addr.h"

/* net_listen opens a non-blocking listening socket bound to |a|. It sets
 * SO_REUSEADDR (a restart may bind over TIME_WAIT) but never
 * SO_REUSEPORT: with it, any other process of the same user could bind
 * the same port and silently take a share of the mail, so a second
 * instance must fail here with "Address already in use". Returns the fd,
 * or -1 with |err| set. */
int net_listen(const struct net_addr *a, char *err, size_t errlen);

/* net_connect starts a non-blocking connect to |a|. Returns the fd (the
 * connect may still be in progress: wait for writability, then
 * net_connect_result), or -1 with errno set. */
int net_connect(const struct net_addr *a);

/* net_connect_result returns 0 when the connect on |fd| completed, or the
 * errno it failed with. */
int net_connect_result(int fd);

/* net_connect_error_is_local says whether |err|, from net_connect or
 * net_connect_result, is a shortage on this side rather than an answer
 * from the peer: no descriptor (EMFILE, ENFILE), no memory or buffer
 * (ENOMEM, ENOBUFS), no free local port (EADDRNOTAVAIL), or EAGAIN,
 * which for a non-blocking AF_UNIX socket means the listener's backlog
 * is full for now (connect(2)). None of them says the peer is down:
 * the attempt is worth repeating later, to the same peer. */
int net_connect_error_is_local(int err);

/* net_set_nodelay turns Nagle off on TCP sockets: SMTP is a dialogue of
 * short lines, and pipelined replies must not wait for ACKs. */
void net_set_nodelay(int fd);

#endif
