/*
 * test_smtp_cmd.c - smtp_cmd.h: line framing, verbs, MAIL SIZE rewriting.
 */
#include <strings.h>

#include "protocol/smtp_cmd.h"
#include "unit.h"

/* find runs smtp_line_find over a string literal of |n| bytes. */
static enum line_status find(const char *s, size_t n, size_t max, size_t *len,
                             size_t *consumed) {
    *len = 9999;
    *consumed = 9999;
    return smtp_line_find(s, n, max, len, consumed);
}

#define LIT(s) (s), (sizeof(s) - 1)

/* ---- framing ---- */

UNIT_TEST(smtp_cmd_crlf_line_is_found_with_length_and_consumed) {
    size_t len, consumed;
    CHECK_INT(find(LIT("NOOP\r\nQUIT\r\n"), 2048, &len, &consumed), LINE_OK);
    CHECK_INT(len, 4);
    CHECK_INT(consumed, 6);
}

UNIT_TEST(smtp_cmd_bare_lf_line_is_accepted_for_commands) {
    size_t len, consumed;
    CHECK_INT(find(LIT("NOOP\nQUIT\r\n"), 2048, &len, &consumed), LINE_OK);
    CHECK_INT(len, 4);
    CHECK_INT(consumed, 5);
}

UNIT_TEST(smtp_cmd_empty_line_is_a_complete_line) {
    size_t len, consumed;
    CHECK_INT(find(LIT("\r\n"), 2048, &len, &consumed), LINE_OK);
    CHECK_INT(len, 0);
    CHECK_INT(consumed, 2);
    CHECK_INT(find(LIT("\n"), 2048, &len, &consumed), LINE_OK);
    CHECK_INT(len, 0);
    CHECK_INT(consumed, 1);
}

UNIT_TEST(smtp_cmd_line_without_terminator_is_incomplete) {
    size_t len, consumed;
    CHECK_INT(find(LIT("MAIL FROM:<a@b>"), 2048, &len, &consumed), LINE_INCOMPLETE);
    CHECK_INT(find(LIT("MAIL FROM:<a@b>\r"), 2048, &len, &consumed), LINE_INCOMPLETE);
    CHECK_INT(find("", 0, 2048, &len, &consumed), LINE_INCOMPLETE);
}

UNIT_TEST(smtp_cmd_line_exactly_at_limit_with_crlf_is_ok) {
    /* 10 octets, terminator included */
    size_t len, consumed;
    CHECK_INT(find(LIT("12345678\r\n"), 10, &len, &consumed), LINE_OK);
    CHECK_INT(len, 8);
    CHECK_INT(consumed, 10);
}

UNIT_TEST(smtp_cmd_line_one_over_limit_with_crlf_is_too_long) {
    size_t len, consumed;
    CHECK_INT(find(LIT("123456789\r\n"), 10, &len, &consumed), LINE_TOO_LONG);
}

UNIT_TEST(smtp_cmd_bare_lf_line_exactly_at_limit_is_ok_one_over_too_long) {
    size_t len, consumed;
    CHECK_INT(find(LIT("123456789\n"), 10, &len, &consumed), LINE_OK);
    CHECK_INT(len, 9);
    CHECK_INT(consumed, 10);
    CHECK_INT(find(LIT("1234567890\n"), 10, &len, &consumed), LINE_TOO_LONG);
}

UNIT_TEST(smtp_cmd_unterminated_line_already_over_limit_is_too_long) {
    size_t len, consumed;
    /* 11 octets and no terminator yet: whatever comes, it is too long */
    CHECK_INT(find(LIT("12345678901"), 10, &len, &consumed), LINE_TOO_LONG);
    /* within bounds so far: still incomplete */
    CHECK_INT(find(LIT("12345678"), 10, &len, &consumed), LINE_INCOMPLETE);
    CHECK_INT(find(LIT("12345678\r"), 10, &len, &consumed), LINE_INCOMPLETE);
}

UNIT_TEST(smtp_cmd_long_unterminated_input_at_default_limit_is_too_long) {
    static char big[5000];
    memset(big, 'A', sizeof(big));
    size_t len, consumed;
    CHECK_INT(find(big, sizeof(big), SMTP_CMD_LINE_MAX_DEFAULT, &len, &consumed),
              LINE_TOO_LONG);
    CHECK_INT(find(big, SMTP_CMD_LINE_MAX_DEFAULT - 2, SMTP_CMD_LINE_MAX_DEFAULT, &len,
                   &consumed),
              LINE_INCOMPLETE);
}

UNIT_TEST(smtp_cmd_nul_inside_line_is_bad_byte_with_consumed) {
    size_t len, consumed;
    CHECK_INT(find(LIT("MA\0IL\r\nNOOP\r\n"), 2048, &len, &consumed), LINE_BAD_BYTE);
    CHECK_INT(len, 5);
    CHECK_INT(consumed, 7);
}

UNIT_TEST(smtp_cmd_bare_cr_inside_line_is_bad_byte_with_consumed) {
    size_t len, consumed;
    CHECK_INT(find(LIT("RCPT\rTO:<x@y>\r\nNOOP\r\n"), 2048, &len, &consumed),
              LINE_BAD_BYTE);
    CHECK_INT(len, 13);
    CHECK_INT(consumed, 15);
}

UNIT_TEST(smtp_cmd_bare_cr_before_crlf_is_bad_byte) {
    size_t len, consumed;
    CHECK_INT(find(LIT("NOOP\r\r\nQUIT\r\n"), 2048, &len, &consumed), LINE_BAD_BYTE);
    CHECK_INT(consumed, 7);
}

UNIT_TEST(smtp_cmd_bad_byte_line_ended_by_bare_lf_consumes_through_lf) {
    size_t len, consumed;
    CHECK_INT(find(LIT("A\0B\nC\r\n"), 2048, &len, &consumed), LINE_BAD_BYTE);
    CHECK_INT(len, 3);
    CHECK_INT(consumed, 4);
}

/* ---- verbs ---- */

static void parse(const char *s, struct smtp_cmd *c) {
    smtp_cmd_parse(s, strlen(s), c);
}

UNIT_TEST(smtp_cmd_verbs_are_case_insensitive) {
    struct smtp_cmd c;
    parse("ehlo client.example", &c);
    CHECK_INT(c.verb, VERB_EHLO);
    CHECK_MEM(c.arg, c.arg_len, "client.example");
    parse("StartTLS", &c);
    CHECK_INT(c.verb, VERB_STARTTLS);
    CHECK_INT(c.arg_len, 0);
    parse("mAiL FROM:<a@b>", &c);
    CHECK_INT(c.verb, VERB_MAIL);
    CHECK_MEM(c.arg, c.arg_len, "FROM:<a@b>");
}

UNIT_TEST(smtp_cmd_every_known_verb_is_recognised) {
    static const struct {
        const char *line;
        enum smtp_verb verb;
    } t[] = {
        {"HELO x", VERB_HELO},         {"EHLO x", VERB_EHLO},
        {"MAIL FROM:<>", VERB_MAIL},   {"RCPT TO:<a@b>", VERB_RCPT},
        {"DATA", VERB_DATA},           {"BDAT 10 LAST", VERB_BDAT},
        {"RSET", VERB_RSET},           {"NOOP", VERB_NOOP},
        {"QUIT", VERB_QUIT},           {"VRFY x", VERB_VRFY},
        {"EXPN x", VERB_EXPN},         {"HELP", VERB_HELP},
        {"STARTTLS", VERB_STARTTLS},   {"AUTH PLAIN", VERB_AUTH},
        {"XCLIENT ADDR=1.2.3.4", VERB_XCLIENT},
        {"XFORWARD ADDR=1.2.3.4", VERB_XFORWARD},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct smtp_cmd c;
        parse(t[i].line, &c);
        if (c.verb != t[i].verb) {
            unit_fail(__FILE__, __LINE__, "\"%s\" -> verb %d, want %d", t[i].line,
                      (int)c.verb, (int)t[i].verb);
        }
    }
}

UNIT_TEST(smtp_cmd_argument_is_trimmed_of_separating_and_trailing_spaces) {
    struct smtp_cmd c;
    parse("EHLO    client.example   ", &c);
    CHECK_INT(c.verb, VERB_EHLO);
    CHECK_MEM(c.arg, c.arg_len, "client.example");
}

UNIT_TEST(smtp_cmd_argument_inner_spaces_are_kept) {
    struct smtp_cmd c;
    parse("MAIL FROM:<a@b> SIZE=10  BODY=8BITMIME ", &c);
    CHECK_INT(c.verb, VERB_MAIL);
    CHECK_MEM(c.arg, c.arg_len, "FROM:<a@b> SIZE=10  BODY=8BITMIME");
}

UNIT_TEST(smtp_cmd_verb_without_argument_has_empty_arg) {
    struct smtp_cmd c;
    parse("DATA", &c);
    CHECK_INT(c.verb, VERB_DATA);
    CHECK_INT(c.arg_len, 0);
    parse("QUIT   ", &c);
    CHECK_INT(c.verb, VERB_QUIT);
    CHECK_INT(c.arg_len, 0);
}

UNIT_TEST(smtp_cmd_unknown_verb_is_verb_unknown) {
    struct smtp_cmd c;
    parse("FOO bar", &c);
    CHECK_INT(c.verb, VERB_UNKNOWN);
    parse("", &c);
    CHECK_INT(c.verb, VERB_UNKNOWN);
    /* a known verb with extra letters is another word */
    parse("MAILX FROM:<a@b>", &c);
    CHECK_INT(c.verb, VERB_UNKNOWN);
    parse("STARTTLSX", &c);
    CHECK_INT(c.verb, VERB_UNKNOWN);
    /* and a prefix of one is not it either */
    parse("STARTTL", &c);
    CHECK_INT(c.verb, VERB_UNKNOWN);
    parse("EHL x", &c);
    CHECK_INT(c.verb, VERB_UNKNOWN);
}

UNIT_TEST(smtp_cmd_parse_uses_only_len_bytes) {
    struct smtp_cmd c;
    const char *s = "QUIT\r\nDATA";
    smtp_cmd_parse(s, 4, &c);
    CHECK_INT(c.verb, VERB_QUIT);
    CHECK_INT(c.arg_len, 0);
    smtp_cmd_parse("EHLO abcdef", 8, &c);
    CHECK_INT(c.verb, VERB_EHLO);
    CHECK_MEM(c.arg, c.arg_len, "abc");
}

UNIT_TEST(smtp_cmd_verb_names_are_canonical_upper_case) {
    CHECK_STR(smtp_verb_name(VERB_EHLO), "EHLO");
    CHECK_STR(smtp_verb_name(VERB_STARTTLS), "STARTTLS");
    CHECK_STR(smtp_verb_name(VERB_XFORWARD), "XFORWARD");
    CHECK_STR(smtp_verb_name(VERB_MAIL), "MAIL");
    CHECK_STR(smtp_verb_name(VERB_UNKNOWN), "?");
}

/* ---- MAIL SIZE ---- */

/* add_size runs smtp_mail_add_size and checks the output byte-exactly. */
static void check_add_size(const char *line, size_t extra, const char *want, int line_no) {
    struct buffer out = {0};
    int ok = smtp_mail_add_size(line, strlen(line), extra, &out);
    if (!ok) {
        unit_fail(__FILE__, line_no, "smtp_mail_add_size(\"%s\") returned 0", line);
    } else if (out.len != strlen(want) || memcmp(buffer_head(&out), want, out.len) != 0) {
        unit_fail(__FILE__, line_no, "smtp_mail_add_size(\"%s\", %zu):", line, extra);
        unit_fail(__FILE__, line_no, "      got  %s",
                  unit_show_bytes(out.len ? buffer_head(&out) : "", out.len));
        unit_fail(__FILE__, line_no, "      want %s", unit_show_bytes(want, strlen(want)));
    }
    buffer_free(&out);
}

UNIT_TEST(smtp_cmd_mail_size_is_raised_by_extra) {
    check_add_size("MAIL FROM:<a@b> SIZE=1000", 2048, "MAIL FROM:<a@b> SIZE=3048\r\n",
                   __LINE__);
}

UNIT_TEST(smtp_cmd_mail_size_keeps_following_parameters) {
    check_add_size("MAIL FROM:<a@b> SIZE=1000 BODY=8BITMIME", 2048,
                   "MAIL FROM:<a@b> SIZE=3048 BODY=8BITMIME\r\n", __LINE__);
    check_add_size("MAIL FROM:<a@b> BODY=8BITMIME SIZE=1 SMTPUTF8", 2048,
                   "MAIL FROM:<a@b> BODY=8BITMIME SIZE=2049 SMTPUTF8\r\n", __LINE__);
}

UNIT_TEST(smtp_cmd_mail_lowercase_size_keyword_is_raised) {
    /* esmtp-keyword is case-insensitive (RFC 5321 4.1.2) */
    struct buffer out = {0};
    const char *line = "mail from:<a@b> size=1000";
    CHECK_INT(smtp_mail_add_size(line, strlen(line), 2048, &out), 1);
    CHECK_INT(out.len, strlen("mail from:<a@b> size=3048\r\n"));
    CHECK(out.len > 0 && strncasecmp(buffer_head(&out), "mail from:<a@b> size=3048\r\n",
                                     out.len) == 0);
    buffer_free(&out);
}

UNIT_TEST(smtp_cmd_mail_without_size_is_copied_unchanged_with_crlf) {
    check_add_size("MAIL FROM:<a@b>", 2048, "MAIL FROM:<a@b>\r\n", __LINE__);
    check_add_size("MAIL FROM:<a@b> BODY=8BITMIME", 2048,
                   "MAIL FROM:<a@b> BODY=8BITMIME\r\n", __LINE__);
}

UNIT_TEST(smtp_cmd_mail_size_inside_address_is_not_touched) {
    check_add_size("MAIL FROM:<SIZE=5@x>", 2048, "MAIL FROM:<SIZE=5@x>\r\n", __LINE__);
    check_add_size("MAIL FROM:<SIZE=5@x> SIZE=10", 2048,
                   "MAIL FROM:<SIZE=5@x> SIZE=2058\r\n", __LINE__);
    check_add_size("MAIL FROM:<a b SIZE=5@x>", 2048, "MAIL FROM:<a b SIZE=5@x>\r\n",
                   __LINE__);
}

UNIT_TEST(smtp_cmd_mail_size_inside_quoted_local_part_is_not_touched) {
    /* RFC 5321 4.1.2: a Quoted-string local part may hold SP and '>' */
    check_add_size("MAIL FROM:<\"x> SIZE=5 \"@y> SIZE=10", 2048,
                   "MAIL FROM:<\"x> SIZE=5 \"@y> SIZE=2058\r\n", __LINE__);
}

UNIT_TEST(smtp_cmd_mail_parameter_merely_ending_in_size_is_not_touched) {
    check_add_size("MAIL FROM:<a@b> XSIZE=5", 2048, "MAIL FROM:<a@b> XSIZE=5\r\n",
                   __LINE__);
}

UNIT_TEST(smtp_cmd_mail_non_numeric_size_is_copied_unchanged) {
    check_add_size("MAIL FROM:<a@b> SIZE=abc", 2048, "MAIL FROM:<a@b> SIZE=abc\r\n",
                   __LINE__);
    check_add_size("MAIL FROM:<a@b> SIZE=12abc", 2048, "MAIL FROM:<a@b> SIZE=12abc\r\n",
                   __LINE__);
    check_add_size("MAIL FROM:<a@b> SIZE=", 2048, "MAIL FROM:<a@b> SIZE=\r\n", __LINE__);
    check_add_size("MAIL FROM:<a@b> SIZE=-5", 2048, "MAIL FROM:<a@b> SIZE=-5\r\n",
                   __LINE__);
}

UNIT_TEST(smtp_cmd_mail_size_zero_extra_is_unchanged) {
    check_add_size("MAIL FROM:<a@b> SIZE=1000", 0, "MAIL FROM:<a@b> SIZE=1000\r\n",
                   __LINE__);
}

UNIT_TEST(smtp_cmd_mail_add_size_appends_after_existing_output) {
    struct buffer out = {0};
    CHECK_INT(buffer_append_str(&out, "RSET\r\n"), 1);
    const char *line = "MAIL FROM:<a@b> SIZE=1";
    CHECK_INT(smtp_mail_add_size(line, strlen(line), 1, &out), 1);
    CHECK_MEM(buffer_head(&out), out.len, "RSET\r\nMAIL FROM:<a@b> SIZE=2\r\n");
    buffer_free(&out);
}

/* ---- the verb is read as the backend reads it (review finding) ---- */

static int parse_ok(const char *line, struct smtp_cmd *cmd) {
    return smtp_cmd_parse(line, strlen(line), cmd);
}

UNIT_TEST(smtp_cmd_tab_after_verb_separates_like_a_space) {
    struct smtp_cmd cmd;
    CHECK_INT(parse_ok("XCLIENT\tADDR=10.9.9.9", &cmd), 1);
    CHECK_INT(cmd.verb, VERB_XCLIENT);
    CHECK_MEM(cmd.arg, cmd.arg_len, "ADDR=10.9.9.9");
    CHECK_INT(parse_ok("DATA\t", &cmd), 1);
    CHECK_INT(cmd.verb, VERB_DATA);
    CHECK_INT(cmd.arg_len, 0);
    CHECK_INT(parse_ok("AUTH \t PLAIN AGFAYg== \t", &cmd), 1);
    CHECK_INT(cmd.verb, VERB_AUTH);
    CHECK_MEM(cmd.arg, cmd.arg_len, "PLAIN AGFAYg==");
}

UNIT_TEST(smtp_cmd_leading_blank_or_non_letter_verb_is_not_a_command) {
    struct smtp_cmd cmd;
    CHECK_INT(parse_ok(" XCLIENT ADDR=10.9.9.9", &cmd), 0);
    CHECK_INT(parse_ok("\tMAIL FROM:<a@b>", &cmd), 0);
    CHECK_INT(parse_ok("", &cmd), 0);
    CHECK_INT(parse_ok("MAIL:FROM:<a@b>", &cmd), 0);
    CHECK_INT(parse_ok("DATA\x0b", &cmd), 0);
    CHECK_INT(parse_ok("X-CLIENT ADDR=1", &cmd), 0);
    CHECK_INT(parse_ok("NOOP \x01", &cmd), 0);
    CHECK_INT(parse_ok("VRFY \x7f", &cmd), 0);
}

UNIT_TEST(smtp_cmd_verb_longer_than_the_limit_is_not_a_command) {
    struct smtp_cmd cmd;
    char verb[SMTP_VERB_MAX + 2];
    memset(verb, 'A', sizeof(verb) - 1);
    verb[SMTP_VERB_MAX] = '\0';
    CHECK_INT(parse_ok(verb, &cmd), 1);
    verb[SMTP_VERB_MAX] = 'A';
    verb[SMTP_VERB_MAX + 1] = '\0';
    CHECK_INT(parse_ok(verb, &cmd), 0);
}

UNIT_TEST(smtp_cmd_canonical_form_has_one_space_between_verb_and_argument) {
    struct smtp_cmd cmd;
    struct buffer out = {0};
    CHECK_INT(parse_ok("xclient\t \tADDR=1.2.3.4 \t", &cmd), 1);
    CHECK(smtp_cmd_canonical(&cmd, &out));
    CHECK_MEM(buffer_head(&out), out.len, "xclient ADDR=1.2.3.4");
    buffer_free(&out);
    CHECK_INT(parse_ok("QUIT\t", &cmd), 1);
    CHECK(smtp_cmd_canonical(&cmd, &out));
    CHECK_MEM(buffer_head(&out), out.len, "QUIT");
    buffer_free(&out);
}

/* ---- per-verb line limits ---- */

UNIT_TEST(smtp_verb_peek_waits_for_the_end_of_the_verb) {
    enum smtp_verb v = VERB_COUNT;
    CHECK_INT(smtp_verb_peek("AU", 2, &v), 0);
    CHECK_INT(smtp_verb_peek("AUTH", 4, &v), 0);
    CHECK_INT(smtp_verb_peek("AUTH ", 5, &v), 1);
    CHECK_INT(v, VERB_AUTH);
    CHECK_INT(smtp_verb_peek("auth\tGSSAPI", 11, &v), 1);
    CHECK_INT(v, VERB_AUTH);
    CHECK_INT(smtp_verb_peek("NOOP\r\n", 6, &v), 1);
    CHECK_INT(v, VERB_NOOP);
    /* not a verb as smtp_cmd_parse reads one: the plain limit applies */
    CHECK_INT(smtp_verb_peek(" AUTH x", 7, &v), 1);
    CHECK_INT(v, VERB_UNKNOWN);
    CHECK_INT(smtp_verb_peek("AUTHX1", 6, &v), 1);
    CHECK_INT(v, VERB_UNKNOWN);
    char longverb[40];
    memset(longverb, 'A', sizeof(longverb));
    CHECK_INT(smtp_verb_peek(longverb, sizeof(longverb), &v), 1);
    CHECK_INT(v, VERB_UNKNOWN);
}

UNIT_TEST(smtp_line_limit_is_512_unless_the_backend_offers_extensions) {
    const struct smtp_line_limits l = {512, 2048, 12288};
    CHECK_INT(smtp_line_limit(VERB_NOOP, 0, &l), 512);
    CHECK_INT(smtp_line_limit(VERB_UNKNOWN, ~0u, &l), 512);
    CHECK_INT(smtp_line_limit(VERB_MAIL, 0, &l), 512);
    CHECK_INT(smtp_line_limit(VERB_RCPT, SMTP_EXT_SIZE, &l), 512);
    CHECK_INT(smtp_line_limit(VERB_MAIL, SMTP_EXT_SIZE, &l), 538);
    CHECK_INT(smtp_line_limit(VERB_RCPT, SMTP_EXT_DSN, &l), 1052);
    CHECK_INT(smtp_line_limit(VERB_MAIL, SMTP_EXT_DSN | SMTP_EXT_AUTH, &l), 1132);
    /* RFC 4954 4: the AUTH command itself keeps RFC 5321's limit */
    CHECK_INT(smtp_line_limit(VERB_AUTH, ~0u, &l), 512);
    /* never past the MAIL/RCPT ceiling */
    const struct smtp_line_limits low = {512, 600, 12288};
    CHECK_INT(smtp_line_limit(VERB_MAIL, ~0u, &low), 600);
}

UNIT_TEST(smtp_mail_param_finds_keywords_after_the_path_only) {
    size_t v = 0, vl = 0;
    const char l1[] = "MAIL FROM:<a@b> BODY=8BITMIME smtputf8 SIZE=10";
    CHECK_INT(smtp_mail_param(l1, sizeof(l1) - 1, "SMTPUTF8", &v, &vl), 1);
    CHECK_INT(vl, 0);
    CHECK_INT(smtp_mail_param(l1, sizeof(l1) - 1, "BODY", &v, &vl), 1);
    CHECK_MEM(l1 + v, vl, "8BITMIME");
    CHECK_INT(smtp_mail_param(l1, sizeof(l1) - 1, "SIZE", NULL, NULL), 1);
    /* inside the path, or a longer keyword, is no parameter */
    const char l2[] = "MAIL FROM:<\"SMTPUTF8 x\"@b> SMTPUTF8X";
    CHECK_INT(smtp_mail_param(l2, sizeof(l2) - 1, "SMTPUTF8", &v, &vl), 0);
    const char l3[] = "MAIL FROM:<a@b>";
    CHECK_INT(smtp_mail_param(l3, sizeof(l3) - 1, "SMTPUTF8", &v, &vl), 0);
}
