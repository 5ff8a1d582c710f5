/*
 * test_decimal.c - decimal.h.
 */
#include "core/decimal.h"
#include "unit.h"

UNIT_TEST(decimal_reads_the_leading_digits_only) {
    unsigned long long v = 7;
    size_t n = 0;
    CHECK_INT(decimal_parse("12345 LAST", 10, &v, &n), 1);
    CHECK_INT(v, 12345);
    CHECK_INT(n, 5);
    CHECK_INT(decimal_parse("0", 1, &v, &n), 1);
    CHECK_INT(v, 0);
    /* |n| bounds the read: no terminator needed */
    CHECK_INT(decimal_parse("98765", 2, &v, &n), 1);
    CHECK_INT(v, 98);
}

UNIT_TEST(decimal_refuses_no_digits_and_overflow) {
    unsigned long long v = 7;
    size_t n = 9;
    CHECK_INT(decimal_parse("", 0, &v, &n), 0);
    CHECK_INT(decimal_parse("x1", 2, &v, &n), 0);
    CHECK_INT(decimal_parse("-1", 2, &v, &n), 0);
    CHECK_INT(v, 7);
    CHECK_INT(n, 9);
    CHECK_INT(decimal_parse("999999999999999999", 18, &v, &n), 1);
    CHECK(v == DECIMAL_MAX);
    CHECK_INT(decimal_parse("1000000000000000000", 19, &v, &n), 0);
    CHECK_INT(decimal_parse("99999999999999999999999", 23, &v, &n), 0);
}
