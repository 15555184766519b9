/* SPDX-License-Identifier: MIT */
/*
 * The duration parser (src/util/timeutil.c) against the grammar as
 * documented (timeutil.h, spillway.yaml(5)), read a second, independent
 * way: a POSIX extended regular expression decides what is syntax, and
 * strtold() gives each component's value. They must agree:
 *   - the regex refuses   <=> parse_duration() says -EINVAL;
 *   - the regex accepts   => a value within Go's range (2^63 - 1 ns, with a
 *     margin for rounding at the very edge) parses, to within a microsecond
 *     per component of strtold's value; a value clearly beyond it is -ERANGE;
 *   - what parses, format_duration() prints and parse_duration() reads back
 *     to the same microsecond; parse_duration_nonneg() agrees on the sign.
 * parse_time_arg() and parse_rfc3339() get the same input for the ride.
 */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "timeutil.h"

#define NUMBER "([0-9]+(\\.[0-9]*)?|\\.[0-9]+)"
#define UNIT "(ns|us|\xc2\xb5s|\xce\xbcs|ms|s|m|h|d)"
static const char grammar[] = "^[-+]?(0|(" NUMBER UNIT ")+)$";

static regex_t re;

static void fail(const char *s, const char *why, long double ref, usec_t got) {
        fprintf(stderr, "'%s': %s (reference %.3Lf us, parser %lld us)\n", s, why, ref, (long long) got);
        abort();
}

/* The value in nanoseconds the grammar gives s (which it accepts), and the
 * number of components. */
static long double reference_ns(const char *s, unsigned *n_components) {
        static const struct {
                const char *name;
                long double ns;
        } units[] = { { "ns", 1 }, { "us", 1e3L }, { "\xc2\xb5s", 1e3L }, { "\xce\xbcs", 1e3L }, { "ms", 1e6L },
                      { "s", 1e9L }, { "m", 6e10L }, { "h", 3.6e12L }, { "d", 8.64e13L } };
        long double total = 0;
        int sign = 1;

        *n_components = 0;
        if (*s == '-' || *s == '+')
                sign = *s++ == '-' ? -1 : 1;
        if (strcmp(s, "0") == 0)
                return 0;
        while (*s) {
                char num[4096];
                size_t nl = strspn(s, "0123456789."), ul;
                const char *u = s + nl;

                ul = strcspn(u, "0123456789.");
                if (nl >= sizeof num)
                        return INFINITY; /* a longer number is far out of range or refused anyway */
                memcpy(num, s, nl);
                num[nl] = 0;
                if (num[nl - 1] == '.')
                        num[nl - 1] = 0; /* "5." is 5 */
                long double v = strtold(num[0] ? num : "0", NULL), mult = 0;
                for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
                        if (strlen(units[i].name) == ul && memcmp(units[i].name, u, ul) == 0)
                                mult = units[i].ns;
                if (mult == 0)
                        abort(); /* the regex let an unknown unit through */
                total += v * mult;
                (*n_components)++;
                s = u + ul;
        }
        return sign * total;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static int ready;
        char s[256], buf[DURATION_MAX];
        usec_t got = 0, back, t;
        unsigned n;
        int r;

        if (!ready) {
                setlocale(LC_ALL, "C");
                if (regcomp(&re, grammar, REG_EXTENDED | REG_NOSUB) != 0)
                        abort();
                ready = 1;
        }
        if (size >= sizeof s || memchr(data, 0, size))
                return 0;
        memcpy(s, data, size);
        s[size] = 0;

        r = parse_duration(s, &got);
        if (regexec(&re, s, 0, NULL, 0) != 0) {
                if (r != -EINVAL)
                        fail(s, "outside the grammar but not -EINVAL", 0, got);
                return 0;
        }
        long double ns = reference_ns(s, &n), limit = 9223372036854775807.0L;
        long double margin = n + fabsl(ns) * 1e-15L;
        if (fabsl(ns) > limit + margin) {
                if (r != -ERANGE)
                        fail(s, "beyond the range but not -ERANGE", ns / 1000, got);
                return 0;
        }
        if (fabsl(ns) < limit - margin) {
                if (r != 0)
                        fail(s, "in the grammar and the range but refused", ns / 1000, got);
        } else if (r == -ERANGE)
                return 0; /* at the very edge: either answer */
        if (r < 0)
                fail(s, "unexpected error", ns / 1000, got);
        if (fabsl((long double) got - ns / 1000) > 1 + n + fabsl(ns) * 1e-15L)
                fail(s, "wrong value", ns / 1000, got);

        /* what it prints reads back, and the config variant agrees */
        if (parse_duration(format_duration(buf, sizeof buf, got), &back) != 0 || back != got)
                fail(s, "format_duration() does not read back", ns / 1000, got);
        r = parse_duration_nonneg(s, &back);
        if (got < 0 ? r != -ERANGE : r != 0 || back != got)
                fail(s, "parse_duration_nonneg() disagrees", ns / 1000, got);
        if ((s[0] == '+' || s[0] == '-') && parse_time_arg(s, 0, &t) == 0 && t != got)
                fail(s, "parse_time_arg() disagrees", ns / 1000, got);
        (void) parse_rfc3339(s, &t);
        return 0;
}
