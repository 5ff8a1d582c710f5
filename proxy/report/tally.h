/*
 * tally.h - the encrypted-share counts of smtp-tls-proxy report, and
 * their text and JSON forms. Pure apart from writing to the FILE given.
 *
 * One item is one session that delivered mail (from the proxy's log) or
 * one received message (from a mailbox). Each item falls in one row of
 * every dimension it has a key for: all, source scope, listener, TLS
 * version, country. Per row: sessions, messages and unique senders, each
 * as all and encrypted. A sender is the tuple (HELO, confirmed name,
 * source address); it counts as encrypted in a row when every item of
 * it in that row was encrypted, so a sender that sent one message in
 * plaintext is a plaintext sender.
 *
 * Beside the tables, from a log only: the STARTTLS failure memory
 * counts (struct tally_starttls), over every session ended in the window.
 */
#ifndef SMTP_TLS_PROXY_TALLY_H
#define SMTP_TLS_PROXY_TALLY_H

#include <stddef.h>
#include <stdio.h>

#include "report/logline.h"

enum tally_dim {
    TALLY_ALL = 0,
    TALLY_SCOPE,
    TALLY_LISTENER,
    TALLY_VERSION,
    TALLY_COUNTRY,
    TALLY_DIMS
};

struct tally_item {
    const char *key[TALLY_DIMS]; /* row per dimension; NULL: not known here */
    int encrypted;
    unsigned long sessions;      /* 1 for a session, 0 for a message */
    unsigned long messages;
    const char *sender;          /* the sender tuple, any bytes */
    size_t sender_len;
};

struct tally_row {
    char *key;
    unsigned long long sessions, sessions_enc;
    unsigned long long messages, messages_enc;
    unsigned long long senders, senders_enc;
};

struct tally_map; /* bytes -> index, open addressing */

struct tally {
    struct tally_row *rows[TALLY_DIMS];
    size_t nrows[TALLY_DIMS], caprows[TALLY_DIMS];
    struct tally_map *row_index[TALLY_DIMS];
    struct tally_map *sender_ids;  /* sender tuple -> id */
    struct tally_map *sender_rows; /* (dim, row, sender id) -> 1 + encrypted */
    int oom;
};

void tally_init(struct tally *t);
void tally_free(struct tally *t);
/* tally_add counts |it|. Returns 1, or 0 when memory ran out (t->oom). */
int tally_add(struct tally *t, const struct tally_item *it);

/* STARTTLS failure memory (issue 12): what the starttls= field of the
 * event=end lines says, over every session ended in the window (with
 * accepted mail or not). */
struct tally_starttls {
    unsigned long long withheld;           /* starttls=withheld */
    unsigned long long withheld_delivered; /* of those, accepted at least 1: delivered
                                            * in plaintext because STARTTLS was withheld */
    unsigned long long withheld_messages;  /* the messages accepted in those */
    unsigned long long failed;             /* starttls=failed: handshakes that failed */
    unsigned long long unknown;            /* no (known) starttls field: an older log */
};

/* tally_starttls_add counts the session |s| into |m|. */
void tally_starttls_add(struct tally_starttls *m, const struct session_record *s);

/* What the report says around the tables. */
struct tally_report {
    int mailbox;             /* 1: messages from a mailbox (no sessions) */
    const char *source;      /* "log", "mbox" or "maildir" */
    const char *const *inputs;
    size_t ninputs;
    const char *since, *until; /* as given; NULL: open */
    const char *by;            /* --by HOST; NULL: the topmost header */
    unsigned top;              /* countries shown; 0: all */
    /* log */
    unsigned long long lines, unreadable, sessions_ended, outside_window, without_mail;
    struct tally_starttls starttls;
    /* mailbox */
    unsigned long long messages_read, no_received, unclassified, undated;
};

void tally_print_text(const struct tally *t, const struct tally_report *r, FILE *out);
void tally_print_json(const struct tally *t, const struct tally_report *r, FILE *out);

/* tally_rows_sorted returns the rows of |dim| in report order (scope:
 * global, private, loopback, others; TLS version: newest first, "none"
 * last; listener and country: most messages first, then name), in a
 * malloc'd array the caller frees; NULL when there are none. */
const struct tally_row **tally_rows_sorted(const struct tally *t, enum tally_dim dim,
                                           size_t *n);

#endif
