/*
 * fuzz_smtp_cmd.c - libFuzzer target for command framing and verbs. The
 * parser's contract is to read a verb exactly as a backend would, so the
 * properties checked are about what the backend receives:
 *  - a found line holds no CR or NUL, and ends where its LF is;
 *  - the canonical form parses back to the same verb and argument, and a
 *    backend splitting it on blanks reads that verb (an unknown verb is
 *    never a disguised XCLIENT, STARTTLS, DATA ...);
 *  - smtp_verb_peek, on any prefix, names the verb the whole line has,
 *    so the line limit chosen early is the right one;
 *  - the MAIL SIZE= rewrite always ends in CRLF and grows by a few
 *    digits at most (leading zeros may make it shorter).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "protocol/smtp_cmd.h"

static const char *const known[] = {"HELO", "EHLO", "MAIL", "RCPT", "DATA", "BDAT",
                                    "RSET", "NOOP", "QUIT", "VRFY", "EXPN", "HELP",
                                    "STARTTLS", "AUTH", "XCLIENT", "XFORWARD"};

/* backend_verb is how a lenient C backend reads a verb: skip blanks,
 * take everything up to the next blank. */
static size_t backend_verb(const char *p, size_t n, const char **out) {
    size_t i = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\t')) {
        i++;
    }
    size_t start = i;
    while (i < n && p[i] != ' ' && p[i] != '\t') {
        i++;
    }
    *out = p + start;
    return i - start;
}

static void check_line(const char *line, size_t len) {
    struct smtp_cmd cmd;
    if (!smtp_cmd_parse(line, len, &cmd)) {
        return; /* refused by the proxy: nothing reaches the backend */
    }
    struct buffer canon = {0};
    if (!smtp_cmd_canonical(&cmd, &canon)) {
        abort();
    }
    struct smtp_cmd again;
    if (!smtp_cmd_parse(buffer_head(&canon), canon.len, &again) || again.verb != cmd.verb ||
        again.arg_len != cmd.arg_len || memcmp(again.arg, cmd.arg, cmd.arg_len) != 0) {
        abort();
    }
    const char *v;
    size_t vlen = backend_verb(buffer_head(&canon), canon.len, &v);
    for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++) {
        int same = strlen(known[k]) == vlen && strncasecmp(v, known[k], vlen) == 0;
        if (same != (cmd.verb != VERB_UNKNOWN && strcmp(smtp_verb_name(cmd.verb), known[k]) == 0)) {
            abort(); /* the backend would read another verb */
        }
    }
    for (size_t cut = 1; cut <= len + 1; cut++) {
        enum smtp_verb peeked;
        size_t avail = cut <= len ? cut : len;
        if (smtp_verb_peek(line, avail, &peeked) && peeked != cmd.verb) {
            /* a complete peek must agree, except that a bare verb at the
             * very end is still incomplete */
            abort();
        }
    }
    if (cmd.verb == VERB_MAIL) {
        struct buffer out = {0};
        if (!smtp_mail_add_size(line, len, 2048, &out) || out.len > len + 2 + 20 || memcmp(buffer_head(&out) + out.len - 2, "\r\n", 2) != 0) {
            abort();
        }
        buffer_free(&out);
    }
    buffer_free(&canon);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *buf = (const char *)data;
    size_t pos = 0;
    while (pos < size) {
        size_t len = 0, used = 0;
        enum line_status st = smtp_line_find(buf + pos, size - pos, 2048, &len, &used);
        if (st == LINE_INCOMPLETE || st == LINE_TOO_LONG) {
            break;
        }
        if (used == 0 || used > size - pos || buf[pos + used - 1] != '\n' || len >= used) {
            abort();
        }
        if (st == LINE_OK) {
            if (memchr(buf + pos, '\r', len) != NULL || memchr(buf + pos, '\0', len) != NULL) {
                abort();
            }
            check_line(buf + pos, len);
        }
        pos += used;
    }
    return 0;
}
