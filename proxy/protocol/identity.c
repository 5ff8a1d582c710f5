/*
 * identity.c - XCLIENT lines and PROXY protocol headers.
 *
 * Every encoder builds its output in a fixed local array first and
 * appends it in one go, so a failure leaves the caller's buffer as it was.
 */
#include "protocol/identity.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* ---- addresses ---- */

/* ip_text writes |e|'s address as inet_ntop text (RFC 5952 for IPv6). */
static void ip_text(const struct ip_addr *e, char out[INET6_ADDRSTRLEN]) {
    if (inet_ntop(e->family, e->bytes, out, INET6_ADDRSTRLEN) == NULL) {
        out[0] = '\0'; /* cannot happen for AF_INET/AF_INET6 */
    }
}

/* ---- xtext ---- */

static const char hex_upper[] = "0123456789ABCDEF";

/* xtext_plain tells whether |c| may stand for itself. RFC 3461 requires
 * escaping '+', '=' and everything outside 33..126; we also escape the
 * bytes Postfix's command tokenizer treats as quoting ('"', '\', '<',
 * '>', '[', ']'), as the RFC allows: a bare '"' or a trailing '\' in a
 * HELO value made Postfix 3.7 read the rest of the XCLIENT line (LOGIN,
 * DESTADDR) as part of HELO, and a long rest made it refuse the whole
 * command, ADDR included. */
static int xtext_plain(unsigned char c) {
    return c >= 33 && c <= 126 && strchr("+=\"\\<>[]", c) == NULL;
}

/* xtext_write encodes |n| bytes of |src| at |dst| (room for 3 * n) and
 * returns the bytes written. */
static size_t xtext_write(const char *src, size_t n, char *dst) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        if (xtext_plain(c)) {
            dst[o++] = (char)c;
        } else {
            dst[o++] = '+';
            dst[o++] = hex_upper[c >> 4];
            dst[o++] = hex_upper[c & 0x0f];
        }
    }
    return o;
}

int xtext_encode(const char *src, size_t n, struct buffer *out) {
    if (n == 0) {
        return 1;
    }
    if (n > ((size_t)-1) / 3) {
        return 0;
    }
    char *dst = buffer_reserve(out, 3 * n);
    if (dst == NULL) {
        return 0;
    }
    buffer_commit(out, xtext_write(src, n, dst));
    return 1;
}

/* xtext_fit returns how many leading bytes of |src| (|n| bytes) encode
 * into at most |budget| octets, whole escapes only; *out_len gets the
 * encoded length. */
static size_t xtext_fit(const char *src, size_t n, size_t budget, size_t *out_len) {
    size_t used = 0, i = 0;
    for (; i < n; i++) {
        size_t w = xtext_plain((unsigned char)src[i]) ? 1 : 3;
        if (used + w > budget) {
            break;
        }
        used += w;
    }
    *out_len = used;
    return i;
}

/* ---- XCLIENT ---- */

/* A line under construction; |overflow| sticks once anything did not fit. */
struct line {
    char buf[XCLIENT_LINE_MAX];
    size_t len;
    int overflow;
};

static void line_put(struct line *l, const char *s, size_t n) {
    if (l->overflow || n > sizeof(l->buf) - l->len) {
        l->overflow = 1;
        return;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void line_str(struct line *l, const char *s) {
    line_put(l, s, strlen(s));
}

/* line_xtext appends |s| xtext-encoded. */
static void line_xtext(struct line *l, const char *s) {
    size_t n = strlen(s), enc;
    if (xtext_fit(s, n, sizeof(l->buf) - l->len, &enc) < n || l->overflow) {
        l->overflow = 1;
        return;
    }
    l->len += xtext_write(s, n, l->buf + l->len);
}

/* line_endpoint appends " ADDR=... PORT=..." (or DESTADDR/DESTPORT). */
static void line_endpoint(struct line *l, const char *addr_attr, const char *port_attr,
                          const struct ip_addr *e) {
    char text[INET6_ADDRSTRLEN], port[16];
    ip_text(e, text);
    snprintf(port, sizeof(port), "%u", e->port);
    line_str(l, addr_attr);
    line_str(l, e->family == AF_INET6 ? "IPV6:" : "");
    line_str(l, text);
    line_str(l, port_attr);
    line_str(l, port);
}

int xclient_name_valid(const char *name) {
    size_t n = strlen(name), label = 0;
    int non_numeric = 0;
    if (n == 0 || n > XCLIENT_VALUE_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i], next = name[i + 1];
        if (c == '.') {
            if (label == 0 || next == '\0') {
                return 0;
            }
            label = 0;
            continue;
        }
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && c != '_' && c != '-') {
            return 0;
        }
        if (c == '-' && (label == 0 || next == '\0' || next == '.')) {
            return 0;
        }
        if (++label > 63) {
            return 0;
        }
        if (c < '0' || c > '9') {
            non_numeric = 1;
        }
    }
    return non_numeric;
}

/* xclient_tail builds " LOGIN=... DESTADDR=... DESTPORT=...", the part
 * after HELO. Returns 0 when LOGIN is too long. */
static int xclient_tail(const struct xclient_facts *f, struct line *tail) {
    if (f->login != NULL && f->login[0] != '\0') {
        size_t n = strlen(f->login), enc;
        if (xtext_fit(f->login, n, XCLIENT_VALUE_MAX, &enc) < n) {
            return 0;
        }
        line_str(tail, " LOGIN=");
        line_xtext(tail, f->login);
    }
    struct ip_addr local;
    if (net_addr_ip(f->local, &local)) {
        line_endpoint(tail, " DESTADDR=", " DESTPORT=", &local);
    }
    return !tail->overflow;
}

/* xclient_head builds "XCLIENT NAME=... ADDR=... PORT=... [PROTO=...]". */
static int xclient_head(const struct xclient_facts *f, struct line *head) {
    line_str(head, "XCLIENT NAME=");
    if (f->name != NULL && strcasecmp(f->name, "[TEMPUNAVAIL]") == 0) {
        line_str(head, "[TEMPUNAVAIL]"); /* as XCLIENT_README writes it */
    } else if (f->name != NULL && xclient_name_valid(f->name)) {
        line_xtext(head, f->name);
    } else {
        line_str(head, "[UNAVAILABLE]");
    }
    struct ip_addr client;
    if (net_addr_ip(f->client, &client)) {
        line_endpoint(head, " ADDR=", " PORT=", &client);
    } else {
        line_str(head, " ADDR=[UNAVAILABLE] PORT=[UNAVAILABLE]");
    }
    if (f->proto != NULL) {
        if (strcmp(f->proto, "SMTP") != 0 && strcmp(f->proto, "ESMTP") != 0) {
            return 0;
        }
        line_str(head, " PROTO=");
        line_str(head, f->proto);
    }
    return !head->overflow;
}

int xclient_command(const struct xclient_facts *f, struct buffer *out) {
    static const char helo_attr[] = " HELO=";
    struct line head = {.len = 0}, tail = {.len = 0};
    if (!xclient_head(f, &head) || !xclient_tail(f, &tail)) {
        return 0;
    }
    size_t fixed = head.len + tail.len + 2; /* CRLF */
    if (fixed > XCLIENT_LINE_MAX) {
        return 0;
    }
    /* The HELO value gets whatever room is left, within Postfix's limit. */
    size_t helo_n = 0, helo_enc = 0;
    if (f->helo != NULL && fixed + (sizeof(helo_attr) - 1) < XCLIENT_LINE_MAX) {
        size_t budget = XCLIENT_LINE_MAX - fixed - (sizeof(helo_attr) - 1);
        if (budget > XCLIENT_VALUE_MAX) {
            budget = XCLIENT_VALUE_MAX;
        }
        helo_n = xtext_fit(f->helo, strlen(f->helo), budget, &helo_enc);
    }
    if (helo_n > 0) {
        line_str(&head, helo_attr);
        head.len += xtext_write(f->helo, helo_n, head.buf + head.len);
    }
    line_put(&head, tail.buf, tail.len);
    line_put(&head, "\r\n", 2);
    if (head.overflow) {
        return 0; /* cannot happen: the budget above kept it in bounds */
    }
    return buffer_append(out, head.buf, head.len);
}

/* ---- PROXY protocol ---- */

/* proxy_pair resolves |src| and |dst| and returns their common family,
 * or 0 when they are not both IPv4 or both IPv6. */
static int proxy_pair(const struct net_addr *src, const struct net_addr *dst,
                      struct ip_addr *s, struct ip_addr *d) {
    if (!net_addr_ip(src, s) || !net_addr_ip(dst, d) || s->family != d->family) {
        return 0;
    }
    return s->family;
}

int proxy_v1_header(const struct net_addr *src, const struct net_addr *dst,
                    struct buffer *out) {
    struct ip_addr s, d;
    int family = proxy_pair(src, dst, &s, &d);
    if (family == 0) {
        return buffer_append_str(out, "PROXY UNKNOWN\r\n");
    }
    char st[INET6_ADDRSTRLEN], dt[INET6_ADDRSTRLEN], line[PROXY_V1_MAX + 1];
    ip_text(&s, st);
    ip_text(&d, dt);
    int n = snprintf(line, sizeof(line), "PROXY %s %s %s %u %u\r\n",
                     family == AF_INET ? "TCP4" : "TCP6", st, dt, s.port, d.port);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        return 0; /* cannot happen: 104 octets at most */
    }
    return buffer_append(out, line, (size_t)n);
}

/* put16 stores |v| big-endian at |p|. */
static void put16(unsigned char *p, unsigned v) {
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)(v & 0xff);
}

int proxy_v2_header(const struct net_addr *src, const struct net_addr *dst,
                    struct buffer *out) {
    static const unsigned char sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                          0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
    unsigned char h[PROXY_V2_MAX];
    struct ip_addr s, d;
    int family = proxy_pair(src, dst, &s, &d);
    memcpy(h, sig, sizeof(sig));
    if (family == 0) {
        h[12] = 0x20; /* version 2, LOCAL */
        h[13] = 0x00; /* AF_UNSPEC, UNSPEC */
        put16(h + 14, 0);
        return buffer_append(out, h, 16);
    }
    size_t alen = family == AF_INET ? 4 : 16;
    h[12] = 0x21; /* version 2, PROXY */
    h[13] = family == AF_INET ? 0x11 : 0x21;
    put16(h + 14, (unsigned)(2 * alen + 4));
    memcpy(h + 16, s.bytes, alen);
    memcpy(h + 16 + alen, d.bytes, alen);
    put16(h + 16 + 2 * alen, s.port);
    put16(h + 18 + 2 * alen, d.port);
    return buffer_append(out, h, 20 + 2 * alen);
}
