/* SPDX-License-Identifier: MIT */
/*
 * UTC civil time (see spwp-time.h). The calendar conversions are Howard
 * Hinnant's days_from_civil/civil_from_days for the proleptic Gregorian
 * calendar; every division that may meet a negative value rounds toward
 * the past, so times before 1970 split the same way as later ones.
 */
#include <errno.h>

#include "spwp-time.h"

#define USEC_PER_SEC INT64_C(1000000)
#define SEC_PER_DAY  INT64_C(86400)

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
        int64_t era, yy;
        unsigned doe, yoe, doy, mp;

        z += 719468;
        era = (z >= 0 ? z : z - 146096) / 146097;
        doe = (unsigned) (z - era * 146097);
        yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        yy = (int64_t) yoe + era * 400;
        doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        mp = (5 * doy + 2) / 153;
        *d = doy - (153 * mp + 2) / 5 + 1;
        *m = mp < 10 ? mp + 3 : mp - 9;
        *y = yy + (*m <= 2);
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
        int64_t era;
        unsigned yoe, doy, doe;

        y -= m <= 2;
        era = (y >= 0 ? y : y - 399) / 400;
        yoe = (unsigned) (y - era * 400);
        doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
        doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + (int64_t) doe - 719468;
}

void spwp_time_split(int64_t t, spwp_tm *ret) {
        int64_t secs = t / USEC_PER_SEC, usec = t % USEC_PER_SEC, days, rem;

        if (usec < 0) {
                usec += USEC_PER_SEC;
                secs--;
        }
        days = secs / SEC_PER_DAY;
        rem = secs % SEC_PER_DAY;
        if (rem < 0) {
                rem += SEC_PER_DAY;
                days--;
        }
        civil_from_days(days, &ret->year, &ret->month, &ret->day);
        ret->hour = (unsigned) (rem / 3600);
        ret->minute = (unsigned) (rem / 60 % 60);
        ret->second = (unsigned) (rem % 60);
        ret->usec = (unsigned) usec;
}

int64_t spwp_time_join(const spwp_tm *tm) {
        int64_t secs = days_from_civil(tm->year, tm->month, tm->day) * SEC_PER_DAY + (int64_t) tm->hour * 3600 +
                       (int64_t) tm->minute * 60 + tm->second;

        return secs * USEC_PER_SEC + tm->usec;
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
