/* SPDX-License-Identifier: MIT */
/*
 * The park of signals waiting for queue room: a retry pass offers room in
 * arrival order but keeps each owner's order (an item waits while an
 * earlier item of its owner waits; items of other owners go ahead); the
 * timer fires at the earliest deadline even when a later item has a later
 * one; expiring and emptying.
 */
#include <errno.h>
#include <stddef.h>

#include "park.h"
#include "tests.h"

typedef struct item {
        park_item it;
        const char *name;
        bool room;          /* the retry callback accepts it */
        bool done;
} item;

static char trace[256];
static unsigned expired;
static unsigned afters;

static item *of(park_item *it) {
        return (item *) ((char *) it - offsetof(item, it));
}

static int retry(park_item *it, usec_t *deadline, void *userdata) {
        item *x = of(it);
        strcat(trace, x->name);
        if (!x->room)
                return -EAGAIN;
        x->done = true;
        return 0;
}

static void expire(park_item *it, void *userdata) {
        of(it)->done = true;
        expired++;
}

static void after(void *userdata) {
        afters++;
}

static void test_order_per_owner(void) {
        park *p;
        item a = { .name = "A" }, b = { .name = "B", .room = true }, c = { .name = "C", .room = true },
             d = { .name = "D", .room = true };
        usec_t now = now_monotonic();

        CHECK_OK(park_new(NULL, retry, expire, NULL, NULL, &p));
        park_add(p, &a.it, now + 10 * USEC_PER_SEC, 1);
        park_add(p, &b.it, now + 10 * USEC_PER_SEC, 2);
        park_add(p, &c.it, now + 10 * USEC_PER_SEC, 1);
        park_add(p, &d.it, now + 10 * USEC_PER_SEC, 3);
        CHECK_EQ(park_count(p), 4);
        /* A (owner 1) still waits: C (owner 1) is not offered; B and D go */
        trace[0] = 0;
        park_retry(p);
        CHECK_STREQ(trace, "ABD");
        CHECK(b.done && d.done && !c.done);
        CHECK_EQ(park_count(p), 2);
        /* room for A: then C, in the same pass */
        a.room = true;
        trace[0] = 0;
        park_retry(p);
        CHECK_STREQ(trace, "AC");
        CHECK_EQ(park_count(p), 0);
        CHECK_EQ(park_next_deadline(p), INT64_MAX);
        park_free(p);
}

static void test_expire_and_deadlines(void) {
        park *p;
        item a = { .name = "A" }, b = { .name = "B" }, c = { .name = "C" };
        usec_t now = now_monotonic();

        CHECK_OK(park_new(NULL, retry, expire, NULL, NULL, &p));
        park_add(p, &a.it, now + 10 * USEC_PER_SEC, 1);
        park_add(p, &b.it, now + 1 * USEC_PER_SEC, 2);
        park_add(p, &c.it, now + 5 * USEC_PER_SEC, 3);
        CHECK_EQ(park_next_deadline(p), now + 1 * USEC_PER_SEC);
        expired = 0;
        park_expire(p, now + 2 * USEC_PER_SEC);
        CHECK_EQ(expired, 1);
        CHECK(b.done && !a.done && !c.done);
        CHECK_EQ(park_next_deadline(p), now + 5 * USEC_PER_SEC);
        park_remove(p, &c.it);
        park_remove(p, &c.it); /* not parked any more: no-op */
        CHECK_EQ(park_count(p), 1);
        park_expire_all(p);
        CHECK_EQ(expired, 2);
        CHECK(a.done && !c.done);
        park_free(p);
}

/* The timer: a later item with a long deadline does not push back an
 * earlier one with a short deadline. */
static void test_timer_fires_at_the_earliest_deadline(void) {
        sd_event *ev = NULL;
        park *p;
        item shortwait = { .name = "S" }, longwait = { .name = "L" };
        usec_t t0 = now_monotonic();

        CHECK_OK(sd_event_new(&ev));
        CHECK_OK(park_new(ev, retry, expire, after, NULL, &p));
        park_add(p, &shortwait.it, t0 + 100 * USEC_PER_MSEC, 1);
        park_add(p, &longwait.it, t0 + 60 * USEC_PER_SEC, 2);
        expired = afters = 0;
        while (!shortwait.done)
                CHECK_OK(sd_event_run(ev, 5 * USEC_PER_SEC));
        usec_t waited = now_monotonic() - t0;
        CHECK(waited >= 100 * USEC_PER_MSEC);
        CHECK(waited < 2 * USEC_PER_SEC);
        CHECK_EQ(expired, 1);
        CHECK_EQ(afters, 1);
        CHECK(!longwait.done);
        CHECK_EQ(park_count(p), 1);
        park_free(p); /* forgets the rest */
        CHECK(!longwait.done);
        sd_event_unref(ev);
}

int main(void) {
        test_order_per_owner();
        test_expire_and_deadlines();
        test_timer_fires_at_the_earliest_deadline();
        return 0;
}
