/* SPDX-License-Identifier: MIT */
/*
 * Reference counting and outcome settling for routed signals (see
 * message.h). Atomic operations use sequentially consistent ordering:
 * the counts are touched a few times per message, far from any hot loop.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "message.h"

/* The hub delivers a settled message: run its on_done, drop the hub's reference. */
static void msg_hub_done(hub_item *it, bool discard) {
        spw_msg *m = (spw_msg *) ((char *) it - offsetof(spw_msg, done));
        if (!discard && m->on_done)
                m->on_done(m);
        msg_unref(m);
}

static void msg_init(spw_msg *m) {
        atomic_init(&m->refs, 1);
        m->sig.size = sizeof(spw_signal);
        m->sig.ban_size = sizeof(spw_ban);
        m->sig.event_size = sizeof(spw_event);
        m->done.fn = msg_hub_done;
}

spw_msg *msg_new(void) {
        spw_msg *m = calloc(1, sizeof *m);
        if (!m)
                return NULL;
        msg_init(m);
        m->arena.first_size = 2048;
        return m;
}

static void msg_free(spw_msg *m) {
        arena_deinit(&m->arena);
        free(m);
}

/* Move what other threads gave back into the owner's list. */
static void pool_collect(msg_pool *p) {
        spw_msg *m = atomic_exchange_explicit(&p->returned, NULL, memory_order_acquire);
        while (m) {
                spw_msg *next = m->pool_next;
                m->pool_next = p->free;
                p->free = m;
                p->n_free++;
                m = next;
        }
}

void msg_pool_learn(msg_pool *p, const spw_msg *m) {
        size_t used = arena_used(&m->arena);
        if (used > p->window_max)
                p->window_max = used;
        if (++p->window_n == MSG_POOL_WINDOW) {
                p->fit = (p->window_max + p->window_max / 16 + 63) & ~(size_t) 63;
                p->window_max = 0;
                p->window_n = 0;
        }
}

spw_msg *msg_pool_get(msg_pool *p, size_t estimate) {
        size_t first_size = p->fit && p->fit < estimate ? p->fit : estimate;
        spw_msg *m;

        if (!p->free)
                pool_collect(p);
        if ((m = p->free)) {
                arena a = m->arena;
                p->free = m->pool_next;
                p->n_free--;
                /* keeps its first chunk when that fits first_size (messages
                 * from one producer are about one size) */
                arena_reset(&a, first_size);
                memset(m, 0, sizeof *m);
                msg_init(m);
                m->arena = a;
                m->pool = p;
                p->reused++;
                return m;
        }
        m = msg_new();
        if (!m)
                return NULL;
        m->arena.first_size = first_size;
        m->pool = p;
        p->made++;
        return m;
}

void msg_pool_trim(msg_pool *p, size_t keep) {
        pool_collect(p);
        while (p->n_free > keep) {
                spw_msg *m = p->free;
                p->free = m->pool_next;
                p->n_free--;
                msg_free(m);
        }
}

void msg_pool_deinit(msg_pool *p) {
        msg_pool_trim(p, 0);
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
        if (m->pool) {
                msg_pool *p = m->pool;
                spw_msg *head = atomic_load_explicit(&p->returned, memory_order_relaxed);
                do
                        m->pool_next = head;
                while (!atomic_compare_exchange_weak_explicit(&p->returned, &head, m, memory_order_release,
                                                              memory_order_relaxed));
                return NULL;
        }
        msg_free(m);
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
                hub_post(m->hub, &msg_ref(m)->done);
}

void msg_settle_spool(spw_msg *m, const char *backend, bool ok, const char *why) {
        if (m->wait_spool && settle(m, backend, ok, why))
                hub_post(m->hub, &msg_ref(m)->done);
}

void msg_settle_into(spw_msg *m, const char *backend, bool ok, const char *why, hub_list *done) {
        if (m->ack == ACK_FLUSHED && settle(m, backend, ok, why))
                hub_list_append(done, &msg_ref(m)->done);
}
