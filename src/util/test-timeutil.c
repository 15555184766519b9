/* SPDX-License-Identifier: MIT */
/*
 * The one duration grammar (Go's time.ParseDuration plus "d"): the cases of
 * Go's own parseDurationTests, what the three old parsers disagreed on
 * (issue 11 item 8: "1e3ms", "+5s", "0x10s"), the range at both ends; RFC
 * 3339 parsing and the one formatter; the calendar at its extremes.
 */
#include <errno.h>

#include "macro.h"
#include "tests.h"
#include "timeutil.h"

#define NS(x) ((x) / 1000) /* Go's expectations are in nanoseconds */

static void test_duration_grammar(void) {
        static const struct {
                const char *s;
                int64_t usec;
        } good[] = {
                /* Go's parseDurationTests (src/time/time_test.go) */
                { "0", 0 }, { "5s", 5 * USEC_PER_SEC }, { "30s", 30 * USEC_PER_SEC }, { "1478s", 1478 * USEC_PER_SEC },
                { "-5s", -5 * USEC_PER_SEC }, { "+5s", 5 * USEC_PER_SEC }, { "-0", 0 }, { "+0", 0 },
                { "5.0s", 5 * USEC_PER_SEC }, { "5.6s", 5600 * USEC_PER_MSEC }, { "5.s", 5 * USEC_PER_SEC },
                { ".5s", 500 * USEC_PER_MSEC }, { "1.0s", USEC_PER_SEC }, { "1.00s", USEC_PER_SEC },
                { "1.004s", 1004 * USEC_PER_MSEC }, { "1.0040s", 1004 * USEC_PER_MSEC }, { "100.00100s", 100001 * USEC_PER_MSEC },
                { "10ns", 0 }, { "11us", 11 }, { "12\xc2\xb5s", 12 }, { "12\xce\xbcs", 12 }, { "13ms", 13 * USEC_PER_MSEC },
                { "14s", 14 * USEC_PER_SEC }, { "15m", 15 * USEC_PER_MIN }, { "16h", 16 * USEC_PER_HOUR },
                { "3h30m", 210 * USEC_PER_MIN }, { "10.5s4m", 4 * USEC_PER_MIN + 10500 * USEC_PER_MSEC },
                { "-2m3.4s", -(2 * USEC_PER_MIN + 3400 * USEC_PER_MSEC) },
                { "1h2m3s4ms5us6ns", USEC_PER_HOUR + 2 * USEC_PER_MIN + 3 * USEC_PER_SEC + 4 * USEC_PER_MSEC + 5 },
                { "39h9m14.425s", 39 * USEC_PER_HOUR + 9 * USEC_PER_MIN + 14425 * USEC_PER_MSEC },
                { "52763797000ns", NS(INT64_C(52763797000)) }, { "0.3333333333333333333h", 20 * USEC_PER_MIN },
                { "9007199254740993ns", NS(INT64_C(9007199254740993)) },
                { "9223372036854775807ns", NS(INT64_MAX) }, { "9223372036854775.807us", NS(INT64_MAX) },
                { "9223372036s854ms775us807ns", NS(INT64_MAX) }, { "-9223372036854775808ns", NS(INT64_MIN) },
                { "-9223372036854775.808us", NS(INT64_MIN) }, { "-2562047h47m16.854775808s", NS(INT64_MIN) },
                { "0.100000000000000000000h", 6 * USEC_PER_MIN }, { "0.830103483285477580700h", 2988372539 },
                /* plus days */
                { "2d", 2 * USEC_PER_DAY }, { "1d12h", 36 * USEC_PER_HOUR }, { "100000d", 100000 * USEC_PER_DAY },
                { "106751d", 106751 * USEC_PER_DAY }, { "1.5d", 36 * USEC_PER_HOUR },
                { "1500ns", 1 }, { "999ns", 0 }, { "-1500ns", -1 },
        };
        static const char *const bad[] = {
                "", "3", "-", "s", ".", "-.", ".s", "+.s", "1d2", "1e3ms", "0x10s", "1 s", " 1s", "1s ", "1S", "1H",
                "1sec", "5mss", "1h-1m", "1..5s", "inf", "nan", "00", "--5s", "+-5s", "1\xc2s", "\xc2\xb5s",
                "9223372036854775808", /* a number without a unit is a syntax error before a range one */
        };
        static const char *const range[] = {
                "9223372036854775808ns", "9223372036854775.808us", "9223372036s854ms775us808ns",
                "-9223372036854775809ns", "106752d", "2562048h", "3000000000h", "106752000d",
                "99999999999999999999999s", "1000000000000000000000d1x" /* unknown unit still wins */,
        };
        usec_t t;

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                t = -42;
                if (parse_duration(good[i].s, &t) < 0 || t != good[i].usec) {
                        fprintf(stderr, "'%s': got %lld, expected %lld\n", good[i].s, (long long) t, (long long) good[i].usec);
                        abort();
                }
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                t = -42;
                if (parse_duration(bad[i], &t) != -EINVAL || t != -42) {
                        fprintf(stderr, "'%s' should be refused as -EINVAL\n", bad[i]);
                        abort();
                }
        }
        for (size_t i = 0; i < ELEMENTSOF(range) - 1; i++) {
                t = -42;
                if (parse_duration(range[i], &t) != -ERANGE || t != -42) {
                        fprintf(stderr, "'%s' should be refused as -ERANGE\n", range[i]);
                        abort();
                }
        }
        CHECK_EQ(parse_duration(range[ELEMENTSOF(range) - 1], &t), -EINVAL);
        CHECK_EQ(parse_duration(NULL, &t), -EINVAL);

        /* config values: no negatives, the same grammar otherwise */
        CHECK_OK(parse_duration_nonneg("+5s", &t));
        CHECK_EQ(t, 5 * USEC_PER_SEC);
        CHECK_OK(parse_duration_nonneg("-0", &t));
        CHECK_EQ(t, 0);
        CHECK_EQ(parse_duration_nonneg("-1s", &t), -ERANGE);
        CHECK_EQ(parse_duration_nonneg("1e3ms", &t), -EINVAL);
        CHECK_CONTAINS(duration_strerror(-EINVAL), "not a duration");
        CHECK_CONTAINS(duration_strerror(-ERANGE), "out of range");
}

static void test_duration_format(void) {
        char d[DURATION_MAX];
        usec_t t;

        CHECK_STREQ(format_duration(d, sizeof d, 4 * USEC_PER_HOUR), "4h");
        CHECK_STREQ(format_duration(d, sizeof d, 90 * USEC_PER_MIN), "1h30m");
        CHECK_STREQ(format_duration(d, sizeof d, 250 * USEC_PER_MSEC), "250ms");
        CHECK_STREQ(format_duration(d, sizeof d, 0), "0s");
        CHECK_STREQ(format_duration(d, sizeof d, -90 * USEC_PER_SEC), "-1m30s");
        CHECK_STREQ(format_duration(d, sizeof d, DURATION_MAX_USEC), "2562047h47m16s854ms775us");
        CHECK_STREQ(format_duration(d, sizeof d, INT64_MIN), "-2562047788h54s775ms808us");
        /* what it prints reads back */
        CHECK_OK(parse_duration(format_duration(d, sizeof d, DURATION_MAX_USEC), &t));
        CHECK_EQ(t, DURATION_MAX_USEC);
        CHECK_OK(parse_duration(format_duration(d, sizeof d, -DURATION_MAX_USEC), &t));
        CHECK_EQ(t, -DURATION_MAX_USEC);
}

static void test_rfc3339(void) {
        char buf[RFC3339_MAX];
        usec_t t;

        CHECK_OK(parse_rfc3339("1970-01-01T00:00:00Z", &t));
        CHECK_EQ(t, 0);
        CHECK_OK(parse_rfc3339("2020-05-21T10:00:00Z", &t));
        CHECK_EQ(t, INT64_C(1590055200) * USEC_PER_SEC);
        CHECK_OK(parse_rfc3339("2020-05-21T12:00:00.5+02:00", &t));
        CHECK_EQ(t, INT64_C(1590055200) * USEC_PER_SEC + 500000);
        CHECK_STREQ(format_rfc3339(buf, sizeof buf, t), "2020-05-21T10:00:00.5Z");
        CHECK_OK(parse_rfc3339("2020-05-21T10:00:00.1234569-00:30", &t));
        CHECK_STREQ(format_rfc3339(buf, sizeof buf, t), "2020-05-21T10:30:00.123456Z");
        CHECK_OK(parse_rfc3339("2024-02-29T23:59:59Z", &t));
        CHECK_STREQ(format_rfc3339(buf, sizeof buf, t), "2024-02-29T23:59:59Z");
        CHECK_OK(parse_rfc3339("2016-12-31T23:59:60Z", &t)); /* leap second */
        CHECK_STREQ(format_rfc3339(buf, sizeof buf, t), "2016-12-31T23:59:59Z");
        CHECK_OK(parse_rfc3339("0001-01-01T00:00:00Z", &t));
        CHECK_EQ(t, TIME_YEAR1_USEC);
        CHECK_OK(parse_rfc3339("9999-12-31T23:59:59.999999Z", &t));
        CHECK_EQ(t, TIME_YEAR9999_USEC);
        CHECK_OK(parse_rfc3339("0000-01-01T00:00:00+23:59", &t)); /* the far end: still no overflow */
        CHECK(t < TIME_YEAR1_USEC);
        CHECK_EQ(parse_rfc3339("2023-02-29T00:00:00Z", &t), -EINVAL);
        CHECK_EQ(parse_rfc3339("2020-13-01T00:00:00Z", &t), -EINVAL);
        CHECK_EQ(parse_rfc3339("2020-05-21 10:00:00", &t), -EINVAL);
        CHECK_EQ(parse_rfc3339("2020-05-21T10:00:00Zjunk", &t), -EINVAL);
        CHECK_EQ(parse_rfc3339("2020-05-21T10:00:00.Z", &t), -EINVAL);
        CHECK_EQ(parse_rfc3339("2020-05-21T10:00:00+24:00", &t), -EINVAL);
        CHECK_EQ(parse_rfc3339("2020-05", &t), -EINVAL);
        CHECK_EQ(parse_rfc3339("", &t), -EINVAL);
        CHECK_EQ(parse_rfc3339(NULL, &t), -EINVAL);

        /* every value formats, and what is in range reads back */
        CHECK_STREQ(format_rfc3339(buf, sizeof buf, -1), "1969-12-31T23:59:59.999999Z");
        CHECK_STREQ(format_rfc3339(buf, sizeof buf, INT64_MAX), "294247-01-10T04:00:54.775807Z");
        CHECK_STREQ(format_rfc3339(buf, sizeof buf, INT64_MIN), "-290308-12-21T19:59:05.224192Z");
        CHECK_OK(parse_rfc3339(format_rfc3339(buf, sizeof buf, TIME_YEAR9999_USEC), &t));
        CHECK_EQ(t, TIME_YEAR9999_USEC);

        CHECK_OK(parse_time_arg("+1h", 1000, &t));
        CHECK_EQ(t, 1000 + USEC_PER_HOUR);
        CHECK_OK(parse_time_arg("-30m", 0, &t));
        CHECK_EQ(t, -30 * USEC_PER_MIN);
        CHECK_OK(parse_time_arg("now", 1000, &t));
        CHECK_EQ(t, 1000);
        CHECK_EQ(parse_time_arg("+1h", INT64_MAX - 1, &t), -ERANGE); /* no signed overflow */
        CHECK_EQ(parse_time_arg("+1e3s", 0, &t), -EINVAL);
}

static void test_civil(void) {
        civil_time tm;

        civil_from_usec(INT64_MIN, &tm);
        CHECK_EQ(tm.year, -290308);
        civil_from_usec(TIME_YEAR1_USEC, &tm);
        CHECK(tm.year == 1 && tm.month == 1 && tm.day == 1 && tm.hour == 0 && tm.usec == 0);
        CHECK_EQ(civil_to_usec(&tm), TIME_YEAR1_USEC);
        CHECK(civil_date_valid(2000, 2, 29));
        CHECK(!civil_date_valid(1900, 2, 29));
        CHECK(!civil_date_valid(2023, 2, 29));
        CHECK(!civil_date_valid(2023, 4, 31));
        CHECK(!civil_date_valid(2023, 0, 1));
        for (usec_t t = TIME_YEAR1_USEC; t < TIME_YEAR9999_USEC; t += INT64_C(86399999999) * 37) {
                civil_from_usec(t, &tm);
                CHECK(civil_date_valid(tm.year, tm.month, tm.day));
                CHECK_EQ(civil_to_usec(&tm), t);
        }
}

int main(void) {
        test_duration_grammar();
        test_duration_format();
        test_rfc3339();
        test_civil();
        return 0;
}
