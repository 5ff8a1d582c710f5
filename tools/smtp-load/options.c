/*
 * options.c - parsing smtp-load's command line (see options.h).
 */
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    OPT_MODE = 256, OPT_TLS_VERSION, OPT_RESUME, OPT_SNI, OPT_FROM, OPT_TO, OPT_EHLO,
    OPT_SOURCE_RANGE, OPT_TIMEOUT, OPT_IDLE, OPT_HOLD, OPT_JSON, OPT_PIPELINING, OPT_SINK,
    OPT_LISTEN, OPT_PORT_FILE, OPT_VERSION,
};

static const struct option LONG_OPTS[] = {
    {"mode", required_argument, NULL, OPT_MODE},
    {"tls-version", required_argument, NULL, OPT_TLS_VERSION},
    {"resume", no_argument, NULL, OPT_RESUME},
    {"sni", required_argument, NULL, OPT_SNI},
    {"connections", required_argument, NULL, 'c'},
    {"messages", required_argument, NULL, 'm'},
    {"size", required_argument, NULL, 's'},
    {"count", required_argument, NULL, 'n'},
    {"duration", required_argument, NULL, 'd'},
    {"threads", required_argument, NULL, 't'},
    {"from", required_argument, NULL, OPT_FROM},
    {"to", required_argument, NULL, OPT_TO},
    {"ehlo", required_argument, NULL, OPT_EHLO},
    {"source-range", required_argument, NULL, OPT_SOURCE_RANGE},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"idle", required_argument, NULL, OPT_IDLE},
    {"hold", required_argument, NULL, OPT_HOLD},
    {"json", no_argument, NULL, OPT_JSON},
    {"pipelining", no_argument, NULL, OPT_PIPELINING},
    {"sink", no_argument, NULL, OPT_SINK},
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"port-file", required_argument, NULL, OPT_PORT_FILE},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

static const char HELP[] =
    "usage: smtp-load [options] HOST:PORT     drive SMTP load at a server\n"
    "       smtp-load --sink [options]        be a fast SMTP backend\n"
    "\n"
    "client:\n"
    "  --mode plain|starttls|tls  plain SMTP, STARTTLS after EHLO, or implicit TLS\n"
    "                             (RFC 8314) (default plain)\n"
    "  --tls-version 1.2|1.3      the only TLS version offered (default 1.3)\n"
    "  --resume                   offer each connection slot's last session\n"
    "                             (ticket or ID) again; count resumed handshakes\n"
    "  --sni NAME                 send this server name (default none)\n"
    "                             Certificates are NOT verified: a benchmark tool.\n"
    "  -c, --connections N        concurrent connections (default 10)\n"
    "  -m, --messages N           messages per connection (default 1); 0: greeting,\n"
    "                             TLS, EHLO, QUIT only (handshake workload)\n"
    "  -s, --size BYTES           message size, K and M suffixes (default 4K)\n"
    "  -n, --count N              stop after N messages (-m 0: N connections)\n"
    "  -d, --duration SEC         stop after SEC seconds; -n or -d is required\n"
    "                             (at the stop, messages under way finish and QUIT)\n"
    "  -t, --threads N            worker threads, one event loop each (default 1)\n"
    "  --from ADDR --to ADDR      envelope (default load@src.test, sink@dst.test)\n"
    "  --ehlo NAME                EHLO name (default load.test)\n"
    "  --source-range N           bind connections to 127.0.0.1..127.0.0.N in turn\n"
    "                             (default 1: no bind)\n"
    "  --timeout SEC              limit on each step (default 60)\n"
    "  --idle N                   open N sessions (-c at a time), leave them idle,\n"
    "                             print \"idle-ready K\"; QUIT them on SIGTERM/SIGINT\n"
    "  --hold SEC                 with --idle: QUIT after SEC seconds instead\n"
    "  --pipelining               MAIL, RCPT and DATA in one write when the server\n"
    "                             offers PIPELINING (default off: one command per\n"
    "                             round trip)\n"
    "  --json                     the report as one JSON object\n"
    "\n"
    "sink:\n"
    "  --listen HOST:PORT         where to listen (default 127.0.0.1:0)\n"
    "  --port-file FILE           write the bound port there once listening\n"
    "  -t, --threads N            event loops, one SO_REUSEPORT socket each\n"
    "  --json                     the counts as JSON at SIGTERM/SIGINT\n"
    "\n"
    "  -h, --help, --version\n"
    "Exit status: 0 no errors, 1 errors happened, 2 usage.\n";

const char *opts_help(void) {
    return HELP;
}

int parse_count(const char *s, uint64_t min, uint64_t max, uint64_t *out) {
    if (s[0] < '0' || s[0] > '9') {
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        return 0;
    }
    *out = v;
    return 1;
}

int parse_size(const char *s, size_t *out) {
    size_t n = strlen(s);
    uint64_t mult = 1, v;
    char digits[32];
    if (n == 0 || n >= sizeof(digits)) {
        return 0;
    }
    memcpy(digits, s, n + 1);
    char last = digits[n - 1];
    if (last == 'K' || last == 'k') {
        mult = 1024;
    } else if (last == 'M' || last == 'm') {
        mult = 1024 * 1024;
    }
    if (mult != 1) {
        digits[n - 1] = '\0';
    }
    if (!parse_count(digits, 1, (UINT64_C(1) << 30) / mult, &v)) {
        return 0;
    }
    *out = (size_t)(v * mult);
    return 1;
}

int parse_seconds(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v <= 0 ||
        v > 366.0 * 86400) {
        return 0;
    }
    *out = v;
    return 1;
}

int split_hostport(const char *s, char *host, char *port, size_t cap) {
    const char *colon;
    size_t hlen;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':') {
            return 0;
        }
        s++;
        hlen = (size_t)(close - s);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL) {
            return 0;
        }
        hlen = (size_t)(colon - s);
    }
    size_t plen = strlen(colon + 1);
    uint64_t p;
    if (hlen == 0 || hlen >= cap || plen >= cap || !parse_count(colon + 1, 0, 65535, &p)) {
        return 0;
    }
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    memcpy(port, colon + 1, plen + 1);
    return 1;
}

/* set_defaults fills |o| with what the brief's defaults are. */
static void set_defaults(struct load_opts *o) {
    memset(o, 0, sizeof(*o));
    o->mode = MODE_PLAIN;
    o->tls_version = 13;
    o->connections = 10;
    o->messages = 1;
    o->size = 4096;
    o->threads = 1;
    o->from = "load@src.test";
    o->to = "sink@dst.test";
    o->ehlo = "load.test";
    o->source_range = 1;
    o->timeout = 60;
    o->listen = "127.0.0.1:0";
}

/* bad writes "what: value" into |why| and returns OPTS_USAGE. */
static enum opts_result bad(char *why, size_t whylen, const char *what, const char *value) {
    snprintf(why, whylen, "%s: %s", what, value ? value : "(missing)");
    return OPTS_USAGE;
}

/* set_mode reads --mode. Returns 1, or 0 for an unknown mode. */
static int set_mode(struct load_opts *o, const char *v) {
    static const char *const names[] = {"plain", "starttls", "tls"};
    for (int i = 0; i < 3; i++) {
        if (strcmp(v, names[i]) == 0) {
            o->mode = (enum load_mode)i;
            return 1;
        }
    }
    return 0;
}

/* set_version reads --tls-version. Returns 1, or 0 for another version. */
static int set_version(struct load_opts *o, const char *v) {
    if (strcmp(v, "1.2") == 0) {
        o->tls_version = 12;
    } else if (strcmp(v, "1.3") == 0) {
        o->tls_version = 13;
    } else {
        return 0;
    }
    return 1;
}

/* set_number handles the options with a numeric argument. Returns 1 when
 * |c| is one and its value is good, 0 when bad, -1 when |c| is another. */
static int set_number(struct load_opts *o, int c, const char *v) {
    uint64_t n;
    switch (c) {
    case 'c':
        return parse_count(v, 1, 1000000, &n) ? (o->connections = (unsigned)n, 1) : 0;
    case 'm':
        return parse_count(v, 0, UINT64_C(1) << 40, &o->messages);
    case 's':
        return parse_size(v, &o->size);
    case 'n':
        return parse_count(v, 1, UINT64_C(1) << 50, &o->count);
    case 'd':
        return parse_seconds(v, &o->duration);
    case 't':
        return parse_count(v, 1, 64, &n) ? (o->threads = (unsigned)n, 1) : 0;
    case OPT_SOURCE_RANGE:
        return parse_count(v, 1, 254, &n) ? (o->source_range = (unsigned)n, 1) : 0;
    case OPT_TIMEOUT:
        return parse_seconds(v, &o->timeout);
    case OPT_IDLE:
        return parse_count(v, 1, 10000000, &o->idle);
    case OPT_HOLD:
        return parse_seconds(v, &o->hold);
    default:
        return -1;
    }
}

/* set_other handles the options with no number. Returns 1, 0 when the
 * value is bad, -1 for an unknown option. */
static int set_other(struct load_opts *o, int c, const char *v) {
    switch (c) {
    case OPT_MODE:
        return set_mode(o, v);
    case OPT_TLS_VERSION:
        return set_version(o, v);
    case OPT_RESUME:
        o->resume = 1;
        return 1;
    case OPT_SNI:
        o->sni = v;
        return v[0] != '\0';
    case OPT_FROM:
        o->from = v;
        return 1;
    case OPT_TO:
        o->to = v;
        return 1;
    case OPT_EHLO:
        o->ehlo = v;
        return v[0] != '\0';
    case OPT_JSON:
        o->json = 1;
        return 1;
    case OPT_PIPELINING:
        o->pipelining = 1;
        return 1;
    case OPT_SINK:
        o->sink = 1;
        return 1;
    case OPT_LISTEN:
        o->listen = v;
        return 1;
    case OPT_PORT_FILE:
        o->port_file = v;
        return v[0] != '\0';
    default:
        return -1;
    }
}

/* is_sink_option says whether option |c| belongs to the sink too. */
static int is_sink_option(int c) {
    return c == 't' || c == OPT_JSON || c == OPT_SINK || c == OPT_LISTEN ||
           c == OPT_PORT_FILE;
}

/* check_client validates a client run's combination of options. */
static enum opts_result check_client(struct load_opts *o, int argc, char **argv, char *why,
                                     size_t whylen) {
    char host[256], port[256];
    if (optind != argc - 1) {
        return bad(why, whylen, "expected one HOST:PORT",
                   optind < argc ? argv[argc - 1] : NULL);
    }
    o->target = argv[optind];
    if (!split_hostport(o->target, host, port, sizeof(host))) {
        return bad(why, whylen, "not HOST:PORT", o->target);
    }
    if (o->idle == 0 && o->count == 0 && o->duration == 0) {
        return bad(why, whylen, "one of -n/--count or -d/--duration is required", "none given");
    }
    if (o->hold != 0 && o->idle == 0) {
        return bad(why, whylen, "--hold needs --idle", "given alone");
    }
    return OPTS_RUN;
}

enum opts_result opts_parse(int argc, char **argv, struct load_opts *o, char *why,
                            size_t whylen) {
    int c, client_only = 0;
    set_defaults(o);
    why[0] = '\0';
    opterr = 0;
    optind = 0; /* glibc: start over (the unit tests parse many times) */
    while ((c = getopt_long(argc, argv, "c:m:s:n:d:t:h", LONG_OPTS, NULL)) != -1) {
        if (c == 'h') {
            return OPTS_HELP;
        }
        if (c == OPT_VERSION) {
            return OPTS_VERSION;
        }
        if (c == '?' || c == ':') {
            return bad(why, whylen, "unknown option or missing value", argv[optind - 1]);
        }
        int ok = set_number(o, c, optarg);
        if (ok < 0) {
            ok = set_other(o, c, optarg);
        }
        if (ok <= 0) {
            return bad(why, whylen, "bad value", argv[optind - 1]);
        }
        if (!is_sink_option(c) && client_only == 0) {
            client_only = c;
        }
    }
    if (!o->sink) {
        return check_client(o, argc, argv, why, whylen);
    }
    char host[256], port[256];
    if (optind != argc || client_only != 0) {
        return bad(why, whylen, "--sink takes only --listen, --port-file, -t and --json",
                   optind != argc ? argv[optind] : "a client option was given");
    }
    if (!split_hostport(o->listen, host, port, sizeof(host))) {
        return bad(why, whylen, "--listen: not HOST:PORT", o->listen);
    }
    return OPTS_RUN;
}
