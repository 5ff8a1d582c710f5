/*
 * config_int.h - what the configuration reader (config.c) and its key
 * table (config_keys.c) share; nothing else includes it.
 */
#ifndef SMTP_TLS_PROXY_CONFIG_INT_H
#define SMTP_TLS_PROXY_CONFIG_INT_H

#include <stdio.h>

#include "config/config.h"

enum section_type {
    SECTION_NONE = 0,
    SECTION_PROXY,
    SECTION_BACKEND,
    SECTION_LISTENER,
    SECTION_TLS,
    SECTION_CERTIFICATE,
    SECTION_GEOIP,
    SECTION_METRICS,
    SECTION_DNS,
    SECTION_STARTTLS_MEMORY,
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
    const char *env_var; /* set while an environment override is applied */
};

/* config_fail writes "path:line: reason" and returns 0. */
int config_fail(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* config_trim strips blanks (and a CR) at both ends, in place. */
char *config_trim(char *s);

/* config_set_key sets key |name| of the current section from text |v|;
 * an unknown key is an error naming the section. */
int config_set_key(struct parse *p, const char *name, const char *v);

/* config_free_backends frees the targets of |b| (config_free). */
void config_free_backends(struct backend_config *b);

/* config_set_defaults gives every [proxy], [backend] and [tls] key with
 * a default its value, parsed from the table's text. */
int config_set_defaults(struct parse *p);

#endif
