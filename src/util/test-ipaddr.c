/* SPDX-License-Identifier: MIT */
#include <errno.h>

#include "ipaddr.h"
#include "tests.h"

int main(void) {
        ip_range r, h;
        char buf[IP_TEXT_MAX];

        CHECK_OK(ip_parse_addr("192.0.2.7", &r));
        CHECK(r.is_v4);
        CHECK_EQ(r.prefix, 32);
        CHECK_STREQ(ip_format(buf, sizeof buf, r.start), "192.0.2.7");

        CHECK_OK(ip_parse_cidr("192.0.2.0/24", true, &r));
        CHECK_STREQ(ip_format(buf, sizeof buf, r.start), "192.0.2.0");
        CHECK_STREQ(ip_format(buf, sizeof buf, r.end), "192.0.2.255");
        CHECK_OK(ip_parse_addr("192.0.2.200", &h));
        CHECK(ip_range_contains(&r, &h));
        CHECK_OK(ip_parse_addr("192.0.3.1", &h));
        CHECK(!ip_range_contains(&r, &h));
        CHECK_EQ(ip_parse_cidr("192.0.2.1/24", true, &r), -EINVAL);
        CHECK_OK(ip_parse_cidr("192.0.2.1/24", false, &r));
        CHECK_STREQ(ip_format(buf, sizeof buf, r.start), "192.0.2.0");

        CHECK_OK(ip_parse_cidr("2001:db8::/32", true, &r));
        CHECK(!r.is_v4);
        CHECK_STREQ(ip_format(buf, sizeof buf, r.end), "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff");
        CHECK_OK(ip_parse_addr("2001:db8:1::5", &h));
        CHECK(ip_range_contains(&r, &h));
        CHECK_OK(ip_parse_addr("2001:db9::1", &h));
        CHECK(!ip_range_contains(&r, &h));

        /* IPv4 never falls inside an IPv6 range that does not cover ::ffff:0:0/96 */
        CHECK_OK(ip_parse_addr("10.0.0.1", &h));
        CHECK(!ip_range_contains(&r, &h));
        CHECK_OK(ip_parse_cidr("0.0.0.0/0", true, &r));
        CHECK(ip_range_contains(&r, &h));

        CHECK_EQ(ip_parse_addr("300.1.1.1", &r), -EINVAL);
        CHECK_EQ(ip_parse_addr("", &r), -EINVAL);
        CHECK_EQ(ip_parse_cidr("10.0.0.0/33", true, &r), -EINVAL);
        CHECK_EQ(ip_parse_cidr("10.0.0.0/", true, &r), -EINVAL);
        CHECK_EQ(ip_parse_cidr("10.0.0.0/-1", true, &r), -EINVAL);
        CHECK_EQ(ip_parse_cidr("::/129", true, &r), -EINVAL);

        char hex[IP_HEX_MAX];
        CHECK_OK(ip_parse_addr("1.2.3.4", &r));
        CHECK_STREQ(ip_hex(hex, r.start), "00000000000000000000ffff01020304");
        return 0;
}
