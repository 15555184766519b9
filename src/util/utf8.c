/* SPDX-License-Identifier: MIT */
/*
 * UTF-8 validation: the lead byte gives the length and the payload bits,
 * continuation bytes are checked one by one, then the code point is checked
 * against the shortest form and the Unicode range.
 */
#include <stdint.h>

#include "utf8.h"

size_t utf8_char_len(const unsigned char *s, size_t n) {
        unsigned c = s[0];
        size_t l;
        uint32_t cp;

        if (c < 0x80)
                return 1;
        if (c >= 0xc2 && c <= 0xdf)
                l = 2, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
                l = 3, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
                l = 4, cp = c & 0x07;
        else
                return 0;
        if (l > n)
                return 0;
        for (size_t i = 1; i < l; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (s[i] & 0x3f);
        }
        /* overlong forms, surrogates, beyond U+10FFFF */
        if ((l == 3 && cp < 0x800) || (l == 4 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return l;
}

bool utf8_valid(const char *s, size_t n) {
        const unsigned char *p = (const unsigned char *) s;
        for (size_t i = 0; i < n;) {
                size_t l = utf8_char_len(p + i, n - i);
                if (l == 0)
                        return false;
                i += l;
        }
        return true;
}
