/* SPDX-License-Identifier: MIT */
/*
 * The hub: items posted from several threads all run, each once, on the
 * dispatching thread, in posting order per poster; a batch posted as a list
 * keeps its order; what is left at deinit is discarded (released, not
 * run); the flags are taken once; a settled message runs its on_done.
 */
#include <poll.h>
#include <pthread.h>
#include <stddef.h>

#include "hub.h"
#include "message.h"
#include "tests.h"

#define THREADS 4
#define PER_THREAD 20000

typedef struct item {
        hub_item it;
        int thread, seq;
} item;

static int last_seq[THREADS];
static int ran, discarded;

static void run_item(hub_item *it, bool discard) {
        item *x = (item *) ((char *) it - offsetof(item, it));
        if (discard)
                discarded++;
        else {
                CHECK_EQ(x->seq, last_seq[x->thread] + 1);
                last_seq[x->thread] = x->seq;
                ran++;
        }
        free(x);
}

typedef struct poster {
        hub *h;
        int thread;
} poster;

static void *post_many(void *userdata) {
        poster *p = userdata;
        hub_list batch = { 0 };
        for (int i = 1; i <= PER_THREAD; i++) {
                item *x = calloc(1, sizeof *x);
                CHECK(x);
                *x = (item) { .it.fn = run_item, .thread = p->thread, .seq = i };
                if (i % 3 == 0) { /* every third goes through a batch */
                        hub_list_append(&batch, &x->it);
                        if (i % 30 == 0)
                                hub_post_list(p->h, &batch);
                } else {
                        hub_post_list(p->h, &batch); /* keep the order */
                        hub_post(p->h, &x->it);
                }
        }
        hub_post_list(p->h, &batch);
        return NULL;
}

static int done_calls;
static void on_done(spw_msg *m) {
        done_calls++;
}

int main(void) {
        hub h;
        pthread_t th[THREADS];
        poster p[THREADS];

        CHECK_OK(hub_init(&h));
        CHECK(hub_fd(&h) >= 0);
        for (int i = 0; i < THREADS; i++) {
                last_seq[i] = 0;
                p[i] = (poster) { &h, i };
                CHECK_EQ(pthread_create(&th[i], NULL, post_many, &p[i]), 0);
        }
        while (ran < THREADS * PER_THREAD) {
                struct pollfd pfd = { .fd = hub_fd(&h), .events = POLLIN };
                poll(&pfd, 1, 100);
                hub_dispatch(&h);
        }
        for (int i = 0; i < THREADS; i++)
                CHECK_EQ(pthread_join(th[i], NULL), 0);
        CHECK_EQ(ran, THREADS * PER_THREAD);

        /* flags: set once, taken once */
        CHECK(!hub_take_space(&h));
        hub_signal_space(&h);
        hub_signal_space(&h);
        CHECK(hub_take_space(&h));
        CHECK(!hub_take_space(&h));
        hub_signal_backend_event(&h);
        CHECK(hub_take_backend_event(&h));
        CHECK(!hub_take_backend_event(&h));

        /* a message settled by its last backend comes back with on_done */
        spw_msg *m = msg_new();
        m->ack = ACK_FLUSHED;
        m->on_done = on_done;
        msg_expect(m, &h, 2);
        msg_settle(m, "a", true, NULL);
        hub_dispatch(&h);
        CHECK_EQ(done_calls, 0);
        msg_settle(m, "b", false, "broken");
        hub_dispatch(&h);
        CHECK_EQ(done_calls, 1);
        CHECK_STREQ(atomic_load(&m->failure), "backend 'b': broken");
        msg_unref(m);

        /* left over at deinit: discarded, not run */
        for (int i = 0; i < 3; i++) {
                item *x = calloc(1, sizeof *x);
                *x = (item) { .it.fn = run_item, .thread = 0, .seq = 0 };
                hub_post(&h, &x->it);
        }
        m = msg_new();
        m->ack = ACK_FLUSHED;
        m->on_done = on_done;
        msg_expect(m, &h, 1);
        msg_settle(m, "a", true, NULL);
        msg_unref(m); /* the hub holds the last reference */
        hub_deinit(&h);
        CHECK_EQ(discarded, 3);
        CHECK_EQ(done_calls, 1);
        return 0;
}
