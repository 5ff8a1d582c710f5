/*
 * fuzz_proxy_header.c - libFuzzer target for the PROXY protocol header
 * reader, which sees the first octets a load balancer (or anyone who
 * can reach a PROXY listener) sends. Any input is parsed with both
 * versions accepted. Checked, besides memory safety under ASan/UBSan:
 *  - DONE: 0 < length <= n, version 1 (length <= 107) or 2 (16 <= length
 *    <= the limit); when not local both addresses are AF_INET or both
 *    AF_INET6 with the matching sockaddr length; when local they are
 *    all zero;
 *  - the statuses of the prefixes of the input are NEED_MORE for the
 *    short ones, then either ERROR or DONE (with the same header) for
 *    all longer ones: in particular every proper prefix of a header is
 *    NEED_MORE, never ERROR;
 *  - ERROR always says why;
 *  - a header read with addresses, written again by identity.c's
 *    encoder of the same version, reads back to the same addresses.
 */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/addr.h"
#include "core/buffer.h"
#include "protocol/identity.h"
#include "protocol/proxy_header.h"

#define BOTH (PROXY_ACCEPT_V1 | PROXY_ACCEPT_V2)
#define LIMIT PROXY_V2_MAX_DEFAULT

static int all_zero(const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        if (b[i] != 0) {
            return 0;
        }
    }
    return 1;
}

static void check_done(const struct proxy_header *h, size_t n) {
    if (h->length == 0 || h->length > n) {
        abort();
    }
    if (h->version == 1 ? h->length > PROXY_V1_MAX
                        : h->version != 2 || h->length < 16 || h->length > LIMIT) {
        abort();
    }
    if (h->local) {
        if (!all_zero(&h->src, sizeof(h->src)) || !all_zero(&h->dst, sizeof(h->dst))) {
            abort();
        }
        return;
    }
    int f = h->src.ss.ss_family;
    socklen_t want = f == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    if ((f != AF_INET && f != AF_INET6) || h->dst.ss.ss_family != f || h->src.len != want ||
        h->dst.len != want) {
        abort();
    }
}

static int same(const struct proxy_header *a, const struct proxy_header *b) {
    return a->version == b->version && a->local == b->local && a->length == b->length &&
           memcmp(&a->src, &b->src, sizeof(a->src)) == 0 &&
           memcmp(&a->dst, &b->dst, sizeof(a->dst)) == 0;
}

static int same_ip(const struct net_addr *a, const struct net_addr *b) {
    struct ip_addr x, y;
    if (!net_addr_ip(a, &x) || !net_addr_ip(b, &y)) {
        abort();
    }
    size_t n = x.family == AF_INET ? 4 : 16;
    return x.family == y.family && x.port == y.port && memcmp(x.bytes, y.bytes, n) == 0;
}

/* round_trip writes |h|'s addresses with identity.c and reads them back. */
static void round_trip(const struct proxy_header *h) {
    struct buffer b = {0};
    int ok = h->version == 1 ? proxy_v1_header(&h->src, &h->dst, &b)
                             : proxy_v2_header(&h->src, &h->dst, &b);
    if (!ok) {
        return; /* no memory */
    }
    struct proxy_header again;
    char why[128];
    enum proxy_status s = proxy_header_parse((const uint8_t *)buffer_head(&b), b.len, BOTH,
                                             LIMIT, &again, why, sizeof(why));
    if (s != PROXY_DONE || again.length != b.len) {
        abort();
    }
    /* identity folds IPv4-mapped IPv6 into IPv4: a pair that is mapped on
     * one side only becomes UNKNOWN/LOCAL; compare when it stayed a pair. */
    struct ip_addr x, y;
    net_addr_ip(&h->src, &x);
    net_addr_ip(&h->dst, &y);
    if (x.family == y.family) {
        if (again.local || !same_ip(&again.src, &h->src) || !same_ip(&again.dst, &h->dst)) {
            abort();
        }
    } else if (!again.local) {
        abort();
    }
    buffer_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct proxy_header h;
    char why[128];
    enum proxy_status full = proxy_header_parse(data, size, BOTH, LIMIT, &h, why, sizeof(why));
    if (full == PROXY_ERROR && why[0] == '\0') {
        abort();
    }
    if (full == PROXY_DONE) {
        check_done(&h, size);
        if (!h.local) {
            round_trip(&h);
        }
    }
    if (full == PROXY_NEED_MORE && size >= LIMIT && size >= PROXY_V1_MAX) {
        abort(); /* no header this long is acceptable */
    }
    /* Every prefix, against the whole: NEED_MORE up to some point, then
     * the whole's status (and header) for good. */
    size_t upto = size < LIMIT + 1 ? size : LIMIT + 1; /* all settled by then */
    int settled = 0;
    for (size_t k = 0; k <= upto; k++) {
        struct proxy_header hk;
        enum proxy_status s = proxy_header_parse(data, k, BOTH, LIMIT, &hk, why, sizeof(why));
        if (s == PROXY_NEED_MORE) {
            if (settled) {
                abort();
            }
            continue;
        }
        settled = 1;
        if (s != full) {
            abort();
        }
        if (s == PROXY_DONE && (!same(&hk, &h) || hk.length > k)) {
            abort();
        }
    }
    /* A v2-only or v1-only listener agrees with the both-versions one on
     * a header of its version. */
    if (full == PROXY_DONE) {
        unsigned only = h.version == 1 ? PROXY_ACCEPT_V1 : PROXY_ACCEPT_V2;
        struct proxy_header ho;
        if (proxy_header_parse(data, size, only, LIMIT, &ho, why, sizeof(why)) != PROXY_DONE ||
            !same(&ho, &h)) {
            abort();
        }
        unsigned other = h.version == 1 ? PROXY_ACCEPT_V2 : PROXY_ACCEPT_V1;
        if (proxy_header_parse(data, size, other, LIMIT, &ho, why, sizeof(why)) !=
            PROXY_ERROR) {
            abort();
        }
    }
    return 0;
}
