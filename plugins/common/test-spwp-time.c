/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the plugins' UTC civil time: known dates on both sides of
 * the epoch, the extremes of int64_t, split/join round trips across the
 * years the ban databases store, and the digit primitives.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "spwp-time.h"
#include "tests.h"

#define USEC_PER_SEC INT64_C(1000000)

static void check_tm(int64_t t, int64_t y, unsigned mo, unsigned d, unsigned h, unsigned mi, unsigned s,
                     unsigned usec) {
        spwp_tm tm;

        memset(&tm, 0xff, sizeof tm);
        spwp_time_split(t, &tm);
        CHECK_EQ(tm.year, y);
        CHECK_EQ(tm.month, mo);
        CHECK_EQ(tm.day, d);
        CHECK_EQ(tm.hour, h);
        CHECK_EQ(tm.minute, mi);
        CHECK_EQ(tm.second, s);
        CHECK_EQ(tm.usec, usec);
}

static void test_split(void) {
        check_tm(0, 1970, 1, 1, 0, 0, 0, 0);
        check_tm(-1, 1969, 12, 31, 23, 59, 59, 999999);
        check_tm(-USEC_PER_SEC, 1969, 12, 31, 23, 59, 59, 0);
        check_tm(-USEC_PER_SEC - 1, 1969, 12, 31, 23, 59, 58, 999999);
        check_tm(INT64_C(1700000000) * USEC_PER_SEC + 123456, 2023, 11, 14, 22, 13, 20, 123456);
        check_tm(INT64_C(951782400) * USEC_PER_SEC, 2000, 2, 29, 0, 0, 0, 0);
        check_tm(INT64_C(951868800) * USEC_PER_SEC, 2000, 3, 1, 0, 0, 0, 0);
        check_tm(INT64_C(4107542400) * USEC_PER_SEC, 2100, 3, 1, 0, 0, 0, 0); /* 2100 is not a leap year */
        check_tm(INT64_C(-62135596800) * USEC_PER_SEC, 1, 1, 1, 0, 0, 0, 0);
        check_tm(INT64_C(-30610224000) * USEC_PER_SEC, 1000, 1, 1, 0, 0, 0, 0);
        check_tm(INT64_C(253402300800) * USEC_PER_SEC - 1, 9999, 12, 31, 23, 59, 59, 999999);
        /* any int64_t splits (the webhook prints whatever time it is given) */
        check_tm(INT64_MAX, 294247, 1, 10, 4, 0, 54, 775807);
        check_tm(INT64_MIN, -290308, 12, 21, 19, 59, 5, 224192);
}

static void test_join(void) {
        spwp_tm tm;

        CHECK_EQ(spwp_time_join(&(spwp_tm) { 1970, 1, 1, 0, 0, 0, 0 }), 0);
        CHECK_EQ(spwp_time_join(&(spwp_tm) { 1969, 12, 31, 23, 59, 59, 999999 }), -1);
        CHECK_EQ(spwp_time_join(&(spwp_tm) { 2023, 11, 14, 22, 13, 20, 123456 }),
                 INT64_C(1700000000) * USEC_PER_SEC + 123456);
        /* out-of-range fields carry */
        CHECK_EQ(spwp_time_join(&(spwp_tm) { 2023, 11, 14, 22, 13, 60, 0 }),
                 spwp_time_join(&(spwp_tm) { 2023, 11, 14, 22, 14, 0, 0 }));
        CHECK_EQ(spwp_time_join(&(spwp_tm) { 2023, 2, 29, 0, 0, 0, 0 }),
                 spwp_time_join(&(spwp_tm) { 2023, 3, 1, 0, 0, 0, 0 }));

        /* round trips: every few days and odd seconds from year 1 to 9999 */
        for (int64_t t = INT64_C(-62135596800) * USEC_PER_SEC; t < INT64_C(253402300800) * USEC_PER_SEC;
             t += INT64_C(3) * 86400 * USEC_PER_SEC + INT64_C(3723) * USEC_PER_SEC + 654321) {
                spwp_time_split(t, &tm);
                CHECK(spwp_date_valid(tm.year, tm.month, tm.day));
                CHECK_EQ(spwp_time_join(&tm), t);
        }
        for (int64_t t = -5 * USEC_PER_SEC; t <= 5 * USEC_PER_SEC; t += 250001) {
                spwp_time_split(t, &tm);
                CHECK_EQ(spwp_time_join(&tm), t);
        }
        spwp_time_split(INT64_MAX, &tm);
        CHECK_EQ(spwp_time_join(&tm), INT64_MAX);
}

static void test_date_valid(void) {
        CHECK(spwp_date_valid(1, 1, 1));
        CHECK(spwp_date_valid(9999, 12, 31));
        CHECK(spwp_date_valid(2000, 2, 29));
        CHECK(spwp_date_valid(2023, 2, 29)); /* as the databases always took it */
        CHECK(spwp_date_valid(2023, 4, 30));
        CHECK(!spwp_date_valid(0, 1, 1));
        CHECK(!spwp_date_valid(10000, 1, 1));
        CHECK(!spwp_date_valid(-1, 1, 1));
        CHECK(!spwp_date_valid(2023, 0, 1));
        CHECK(!spwp_date_valid(2023, 13, 1));
        CHECK(!spwp_date_valid(2023, 1, 0));
        CHECK(!spwp_date_valid(2023, 1, 32));
        CHECK(!spwp_date_valid(2023, 2, 30));
        CHECK(!spwp_date_valid(2023, 4, 31));
}

static void test_digits(void) {
        const char *s = "2023-11x", *p = s, *end = s + strlen(s);
        char buf[16] = "..........";
        unsigned v = 77;

        CHECK(spwp_put_digits(buf, 7, 4) == buf + 4);
        CHECK(spwp_put_digits(buf + 4, 12345, 3) == buf + 7);
        CHECK_STREQ(buf, "0007345...");

        CHECK_OK(spwp_take_digits(&p, end, 4, &v));
        CHECK_EQ(v, 2023);
        CHECK(p == s + 4);
        CHECK_EQ(spwp_take_digits(&p, end, 2, &v), -EINVAL); /* '-' is not a digit */
        CHECK(p == s + 4);
        CHECK_EQ(spwp_take_char(&p, end, ':'), -EINVAL);
        CHECK_OK(spwp_take_char(&p, end, '-'));
        CHECK(p == s + 5);
        CHECK_EQ(spwp_take_digits(&p, end, 3, &v), -EINVAL); /* "11x" */
        CHECK_OK(spwp_take_digits(&p, end, 2, &v));
        CHECK_EQ(v, 11);
        /* never past end */
        CHECK_EQ(spwp_take_digits(&p, end - 1, 1, &v), -EINVAL);
        CHECK_EQ(spwp_take_char(&p, end - 1, 'x'), -EINVAL);
        CHECK_OK(spwp_take_char(&p, end, 'x'));
        CHECK(p == end);
        CHECK_EQ(spwp_take_digits(&p, end, 0, &v), 0);
        CHECK_EQ(v, 0);
}

int main(void) {
        test_split();
        test_join();
        test_date_valid();
        test_digits();
        return 0;
}
