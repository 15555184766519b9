/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * UTC civil time for plugins that store or print times: a time in
 * microseconds since the epoch split into calendar fields and joined
 * again (proleptic Gregorian calendar), and the fixed-width digit
 * primitives stored formats are written and read with. Each plugin keeps
 * its own formats and ranges; this is the arithmetic under them. The
 * calendar is src/util/timeutil.c's (civil_from_usec, civil_to_usec), the
 * same code the daemon runs; these names stay for the ban databases.
 * Needs libc only; errors are 0 or a negative errno.
 */

#include <stdbool.h>
#include <stdint.h>

/* A UTC time's fields. */
typedef struct spwp_tm {
        int64_t year;
        unsigned month;                 /* 1..12 */
        unsigned day;                   /* 1..31 */
        unsigned hour;                  /* 0..23 */
        unsigned minute;                /* 0..59 */
        unsigned second;                /* 0..59 */
        unsigned usec;                  /* 0..999999 */
} spwp_tm;

/* Split t (usec since 1970-01-01 00:00:00 UTC, any value) into its UTC
 * fields, rounding toward the past: -1 is 1969-12-31 23:59:59.999999. */
void spwp_time_split(int64_t t, spwp_tm *ret);

/* The other way: usec since the epoch. Fields are not checked: one past
 * its range carries into the next (second 60 is the next minute's 0,
 * February 30 is March 1 or 2); check with spwp_date_valid() first. */
int64_t spwp_time_join(const spwp_tm *tm);

/* Whether y-m-d is a date the ban databases accept: year 1..9999, month
 * 1..12, day 1..the month's length, February counted with 29 days in every
 * year (so February 29 of a common year joins as March 1). */
bool spwp_date_valid(int64_t y, unsigned m, unsigned d);

/* Write v as exactly n decimal digits at p (zero-padded; higher digits
 * dropped). Returns p + n. */
char *spwp_put_digits(char *p, unsigned v, int n);

/* Read exactly n decimal digits from *p, not past end, into *ret and
 * advance *p. Returns 0 or -EINVAL (fewer than n digits there). */
int spwp_take_digits(const char **p, const char *end, int n, unsigned *ret);

/* Step over the character c at *p, not past end. Returns 0 or -EINVAL. */
int spwp_take_char(const char **p, const char *end, char c);
