/*
 * sink_proto.h - the SMTP server side of `smtp-load --sink`: bytes from
 * a client in, replies out, messages counted. No I/O.
 *
 * A fast, correct backend for benchmarks: it answers every command at
 * once, in order, however many arrive in one read (pipelining), never
 * keeps a message (the end of data is found by eod.h's scanner, which
 * holds no bytes), and skips a PROXY protocol header (v1 or v2, read with
 * the proxy's own protocol/proxy_header.c) that a proxy under test may
 * send before anything else. It checks no command order: a benchmark's
 * client is trusted, and every check would be cost.
 */
#ifndef SMTP_LOAD_SINK_PROTO_H
#define SMTP_LOAD_SINK_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "eod.h"

#define SINK_GREETING "220 sink.test ESMTP smtp-load\r\n"
/* The longest command line read (CRLF included): RFC 5321's 512 with
 * room for extension parameters. */
#define SINK_LINE_MAX 4096
/* Room one reply needs in the output: feed stops before a command when
 * less is left. */
#define SINK_REPLY_MAX 256

enum sink_phase {
    SINK_START = 0, /* nothing read yet: a PROXY header may come */
    SINK_COMMANDS,
    SINK_DATA,
};

enum sink_result {
    SINK_MORE = 0,  /* all usable input consumed; read more */
    SINK_FULL = 1,  /* the output is full: send it, then feed the rest */
    SINK_CLOSE = 2, /* send the output, then close (QUIT, or a line too long) */
};

struct sink_session {
    enum sink_phase phase;
    enum eod_state eod;
    uint64_t data_octets;   /* of the current message, the end line included */
    uint64_t messages;      /* ended with their final dot */
    uint64_t message_bytes; /* their octets, the final ".\r\n" excluded */
};

/* sink_feed reads the client's bytes |in| (|n|), appends replies to |out|
 * (|out_cap| octets, *out_len of them used already) and sets
 * *out_consumed. Bytes not consumed (an incomplete command line or
 * PROXY header) must be offered again, with more, on the next call. */
enum sink_result sink_feed(struct sink_session *s, const char *in, size_t n, char *out,
                           size_t out_cap, size_t *out_len, size_t *out_consumed);

#endif
