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
#include <unistd.h>

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

/* A consumer waiting lazily (queue_pop_lazy) for up to 10 s. */
typedef struct lazy_waiter {
        spw_queue *q;
        size_t lazy_below;
        atomic_int done;
        size_t n;
        usec_t waited;
} lazy_waiter;

static void *lazy_consumer(void *userdata) {
        lazy_waiter *w = userdata;
        void *items[8];
        usec_t t0 = now_monotonic();
        w->n = queue_pop_lazy(w->q, items, 8, t0 + 10 * USEC_PER_SEC, w->lazy_below);
        w->waited = now_monotonic() - t0;
        atomic_store(&w->done, 1);
        return NULL;
}

/* Issue 17: a worker waiting for company is not woken per signal: a wake
 * after a non-urgent push below the threshold leaves it asleep; an urgent
 * item (a "flushed" ack waits) or enough items wake it. */
static void test_lazy(void) {
        spw_queue q;
        void *items[8];
        pthread_t t;

        CHECK_OK(queue_init(&q, 16, NULL, NULL));
        /* enough items waiting already: no wait at all */
        CHECK_OK(queue_push_urgent(&q, (void *) 1, false));
        CHECK_OK(queue_push_urgent(&q, (void *) 2, false));
        CHECK_EQ(queue_pop_lazy(&q, items, 8, now_monotonic() + 10 * USEC_PER_SEC, 2), 2);
        /* one non-urgent item below the threshold: the deadline ends the wait */
        CHECK_OK(queue_push_urgent(&q, (void *) 3, false));
        usec_t t0 = now_monotonic();
        CHECK_EQ(queue_pop_lazy(&q, items, 8, t0 + 30 * USEC_PER_MSEC, 4), 1);
        CHECK(now_monotonic() - t0 >= 29 * USEC_PER_MSEC);

        lazy_waiter w = { .q = &q, .lazy_below = 4 };
        CHECK_EQ(pthread_create(&t, NULL, lazy_consumer, &w), 0);
        usleep(50000);
        CHECK_OK(queue_push_urgent(&q, (void *) 4, false));
        queue_wake(&q);
        usleep(100000);
        CHECK_EQ(atomic_load(&w.done), 0); /* not woken for one "queued" signal */
        CHECK_OK(queue_push_urgent(&q, (void *) 5, true));
        queue_wake(&q);
        pthread_join(t, NULL);
        CHECK_EQ(w.n, 2);
        CHECK(w.waited < 5 * USEC_PER_SEC); /* the urgent item, not the deadline */

        w = (lazy_waiter) { .q = &q, .lazy_below = 3 };
        CHECK_EQ(pthread_create(&t, NULL, lazy_consumer, &w), 0);
        for (uintptr_t i = 6; i <= 8; i++) {
                CHECK_OK(queue_push_urgent(&q, (void *) i, false));
                queue_wake(&q);
        }
        pthread_join(t, NULL);
        CHECK_EQ(w.n, 3);
        CHECK(w.waited < 5 * USEC_PER_SEC); /* three items: a batch */

        /* a plain wake still wakes a consumer that waits normally */
        CHECK_OK(queue_push_urgent(&q, (void *) 9, false));
        queue_wake(&q);
        CHECK_EQ(queue_pop(&q, items, 8, USEC_INFINITY), 1);
        queue_deinit(&q, NULL);
}

int main(void) {
        test_lazy();
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
