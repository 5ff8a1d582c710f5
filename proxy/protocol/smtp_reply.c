/*
 * smtp_reply.c - resumable, bounded parser for multi-line SMTP replies.
 */
#include "protocol/smtp_reply.h"

#include <string.h>

static int is_digit(char c) {
    return c >= '0' && c <= '9';
}

/* check_line validates one reply line (no terminator) against the code of
 * the reply so far. Returns 1 for a final line, 0 for a continuation,
 * -1 when the line is not an SMTP reply line. */
static int check_line(struct smtp_reply *r, const char *line, size_t len) {
    if (len < 3 || !is_digit(line[0]) || !is_digit(line[1]) || !is_digit(line[2])) {
        return -1;
    }
    if (line[0] < '1' || line[0] > '5') {
        return -1;
    }
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (r->nlines > 0 && code != r->code) {
        return -1;
    }
    r->code = code;
    if (len == 3 || line[3] == ' ') {
        return 1;
    }
    return line[3] == '-' ? 0 : -1;
}

enum reply_status smtp_reply_feed(struct smtp_reply *r, const char *buf,
                                  size_t n, size_t *out_consumed) {
    size_t used = 0;
    size_t line_max = r->line_max ? r->line_max : SMTP_REPLY_LINE_MAX;
    *out_consumed = 0;
    while (used < n) {
        size_t avail = n - used;
        const char *line = buf + used;
        const char *lf = memchr(line, '\n', avail);
        if (lf == NULL) {
            return avail > line_max + 2 ? REPLY_BAD : REPLY_INCOMPLETE;
        }
        size_t len = (size_t)(lf - line);
        used += len + 1;
        if (len > 0 && line[len - 1] == '\r') {
            len--;
        }
        if (len > line_max || memchr(line, '\r', len) != NULL ||
            memchr(line, '\0', len) != NULL) {
            return REPLY_BAD;
        }
        int final = check_line(r, line, len);
        if (final < 0 || r->nlines >= SMTP_REPLY_LINES_MAX) {
            return REPLY_BAD;
        }
        if (!buffer_append(&r->text, line, len) || !buffer_append(&r->text, "\r\n", 2)) {
            return REPLY_BAD;
        }
        r->nlines++;
        *out_consumed = used;
        if (final) {
            return REPLY_DONE;
        }
    }
    return REPLY_INCOMPLETE;
}

void smtp_reply_reset(struct smtp_reply *r) {
    buffer_free(&r->text);
    r->code = 0;
    r->nlines = 0;
}
