/*
 * test_log.c - log.h: a text line read back as fields, and the JSON
 * form of it (log_format = json).
 */
#include <stdio.h>

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
