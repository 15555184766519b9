/* SPDX-License-Identifier: MIT */
/*
 * Config value parsers for plugins (see spwp-config.h). Each leaves its
 * output untouched on failure, so a plugin may parse straight into its
 * defaults.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "spwp-config.h"

int spwp_parse_bool(const char *s, bool *ret) {
        static const char *const yes[] = { "true", "yes", "on", "1" };
        static const char *const no[] = { "false", "no", "off", "0" };

        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
                if (strcasecmp(s, yes[i]) == 0) {
                        *ret = true;
                        return 0;
                }
                if (strcasecmp(s, no[i]) == 0) {
                        *ret = false;
                        return 0;
                }
        }
        return -EINVAL;
}

int spwp_parse_uint(const char *s, uint64_t max, uint64_t *ret) {
        uint64_t v = 0;

        if (!s || !*s)
                return -EINVAL;
        for (; *s; s++) {
                unsigned d;

                if (*s < '0' || *s > '9')
                        return -EINVAL;
                d = (unsigned) (*s - '0');
                if (d > max || v > (max - d) / 10)
                        return -ERANGE;
                v = v * 10 + d;
        }
        *ret = v;
        return 0;
}

int spwp_parse_duration(const char *s, int64_t *ret) {
        static const struct {
                const char *unit;
                double usec;
        } units[] = {
                { "ns", 1e-3 }, { "us", 1 }, { "\xc2\xb5s", 1 }, { "\xce\xbcs", 1 }, { "ms", 1e3 },
                { "s", 1e6 }, { "m", 60e6 }, { "h", 3600e6 }, { "d", 86400e6 },
        };
        double total = 0;

        if (!s || !*s)
                return -EINVAL;
        if (strcmp(s, "0") == 0) {
                *ret = 0;
                return 0;
        }
        while (*s) {
                double v = 0, scale = 1, mult = 0;
                bool digits = false;
                size_t best = 0;

                for (; *s >= '0' && *s <= '9'; s++, digits = true)
                        v = v * 10 + (*s - '0');
                if (*s == '.')
                        for (s++; *s >= '0' && *s <= '9'; s++, digits = true)
                                v += (*s - '0') * (scale /= 10);
                if (!digits)
                        return -EINVAL;
                /* the longest unit wins, so "ms" is not read as "m" */
                for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
                        size_t l = strlen(units[i].unit);
                        if (strncmp(s, units[i].unit, l) == 0 && l > best) {
                                best = l;
                                mult = units[i].usec;
                        }
                }
                if (!best)
                        return -EINVAL;
                s += best;
                total += v * mult;
                if (total > 9.2e18)
                        return -ERANGE;
        }
        *ret = (int64_t) total;
        return 0;
}

int spwp_bandb_keys_set(spwp_bandb_keys *k, const char *key, const char *value, const char **expected) {
        uint64_t u;

        if (strcmp(key, "flush") == 0) {
                *expected = "true or false";
                return spwp_parse_bool(value, &k->expire) < 0 ? -EINVAL : 1;
        }
        if (strcmp(key, "debug") == 0) {
                *expected = "true or false";
                return spwp_parse_bool(value, &k->debug) < 0 ? -EINVAL : 1;
        }
        if (strcmp(key, "max_records") == 0) {
                *expected = "a non-negative integer (0 = no limit)";
                if (spwp_parse_uint(value, INT64_MAX, &u) < 0)
                        return -EINVAL;
                k->max_records = (int64_t) u;
                return 1;
        }
        if (strcmp(key, "max_records_age") == 0) {
                *expected = "a duration like 720h or 30d (0 = no limit)";
                return spwp_parse_duration(value, &k->max_records_age) < 0 ? -EINVAL : 1;
        }
        return 0;
}
