/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The hub: how other threads hand finished work back to the main thread.
 *
 * DESIGN
 *   - One mutex-protected FIFO of completion items plus an eventfd the main
 *     loop polls. A completion item is embedded in whatever finished (a
 *     routed message whose backends all settled, an administrative job, a
 *     configuration prepared off the loop) and carries the function the main
 *     thread runs for it; the hub knows nothing of what the items are.
 *   - Ownership moves into the hub with hub_post() and out of it when the
 *     main thread runs the item's function (hub_dispatch) or, at
 *     hub_deinit(), calls it with discard=true: the function then only
 *     releases what the item holds.
 *   - Order: items run in the order they were posted.
 *   - Two flags need no item: "a full queue has room again" and "a backend
 *     finished init or stopped". Setting one wakes the loop; the main thread
 *     takes them with hub_take_space() / hub_take_backend_event().
 *   - Any thread may post; only the main thread dispatches. Workers never
 *     touch sockets or sd_notify.
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

typedef struct hub_item hub_item;

/* Runs on the main thread; owns the item from then on. discard: the hub is
 * being torn down (release, do not act). */
typedef void (*hub_fn)(hub_item *it, bool discard);

struct hub_item {
        hub_item *next;
        hub_fn fn;
};

/* A batch of items a worker collects and posts in one go (one lock, one
 * eventfd write per batch instead of per item). */
typedef struct hub_list {
        hub_item *head, *tail;
} hub_list;

void hub_list_append(hub_list *l, hub_item *it);

typedef struct hub {
        int efd;
        pthread_mutex_t lock;
        hub_item *head, *tail;
        atomic_bool space;           /* a full queue has room again */
        atomic_bool backend_event;   /* a backend finished init or stopped */
} hub;

int hub_init(hub *h);
/* Discards what is left (each item's function with discard=true). */
void hub_deinit(hub *h);
/* The descriptor the main loop polls for input. */
int hub_fd(const hub *h);

void hub_post(hub *h, hub_item *it);      /* any thread; takes ownership */
void hub_post_list(hub *h, hub_list *l);  /* any thread; empties the list */
void hub_signal_space(void *h);           /* matches the queue's on_space */
void hub_signal_backend_event(hub *h);

/* Main thread: clear the eventfd and run every item posted so far. */
void hub_dispatch(hub *h);
bool hub_take_space(hub *h);
bool hub_take_backend_event(hub *h);
