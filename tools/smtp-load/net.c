/*
 * net.c - clock, resolution, limits and listening sockets (see net.h).
 */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "options.h"

uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int net_resolve(const char *hostport, struct net_target *out, char *why, size_t whylen) {
    char host[256], port[256];
    if (!split_hostport(hostport, host, port, sizeof(host))) {
        snprintf(why, whylen, "not HOST:PORT: %s", hostport);
        return 0;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || res == NULL) {
        snprintf(why, whylen, "%s: %s", hostport, gai_strerror(rc));
        return 0;
    }
    memset(out, 0, sizeof(*out));
    memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
    out->len = res->ai_addrlen;
    freeaddrinfo(res);
    return 1;
}

uint64_t net_raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return 0;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return (uint64_t)rl.rlim_cur;
}

int net_listen(const struct net_target *addr, int reuseport, char *why, size_t whylen) {
    int one = 1;
    int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, whylen, "socket: %s", strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        snprintf(why, whylen, "SO_REUSEPORT: %s", strerror(errno));
        close(fd);
        return -1;
    }
    /* The backlog is the kernel's maximum (somaxconn): a benchmark opens
     * thousands of connections at once. */
    if (bind(fd, (const struct sockaddr *)&addr->ss, addr->len) != 0 || listen(fd, 65535) != 0) {
        snprintf(why, whylen, "bind/listen: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

void net_format(const struct sockaddr_storage *ss, char *out, size_t cap) {
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
        port = ntohs(s6->sin6_port);
        snprintf(out, cap, "[%s]:%u", ip, port);
        return;
    }
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
    inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
    port = ntohs(s4->sin_port);
    snprintf(out, cap, "%s:%u", ip, port);
}
