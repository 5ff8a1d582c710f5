/*
 * cidr.c - address prefixes and lists of them (see cidr.h).
 */
#include "core/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The longest item cidr_parse can accept ("ffff:...:255.255.255.255/128"
 * is 49 characters); anything longer is reported without being read. */
#define ITEM_MAX 63

static void set_why(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_why(char *why, size_t whylen, const char *fmt, ...) {
    if (why == NULL || whylen == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

/* shown copies at most |n| bytes of |text| for a message: at most 40 of
 * them, anything but printable ASCII (and '"') as '?', "..." when cut. */
static const char *shown(char out[48], const char *text, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n && text[i] != '\0'; i++) {
        if (o == 40) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        unsigned char c = (unsigned char)text[i];
        out[o++] = (c >= 0x20 && c < 0x7f && c != '"') ? (char)c : '?';
    }
    out[o] = '\0';
    return out;
}

static unsigned family_bits(unsigned family) {
    return family == AF_INET ? 32 : family == AF_INET6 ? 128 : 0;
}

/* clear_after zeroes every bit of |addr| (16 bytes) after the first
 * |bits|. */
static void clear_after(uint8_t addr[16], unsigned bits) {
    unsigned full = bits / 8;
    if (full >= 16) {
        return;
    }
    if (bits % 8 != 0) {
        addr[full] &= (uint8_t)(0xff00u >> (bits % 8));
        full++;
    }
    memset(addr + full, 0, 16 - full);
}

/* same_bits says whether |a| and |b| agree in their first |bits| bits. */
static int same_bits(const uint8_t *a, const uint8_t *b, unsigned bits) {
    unsigned full = bits / 8;
    if (memcmp(a, b, full) != 0) {
        return 0;
    }
    if (bits % 8 == 0) {
        return 1;
    }
    uint8_t mask = (uint8_t)(0xff00u >> (bits % 8));
    return ((a[full] ^ b[full]) & mask) == 0;
}

static int is_v4_mapped(const uint8_t a[16]) {
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(a, mapped, 12) == 0;
}

int cidr_normalize(struct cidr *c) {
    unsigned bits = family_bits(c->family);
    if (bits == 0 || c->prefix > bits) {
        return 0;
    }
    if (c->family == AF_INET6 && c->prefix >= 96 && is_v4_mapped(c->addr)) {
        memmove(c->addr, c->addr + 12, 4);
        c->family = AF_INET;
        c->prefix = (uint8_t)(c->prefix - 96);
    }
    if (c->family == AF_INET) {
        memset(c->addr + 4, 0, 12);
    }
    clear_after(c->addr, c->prefix);
    return 1;
}

/* ip_of folds |a| into |ip|; 0 for anything that is not IP. */
static int ip_of(const struct net_addr *a, struct ip_addr *ip) {
    return a != NULL && net_addr_ip(a, ip) && family_bits((unsigned)ip->family) != 0;
}

int cidr_of_addr(const struct net_addr *a, unsigned v4_prefix, unsigned v6_prefix,
                 struct cidr *out) {
    memset(out, 0, sizeof(*out));
    struct ip_addr ip;
    if (!ip_of(a, &ip)) {
        return 0;
    }
    unsigned bits = family_bits((unsigned)ip.family);
    unsigned want = ip.family == AF_INET ? v4_prefix : v6_prefix;
    out->family = (uint8_t)ip.family;
    out->prefix = (uint8_t)(want < bits ? want : bits);
    memcpy(out->addr, ip.bytes, bits / 8);
    clear_after(out->addr, out->prefix);
    return 1;
}

int cidr_parse(const char *text, struct cidr *out, char *why, size_t whylen) {
    char show[48];
    size_t n = strlen(text);
    if (n == 0) {
        set_why(why, whylen, "empty address prefix");
        return 0;
    }
    const char *slash = strchr(text, '/');
    size_t addr_len = slash != NULL ? (size_t)(slash - text) : n;
    char host[INET6_ADDRSTRLEN];
    struct cidr c = {0};
    if (addr_len < sizeof(host)) {
        memcpy(host, text, addr_len);
        host[addr_len] = '\0';
        if (inet_pton(AF_INET, host, c.addr) == 1) {
            c.family = AF_INET;
        } else if (inet_pton(AF_INET6, host, c.addr) == 1) {
            c.family = AF_INET6;
        }
    }
    if (c.family == 0) {
        set_why(why, whylen, "\"%s\": not an IPv4 or IPv6 address%s",
                shown(show, text, n), slash != NULL ? " before the '/'" : "");
        return 0;
    }
    unsigned bits = family_bits(c.family);
    unsigned prefix = bits;
    if (slash != NULL) {
        const char *p = slash + 1;
        size_t digits = strspn(p, "0123456789");
        if (digits == 0 || digits > 3 || p[digits] != '\0') {
            set_why(why, whylen, "\"%s\": the prefix length after '/' must be a number, 0 to %u",
                    shown(show, text, n), bits);
            return 0;
        }
        prefix = (unsigned)atoi(p);
        if (prefix > bits) {
            set_why(why, whylen, "\"%s\": prefix length %u is longer than %u, the most for %s",
                    shown(show, text, n), prefix, bits, bits == 32 ? "IPv4" : "IPv6");
            return 0;
        }
    }
    c.prefix = (uint8_t)prefix;
    cidr_normalize(&c);
    *out = c;
    return 1;
}

void cidr_format(const struct cidr *c, char *out, size_t outlen) {
    if (outlen == 0) {
        return;
    }
    char host[INET6_ADDRSTRLEN];
    unsigned bits = family_bits(c->family);
    if (bits == 0 || c->prefix > bits || inet_ntop(c->family, c->addr, host, sizeof(host)) == NULL) {
        snprintf(out, outlen, "invalid");
        return;
    }
    snprintf(out, outlen, "%s/%u", host, (unsigned)c->prefix);
}

int cidr_contains(const struct cidr *c, const struct net_addr *a) {
    struct ip_addr ip;
    if (!ip_of(a, &ip) || ip.family != c->family || c->prefix > family_bits(c->family)) {
        return 0;
    }
    return same_bits(c->addr, ip.bytes, c->prefix);
}

int cidr_covers(const struct cidr *outer, const struct cidr *inner) {
    unsigned bits = family_bits(outer->family);
    if (bits == 0 || outer->family != inner->family || outer->prefix > inner->prefix ||
        inner->prefix > bits) {
        return 0;
    }
    return same_bits(outer->addr, inner->addr, outer->prefix);
}

int cidr_equal(const struct cidr *a, const struct cidr *b) {
    return a->family == b->family && a->prefix == b->prefix && cidr_covers(a, b);
}

static int is_separator(char c) {
    return c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' ||
           c == '\f';
}

/* next_item finds the next item at or after *p, skipping separators and
 * comments: returns its start and sets *len, or NULL at the end. *p is
 * left after the item. */
static const char *next_item(const char **p, size_t *len) {
    const char *s = *p;
    for (;;) {
        while (is_separator(*s)) {
            s++;
        }
        if (*s != '#') {
            break;
        }
        s += strcspn(s, "\n");
    }
    if (*s == '\0') {
        *p = s;
        return NULL;
    }
    size_t n = 0;
    while (s[n] != '\0' && s[n] != '#' && !is_separator(s[n])) {
        n++;
    }
    *len = n;
    *p = s + n;
    return s;
}

int cidr_list_add_text(struct cidr_list *l, const char *text, char *why, size_t whylen) {
    /* First count, so the array grows once and a bad item leaves |l| as
     * it was. */
    size_t count = 0, len;
    const char *p = text;
    while (next_item(&p, &len) != NULL) {
        count++;
    }
    if (count == 0) {
        return 1;
    }
    if (count > ((size_t)-1) / sizeof(struct cidr) - l->n) {
        set_why(why, whylen, "out of memory for %zu address prefixes", count);
        return 0;
    }
    struct cidr *items = realloc(l->items, (l->n + count) * sizeof(struct cidr));
    if (items == NULL) {
        set_why(why, whylen, "out of memory for %zu address prefixes", count);
        return 0;
    }
    l->items = items;
    p = text;
    for (size_t i = 0; i < count; i++) {
        const char *item = next_item(&p, &len);
        char one[ITEM_MAX + 1], inner[160], show[48];
        int ok = 0;
        if (len <= ITEM_MAX) {
            memcpy(one, item, len);
            one[len] = '\0';
            ok = cidr_parse(one, &items[l->n + i], inner, sizeof(inner));
        } else {
            snprintf(inner, sizeof(inner), "\"%s\": too long for an address prefix",
                     shown(show, item, len));
        }
        if (!ok) {
            set_why(why, whylen, "item %zu: %s", i + 1, inner);
            return 0; /* l->n unchanged: the parsed ones are not counted */
        }
    }
    l->n += count;
    return 1;
}

int cidr_list_contains(const struct cidr_list *l, const struct net_addr *a) {
    for (size_t i = 0; i < l->n; i++) {
        if (cidr_contains(&l->items[i], a)) {
            return 1;
        }
    }
    return 0;
}

int cidr_list_covers(const struct cidr_list *l, const struct cidr *c) {
    for (size_t i = 0; i < l->n; i++) {
        if (cidr_covers(&l->items[i], c)) {
            return 1;
        }
    }
    return 0;
}

void cidr_list_free(struct cidr_list *l) {
    if (l == NULL) {
        return;
    }
    free(l->items);
    l->items = NULL;
    l->n = 0;
}
