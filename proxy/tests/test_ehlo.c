/*
 * test_ehlo.c - ehlo.h: the EHLO capability rewrite (ARCHITECTURE.md §4).
 */
#include <strings.h>

#include "protocol/ehlo.h"
#include "unit.h"

static void check_rewrite(const char *in, int offer, int hide_auth, size_t reserve,
                          const char *want, int line) {
    struct ehlo_policy p = {.offer_starttls = offer, .hide_auth = hide_auth,
                            .size_reserve = reserve};
    struct buffer out = {0};
    int ok = ehlo_rewrite(in, strlen(in), &p, &out);
    if (!ok) {
        unit_fail(__FILE__, line, "ehlo_rewrite returned 0");
    } else if (out.len != strlen(want) || memcmp(buffer_head(&out), want, out.len) != 0) {
        unit_fail(__FILE__, line, "ehlo_rewrite(%s):", unit_show_bytes(in, strlen(in)));
        unit_fail(__FILE__, line, "      got  %s",
                  unit_show_bytes(out.len ? buffer_head(&out) : "", out.len));
        unit_fail(__FILE__, line, "      want %s", unit_show_bytes(want, strlen(want)));
    }
    buffer_free(&out);
}

static const char postfix_ehlo[] =
    "250-mx.example.test\r\n"
    "250-PIPELINING\r\n"
    "250-SIZE 10240000\r\n"
    "250-VRFY\r\n"
    "250-ETRN\r\n"
    "250-STARTTLS\r\n"
    "250-AUTH PLAIN LOGIN\r\n"
    "250-AUTH=PLAIN LOGIN\r\n"
    "250-ENHANCEDSTATUSCODES\r\n"
    "250-8BITMIME\r\n"
    "250-DSN\r\n"
    "250-SMTPUTF8\r\n"
    "250-CHUNKING\r\n"
    "250-BINARYMIME\r\n"
    "250-XCLIENT NAME ADDR PROTO HELO REVERSE_NAME PORT LOGIN DESTADDR DESTPORT\r\n"
    "250 XFORWARD NAME ADDR PROTO HELO SOURCE PORT IDENT\r\n";

UNIT_TEST(ehlo_postfix_reply_loses_tls_bdat_and_identity_capabilities) {
    check_rewrite(postfix_ehlo, 0, 0, 2048,
                  "250-mx.example.test\r\n"
                  "250-PIPELINING\r\n"
                  "250-SIZE 10237952\r\n"
                  "250-VRFY\r\n"
                  "250-ETRN\r\n"
                  "250-AUTH PLAIN LOGIN\r\n"
                  "250-AUTH=PLAIN LOGIN\r\n"
                  "250-ENHANCEDSTATUSCODES\r\n"
                  "250-8BITMIME\r\n"
                  "250-DSN\r\n"
                  "250 SMTPUTF8\r\n",
                  __LINE__);
}

UNIT_TEST(ehlo_postfix_reply_with_starttls_offered_and_auth_hidden) {
    check_rewrite(postfix_ehlo, 1, 1, 2048,
                  "250-mx.example.test\r\n"
                  "250-PIPELINING\r\n"
                  "250-SIZE 10237952\r\n"
                  "250-VRFY\r\n"
                  "250-ETRN\r\n"
                  "250-ENHANCEDSTATUSCODES\r\n"
                  "250-8BITMIME\r\n"
                  "250-DSN\r\n"
                  "250-SMTPUTF8\r\n"
                  "250 STARTTLS\r\n",
                  __LINE__);
}

UNIT_TEST(ehlo_size_is_lowered_by_reserve) {
    check_rewrite("250-h\r\n250 SIZE 10000\r\n", 0, 0, 2048, "250-h\r\n250 SIZE 7952\r\n",
                  __LINE__);
    check_rewrite("250-h\r\n250-SIZE 52428800\r\n250 DSN\r\n", 0, 0, 0,
                  "250-h\r\n250-SIZE 52428800\r\n250 DSN\r\n", __LINE__);
}

UNIT_TEST(ehlo_size_without_number_or_zero_means_no_limit_and_stays) {
    check_rewrite("250-h\r\n250-SIZE\r\n250 DSN\r\n", 0, 0, 2048,
                  "250-h\r\n250-SIZE\r\n250 DSN\r\n", __LINE__);
    check_rewrite("250-h\r\n250-SIZE 0\r\n250 DSN\r\n", 0, 0, 2048,
                  "250-h\r\n250-SIZE 0\r\n250 DSN\r\n", __LINE__);
}

UNIT_TEST(ehlo_size_smaller_than_reserve_becomes_one) {
    check_rewrite("250-h\r\n250 SIZE 100\r\n", 0, 0, 2048, "250-h\r\n250 SIZE 1\r\n",
                  __LINE__);
    check_rewrite("250-h\r\n250 SIZE 2048\r\n", 0, 0, 2048, "250-h\r\n250 SIZE 1\r\n",
                  __LINE__);
    check_rewrite("250-h\r\n250 SIZE 2049\r\n", 0, 0, 2048, "250-h\r\n250 SIZE 1\r\n",
                  __LINE__);
    check_rewrite("250-h\r\n250 SIZE 2050\r\n", 0, 0, 2048, "250-h\r\n250 SIZE 2\r\n",
                  __LINE__);
}

UNIT_TEST(ehlo_lowercase_size_keyword_is_lowered_too) {
    struct ehlo_policy p = {.offer_starttls = 0, .hide_auth = 0, .size_reserve = 2048};
    struct buffer out = {0};
    const char *in = "250-h\r\n250 size 10000\r\n";
    CHECK_INT(ehlo_rewrite(in, strlen(in), &p, &out), 1);
    const char *want = "250-h\r\n250 size 7952\r\n";
    CHECK_INT(out.len, strlen(want));
    CHECK(out.len > 0 && strncasecmp(buffer_head(&out), want, out.len) == 0);
    buffer_free(&out);
}

UNIT_TEST(ehlo_offer_starttls_appends_it_last) {
    check_rewrite("250-h\r\n250-PIPELINING\r\n250 8BITMIME\r\n", 1, 0, 2048,
                  "250-h\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 STARTTLS\r\n", __LINE__);
}

UNIT_TEST(ehlo_backend_starttls_is_replaced_not_duplicated) {
    check_rewrite("250-h\r\n250-STARTTLS\r\n250 8BITMIME\r\n", 1, 0, 2048,
                  "250-h\r\n250-8BITMIME\r\n250 STARTTLS\r\n", __LINE__);
}

UNIT_TEST(ehlo_hide_auth_removes_auth_and_auth_equals) {
    check_rewrite("250-h\r\n250-AUTH PLAIN LOGIN\r\n250-AUTH=PLAIN LOGIN\r\n250 DSN\r\n", 0, 1,
                  2048, "250-h\r\n250 DSN\r\n", __LINE__);
    check_rewrite("250-h\r\n250-auth login\r\n250 auth=login\r\n", 0, 1, 2048, "250 h\r\n",
                  __LINE__);
}

UNIT_TEST(ehlo_auth_kept_when_policy_does_not_hide_it) {
    check_rewrite("250-h\r\n250-AUTH PLAIN\r\n250 DSN\r\n", 0, 0, 2048,
                  "250-h\r\n250-AUTH PLAIN\r\n250 DSN\r\n", __LINE__);
}

UNIT_TEST(ehlo_keywords_match_case_insensitively) {
    check_rewrite("250-h\r\n250-starttls\r\n250-Chunking\r\n250-BinaryMime\r\n"
                  "250-xclient ADDR\r\n250-Xforward ADDR\r\n250 dsn\r\n",
                  0, 0, 2048, "250-h\r\n250 dsn\r\n", __LINE__);
}

UNIT_TEST(ehlo_removed_keyword_as_last_line_leaves_a_final_line) {
    check_rewrite("250-h\r\n250-PIPELINING\r\n250 STARTTLS\r\n", 0, 0, 2048,
                  "250-h\r\n250 PIPELINING\r\n", __LINE__);
    check_rewrite("250-h\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 XCLIENT ADDR\r\n", 0, 0,
                  2048, "250-h\r\n250 PIPELINING\r\n", __LINE__);
}

UNIT_TEST(ehlo_everything_removed_leaves_one_line_reply) {
    check_rewrite("250-mx.example.test says hi\r\n250-STARTTLS\r\n250 CHUNKING\r\n", 0, 0,
                  2048, "250 mx.example.test says hi\r\n", __LINE__);
}

UNIT_TEST(ehlo_one_line_reply_stays_one_line) {
    check_rewrite("250 mx.example.test\r\n", 0, 0, 2048, "250 mx.example.test\r\n",
                  __LINE__);
}

UNIT_TEST(ehlo_one_line_reply_gains_starttls) {
    check_rewrite("250 mx.example.test\r\n", 1, 0, 2048,
                  "250-mx.example.test\r\n250 STARTTLS\r\n", __LINE__);
}

UNIT_TEST(ehlo_empty_keyword_lines_are_dropped) {
    check_rewrite("250-h\r\n250-\r\n250-PIPELINING\r\n250-   \r\n250 \r\n", 0, 0, 2048,
                  "250-h\r\n250 PIPELINING\r\n", __LINE__);
}

UNIT_TEST(ehlo_greeting_line_is_never_taken_for_a_keyword) {
    /* the first line is the server's domain, not an ehlo-line */
    check_rewrite("250-chunking.example.test\r\n250 DSN\r\n", 0, 0, 2048,
                  "250-chunking.example.test\r\n250 DSN\r\n", __LINE__);
}

UNIT_TEST(ehlo_keyword_merely_starting_with_a_removed_name_is_kept) {
    check_rewrite("250-h\r\n250-STARTTLSX\r\n250-AUTHX\r\n250 SIZEX 5\r\n", 0, 1, 2048,
                  "250-h\r\n250-STARTTLSX\r\n250-AUTHX\r\n250 SIZEX 5\r\n", __LINE__);
}

UNIT_TEST(ehlo_other_capabilities_keep_text_and_order) {
    check_rewrite("250-h greets you\r\n250-DSN\r\n250-ETRN\r\n250-X-FOO bar baz\r\n"
                  "250 8BITMIME\r\n",
                  0, 0, 2048,
                  "250-h greets you\r\n250-DSN\r\n250-ETRN\r\n250-X-FOO bar baz\r\n"
                  "250 8BITMIME\r\n",
                  __LINE__);
}

UNIT_TEST(ehlo_rewrite_appends_after_existing_output) {
    struct ehlo_policy p = {.offer_starttls = 0, .hide_auth = 0, .size_reserve = 0};
    struct buffer out = {0};
    CHECK_INT(buffer_append_str(&out, "X"), 1);
    const char *in = "250 h\r\n";
    CHECK_INT(ehlo_rewrite(in, strlen(in), &p, &out), 1);
    CHECK_MEM(buffer_head(&out), out.len, "X250 h\r\n");
    buffer_free(&out);
}

/* Found by fuzz_smtp_reply: "AUTH=" with nothing after it escaped the
 * filter. */
UNIT_TEST(ehlo_bare_auth_equals_keyword_is_hidden_too) {
    const char reply[] = "250-mx.example.test\r\n250-AUTH=\r\n250 8BITMIME\r\n";
    struct ehlo_policy policy = {.offer_starttls = 0, .hide_auth = 1, .size_reserve = 2048};
    struct buffer out = {0};
    CHECK(ehlo_rewrite(reply, strlen(reply), &policy, &out));
    CHECK_MEM(buffer_head(&out), out.len, "250-mx.example.test\r\n250 8BITMIME\r\n");
    buffer_free(&out);
}

/* Found by fuzz_smtp_reply: clients read "CHUNKING=" as CHUNKING. */
UNIT_TEST(ehlo_keyword_is_the_leading_run_so_chunking_equals_is_removed) {
    const char reply[] = "250-mx\r\n250-XCLIENT NAME\r\n250-CHUNKING=\r\n250 DSN\r\n";
    struct ehlo_policy policy = {.offer_starttls = 0, .hide_auth = 0, .size_reserve = 2048};
    struct buffer out = {0};
    CHECK(ehlo_rewrite(reply, strlen(reply), &policy, &out));
    CHECK_MEM(buffer_head(&out), out.len, "250-mx\r\n250 DSN\r\n");
    buffer_free(&out);
}

UNIT_TEST(ehlo_extensions_reads_keywords_not_the_greeting_line) {
    const char reply[] = "250-PIPELINING greets you\r\n250-SIZE 1000\r\n250-dsn\r\n"
                         "250-AUTH=LOGIN\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n";
    CHECK_INT(ehlo_extensions(reply, sizeof(reply) - 1),
              SMTP_EXT_SIZE | SMTP_EXT_DSN | SMTP_EXT_AUTH | SMTP_EXT_8BITMIME |
                  SMTP_EXT_SMTPUTF8);
    const char pipe[] = "250-mx\r\n250-PIPELINING\r\n250 DSNX\r\n";
    CHECK_INT(ehlo_extensions(pipe, sizeof(pipe) - 1), EHLO_PIPELINING);
    CHECK_INT(ehlo_extensions("250 mx\r\n", 8), 0);
}

UNIT_TEST(ehlo_early_pipelining_offers_are_removed) {
    /* PIPECONNECT (RFC-less, Exim) and its older name invite talk before
     * the greeting, which the pregreet check flags */
    const char in[] = "250-mx\r\n250-PIPELINING\r\n250-PIPECONNECT\r\n250-X_PIPE_CONNECT\r\n"
                      "250 8BITMIME\r\n";
    struct ehlo_policy policy = {0};
    struct buffer out = {0};
    CHECK_INT(ehlo_rewrite(in, sizeof(in) - 1, &policy, &out), 1);
    CHECK_MEM(buffer_head(&out), out.len, "250-mx\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
    buffer_free(&out);
}
