/* SPDX-License-Identifier: MIT */
/*
 * Helpers private to the webhook plugin (see whutil.h for where the generic
 * ones went). Nothing here knows about HTTP, templates or signals.
 */
#include <ctype.h>

#include "whutil.h"

void wh_query_escape(strbuf *b, const char *s, size_t n) {
        static const char hex[] = "0123456789ABCDEF";
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];
                if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
                        strbuf_putc(b, (char) c);
                else if (c == ' ')
                        strbuf_putc(b, '+');
                else {
                        char e[3] = { '%', hex[c >> 4], hex[c & 15] };
                        strbuf_append(b, e, 3);
                }
        }
}

void wh_sanitized(strbuf *b, const char *s, size_t n, size_t max) {
        bool space = false;
        size_t out = 0;

        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];
                if (out >= max) {
                        strbuf_puts(b, "...");
                        return;
                }
                if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
                        if (!space && out > 0) {
                                strbuf_putc(b, ' ');
                                out++;
                        }
                        space = true;
                        continue;
                }
                space = false;
                strbuf_putc(b, c >= 0x21 && c < 0x7f ? (char) c : '.');
                out++;
        }
}
