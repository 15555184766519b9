/* SPDX-License-Identifier: MIT */
/*
 * Reference counting and outcome settling for routed signals, and the hub
 * (see message.h). Atomic operations use sequentially consistent ordering:
 * the counts are touched a few times per message, far from any hot loop.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "admin.h"
#include "message.h"

spw_msg *msg_new(void) {
        spw_msg *m = calloc(1, sizeof *m);
        if (!m)
                return NULL;
        atomic_init(&m->refs, 1);
        m->arena.first_size = 2048;
        m->sig.size = sizeof(spw_signal);
        return m;
}

spw_msg *msg_ref(spw_msg *m) {
        atomic_fetch_add(&m->refs, 1);
        return m;
}

spw_msg *msg_unref(spw_msg *m) {
        if (!m)
                return NULL;
        if (atomic_fetch_sub(&m->refs, 1) != 1)
                return NULL;
        free(atomic_load(&m->failure));
        arena_deinit(&m->arena);
        free(m);
        return NULL;
}

void msg_unref_void(void *m) {
        msg_unref(m);
}

void msg_expect(spw_msg *m, hub *h, int n) {
        m->hub = h;
        atomic_store(&m->pending, n);
}

static bool settle(spw_msg *m, const char *backend, bool ok, const char *why) {
        if (!ok) {
                char *text = NULL, *expected = NULL;
                atomic_fetch_add(&m->n_failed, 1);
                if (asprintf(&text, "backend '%s': %s", backend, why ? why : "failed") < 0)
                        text = NULL;
                if (!text || !atomic_compare_exchange_strong(&m->failure, &expected, text))
                        free(text);
        }
        return atomic_fetch_sub(&m->pending, 1) == 1;
}

void msg_settle(spw_msg *m, const char *backend, bool ok, const char *why) {
        if (m->ack == ACK_FLUSHED && settle(m, backend, ok, why))
                hub_post_msg(m->hub, m);
}

void msg_settle_into(spw_msg *m, const char *backend, bool ok, const char *why, msg_list *done) {
        if (m->ack != ACK_FLUSHED || !settle(m, backend, ok, why))
                return;
        msg_ref(m);
        m->next_done = NULL;
        if (done->tail)
                done->tail->next_done = m;
        else
                done->head = m;
        done->tail = m;
}

/* ------------------------------------------------------------------ hub */

int hub_init(hub *h) {
        *h = (hub) { 0 };
        h->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (h->efd < 0)
                return -errno;
        pthread_mutex_init(&h->lock, NULL);
        return 0;
}

void hub_deinit(hub *h) {
        spw_msg *m;
        admin_job *j;

        if (h->efd < 0)
                return;
        hub_drain(h, &m, &j);
        while (m) {
                spw_msg *n = m->next_done;
                msg_unref(m);
                m = n;
        }
        while (j) {
                admin_job *n = j->next;
                admin_job_free(j);
                j = n;
        }
        close(h->efd);
        h->efd = -1;
        pthread_mutex_destroy(&h->lock);
}

static void hub_wake(hub *h) {
        uint64_t one = 1;
        ssize_t k = write(h->efd, &one, sizeof one);
        (void) k; /* EAGAIN means the counter is already non-zero: fine */
}

void hub_post_msg(hub *h, spw_msg *m) {
        msg_ref(m);
        m->next_done = NULL;
        pthread_mutex_lock(&h->lock);
        if (h->done_tail)
                h->done_tail->next_done = m;
        else
                h->done_head = m;
        h->done_tail = m;
        pthread_mutex_unlock(&h->lock);
        hub_wake(h);
}

void hub_post_list(hub *h, msg_list *l) {
        if (!l->head)
                return;
        pthread_mutex_lock(&h->lock);
        if (h->done_tail)
                h->done_tail->next_done = l->head;
        else
                h->done_head = l->head;
        h->done_tail = l->tail;
        pthread_mutex_unlock(&h->lock);
        l->head = l->tail = NULL;
        hub_wake(h);
}

void hub_post_job(hub *h, admin_job *j) {
        j->next = NULL;
        pthread_mutex_lock(&h->lock);
        if (h->jobs_tail)
                h->jobs_tail->next = j;
        else
                h->jobs_head = j;
        h->jobs_tail = j;
        pthread_mutex_unlock(&h->lock);
        hub_wake(h);
}

void hub_signal_space(void *userdata) {
        hub *h = userdata;
        atomic_store(&h->space, true);
        hub_wake(h);
}

void hub_signal_backend_event(hub *h) {
        atomic_store(&h->backend_event, true);
        hub_wake(h);
}

void hub_drain(hub *h, spw_msg **msgs, admin_job **jobs) {
        uint64_t v;
        ssize_t k = read(h->efd, &v, sizeof v);
        (void) k;
        pthread_mutex_lock(&h->lock);
        *msgs = h->done_head;
        *jobs = h->jobs_head;
        h->done_head = h->done_tail = NULL;
        h->jobs_head = h->jobs_tail = NULL;
        pthread_mutex_unlock(&h->lock);
}
