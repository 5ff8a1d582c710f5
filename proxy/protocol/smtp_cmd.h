/*
 * smtp_cmd.h - SMTP command lines from a client: framing and verbs.
 *
 * Pure functions over bytes; no I/O, no allocation except into a caller's
 * buffer. The session decides what to do with a verb (session.c's table).
 */
#ifndef SMTP_TLS_PROXY_SMTP_CMD_H
#define SMTP_TLS_PROXY_SMTP_CMD_H

#include <stddef.h>

#include "core/buffer.h"

/* Line limits, CRLF included. RFC 5321 4.5.3.1.4 sets 512 octets for a
 * command line, and a backend that reads commands into a 512-octet
 * buffer splits anything longer into a second command: so 512 is what
 * every command gets unless an extension the backend itself advertised
 * raises it (smtp_line_limit). The AUTH command is one of them (RFC 4954
 * 4: an initial response that would make it longer must not be used);
 * the SASL lines that follow a 334, and the 334 challenges, may be 12288
 * octets (RFC 4954 4; Kerberos tokens exceed 2 KiB). */
#define SMTP_CMD_LINE_MAX_DEFAULT 512
#define SMTP_MAIL_LINE_MAX_DEFAULT 2048
#define SMTP_AUTH_LINE_MAX_DEFAULT 12288

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

/* smtp_verb_peek names the verb at the start of an incomplete line
 * (|n| bytes) as smtp_cmd_parse will read it. Returns 1 and *out_verb
 * once the verb is complete (ended by a blank or a line ending, or
 * known not to be a verb: VERB_UNKNOWN), 0 while more bytes may still
 * change it. */
int smtp_verb_peek(const char *buf, size_t n, enum smtp_verb *out_verb);

/* Extensions of the backend's EHLO reply that lengthen command lines. */
#define SMTP_EXT_SIZE 0x01     /* RFC 1870: SIZE= on MAIL */
#define SMTP_EXT_DSN 0x02      /* RFC 3461: RET= ENVID= on MAIL, NOTIFY= ORCPT= on RCPT */
#define SMTP_EXT_AUTH 0x04     /* RFC 4954 5: AUTH= on MAIL */
#define SMTP_EXT_8BITMIME 0x08 /* RFC 6152: BODY= on MAIL */
#define SMTP_EXT_SMTPUTF8 0x10 /* RFC 6531: SMTPUTF8 on MAIL */

struct smtp_line_limits {
    size_t command; /* every verb but MAIL and RCPT (512 at least) */
    size_t mail;    /* MAIL and RCPT never more than this */
    size_t auth;    /* SASL response lines after a 334 (not the AUTH command) */
};

/* smtp_line_limit is the longest line (CRLF included) the proxy accepts
 * and forwards for |verb|, given the extensions |exts| (SMTP_EXT_*) the
 * backend advertised in its last EHLO reply. MAIL and RCPT get the
 * command limit plus what the parameters of each advertised extension
 * may add (as each RFC states it), but never more than |l->mail|: a
 * backend that does not advertise DSN never receives an ORCPT-sized
 * line. */
size_t smtp_line_limit(enum smtp_verb verb, unsigned exts, const struct smtp_line_limits *l);

/* smtp_verb_name returns the canonical upper-case name ("?" if unknown). */
const char *smtp_verb_name(enum smtp_verb verb);

/* smtp_mail_param looks for the esmtp parameter |keyword| (case-
 * insensitive, "KEY" or "KEY=value") after the path of MAIL or RCPT line
 * |line| (|len| bytes, no terminator). Returns 1 and, when |out_value| is
 * not NULL, the offset and length of its value (0 long for "KEY"), or 0. */
int smtp_mail_param(const char *line, size_t len, const char *keyword, size_t *out_value,
                    size_t *out_value_len);

/* smtp_mail_add_size writes MAIL line |line| (no terminator) to |out|
 * with CRLF, raising a SIZE=n parameter (RFC 1870) by |extra| octets: the
 * client declares its own message size, the backend receives that plus
 * the headers the proxy injects. Without a SIZE parameter, or with one
 * that is not a number, the line is copied unchanged. Returns 1, or 0
 * when |out| cannot grow. */
int smtp_mail_add_size(const char *line, size_t len, size_t extra,
                       struct buffer *out);

#endif
