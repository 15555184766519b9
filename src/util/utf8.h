/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * UTF-8 validation (RFC 3629: no overlong forms, no surrogates, nothing
 * beyond U+10FFFF). libc only: shared with the plugins.
 */

#include <stdbool.h>
#include <stddef.h>

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if invalid (n > 0). */
size_t utf8_char_len(const unsigned char *s, size_t n);
bool utf8_valid(const char *s, size_t n);
