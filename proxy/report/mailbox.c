/*
 * mailbox.c - mbox and maildir messages as their Received fields.
 */
#include "report/mailbox.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

void mailbox_init(struct mailbox_reader *r, int mbox, mailbox_message_fn fn, void *ctx) {
    memset(r, 0, sizeof(*r));
    r->mbox = mbox;
    r->in_header = 1;
    r->prev_empty = 1;
    r->fn = fn;
    r->ctx = ctx;
}

/* end_field keeps the collected field when it is a Received field. */
static void end_field(struct mailbox_reader *r) {
    if (r->field_len == 0) {
        return;
    }
    const char *f = r->field;
    size_t n = r->field_len;
    r->field_len = 0;
    r->field_long = 0;
    if (n < 9 || strncasecmp(f, "Received", 8) != 0) {
        return;
    }
    size_t i = 8;
    while (i < n && (f[i] == ' ' || f[i] == '\t')) {
        i++; /* obsolete syntax: blanks before the colon (RFC 5322 4.5) */
    }
    if (i >= n || f[i] != ':' || r->msg.nreceived >= MAILBOX_RECEIVED_MAX) {
        return;
    }
    i++;
    char *v = malloc(n - i + 1);
    if (v == NULL) {
        r->oom = 1;
        return;
    }
    memcpy(v, f + i, n - i);
    v[n - i] = '\0';
    r->msg.received[r->msg.nreceived++] = v;
}

static void append(struct mailbox_reader *r, const char *p, size_t n) {
    if (r->field_long) {
        return;
    }
    if (r->field_len + n > MAILBOX_FIELD_MAX) {
        n = MAILBOX_FIELD_MAX - r->field_len;
        r->field_long = 1;
    }
    if (r->field_len + n > r->field_cap) {
        size_t cap = r->field_cap ? r->field_cap : 1024;
        while (cap < r->field_len + n) {
            cap *= 2;
        }
        char *f = realloc(r->field, cap);
        if (f == NULL) {
            r->oom = 1;
            r->field_long = 1;
            return;
        }
        r->field = f;
        r->field_cap = cap;
    }
    memcpy(r->field + r->field_len, p, n);
    r->field_len += n;
}

static void end_message(struct mailbox_reader *r) {
    end_field(r);
    if (r->in_message && r->fn != NULL) {
        r->fn(r->ctx, &r->msg);
    }
    for (size_t k = 0; k < r->msg.nreceived; k++) {
        free(r->msg.received[k]);
    }
    r->msg.nreceived = 0;
    r->in_message = 0;
    r->in_header = 1;
}

void mailbox_line(struct mailbox_reader *r, const char *line, size_t n) {
    if (r->mbox && r->prev_empty && n >= 5 && memcmp(line, "From ", 5) == 0) {
        end_message(r);
        r->in_message = 1;
        r->prev_empty = 0;
        return;
    }
    r->prev_empty = n == 0;
    if (!r->in_message) {
        if (n == 0 && r->mbox) {
            return; /* blank lines before the first message */
        }
        r->in_message = 1;
    }
    if (!r->in_header) {
        return;
    }
    if (n == 0) {
        end_field(r);
        r->in_header = 0;
        return;
    }
    if (line[0] == ' ' || line[0] == '\t') {
        if (r->field_len > 0) {
            append(r, line, n); /* unfolding: the line break goes, the blank stays */
        }
        return;
    }
    end_field(r);
    append(r, line, n);
}

void mailbox_finish(struct mailbox_reader *r) {
    end_message(r);
    free(r->field);
    r->field = NULL;
    r->field_cap = 0;
}
