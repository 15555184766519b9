/* SPDX-License-Identifier: MIT */
/*
 * The bounded queue: FIFO order, full-queue reporting and eviction, the
 * on_space notification, and one producer / one consumer under load (run
 * under ThreadSanitizer in the test command).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "queue.h"
#include "tests.h"

static atomic_int space_calls;
static void on_space(void *u) {
        atomic_fetch_add(&space_calls, 1);
}

#define N 200000
static void *consumer(void *userdata) {
        spw_queue *q = userdata;
        void *items[64];
        uintptr_t expect = 1;
        while (expect <= N) {
                size_t n = queue_pop(q, items, 64, USEC_INFINITY);
                for (size_t i = 0; i < n; i++) {
                        CHECK_EQ((uintptr_t) items[i], expect);
                        expect++;
                }
        }
        return NULL;
}

int main(void) {
        spw_queue q;
        void *items[8], *evicted;

        CHECK_OK(queue_init(&q, 3, on_space, NULL));
        CHECK_OK(queue_push(&q, (void *) 1));
        CHECK_OK(queue_push(&q, (void *) 2));
        CHECK_OK(queue_push(&q, (void *) 3));
        CHECK_EQ(queue_push(&q, (void *) 4), -EAGAIN);
        CHECK(!queue_room_or_arm(&q));
        CHECK_EQ(queue_pop(&q, items, 1, 0), 1);
        CHECK_EQ((uintptr_t) items[0], 1);
        CHECK_EQ(atomic_load(&space_calls), 1); /* a pop made room for the waiting producer */
        queue_push_evict(&q, (void *) 4, &evicted);
        CHECK(evicted == NULL);
        queue_push_evict(&q, (void *) 5, &evicted);
        CHECK_EQ((uintptr_t) evicted, 2); /* the oldest */
        CHECK_EQ(queue_pop(&q, items, 8, 0), 3);
        CHECK_EQ((uintptr_t) items[0], 3);
        CHECK_EQ((uintptr_t) items[2], 5);
        CHECK_EQ(queue_high_water(&q, true), 3);
        /* an empty pop with a past deadline returns at once */
        CHECK_EQ(queue_pop(&q, items, 8, now_monotonic() - 1), 0);
        /* a kick wakes a waiting consumer without an item */
        queue_kick(&q);
        CHECK_EQ(queue_pop(&q, items, 8, USEC_INFINITY), 0);
        /* a deadline in the near future expires */
        usec_t t0 = now_monotonic();
        CHECK_EQ(queue_pop(&q, items, 8, t0 + 20 * USEC_PER_MSEC), 0);
        CHECK(now_monotonic() - t0 >= 19 * USEC_PER_MSEC);
        queue_deinit(&q, NULL);

        /* one producer, one consumer, order preserved under contention */
        CHECK_OK(queue_init(&q, 128, NULL, NULL));
        pthread_t t;
        CHECK_EQ(pthread_create(&t, NULL, consumer, &q), 0);
        for (uintptr_t i = 1; i <= N;) {
                if (queue_push(&q, (void *) i) == 0) {
                        if (i % 16 == 0 || i == N)
                                queue_wake(&q); /* one wake-up per burst */
                        i++;
                } else {
                        queue_wake(&q);
                        sched_yield();
                }
        }
        pthread_join(t, NULL);
        queue_deinit(&q, NULL);
        return 0;
}
