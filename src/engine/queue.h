/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A bounded multi-producer/single-consumer queue of pointers.
 *
 * DESIGN
 *   - One mutex protects the ring, the flags and the counters; one condition
 *     variable wakes the consumer. Producers never wait: a full queue is
 *     reported (-EAGAIN) and the producer applies its own policy (block the
 *     client, drop the oldest, drop the newest). This keeps the daemon's
 *     event loop non-blocking.
 *   - Ownership of an item moves into the queue when push succeeds and out
 *     of it with pop or eviction; whatever is left at queue_deinit() is
 *     handed to the free callback.
 *   - Order: FIFO. An evicted item is always the oldest one.
 *   - When a push fails for lack of space, the queue remembers that someone
 *     waits for space and calls on_space() (outside the lock, from the
 *     consumer's thread) as soon as a pop makes room. on_space must be cheap
 *     and thread-safe (the daemon writes to an eventfd).
 *   - queue_kick() wakes the consumer without an item (for side work such as
 *     administrative jobs or stopping).
 */

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "timeutil.h"

typedef struct spw_queue {
        pthread_mutex_t lock;
        pthread_cond_t wake;
        void **ring;
        size_t capacity;
        size_t head;          /* index of the oldest item */
        size_t count;
        size_t high_water;    /* highest count seen */
        bool kicked;
        bool unsignalled;     /* items pushed since the consumer was last woken */
        bool urgent;          /* an urgent item was pushed since the consumer was last woken */
        size_t lazy_below;    /* the waiting consumer wants no wake-up below this count (0: any) */
        bool space_wanted;
        void (*on_space)(void *userdata);
        void *userdata;
} spw_queue;

int queue_init(spw_queue *q, size_t capacity, void (*on_space)(void *), void *userdata);
void queue_deinit(spw_queue *q, void (*free_item)(void *));

/* 0, or -EAGAIN when full (and on_space will be called once room appears).
 * The consumer is not woken: call queue_wake() once after a burst of pushes,
 * so a burst costs one wake-up instead of one per item. */
int queue_push(spw_queue *q, void *item);
/* The same; a non-urgent item does not end a lazy wait (queue_pop_lazy). */
int queue_push_urgent(spw_queue *q, void *item, bool urgent);
/* Wake the consumer if items are waiting (and, if it waits lazily, if an
 * urgent one or enough of them are). */
void queue_wake(spw_queue *q);
/* True if a push would succeed now; if not, arm on_space like a failed push. */
bool queue_room_or_arm(spw_queue *q);
/* Always succeeds: when full, the oldest item is removed and returned in
 * *evicted (else *evicted = NULL). */
void queue_push_evict(spw_queue *q, void *item, void **evicted);

/* Take up to max items. Waits until an item arrives, queue_kick() is called,
 * or the monotonic deadline passes (deadline <= now: do not wait; USEC_INFINITY:
 * no deadline). Returns the number of items taken. */
#define USEC_INFINITY INT64_MAX
size_t queue_pop(spw_queue *q, void **items, size_t max, usec_t deadline);
/* The same, but while waiting, queue_wake() wakes the consumer only once
 * lazy_below items, or an urgent one, are waiting: a consumer that waits
 * for company anyway until the deadline is not woken once per item. */
size_t queue_pop_lazy(spw_queue *q, void **items, size_t max, usec_t deadline, size_t lazy_below);
void queue_kick(spw_queue *q);

size_t queue_count(spw_queue *q);
size_t queue_high_water(spw_queue *q, bool reset);
