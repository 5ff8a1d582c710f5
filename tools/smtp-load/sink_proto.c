/*
 * sink_proto.c - the sink's SMTP conversation (see sink_proto.h).
 */
#include "sink_proto.h"

#include <string.h>

#include "protocol/proxy_header.h"
#include "protocol/smtp_cmd.h"

static const char EHLO_REPLY[] =
    "250-sink.test\r\n250-PIPELINING\r\n250-SIZE 1073741824\r\n250-8BITMIME\r\n"
    "250 ENHANCEDSTATUSCODES\r\n";
static const char OK[] = "250 2.0.0 Ok\r\n";

/* put appends the string |s| to the output (room was checked). */
static void put(char *out, size_t *out_len, const char *s) {
    size_t n = strlen(s);
    memcpy(out + *out_len, s, n);
    *out_len += n;
}

/* skip_proxy_header looks at the connection's first bytes. Returns 1
 * with *used set (0 or the header's length) when the commands begin,
 * 0 when a header has begun but is not complete. Anything that is not
 * a header this parser accepts is taken as commands. */
static int skip_proxy_header(const char *in, size_t n, size_t *used) {
    struct proxy_header h;
    *used = 0;
    if (n == 0) {
        return 0;
    }
    enum proxy_status st =
        proxy_header_parse((const uint8_t *)in, n, PROXY_ACCEPT_V1 | PROXY_ACCEPT_V2,
                           PROXY_V2_HEADER + 65535, &h, NULL, 0);
    if (st == PROXY_NEED_MORE) {
        return 0;
    }
    if (st == PROXY_DONE) {
        *used = h.length;
    }
    return 1;
}

/* answer writes the reply to command line |line| (|len|, no terminator)
 * and moves |s| to data when it is DATA. Returns SINK_CLOSE after QUIT,
 * SINK_MORE otherwise. */
static enum sink_result answer(struct sink_session *s, const char *line, size_t len,
                               char *out, size_t *out_len) {
    struct smtp_cmd cmd;
    if (!smtp_cmd_parse(line, len, &cmd)) {
        put(out, out_len, "502 5.5.2 Error\r\n");
        return SINK_MORE;
    }
    switch (cmd.verb) {
    case VERB_EHLO:
        put(out, out_len, EHLO_REPLY);
        break;
    case VERB_HELO:
        put(out, out_len, "250 sink.test\r\n");
        break;
    case VERB_MAIL:
    case VERB_RCPT:
    case VERB_RSET:
    case VERB_NOOP:
        put(out, out_len, OK);
        break;
    case VERB_DATA:
        put(out, out_len, "354 End data with <CR><LF>.<CR><LF>\r\n");
        s->phase = SINK_DATA;
        s->eod = EOD_BOL;
        s->data_octets = 0;
        break;
    case VERB_QUIT:
        put(out, out_len, "221 2.0.0 Bye\r\n");
        return SINK_CLOSE;
    case VERB_XCLIENT:
        /* Postfix's semantics: the session starts again with a greeting. */
        put(out, out_len, SINK_GREETING);
        break;
    default:
        put(out, out_len, "502 5.5.2 Error\r\n");
        break;
    }
    return SINK_MORE;
}

/* feed_data scans message data; on its end counts the message and
 * queues the 250. Returns the octets used. */
static size_t feed_data(struct sink_session *s, const char *in, size_t n, char *out,
                        size_t *out_len) {
    size_t used = 0;
    int end = eod_scan(&s->eod, in, n, &used);
    s->data_octets += used;
    if (end) {
        s->messages++;
        s->message_bytes += s->data_octets - 3;
        s->phase = SINK_COMMANDS;
        put(out, out_len, "250 2.0.0 Ok: queued\r\n");
    }
    return used;
}

enum sink_result sink_feed(struct sink_session *s, const char *in, size_t n, char *out,
                           size_t out_cap, size_t *out_len, size_t *out_consumed) {
    size_t pos = 0;
    enum sink_result r = SINK_MORE;
    if (s->phase == SINK_START) {
        size_t used;
        if (!skip_proxy_header(in, n, &used)) {
            *out_consumed = 0;
            return SINK_MORE;
        }
        pos = used;
        s->phase = SINK_COMMANDS;
    }
    while (pos < n && r == SINK_MORE) {
        if (out_cap - *out_len < SINK_REPLY_MAX) {
            r = SINK_FULL;
            break;
        }
        if (s->phase == SINK_DATA) {
            pos += feed_data(s, in + pos, n - pos, out, out_len);
            continue;
        }
        size_t len, used;
        enum line_status ls = smtp_line_find(in + pos, n - pos, SINK_LINE_MAX, &len, &used);
        if (ls == LINE_INCOMPLETE) {
            break;
        }
        if (ls == LINE_TOO_LONG) {
            put(out, out_len, "500 5.5.0 Line too long\r\n");
            r = SINK_CLOSE;
            break;
        }
        r = answer(s, in + pos, len, out, out_len);
        pos += used;
    }
    *out_consumed = pos;
    return r;
}
