/*
 * proxy_header.c - the PROXY protocol header decoder (proxy_header.h).
 *
 * Each field is scanned by a function that stops at the first octet that
 * is not part of it and answers SCAN_OK (a complete field, the cursor on
 * the octet after it, which exists), SCAN_BAD (the octets seen cannot
 * start such a field) or SCAN_MORE (the input ended inside a field that
 * can still be completed; |rest| is then the fewest octets that would
 * complete it). The v1 line adds up those minima to refuse, as soon as
 * it is certain, a line that could not end within 107 octets.
 */
#include "protocol/proxy_header.h"

#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum scan { SCAN_BAD, SCAN_MORE, SCAN_OK };

static const uint8_t v2_signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

#define PP2_TYPE_CRC32C 0x03

__attribute__((format(printf, 3, 4))) static enum proxy_status
refuse(char *why, size_t whylen, const char *fmt, ...) {
    if (why != NULL && whylen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return PROXY_ERROR;
}

static int is_digit(uint8_t c) {
    return c >= '0' && c <= '9';
}

static int hex_value(uint8_t c) {
    if (is_digit(c)) {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* scan_decimal reads a number of at most |max| without heading zeroes
 * ("0" alone is fine). At least one digit is needed, so an input that
 * ends before any digit needs 1 more octet. */
static enum scan scan_decimal(const uint8_t *p, size_t n, size_t *pi, unsigned max,
                              unsigned *val, size_t *rest) {
    size_t i = *pi;
    unsigned v = 0;
    size_t digits = 0;
    while (i < n && is_digit(p[i])) {
        if (digits == 1 && v == 0) {
            return SCAN_BAD; /* a heading zero */
        }
        v = v * 10 + (unsigned)(p[i] - '0');
        if (v > max) {
            return SCAN_BAD;
        }
        digits++;
        i++;
    }
    if (i == n) {
        *rest = digits == 0 ? 1 : 0;
        return SCAN_MORE;
    }
    if (digits == 0) {
        return SCAN_BAD;
    }
    *val = v;
    *pi = i;
    return SCAN_OK;
}

/* scan_ipv4 reads a dotted quad into |out| (network order). The fewest
 * octets completing a partial one: a digit if the current number has
 * none, then ".0" for each number still missing. */
static enum scan scan_ipv4(const uint8_t *p, size_t n, size_t *pi, uint8_t out[4],
                           size_t *rest) {
    size_t i = *pi;
    for (int k = 0; k < 4; k++) {
        unsigned v = 0;
        size_t r = 0;
        enum scan s = scan_decimal(p, n, &i, 255, &v, &r);
        if (s != SCAN_OK) {
            *rest = r + 2 * (size_t)(3 - k);
            return s;
        }
        out[k] = (uint8_t)v;
        if (k < 3) {
            if (p[i] != '.') {
                return SCAN_BAD;
            }
            i++;
        }
    }
    *pi = i;
    return SCAN_OK;
}

/* scan_ipv6 reads the RFC 4291 2.2 text form of an IPv6 address into
 * |out|: groups of 1..4 hex digits, at most one "::" standing for at
 * least one zero group, and optionally an IPv4 dotted quad as the last
 * 32 bits. |np| counts the 16-bit pieces written so far; the budget is 8
 * without "::" (and then exactly 8 are needed), 7 with it. Every step
 * that would break the budget is refused where it happens, so any state
 * the input ends in can be completed: after a group with ":" (or "::"
 * when no "::" yet), after a single ":" with one octet (":" or "0"),
 * inside an IPv4 tail with its own minimum. */
static enum scan scan_ipv6(const uint8_t *p, size_t n, size_t *pi, uint8_t out[16],
                           size_t *rest) {
    unsigned piece[8];
    int np = 0;
    int dc = -1; /* where "::" stands among the pieces, -1: none */
    size_t i = *pi;
    if (i == n) {
        *rest = 2; /* "::" */
        return SCAN_MORE;
    }
    if (p[i] == ':') {
        if (i + 1 == n) {
            *rest = 1;
            return SCAN_MORE;
        }
        if (p[i + 1] != ':') {
            return SCAN_BAD;
        }
        dc = 0;
        i += 2;
        if (i == n) {
            *rest = 0;
            return SCAN_MORE;
        }
        if (hex_value(p[i]) < 0) {
            goto end;
        }
    }
    for (;;) {
        /* At the start of a group. */
        size_t start = i;
        unsigned v = 0;
        int digits = 0;
        while (i < n && hex_value(p[i]) >= 0) {
            if (++digits > 4) {
                return SCAN_BAD;
            }
            v = v << 4 | (unsigned)hex_value(p[i]);
            i++;
        }
        int budget = dc >= 0 ? 7 : 8;
        if (digits == 0) { /* only after a single ':' */
            if (i == n) {
                *rest = 1;
                return SCAN_MORE;
            }
            return SCAN_BAD;
        }
        if (i < n && p[i] == '.') {
            /* The group was the first number of an IPv4 tail. */
            if (np + 2 > budget || (dc < 0 && np != 6)) {
                return SCAN_BAD;
            }
            uint8_t q[4];
            i = start;
            enum scan s = scan_ipv4(p, n, &i, q, rest);
            if (s != SCAN_OK) {
                return s;
            }
            piece[np++] = (unsigned)q[0] << 8 | q[1];
            piece[np++] = (unsigned)q[2] << 8 | q[3];
            goto end;
        }
        if (np + 1 > budget) {
            return SCAN_BAD;
        }
        piece[np++] = v;
        if (i == n) {
            *rest = (dc >= 0 || np == 8) ? 0 : 2; /* nothing, or "::" */
            return SCAN_MORE;
        }
        if (p[i] != ':') {
            goto end;
        }
        /* A ':' after a group: room for at least one more piece. */
        if (dc >= 0 ? np > 6 : np > 7) {
            return SCAN_BAD;
        }
        i++;
        if (i == n) {
            *rest = 1;
            return SCAN_MORE;
        }
        if (p[i] == ':') {
            if (dc >= 0) {
                return SCAN_BAD;
            }
            dc = np;
            i++;
            if (i == n) {
                *rest = 0;
                return SCAN_MORE;
            }
            if (hex_value(p[i]) < 0) {
                goto end;
            }
        }
    }
end:
    /* p[i] exists and is not part of the address. */
    if (dc < 0 ? np != 8 : np > 7) {
        return SCAN_BAD;
    }
    memset(out, 0, 16);
    int tail = dc < 0 ? 0 : np - dc; /* pieces after "::" go to the end */
    int head = np - tail;
    for (int k = 0; k < head; k++) {
        out[2 * k] = (uint8_t)(piece[k] >> 8);
        out[2 * k + 1] = (uint8_t)(piece[k] & 0xff);
    }
    for (int k = 0; k < tail; k++) {
        int at = 8 - tail + k;
        out[2 * at] = (uint8_t)(piece[head + k] >> 8);
        out[2 * at + 1] = (uint8_t)(piece[head + k] & 0xff);
    }
    *pi = i;
    return SCAN_OK;
}

static void set_inet(struct net_addr *a, const uint8_t addr[4], unsigned port) {
    struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    memcpy(&sin->sin_addr, addr, 4);
    a->len = sizeof(*sin);
}

static void set_inet6(struct net_addr *a, const uint8_t addr[16], unsigned port) {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)port);
    memcpy(&sin6->sin6_addr, addr, 16);
    a->len = sizeof(*sin6);
}

/* v1_more answers for an input that ended inside a v1 line which, at
 * the shortest, needs |rest| more octets. */
static enum proxy_status v1_more(size_t n, size_t rest, char *why, size_t whylen) {
    if (n + rest > PROXY_V1_MAX) {
        return refuse(why, whylen, "v1: no CRLF within %d octets", PROXY_V1_MAX);
    }
    return PROXY_NEED_MORE;
}

/* v1_unknown reads what follows "PROXY UNKNOWN" (at |i|): CRLF, or a
 * space and anything but CR or LF up to the CRLF. */
static enum proxy_status v1_unknown(const uint8_t *p, size_t n, size_t i,
                                    struct proxy_header *out, char *why, size_t whylen) {
    if (i < n && p[i] != ' ' && p[i] != '\r' && p[i] != '\n') {
        return refuse(why, whylen, "v1: bad protocol");
    }
    for (; i < n; i++) {
        if (p[i] == '\n') {
            return refuse(why, whylen, "v1: LF without CR");
        }
        if (p[i] != '\r') {
            continue;
        }
        if (i + 1 == n) {
            return v1_more(n, 1, why, whylen);
        }
        if (p[i + 1] != '\n') {
            return refuse(why, whylen, "v1: CR without LF");
        }
        if (i + 2 > PROXY_V1_MAX) {
            return refuse(why, whylen, "v1: no CRLF within %d octets", PROXY_V1_MAX);
        }
        out->version = 1;
        out->local = 1;
        out->length = i + 2;
        return PROXY_DONE;
    }
    return v1_more(n, 2, why, whylen);
}

static enum proxy_status parse_v1(const uint8_t *p, size_t n, struct proxy_header *out,
                                  char *why, size_t whylen) {
    static const char magic[] = "PROXY ";
    size_t m = n < 6 ? n : 6;
    if (memcmp(p, magic, m) != 0) {
        return refuse(why, whylen, "not a PROXY protocol header");
    }
    if (n <= 6) {
        return PROXY_NEED_MORE;
    }
    static const char *const protocols[3] = {"TCP4 ", "TCP6 ", "UNKNOWN"};
    size_t avail = n - 6;
    int partial = 0, which = -1;
    for (int k = 0; k < 3; k++) {
        size_t len = strlen(protocols[k]);
        size_t c = avail < len ? avail : len;
        if (memcmp(p + 6, protocols[k], c) == 0) {
            if (c < len) {
                partial = 1;
            } else {
                which = k;
            }
        }
    }
    if (which < 0) {
        return partial ? PROXY_NEED_MORE : refuse(why, whylen, "v1: bad protocol");
    }
    if (which == 2) {
        return v1_unknown(p, n, 6 + 7, out, why, whylen);
    }
    int v6 = which == 1;
    static const char *const field[4] = {"source address", "destination address",
                                         "source port", "destination port"};
    /* The fewest octets after each field: its delimiter and the shortest
     * later fields (TCP4 "0.0.0.0", TCP6 "::", port "0"), CRLF. */
    size_t amin = v6 ? 2 : 7;
    size_t after[4] = {1 + amin + 1 + 1 + 1 + 1 + 2, 1 + 1 + 1 + 1 + 2, 1 + 1 + 2, 2};
    uint8_t addr[2][16];
    unsigned port[2] = {0, 0};
    size_t i = 6 + 5;
    for (int k = 0; k < 4; k++) {
        size_t rest = 0;
        enum scan s;
        if (k < 2) {
            s = v6 ? scan_ipv6(p, n, &i, addr[k], &rest) : scan_ipv4(p, n, &i, addr[k], &rest);
        } else {
            s = scan_decimal(p, n, &i, 65535, &port[k - 2], &rest);
        }
        if (s == SCAN_BAD) {
            return refuse(why, whylen, "v1: bad %s", field[k]);
        }
        if (s == SCAN_MORE) {
            return v1_more(n, rest + after[k], why, whylen);
        }
        if (k < 3) {
            if (p[i] != ' ') {
                return refuse(why, whylen, "v1: bad %s", field[k]);
            }
            i++;
        }
    }
    /* CRLF right after the destination port. */
    if (p[i] != '\r') {
        return refuse(why, whylen, "v1: bad destination port");
    }
    if (i + 1 == n) {
        return v1_more(n, 1, why, whylen);
    }
    if (p[i + 1] != '\n') {
        return refuse(why, whylen, "v1: CR without LF");
    }
    if (i + 2 > PROXY_V1_MAX) {
        return refuse(why, whylen, "v1: no CRLF within %d octets", PROXY_V1_MAX);
    }
    out->version = 1;
    out->local = 0;
    if (v6) {
        set_inet6(&out->src, addr[0], port[0]);
        set_inet6(&out->dst, addr[1], port[1]);
    } else {
        set_inet(&out->src, addr[0], port[0]);
        set_inet(&out->dst, addr[1], port[1]);
    }
    out->length = i + 2;
    return PROXY_DONE;
}

/* crc32c is the Castagnoli CRC of RFC 4960 appendix B (reflected
 * polynomial 0x82F63B78, initial value and final XOR all ones), over
 * |n| octets with the 4 at |skip| read as zeroes. */
static uint32_t crc32c(const uint8_t *p, size_t n, size_t skip) {
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        uint8_t b = (i >= skip && i < skip + 4) ? 0 : p[i];
        crc ^= b;
        for (int k = 0; k < 8; k++) {
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
        }
    }
    return crc ^ 0xFFFFFFFFu;
}

static unsigned get16(const uint8_t *p) {
    return (unsigned)p[0] << 8 | p[1];
}

static enum proxy_status parse_v2(const uint8_t *p, size_t n, size_t v2_max,
                                  struct proxy_header *out, char *why, size_t whylen) {
    size_t m = n < sizeof(v2_signature) ? n : sizeof(v2_signature);
    if (memcmp(p, v2_signature, m) != 0) {
        return refuse(why, whylen, "not a PROXY protocol header");
    }
    if (n < 13) {
        return PROXY_NEED_MORE;
    }
    unsigned version = p[12] >> 4, command = p[12] & 0x0F;
    if (version != 2) {
        return refuse(why, whylen, "v2: version %u", version);
    }
    if (command > 1) {
        return refuse(why, whylen, "v2: command %u", command);
    }
    if (n < 14) {
        return PROXY_NEED_MORE;
    }
    unsigned family = p[13] >> 4, protocol = p[13] & 0x0F;
    size_t block = 0;  /* the address block |len| must cover */
    int addresses = 0; /* TCP over IPv4 or IPv6: take them */
    int tlvs = 0;      /* TLVs follow the block */
    if (command == 1) {
        if (family > 3) {
            return refuse(why, whylen, "v2: address family %u", family);
        }
        if (protocol > 2) {
            return refuse(why, whylen, "v2: transport protocol %u", protocol);
        }
        if (family != 0 && protocol != 0) {
            static const size_t sizes[4] = {0, 12, 36, 216};
            block = sizes[family];
            addresses = protocol == 1 && family <= 2;
            tlvs = 1;
        }
    }
    if (PROXY_V2_HEADER + block > v2_max) {
        return refuse(why, whylen, "v2: length %zu exceeds %zu", PROXY_V2_HEADER + block,
                      v2_max);
    }
    if (n < PROXY_V2_HEADER) {
        return PROXY_NEED_MORE;
    }
    size_t len = get16(p + 14);
    size_t total = PROXY_V2_HEADER + len;
    if (total > v2_max) {
        return refuse(why, whylen, "v2: length %zu exceeds %zu", total, v2_max);
    }
    if (len < block) {
        return refuse(why, whylen, "v2: %zu octets for a %zu-octet address block", len,
                      block);
    }
    size_t crc_at = 0; /* offset of the CRC32C value, 0: none */
    for (size_t o = PROXY_V2_HEADER + block; tlvs && o < total;) {
        if (total - o < 3) {
            return refuse(why, whylen, "v2: %zu octets after the last TLV", total - o);
        }
        if (o + 3 > n) {
            return PROXY_NEED_MORE;
        }
        size_t tl = get16(p + o + 1);
        if (tl > total - o - 3) {
            return refuse(why, whylen, "v2: TLV 0x%02x of %zu octets overruns the header",
                          (unsigned)p[o], tl);
        }
        if (p[o] == PP2_TYPE_CRC32C) {
            if (tl != 4) {
                return refuse(why, whylen, "v2: CRC32C TLV of %zu octets", tl);
            }
            if (crc_at != 0) {
                return refuse(why, whylen, "v2: more than one CRC32C TLV");
            }
            crc_at = o + 3;
        }
        o += 3 + tl;
    }
    if (n < total) {
        return PROXY_NEED_MORE;
    }
    if (crc_at != 0) {
        uint32_t sent = (uint32_t)get16(p + crc_at) << 16 | get16(p + crc_at + 2);
        if (crc32c(p, total, crc_at) != sent) {
            return refuse(why, whylen, "v2: CRC32C mismatch");
        }
    }
    out->version = 2;
    out->local = !addresses;
    if (addresses && family == 1) {
        set_inet(&out->src, p + 16, get16(p + 24));
        set_inet(&out->dst, p + 20, get16(p + 26));
    } else if (addresses) {
        set_inet6(&out->src, p + 16, get16(p + 48));
        set_inet6(&out->dst, p + 32, get16(p + 50));
    }
    out->length = total;
    return PROXY_DONE;
}

enum proxy_status proxy_header_parse(const uint8_t *p, size_t n, unsigned accept,
                                     size_t v2_max, struct proxy_header *out, char *why,
                                     size_t whylen) {
    memset(out, 0, sizeof(*out));
    if (why != NULL && whylen > 0) {
        why[0] = '\0';
    }
    int v1 = (accept & PROXY_ACCEPT_V1) != 0;
    int v2 = (accept & PROXY_ACCEPT_V2) != 0 && v2_max >= PROXY_V2_HEADER;
    if (!v1 && !v2) {
        if (accept & PROXY_ACCEPT_V2) {
            return refuse(why, whylen, "v2: limit %zu is below the %d-octet header", v2_max,
                          PROXY_V2_HEADER);
        }
        return refuse(why, whylen, "no PROXY protocol version accepted");
    }
    if (n == 0) {
        return PROXY_NEED_MORE;
    }
    /* The first octet tells the versions apart ('P' or CR). */
    if (p[0] == 'P' && v1) {
        return parse_v1(p, n, out, why, whylen);
    }
    if (p[0] == v2_signature[0] && v2) {
        return parse_v2(p, n, v2_max, out, why, whylen);
    }
    size_t m = n < 6 ? n : 6;
    if (memcmp(p, "PROXY ", m) == 0) {
        return refuse(why, whylen, "v1 header, but only v2 is accepted");
    }
    m = n < sizeof(v2_signature) ? n : sizeof(v2_signature);
    if (memcmp(p, v2_signature, m) == 0) {
        return refuse(why, whylen, "v2 header, but only v1 is accepted");
    }
    return refuse(why, whylen, "not a PROXY protocol header");
}
