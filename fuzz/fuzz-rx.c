/* SPDX-License-Identifier: MIT */
/*
 * The `matches` engine (src/route/rx.c) against the C library's POSIX ERE
 * matcher, on the patterns both accept and whose meaning both define the
 * same way. The input is "PATTERN\nSUBJECT". Left out, as the two
 * syntaxes differ there: patterns with a backslash (RE2 escapes vs POSIX),
 * '(?' (RE2 flags/non-capturing groups), "[[." and "[[=" (POSIX collating),
 * bytes >= 0x80 and control bytes (locales); subjects are cut at a newline
 * ('.' matches one in POSIX, not in RE2). Both run in the C locale; glibc's
 * matcher is exponential on some patterns, so patterns are at most 48 bytes
 * and subjects 32. A disagreement on a yes/no answer aborts with both.
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
        return !memmem(p, n, "(?", 2) && !memmem(p, n, "[[.", 3) && !memmem(p, n, "[[=", 3);
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
        if (got < 0 || !comparable(pattern, pl) || regcomp(&ref, pattern, REG_EXTENDED | REG_NOSUB) != 0) {
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
