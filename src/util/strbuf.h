/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A growable byte buffer, always NUL-terminated. Appends that cannot grow
 * the buffer set a sticky `oom` flag instead of failing one by one: check it
 * (or strbuf_error()) once at the end.
 */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

typedef struct strbuf {
        char *data;
        size_t len;
        size_t cap;
        bool oom;
} strbuf;

#define STRBUF_INIT { 0 }

void strbuf_deinit(strbuf *b);
/* Empty the buffer (its memory is kept) and clear the oom flag. */
void strbuf_reset(strbuf *b);
bool strbuf_reserve(strbuf *b, size_t extra);
void strbuf_append(strbuf *b, const void *p, size_t n);
void strbuf_puts(strbuf *b, const char *s);
void strbuf_putc(strbuf *b, char c);
void strbuf_printf(strbuf *b, const char *fmt, ...) _printf_(2, 3);
/* The decimal digits of v (no printf: replies on the hot path). */
void strbuf_put_uint(strbuf *b, unsigned long long v);
void strbuf_vprintf(strbuf *b, const char *fmt, va_list ap) _printf_(2, 0);
/* Append s[0..n) escaped for the inside of a JSON string (no quotes).
 * Invalid UTF-8 becomes U+FFFD, so the result is always valid JSON. */
void strbuf_json_escape(strbuf *b, const char *s, size_t n);
/* Append s as a JSON string literal, quotes included (escaped as above). */
void strbuf_json_string(strbuf *b, const char *s);
void strbuf_json_stringn(strbuf *b, const char *s, size_t n);
/* Drop the first n bytes (the oom flag stays). */
void strbuf_consume(strbuf *b, size_t n);
/* The contents as a C string ("" when empty). */
static inline const char *strbuf_str(const strbuf *b) {
        return b->data ? b->data : "";
}
/* Return the data and leave the buffer empty (caller frees). */
char *strbuf_steal(strbuf *b);
static inline int strbuf_error(const strbuf *b) {
        return b->oom ? -12 /* -ENOMEM */ : 0;
}
