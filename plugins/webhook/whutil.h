/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The few generic helpers the webhook plugin needs. Plugins never link the
 * daemon's util library (a plugin must load into any daemon of the same ABI
 * major, so it may not depend on daemon symbols), so these are the plugin's
 * own small copies: a growable buffer, Go-style durations, RFC 3339
 * formatting and UTF-8 checks. Booleans, integers and the calendar come from
 * the plugins' shared library (plugins/common). Same error convention as the
 * rest of the tree: 0 or a negative errno.
 */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))
#define WH_MIN(a, b) ((a) < (b) ? (a) : (b))

static inline void wh_freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(wh_freep)

/* Take ownership out of a _cleanup_ variable. */
#define TAKE_PTR(p)                             \
        ({                                      \
                __typeof__(p) _p_ = (p);        \
                (p) = NULL;                     \
                _p_;                            \
        })

/* A growable byte buffer, always NUL-terminated once anything was appended.
 * Appends that cannot grow it set the sticky `oom` flag: check it once at
 * the end (wbuf_error()). */
typedef struct wbuf {
        char *data;
        size_t len;
        size_t cap;
        bool oom;
} wbuf;

void wbuf_deinit(wbuf *b);
void wbuf_reset(wbuf *b);
bool wbuf_reserve(wbuf *b, size_t extra);
void wbuf_append(wbuf *b, const void *p, size_t n);
void wbuf_puts(wbuf *b, const char *s);
void wbuf_putc(wbuf *b, char c);
void wbuf_printf(wbuf *b, const char *fmt, ...) _printf_(2, 3);
/* The bytes s[0..n) escaped for the inside of a JSON string literal (no
 * quotes added). Invalid UTF-8 becomes U+FFFD so the result is always
 * valid JSON. */
void wbuf_json_escape(wbuf *b, const char *s, size_t n);
/* Go's url.QueryEscape: unreserved bytes kept, space as '+', rest %XX. */
void wbuf_query_escape(wbuf *b, const char *s, size_t n);
/* Up to max bytes of s, printable ASCII only (others as '.', runs of
 * whitespace as one space), with "..." when cut. For error messages. */
void wbuf_sanitized(wbuf *b, const char *s, size_t n, size_t max);
static inline int wbuf_error(const wbuf *b) {
        return b->oom ? -12 /* -ENOMEM */ : 0;
}
/* The contents as a C string ("" when empty). */
static inline const char *wbuf_str(const wbuf *b) {
        return b->data ? b->data : "";
}

/* Durations in Go's time.ParseDuration syntax ("10s", "1m30s", "250ms"), plus
 * "d" for days and a bare "0". Negative durations are refused. Microseconds.
 * Returns 0, -EINVAL or -ERANGE. Not spwp_parse_duration(): this one also
 * takes a leading '+' and strtod()'s numbers ("1e3ms") and rounds to the
 * nearest microsecond, and webhook configurations rely on what it takes. */
int wh_parse_duration(const char *s, int64_t *ret_usec);

/* RFC 3339 in UTC with "Z", fraction only when non-zero (trailing zeros
 * dropped, as Go's RFC3339Nano). buf holds at least WH_RFC3339_MAX bytes. */
#define WH_RFC3339_MAX 40
char *wh_format_rfc3339(char *buf, size_t size, int64_t usec);
/* "4h", "1m30s", "250ms". buf holds at least 64 bytes. */
char *wh_format_duration(char *buf, size_t size, int64_t usec);

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if invalid. */
size_t wh_utf8_char_len(const unsigned char *s, size_t n);
bool wh_utf8_valid(const char *s, size_t n);
