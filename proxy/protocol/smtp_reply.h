/*
 * smtp_reply.h - collecting the backend's replies, multi-line included.
 *
 * A reply is one or more lines "ddd-text" ending with "ddd text" or
 * "ddd" (RFC 5321 4.2). The parser is resumable: feed it whatever the
 * backend has sent; it consumes complete lines only and says when a whole
 * reply has been collected. Bounded, because a broken or hostile backend
 * can send endless lines.
 */
#ifndef SMTP_TLS_PROXY_SMTP_REPLY_H
#define SMTP_TLS_PROXY_SMTP_REPLY_H

#include <stddef.h>

#include "core/buffer.h"

#define SMTP_REPLY_LINE_MAX 2048
#define SMTP_REPLY_LINES_MAX 256

enum reply_status {
    REPLY_INCOMPLETE = 0, /* need more bytes */
    REPLY_DONE = 1,       /* |text| holds a whole reply */
    REPLY_BAD = 2,        /* not SMTP, or over the limits */
};

struct smtp_reply {
    size_t line_max;    /* longest line, CRLF excluded; 0: SMTP_REPLY_LINE_MAX.
                         * AUTH's 334 challenges may carry 12288 octets of
                         * SASL (RFC 4954 4), other replies may not. */
    int code;           /* 100..599, from the first line */
    size_t nlines;      /* lines collected so far */
    struct buffer text; /* the lines, each ending in CRLF */
};

/* smtp_reply_feed consumes complete lines from |buf| (|n| bytes) into
 * |r|, stopping after a final line. *out_consumed is set to the bytes
 * used. A bare LF ends a line too; lines are stored with CRLF. */
enum reply_status smtp_reply_feed(struct smtp_reply *r, const char *buf,
                                  size_t n, size_t *out_consumed);

/* smtp_reply_reset empties |r| for the next reply and frees its memory;
 * line_max is kept. */
void smtp_reply_reset(struct smtp_reply *r);

#endif
