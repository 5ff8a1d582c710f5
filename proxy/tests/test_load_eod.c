/*
 * test_load_eod.c - smtp-load's eod.h: the end of data is CRLF "." CRLF
 * exactly, found whatever the read boundaries, and nothing else ends a
 * message.
 */
#include "smtp-load/eod.h"
#include "unit.h"

#define LIT(s) (s), (sizeof(s) - 1)

/* scan_whole returns the end offset of |p| (|n|) scanned at once from a
 * line start, or n + 1 when no end is found. */
static size_t scan_whole(const char *p, size_t n) {
    enum eod_state st = EOD_BOL;
    size_t used = 0;
    return eod_scan(&st, p, n, &used) ? used : n + 1;
}

/* scan_split feeds |p| in pieces cut at |cut1| and |cut2|. Returns the
 * end offset in the whole stream, or n + 1. */
static size_t scan_split(const char *p, size_t n, size_t cut1, size_t cut2) {
    enum eod_state st = EOD_BOL;
    size_t cuts[3] = {cut1, cut2, n}, from = 0;
    for (int i = 0; i < 3; i++) {
        size_t to = cuts[i] < from ? from : cuts[i];
        size_t used = 0;
        if (eod_scan(&st, p + from, to - from, &used)) {
            return from + used;
        }
        if (used != to - from) {
            return (size_t)-1;
        }
        from = to;
    }
    return n + 1;
}

UNIT_TEST(load_eod_finds_the_end_after_a_line) {
    CHECK_INT(scan_whole(LIT("hello\r\n.\r\nQUIT\r\n")), 10);
}

UNIT_TEST(load_eod_empty_message_ends_at_once) {
    /* The CRLF of DATA itself is the first half of the marker. */
    CHECK_INT(scan_whole(LIT(".\r\n")), 3);
}

UNIT_TEST(load_eod_bare_endings_and_stuffed_dots_end_nothing) {
    static const char *const not_ends[] = {
        "a\n.\nb", "a\r.\rb", "a\n.\r\nb", "a\r\n.\nb", "a\r\n..\r\nb", "a\r\n. \r\nb",
        "a\r\n.x\r\nb", "a.\r\nb", "a\r\r.\r\nb"};
    for (size_t i = 0; i < sizeof(not_ends) / sizeof(not_ends[0]); i++) {
        size_t n = strlen(not_ends[i]);
        if (scan_whole(not_ends[i], n) != n + 1) {
            unit_fail(__FILE__, __LINE__, "%s ended data", unit_show_bytes(not_ends[i], n));
        }
    }
}

UNIT_TEST(load_eod_cr_run_before_the_marker_still_ends) {
    /* "\r\r\n" ends a line (the last CR pairs with LF): the dot line after it ends. */
    CHECK_INT(scan_whole(LIT("a\r\r\n.\r\n")), 7);
}

UNIT_TEST(load_eod_marker_split_at_every_point_is_found) {
    static const char msg[] = "Subject: x\r\n\r\nline one\r\n..stuffed\r\nlast\r\n.\r\nQUIT\r\n";
    size_t n = sizeof(msg) - 1, want = scan_whole(msg, n);
    CHECK_INT(want, n - 6);
    for (size_t a = 0; a <= n; a++) {
        for (size_t b = a; b <= n; b++) {
            size_t got = scan_split(msg, n, a, b);
            if (got != want) {
                unit_fail(__FILE__, __LINE__, "cut at %zu,%zu: end %zu, want %zu", a, b, got,
                          want);
                return;
            }
        }
    }
}

UNIT_TEST(load_eod_byte_at_a_time_finds_the_end) {
    static const char msg[] = "x\r\n.\r\n";
    enum eod_state st = EOD_BOL;
    size_t i = 0, used = 0;
    for (; i < sizeof(msg) - 1; i++) {
        if (eod_scan(&st, msg + i, 1, &used)) {
            break;
        }
        CHECK_INT(used, 1);
    }
    CHECK_INT(i, 5);
    CHECK_INT(used, 1);
    CHECK_INT(st, EOD_BOL);
}
