/*
 * ehlo.c - the EHLO capability filter.
 */
#include "protocol/ehlo.h"

#include "core/decimal.h"
#include "protocol/smtp_reply.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* keyword_length is the length of the ehlo-keyword at the start of
 * |text|: letters, digits and '-' (RFC 5321 4.1.1.1). Clients read a
 * line by that leading run ("CHUNKING=x" is CHUNKING to them), so the
 * filter must too. */
static size_t keyword_length(const char *text, size_t len) {
    size_t n = 0;
    while (n < len && (isalnum((unsigned char)text[n]) || text[n] == '-')) {
        n++;
    }
    return n;
}

/* keyword_is compares the EHLO keyword at |kw| (|kwlen| bytes) with |name|,
 * ignoring case (RFC 5321 2.4). */
static int keyword_is(const char *kw, size_t kwlen, const char *name) {
    return strlen(name) == kwlen && strncasecmp(kw, name, kwlen) == 0;
}

static int is_removed(const char *kw, size_t kwlen, size_t textlen,
                      const struct ehlo_policy *p) {
    /* PIPECONNECT (and Exim's older X_PIPE_CONNECT, whose keyword run is
     * "X") invites the client to talk before the greeting: the proxy's
     * pregreet check would flag every such client. */
    static const char *const always[] = {"STARTTLS", "CHUNKING", "BINARYMIME",
                                         "XCLIENT", "XFORWARD", "PIPECONNECT"};
    if (kwlen == 1 && textlen >= 14 && strncasecmp(kw, "X_PIPE_CONNECT", 14) == 0) {
        return 1;
    }
    for (size_t i = 0; i < sizeof(always) / sizeof(always[0]); i++) {
        if (keyword_is(kw, kwlen, always[i])) {
            return 1;
        }
    }
    /* Also "AUTH=LOGIN PLAIN", the pre-RFC 4954 spelling: its keyword
     * run is "AUTH" too. */
    return p->hide_auth && keyword_is(kw, kwlen, "AUTH");
}

/* emit_line appends "250-text" or "250 text" to |out|. */
static int emit_line(struct buffer *out, const char *text, size_t len, int last) {
    return buffer_append(out, last ? "250 " : "250-", 4) &&
           buffer_append(out, text, len) && buffer_append(out, "\r\n", 2);
}

/* emit_size writes a lowered SIZE line; |arg| holds the backend's limit. */
static int emit_size(struct buffer *out, const char *arg, size_t arglen,
                     size_t reserve, int last) {
    unsigned long long limit = 0;
    size_t i = 0;
    if (!decimal_parse(arg, arglen, &limit, &i) || i != arglen || limit == 0) {
        /* No limit, or one we do not understand: say what the backend said. */
        char text[64];
        int w = snprintf(text, sizeof(text), "SIZE%s%.*s", arglen ? " " : "",
                         (int)(arglen < 40 ? arglen : 40), arg);
        return emit_line(out, text, (size_t)w, last);
    }
    limit = limit > reserve + 1 ? limit - reserve : 1;
    char text[40];
    int w = snprintf(text, sizeof(text), "SIZE %llu", limit);
    return emit_line(out, text, (size_t)w, last);
}

int ehlo_rewrite(const char *reply, size_t len, const struct ehlo_policy *policy,
                 struct buffer *out) {
    /* Lines are kept as (start, length) of their text after "250?"; at most
     * as many as the reply parser allows. */
    size_t starts[SMTP_REPLY_LINES_MAX + 1];
    size_t lens[SMTP_REPLY_LINES_MAX + 1];
    size_t nkept = 0;
    size_t pos = 0;
    size_t lineno = 0;
    while (pos < len && nkept < SMTP_REPLY_LINES_MAX) {
        const char *nl = memchr(reply + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - reply) : len;
        size_t tlen = end - pos;
        if (tlen > 0 && reply[pos + tlen - 1] == '\r') {
            tlen--;
        }
        size_t text = pos + (tlen > 3 ? 4 : tlen);
        size_t textlen = pos + tlen - text;
        pos = nl ? end + 1 : len;
        size_t kwlen = keyword_length(reply + text, textlen);
        /* A line with no keyword is no ehlo-line (RFC 5321 4.1.1.1); drop it. */
        if (lineno++ > 0 && (kwlen == 0 || is_removed(reply + text, kwlen, textlen, policy))) {
            continue;
        }
        starts[nkept] = text;
        lens[nkept] = textlen;
        nkept++;
    }
    for (size_t i = 0; i < nkept; i++) {
        const char *text = reply + starts[i];
        int last = (i + 1 == nkept) && !policy->offer_starttls;
        size_t kwlen = keyword_length(text, lens[i]);
        int ok;
        if (i > 0 && keyword_is(text, kwlen, "SIZE")) {
            size_t a = kwlen < lens[i] ? kwlen + 1 : kwlen;
            ok = emit_size(out, text + a, lens[i] - a, policy->size_reserve, last);
        } else {
            ok = emit_line(out, text, lens[i], last);
        }
        if (!ok) {
            return 0;
        }
    }
    if (policy->offer_starttls) {
        return emit_line(out, "STARTTLS", 8, 1);
    }
    return 1;
}

unsigned ehlo_extensions(const char *reply, size_t len) {
    static const struct {
        const char *keyword;
        unsigned flag;
    } known[] = {
        {"SIZE", SMTP_EXT_SIZE},         {"DSN", SMTP_EXT_DSN},
        {"AUTH", SMTP_EXT_AUTH},         {"8BITMIME", SMTP_EXT_8BITMIME},
        {"SMTPUTF8", SMTP_EXT_SMTPUTF8}, {"PIPELINING", EHLO_PIPELINING},
    };
    unsigned flags = 0;
    size_t pos = 0, lineno = 0;
    while (pos < len) {
        const char *nl = memchr(reply + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - reply) : len;
        if (lineno++ > 0 && end - pos > 4) {
            const char *text = reply + pos + 4;
            size_t kwlen = keyword_length(text, end - pos - 4);
            for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
                if (keyword_is(text, kwlen, known[i].keyword)) {
                    flags |= known[i].flag;
                }
            }
        }
        pos = nl ? end + 1 : len;
    }
    return flags;
}
