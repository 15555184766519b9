/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A routed signal on its way to the backends (spw_msg).
 *
 * DESIGN
 *   - A message is created and routed by the main thread, then shared by
 *     every backend it was routed to: each queue holds one reference. The
 *     signal and everything it points to live in the message's arena, so
 *     freeing a message is one arena release, from whichever thread drops the
 *     last reference; a message the main loop made from its pool
 *     (msg_pool_get) goes back to that pool instead, to be reused there.
 *   - For an "ack: flushed" request the message counts the backends that
 *     still owe an outcome (`pending`). Each backend settles the message
 *     exactly once: flushed, failed, or dropped. The one that brings the
 *     count to zero posts the message to the hub (hub.h); the main thread
 *     then runs the message's on_done (the daemon replies to the producer).
 *     A failure description is kept (the first one wins) so the reply can
 *     say which backend failed and why.
 */

#include "macro.h"
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <spillway/backend.h>

#include "arena.h"
#include "hub.h"

typedef enum ack_level {
        ACK_QUEUED,
        ACK_FLUSHED,
} ack_level;

typedef struct spw_msg spw_msg;
typedef struct msg_pool msg_pool;

struct spw_msg {
        atomic_uint refs;
        arena arena;
        msg_pool *pool;              /* made by msg_pool_get(): goes back there */
        spw_msg *pool_next;          /* in the pool's lists */
        spw_signal sig;
        ack_level ack;
        /* the bans the producer sent: routing (again, after a reload) starts
         * from these, never from a previous routing's result */
        const spw_ban *producer_bans;
        size_t n_producer_bans;
        bool routed;
        /* the producer's JSON line, kept for the disk spool (spool.h) */
        const char *raw;
        size_t raw_len;
        /* ACK_QUEUED with disk-spooled backends: `pending` counts the spools
         * that still have to write it; the ack waits for them (spool.h) */
        bool wait_spool;
        const char *bans_refused;    /* arena: bans the ban policy refused, and why (engine_route) */
        atomic_int pending;          /* outcomes still owed (ACK_FLUSHED) */
        atomic_int n_failed;
        _Atomic(char *) failure;     /* first failure, malloc'd */
        hub *hub;                    /* where to post completion */
        hub_item done;               /* posted once every backend settled */
        /* main thread: run when the hub delivers the settled message */
        void (*on_done)(spw_msg *m);
        void *cookie;                /* the waiting request (main thread only) */
};

spw_msg *msg_new(void);

/*
 * A cache of messages for the one thread that makes them (the main thread).
 * A message from msg_pool_get() goes back to its pool when its last
 * reference drops, from whichever thread (a lock-free push), and the pool's
 * thread reuses it with its first arena chunk, or frees it. Why: the
 * workers drop the last reference, and free() of the main thread's memory
 * from a worker (out of order, into the main thread's malloc arena under
 * its lock) made the main thread's next mallocs slow: ~3 µs more per
 * signal on the loop with SQLite than with the null backend (issue 17).
 * The pool must outlive its messages: deinit it once every thread that may
 * hold one has stopped.
 */
struct msg_pool {
        _Atomic(spw_msg *) returned; /* any thread pushes; the owner takes all */
        spw_msg *free;               /* owner only */
        size_t n_free;
        size_t made, reused;         /* counters (owner only) */
        /* the largest message of the last MSG_POOL_WINDOW (arena bytes):
         * a first chunk need not be larger (owner only) */
        size_t fit, window_max;
        unsigned window_n;
};

#define MSG_POOL_WINDOW 256

/* Owner thread: a fresh message (its arena empty). Its first arena chunk
 * is `estimate` bytes, or less when the messages of the last window all
 * fitted in less (msg_pool_learn). */
spw_msg *msg_pool_get(msg_pool *p, size_t estimate);
/* Owner thread: `m` is complete (parsed and routed); its size teaches the
 * pool how large a first chunk needs to be. A message that outgrows its
 * first chunk takes a second one (twice the size): the estimate errs
 * large, the learnt size is the largest of a window plus 1/16. */
void msg_pool_learn(msg_pool *p, const spw_msg *m);
/* What the main loop keeps cached while nothing arrives (~100 KiB). */
#define MSG_POOL_KEEP 64
/* Owner thread: free what came back beyond `keep` cached messages. */
void msg_pool_trim(msg_pool *p, size_t keep);
/* Frees every cached message; no message of the pool may be alive. */
void msg_pool_deinit(msg_pool *p);
spw_msg *msg_ref(spw_msg *m);
spw_msg *msg_unref(spw_msg *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(spw_msg *, msg_unref);
/* free callback for queues */
void msg_unref_void(void *m);

/* Arm outcome tracking for `n` backends before fan-out (ACK_FLUSHED only). */
void msg_expect(spw_msg *m, hub *h, int n);
/* One backend's outcome. ok=false records `why` (formatted "backend: why").
 * Safe from any thread; no-op for ACK_QUEUED messages. */
void msg_settle(spw_msg *m, const char *backend, bool ok, const char *why);
/* One spool's outcome for a message that waits for its spools (wait_spool);
 * any thread. */
void msg_settle_spool(spw_msg *m, const char *backend, bool ok, const char *why);
/* Like msg_settle, but a completed message is appended to `done` (with a
 * reference) instead of being posted; post the list with hub_post_list(). */
void msg_settle_into(spw_msg *m, const char *backend, bool ok, const char *why, hub_list *done);
