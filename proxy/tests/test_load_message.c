/*
 * test_load_message.c - smtp-load's message.h: every message is exactly
 * the size asked for, CRLF only, no line begins with ".", lines are
 * short, and Message-IDs differ.
 */
#include "smtp-load/message.h"
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>

/* check_lines fails unless |p| (|n|) is CRLF-terminated lines only, none
 * beginning with "." and none longer than 998 octets. */
static void check_lines(const char *p, size_t n, size_t size, int line) {
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\r' && (i + 1 >= n || p[i + 1] != '\n')) {
            unit_fail(__FILE__, line, "size %zu: bare CR at %zu", size, i);
            return;
        }
        if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r')) {
            unit_fail(__FILE__, line, "size %zu: bare LF at %zu", size, i);
            return;
        }
        if (p[i] == '\n') {
            if (p[start] == '.' || i - start - 1 > 998) {
                unit_fail(__FILE__, line, "size %zu: bad line at %zu", size, start);
                return;
            }
            start = i + 1;
        }
    }
    if (n > 0 && start != n) {
        unit_fail(__FILE__, line, "size %zu: does not end in CRLF", size);
    }
}

/* whole_message builds message |seq| of a layout for |size| and checks
 * it; returns the layout's header length (0 when init failed). */
static size_t whole_message(size_t size, uint64_t seq, int line) {
    struct msg_layout m;
    char why[200];
    if (!msg_layout_init(&m, size, "a@src.test", "b@dst.test", "load.test", why, sizeof(why))) {
        return 0;
    }
    char *all = malloc(MSG_HEADER_MAX + m.wire_len);
    size_t h = msg_header(&m, 7, seq, 1764706740, all);
    memcpy(all + h, m.wire, m.wire_len);
    size_t total = h + m.wire_len;
    if (h != m.header_len || total - 3 != size) {
        unit_fail(__FILE__, line, "size %zu: header %zu, message %zu", size, h, total - 3);
    }
    if (memcmp(all + total - 5, "\r\n.\r\n", 5) != 0) {
        unit_fail(__FILE__, line, "size %zu: no end of data", size);
    }
    check_lines(all, total - 3, size, line);
    free(all);
    msg_layout_free(&m);
    return h;
}

UNIT_TEST(load_message_every_size_from_the_header_up_is_exact) {
    size_t h = whole_message(4096, 0, __LINE__);
    CHECK(h > 100);
    for (size_t size = h; size < h + 400; size++) {
        whole_message(size, size, __LINE__);
    }
    whole_message(10 * 1024, 1, __LINE__);
    whole_message(1024 * 1024 + 1, 2, __LINE__);
}

UNIT_TEST(load_message_below_the_header_is_refused) {
    struct msg_layout m;
    char why[200] = "";
    CHECK(!msg_layout_init(&m, 10, "a@src.test", "b@dst.test", "load.test", why, sizeof(why)));
    CHECK(strstr(why, "below the header") != NULL);
}

UNIT_TEST(load_message_body_lines_are_76_characters) {
    char body[78 * 3];
    msg_body_fill(body, sizeof(body));
    CHECK(memcmp(body + 76, "\r\n", 2) == 0);
    CHECK(memcmp(body + 78 + 76, "\r\n", 2) == 0);
    CHECK(memchr(body, '.', sizeof(body)) == NULL);
    CHECK(memchr(body, ' ', sizeof(body)) == NULL);
}

UNIT_TEST(load_message_ids_differ_and_header_length_does_not) {
    struct msg_layout m;
    char why[200], a[MSG_HEADER_MAX], b[MSG_HEADER_MAX];
    CHECK(msg_layout_init(&m, 4096, "a@src.test", "b@dst.test", "load.test", why, sizeof(why)));
    size_t na = msg_header(&m, 0, 1, 0, a);
    size_t nb = msg_header(&m, 0xffffffffu, UINT64_MAX, 253402300799, b);
    CHECK_INT(na, nb);
    CHECK(memcmp(a, b, na) != 0);
    CHECK(strstr(a, "Message-ID: <00000000.0000000000000001@load.test>\r\n") != NULL);
    CHECK(strstr(b, "Date: Fri, 31 Dec 9999 23:59:59 +0000\r\n") != NULL);
    msg_layout_free(&m);
}

UNIT_TEST(load_message_date_is_rfc5322_in_utc) {
    char d[32];
    msg_date(1764706740, d);
    CHECK_STR(d, "Tue, 02 Dec 2025 20:19:00 +0000");
    msg_date(0, d);
    CHECK_STR(d, "Thu, 01 Jan 1970 00:00:00 +0000");
}

UNIT_TEST(load_message_names_with_spaces_or_controls_are_refused) {
    struct msg_layout m;
    char why[200];
    CHECK(!msg_layout_init(&m, 4096, "a b@src.test", "b@dst.test", "load.test", why,
                           sizeof(why)));
    CHECK(!msg_layout_init(&m, 4096, "a@src.test", "b@dst.test\r\n", "load.test", why,
                           sizeof(why)));
}
