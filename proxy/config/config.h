/*
 * config.h - the configuration file: INI sections of "key = value".
 *
 *   [proxy]             hostname, status_header, workers, log_level,
 *                       log_format, limits and timeouts
 *   [backend]           address (a list: host:port, [v6]:port, unix paths,
 *                       DNS names with a port), balance, down_time,
 *                       max_tries, identity (none, xclient, proxy-v1, proxy-v2)
 *   [listener NAME]     address, kind, tls, require_tls, min_tls_version,
 *                       ciphers, auth_requires_tls (one per listener)
 *   [tls]               handshake_timeout, groups
 *   [certificate NAME]  cert, key, names, default (any number)
 *   [geoip]             country_db, asn_db
 *   [dns]               reverse_lookup, timeout, servers
 *   [starttls_memory]   enabled, ttl, ipv4_prefix, ipv6_prefix, max_entries,
 *                       never_offer, always_offer, save_interval
 *
 * Parsing is separate from everything that acts on the result, so `-t`
 * and reload check a file without touching the running proxy. Every
 * error names the file, the line and the reason.
 */
#ifndef SMTP_TLS_PROXY_CONFIG_H
#define SMTP_TLS_PROXY_CONFIG_H

#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/socket.h>

#include "core/addr.h"
#include "core/backend_pool.h"
#include "core/cidr.h"

enum listener_kind {
    KIND_SMTP = 0,        /* port 25: relay, STARTTLS offered, never required */
    KIND_SUBMISSION = 1,  /* port 587: STARTTLS, TLS required */
    KIND_SUBMISSIONS = 2, /* port 465: TLS from the first byte */
};

/* Inbound PROXY protocol from a load balancer (per listener). */
enum proxy_protocol {
    PROXY_PROTOCOL_NO = 0,
    PROXY_PROTOCOL_V1 = 1,
    PROXY_PROTOCOL_V2 = 2,
    PROXY_PROTOCOL_ANY = 3, /* v1 or v2, whichever arrives */
};

/* [proxy] log_target. */
enum log_target {
    LOG_TARGET_STDERR = 0,
    LOG_TARGET_SYSLOG = 1,
    LOG_TARGET_FILE = 2,
};

/* [proxy] log_facility, in the order of its names. */
enum log_facility {
    LOG_FACILITY_MAIL = 0,
    LOG_FACILITY_DAEMON = 1,
    LOG_FACILITY_LOCAL0 = 2, /* .. LOCAL7 = 9 */
};

enum tls_mode {
    TLS_MODE_NONE = 0,
    TLS_MODE_STARTTLS = 1,
    TLS_MODE_IMPLICIT = 2,
};

/* Protocol versions as on the wire (the values of TLS1_VERSION ...). */
#define CONFIG_TLS1_0 0x0301
#define CONFIG_TLS1_1 0x0302
#define CONFIG_TLS1_2 0x0303
#define CONFIG_TLS1_3 0x0304

struct listener_config {
    char *name;
    char *address; /* as written, for logs */
    struct net_addr addr;
    enum listener_kind kind;
    enum tls_mode tls;
    int require_tls;
    int force_require_tls;  /* the operator insists on require_tls on port 25 */
    int auth_requires_tls;  /* AUTH hidden and refused before TLS */
    int min_tls_version;    /* CONFIG_TLS1_x */
    char *ciphers;          /* TLS 1.2 and older; NULL: the kind's default (tls.h) */
    enum proxy_protocol proxy_protocol; /* a PROXY header before anything else */
    char *proxy_trusted_text;           /* as written */
    struct cidr_list proxy_trusted;     /* who may send it; others are closed */
    int line; /* where the section starts, for messages */
};

struct cert_config {
    char *name;      /* [certificate NAME] */
    char *cert_path; /* PEM chain, leaf first */
    char *key_path;
    char *ocsp_path;      /* DER OCSP response to staple; NULL: none */
    char *next_key_path;  /* RFC 7671 8.1 rollover: the next key; NULL: none */
    char *next_cert_path; /* or the next certificate; NULL: none */
    char **names;    /* from "names ="; NULL: the certificate's DNS names */
    size_t nnames;
    int is_default;
    int line;
};

/* How the backend learns who the client is (ARCHITECTURE.md §4). */
enum identity_mode {
    IDENTITY_NONE = 0,
    IDENTITY_XCLIENT = 1,  /* Postfix XCLIENT after the greeting */
    IDENTITY_PROXY_V1 = 2, /* HAProxy PROXY protocol, text */
    IDENTITY_PROXY_V2 = 3, /* HAProxy PROXY protocol, binary */
};

/* What to do with a client that talks before the greeting or pipelines
 * where RFC 2920 says it must wait. */
enum pregreet_policy {
    PREGREET_IGNORE = 0,
    PREGREET_LOG = 1,    /* log and count; the session goes on */
    PREGREET_REJECT = 2, /* 554 5.5.1 and close */
};

/* [backend]: one or more legacy MTAs. The first connection of a session
 * goes to a target chosen by |balance| (core/backend_pool.h); one that
 * fails before the client is greeted is down for |down_time| and the next
 * is tried, |max_tries| targets at most (ARCHITECTURE.md §4). */
struct backend_config {
    char *address;                  /* as written: the whole list */
    struct backend_target *targets; /* in order, names resolved; ntargets >= 1 */
    size_t ntargets;
    enum backend_balance balance;
    double down_time;               /* a failed target is skipped this long */
    unsigned max_tries;             /* targets per session; at most ntargets */
    enum identity_mode identity;
};

/* [starttls_memory]: senders whose STARTTLS handshake failed are not
 * offered STARTTLS again for a while on listeners where TLS is optional
 * (ARCHITECTURE.md §5.6). */
struct starttls_memory_config {
    int enabled;
    double ttl;               /* how long a failure is remembered */
    unsigned ipv4_prefix;     /* the key: the client's address to this length */
    unsigned ipv6_prefix;
    unsigned max_entries;     /* the table's bound; least recently used go first */
    double save_interval;     /* the state file, with [proxy] state_dir */
    int release_without_mail; /* a remembered sender leaving without MAIL is forgotten */
    char *never_offer_text;   /* as written (a list or a file's path); NULL: none */
    char *always_offer_text;
    struct cidr_list never_offer;  /* never offered STARTTLS on those listeners */
    struct cidr_list always_offer; /* never remembered */
    /* Shared with other proxies through Redis (daemon/redis_memory.h). */
    char *redis;              /* "host:port" or "unix:/path"; NULL: local only */
    char *redis_password;     /* AUTH; NULL: none */
    char *redis_prefix;       /* key prefix */
    double redis_timeout;     /* a session waits at most this for an answer */
};

struct config {
    char *path;
    char *hostname;
    char *status_header;
    int workers;    /* 0: one per core */
    int log_level;  /* enum log_level */
    int log_format; /* enum log_format */
    int log_target;   /* enum log_target */
    int log_facility; /* enum log_facility */
    char *log_file;   /* log_target = file */
    char *user;       /* [proxy] user: run as; NULL: as started */
    char *group;      /* NULL: the user's primary group */
    int allow_root;   /* may go on as root without user */

    size_t command_line_max; /* every verb but MAIL, RCPT, AUTH (CRLF included) */
    size_t mail_line_max;    /* MAIL and RCPT, at most (smtp_line_limit) */
    size_t auth_line_max;    /* AUTH, its SASL lines and 334 challenges */
    int line_limit_line;     /* where a line limit was last set, for messages */
    unsigned max_errors;     /* the proxy's own refusals before 421; 0: no limit */
    enum pregreet_policy pregreet;
    double pregreet_wait;    /* pregreet = reject: silence before the backend */
    unsigned max_connections; /* concurrent sessions, all listeners */
    unsigned max_per_client;  /* concurrent sessions from one address */

    /* seconds */
    double connect_timeout;
    double greeting_timeout;   /* backend greeting, RFC 5321 4.5.3.2.1 */
    double command_timeout;    /* idle client between commands */
    double reply_timeout;      /* backend reply to a command */
    double data_timeout;       /* between data blocks, 4.5.3.2.5 */
    double data_end_timeout;   /* reply to the final dot, 4.5.3.2.6 */
    double shutdown_grace;     /* sessions may finish after SIGTERM */
    double handshake_timeout;  /* a TLS handshake, [tls] */
    double proxy_protocol_timeout; /* the inbound PROXY header must be in by then */
    char *groups;              /* key-exchange groups, [tls]; NULL: default */
    int tls_watch;             /* [tls] watch: reload on certificate file changes */
    double tls_watch_delay;    /* debounce */
    double tls_expiry_warning; /* warn of certificates expiring within this */
    int tls_session_tickets;   /* [tls] session_tickets: resumption by ticket */
    double tls_ticket_rotation; /* a ticket key seals this long, opens twice (tls/tickets.h) */

    struct listener_config *listeners;
    size_t nlisteners;
    struct backend_config backend;
    struct cert_config *certs;
    size_t ncerts;
    char *geoip_country_db; /* NULL: no country lookups */
    char *geoip_asn_db;     /* NULL: no AS lookups */
    int geoip_line;
    char *metrics_address;  /* [metrics] address, as written; NULL: no endpoint */
    struct net_addr metrics_addr;
    /* [dns]: the client's forward-confirmed name (daemon/dns.h) */
    int dns_reverse_lookup; /* look it up at all */
    double dns_timeout;     /* the whole lookup, seconds; XCLIENT waits at most this */
    char *dns_servers;      /* "host[:port],..." numeric; NULL: the system's resolv.conf */
    char *state_dir;        /* [proxy] state_dir: files kept across restarts; NULL: none */
    char *control_socket;   /* [proxy] control_socket: unix socket path; NULL: none */
    struct starttls_memory_config memory;
    char **env_notes; /* "[section] key = value (from the environment: VAR)" */
    size_t nenv_notes;
};

/* config_parse reads configuration text |text| named |path| (for
 * messages) into a new config. Returns it, or NULL with |err| (size
 * |errlen|) holding "path:line: reason". */
struct config *config_parse(const char *path, const char *text, char *err, size_t errlen);

/* config_parse_env is config_parse, then the overrides of the
 * NULL-terminated "NAME=value" list |env| (environ; NULL: none):
 * SMTP_TLS_PROXY__SECTION__KEY, SMTP_TLS_PROXY__LISTENER__NAME__KEY and
 * SMTP_TLS_PROXY__CERTIFICATE__NAME__KEY (config.c). config_load uses the
 * process's environment. */
struct config *config_parse_env(const char *path, const char *text, char *const *env,
                                char *err, size_t errlen);

/* A resolver for the DNS names of [backend] address: writes at most
 * |max| addresses of |host| into |out|, in the order to try them (the
 * port is set by the caller). Returns how many, or 0 with |err| saying
 * why. */
typedef size_t config_resolver_fn(const char *host, struct net_addr *out, size_t max, char *err,
                                  size_t errlen);

/* config_set_resolver replaces the resolver (getaddrinfo, on the thread
 * that parses: the main thread, at start and at reload); NULL restores
 * it. For tests and the fuzzer, which must not depend on DNS. */
void config_set_resolver(config_resolver_fn *fn);

/* config_resolve_nothing is a resolver for readers that need only the
 * files a configuration names (healthcheck, the privileged parent): it
 * asks no DNS and gives every name 127.0.0.1, never contacted. */
size_t config_resolve_nothing(const char *host, struct net_addr *out, size_t max, char *err,
                              size_t errlen);

/* config_load reads the file at |path| and parses it. */
struct config *config_load(const char *path, char *err, size_t errlen);

/* config_free releases |cfg|; NULL is fine. */
void config_free(struct config *cfg);

/* config_verror writes "path:line: " and the formatted reason into |err|
 * (size |errlen|), the one shape of every configuration error, whether
 * the parser or the certificate loader found it. */
void config_verror(char *err, size_t errlen, const char *path, int line, const char *fmt,
                   va_list ap);

/* config_slurp reads the whole file at |path|, binary or not, at most
 * |max| octets, into a malloc'ed buffer with a NUL after the last octet
 * (*len octets). NULL with *why an errno value: the open's or the read's,
 * EFBIG (larger than |max|) or ENOMEM. */
char *config_slurp(const char *path, size_t max, size_t *len, int *why);

/* config_read_file reads the whole file at |path| (at most |max| octets,
 * no NUL) into a new NUL-terminated string. Returns it, or NULL with
 * |err| saying why. */
char *config_read_file(const char *path, size_t max, char *err, size_t errlen);

/* listener_tls_optional says whether |l| offers STARTTLS without
 * requiring it (kind smtp): the only listeners where the STARTTLS
 * failure memory and never_offer act. Submission and TLS-required
 * listeners never withhold STARTTLS. */
int listener_tls_optional(const struct listener_config *l);

/* config_print_keys lists every key by section: name, default, meaning
 * (the table in config_keys.c; smtp-tls-proxy --keys). */
void config_print_keys(FILE *out);

const char *listener_kind_name(enum listener_kind kind);
const char *tls_mode_name(enum tls_mode mode);
const char *identity_mode_name(enum identity_mode mode);
const char *pregreet_policy_name(enum pregreet_policy policy);
const char *proxy_protocol_name(enum proxy_protocol mode);
const char *backend_balance_name(enum backend_balance balance);
/* tls_version_name gives "TLSv1.2" for CONFIG_TLS1_2 and so on. */
const char *tls_version_name(int version);

/* The embedded default configuration (configs/loopback.conf, compiled
 * in by the build). */
extern const char default_config_text[];

#endif
