/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The webhook's own small helpers. The generic ones are not here: the
 * growable buffer (strbuf), UTF-8 checks, durations and RFC 3339 come from
 * src/util's libc-only library (libspw_libc), linked statically into the
 * plugin with hidden symbols, so the webhook formats and parses times with
 * the same code as the daemon without depending on daemon symbols.
 * Booleans and integers come from plugins/common. Same error convention as
 * the rest of the tree: 0 or a negative errno.
 */

#include <stddef.h>

#include "macro.h"
#include "strbuf.h"
#include "timeutil.h"
#include "utf8.h"

/* Go's url.QueryEscape: unreserved bytes kept, space as '+', rest %XX. */
void wh_query_escape(strbuf *b, const char *s, size_t n);
/* Up to max bytes of s, printable ASCII only (others as '.', runs of
 * whitespace as one space), with "..." when cut. For error messages. */
void wh_sanitized(strbuf *b, const char *s, size_t n, size_t max);
