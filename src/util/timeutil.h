/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Times and durations: the one implementation that the daemon, spillwayctl
 * and every plugin use (plugins link their own static copy; see
 * src/util/meson.build). libc only, no locale or TZ state, thread-safe.
 *
 * Wall-clock times are microseconds since the Unix epoch (usec_t, as
 * spw_usec_t in <spillway/backend.h>); monotonic times come from
 * CLOCK_MONOTONIC in microseconds. Errors: 0 or a negative errno.
 *
 * The duration grammar (man spillway.yaml(5), "Durations"), exactly Go's
 * time.ParseDuration plus the unit "d":
 *
 *     duration  = [ "+" | "-" ] ( "0" | component { component } )
 *     component = number unit
 *     number    = digits [ "." [ digits ] ] | "." digits
 *     unit      = "ns" | "us" | "µs" (U+00B5) | "μs" (U+03BC) | "ms" | "s" | "m" | "h" | "d"
 *
 * No spaces, no exponents ("1e3ms"), no hexadecimal ("0x10s"), units are
 * case-sensitive. Each component is exact to the nanosecond; the total is
 * truncated toward zero to the microsecond ("1500ns" is 1us). The range is
 * Go's: at most 2562047h47m16.854775807s (about 292 years) either way, so a
 * duration in nanoseconds fits an int64_t and a time plus a duration never
 * overflows a usec_t. Config values take no negative durations.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef int64_t usec_t;

#define USEC_PER_MSEC INT64_C(1000)
#define USEC_PER_SEC  INT64_C(1000000)
#define USEC_PER_MIN  (INT64_C(60) * USEC_PER_SEC)
#define USEC_PER_HOUR (INT64_C(60) * USEC_PER_MIN)
#define USEC_PER_DAY  (INT64_C(24) * USEC_PER_HOUR)

/* The largest duration (INT64_MAX nanoseconds, truncated to the microsecond). */
#define DURATION_MAX_USEC (INT64_MAX / 1000)
/* The times RFC 3339 text and the ban databases can hold: years 1 to 9999 UTC. */
#define TIME_YEAR1_USEC    (INT64_C(-62135596800) * USEC_PER_SEC)
#define TIME_YEAR9999_USEC (INT64_C(253402300800) * USEC_PER_SEC - 1)

usec_t now_realtime(void);
usec_t now_monotonic(void);

/* A duration in the grammar above, signed. Returns 0, -EINVAL (not the
 * grammar; *ret untouched) or -ERANGE (the grammar, but beyond the range). */
int parse_duration(const char *s, usec_t *ret);
/* The same, for config values and requests: a negative value is -ERANGE. */
int parse_duration_nonneg(const char *s, usec_t *ret);
/* What a parse_duration() error means, for a message after the field name
 * and the value: "is not a duration (Go syntax like 500ms, 4h, 1h30m or 2d)",
 * "is out of range (at most 2562047h, about 292 years)", ... */
const char *duration_strerror(int r);

/* RFC 3339 ("2020-05-21T10:00:00Z", "...T10:00:00.123456+02:00"; 't', 'z'
 * and a space for 'T' are taken). The fraction is truncated to the
 * microsecond; second 60 (a leap second) reads as 59. Returns 0 or -EINVAL. */
int parse_rfc3339(const char *s, usec_t *ret);

/* Format as RFC 3339 in UTC with "Z", the fraction only when non-zero and
 * without trailing zeros (Go's RFC3339Nano, as CrowdSec writes it):
 * "2020-05-21T10:00:00Z", "2020-05-21T10:00:20.5Z". Any value formats (years
 * outside 1..9999 print with more digits or a sign). buf must hold at least
 * RFC3339_MAX bytes. Returns buf. */
#define RFC3339_MAX 40
char *format_rfc3339(char *buf, size_t size, usec_t t);

/* "4h", "1h30m", "90s" (as "1m30s"), "250ms", "0s": the shortest text in the
 * grammar above without "d"; any value formats. Returns buf. */
#define DURATION_MAX 64
char *format_duration(char *buf, size_t size, usec_t d);

/* Parse a time for command lines: RFC 3339, or a duration relative to now
 * ("+1h", "-30m"), or "now". Returns 0, -EINVAL or -ERANGE. */
int parse_time_arg(const char *s, usec_t now, usec_t *ret);

/* A UTC time split into its calendar fields (proleptic Gregorian). */
typedef struct civil_time {
        int64_t year;
        unsigned month;                 /* 1..12 */
        unsigned day;                   /* 1..31 */
        unsigned hour;                  /* 0..23 */
        unsigned minute;                /* 0..59 */
        unsigned second;                /* 0..59 */
        unsigned usec;                  /* 0..999999 */
} civil_time;

/* Any usec_t splits, rounding toward the past (-1 is 1969-12-31
 * 23:59:59.999999). */
void civil_from_usec(usec_t t, civil_time *ret);
/* The other way. Fields are not checked: one past its range carries into
 * the next. Years beyond +-200,000,000 are not representable (overflow is
 * the caller's to avoid). */
usec_t civil_to_usec(const civil_time *tm);
/* Whether y-m-d is a real date (February 29 only in leap years). */
bool civil_date_valid(int64_t y, unsigned m, unsigned d);
