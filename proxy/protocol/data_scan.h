/*
 * data_scan.h - the message stream between DATA's 354 and the final dot.
 *
 * The body is relayed without buffering whole messages, but never as a
 * blind pipe (ARCHITECTURE.md §5.4). The scanner reads the client's dot-stuffed
 * stream one byte at a time, can stop at any byte and resume on the next
 * read, and writes what the backend must see:
 *
 *  - the end of data is CRLF "." CRLF exactly, where the first CRLF is
 *    the real end of the previous line (or of the DATA command). "\n.\n",
 *    "\r.\r", "\n.\r\n" and friends are not an end: that is how SMTP
 *    smuggling (CVE-2023-51764 family) hides a second message;
 *  - every bare CR or bare LF becomes CRLF, so the backend never sees one
 *    raw; a lone "." line that is not a real end is written as ".." (a
 *    line holding one dot) so the backend cannot mistake it for the end;
 *  - dot-stuffing is kept as the client sent it;
 *  - in the header block only, every field named like the status header
 *    (any case, "Name :" spelling too, with its folded continuation
 *    lines) is dropped: the header's value comes from the proxy alone;
 *  - a first line beginning with white space would fold into the
 *    proxy's injected header, so the header block is closed before it;
 *  - no line reaches the backend longer than DATA_SCAN_LINE_MAX octets
 *    (998, RFC 5321 4.5.3.1.6, stuffing dot included): a longer one is
 *    broken with CRLF SP, as Postfix's smtp_line_length_limit does, so a
 *    backend reading lines into 1000-octet buffers never splits one, and
 *    a continuation can never begin with "." (a second message);
 *  - NUL bytes are removed: RFC 5321 2.3.8 and RFC 6152 allow them only
 *    with BINARYMIME, which the proxy never offers, and a backend that
 *    strips them itself before looking for the end of data would read
 *    "CRLF NUL . CRLF" as the end. A line whose first written byte is a
 *    "." is always stuffed, whatever came before it.
 *
 * A header-block line that begins with the status header's name followed
 * by more white space than DATA_SCAN_NAME_MAX holds is dropped as a
 * forged field: holding it longer would be unbounded memory. A line that
 * is the name and white space alone is held until the next line's first
 * byte: when that line is a continuation, the pair is a field folded
 * before its colon ("Name CRLF SP : value", which lenient parsers unfold
 * into the status field) and is dropped too.
 */
#ifndef SMTP_TLS_PROXY_DATA_SCAN_H
#define SMTP_TLS_PROXY_DATA_SCAN_H

#include <stddef.h>

#include "core/buffer.h"

#define DATA_SCAN_NAME_MAX 128
/* The longest line written to the backend, CRLF excluded. */
#define DATA_SCAN_LINE_MAX 998

enum data_result {
    DATA_MORE = 0,  /* all input used; the message goes on */
    DATA_END = 1,   /* end of data found; the rest is commands again */
    DATA_NOMEM = 2, /* the output buffer could not grow */
};

struct data_scan {
    /* what must not be forwarded: the status header's name */
    const char *drop_name;
    size_t drop_name_len;

    unsigned char frame;  /* position in the wire line (data_scan.c) */
    unsigned char hdr;    /* decision for the current header line */
    unsigned prev_crlf : 1;   /* previous line ended in a real CRLF */
    unsigned in_headers : 1;  /* still in the message's header block */
    unsigned first_line : 1;  /* no line of the message finished yet */
    unsigned dropping : 1;    /* last header field was dropped */
    unsigned stuffed : 1;     /* current line came with a stuffing dot */
    unsigned dot_written : 1; /* that dot has been written out */
    unsigned nomem : 1;

    char held[DATA_SCAN_NAME_MAX]; /* start of a header line, undecided */
    size_t nheld;
    size_t line_out; /* octets of the current line written to the backend */
    /* A whole line "Name *WSP", waiting for the next line's first byte. */
    char pending[DATA_SCAN_NAME_MAX];
    size_t npending;
    unsigned pending_stuffed : 1;

    size_t dropped_fields; /* forged status headers removed */
    size_t bare_endings;   /* bare CR or LF normalised to CRLF */
    size_t lines_broken;   /* over-long lines broken with CRLF SP */
    size_t nul_removed;    /* NUL bytes removed */
};

/* data_scan_init prepares |s| for one message; |drop_name| (not copied)
 * is the header field name to remove from the client's header block. */
void data_scan_init(struct data_scan *s, const char *drop_name);

/* data_scan_feed reads up to |n| bytes of client data from |in|, appends
 * what the backend must receive to |out| and sets *out_consumed. On
 * DATA_END, |out| ends with ".\r\n" and *out_consumed stops right after
 * the client's final CRLF. */
enum data_result data_scan_feed(struct data_scan *s, const char *in, size_t n,
                                struct buffer *out, size_t *out_consumed);

#endif
