/* SPDX-License-Identifier: MIT */
/*
 * Generic helpers private to the webhook plugin (see whutil.h for why they
 * are not shared with the daemon). Nothing here knows about HTTP, templates
 * or signals. Invariant of wbuf: data is NULL or holds len bytes plus a NUL,
 * and len < cap.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "spwp-time.h"
#include "whutil.h"

/* ------------------------------------------------------------------ wbuf */

void wbuf_deinit(wbuf *b) {
        free(b->data);
        *b = (wbuf) { 0 };
}

void wbuf_reset(wbuf *b) {
        b->len = 0;
        b->oom = false;
        if (b->data)
                b->data[0] = 0;
}

bool wbuf_reserve(wbuf *b, size_t extra) {
        size_t need, cap;
        char *p;

        if (b->oom)
                return false;
        if (extra > SIZE_MAX / 2 - b->len - 1) {
                b->oom = true;
                return false;
        }
        need = b->len + extra + 1;
        if (need <= b->cap)
                return true;
        cap = b->cap ? b->cap : 256;
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

void wbuf_append(wbuf *b, const void *p, size_t n) {
        if (!wbuf_reserve(b, n))
                return;
        if (n)
                memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = 0;
}

void wbuf_puts(wbuf *b, const char *s) {
        wbuf_append(b, s, strlen(s));
}

void wbuf_putc(wbuf *b, char c) {
        wbuf_append(b, &c, 1);
}

void wbuf_printf(wbuf *b, const char *fmt, ...) {
        va_list ap, aq;
        int n;

        va_start(ap, fmt);
        va_copy(aq, ap);
        n = vsnprintf(NULL, 0, fmt, aq);
        va_end(aq);
        if (n >= 0 && wbuf_reserve(b, (size_t) n)) {
                vsnprintf(b->data + b->len, (size_t) n + 1, fmt, ap);
                b->len += (size_t) n;
        }
        va_end(ap);
}

size_t wh_utf8_char_len(const unsigned char *s, size_t n) {
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
        if ((l == 3 && cp < 0x800) || (l == 4 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return l;
}

bool wh_utf8_valid(const char *s, size_t n) {
        const unsigned char *p = (const unsigned char *) s;
        for (size_t i = 0; i < n;) {
                size_t l = wh_utf8_char_len(p + i, n - i);
                if (l == 0)
                        return false;
                i += l;
        }
        return true;
}

void wbuf_json_escape(wbuf *b, const char *s, size_t n) {
        static const char hex[] = "0123456789abcdef";
        const unsigned char *p = (const unsigned char *) s;

        for (size_t i = 0; i < n;) {
                unsigned char c = p[i];
                size_t l;

                switch (c) {
                case '"':  wbuf_append(b, "\\\"", 2); i++; continue;
                case '\\': wbuf_append(b, "\\\\", 2); i++; continue;
                case '\n': wbuf_append(b, "\\n", 2); i++; continue;
                case '\r': wbuf_append(b, "\\r", 2); i++; continue;
                case '\t': wbuf_append(b, "\\t", 2); i++; continue;
                default:
                        break;
                }
                if (c < 0x20) {
                        char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
                        wbuf_append(b, u, 6);
                        i++;
                        continue;
                }
                l = wh_utf8_char_len(p + i, n - i);
                if (l == 0) {
                        wbuf_append(b, "\\ufffd", 6);
                        i++;
                        continue;
                }
                wbuf_append(b, p + i, l);
                i += l;
        }
}

void wbuf_query_escape(wbuf *b, const char *s, size_t n) {
        static const char hex[] = "0123456789ABCDEF";
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];
                if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
                        wbuf_putc(b, (char) c);
                else if (c == ' ')
                        wbuf_putc(b, '+');
                else {
                        char e[3] = { '%', hex[c >> 4], hex[c & 15] };
                        wbuf_append(b, e, 3);
                }
        }
}

void wbuf_sanitized(wbuf *b, const char *s, size_t n, size_t max) {
        bool space = false;
        size_t out = 0;

        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];
                if (out >= max) {
                        wbuf_puts(b, "...");
                        return;
                }
                if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
                        if (!space && out > 0) {
                                wbuf_putc(b, ' ');
                                out++;
                        }
                        space = true;
                        continue;
                }
                space = false;
                wbuf_putc(b, c >= 0x21 && c < 0x7f ? (char) c : '.');
                out++;
        }
}

/* --------------------------------------------------------------- parsing */

int wh_parse_duration(const char *s, int64_t *ret_usec) {
        static const struct {
                const char *suffix;
                double usec;
        } units[] = {
                { "ns", 0.001 }, { "us", 1 }, { "\xc2\xb5s", 1 }, { "\xce\xbcs", 1 },
                { "ms", 1000 }, { "s", 1e6 }, { "m", 60e6 }, { "h", 3600e6 }, { "d", 86400e6 },
        };
        const char *p = s;
        double total = 0;

        if (!s || !*s)
                return -EINVAL;
        if (*p == '+')
                p++;
        if (strcmp(p, "0") == 0) {
                *ret_usec = 0;
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
                if (end == p || errno || *end == 0 || !isfinite(v))
                        return -EINVAL; /* a number needs a unit */
                p = end;
                /* longest suffix wins so "ms" is not read as "m" */
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
        *ret_usec = (int64_t) llround(total);
        return 0;
}

/* ---------------------------------------------------------------- format */

char *wh_format_rfc3339(char *buf, size_t size, int64_t t) {
        spwp_tm tm;
        int64_t frac;
        int n;

        spwp_time_split(t, &tm);
        n = snprintf(buf, size, "%04lld-%02u-%02uT%02u:%02u:%02u", (long long) tm.year, tm.month, tm.day,
                     tm.hour, tm.minute, tm.second);
        if (n < 0 || (size_t) n >= size)
                return buf;
        frac = tm.usec;
        if (frac) {
                int digits = 6;
                while (frac % 10 == 0) {
                        frac /= 10;
                        digits--;
                }
                snprintf(buf + n, size - (size_t) n, ".%0*lldZ", digits, (long long) frac);
        } else
                snprintf(buf + n, size - (size_t) n, "Z");
        return buf;
}

char *wh_format_duration(char *buf, size_t size, int64_t d) {
        static const struct {
                const char *u;
                int64_t v;
        } parts[] = {
                { "h", INT64_C(3600000000) }, { "m", INT64_C(60000000) }, { "s", 1000000 },
                { "ms", 1000 }, { "us", 1 },
        };
        size_t n = 0;

        if (size == 0)
                return buf;
        buf[0] = 0;
        if (d <= 0) {
                snprintf(buf, size, "0s");
                return buf;
        }
        for (size_t i = 0; i < ELEMENTSOF(parts) && d > 0 && n < size; i++)
                if (d >= parts[i].v) {
                        n += (size_t) snprintf(buf + n, size - n, "%lld%s",
                                               (long long) (d / parts[i].v), parts[i].u);
                        d %= parts[i].v;
                }
        return buf;
}
