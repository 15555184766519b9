/* SPDX-License-Identifier: MIT */
/*
 * strbuf: a growable NUL-terminated buffer with a sticky out-of-memory flag.
 * Invariant: data is NULL or holds len bytes plus a NUL, len < cap.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

void strbuf_deinit(strbuf *b) {
        free(b->data);
        *b = (strbuf) STRBUF_INIT;
}

void strbuf_reset(strbuf *b) {
        b->len = 0;
        if (b->data)
                b->data[0] = 0;
}

bool strbuf_reserve(strbuf *b, size_t extra) {
        size_t need, cap;
        char *p;

        if (b->oom)
                return false;
        if (extra > ((size_t) -1) / 2 - b->len - 1) {
                b->oom = true;
                return false;
        }
        need = b->len + extra + 1;
        if (need <= b->cap)
                return true;
        cap = b->cap ? b->cap : 64;
        while (cap < need)
                cap *= 2;
        p = realloc(b->data, cap);
        if (!p) {
                b->oom = true;
                return false;
        }
        b->data = p;
        b->cap = cap;
        return true;
}

void strbuf_append(strbuf *b, const void *p, size_t n) {
        if (!strbuf_reserve(b, n))
                return;
        if (n)
                memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = 0;
}

void strbuf_puts(strbuf *b, const char *s) {
        strbuf_append(b, s, strlen(s));
}

void strbuf_putc(strbuf *b, char c) {
        strbuf_append(b, &c, 1);
}

void strbuf_vprintf(strbuf *b, const char *fmt, va_list ap) {
        va_list aq;
        int n;

        va_copy(aq, ap);
        n = vsnprintf(NULL, 0, fmt, aq);
        va_end(aq);
        if (n < 0 || !strbuf_reserve(b, (size_t) n))
                return;
        vsnprintf(b->data + b->len, (size_t) n + 1, fmt, ap);
        b->len += (size_t) n;
}

void strbuf_printf(strbuf *b, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        strbuf_vprintf(b, fmt, ap);
        va_end(ap);
}

/* Length of the valid UTF-8 sequence at p (c = p[0] >= 0x80), or 0. */
static size_t utf8_valid(const unsigned char *p, size_t left) {
        unsigned char c = p[0];
        size_t len;
        unsigned char lo = 0x80, hi = 0xbf; /* range of the second byte */

        if (c >= 0xc2 && c <= 0xdf)
                len = 2;
        else if (c >= 0xe0 && c <= 0xef) {
                len = 3;
                if (c == 0xe0)
                        lo = 0xa0;      /* overlong */
                else if (c == 0xed)
                        hi = 0x9f;      /* surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
                len = 4;
                if (c == 0xf0)
                        lo = 0x90;
                else if (c == 0xf4)
                        hi = 0x8f;      /* beyond U+10FFFF */
        } else
                return 0;
        if (left < len || p[1] < lo || p[1] > hi)
                return 0;
        for (size_t k = 2; k < len; k++)
                if ((p[k] & 0xc0) != 0x80)
                        return 0;
        return len;
}

/* JSON text must be UTF-8: an invalid byte (a database row written by
 * anything) becomes U+FFFD instead of making the whole reply invalid. */
void strbuf_json_stringn(strbuf *b, const char *s, size_t n) {
        static const char hex[] = "0123456789abcdef";

        strbuf_putc(b, '"');
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];
                if (c >= 0x80) {
                        size_t k = utf8_valid((const unsigned char *) s + i, n - i);
                        if (k == 0)
                                strbuf_append(b, "\\ufffd", 6);
                        else {
                                strbuf_append(b, s + i, k);
                                i += k - 1;
                        }
                        continue;
                }
                switch (c) {
                case '"':  strbuf_append(b, "\\\"", 2); break;
                case '\\': strbuf_append(b, "\\\\", 2); break;
                case '\n': strbuf_append(b, "\\n", 2); break;
                case '\r': strbuf_append(b, "\\r", 2); break;
                case '\t': strbuf_append(b, "\\t", 2); break;
                default:
                        if (c < 0x20) {
                                char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
                                strbuf_append(b, u, 6);
                        } else
                                strbuf_putc(b, (char) c);
                }
        }
        strbuf_putc(b, '"');
}

void strbuf_json_string(strbuf *b, const char *s) {
        if (!s) {
                strbuf_puts(b, "null");
                return;
        }
        strbuf_json_stringn(b, s, strlen(s));
}

void strbuf_consume(strbuf *b, size_t n) {
        if (n >= b->len) {
                strbuf_reset(b);
                return;
        }
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
        b->data[b->len] = 0;
}

char *strbuf_steal(strbuf *b) {
        char *p = b->data;
        if (!p)
                p = strdup("");
        *b = (strbuf) STRBUF_INIT;
        return p;
}
