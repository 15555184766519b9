/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The engine: the loaded configuration, the backends it started, the
 * router (profiles.yaml), and the fan-out of each signal to its backends.
 * Everything here runs on the main thread except what backend.c runs on
 * the workers.
 *
 * Backends are kept in configuration order, aligned with the router's
 * backend indexes; a backend whose init failed has a NULL slot and a
 * recorded reason (status shows it as failed).
 */

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "backend.h"
#include "config.h"
#include "message.h"
#include "ratelimit.h"
#include "route.h"
#include "strbuf.h"

#define ENGINE_MAX_BACKENDS 64

typedef struct engine_options {
        bool allow_unsafe_plugins;   /* skip the owner/permission check (tests, quick start) */
        usec_t init_timeout;         /* how long to wait for a backend's init; 0: BACKEND_INIT_TIMEOUT (tests shorten it) */
} engine_options;

typedef struct engine engine;         /* opaque: see the accessors below */

/* Load plugins, validate, load profiles, start every backend (init runs on
 * its worker). Fails if the configuration is invalid or no backend could
 * start; a single backend's init failure is recorded, not fatal. */
int engine_new(spw_config *c, const engine_options *o, engine **ret, spw_error *err);
/* Stop every backend (drain until deadline) and free; blocks. */
engine *engine_free(engine *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(engine *, engine_free);

/* A warning found while loading (the configuration still works). */
typedef void (*engine_warning_fn)(const char *text, void *userdata);

/* Everything engine_new checks, without starting anything. Logs nothing:
 * errors go to err, warnings to warn (may be NULL). */
int engine_check_config(spw_config *c, const engine_options *o, engine_warning_fn warn, void *userdata, spw_error *err);

/* The targets of one message, with references held (main thread). */
typedef struct fanout {
        backend *targets[ENGINE_MAX_BACKENDS];
        size_t n_targets;
        char *unavailable;           /* routed to backends that are not running, or NULL */
} fanout;

void fanout_release(fanout *f);

/* Route a message (profiles, bans) and fill its targets. Logs ban
 * decisions and routing warnings (rate-limited). Routing a message again
 * (after a reload) replaces the bans of the previous routing: the result
 * depends on the producer's signal and the current profiles only. */
int engine_route(engine *e, spw_msg *m, fanout *f);

typedef struct push_result {
        backend *blocked;            /* -EAGAIN: this block-policy queue is full */
        char dropped[256];           /* names of backends that dropped a message, comma separated */
} push_result;

/* Push to every target. -EAGAIN: a block-policy target is full, nothing was
 * pushed (park the request and retry when the hub reports space). */
int engine_push(engine *e, spw_msg *m, fanout *f, push_result *res);

/* Wake the workers of backends that received messages since the last call
 * (pushes do not wake them one by one: the main loop calls this once per
 * burst). */
void engine_wake(engine *e);

/* Swap in a new configuration, in three steps so that the slow part (new
 * backends' init, up to 30 s each) runs off the main loop while the old
 * configuration keeps serving:
 *   engine_next_new      main thread: snapshot which backends run;
 *   engine_next_prepare  any thread: load plugins, profiles, start the new
 *                        and changed backends (blocks); takes c;
 *   engine_next_commit   main thread: swap atomically. Unchanged backends
 *                        keep their queue and thread; a changed one hands
 *                        what it has not delivered to its new instance
 *                        (backend_hand_over), or keeps serving if the new
 *                        instance failed to start; removed ones drain in
 *                        the background. Always consumes n.
 * On error the old configuration keeps running and err says why;
 * engine_next_free() discards a prepared configuration (its new backends
 * stop). One reload at a time. */
typedef struct engine_next engine_next;
int engine_next_new(engine *e, engine_next **ret);
int engine_next_prepare(engine_next *n, spw_config *c, spw_error *err);
int engine_next_commit(engine *e, engine_next *n);
engine_next *engine_next_free(engine_next *n);
DEFINE_TRIVIAL_CLEANUP_FUNC(engine_next *, engine_next_free);

/* The three steps at once, on the calling (main) thread. */
int engine_reload(engine *e, spw_config *c, spw_error *err);

/* Ask every backend to drain and stop by `deadline` (monotonic). */
void engine_stop(engine *e, usec_t deadline);
bool engine_all_stopped(engine *e);
/* Free retiring backends whose workers exited. */
void engine_reap(engine *e);

backend *engine_find(engine *e, const char *name);
/* The backend that answers `ban list` (ban_backend, or the first that can). */
backend *engine_ban_backend(engine *e, const char *name);
const spw_config *engine_config(engine *e);

/* The configured backends, in configuration order (bit i of the router's
 * masks). engine_backend() is NULL for a backend whose init failed;
 * engine_backend_error() then says why. */
size_t engine_n_backends(engine *e);
const char *engine_backend_name(engine *e, size_t i);
backend *engine_backend(engine *e, size_t i);
const char *engine_backend_error(engine *e, size_t i);
/* Backends removed by a reload, still draining. */
size_t engine_n_retiring(engine *e);
backend *engine_retiring(engine *e, size_t i);
/* NULL: no profiles file, every signal goes to every backend. */
const spw_router *engine_router(engine *e);
/* The ban-history index (GetDecisionsCount) and the ban sync that feeds
 * it and the enforcement backends (NULL: no ban backend with a change
 * log). Kick: walk the change log now (after `spillwayctl ban ...`). */
typedef struct banhist banhist;
typedef struct bansync bansync;
banhist *engine_banhist(engine *e);
bansync *engine_bansync(engine *e);
void engine_bansync_kick(engine *e);
/* status: {records, targets, max, evicted, lookups, hits, sync: {...}} */
json_t *engine_bansync_json(engine *e);
/* Prometheus lines of the same. */
void engine_bansync_metrics(engine *e, strbuf *m);

/* A new signal id (main thread). */
uint64_t engine_next_signal_id(engine *e);
/* Signals in a queue, or a worker inside a plugin call. */
bool engine_busy(engine *e);
/* Where workers hand results back to the main thread. */
hub *engine_hub(engine *e);
