/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the plugins' config value parsers and of the keys both ban
 * databases share: what they take, what they refuse, and that a refused
 * value leaves the output as it was.
 */
#include <errno.h>
#include <stdint.h>

#include "spwp-config.h"
#include "tests.h"

#define USEC_PER_SEC INT64_C(1000000)

static void test_bool(void) {
        static const char *const yes[] = { "true", "yes", "on", "1", "TRUE", "Yes", "oN" };
        static const char *const no[] = { "false", "no", "off", "0", "FALSE", "No", "OFF" };
        static const char *const bad[] = { "", "2", "truee", "y", "n", " true", "true ", "enabled" };
        bool b;

        for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
                b = false;
                CHECK_OK(spwp_parse_bool(yes[i], &b));
                CHECK(b);
        }
        for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
                b = true;
                CHECK_OK(spwp_parse_bool(no[i], &b));
                CHECK(!b);
        }
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                b = true;
                CHECK_EQ(spwp_parse_bool(bad[i], &b), -EINVAL);
                CHECK(b);
        }
        CHECK_EQ(spwp_parse_bool(NULL, &b), -EINVAL);
}

static void test_uint(void) {
        uint64_t u;

        CHECK_OK(spwp_parse_uint("0", 10, &u));
        CHECK_EQ(u, 0);
        CHECK_OK(spwp_parse_uint("0010", 10, &u));
        CHECK_EQ(u, 10);
        CHECK_OK(spwp_parse_uint("65535", 65535, &u));
        CHECK_EQ(u, 65535);
        CHECK_OK(spwp_parse_uint("9223372036854775807", INT64_MAX, &u));
        CHECK_EQ(u, INT64_MAX);
        CHECK_OK(spwp_parse_uint("18446744073709551615", UINT64_MAX, &u));
        CHECK(u == UINT64_MAX);

        u = 42;
        CHECK_EQ(spwp_parse_uint("65536", 65535, &u), -ERANGE);
        CHECK_EQ(spwp_parse_uint("9223372036854775808", INT64_MAX, &u), -ERANGE);
        CHECK_EQ(spwp_parse_uint("18446744073709551616", UINT64_MAX, &u), -ERANGE);
        CHECK_EQ(spwp_parse_uint("7", 5, &u), -ERANGE);
        /* the first digit beyond max is reported, whatever follows */
        CHECK_EQ(spwp_parse_uint("99999999999999999999x", 1000, &u), -ERANGE);
        CHECK_EQ(u, 42);

        CHECK_EQ(spwp_parse_uint("", 10, &u), -EINVAL);
        CHECK_EQ(spwp_parse_uint(NULL, 10, &u), -EINVAL);
        CHECK_EQ(spwp_parse_uint("-1", 10, &u), -EINVAL);
        CHECK_EQ(spwp_parse_uint("+1", 10, &u), -EINVAL);
        CHECK_EQ(spwp_parse_uint(" 1", 10, &u), -EINVAL);
        CHECK_EQ(spwp_parse_uint("1 ", 10, &u), -EINVAL);
        CHECK_EQ(spwp_parse_uint("1.0", 10, &u), -EINVAL);
        CHECK_EQ(spwp_parse_uint("0x1", 10, &u), -EINVAL);
        CHECK_EQ(u, 42);
}

static void test_duration(void) {
        static const struct {
                const char *s;
                int64_t usec;
        } good[] = {
                { "0", 0 },
                { "0s", 0 },
                { "10s", 10 * USEC_PER_SEC },
                { "250ms", 250000 },
                { "1h30m", 5400 * USEC_PER_SEC },
                { "1.5h", 5400 * USEC_PER_SEC },
                { "720h", INT64_C(720) * 3600 * USEC_PER_SEC },
                { "30d", INT64_C(30) * 86400 * USEC_PER_SEC },
                { "1d12h", INT64_C(36) * 3600 * USEC_PER_SEC },
                { "1m1s1ms1us", 61001001 },
                { "5\xc2\xb5s", 5 },            /* U+00B5 micro sign */
                { "5\xce\xbcs", 5 },            /* U+03BC Greek mu */
                { ".5s", 500000 },
                { "1.s", USEC_PER_SEC },
                { "1500ns", 1 },                /* truncated to the microsecond */
                { "999ns", 0 },
                { "100000d", INT64_C(100000) * 86400 * USEC_PER_SEC },
                { "+5s", 5 * USEC_PER_SEC },    /* Go's grammar: what --check-config takes too */
                { "2562047h47m16.854775807s", INT64_MAX / 1000 },
        };
        static const char *const bad[] = {
                "", "s", "10", "1x", "1e3ms", "1 s", " 1s", "1s ", ".", ".s", "1h-1m", "1S", "1H",
                "0x10s", "inf", "1..5s",
        };
        int64_t d;

        for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
                d = -1;
                CHECK_OK(spwp_parse_duration(good[i].s, &d));
                CHECK_EQ(d, good[i].usec);
        }
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                d = -1;
                CHECK_EQ(spwp_parse_duration(bad[i], &d), -EINVAL);
                CHECK_EQ(d, -1);
        }
        CHECK_EQ(spwp_parse_duration(NULL, &d), -EINVAL);
        CHECK_EQ(spwp_parse_duration("3000000000h", &d), -ERANGE);
        CHECK_EQ(spwp_parse_duration("106752000d", &d), -ERANGE);
        CHECK_EQ(spwp_parse_duration("106752d", &d), -ERANGE);     /* beyond Go's 292 years */
        CHECK_EQ(spwp_parse_duration("-1s", &d), -ERANGE);         /* config values are not negative */
        CHECK_EQ(d, -1);
}

static void test_bandb_keys(void) {
        spwp_bandb_keys k = SPWP_BANDB_KEYS_DEFAULT, before;
        const char *expected = NULL;

        CHECK(k.expire);
        CHECK(!k.debug);
        CHECK_EQ(k.max_records, 10000);
        CHECK_EQ(k.max_records_age, INT64_C(720) * 3600 * USEC_PER_SEC);

        CHECK_EQ(spwp_bandb_keys_set(&k, "flush", "no", &expected), 1);
        CHECK(!k.expire);
        CHECK_EQ(spwp_bandb_keys_set(&k, "debug", "on", &expected), 1);
        CHECK(k.debug);
        CHECK_EQ(spwp_bandb_keys_set(&k, "max_records", "0", &expected), 1);
        CHECK_EQ(k.max_records, 0);
        CHECK_EQ(spwp_bandb_keys_set(&k, "max_records", "9223372036854775807", &expected), 1);
        CHECK_EQ(k.max_records, INT64_MAX);
        CHECK_EQ(spwp_bandb_keys_set(&k, "max_records_age", "30d", &expected), 1);
        CHECK_EQ(k.max_records_age, INT64_C(30) * 86400 * USEC_PER_SEC);
        CHECK_EQ(spwp_bandb_keys_set(&k, "max_records_age", "0", &expected), 1);
        CHECK_EQ(k.max_records_age, 0);

        /* refused values: what the key takes, for the message; k unchanged */
        before = k;
        CHECK_EQ(spwp_bandb_keys_set(&k, "flush", "sometimes", &expected), -EINVAL);
        CHECK_STREQ(expected, "true or false");
        CHECK_EQ(spwp_bandb_keys_set(&k, "debug", "", &expected), -EINVAL);
        CHECK_STREQ(expected, "true or false");
        CHECK_EQ(spwp_bandb_keys_set(&k, "max_records", "-1", &expected), -EINVAL);
        CHECK_STREQ(expected, "a non-negative integer (0 = no limit)");
        CHECK_EQ(spwp_bandb_keys_set(&k, "max_records", "9223372036854775808", &expected), -EINVAL);
        CHECK_EQ(spwp_bandb_keys_set(&k, "max_records_age", "30 days", &expected), -EINVAL);
        CHECK_STREQ(expected, "a duration like 720h or 30d (0 = no limit; at most 2562047h)");
        CHECK(k.expire == before.expire && k.debug == before.debug);
        CHECK_EQ(k.max_records, before.max_records);
        CHECK_EQ(k.max_records_age, before.max_records_age);

        /* other keys are the plugin's own */
        expected = NULL;
        CHECK_EQ(spwp_bandb_keys_set(&k, "db_path", "/tmp/x.db", &expected), 0);
        CHECK_EQ(spwp_bandb_keys_set(&k, "Flush", "true", &expected), 0);
        CHECK_EQ(spwp_bandb_keys_set(&k, "busy_timeout", "5s", &expected), 0);
        CHECK(!expected);
        CHECK_EQ(k.max_records_age, before.max_records_age);
}

int main(void) {
        test_bool();
        test_uint();
        test_duration();
        test_bandb_keys();
        return 0;
}
