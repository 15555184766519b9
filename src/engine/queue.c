/* SPDX-License-Identifier: MIT */
/*
 * The bounded queue (see the DESIGN comment in queue.h). The ring stores
 * pointers only, so a push or pop is a few loads and stores under one lock;
 * batch pops amortise the lock and the wake-up over many items.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "queue.h"

int queue_init(spw_queue *q, size_t capacity, void (*on_space)(void *), void *userdata) {
        pthread_condattr_t attr;

        if (capacity == 0)
                return -EINVAL;
        *q = (spw_queue) { .capacity = capacity, .on_space = on_space, .userdata = userdata };
        q->ring = calloc(capacity, sizeof *q->ring);
        if (!q->ring)
                return -ENOMEM;
        pthread_mutex_init(&q->lock, NULL);
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&q->wake, &attr);
        pthread_condattr_destroy(&attr);
        return 0;
}

void queue_deinit(spw_queue *q, void (*free_item)(void *)) {
        if (!q->ring)
                return;
        for (size_t i = 0; i < q->count; i++) {
                void *item = q->ring[(q->head + i) % q->capacity];
                if (free_item)
                        free_item(item);
        }
        free(q->ring);
        q->ring = NULL;
        pthread_mutex_destroy(&q->lock);
        pthread_cond_destroy(&q->wake);
}

static void push_locked(spw_queue *q, void *item, bool urgent) {
        q->ring[(q->head + q->count) % q->capacity] = item;
        q->count++;
        if (q->count > q->high_water)
                q->high_water = q->count;
        q->unsignalled = true;
        if (urgent)
                q->urgent = true;
}

void queue_wake(spw_queue *q) {
        pthread_mutex_lock(&q->lock);
        if (q->unsignalled && q->count > 0 && (q->urgent || q->count >= q->lazy_below)) {
                pthread_cond_signal(&q->wake);
                q->unsignalled = false;
        }
        pthread_mutex_unlock(&q->lock);
}

int queue_push_urgent(spw_queue *q, void *item, bool urgent) {
        int r = 0;
        pthread_mutex_lock(&q->lock);
        if (q->count == q->capacity) {
                q->space_wanted = true;
                r = -EAGAIN;
        } else
                push_locked(q, item, urgent);
        pthread_mutex_unlock(&q->lock);
        return r;
}

int queue_push(spw_queue *q, void *item) {
        return queue_push_urgent(q, item, true);
}

bool queue_room_or_arm(spw_queue *q) {
        bool room;
        pthread_mutex_lock(&q->lock);
        room = q->count < q->capacity;
        if (!room)
                q->space_wanted = true;
        pthread_mutex_unlock(&q->lock);
        return room;
}

void queue_push_evict(spw_queue *q, void *item, void **evicted) {
        pthread_mutex_lock(&q->lock);
        *evicted = NULL;
        if (q->count == q->capacity) {
                *evicted = q->ring[q->head];
                q->head = (q->head + 1) % q->capacity;
                q->count--;
        }
        push_locked(q, item, true);
        pthread_mutex_unlock(&q->lock);
}

size_t queue_pop(spw_queue *q, void **items, size_t max, usec_t deadline) {
        return queue_pop_lazy(q, items, max, deadline, 0);
}

size_t queue_pop_lazy(spw_queue *q, void **items, size_t max, usec_t deadline, size_t lazy_below) {
        size_t n = 0;
        bool notify = false;

        pthread_mutex_lock(&q->lock);
        /* a lazy wait ends at the deadline, on a kick, on an urgent item, or
         * once lazy_below items wait (or the queue is full) */
        if (deadline == USEC_INFINITY)
                lazy_below = 0; /* a lazy wait needs an end */
        else if (lazy_below > q->capacity)
                lazy_below = q->capacity;
        q->lazy_below = lazy_below;
        while ((q->count == 0 || (q->count < lazy_below && !q->urgent)) && !q->kicked) {
                if (deadline == USEC_INFINITY)
                        pthread_cond_wait(&q->wake, &q->lock);
                else {
                        if (now_monotonic() >= deadline)
                                break;
                        struct timespec ts = {
                                .tv_sec = (time_t) (deadline / USEC_PER_SEC),
                                .tv_nsec = (long) (deadline % USEC_PER_SEC) * 1000,
                        };
                        if (pthread_cond_timedwait(&q->wake, &q->lock, &ts) == ETIMEDOUT)
                                break;
                }
        }
        q->kicked = false;
        q->unsignalled = false; /* we are awake */
        q->urgent = false;
        q->lazy_below = 0;
        while (n < max && q->count > 0) {
                items[n++] = q->ring[q->head];
                q->head = (q->head + 1) % q->capacity;
                q->count--;
        }
        if (n > 0 && q->space_wanted) {
                q->space_wanted = false;
                notify = true;
        }
        pthread_mutex_unlock(&q->lock);
        if (notify && q->on_space)
                q->on_space(q->userdata);
        return n;
}

void queue_kick(spw_queue *q) {
        pthread_mutex_lock(&q->lock);
        q->kicked = true;
        pthread_cond_signal(&q->wake);
        pthread_mutex_unlock(&q->lock);
}

size_t queue_count(spw_queue *q) {
        size_t n;
        pthread_mutex_lock(&q->lock);
        n = q->count;
        pthread_mutex_unlock(&q->lock);
        return n;
}

size_t queue_high_water(spw_queue *q, bool reset) {
        size_t n;
        pthread_mutex_lock(&q->lock);
        n = q->high_water;
        if (reset)
                q->high_water = q->count;
        pthread_mutex_unlock(&q->lock);
        return n;
}
