/*
 * smtp_cmd.h - SMTP command lines from a client: framing and verbs.
 *
 * Pure functions over bytes; no I/O, no allocation except into a caller's
 * buffer. The session decides what to do with a verb (session.c's table).
 */
#ifndef SMTP_TLS_PROXY_SMTP_CMD_H
#define SMTP_TLS_PROXY_SMTP_CMD_H

#include <stddef.h>

#include "buffer.h"

/* RFC 5321 4.5.3.1.4 says 512 octets; extensions (AUTH initial
 * responses, long SIZE/BODY/SMTPUTF8 parameter lists) need more, so the
 * default accepts up to 2 KiB and refuses longer lines. */
#define SMTP_CMD_LINE_MAX_DEFAULT 2048

enum line_status {
    LINE_INCOMPLETE = 0, /* no terminator yet, still within bounds */
    LINE_OK = 1,         /* a complete line */
    LINE_TOO_LONG = 2,   /* longer than the limit */
    LINE_BAD_BYTE = 3,   /* complete, but holds NUL or a bare CR */
};

/* smtp_line_find looks for one command line at the start of |buf|
 * (|n| bytes). A line ends with CRLF or, leniently, a bare LF (accepted
 * for commands only; never in message data). On LINE_OK and
 * LINE_BAD_BYTE, *out_len is the line's length without its terminator
 * and *out_consumed the bytes to drop, terminator included. A line of
 * more than |max| octets, terminator included, is LINE_TOO_LONG as soon
 * as that is known. */
enum line_status smtp_line_find(const char *buf, size_t n, size_t max,
                                size_t *out_len, size_t *out_consumed);

enum smtp_verb {
    VERB_UNKNOWN = 0,
    VERB_HELO,
    VERB_EHLO,
    VERB_MAIL,
    VERB_RCPT,
    VERB_DATA,
    VERB_BDAT,
    VERB_RSET,
    VERB_NOOP,
    VERB_QUIT,
    VERB_VRFY,
    VERB_EXPN,
    VERB_HELP,
    VERB_STARTTLS,
    VERB_AUTH,
    VERB_XCLIENT,
    VERB_XFORWARD,
    VERB_COUNT,
};

struct smtp_cmd {
    enum smtp_verb verb;
    const char *verb_text; /* the verb as sent */
    size_t verb_len;
    const char *arg; /* after the verb and its separating blanks */
    size_t arg_len;  /* trailing blanks removed */
};

/* The longest verb accepted. */
#define SMTP_VERB_MAX 32

/* smtp_cmd_parse splits |line| (|len| bytes, no terminator) into verb and
 * argument. Returns 1, or 0 for a line that is not a command: the verb
 * must be 1 to SMTP_VERB_MAX ASCII letters at the very start, ended by
 * the end of the line, SP or HTAB; the line must hold no control byte
 * but HTAB. The proxy must read the verb exactly as the backend will:
 * backends split on any blank and some skip leading ones, so
 * "XCLIENT<TAB>..." or " XCLIENT ..." read as unknown verbs here would
 * reach the backend as XCLIENT. Verbs are case-insensitive (RFC 5321 2.4);
 * unknown well-formed verbs are VERB_UNKNOWN. */
int smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *out);

/* smtp_cmd_canonical writes the command as the backend must receive it:
 * the verb, then, if there is an argument, one SP and the argument (no
 * terminator). Whatever blanks the client used, both sides then see the
 * same verb. Returns 1, or 0 when |out| cannot grow. */
int smtp_cmd_canonical(const struct smtp_cmd *cmd, struct buffer *out);

/* smtp_verb_name returns the canonical upper-case name ("?" if unknown). */
const char *smtp_verb_name(enum smtp_verb verb);

/* smtp_mail_add_size writes MAIL line |line| (no terminator) to |out|
 * with CRLF, raising a SIZE=n parameter (RFC 1870) by |extra| octets: the
 * client declares its own message size, the backend receives that plus
 * the headers the proxy injects. Without a SIZE parameter, or with one
 * that is not a number, the line is copied unchanged. Returns 1, or 0
 * when |out| cannot grow. */
int smtp_mail_add_size(const char *line, size_t len, size_t extra,
                       struct buffer *out);

#endif
