/*
 * message.h - the test message smtp-load sends: a few header lines, then
 * body lines, exactly --size octets.
 *
 * The body is generated once per run and shared read-only by every
 * connection and thread, so sending a message costs no generation: only
 * the header block is written per message, because its Message-ID is
 * unique. Every header field has a fixed width (hex sequence numbers, a
 * fixed-width Date), so each message's header block has the same length
 * and every message is exactly the size asked for.
 *
 * What goes on the wire after DATA's 354 is the header block, then the
 * shared bytes: the body followed by the end-of-data line ".\r\n". The
 * message itself (what --size counts and the sink counts) is the header
 * block and the body, ending in CRLF. Body lines are 76 printable
 * characters (letters and digits) and CRLF; no line begins with "." (so
 * there is no dot-stuffing to do) and there is no bare CR or LF. Pure.
 */
#ifndef SMTP_LOAD_MESSAGE_H
#define SMTP_LOAD_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

/* The longest header block: the addresses and the Message-ID domain are
 * limited to keep it below this. */
#define MSG_HEADER_MAX 1024
#define MSG_NAME_MAX 256
/* Body line length, CRLF excluded. */
#define MSG_LINE_CHARS 76

struct msg_layout {
    char from[MSG_NAME_MAX];
    char to[MSG_NAME_MAX];
    char domain[MSG_NAME_MAX]; /* Message-ID right-hand side */
    size_t size;        /* the whole message: header_len + body_len */
    size_t header_len;  /* each header block, its empty line included */
    size_t subject_pad; /* Subject lengthened when the body would be 1 octet */
    size_t body_len;    /* the body alone */
    char *wire;         /* body_len + 3 octets: the body, then ".\r\n" */
    size_t wire_len;
};

/* msg_layout_init prepares a run's messages of |size| octets from |from|
 * to |to| (header addresses), Message-IDs in |domain|. Returns 1, or 0
 * with |why| set when the size is below the header block's length (the
 * smallest possible message) or a name is too long or memory is short. */
int msg_layout_init(struct msg_layout *m, size_t size, const char *from, const char *to,
                    const char *domain, char *why, size_t whylen);

/* msg_layout_free releases the shared bytes. */
void msg_layout_free(struct msg_layout *m);

/* msg_header writes the header block of message |seq| of stream
 * |stream| (a connection's number: the pair is unique in a run), dated
 * |unix_time|, to |out| (at least MSG_HEADER_MAX octets). Returns its
 * length, always m->header_len. */
size_t msg_header(const struct msg_layout *m, uint32_t stream, uint64_t seq,
                  int64_t unix_time, char *out);

/* msg_date writes an RFC 5322 date in UTC, always 31 octets
 * ("Tue, 02 Dec 2025 20:19:00 +0000"), and a NUL, to |out| (32 octets),
 * whatever the locale. */
void msg_date(int64_t unix_time, char *out);

/* msg_body_fill writes |n| octets of body lines to |out|: lines of
 * MSG_LINE_CHARS characters and CRLF, the last one shorter (or up to two
 * characters longer) so that the body ends in CRLF. |n| must not be 1
 * (no line fits); 0 writes nothing. */
void msg_body_fill(char *out, size_t n);

#endif
