/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Signals waiting for room in a full "block" queue ("parked"), with their
 * deadlines, on one sd-event timer. Knows nothing of signals or engines:
 * the owner of the park says, through two callbacks, how to retry an item
 * and what to do when its deadline passes.
 *
 * DESIGN
 *   - Main thread only. Items are embedded in the caller's objects
 *     (container_of); the park never allocates or frees them.
 *   - The timer is always armed at the earliest deadline of all items, so
 *     a later item with a long block_timeout never delays an earlier one
 *     with a short block_timeout.
 *   - Order is kept per owner (a connection), not globally: a retry pass
 *     offers room to every item in arrival order, but skips an item while an
 *     earlier item of the same owner still waits. An item waiting on one
 *     full backend therefore never holds up items waiting on another.
 */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "timeutil.h"

typedef struct park park;

typedef struct park_item {
        struct park_item *prev, *next;
        usec_t deadline;              /* monotonic */
        uint64_t owner;               /* order is kept among the items of one owner */
        bool parked;
} park_item;

/* Try the item again. Return 0 when it no longer waits (the callback has
 * dealt with it; the park forgets it first), or -EAGAIN when it still waits;
 * the callback may then lower *deadline. */
typedef int (*park_retry_fn)(park_item *it, usec_t *deadline, void *userdata);
/* The item's deadline passed (or the park is emptied): it no longer waits. */
typedef void (*park_expire_fn)(park_item *it, void *userdata);
/* After the timer expired a batch of items (e.g. to write the replies). */
typedef void (*park_after_fn)(void *userdata);

int park_new(sd_event *event, park_retry_fn retry, park_expire_fn expire, park_after_fn after, void *userdata, park **ret);
/* Items still parked are forgotten, not expired. */
park *park_free(park *p);

void park_add(park *p, park_item *it, usec_t deadline, uint64_t owner);
void park_remove(park *p, park_item *it);   /* no-op if not parked */

/* Offer room to the waiting items (a queue reported space). */
void park_retry(park *p);
/* Expire every item whose deadline is <= now. */
void park_expire(park *p, usec_t now);
/* Expire every item (stopping). */
void park_expire_all(park *p);

size_t park_count(const park *p);
/* Walk the items in arrival order (the callback must not add or remove). */
void park_foreach(park *p, void (*fn)(park_item *it, void *userdata), void *userdata);
/* The earliest deadline, or INT64_MAX when empty. */
usec_t park_next_deadline(const park *p);
