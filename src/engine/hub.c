/* SPDX-License-Identifier: MIT */
/*
 * The hub (see the DESIGN comment in hub.h): a locked FIFO of completion
 * items and an eventfd. The lock is held only to link or take the list,
 * never while an item's function runs, so a function may post again.
 */
#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "hub.h"

void hub_list_append(hub_list *l, hub_item *it) {
        it->next = NULL;
        if (l->tail)
                l->tail->next = it;
        else
                l->head = it;
        l->tail = it;
}

int hub_init(hub *h) {
        *h = (hub) { .efd = -1 };
        h->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (h->efd < 0)
                return -errno;
        pthread_mutex_init(&h->lock, NULL);
        return 0;
}

static hub_item *take_all(hub *h) {
        hub_item *it;
        pthread_mutex_lock(&h->lock);
        it = h->head;
        h->head = h->tail = NULL;
        pthread_mutex_unlock(&h->lock);
        return it;
}

void hub_deinit(hub *h) {
        if (h->efd < 0)
                return;
        for (hub_item *it = take_all(h); it;) {
                hub_item *n = it->next;
                it->fn(it, true);
                it = n;
        }
        close(h->efd);
        h->efd = -1;
        pthread_mutex_destroy(&h->lock);
}

int hub_fd(const hub *h) {
        return h->efd;
}

static void wake(hub *h) {
        uint64_t one = 1;
        ssize_t k = write(h->efd, &one, sizeof one);
        (void) k; /* EAGAIN means the counter is already non-zero: fine */
}

void hub_post(hub *h, hub_item *it) {
        it->next = NULL;
        pthread_mutex_lock(&h->lock);
        if (h->tail)
                h->tail->next = it;
        else
                h->head = it;
        h->tail = it;
        pthread_mutex_unlock(&h->lock);
        wake(h);
}

void hub_post_list(hub *h, hub_list *l) {
        if (!l->head)
                return;
        pthread_mutex_lock(&h->lock);
        if (h->tail)
                h->tail->next = l->head;
        else
                h->head = l->head;
        h->tail = l->tail;
        pthread_mutex_unlock(&h->lock);
        l->head = l->tail = NULL;
        wake(h);
}

void hub_signal_space(void *userdata) {
        hub *h = userdata;
        atomic_store(&h->space, true);
        wake(h);
}

void hub_signal_backend_event(hub *h) {
        atomic_store(&h->backend_event, true);
        wake(h);
}

void hub_dispatch(hub *h) {
        uint64_t v;
        ssize_t k = read(h->efd, &v, sizeof v);
        (void) k;
        for (hub_item *it = take_all(h); it;) {
                hub_item *n = it->next;
                it->fn(it, false);
                it = n;
        }
}

bool hub_take_space(hub *h) {
        return atomic_exchange(&h->space, false);
}

bool hub_take_backend_event(hub *h) {
        return atomic_exchange(&h->backend_event, false);
}
