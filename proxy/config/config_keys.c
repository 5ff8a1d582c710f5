/*
 * config_keys.c - every configuration key, in one declarative table:
 * section, name, how its value is parsed, where it goes, its default and
 * a one-line description. The reader (config.c) looks keys up here, the
 * defaults are set by parsing each row's default through the same code,
 * and the table can print itself (smtp-tls-proxy --keys), so parsing,
 * defaults and documentation cannot drift apart.
 */
#include "config/config_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/log.h"
#include "protocol/smtp_cmd.h"

/* Durations up to a day: anything longer is a typo. */
#define CONFIG_DURATION_MAX 86400
#define CONFIG_WORKERS_MAX 256
/* Line limits must leave room in the input buffer (CONN_IN_MAX, 64 KiB)
 * for the line to be found. */
#define CONFIG_LINE_LIMIT_MAX 32768
#define CONFIG_COUNT_MAX 1000000
/* How long a STARTTLS failure may be remembered: longer than any
 * sender's retry schedule (RFC 5321 4.5.4.1 suggests 4-5 days). */
#define CONFIG_MEMORY_TTL_MAX (30 * 86400)
/* A file of CIDRs (never_offer = /path). */
#define CONFIG_CIDR_FILE_MAX (4u << 20)
/* How early an expiring certificate is warned about, at most. */
#define CONFIG_EXPIRY_WARNING_MAX (365 * 86400)
/* RFC 8446 4.6.1: a ticket lives at most seven days. */
#define CONFIG_TICKET_ROTATION_MAX (7 * 86400)

/* ---- names of the enumerated values ---- */

static const char *const kind_names[] = {"smtp", "submission", "submissions", NULL};
static const char *const tls_mode_names[] = {"none", "starttls", "implicit", NULL};
static const char *const identity_names[] = {"none", "xclient", "proxy-v1", "proxy-v2", NULL};
static const char *const pregreet_names[] = {"ignore", "log", "reject", NULL};
static const char *const proxy_protocol_names[] = {"no", "v1", "v2", "any", NULL};
static const char *const balance_names[] = {"failover", "round-robin", NULL};
static const char *const log_level_names[] = {"error", "warning", "info", "debug", NULL};
static const char *const log_format_names[] = {"text", "json", NULL};
static const char *const log_target_names[] = {"stderr", "syslog", "file", NULL};
/* In the order of enum log_facility (config.h). */
static const char *const log_facility_names[] = {"mail",   "daemon", "local0", "local1",
                                                 "local2", "local3", "local4", "local5",
                                                 "local6", "local7", NULL};

const char *listener_kind_name(enum listener_kind kind) {
    return kind_names[kind];
}

const char *tls_mode_name(enum tls_mode mode) {
    return tls_mode_names[mode];
}

const char *identity_mode_name(enum identity_mode mode) {
    return identity_names[mode];
}

const char *pregreet_policy_name(enum pregreet_policy policy) {
    return pregreet_names[policy];
}

const char *proxy_protocol_name(enum proxy_protocol mode) {
    return proxy_protocol_names[mode];
}

const char *backend_balance_name(enum backend_balance balance) {
    return balance_names[balance];
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
    default:
        return "unknown";
    }
}

/* ---- value parsers ---- */

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
    return config_fail(p, "expected yes or no, got \"%s\"", v);
}

static int parse_uint(struct parse *p, const char *v, unsigned long max,
                      unsigned long *out) {
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (!isdigit((unsigned char)v[0]) || *end != '\0' || errno != 0 || n > max) {
        return config_fail(p, "expected a whole number from 0 to %lu, got \"%s\"", max, v);
    }
    *out = n;
    return 1;
}

/* parse_duration takes "30", "30s", "5m", "1h", "2d" or "250ms", at most
 * |max| seconds. */
static int parse_duration(struct parse *p, const char *v, double max, double *out) {
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
    } else if (strcmp(end, "d") == 0) {
        unit = 86400;
    } else if (*end != '\0' && strcmp(end, "s") != 0) {
        end = NULL;
    }
    if (end == NULL || end == v || errno != 0 || !(n > 0) || n * unit > max) {
        return config_fail(p, "expected a duration such as 30s, 5m or 1h (at most %gh), got \"%s\"",
                           max / 3600, v);
    }
    *out = n * unit;
    return 1;
}

static int parse_string(struct parse *p, const char *v, char **out) {
    char *s = strdup(v);
    if (s == NULL) {
        return config_fail(p, "out of memory");
    }
    free(*out);
    *out = s;
    return 1;
}

/* A header field name is printable ASCII without ':' (RFC 5322 3.6.8). */
static int parse_header_name(struct parse *p, const char *v, char **out) {
    size_t n = strlen(v);
    if (n == 0 || n > 64) {
        return config_fail(p, "header name must be 1 to 64 characters");
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (!(isalnum(c) || c == '-')) {
            return config_fail(p, "header name \"%s\" may hold only letters, digits and '-'", v);
        }
    }
    if (strcasecmp(v, "Received") == 0) {
        return config_fail(p, "the status header cannot be named Received");
    }
    return parse_string(p, v, out);
}

/* A hostname for the Received "by" clause: letters, digits, '-', '.'. */
static int parse_hostname(struct parse *p, const char *v, char **out) {
    size_t n = strlen(v);
    if (n == 0 || n > 253) {
        return config_fail(p, "hostname must be 1 to 253 characters");
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (!(isalnum(c) || c == '-' || c == '.')) {
            return config_fail(p, "hostname \"%s\" is not a domain name", v);
        }
    }
    return parse_string(p, v, out);
}

static int parse_address(struct parse *p, const char *v, struct net_addr *addr,
                         char **text) {
    char why[200];
    if (!net_addr_parse(v, addr, why, sizeof(why))) {
        return config_fail(p, "%s", why);
    }
    return parse_string(p, v, text);
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
    return config_fail(p, "expected TLSv1.0, TLSv1.1, TLSv1.2 or TLSv1.3, got \"%s\"", v);
}

char *config_trim(char *s) {
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
        return config_fail(p, "out of memory");
    }
    int ok = 1;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); ok && tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        tok = config_trim(tok);
        if (!valid_dns_name(tok)) {
            ok = config_fail(p, "\"%s\" is not a DNS name (names are comma-separated; a wildcard "
                         "is \"*.\" and a domain)", tok);
            break;
        }
        char **grown = realloc(*out, (*out_n + 1) * sizeof(char *));
        if (grown == NULL || (grown[*out_n] = strdup(tok)) == NULL) {
            if (grown != NULL) {
                *out = grown;
            }
            ok = config_fail(p, "out of memory");
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
        return config_fail(p, "names needs at least one name");
    }
    return ok;
}

/* dns_server_item checks one "host[:port]" of [dns] servers: an IPv4
 * address, "[IPv6]" or a bare IPv6 address, each optionally with ":port"
 * (not the bare IPv6), and appends it to |out| as c-ares reads it
 * ("a.b.c.d[:port]" or "[v6][:port]"). Numeric only: the resolver
 * cannot look up its own servers. */
static int dns_server_item(struct parse *p, const char *item, char *out, size_t outlen) {
    char host[INET6_ADDRSTRLEN + 1];
    const char *port = NULL;
    unsigned char bin[16];
    int v6;
    if (item[0] == '[') {
        const char *close = strchr(item, ']');
        if (close == NULL || (size_t)(close - item - 1) >= sizeof(host) ||
            (close[1] != '\0' && close[1] != ':')) {
            return config_fail(p, "DNS server \"%s\": expected [IPv6] or [IPv6]:port", item);
        }
        snprintf(host, sizeof(host), "%.*s", (int)(close - item - 1), item + 1);
        port = close[1] == ':' ? close + 2 : NULL;
        v6 = 1;
    } else if (strchr(item, ':') != NULL && strchr(item, ':') != strrchr(item, ':')) {
        snprintf(host, sizeof(host), "%s", item); /* a bare IPv6 address */
        v6 = 1;
    } else {
        const char *colon = strchr(item, ':');
        size_t n = colon ? (size_t)(colon - item) : strlen(item);
        if (n >= sizeof(host)) {
            return config_fail(p, "DNS server \"%s\" is not a numeric address", item);
        }
        snprintf(host, sizeof(host), "%.*s", (int)n, item);
        port = colon ? colon + 1 : NULL;
        v6 = 0;
    }
    if (inet_pton(v6 ? AF_INET6 : AF_INET, host, bin) != 1) {
        return config_fail(p, "DNS server \"%s\" is not a numeric IPv4 or IPv6 address "
                              "(host[:port], [IPv6]:port)", item);
    }
    unsigned long n = 0;
    if (port != NULL) {
        char *end;
        errno = 0;
        n = strtoul(port, &end, 10);
        if (!isdigit((unsigned char)port[0]) || *end != '\0' || errno != 0 || n == 0 ||
            n > 65535) {
            return config_fail(p, "DNS server \"%s\": the port must be 1 to 65535", item);
        }
    }
    size_t used = strlen(out);
    char port_text[8] = "";
    if (port != NULL) {
        snprintf(port_text, sizeof(port_text), ":%lu", n);
    }
    int w = snprintf(out + used, outlen - used, "%s%s%s%s%s", used ? "," : "", v6 ? "[" : "",
                     host, v6 ? "]" : "", port_text);
    if (w < 0 || (size_t)w >= outlen - used) {
        return config_fail(p, "too many DNS servers");
    }
    return 1;
}

/* parse_dns_servers reads "host[:port], ..." (at least one). */
static int parse_dns_servers(struct parse *p, const char *v, char **out) {
    char *copy = strdup(v);
    char list[1024] = "";
    if (copy == NULL) {
        return config_fail(p, "out of memory");
    }
    int ok = 1;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); ok && tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        ok = dns_server_item(p, config_trim(tok), list, sizeof(list));
    }
    free(copy);
    if (ok && list[0] == '\0') {
        return config_fail(p, "servers needs at least one address");
    }
    return ok && parse_string(p, list, out);
}

/* parse_cidrs reads a list of address prefixes ("192.0.2.0/24,
 * 2001:db8::/32", commas or blanks) or, when |v| starts with '/', the
 * file of them at that path (one or more a line, '#' comments). */
static int parse_cidrs(struct parse *p, const char *k, const char *v, struct cidr_list *out,
                       char **text) {
    char why[256];
    char *file = NULL;
    if (v[0] == '/') {
        struct stat st;
        if (stat(v, &st) == 0 && !S_ISREG(st.st_mode)) {
            return config_fail(p, "%s: %s is not a regular file", k, v);
        }
        file = config_read_file(v, CONFIG_CIDR_FILE_MAX, why, sizeof(why));
        if (file == NULL) {
            return config_fail(p, "%s: %s", k, why);
        }
    }
    struct cidr_list list = {0};
    int ok = cidr_list_add_text(&list, file ? file : v, why, sizeof(why));
    free(file);
    if (!ok) {
        cidr_list_free(&list);
        return config_fail(p, "%s: %s%s%s", k, why, v[0] == '/' ? " in " : "",
                           v[0] == '/' ? v : "");
    }
    cidr_list_free(out);
    *out = list;
    return parse_string(p, v, text);
}

/* ---- [backend] address: a list of targets ---- */

/* system_resolver looks |host| up with getaddrinfo (TCP, IPv4 and IPv6,
 * in the order the system prefers). */
static size_t system_resolver(const char *host, struct net_addr *out, size_t max, char *err,
                              size_t errlen) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "%s", rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return 0;
    }
    size_t n = 0;
    for (const struct addrinfo *a = res; a != NULL && n < max; a = a->ai_next) {
        if ((a->ai_family == AF_INET || a->ai_family == AF_INET6) &&
            a->ai_addrlen <= sizeof(out[n].ss)) {
            memset(&out[n], 0, sizeof(out[n]));
            memcpy(&out[n].ss, a->ai_addr, a->ai_addrlen);
            out[n].len = a->ai_addrlen;
            n++;
        }
    }
    freeaddrinfo(res);
    if (n == 0) {
        snprintf(err, errlen, "no IPv4 or IPv6 address");
    }
    return n;
}

static config_resolver_fn *resolver = system_resolver;

size_t config_resolve_nothing(const char *host, struct net_addr *out, size_t max, char *err,
                              size_t errlen) {
    (void)host;
    (void)err;
    (void)errlen;
    if (max == 0) {
        return 0;
    }
    memset(out, 0, sizeof(*out));
    struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    out->len = sizeof(*sin);
    return 1;
}

void config_set_resolver(config_resolver_fn *fn) {
    resolver = fn != NULL ? fn : system_resolver;
}

/* backend_name_port splits "name:port" where name is a DNS name (not a
 * numeric address, which net_addr_parse takes). Returns 1 with |host|
 * and |port| set. */
static int backend_name_port(const char *item, char *host, size_t hostlen, unsigned *port) {
    const char *colon = strrchr(item, ':');
    if (colon == NULL || (size_t)(colon - item) >= hostlen || item[0] == '*') {
        return 0;
    }
    snprintf(host, hostlen, "%.*s", (int)(colon - item), item);
    if (!valid_dns_name(host) || strspn(host, "0123456789.") == strlen(host)) {
        return 0; /* an IPv4 look-alike: net_addr_parse says what is wrong */
    }
    char *end;
    errno = 0;
    unsigned long n = strtoul(colon + 1, &end, 10);
    if (!isdigit((unsigned char)colon[1]) || *end != '\0' || errno != 0 || n == 0 || n > 65535) {
        return 0;
    }
    *port = (unsigned)n;
    return 1;
}

static void set_port(struct net_addr *a, unsigned port) {
    if (a->ss.ss_family == AF_INET) {
        ((struct sockaddr_in *)&a->ss)->sin_port = htons((uint16_t)port);
    } else if (a->ss.ss_family == AF_INET6) {
        ((struct sockaddr_in6 *)&a->ss)->sin6_port = htons((uint16_t)port);
    }
}

/* add_target appends a target named |text| to |t| (|*n| so far);
 * a text listed twice is an error. */
static int add_target(struct parse *p, struct backend_target **t, size_t *n, const char *text,
                      const struct net_addr *addr) {
    for (size_t i = 0; i < *n; i++) {
        if (strcmp((*t)[i].text, text) == 0) {
            return config_fail(p, "backend %s is listed twice", text);
        }
    }
    if (*n >= BACKEND_TARGETS_MAX) {
        return config_fail(p, "more than %d backends (a name counts once per address)",
                           BACKEND_TARGETS_MAX);
    }
    struct backend_target *grown = realloc(*t, (*n + 1) * sizeof(**t));
    if (grown == NULL) {
        return config_fail(p, "out of memory");
    }
    *t = grown;
    if ((grown[*n].text = strdup(text)) == NULL) {
        return config_fail(p, "out of memory");
    }
    grown[*n].addr = *addr;
    (*n)++;
    return 1;
}

/* backend_item adds one item of the list: a numeric address or unix
 * path as it is, a DNS name as one target per address it resolves to,
 * named "name:port@address". */
static int backend_item(struct parse *p, const char *item, struct backend_target **t,
                        size_t *n) {
    char why[200], host[256];
    struct net_addr addr;
    unsigned port = 0;
    if (net_addr_parse(item, &addr, why, sizeof(why))) {
        return add_target(p, t, n, item, &addr);
    }
    if (item[0] == '/' || item[0] == '[' || !backend_name_port(item, host, sizeof(host), &port)) {
        return config_fail(p, "%s", why);
    }
    struct net_addr found[BACKEND_TARGETS_MAX];
    size_t nfound = resolver(host, found, BACKEND_TARGETS_MAX, why, sizeof(why));
    if (nfound == 0) {
        return config_fail(p, "backend %s: cannot resolve %s: %s", item, host, why);
    }
    for (size_t i = 0; i < nfound; i++) {
        char ip[64], text[sizeof(host) + 80];
        set_port(&found[i], port);
        net_addr_format(&found[i], ip, sizeof(ip), NULL);
        snprintf(text, sizeof(text), "%s@%s", item, ip);
        int seen = 0;
        for (size_t j = 0; j < *n; j++) {
            seen |= strcmp((*t)[j].text, text) == 0;
        }
        if (seen && i > 0) {
            continue; /* the resolver gave one address twice */
        }
        if (!add_target(p, t, n, text, &found[i])) {
            return 0;
        }
    }
    return 1;
}

static void free_targets(struct backend_target *t, size_t n) {
    for (size_t i = 0; t != NULL && i < n; i++) {
        free(t[i].text);
    }
    free(t);
}

/* parse_backends reads "item, item, ..." (at least one) into |b|,
 * replacing what an earlier address line gave. */
static int parse_backends(struct parse *p, const char *v, struct backend_config *b) {
    char *copy = strdup(v);
    if (copy == NULL) {
        return config_fail(p, "out of memory");
    }
    struct backend_target *t = NULL;
    size_t n = 0;
    int ok = 1;
    /* By hand: strtok_r would pass over an empty item ("a,,b"). */
    for (char *tok = copy; ok && tok != NULL;) {
        char *comma = strchr(tok, ',');
        if (comma != NULL) {
            *comma = '\0';
        }
        char *item = config_trim(tok);
        ok = *item != '\0' ? backend_item(p, item, &t, &n)
                           : config_fail(p, "an empty item in the backend list");
        tok = comma != NULL ? comma + 1 : NULL;
    }
    free(copy);
    if (!ok || !parse_string(p, v, &b->address)) {
        free_targets(t, n);
        return 0;
    }
    free_targets(b->targets, b->ntargets);
    b->targets = t;
    b->ntargets = n;
    return 1;
}

void config_free_backends(struct backend_config *b) {
    free_targets(b->targets, b->ntargets);
    b->targets = NULL;
    b->ntargets = 0;
}

/* parse_choice stores the index of |v| among |names| (NULL-terminated). */
static int parse_choice(struct parse *p, const char *k, const char *v,
                        const char *const *names, int *out) {
    char list[128] = "";
    for (int i = 0; names[i] != NULL; i++) {
        if (strcasecmp(v, names[i]) == 0) {
            *out = i;
            return 1;
        }
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
                 i == 0 ? "" : names[i + 1] == NULL ? " or " : ", ", names[i]);
    }
    return config_fail(p, "%s must be %s, got \"%s\"", k, list, v);
}

/* ---- the table ---- */

enum key_type {
    KEY_STRING = 0,  /* char * */
    KEY_HOSTNAME,    /* char *, a domain name */
    KEY_HEADER_NAME, /* char *, a header field name */
    KEY_ADDRESS,     /* struct net_addr at offset, its text (char *) at offset2 */
    KEY_BOOL,        /* int */
    KEY_COUNT,       /* unsigned, 0 .. max */
    KEY_LIMIT,       /* unsigned, 1 .. max */
    KEY_WORKERS,     /* int, 0 .. max */
    KEY_LINE_LIMIT,  /* size_t, 512 .. max */
    KEY_DURATION,    /* double seconds, > 0 */
    KEY_WAIT,        /* double seconds, > 0 or "0" */
    KEY_CHOICE,      /* an enum (int-sized), one of names */
    KEY_TLS_VERSION, /* int, CONFIG_TLS1_x */
    KEY_NAMES,       /* char ** at offset, size_t count at offset2 */
    KEY_DNS_SERVERS, /* char *, "host[:port],..." normalised */
    KEY_CIDRS,       /* struct cidr_list at offset, its text (char *) at offset2 */
    KEY_BACKENDS,    /* struct backend_config at offset: address and targets */
};

struct config_key {
    enum section_type section;
    const char *name;
    enum key_type type;
    size_t offset, offset2; /* into the section's struct */
    unsigned long max;        /* counts; KEY_DURATION: seconds (0: a day) */
    const char *const *names; /* KEY_CHOICE */
    const char *def;          /* default, parsed like a value; NULL: none or by kind */
    const char *doc;
};

#define PROXY(field) offsetof(struct config, field)
#define LISTENER(field) offsetof(struct listener_config, field)
#define CERT(field) offsetof(struct cert_config, field)

static const struct config_key keys[] = {
    {SECTION_PROXY, "hostname", KEY_HOSTNAME, PROXY(hostname), 0, 0, NULL, "localhost",
     "name in the Received \"by\" clause and in the proxy's own replies"},
    {SECTION_PROXY, "status_header", KEY_HEADER_NAME, PROXY(status_header), 0, 0, NULL,
     "X-TLS-Status", "the structured status header; client copies are removed"},
    {SECTION_PROXY, "workers", KEY_WORKERS, PROXY(workers), 0, CONFIG_WORKERS_MAX, NULL, "0",
     "worker threads; 0: one per core"},
    {SECTION_PROXY, "log_level", KEY_CHOICE, PROXY(log_level), 0, 0, log_level_names, "info",
     "error, warning, info or debug"},
    {SECTION_PROXY, "log_format", KEY_CHOICE, PROXY(log_format), 0, 0, log_format_names, "text",
     "text (key=value) or json (one object per line, the same keys)"},
    {SECTION_PROXY, "command_line_max", KEY_LINE_LIMIT, PROXY(command_line_max), 0,
     CONFIG_LINE_LIMIT_MAX, NULL, "512",
     "longest command line (CRLF included) but MAIL and RCPT"},
    {SECTION_PROXY, "mail_line_max", KEY_LINE_LIMIT, PROXY(mail_line_max), 0,
     CONFIG_LINE_LIMIT_MAX, NULL, "2048",
     "MAIL and RCPT at most, with the backend's extension allowances"},
    {SECTION_PROXY, "auth_line_max", KEY_LINE_LIMIT, PROXY(auth_line_max), 0,
     CONFIG_LINE_LIMIT_MAX, NULL, "12288", "SASL lines after 334, and 334 challenges (RFC 4954 4)"},
    {SECTION_PROXY, "max_errors", KEY_COUNT, PROXY(max_errors), 0, CONFIG_COUNT_MAX, NULL, "20",
     "the proxy's own refusals before 421 4.7.0; 0: no limit"},
    {SECTION_PROXY, "pregreet", KEY_CHOICE, PROXY(pregreet), 0, 0, pregreet_names, "log",
     "talk before the greeting or before a reply: ignore, log or reject"},
    {SECTION_PROXY, "pregreet_wait", KEY_WAIT, PROXY(pregreet_wait), 0, 0, NULL, "1s",
     "with pregreet = reject: silence before the backend is contacted"},
    {SECTION_PROXY, "max_connections", KEY_LIMIT, PROXY(max_connections), 0, CONFIG_COUNT_MAX,
     NULL, "10000", "concurrent client connections, all listeners"},
    {SECTION_PROXY, "max_per_client", KEY_LIMIT, PROXY(max_per_client), 0, CONFIG_COUNT_MAX,
     NULL, "50", "concurrent connections from one client address"},
    {SECTION_PROXY, "proxy_protocol_timeout", KEY_DURATION, PROXY(proxy_protocol_timeout), 0, 0,
     NULL, "5s", "listeners with proxy_protocol: the header must arrive within this"},
    {SECTION_PROXY, "connect_timeout", KEY_DURATION, PROXY(connect_timeout), 0, 0, NULL, "30s",
     "connecting to the backend"},
    {SECTION_PROXY, "greeting_timeout", KEY_DURATION, PROXY(greeting_timeout), 0, 0, NULL,
     "5m", "the backend's greeting (RFC 5321 4.5.3.2.1)"},
    {SECTION_PROXY, "command_timeout", KEY_DURATION, PROXY(command_timeout), 0, 0, NULL, "5m",
     "a client idle between commands"},
    {SECTION_PROXY, "reply_timeout", KEY_DURATION, PROXY(reply_timeout), 0, 0, NULL, "5m",
     "the backend's reply to a command"},
    {SECTION_PROXY, "data_timeout", KEY_DURATION, PROXY(data_timeout), 0, 0, NULL, "3m",
     "between data blocks (RFC 5321 4.5.3.2.5)"},
    {SECTION_PROXY, "data_end_timeout", KEY_DURATION, PROXY(data_end_timeout), 0, 0, NULL,
     "10m", "the reply to the final dot (RFC 5321 4.5.3.2.6)"},
    {SECTION_PROXY, "shutdown_grace", KEY_DURATION, PROXY(shutdown_grace), 0, 0, NULL, "30s",
     "after SIGTERM, how long a transaction may finish"},
    {SECTION_PROXY, "state_dir", KEY_STRING, PROXY(state_dir), 0, 0, NULL, NULL,
     "directory for state kept across restarts (the STARTTLS memory); none"},
    {SECTION_PROXY, "control_socket", KEY_STRING, PROXY(control_socket), 0, 0, NULL, NULL,
     "unix socket (mode 0600) for smtp-tls-proxy memory ...; none"},
    {SECTION_PROXY, "user", KEY_STRING, PROXY(user), 0, 0, NULL, NULL,
     "started as root: bind, load keys, then run as this user; none"},
    {SECTION_PROXY, "group", KEY_STRING, PROXY(group), 0, 0, NULL, NULL,
     "with user: the group to run as; the user's own group"},
    {SECTION_PROXY, "allow_root", KEY_BOOL, PROXY(allow_root), 0, 0, NULL, "no",
     "keep running as root without user (not recommended)"},
    {SECTION_PROXY, "log_target", KEY_CHOICE, PROXY(log_target), 0, 0, log_target_names,
     "stderr", "stderr, syslog (with log_facility) or file (log_file; SIGUSR1 reopens it)"},
    {SECTION_PROXY, "log_facility", KEY_CHOICE, PROXY(log_facility), 0, 0, log_facility_names,
     "mail", "with log_target = syslog: mail, daemon or local0 .. local7"},
    {SECTION_PROXY, "log_file", KEY_STRING, PROXY(log_file), 0, 0, NULL, NULL,
     "with log_target = file: the file appended to; none"},
    {SECTION_BACKEND, "address", KEY_BACKENDS, PROXY(backend), 0, 0, NULL, NULL,
     "the legacy MTA(s): host:port, [IPv6]:port, /unix/path or name:port, comma-separated"},
    {SECTION_BACKEND, "balance", KEY_CHOICE, PROXY(backend.balance), 0, 0, balance_names,
     "failover", "failover (the first that is up) or round-robin (the up ones in turn)"},
    {SECTION_BACKEND, "down_time", KEY_DURATION, PROXY(backend.down_time), 0, 0, NULL, "30s",
     "a backend that failed before its greeting is skipped this long"},
    {SECTION_BACKEND, "max_tries", KEY_LIMIT, PROXY(backend.max_tries), 0, BACKEND_TARGETS_MAX,
     NULL, "3", "backends tried for one client before 421; at most the number listed"},
    {SECTION_BACKEND, "identity", KEY_CHOICE, PROXY(backend.identity), 0, 0, identity_names,
     "none", "none, xclient, proxy-v1 or proxy-v2"},
    {SECTION_LISTENER, "address", KEY_ADDRESS, LISTENER(addr), LISTENER(address), 0, NULL,
     NULL, "host:port or [IPv6]:port to listen on"},
    {SECTION_LISTENER, "kind", KEY_CHOICE, LISTENER(kind), 0, 0, kind_names, NULL,
     "smtp (25), submission (587) or submissions (465)"},
    {SECTION_LISTENER, "tls", KEY_CHOICE, LISTENER(tls), 0, 0, tls_mode_names, NULL,
     "none, starttls or implicit; by kind and certificates"},
    {SECTION_LISTENER, "require_tls", KEY_BOOL, LISTENER(require_tls), 0, 0, NULL, NULL,
     "530 before TLS; on for submission kinds"},
    {SECTION_LISTENER, "force_require_tls", KEY_BOOL, LISTENER(force_require_tls), 0, 0, NULL,
     NULL, "allow require_tls on kind smtp (RFC 3207 4 says no)"},
    {SECTION_LISTENER, "auth_requires_tls", KEY_BOOL, LISTENER(auth_requires_tls), 0, 0, NULL,
     NULL, "AUTH hidden and refused before TLS; on with TLS"},
    {SECTION_LISTENER, "min_tls_version", KEY_TLS_VERSION, LISTENER(min_tls_version), 0, 0,
     NULL, NULL, "TLSv1.0 on kind smtp, TLSv1.2 on submission kinds"},
    {SECTION_LISTENER, "ciphers", KEY_STRING, LISTENER(ciphers), 0, 0, NULL, NULL,
     "TLS 1.2 and older cipher list; by kind"},
    {SECTION_LISTENER, "proxy_protocol", KEY_CHOICE, LISTENER(proxy_protocol), 0, 0,
     proxy_protocol_names, NULL, "no, v1, v2 or any: a load balancer's PROXY header first"},
    {SECTION_LISTENER, "proxy_trusted", KEY_CIDRS, LISTENER(proxy_trusted),
     LISTENER(proxy_trusted_text), 0, NULL, NULL,
     "CIDRs (or /path of a file of them) that may send it; others are closed"},
    {SECTION_TLS, "handshake_timeout", KEY_DURATION, PROXY(handshake_timeout), 0, 0, NULL,
     "30s", "a deadline for the whole TLS handshake"},
    {SECTION_TLS, "groups", KEY_STRING, PROXY(groups), 0, 0, NULL, NULL,
     "key-exchange groups; the library's default"},
    {SECTION_TLS, "watch", KEY_BOOL, PROXY(tls_watch), 0, 0, NULL, "no",
     "reload when a certificate, key or OCSP file changes (inotify)"},
    {SECTION_TLS, "watch_delay", KEY_DURATION, PROXY(tls_watch_delay), 0, 0, NULL, "2s",
     "with watch: quiet time after the last change before the reload"},
    {SECTION_TLS, "expiry_warning", KEY_DURATION, PROXY(tls_expiry_warning), 0,
     CONFIG_EXPIRY_WARNING_MAX, NULL, "30d",
     "at load and reload, warn of certificates expiring within this"},
    {SECTION_TLS, "session_tickets", KEY_BOOL, PROXY(tls_session_tickets), 0, 0, NULL, "yes",
     "resume TLS sessions by ticket; keys kept across reloads"},
    {SECTION_TLS, "ticket_rotation", KEY_DURATION, PROXY(tls_ticket_rotation), 0,
     CONFIG_TICKET_ROTATION_MAX, NULL, "12h",
     "a new ticket key this often; tickets live this long (at most 7d)"},
    {SECTION_CERTIFICATE, "cert", KEY_STRING, CERT(cert_path), 0, 0, NULL, NULL,
     "PEM chain, leaf first"},
    {SECTION_CERTIFICATE, "key", KEY_STRING, CERT(key_path), 0, 0, NULL, NULL,
     "its private key (ECDSA P-256/P-384 or RSA)"},
    {SECTION_CERTIFICATE, "ocsp", KEY_STRING, CERT(ocsp_path), 0, 0, NULL, NULL,
     "DER OCSP response to staple, reloaded with it; none"},
    {SECTION_CERTIFICATE, "next_key", KEY_STRING, CERT(next_key_path), 0, 0, NULL, NULL,
     "the key that replaces key at the next rollover (tlsa prints both); none"},
    {SECTION_CERTIFICATE, "next_cert", KEY_STRING, CERT(next_cert_path), 0, 0, NULL, NULL,
     "or the certificate that replaces cert (its public key counts); none"},
    {SECTION_CERTIFICATE, "names", KEY_NAMES, CERT(names), CERT(nnames), 0, NULL, NULL,
     "SNI names, comma-separated; the certificate's DNS names"},
    {SECTION_CERTIFICATE, "default", KEY_BOOL, CERT(is_default), 0, 0, NULL, NULL,
     "the certificate for clients without a matching SNI"},
    {SECTION_GEOIP, "country_db", KEY_STRING, PROXY(geoip_country_db), 0, 0, NULL, NULL,
     "MaxMind country database; none"},
    {SECTION_GEOIP, "asn_db", KEY_STRING, PROXY(geoip_asn_db), 0, 0, NULL, NULL,
     "MaxMind ASN database; none"},
    {SECTION_METRICS, "address", KEY_ADDRESS, PROXY(metrics_addr), PROXY(metrics_address), 0,
     NULL, NULL, "host:port serving /metrics and /healthz over HTTP; none"},
    {SECTION_DNS, "reverse_lookup", KEY_BOOL, PROXY(dns_reverse_lookup), 0, 0, NULL, "yes",
     "the client's forward-confirmed name for Received, XCLIENT NAME and logs"},
    {SECTION_DNS, "timeout", KEY_DURATION, PROXY(dns_timeout), 0, 0, NULL, "5s",
     "the whole lookup; XCLIENT waits for it at most this long"},
    {SECTION_DNS, "servers", KEY_DNS_SERVERS, PROXY(dns_servers), 0, 0, NULL, NULL,
     "numeric host[:port], comma-separated; the system's resolv.conf"},
    {SECTION_STARTTLS_MEMORY, "enabled", KEY_BOOL, PROXY(memory.enabled), 0, 0, NULL, "yes",
     "after a failed STARTTLS handshake, withhold STARTTLS from that sender (kind smtp)"},
    {SECTION_STARTTLS_MEMORY, "ttl", KEY_DURATION, PROXY(memory.ttl), 0,
     CONFIG_MEMORY_TTL_MAX, NULL, "24h", "how long a failure is remembered (at most 30d)"},
    {SECTION_STARTTLS_MEMORY, "ipv4_prefix", KEY_LIMIT, PROXY(memory.ipv4_prefix), 0, 32, NULL,
     "32", "IPv4 clients are remembered by this prefix length"},
    {SECTION_STARTTLS_MEMORY, "ipv6_prefix", KEY_LIMIT, PROXY(memory.ipv6_prefix), 0, 128,
     NULL, "64", "IPv6 clients are remembered by this prefix length"},
    {SECTION_STARTTLS_MEMORY, "max_entries", KEY_LIMIT, PROXY(memory.max_entries), 0,
     CONFIG_COUNT_MAX, NULL, "100000", "entries at most; the least recently used go first"},
    {SECTION_STARTTLS_MEMORY, "never_offer", KEY_CIDRS, PROXY(memory.never_offer),
     PROXY(memory.never_offer_text), 0, NULL, NULL,
     "CIDRs (or /path of a file of them) never offered STARTTLS on kind smtp; none"},
    {SECTION_STARTTLS_MEMORY, "always_offer", KEY_CIDRS, PROXY(memory.always_offer),
     PROXY(memory.always_offer_text), 0, NULL, NULL,
     "CIDRs (or /path of a file of them) never remembered; none"},
    {SECTION_STARTTLS_MEMORY, "release_without_mail", KEY_BOOL,
     PROXY(memory.release_without_mail), 0, 0, NULL, "no",
     "forget a remembered sender that, not offered STARTTLS, leaves without MAIL"},
    {SECTION_STARTTLS_MEMORY, "redis", KEY_STRING, PROXY(memory.redis), 0, 0, NULL, NULL,
     "host:port or unix:/path of a Redis shared by several proxies; none"},
    {SECTION_STARTTLS_MEMORY, "redis_password", KEY_STRING, PROXY(memory.redis_password), 0, 0,
     NULL, NULL, "Redis AUTH password; none"},
    {SECTION_STARTTLS_MEMORY, "redis_prefix", KEY_STRING, PROXY(memory.redis_prefix), 0, 0, NULL,
     "smtp-tls-proxy:starttls:", "prefix of the Redis keys"},
    {SECTION_STARTTLS_MEMORY, "redis_timeout", KEY_DURATION, PROXY(memory.redis_timeout), 0, 0,
     NULL, "50ms", "a session waits at most this for Redis; later is not remembered"},
    {SECTION_STARTTLS_MEMORY, "save_interval", KEY_DURATION, PROXY(memory.save_interval), 0, 0,
     NULL, "5m", "how often the memory is written to state_dir (and at shutdown)"},
};

static const char *const section_names[] = {
    [SECTION_NONE] = "", [SECTION_PROXY] = "proxy", [SECTION_BACKEND] = "backend",
    [SECTION_LISTENER] = "listener NAME", [SECTION_TLS] = "tls",
    [SECTION_CERTIFICATE] = "certificate NAME", [SECTION_GEOIP] = "geoip",
    [SECTION_METRICS] = "metrics",
    [SECTION_DNS] = "dns",
    [SECTION_STARTTLS_MEMORY] = "starttls_memory",
};

/* section_base is where the current section's values go. */
static char *section_base(struct parse *p, enum section_type section) {
    switch (section) {
    case SECTION_LISTENER:
        return (char *)p->listener;
    case SECTION_CERTIFICATE:
        return (char *)p->cert;
    default:
        return (char *)p->cfg;
    }
}

/* set_value parses |v| for |k| into its place. */
static int set_value(struct parse *p, const struct config_key *k, const char *v) {
    char *base = section_base(p, k->section);
    void *at = base + k->offset;
    unsigned long n = 0;
    switch (k->type) {
    case KEY_STRING:
        return parse_string(p, v, (char **)at);
    case KEY_HOSTNAME:
        return parse_hostname(p, v, (char **)at);
    case KEY_HEADER_NAME:
        return parse_header_name(p, v, (char **)at);
    case KEY_ADDRESS:
        return parse_address(p, v, (struct net_addr *)at, (char **)(base + k->offset2));
    case KEY_BOOL:
        return parse_bool(p, v, (int *)at);
    case KEY_COUNT:
    case KEY_LIMIT:
        if (!parse_uint(p, v, k->max, &n)) {
            return 0;
        }
        if (k->type == KEY_LIMIT && n == 0) {
            return config_fail(p, "%s must be at least 1", k->name);
        }
        *(unsigned *)at = (unsigned)n;
        return 1;
    case KEY_WORKERS:
        if (!parse_uint(p, v, k->max, &n)) {
            return 0;
        }
        *(int *)at = (int)n;
        return 1;
    case KEY_LINE_LIMIT:
        if (!parse_uint(p, v, k->max, &n)) {
            return 0;
        }
        if (n < 512) {
            return config_fail(p, "%s must be at least 512 (RFC 5321 4.5.3.1.4)", k->name);
        }
        *(size_t *)at = n;
        p->cfg->line_limit_line = p->line;
        return 1;
    case KEY_WAIT:
        if (strcmp(v, "0") == 0 || strcmp(v, "0s") == 0 || strcmp(v, "0ms") == 0 ||
            strcmp(v, "0m") == 0 || strcmp(v, "0h") == 0) {
            *(double *)at = 0; /* do not wait at all */
            return 1;
        }
        return parse_duration(p, v, k->max ? (double)k->max : CONFIG_DURATION_MAX,
                              (double *)at);
    case KEY_DURATION:
        return parse_duration(p, v, k->max ? (double)k->max : CONFIG_DURATION_MAX,
                              (double *)at);
    case KEY_CHOICE:
        return parse_choice(p, k->name, v, k->names, (int *)at);
    case KEY_TLS_VERSION:
        return parse_tls_version(p, v, (int *)at);
    case KEY_NAMES:
        return parse_names(p, v, (char ***)at, (size_t *)(base + k->offset2));
    case KEY_DNS_SERVERS:
        return parse_dns_servers(p, v, (char **)at);
    case KEY_CIDRS:
        return parse_cidrs(p, k->name, v, (struct cidr_list *)at, (char **)(base + k->offset2));
    case KEY_BACKENDS:
        return parse_backends(p, v, (struct backend_config *)at);
    }
    return config_fail(p, "internal error: key %s has no parser", k->name);
}

int config_set_key(struct parse *p, const char *name, const char *v) {
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (keys[i].section == p->section && strcmp(keys[i].name, name) == 0) {
            return set_value(p, &keys[i], v);
        }
    }
    if (p->section == SECTION_LISTENER) {
        return config_fail(p, "unknown key \"%s\" in [listener %s]", name, p->listener->name);
    }
    if (p->section == SECTION_CERTIFICATE) {
        return config_fail(p, "unknown key \"%s\" in [certificate %s]", name, p->cert->name);
    }
    return config_fail(p, "unknown key \"%s\" in [%s]", name, section_names[p->section]);
}

int config_set_defaults(struct parse *p) {
    enum section_type saved = p->section;
    int ok = 1;
    for (size_t i = 0; ok && i < sizeof(keys) / sizeof(keys[0]); i++) {
        const struct config_key *k = &keys[i];
        if (k->def != NULL && k->section != SECTION_LISTENER &&
            k->section != SECTION_CERTIFICATE) {
            p->section = k->section;
            ok = set_value(p, k, k->def);
        }
    }
    p->section = saved;
    p->cfg->line_limit_line = 0;
    return ok;
}

void config_print_keys(FILE *out) {
    enum section_type last = SECTION_NONE;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const struct config_key *k = &keys[i];
        if (k->section != last) {
            fprintf(out, "%s[%s]\n", last == SECTION_NONE ? "" : "\n", section_names[k->section]);
            last = k->section;
        }
        fprintf(out, "%-18s %-14s %s\n", k->name, k->def ? k->def : "-", k->doc);
    }
}
