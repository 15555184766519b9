/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A token-window rate limiter: at most `burst` events per `interval`.
 * Thread-safe. When a window opens after suppressed events, the caller is
 * told how many were suppressed so it can log one summary line. A burst
 * that ends is summed up too: ratelimit_summary_due() says when its window
 * closes, and ratelimit_take_summary() then hands the count over once, so
 * the caller can log the final "N more" line without waiting for an event
 * that may never come.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "timeutil.h"

typedef struct ratelimit {
        pthread_mutex_t lock;
        usec_t interval;
        unsigned burst;
        usec_t begin;
        unsigned num;
        uint64_t suppressed;
} ratelimit;

#define RATELIMIT_INIT(i, b) { .lock = PTHREAD_MUTEX_INITIALIZER, .interval = (i), .burst = (b) }

/* True when the event may be reported. If *suppressed_before is given it is
 * set to the number of events dropped since the last allowed one (only
 * non-zero on the first allowed event of a new window). */
bool ratelimit_below(ratelimit *rl, uint64_t *suppressed_before);

/* When the events suppressed so far may be summed up (the end of their
 * window, monotonic), or INT64_MAX when none were. */
usec_t ratelimit_summary_due(ratelimit *rl);

/* The number of events suppressed, once their window has closed (or at
 * once with `now_anyway`, at exit), and 0 otherwise; the count is handed
 * over only once (a later ratelimit_below() does not report it again). */
uint64_t ratelimit_take_summary(ratelimit *rl, bool now_anyway);
