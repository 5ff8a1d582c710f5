/*
 * addr.c - socket addresses (see addr.h).
 */
#include "core/addr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

int net_addr_parse(const char *text, struct net_addr *out, char *err, size_t errlen) {
    memset(out, 0, sizeof(*out));
    if (text[0] == '/') {
        struct sockaddr_un *sun = (struct sockaddr_un *)&out->ss;
        if (strlen(text) >= sizeof(sun->sun_path)) {
            snprintf(err, errlen, "unix socket path is too long");
            return 0;
        }
        sun->sun_family = AF_UNIX;
        strcpy(sun->sun_path, text);
        out->len = sizeof(*sun);
        return 1;
    }
    char host[64];
    const char *colon;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':' || (size_t)(close - text - 1) >= sizeof(host)) {
            snprintf(err, errlen, "\"%s\": expected [IPv6]:port", text);
            return 0;
        }
        memcpy(host, text + 1, (size_t)(close - text - 1));
        host[close - text - 1] = '\0';
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL || (size_t)(colon - text) >= sizeof(host)) {
            snprintf(err, errlen, "\"%s\": expected host:port, [IPv6]:port or /unix/path", text);
            return 0;
        }
        memcpy(host, text, (size_t)(colon - text));
        host[colon - text] = '\0';
    }
    char *end;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (!isdigit((unsigned char)colon[1]) || *end != '\0' || errno || port == 0 || port > 65535) {
        snprintf(err, errlen, "\"%s\": port must be 1 to 65535", text);
        return 0;
    }
    struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        out->len = sizeof(*sin);
        return 1;
    }
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        out->len = sizeof(*sin6);
        return 1;
    }
    snprintf(err, errlen, "\"%s\": host must be a numeric IPv4 or IPv6 address", text);
    return 0;
}

void net_addr_format(const struct net_addr *a, char *out, size_t outlen, unsigned *out_port) {
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->ss;
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->ss;
    unsigned port = 0;
    switch (a->ss.ss_family) {
    case AF_INET:
        inet_ntop(AF_INET, &sin->sin_addr, out, (socklen_t)outlen);
        port = ntohs(sin->sin_port);
        break;
    case AF_INET6: {
        /* An IPv4 client on a dual-stack socket is shown as IPv4. */
        struct ip_addr ip;
        net_addr_ip(a, &ip);
        inet_ntop(ip.family, ip.bytes, out, (socklen_t)outlen);
        port = ntohs(sin6->sin6_port);
        break;
    }
    case AF_UNIX:
        snprintf(out, outlen, "%s", ((const struct sockaddr_un *)&a->ss)->sun_path);
        break;
    default:
        snprintf(out, outlen, "unknown");
    }
    if (out_port != NULL) {
        *out_port = port;
    }
}

int net_addr_ip(const struct net_addr *a, struct ip_addr *out) {
    if (a == NULL) {
        return 0;
    }
    memset(out, 0, sizeof(*out));
    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->ss;
        out->family = AF_INET;
        memcpy(out->bytes, &sin->sin_addr, 4);
        out->port = ntohs(sin->sin_port);
        return 1;
    }
    if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->ss;
        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            out->family = AF_INET;
            memcpy(out->bytes, &sin6->sin6_addr.s6_addr[12], 4);
        } else {
            out->family = AF_INET6;
            memcpy(out->bytes, &sin6->sin6_addr, 16);
        }
        out->port = ntohs(sin6->sin6_port);
        return 1;
    }
    return 0;
}

int net_addr_is_ipv6(const struct net_addr *a) {
    struct ip_addr ip;
    return net_addr_ip(a, &ip) && ip.family == AF_INET6;
}

void ip_addr_key(const struct ip_addr *ip, uint8_t key[16]) {
    memset(key, 0, 16);
    if (ip->family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, ip->bytes, 4);
    } else {
        memcpy(key, ip->bytes, 16);
    }
}
