/*
 * http.c - /metrics and /healthz over libmicrohttpd (see http.h).
 */
#include "obs/http.h"

#include <microhttpd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Bounds against hostile HTTP: connections at once, seconds of idle,
 * bytes of request per connection. A scrape needs one short GET. */
#define HTTP_CONNECTIONS_MAX 32
#define HTTP_TIMEOUT_SECONDS 10
#define HTTP_MEMORY_MAX (32 * 1024)

struct obs_http {
    struct MHD_Daemon *daemon;
    struct metrics *metrics;
    atomic_int draining;
};

static enum MHD_Result respond(struct MHD_Connection *c, unsigned code, const char *type,
                               const char *body, size_t len, int allow) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (allow) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    }
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **state) {
    (void)version;
    (void)upload;
    struct obs_http *h = cls;
    if (*state == NULL) {
        /* First call: headers only. Answer on the next, with no body read. */
        static int marker;
        *state = &marker;
        return MHD_YES;
    }
    *upload_size = 0; /* a body, if any, is ignored */
    const char *text = "text/plain; charset=utf-8";
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        static const char msg[] = "method not allowed\n";
        return respond(c, MHD_HTTP_METHOD_NOT_ALLOWED, text, msg, sizeof(msg) - 1, 1);
    }
    if (strcmp(url, "/healthz") == 0) {
        int draining = atomic_load(&h->draining);
        /* The fleet's memory is detail, not health: mail flows without
         * Redis (the local memory answers), so it never makes a 503. */
        struct metrics_redis r;
        metrics_get_redis(h->metrics, &r);
        char msg[160];
        int n = snprintf(msg, sizeof(msg), "%s\n", draining ? "draining" : "ok");
        if (r.clients > 0) {
            snprintf(msg + n, sizeof(msg) - (size_t)n, "redis: %s (%u of %u connections up)%s\n",
                     r.up == r.clients ? "up" : r.up == 0 ? "down" : "degraded", r.up, r.clients,
                     r.up < r.clients ? "; the local STARTTLS memory answers meanwhile" : "");
        }
        return respond(c, draining ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_OK, text, msg,
                       strlen(msg), 0);
    }
    if (strcmp(url, "/metrics") == 0) {
        struct buffer out = {0};
        if (!metrics_render(h->metrics, &out)) {
            buffer_free(&out);
            static const char msg[] = "out of memory\n";
            return respond(c, MHD_HTTP_INTERNAL_SERVER_ERROR, text, msg, sizeof(msg) - 1, 0);
        }
        enum MHD_Result ret = respond(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                                      out.len ? buffer_head(&out) : "", out.len, 0);
        buffer_free(&out);
        return ret;
    }
    static const char msg[] = "not found\n";
    return respond(c, MHD_HTTP_NOT_FOUND, text, msg, sizeof(msg) - 1, 0);
}

struct obs_http *obs_http_start(const struct net_addr *addr, struct metrics *m, char *err,
                                size_t errlen) {
    struct obs_http *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->metrics = m;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
    if (addr->ss.ss_family == AF_INET6) {
        flags |= MHD_USE_IPv6;
    }
    h->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&addr->ss,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONNECTIONS_MAX,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)(HTTP_CONNECTIONS_MAX / 2),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_TIMEOUT_SECONDS,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_MEMORY_MAX, MHD_OPTION_END);
    if (h->daemon == NULL) {
        char text[80];
        net_addr_format(addr, text, sizeof(text), NULL);
        snprintf(err, errlen, "[metrics] cannot listen on %s (address in use?)", text);
        free(h);
        return NULL;
    }
    return h;
}

void obs_http_set_draining(struct obs_http *h) {
    if (h != NULL) {
        atomic_store(&h->draining, 1);
    }
}

void obs_http_stop(struct obs_http *h) {
    if (h == NULL) {
        return;
    }
    MHD_stop_daemon(h->daemon);
    free(h);
}
