/* SPDX-License-Identifier: MIT */
/*
 * Config value parsers for plugins (see spwp-config.h). Each leaves its
 * output untouched on failure, so a plugin may parse straight into its
 * defaults. Durations are src/util/timeutil.c's parser, the one the daemon
 * checks the same value with at --check-config.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "spwp-config.h"
#include "timeutil.h"

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
        return parse_duration_nonneg(s, ret);
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
                *expected = "a duration like 720h or 30d (0 = no limit; at most 2562047h)";
                return spwp_parse_duration(value, &k->max_records_age) < 0 ? -EINVAL : 1;
        }
        return 0;
}
