/*
 * http.h - the metrics and health endpoint (ARCHITECTURE.md §8):
 * GET /metrics (Prometheus text) and GET /healthz (200 while serving, 503
 * once a drain has begun). libmicrohttpd parses HTTP in its own thread
 * with bounded connections, memory and time, so a hostile HTTP client
 * can neither reach the mail sessions nor slow them: it only reads the
 * counters the workers add to.
 */
#ifndef SMTP_TLS_PROXY_HTTP_H
#define SMTP_TLS_PROXY_HTTP_H

#include <stddef.h>

#include "core/addr.h"
#include "obs/metrics.h"

struct obs_http;

/* obs_http_start serves |m| on |addr|. Returns the server, or NULL with
 * |err| set (the address is in use, say). */
struct obs_http *obs_http_start(const struct net_addr *addr, struct metrics *m, char *err,
                                size_t errlen);

/* obs_http_set_draining makes /healthz answer 503 from now on. */
void obs_http_set_draining(struct obs_http *h);

/* obs_http_stop stops the server thread and frees it; NULL is fine. */
void obs_http_stop(struct obs_http *h);

#endif
