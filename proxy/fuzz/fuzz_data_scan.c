/*
 * fuzz_data_scan.c - libFuzzer target for the DATA scanner.
 *
 * Properties checked on every input, not just "no crash":
 *  - feeding the input whole and in random pieces gives the same output,
 *    result and consumed count (the scanner is resumable at any byte);
 *  - the output holds no bare CR or LF;
 *  - CRLF "." CRLF appears in the output only as its very end, and only
 *    when the scanner reports the end of data;
 *  - no header line of the output, as the backend un-stuffs it, is the
 *    status header.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "protocol/data_scan.h"

static const char *const NAME = "X-TLS-Status";

static void scan(const uint8_t *d, size_t n, const uint8_t *cuts, size_t ncuts,
                 struct buffer *out, size_t *consumed, enum data_result *result) {
    struct data_scan s;
    data_scan_init(&s, NAME);
    size_t pos = 0, k = 0;
    *result = DATA_MORE;
    while (pos < n) {
        size_t piece = n - pos;
        if (k < ncuts) {
            piece = (size_t)cuts[k++] % 7 + 1;
            if (piece > n - pos) {
                piece = n - pos;
            }
        }
        size_t used = 0;
        *result = data_scan_feed(&s, (const char *)d + pos, piece, out, &used);
        pos += used;
        if (*result != DATA_MORE) {
            break;
        }
        if (used != piece) {
            abort(); /* MORE means everything given was taken */
        }
    }
    *consumed = pos;
}

static void check_output(const char *o, size_t n, enum data_result r) {
    size_t line_start = 0;
    for (size_t i = 0; i < n; i++) {
        if (o[i] == '\0') {
            abort(); /* NUL reaches the backend */
        }
        if (o[i] == '\n') {
            if (i - line_start - 1 > DATA_SCAN_LINE_MAX) {
                abort(); /* a line a 1000-octet reader would split */
            }
            line_start = i + 1;
        }
        if (o[i] == '\n' && (i == 0 || o[i - 1] != '\r')) {
            abort(); /* bare LF */
        }
        if (o[i] == '\r' && (i + 1 >= n || o[i + 1] != '\n')) {
            abort(); /* bare CR */
        }
    }
    /* The backend sees our headers (ending in CRLF) before this output. */
    for (size_t i = 0; i + 3 <= n; i++) {
        int at_line_start = i == 0 || o[i - 1] == '\n';
        if (at_line_start && memcmp(o + i, ".\r\n", 3) == 0 && i + 3 != n) {
            abort(); /* an end of data before the end */
        }
    }
    int ends = n >= 3 && memcmp(o + n - 3, ".\r\n", 3) == 0 && (n == 3 || o[n - 4] == '\n');
    if ((r == DATA_END) != ends) {
        abort();
    }
    /* Header block: lines up to the first empty one, un-stuffed. */
    size_t i = 0;
    size_t name_len = strlen(NAME);
    while (i < n) {
        const char *line = o + i;
        const char *nl = memchr(line, '\n', n - i);
        size_t len = nl ? (size_t)(nl - line) + 1 : n - i;
        if (len <= 2) {
            break; /* the empty line */
        }
        const char *p = line[0] == '.' ? line + 1 : line;
        size_t plen = len - (size_t)(p - line);
        if (plen > name_len && strncasecmp(p, NAME, name_len) == 0) {
            size_t j = name_len;
            while (j < plen && (p[j] == ' ' || p[j] == '\t')) {
                j++;
            }
            if (j < plen && p[j] == ':') {
                abort(); /* a forged status header reached the backend */
            }
            if (j + 2 == plen && i + len < n && (o[i + len] == ' ' || o[i + len] == '\t')) {
                abort(); /* the status field, folded before its colon */
            }
        }
        i += len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* The first bytes choose the piece sizes, the rest is the message. */
    size_t ncuts = size > 0 ? data[0] % 32 : 0;
    if (ncuts + 1 > size) {
        return 0;
    }
    const uint8_t *cuts = data + 1;
    const uint8_t *msg = data + 1 + ncuts;
    size_t n = size - 1 - ncuts;

    struct buffer whole = {0}, pieces = {0};
    size_t used_whole, used_pieces;
    enum data_result r_whole, r_pieces;
    scan(msg, n, NULL, 0, &whole, &used_whole, &r_whole);
    scan(msg, n, cuts, ncuts, &pieces, &used_pieces, &r_pieces);
    if (r_whole != r_pieces || used_whole != used_pieces || whole.len != pieces.len ||
        (whole.len && memcmp(buffer_head(&whole), buffer_head(&pieces), whole.len) != 0)) {
        abort();
    }
    check_output(whole.len ? buffer_head(&whole) : "", whole.len, r_whole);
    buffer_free(&whole);
    buffer_free(&pieces);
    return 0;
}
