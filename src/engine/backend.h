/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A running backend instance: one plugin instance, its bounded queue and
 * its worker thread.
 *
 * DESIGN
 *   Ownership. The main thread creates, submits to, stops and frees a
 *   backend. The worker thread is the only caller of the plugin (init,
 *   insert, flush, timers, admin jobs, shutdown, in that thread only), so
 *   plugins need no locks. Messages move into the queue on submit and are
 *   owned by the worker from pop until they are settled.
 *
 *   What is locked. The queue has its own lock (queue.h). `info_lock`
 *   protects the texts the main thread reads for status (last error, plugin
 *   status) and the stop/sleep condition. Counters are atomics. Admin jobs
 *   are handed over under `jobs_lock`.
 *
 *   Order. Each backend receives signals in submit order. Retries hold the
 *   queue: a transient failure delays later signals of that backend only.
 *
 *   Full queue. The main thread applies the policy: block (the caller parks
 *   the request until the queue signals space, bounded by block_timeout),
 *   drop_oldest (the evicted message is settled as dropped) or drop_newest
 *   (the new message is settled as dropped). Every drop is counted.
 *
 *   Health. `busy_since` is the monotonic time the worker entered a plugin
 *   call, 0 outside calls: a value older than stuck_timeout means the worker
 *   is wedged (the daemon then stops the watchdog pings). Waiting for work
 *   or sleeping between retries is not "busy".
 *
 *   Stop. backend_stop() asks the worker to drain its queue until a deadline,
 *   flush, call shutdown and exit; what is left is settled as undelivered
 *   and counted. The main thread learns about it through the hub.
 *
 *   Hand-over. A reload that replaces a backend by a new instance of the
 *   same name (backend_hand_over) stops the old one differently: it commits
 *   the batch it had inserted and gives everything else, in order, to the
 *   new instance, which takes it before its own queue (backend.c).
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "admin.h"
#include "config.h"
#include "message.h"
#include "plugin.h"
#include "queue.h"
#include "ratelimit.h"
#include "spool.h"

typedef enum backend_state {
        BACKEND_INITIALIZING,
        BACKEND_RUNNING,
        BACKEND_FAILED,      /* init failed; the backend is discarded */
        BACKEND_STOPPING,
        BACKEND_STOPPED,     /* worker exited */
} backend_state;

const char *backend_state_to_string(backend_state s);

typedef struct backend backend;       /* opaque: see the accessors below */
typedef struct spw_config_ref spw_config_ref;

/* A snapshot of a backend's counters (they are atomics, read one by one). */
typedef struct backend_counters {
        uint64_t received;        /* submitted to the queue */
        uint64_t inserted;        /* insert() succeeded */
        uint64_t flushed;         /* signals made durable by a successful flush */
        uint64_t failed;          /* given up: rejected, retries exhausted, undelivered */
        uint64_t retried;         /* retry attempts (insert or flush) */
        uint64_t dropped;         /* queue-full drops */
        uint64_t flushes;         /* successful flush() calls */
        uint64_t undelivered;     /* left at stop */
        uint64_t handed_over;     /* given to the new instance of a reload (not delivered here) */
        uint64_t inherited;       /* taken from the instance a reload replaced (not in `received`) */
} backend_counters;

/* Start the worker; it calls init() and returns to the caller once init has
 * finished (or init_timeout passed). On an init failure the backend is
 * returned in BACKEND_FAILED state with init_error filled: the caller logs
 * and frees it. */
#define BACKEND_INIT_TIMEOUT (30 * USEC_PER_SEC)
int backend_start(const backend_config *cfg, spw_config_ref *config_ref, spw_plugin *plugin, hub *h,
                  const char *state_dir, usec_t stuck_timeout, usec_t init_timeout, bool autocommit, backend **ret);

backend *backend_ref(backend *b);
backend *backend_unref(backend *b);   /* main thread; frees a stopped backend */

/* Push a message; applies the full-queue policy. Returns
 *   0         queued
 *   -EAGAIN   full and the policy is block (nothing queued: park and retry)
 *   1         queued, and the oldest message was dropped
 *   2         the new message was dropped (drop_newest)
 *   -ESHUTDOWN the backend is stopping */
int backend_submit(backend *b, spw_msg *m);

void backend_post_job(backend *b, admin_job *j);

/* Ask the worker to drain until `deadline` (monotonic), then shut down. */
void backend_stop(backend *b, usec_t deadline);
/* Join the worker once it reported BACKEND_STOPPED (main thread). */
void backend_join(backend *b);

bool backend_is_stuck(backend *b, usec_t now, usec_t *busy_for);
/* Inside a plugin call right now (not waiting for work). */
bool backend_busy(backend *b);
backend_state backend_get_state(backend *b);
bool backend_can(const backend *b, const char *op);  /* "read_at", "delete_target", "delete_all", "read_changes" */

/* What the main thread may read about a backend. */
const char *backend_name(const backend *b);
const backend_config *backend_cfg(const backend *b);
const spw_plugin *backend_plugin(const backend *b);
usec_t backend_stuck_timeout(const backend *b);
void backend_get_counters(backend *b, backend_counters *ret);
/* Signals waiting: in the queue, or (durability: disk) in the spool, not
 * yet committed by a flush. */
size_t backend_queue_depth(backend *b);
/* durability: disk. False (ret untouched) for a memory backend. */
bool backend_spool_stats(backend *b, spool_stats *ret);
bool backend_is_durable(const backend *b);
/* Its spool (dead-letter admin ops), NULL for a memory backend. */
spool *backend_spool(backend *b);
size_t backend_queue_capacity(const backend *b);
size_t backend_queue_high_water(backend *b);
/* True if a push would succeed now; if not, the hub hears of room later. */
bool backend_queue_room_or_arm(backend *b);
/* Wake the worker if signals wait (once per burst of submits). */
void backend_wake(backend *b);
/* Removed by a reload: takes no new signals, drains until `deadline`. */
void backend_retire(backend *b, usec_t deadline);
bool backend_is_retiring(const backend *b);
/* Replaced by a reload with `successor`, a new instance of the same name
 * (running, its queue still empty: call before submitting to it). Like
 * backend_retire, but what this one has not committed moves to the
 * successor, in order, instead of being failed: its queue, the signals it
 * holds, and its inserted batch if that batch's flush fails. The successor
 * takes them before its own queue, which waits for them until `deadline`.
 * A disk-spooled backend is only retired: the successor shares its spool. */
void backend_hand_over(backend *b, backend *successor, usec_t deadline);
/* Rate limit of the main thread's queue-full warnings for this backend. */
bool backend_drop_warning_allowed(backend *b, uint64_t *suppressed);

/* Copy of last_error and its time; plugin status as a JSON object. */
void backend_last_error(backend *b, char *buf, size_t size, usec_t *at);
json_t *backend_status_json(backend *b);

/* The host services table given to every plugin. */
extern const struct spw_host backend_host;

/* Reference-counted wrapper of a spw_config, so backends keep the config
 * they were started with alive across reloads (main thread only). */
struct spw_config_ref {
        spw_config *config;
        unsigned refs;
};

spw_config_ref *config_ref_new(spw_config *c);  /* takes ownership */
spw_config_ref *config_ref_ref(spw_config_ref *r);
spw_config_ref *config_ref_unref(spw_config_ref *r);
