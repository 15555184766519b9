/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The ban-history index: for each ban target ("192.0.2.7",
 * "2001:db8::/64", or a non-address scope's value), when its bans were
 * made, so that routing can answer CrowdSec's GetDecisionsCount(value) and
 * GetDecisionsSinceCount(value, "24h") from memory, never from a database
 * query on the event loop.
 *
 * DESIGN
 *   - Records are (target, created, until). Two records of one target with
 *     the same `until` are one ban seen twice (this daemon's own routing
 *     records a ban at once, and the ban database's change log brings the
 *     same ban back a few seconds later): the second is ignored.
 *   - Bounded: at most `cap` records. At the cap the oldest record (in the
 *     order records arrived, which is creation order but for the load at
 *     start) is forgotten, so a count can only come out low, never high,
 *     and only for targets whose bans are older than everything else kept.
 *   - One mutex. Writers: the bansync thread and the main thread (own
 *     bans); reader: the main thread (routing). Every operation is a hash
 *     look-up and a short array walk under the lock: routing never waits
 *     for a database.
 *   - lookups/hits count GetDecisions* queries and those that found the
 *     target (metrics: the hit rate).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "timeutil.h"

typedef struct banhist banhist;

#define BANHIST_DEFAULT_CAP 1000000

banhist *banhist_new(size_t cap);
banhist *banhist_free(banhist *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(banhist *, banhist_free);

/* Record a ban of `target` made at `created`, ending at `until`. Returns 1
 * when recorded, 0 when it was already known (same target and until),
 * -ENOMEM. */
int banhist_record(banhist *h, const char *target, usec_t created, usec_t until);

/* Forget everything (a resync from the ban database's start follows). */
void banhist_clear(banhist *h);

/* The number of bans of `target` created at or after `since` (0: all).
 * Never fails; counts the look-up. Matches expr_history_fn's shape. */
int banhist_count(void *h, const char *value, int64_t since, uint64_t *count);

typedef struct banhist_stats {
        size_t records;      /* kept now */
        size_t targets;
        size_t cap;
        uint64_t evicted;    /* forgotten at the cap */
        uint64_t lookups;    /* GetDecisions* queries */
        uint64_t hits;       /* ... that found the target */
} banhist_stats;

void banhist_get_stats(banhist *h, banhist_stats *ret);
