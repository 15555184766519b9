/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The error convention, for every function in this tree:
 *
 *   - A function that can fail returns int: 0 on success, a negative errno
 *     value (-ENOMEM, -EINVAL, ...) on failure. The value is propagated
 *     unchanged by callers that cannot handle it.
 *   - A positive return is only used where the function's comment documents
 *     it (e.g. "returns 1 if found, 0 if not").
 *   - libc's -1/errno convention is converted at the boundary with
 *     negative_errno(), right after the failing call.
 *   - Library and engine code do not log errors they return; they may fill a
 *     caller-provided struct spw_error with a human sentence (where + what).
 *     The program's top level logs once, with context.
 */

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>

#include "macro.h"

/* errno as a negative value; never 0, even if errno was clobbered. */
static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}

/* A human-readable error description for config and input errors. Filled
 * by the parsers with "file:line:column: what went wrong". */
typedef struct spw_error {
        char msg[512];
} spw_error;

int spw_error_set(spw_error *e, int r, const char *fmt, ...) _printf_(3, 4);
int spw_error_setv(spw_error *e, int r, const char *fmt, va_list ap) _printf_(3, 0);
/* Prefix the existing message with "prefix: " (keeps the original). */
void spw_error_prefix(spw_error *e, const char *fmt, ...) _printf_(2, 3);
