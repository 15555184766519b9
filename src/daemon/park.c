/* SPDX-License-Identifier: MIT */
/*
 * Parked items and their timer (see the DESIGN comment in park.h).
 *
 * The list is in arrival order. There are at most as many items as
 * connections (a connection stops being read while one of its requests
 * waits), so the earliest deadline is found by a walk rather than kept in a
 * heap, and "an earlier item of the same owner still waits" is checked
 * against the owners left waiting so far in the current pass.
 */
#include <errno.h>
#include <stdlib.h>

#include "macro.h"
#include "park.h"

struct park {
        sd_event_source *timer;
        park_item *head, *tail;
        size_t n;
        park_retry_fn retry;
        park_expire_fn expire;
        park_after_fn after;
        void *userdata;
};

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        park *p = userdata;
        park_expire(p, now_monotonic());
        if (p->after)
                p->after(p->userdata);
        return 0;
}

int park_new(sd_event *event, park_retry_fn retry, park_expire_fn expire, park_after_fn after, void *userdata, park **ret) {
        park *p = calloc(1, sizeof *p);
        int r;

        if (!p)
                return -ENOMEM;
        p->retry = retry;
        p->expire = expire;
        p->after = after;
        p->userdata = userdata;
        if (event) {
                r = sd_event_add_time(event, &p->timer, CLOCK_MONOTONIC, UINT64_MAX, 10 * USEC_PER_MSEC, on_timer, p);
                if (r < 0) {
                        free(p);
                        return r;
                }
                sd_event_source_set_enabled(p->timer, SD_EVENT_OFF);
        }
        *ret = p;
        return 0;
}

park *park_free(park *p) {
        if (!p)
                return NULL;
        while (p->head)
                park_remove(p, p->head);
        sd_event_source_disable_unref(p->timer);
        free(p);
        return NULL;
}

usec_t park_next_deadline(const park *p) {
        usec_t t = INT64_MAX;
        for (const park_item *it = p->head; it; it = it->next)
                t = MIN(t, it->deadline);
        return t;
}

static void arm(park *p) {
        if (!p->timer)
                return;
        if (!p->head) {
                sd_event_source_set_enabled(p->timer, SD_EVENT_OFF);
                return;
        }
        sd_event_source_set_time(p->timer, (uint64_t) park_next_deadline(p));
        sd_event_source_set_enabled(p->timer, SD_EVENT_ONESHOT);
}

static void unlink_item(park *p, park_item *it) {
        if (it->prev)
                it->prev->next = it->next;
        else
                p->head = it->next;
        if (it->next)
                it->next->prev = it->prev;
        else
                p->tail = it->prev;
        it->prev = it->next = NULL;
        it->parked = false;
        p->n--;
}

void park_add(park *p, park_item *it, usec_t deadline, uint64_t owner) {
        it->deadline = deadline;
        it->owner = owner;
        it->parked = true;
        it->next = NULL;
        it->prev = p->tail;
        if (p->tail)
                p->tail->next = it;
        else
                p->head = it;
        p->tail = it;
        p->n++;
        /* only ever earlier: no walk needed */
        if (p->timer) {
                uint64_t armed = UINT64_MAX;
                int on = SD_EVENT_OFF;
                sd_event_source_get_enabled(p->timer, &on);
                if (on != SD_EVENT_OFF)
                        sd_event_source_get_time(p->timer, &armed);
                if (on == SD_EVENT_OFF || (uint64_t) deadline < armed) {
                        sd_event_source_set_time(p->timer, (uint64_t) deadline);
                        sd_event_source_set_enabled(p->timer, SD_EVENT_ONESHOT);
                }
        }
}

void park_remove(park *p, park_item *it) {
        if (!it->parked)
                return;
        unlink_item(p, it);
        arm(p);
}

static bool owner_waiting(const uint64_t *owners, size_t n, uint64_t owner) {
        for (size_t i = 0; i < n; i++)
                if (owners[i] == owner)
                        return true;
        return false;
}

void park_retry(park *p) {
        uint64_t stack[64], *owners = stack;
        size_t n_owners = 0, cap = ELEMENTSOF(stack);
        park_item *it = p->head;

        while (it) {
                park_item *next = it->next;
                if (owner_waiting(owners, n_owners, it->owner)) {
                        it = next;
                        continue;
                }
                usec_t deadline = it->deadline;
                /* unlinked first: the callback may free the item */
                park_item *prev = it->prev;
                unlink_item(p, it);
                if (p->retry(it, &deadline, p->userdata) == 0) {
                        it = next;
                        continue;
                }
                /* still waiting: put it back where it was */
                it->deadline = MIN(it->deadline, deadline);
                it->parked = true;
                it->prev = prev;
                it->next = next;
                if (prev)
                        prev->next = it;
                else
                        p->head = it;
                if (next)
                        next->prev = it;
                else
                        p->tail = it;
                p->n++;
                if (n_owners == cap) {
                        uint64_t *n = malloc(2 * cap * sizeof *n);
                        if (!n)
                                break; /* the rest waits for the next pass */
                        memcpy(n, owners, n_owners * sizeof *n);
                        if (owners != stack)
                                free(owners);
                        owners = n;
                        cap *= 2;
                }
                owners[n_owners++] = it->owner;
                it = next;
        }
        if (owners != stack)
                free(owners);
        arm(p);
}

void park_expire(park *p, usec_t now) {
        park_item *it = p->head;
        while (it) {
                park_item *next = it->next;
                if (it->deadline <= now) {
                        unlink_item(p, it);
                        p->expire(it, p->userdata);
                }
                it = next;
        }
        arm(p);
}

void park_expire_all(park *p) {
        while (p->head) {
                park_item *it = p->head;
                unlink_item(p, it);
                p->expire(it, p->userdata);
        }
        arm(p);
}

size_t park_count(const park *p) {
        return p->n;
}

void park_foreach(park *p, void (*fn)(park_item *it, void *userdata), void *userdata) {
        for (park_item *it = p->head; it; it = it->next)
                fn(it, userdata);
}
