/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* Edit distance (insert/delete/substitute), capped at 255. */
unsigned str_distance(const char *a, const char *b);
/* The candidate closest to `word`, if close enough to be a likely typo. */
const char *str_closest(const char *word, const char *const *candidates, size_t n);

/* Expand ${VAR} (environment) and ${CREDENTIAL:name} (a file in
 * $CREDENTIALS_DIRECTORY, trailing newline stripped) in s. "$$" is a literal
 * '$'. An unset variable or missing credential is an error naming it.
 * Returns 0 and a malloc'd string, or a negative errno with err filled. */
int str_expand_vars(const char *s, char **ret, spw_error *err);

/* Flags for str_expand_vars_full(). */
enum {
        /* Without $CREDENTIALS_DIRECTORY, expand ${CREDENTIAL:name} to
         * "<credential name>" instead of failing (configuration checks run
         * outside the service); *n_skipped counts them. */
        STR_EXPAND_CREDENTIAL_PLACEHOLDERS = 1 << 0,
};
int str_expand_vars_full(const char *s, unsigned flags, unsigned *n_skipped, char **ret, spw_error *err);

/* Read a whole file (at most max bytes) into a NUL-terminated malloc'd
 * buffer; err says "PATH: what" on failure. A regular file larger than max
 * is refused (-EFBIG) from its size, before anything is read. */
int read_full_file(const char *path, size_t max, char **ret, size_t *ret_len, spw_error *err);

bool str_is_identifier(const char *s);
/* The value of one hexadecimal digit, or -1. */
static inline int unhexchar(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}
/* Parse a non-negative integer that fits in [min, max]. */
int str_to_u64(const char *s, unsigned long long min, unsigned long long max, unsigned long long *ret);
int str_to_bool(const char *s, bool *ret);
