/* SPDX-License-Identifier: MIT */
/*
 * The `matches` engine (src/route/rx.c) against the C library's POSIX ERE
 * matcher, on the patterns both accept and whose meaning both define the
 * same way. The input is "PATTERN\nSUBJECT". Left out, as the two
 * syntaxes differ there: patterns with a backslash (RE2 escapes vs POSIX),
 * '(?' (RE2 flags/non-capturing groups), "[[." and "[[=" (POSIX collating),
 * a repetition followed by '?' (RE2's lazy "a+?" needs an a; POSIX reads
 * (a+)? which does not), "{," (glibc reads a{,3} as a{0,3}, RE2 as a
 * literal), and '^' or '$' anywhere but at the very start and end (glibc
 * gets anchors inside repeated groups wrong: it finds a(|^bc){2,6}$ in
 * "bcabc", where ^ cannot hold after the a),
 * bytes >= 0x80 and control bytes (locales); subjects are cut at a newline
 * ('.' matches one in POSIX, not in RE2). Both run in the C locale; glibc's
 * matcher is exponential on some patterns, so patterns are at most 48 bytes
 * (200 instructions once compiled) and subjects 32. A disagreement on a yes/no answer aborts with both.
 */
#include <locale.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rx.h"

static bool comparable(const char *p, size_t n) {
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) p[i];
                if (c < 0x20 || c >= 0x7f || c == '\\')
                        return false;
        }
        for (size_t i = 0; i + 1 < n; i++)
                if (strchr("*+?}", p[i]) && p[i + 1] == '?')
                        return false;
        for (size_t i = 0; i < n; i++)
                if ((p[i] == '^' && i > 0 && p[i - 1] != '[') || (p[i] == '$' && i + 1 < n))
                        return false;
        /* glibc's regcomp computes epsilon closures in exponential time on
         * repeated empty alternatives: ^(||){36,} took over 10 s */
        for (const char *q = p; (q = memchr(q, '{', (size_t) (p + n - q))); q++) {
                const char *comma = q + 1 + strspn(q + 1, "0123456789");
                if (atoi(q + 1) > 6 || (*comma == ',' && atoi(comma + 1) > 6))
                        return false;
        }
        return !memmem(p, n, "(?", 2) && !memmem(p, n, "[[.", 3) && !memmem(p, n, "[[=", 3) && !memmem(p, n, "{,", 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static int ready;
        const char *nl = memchr(data, '\n', size);
        char pattern[64], subject[64], msg[128];
        size_t pl, sl;
        rx *re = NULL;
        regex_t ref;
        int got, want;

        if (!ready) {
                setlocale(LC_ALL, "C");
                ready = 1;
        }
        if (!nl)
                return 0;
        pl = (size_t) (nl - (const char *) data);
        sl = size - pl - 1;
        if (pl > 48 || sl > 32)
                return 0;
        memcpy(pattern, data, pl);
        pattern[pl] = 0;
        memcpy(subject, nl + 1, sl);
        subject[sl] = 0;
        sl = strcspn(subject, "\n"); /* and at a NUL: regexec takes a C string */
        subject[sl] = 0;

        /* rx alone on anything (it takes any bytes) */
        if (rx_compile(pattern, pl, &re, msg, sizeof msg, NULL) < 0)
                return 0;
        got = rx_search(re, subject, sl);
        /* glibc's regcomp is superlinear in the expanded program ((|a){11,}
         * took seconds): compare on small programs only */
        if (got < 0 || rx_program_size(re) > 200 || !comparable(pattern, pl) ||
            regcomp(&ref, pattern, REG_EXTENDED | REG_NOSUB) != 0) {
                rx_free(re);
                return 0;
        }
        want = regexec(&ref, subject, 0, NULL, 0) == 0;
        regfree(&ref);
        rx_free(re);
        if (got != want) {
                fprintf(stderr, "'%s' on \"%s\": the C library says %d, rx says %d\n", pattern, subject, want, got);
                abort();
        }
        return 0;
}
