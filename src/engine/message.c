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

spw_msg *msg_new(void) {
        spw_msg *m = calloc(1, sizeof *m);
        if (!m)
                return NULL;
        atomic_init(&m->refs, 1);
        m->arena.first_size = 2048;
        m->sig.size = sizeof(spw_signal);
        m->sig.ban_size = sizeof(spw_ban);
        m->sig.event_size = sizeof(spw_event);
        m->done.fn = msg_hub_done;
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
