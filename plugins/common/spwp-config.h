/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Config values as plugins read them, and the keys both ban-database
 * backends (sqlite, mysql) take alike. Plugins never link the daemon's
 * util library at run time (a plugin must load into any daemon of its ABI
 * major): they link a static copy of its libc-only part (durations, times,
 * strbuf), so a value means the same to the daemon and to the plugin. Errors: 0 or a
 * negative errno, as in src/util/error.h; positive values only where a
 * function says so.
 */

#include <stdbool.h>
#include <stdint.h>

/* true/false, yes/no, on/off, 1/0, case-insensitive. Returns 0, or -EINVAL
 * for NULL or anything else (*ret untouched). */
int spwp_parse_bool(const char *s, bool *ret);

/* A decimal integer, digits only (no sign, no spaces), no larger than max.
 * Returns 0, -EINVAL (empty or not a digit) or -ERANGE (above max, reported
 * at the first digit that exceeds it). */
int spwp_parse_uint(const char *s, uint64_t max, uint64_t *ret);

/* A duration in microseconds, in the one grammar of src/util/timeutil.h
 * (parse_duration_nonneg(), which the daemon checks config values with):
 * Go's time.ParseDuration syntax ("10s", "1h30m", "1.5h", "250ms", "+5s"),
 * plus "d" for days; a bare "0" is zero. Units ns, us, µs, μs, ms, s, m, h,
 * d; no exponents, no hexadecimal, no spaces; the total is truncated to the
 * microsecond. Returns 0, -EINVAL (not the grammar), or -ERANGE (negative,
 * or beyond 2562047h, about 292 years). */
int spwp_parse_duration(const char *s, int64_t *ret);

/* The keys both ban-database backends take from CrowdSec's database.yaml
 * with the same meaning, default and message: flush, max_records,
 * max_records_age, and debug. */
typedef struct spwp_bandb_keys {
        bool expire;                    /* `flush`: expire bans every second */
        bool debug;                     /* log every stored signal */
        int64_t max_records;            /* 0: no limit */
        int64_t max_records_age;        /* usec; 0: no limit */
} spwp_bandb_keys;

/* The defaults: flush true, debug false, max_records 10000, max_records_age 720h. */
#define SPWP_BANDB_KEYS_DEFAULT                                                                 \
        ((spwp_bandb_keys) { .expire = true, .max_records = 10000,                              \
                             .max_records_age = INT64_C(720) * 3600 * 1000000 })

/* When key is one of the four, parse value into k and return 1; return 0
 * for any other key (k untouched). A value the key does not take returns
 * -EINVAL with *expected saying what it takes ("true or false", ...) for
 * the plugin's error message. */
int spwp_bandb_keys_set(spwp_bandb_keys *k, const char *key, const char *value, const char **expected);
