/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Regular expressions for the filter language's `matches`: the syntax that
 * POSIX ERE and Go's RE2 (CrowdSec's regexp) share, plus RE2's \d \w \s \b
 * escapes, matched byte by byte as an unanchored search by a Thompson NFA
 * simulation. Matching is linear in the subject (time O(subject x pattern))
 * and allocates nothing: every array is sized when the pattern is compiled.
 * README.md in this folder has the syntax table.
 *
 * A compiled pattern owns its thread lists, so it is matched by one thread
 * at a time (as the expressions that hold them).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

typedef struct rx rx;

/* Limits: they keep compile and match costs small on any input. */
#define RX_MAX_PATTERN 4096  /* bytes of pattern */
#define RX_MAX_PROGRAM 10000 /* instructions after expanding {m,n} */
#define RX_MAX_NESTING 32    /* nested groups */
#define RX_MAX_REPEAT 1000   /* largest count in {m,n} (as Go) */
/* Thread steps one search may take (about 8 ns each, measured); beyond it
 * the search gives up with -E2BIG instead of stalling the caller for more
 * than ~70 ms. A 100-state pattern gets there on an 80 KiB subject, a
 * 10-state one on 800 KiB. */
#define RX_MAX_WORK (UINT64_C(1) << 23)
/* Steps all the regex searches of one signal's routing may take together
 * (router_route): the same ~70 ms, however many profiles. */
#define ROUTE_MAX_WORK RX_MAX_WORK

/* Compile `len` bytes. On error returns -EINVAL (or -ENOMEM) and writes a
 * message (without position) to `msg` and the byte offset of the problem in
 * the pattern to *offset. */
int rx_compile(const char *pattern, size_t len, rx **ret, char *msg, size_t msg_size, size_t *offset);
rx *rx_free(rx *re);
DEFINE_TRIVIAL_CLEANUP_FUNC(rx *, rx_free);

/* Does the pattern match anywhere in s[0..len)? 1 yes, 0 no, -E2BIG when
 * the search would take more than RX_MAX_WORK steps. */
int rx_search(rx *re, const char *s, size_t len);

/* A budget of steps shared by every search until rx_budget_end() on this
 * thread: a signal's routing across all profiles (route.c). Once it is
 * spent, searches fail with -E2BIG at once. */
void rx_budget_begin(uint64_t steps);
void rx_budget_end(void);
bool rx_budget_exhausted(void);

/* Instructions in the compiled program (for tests). */
size_t rx_program_size(const rx *re);
