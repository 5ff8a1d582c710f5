/*
 * tally.c - counting rows and unique senders; the text and JSON reports.
 */
#include "report/tally.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

/* ---- bytes -> index ---- */

struct tally_slot {
    char *key; /* NULL: empty */
    size_t len;
    uint64_t hash;
    size_t value;
};

struct tally_map {
    struct tally_slot *slots;
    size_t cap, count;
};

static uint64_t hash_bytes(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static struct tally_map *map_new(void) {
    return calloc(1, sizeof(struct tally_map));
}

static void map_free(struct tally_map *m) {
    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < m->cap; i++) {
        free(m->slots[i].key);
    }
    free(m->slots);
    free(m);
}

static int map_grow(struct tally_map *m) {
    size_t cap = m->cap ? m->cap * 2 : 64;
    struct tally_slot *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL) {
        return 0;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].key != NULL) {
            size_t j = m->slots[i].hash & (cap - 1);
            while (slots[j].key != NULL) {
                j = (j + 1) & (cap - 1);
            }
            slots[j] = m->slots[i];
        }
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 1;
}

/* map_find_or_add finds |key|, or adds it with |value|. Sets *slot to
 * its value. Returns 0 found, 1 added, -1 out of memory. */
static int map_find_or_add(struct tally_map *m, const void *key, size_t len, size_t value,
                           size_t **slot) {
    if ((m->count + 1) * 4 > m->cap * 3 && !map_grow(m)) {
        return -1;
    }
    uint64_t h = hash_bytes(key, len);
    size_t j = h & (m->cap - 1);
    while (m->slots[j].key != NULL) {
        struct tally_slot *s = &m->slots[j];
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0) {
            *slot = &s->value;
            return 0;
        }
        j = (j + 1) & (m->cap - 1);
    }
    char *copy = malloc(len ? len : 1);
    if (copy == NULL) {
        return -1;
    }
    memcpy(copy, key, len);
    m->slots[j] = (struct tally_slot){copy, len, h, value};
    m->count++;
    *slot = &m->slots[j].value;
    return 1;
}

/* ---- counting ---- */

void tally_init(struct tally *t) {
    memset(t, 0, sizeof(*t));
}

void tally_free(struct tally *t) {
    for (int d = 0; d < TALLY_DIMS; d++) {
        for (size_t i = 0; i < t->nrows[d]; i++) {
            free(t->rows[d][i].key);
        }
        free(t->rows[d]);
        map_free(t->row_index[d]);
    }
    map_free(t->sender_ids);
    map_free(t->sender_rows);
    memset(t, 0, sizeof(*t));
}

static struct tally_row *row_for(struct tally *t, int d, const char *key, size_t *index) {
    if (t->row_index[d] == NULL && (t->row_index[d] = map_new()) == NULL) {
        return NULL;
    }
    size_t *slot;
    size_t len = strlen(key);
    int r = map_find_or_add(t->row_index[d], key, len, t->nrows[d], &slot);
    if (r < 0) {
        return NULL;
    }
    if (r == 1) {
        if (t->nrows[d] == t->caprows[d]) {
            size_t cap = t->caprows[d] ? t->caprows[d] * 2 : 8;
            struct tally_row *rows = realloc(t->rows[d], cap * sizeof(*rows));
            if (rows == NULL) {
                return NULL;
            }
            t->rows[d] = rows;
            t->caprows[d] = cap;
        }
        struct tally_row *row = &t->rows[d][t->nrows[d]];
        memset(row, 0, sizeof(*row));
        row->key = malloc(len + 1);
        if (row->key == NULL) {
            return NULL;
        }
        memcpy(row->key, key, len + 1);
        t->nrows[d]++;
    }
    *index = *slot;
    return &t->rows[d][*slot];
}

int tally_add(struct tally *t, const struct tally_item *it) {
    if (t->sender_ids == NULL && (t->sender_ids = map_new()) == NULL) {
        t->oom = 1;
        return 0;
    }
    if (t->sender_rows == NULL && (t->sender_rows = map_new()) == NULL) {
        t->oom = 1;
        return 0;
    }
    size_t *sid = NULL;
    if (it->sender != NULL &&
        map_find_or_add(t->sender_ids, it->sender, it->sender_len, t->sender_ids->count, &sid) <
            0) {
        t->oom = 1;
        return 0;
    }
    for (int d = 0; d < TALLY_DIMS; d++) {
        const char *key = d == TALLY_ALL ? "all" : it->key[d];
        if (key == NULL) {
            continue;
        }
        size_t index;
        struct tally_row *row = row_for(t, d, key, &index);
        if (row == NULL) {
            t->oom = 1;
            return 0;
        }
        row->sessions += it->sessions;
        row->messages += it->messages;
        if (it->encrypted) {
            row->sessions_enc += it->sessions;
            row->messages_enc += it->messages;
        }
        if (sid == NULL) {
            continue;
        }
        uint64_t pair[2] = {((uint64_t)d << 32) | (uint64_t)index, (uint64_t)*sid};
        size_t *seen;
        int r = map_find_or_add(t->sender_rows, pair, sizeof(pair), it->encrypted ? 2 : 1, &seen);
        if (r < 0) {
            t->oom = 1;
            return 0;
        }
        if (r == 1) {
            row->senders++;
            row->senders_enc += it->encrypted ? 1 : 0;
        } else if (*seen == 2 && !it->encrypted) {
            *seen = 1; /* one plaintext item makes a plaintext sender */
            row->senders_enc--;
        }
    }
    return 1;
}

void tally_starttls_add(struct tally_starttls *m, const struct session_record *s) {
    switch (s->starttls) {
    case SESSION_STARTTLS_WITHHELD:
        m->withheld++;
        if (s->accepted > 0) {
            m->withheld_delivered++;
            m->withheld_messages += s->accepted;
        }
        break;
    case SESSION_STARTTLS_FAILED:
        m->failed++;
        break;
    case SESSION_STARTTLS_UNKNOWN:
        m->unknown++;
        break;
    case SESSION_STARTTLS_NONE:
    case SESSION_STARTTLS_OFFERED:
    case SESSION_STARTTLS_USED:
        break;
    }
}

/* ---- order ---- */

static int rank_in(const char *key, const char *const *order) {
    for (int i = 0; order[i] != NULL; i++) {
        if (strcmp(key, order[i]) == 0) {
            return i;
        }
    }
    return -1;
}

static int by_rank(const struct tally_row *a, const struct tally_row *b,
                   const char *const *first, const char *const *last) {
    int ra = rank_in(a->key, first), rb = rank_in(b->key, first);
    int la = rank_in(a->key, last), lb = rank_in(b->key, last);
    int ka = ra >= 0 ? ra : la >= 0 ? 1000 + la : 500;
    int kb = rb >= 0 ? rb : lb >= 0 ? 1000 + lb : 500;
    if (ka != kb) {
        return ka < kb ? -1 : 1;
    }
    return strcmp(a->key, b->key);
}

static int cmp_scope(const void *x, const void *y) {
    static const char *const first[] = {"global", "private", "loopback", NULL};
    static const char *const last[] = {"unknown", NULL};
    return by_rank(*(const struct tally_row *const *)x, *(const struct tally_row *const *)y,
                   first, last);
}

static int cmp_version(const void *x, const void *y) {
    static const char *const first[] = {"TLSv1.3", "TLSv1.2", "TLSv1.1", "TLSv1",
                                        "SSLv3",   "SSLv2",   "TLS",     NULL};
    static const char *const last[] = {"none", NULL};
    return by_rank(*(const struct tally_row *const *)x, *(const struct tally_row *const *)y,
                   first, last);
}

static int cmp_volume(const void *x, const void *y) {
    const struct tally_row *a = *(const struct tally_row *const *)x;
    const struct tally_row *b = *(const struct tally_row *const *)y;
    if (a->messages != b->messages) {
        return a->messages > b->messages ? -1 : 1;
    }
    if (a->sessions != b->sessions) {
        return a->sessions > b->sessions ? -1 : 1;
    }
    return strcmp(a->key, b->key);
}

const struct tally_row **tally_rows_sorted(const struct tally *t, enum tally_dim dim,
                                           size_t *n) {
    *n = t->nrows[dim];
    if (*n == 0) {
        return NULL;
    }
    const struct tally_row **v = malloc(*n * sizeof(*v));
    if (v == NULL) {
        *n = 0;
        return NULL;
    }
    for (size_t i = 0; i < *n; i++) {
        v[i] = &t->rows[dim][i];
    }
    qsort(v, *n, sizeof(*v),
          dim == TALLY_SCOPE ? cmp_scope : dim == TALLY_VERSION ? cmp_version : cmp_volume);
    return v;
}

/* ---- text ---- */

#define KEY_WIDTH 26
#define CELL_WIDTH 22

static void cell(FILE *out, unsigned long long part, unsigned long long all, int last) {
    char text[64];
    if (all == 0) {
        snprintf(text, sizeof(text), "-");
    } else {
        snprintf(text, sizeof(text), "%5.1f%% (%llu/%llu)", 100.0 * (double)part / (double)all,
                 part, all);
    }
    if (last) {
        fprintf(out, "%s\n", text);
    } else {
        fprintf(out, "%-*s ", CELL_WIDTH - 1, text);
    }
}

static const char *label(enum tally_dim dim, const char *key, char *buf, size_t size) {
    if (dim == TALLY_VERSION && strcmp(key, "none") == 0) {
        return "none (plaintext)";
    }
    if (dim == TALLY_VERSION && strcmp(key, "TLS") == 0) {
        return "TLS, version not stated";
    }
    snprintf(buf, size, "%s", key);
    return buf;
}

/* text_row writes one row: the encrypted share of the row, or (|of|
 * not NULL: the TLS version table) the row's share of |of|. */
static void text_row(FILE *out, const struct tally_report *r, const char *name,
                     const struct tally_row *row, const struct tally_row *of) {
    char key[KEY_WIDTH + 1];
    /* Client-given text (listener names are the operator's, countries
     * ISO codes) is still kept printable. */
    log_sanitize(key, sizeof(key), name, strlen(name));
    for (size_t i = 0; key[i] != '\0'; i++) {
        if (name[i] == ' ') {
            key[i] = ' ';
        }
    }
    fprintf(out, "  %-*s ", KEY_WIDTH - 3, key);
    if (!r->mailbox) {
        cell(out, of ? row->sessions : row->sessions_enc, of ? of->sessions : row->sessions, 0);
    }
    cell(out, of ? row->messages : row->messages_enc, of ? of->messages : row->messages, 0);
    cell(out, of ? row->senders : row->senders_enc, of ? of->senders : row->senders, 1);
}

static void text_header(FILE *out, const struct tally_report *r, const char *title) {
    fprintf(out, "%-*s", KEY_WIDTH, title);
    if (!r->mailbox) {
        fprintf(out, "%-*s", CELL_WIDTH, "sessions");
    }
    fprintf(out, "%-*s%s\n", CELL_WIDTH, "messages", "unique senders");
}

static void add_into(struct tally_row *sum, const struct tally_row *row) {
    sum->sessions += row->sessions;
    sum->sessions_enc += row->sessions_enc;
    sum->messages += row->messages;
    sum->messages_enc += row->messages_enc;
    sum->senders += row->senders;
    sum->senders_enc += row->senders_enc;
}

static void text_table(const struct tally *t, const struct tally_report *r, FILE *out,
                       enum tally_dim dim, const char *title, const struct tally_row *of) {
    size_t n;
    const struct tally_row **rows = tally_rows_sorted(t, dim, &n);
    if (rows == NULL) {
        return;
    }
    fprintf(out, "\n%s\n", title);
    size_t shown = n;
    if (dim == TALLY_COUNTRY && r->top > 0 && r->top < n) {
        shown = r->top;
    }
    char buf[128];
    for (size_t i = 0; i < shown; i++) {
        text_row(out, r, label(dim, rows[i]->key, buf, sizeof(buf)), rows[i], of);
    }
    if (shown < n) {
        struct tally_row other = {0};
        for (size_t i = shown; i < n; i++) {
            add_into(&other, rows[i]);
        }
        snprintf(buf, sizeof(buf), "other (%zu countries)", n - shown);
        text_row(out, r, buf, &other, of);
    }
    free(rows);
}

static const struct tally_row *total_row(const struct tally *t) {
    static const struct tally_row empty = {0};
    return t->nrows[TALLY_ALL] > 0 ? &t->rows[TALLY_ALL][0] : &empty;
}

static void text_inputs(const struct tally_report *r, FILE *out) {
    for (size_t i = 0; i < r->ninputs; i++) {
        fprintf(out, "%s%s", i ? ", " : " ", r->inputs[i]);
    }
    if (r->ninputs == 0) {
        fprintf(out, " (standard input)");
    }
}

static const char *plural(unsigned long long n, const char *one, const char *many) {
    return n == 1 ? one : many;
}

/* text_starttls writes the STARTTLS failure memory block; a mailbox's
 * Received fields do not record it. */
static void text_starttls(const struct tally_report *r, FILE *out) {
    if (r->mailbox) {
        fputs("\nSTARTTLS failure memory: not available from Received fields (only the "
              "proxy's log records it)\n",
              out);
        return;
    }
    const struct tally_starttls *m = &r->starttls;
    fprintf(out,
            "\nSTARTTLS failure memory: %llu %s delivered %llu %s in plaintext because "
            "STARTTLS was withheld; withheld in %llu %s; %llu STARTTLS %s failed\n",
            m->withheld_delivered, plural(m->withheld_delivered, "session", "sessions"),
            m->withheld_messages, plural(m->withheld_messages, "message", "messages"),
            m->withheld, plural(m->withheld, "session", "sessions"), m->failed,
            plural(m->failed, "handshake", "handshakes"));
    if (m->unknown > 0) {
        fprintf(out, "  unknown for %llu %s: no starttls field in the end line (an older log)\n",
                m->unknown, plural(m->unknown, "session", "sessions"));
    }
}

void tally_print_text(const struct tally *t, const struct tally_report *r, FILE *out) {
    const struct tally_row *all = total_row(t);
    if (r->mailbox) {
        fprintf(out, "smtp-tls-proxy report: encrypted share of received mail\n");
        fprintf(out, "source: %s", r->source);
        text_inputs(r, out);
        fprintf(out, "\nheader: %s%s\n", r->by ? "the Received field by " : "the topmost Received field",
                r->by ? r->by : "");
    } else {
        fprintf(out, "smtp-tls-proxy report: encrypted share of accepted mail\n");
        fprintf(out, "source: proxy log");
        text_inputs(r, out);
        fputc('\n', out);
    }
    if (r->since != NULL || r->until != NULL) {
        fprintf(out, "window: %s .. %s\n", r->since ? r->since : "(open)",
                r->until ? r->until : "(open)");
    }
    if (r->mailbox) {
        fprintf(out,
                "read: %llu messages; counted %llu; without a%s Received field %llu; "
                "unclassified %llu",
                r->messages_read, all->messages, r->by ? " matching" : "", r->no_received,
                r->unclassified);
        if (r->since != NULL || r->until != NULL) {
            fprintf(out, "; undated or outside the window %llu", r->undated);
        }
        fputc('\n', out);
    } else {
        fprintf(out,
                "read: %llu lines; %llu sessions ended; outside the window %llu; "
                "without accepted mail %llu; counted %llu\n",
                r->lines, r->sessions_ended, r->outside_window, r->without_mail, all->sessions);
        if (r->unreadable > 0) {
            fprintf(out, "unreadable lines (neither text nor JSON log): %llu\n", r->unreadable);
        }
    }
    fprintf(out, "\npercent encrypted (encrypted/all); a sender is (HELO, name, address), and\n"
                 "encrypted when all its mail in the row was; TLS version rows: share of all\n\n");
    text_header(out, r, "");
    text_row(out, r, "all", all, NULL);
    text_table(t, r, out, TALLY_SCOPE, "by source scope", NULL);
    text_table(t, r, out, TALLY_LISTENER, "by listener", NULL);
    text_table(t, r, out, TALLY_VERSION, "by TLS version (share of all)", all);
    char title[64];
    if (r->top > 0) {
        snprintf(title, sizeof(title), "by country (top %u)", r->top);
    } else {
        snprintf(title, sizeof(title), "by country");
    }
    text_table(t, r, out, TALLY_COUNTRY, title, NULL);
    if (r->mailbox && r->unclassified > 0) {
        fprintf(out,
                "\nunclassified: %llu messages whose Received field states neither TLS nor\n"
                "plaintext (or both); not counted above\n",
                r->unclassified);
    }
    text_starttls(r, out);
}

/* ---- JSON ---- */

static void json_string(FILE *out, const char *s) {
    size_t n = strlen(s);
    size_t size = 6 * n + 3;
    char stack[512];
    char *buf = size <= sizeof(stack) ? stack : malloc(size);
    if (buf == NULL || log_json_escape(buf, size, s, n) == 0) {
        fputs("\"\"", out);
    } else {
        fputs(buf, out);
    }
    if (buf != stack) {
        free(buf);
    }
}

static void json_share(FILE *out, const char *name, const char *part_name,
                       unsigned long long part, unsigned long long all) {
    fprintf(out, "\"%s\":{\"%s\":%llu,\"all\":%llu,\"percent\":", name, part_name, part, all);
    if (all == 0) {
        fputs("null}", out);
    } else {
        fprintf(out, "%.1f}", 100.0 * (double)part / (double)all);
    }
}

static void json_row(FILE *out, const struct tally_report *r, const struct tally_row *row,
                     const struct tally_row *of, size_t countries) {
    fputc('{', out);
    fputs("\"key\":", out);
    json_string(out, row->key);
    if (countries > 0) {
        fprintf(out, ",\"countries\":%zu", countries);
    }
    const char *part = of ? "count" : "encrypted";
    if (!r->mailbox) {
        fputc(',', out);
        json_share(out, "sessions", part, of ? row->sessions : row->sessions_enc,
                   of ? of->sessions : row->sessions);
    }
    fputc(',', out);
    json_share(out, "messages", part, of ? row->messages : row->messages_enc,
               of ? of->messages : row->messages);
    fputc(',', out);
    json_share(out, "senders", part, of ? row->senders : row->senders_enc,
               of ? of->senders : row->senders);
    fputc('}', out);
}

static void json_table(const struct tally *t, const struct tally_report *r, FILE *out,
                       enum tally_dim dim, const char *name, const struct tally_row *of) {
    size_t n;
    const struct tally_row **rows = tally_rows_sorted(t, dim, &n);
    size_t shown = n;
    if (dim == TALLY_COUNTRY && r->top > 0 && r->top < n) {
        shown = r->top;
    }
    fprintf(out, ",\n\"%s\":[", name);
    for (size_t i = 0; i < shown; i++) {
        fputs(i ? ",\n  " : "\n  ", out);
        json_row(out, r, rows[i], of, 0);
    }
    fputs("]", out);
    if (dim == TALLY_COUNTRY) {
        fputs(",\n\"other_countries\":", out);
        if (shown < n) {
            struct tally_row other = {0};
            other.key = "other";
            for (size_t i = shown; i < n; i++) {
                add_into(&other, rows[i]);
            }
            json_row(out, r, &other, of, n - shown);
        } else {
            fputs("null", out);
        }
    }
    free(rows);
}

static void json_opt_string(FILE *out, const char *s) {
    if (s == NULL) {
        fputs("null", out);
    } else {
        json_string(out, s);
    }
}

void tally_print_json(const struct tally *t, const struct tally_report *r, FILE *out) {
    const struct tally_row *all = total_row(t);
    fputs("{\"source\":", out);
    json_string(out, r->source);
    fputs(",\"inputs\":[", out);
    for (size_t i = 0; i < r->ninputs; i++) {
        if (i) {
            fputc(',', out);
        }
        json_string(out, r->inputs[i]);
    }
    fputs("],\"since\":", out);
    json_opt_string(out, r->since);
    fputs(",\"until\":", out);
    json_opt_string(out, r->until);
    if (r->mailbox) {
        fputs(",\"by\":", out);
        json_opt_string(out, r->by);
        fprintf(out,
                ",\n\"messages_read\":%llu,\"no_received\":%llu,\"unclassified\":%llu,"
                "\"undated_or_outside_window\":%llu",
                r->messages_read, r->no_received, r->unclassified, r->undated);
    } else {
        fprintf(out,
                ",\n\"lines\":%llu,\"unreadable_lines\":%llu,\"sessions_ended\":%llu,"
                "\"outside_window\":%llu,\"without_accepted_mail\":%llu",
                r->lines, r->unreadable, r->sessions_ended, r->outside_window,
                r->without_mail);
    }
    fputs(",\n\"total\":", out);
    struct tally_row total = *all;
    total.key = "all";
    json_row(out, r, &total, NULL, 0);
    json_table(t, r, out, TALLY_SCOPE, "by_scope", NULL);
    if (!r->mailbox) {
        json_table(t, r, out, TALLY_LISTENER, "by_listener", NULL);
    }
    json_table(t, r, out, TALLY_VERSION, "by_tls_version", all);
    if (!r->mailbox) {
        json_table(t, r, out, TALLY_COUNTRY, "by_country", NULL);
    }
    fputs(",\n\"starttls_memory\":", out);
    if (r->mailbox) {
        fputs("null", out); /* Received fields do not record it */
    } else {
        const struct tally_starttls *m = &r->starttls;
        fprintf(out,
                "{\"withheld_sessions\":%llu,\"withheld_delivered_sessions\":%llu,"
                "\"withheld_delivered_messages\":%llu,\"starttls_failed\":%llu,"
                "\"unknown_sessions\":%llu}",
                m->withheld, m->withheld_delivered, m->withheld_messages, m->failed, m->unknown);
    }
    fputs("}\n", out);
}
