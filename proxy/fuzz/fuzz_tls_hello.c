/*
 * fuzz_tls_hello.c - libFuzzer target for the ClientHello reading that
 * chooses between the ECDSA and the RSA certificate. Input: hostile
 * extension bodies (any lengths, any prefixes) and a listener's suite
 * list. Checked, besides memory safety under ASan:
 *  - the answer does not depend on anything outside the views given;
 *  - when the client is not on TLS 1.3, "ECDSA" implies the client
 *    offered a suite from the listener's list (else NO_SHARED_CIPHER);
 *  - offering the listener nothing never yields ECDSA below TLS 1.3.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/tls_hello.h"

/* take cuts the next piece: its length is the next byte. */
static const uint8_t *take(const uint8_t **p, size_t *n, size_t *out_len) {
    if (*n == 0) {
        *out_len = 0;
        return NULL;
    }
    size_t len = (*p)[0];
    (*p)++;
    (*n)--;
    if (len == 255) {
        *out_len = 0;
        return NULL; /* the extension is absent */
    }
    if (len > *n) {
        len = *n;
    }
    const uint8_t *piece = *p;
    *p += len;
    *n -= len;
    *out_len = len;
    return piece;
}

static int offers(const struct tls_hello_view *h, const struct tls_suite *s, size_t n) {
    for (size_t i = 0; i + 1 < h->suites_len; i += 2) {
        unsigned v = (unsigned)h->suites[i] << 8 | h->suites[i + 1];
        for (size_t k = 0; k < n; k++) {
            if (v == s[k].id) {
                return 1;
            }
        }
    }
    return 0;
}

static int offers_tls13(const struct tls_hello_view *h) {
    if (h->versions == NULL || h->versions_len < 1 || h->sigalgs == NULL) {
        return 0;
    }
    size_t body = h->versions[0];
    for (size_t i = 1; i + 1 < 1 + body && i + 1 < h->versions_len; i += 2) {
        if (h->versions[i] == 0x03 && h->versions[i + 1] == 0x04) {
            return 1;
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) {
        return 0;
    }
    struct tls_hello_view h;
    memset(&h, 0, sizeof(h));
    h.legacy_version = (uint16_t)(data[0] << 8 | data[1]);
    enum ecdsa_curve curve = (enum ecdsa_curve)(data[2] % 3);
    size_t nsuites = data[3] % 8;
    const uint8_t *p = data + 4;
    size_t n = size - 4;
    struct tls_suite suites[8];
    for (size_t i = 0; i < nsuites; i++) {
        if (n < 4) {
            nsuites = i;
            break;
        }
        suites[i].id = (uint16_t)(p[0] << 8 | p[1]);
        suites[i].min_version = (uint16_t)(p[2] << 8 | p[3]);
        p += 4;
        n -= 4;
    }
    h.sigalgs = take(&p, &n, &h.sigalgs_len);
    h.versions = take(&p, &n, &h.versions_len);
    h.groups = take(&p, &n, &h.groups_len);
    h.suites = take(&p, &n, &h.suites_len);
    /* Copies at fresh addresses: the answer must only read the views. */
    uint8_t *copies[4] = {NULL, NULL, NULL, NULL};
    struct tls_hello_view c = h;
    const uint8_t **fields[4] = {&c.sigalgs, &c.versions, &c.groups, &c.suites};
    size_t lens[4] = {c.sigalgs_len, c.versions_len, c.groups_len, c.suites_len};
    for (int i = 0; i < 4; i++) {
        if (*fields[i] != NULL) {
            copies[i] = malloc(lens[i] ? lens[i] : 1);
            memcpy(copies[i], *fields[i], lens[i]);
            *fields[i] = copies[i];
        }
    }
    int a = tls_hello_accepts_ecdsa(&h, curve, suites, nsuites);
    int b = tls_hello_accepts_ecdsa(&c, curve, suites, nsuites);
    if (a != b) {
        abort();
    }
    if (a && !offers_tls13(&h) && !offers(&h, suites, nsuites)) {
        abort(); /* ECDSA with no shared ECDSA suite */
    }
    if (!offers_tls13(&h) && tls_hello_accepts_ecdsa(&h, curve, suites, 0)) {
        abort();
    }
    for (int i = 0; i < 4; i++) {
        free(copies[i]);
    }
    return 0;
}
