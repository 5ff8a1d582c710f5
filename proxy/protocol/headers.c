/*
 * headers.c - writing the Received: and status header fields.
 */
#include "protocol/headers.h"

#include <stdio.h>
#include <string.h>

char *headers_sanitize(char *out, size_t out_size, const char *src) {
    size_t o = 0;
    size_t max = out_size - 1 < HEADERS_VALUE_MAX ? out_size - 1 : HEADERS_VALUE_MAX;
    for (size_t i = 0; src != NULL && src[i] != '\0' && o < max; i++) {
        unsigned char c = (unsigned char)src[i];
        int keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                   (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_' ||
                   c == ':' || c == '[' || c == ']';
        out[o++] = keep ? (char)c : '_';
    }
    if (o == 0) {
        snprintf(out, out_size, "unknown");
        return out;
    }
    out[o] = '\0';
    return out;
}

const char *headers_protocol(int esmtp, int tls, int authenticated, int utf8) {
    static const char *const names[2][4] = {
        {"ESMTP", "ESMTPA", "ESMTPS", "ESMTPSA"},
        {"UTF8SMTP", "UTF8SMTPA", "UTF8SMTPS", "UTF8SMTPSA"},
    };
    if (!esmtp) {
        return "SMTP"; /* no extensions, so no SMTPUTF8 either */
    }
    return names[utf8 ? 1 : 0][(tls ? 2 : 0) + (authenticated ? 1 : 0)];
}

/* RFC 5322 2.1.1: lines SHOULD be at most 78 octets, CRLF excluded. */
#define HEADERS_LINE_SOFT_MAX 78

/* A folding writer: tokens go on the current line while it stays short;
 * otherwise the line is folded with CRLF TAB (RFC 5322 2.2.3). */
struct folder {
    struct buffer *out;
    size_t col;
    int ok;
};

static void fold_put(struct folder *f, const char *s) {
    size_t n = strlen(s);
    if (f->ok && !buffer_append(f->out, s, n)) {
        f->ok = 0;
    }
    f->col += n;
}

/* fold_token writes |sep| then |tok|, folding first when the line would
 * pass 78 columns (RFC 5322 2.1.1). A fold replaces only the white space
 * of |sep|: its other characters (the ';' between status pairs) stay
 * before the fold. One column is kept free after |tok| for the ';' that
 * may follow it on the same line. */
static void fold_token(struct folder *f, const char *sep, const char *tok) {
    if (f->col + strlen(sep) + strlen(tok) + 1 > HEADERS_LINE_SOFT_MAX) {
        char visible[8];
        size_t n = 0;
        for (; sep[n] != '\0' && sep[n] != ' ' && n + 1 < sizeof(visible); n++) {
            visible[n] = sep[n];
        }
        visible[n] = '\0';
        fold_put(f, visible);
        fold_put(f, "\r\n\t");
        f->col = 1;
    } else {
        fold_put(f, sep);
    }
    fold_put(f, tok);
}

static void write_received(const struct header_facts *h, struct folder *f) {
    char helo[HEADERS_VALUE_MAX + 1], name[HEADERS_VALUE_MAX + 1];
    char tok[2 * HEADERS_VALUE_MAX + 64];
    headers_sanitize(helo, sizeof(helo), h->helo);
    /* Postfix's form, "from HELO (NAME [ADDR])"; NULL gives "unknown". */
    headers_sanitize(name, sizeof(name), h->client_name);
    fold_put(f, "Received: from");
    fold_token(f, " ", helo);
    snprintf(tok, sizeof(tok), "(%s [%s%s])", name, h->client_is_ipv6 ? "IPv6:" : "",
             h->client_addr);
    fold_token(f, " ", tok);
    fold_put(f, "\r\n\tby ");
    f->col = 4;
    fold_put(f, h->proxy_hostname);
    fold_token(f, " ", "(smtp-tls-proxy)");
    snprintf(tok, sizeof(tok), "with %s", h->protocol);
    fold_token(f, " ", tok);
    snprintf(tok, sizeof(tok), "id %s", h->id);
    fold_token(f, " ", tok);
    if (h->tls_version != NULL) {
        /* RFC 8314 4.3: the "tls" clause names the cipher suite. */
        snprintf(tok, sizeof(tok), "tls %s", h->cipher ? h->cipher : "unknown");
        fold_token(f, " ", tok);
        /* The comment word by word: it may fold at any of its blanks. */
        char sni[HEADERS_VALUE_MAX + 1];
        snprintf(tok, sizeof(tok), "(%s", h->tls_version);
        fold_token(f, " ", tok);
        if (h->group != NULL) {
            fold_token(f, " ", "group");
            fold_token(f, " ", h->group);
        }
        if (h->sni != NULL) {
            fold_token(f, " ", "sni");
            fold_token(f, " ", headers_sanitize(sni, sizeof(sni), h->sni));
        }
        fold_token(f, " ", "port");
        snprintf(tok, sizeof(tok), "%u)", h->local_port);
        fold_token(f, " ", tok);
    }
    fold_put(f, ";");
    char date[64];
    struct tm tm;
    gmtime_r(&h->now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    fold_token(f, " ", date);
    fold_put(f, "\r\n");
}

static void status_pair(struct folder *f, int *first, const char *key, const char *value) {
    char tok[HEADERS_VALUE_MAX + 32];
    if (value == NULL) {
        return;
    }
    snprintf(tok, sizeof(tok), "%s=%s", key, value);
    fold_token(f, *first ? " " : "; ", tok);
    *first = 0;
}

static void write_status(const struct header_facts *h, struct folder *f) {
    char sni[HEADERS_VALUE_MAX + 1];
    char port[16];
    int first = 1;
    f->col = 0;
    fold_put(f, h->status_name);
    fold_put(f, ":");
    status_pair(f, &first, "tls", h->tls_version ? h->tls_version : "none");
    if (h->tls_version != NULL) {
        status_pair(f, &first, "cipher", h->cipher);
        status_pair(f, &first, "group", h->group);
        status_pair(f, &first, "sni",
                    h->sni ? headers_sanitize(sni, sizeof(sni), h->sni) : NULL);
    }
    status_pair(f, &first, "listener", h->listener);
    snprintf(port, sizeof(port), "%u", h->local_port);
    status_pair(f, &first, "port", port);
    status_pair(f, &first, "mode", h->mode);
    status_pair(f, &first, "client", h->client_addr);
    status_pair(f, &first, "scope", h->scope);
    status_pair(f, &first, "country", h->country);
    char asn[24];
    snprintf(asn, sizeof(asn), "%lu", h->asn);
    status_pair(f, &first, "asn", h->asn ? asn : NULL);
    fold_put(f, "\r\n");
}

int headers_write(const struct header_facts *h, struct buffer *out) {
    struct folder f = {.out = out, .col = 0, .ok = 1};
    write_received(h, &f);
    write_status(h, &f);
    return f.ok;
}
