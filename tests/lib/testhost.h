/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A host for driving a backend plugin directly from a unit test: the
 * struct spw_host services with a clock the test sets, timers the test runs,
 * and log lines and errors collected for assertions. Not thread-safe: one
 * test thread plays the worker.
 */

#include <spillway/backend.h>

typedef struct testhost testhost;

/* config is copied and sorted by key, like the daemon does. */
testhost *testhost_new(const char *instance_name, const spw_kv *config, size_t n_config);
void testhost_free(testhost *t);

const struct spw_host *testhost_host(testhost *t);
spw_ctx *testhost_ctx(testhost *t);
const spw_kv *testhost_config(testhost *t, size_t *n);

void testhost_set_time(testhost *t, spw_usec_t now);
spw_usec_t testhost_time(testhost *t);
void testhost_set_state_directory(testhost *t, const char *dir);

/* Run every timer whose next run is due at the current test time; returns
 * how many ran. */
int testhost_run_timers(testhost *t);
size_t testhost_n_timers(testhost *t);

/* The last set_error() text, or "" */
const char *testhost_last_error(testhost *t);
/* Every log line so far, "PRIORITY message\n" each. */
const char *testhost_log(testhost *t);
void testhost_clear_log(testhost *t);

/* The last retry_after() delay (then reset to 0). */
spw_usec_t testhost_retry_after(testhost *t);
/* A set_status() value, or NULL. */
const char *testhost_status(testhost *t, const char *key);

/* Convenience: init the plugin with this host and its config. */
int testhost_init(testhost *t, const struct spw_backend *b, void **selfp);
