/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A token-window rate limiter: at most `burst` events per `interval`.
 * Thread-safe. When a window opens after suppressed events, the caller is
 * told how many were suppressed so it can log one summary line.
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
