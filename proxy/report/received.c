/*
 * received.c - the clauses of a Received: field (RFC 5321 4.4), its
 * comments, and the TLS evidence in them (received.h lists the formats).
 */
#include "report/received.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "report/when.h"

enum tok_kind { TOK_END, TOK_WORD, TOK_COMMENT, TOK_LITERAL, TOK_SEMI };

struct tok {
    enum tok_kind kind;
    const char *p; /* a comment's text inside the parentheses, a literal's inside [] */
    size_t n;
};

static int is_ws(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static struct tok next_tok(const char *s, size_t n, size_t *i) {
    while (*i < n && is_ws(s[*i])) {
        (*i)++;
    }
    struct tok t = {TOK_END, s + *i, 0};
    if (*i >= n) {
        return t;
    }
    char c = s[*i];
    if (c == ';') {
        t.kind = TOK_SEMI;
        t.n = 1;
        (*i)++;
        return t;
    }
    if (c == '(') {
        int depth = 0;
        size_t start = *i + 1;
        while (*i < n) {
            if (s[*i] == '\\' && *i + 1 < n) {
                *i += 2;
                continue;
            }
            if (s[*i] == '(') {
                depth++;
            } else if (s[*i] == ')' && --depth == 0) {
                break;
            }
            (*i)++;
        }
        t.kind = TOK_COMMENT;
        t.p = s + start;
        t.n = (*i < n ? *i : n) - start;
        if (*i < n) {
            (*i)++;
        }
        return t;
    }
    if (c == '[') {
        size_t start = *i + 1;
        while (*i < n && s[*i] != ']') {
            (*i)++;
        }
        t.kind = TOK_LITERAL;
        t.p = s + start;
        t.n = (*i < n ? *i : n) - start;
        if (*i < n) {
            (*i)++;
        }
        return t;
    }
    size_t start = *i;
    if (c == '"') {
        (*i)++;
        while (*i < n && s[*i] != '"') {
            *i += (s[*i] == '\\' && *i + 1 < n) ? 2 : 1;
        }
        if (*i < n) {
            (*i)++;
        }
    } else {
        while (*i < n && !is_ws(s[*i]) && s[*i] != '(' && s[*i] != ';') {
            (*i)++;
        }
    }
    t.kind = TOK_WORD;
    t.p = s + start;
    t.n = *i - start;
    return t;
}

static int word_is(const char *p, size_t n, const char *w) {
    return strlen(w) == n && strncasecmp(p, w, n) == 0;
}

static void copy(char *out, size_t out_size, const char *p, size_t n) {
    if (n >= out_size) {
        n = out_size - 1;
    }
    memcpy(out, p, n);
    out[n] = '\0';
}

int received_version_name(const char *tok, size_t n, char *out, size_t out_size) {
    if (n < 4) {
        return 0;
    }
    const char *family;
    if (strncasecmp(tok, "TLS", 3) == 0) {
        family = "TLS";
    } else if (strncasecmp(tok, "SSL", 3) == 0) {
        family = "SSL";
    } else {
        return 0;
    }
    size_t i = 3;
    if (i < n && (tok[i] == 'v' || tok[i] == 'V')) {
        i++;
    }
    if (i >= n || tok[i] < '0' || tok[i] > '9') {
        return 0;
    }
    char major = tok[i++];
    char minor = 0;
    if (i < n && (tok[i] == '.' || tok[i] == '_')) {
        i++;
        if (i >= n || tok[i] < '0' || tok[i] > '9') {
            return 0;
        }
        minor = tok[i++];
    }
    if (i != n) {
        return 0;
    }
    if (family[0] == 'T') {
        if (major != '1') {
            return 0;
        }
        if (minor == 0 || minor == '0') {
            snprintf(out, out_size, "TLSv1");
        } else {
            snprintf(out, out_size, "TLSv1.%c", minor);
        }
    } else {
        snprintf(out, out_size, "SSLv%c", major);
    }
    return 1;
}

static int is_word_end(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ',' || c == ':' || c == ')' ||
           c == '(' || c == ';';
}

struct evidence {
    int tls;           /* something states TLS */
    char version[16];
};

static void note_version(struct evidence *ev, const char *p, size_t n) {
    char v[16];
    if (received_version_name(p, n, v, sizeof(v))) {
        ev->tls = 1;
        if (ev->version[0] == '\0') {
            snprintf(ev->version, sizeof(ev->version), "%s", v);
        }
    }
}

/* word_at gives the length of the word at p[0..n) up to a blank, ',',
 * ':' or a parenthesis. */
static size_t word_at(const char *p, size_t n) {
    size_t k = 0;
    while (k < n && !is_word_end(p[k])) {
        k++;
    }
    return k;
}

/* scan_comment looks for a stated TLS version in one comment. */
static void scan_comment(const char *s, size_t n, struct evidence *ev) {
    size_t i = 0;
    while (i < n && is_ws(s[i])) {
        i++;
    }
    size_t w = word_at(s + i, n - i);
    if (word_is(s + i, w, "TLS")) {
        ev->tls = 1; /* Exchange: "(TLS)", version not stated */
    } else {
        note_version(ev, s + i, w); /* Exim "(TLS1.3)", this proxy "(TLSv1.3 group ...)" */
    }
    static const char *const leads[] = {"using ", "version="};
    for (size_t l = 0; l < 2; l++) {
        size_t ln = strlen(leads[l]);
        for (size_t k = 0; k + ln <= n; k++) {
            if ((k == 0 || is_word_end(s[k - 1])) && strncasecmp(s + k, leads[l], ln) == 0) {
                size_t v = k + ln;
                note_version(ev, s + v, word_at(s + v, n - v));
            }
        }
    }
}

/* ip_text keeps |p| as the address when it is one ("IPv6:" prefix
 * dropped). */
static int ip_text(const char *p, size_t n, char *out, size_t out_size) {
    char buf[64];
    unsigned char bin[16];
    if (n > 5 && strncasecmp(p, "IPv6:", 5) == 0) {
        p += 5;
        n -= 5;
    }
    if (n == 0 || n >= sizeof(buf)) {
        return 0;
    }
    memcpy(buf, p, n);
    buf[n] = '\0';
    if (inet_pton(AF_INET, buf, bin) != 1 && inet_pton(AF_INET6, buf, bin) != 1) {
        return 0;
    }
    copy(out, out_size, buf, n);
    return 1;
}

/* set_name keeps a host name: "user@" and a trailing dot dropped,
 * "unknown" (Postfix's word for no name) as "". */
static void set_name(char *out, size_t out_size, const char *p, size_t n) {
    const char *at = memchr(p, '@', n);
    if (at != NULL) {
        n -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    while (n > 0 && p[n - 1] == '.') {
        n--;
    }
    if (word_is(p, n, "unknown")) {
        n = 0;
    }
    copy(out, out_size, p, n);
}

/* tcp_info reads the first comment of the from clause: "NAME [IP]"
 * (Postfix, Sendmail, Gmail, this proxy), "[IP] helo=HELO" and "NAME
 * [IP]:port" (Exim), a bare "IP" (Exchange), "user@NAME". */
static void tcp_info(const char *s, size_t n, struct received_info *out, int *has_helo) {
    const char *lb = memchr(s, '[', n);
    if (lb != NULL) {
        const char *rb = memchr(lb, ']', n - (size_t)(lb - s));
        size_t len = rb ? (size_t)(rb - lb - 1) : n - (size_t)(lb - s) - 1;
        ip_text(lb + 1, len, out->ip, sizeof(out->ip));
        size_t b = (size_t)(lb - s);
        while (b > 0 && is_ws(s[b - 1])) {
            b--;
        }
        size_t a = b;
        while (a > 0 && !is_ws(s[a - 1])) {
            a--;
        }
        set_name(out->name, sizeof(out->name), s + a, b - a);
    } else {
        size_t i = 0;
        while (i < n && is_ws(s[i])) {
            i++;
        }
        size_t w = word_at(s + i, n - i);
        /* IPv6 has colons: the word goes to the next blank or ')'. */
        size_t k = i;
        while (k < n && !is_ws(s[k]) && s[k] != ')') {
            k++;
        }
        if (!ip_text(s + i, k - i, out->ip, sizeof(out->ip))) {
            if (w > 0 && memchr(s + i, '=', w) == NULL) {
                set_name(out->name, sizeof(out->name), s + i, w);
            }
        }
    }
    for (size_t k = 0; k + 5 <= n; k++) {
        if ((k == 0 || is_ws(s[k - 1])) && strncasecmp(s + k, "helo=", 5) == 0) {
            size_t v = k + 5, e = v;
            while (e < n && !is_ws(s[e]) && s[e] != ')') {
                e++;
            }
            copy(out->helo, sizeof(out->helo), s + v, e - v);
            *has_helo = 1;
            break;
        }
    }
}

enum clause { C_NONE, C_FROM, C_BY, C_VIA, C_WITH, C_ID, C_FOR, C_TLS };

static enum clause keyword(const struct tok *t) {
    static const char *const names[] = {"from", "by", "via", "with", "id", "for", "tls"};
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        if (word_is(t->p, t->n, names[k])) {
            return (enum clause)(k + 1);
        }
    }
    return C_NONE;
}

/* protocol_kind: 2 states TLS, 1 states plaintext, 3 is Microsoft's
 * (plaintext unless a comment states TLS), 0 says nothing. */
static int protocol_kind(const char *p) {
    static const char *const tls[] = {"ESMTPS",   "ESMTPSA",   "UTF8SMTPS",  "UTF8SMTPSA", "LMTPS",
                                      "LMTPSA",   "UTF8LMTPS", "UTF8LMTPSA", "SMTPS"};
    static const char *const plain[] = {"SMTP",   "ESMTP",    "ESMTPA",    "UTF8SMTP", "UTF8SMTPA",
                                        "LMTP",   "LMTPA",    "UTF8LMTP",  "UTF8LMTPA"};
    for (size_t k = 0; k < sizeof(tls) / sizeof(tls[0]); k++) {
        if (strcasecmp(p, tls[k]) == 0) {
            return 2;
        }
    }
    for (size_t k = 0; k < sizeof(plain) / sizeof(plain[0]); k++) {
        if (strcasecmp(p, plain[k]) == 0) {
            return 1;
        }
    }
    if (strncasecmp(p, "Microsoft SMTP", 14) == 0) {
        return 3;
    }
    return 0;
}

/* The state of received_parse as it walks the clauses. */
struct parse_state {
    struct received_info *out;
    struct evidence ev;
    enum clause cur;
    int need_value, from_comment_seen, has_helo, tls_clause;
    char from_word[256], from_literal[64];
};

static void on_comment(struct parse_state *st, const struct tok *t) {
    if (st->cur == C_FROM && !st->need_value && !st->from_comment_seen) {
        st->from_comment_seen = 1;
        tcp_info(t->p, t->n, st->out, &st->has_helo);
    } else {
        scan_comment(t->p, t->n, &st->ev);
    }
}

static void on_literal(struct parse_state *st, const struct tok *t) {
    if (st->need_value && st->cur == C_FROM) {
        copy(st->from_literal, sizeof(st->from_literal), t->p, t->n);
    }
    st->need_value = 0;
}

/* on_value keeps the word after a clause keyword. */
static void on_value(struct parse_state *st, const struct tok *t) {
    struct received_info *out = st->out;
    switch (st->cur) {
    case C_FROM:
        copy(st->from_word, sizeof(st->from_word), t->p, t->n);
        break;
    case C_BY:
        copy(out->by, sizeof(out->by), t->p, t->n);
        break;
    case C_WITH:
        copy(out->protocol, sizeof(out->protocol), t->p, t->n);
        break;
    case C_TLS:
        st->tls_clause = 1;
        break;
    default:
        break;
    }
}

static void on_word(struct parse_state *st, const struct tok *t) {
    struct received_info *out = st->out;
    enum clause kw = keyword(t);
    if (kw != C_NONE && !st->need_value) {
        st->cur = kw;
        st->need_value = 1;
        if (kw == C_FROM) {
            st->from_comment_seen = 0;
        }
        return;
    }
    if (st->need_value) {
        st->need_value = 0;
        on_value(st, t);
        return;
    }
    /* "with Microsoft SMTP Server": the protocol is three words. */
    if (st->cur == C_WITH && strcasecmp(out->protocol, "Microsoft") == 0 &&
        word_is(t->p, t->n, "SMTP")) {
        snprintf(out->protocol, sizeof(out->protocol), "Microsoft SMTP");
    } else if (st->cur == C_WITH && strcasecmp(out->protocol, "Microsoft SMTP") == 0 &&
               word_is(t->p, t->n, "Server")) {
        snprintf(out->protocol, sizeof(out->protocol), "Microsoft SMTP Server");
    }
}

/* settle_who: HELO from the clause (or Exim's helo=), the address from
 * the comment or the literal. */
static void settle_who(struct parse_state *st) {
    struct received_info *out = st->out;
    char *from_word = st->from_word, *from_literal = st->from_literal;
    if (st->has_helo) {
        if (from_word[0] != '\0' && !ip_text(from_word, strlen(from_word), from_literal,
                                             sizeof(st->from_literal))) {
            set_name(out->name, sizeof(out->name), from_word, strlen(from_word));
        }
    } else if (from_word[0] != '\0') {
        snprintf(out->helo, sizeof(out->helo), "%s", from_word);
    } else if (from_literal[0] != '\0') {
        snprintf(out->helo, sizeof(out->helo), "[%s]", from_literal);
    }
    if (out->ip[0] == '\0' && from_literal[0] != '\0') {
        ip_text(from_literal, strlen(from_literal), out->ip, sizeof(out->ip));
    }
}

static void classify(const struct parse_state *st) {
    struct received_info *out = st->out;
    int kind = out->protocol[0] ? protocol_kind(out->protocol) : 0;
    int tls = st->ev.tls || st->tls_clause || kind == 2;
    int plain = kind == 1;
    if (tls && plain) {
        out->tls = RECEIVED_UNCLASSIFIED;
        out->why = "states TLS and a plaintext protocol";
    } else if (tls) {
        out->tls = RECEIVED_TLS;
        snprintf(out->version, sizeof(out->version), "%s", st->ev.version);
    } else if (plain || kind == 3) {
        out->tls = RECEIVED_PLAIN;
    } else {
        out->tls = RECEIVED_UNCLASSIFIED;
        out->why = out->protocol[0] ? "unknown protocol" : "no protocol and no TLS statement";
    }
}

void received_parse(const char *s, size_t n, struct received_info *out) {
    memset(out, 0, sizeof(*out));
    struct parse_state st;
    memset(&st, 0, sizeof(st));
    st.out = out;
    st.cur = C_NONE;
    size_t i = 0;
    for (;;) {
        struct tok t = next_tok(s, n, &i);
        if (t.kind == TOK_END) {
            break;
        }
        if (t.kind == TOK_SEMI) {
            out->has_time = when_parse_rfc5322(s + i, n - i, &out->time_ms);
            break;
        }
        if (t.kind == TOK_COMMENT) {
            on_comment(&st, &t);
        } else if (t.kind == TOK_LITERAL) {
            on_literal(&st, &t);
        } else {
            on_word(&st, &t);
        }
    }
    settle_who(&st);
    classify(&st);
}

int received_by_is(const struct received_info *r, const char *host) {
    size_t a = strlen(r->by), b = strlen(host);
    while (a > 0 && r->by[a - 1] == '.') {
        a--;
    }
    while (b > 0 && host[b - 1] == '.') {
        b--;
    }
    return a > 0 && a == b && strncasecmp(r->by, host, a) == 0;
}
