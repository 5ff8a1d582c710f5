/*
 * test_smtp_reply.c - smtp_reply.h: resumable multi-line reply collection.
 */
#include <stdlib.h>

#include "protocol/smtp_reply.h"
#include "unit.h"

#define LIT(s) (s), (sizeof(s) - 1)

static const char *text_of(const struct smtp_reply *r) {
    return r->text.len ? buffer_head(&r->text) : "";
}

UNIT_TEST(smtp_reply_single_line_is_done) {
    struct smtp_reply r = {0};
    size_t used = 99;
    CHECK_INT(smtp_reply_feed(&r, LIT("220 mx.example.test ESMTP\r\n"), &used), REPLY_DONE);
    CHECK_INT(used, 27);
    CHECK_INT(r.code, 220);
    CHECK_INT(r.nlines, 1);
    CHECK_MEM(text_of(&r), r.text.len, "220 mx.example.test ESMTP\r\n");
    smtp_reply_reset(&r);
}

UNIT_TEST(smtp_reply_multi_line_is_collected_whole) {
    struct smtp_reply r = {0};
    size_t used = 99;
    CHECK_INT(smtp_reply_feed(&r, LIT("250-a\r\n250-b\r\n250 c\r\n"), &used), REPLY_DONE);
    CHECK_INT(used, 21);
    CHECK_INT(r.code, 250);
    CHECK_INT(r.nlines, 3);
    CHECK_MEM(text_of(&r), r.text.len, "250-a\r\n250-b\r\n250 c\r\n");
    smtp_reply_reset(&r);
}

/* feed_bytewise feeds |in| one byte at a time the way the session does:
 * bytes not consumed stay pending and are offered again with the next
 * one. Returns the final status; *total gets the bytes consumed. */
static enum reply_status feed_bytewise(struct smtp_reply *r, const char *in, size_t n,
                                       size_t *total) {
    char *pending = malloc(n + 1);
    size_t plen = 0;
    enum reply_status st = REPLY_INCOMPLETE;
    *total = 0;
    for (size_t i = 0; i < n && st == REPLY_INCOMPLETE; i++) {
        pending[plen++] = in[i];
        size_t used = 12345;
        st = smtp_reply_feed(r, pending, plen, &used);
        if (used > plen) {
            unit_fail(__FILE__, __LINE__, "consumed %zu of %zu", used, plen);
            break;
        }
        memmove(pending, pending + used, plen - used);
        plen -= used;
        *total += used;
    }
    free(pending);
    return st;
}

UNIT_TEST(smtp_reply_fed_one_byte_at_a_time_gives_identical_text) {
    const char in[] = "250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
                      "250 8BITMIME\r\nNEXT";
    struct smtp_reply whole = {0}, bytes = {0};
    size_t used_whole = 0, used_bytes = 0;
    CHECK_INT(smtp_reply_feed(&whole, in, sizeof(in) - 1, &used_whole), REPLY_DONE);
    CHECK_INT(feed_bytewise(&bytes, in, sizeof(in) - 1, &used_bytes), REPLY_DONE);
    CHECK_INT(used_whole, sizeof(in) - 1 - 4);
    CHECK_INT(used_bytes, used_whole);
    CHECK_INT(bytes.code, 250);
    CHECK_INT(bytes.nlines, 4);
    CHECK_INT(whole.nlines, 4);
    CHECK_MEM(text_of(&bytes), bytes.text.len,
              "250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
              "250 8BITMIME\r\n");
    CHECK(whole.text.len == bytes.text.len &&
          memcmp(text_of(&whole), text_of(&bytes), whole.text.len) == 0);
    smtp_reply_reset(&whole);
    smtp_reply_reset(&bytes);
}

UNIT_TEST(smtp_reply_partial_line_is_not_consumed) {
    struct smtp_reply r = {0};
    size_t used = 99;
    CHECK_INT(smtp_reply_feed(&r, LIT("250-a\r\n250 b"), &used), REPLY_INCOMPLETE);
    CHECK_INT(used, 7);
    CHECK_INT(r.nlines, 1);
    CHECK_INT(smtp_reply_feed(&r, LIT("250 b\r"), &used), REPLY_INCOMPLETE);
    CHECK_INT(used, 0);
    CHECK_INT(smtp_reply_feed(&r, LIT("250 b\r\n"), &used), REPLY_DONE);
    CHECK_INT(used, 7);
    CHECK_MEM(text_of(&r), r.text.len, "250-a\r\n250 b\r\n");
    smtp_reply_reset(&r);
}

UNIT_TEST(smtp_reply_bare_code_without_text_is_a_final_line) {
    struct smtp_reply r = {0};
    size_t used = 99;
    CHECK_INT(smtp_reply_feed(&r, LIT("354\r\n"), &used), REPLY_DONE);
    CHECK_INT(used, 5);
    CHECK_INT(r.code, 354);
    CHECK_INT(r.nlines, 1);
    CHECK_MEM(text_of(&r), r.text.len, "354\r\n");
    smtp_reply_reset(&r);
}

UNIT_TEST(smtp_reply_bare_lf_lines_are_stored_with_crlf) {
    struct smtp_reply r = {0};
    size_t used = 99;
    CHECK_INT(smtp_reply_feed(&r, LIT("250-a\n250 b\n"), &used), REPLY_DONE);
    CHECK_INT(used, 12);
    CHECK_INT(r.nlines, 2);
    CHECK_MEM(text_of(&r), r.text.len, "250-a\r\n250 b\r\n");
    smtp_reply_reset(&r);
}

UNIT_TEST(smtp_reply_mismatched_codes_across_lines_are_bad) {
    struct smtp_reply r = {0};
    size_t used;
    CHECK_INT(smtp_reply_feed(&r, LIT("250-a\r\n251 b\r\n"), &used), REPLY_BAD);
    smtp_reply_reset(&r);
    /* also when the lines arrive in separate reads */
    CHECK_INT(smtp_reply_feed(&r, LIT("250-a\r\n"), &used), REPLY_INCOMPLETE);
    CHECK_INT(smtp_reply_feed(&r, LIT("550 b\r\n"), &used), REPLY_BAD);
    smtp_reply_reset(&r);
}

UNIT_TEST(smtp_reply_garbage_is_bad) {
    static const char *const bad[] = {
        "hello\r\n", "25 x\r\n", "2500 x\r\n", "250x\r\n", "\r\n", "abc ok\r\n",
        "2a0 x\r\n", "600 x\r\n", "099 x\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct smtp_reply r = {0};
        size_t used;
        enum reply_status st = smtp_reply_feed(&r, bad[i], strlen(bad[i]), &used);
        if (st != REPLY_BAD) {
            unit_fail(__FILE__, __LINE__, "%s -> %d, want REPLY_BAD",
                      unit_show_bytes(bad[i], strlen(bad[i])), (int)st);
        }
        smtp_reply_reset(&r);
    }
}

UNIT_TEST(smtp_reply_line_over_line_max_is_bad) {
    size_t n = SMTP_REPLY_LINE_MAX + 100;
    char *line = malloc(n + 2);
    memcpy(line, "250 ", 4);
    memset(line + 4, 'x', n - 4);
    memcpy(line + n, "\r\n", 2);
    struct smtp_reply r = {0};
    size_t used;
    CHECK_INT(smtp_reply_feed(&r, line, n + 2, &used), REPLY_BAD);
    smtp_reply_reset(&r);
    free(line);
}

UNIT_TEST(smtp_reply_endless_unterminated_line_is_bad_not_incomplete) {
    /* a hostile backend never sends LF: the caller must not be told to
     * keep buffering forever */
    size_t n = SMTP_REPLY_LINE_MAX * 4;
    char *line = malloc(n);
    memcpy(line, "250-", 4);
    memset(line + 4, 'x', n - 4);
    struct smtp_reply r = {0};
    size_t used;
    CHECK_INT(smtp_reply_feed(&r, line, n, &used), REPLY_BAD);
    smtp_reply_reset(&r);
    free(line);
}

UNIT_TEST(smtp_reply_long_but_allowed_line_is_kept) {
    size_t n = 1000;
    char *line = malloc(n + 3);
    memcpy(line, "250 ", 4);
    memset(line + 4, 'y', n - 4);
    memcpy(line + n, "\r\n", 3);
    struct smtp_reply r = {0};
    size_t used;
    CHECK_INT(smtp_reply_feed(&r, line, n + 2, &used), REPLY_DONE);
    CHECK_INT(used, n + 2);
    CHECK_MEM(text_of(&r), r.text.len, line);
    smtp_reply_reset(&r);
    free(line);
}

/* many_lines builds |count| lines of "250-x", the last "250 x". */
static char *many_lines(size_t count, size_t *len) {
    char *s = malloc(count * 7 + 1);
    size_t o = 0;
    for (size_t i = 0; i < count; i++) {
        memcpy(s + o, i + 1 == count ? "250 x\r\n" : "250-x\r\n", 7);
        o += 7;
    }
    s[o] = '\0';
    *len = o;
    return s;
}

UNIT_TEST(smtp_reply_more_than_lines_max_is_bad) {
    size_t len;
    char *s = many_lines(SMTP_REPLY_LINES_MAX + 1, &len);
    struct smtp_reply r = {0};
    size_t used;
    CHECK_INT(smtp_reply_feed(&r, s, len, &used), REPLY_BAD);
    smtp_reply_reset(&r);
    free(s);
}

UNIT_TEST(smtp_reply_endless_continuation_lines_are_bad) {
    size_t len;
    char *s = many_lines(SMTP_REPLY_LINES_MAX * 3, &len);
    /* only continuation lines: turn the final one into one too */
    s[len - 5] = '-';
    struct smtp_reply r = {0};
    size_t used;
    CHECK_INT(smtp_reply_feed(&r, s, len, &used), REPLY_BAD);
    smtp_reply_reset(&r);
    free(s);
}

UNIT_TEST(smtp_reply_exactly_lines_max_is_done) {
    size_t len;
    char *s = many_lines(SMTP_REPLY_LINES_MAX, &len);
    struct smtp_reply r = {0};
    size_t used;
    CHECK_INT(smtp_reply_feed(&r, s, len, &used), REPLY_DONE);
    CHECK_INT(used, len);
    CHECK_INT(r.nlines, SMTP_REPLY_LINES_MAX);
    smtp_reply_reset(&r);
    free(s);
}

UNIT_TEST(smtp_reply_pipelined_replies_stop_after_first_final_line) {
    const char in[] = "250 2.1.0 Ok\r\n250-2.1.5 Ok\r\n250 more\r\n354 go\r\n";
    struct smtp_reply r = {0};
    size_t used = 99, off = 0;
    CHECK_INT(smtp_reply_feed(&r, in, sizeof(in) - 1, &used), REPLY_DONE);
    CHECK_INT(used, 14);
    CHECK_MEM(text_of(&r), r.text.len, "250 2.1.0 Ok\r\n");
    off += used;
    smtp_reply_reset(&r);
    CHECK(r.text.data == NULL);
    CHECK_INT(r.nlines, 0);
    CHECK_INT(smtp_reply_feed(&r, in + off, sizeof(in) - 1 - off, &used), REPLY_DONE);
    CHECK_INT(used, 24);
    CHECK_INT(r.nlines, 2);
    CHECK_MEM(text_of(&r), r.text.len, "250-2.1.5 Ok\r\n250 more\r\n");
    off += used;
    smtp_reply_reset(&r);
    CHECK_INT(smtp_reply_feed(&r, in + off, sizeof(in) - 1 - off, &used), REPLY_DONE);
    CHECK_INT(used, 8);
    CHECK_INT(r.code, 354);
    CHECK_MEM(text_of(&r), r.text.len, "354 go\r\n");
    smtp_reply_reset(&r);
}

UNIT_TEST(smtp_reply_reset_frees_memory_and_clears_state) {
    struct smtp_reply r = {0};
    size_t used;
    CHECK_INT(smtp_reply_feed(&r, LIT("250-a\r\n"), &used), REPLY_INCOMPLETE);
    smtp_reply_reset(&r);
    CHECK(r.text.data == NULL);
    CHECK_INT(r.nlines, 0);
    CHECK_INT(smtp_reply_feed(&r, LIT("421 bye\r\n"), &used), REPLY_DONE);
    CHECK_INT(r.code, 421);
    CHECK_MEM(text_of(&r), r.text.len, "421 bye\r\n");
    smtp_reply_reset(&r);
}

UNIT_TEST(smtp_reply_line_max_admits_a_sasl_sized_challenge_only_when_set) {
    size_t n = 6000;
    char *in = malloc(n + 7);
    memcpy(in, "334 ", 4);
    memset(in + 4, 'C', n);
    memcpy(in + 4 + n, "\r\n", 2);
    struct smtp_reply r = {0};
    size_t used = 0;
    CHECK_INT(smtp_reply_feed(&r, in, n + 6, &used), REPLY_BAD);
    smtp_reply_reset(&r);
    r.line_max = 12288;
    CHECK_INT(smtp_reply_feed(&r, in, n + 6, &used), REPLY_DONE);
    CHECK_INT(used, n + 6);
    CHECK_INT(r.code, 334);
    CHECK_INT(r.line_max, 12288); /* kept across reset */
    smtp_reply_reset(&r);
    CHECK_INT(r.line_max, 12288);
    free(in);
}
