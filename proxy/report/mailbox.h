/*
 * mailbox.h - messages out of an mbox file or a maildir file, line by
 * line, keeping only what the report reads: the Received fields of each
 * message's header, unfolded, topmost first. Pure: the caller reads the
 * lines (report.c) and feeds them here.
 *
 * mbox: a line starting "From " at the start of the file or after an
 * empty line begins a message (mboxo/mboxrd; ">From " in a body is
 * quoted); text before the first such line is read as a message too. A
 * maildir file is one message. Line ends (LF or CRLF) are the caller's:
 * a line is passed without them.
 */
#ifndef SMTP_TLS_PROXY_MAILBOX_H
#define SMTP_TLS_PROXY_MAILBOX_H

#include <stddef.h>

#define MAILBOX_RECEIVED_MAX 64
#define MAILBOX_FIELD_MAX 65536

struct mailbox_message {
    char *received[MAILBOX_RECEIVED_MAX]; /* values after "Received:", unfolded */
    size_t nreceived;
};

/* Called once per message; the message is freed after it returns. */
typedef void (*mailbox_message_fn)(void *ctx, const struct mailbox_message *m);

struct mailbox_reader {
    int mbox;          /* 1: "From " lines separate messages */
    int in_message;    /* some line of a message was seen */
    int in_header;     /* still in the header block */
    int prev_empty;    /* the line before was empty (or none yet) */
    char *field;       /* the header field being collected */
    size_t field_len, field_cap;
    int field_long;    /* longer than MAILBOX_FIELD_MAX: cut */
    struct mailbox_message msg;
    mailbox_message_fn fn;
    void *ctx;
    int oom;           /* memory ran out: fields were dropped */
};

/* mailbox_init prepares |r| for an mbox (|mbox| 1) or one maildir
 * message (0). */
void mailbox_init(struct mailbox_reader *r, int mbox, mailbox_message_fn fn, void *ctx);
/* mailbox_line feeds one line (without its line end). */
void mailbox_line(struct mailbox_reader *r, const char *line, size_t n);
/* mailbox_finish ends the input: the last message is delivered and all
 * memory released. */
void mailbox_finish(struct mailbox_reader *r);

#endif
