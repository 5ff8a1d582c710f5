/*
 * session_client.c - the client side of a session: the command table and
 * what each verb does, reading commands, SASL lines and message data,
 * the checks only the proxy can make (line limits, synchronisation
 * points, pregreet, error counts), and TLS with the client (STARTTLS and
 * implicit). See session_int.h for how the session is split.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "daemon/session_int.h"

#include "core/decimal.h"

#include "protocol/ehlo.h"
#include "protocol/identity.h"
#include "core/log.h"
#include "daemon/net.h"
#include "protocol/smtp_cmd.h"
#include "daemon/snapshot.h"
#include "tls/tls.h"

static size_t client_line_limit(const struct session *s, enum smtp_verb verb);

/* starttls_begin answers STARTTLS once every earlier reply is out
 * (RFC 3207 4). Whatever the client sent after STARTTLS arrived as
 * plaintext, before TLS protects anything: it is an injection attempt
 * (CVE-2011-0411) and is discarded, never executed. */
void starttls_begin(struct session *s) {
    if (s->client.in.len > 0) {
        s->injected_bytes += s->client.in.len;
        metrics_refusal(s->host->metrics, MRF_STARTTLS_INJECTION);
        log_warning("session=%s event=starttls_injection client=%s bytes=%zu", s->id,
                    s->client_ip, s->client.in.len);
        buffer_free(&s->client.in);
    }
    to_client_str(s, "220 2.0.0 Ready to start TLS\r\n");
    /* RFC 3207 4.2: forget everything learned before TLS. */
    s->helo[0] = '\0';
    s->esmtp = 0;
    s->helo_since_tls = 0;
    s->exts = 0;
    s->in_transaction = 0;
    backend_restart(s);
    s->starttls_ready = 1;
}

/* ---- the command table ---- */

typedef void command_action(struct session *s, const struct smtp_cmd *cmd,
                            const char *line, size_t len);

static void act_forward(struct session *s, const struct smtp_cmd *cmd,
                        const char *line, size_t len) {
    (void)cmd;
    forward(s, line, len, PEND_OTHER);
}

/* remember_helo keeps the name the client gave; it becomes the Received
 * "from" only when the backend accepts it (accept_helo). */
static void remember_helo(struct session *s, const struct smtp_cmd *cmd) {
    size_t n = cmd->arg_len < HEADERS_VALUE_MAX ? cmd->arg_len : HEADERS_VALUE_MAX;
    /* Only the first word: "EHLO name junk" names "name". */
    const char *space = memchr(cmd->arg, ' ', n);
    if (space != NULL) {
        n = (size_t)(space - cmd->arg);
    }
    memcpy(s->helo_sent, cmd->arg, n);
    s->helo_sent[n] = '\0';
    s->helo_since_tls = 1;
}

/* accept_helo records an EHLO or HELO the backend said 250 to. A refused
 * one leaves the session as it was (RFC 5321 4.1.4). */
void accept_helo(struct session *s, int esmtp) {
    memcpy(s->helo, s->helo_sent, sizeof(s->helo));
    s->esmtp = esmtp;
    s->in_transaction = 0;
}

static void act_ehlo(struct session *s, const struct smtp_cmd *cmd, const char *line,
                     size_t len) {
    remember_helo(s, cmd);
    forward(s, line, len, PEND_EHLO);
}

static void act_helo(struct session *s, const struct smtp_cmd *cmd, const char *line,
                     size_t len) {
    remember_helo(s, cmd);
    forward(s, line, len, PEND_HELO);
}

static void act_rset(struct session *s, const struct smtp_cmd *cmd, const char *line,
                     size_t len) {
    (void)cmd;
    forward(s, line, len, PEND_RESET);
}

static void act_mail(struct session *s, const struct smtp_cmd *cmd, const char *line,
                     size_t len) {
    s->mail_attempted = 1;
    if (s->draining) {
        /* Stopping: the transaction that was open may finish, no new
         * one begins (a MAIL pipelined after the final dot or RSET). */
        s->result = "shutdown";
        reply_local(s, s->shutdown_reply, 1);
        return;
    }
    /* The backend receives the client's message plus our headers; a SIZE
     * declaration must say so, or a message near the limit is refused
     * only after it was transferred. */
    struct buffer mail = {0};
    if (!smtp_mail_add_size(line, len, HEADERS_RESERVE, &mail)) {
        buffer_free(&mail);
        session_fail(s, "4.3.0", "Out of memory, try again later", "out_of_memory");
        return;
    }
    /* The raised SIZE may add digits: the line as sent must still fit.
     * The line was read whole, so the session can go on. */
    if (mail.len > client_line_limit(s, cmd->verb)) {
        buffer_free(&mail);
        log_info("session=%s event=line_too_long limit=%zu after=size_raised", s->id,
                 client_line_limit(s, cmd->verb));
        reply_local(s, "500 5.5.2 Line too long with the raised SIZE\r\n", 0);
        return;
    }
    if (!buffer_append(&s->backend.out, buffer_head(&mail), mail.len)) {
        buffer_free(&mail);
        session_fail(s, "4.3.0", "Out of memory, try again later", "out_of_memory");
        return;
    }
    buffer_free(&mail);
    s->mail_utf8 = smtp_mail_param(line, len, "SMTPUTF8", NULL, NULL) ? 1 : 0;
    fifo_push(s, PEND_MAIL, NULL, 0);
}

static void act_data(struct session *s, const struct smtp_cmd *cmd, const char *line,
                     size_t len) {
    (void)cmd;
    forward(s, line, len, PEND_DATA);
    /* What follows DATA is either the message (after 354) or commands
     * (after a refusal): only the backend's reply can tell. */
    if (!session_over(s)) {
        session_set_state(s, STATE_DATA_WAIT);
    }
}

static void act_quit(struct session *s, const struct smtp_cmd *cmd, const char *line,
                     size_t len) {
    (void)cmd;
    forward(s, line, len, PEND_QUIT);
    s->input_closed = 1;
}

/* bdat_chunk_size reads "BDAT size [LAST]" (RFC 3030). Returns 1 and
 * the size, or 0 when the argument is not that. */
static int bdat_chunk_size(const struct smtp_cmd *cmd, unsigned long long *out) {
    unsigned long long size = 0;
    size_t i = 0;
    if (!decimal_parse(cmd->arg, cmd->arg_len, &size, &i) ||
        (i < cmd->arg_len && cmd->arg[i] != ' ')) {
        return 0;
    }
    *out = size;
    return 1;
}

/* refuse_command answers a command locally. A refused BDAT is followed
 * by its chunk, which must be dropped, never read as commands. */
static void refuse_command(struct session *s, const struct smtp_cmd *cmd, const char *reply) {
    unsigned long long size = 0;
    if (cmd->verb == VERB_BDAT) {
        if (!bdat_chunk_size(cmd, &size)) {
            reply_local(s, "501 5.5.4 BDAT without a chunk size; closing\r\n", 1);
            return;
        }
        s->discard = size;
    }
    reply_local(s, reply, 0);
}

static void act_bdat(struct session *s, const struct smtp_cmd *cmd, const char *line,
                     size_t len) {
    (void)line;
    (void)len;
    /* CHUNKING is never offered (the chunk would bypass the scanner), but
     * a client that sends BDAT anyway is followed by its chunk. */
    metrics_refusal(s->host->metrics, MRF_BDAT);
    refuse_command(s, cmd, "502 5.5.1 BDAT is not supported: CHUNKING is not offered\r\n");
}

static void act_starttls(struct session *s, const struct smtp_cmd *cmd,
                         const char *line, size_t len) {
    (void)line;
    (void)len;
    if (s->tls == CLIENT_TLS_ON) {
        reply_local(s, "554 5.5.1 Error: TLS already active\r\n", 0);
    } else if (s->listener->tls != TLS_MODE_STARTTLS) {
        reply_local(s, "502 5.5.1 STARTTLS is not offered on this port\r\n", 0);
    } else if (starttls_withheld(s)) {
        /* Its last handshake failed (or never_offer): EHLO left STARTTLS
         * out, and the mail goes through in plaintext. */
        reply_local(s, "502 5.5.1 STARTTLS is not offered to this client\r\n", 0);
    } else if (cmd->arg_len > 0) {
        reply_local(s, "501 5.5.4 Syntax: STARTTLS\r\n", 0);
    } else if (s->authenticated) {
        /* A login made in plaintext must not pass for one made under
         * TLS (the Received header would say ESMTPSA): refuse rather
         * than carry it over. Only reachable with auth_requires_tls = no. */
        reply_local(s, "503 5.5.1 Error: STARTTLS is not allowed after AUTH\r\n", 0);
    } else {
        s->starttls_queued = 1;
        fifo_push(s, PEND_STARTTLS, NULL, 0);
    }
}

static void act_auth(struct session *s, const struct smtp_cmd *cmd, const char *line,
                     size_t len) {
    (void)cmd;
    if (s->listener->auth_requires_tls && s->tls != CLIENT_TLS_ON) {
        /* RFC 4954 4 and 6: no credentials over plaintext. */
        reply_local(s, "538 5.7.11 Encryption required for requested authentication "
                       "mechanism\r\n", 0);
        return;
    }
    forward(s, line, len, PEND_AUTH);
    /* What follows may be SASL data, not commands: wait for the reply. */
    if (!session_over(s)) {
        session_set_state(s, STATE_AUTH_WAIT);
    }
}

static void act_refuse_identity(struct session *s, const struct smtp_cmd *cmd,
                                const char *line, size_t len) {
    (void)line;
    (void)len;
    /* The backend trusts XCLIENT/XFORWARD from the proxy's address; a
     * client must never reach them, or it could claim any identity. */
    metrics_refusal(s->host->metrics, MRF_XCLIENT);
    reply_local(s, cmd->verb == VERB_XCLIENT
                       ? "550 5.7.0 XCLIENT is not accepted from clients\r\n"
                       : "550 5.7.0 XFORWARD is not accepted from clients\r\n",
                0);
}

/* What each verb does, and when it may be used. */
struct command_rule {
    command_action *action;
    unsigned before_tls : 1; /* allowed before TLS where TLS is required */
    unsigned needs_helo : 1; /* refused after STARTTLS until EHLO/HELO again */
    unsigned sync : 1;       /* the client must wait for its reply: RFC 2920
                              * 3.1 (EHLO, DATA, VRFY, EXPN, QUIT, NOOP),
                              * and HELO and STARTTLS, which restart the
                              * session */
};

static const struct command_rule command_table[VERB_COUNT] = {
    [VERB_UNKNOWN] = {act_forward, 0, 0, 0},
    [VERB_HELO] = {act_helo, 1, 0, 1},
    [VERB_EHLO] = {act_ehlo, 1, 0, 1},
    [VERB_MAIL] = {act_mail, 0, 1, 0},
    [VERB_RCPT] = {act_forward, 0, 1, 0},
    [VERB_DATA] = {act_data, 0, 1, 1},
    [VERB_BDAT] = {act_bdat, 0, 1, 0},
    [VERB_RSET] = {act_rset, 1, 0, 0},
    [VERB_NOOP] = {act_forward, 1, 0, 1},
    [VERB_QUIT] = {act_quit, 1, 0, 1},
    [VERB_VRFY] = {act_forward, 0, 0, 1},
    [VERB_EXPN] = {act_forward, 0, 0, 1},
    [VERB_HELP] = {act_forward, 0, 0, 0},
    [VERB_STARTTLS] = {act_starttls, 1, 0, 1},
    [VERB_AUTH] = {act_auth, 0, 1, 0},
    [VERB_XCLIENT] = {act_refuse_identity, 1, 0, 0},
    [VERB_XFORWARD] = {act_refuse_identity, 1, 0, 0},
};

/* client_line_limit is the longest line, CRLF included, accepted for
 * |verb| now: RFC 5321's 512 octets unless the backend's own EHLO
 * advertised extensions that lengthen MAIL and RCPT, and AUTH's limit
 * for SASL. A backend reading commands into a 512-octet buffer must
 * never be given a longer one: it would run the rest as a command. */
static size_t client_line_limit(const struct session *s, enum smtp_verb verb) {
    const struct smtp_line_limits limits = {
        .command = s->cfg->command_line_max,
        .mail = s->cfg->mail_line_max,
        .auth = s->cfg->auth_line_max,
    };
    return smtp_line_limit(verb, s->exts, &limits);
}

/* line_bound is how far to look for the end of the line at the head of
 * the client's input: its verb's limit, or the largest while the verb is
 * still incomplete. */
static size_t line_bound(const struct session *s) {
    enum smtp_verb verb;
    const struct buffer *in = &s->client.in;
    if (smtp_verb_peek(buffer_head(in), in->len, &verb)) {
        return client_line_limit(s, verb);
    }
    return s->cfg->mail_line_max > s->cfg->command_line_max ? s->cfg->mail_line_max
                                                            : s->cfg->command_line_max;
}

/* fifo_owes_sync says whether a reply the client must wait for is still
 * owed: a command arriving now was sent before its turn. */
static int fifo_owes_sync(const struct session *s) {
    for (unsigned i = 0; i < s->fifo_len; i++) {
        if (s->fifo[(s->fifo_head + i) % PIPELINE_MAX].sync) {
            return 1;
        }
    }
    return 0;
}

/* mark_sync flags the replies the last command queued (from FIFO
 * position |from| on) as ones the client must wait for: a command the
 * protocol makes a synchronisation point, or any command while PIPELINING
 * is not in effect (before EHLO, after HELO). */
static void mark_sync(struct session *s, unsigned from, const struct command_rule *rule) {
    int sync = rule->sync || !(s->exts & EHLO_PIPELINING);
    for (unsigned i = from; i < s->fifo_len; i++) {
        s->fifo[(s->fifo_head + i) % PIPELINE_MAX].sync = sync ? 1 : 0;
    }
}

/* sync_violation handles a command that arrived before the reply its
 * client had to wait for (RFC 2920 3.1; RFC 5321 4.3.1 without
 * PIPELINING). Early talkers are the classic spambot signal, and no
 * backend behind the proxy can see it. Returns 1 when the session was
 * ended for it. */
static int sync_violation(struct session *s, enum smtp_verb verb) {
    if (s->cfg->pregreet == PREGREET_IGNORE) {
        return 0;
    }
    if (s->sync_violations++ == 0) {
        log_info("session=%s event=sync_violation client=%s verb=%s pipelining=%s", s->id,
                 s->client_ip, smtp_verb_name(verb),
                 (s->exts & EHLO_PIPELINING) ? "yes" : "no");
    }
    if (s->cfg->pregreet != PREGREET_REJECT) {
        return 0;
    }
    s->result = "sync_violation";
    metrics_refusal(s->host->metrics, MRF_SYNC_VIOLATION);
    reply_local(s, "554 5.5.1 Error: command sent before the previous reply; closing\r\n", 1);
    return 1;
}

/* ---- client input ---- */

/* process_command_line handles the line at the head of the client's
 * input. Returns 1 when it consumed something and may be called again. */
/* line_too_long ends a session whose command line is over its limit:
 * nothing of it reaches the backend, and no resynchronising guess is
 * made about where the next command starts. */
static void line_too_long(struct session *s, size_t limit) {
    metrics_refusal(s->host->metrics, MRF_LINE_TOO_LONG);
    log_info("session=%s event=line_too_long limit=%zu", s->id, limit);
    s->result = "line_too_long";
    reply_local(s, "500 5.5.2 Line too long; closing\r\n", 1);
    drain_local(s);
}

static int process_command_line(struct session *s) {
    struct buffer *in = &s->client.in;
    if (s->cfg->max_errors > 0 && s->errors >= s->cfg->max_errors) {
        /* Postfix's smtpd_hard_error_limit, for what only the proxy sees. */
        metrics_refusal(s->host->metrics, MRF_TOO_MANY_ERRORS);
        log_info("session=%s event=too_many_errors client=%s errors=%u", s->id, s->client_ip,
                 s->errors);
        s->result = "too_many_errors";
        reply_local(s, s->too_many_errors, 1);
        drain_local(s);
        return 0;
    }
    size_t len = 0, used = 0;
    size_t bound = line_bound(s);
    enum line_status st = smtp_line_find(buffer_head(in), in->len, bound, &len, &used);
    switch (st) {
    case LINE_INCOMPLETE:
        return 0;
    case LINE_TOO_LONG:
        line_too_long(s, bound);
        return 0;
    case LINE_BAD_BYTE:
        buffer_consume(in, used);
        reply_local(s, "500 5.5.2 Syntax error: NUL or bare CR in command\r\n", 0);
        drain_local(s);
        return 1;
    case LINE_OK:
        break;
    }
    struct smtp_cmd cmd;
    struct buffer line = {0};
    if (!smtp_cmd_parse(buffer_head(in), len, &cmd)) {
        buffer_consume(in, used);
        reply_local(s, "500 5.5.2 Syntax error, command unrecognized\r\n", 0);
        drain_local(s);
        return 1;
    }
    if (!smtp_cmd_canonical(&cmd, &line)) {
        session_fail(s, "4.3.0", "Out of memory, try again later", "out_of_memory");
        return 0;
    }
    /* From here on only the canonical form is used: what reaches the
     * backend is exactly the verb the proxy decided on. */
    smtp_cmd_parse(buffer_head(&line), line.len, &cmd);
    /* As the backend will receive it: canonical, with CRLF. */
    if (line.len + 2 > client_line_limit(s, cmd.verb)) {
        buffer_free(&line);
        line_too_long(s, client_line_limit(s, cmd.verb));
        return 0;
    }
    buffer_consume(in, used);
    log_debug("session=%s event=command verb=%s", s->id, smtp_verb_name(cmd.verb));
    const struct command_rule *rule = &command_table[cmd.verb];
    unsigned queued = s->fifo_len;
    if (fifo_owes_sync(s) && sync_violation(s, cmd.verb)) {
        /* refused and closing: the command is not run */
    } else if (s->listener->require_tls && s->tls != CLIENT_TLS_ON && !rule->before_tls) {
        refuse_command(s, &cmd, "530 5.7.0 Must issue a STARTTLS command first\r\n");
    } else if (s->tls == CLIENT_TLS_ON && !s->helo_since_tls && rule->needs_helo) {
        refuse_command(s, &cmd, "503 5.5.1 Error: send EHLO/HELO first\r\n");
    } else {
        rule->action(s, &cmd, buffer_head(&line), line.len);
    }
    mark_sync(s, queued, rule);
    buffer_free(&line);
    drain_local(s);
    return 1;
}

/* process_data feeds the message to the scanner. Returns 1 when the end
 * of data was found and commands follow. */
static int process_data(struct session *s) {
    struct buffer *in = &s->client.in;
    size_t used = 0;
    enum data_result r =
        data_scan_feed(&s->scan, buffer_head(in), in->len, &s->backend.out, &used);
    buffer_consume(in, used);
    s->data_since_progress += used;
    s->message_bytes += used;
    if (s->data_since_progress >= DATA_PROGRESS_BYTES) {
        s->data_since_progress = 0;
        s->progress++;
    }
    if (r == DATA_NOMEM) {
        session_fail(s, "4.3.0", "Out of memory, try again later", "out_of_memory");
        return 0;
    }
    if (r != DATA_END) {
        return 0;
    }
    s->forged_removed += (unsigned)s->scan.dropped_fields;
    if (s->scan.dropped_fields || s->scan.bare_endings || s->scan.lines_broken ||
        s->scan.nul_removed) {
        log_info("session=%s event=message_cleaned forged_status_headers=%zu "
                 "bare_line_endings=%zu long_lines_broken=%zu nul_removed=%zu", s->id,
                 s->scan.dropped_fields, s->scan.bare_endings, s->scan.lines_broken,
                 s->scan.nul_removed);
    }
    fifo_push(s, PEND_DOT, NULL, 0);
    session_set_state(s, STATE_COMMAND);
    return 1;
}

/* process_auth_line relays one SASL response line (RFC 4954 4) as it is:
 * it is base64 data, and must never be read as a command even when it
 * happens to spell one. Returns 1 when a line was relayed. */
static int process_auth_line(struct session *s) {
    struct buffer *in = &s->client.in;
    size_t len = 0, used = 0;
    enum line_status st =
        smtp_line_find(buffer_head(in), in->len, s->cfg->auth_line_max, &len, &used);
    if (st == LINE_INCOMPLETE) {
        return 0;
    }
    if (st == LINE_TOO_LONG || len + 2 > s->cfg->auth_line_max) {
        line_too_long(s, s->cfg->auth_line_max);
        return 0;
    }
    s->auth_continuation = 0;
    if (st == LINE_BAD_BYTE) {
        forward(s, "*", 1, PEND_AUTH); /* cancels the exchange (RFC 4954 4) */
    } else {
        forward(s, buffer_head(in), len, PEND_AUTH);
    }
    buffer_consume(in, used);
    return 1;
}

void process_client_input(struct session *s) {
    struct buffer *in = &s->client.in;
    while (in->len > 0 && !session_over(s)) {
        /* Backpressure both ways: the backend must catch up with what we
         * send it, and the client must read the replies (the proxy's own
         * refusals would otherwise pile up without bound). */
        if (s->backend.out.len >= CONN_OUT_HIGH || s->client.out.len >= CONN_OUT_HIGH) {
            return;
        }
        if (s->state == STATE_DATA) {
            if (!process_data(s)) {
                return;
            }
            continue;
        }
        if (s->state == STATE_AUTH_WAIT) {
            if (!s->auth_continuation || !process_auth_line(s)) {
                return;
            }
            s->progress++;
            continue;
        }
        /* Draining, a session in a transaction may finish it (README). */
        if (s->state != STATE_COMMAND || s->input_closed || s->fifo_len >= PIPELINE_MAX ||
            (s->draining && !s->in_transaction) || s->starttls_queued ||
            s->tls == CLIENT_TLS_HANDSHAKE) {
            return;
        }
        if (s->discard > 0) {
            size_t n = in->len < s->discard ? in->len : (size_t)s->discard;
            buffer_consume(in, n);
            s->discard -= n;
            continue;
        }
        if (!process_command_line(s)) {
            return;
        }
        s->progress++;
    }
}

/* pregreet_check notices a client that talked before it was greeted
 * (RFC 5321 3.1: clients wait for the 220). With pregreet = reject the
 * client gets 554 and the connection ends; in GREET_WAIT the backend was
 * never contacted. */
void pregreet_check(struct session *s) {
    /* A session already closing may have greeted with a 421 of its own. */
    if (s->greeted || s->pregreet || s->client.in.len == 0 || session_over(s) ||
        s->cfg->pregreet == PREGREET_IGNORE) {
        return;
    }
    s->pregreet = 1;
    log_info("session=%s event=pregreet client=%s bytes=%zu state=%s", s->id, s->client_ip,
             s->client.in.len, session_state_name(s->state));
    if (s->cfg->pregreet != PREGREET_REJECT) {
        return;
    }
    char line[HEADERS_VALUE_MAX + 80];
    snprintf(line, sizeof(line), "554 5.5.1 %s Error: talked before the greeting\r\n",
             s->cfg->hostname);
    to_client_str(s, line);
    s->result = "pregreet";
    metrics_refusal(s->host->metrics, MRF_PREGREET);
    s->input_closed = 1;
    buffer_free(&s->client.in);
    session_close_backend(s);
    session_set_state(s, STATE_CLOSING);
}

