/*
 * session.h - one client connection and its backend connection.
 */
#ifndef SMTP_TLS_PROXY_SESSION_H
#define SMTP_TLS_PROXY_SESSION_H

#include <stddef.h>

#include "config.h"

struct worker;
struct snapshot;
struct session;

/* session_start takes over the accepted socket |fd| from |peer| on
 * listener |listener_index| of |snap| (taking over the caller's
 * reference) and starts the session on |w|'s loop. Returns 1 when a
 * session exists (it reports its end through worker_session_gone), or 0
 * when none could be made: the socket is closed and the reference
 * dropped, and the caller undoes its counting. */
int session_start(struct worker *w, int fd, const struct net_addr *peer,
                  size_t listener_index, struct snapshot *snap);

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
