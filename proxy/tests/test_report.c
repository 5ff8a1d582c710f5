/*
 * test_report.c - the report's pure parts: times (when.h), log lines and
 * the event=end record (logline.h), mailboxes (mailbox.h) and the counts
 * and their output (tally.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/log.h"
#include "report/logline.h"
#include "report/mailbox.h"
#include "report/report.h"
#include "report/tally.h"
#include "report/when.h"
#include "unit.h"

static long long iso(const char *s) {
    long long ms = -1;
    if (!when_parse_iso8601(s, strlen(s), &ms)) {
        return -1;
    }
    return ms;
}

static long long rfc(const char *s) {
    long long ms = -1;
    if (!when_parse_rfc5322(s, strlen(s), &ms)) {
        return -1;
    }
    return ms;
}

UNIT_TEST(report_iso8601_times) {
    CHECK_INT(iso("1970-01-01"), 0);
    CHECK_INT(iso("1970-01-01T00:00:01Z"), 1000);
    CHECK_INT(iso("2024-05-01T10:00:00.123Z"), 1714557600123LL);
    CHECK_INT(iso("2024-05-01T10:00:00"), 1714557600000LL);
    CHECK_INT(iso("2024-05-01 10:00"), 1714557600000LL);
    CHECK_INT(iso("2024-05-01T12:00:00+02:00"), 1714557600000LL);
    CHECK_INT(iso("2024-05-01T12:00:00+0200"), 1714557600000LL);
    CHECK_INT(iso("2024-05-01T05:30:00-04:30"), 1714557600000LL);
    CHECK_INT(iso("2024-02-29"), 1709164800000LL);
    CHECK_INT(iso("2023-02-29"), -1);
    CHECK_INT(iso("2024-13-01"), -1);
    CHECK_INT(iso("2024-05-01T24:00"), -1);
    CHECK_INT(iso("2024-05-01T10"), -1);
    CHECK_INT(iso("2024-05-01x"), -1);
    CHECK_INT(iso("yesterday"), -1);
    CHECK_INT(iso(""), -1);
    char out[32];
    when_format(1714557600123LL, out, sizeof(out));
    CHECK_STR(out, "2024-05-01T10:00:00Z");
    when_format(0, out, sizeof(out));
    CHECK_STR(out, "1970-01-01T00:00:00Z");
}

UNIT_TEST(report_rfc5322_dates) {
    CHECK_INT(rfc(" Wed,  1 May 2024 10:00:00 +0000 (UTC)"), 1714557600000LL);
    CHECK_INT(rfc("1 May 2024 12:00:00 +0200"), 1714557600000LL);
    CHECK_INT(rfc("Wed, 01 May 2024 06:00:00 EDT"), 1714557600000LL);
    CHECK_INT(rfc("Wed, 1 May 2024 10:00 GMT"), 1714557600000LL);
    CHECK_INT(rfc("Wed, 1 May 24 10:00:00 +0000"), 1714557600000LL);
    CHECK_INT(rfc("Wed, 1 May 2024 03:00:00 -0700 (PDT)"), 1714557600000LL);
    CHECK_INT(rfc("Wed, 1 Foo 2024 10:00:00 +0000"), -1);
    CHECK_INT(rfc("Wed, 1 May 2024"), -1);
    CHECK_INT(rfc("Wed, 1 May 2024 10:00:00 +0000 junk"), -1);
    CHECK_INT(rfc(""), -1);
}

static const char *get(const struct logline *l, const char *key) {
    static char out[1024];
    size_t n;
    const char *v = logline_get(l, key, &n);
    if (v == NULL) {
        return "(none)";
    }
    snprintf(out, sizeof(out), "%.*s", (int)n, v);
    return out;
}

static const char end_text[] =
    "2024-05-01T10:00:00.123Z level=info session=6632110a0100002a event=end client=192.0.2.7 "
    "port=40000 listener=smtp local_port=25 scope=global country=DE asn=64500 "
    "as_org=\"Example_Networks\" helo=client.example tls=TLSv1.3 cipher=TLS_AES_128_GCM_SHA256 "
    "group=X25519 sni=mx.example.net messages=3 accepted=2 forged_removed=0 errors=0 "
    "pregreet=no sync_violations=0 bytes_in=1234 bytes_out=567 result=quit duration=1.250";

UNIT_TEST(report_logline_text_end_record) {
    static struct logline l;
    struct session_record r;
    CHECK(logline_parse(&l, end_text, strlen(end_text)));
    CHECK_STR(get(&l, "time"), "2024-05-01T10:00:00.123Z");
    CHECK_STR(get(&l, "as_org"), "Example_Networks");
    CHECK(session_record_from_logline(&l, &r));
    CHECK(r.has_time);
    CHECK_INT(r.time_ms, 1714557600123LL);
    CHECK_STR(r.listener, "smtp");
    CHECK_STR(r.local_port, "25");
    CHECK_STR(r.client, "192.0.2.7");
    CHECK_STR(r.scope, "global");
    CHECK_STR(r.country, "DE");
    CHECK_STR(r.helo, "client.example");
    CHECK_STR(r.name, ""); /* no name= field (yet): unknown */
    CHECK_STR(r.tls, "TLSv1.3");
    CHECK_STR(r.group, "X25519");
    CHECK_INT(r.accepted, 2);
    CHECK_INT(r.messages, 3);
    CHECK_INT(r.bytes_in, 1234);
    CHECK(r.duration > 1.24 && r.duration < 1.26);
    CHECK(session_record_encrypted(&r));
}

UNIT_TEST(report_logline_json_equals_text) {
    static struct logline t, j;
    static char js[16384];
    struct session_record a, b;
    CHECK(log_text_to_json(js, sizeof(js), end_text, strlen(end_text)) > 0);
    CHECK(logline_parse(&t, end_text, strlen(end_text)));
    CHECK(logline_parse(&j, js, strlen(js)));
    CHECK_INT(j.nfields, t.nfields);
    for (size_t i = 0; i < t.nfields && i < j.nfields; i++) {
        CHECK(j.f[i].key_len == t.f[i].key_len &&
              memcmp(j.f[i].key, t.f[i].key, t.f[i].key_len) == 0);
        CHECK(j.f[i].value_len == t.f[i].value_len &&
              memcmp(j.f[i].value, t.f[i].value, t.f[i].value_len) == 0);
    }
    CHECK(session_record_from_logline(&t, &a));
    CHECK(session_record_from_logline(&j, &b));
    CHECK_STR(b.helo, a.helo);
    CHECK_STR(b.tls, a.tls);
    CHECK_INT(b.time_ms, a.time_ms);
    CHECK_INT(b.accepted, a.accepted);
}

UNIT_TEST(report_logline_json_values_decoded) {
    static struct logline l;
    const char *js = "{\"time\":\"2024-05-01T10:00:00Z\",\"event\":\"end\",\"helo\":\"a\\\"b\\\\c\","
                     "\"name\":\"caf\\u00e9\",\"sni\":\"\\u20ac\\ud83d\\ude00\",\"n\":12,"
                     "\"ok\":true,\"nested\":{\"x\":[1,\"}\"]},\"accepted\":\"1\"}";
    CHECK(logline_parse(&l, js, strlen(js)));
    CHECK_STR(get(&l, "helo"), "a\"b\\c");
    CHECK_STR(get(&l, "name"), "caf\xe9"); /* \u00XX: the byte log_json_escape escaped */
    CHECK_STR(get(&l, "sni"), "\xe2\x82\xac\xf0\x9f\x98\x80");
    CHECK_STR(get(&l, "n"), "12");
    CHECK_STR(get(&l, "ok"), "true");
    CHECK_STR(get(&l, "nested"), "(none)");
    CHECK_STR(get(&l, "accepted"), "1");
}

UNIT_TEST(report_logline_rejects_broken_lines) {
    static struct logline l;
    static const char *const bad[] = {
        "{\"a\":\"b\"",       "{\"a\" \"b\"}",         "{\"a\":\"b\",}",
        "{\"a\":\"\\x\"}",    "{\"a\":\"\\ud800\"}",  "{\"a\":\"b\"} trailing",
        "just some words",    "==1==ERROR: AddressSanitizer", "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (logline_parse(&l, bad[i], strlen(bad[i]))) {
            unit_fail(__FILE__, __LINE__, "parsed: %s", bad[i]);
        }
    }
    /* Not an end line. */
    struct session_record r;
    const char *conn = "t level=info session=1 event=connect client=::1";
    CHECK(logline_parse(&l, conn, strlen(conn)));
    CHECK(!session_record_from_logline(&l, &r));
}

UNIT_TEST(report_logline_dashes_and_missing_fields_are_unknown) {
    static struct logline l;
    struct session_record r;
    const char *s = "t level=info event=end client=10.0.0.1 country=- helo=- tls=none "
                    "cipher=- name=- accepted=1";
    CHECK(logline_parse(&l, s, strlen(s)));
    CHECK(session_record_from_logline(&l, &r));
    CHECK(!r.has_time);
    CHECK_STR(r.country, "");
    CHECK_STR(r.helo, "");
    CHECK_STR(r.name, "");
    CHECK_STR(r.scope, "");
    CHECK(!session_record_encrypted(&r));
    const char *old = "t level=info event=end client=10.0.0.1 accepted=1";
    CHECK(logline_parse(&l, old, strlen(old)));
    CHECK(session_record_from_logline(&l, &r));
    CHECK_STR(r.tls, "none");
}

/* ---- mailbox ---- */

struct got_messages {
    int n;
    char received[8][3][512];
    size_t nreceived[8];
};

static void on_message(void *ctx, const struct mailbox_message *m) {
    struct got_messages *g = ctx;
    if (g->n < 8) {
        g->nreceived[g->n] = m->nreceived;
        for (size_t i = 0; i < m->nreceived && i < 3; i++) {
            snprintf(g->received[g->n][i], sizeof(g->received[0][0]), "%s", m->received[i]);
        }
    }
    g->n++;
}

static void feed(struct mailbox_reader *r, const char *text) {
    while (*text != '\0') {
        const char *nl = strchr(text, '\n');
        size_t n = nl ? (size_t)(nl - text) : strlen(text);
        mailbox_line(r, text, n);
        text += n + (nl ? 1 : 0);
    }
}

UNIT_TEST(report_mbox_messages_and_their_received_fields) {
    static struct got_messages g;
    struct mailbox_reader r;
    memset(&g, 0, sizeof(g));
    mailbox_init(&r, 1, on_message, &g);
    feed(&r, "From a@b Mon May  1 10:00:00 2024\n"
             "Received: from x (unknown [192.0.2.1])\n"
             "\tby mx with ESMTP id 1; Wed, 1 May 2024 10:00:00 +0000\n"
             "received : from y by z with SMTP; 1 May 2024 09:00 +0000\n"
             "Subject: one\n"
             "\n"
             "Received: in the body, not a header\n"
             "From the body (not after a blank line)\n"
             "\n"
             "From b@c Mon May  1 11:00:00 2024\n"
             "Subject: none\n"
             "\n"
             "body\n"
             "From c@d Mon May  1 12:00:00 2024\n"
             "Subject: not separated by a blank line: same message\n"
             "\n"
             "From d@e Mon May  1 12:00:00 2024\n"
             "Received: from last\n");
    mailbox_finish(&r);
    CHECK_INT(g.n, 3);
    CHECK_INT(g.nreceived[0], 2);
    CHECK_STR(g.received[0][0], " from x (unknown [192.0.2.1])\tby mx with ESMTP id 1; Wed, 1 May "
                                "2024 10:00:00 +0000");
    CHECK_STR(g.received[0][1], " from y by z with SMTP; 1 May 2024 09:00 +0000");
    CHECK_INT(g.nreceived[1], 0);
    CHECK_INT(g.nreceived[2], 1);
    CHECK_STR(g.received[2][0], " from last");
}

UNIT_TEST(report_maildir_file_is_one_message) {
    static struct got_messages g;
    struct mailbox_reader r;
    memset(&g, 0, sizeof(g));
    mailbox_init(&r, 0, on_message, &g);
    feed(&r, "Received: from a\nFrom nobody\nReceived: from b\n  folded\n\nFrom x\n\nFrom y\n");
    mailbox_finish(&r);
    CHECK_INT(g.n, 1);
    CHECK_INT(g.nreceived[0], 2);
    CHECK_STR(g.received[0][1], " from b  folded");
}

/* ---- tally ---- */

static void add(struct tally *t, const char *scope, const char *listener, const char *version,
                const char *country, unsigned long messages, const char *sender) {
    struct tally_item it = {0};
    it.key[TALLY_SCOPE] = scope;
    it.key[TALLY_LISTENER] = listener;
    it.key[TALLY_VERSION] = version;
    it.key[TALLY_COUNTRY] = country;
    it.encrypted = strcmp(version, "none") != 0;
    it.sessions = 1;
    it.messages = messages;
    it.sender = sender;
    it.sender_len = strlen(sender);
    CHECK(tally_add(t, &it));
}

static const struct tally_row *row(const struct tally *t, enum tally_dim d, const char *key) {
    for (size_t i = 0; i < t->nrows[d]; i++) {
        if (strcmp(t->rows[d][i].key, key) == 0) {
            return &t->rows[d][i];
        }
    }
    return NULL;
}

static char *render(const struct tally *t, const struct tally_report *r, int json) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL) {
        return NULL;
    }
    if (json) {
        tally_print_json(t, r, f);
    } else {
        tally_print_text(t, r, f);
    }
    fclose(f);
    return buf;
}

UNIT_TEST(report_tally_counts_shares_and_senders) {
    struct tally t;
    tally_init(&t);
    add(&t, "global", "smtp", "TLSv1.3", "DE", 2, "a");
    add(&t, "global", "smtp", "none", "DE", 1, "a"); /* a: once in plaintext */
    add(&t, "global", "smtp", "TLSv1.2", "FR", 1, "b");
    add(&t, "loopback", "submission", "none", "unknown", 3, "c");
    add(&t, "global", "smtp", "TLSv1.3", "US", 1, "d");
    const struct tally_row *all = row(&t, TALLY_ALL, "all");
    CHECK(all != NULL);
    if (all == NULL) {
        tally_free(&t);
        return;
    }
    CHECK_INT(all->sessions, 5);
    CHECK_INT(all->sessions_enc, 3);
    CHECK_INT(all->messages, 8);
    CHECK_INT(all->messages_enc, 4);
    CHECK_INT(all->senders, 4);
    CHECK_INT(all->senders_enc, 2); /* b and d; a sent once in plaintext */
    const struct tally_row *g = row(&t, TALLY_SCOPE, "global");
    CHECK(g != NULL && g->sessions == 4 && g->sessions_enc == 3 && g->senders == 3 &&
          g->senders_enc == 2);
    const struct tally_row *v13 = row(&t, TALLY_VERSION, "TLSv1.3");
    CHECK(v13 != NULL && v13->sessions == 2 && v13->messages == 3 && v13->senders == 2);
    const struct tally_row *de = row(&t, TALLY_COUNTRY, "DE");
    CHECK(de != NULL && de->senders == 1 && de->senders_enc == 0);

    size_t n;
    const struct tally_row **v = tally_rows_sorted(&t, TALLY_VERSION, &n);
    CHECK_INT(n, 3);
    if (v != NULL && n == 3) {
        CHECK_STR(v[0]->key, "TLSv1.3");
        CHECK_STR(v[1]->key, "TLSv1.2");
        CHECK_STR(v[2]->key, "none");
    }
    free(v);
    v = tally_rows_sorted(&t, TALLY_COUNTRY, &n);
    if (v != NULL && n == 4) {
        CHECK_STR(v[0]->key, "DE");      /* 3 messages, 2 sessions */
        CHECK_STR(v[1]->key, "unknown"); /* 3 messages, 1 session */
        CHECK_STR(v[2]->key, "FR");
        CHECK_STR(v[3]->key, "US");
    }
    free(v);

    struct tally_report rep = {0};
    rep.source = "log";
    rep.top = 2;
    char *text = render(&t, &rep, 0);
    CHECK(text != NULL);
    if (text != NULL) {
        CHECK(strstr(text, "\n                          sessions              messages"
                           "              unique senders\n"
                           "  all                      60.0% (3/5)           50.0% (4/8)"
                           "           50.0% (2/4)\n") != NULL);
        CHECK(strstr(text, "  TLSv1.3                  40.0% (2/5) ") != NULL);
        CHECK(strstr(text, "  none (plaintext)         40.0% (2/5) ") != NULL);
        CHECK(strstr(text, "\nby country (top 2)\n  DE    ") != NULL);
        CHECK(strstr(text, "\n  other (2 countries)     100.0% (2/2) ") != NULL);
    }
    free(text);
    char *js = render(&t, &rep, 1);
    CHECK(js != NULL);
    if (js != NULL) {
        CHECK(strstr(js, "\"total\":{\"key\":\"all\",\"sessions\":{\"encrypted\":3,\"all\":5,"
                         "\"percent\":60.0},\"messages\":{\"encrypted\":4,\"all\":8,\"percent\":"
                         "50.0},\"senders\":{\"encrypted\":2,\"all\":4,\"percent\":50.0}}") != NULL);
        CHECK(strstr(js, "{\"key\":\"TLSv1.3\",\"sessions\":{\"count\":2,\"all\":5,") != NULL);
        CHECK(strstr(js, "\"other_countries\":{\"key\":\"other\",\"countries\":2,") != NULL);
    }
    free(js);
    tally_free(&t);
}

UNIT_TEST(report_tally_empty_prints_dashes_and_nulls) {
    struct tally t;
    tally_init(&t);
    struct tally_report rep = {0};
    rep.source = "mbox";
    rep.mailbox = 1;
    char *text = render(&t, &rep, 0);
    CHECK(text != NULL && strstr(text, "\n  all                     -") != NULL);
    free(text);
    char *js = render(&t, &rep, 1);
    CHECK(js != NULL && strstr(js, "\"messages\":{\"encrypted\":0,\"all\":0,\"percent\":null}") !=
                            NULL);
    CHECK(js != NULL && strstr(js, "\"sessions\"") == NULL);
    free(js);
    tally_free(&t);
}

/* ---- STARTTLS failure memory (issue 12): the starttls= field ---- */

/* end_line writes an event=end line as the proxy does, with starttls=
 * |starttls| after sni= (NULL: no field, as in an older log). */
static const char *end_line(char *out, size_t size, const char *client, const char *tls,
                            const char *starttls, unsigned accepted) {
    char field[64] = "";
    if (starttls != NULL) {
        snprintf(field, sizeof(field), " starttls=%s", starttls);
    }
    snprintf(out, size,
             "2024-05-01T10:00:00.000Z level=info session=65f0a1b2000000001 event=end "
             "client=%s port=40000 name=- listener=smtp local_port=2525 scope=loopback "
             "country=- asn=0 as_org=\"\" helo=client.example tls=%s cipher=- group=- sni=-%s "
             "messages=%u accepted=%u forged_removed=0 errors=0 pregreet=no sync_violations=0 "
             "bytes_in=500 bytes_out=300 result=quit duration=0.010",
             client, tls, field, accepted, accepted);
    return out;
}

/* count_line reads |line| (text, or its JSON form when |json|) as the
 * report does and counts its STARTTLS memory into |m|. */
static void count_line(struct tally_starttls *m, const char *line, int json) {
    static struct logline l;
    static char js[16384];
    struct session_record r;
    if (json) {
        CHECK(log_text_to_json(js, sizeof(js), line, strlen(line)) > 0);
        line = js;
    }
    CHECK(logline_parse(&l, line, strlen(line)));
    CHECK(session_record_from_logline(&l, &r));
    tally_starttls_add(m, &r);
}

static enum session_starttls starttls_of(const char *line) {
    static struct logline l;
    struct session_record r;
    if (!logline_parse(&l, line, strlen(line)) || !session_record_from_logline(&l, &r)) {
        return (enum session_starttls)-1;
    }
    return r.starttls;
}

/* render_starttls prints an empty log report carrying |m|. */
static char *render_starttls(const struct tally_starttls *m, int json) {
    struct tally t;
    tally_init(&t);
    struct tally_report rep = {0};
    rep.source = "log";
    rep.top = 10;
    rep.starttls = *m;
    char *out = render(&t, &rep, json);
    tally_free(&t);
    return out;
}

UNIT_TEST(report_reads_every_starttls_value_of_the_end_line) {
    char b[1024];
    CHECK_INT(starttls_of(end_line(b, sizeof(b), "127.0.0.2", "none", "none", 1)),
              SESSION_STARTTLS_NONE);
    CHECK_INT(starttls_of(end_line(b, sizeof(b), "127.0.0.2", "none", "offered", 1)),
              SESSION_STARTTLS_OFFERED);
    CHECK_INT(starttls_of(end_line(b, sizeof(b), "127.0.0.2", "TLSv1.3", "used", 1)),
              SESSION_STARTTLS_USED);
    CHECK_INT(starttls_of(end_line(b, sizeof(b), "127.0.0.2", "none", "withheld", 1)),
              SESSION_STARTTLS_WITHHELD);
    CHECK_INT(starttls_of(end_line(b, sizeof(b), "127.0.0.2", "none", "failed", 0)),
              SESSION_STARTTLS_FAILED);
    /* The line of the issue, as the proxy writes it. */
    const char *issue =
        "2024-05-01T10:00:00.000Z level=info session=65f0a1b2000000001 event=end "
        "client=127.0.0.2 port=40000 name=- listener=smtp local_port=2525 scope=loopback "
        "country=- asn=0 as_org=\"\" helo=client.example tls=none cipher=- group=- sni=- "
        "starttls=withheld messages=1 accepted=1 forged_removed=0 errors=0 pregreet=no "
        "sync_violations=0 bytes_in=500 bytes_out=300 result=quit duration=0.010";
    CHECK_INT(starttls_of(issue), SESSION_STARTTLS_WITHHELD);
}

UNIT_TEST(report_treats_a_missing_starttls_field_as_unknown) {
    char b[1024];
    CHECK_INT(starttls_of(end_line(b, sizeof(b), "127.0.0.2", "none", NULL, 1)),
              SESSION_STARTTLS_UNKNOWN);
    /* "-", an empty value, a value not known (or only begun) are unknown
     * too: nothing is taken for withheld but "withheld". */
    CHECK_INT(starttls_of(end_line(b, sizeof(b), "127.0.0.2", "none", "-", 1)),
              SESSION_STARTTLS_UNKNOWN);
    CHECK_INT(starttls_of(end_line(b, sizeof(b), "127.0.0.2", "none", "", 1)),
              SESSION_STARTTLS_UNKNOWN);
    CHECK_INT(starttls_of(end_line(b, sizeof(b), "127.0.0.2", "none", "withheldx", 1)),
              SESSION_STARTTLS_UNKNOWN);
    CHECK_INT(starttls_of(end_line(b, sizeof(b), "127.0.0.2", "none", "withh", 1)),
              SESSION_STARTTLS_UNKNOWN);
    CHECK_INT(starttls_of(end_line(b, sizeof(b), "127.0.0.2", "none", "WITHHELD", 1)),
              SESSION_STARTTLS_UNKNOWN);
    struct tally_starttls m = {0};
    count_line(&m, end_line(b, sizeof(b), "127.0.0.2", "none", NULL, 2), 0);
    count_line(&m, end_line(b, sizeof(b), "127.0.0.3", "none", NULL, 0), 1);
    CHECK_INT(m.unknown, 2);
    CHECK_INT(m.withheld, 0);
    CHECK_INT(m.withheld_delivered, 0);
    CHECK_INT(m.withheld_messages, 0);
    CHECK_INT(m.failed, 0);
    char *text = render_starttls(&m, 0);
    CHECK(text != NULL);
    if (text != NULL) {
        CHECK(strstr(text, "\nSTARTTLS failure memory: 0 sessions delivered 0 messages in "
                           "plaintext because STARTTLS was withheld; withheld in 0 sessions; "
                           "0 STARTTLS handshakes failed\n"
                           "  unknown for 2 sessions: no starttls field in the end line (an "
                           "older log)\n") != NULL);
    }
    free(text);
}

UNIT_TEST(report_counts_plaintext_deliveries_when_starttls_was_withheld) {
    char b[1024];
    for (int json = 0; json <= 1; json++) {
        struct tally_starttls m = {0};
        count_line(&m, end_line(b, sizeof(b), "127.0.0.2", "none", "withheld", 1), json);
        count_line(&m, end_line(b, sizeof(b), "127.0.0.3", "none", "withheld", 2), json);
        count_line(&m, end_line(b, sizeof(b), "127.0.0.4", "none", "withheld", 1), json);
        count_line(&m, end_line(b, sizeof(b), "127.0.0.5", "TLSv1.3", "used", 3), json);
        count_line(&m, end_line(b, sizeof(b), "127.0.0.6", "none", "offered", 5), json);
        count_line(&m, end_line(b, sizeof(b), "127.0.0.7", "TLSv1.3", "none", 1), json);
        CHECK_INT(m.withheld, 3);
        CHECK_INT(m.withheld_delivered, 3);
        CHECK_INT(m.withheld_messages, 4); /* only the withheld sessions' messages */
        CHECK_INT(m.failed, 0);
        CHECK_INT(m.unknown, 0);
    }
    struct tally_starttls m = {5, 3, 4, 2, 0};
    char *text = render_starttls(&m, 0);
    CHECK(text != NULL);
    if (text != NULL) {
        CHECK(strstr(text, "\n\nSTARTTLS failure memory: 3 sessions delivered 4 messages in "
                           "plaintext because STARTTLS was withheld; withheld in 5 sessions; "
                           "2 STARTTLS handshakes failed\n") != NULL);
        CHECK(strstr(text, "unknown for") == NULL); /* every line said */
    }
    free(text);
    struct tally_starttls one = {1, 1, 1, 1, 1};
    text = render_starttls(&one, 0);
    CHECK(text != NULL);
    if (text != NULL) {
        CHECK(strstr(text, "\nSTARTTLS failure memory: 1 session delivered 1 message in "
                           "plaintext because STARTTLS was withheld; withheld in 1 session; "
                           "1 STARTTLS handshake failed\n"
                           "  unknown for 1 session: ") != NULL);
    }
    free(text);
}

UNIT_TEST(report_does_not_count_withheld_sessions_without_accepted_mail) {
    char b[1024];
    struct tally_starttls m = {0};
    count_line(&m, end_line(b, sizeof(b), "127.0.0.2", "none", "withheld", 0), 0);
    count_line(&m, end_line(b, sizeof(b), "127.0.0.3", "none", "withheld", 0), 1);
    count_line(&m, end_line(b, sizeof(b), "127.0.0.4", "none", "withheld", 2), 0);
    CHECK_INT(m.withheld, 3);           /* withheld in all three */
    CHECK_INT(m.withheld_delivered, 1); /* but only one delivered */
    CHECK_INT(m.withheld_messages, 2);
}

UNIT_TEST(report_counts_failed_starttls_handshakes) {
    char b[1024];
    struct tally_starttls m = {0};
    count_line(&m, end_line(b, sizeof(b), "127.0.0.2", "none", "failed", 0), 0);
    count_line(&m, end_line(b, sizeof(b), "127.0.0.2", "none", "failed", 0), 1);
    count_line(&m, end_line(b, sizeof(b), "127.0.0.2", "none", "withheld", 1), 0);
    CHECK_INT(m.failed, 2);
    CHECK_INT(m.withheld, 1);
    CHECK_INT(m.withheld_delivered, 1);
    CHECK_INT(m.withheld_messages, 1);
}

UNIT_TEST(report_json_gives_the_starttls_memory_object) {
    struct tally_starttls m = {5, 3, 4, 2, 7};
    char *js = render_starttls(&m, 1);
    CHECK(js != NULL);
    if (js != NULL) {
        CHECK(strstr(js, ",\n\"starttls_memory\":{\"withheld_sessions\":5,"
                         "\"withheld_delivered_sessions\":3,\"withheld_delivered_messages\":4,"
                         "\"starttls_failed\":2,\"unknown_sessions\":7}}\n") != NULL);
    }
    free(js);
    struct tally_starttls zero = {0};
    js = render_starttls(&zero, 1);
    CHECK(js != NULL && strstr(js, "\"starttls_memory\":{\"withheld_sessions\":0,"
                                   "\"withheld_delivered_sessions\":0,"
                                   "\"withheld_delivered_messages\":0,\"starttls_failed\":0,"
                                   "\"unknown_sessions\":0}") != NULL);
    free(js);
}

UNIT_TEST(report_says_starttls_memory_is_not_available_from_a_mailbox) {
    struct tally t;
    tally_init(&t);
    struct tally_report rep = {0};
    rep.source = "mbox";
    rep.mailbox = 1;
    rep.starttls.withheld = 9; /* never read for a mailbox */
    char *text = render(&t, &rep, 0);
    CHECK(text != NULL);
    if (text != NULL) {
        CHECK(strstr(text, "\nSTARTTLS failure memory: not available from Received fields "
                           "(only the proxy's log records it)\n") != NULL);
        CHECK(strstr(text, "withheld") == NULL);
    }
    free(text);
    char *js = render(&t, &rep, 1);
    CHECK(js != NULL && strstr(js, ",\n\"starttls_memory\":null}\n") != NULL);
    free(js);
    tally_free(&t);
}

/* report_run end to end on a temporary log: the STARTTLS memory counts
 * every session ended in the window, with mail or not, and none outside. */
UNIT_TEST(report_counts_starttls_memory_over_the_sessions_in_the_window) {
    char path[] = "/tmp/test_report_starttls_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) {
        return;
    }
    FILE *f = fdopen(fd, "w");
    CHECK(f != NULL);
    if (f == NULL) {
        close(fd);
        unlink(path);
        return;
    }
    char b[1024];
    fprintf(f, "%s\n", end_line(b, sizeof(b), "127.0.0.2", "none", "withheld", 1));
    fprintf(f, "%s\n", end_line(b, sizeof(b), "127.0.0.3", "none", "withheld", 0));
    fprintf(f, "%s\n", end_line(b, sizeof(b), "127.0.0.4", "none", "failed", 0));
    fprintf(f, "%s\n", end_line(b, sizeof(b), "127.0.0.5", "TLSv1.3", "used", 2));
    fprintf(f, "%s\n", end_line(b, sizeof(b), "127.0.0.6", "none", NULL, 1));
    static char js[16384];
    end_line(b, sizeof(b), "127.0.0.7", "none", "withheld", 3);
    CHECK(log_text_to_json(js, sizeof(js), b, strlen(b)) > 0);
    fprintf(f, "%s\n", js);
    /* Outside a window ending at 2024-05-02: not counted. */
    end_line(b, sizeof(b), "127.0.0.8", "none", "withheld", 1);
    b[3] = '5'; /* 2025-05-01 */
    fprintf(f, "%s\n", b);
    fclose(f);

    char *out = NULL;
    size_t len = 0;
    FILE *o = open_memstream(&out, &len);
    FILE *e = fopen("/dev/null", "w");
    char *argv[] = {"report", "--json", "--until", "2024-05-02", path, NULL};
    CHECK(o != NULL && e != NULL);
    if (o != NULL && e != NULL) {
        CHECK_INT(report_run(5, argv, o, e), 0);
        fclose(o);
        o = NULL;
        CHECK(out != NULL && strstr(out, "\"outside_window\":1,") != NULL);
        CHECK(out != NULL && strstr(out, "\"starttls_memory\":{\"withheld_sessions\":3,"
                                         "\"withheld_delivered_sessions\":2,"
                                         "\"withheld_delivered_messages\":4,"
                                         "\"starttls_failed\":1,\"unknown_sessions\":1}") !=
                                  NULL);
        /* The tables: the four sessions with mail, as before the field. */
        CHECK(out != NULL && strstr(out, "\"total\":{\"key\":\"all\",\"sessions\":{"
                                         "\"encrypted\":1,\"all\":4,") != NULL);
    }
    if (o != NULL) {
        fclose(o);
    }
    if (e != NULL) {
        fclose(e);
    }
    free(out);
    unlink(path);
}
