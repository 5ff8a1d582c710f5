/*
 * fuzz_smtp_reply.c - libFuzzer target for the reply parser and the EHLO
 * rewriter: any backend bytes, in any pieces, give the same replies; a
 * rewritten EHLO reply is well-formed (every line "250-" but the last
 * "250 ", CRLF endings) and never offers what the proxy must hide.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "protocol/ehlo.h"
#include "protocol/smtp_reply.h"

static void check_ehlo(const char *o, size_t n) {
    size_t i = 0;
    int last_seen = 0;
    while (i < n) {
        const char *nl = memchr(o + i, '\n', n - i);
        if (nl == NULL || nl == o + i || nl[-1] != '\r' || last_seen) {
            abort();
        }
        size_t len = (size_t)(nl - (o + i)) + 1;
        if (len < 6 || memcmp(o + i, "250", 3) != 0 || (o[i + 3] != '-' && o[i + 3] != ' ')) {
            abort();
        }
        last_seen = o[i + 3] == ' ';
        const char *kw = o + i + 4;
        static const char *const hidden[] = {"CHUNKING", "BINARYMIME", "XCLIENT",
                                             "XFORWARD", "AUTH"};
        if (i > 0) {
            for (size_t h = 0; h < sizeof(hidden) / sizeof(hidden[0]); h++) {
                size_t hl = strlen(hidden[h]);
                if (len - 6 >= hl && strncasecmp(kw, hidden[h], hl) == 0 &&
                    (len - 6 == hl || kw[hl] == ' ' || kw[hl] == '=')) {
                    abort();
                }
            }
        }
        i += len;
    }
    if (!last_seen) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) {
        return 0;
    }
    size_t step = data[0] % 13 + 1;
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    struct smtp_reply whole = {0}, pieces = {0};
    size_t used_whole = 0;
    enum reply_status st_whole = smtp_reply_feed(&whole, in, n, &used_whole);
    /* Feed the same bytes growing by |step|, as reads would arrive. */
    size_t pos = 0, avail = 0;
    enum reply_status st_pieces = REPLY_INCOMPLETE;
    while (avail < n || st_pieces == REPLY_INCOMPLETE) {
        avail = avail + step < n ? avail + step : n;
        size_t used = 0;
        st_pieces = smtp_reply_feed(&pieces, in + pos, avail - pos, &used);
        pos += used;
        if (st_pieces != REPLY_INCOMPLETE || avail == n) {
            break;
        }
    }
    if (st_whole != st_pieces || (st_whole == REPLY_DONE && (used_whole != pos ||
        whole.text.len != pieces.text.len ||
        memcmp(buffer_head(&whole.text), buffer_head(&pieces.text), whole.text.len) != 0))) {
        abort();
    }
    if (st_whole == REPLY_DONE && whole.code == 250) {
        struct buffer out = {0};
        struct ehlo_policy policy = {.offer_starttls = data[0] & 1, .hide_auth = 1,
                                     .size_reserve = 2048};
        if (!ehlo_rewrite(buffer_head(&whole.text), whole.text.len, &policy, &out)) {
            abort();
        }
        check_ehlo(buffer_head(&out), out.len);
        buffer_free(&out);
    }
    smtp_reply_reset(&whole);
    smtp_reply_reset(&pieces);
    return 0;
}
