/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Time helpers. Wall-clock times are microseconds since the Unix epoch
 * (usec_t, as in <spillway/backend.h>); monotonic times come from
 * CLOCK_MONOTONIC in microseconds.
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

usec_t now_realtime(void);
usec_t now_monotonic(void);

/* Go's time.ParseDuration syntax ("300ms", "1.5h", "1h30m", "-2s"), plus "d"
 * for days; a bare "0" is zero. Units: ns us µs ms s m h d. Returns 0 or
 * -EINVAL / -ERANGE. */
int parse_duration(const char *s, usec_t *ret);

/* RFC 3339 ("2020-05-21T10:00:00Z", "...T10:00:00.123456+02:00"). The
 * seconds fraction is kept to the microsecond. Returns 0 or -EINVAL. */
int parse_rfc3339(const char *s, usec_t *ret);

/* Format as RFC 3339 in UTC with "Z"; fraction only when non-zero.
 * buf must hold at least RFC3339_MAX bytes. Returns buf. */
#define RFC3339_MAX 40
char *format_rfc3339(char *buf, size_t size, usec_t t);

/* "4h", "1h30m", "90s", "250ms": the shortest Go-style text. */
#define DURATION_MAX 64
char *format_duration(char *buf, size_t size, usec_t d);

/* Parse a time for command lines: RFC 3339, or a duration relative to now
 * ("+1h", "-30m"), or "now". */
int parse_time_arg(const char *s, usec_t now, usec_t *ret);
