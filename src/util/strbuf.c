/* SPDX-License-Identifier: MIT */
/*
 * strbuf: a growable NUL-terminated buffer with a sticky out-of-memory flag.
 * Invariant: data is NULL or holds len bytes plus a NUL, len < cap. libc
 * only: the daemon and every plugin (the webhook builds its payloads with
 * it) link the same code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"
#include "utf8.h"

void strbuf_deinit(strbuf *b) {
        free(b->data);
        *b = (strbuf) STRBUF_INIT;
}

void strbuf_reset(strbuf *b) {
        b->len = 0;
        b->oom = false;
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

void strbuf_put_uint(strbuf *b, unsigned long long v) {
        char d[20];
        size_t n = 0;

        do
                d[sizeof d - ++n] = (char) ('0' + v % 10);
        while ((v /= 10) > 0);
        strbuf_append(b, d + sizeof d - n, n);
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

void strbuf_json_escape(strbuf *b, const char *s, size_t n) {
        static const char hex[] = "0123456789abcdef";
        const unsigned char *p = (const unsigned char *) s;

        for (size_t i = 0; i < n;) {
                unsigned char c = p[i];
                size_t l;

                switch (c) {
                case '"':  strbuf_append(b, "\\\"", 2); i++; continue;
                case '\\': strbuf_append(b, "\\\\", 2); i++; continue;
                case '\n': strbuf_append(b, "\\n", 2); i++; continue;
                case '\r': strbuf_append(b, "\\r", 2); i++; continue;
                case '\t': strbuf_append(b, "\\t", 2); i++; continue;
                default:
                        break;
                }
                if (c < 0x20) {
                        char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
                        strbuf_append(b, u, 6);
                        i++;
                        continue;
                }
                l = utf8_char_len(p + i, n - i);
                if (l == 0) {
                        strbuf_append(b, "\\ufffd", 6);
                        i++;
                        continue;
                }
                strbuf_append(b, p + i, l);
                i += l;
        }
}

void strbuf_json_stringn(strbuf *b, const char *s, size_t n) {
        strbuf_putc(b, '"');
        strbuf_json_escape(b, s, n);
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
                b->len = 0; /* the oom flag stays */
                if (b->data)
                        b->data[0] = 0;
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
