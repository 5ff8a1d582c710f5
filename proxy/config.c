/*
 * config.c - parsing and checking the INI configuration file.
 *
 * Each section has a table of keys: name, how to parse the value, where
 * it goes. Unknown sections and keys are errors, not warnings: a typo in
 * a mail relay's config must not silently fall back to a default.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "log.h"
#include "smtp_cmd.h"

enum section_type {
    SECTION_NONE = 0,
    SECTION_PROXY,
    SECTION_BACKEND,
    SECTION_LISTENER,
    SECTION_TLS,
    SECTION_CERTIFICATE,
    SECTION_GEOIP,
};

/* One parser state: where we are, what to say on error. */
struct parse {
    const char *path;
    int line;
    char *err;
    size_t errlen;
    struct config *cfg;
    enum section_type section;
    struct listener_config *listener;
    struct cert_config *cert;
    int seen_backend;
};

static int fail(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct parse *p, const char *fmt, ...) {
    int n = snprintf(p->err, p->errlen, "%s:%d: ", p->path, p->line);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < p->errlen) {
        vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    }
    va_end(ap);
    return 0;
}

const char *listener_kind_name(enum listener_kind kind) {
    static const char *const names[] = {"smtp", "submission", "submissions"};
    return names[kind];
}

const char *tls_mode_name(enum tls_mode mode) {
    static const char *const names[] = {"none", "starttls", "implicit"};
    return names[mode];
}

const char *identity_mode_name(enum identity_mode mode) {
    static const char *const names[] = {"none", "xclient", "proxy-v1", "proxy-v2"};
    return names[mode];
}

const char *pregreet_policy_name(enum pregreet_policy policy) {
    static const char *const names[] = {"ignore", "log", "reject"};
    return names[policy];
}

const char *tls_version_name(int version) {
    switch (version) {
    case CONFIG_TLS1_0:
        return "TLSv1";
    case CONFIG_TLS1_1:
        return "TLSv1.1";
    case CONFIG_TLS1_2:
        return "TLSv1.2";
    case CONFIG_TLS1_3:
        return "TLSv1.3";
    }
    return "unknown";
}

/* ---- value parsers: each returns 1, or 0 after fail() ---- */

static int parse_bool(struct parse *p, const char *v, int *out) {
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return 1;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return 1;
        }
    }
    return fail(p, "expected yes or no, got \"%s\"", v);
}

static int parse_uint(struct parse *p, const char *v, unsigned long max,
                      unsigned long *out) {
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (!isdigit((unsigned char)v[0]) || *end != '\0' || errno != 0 || n > max) {
        return fail(p, "expected a whole number from 0 to %lu, got \"%s\"", max, v);
    }
    *out = n;
    return 1;
}

/* Durations up to a day: anything longer is a typo. */
#define CONFIG_DURATION_MAX 86400
#define CONFIG_WORKERS_MAX 256
/* Line limits must leave room in the input buffer (CONN_IN_MAX, 64 KiB)
 * for the line to be found. */
#define CONFIG_LINE_LIMIT_MAX 32768

/* parse_duration takes "30", "30s", "5m", "1h" or "250ms". */
static int parse_duration(struct parse *p, const char *v, double *out) {
    char *end;
    errno = 0;
    double n = strtod(v, &end);
    double unit = 1;
    if (strcmp(end, "ms") == 0) {
        unit = 0.001;
    } else if (strcmp(end, "m") == 0) {
        unit = 60;
    } else if (strcmp(end, "h") == 0) {
        unit = 3600;
    } else if (*end != '\0' && strcmp(end, "s") != 0) {
        end = NULL;
    }
    if (end == NULL || end == v || errno != 0 || !(n > 0) || n * unit > CONFIG_DURATION_MAX) {
        return fail(p, "expected a duration such as 30s, 5m or 1h (at most 24h), got \"%s\"", v);
    }
    *out = n * unit;
    return 1;
}

static int parse_string(struct parse *p, const char *v, char **out) {
    char *s = strdup(v);
    if (s == NULL) {
        return fail(p, "out of memory");
    }
    free(*out);
    *out = s;
    return 1;
}

/* A header field name is printable ASCII without ':' (RFC 5322 3.6.8). */
static int parse_header_name(struct parse *p, const char *v, char **out) {
    size_t n = strlen(v);
    if (n == 0 || n > 64) {
        return fail(p, "header name must be 1 to 64 characters");
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (!(isalnum(c) || c == '-')) {
            return fail(p, "header name \"%s\" may hold only letters, digits and '-'", v);
        }
    }
    if (strcasecmp(v, "Received") == 0) {
        return fail(p, "the status header cannot be named Received");
    }
    return parse_string(p, v, out);
}

/* A hostname for the Received "by" clause: letters, digits, '-', '.'. */
static int parse_hostname(struct parse *p, const char *v, char **out) {
    size_t n = strlen(v);
    if (n == 0 || n > 253) {
        return fail(p, "hostname must be 1 to 253 characters");
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (!(isalnum(c) || c == '-' || c == '.')) {
            return fail(p, "hostname \"%s\" is not a domain name", v);
        }
    }
    return parse_string(p, v, out);
}

static int parse_address(struct parse *p, const char *v, struct net_addr *addr,
                         char **text) {
    char why[200];
    if (!net_addr_parse(v, addr, why, sizeof(why))) {
        return fail(p, "%s", why);
    }
    return parse_string(p, v, text);
}

static int parse_kind(struct parse *p, const char *v, enum listener_kind *out) {
    for (int k = KIND_SMTP; k <= KIND_SUBMISSIONS; k++) {
        if (strcasecmp(v, listener_kind_name((enum listener_kind)k)) == 0) {
            *out = (enum listener_kind)k;
            return 1;
        }
    }
    return fail(p, "kind must be smtp, submission or submissions, got \"%s\"", v);
}

static int parse_tls_mode(struct parse *p, const char *v, enum tls_mode *out) {
    for (int m = TLS_MODE_NONE; m <= TLS_MODE_IMPLICIT; m++) {
        if (strcasecmp(v, tls_mode_name((enum tls_mode)m)) == 0) {
            *out = (enum tls_mode)m;
            return 1;
        }
    }
    return fail(p, "tls must be none, starttls or implicit, got \"%s\"", v);
}

static int parse_tls_version(struct parse *p, const char *v, int *out) {
    static const struct {
        const char *name;
        int version;
    } versions[] = {
        {"TLSv1", CONFIG_TLS1_0},   {"TLSv1.0", CONFIG_TLS1_0}, {"TLSv1.1", CONFIG_TLS1_1},
        {"TLSv1.2", CONFIG_TLS1_2}, {"TLSv1.3", CONFIG_TLS1_3},
    };
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        if (strcasecmp(v, versions[i].name) == 0) {
            *out = versions[i].version;
            return 1;
        }
    }
    return fail(p, "expected TLSv1.0, TLSv1.1, TLSv1.2 or TLSv1.3, got \"%s\"", v);
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) {
        s[--n] = '\0';
    }
    return s;
}

/* valid_dns_name accepts letters, digits and '-' in non-empty labels of
 * at most 63 octets, optionally led by a whole "*" label (a wildcard one
 * label deep); at most 253 octets. */
static int valid_dns_name(const char *name) {
    size_t n = strlen(name);
    if (n == 0 || n > 253) {
        return 0;
    }
    const char *label = name;
    if (name[0] == '*') {
        if (name[1] != '.' || name[2] == '\0') {
            return 0;
        }
        label = name + 2;
    }
    for (;;) {
        size_t len = strcspn(label, ".");
        if (len == 0 || len > 63) {
            return 0;
        }
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)label[i];
            if (!(isalnum(c) || c == '-')) {
                return 0;
            }
        }
        if (label[len] == '\0') {
            return 1;
        }
        label += len + 1;
    }
}

/* parse_names splits "a.example, *.b.example" (comma-separated) into
 * lower-case names. */
static int parse_names(struct parse *p, const char *v, char ***out, size_t *out_n) {
    char *copy = strdup(v);
    if (copy == NULL) {
        return fail(p, "out of memory");
    }
    int ok = 1;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); ok && tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        tok = trim(tok);
        if (!valid_dns_name(tok)) {
            ok = fail(p, "\"%s\" is not a DNS name (names are comma-separated; a wildcard "
                         "is \"*.\" and a domain)", tok);
            break;
        }
        char **grown = realloc(*out, (*out_n + 1) * sizeof(char *));
        if (grown == NULL || (grown[*out_n] = strdup(tok)) == NULL) {
            if (grown != NULL) {
                *out = grown;
            }
            ok = fail(p, "out of memory");
            break;
        }
        *out = grown;
        for (char *c = grown[*out_n]; *c; c++) {
            *c = (char)tolower((unsigned char)*c);
        }
        (*out_n)++;
    }
    free(copy);
    if (ok && *out_n == 0) {
        return fail(p, "names needs at least one name");
    }
    return ok;
}

static int parse_log_level(struct parse *p, const char *v, int *out) {
    static const char *const names[] = {"error", "warning", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, names[i]) == 0) {
            *out = i;
            return 1;
        }
    }
    return fail(p, "log_level must be error, warning, info or debug, got \"%s\"", v);
}

static int parse_limit(struct parse *p, const char *k, const char *v, unsigned *out) {
    unsigned long n;
    if (!parse_uint(p, v, 1000000, &n)) {
        return 0;
    }
    if (n == 0) {
        return fail(p, "%s must be at least 1", k);
    }
    *out = (unsigned)n;
    return 1;
}

/* ---- sections ---- */

/* Listener keys arrive before the section is complete, so "unset" is
 * tracked with -1 until config_finish fills in defaults by kind. */
#define UNSET (-1)

static int set_proxy_key(struct parse *p, const char *k, const char *v) {
    struct config *c = p->cfg;
    unsigned long n;
    if (strcmp(k, "hostname") == 0) {
        return parse_hostname(p, v, &c->hostname);
    } else if (strcmp(k, "status_header") == 0) {
        return parse_header_name(p, v, &c->status_header);
    } else if (strcmp(k, "workers") == 0) {
        if (!parse_uint(p, v, CONFIG_WORKERS_MAX, &n)) {
            return 0;
        }
        c->workers = (int)n;
        return 1;
    } else if (strcmp(k, "log_level") == 0) {
        return parse_log_level(p, v, &c->log_level);
    } else if (strcmp(k, "command_line_max") == 0 || strcmp(k, "mail_line_max") == 0 ||
               strcmp(k, "auth_line_max") == 0) {
        /* Lines must fit the input buffer (CONN_IN_MAX) to be found. */
        if (!parse_uint(p, v, CONFIG_LINE_LIMIT_MAX, &n)) {
            return 0;
        }
        if (n < 512) {
            return fail(p, "%s must be at least 512 (RFC 5321 4.5.3.1.4)", k);
        }
        size_t *slot = k[0] == 'c' ? &c->command_line_max
                       : k[0] == 'm' ? &c->mail_line_max : &c->auth_line_max;
        *slot = n;
        c->line_limit_line = p->line;
        return 1;
    } else if (strcmp(k, "max_errors") == 0) {
        if (!parse_uint(p, v, 1000000, &n)) {
            return 0;
        }
        c->max_errors = (unsigned)n;
        return 1;
    } else if (strcmp(k, "pregreet") == 0) {
        for (int m = PREGREET_IGNORE; m <= PREGREET_REJECT; m++) {
            if (strcasecmp(v, pregreet_policy_name((enum pregreet_policy)m)) == 0) {
                c->pregreet = (enum pregreet_policy)m;
                return 1;
            }
        }
        return fail(p, "pregreet must be ignore, log or reject, got \"%s\"", v);
    } else if (strcmp(k, "max_connections") == 0) {
        return parse_limit(p, k, v, &c->max_connections);
    } else if (strcmp(k, "max_per_client") == 0) {
        return parse_limit(p, k, v, &c->max_per_client);
    }
    if (strcmp(k, "pregreet_wait") == 0 && strcmp(v, "0") == 0) {
        c->pregreet_wait = 0; /* reject early talkers, but never wait for them */
        return 1;
    }
    static const struct {
        const char *name;
        size_t offset;
    } durations[] = {
        {"connect_timeout", offsetof(struct config, connect_timeout)},
        {"greeting_timeout", offsetof(struct config, greeting_timeout)},
        {"command_timeout", offsetof(struct config, command_timeout)},
        {"reply_timeout", offsetof(struct config, reply_timeout)},
        {"data_timeout", offsetof(struct config, data_timeout)},
        {"data_end_timeout", offsetof(struct config, data_end_timeout)},
        {"shutdown_grace", offsetof(struct config, shutdown_grace)},
        {"pregreet_wait", offsetof(struct config, pregreet_wait)},
    };
    for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
        if (strcmp(k, durations[i].name) == 0) {
            return parse_duration(p, v, (double *)((char *)c + durations[i].offset));
        }
    }
    return fail(p, "unknown key \"%s\" in [proxy]", k);
}

static int set_backend_key(struct parse *p, const char *k, const char *v) {
    struct backend_config *b = &p->cfg->backend;
    if (strcmp(k, "address") == 0) {
        return parse_address(p, v, &b->addr, &b->address);
    } else if (strcmp(k, "identity") == 0) {
        for (int m = IDENTITY_NONE; m <= IDENTITY_PROXY_V2; m++) {
            if (strcasecmp(v, identity_mode_name((enum identity_mode)m)) == 0) {
                b->identity = (enum identity_mode)m;
                return 1;
            }
        }
        return fail(p, "identity must be none, xclient, proxy-v1 or proxy-v2, got \"%s\"", v);
    }
    return fail(p, "unknown key \"%s\" in [backend]", k);
}

static int set_listener_key(struct parse *p, const char *k, const char *v) {
    struct listener_config *l = p->listener;
    if (strcmp(k, "address") == 0) {
        return parse_address(p, v, &l->addr, &l->address);
    } else if (strcmp(k, "kind") == 0) {
        return parse_kind(p, v, &l->kind);
    } else if (strcmp(k, "tls") == 0) {
        return parse_tls_mode(p, v, &l->tls);
    } else if (strcmp(k, "require_tls") == 0) {
        return parse_bool(p, v, &l->require_tls);
    } else if (strcmp(k, "force_require_tls") == 0) {
        return parse_bool(p, v, &l->force_require_tls);
    } else if (strcmp(k, "auth_requires_tls") == 0) {
        return parse_bool(p, v, &l->auth_requires_tls);
    } else if (strcmp(k, "min_tls_version") == 0) {
        return parse_tls_version(p, v, &l->min_tls_version);
    } else if (strcmp(k, "ciphers") == 0) {
        return parse_string(p, v, &l->ciphers);
    }
    return fail(p, "unknown key \"%s\" in [listener %s]", k, l->name);
}

static int set_tls_key(struct parse *p, const char *k, const char *v) {
    struct config *c = p->cfg;
    if (strcmp(k, "handshake_timeout") == 0) {
        return parse_duration(p, v, &c->handshake_timeout);
    } else if (strcmp(k, "groups") == 0) {
        return parse_string(p, v, &c->groups);
    }
    return fail(p, "unknown key \"%s\" in [tls]", k);
}

static int set_geoip_key(struct parse *p, const char *k, const char *v) {
    struct config *c = p->cfg;
    if (strcmp(k, "country_db") == 0) {
        return parse_string(p, v, &c->geoip_country_db);
    } else if (strcmp(k, "asn_db") == 0) {
        return parse_string(p, v, &c->geoip_asn_db);
    }
    return fail(p, "unknown key \"%s\" in [geoip]", k);
}

static int set_cert_key(struct parse *p, const char *k, const char *v) {
    struct cert_config *cc = p->cert;
    if (strcmp(k, "cert") == 0) {
        return parse_string(p, v, &cc->cert_path);
    } else if (strcmp(k, "key") == 0) {
        return parse_string(p, v, &cc->key_path);
    } else if (strcmp(k, "names") == 0) {
        return parse_names(p, v, &cc->names, &cc->nnames);
    } else if (strcmp(k, "default") == 0) {
        return parse_bool(p, v, &cc->is_default);
    }
    return fail(p, "unknown key \"%s\" in [certificate %s]", k, cc->name);
}

static int valid_name(const char *s) {
    if (*s == '\0' || strlen(s) > 32) {
        return 0;
    }
    for (; *s; s++) {
        if (!(isalnum((unsigned char)*s) || *s == '-' || *s == '_')) {
            return 0;
        }
    }
    return 1;
}

static int open_listener(struct parse *p, const char *name) {
    struct config *c = p->cfg;
    if (!valid_name(name)) {
        return fail(p, "listener name \"%s\" must be 1 to 32 letters, digits, '-' or '_'", name);
    }
    for (size_t i = 0; i < c->nlisteners; i++) {
        if (strcmp(c->listeners[i].name, name) == 0) {
            return fail(p, "listener \"%s\" is defined twice (first at line %d)", name,
                        c->listeners[i].line);
        }
    }
    struct listener_config *ls = realloc(c->listeners, (c->nlisteners + 1) * sizeof(*ls));
    if (ls == NULL) {
        return fail(p, "out of memory");
    }
    c->listeners = ls;
    struct listener_config *l = &ls[c->nlisteners++];
    memset(l, 0, sizeof(*l));
    l->name = strdup(name);
    l->kind = (enum listener_kind)UNSET;
    l->tls = (enum tls_mode)UNSET;
    l->require_tls = UNSET;
    l->auth_requires_tls = UNSET;
    l->min_tls_version = UNSET;
    l->line = p->line;
    p->listener = l;
    return l->name != NULL ? 1 : fail(p, "out of memory");
}

static int open_certificate(struct parse *p, const char *name) {
    struct config *c = p->cfg;
    if (!valid_name(name)) {
        return fail(p, "certificate name \"%s\" must be 1 to 32 letters, digits, '-' or '_'",
                    name);
    }
    for (size_t i = 0; i < c->ncerts; i++) {
        if (strcmp(c->certs[i].name, name) == 0) {
            return fail(p, "certificate \"%s\" is defined twice (first at line %d)", name,
                        c->certs[i].line);
        }
    }
    struct cert_config *cs = realloc(c->certs, (c->ncerts + 1) * sizeof(*cs));
    if (cs == NULL) {
        return fail(p, "out of memory");
    }
    c->certs = cs;
    struct cert_config *cc = &cs[c->ncerts++];
    memset(cc, 0, sizeof(*cc));
    cc->name = strdup(name);
    cc->line = p->line;
    p->cert = cc;
    return cc->name != NULL ? 1 : fail(p, "out of memory");
}

/* section_argument returns the NAME of "[kind NAME]", or NULL. */
static char *section_argument(char *name, const char *kind) {
    size_t n = strlen(kind);
    if (strncmp(name, kind, n) != 0 || (name[n] != ' ' && name[n] != '\t')) {
        return NULL;
    }
    name += n;
    while (*name == ' ' || *name == '\t') {
        name++;
    }
    return name;
}

static int open_section(struct parse *p, char *name) {
    p->listener = NULL;
    p->cert = NULL;
    char *arg;
    if (strcmp(name, "proxy") == 0) {
        p->section = SECTION_PROXY;
        return 1;
    }
    if (strcmp(name, "backend") == 0) {
        if (p->seen_backend) {
            return fail(p, "[backend] is defined twice");
        }
        p->seen_backend = 1;
        p->section = SECTION_BACKEND;
        return 1;
    }
    if (strcmp(name, "tls") == 0) {
        p->section = SECTION_TLS;
        return 1;
    }
    if (strcmp(name, "geoip") == 0) {
        if (p->cfg->geoip_line != 0) {
            return fail(p, "[geoip] is defined twice");
        }
        p->cfg->geoip_line = p->line;
        p->section = SECTION_GEOIP;
        return 1;
    }
    if ((arg = section_argument(name, "listener")) != NULL) {
        p->section = SECTION_LISTENER;
        return open_listener(p, arg);
    }
    if ((arg = section_argument(name, "certificate")) != NULL) {
        p->section = SECTION_CERTIFICATE;
        return open_certificate(p, arg);
    }
    return fail(p, "unknown section [%s] (expected [proxy], [backend], [tls], [geoip], "
                   "[listener NAME] or [certificate NAME])", name);
}

/* parse_line handles one line of the file (modified in place). */
static int parse_line(struct parse *p, char *line) {
    char *s = trim(line);
    if (*s == '\0' || *s == '#' || *s == ';') {
        return 1;
    }
    if (*s == '[') {
        char *close = strchr(s, ']');
        if (close == NULL || *trim(close + 1) != '\0') {
            return fail(p, "a section header looks like [name]");
        }
        *close = '\0';
        return open_section(p, trim(s + 1));
    }
    char *eq = strchr(s, '=');
    if (eq == NULL) {
        return fail(p, "expected \"key = value\"");
    }
    *eq = '\0';
    char *key = trim(s);
    char *value = trim(eq + 1);
    if (*value == '\0') {
        return fail(p, "\"%s\" has no value", key);
    }
    switch (p->section) {
    case SECTION_PROXY:
        return set_proxy_key(p, key, value);
    case SECTION_BACKEND:
        return set_backend_key(p, key, value);
    case SECTION_LISTENER:
        return set_listener_key(p, key, value);
    case SECTION_TLS:
        return set_tls_key(p, key, value);
    case SECTION_CERTIFICATE:
        return set_cert_key(p, key, value);
    case SECTION_GEOIP:
        return set_geoip_key(p, key, value);
    case SECTION_NONE:
        break;
    }
    return fail(p, "\"%s\" is outside any section", key);
}

/* finish_listener fills in defaults by kind and checks the combination. */
static int finish_listener(struct parse *p, struct listener_config *l) {
    p->line = l->line;
    if (l->address == NULL) {
        return fail(p, "[listener %s] needs an address", l->name);
    }
    if (l->addr.ss.ss_family == AF_UNIX) {
        return fail(p, "[listener %s]: listeners take host:port, not a unix path", l->name);
    }
    if ((int)l->kind == UNSET) {
        return fail(p, "[listener %s] needs a kind (smtp, submission or submissions)", l->name);
    }
    if ((int)l->tls == UNSET) {
        l->tls = l->kind == KIND_SUBMISSIONS ? TLS_MODE_IMPLICIT
                 : p->cfg->ncerts > 0       ? TLS_MODE_STARTTLS
                                            : TLS_MODE_NONE;
    }
    if (l->kind == KIND_SUBMISSIONS && l->tls != TLS_MODE_IMPLICIT) {
        return fail(p, "[listener %s]: kind submissions means tls = implicit (RFC 8314)", l->name);
    }
    if (l->tls != TLS_MODE_NONE && p->cfg->ncerts == 0) {
        return fail(p, "[listener %s]: tls = %s needs a [certificate NAME] section", l->name,
                    tls_mode_name(l->tls));
    }
    if (l->require_tls == UNSET) {
        l->require_tls = l->kind != KIND_SMTP && l->tls != TLS_MODE_NONE;
    }
    if (l->require_tls && l->tls == TLS_MODE_NONE) {
        return fail(p, "[listener %s]: require_tls needs tls = starttls or implicit", l->name);
    }
    /* RFC 3207 4: a publicly referenced MX must not require TLS; senders
     * that cannot do it would bounce the mail. */
    if (l->require_tls && l->kind == KIND_SMTP && l->tls == TLS_MODE_STARTTLS &&
        !l->force_require_tls) {
        return fail(p, "[listener %s]: require_tls on a kind smtp listener refuses mail from "
                       "senders without TLS (RFC 3207 4); set force_require_tls = yes if "
                       "that is really meant", l->name);
    }
    if (l->auth_requires_tls == UNSET) {
        l->auth_requires_tls = l->tls != TLS_MODE_NONE;
    }
    if (l->min_tls_version == UNSET) {
        /* Port 25 is opportunistic: any TLS beats the plaintext a failed
         * handshake would fall back to (RFC 7435). */
        l->min_tls_version = l->kind == KIND_SMTP ? CONFIG_TLS1_0 : CONFIG_TLS1_2;
    }
    if (l->ciphers != NULL && l->tls == TLS_MODE_NONE) {
        return fail(p, "[listener %s]: ciphers needs tls = starttls or implicit", l->name);
    }
    return 1;
}

static int finish_certificates(struct parse *p) {
    struct config *c = p->cfg;
    int defaults = 0;
    for (size_t i = 0; i < c->ncerts; i++) {
        struct cert_config *cc = &c->certs[i];
        p->line = cc->line;
        if (cc->cert_path == NULL || cc->key_path == NULL) {
            return fail(p, "[certificate %s] needs cert and key", cc->name);
        }
        if (cc->is_default && defaults++) {
            return fail(p, "[certificate %s]: only one certificate can be the default",
                        cc->name);
        }
    }
    if (c->ncerts > 0 && defaults == 0) {
        c->certs[0].is_default = 1;
    }
    return 1;
}

static int finish(struct parse *p) {
    struct config *c = p->cfg;
    if (!p->seen_backend || c->backend.address == NULL) {
        return fail(p, "a [backend] section with an address is required");
    }
    if (c->nlisteners == 0) {
        return fail(p, "at least one [listener NAME] section is required");
    }
    if (c->mail_line_max < c->command_line_max) {
        p->line = c->line_limit_line;
        return fail(p, "mail_line_max (%zu) must be at least command_line_max (%zu)",
                    c->mail_line_max, c->command_line_max);
    }
    if (!finish_certificates(p)) {
        return 0;
    }
    for (size_t i = 0; i < c->nlisteners; i++) {
        if (!finish_listener(p, &c->listeners[i])) {
            return 0;
        }
    }
    return 1;
}

static void set_defaults(struct config *c) {
    c->hostname = strdup("localhost");
    c->status_header = strdup("X-TLS-Status");
    c->workers = 0;
    c->log_level = LOG_LEVEL_INFO;
    c->command_line_max = SMTP_CMD_LINE_MAX_DEFAULT;
    c->mail_line_max = SMTP_MAIL_LINE_MAX_DEFAULT;
    c->auth_line_max = SMTP_AUTH_LINE_MAX_DEFAULT;
    c->max_errors = 20; /* Postfix's smtpd_hard_error_limit */
    c->pregreet = PREGREET_LOG;
    c->pregreet_wait = 1;
    c->max_connections = 10000;
    c->max_per_client = 50;
    c->connect_timeout = 30;
    c->greeting_timeout = 300;
    c->command_timeout = 300;
    c->reply_timeout = 300;
    c->data_timeout = 180;
    c->data_end_timeout = 600;
    c->shutdown_grace = 30;
    c->handshake_timeout = 30;
}

struct config *config_parse(const char *path, const char *text, char *err, size_t errlen) {
    struct config *c = calloc(1, sizeof(*c));
    char *copy = strdup(text);
    if (c == NULL || copy == NULL) {
        free(c);
        free(copy);
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    set_defaults(c);
    c->path = strdup(path);
    struct parse p = {.path = path, .err = err, .errlen = errlen, .cfg = c};
    int ok = c->hostname != NULL && c->status_header != NULL && c->path != NULL;
    char *s = copy;
    /* strtok_r would skip empty lines and so miscount; walk by hand. */
    while (ok && s != NULL) {
        char *nl = strchr(s, '\n');
        if (nl != NULL) {
            *nl = '\0';
        }
        p.line++;
        ok = parse_line(&p, s);
        s = nl ? nl + 1 : NULL;
    }
    free(copy);
    if (ok) {
        ok = finish(&p);
    }
    if (!ok) {
        config_free(c);
        return NULL;
    }
    return c;
}

struct config *config_load(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 8192, len = 0;
    char *text = malloc(cap);
    while (text != NULL) {
        size_t n = fread(text + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0 || len > (1u << 20)) {
            break;
        }
        if (cap - len - 1 == 0) {
            char *t = realloc(text, cap * 2);
            if (t == NULL) {
                free(text);
                text = NULL;
                break;
            }
            text = t;
            cap *= 2;
        }
    }
    int bad = ferror(f) || text == NULL || len > (1u << 20);
    fclose(f);
    if (bad) {
        free(text);
        snprintf(err, errlen, "%s: cannot read (or larger than 1 MiB)", path);
        return NULL;
    }
    text[len] = '\0';
    if (memchr(text, '\0', len) != NULL) {
        free(text);
        snprintf(err, errlen, "%s: holds a NUL byte; not a configuration file", path);
        return NULL;
    }
    struct config *c = config_parse(path, text, err, errlen);
    free(text);
    return c;
}

void config_free(struct config *c) {
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->nlisteners; i++) {
        free(c->listeners[i].name);
        free(c->listeners[i].address);
        free(c->listeners[i].ciphers);
    }
    for (size_t i = 0; i < c->ncerts; i++) {
        struct cert_config *cc = &c->certs[i];
        for (size_t j = 0; j < cc->nnames; j++) {
            free(cc->names[j]);
        }
        free(cc->names);
        free(cc->name);
        free(cc->cert_path);
        free(cc->key_path);
    }
    free(c->certs);
    free(c->groups);
    free(c->geoip_country_db);
    free(c->geoip_asn_db);
    free(c->listeners);
    free(c->backend.address);
    free(c->hostname);
    free(c->status_header);
    free(c->path);
    free(c);
}

