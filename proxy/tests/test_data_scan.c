/*
 * test_data_scan.c - data_scan.h: the DATA stream (ARCHITECTURE.md §5.4).
 *
 * Every case runs twice: the whole input in one feed, and one byte per
 * feed (the scanner must be resumable at any byte). Both runs must give
 * the same output, result, consumed count and counters.
 */
#include <stdio.h>
#include <stdlib.h>

#include "protocol/data_scan.h"
#include "unit.h"

#define STATUS "X-TLS-Status"

struct scan_run {
    enum data_result result;
    size_t consumed;
    size_t dropped_fields;
    size_t bare_endings;
    struct buffer out;
};

/* scan_whole feeds all of |in| at once. */
static void scan_whole(const char *in, size_t n, struct scan_run *r) {
    struct data_scan s;
    memset(r, 0, sizeof(*r));
    data_scan_init(&s, STATUS);
    r->result = data_scan_feed(&s, in, n, &r->out, &r->consumed);
    r->dropped_fields = s.dropped_fields;
    r->bare_endings = s.bare_endings;
}

/* scan_bytewise feeds |in| one byte per call until DATA_END or the input
 * is used up. */
static void scan_bytewise(const char *in, size_t n, struct scan_run *r, int line) {
    struct data_scan s;
    memset(r, 0, sizeof(*r));
    data_scan_init(&s, STATUS);
    r->result = DATA_MORE;
    for (size_t i = 0; i < n && r->result == DATA_MORE; i++) {
        size_t used = 777;
        r->result = data_scan_feed(&s, in + i, 1, &r->out, &used);
        if (used != 1) {
            unit_fail(__FILE__, line, "bytewise: byte %zu consumed %zu (result %d)", i, used,
                      (int)r->result);
            if (used == 0 && r->result == DATA_MORE) {
                break;
            }
        }
        r->consumed += used;
    }
    r->dropped_fields = s.dropped_fields;
    r->bare_endings = s.bare_endings;
}

static const char *out_of(const struct scan_run *r) {
    return r->out.len ? buffer_head(&r->out) : "";
}

/* line_of writes |prefix|, then |n| copies of |c|, then |suffix| into a
 * new buffer; returns its length in *out_len. */
static char *line_of(const char *prefix, char c, size_t n, const char *suffix,
                     size_t *out_len) {
    size_t lp = strlen(prefix), ls = strlen(suffix);
    char *p = malloc(lp + n + ls + 1);
    memcpy(p, prefix, lp);
    memset(p + lp, c, n);
    memcpy(p + lp + n, suffix, ls + 1);
    *out_len = lp + n + ls;
    return p;
}

/* check_scan runs both ways and compares with the expectation:
 * |want_out| (|want_len| bytes), result, consumed, dropped, bare. */
static void check_scan_n(const char *in, size_t n, const char *want_out, size_t want_len,
                         enum data_result want_result, size_t want_consumed,
                         size_t want_dropped, size_t want_bare, int line) {
    struct scan_run w, b;
    scan_whole(in, n, &w);
    scan_bytewise(in, n, &b, line);
    struct scan_run *runs[2] = {&w, &b};
    const char *names[2] = {"whole", "bytewise"};
    for (int k = 0; k < 2; k++) {
        struct scan_run *r = runs[k];
        if (r->out.len != want_len || memcmp(out_of(r), want_out, want_len) != 0) {
            unit_fail(__FILE__, line, "%s output of %s", names[k],
                      unit_show_bytes(in, n > 300 ? 300 : n));
            unit_fail(__FILE__, line, "      got  %s",
                      unit_show_bytes(out_of(r), r->out.len > 600 ? 600 : r->out.len));
            unit_fail(__FILE__, line, "      want %s",
                      unit_show_bytes(want_out, want_len > 600 ? 600 : want_len));
        }
        if (r->result != want_result) {
            unit_fail(__FILE__, line, "%s result %d, want %d", names[k], (int)r->result,
                      (int)want_result);
        }
        if (r->consumed != want_consumed) {
            unit_fail(__FILE__, line, "%s consumed %zu, want %zu", names[k], r->consumed,
                      want_consumed);
        }
        if (r->dropped_fields != want_dropped) {
            unit_fail(__FILE__, line, "%s dropped_fields %zu, want %zu", names[k],
                      r->dropped_fields, want_dropped);
        }
        if (r->bare_endings != want_bare) {
            unit_fail(__FILE__, line, "%s bare_endings %zu, want %zu", names[k],
                      r->bare_endings, want_bare);
        }
    }
    buffer_free(&w.out);
    buffer_free(&b.out);
}

/* check_scan: string inputs, consumed = everything up to the end (or all
 * of the input when |want_result| is DATA_MORE) minus |left| bytes. */
#define check_scan(in, want_out, want_result, left, dropped, bare)                       \
    check_scan_n((in), sizeof(in) - 1, (want_out), sizeof(want_out) - 1, (want_result), \
                 sizeof(in) - 1 - (left), (dropped), (bare), __LINE__)

/* ---- end of data ---- */

UNIT_TEST(data_scan_plain_message_is_copied_and_ends_at_dot_line) {
    check_scan("Subject: hi\r\n\r\nbody line\r\n.\r\nQUIT\r\n",
               "Subject: hi\r\n\r\nbody line\r\n.\r\n", DATA_END, 6, 0, 0);
}

UNIT_TEST(data_scan_bytes_after_end_are_left_unconsumed) {
    check_scan("a\r\n.\r\nMAIL FROM:<x@y>\r\nRCPT TO:<z@w>\r\n", "a\r\n.\r\n", DATA_END,
               strlen("MAIL FROM:<x@y>\r\nRCPT TO:<z@w>\r\n"), 0, 0);
}

UNIT_TEST(data_scan_immediate_dot_line_is_empty_message_end) {
    check_scan(".\r\n", ".\r\n", DATA_END, 0, 0, 0);
    check_scan(".\r\nQUIT\r\n", ".\r\n", DATA_END, 6, 0, 0);
}

UNIT_TEST(data_scan_message_without_end_is_more_and_all_consumed) {
    check_scan("Subject: x\r\n\r\nhalf a li", "Subject: x\r\n\r\nhalf a li", DATA_MORE, 0,
               0, 0);
}

UNIT_TEST(data_scan_dot_line_after_header_block_and_empty_line_ends) {
    check_scan("Subject: x\r\n\r\n.\r\n", "Subject: x\r\n\r\n.\r\n", DATA_END, 0, 0, 0);
    check_scan("Subject: x\r\n.\r\n", "Subject: x\r\n.\r\n", DATA_END, 0, 0, 0);
}

UNIT_TEST(data_scan_crlf_dot_crlf_ends_only_after_a_real_crlf) {
    /* the dot line follows a bare-LF line: not the end */
    check_scan("a\n.\r\nb\r\n.\r\n", "a\r\n..\r\nb\r\n.\r\n", DATA_END, 0, 0, 1);
}

UNIT_TEST(data_scan_bare_lf_endings_are_normalised_and_counted) {
    check_scan("Subject: x\n\nline1\nline2\r\n.\r\n",
               "Subject: x\r\n\r\nline1\r\nline2\r\n.\r\n", DATA_END, 0, 0, 3);
}

UNIT_TEST(data_scan_bare_cr_endings_are_normalised_and_counted) {
    check_scan("Subject: x\r\n\r\nline1\rline2\r\n.\r\n",
               "Subject: x\r\n\r\nline1\r\nline2\r\n.\r\n", DATA_END, 0, 0, 1);
}

UNIT_TEST(data_scan_bare_lf_dot_lf_is_not_end_of_data) {
    /* SMTP smuggling: "\n.\n" then a second transaction */
    check_scan("Subject: x\r\n\r\nbody\n.\nMAIL FROM:<evil@x>\r\nRCPT TO:<v@y>\r\n"
               "DATA\r\n\r\nsmuggled\r\n.\r\nQUIT\r\n",
               "Subject: x\r\n\r\nbody\r\n..\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<v@y>\r\n"
               "DATA\r\n\r\nsmuggled\r\n.\r\n",
               DATA_END, 6, 0, 2);
}

UNIT_TEST(data_scan_bare_lf_dot_lf_with_no_later_end_is_more) {
    check_scan("body\n.\nMAIL FROM:<evil@x>\r\n",
               "body\r\n..\r\nMAIL FROM:<evil@x>\r\n", DATA_MORE, 0, 0, 2);
}

UNIT_TEST(data_scan_bare_cr_dot_cr_is_not_end_of_data) {
    check_scan("Subject: x\r\n\r\nbody\r.\rMAIL FROM:<e@x>\r\n.\r\n",
               "Subject: x\r\n\r\nbody\r\n..\r\nMAIL FROM:<e@x>\r\n.\r\n", DATA_END, 0, 0,
               2);
}

UNIT_TEST(data_scan_lf_dot_crlf_is_not_end_of_data) {
    check_scan("Subject: x\r\n\r\nbody\n.\r\nMAIL FROM:<e@x>\r\n.\r\n",
               "Subject: x\r\n\r\nbody\r\n..\r\nMAIL FROM:<e@x>\r\n.\r\n", DATA_END, 0, 0,
               1);
}

UNIT_TEST(data_scan_crlf_dot_lf_is_not_end_of_data) {
    check_scan("Subject: x\r\n\r\nbody\r\n.\nMAIL FROM:<e@x>\r\n.\r\n",
               "Subject: x\r\n\r\nbody\r\n..\r\nMAIL FROM:<e@x>\r\n.\r\n", DATA_END, 0, 0,
               1);
}

UNIT_TEST(data_scan_cr_dot_lf_is_not_end_of_data) {
    check_scan("Subject: x\r\n\r\nbody\r.\nMAIL FROM:<e@x>\r\n.\r\n",
               "Subject: x\r\n\r\nbody\r\n..\r\nMAIL FROM:<e@x>\r\n.\r\n", DATA_END, 0, 0,
               2);
}

UNIT_TEST(data_scan_dot_bare_cr_then_text_is_not_end_of_data) {
    check_scan("Subject: x\r\n\r\nbody\r\n.\rX\r\n.\r\n",
               "Subject: x\r\n\r\nbody\r\n..\r\nX\r\n.\r\n", DATA_END, 0, 0, 1);
}

UNIT_TEST(data_scan_dot_bare_cr_then_crlf_is_not_end_of_data) {
    /* ".\r" then "\r\n": a lone dot (bare CR), then an empty line */
    check_scan("a\r\n.\r\r\n.\r\n", "a\r\n..\r\n\r\n.\r\n", DATA_END, 0, 0, 1);
}

UNIT_TEST(data_scan_dot_followed_by_text_is_a_stuffed_line_not_end) {
    check_scan("a\r\n.x\r\n.\r\n", "a\r\n.x\r\n.\r\n", DATA_END, 0, 0, 0);
    check_scan("a\r\n. \r\n.\r\n", "a\r\n. \r\n.\r\n", DATA_END, 0, 0, 0);
}

UNIT_TEST(data_scan_lone_dot_first_line_ends_only_with_crlf) {
    /* the DATA command's own CRLF counts as the previous line's end */
    check_scan(".\r\n", ".\r\n", DATA_END, 0, 0, 0);
    /* but a bare-LF lone dot at the start is not the end */
    check_scan(".\na\r\n.\r\n", "..\r\na\r\n.\r\n", DATA_END, 0, 0, 1);
}

UNIT_TEST(data_scan_dot_stuffed_lines_are_forwarded_unchanged) {
    check_scan("Subject: x\r\n\r\n..foo\r\n...\r\n..\r\n.\r\n",
               "Subject: x\r\n\r\n..foo\r\n...\r\n..\r\n.\r\n", DATA_END, 0, 0, 0);
}

/* ---- forged status headers ---- */

UNIT_TEST(data_scan_forged_status_headers_are_dropped_with_continuations) {
    check_scan("From: a@b\r\n"
               "X-TLS-Status: tls=TLSv1.3; forged\r\n"
               "\tcontinued with tab\r\n"
               " continued with space\r\n"
               "Subject: s\r\n"
               "x-tls-status: lower\r\n"
               "X-TLS-STATUS :spaced\r\n"
               " more\r\n"
               "To: c@d\r\n"
               "\r\n"
               "body\r\n"
               ".\r\n",
               "From: a@b\r\n"
               "Subject: s\r\n"
               "To: c@d\r\n"
               "\r\n"
               "body\r\n"
               ".\r\n",
               DATA_END, 0, 3, 0);
}

UNIT_TEST(data_scan_forged_status_header_as_first_line_is_dropped) {
    check_scan("X-TLS-Status: tls=TLSv1.3\r\nSubject: s\r\n\r\nb\r\n.\r\n",
               "Subject: s\r\n\r\nb\r\n.\r\n", DATA_END, 0, 1, 0);
}

UNIT_TEST(data_scan_forged_status_header_right_before_end_is_dropped) {
    check_scan("Subject: s\r\nX-TLS-Status: x\r\n.\r\n", "Subject: s\r\n.\r\n", DATA_END, 0,
               1, 0);
}

UNIT_TEST(data_scan_forged_status_header_with_bare_lf_is_dropped) {
    check_scan("X-TLS-Status: x\n more\nSubject: s\r\n\r\n.\r\n", "Subject: s\r\n\r\n.\r\n",
               DATA_END, 0, 1, 2);
}

UNIT_TEST(data_scan_forged_status_header_with_tab_before_colon_is_dropped) {
    /* RFC 5322 4.5.8 obs-optional: field-name *WSP ":" */
    check_scan("X-TLS-Status\t: x\r\nSubject: s\r\n\r\n.\r\n", "Subject: s\r\n\r\n.\r\n",
               DATA_END, 0, 1, 0);
}

UNIT_TEST(data_scan_forged_status_header_with_long_space_run_before_colon_is_dropped) {
    /* "Name :" with more white space than DATA_SCAN_NAME_MAX still names
     * the status field for a lenient backend */
    char in[512], want[64];
    int n = snprintf(in, sizeof(in), "X-TLS-Status%*s: forged\r\nSubject: s\r\n\r\n.\r\n",
                     DATA_SCAN_NAME_MAX + 20, "");
    int m = snprintf(want, sizeof(want), "Subject: s\r\n\r\n.\r\n");
    check_scan_n(in, (size_t)n, want, (size_t)m, DATA_END, (size_t)n, 1, 0, __LINE__);
}

UNIT_TEST(data_scan_forged_status_header_with_115_spaces_before_colon_is_dropped) {
    /* the longest run that still fits DATA_SCAN_NAME_MAX with the name
     * and the colon: 12 + 115 + 1 = 128 */
    char in[512];
    int n = snprintf(in, sizeof(in), "X-TLS-Status%*s: forged\r\nSubject: s\r\n\r\n.\r\n",
                     DATA_SCAN_NAME_MAX - 13, "");
    const char want[] = "Subject: s\r\n\r\n.\r\n";
    check_scan_n(in, (size_t)n, want, sizeof(want) - 1, DATA_END, (size_t)n, 1, 0, __LINE__);
}

UNIT_TEST(data_scan_endless_blank_run_after_status_name_is_dropped_in_bounded_output) {
    /* once the name and its blanks fill the held bytes, the line is a
     * forged field (or no field): dropped, never held or rewritten */
    size_t n;
    char *in = line_of("X-TLS-Status", ' ', 1u << 20, "x\r\nSubject: s\r\n\r\n.\r\n", &n);
    const char want[] = "Subject: s\r\n\r\n.\r\n";
    check_scan_n(in, n, want, sizeof(want) - 1, DATA_END, n, 1, 0, __LINE__);
    free(in);
    char *tabs = line_of("x-tls-status", '\t', 5000, ": forged\r\n\r\n.\r\n", &n);
    check_scan_n(tabs, n, "\r\n.\r\n", 5, DATA_END, n, 1, 0, __LINE__);
    free(tabs);
}

UNIT_TEST(data_scan_blank_run_after_status_name_that_fits_is_kept_byte_for_byte) {
    /* tabs stay tabs: the held bytes are written as they came */
    check_scan("X-TLS-Status\t \t x: y\r\n\r\n.\r\n", "X-TLS-Status\t \t x: y\r\n\r\n.\r\n",
               DATA_END, 0, 0, 0);
    size_t n;
    char *in = line_of("X-TLS-Status", '\t', DATA_SCAN_NAME_MAX - 12, "z\r\n\r\n.\r\n", &n);
    check_scan_n(in, n, in, n, DATA_END, n, 0, 0, __LINE__);
    free(in);
}

UNIT_TEST(data_scan_status_name_folded_before_its_colon_is_dropped) {
    /* "Name CRLF SP : value" unfolds to the status field in lenient
     * parsers; its continuation lines go with it */
    check_scan("X-TLS-Status\r\n : forged\r\nSubject: s\r\n\r\n.\r\n",
               "Subject: s\r\n\r\n.\r\n", DATA_END, 0, 1, 0);
    check_scan("To: t\r\nx-tls-status \t\r\n\t: forged\r\n more\r\nSubject: s\r\n\r\n.\r\n",
               "To: t\r\nSubject: s\r\n\r\n.\r\n", DATA_END, 0, 1, 0);
    check_scan(".X-TLS-Status\r\n : forged\r\n\r\n.\r\n", "\r\n.\r\n", DATA_END, 0, 1, 0);
}

UNIT_TEST(data_scan_status_name_alone_on_a_line_is_kept_when_no_continuation_follows) {
    check_scan("X-TLS-Status\r\nTo: t\r\n\r\n.\r\n", "X-TLS-Status\r\nTo: t\r\n\r\n.\r\n",
               DATA_END, 0, 0, 0);
    check_scan("X-TLS-Status \r\n.\r\n", "X-TLS-Status \r\n.\r\n", DATA_END, 0, 0, 0);
    check_scan(".X-TLS-Status\r\nX-TLS-Status\r\n\r\n.\r\n",
               ".X-TLS-Status\r\nX-TLS-Status\r\n\r\n.\r\n", DATA_END, 0, 0, 0);
    check_scan("X-TLS-Status\n\r\n.\r\n", "X-TLS-Status\r\n\r\n.\r\n", DATA_END, 0, 0, 1);
}

UNIT_TEST(data_scan_forged_status_header_after_bare_cr_in_header_is_dropped) {
    /* the bare CR becomes CRLF, so the backend sees a new field */
    check_scan("Subject: x\rX-TLS-Status: forged\r\nTo: t\r\n\r\n.\r\n",
               "Subject: x\r\nTo: t\r\n\r\n.\r\n", DATA_END, 0, 1, 1);
}

UNIT_TEST(data_scan_forged_status_header_after_bare_lf_in_header_is_dropped) {
    check_scan("Subject: x\nX-TLS-Status: forged\nTo: t\r\n\r\n.\r\n",
               "Subject: x\r\nTo: t\r\n\r\n.\r\n", DATA_END, 0, 1, 2);
}

UNIT_TEST(data_scan_status_header_after_bare_cr_in_body_is_kept) {
    check_scan("Subject: x\r\n\r\nline\rX-TLS-Status: body\r\n.\r\n",
               "Subject: x\r\n\r\nline\r\nX-TLS-Status: body\r\n.\r\n", DATA_END, 0, 0,
               1);
}

UNIT_TEST(data_scan_other_headers_are_kept_in_order_after_dropping) {
    check_scan("A: 1\r\nX-TLS-Status: x\r\nB: 2\r\n\tb2\r\nC: 3\r\n\r\n.\r\n",
               "A: 1\r\nB: 2\r\n\tb2\r\nC: 3\r\n\r\n.\r\n", DATA_END, 0, 1, 0);
}

UNIT_TEST(data_scan_status_header_name_in_body_is_kept) {
    check_scan("Subject: s\r\n\r\nX-TLS-Status: written in the body\r\n\tstill body\r\n.\r\n",
               "Subject: s\r\n\r\nX-TLS-Status: written in the body\r\n\tstill body\r\n.\r\n",
               DATA_END, 0, 0, 0);
}

UNIT_TEST(data_scan_status_header_after_bare_lf_empty_line_is_body_and_kept) {
    check_scan("Subject: s\n\nX-TLS-Status: body\r\n.\r\n",
               "Subject: s\r\n\r\nX-TLS-Status: body\r\n.\r\n", DATA_END, 0, 0, 2);
}

UNIT_TEST(data_scan_header_with_longer_name_is_kept) {
    check_scan("X-TLS-Status-Extra: 1\r\nX-TLS-Statu: 2\r\nXX-TLS-Status: 3\r\n\r\n.\r\n",
               "X-TLS-Status-Extra: 1\r\nX-TLS-Statu: 2\r\nXX-TLS-Status: 3\r\n\r\n.\r\n",
               DATA_END, 0, 0, 0);
}

UNIT_TEST(data_scan_line_holding_only_the_name_without_colon_is_kept) {
    check_scan("X-TLS-Stat\r\nX-TLS-Status\r\n\r\n.\r\n",
               "X-TLS-Stat\r\nX-TLS-Status\r\n\r\n.\r\n", DATA_END, 0, 0, 0);
}

UNIT_TEST(data_scan_long_header_line_without_colon_is_kept_intact) {
    char in[1024], want[1024];
    char longname[300];
    memset(longname, 'A', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    int n = snprintf(in, sizeof(in), "Subject: a\r\n%s\r\n\r\nbody\r\n.\r\n", longname);
    int m = snprintf(want, sizeof(want), "Subject: a\r\n%s\r\n\r\nbody\r\n.\r\n", longname);
    check_scan_n(in, (size_t)n, want, (size_t)m, DATA_END, (size_t)n, 0, 0, __LINE__);
}

UNIT_TEST(data_scan_long_header_with_colon_late_is_kept_intact) {
    char in[1024];
    char longname[300];
    memset(longname, 'B', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    int n = snprintf(in, sizeof(in), "X-%s: value\r\n\tfolded\r\nTo: x\r\n\r\n.\r\n",
                     longname);
    check_scan_n(in, (size_t)n, in, (size_t)n, DATA_END, (size_t)n, 0, 0, __LINE__);
}

UNIT_TEST(data_scan_dot_stuffed_forged_status_header_is_dropped) {
    /* the backend un-stuffs ".X-TLS-Status:" into a real header */
    check_scan("Subject: s\r\n.X-TLS-Status: forged\r\n\tcont\r\nTo: t\r\n\r\n.\r\n",
               "Subject: s\r\nTo: t\r\n\r\n.\r\n", DATA_END, 0, 1, 0);
    check_scan(".x-tls-status: forged\r\nTo: t\r\n\r\n.\r\n", "To: t\r\n\r\n.\r\n", DATA_END,
               0, 1, 0);
}

UNIT_TEST(data_scan_dot_stuffed_normal_header_keeps_its_dot) {
    check_scan("Subject: s\r\n.Weird: x\r\n\r\n.\r\n", "Subject: s\r\n.Weird: x\r\n\r\n.\r\n",
               DATA_END, 0, 0, 0);
}

UNIT_TEST(data_scan_counts_each_dropped_field_once) {
    check_scan("X-TLS-Status: 1\r\n a\r\n b\r\nX-TLS-Status: 2\r\nX-TLS-Status: 3\r\n\r\n.\r\n",
               "\r\n.\r\n", DATA_END, 0, 3, 0);
}

UNIT_TEST(data_scan_other_drop_name_is_honoured) {
    const char in[] = "X-Proxy-Info: forged\r\nX-TLS-Status: kept\r\n\r\n.\r\n";
    const char want[] = "X-TLS-Status: kept\r\n\r\n.\r\n";
    struct data_scan s;
    struct buffer out = {0};
    size_t used = 0;
    data_scan_init(&s, "x-proxy-info");
    CHECK_INT(data_scan_feed(&s, in, sizeof(in) - 1, &out, &used), DATA_END);
    CHECK_INT(used, sizeof(in) - 1);
    CHECK_MEM(out.len ? buffer_head(&out) : "", out.len, want);
    CHECK_INT(s.dropped_fields, 1);
    buffer_free(&out);
}

/* ---- folding into the injected header ---- */

UNIT_TEST(data_scan_first_line_starting_with_space_gets_empty_line_before) {
    check_scan(" folded\r\nSubject: x\r\n\r\nb\r\n.\r\n",
               "\r\n folded\r\nSubject: x\r\n\r\nb\r\n.\r\n", DATA_END, 0, 0, 0);
}

UNIT_TEST(data_scan_first_line_starting_with_tab_gets_empty_line_before) {
    check_scan("\tfolded\r\n.\r\n", "\r\n\tfolded\r\n.\r\n", DATA_END, 0, 0, 0);
}

UNIT_TEST(data_scan_stuffed_first_line_dot_space_gets_empty_line_before) {
    check_scan(". foo\r\n.\r\n", "\r\n. foo\r\n.\r\n", DATA_END, 0, 0, 0);
    check_scan(".\tfoo\r\n.\r\n", "\r\n.\tfoo\r\n.\r\n", DATA_END, 0, 0, 0);
}

UNIT_TEST(data_scan_second_line_starting_with_space_is_a_normal_fold) {
    check_scan("Subject: a\r\n b\r\n\r\n.\r\n", "Subject: a\r\n b\r\n\r\n.\r\n", DATA_END, 0,
               0, 0);
}

UNIT_TEST(data_scan_first_line_space_after_dropped_status_header_is_its_continuation) {
    check_scan("X-TLS-Status: a\r\n b\r\nSubject: x\r\n\r\n.\r\n", "Subject: x\r\n\r\n.\r\n",
               DATA_END, 0, 1, 0);
}

UNIT_TEST(data_scan_zero_length_feed_is_more_and_consumes_nothing) {
    struct data_scan s;
    struct buffer out = {0};
    size_t used = 99;
    data_scan_init(&s, STATUS);
    CHECK_INT(data_scan_feed(&s, "", 0, &out, &used), DATA_MORE);
    CHECK_INT(used, 0);
    CHECK_INT(out.len, 0);
    CHECK_INT(data_scan_feed(&s, ".\r\n", 3, &out, &used), DATA_END);
    CHECK_INT(used, 3);
    CHECK_MEM(buffer_head(&out), out.len, ".\r\n");
    buffer_free(&out);
}

/* ---- bytes ---- */

UNIT_TEST(data_scan_eight_bit_bytes_pass_and_nul_bytes_are_removed) {
    const char in[] = "Subject: \xc3\xa9t\xc3\xa9\r\n\r\n\xff\xfe\x00" "abc\x80\x01\x7f\r\n"
                      "\x00\r\n.\r\n";
    const char want[] = "Subject: \xc3\xa9t\xc3\xa9\r\n\r\n\xff\xfe" "abc\x80\x01\x7f\r\n"
                        "\r\n.\r\n";
    check_scan_n(in, sizeof(in) - 1, want, sizeof(want) - 1, DATA_END, sizeof(in) - 1, 0, 0,
                 __LINE__);
}

UNIT_TEST(data_scan_nul_before_a_dot_line_is_never_an_end_for_a_nul_stripping_backend) {
    /* "CRLF NUL . CRLF" is the end of data to a backend that strips NUL
     * first: the dot line must reach it stuffed */
    check_scan("a\r\n\x00.\r\nMAIL FROM:<x@y>\r\n.\r\n",
               "a\r\n..\r\nMAIL FROM:<x@y>\r\n.\r\n", DATA_END, 0, 0, 0);
    check_scan("\x00\x00.\x00\r\n.\r\n", "..\r\n.\r\n", DATA_END, 0, 0, 0);
    check_scan("\x00.x\r\n.\r\n", "..x\r\n.\r\n", DATA_END, 0, 0, 0);
}

UNIT_TEST(data_scan_stuffed_nul_line_becomes_an_empty_line_not_a_dot_line) {
    /* ".NUL" un-stuffs to NUL, which is removed: an empty line, never "." */
    check_scan("a: b\r\n\r\nx\r\n.\x00\r\ny\r\n.\r\n", "a: b\r\n\r\nx\r\n\r\ny\r\n.\r\n",
               DATA_END, 0, 0, 0);
}

UNIT_TEST(data_scan_nul_inside_the_status_name_does_not_hide_it) {
    check_scan("X-TLS-\x00Status: forged\r\nSubject: s\r\n\r\n.\r\n",
               "Subject: s\r\n\r\n.\r\n", DATA_END, 0, 1, 0);
}

/* ---- line length ---- */

UNIT_TEST(data_scan_line_of_998_octets_is_not_broken) {
    size_t n, m;
    char *in = line_of("a: b\r\n\r\n", 'x', 998, "\r\n.\r\n", &n);
    char *want = line_of("a: b\r\n\r\n", 'x', 998, "\r\n.\r\n", &m);
    check_scan_n(in, n, want, m, DATA_END, n, 0, 0, __LINE__);
    free(in);
    free(want);
}

UNIT_TEST(data_scan_999_octet_line_then_fake_end_reaches_backend_as_one_message) {
    /* a backend reading 1000-octet lines would split the 999-octet line
     * and read the dot line after it as the end of data */
    size_t n;
    char *in = line_of("a: b\r\n\r\n", 'x', 999, ".\r\nMAIL FROM:<f@x>\r\n.\r\n", &n);
    struct scan_run r;
    scan_whole(in, n, &r);
    CHECK_INT(r.result, DATA_END);
    CHECK_INT(r.consumed, n);
    const char *o = out_of(&r);
    /* 998 octets, then CRLF SP and the rest */
    CHECK(r.out.len > 1010 && memcmp(o + 8 + 998, "\r\n x.\r\nMAIL", 11) == 0);
    free(in);
    buffer_free(&r.out);
}

UNIT_TEST(data_scan_long_stuffed_line_counts_the_dot_and_never_continues_with_a_dot) {
    size_t n;
    /* the client's stuffing dot plus 1500 dots of content */
    char *in = line_of("\r\n.", '.', 1500, "\r\n.\r\n", &n);
    struct scan_run r, b;
    scan_whole(in, n, &r);
    scan_bytewise(in, n, &b, __LINE__);
    CHECK(r.out.len == b.out.len && memcmp(out_of(&r), out_of(&b), r.out.len) == 0);
    const char *o = out_of(&r);
    /* the empty first line, then 998 octets (stuffing dot included) */
    CHECK(memcmp(o, "\r\n..", 4) == 0);
    CHECK(memcmp(o + 2 + 998, "\r\n ", 3) == 0);
    CHECK_INT(r.out.len, 2 + 998 + 3 + 503 + 2 + 3);
    free(in);
    buffer_free(&r.out);
    buffer_free(&b.out);
}

UNIT_TEST(data_scan_can_be_reused_after_init_for_a_next_message) {
    struct data_scan s;
    struct buffer out = {0};
    size_t used;
    data_scan_init(&s, STATUS);
    CHECK_INT(data_scan_feed(&s, "a\n.\r\n", 5, &out, &used), DATA_MORE);
    buffer_free(&out);
    data_scan_init(&s, STATUS);
    CHECK_INT(s.bare_endings, 0);
    CHECK_INT(data_scan_feed(&s, " x\r\n.\r\n", 7, &out, &used), DATA_END);
    CHECK_INT(used, 7);
    CHECK_MEM(buffer_head(&out), out.len, "\r\n x\r\n.\r\n");
    buffer_free(&out);
}

/* a tiny deterministic generator, so failures are reproducible */
static unsigned long rng_state = 12345;
static unsigned rng(void) {
    rng_state = rng_state * 6364136223846793005UL + 1442695040888963407UL;
    return (unsigned)(rng_state >> 33);
}

UNIT_TEST(data_scan_large_random_printable_body_passes_byte_identical) {
    size_t cap = (1u << 20) + 1024;
    char *in = malloc(cap);
    size_t n = 0;
    n += (size_t)sprintf(in, "Subject: big\r\nX-TLS-Status-Extra: kept\r\n\r\n");
    while (n < (1u << 20)) {
        size_t len = rng() % 200;
        size_t start = n;
        for (size_t i = 0; i < len; i++) {
            in[n++] = (char)(32 + rng() % 95);
        }
        if (len > 0 && in[start] == '.') {
            /* the client dot-stuffs */
            memmove(in + start + 1, in + start, len);
            in[start] = '.';
            n++;
        }
        in[n++] = '\r';
        in[n++] = '\n';
    }
    memcpy(in + n, ".\r\n", 3);
    n += 3;
    size_t total = n;
    memcpy(in + n, "QUIT\r\n", 6);
    n += 6;
    check_scan_n(in, n, in, total, DATA_END, total, 0, 0, __LINE__);
    free(in);
}

UNIT_TEST(data_scan_large_body_in_random_chunks_matches_whole) {
    size_t cap = (1u << 19) + 64;
    char *in = malloc(cap);
    size_t n = 0;
    rng_state = 999;
    /* a mix of endings, dots and headers */
    static const char *const pieces[] = {
        "\r\n", "\n", "\r", ".", "..", "X-TLS-Status: f\r\n", " ", "\t", "a", "bc: d",
        "\r\n.\r\n", "\n.\n",
    };
    while (n < (1u << 19)) {
        const char *p = pieces[rng() % (sizeof(pieces) / sizeof(pieces[0]))];
        size_t len = strlen(p);
        memcpy(in + n, p, len);
        n += len;
    }
    struct scan_run whole, chunked;
    scan_whole(in, n, &whole);
    struct data_scan s;
    memset(&chunked, 0, sizeof(chunked));
    data_scan_init(&s, STATUS);
    chunked.result = DATA_MORE;
    size_t off = 0;
    while (off < n && chunked.result == DATA_MORE) {
        size_t len = 1 + rng() % 37;
        if (len > n - off) {
            len = n - off;
        }
        size_t used = 0;
        chunked.result = data_scan_feed(&s, in + off, len, &chunked.out, &used);
        off += used;
        chunked.consumed += used;
    }
    CHECK_INT(chunked.result, whole.result);
    CHECK_INT(chunked.consumed, whole.consumed);
    CHECK_INT(s.bare_endings, whole.bare_endings);
    CHECK_INT(s.dropped_fields, whole.dropped_fields);
    CHECK(chunked.out.len == whole.out.len &&
          memcmp(out_of(&chunked), out_of(&whole), whole.out.len) == 0);
    /* whatever was written: no bare CR or LF, and it ends properly */
    const char *o = out_of(&whole);
    int bare = 0;
    for (size_t i = 0; i < whole.out.len; i++) {
        if (o[i] == '\r' && (i + 1 >= whole.out.len || o[i + 1] != '\n')) {
            bare = 1;
        }
        if (o[i] == '\n' && (i == 0 || o[i - 1] != '\r')) {
            bare = 1;
        }
    }
    CHECK(!bare);
    if (whole.result == DATA_END) {
        CHECK(whole.out.len >= 3 && memcmp(o + whole.out.len - 3, ".\r\n", 3) == 0);
    }
    buffer_free(&whole.out);
    buffer_free(&chunked.out);
    free(in);
}

/* check_backend_lines checks what a backend reading lines would see: no
 * line over 998 octets, no bare CR or LF, no NUL, and no line "." but
 * the last. */
static void check_backend_lines(const char *o, size_t len, int line) {
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (o[i] == '\0') {
            unit_fail(__FILE__, line, "NUL at %zu", i);
            return;
        }
        if (o[i] == '\r' && (i + 1 >= len || o[i + 1] != '\n')) {
            unit_fail(__FILE__, line, "bare CR at %zu", i);
            return;
        }
        if (o[i] == '\n' && (i == 0 || o[i - 1] != '\r')) {
            unit_fail(__FILE__, line, "bare LF at %zu", i);
            return;
        }
        if (o[i] == '\n') {
            size_t l = i - 1 - start;
            if (l > DATA_SCAN_LINE_MAX) {
                unit_fail(__FILE__, line, "line of %zu octets at %zu", l, start);
                return;
            }
            if (l == 1 && o[start] == '.' && i + 1 != len) {
                unit_fail(__FILE__, line, "dot line before the end at %zu", start);
                return;
            }
            start = i + 1;
        }
    }
}

UNIT_TEST(data_scan_random_hostile_stream_reaches_backend_as_sane_lines) {
    static const char *const pieces[] = {
        "\r\n", "\n", "\r", ".", "..", "\x00", "\x00.", " ", "\t", "X-TLS-Status",
        ":", "a", "bcdefghij", "\r\n.\r", ".\n",
    };
    for (unsigned round = 0; round < 40; round++) {
        rng_state = 7000 + round;
        size_t cap = 64 * 1024, n = 0;
        char *in = malloc(cap + 64);
        while (n < cap) {
            const char *p = pieces[rng() % (sizeof(pieces) / sizeof(pieces[0]))];
            size_t len = strlen(p);
            if (*p == '\x00') {
                len = p[1] ? 2 : 1;
            }
            if (rng() % 50 == 0) {
                /* now and then a long run without line endings */
                size_t run = 900 + rng() % 2200;
                if (n + run > cap) {
                    break;
                }
                memset(in + n, 'y', run);
                n += run;
                continue;
            }
            memcpy(in + n, p, len);
            n += len;
        }
        memcpy(in + n, "\r\n.\r\n", 5);
        n += 5;
        struct scan_run r, b;
        scan_whole(in, n, &r);
        scan_bytewise(in, n, &b, __LINE__);
        CHECK(r.out.len == b.out.len && memcmp(out_of(&r), out_of(&b), r.out.len) == 0);
        CHECK_INT(r.result, DATA_END);
        check_backend_lines(out_of(&r), r.out.len, __LINE__);
        free(in);
        buffer_free(&r.out);
        buffer_free(&b.out);
    }
}

/* ---- whole body lines at once (body_lines) and what interrupts them ---- */

UNIT_TEST(data_scan_body_lines_between_special_lines_keep_every_rule) {
    /* Plain lines run together; a stuffed line, a lone dot that is no
     * end, a NUL, a bare LF and a bare CR each come between them. */
    check_scan("S: x\r\n\r\none\r\ntwo\r\n..dot\r\nthree\r\n.\rfour\r\nfi\0ve\r\nsix\nseven\r\n"
               "eig\rht\r\n\r\nnine\r\n.\r\nQUIT\r\n",
               "S: x\r\n\r\none\r\ntwo\r\n..dot\r\nthree\r\n..\r\nfour\r\nfive\r\nsix\r\nseven\r\n"
               "eig\r\nht\r\n\r\nnine\r\n.\r\n",
               DATA_END, 6, 0, 3);
}

UNIT_TEST(data_scan_body_line_of_998_passes_whole_and_999_is_broken) {
    size_t n998, n999;
    char *l998 = line_of("\r\n", 'a', DATA_SCAN_LINE_MAX, "\r\nnext\r\n", &n998);
    char *l999 = line_of("\r\n", 'b', DATA_SCAN_LINE_MAX + 1, "\r\nnext\r\n", &n999);
    check_scan_n(l998, n998, l998, n998, DATA_MORE, n998, 0, 0, __LINE__);
    size_t nwant;
    char *want = line_of("\r\n", 'b', DATA_SCAN_LINE_MAX, "\r\n b\r\nnext\r\n", &nwant);
    check_scan_n(l999, n999, want, nwant, DATA_MORE, n999, 0, 0, __LINE__);
    free(l998);
    free(l999);
    free(want);
}

UNIT_TEST(data_scan_end_right_after_many_body_lines_is_found) {
    char in[8192];
    size_t n = 0;
    n += (size_t)snprintf(in + n, sizeof(in) - n, "Subject: many\r\n\r\n");
    for (int i = 0; i < 100; i++) {
        n += (size_t)snprintf(in + n, sizeof(in) - n, "line %d of a plain body\r\n", i);
    }
    size_t body = n;
    n += (size_t)snprintf(in + n, sizeof(in) - n, ".\r\nMAIL FROM:<a@b>\r\n");
    char want[8192];
    memcpy(want, in, body);
    memcpy(want + body, ".\r\n", 3);
    check_scan_n(in, n, want, body + 3, DATA_END, body + 3, 0, 0, __LINE__);
}

UNIT_TEST(data_scan_header_block_is_never_taken_as_body_lines) {
    /* The status header after plain header lines is still dropped, and a
     * line in the header block with a NUL still ends nothing early. */
    check_scan("From: a\r\nTo: b\r\nX-TLS-Status: forged\r\nSubject: s\r\n\r\nbody\r\n.\r\n",
               "From: a\r\nTo: b\r\nSubject: s\r\n\r\nbody\r\n.\r\n", DATA_END, 0, 1, 0);
}
