/*
 * smtp_cmd.c - command framing, verb lookup and the MAIL SIZE= adjustment.
 */
#include "protocol/smtp_cmd.h"

#include "core/decimal.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

enum line_status smtp_line_find(const char *buf, size_t n, size_t max,
                                size_t *out_len, size_t *out_consumed) {
    const char *lf = memchr(buf, '\n', n < max ? n : max);
    if (lf == NULL) {
        return n >= max ? LINE_TOO_LONG : LINE_INCOMPLETE;
    }
    size_t len = (size_t)(lf - buf);
    *out_consumed = len + 1;
    if (len > 0 && buf[len - 1] == '\r') {
        len--;
    }
    *out_len = len;
    /* A CR inside the line would let a client hide a second command from
     * a backend that treats CR as a terminator; NUL truncates C parsers. */
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '\r' || buf[i] == '\0') {
            return LINE_BAD_BYTE;
        }
    }
    return LINE_OK;
}

static const char *const verb_names[VERB_COUNT] = {
    [VERB_UNKNOWN] = "?",        [VERB_HELO] = "HELO",   [VERB_EHLO] = "EHLO",
    [VERB_MAIL] = "MAIL",        [VERB_RCPT] = "RCPT",   [VERB_DATA] = "DATA",
    [VERB_BDAT] = "BDAT",        [VERB_RSET] = "RSET",   [VERB_NOOP] = "NOOP",
    [VERB_QUIT] = "QUIT",        [VERB_VRFY] = "VRFY",   [VERB_EXPN] = "EXPN",
    [VERB_HELP] = "HELP",        [VERB_STARTTLS] = "STARTTLS",
    [VERB_AUTH] = "AUTH",        [VERB_XCLIENT] = "XCLIENT",
    [VERB_XFORWARD] = "XFORWARD",
};

const char *smtp_verb_name(enum smtp_verb verb) {
    return (verb >= 0 && verb < VERB_COUNT) ? verb_names[verb] : "?";
}

static int is_blank(char c) {
    return c == ' ' || c == '\t';
}

int smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *out) {
    memset(out, 0, sizeof(*out));
    out->verb_text = line;
    out->arg = line + len;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return 0;
        }
    }
    size_t v = 0;
    while (v < len && ((line[v] >= 'A' && line[v] <= 'Z') || (line[v] >= 'a' && line[v] <= 'z'))) {
        v++;
    }
    if (v == 0 || v > SMTP_VERB_MAX || (v < len && !is_blank(line[v]))) {
        return 0;
    }
    out->verb_len = v;
    out->verb = VERB_UNKNOWN;
    for (int i = VERB_UNKNOWN + 1; i < VERB_COUNT; i++) {
        if (strlen(verb_names[i]) == v && strncasecmp(line, verb_names[i], v) == 0) {
            out->verb = (enum smtp_verb)i;
            break;
        }
    }
    size_t a = v;
    while (a < len && is_blank(line[a])) {
        a++;
    }
    size_t end = len;
    while (end > a && is_blank(line[end - 1])) {
        end--;
    }
    out->arg = line + a;
    out->arg_len = end - a;
    return 1;
}

int smtp_verb_peek(const char *buf, size_t n, enum smtp_verb *out_verb) {
    size_t v = 0;
    while (v < n && v <= SMTP_VERB_MAX &&
           ((buf[v] >= 'A' && buf[v] <= 'Z') || (buf[v] >= 'a' && buf[v] <= 'z'))) {
        v++;
    }
    if (v == n && v <= SMTP_VERB_MAX) {
        return 0; /* the verb may go on */
    }
    struct smtp_cmd cmd;
    /* Only the verb matters here: parse it alone. */
    if (v > 0 && v <= SMTP_VERB_MAX && smtp_cmd_parse(buf, v, &cmd)) {
        int ended = buf[v] == ' ' || buf[v] == '\t' || buf[v] == '\r' || buf[v] == '\n';
        *out_verb = ended ? cmd.verb : VERB_UNKNOWN;
    } else {
        *out_verb = VERB_UNKNOWN;
    }
    return 1;
}

size_t smtp_line_limit(enum smtp_verb verb, unsigned exts, const struct smtp_line_limits *l) {
    /* What each extension's parameters may add, as its RFC states it or,
     * where it is silent, the parameter's own longest spelling. */
    static const struct {
        unsigned ext;
        size_t mail, rcpt;
    } allowance[] = {
        {SMTP_EXT_SIZE, 26, 0},      /* RFC 1870 */
        {SMTP_EXT_DSN, 120, 540},    /* RFC 3461: ENVID 100, ORCPT 500 */
        {SMTP_EXT_AUTH, 500, 0},     /* RFC 4954 5 */
        {SMTP_EXT_8BITMIME, 15, 0},  /* " BODY=8BITMIME" */
        {SMTP_EXT_SMTPUTF8, 10, 0},  /* " SMTPUTF8" */
    };
    if (verb != VERB_MAIL && verb != VERB_RCPT) {
        return l->command;
    }
    size_t limit = l->command;
    for (size_t i = 0; i < sizeof(allowance) / sizeof(allowance[0]); i++) {
        if (exts & allowance[i].ext) {
            limit += verb == VERB_MAIL ? allowance[i].mail : allowance[i].rcpt;
        }
    }
    return limit < l->mail ? limit : (l->mail > l->command ? l->mail : l->command);
}

int smtp_cmd_canonical(const struct smtp_cmd *cmd, struct buffer *out) {
    return buffer_append(out, cmd->verb_text, cmd->verb_len) &&
           (cmd->arg_len == 0 ||
            (buffer_append(out, " ", 1) && buffer_append(out, cmd->arg, cmd->arg_len)));
}

/* path_end returns the offset just after the reverse-path's closing '>'
 * (RFC 5321 4.1.2), where parameters begin; a '>' inside a quoted local
 * part does not count. Returns |len| when there is no complete path. */
static size_t path_end(const char *line, size_t len) {
    const char *lt = memchr(line, '<', len);
    if (lt == NULL) {
        return len;
    }
    int quoted = 0;
    for (size_t i = (size_t)(lt - line) + 1; i < len; i++) {
        if (quoted && line[i] == '\\') {
            i++;
        } else if (line[i] == '"') {
            quoted = !quoted;
        } else if (!quoted && line[i] == '>') {
            return i + 1;
        }
    }
    return len;
}

int smtp_mail_param(const char *line, size_t len, const char *keyword, size_t *out_value,
                    size_t *out_value_len) {
    size_t klen = strlen(keyword);
    size_t i = path_end(line, len);
    while (i < len) {
        while (i < len && line[i] == ' ') {
            i++;
        }
        size_t start = i;
        while (i < len && line[i] != ' ') {
            i++;
        }
        size_t plen = i - start;
        if (plen >= klen && strncasecmp(line + start, keyword, klen) == 0 &&
            (plen == klen || line[start + klen] == '=')) {
            size_t v = plen == klen ? i : start + klen + 1;
            if (out_value != NULL) {
                *out_value = v;
                *out_value_len = i - v;
            }
            return 1;
        }
    }
    return 0;
}

/* find_size_param returns the offset of the digits of a " SIZE=" esmtp
 * parameter after the reverse-path, or 0 when there is none. */
static size_t find_size_param(const char *line, size_t len, size_t *out_digits) {
    size_t d = 0, nd = 0, digits = 0;
    unsigned long long ignored;
    if (!smtp_mail_param(line, len, "SIZE", &d, &nd) ||
        !decimal_parse(line + d, nd, &ignored, &digits) || digits != nd) {
        return 0;
    }
    *out_digits = nd;
    return d;
}

int smtp_mail_add_size(const char *line, size_t len, size_t extra,
                       struct buffer *out) {
    size_t nd = 0;
    size_t d = find_size_param(line, len, &nd);
    if (d == 0) {
        return buffer_append(out, line, len) && buffer_append(out, "\r\n", 2);
    }
    unsigned long long size = 0;
    size_t used = 0;
    decimal_parse(line + d, nd, &size, &used); /* checked by find_size_param */
    char digits[32];
    int w = snprintf(digits, sizeof(digits), "%llu", size + extra);
    return buffer_append(out, line, d) && buffer_append(out, digits, (size_t)w) &&
           buffer_append(out, line + d + nd, len - d - nd) &&
           buffer_append(out, "\r\n", 2);
}
