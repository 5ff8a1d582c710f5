/*
 * test_load_sink.c - smtp-load's sink_proto.h: the replies a client gets,
 * in order, however its bytes are split; messages and their octets
 * counted; PROXY headers skipped; a full output stops and resumes.
 */
#include <stdlib.h>

#include "smtp-load/sink_proto.h"
#include "unit.h"

#define LIT(s) (s), (sizeof(s) - 1)

struct run {
    char out[65536];
    size_t out_len;
    int closed;
    struct sink_session s;
};

/* feed_chunks feeds |in| (|n|) in pieces of |chunk| octets the way the
 * sink does (unconsumed bytes offered again with the next piece), with
 * an output of |cap| octets emptied whenever feed says it is full. */
static void feed_chunks(struct run *r, const char *in, size_t n, size_t chunk, size_t cap) {
    char *held = malloc(n + 1);
    char *out = malloc(cap);
    size_t nheld = 0, pos = 0;
    memset(r, 0, sizeof(*r));
    while ((pos < n || nheld > 0) && !r->closed) {
        size_t take = n - pos < chunk ? n - pos : chunk;
        memcpy(held + nheld, in + pos, take);
        nheld += take;
        pos += take;
        size_t olen = 0, used = 0;
        enum sink_result res = sink_feed(&r->s, held, nheld, out, cap, &olen, &used);
        memcpy(r->out + r->out_len, out, olen);
        r->out_len += olen;
        memmove(held, held + used, nheld - used);
        nheld -= used;
        r->closed = res == SINK_CLOSE;
        if (res != SINK_FULL && take == 0) {
            break; /* nothing new and nothing more to do */
        }
    }
    free(held);
    free(out);
}

static const char SESSION[] =
    "EHLO client.test\r\nMAIL FROM:<a@src.test>\r\nRCPT TO:<b@dst.test>\r\nDATA\r\n"
    "Subject: t\r\n\r\nbody\r\n..stuffed\r\n.\r\nNOOP\r\nRSET\r\nHELO x\r\nVRFY y\r\n"
    "XCLIENT ADDR=192.0.2.1\r\nQUIT\r\nEHLO after\r\n";

static const char REPLIES[] =
    "250-sink.test\r\n250-PIPELINING\r\n250-SIZE 1073741824\r\n250-8BITMIME\r\n"
    "250 ENHANCEDSTATUSCODES\r\n250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n"
    "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued\r\n250 2.0.0 Ok\r\n"
    "250 2.0.0 Ok\r\n250 sink.test\r\n502 5.5.2 Error\r\n220 sink.test ESMTP smtp-load\r\n"
    "221 2.0.0 Bye\r\n";

UNIT_TEST(load_sink_pipelined_session_gets_every_reply_in_order) {
    struct run *r = malloc(sizeof(*r));
    feed_chunks(r, LIT(SESSION), sizeof(SESSION), 65536);
    CHECK_MEM(r->out, r->out_len, REPLIES);
    CHECK(r->closed);
    CHECK_INT(r->s.messages, 1);
    /* "Subject: t\r\n\r\nbody\r\n..stuffed\r\n": stuffing counted as sent */
    CHECK_INT(r->s.message_bytes, 31);
    free(r);
}

UNIT_TEST(load_sink_same_replies_for_every_chunk_size) {
    struct run *r = malloc(sizeof(*r));
    for (size_t chunk = 1; chunk < sizeof(SESSION); chunk++) {
        feed_chunks(r, LIT(SESSION), chunk, 65536);
        if (r->out_len != strlen(REPLIES) || memcmp(r->out, REPLIES, r->out_len) != 0 ||
            r->s.messages != 1 || r->s.message_bytes != 31 || !r->closed) {
            unit_fail(__FILE__, __LINE__, "chunk %zu: %s", chunk,
                      unit_show_bytes(r->out, r->out_len));
            break;
        }
    }
    free(r);
}

UNIT_TEST(load_sink_end_of_data_split_at_every_point_counts_one_message) {
    static const char s[] = "DATA\r\nline\r\n.\r\nQUIT\r\n";
    struct run *r = malloc(sizeof(*r));
    for (size_t cut = 0; cut <= sizeof(s) - 1; cut++) {
        memset(r, 0, sizeof(*r));
        size_t olen = 0, used1 = 0, used2 = 0;
        sink_feed(&r->s, s, cut, r->out, sizeof(r->out), &olen, &used1);
        /* the unconsumed part of the first piece is offered again */
        sink_feed(&r->s, s + used1, sizeof(s) - 1 - used1, r->out, sizeof(r->out), &olen,
                  &used2);
        if (r->s.messages != 1 || r->s.message_bytes != 6 || used1 + used2 != sizeof(s) - 1) {
            unit_fail(__FILE__, __LINE__, "cut %zu: %llu messages, %llu octets", cut,
                      (unsigned long long)r->s.messages,
                      (unsigned long long)r->s.message_bytes);
        }
    }
    free(r);
}

UNIT_TEST(load_sink_skips_a_proxy_v1_header) {
    static const char s[] = "PROXY TCP4 192.0.2.1 198.51.100.2 40000 25\r\nNOOP\r\n";
    struct run *r = malloc(sizeof(*r));
    for (size_t chunk = 1; chunk <= sizeof(s); chunk++) {
        feed_chunks(r, LIT(s), chunk, 65536);
        if (r->out_len != 14 || memcmp(r->out, "250 2.0.0 Ok\r\n", 14) != 0) {
            unit_fail(__FILE__, __LINE__, "chunk %zu: %s", chunk,
                      unit_show_bytes(r->out, r->out_len));
            break;
        }
    }
    free(r);
}

UNIT_TEST(load_sink_skips_a_proxy_v2_header) {
    /* signature, v2 PROXY, TCP4, 12 octets of addresses, then NOOP */
    static const char s[] = "\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c"
                            "\xc0\x00\x02\x01\xc6\x33\x64\x02\x9c\x40\x00\x19"
                            "NOOP\r\n";
    struct run *r = malloc(sizeof(*r));
    for (size_t chunk = 1; chunk <= sizeof(s); chunk++) {
        feed_chunks(r, s, sizeof(s) - 1, chunk, 65536);
        if (r->out_len != 14 || memcmp(r->out, "250 2.0.0 Ok\r\n", 14) != 0) {
            unit_fail(__FILE__, __LINE__, "chunk %zu: %s", chunk,
                      unit_show_bytes(r->out, r->out_len));
            break;
        }
    }
    free(r);
}

UNIT_TEST(load_sink_full_output_stops_and_resumes_in_order) {
    /* 100 pipelined NOOPs through an output with room for about two replies. */
    char in[100 * 6 + 1];
    for (int i = 0; i < 100; i++) {
        memcpy(in + i * 6, "NOOP\r\n", 6);
    }
    struct run *r = malloc(sizeof(*r));
    feed_chunks(r, in, 600, 600, SINK_REPLY_MAX + 20);
    CHECK_INT(r->out_len, 100 * 14);
    CHECK(!r->closed);
    free(r);
}

UNIT_TEST(load_sink_unknown_and_malformed_commands_get_502) {
    struct run *r = malloc(sizeof(*r));
    feed_chunks(r, LIT("BDAT 10\r\n\x01\x02\r\nSTARTTLS\r\n"), 65536, 65536);
    CHECK_MEM(r->out, r->out_len, "502 5.5.2 Error\r\n502 5.5.2 Error\r\n502 5.5.2 Error\r\n");
    free(r);
}

UNIT_TEST(load_sink_overlong_line_closes) {
    size_t n = SINK_LINE_MAX + 10;
    char *in = malloc(n);
    memset(in, 'A', n);
    struct run *r = malloc(sizeof(*r));
    feed_chunks(r, in, n, 1000, 65536);
    CHECK(r->closed);
    CHECK_MEM(r->out, r->out_len, "500 5.5.0 Line too long\r\n");
    free(r);
    free(in);
}

UNIT_TEST(load_sink_command_split_before_its_line_end_waits) {
    struct sink_session s = {0};
    char out[1024];
    size_t olen = 0, used = 99;
    CHECK_INT(sink_feed(&s, LIT("NOOP\r"), out, sizeof(out), &olen, &used), SINK_MORE);
    CHECK_INT(used, 0);
    CHECK_INT(olen, 0);
}
