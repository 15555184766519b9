/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Ban sync: the ban database (the ban_backend) is the truth; enforcement
 * backends (nftables) and the ban-history index follow it.
 *
 * DESIGN
 *   - One thread, "spw-bansync". Every `interval` (and at once after
 *     bansync_kick) it posts a JOB_CHANGES job to the ban backend's worker
 *     (the only thread that may call that plugin) and waits for it: the
 *     worker commits its open batch, then calls read_changes(cursor) and
 *     hands each change to this module, which copies it.
 *   - Delivery, in change order, to every subscriber (enforcement backends:
 *     running backends other than the source that can delete bans and do
 *     not keep a change log of their own) as admin jobs on their workers:
 *     runs of ADDs become one JOB_INSERT of a signal carrying those bans,
 *     a DELETE becomes JOB_DELETE of its target. A walk that starts from
 *     nothing (cursor 0: at start, after a reload, or a reader that fell
 *     behind, SPW_CHANGE_RESYNC) becomes one JOB_RESYNC: delete_all and the
 *     insert of every active ban in one batch, so the sets are replaced in
 *     one transaction with no moment without bans. Targets that are not an
 *     address or a CIDR (other decision scopes) and bans that already
 *     ended are not sent. The thread waits for the subscribers' jobs before
 *     it moves its cursor: a failed delivery is read again next time.
 *   - History: every ADD is recorded in the ban-history index (banhist.h),
 *     which knows a ban seen twice by its target and end. At start (not at
 *     a reload: the index outlives it) the index is first loaded with every
 *     ban the source keeps (read_history, ABI 2.2); a source without it
 *     starts the index from the active bans of the first walk.
 *   - Start: bansync_wait_first() blocks (bounded) until the first walk
 *     has been delivered, so the daemon sends READY=1 only once the kernel
 *     sets hold the ban database's active bans.
 *   - Stop: bansync_free() is called before the backends stop and never
 *     waits for a job: a worker may be retrying a failing batch until the
 *     stop that follows. The thread exits at once; jobs still out keep the
 *     struct alive (the last one back frees it), and a stopped backend
 *     hands back the jobs it never ran (-ECANCELED).
 *   - A source without read_changes (a plugin built for ABI 2.0) gets no
 *     thread: bansync_new() returns -EOPNOTSUPP and the caller logs it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "banhist.h"
#include "timeutil.h"

typedef struct bansync bansync;

#define BANSYNC_DEFAULT_INTERVAL (2 * USEC_PER_SEC)
/* While the ban database has bans but an empty change log (rows written
 * outside Spillway, a database migrated from CrowdSec), each walk reads
 * every active ban again: at most this often. */
#define BANSYNC_NO_LOG_INTERVAL (60 * USEC_PER_SEC)
/* A walk reads at most this many changes, then the next walk follows at
 * once: the copies wait in memory until delivered (a walk of every change
 * since the last one held 7 MiB after 50,000 bans in 2 s, issue 17). A
 * walk from nothing (RESYNC: every active ban) is one walk. */
#define BANSYNC_PAGE 4096

typedef struct bansync_options {
        usec_t interval;       /* between walks; 0: BANSYNC_DEFAULT_INTERVAL */
        bool load_history;     /* first read the source's ban history into hist (start) */
} bansync_options;

/* Start following `source` for `subs` (references are taken) and `hist`
 * (may be NULL; must outlive the bansync). */
int bansync_new(backend *source, backend *const *subs, size_t n_subs, banhist *hist, const bansync_options *o,
                bansync **ret);
bansync *bansync_free(bansync *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(bansync *, bansync_free);

/* Block until the first walk was delivered (or failed), at most `timeout`.
 * Returns 0, the walk's error, or -ETIMEDOUT. */
int bansync_wait_first(bansync *s, usec_t timeout);

/* Walk now (after `spillwayctl ban add/del/flush`). Any thread. */
void bansync_kick(bansync *s);

typedef struct bansync_stats {
        uint64_t walks;        /* completed */
        uint64_t failures;     /* walks or deliveries that failed */
        uint64_t adds, deletes, resyncs;
        uint64_t cursor;
        uint64_t history_loaded; /* bans read by the history load at start */
        usec_t last_ok;        /* realtime of the last good walk, 0: none */
        char last_error[512];
} bansync_stats;

void bansync_get_stats(bansync *s, bansync_stats *ret);
const char *bansync_source_name(const bansync *s);
