/*
 * config.c - parsing and checking the INI configuration file.
 *
 * The reader: lines, sections, listeners and certificates, and the checks
 * that need a whole file (defaults by kind, combinations). What each key
 * means lives in one table, config_keys.c. Unknown sections and keys are
 * errors, not warnings: a typo in a mail relay's config must not silently
 * fall back to a default.
 */
#include "config/config_int.h"

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
#include <unistd.h>

#include "core/log.h"
#include "protocol/smtp_cmd.h"

void config_verror(char *err, size_t errlen, const char *path, int line, const char *fmt,
                   va_list ap) {
    int n = snprintf(err, errlen, "%s:%d: ", path, line);
    if (n >= 0 && (size_t)n < errlen) {
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    }
}

int config_fail(struct parse *p, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (p->env_var != NULL) {
        int n = snprintf(p->err, p->errlen, "%s: environment %s: ", p->path, p->env_var);
        if (n >= 0 && (size_t)n < p->errlen) {
            vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
        }
    } else {
        config_verror(p->err, p->errlen, p->path, p->line, fmt, ap);
    }
    va_end(ap);
    return 0;
}

/* ---- sections ---- */

/* Listener keys arrive before the section is complete, so "unset" is
 * tracked with -1 until config_finish fills in defaults by kind. */
#define UNSET (-1)

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
        return config_fail(p, "listener name \"%s\" must be 1 to 32 letters, digits, '-' or '_'", name);
    }
    for (size_t i = 0; i < c->nlisteners; i++) {
        if (strcmp(c->listeners[i].name, name) == 0) {
            return config_fail(p, "listener \"%s\" is defined twice (first at line %d)", name,
                        c->listeners[i].line);
        }
    }
    struct listener_config *ls = realloc(c->listeners, (c->nlisteners + 1) * sizeof(*ls));
    if (ls == NULL) {
        return config_fail(p, "out of memory");
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
    return l->name != NULL ? 1 : config_fail(p, "out of memory");
}

static int open_certificate(struct parse *p, const char *name) {
    struct config *c = p->cfg;
    if (!valid_name(name)) {
        return config_fail(p, "certificate name \"%s\" must be 1 to 32 letters, digits, '-' or '_'",
                    name);
    }
    for (size_t i = 0; i < c->ncerts; i++) {
        if (strcmp(c->certs[i].name, name) == 0) {
            return config_fail(p, "certificate \"%s\" is defined twice (first at line %d)", name,
                        c->certs[i].line);
        }
    }
    struct cert_config *cs = realloc(c->certs, (c->ncerts + 1) * sizeof(*cs));
    if (cs == NULL) {
        return config_fail(p, "out of memory");
    }
    c->certs = cs;
    struct cert_config *cc = &cs[c->ncerts++];
    memset(cc, 0, sizeof(*cc));
    cc->name = strdup(name);
    cc->line = p->line;
    p->cert = cc;
    return cc->name != NULL ? 1 : config_fail(p, "out of memory");
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
            return config_fail(p, "[backend] is defined twice");
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
            return config_fail(p, "[geoip] is defined twice");
        }
        p->cfg->geoip_line = p->line;
        p->section = SECTION_GEOIP;
        return 1;
    }
    if (strcmp(name, "dns") == 0) {
        p->section = SECTION_DNS;
        return 1;
    }
    if (strcmp(name, "metrics") == 0) {
        p->section = SECTION_METRICS;
        return 1;
    }
    if (strcmp(name, "starttls_memory") == 0) {
        p->section = SECTION_STARTTLS_MEMORY;
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
    return config_fail(p, "unknown section [%s] (expected [proxy], [backend], [tls], [geoip], [metrics], "
                   "[dns], [starttls_memory], [listener NAME] or [certificate NAME])", name);
}

/* parse_line handles one line of the file (modified in place). */
static int parse_line(struct parse *p, char *line) {
    char *s = config_trim(line);
    if (*s == '\0' || *s == '#' || *s == ';') {
        return 1;
    }
    if (*s == '[') {
        char *close = strchr(s, ']');
        if (close == NULL || *config_trim(close + 1) != '\0') {
            return config_fail(p, "a section header looks like [name]");
        }
        *close = '\0';
        return open_section(p, config_trim(s + 1));
    }
    char *eq = strchr(s, '=');
    if (eq == NULL) {
        return config_fail(p, "expected \"key = value\"");
    }
    *eq = '\0';
    char *key = config_trim(s);
    char *value = config_trim(eq + 1);
    if (*value == '\0') {
        return config_fail(p, "\"%s\" has no value", key);
    }
    if (p->section == SECTION_NONE) {
        return config_fail(p, "\"%s\" is outside any section", key);
    }
    return config_set_key(p, key, value);
}

/* finish_listener fills in defaults by kind and checks the combination. */
static int finish_listener(struct parse *p, struct listener_config *l) {
    p->line = l->line;
    if (l->address == NULL) {
        return config_fail(p, "[listener %s] needs an address", l->name);
    }
    if (l->addr.ss.ss_family == AF_UNIX) {
        return config_fail(p, "[listener %s]: listeners take host:port, not a unix path", l->name);
    }
    if ((int)l->kind == UNSET) {
        return config_fail(p, "[listener %s] needs a kind (smtp, submission or submissions)", l->name);
    }
    if ((int)l->tls == UNSET) {
        l->tls = l->kind == KIND_SUBMISSIONS ? TLS_MODE_IMPLICIT
                 : p->cfg->ncerts > 0       ? TLS_MODE_STARTTLS
                                            : TLS_MODE_NONE;
    }
    if (l->kind == KIND_SUBMISSIONS && l->tls != TLS_MODE_IMPLICIT) {
        return config_fail(p, "[listener %s]: kind submissions means tls = implicit (RFC 8314)", l->name);
    }
    if (l->tls != TLS_MODE_NONE && p->cfg->ncerts == 0) {
        return config_fail(p, "[listener %s]: tls = %s needs a [certificate NAME] section", l->name,
                    tls_mode_name(l->tls));
    }
    if (l->require_tls == UNSET) {
        l->require_tls = l->kind != KIND_SMTP && l->tls != TLS_MODE_NONE;
    }
    if (l->require_tls && l->tls == TLS_MODE_NONE) {
        return config_fail(p, "[listener %s]: require_tls needs tls = starttls or implicit", l->name);
    }
    /* RFC 3207 4: a publicly referenced MX must not require TLS; senders
     * that cannot do it would bounce the mail. */
    if (l->require_tls && l->kind == KIND_SMTP && l->tls == TLS_MODE_STARTTLS &&
        !l->force_require_tls) {
        return config_fail(p, "[listener %s]: require_tls on a kind smtp listener refuses mail from "
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
    if (l->proxy_protocol != PROXY_PROTOCOL_NO && l->proxy_trusted.n == 0) {
        return config_fail(p, "[listener %s]: proxy_protocol needs proxy_trusted (the load "
                              "balancers' addresses): anyone else could claim any address",
                           l->name);
    }
    if (l->proxy_protocol == PROXY_PROTOCOL_NO && l->proxy_trusted.n > 0) {
        return config_fail(p, "[listener %s]: proxy_trusted without proxy_protocol", l->name);
    }
    if (l->ciphers != NULL && l->tls == TLS_MODE_NONE) {
        return config_fail(p, "[listener %s]: ciphers needs tls = starttls or implicit", l->name);
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
            return config_fail(p, "[certificate %s] needs cert and key", cc->name);
        }
        if (cc->next_key_path != NULL && cc->next_cert_path != NULL) {
            return config_fail(p, "[certificate %s]: next_key and next_cert name the same "
                                  "thing (the next public key); give one", cc->name);
        }
        if (cc->is_default && defaults++) {
            return config_fail(p, "[certificate %s]: only one certificate can be the default",
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
    if (!p->seen_backend || c->backend.ntargets == 0) {
        return config_fail(p, "a [backend] section with an address is required");
    }
    if (c->backend.max_tries > c->backend.ntargets) {
        c->backend.max_tries = (unsigned)c->backend.ntargets; /* each target once at most */
    }
    if (c->nlisteners == 0) {
        return config_fail(p, "at least one [listener NAME] section is required");
    }
    p->line = 0;
    if (c->log_target == LOG_TARGET_FILE && c->log_file == NULL) {
        return config_fail(p, "[proxy] log_target = file needs log_file");
    }
    if (c->group != NULL && c->user == NULL) {
        return config_fail(p, "[proxy] group needs user (the user to run as)");
    }
    if (c->mail_line_max < c->command_line_max) {
        p->line = c->line_limit_line;
        return config_fail(p, "mail_line_max (%zu) must be at least command_line_max (%zu)",
                    c->mail_line_max, c->command_line_max);
    }
    if (c->memory.redis != NULL) {
        struct net_addr a;
        char why[200];
        p->line = 0;
        if (strncmp(c->memory.redis, "unix:/", 6) != 0 &&
            !net_addr_parse(c->memory.redis, &a, why, sizeof(why))) {
            return config_fail(p, "[starttls_memory] redis = %s: expected a numeric host:port, "
                                  "[IPv6]:port or unix:/path (%s)", c->memory.redis, why);
        }
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

/* ---- environment overrides ----
 *
 * SMTP_TLS_PROXY__SECTION__KEY=value sets a key of [section];
 * SMTP_TLS_PROXY__LISTENER__NAME__KEY and ..._CERTIFICATE__NAME__KEY one
 * of [listener NAME] or [certificate NAME] (made when the file has no such
 * section). Parts are matched without regard to case, '_' standing for
 * '-' in names. They are applied after the file, so they win, and -t lists
 * them (config->env_notes). An unknown section or key is an error, as in
 * the file: a typo must not be silently ignored. */

#define ENV_PREFIX "SMTP_TLS_PROXY__"

/* same_name compares a name from the file with one from the
 * environment. */
static int same_name(const char *file, const char *env, size_t n) {
    if (strlen(file) != n) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char a = (char)tolower((unsigned char)file[i]), b = (char)tolower((unsigned char)env[i]);
        if (a != b && !((a == '-' || a == '_') && b == '_')) {
            return 0;
        }
    }
    return 1;
}

static int env_named_section(struct parse *p, int listener, const char *name, size_t n) {
    struct config *c = p->cfg;
    size_t count = listener ? c->nlisteners : c->ncerts;
    for (size_t i = 0; i < count; i++) {
        if (same_name(listener ? c->listeners[i].name : c->certs[i].name, name, n)) {
            if (listener) {
                p->listener = &c->listeners[i];
            } else {
                p->cert = &c->certs[i];
            }
            return 1;
        }
    }
    char lower[64];
    if (n == 0 || n >= sizeof(lower)) {
        return config_fail(p, "expected a section name of 1 to 32 characters");
    }
    for (size_t i = 0; i < n; i++) {
        lower[i] = (char)tolower((unsigned char)name[i]);
    }
    lower[n] = '\0';
    return listener ? open_listener(p, lower) : open_certificate(p, lower);
}

static int add_env_note(struct parse *p, const char *var, const char *section,
                        const char *key, const char *value) {
    struct config *c = p->cfg;
    char **grown = realloc(c->env_notes, (c->nenv_notes + 1) * sizeof(*grown));
    if (grown == NULL) {
        return config_fail(p, "out of memory");
    }
    c->env_notes = grown;
    size_t len = strlen(var) + strlen(section) + strlen(key) + strlen(value) + 64;
    char *note = malloc(len);
    if (note == NULL) {
        return config_fail(p, "out of memory");
    }
    snprintf(note, len, "[%s] %s = %s (from the environment: %s)", section, key, value, var);
    c->env_notes[c->nenv_notes++] = note;
    return 1;
}

/* apply_env applies one "NAME=value" entry when it is ours. */
static int apply_env(struct parse *p, const char *entry) {
    if (strncmp(entry, ENV_PREFIX, strlen(ENV_PREFIX)) != 0) {
        return 1;
    }
    const char *eq = strchr(entry, '=');
    if (eq == NULL) {
        return 1;
    }
    char var[256];
    if ((size_t)(eq - entry) >= sizeof(var)) {
        snprintf(p->err, p->errlen, "%s: environment %.40s...: name too long", p->path, entry);
        return 0;
    }
    memcpy(var, entry, (size_t)(eq - entry));
    var[eq - entry] = '\0';
    p->env_var = var;
    p->listener = NULL;
    p->cert = NULL;
    const char *sec = var + strlen(ENV_PREFIX);
    const char *sep = strstr(sec, "__");
    if (sep == NULL || sep == sec) {
        return config_fail(p, "expected " ENV_PREFIX "SECTION__KEY or " ENV_PREFIX
                              "SECTION__NAME__KEY");
    }
    char section[32];
    size_t slen = (size_t)(sep - sec);
    if (slen >= sizeof(section)) {
        return config_fail(p, "unknown section");
    }
    for (size_t i = 0; i < slen; i++) {
        section[i] = (char)tolower((unsigned char)sec[i]);
    }
    section[slen] = '\0';
    const char *rest = sep + 2;
    int named = strcmp(section, "listener") == 0 || strcmp(section, "certificate") == 0;
    const char *label = section;
    char named_label[96];
    if (named) {
        const char *sep2 = strstr(rest, "__");
        if (sep2 == NULL) {
            return config_fail(p, "expected " ENV_PREFIX "%s__NAME__KEY",
                               strcmp(section, "listener") == 0 ? "LISTENER" : "CERTIFICATE");
        }
        p->section = strcmp(section, "listener") == 0 ? SECTION_LISTENER : SECTION_CERTIFICATE;
        if (!env_named_section(p, p->section == SECTION_LISTENER, rest, (size_t)(sep2 - rest))) {
            return 0;
        }
        snprintf(named_label, sizeof(named_label), "%s %s", section,
                 p->listener ? p->listener->name : p->cert->name);
        label = named_label;
        rest = sep2 + 2;
    } else {
        static const struct {
            const char *name;
            enum section_type type;
        } plain[] = {{"proxy", SECTION_PROXY},     {"backend", SECTION_BACKEND},
                     {"tls", SECTION_TLS},         {"geoip", SECTION_GEOIP},
                     {"metrics", SECTION_METRICS}, {"dns", SECTION_DNS},
                     {"starttls_memory", SECTION_STARTTLS_MEMORY}};
        p->section = SECTION_NONE;
        for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
            if (strcmp(plain[i].name, section) == 0) {
                p->section = plain[i].type;
            }
        }
        if (p->section == SECTION_NONE) {
            return config_fail(p, "unknown section [%s]", section);
        }
        if (p->section == SECTION_BACKEND) {
            p->seen_backend = 1; /* it may come from the environment alone */
        }
    }
    char key[64];
    size_t klen = strlen(rest);
    if (klen == 0 || klen >= sizeof(key)) {
        return config_fail(p, "no key");
    }
    for (size_t i = 0; i <= klen; i++) {
        key[i] = (char)tolower((unsigned char)rest[i]);
    }
    const char *value = eq + 1;
    if (*value == '\0') {
        return config_fail(p, "\"%s\" has no value", key);
    }
    if (!config_set_key(p, key, value)) {
        return 0;
    }
    int ok = add_env_note(p, var, label, key, value);
    p->env_var = NULL;
    return ok;
}

static int apply_environment(struct parse *p, char *const *env) {
    for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
        if (!apply_env(p, env[i])) {
            return 0;
        }
    }
    p->env_var = NULL;
    return 1;
}

struct config *config_parse(const char *path, const char *text, char *err, size_t errlen) {
    return config_parse_env(path, text, NULL, err, errlen);
}

struct config *config_parse_env(const char *path, const char *text, char *const *env,
                                char *err, size_t errlen) {
    struct config *c = calloc(1, sizeof(*c));
    char *copy = strdup(text);
    if (c == NULL || copy == NULL) {
        free(c);
        free(copy);
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    c->path = strdup(path);
    struct parse p = {.path = path, .err = err, .errlen = errlen, .cfg = c};
    int ok = c->path != NULL && config_set_defaults(&p);
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
        ok = apply_environment(&p, env);
    }
    if (ok) {
        ok = finish(&p);
    }
    if (!ok) {
        config_free(c);
        return NULL;
    }
    return c;
}

char *config_slurp(const char *path, size_t max, size_t *len, int *why) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        *why = errno;
        return NULL;
    }
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap);
    *why = 0;
    while (buf != NULL) {
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0 || n > max) {
            break;
        }
        if (cap - n - 1 == 0) {
            char *grown = realloc(buf, cap * 2);
            if (grown == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = grown;
            cap *= 2;
        }
    }
    if (buf == NULL) {
        *why = ENOMEM;
    } else if (ferror(f)) {
        *why = errno ? errno : EIO;
    } else if (n > max) {
        *why = EFBIG;
    }
    fclose(f);
    if (*why != 0) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

char *config_read_file(const char *path, size_t max, char *err, size_t errlen) {
    size_t len;
    int why;
    char *text = config_slurp(path, max, &len, &why);
    if (text == NULL && why != EFBIG && why != ENOMEM && why != EIO) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(why));
        return NULL;
    }
    if (text == NULL) {
        snprintf(err, errlen, "%s: cannot read (or larger than %zu KiB)", path, max / 1024);
        return NULL;
    }
    if (memchr(text, '\0', len) != NULL) {
        free(text);
        snprintf(err, errlen, "%s: holds a NUL byte; not a text file", path);
        return NULL;
    }
    return text;
}

struct config *config_load(const char *path, char *err, size_t errlen) {
    char *text = config_read_file(path, 1u << 20, err, errlen);
    if (text == NULL) {
        return NULL;
    }
    struct config *c = config_parse_env(path, text, environ, err, errlen);
    free(text);
    return c;
}

int listener_tls_optional(const struct listener_config *l) {
    return l->kind == KIND_SMTP && l->tls == TLS_MODE_STARTTLS && !l->require_tls;
}

void config_free(struct config *c) {
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->nlisteners; i++) {
        free(c->listeners[i].name);
        free(c->listeners[i].address);
        free(c->listeners[i].ciphers);
        free(c->listeners[i].proxy_trusted_text);
        cidr_list_free(&c->listeners[i].proxy_trusted);
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
        free(cc->ocsp_path);
        free(cc->next_key_path);
        free(cc->next_cert_path);
    }
    for (size_t i = 0; i < c->nenv_notes; i++) {
        free(c->env_notes[i]);
    }
    free(c->env_notes);
    free(c->log_file);
    free(c->user);
    free(c->group);
    free(c->certs);
    free(c->groups);
    free(c->geoip_country_db);
    free(c->geoip_asn_db);
    free(c->metrics_address);
    free(c->dns_servers);
    free(c->state_dir);
    free(c->control_socket);
    free(c->memory.never_offer_text);
    free(c->memory.always_offer_text);
    free(c->memory.redis);
    free(c->memory.redis_password);
    free(c->memory.redis_prefix);
    cidr_list_free(&c->memory.never_offer);
    cidr_list_free(&c->memory.always_offer);
    free(c->listeners);
    free(c->backend.address);
    config_free_backends(&c->backend);
    free(c->hostname);
    free(c->status_header);
    free(c->path);
    free(c);
}

