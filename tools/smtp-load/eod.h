/*
 * eod.h - finding the end of message data (CRLF "." CRLF) in a stream
 * that arrives in pieces.
 *
 * The sink must know where a message ends without holding it: the
 * scanner keeps one byte of state between reads, so the five octets of
 * the end marker may be split across reads at any point. Only the exact
 * sequence counts, as RFC 5321 4.1.1.4 says: "\n.\n" or "\r.\r" end
 * nothing (that is how SMTP smuggling hides a second message). The
 * first CRLF may be the one that ended the DATA command, so a scanner
 * starts at the beginning of a line. Pure.
 */
#ifndef SMTP_LOAD_EOD_H
#define SMTP_LOAD_EOD_H

#include <stddef.h>

enum eod_state {
    EOD_BOL = 0, /* at the beginning of a line (after CRLF): the start state */
    EOD_TEXT,    /* inside a line */
    EOD_CR,      /* after a CR inside a line */
    EOD_DOT,     /* a line began with "." */
    EOD_DOT_CR,  /* a line began with ".\r" */
};

/* eod_scan reads up to |n| octets of message data at |p| from |*state|.
 * Returns 1 when the end of data is found, with *out_consumed counting
 * the octets up to and including its final LF (the rest is commands);
 * 0 when every octet was used (*out_consumed == n) and the message goes
 * on. */
int eod_scan(enum eod_state *state, const char *p, size_t n, size_t *out_consumed);

#endif
