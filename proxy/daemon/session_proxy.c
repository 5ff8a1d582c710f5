/*
 * session_proxy.c - the inbound PROXY protocol (ARCHITECTURE.md §5.7):
 * on a listener behind a load balancer the first octets are HAProxy's
 * PROXY header, read before any SMTP or TLS byte, and the client it
 * names becomes the session's client everywhere (limits, GeoIP, scope,
 * headers, identity to the backend, the STARTTLS memory, logs).
 *
 * Only peers in proxy_trusted may send it; anyone else is closed before
 * a byte is read. The header is consumed exactly: the octets after it
 * (a command or a ClientHello) stay in the socket for whoever reads
 * next, so they are peeked first and only header octets are taken.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "daemon/session_int.h"

#include "core/cidr.h"
#include "core/log.h"
#include "daemon/snapshot.h"
#include "protocol/proxy_header.h"

/* The longest header accepted: a v2 header with its TLVs. */
#define PROXY_HEADER_MAX (16 + PROXY_V2_MAX_DEFAULT)

static unsigned accepted_versions(enum proxy_protocol mode) {
    switch (mode) {
    case PROXY_PROTOCOL_V1:
        return PROXY_ACCEPT_V1;
    case PROXY_PROTOCOL_V2:
        return PROXY_ACCEPT_V2;
    case PROXY_PROTOCOL_ANY:
        return PROXY_ACCEPT_V1 | PROXY_ACCEPT_V2;
    case PROXY_PROTOCOL_NO:
        break;
    }
    return 0;
}

/* proxy_refuse closes the connection without a word: whoever sent a
 * bad header (or none) is not an SMTP client to answer. */
static void proxy_refuse(struct session *s, const char *result) {
    metrics_refusal(s->host->metrics, MRF_PROXY_PROTOCOL);
    s->result = result;
    s->client_error = 1;
    session_set_state(s, STATE_DEAD);
}

int proxy_header_begin(struct session *s) {
    if (s->listener->proxy_protocol == PROXY_PROTOCOL_NO) {
        return 0;
    }
    if (!cidr_list_contains(&s->listener->proxy_trusted, &s->client_addr)) {
        log_warning("session=%s event=proxy_untrusted peer=%s listener=%s: not in proxy_trusted; "
                    "closed before reading", s->id, s->client_ip, s->listener->name);
        proxy_refuse(s, "proxy_untrusted");
        return 1;
    }
    s->proxy_buf = malloc(PROXY_HEADER_MAX);
    if (s->proxy_buf == NULL) {
        proxy_refuse(s, "out_of_memory");
        return 1;
    }
    s->proxy_have = 0;
    /* A deadline, not an idle timer: the header comes at once or never. */
    s->proxy_deadline = ev_now(s->host->loop) + s->cfg->proxy_protocol_timeout;
    session_set_state(s, STATE_PROXY_WAIT);
    return 1;
}

/* take consumes |n| octets from the socket into the header buffer. */
static int take(struct session *s, size_t n) {
    while (n > 0) {
        ssize_t got = recv(s->client.fd, s->proxy_buf + s->proxy_have, n, 0);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            return 0; /* peeked octets are in the socket: this cannot happen */
        }
        s->proxy_have += (size_t)got;
        n -= (size_t)got;
    }
    return 1;
}

/* use_header makes the header's client the session's client. */
static void use_header(struct session *s, const struct proxy_header *h) {
    char peer[64];
    snprintf(peer, sizeof(peer), "%s", s->client_ip);
    if (!h->local) {
        session_set_client(s, &h->src, &h->dst);
    }
    log_info("session=%s event=proxy_header version=%d peer=%s client=%s port=%u%s", s->id,
             h->version, peer, s->client_ip, s->client_port,
             h->local ? " local=yes" : "");
}

void proxy_header_read(struct session *s) {
    uint8_t peek[PROXY_HEADER_MAX];
    size_t room = PROXY_HEADER_MAX - s->proxy_have;
    ssize_t n;
    do {
        n = recv(s->client.fd, peek, room, MSG_PEEK);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return;
    }
    if (n <= 0) {
        log_info("session=%s event=proxy_header_missing peer=%s reason=%s", s->id, s->client_ip,
                 n == 0 ? "closed" : "error");
        proxy_refuse(s, "proxy_header_missing");
        return;
    }
    /* What was taken before, then what waits in the socket. */
    uint8_t all[PROXY_HEADER_MAX];
    memcpy(all, s->proxy_buf, s->proxy_have);
    memcpy(all + s->proxy_have, peek, (size_t)n);
    size_t len = s->proxy_have + (size_t)n;
    struct proxy_header h;
    char why[160] = "";
    switch (proxy_header_parse(all, len, accepted_versions(s->listener->proxy_protocol),
                               PROXY_V2_MAX_DEFAULT, &h, why, sizeof(why))) {
    case PROXY_NEED_MORE:
        /* Every octet so far is header: take them and wait for more. */
        if (!take(s, (size_t)n)) {
            proxy_refuse(s, "proxy_header_missing");
        }
        return;
    case PROXY_ERROR:
        log_warning("session=%s event=proxy_header_invalid peer=%s listener=%s reason=\"%s\"",
                    s->id, s->client_ip, s->listener->name, why);
        proxy_refuse(s, "proxy_header_invalid");
        return;
    case PROXY_DONE:
        break;
    }
    if (h.length < s->proxy_have || !take(s, h.length - s->proxy_have)) {
        proxy_refuse(s, "proxy_header_invalid");
        return;
    }
    free(s->proxy_buf);
    s->proxy_buf = NULL;
    use_header(s, &h);
    s->progress++;
    session_begin_identified(s);
}

void proxy_header_timeout(struct session *s) {
    log_info("session=%s event=proxy_header_missing peer=%s reason=timeout octets=%zu", s->id,
             s->client_ip, s->proxy_have);
    proxy_refuse(s, "proxy_header_timeout");
}
