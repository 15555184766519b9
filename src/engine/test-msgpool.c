/* SPDX-License-Identifier: MIT */
/*
 * The message pool: messages whose last reference drops on other threads
 * come back to the pool and are reused by its thread with their first
 * arena chunk, whatever they held is gone; the first chunk shrinks to what
 * a window of messages needed; trim frees what came back beyond `keep`;
 * deinit frees the rest (LSan: nothing leaks).
 */
#include <pthread.h>
#include <string.h>

#include "message.h"
#include "tests.h"

#define THREADS 3
#define PER_THREAD 5000

typedef struct dropper {
        spw_msg **msgs;
        size_t n;
} dropper;

static void *drop_all(void *userdata) {
        dropper *d = userdata;
        for (size_t i = 0; i < d->n; i++)
                msg_unref(d->msgs[i]);
        return NULL;
}

int main(void) {
        msg_pool p = { .free = NULL };
        static spw_msg *msgs[THREADS][PER_THREAD];
        pthread_t t[THREADS];
        dropper d[THREADS];

        /* made by the pool's thread, dropped (last reference) by others */
        for (int k = 0; k < THREADS; k++)
                for (int i = 0; i < PER_THREAD; i++) {
                        spw_msg *m = msg_pool_get(&p, 1024);
                        CHECK(m && m->pool == &p && atomic_load(&m->refs) == 1);
                        m->sig.scenario = arena_strdup(&m->arena, "crowdsecurity/ssh-bf");
                        CHECK(m->sig.scenario);
                        msg_settle(m, "b", true, NULL); /* ACK_QUEUED: a no-op */
                        msgs[k][i] = msg_ref(m);
                        msg_unref(m);
                }
        CHECK_EQ(p.made, (size_t) THREADS * PER_THREAD);
        for (int k = 0; k < THREADS; k++) {
                d[k] = (dropper) { msgs[k], PER_THREAD };
                CHECK_OK(-pthread_create(&t[k], NULL, drop_all, &d[k]));
        }
        for (int k = 0; k < THREADS; k++)
                pthread_join(t[k], NULL);

        /* every one comes back, and is reused clean */
        for (int i = 0; i < THREADS * PER_THREAD; i++) {
                spw_msg *m = msg_pool_get(&p, 1024);
                CHECK(m);
                CHECK(m->sig.scenario == NULL && m->arena.head != NULL && arena_used(&m->arena) == 0);
                CHECK_EQ(m->sig.size, sizeof(spw_signal));
                CHECK(atomic_load(&m->failure) == NULL && m->ack == ACK_QUEUED && !m->routed);
                msgs[i / PER_THREAD][i % PER_THREAD] = m;
        }
        CHECK_EQ(p.made, (size_t) THREADS * PER_THREAD);
        CHECK_EQ(p.reused, (size_t) THREADS * PER_THREAD);

        /* a window of 100-byte messages: the next first chunk is the
         * largest of them plus 1/16, not the 1024-byte estimate */
        for (int i = 0; i < MSG_POOL_WINDOW; i++) {
                spw_msg *m = msgs[0][i];
                CHECK(arena_alloc(&m->arena, 100));
                msg_pool_learn(&p, m);
        }
        CHECK(p.fit >= 112 && p.fit < 1024);
        for (int k = 0; k < THREADS; k++)
                for (int i = 0; i < PER_THREAD; i++)
                        msg_unref(msgs[k][i]);
        spw_msg *m = msg_pool_get(&p, 1024);
        CHECK(arena_alloc(&m->arena, 1)); /* the first chunk is made (or kept) at the learnt size */
        CHECK(m->arena.total <= p.fit + 64);
        msg_unref(m);

        /* trim keeps `keep`, deinit frees the rest */
        msg_pool_trim(&p, 10);
        CHECK_EQ(p.n_free, 10u);
        msg_pool_deinit(&p);
        CHECK_EQ(p.n_free, 0u);
        CHECK(p.free == NULL && atomic_load(&p.returned) == NULL);

        /* a message from msg_new() has no pool and is freed as before */
        m = msg_new();
        CHECK(m && m->pool == NULL);
        msg_unref(m);
        return 0;
}
