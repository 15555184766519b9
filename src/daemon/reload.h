/* SPDX-License-Identifier: MIT */
#pragma once

/* Reload off the event loop (see reload.c). */

#include <stdbool.h>

typedef struct daemon daemon_t;
typedef struct reload_job reload_job;
typedef struct reload_waiter reload_waiter;

/* The outcome of a reload: r < 0 and error on failure. */
typedef void (*reload_done_fn)(daemon_t *d, int r, const char *error, void *userdata);

/* Start a reload (or join the next one when one is being prepared); fn
 * (may be NULL) gets the outcome, possibly before this returns. */
void daemon_reload(daemon_t *d, reload_done_fn fn, void *userdata);
bool daemon_reloading(daemon_t *d);
