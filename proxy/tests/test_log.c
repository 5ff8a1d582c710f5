/*
 * test_log.c - log.h: a text line read back as fields, and the JSON
 * form of it (log_format = json); the line each target gets, and a file
 * target reopened under writing threads.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "core/log.h"
#include "unit.h"

/* fields renders every field of |line| as "key=[value]" joined by '|'. */
static const char *fields(const char *line) {
    static char out[4096];
    struct log_cursor c;
    struct log_field f;
    size_t o = 0;
    out[0] = '\0';
    log_cursor_init(&c, line, strlen(line));
    while (log_cursor_next(&c, &f) && o + 8 < sizeof(out)) {
        o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%.*s=[%.*s]", o ? "|" : "",
                              (int)f.key_len, f.key, (int)f.value_len, f.value);
    }
    return out;
}

static const char *json(const char *line) {
    static char out[16384];
    if (log_text_to_json(out, sizeof(out), line, strlen(line)) == 0) {
        return "(too small)";
    }
    return out;
}

UNIT_TEST(log_cursor_reads_time_level_and_fields) {
    CHECK_STR(fields("2024-05-01T10:00:00.123Z level=info session=ab event=end port=25\n"),
              "time=[2024-05-01T10:00:00.123Z]|level=[info]|session=[ab]|event=[end]|port=[25]");
}

UNIT_TEST(log_cursor_quoted_values_keep_blanks_and_inner_quotes) {
    CHECK_STR(fields("t level=info as_org=\"Example Networks, Inc.\" helo=x"),
              "time=[t]|level=[info]|as_org=[Example Networks, Inc.]|helo=[x]");
    /* A config error quoting a key: the closing quote ends the line. */
    CHECK_STR(fields("t event=reload reason=\"a.conf:3: unknown key \"foo\"\""),
              "time=[t]|event=[reload]|reason=[a.conf:3: unknown key \"foo\"]");
    /* ... or comes before another key=value token. */
    CHECK_STR(fields("t reason=\"say \"hi\" now\" code=1"),
              "time=[t]|reason=[say \"hi\" now]|code=[1]");
    CHECK_STR(fields("t reason=\"\" x=1"), "time=[t]|reason=[]|x=[1]");
    /* An unclosed quote: the rest of the line. */
    CHECK_STR(fields("t reason=\"cut off"), "time=[t]|reason=[cut off]");
}

UNIT_TEST(log_cursor_free_text_after_fields_is_msg) {
    CHECK_STR(fields("t level=warning event=geoip_missing key=country file=/x.mmdb: the field "
                     "is left out"),
              "time=[t]|level=[warning]|event=[geoip_missing]|key=[country]|file=[/x.mmdb]|"
              "msg=[the field is left out]");
    /* A colon before another field stays in the value. */
    CHECK_STR(fields("t client=::1 local=a: b=c"), "time=[t]|client=[::1]|local=[a:]|b=[c]");
    CHECK_STR(fields("t empty= next=1"), "time=[t]|empty=[]|next=[1]");
}

UNIT_TEST(log_cursor_line_without_timestamp) {
    CHECK_STR(fields("event=x a=b"), "event=[x]|a=[b]");
    CHECK_STR(fields(""), "");
    CHECK_STR(fields("   \r\n"), "");
}

UNIT_TEST(log_json_has_the_same_keys) {
    CHECK_STR(json("2024-05-01T10:00:00.123Z level=info session=ab event=end "
                   "as_org=\"A B\" tls=TLSv1.3"),
              "{\"time\":\"2024-05-01T10:00:00.123Z\",\"level\":\"info\",\"session\":\"ab\","
              "\"event\":\"end\",\"as_org\":\"A B\",\"tls\":\"TLSv1.3\"}");
    CHECK_STR(json("t event=fd_limit_low limit=1: max_connections cannot be reached"),
              "{\"time\":\"t\",\"event\":\"fd_limit_low\",\"limit\":\"1\","
              "\"msg\":\"max_connections cannot be reached\"}");
    CHECK_STR(json(""), "{}");
}

UNIT_TEST(log_json_escapes_quotes_controls_and_bad_utf8) {
    char out[128];
    CHECK(log_json_escape(out, sizeof(out), "a\"b\\c", 5) > 0);
    CHECK_STR(out, "\"a\\\"b\\\\c\"");
    CHECK(log_json_escape(out, sizeof(out), "\n\r\t\x01\x1f\x7f", 6) > 0);
    CHECK_STR(out, "\"\\n\\r\\t\\u0001\\u001f\\u007f\"");
    /* Valid UTF-8 as is: e-acute, the euro sign, U+1F600. */
    CHECK(log_json_escape(out, sizeof(out), "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9) > 0);
    CHECK_STR(out, "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
    /* Invalid: a lone continuation, a Latin-1 byte, an overlong '/', a
     * surrogate, a truncated sequence, past U+10FFFF. */
    CHECK(log_json_escape(out, sizeof(out), "\x80", 1) > 0);
    CHECK_STR(out, "\"\\u0080\"");
    CHECK(log_json_escape(out, sizeof(out), "caf\xe9!", 5) > 0);
    CHECK_STR(out, "\"caf\\u00e9!\"");
    CHECK(log_json_escape(out, sizeof(out), "\xc0\xaf", 2) > 0);
    CHECK_STR(out, "\"\\u00c0\\u00af\"");
    CHECK(log_json_escape(out, sizeof(out), "\xed\xa0\x80", 3) > 0);
    CHECK_STR(out, "\"\\u00ed\\u00a0\\u0080\"");
    CHECK(log_json_escape(out, sizeof(out), "\xe2\x82", 2) > 0);
    CHECK_STR(out, "\"\\u00e2\\u0082\"");
    CHECK(log_json_escape(out, sizeof(out), "\xf4\x90\x80\x80", 4) > 0);
    CHECK_STR(out, "\"\\u00f4\\u0090\\u0080\\u0080\"");
    /* NUL is a byte like any other. */
    CHECK(log_json_escape(out, sizeof(out), "a\0b", 3) > 0);
    CHECK_STR(out, "\"a\\u0000b\"");
}

UNIT_TEST(log_json_escape_reports_a_short_buffer) {
    char out[8];
    CHECK_INT(log_json_escape(out, sizeof(out), "abcdef", 6), 0);
    CHECK_INT(log_json_escape(out, sizeof(out), "abcde", 5), 7);
    CHECK_INT(log_json_escape(out, 7, "\x01", 1), 0);
    char big[6 * 4 + 3];
    CHECK_INT(log_json_escape(big, sizeof(big), "\x01\x02\x03\x04", 4), 26);
}

UNIT_TEST(log_json_worst_case_fits_6n_plus_16) {
    /* Short fields of control bytes are the worst case of the bound
     * log_msg sizes its buffer by. */
    static char line[2046], out[6 * sizeof(line) + 16];
    for (size_t i = 0; i < sizeof(line); i++) {
        line[i] = "a=\x01 "[i % 4];
    }
    CHECK(log_text_to_json(out, sizeof(out), line, sizeof(line)) > 0);
    for (size_t i = 0; i < sizeof(line); i++) {
        line[i] = (char)0xff;
    }
    CHECK(log_text_to_json(out, sizeof(out), line, sizeof(line)) > 0);
    line[0] = 'k';
    line[1] = '=';
    CHECK(log_text_to_json(out, sizeof(out), line, sizeof(line)) > 0);
}

/* ---- the line each target gets ---- */

static const char *line_of(const struct timeval *when, enum log_level level,
                           enum log_format format, const char *body) {
    static char out[LOG_OUT_MAX + 1];
    size_t n = log_format_line(out, when, level, format, body);
    out[n] = '\0';
    return out;
}

UNIT_TEST(log_line_has_a_utc_timestamp_in_milliseconds_then_the_level) {
    struct timeval tv = {.tv_sec = 1714557600, .tv_usec = 123999};
    CHECK_STR(line_of(&tv, LOG_LEVEL_INFO, LOG_FORMAT_TEXT, "event=end port=25"),
              "2024-05-01T10:00:00.123Z level=info event=end port=25\n");
    CHECK_STR(line_of(&tv, LOG_LEVEL_WARNING, LOG_FORMAT_JSON, "event=x a=\"b c\""),
              "{\"time\":\"2024-05-01T10:00:00.123Z\",\"level\":\"warning\",\"event\":\"x\","
              "\"a\":\"b c\"}\n");
}

UNIT_TEST(log_line_for_syslog_has_no_timestamp_in_either_format) {
    CHECK_STR(line_of(NULL, LOG_LEVEL_ERROR, LOG_FORMAT_TEXT, "event=reload result=failed"),
              "level=error event=reload result=failed\n");
    /* The first token has a '=': it is a field, not a time. */
    CHECK_STR(line_of(NULL, LOG_LEVEL_DEBUG, LOG_FORMAT_JSON, "event=x"),
              "{\"level\":\"debug\",\"event\":\"x\"}\n");
}

UNIT_TEST(log_line_is_cut_to_the_line_limit_and_keeps_its_newline) {
    static char body[3 * LOG_LINE_MAX];
    memset(body, 'x', sizeof(body) - 1);
    body[0] = 'k';
    body[1] = '=';
    struct timeval tv = {0};
    static char out[LOG_OUT_MAX];
    size_t n = log_format_line(out, &tv, LOG_LEVEL_INFO, LOG_FORMAT_TEXT, body);
    CHECK_INT(n, LOG_LINE_MAX);
    CHECK(out[n - 1] == '\n');
    CHECK(memchr(out, '\n', n - 1) == NULL);
    n = log_format_line(out, NULL, LOG_LEVEL_INFO, LOG_FORMAT_JSON, body);
    CHECK(n > LOG_LINE_MAX);
    CHECK(out[n - 1] == '\n' && out[n - 2] == '}');
}

UNIT_TEST(log_syslog_facility_in_the_order_of_the_config_names) {
    CHECK_INT(log_syslog_facility(0), LOG_MAIL);
    CHECK_INT(log_syslog_facility(1), LOG_DAEMON);
    CHECK_INT(log_syslog_facility(2), LOG_LOCAL0);
    CHECK_INT(log_syslog_facility(9), LOG_LOCAL7);
    CHECK_INT(log_syslog_facility(10), -1);
    CHECK_INT(log_syslog_facility(-1), -1);
}

UNIT_TEST(log_syslog_priority_of_each_level) {
    CHECK_INT(log_syslog_priority(LOG_LEVEL_ERROR), LOG_ERR);
    CHECK_INT(log_syslog_priority(LOG_LEVEL_WARNING), LOG_WARNING);
    CHECK_INT(log_syslog_priority(LOG_LEVEL_INFO), LOG_INFO);
    CHECK_INT(log_syslog_priority(LOG_LEVEL_DEBUG), LOG_DEBUG);
}

/* ---- a file target ---- */

/* count_lines counts the lines of |path| that are whole (a timestamp,
 * "level=info", a newline) and hold |needle|; *bad counts the others. */
static long count_lines(const char *path, const char *needle, long *bad) {
    FILE *f = fopen(path, "r");
    long n = 0;
    char line[4096];
    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        size_t len = strlen(line);
        int whole = len > 0 && line[len - 1] == '\n' && strstr(line, "Z level=info ") == line + 23;
        if (whole && strstr(line, needle) != NULL) {
            n++;
        } else {
            (*bad)++;
        }
    }
    fclose(f);
    return n;
}

#define WRITERS 4
#define LINES_EACH 3000

static void *write_lines(void *arg) {
    long id = (long)arg;
    for (int i = 0; i < LINES_EACH; i++) {
        log_info("event=test writer=%ld line=%d padding=%s", id, i,
                 "................................................................");
    }
    return NULL;
}

UNIT_TEST(log_file_reopened_under_writers_loses_and_splits_no_line) {
    char dir[] = "/tmp/stp-test-log-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256], rotated[64][256], err[256];
    snprintf(path, sizeof(path), "%s/proxy.log", dir);
    CHECK(log_set_target(LOG_OUTPUT_FILE, 0, path, err, sizeof(err)));
    CHECK_INT(log_output_in_use(), LOG_OUTPUT_FILE);
    struct stat st;
    mode_t mask = umask(0);
    umask(mask);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == (0640 & ~mask));
    /* The same target again is no reopen. */
    CHECK(log_set_target(LOG_OUTPUT_FILE, 0, path, err, sizeof(err)));
    pthread_t t[WRITERS];
    for (long i = 0; i < WRITERS; i++) {
        CHECK(pthread_create(&t[i], NULL, write_lines, (void *)i) == 0);
    }
    int rotations = 0;
    for (; rotations < 64; rotations++) {
        snprintf(rotated[rotations], sizeof(rotated[rotations]), "%s/proxy.log.%d", dir,
                 rotations);
        CHECK(rename(path, rotated[rotations]) == 0);
        CHECK(log_reopen(err, sizeof(err)));
        usleep(500);
    }
    for (int i = 0; i < WRITERS; i++) {
        pthread_join(t[i], NULL);
    }
    /* A file that cannot be opened keeps the old one. */
    char missing[300];
    snprintf(missing, sizeof(missing), "%s/no/such/dir.log", dir);
    CHECK(!log_set_target(LOG_OUTPUT_FILE, 0, missing, err, sizeof(err)));
    CHECK(strstr(err, "cannot open log_file") != NULL);
    CHECK_INT(log_output_in_use(), LOG_OUTPUT_FILE);
    CHECK(log_set_target(LOG_OUTPUT_STDERR, 0, NULL, err, sizeof(err)));
    long total = 0, bad = 0;
    for (int i = 0; i < rotations; i++) {
        total += count_lines(rotated[i], "event=test writer=", &bad);
        unlink(rotated[i]);
    }
    total += count_lines(path, "event=test writer=", &bad);
    unlink(path);
    rmdir(dir);
    CHECK_INT(total, WRITERS * LINES_EACH);
    CHECK_INT(bad, 0);
}
