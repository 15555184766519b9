/* SPDX-License-Identifier: MIT */
/*
 * Durations in Go syntax and RFC 3339 timestamps (grammar and ranges in
 * timeutil.h), without locale or timezone state: the civil-date arithmetic
 * is Howard Hinnant's days_from_civil/civil_from_days, every division that
 * may meet a negative value rounds toward the past, so parsing and
 * formatting are thread-safe and independent of TZ.
 *
 * The duration parser follows Go's time.ParseDuration step by step
 * (src/time/format.go) in unsigned nanoseconds bounded by 2^63, so it
 * accepts and refuses exactly what Go does (plus "d"), and computes the same
 * nanoseconds, fraction through a float64 included. fuzz/fuzz-duration.c
 * checks it against an independent reading of the grammar.
 */
#include <errno.h>
#include <stdio.h>
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

/* ------------------------------------------------------------ durations */

#define NS_LIMIT (UINT64_C(1) << 63)

static const struct {
        const char *name;
        uint64_t ns;
} duration_units[] = {
        { "ns", 1 },
        { "us", 1000 },
        { "\xc2\xb5s", 1000 },          /* U+00B5 micro sign */
        { "\xce\xbcs", 1000 },          /* U+03BC Greek small letter mu */
        { "ms", 1000000 },
        { "s", UINT64_C(1000000000) },
        { "m", UINT64_C(60000000000) },
        { "h", UINT64_C(3600000000000) },
        { "d", UINT64_C(86400000000000) },
};

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

int parse_duration(const char *s, usec_t *ret) {
        uint64_t total = 0; /* <= NS_LIMIT */
        bool neg = false, out_of_range = false;
        int64_t ns;
        const char *p = s;

        if (!s)
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
                uint64_t v = 0, f = 0, unit = 0;
                double scale = 1;
                bool pre = false, post = false, range = false, overflow = false;
                const char *u;

                if (!is_digit(*p) && *p != '.')
                        return -EINVAL;
                /* the integer part; too many digits is a range error once the
                 * syntax is known to be right */
                for (; is_digit(*p); p++) {
                        pre = true;
                        if (v > NS_LIMIT / 10 || v * 10 + (uint64_t) (*p - '0') > NS_LIMIT)
                                range = true;
                        else
                                v = v * 10 + (uint64_t) (*p - '0');
                }
                /* the fraction: digits past 19 do not matter below 1ns */
                if (*p == '.')
                        for (p++; is_digit(*p); p++) {
                                post = true;
                                if (overflow)
                                        continue;
                                if (f > (NS_LIMIT - 1) / 10 || f * 10 + (uint64_t) (*p - '0') > NS_LIMIT) {
                                        overflow = true;
                                        continue;
                                }
                                f = f * 10 + (uint64_t) (*p - '0');
                                scale *= 10;
                        }
                if (!pre && !post)
                        return -EINVAL;
                /* the unit: everything up to the next number */
                for (u = p; *p && *p != '.' && !is_digit(*p); p++)
                        ;
                for (size_t i = 0; i < ELEMENTSOF(duration_units); i++)
                        if ((size_t) (p - u) == strlen(duration_units[i].name) &&
                            memcmp(u, duration_units[i].name, (size_t) (p - u)) == 0)
                                unit = duration_units[i].ns;
                if (!unit)
                        return -EINVAL; /* missing or unknown unit */
                if (range || v > NS_LIMIT / unit) {
                        out_of_range = true;
                        continue; /* finish checking the syntax first */
                }
                v *= unit;
                /* as Go computes it (through a float64, so "0.3333333333333333333h"
                 * is 20m); f < scale, so this is below one unit */
                if (f > 0)
                        v += (uint64_t) ((double) f * ((double) unit / scale));
                if (v > NS_LIMIT - total)
                        out_of_range = true;
                else
                        total += v;
        }
        if (out_of_range || (!neg && total == NS_LIMIT))
                return -ERANGE;
        ns = !neg ? (int64_t) total : total == NS_LIMIT ? INT64_MIN : -(int64_t) total;
        *ret = ns / 1000;
        return 0;
}

int parse_duration_nonneg(const char *s, usec_t *ret) {
        usec_t d;
        int r = parse_duration(s, &d);
        if (r < 0)
                return r;
        if (d < 0)
                return -ERANGE;
        *ret = d;
        return 0;
}

const char *duration_strerror(int r) {
        switch (r) {
        case 0:
                return "is a duration";
        case -ERANGE:
                return "is out of range (from 0 to 2562047h, about 292 years)";
        case -ENOMEM:
                return "could not be read (out of memory)";
        default:
                return "is not a duration (Go syntax like 500ms, 30s, 4h, 1h30m or 2d)";
        }
}

char *format_duration(char *buf, size_t size, usec_t d) {
        static const struct {
                const char *u;
                uint64_t v;
        } parts[] = {
                { "h", (uint64_t) USEC_PER_HOUR }, { "m", (uint64_t) USEC_PER_MIN }, { "s", (uint64_t) USEC_PER_SEC },
                { "ms", (uint64_t) USEC_PER_MSEC }, { "us", 1 },
        };
        uint64_t m;
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
                m = 0 - (uint64_t) d; /* INT64_MIN too */
        } else
                m = (uint64_t) d;
        for (size_t i = 0; i < ELEMENTSOF(parts) && m > 0 && n < size; i++)
                if (m >= parts[i].v) {
                        n += (size_t) snprintf(buf + n, size - n, "%llu%s", (unsigned long long) (m / parts[i].v),
                                               parts[i].u);
                        m %= parts[i].v;
                }
        return buf;
}

/* ------------------------------------------------------------ calendar */

/* days since 1970-01-01 of a proleptic Gregorian date */
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

static void days_to_civil(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
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

void civil_from_usec(usec_t t, civil_time *ret) {
        int64_t secs = t / USEC_PER_SEC, usec = t % USEC_PER_SEC, days, rem;

        if (usec < 0) {
                usec += USEC_PER_SEC;
                secs--;
        }
        days = secs / 86400;
        rem = secs % 86400;
        if (rem < 0) {
                rem += 86400;
                days--;
        }
        days_to_civil(days, &ret->year, &ret->month, &ret->day);
        ret->hour = (unsigned) (rem / 3600);
        ret->minute = (unsigned) (rem / 60 % 60);
        ret->second = (unsigned) (rem % 60);
        ret->usec = (unsigned) usec;
}

usec_t civil_to_usec(const civil_time *tm) {
        int64_t secs = days_from_civil(tm->year, tm->month, tm->day) * 86400 + (int64_t) tm->hour * 3600 +
                       (int64_t) tm->minute * 60 + tm->second;

        return secs * USEC_PER_SEC + tm->usec;
}

bool civil_date_valid(int64_t y, unsigned m, unsigned d) {
        static const unsigned mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

        if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
                return false;
        return m != 2 || d != 29 || (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* ------------------------------------------------------------ RFC 3339 */

static bool digits(const char *p, int n, unsigned *v) {
        unsigned x = 0;
        for (int i = 0; i < n; i++) {
                if (!is_digit(p[i]))
                        return false;
                x = x * 10 + (unsigned) (p[i] - '0');
        }
        *v = x;
        return true;
}

int parse_rfc3339(const char *s, usec_t *ret) {
        unsigned y, mo, d, h, mi, sec, oh = 0, om = 0, frac = 0;
        int sign = 0;
        const char *p = s;

        /* fixed positions: each check stops at the first wrong byte, so a
         * short string never reads past its NUL */
        if (!s || !digits(p, 4, &y) || p[4] != '-' || !digits(p + 5, 2, &mo) || p[7] != '-' ||
            !digits(p + 8, 2, &d) || (p[10] != 'T' && p[10] != 't' && p[10] != ' ') ||
            !digits(p + 11, 2, &h) || p[13] != ':' || !digits(p + 14, 2, &mi) || p[16] != ':' ||
            !digits(p + 17, 2, &sec))
                return -EINVAL;
        if (!civil_date_valid(y, mo, d) || h > 23 || mi > 59 || sec > 60)
                return -EINVAL;
        p += 19;
        if (*p == '.') {
                int n = 0;
                p++;
                if (!is_digit(*p))
                        return -EINVAL;
                for (; is_digit(*p); p++, n++)
                        if (n < 6)
                                frac = frac * 10 + (unsigned) (*p - '0');
                for (; n < 6; n++)
                        frac *= 10;
        }
        if (*p == 'Z' || *p == 'z')
                p++;
        else if (*p == '+' || *p == '-') {
                sign = *p == '-' ? -1 : 1;
                if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 || om > 59)
                        return -EINVAL;
                p += 6;
        } else
                return -EINVAL;
        if (*p)
                return -EINVAL;
        if (sec == 60)
                sec = 59; /* a leap second reads as the second before it */

        /* years 0000..9999 and offsets below a day: no overflow possible */
        *ret = civil_to_usec(&(civil_time) { y, mo, d, h, mi, sec, frac }) -
               sign * ((int64_t) oh * 3600 + (int64_t) om * 60) * USEC_PER_SEC;
        return 0;
}

char *format_rfc3339(char *buf, size_t size, usec_t t) {
        civil_time tm;
        unsigned frac;
        int n, digits = 6;

        civil_from_usec(t, &tm);
        n = snprintf(buf, size, "%04lld-%02u-%02uT%02u:%02u:%02u", (long long) tm.year, tm.month, tm.day, tm.hour,
                     tm.minute, tm.second);
        if (n < 0 || (size_t) n >= size)
                return buf;
        frac = tm.usec;
        if (frac) {
                while (frac % 10 == 0) {
                        frac /= 10;
                        digits--;
                }
                snprintf(buf + n, size - (size_t) n, ".%0*uZ", digits, frac);
        } else
                snprintf(buf + n, size - (size_t) n, "Z");
        return buf;
}

int parse_time_arg(const char *s, usec_t now, usec_t *ret) {
        usec_t d;
        int r;

        if (!s)
                return -EINVAL;
        if (streq(s, "now")) {
                *ret = now;
                return 0;
        }
        if (s[0] == '+' || s[0] == '-') {
                r = parse_duration(s, &d);
                if (r < 0)
                        return r;
                if (__builtin_add_overflow(now, d, ret))
                        return -ERANGE;
                return 0;
        }
        return parse_rfc3339(s, ret);
}
