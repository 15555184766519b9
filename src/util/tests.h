/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Assertions for test programs. They survive NDEBUG, print the expression,
 * file and line, and abort so the test fails under any build type.
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(expr)                                                                             \
        do {                                                                                    \
                if (!(expr)) {                                                                  \
                        fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr); \
                        abort();                                                                \
                }                                                                               \
        } while (0)

#define CHECK_OK(expr)                                                                          \
        do {                                                                                    \
                long long _r = (long long) (expr);                                              \
                if (_r < 0) {                                                                   \
                        fprintf(stderr, "%s:%d: %s returned %lld (%s)\n", __FILE__, __LINE__,   \
                                #expr, _r, strerror((int) -_r));                                \
                        abort();                                                                \
                }                                                                               \
        } while (0)

#define CHECK_EQ(a, b)                                                                          \
        do {                                                                                    \
                long long _a = (long long) (a), _b = (long long) (b);                           \
                if (_a != _b) {                                                                 \
                        fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__,     \
                                __LINE__, #a, #b, _a, _b);                                      \
                        abort();                                                                \
                }                                                                               \
        } while (0)

#define CHECK_STREQ(a, b)                                                                       \
        do {                                                                                    \
                const char *_a = (a), *_b = (b);                                                \
                if (!_a || !_b || strcmp(_a, _b) != 0) {                                        \
                        fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, \
                                __LINE__, #a, #b, _a ? _a : "(null)", _b ? _b : "(null)");      \
                        abort();                                                                \
                }                                                                               \
        } while (0)

/* The string contains the substring. */
#define CHECK_CONTAINS(s, sub)                                                                  \
        do {                                                                                    \
                const char *_s = (s), *_sub = (sub);                                            \
                if (!_s || !strstr(_s, _sub)) {                                                 \
                        fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n", __FILE__,    \
                                __LINE__, _s ? _s : "(null)", _sub);                            \
                        abort();                                                                \
                }                                                                               \
        } while (0)
