/*
 * options.h - smtp-load's command line: every option, its default and
 * its limits, parsed into one struct. Pure (getopt_long with its own
 * messages off: the caller prints |why|), so the parsing is unit-tested.
 */
#ifndef SMTP_LOAD_OPTIONS_H
#define SMTP_LOAD_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#define LOAD_VERSION "0.1"

enum load_mode {
    MODE_PLAIN = 0,
    MODE_STARTTLS,
    MODE_TLS, /* implicit TLS, RFC 8314 */
};

struct load_opts {
    int sink; /* --sink: be the backend */
    int json;

    /* client */
    const char *target; /* HOST:PORT */
    enum load_mode mode;
    int tls_version; /* 12 or 13 */
    int resume;
    const char *sni;      /* NULL: none */
    unsigned connections; /* -c */
    uint64_t messages;    /* -m, per connection; 0: handshake only */
    size_t size;          /* -s */
    uint64_t count;       /* -n; 0: not given */
    double duration;      /* -d seconds; 0: not given */
    unsigned threads;     /* -t */
    const char *from, *to, *ehlo;
    unsigned source_range; /* 1: no bind */
    double timeout;        /* per phase, seconds */
    uint64_t idle;         /* --idle N; 0: off */
    double hold;           /* --hold seconds; 0: until a signal */
    int pipelining;

    /* sink */
    const char *listen;
    const char *port_file; /* NULL: none */
};

enum opts_result {
    OPTS_RUN = 0,
    OPTS_HELP,
    OPTS_VERSION,
    OPTS_USAGE, /* |why| says what is wrong: exit status 2 */
};

/* opts_parse fills |o| from |argc|/|argv| (defaults first). Returns
 * OPTS_RUN, OPTS_HELP for -h, OPTS_VERSION, or OPTS_USAGE with |why|. */
enum opts_result opts_parse(int argc, char **argv, struct load_opts *o, char *why,
                            size_t whylen);

/* opts_help returns the --help text. */
const char *opts_help(void);

/* parse_size reads "4096", "4K" or "10M" (KiB, MiB; either case) into
 * *out. Returns 1, or 0 for anything else, zero, or more than 1 GiB. */
int parse_size(const char *s, size_t *out);

/* parse_seconds reads a positive decimal number of seconds ("0.5",
 * "10") of at most a year. Returns 1 or 0. */
int parse_seconds(const char *s, double *out);

/* parse_count reads a decimal integer from |min| to |max|. Returns 1 or 0. */
int parse_count(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* split_hostport splits "HOST:PORT" or "[V6]:PORT" into |host| and |port|
 * (NUL-terminated, |cap| octets each). Returns 1, or 0 when malformed or
 * too long. */
int split_hostport(const char *s, char *host, char *port, size_t cap);

#endif
