/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Routing: profiles.yaml decides, for each signal, which backends receive
 * it and which ban applications it carries. Both CrowdSec grammars are read
 * unchanged: v0.3 (`profile`, `filter`, `remediation`, `api`, `outputs`) and
 * v1 (`name`, `filters`, `decisions`, `notifications`, `on_success`,
 * `on_failure`, `debug`); one file uses one of them. README.md in this folder
 * documents the grammar, the filter language and the routing rules.
 *
 * A router is immutable once loaded. router_route() evaluates the profiles'
 * compiled filters, whose value stacks and scratch buffers are per
 * expression (see expr.h): call it from one thread at a time per router
 * (the daemon's main thread). Loading is thread-safe.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <spillway/backend.h>

#include "arena.h"
#include "error.h"
#include "expr.h"
#include "macro.h"
#include "timeutil.h"

typedef struct spw_router spw_router;

enum {
        ROUTE_BACKEND_STORES_BANS = 1 << 0, /* the sqlite/mysql ban databases */
        /* the ban-history index follows this backend: GetDecisionsCount()
         * and GetDecisionsSinceCount() may be used (router_route_history) */
        ROUTE_BACKEND_HISTORY = 1 << 1,
};

/* At most this many backends (one bit each in the masks below). */
#define ROUTE_MAX_BACKENDS 64

/* Load profiles (v0.3 or v1 grammar, multi-document). `backends` are the
 * names of the loaded backends, index i = bit i in masks below (at most 64;
 * more is a load error); backend_flags[i] says what backend i does
 * (ROUTE_BACKEND_STORES_BANS for the sqlite/mysql ban databases;
 * backend_flags may be NULL: no flags). An output/notification naming a
 * backend not in the list is an error (file:line:column, the name, the
 * loaded names). A file without any profile is an error too. On error,
 * err holds "file:line:column: key: what was expected". */
int router_load_file(const char *path, const char *const *backends, const unsigned *backend_flags,
                     size_t n_backends, spw_router **ret, spw_error *err);
int router_load_buffer(const char *filename, const char *buf, size_t len,
                       const char *const *backends, const unsigned *backend_flags, size_t n_backends,
                       spw_router **ret, spw_error *err);
spw_router *router_free(spw_router *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(spw_router *, router_free);
size_t router_n_profiles(const spw_router *r);

typedef enum route_grammar {
        ROUTE_GRAMMAR_V03 = 0, /* CrowdSec v0.3: profile/filter/remediation/outputs */
        ROUTE_GRAMMAR_V1 = 1,  /* CrowdSec v1: name/filters/decisions/notifications */
} route_grammar;

route_grammar router_grammar(const spw_router *r);

/* What a profile is, for `spillwayctl route test`, logs and load-time checks
 * (e.g. the daemon can warn about a v1 profile with decisions and no ban
 * database: its `backends` is then 0). Strings are owned by the router. */
typedef struct route_profile_info {
        const char *name;
        const char *filename;
        unsigned line, column;
        route_grammar grammar;
        size_t n_filters;          /* 0: matches every signal (v0.3 empty filter) */
        const char *const *filters; /* their source text */
        size_t n_decisions;        /* ban applications per signal, at most */
        uint64_t backends;         /* delivered to when the profile matches */
        bool api;                  /* v0.3 `api` (accepted; nothing is pushed anywhere) */
        bool debug;                /* v1 `debug` */
        bool break_on_success;     /* v1 on_success: break */
        bool break_on_failure;     /* v1 on_failure: break */
        const char *duration_expr; /* v1 duration_expr's source text, or NULL */
} route_profile_info;

/* Returns 0, or -ENOENT when i >= router_n_profiles(r). */
int router_profile_info(const spw_router *r, size_t i, route_profile_info *ret);

typedef struct route_match {
        const char *profile;     /* name, owned by the router */
        unsigned line;           /* where the profile starts in its file */
        const spw_ban *bans;     /* bans created by this profile (in the arena) */
        size_t n_bans;
        uint64_t backends;       /* backends this profile delivers to (store != false) */
        size_t index;            /* the profile's index, for router_profile_info() */
} route_match;

typedef struct route_warning {
        const char *profile;
        int level;               /* LOG_WARNING (runtime type error, bad scope) or LOG_DEBUG (no source: no ban) */
        const char *message;     /* e.g. "filter at profiles.yaml:3:9: cannot compare string with int" */
} route_warning;

typedef struct route_result {
        uint64_t backends;       /* union over matching profiles */
        spw_ban *bans;           /* all bans created, in the arena */
        size_t n_bans;
        route_match *matches;    /* matching profiles in evaluation order */
        size_t n_matches;
        route_warning *warnings; /* runtime problems: a warning-level one means that profile was skipped */
        size_t n_warnings;
        const char *stopped_by;  /* profile whose on_success/on_failure: break ended the walk, or NULL */
} route_result;

/* Evaluate every profile in file order for one signal. Results (bans,
 * strings, arrays) are allocated in `a` (the signal's arena, src/util/arena.h).
 * The expression evaluation itself does not allocate; when nothing matches
 * and nothing goes wrong, nothing is allocated at all.
 *
 * Lifetimes: ban strings are copied into `a` or point into `sig` (its
 * scenario, country, AS name): bans live as long as the signal and its
 * arena. Profile names (route_match.profile, route_warning.profile) belong
 * to the router: use them before the router is freed (e.g. for logging).
 *
 * Returns 0, or -ENOMEM (res is then empty). Filter errors at run time are
 * not failures: they are route_warnings. */
int router_route(const spw_router *r, const spw_signal *sig, usec_t now, arena *a, route_result *res);

/* The same, with the ban history that GetDecisionsCount() and
 * GetDecisionsSinceCount() ask (expr.h's expr_history_fn; it must answer
 * from memory). Without it (router_route) they are run-time errors, and the
 * profile's decisions keep their `duration`. */
int router_route_history(const spw_router *r, const spw_signal *sig, usec_t now, expr_history_fn history,
                         void *history_userdata, arena *a, route_result *res);
