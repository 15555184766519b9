/* SPDX-License-Identifier: MIT */
/*
 * UTC civil time for the plugins (see spwp-time.h): thin wrappers over the
 * calendar of src/util/timeutil.c (one implementation for the daemon and
 * the plugins), plus the ban databases' own date rule and digit primitives.
 */
#include <errno.h>

#include "spwp-time.h"
#include "timeutil.h"

void spwp_time_split(int64_t t, spwp_tm *ret) {
        civil_time tm;

        civil_from_usec(t, &tm);
        *ret = (spwp_tm) { tm.year, tm.month, tm.day, tm.hour, tm.minute, tm.second, tm.usec };
}

int64_t spwp_time_join(const spwp_tm *tm) {
        return civil_to_usec(&(civil_time) { tm->year, tm->month, tm->day, tm->hour, tm->minute, tm->second, tm->usec });
}

bool spwp_date_valid(int64_t y, unsigned m, unsigned d) {
        static const unsigned mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

        return y >= 1 && y <= 9999 && m >= 1 && m <= 12 && d >= 1 && d <= mdays[m - 1];
}

char *spwp_put_digits(char *p, unsigned v, int n) {
        for (int i = n - 1; i >= 0; i--) {
                p[i] = (char) ('0' + v % 10);
                v /= 10;
        }
        return p + n;
}

int spwp_take_digits(const char **p, const char *end, int n, unsigned *ret) {
        unsigned v = 0;

        if (end - *p < n)
                return -EINVAL;
        for (int i = 0; i < n; i++) {
                char c = (*p)[i];
                if (c < '0' || c > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned) (c - '0');
        }
        *p += n;
        *ret = v;
        return 0;
}

int spwp_take_char(const char **p, const char *end, char c) {
        if (*p >= end || **p != c)
                return -EINVAL;
        (*p)++;
        return 0;
}
