/* SPDX-License-Identifier: MIT */
/*
 * Address parsing with inet_pton(); ranges are computed by masking, so a
 * /0 covers the whole family (IPv4 /0 is ::ffff:0.0.0.0 - ::ffff:255.255.255.255).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "ipaddr.h"
#include "macro.h"

static const uint8_t v4_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static int parse_one(const char *s, uint8_t out[16], bool *is_v4) {
        struct in_addr a4;
        if (inet_pton(AF_INET, s, &a4) == 1) {
                memcpy(out, v4_prefix, 12);
                memcpy(out + 12, &a4, 4);
                *is_v4 = true;
                return 0;
        }
        if (inet_pton(AF_INET6, s, out) == 1) {
                *is_v4 = memcmp(out, v4_prefix, 12) == 0;
                return 0;
        }
        return -EINVAL;
}

int ip_parse_addr(const char *s, ip_range *ret) {
        ip_range r = { 0 };
        if (!s || parse_one(s, r.start, &r.is_v4) < 0)
                return -EINVAL;
        memcpy(r.end, r.start, 16);
        r.prefix = r.is_v4 ? 32 : 128;
        *ret = r;
        return 0;
}

int ip_parse_cidr(const char *s, bool strict, ip_range *ret) {
        char buf[64];
        const char *slash;
        ip_range r = { 0 };
        unsigned long plen;
        char *end;
        unsigned bits;

        if (!s)
                return -EINVAL;
        slash = strchr(s, '/');
        if (!slash)
                return ip_parse_addr(s, ret);
        if ((size_t) (slash - s) >= sizeof buf)
                return -EINVAL;
        memcpy(buf, s, (size_t) (slash - s));
        buf[slash - s] = 0;
        if (parse_one(buf, r.start, &r.is_v4) < 0)
                return -EINVAL;
        if (slash[1] < '0' || slash[1] > '9')
                return -EINVAL;
        errno = 0;
        plen = strtoul(slash + 1, &end, 10);
        if (errno || *end || plen > (r.is_v4 ? 32u : 128u))
                return -EINVAL;
        r.prefix = (unsigned) plen;
        bits = r.is_v4 ? 96 + (unsigned) plen : (unsigned) plen;
        memcpy(r.end, r.start, 16);
        for (unsigned i = 0; i < 16; i++) {
                unsigned keep = bits > i * 8 ? MIN(8u, bits - i * 8) : 0;
                uint8_t mask = (uint8_t) (keep ? 0xff << (8 - keep) : 0);
                if (strict && (r.start[i] & ~mask))
                        return -EINVAL;
                r.start[i] &= mask;
                r.end[i] |= (uint8_t) ~mask;
        }
        *ret = r;
        return 0;
}

bool ip_addr_in(const uint8_t addr[16], const uint8_t start[16], const uint8_t end[16]) {
        return memcmp(addr, start, 16) >= 0 && memcmp(addr, end, 16) <= 0;
}

bool ip_range_contains(const ip_range *outer, const ip_range *inner) {
        return memcmp(inner->start, outer->start, 16) >= 0 && memcmp(inner->end, outer->end, 16) <= 0;
}

char *ip_format(char *buf, size_t size, const uint8_t addr[16]) {
        if (memcmp(addr, v4_prefix, 12) == 0)
                inet_ntop(AF_INET, addr + 12, buf, (socklen_t) size);
        else
                inet_ntop(AF_INET6, addr, buf, (socklen_t) size);
        return buf;
}

char *ip_range_text(char *buf, size_t size, const ip_range *r, bool range) {
        ip_format(buf, size, r->start);
        if (range) {
                size_t n = strlen(buf);
                snprintf(buf + n, size - n, "/%u", r->prefix);
        }
        return buf;
}

char *ip_hex(char *buf, const uint8_t addr[16]) {
        for (int i = 0; i < 16; i++)
                sprintf(buf + 2 * i, "%02x", addr[i]);
        return buf;
}

/* ------------------------------------------------------------ scopes */

const char *scope_canonical(const char *scope) {
        static const char *const known[] = { "Ip", "Range", "Country", "AS" };
        size_t n;

        if (!scope)
                return NULL;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
                if (strcasecmp(scope, known[i]) == 0)
                        return known[i];
        n = strlen(scope);
        if (n == 0 || n > SCOPE_NAME_MAX)
                return NULL;
        for (const char *p = scope; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      *p == '_' || *p == '-' || *p == '.'))
                        return NULL;
        return scope;
}

int scope_value_check(const char *value, spw_error *err) {
        size_t n = value ? strlen(value) : 0;

        if (n == 0)
                return spw_error_set(err, -EINVAL, "the value is empty");
        if (n > SCOPE_VALUE_MAX)
                return spw_error_set(err, -EINVAL, "the value is %zu bytes, longer than the limit of %u", n,
                                     SCOPE_VALUE_MAX);
        for (const char *p = value; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        return spw_error_set(err, -EINVAL, "the value '%.64s' has a control character", value);
        return 0;
}
