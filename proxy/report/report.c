/*
 * report.c - the report subcommand: options, reading the inputs (zlib's
 * gzread reads plain and gzip files alike), and feeding the parsers and
 * the tally.
 */
#include "report/report.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/addr.h"
#include "protocol/scope.h"
#include "report/logline.h"
#include "report/mailbox.h"
#include "report/received.h"
#include "report/tally.h"
#include "report/when.h"

static const char usage_text[] =
    "usage: smtp-tls-proxy report [options] [FILE...]\n"
    "       smtp-tls-proxy report --mbox FILE [--by HOST] [options]\n"
    "       smtp-tls-proxy report --maildir DIR [--by HOST] [options]\n"
    "\n"
    "The share of encrypted sessions, messages and unique senders (HELO, name,\n"
    "address) among the sessions that delivered mail, by source scope, listener,\n"
    "TLS version and country, from the proxy's log (text or JSON; plain or gzip;\n"
    "standard input when no FILE or \"-\"); or, with --mbox/--maildir, among\n"
    "received messages, by the Received field the receiving MX wrote.\n"
    "\n"
    "From a log it also counts the STARTTLS failure memory (the starttls= field\n"
    "of the end lines): the sessions that delivered mail in plaintext because\n"
    "STARTTLS was withheld from a client remembered for a failed handshake, and\n"
    "their messages; the sessions STARTTLS was withheld in; the STARTTLS\n"
    "handshakes that failed. A line without the field (an older log) is\n"
    "unknown, never withheld. Received fields do not record it: with\n"
    "--mbox/--maildir the report says it is not available (JSON: null).\n"
    "\n"
    "  --since TIME   only sessions (messages) at or after TIME (ISO 8601,\n"
    "                 e.g. 2024-05-01 or 2024-05-01T12:00:00Z; no zone: UTC)\n"
    "  --until TIME   only before TIME\n"
    "  --top N        countries shown (default 10; 0: all)\n"
    "  --json         machine-readable output\n"
    "  --mbox FILE    read an mbox file (repeatable; gzip accepted)\n"
    "  --maildir DIR  read a maildir's cur/ and new/ (repeatable)\n"
    "  --by HOST      use the Received field whose \"by\" is HOST (default: the\n"
    "                 topmost)\n"
    "  -h, --help     this help\n";

enum source { SRC_LOG, SRC_MBOX, SRC_MAILDIR };

struct run {
    struct tally tally;
    struct tally_report rep;
    long long since, until;
    int has_since, has_until;
    const char *by;
    FILE *err;
    int failed;
};

static int in_window(const struct run *r, long long ms) {
    return (!r->has_since || ms >= r->since) && (!r->has_until || ms < r->until);
}

/* scope_name gives the scope of an address text, as the proxy would. */
static const char *scope_name(const char *ip) {
    struct net_addr a;
    memset(&a, 0, sizeof(a));
    struct sockaddr_in *sin = (struct sockaddr_in *)&a.ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a.ss;
    if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        a.len = sizeof(*sin);
    } else if (inet_pton(AF_INET6, ip, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        a.len = sizeof(*sin6);
    } else {
        return "unknown";
    }
    return addr_scope_name(addr_scope_of(&a));
}

/* sender_key joins (HELO, name, address) with NULs. */
static size_t sender_key(char *out, size_t size, const char *helo, const char *name,
                         const char *ip) {
    int n = snprintf(out, size, "%s%c%s%c%s", helo, 0, name, 0, ip);
    return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

static void count(struct run *r, const struct tally_item *it) {
    if (!tally_add(&r->tally, it) && !r->failed) {
        fprintf(r->err, "smtp-tls-proxy report: out of memory\n");
        r->failed = 1;
    }
}

static void log_line(struct run *r, const char *line, size_t n) {
    static struct logline l; /* large; one line at a time */
    struct session_record s;
    r->rep.lines++;
    if (!logline_parse(&l, line, n)) {
        if (n > 0) {
            r->rep.unreadable++;
        }
        return;
    }
    if (!session_record_from_logline(&l, &s)) {
        return;
    }
    r->rep.sessions_ended++;
    if ((r->has_since || r->has_until) && (!s.has_time || !in_window(r, s.time_ms))) {
        r->rep.outside_window++;
        return;
    }
    tally_starttls_add(&r->rep.starttls, &s);
    if (s.accepted == 0) {
        r->rep.without_mail++;
        return;
    }
    char key[600];
    struct tally_item it = {0};
    it.key[TALLY_SCOPE] = s.scope[0] ? s.scope : scope_name(s.client);
    it.key[TALLY_LISTENER] = s.listener[0] ? s.listener : "unknown";
    it.key[TALLY_VERSION] = s.tls;
    it.key[TALLY_COUNTRY] = s.country[0] ? s.country : "unknown";
    it.encrypted = session_record_encrypted(&s);
    it.sessions = 1;
    it.messages = s.accepted;
    it.sender = key;
    it.sender_len = sender_key(key, sizeof(key), s.helo, s.name, s.client);
    count(r, &it);
}

static void mail_message(void *ctx, const struct mailbox_message *m) {
    struct run *r = ctx;
    r->rep.messages_read++;
    struct received_info info;
    int found = 0;
    for (size_t i = 0; i < m->nreceived && !found; i++) {
        received_parse(m->received[i], strlen(m->received[i]), &info);
        found = r->by == NULL || received_by_is(&info, r->by);
    }
    if (!found) {
        r->rep.no_received++;
        return;
    }
    if ((r->has_since || r->has_until) && (!info.has_time || !in_window(r, info.time_ms))) {
        r->rep.undated++;
        return;
    }
    if (info.tls == RECEIVED_UNCLASSIFIED) {
        r->rep.unclassified++;
        return;
    }
    char key[600];
    struct tally_item it = {0};
    it.key[TALLY_SCOPE] = info.ip[0] ? scope_name(info.ip) : "unknown";
    it.key[TALLY_VERSION] = info.tls == RECEIVED_PLAIN ? "none"
                            : info.version[0]          ? info.version
                                                       : "TLS";
    it.encrypted = info.tls == RECEIVED_TLS;
    it.messages = 1;
    it.sender = key;
    it.sender_len = sender_key(key, sizeof(key), info.helo, info.name, info.ip);
    count(r, &it);
}

/* A line reader over gzFile: lines of any length, without CR LF. */
struct lines {
    gzFile gz;
    char *buf;
    size_t cap;
};

static int next_line(struct lines *L, size_t *len) {
    size_t n = 0;
    for (;;) {
        if (L->cap - n < 2) {
            size_t cap = L->cap ? L->cap * 2 : 8192;
            char *b = realloc(L->buf, cap);
            if (b == NULL) {
                return -1;
            }
            L->buf = b;
            L->cap = cap;
        }
        if (gzgets(L->gz, L->buf + n, (int)(L->cap - n > 1 << 30 ? 1 << 30 : L->cap - n)) ==
            NULL) {
            if (n == 0) {
                return 0;
            }
            break;
        }
        n += strlen(L->buf + n);
        if (n > 0 && L->buf[n - 1] == '\n') {
            break;
        }
        if (gzeof(L->gz)) {
            break;
        }
    }
    while (n > 0 && (L->buf[n - 1] == '\n' || L->buf[n - 1] == '\r')) {
        n--;
    }
    L->buf[n] = '\0';
    *len = n;
    return 1;
}

/* read_input feeds every line of |path| ("-": standard input) to the
 * log reader or a mailbox reader. */
static int read_input(struct run *r, const char *path, enum source src, int mbox) {
    gzFile gz = strcmp(path, "-") == 0 ? gzdopen(dup(STDIN_FILENO), "rb") : gzopen(path, "rb");
    if (gz == NULL) {
        fprintf(r->err, "smtp-tls-proxy report: %s: %s\n", path,
                errno ? strerror(errno) : "cannot open");
        r->failed = 1;
        return 0;
    }
    gzbuffer(gz, 1 << 16);
    struct lines L = {gz, NULL, 0};
    struct mailbox_reader mr;
    if (src != SRC_LOG) {
        mailbox_init(&mr, mbox, mail_message, r);
    }
    size_t len;
    int got;
    while ((got = next_line(&L, &len)) > 0) {
        if (src == SRC_LOG) {
            log_line(r, L.buf, len);
        } else {
            mailbox_line(&mr, L.buf, len);
        }
    }
    int errnum = 0;
    const char *msg = gzerror(gz, &errnum);
    int ok = got == 0 && (errnum == Z_OK || errnum == Z_BUF_ERROR);
    if (!ok) {
        fprintf(r->err, "smtp-tls-proxy report: %s: %s\n", path,
                got < 0 ? "out of memory" : errnum == Z_ERRNO ? strerror(errno) : msg);
        r->failed = 1;
    }
    if (src != SRC_LOG) {
        mailbox_finish(&mr);
        if (mr.oom && !r->failed) {
            fprintf(r->err, "smtp-tls-proxy report: %s: out of memory\n", path);
            r->failed = 1;
        }
    }
    free(L.buf);
    gzclose(gz);
    return ok;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* read_maildir reads DIR/new and DIR/cur, each file one message, in
 * name order. */
static void read_maildir(struct run *r, const char *dir) {
    static const char *const subs[] = {"new", "cur"};
    int any = 0;
    for (size_t s = 0; s < 2; s++) {
        char sub[4096];
        snprintf(sub, sizeof(sub), "%s/%s", dir, subs[s]);
        DIR *d = opendir(sub);
        if (d == NULL) {
            continue;
        }
        any = 1;
        char **names = NULL;
        size_t n = 0, cap = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') {
                continue;
            }
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                char **v = realloc(names, cap * sizeof(*v));
                if (v == NULL) {
                    break;
                }
                names = v;
            }
            if ((names[n] = strdup(e->d_name)) != NULL) {
                n++;
            }
        }
        closedir(d);
        if (n > 0) {
            qsort(names, n, sizeof(*names), cmp_names);
        }
        for (size_t i = 0; i < n; i++) {
            char path[8192];
            struct stat st;
            snprintf(path, sizeof(path), "%s/%s", sub, names[i]);
            if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                read_input(r, path, SRC_MAILDIR, 0);
            }
            free(names[i]);
        }
        free(names);
    }
    if (!any) {
        fprintf(r->err, "smtp-tls-proxy report: %s: not a maildir (no cur/ or new/)\n", dir);
        r->failed = 1;
    }
}

static int usage(FILE *err, const char *why, const char *arg) {
    fprintf(err, "smtp-tls-proxy report: %s \"%s\"\n\n%s", why, arg, usage_text);
    return 2;
}

/* What the command line asks for, besides what struct run keeps. */
struct opts {
    int json;
    enum source src;
    const char **inputs;
    size_t ninputs;
};

/* parse_args returns 0, a usage error's code, or ARGS_HELP when -h or
 * --help printed the usage. */
enum { ARGS_HELP = -1 };

static int time_option(struct run *r, const char *a, const char *v) {
    long long ms;
    if (!when_parse_iso8601(v, strlen(v), &ms)) {
        return usage(r->err, "not an ISO 8601 time:", v);
    }
    if (a[2] == 's') {
        r->since = ms;
        r->has_since = 1;
        r->rep.since = v;
    } else {
        r->until = ms;
        r->has_until = 1;
        r->rep.until = v;
    }
    return 0;
}

static int top_option(struct run *r, const char *v) {
    char *end;
    errno = 0;
    unsigned long top = strtoul(v, &end, 10);
    if (*v < '0' || *v > '9' || *end != '\0' || errno != 0 || top > 100000) {
        return usage(r->err, "--top wants a count, not", v);
    }
    r->rep.top = (unsigned)top;
    return 0;
}

static int mailbox_option(struct run *r, struct opts *o, const char *a, const char *v) {
    enum source want = a[4] == 'o' ? SRC_MBOX : SRC_MAILDIR;
    if (o->src != SRC_LOG && o->src != want) {
        return usage(r->err, "use either --mbox or --maildir, not both:", a);
    }
    o->src = want;
    o->inputs[o->ninputs++] = v;
    return 0;
}

static int parse_args(struct run *r, struct opts *o, int argc, char **argv, FILE *out) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_arg = i + 1 < argc;
        int code = 0;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage_text, out);
            return ARGS_HELP;
        } else if (strcmp(a, "--json") == 0) {
            o->json = 1;
        } else if ((strcmp(a, "--since") == 0 || strcmp(a, "--until") == 0) && has_arg) {
            code = time_option(r, a, argv[++i]);
        } else if (strcmp(a, "--top") == 0 && has_arg) {
            code = top_option(r, argv[++i]);
        } else if ((strcmp(a, "--mbox") == 0 || strcmp(a, "--maildir") == 0) && has_arg) {
            code = mailbox_option(r, o, a, argv[++i]);
        } else if (strcmp(a, "--by") == 0 && has_arg) {
            r->by = argv[++i];
        } else if (a[0] == '-' && a[1] != '\0') {
            code = usage(r->err, "unknown or incomplete option", a);
        } else if (o->src != SRC_LOG) {
            code = usage(r->err, "log files and --mbox/--maildir do not mix:", a);
        } else {
            o->inputs[o->ninputs++] = a;
        }
        if (code != 0) {
            return code;
        }
    }
    if (o->src == SRC_LOG && r->by != NULL) {
        return usage(r->err, "--by needs --mbox or --maildir:", r->by);
    }
    return 0;
}

/* read_all reads the inputs (standard input when none) into the tally. */
static void read_all(struct run *r, const struct opts *o) {
    enum source src = o->src;
    tally_init(&r->tally);
    r->rep.mailbox = src != SRC_LOG;
    r->rep.source = src == SRC_LOG ? "log" : src == SRC_MBOX ? "mbox" : "maildir";
    r->rep.by = r->by;
    r->rep.inputs = o->inputs;
    r->rep.ninputs = o->ninputs;
    if (o->ninputs == 0) {
        read_input(r, "-", src, src == SRC_MBOX);
    }
    for (size_t i = 0; i < o->ninputs; i++) {
        if (src == SRC_MAILDIR) {
            read_maildir(r, o->inputs[i]);
        } else {
            read_input(r, o->inputs[i], src, src == SRC_MBOX);
        }
    }
}

int report_run(int argc, char **argv, FILE *out, FILE *err) {
    struct run r;
    memset(&r, 0, sizeof(r));
    r.err = err;
    r.rep.top = 10;
    struct opts o = {0, SRC_LOG, NULL, 0};
    o.inputs = calloc((size_t)argc + 1, sizeof(*o.inputs));
    if (o.inputs == NULL) {
        fprintf(err, "smtp-tls-proxy report: out of memory\n");
        return 1;
    }
    int code = parse_args(&r, &o, argc, argv, out);
    if (code != 0) {
        free(o.inputs);
        return code == ARGS_HELP ? 0 : code;
    }
    read_all(&r, &o);
    if (o.json) {
        tally_print_json(&r.tally, &r.rep, out);
    } else {
        tally_print_text(&r.tally, &r.rep, out);
    }
    tally_free(&r.tally);
    free(o.inputs);
    return r.failed ? 1 : 0;
}

int report_main(int argc, char **argv) {
    int code = report_run(argc, argv, stdout, stderr);
    if (fflush(stdout) != 0 && code == 0) {
        code = 1;
    }
    return code;
}
