/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Administrative jobs: ban list/add/delete/flush requests that must run on
 * a backend's own worker thread (the plugin is only ever called there). The
 * main thread fills one, sets its completion function (done.fn) and hands it
 * to backend_post_job(); the worker runs it, fills the result and posts it
 * to the hub (hub.h); the main thread runs done.fn, which replies and frees
 * the job.
 */

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "hub.h"
#include "ipaddr.h"
#include "macro.h"
#include "message.h"
#include "strbuf.h"
#include "timeutil.h"

typedef struct admin_job admin_job;

/* A JOB_LIST whose caller set chunk_fn streams: the worker hands the rows
 * over in chunks of about ADMIN_LIST_CHUNK bytes through the hub, in
 * order, and done.fn comes after the last one. Back-pressure: while more
 * than ADMIN_LIST_WINDOW bytes handed over are not yet taken (the taker
 * calls admin_job_list_taken() as its client reads them), the worker
 * waits; after max_wait of waiting in all, or when the taker cancels
 * (client gone), it stops the listing and fails the job. So a list of a
 * million bans costs about a window of memory, not the whole reply, and a
 * reader that does not read holds the backend's worker for max_wait at
 * most. Without chunk_fn the whole list is left in `rows`. */
#define ADMIN_LIST_CHUNK  ((size_t) 128 << 10)
#define ADMIN_LIST_WINDOW ((size_t) 1 << 20)

typedef enum admin_job_type {
        JOB_LIST,        /* read_at + filter */
        JOB_DELETE,      /* delete_target */
        JOB_DELETE_ALL,  /* delete_all */
        JOB_INSERT,      /* insert msg, then flush */
        JOB_CHANGES,     /* flush, then read_changes from `cursor` (bansync.c) */
        JOB_RESYNC,      /* delete_all, insert msg (may be NULL), flush: one batch (bansync.c) */
        JOB_HISTORY,     /* flush, then read_history since `at` into change_fn (bansync.c) */
} admin_job_type;

typedef struct ban_filter {
        char *scope;      /* exact, case-insensitive: Ip, Range, Country... */
        bool has_ip;      /* bans whose target contains this address */
        ip_range ip;
        bool has_range;   /* bans whose target lies inside this range */
        ip_range range;
        char *reason;     /* case-insensitive substring */
        char *country;    /* exact, case-insensitive */
        char *as;         /* case-insensitive substring of AS name or number */
} ban_filter;

struct admin_job {
        admin_job_type type;
        char *backend;            /* name, for replies and logs */
        /* input */
        usec_t at;
        ban_filter filter;
        size_t limit;             /* 0: no limit */
        char *target;
        spw_msg *msg;
        /* output */
        int r;
        char error[512];
        uint64_t count;           /* deleted rows */
        strbuf rows;              /* JOB_LIST: the rows as JSON objects, comma separated */
        size_t n_rows;            /* JOB_LIST: rows listed */
        size_t total;             /* JOB_LIST: matching rows, shown or not */
        /* JOB_CHANGES, JOB_HISTORY: change_fn(change, change_userdata) on
         * the worker per change; cursor is the start, next_cursor where the
         * walk ended (JOB_CHANGES) */
        uint64_t cursor, next_cursor;
        spw_change_fn change_fn;
        void *change_userdata;
        /* JOB_LIST streaming (see above); chunk_fn runs on the main thread
         * and owns data (discard: the hub is torn down; free it only) */
        void (*chunk_fn)(admin_job *j, char *data, size_t len, bool discard);
        usec_t max_wait;
        pthread_mutex_t flow_lock;
        pthread_cond_t flow_cond;
        size_t in_flight;         /* bytes handed over, not yet taken */
        bool cancel;              /* the taker is gone */
        bool streamed;            /* some rows went out as chunks already */
        /* bookkeeping */
        void *cookie;             /* main thread: the waiting request */
        /* If set, the worker calls it once the job ran, instead of posting
         * `done` to the hub (a waiting thread that is not the main one,
         * bansync.c); it owns the job from then on. */
        void (*worker_done)(admin_job *j);
        admin_job *next;          /* the backend's job list */
        hub_item done;            /* posted when the job ran; done.fn frees the job */
};

/* done.fn starts as a function that only frees the job. */
admin_job *admin_job_new(admin_job_type type);
admin_job *admin_job_free(admin_job *j);
DEFINE_TRIVIAL_CLEANUP_FUNC(admin_job *, admin_job_free);

/* Main thread, streaming lists: n bytes of chunks were taken; or the
 * taker is gone (the worker stops at its next row). */
void admin_job_list_taken(admin_job *j, size_t n);
void admin_job_list_cancel(admin_job *j);
/* Worker: hand the rows gathered so far over as a chunk (posted to h),
 * then wait for room in the window. -ECANCELED: cancelled; -ETIMEDOUT:
 * the taker took nothing for max_wait in all. */
int admin_job_list_push(admin_job *j, hub *h);

/* Does a row match? (used by the worker while walking read_at rows) */
bool ban_filter_match(const ban_filter *f, const spw_ban_row *row);
/* Append a row as one compact JSON object (no DOM: a list of 100,000 bans
 * must not cost a jansson object per field). */
void ban_row_append_json(strbuf *b, const spw_ban_row *row);
