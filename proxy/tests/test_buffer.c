/*
 * test_buffer.c - buffer.h: append/consume, growth, memory released when
 * empty, reserve/commit.
 */
#include <stdlib.h>

#include "core/buffer.h"
#include "unit.h"

UNIT_TEST(buffer_new_zeroed_buffer_is_empty_without_memory) {
    struct buffer b = {0};
    CHECK(b.data == NULL);
    CHECK_INT(b.len, 0);
    buffer_free(&b);
    CHECK(b.data == NULL);
    CHECK_INT(b.len, 0);
    CHECK_INT(b.cap, 0);
}

UNIT_TEST(buffer_append_then_consume_returns_bytes_in_order) {
    struct buffer b = {0};
    CHECK_INT(buffer_append(&b, "hello ", 6), 1);
    CHECK_INT(buffer_append_str(&b, "world"), 1);
    CHECK(b.data != NULL);
    CHECK_INT(b.len, 11);
    CHECK_MEM(buffer_head(&b), b.len, "hello world");
    buffer_consume(&b, 6);
    CHECK_INT(b.len, 5);
    CHECK_MEM(buffer_head(&b), b.len, "world");
    buffer_free(&b);
}

UNIT_TEST(buffer_append_zero_bytes_succeeds_and_changes_nothing) {
    struct buffer b = {0};
    CHECK_INT(buffer_append(&b, "", 0), 1);
    CHECK_INT(b.len, 0);
    CHECK_INT(buffer_append_str(&b, "ab"), 1);
    CHECK_INT(buffer_append(&b, "", 0), 1);
    CHECK_MEM(buffer_head(&b), b.len, "ab");
    buffer_free(&b);
}

UNIT_TEST(buffer_keeps_content_across_many_growths) {
    struct buffer b = {0};
    /* 200 KB appended in odd-sized pieces, consumed in other odd pieces,
     * checked against the expected byte sequence throughout. */
    size_t total = 200000, appended = 0, consumed = 0;
    char piece[997];
    while (appended < total) {
        size_t n = sizeof(piece);
        if (n > total - appended) {
            n = total - appended;
        }
        for (size_t i = 0; i < n; i++) {
            piece[i] = (char)('A' + (appended + i) % 26);
        }
        CHECK_INT(buffer_append(&b, piece, n), 1);
        appended += n;
        CHECK(b.cap >= b.start + b.len);
        /* consume a little every round, so start moves while growing */
        size_t c = 313 < b.len ? 313 : b.len;
        for (size_t i = 0; i < c; i++) {
            if (buffer_head(&b)[i] != (char)('A' + (consumed + i) % 26)) {
                CHECK(!"byte mismatch while consuming");
                break;
            }
        }
        buffer_consume(&b, c);
        consumed += c;
    }
    CHECK_INT(b.len, total - consumed);
    int ok = 1;
    for (size_t i = 0; i < b.len; i++) {
        if (buffer_head(&b)[i] != (char)('A' + (consumed + i) % 26)) {
            ok = 0;
            break;
        }
    }
    CHECK(ok);
    buffer_consume(&b, b.len);
    CHECK(b.data == NULL);
    CHECK_INT(b.len, 0);
    buffer_free(&b);
}

UNIT_TEST(buffer_memory_released_when_last_byte_consumed) {
    struct buffer b = {0};
    CHECK_INT(buffer_append_str(&b, "abc"), 1);
    buffer_consume(&b, 1);
    CHECK(b.data != NULL);
    buffer_consume(&b, 2);
    CHECK(b.data == NULL);
    CHECK_INT(b.len, 0);
    CHECK_INT(b.cap, 0);
    CHECK_INT(b.start, 0);
    /* and it is a valid empty buffer again */
    CHECK_INT(buffer_append_str(&b, "xyz"), 1);
    CHECK_MEM(buffer_head(&b), b.len, "xyz");
    buffer_free(&b);
    CHECK(b.data == NULL);
}

UNIT_TEST(buffer_consume_all_at_once_releases_memory) {
    struct buffer b = {0};
    char big[10000];
    memset(big, 'q', sizeof(big));
    CHECK_INT(buffer_append(&b, big, sizeof(big)), 1);
    buffer_consume(&b, b.len);
    CHECK(b.data == NULL);
    CHECK_INT(b.len, 0);
    buffer_free(&b);
}

UNIT_TEST(buffer_reserve_commit_counts_only_committed_bytes) {
    struct buffer b = {0};
    CHECK_INT(buffer_append_str(&b, "ab"), 1);
    char *w = buffer_reserve(&b, 100);
    CHECK(w != NULL);
    if (w != NULL) {
        CHECK(w == b.data + b.start + b.len);
        CHECK(b.cap >= b.start + b.len + 100);
        CHECK_INT(b.len, 2); /* nothing counts before commit */
        memcpy(w, "cdefg", 5);
        buffer_commit(&b, 3); /* only "cde" */
        CHECK_INT(b.len, 5);
        CHECK_MEM(buffer_head(&b), b.len, "abcde");
    }
    buffer_free(&b);
}

UNIT_TEST(buffer_reserve_on_empty_buffer_allocates) {
    struct buffer b = {0};
    char *w = buffer_reserve(&b, 4096);
    CHECK(w != NULL);
    CHECK(b.data != NULL);
    CHECK(b.cap >= 4096);
    if (w != NULL) {
        memset(w, 'z', 4096);
        buffer_commit(&b, 4096);
        CHECK_INT(b.len, 4096);
        CHECK(buffer_head(&b)[0] == 'z' && buffer_head(&b)[4095] == 'z');
    }
    buffer_consume(&b, 4096);
    CHECK(b.data == NULL);
    buffer_free(&b);
}

UNIT_TEST(buffer_reserve_after_consume_keeps_unconsumed_bytes) {
    struct buffer b = {0};
    char chunk[3000];
    for (size_t i = 0; i < sizeof(chunk); i++) {
        chunk[i] = (char)('a' + i % 26);
    }
    CHECK_INT(buffer_append(&b, chunk, sizeof(chunk)), 1);
    buffer_consume(&b, 2990); /* 10 bytes left, start far in */
    char *w = buffer_reserve(&b, 50000);
    CHECK(w != NULL);
    if (w != NULL) {
        memcpy(w, "!!", 2);
        buffer_commit(&b, 2);
        CHECK_INT(b.len, 12);
        char want[13];
        memcpy(want, chunk + 2990, 10);
        memcpy(want + 10, "!!", 2);
        want[12] = '\0';
        CHECK_MEM(buffer_head(&b), b.len, want);
    }
    buffer_free(&b);
    CHECK(b.data == NULL);
    CHECK_INT(b.len, 0);
}

UNIT_TEST(buffer_reserve_then_commit_zero_keeps_buffer_usable) {
    struct buffer b = {0};
    CHECK(buffer_reserve(&b, 16) != NULL);
    buffer_commit(&b, 0);
    CHECK_INT(b.len, 0);
    CHECK_INT(buffer_append_str(&b, "k"), 1);
    CHECK_MEM(buffer_head(&b), b.len, "k");
    buffer_free(&b);
}
