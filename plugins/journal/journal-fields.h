/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The journal fields of one signal, as "NAME=value" strings. Kept apart
 * from the sending so the unit test can check them without a journal.
 */

#include <spillway/backend.h>

#define JOURNAL_MAX_FIELDS 24
#define JOURNAL_FIELD_MAX 1024

typedef struct journal_entry {
        char field[JOURNAL_MAX_FIELDS][JOURNAL_FIELD_MAX];
} journal_entry;

/* Returns the number of fields filled. */
int journal_fields_build(journal_entry *e, const spw_signal *sig, const char *backend, const char *identifier, int priority);
