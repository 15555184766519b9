/* SPDX-License-Identifier: MIT */
/*
 * Durations in Go syntax and RFC 3339 timestamps, without locale or
 * timezone state: timegm-free civil-date arithmetic so that parsing is
 * thread-safe and independent of TZ.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "macro.h"
#include "timeutil.h"

static usec_t clock_usec(clockid_t id) {
        struct timespec ts;
        clock_gettime(id, &ts);
        return (usec_t) ts.tv_sec * USEC_PER_SEC + ts.tv_nsec / 1000;
}

usec_t now_realtime(void) {
        return clock_usec(CLOCK_REALTIME);
}

usec_t now_monotonic(void) {
        return clock_usec(CLOCK_MONOTONIC);
}

int parse_duration(const char *s, usec_t *ret) {
        static const struct {
                const char *suffix;
                double usec;
        } units[] = {
                /* longest first so "ms" is not read as "m" */
                { "ns", 0.001 }, { "us", 1 }, { "\xc2\xb5s", 1 }, { "\xce\xbcs", 1 },
                { "ms", 1000 }, { "s", 1e6 }, { "m", 60e6 }, { "h", 3600e6 }, { "d", 86400e6 },
        };
        double total = 0;
        bool neg = false;
        const char *p = s;

        if (!s || !*s)
                return -EINVAL;
        if (*p == '-' || *p == '+')
                neg = *p++ == '-';
        if (streq(p, "0")) {
                *ret = 0;
                return 0;
        }
        if (!*p)
                return -EINVAL;
        while (*p) {
                char *end;
                double v;
                size_t best = 0;
                double mult = 0;

                if (!((*p >= '0' && *p <= '9') || *p == '.'))
                        return -EINVAL;
                errno = 0;
                v = strtod(p, &end);
                if (end == p || errno || *end == 0)
                        return -EINVAL; /* a number needs a unit */
                p = end;
                for (size_t i = 0; i < ELEMENTSOF(units); i++) {
                        size_t l = strlen(units[i].suffix);
                        if (strncmp(p, units[i].suffix, l) == 0 && l > best) {
                                best = l;
                                mult = units[i].usec;
                        }
                }
                if (!best)
                        return -EINVAL;
                p += best;
                total += v * mult;
                if (total > 9.2e18)
                        return -ERANGE;
        }
        *ret = (usec_t) llround(neg ? -total : total);
        return 0;
}

/* days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant) */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
        y -= m <= 2;
        int64_t era = (y >= 0 ? y : y - 399) / 400;
        unsigned yoe = (unsigned) (y - era * 400);
        unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + (int64_t) doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
        z += 719468;
        int64_t era = (z >= 0 ? z : z - 146096) / 146097;
        unsigned doe = (unsigned) (z - era * 146097);
        unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        int64_t yy = (int64_t) yoe + era * 400;
        unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        unsigned mp = (5 * doy + 2) / 153;
        *d = doy - (153 * mp + 2) / 5 + 1;
        *m = mp < 10 ? mp + 3 : mp - 9;
        *y = yy + (*m <= 2);
}

static bool digits(const char *p, int n, int *v) {
        int x = 0;
        for (int i = 0; i < n; i++) {
                if (p[i] < '0' || p[i] > '9')
                        return false;
                x = x * 10 + (p[i] - '0');
        }
        *v = x;
        return true;
}

int parse_rfc3339(const char *s, usec_t *ret) {
        int y, mo, d, h, mi, sec, oh = 0, om = 0;
        int64_t frac = 0;
        const char *p = s;
        static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

        if (!s || strlen(s) < 20)
                return -EINVAL;
        if (!digits(p, 4, &y) || p[4] != '-' || !digits(p + 5, 2, &mo) || p[7] != '-' ||
            !digits(p + 8, 2, &d) || (p[10] != 'T' && p[10] != 't' && p[10] != ' ') ||
            !digits(p + 11, 2, &h) || p[13] != ':' || !digits(p + 14, 2, &mi) || p[16] != ':' ||
            !digits(p + 17, 2, &sec))
                return -EINVAL;
        if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60)
                return -EINVAL;
        if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
                return -EINVAL;
        p += 19;
        if (*p == '.') {
                int n = 0;
                p++;
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                for (; *p >= '0' && *p <= '9'; p++, n++)
                        if (n < 6)
                                frac = frac * 10 + (*p - '0');
                for (; n < 6; n++)
                        frac *= 10;
        }
        if (*p == 'Z' || *p == 'z')
                p++;
        else if (*p == '+' || *p == '-') {
                int sign = *p == '-' ? -1 : 1;
                if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 || om > 59)
                        return -EINVAL;
                oh *= sign;
                om *= sign;
                p += 6;
        } else
                return -EINVAL;
        if (*p)
                return -EINVAL;
        if (sec == 60)
                sec = 59; /* leap second: clamp, as Go does for parsing purposes */

        int64_t days = days_from_civil(y, (unsigned) mo, (unsigned) d);
        int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - (oh * 3600 + om * 60);
        *ret = secs * USEC_PER_SEC + frac;
        return 0;
}

char *format_rfc3339(char *buf, size_t size, usec_t t) {
        int64_t secs = t / USEC_PER_SEC, frac = t % USEC_PER_SEC;
        if (frac < 0) {
                frac += USEC_PER_SEC;
                secs--;
        }
        int64_t days = secs / 86400, rem = secs % 86400;
        if (rem < 0) {
                rem += 86400;
                days--;
        }
        int64_t y;
        unsigned m, d;
        civil_from_days(days, &y, &m, &d);
        if (frac)
                snprintf(buf, size, "%04lld-%02u-%02uT%02d:%02d:%02d.%06lldZ", (long long) y, m, d,
                         (int) (rem / 3600), (int) (rem / 60 % 60), (int) (rem % 60), (long long) frac);
        else
                snprintf(buf, size, "%04lld-%02u-%02uT%02d:%02d:%02dZ", (long long) y, m, d,
                         (int) (rem / 3600), (int) (rem / 60 % 60), (int) (rem % 60));
        return buf;
}

char *format_duration(char *buf, size_t size, usec_t d) {
        static const struct {
                const char *u;
                usec_t v;
        } parts[] = { { "h", USEC_PER_HOUR }, { "m", USEC_PER_MIN }, { "s", USEC_PER_SEC }, { "ms", USEC_PER_MSEC }, { "us", 1 } };
        size_t n = 0;

        if (size == 0)
                return buf;
        buf[0] = 0;
        if (d == 0) {
                snprintf(buf, size, "0s");
                return buf;
        }
        if (d < 0) {
                n += (size_t) snprintf(buf, size, "-");
                d = -d;
        }
        for (size_t i = 0; i < ELEMENTSOF(parts) && d > 0 && n < size; i++) {
                if (d >= parts[i].v) {
                        n += (size_t) snprintf(buf + n, size - n, "%lld%s", (long long) (d / parts[i].v), parts[i].u);
                        d %= parts[i].v;
                }
        }
        return buf;
}

int parse_time_arg(const char *s, usec_t now, usec_t *ret) {
        usec_t d;
        int r;

        if (streq(s, "now")) {
                *ret = now;
                return 0;
        }
        if (s[0] == '+' || s[0] == '-') {
                r = parse_duration(s, &d);
                if (r < 0)
                        return r;
                *ret = now + d;
                return 0;
        }
        return parse_rfc3339(s, ret);
}
