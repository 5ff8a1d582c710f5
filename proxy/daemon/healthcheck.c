/*
 * healthcheck.c - GET /healthz of the [metrics] endpoint (healthcheck.h).
 *
 * The configuration is read as the proxy reads it (the file, or the
 * embedded default, and the SMTP_TLS_PROXY__* environment overrides), but
 * the DNS names of [backend] address are not looked up: the proxy's
 * health must not depend on the backend's name resolving at this moment
 * (a compose service that is restarting). A wildcard [metrics] address
 * (0.0.0.0, ::) is asked on loopback.
 */
#include "daemon/healthcheck.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"

#define HEALTHCHECK_TIMEOUT_DEFAULT 5.0
#define HEALTHCHECK_TIMEOUT_MAX 300.0
#define HEALTHCHECK_REPLY_MAX 4096

static const char healthcheck_usage[] =
    "usage: smtp-tls-proxy healthcheck [-c FILE] [--timeout SECONDS]\n"
    "\n"
    "  GET /healthz from the [metrics] address of FILE (default: the embedded\n"
    "  configuration), with the SMTP_TLS_PROXY__* environment overrides.\n"
    "  Exits 0 on 200, 1 otherwise (also without [metrics] address).\n"
    "  --timeout  seconds for the whole request (default 5)\n";

static double now_monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* wait_fd polls |fd| for |events| until |deadline|. Returns 1 when ready,
 * 0 at the deadline or on an error. */
static int wait_fd(int fd, short events, double deadline) {
    for (;;) {
        double left = deadline - now_monotonic();
        if (left <= 0) {
            return 0;
        }
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, (int)(left * 1000) + 1);
        if (r > 0) {
            return 1;
        }
        if (r < 0 && errno != EINTR) {
            return 0;
        }
    }
}

/* loopback_for turns a wildcard address into the loopback one of its
 * family: the endpoint listens there too. */
static void loopback_for(struct net_addr *a) {
    if (a->ss.ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;
        if (sin->sin_addr.s_addr == htonl(INADDR_ANY)) {
            sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        }
    } else if (a->ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;
        if (IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr)) {
            sin6->sin6_addr = in6addr_loopback;
        }
    }
}

/* get_healthz sends GET /healthz to |addr| and reads the reply into
 * |reply| (NUL-terminated). Returns the HTTP status, or 0 with |why|
 * set. */
static int get_healthz(const struct net_addr *addr, double timeout, char *reply,
                       size_t replylen, char *why, size_t whylen) {
    double deadline = now_monotonic() + timeout;
    int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, whylen, "socket: %s", strerror(errno));
        return 0;
    }
    int status = 0;
    if (connect(fd, (const struct sockaddr *)&addr->ss, addr->len) != 0) {
        if (errno != EINPROGRESS) {
            snprintf(why, whylen, "connect: %s", strerror(errno));
            goto out;
        }
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (!wait_fd(fd, POLLOUT, deadline)) {
            snprintf(why, whylen, "connect: no answer within %gs", timeout);
            goto out;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0) {
            snprintf(why, whylen, "connect: %s", strerror(soerr ? soerr : errno));
            goto out;
        }
    }
    static const char request[] =
        "GET /healthz HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    size_t sent = 0;
    while (sent < sizeof(request) - 1) {
        ssize_t w = send(fd, request + sent, sizeof(request) - 1 - sent, MSG_NOSIGNAL);
        if (w > 0) {
            sent += (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (!wait_fd(fd, POLLOUT, deadline)) {
                snprintf(why, whylen, "send: timed out after %gs", timeout);
                goto out;
            }
        } else {
            snprintf(why, whylen, "send: %s", strerror(errno));
            goto out;
        }
    }
    size_t got = 0;
    for (;;) {
        if (got + 1 >= replylen) {
            break; /* enough to read the status line and a short body */
        }
        ssize_t r = recv(fd, reply + got, replylen - 1 - got, 0);
        if (r > 0) {
            got += (size_t)r;
        } else if (r == 0) {
            break;
        } else if (errno == EAGAIN || errno == EINTR) {
            if (!wait_fd(fd, POLLIN, deadline)) {
                snprintf(why, whylen, "no reply within %gs", timeout);
                goto out;
            }
        } else {
            snprintf(why, whylen, "recv: %s", strerror(errno));
            goto out;
        }
    }
    reply[got] = '\0';
    int minor, code;
    if (sscanf(reply, "HTTP/1.%d %3d", &minor, &code) != 2 || code < 100 || code > 599) {
        snprintf(why, whylen, "not an HTTP reply");
        goto out;
    }
    status = code;
out:
    close(fd);
    return status;
}

/* body_line is the first line of the reply's body ("ok", "draining"). */
static void body_line(const char *reply, char *out, size_t outlen) {
    const char *body = strstr(reply, "\r\n\r\n");
    out[0] = '\0';
    if (body != NULL) {
        body += 4;
        snprintf(out, outlen, "%.*s", (int)strcspn(body, "\r\n"), body);
    }
}

int healthcheck_main(int argc, char **argv) {
    const char *path = NULL;
    double timeout = HEALTHCHECK_TIMEOUT_DEFAULT;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            char *end;
            timeout = strtod(argv[++i], &end);
            if (*end != '\0' || !(timeout > 0) || timeout > HEALTHCHECK_TIMEOUT_MAX) {
                fprintf(stderr, "smtp-tls-proxy healthcheck: --timeout takes seconds, more "
                                "than 0 and at most %g\n", HEALTHCHECK_TIMEOUT_MAX);
                return 1;
            }
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(healthcheck_usage, stdout);
            return 0;
        } else {
            fprintf(stderr, "smtp-tls-proxy healthcheck: unknown or incomplete option \"%s\"\n\n%s",
                    argv[i], healthcheck_usage);
            return 1;
        }
    }
    char err[512];
    config_set_resolver(config_resolve_nothing);
    struct config *cfg = path ? config_load(path, err, sizeof(err))
                              : config_parse_env("(embedded default)", default_config_text,
                                                 environ, err, sizeof(err));
    config_set_resolver(NULL);
    if (cfg == NULL) {
        printf("unhealthy: %s\n", err);
        return 1;
    }
    if (cfg->metrics_address == NULL) {
        printf("unhealthy: %s has no [metrics] address to ask\n", cfg->path);
        config_free(cfg);
        return 1;
    }
    struct net_addr addr = cfg->metrics_addr;
    loopback_for(&addr);
    char where[128], reply[HEALTHCHECK_REPLY_MAX], why[256], line[128];
    unsigned port = 0;
    net_addr_format(&addr, where, sizeof(where), &port);
    int status = get_healthz(&addr, timeout, reply, sizeof(reply), why, sizeof(why));
    int v6 = addr.ss.ss_family == AF_INET6;
    if (status == 0) {
        printf("unhealthy: %s%s%s:%u: %s\n", v6 ? "[" : "", where, v6 ? "]" : "", port, why);
    } else {
        body_line(reply, line, sizeof(line));
        printf("%s: %s%s%s:%u /healthz %d %s\n", status == 200 ? "healthy" : "unhealthy",
               v6 ? "[" : "", where, v6 ? "]" : "", port, status, line);
    }
    config_free(cfg);
    return status == 200 ? 0 : 1;
}
