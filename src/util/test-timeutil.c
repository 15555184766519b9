/* SPDX-License-Identifier: MIT */
#include <errno.h>

#include "tests.h"
#include "timeutil.h"

int main(void) {
        usec_t t;
        char buf[RFC3339_MAX];

        CHECK_OK(parse_duration("4h", &t));
        CHECK_EQ(t, 4 * USEC_PER_HOUR);
        CHECK_OK(parse_duration("1h30m", &t));
        CHECK_EQ(t, 90 * USEC_PER_MIN);
        CHECK_OK(parse_duration("720h", &t));
        CHECK_EQ(t, 720 * USEC_PER_HOUR);
        CHECK_OK(parse_duration("2d", &t));
        CHECK_EQ(t, 2 * USEC_PER_DAY);
        CHECK_OK(parse_duration("250ms", &t));
        CHECK_EQ(t, 250 * USEC_PER_MSEC);
        CHECK_OK(parse_duration("1.5s", &t));
        CHECK_EQ(t, 1500 * USEC_PER_MSEC);
        CHECK_OK(parse_duration("0", &t));
        CHECK_EQ(t, 0);
        CHECK_OK(parse_duration("-30m", &t));
        CHECK_EQ(t, -30 * USEC_PER_MIN);
        CHECK_EQ(parse_duration("4", &t), -EINVAL);
        CHECK_EQ(parse_duration("4x", &t), -EINVAL);
        CHECK_EQ(parse_duration("", &t), -EINVAL);
        CHECK_EQ(parse_duration("h", &t), -EINVAL);

        CHECK_OK(parse_rfc3339("1970-01-01T00:00:00Z", &t));
        CHECK_EQ(t, 0);
        CHECK_OK(parse_rfc3339("2020-05-21T10:00:00Z", &t));
        CHECK_EQ(t, INT64_C(1590055200) * USEC_PER_SEC);
        CHECK_OK(parse_rfc3339("2020-05-21T12:00:00.5+02:00", &t));
        CHECK_EQ(t, INT64_C(1590055200) * USEC_PER_SEC + 500000);
        CHECK_STREQ(format_rfc3339(buf, sizeof buf, t), "2020-05-21T10:00:00.500000Z");
        CHECK_OK(parse_rfc3339("2024-02-29T23:59:59Z", &t));
        CHECK_STREQ(format_rfc3339(buf, sizeof buf, t), "2024-02-29T23:59:59Z");
        CHECK_EQ(parse_rfc3339("2023-02-29T00:00:00Z", &t), -EINVAL);
        CHECK_EQ(parse_rfc3339("2020-13-01T00:00:00Z", &t), -EINVAL);
        CHECK_EQ(parse_rfc3339("2020-05-21 10:00:00", &t), -EINVAL);
        CHECK_EQ(parse_rfc3339("2020-05-21T10:00:00Zjunk", &t), -EINVAL);

        char d[DURATION_MAX];
        CHECK_STREQ(format_duration(d, sizeof d, 4 * USEC_PER_HOUR), "4h");
        CHECK_STREQ(format_duration(d, sizeof d, 90 * USEC_PER_MIN), "1h30m");
        CHECK_STREQ(format_duration(d, sizeof d, 250 * USEC_PER_MSEC), "250ms");

        CHECK_OK(parse_time_arg("+1h", 1000, &t));
        CHECK_EQ(t, 1000 + USEC_PER_HOUR);
        CHECK_OK(parse_time_arg("now", 1000, &t));
        CHECK_EQ(t, 1000);
        return 0;
}
