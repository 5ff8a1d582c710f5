/*
 * data_scan.c - the DATA stream scanner (see data_scan.h for the rules).
 *
 * Two layers: framing turns wire bytes into line events (line begins,
 * unstuffed content bytes, line ends), deciding what is a line ending and
 * what is the end of data; the header filter sees those events and
 * decides what reaches the backend.
 */
#include "protocol/data_scan.h"

#include <string.h>
#include <strings.h>

enum frame_state {
    FRAME_BOL = 0,    /* at the beginning of a line */
    FRAME_DOT = 1,    /* "." at the beginning of a line */
    FRAME_DOT_CR = 2, /* ".\r" at the beginning of a line */
    FRAME_MID = 3,    /* inside a line */
    FRAME_CR = 4,     /* "\r" seen inside or at the start of a line */
};

enum header_decision {
    HDR_UNDECIDED = 0, /* collecting the field name */
    HDR_PASS = 1,
    HDR_DROP = 2,
    HDR_BODY = 3, /* past the header block */
};

void data_scan_init(struct data_scan *s, const char *drop_name) {
    memset(s, 0, sizeof(*s));
    s->drop_name = drop_name;
    s->drop_name_len = strlen(drop_name);
    s->frame = FRAME_BOL;
    s->prev_crlf = 1; /* the DATA command's own CRLF */
    s->in_headers = 1;
    s->first_line = 1;
}

static void out_put(struct data_scan *s, struct buffer *out, const char *p, size_t n) {
    if (!buffer_append(out, p, n)) {
        s->nomem = 1;
    }
}

/* out_line_bytes writes bytes of the current line, breaking it with
 * CRLF SP before it would pass DATA_SCAN_LINE_MAX octets. */
static void out_line_bytes(struct data_scan *s, struct buffer *out, const char *p,
                           size_t n) {
    while (n > 0) {
        if (s->line_out == DATA_SCAN_LINE_MAX) {
            out_put(s, out, "\r\n ", 3);
            s->line_out = 1;
            s->lines_broken++;
        }
        size_t room = DATA_SCAN_LINE_MAX - s->line_out;
        size_t k = n < room ? n : room;
        out_put(s, out, p, k);
        s->line_out += k;
        p += k;
        n -= k;
    }
}

/* out_content writes content bytes of a passing line. Its first write
 * puts back the client's stuffing dot, and stuffs a line whose first
 * byte is "." although the client did not (a NUL before it was
 * removed): the backend must never see a line that begins with a lone
 * dot it did not get stuffed. */
static void out_content(struct data_scan *s, struct buffer *out, const char *p,
                        size_t n) {
    if (n == 0) {
        return;
    }
    if (!s->dot_written && (s->stuffed || (s->line_out == 0 && p[0] == '.'))) {
        out_line_bytes(s, out, ".", 1);
        s->dot_written = 1;
    }
    out_line_bytes(s, out, p, n);
}

static int is_wsp(char c) {
    return c == ' ' || c == '\t';
}

/* drop_field starts dropping the current header field. */
static void drop_field(struct data_scan *s) {
    s->hdr = HDR_DROP;
    s->dropping = 1;
    s->dropped_fields++;
    s->nheld = 0;
}

/* decide_held classifies the held start of a header line, which ends in
 * ':' or cannot be a field name, and writes it when it passes. */
static void decide_held(struct data_scan *s, struct buffer *out, int has_colon) {
    size_t len = s->nheld;
    if (has_colon) {
        len--;
        while (len > 0 && is_wsp(s->held[len - 1])) {
            len--;
        }
    }
    if (has_colon && len == s->drop_name_len &&
        strncasecmp(s->held, s->drop_name, len) == 0) {
        drop_field(s);
        return;
    }
    s->hdr = HDR_PASS;
    s->dropping = 0;
    out_content(s, out, s->held, s->nheld);
    s->nheld = 0;
}

/* held_is_drop_name_and_wsp says whether the held bytes are the drop
 * name followed by white space only: RFC 5322 4.5.8 allows any amount
 * of it before the colon, and backends accept it. */
static int held_is_drop_name_and_wsp(const struct data_scan *s) {
    if (s->nheld < s->drop_name_len ||
        strncasecmp(s->held, s->drop_name, s->drop_name_len) != 0) {
        return 0;
    }
    for (size_t i = s->drop_name_len; i < s->nheld; i++) {
        if (!is_wsp(s->held[i])) {
            return 0;
        }
    }
    return 1;
}

/* flush_pending writes the held "Name *WSP" line as the client sent it:
 * what follows it is no continuation. */
static void flush_pending(struct data_scan *s, struct buffer *out) {
    if (s->npending == 0) {
        return;
    }
    if (s->pending_stuffed) {
        out_put(s, out, ".", 1);
    }
    out_put(s, out, s->pending, s->npending);
    out_put(s, out, "\r\n", 2);
    s->npending = 0;
}

static void line_begin(struct data_scan *s, int stuffed) {
    s->stuffed = stuffed ? 1 : 0;
    s->dot_written = 0;
    s->nheld = 0;
    s->line_out = 0;
    s->hdr = s->in_headers ? HDR_UNDECIDED : HDR_BODY;
}

/* content_byte handles one unstuffed content byte of the current line. */
static void content_byte(struct data_scan *s, struct buffer *out, char c) {
    if (c == '\0') {
        s->nul_removed++;
        return;
    }
    if (s->hdr == HDR_PASS || s->hdr == HDR_BODY) {
        out_content(s, out, &c, 1);
        return;
    }
    if (s->hdr == HDR_DROP) {
        return;
    }
    if (s->nheld == 0 && s->npending > 0) {
        if (is_wsp(c)) {
            /* "Name CRLF SP : value": the status field, folded before
             * its colon. */
            s->npending = 0;
            s->dropped_fields++;
            s->dropping = 1;
            s->hdr = HDR_DROP;
            return;
        }
        flush_pending(s, out);
    }
    if (s->nheld == 0 && is_wsp(c)) {
        if (s->first_line) {
            /* Would fold into the injected header: end the block here. */
            out_put(s, out, "\r\n", 2);
            s->in_headers = 0;
            s->hdr = HDR_BODY;
        } else {
            s->hdr = s->dropping ? HDR_DROP : HDR_PASS;
        }
        content_byte(s, out, c);
        return;
    }
    if (s->nheld == sizeof(s->held)) {
        /* Full, so the held bytes are the drop name and white space: a
         * longer run is a forged field (or no field at all) and is not
         * held without bound. Anything else passes byte for byte. */
        if (is_wsp(c) || c == ':') {
            drop_field(s);
        } else {
            decide_held(s, out, 0);
            out_content(s, out, &c, 1);
        }
        return;
    }
    s->held[s->nheld++] = c;
    if (c == ':') {
        decide_held(s, out, 1);
    } else if ((s->nheld == sizeof(s->held) && !held_is_drop_name_and_wsp(s)) ||
               (!is_wsp(c) && (c < 33 || c > 126))) {
        decide_held(s, out, 0);
    }
}

/* line_end finishes the current line; |good| says it ended in CRLF. */
static void line_end(struct data_scan *s, struct buffer *out, int good) {
    int held_line = 0;
    if (s->hdr == HDR_UNDECIDED) {
        if (s->nheld == 0) {
            flush_pending(s, out);
            s->in_headers = 0; /* the empty line closing the header block */
        } else if (held_is_drop_name_and_wsp(s)) {
            /* Decided by the next line's first byte. */
            flush_pending(s, out);
            memcpy(s->pending, s->held, s->nheld);
            s->npending = s->nheld;
            s->pending_stuffed = s->stuffed;
            s->nheld = 0;
            held_line = 1;
        } else {
            decide_held(s, out, 0);
        }
    }
    if (s->hdr != HDR_DROP && !held_line) {
        out_put(s, out, "\r\n", 2);
    }
    if (!good) {
        s->bare_endings++;
    }
    s->prev_crlf = good ? 1 : 0;
    s->first_line = 0;
    s->line_out = 0;
    s->frame = FRAME_BOL;
}

/* lone_dot handles a line that held only "." but is not the end of data:
 * it is written as "..", a line of one dot. */
static void lone_dot(struct data_scan *s, struct buffer *out, int good) {
    line_begin(s, 1);
    content_byte(s, out, '.');
    line_end(s, out, good);
}

/* plain_run returns how many bytes at |p| (at most |n|) come before the
 * first CR, LF or NUL. memchr and strnlen look at a word or a vector at a
 * time; a loop over bytes was a fifth of the proxy's CPU on large
 * messages. */
static size_t plain_run(const char *p, size_t n) {
    const char *q = memchr(p, '\r', n);
    size_t k = q ? (size_t)(q - p) : n;
    q = memchr(p, '\n', k);
    if (q != NULL) {
        k = (size_t)(q - p);
    }
    return strnlen(p, k);
}

/* feed_mid_run writes a run of ordinary bytes of a passing or body line
 * at once; returns how many bytes it took. */
static size_t feed_mid_run(struct data_scan *s, const char *in, size_t n,
                           struct buffer *out) {
    size_t k = plain_run(in, n);
    out_content(s, out, in, k);
    return k;
}

/* body_lines takes, at the start of a body line, every whole line that
 * needs nothing done: not beginning with ".", no NUL, no bare CR or LF,
 * at most DATA_SCAN_LINE_MAX octets, ending in CRLF within |in|. They
 * are written as they came, with one copy; the scanner is left as
 * line_end leaves it. Returns the bytes taken (0: the slow path decides;
 * a line cut by the end of |in| goes there too, so feeding in pieces
 * gives the same output). */
static size_t body_lines(struct data_scan *s, const char *in, size_t n, struct buffer *out) {
    size_t i = 0;
    while (i < n && in[i] != '.') {
        size_t left = n - i;
        size_t k = plain_run(in + i, left < DATA_SCAN_LINE_MAX + 1 ? left : DATA_SCAN_LINE_MAX + 1);
        if (k > DATA_SCAN_LINE_MAX || k + 2 > left || in[i + k] != '\r' || in[i + k + 1] != '\n') {
            break;
        }
        i += k + 2;
    }
    if (i > 0) {
        out_put(s, out, in, i);
        s->prev_crlf = 1;
        s->first_line = 0;
        s->line_out = 0;
        s->frame = FRAME_BOL;
    }
    return i;
}

enum data_result data_scan_feed(struct data_scan *s, const char *in, size_t n,
                                struct buffer *out, size_t *out_consumed) {
    size_t i = 0;
    while (i < n && !s->nomem) {
        char c = in[i];
        switch ((enum frame_state)s->frame) {
        case FRAME_BOL:
            if (!s->in_headers && s->npending == 0) {
                size_t taken = body_lines(s, in + i, n - i, out);
                if (taken > 0) {
                    i += taken;
                    break;
                }
            }
            i++;
            if (c == '.') {
                s->frame = FRAME_DOT;
            } else {
                line_begin(s, 0);
                if (c == '\r') {
                    s->frame = FRAME_CR;
                } else if (c == '\n') {
                    line_end(s, out, 0);
                } else {
                    content_byte(s, out, c);
                    s->frame = FRAME_MID;
                }
            }
            break;
        case FRAME_DOT:
            i++;
            if (c == '\r') {
                s->frame = FRAME_DOT_CR;
            } else if (c == '\n') {
                lone_dot(s, out, 0);
            } else {
                line_begin(s, 1);
                content_byte(s, out, c);
                s->frame = FRAME_MID;
            }
            break;
        case FRAME_DOT_CR:
            if (c == '\n') {
                i++;
                if (s->prev_crlf) {
                    flush_pending(s, out);
                    out_put(s, out, ".\r\n", 3);
                    *out_consumed = i;
                    return s->nomem ? DATA_NOMEM : DATA_END;
                }
                lone_dot(s, out, 1);
            } else {
                lone_dot(s, out, 0); /* ".\r" then more: a bare CR; c is next */
            }
            break;
        case FRAME_MID:
            if (c == '\r' || c == '\n') {
                i++;
                if (c == '\r') {
                    s->frame = FRAME_CR;
                } else {
                    line_end(s, out, 0);
                }
            } else if ((s->hdr == HDR_PASS || s->hdr == HDR_BODY) && c != '\0') {
                i += feed_mid_run(s, in + i, n - i, out);
            } else {
                i++;
                content_byte(s, out, c);
            }
            break;
        case FRAME_CR:
            if (c == '\n') {
                i++;
                line_end(s, out, 1);
            } else {
                line_end(s, out, 0); /* bare CR; c starts the next line */
            }
            break;
        }
    }
    *out_consumed = i;
    return s->nomem ? DATA_NOMEM : DATA_MORE;
}
