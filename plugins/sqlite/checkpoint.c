/* SPDX-License-Identifier: MIT */
/*
 * checkpoint.c -- WAL checkpoints on a thread of their own.
 *
 * By default SQLite checkpoints the WAL inside the commit that takes it past
 * 1,000 pages: that commit copies the pages back into the database file and
 * (synchronous=normal) fsyncs it, several milliseconds during which the worker
 * and every producer waiting for a `flushed` ack wait. With one signal per
 * commit (lock-step producers) that is every few hundred signals, and it was
 * most of the commit cost: the ceiling at one signal per transaction went from
 * about 1,800 to 7,100 commits/s on a loaded 2-core VM without it, and the
 * daemon's p99 ack latency from 16 to 3 ms.
 *
 * Here the writer connection's WAL hook only looks at the page count and
 * wakes a thread that holds a second connection to the same file and runs a
 * PASSIVE checkpoint: it copies what no reader still needs without taking the
 * writer's lock, so commits go on meanwhile, on the other core. The next write
 * transaction after a complete checkpoint starts the WAL again from its
 * beginning, so the file stays at the size of one checkpoint's worth.
 *
 * Bounds: past hard_pages (the thread fell behind: a reader held old pages,
 * the disk is slow) the writer runs a PASSIVE checkpoint itself in the hook,
 * as SQLite's automatic checkpoint would, so the WAL cannot grow without
 * bound. If the thread cannot be started, the writer keeps SQLite's automatic
 * checkpoints.
 *
 * Threads: the hook runs on the writer's thread (the backend's worker); the
 * checkpoint connection is used only by the checkpoint thread once started,
 * which calls nothing of the daemon's: the writer's thread polls its
 * counters and verdict (bandb_ckpt_get_stats, bandb_ckpt_take_report).
 * Both connections are NOMUTEX: each is only ever used by one thread. SQLite's
 * unix VFS shares one set of POSIX locks per file inside the process, so a
 * second connection does not drop the first one's locks when it closes.
 */

#include "checkpoint.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct bandb_ckpt {
        sqlite3 *writer;
        sqlite3 *db;                    /* the thread's own connection */
        unsigned soft_pages, hard_pages;

        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t wake;
        bool pending;                   /* the WAL passed soft_pages since the last run */
        bool stop;
        bandb_ckpt_stats stats;
        int last_rc;                    /* of the thread's last run (not SQLITE_BUSY) */
        bool report;                    /* last_rc changed between ok and failing: not taken yet */
        char last_msg[256];
};

static uint64_t mono_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

/* With c->lock held. */
static void ckpt_count(bandb_ckpt *c, bool in_writer, bool failed, uint64_t took) {
        if (in_writer)
                c->stats.inline_runs++;
        else
                c->stats.runs++;
        if (failed)
                c->stats.failures++;
        if (took > c->stats.longest_usec)
                c->stats.longest_usec = took;
}

static void *ckpt_main(void *arg) {
        bandb_ckpt *c = arg;

        pthread_mutex_lock(&c->lock);
        for (;;) {
                while (!c->stop && !c->pending)
                        pthread_cond_wait(&c->wake, &c->lock);
                if (c->stop)
                        break;
                c->pending = false;
                pthread_mutex_unlock(&c->lock);

                uint64_t t0 = mono_usec();
                int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
                uint64_t took = mono_usec() - t0;
                /* BUSY: the writer's own checkpoint (past hard_pages) runs;
                 * the next wake-up tries again */
                bool busy = (rc & 0xff) == SQLITE_BUSY;
                bool failed = rc != SQLITE_OK && !busy;

                pthread_mutex_lock(&c->lock);
                ckpt_count(c, false, failed, took);
                if (!busy && (failed ? rc != c->last_rc : c->last_rc != SQLITE_OK)) {
                        c->last_rc = rc;
                        c->report = true;
                        snprintf(c->last_msg, sizeof c->last_msg, "%s", failed ? sqlite3_errmsg(c->db) : "");
                }
        }
        pthread_mutex_unlock(&c->lock);
        return NULL;
}

static int ckpt_is_wal(sqlite3 *db) {
        sqlite3_stmt *st = NULL;
        int r = -EIO;

        if (sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        if (sqlite3_step(st) == SQLITE_ROW)
                r = sqlite3_stricmp((const char *) sqlite3_column_text(st, 0), "wal") == 0 ? 0 : -ENOTSUP;
        sqlite3_finalize(st);
        return r;
}

/* The writer's WAL hook, after each commit: pages is the WAL's size. */
static int ckpt_hook(void *arg, sqlite3 *db, const char *schema, int pages) {
        bandb_ckpt *c = arg;

        if (pages < 0 || (unsigned) pages < c->soft_pages)
                return SQLITE_OK;
        if ((unsigned) pages >= c->hard_pages) {
                /* what SQLite's automatic checkpoint does, only later; its
                 * failure is not the commit's (which has happened) */
                uint64_t t0 = mono_usec();
                (void) sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
                uint64_t took = mono_usec() - t0;
                pthread_mutex_lock(&c->lock);
                ckpt_count(c, true, false, took);
                pthread_mutex_unlock(&c->lock);
                return SQLITE_OK;
        }
        pthread_mutex_lock(&c->lock);
        if (!c->pending) {
                c->pending = true;
                pthread_cond_signal(&c->wake);
        }
        pthread_mutex_unlock(&c->lock);
        return SQLITE_OK;
}

int bandb_ckpt_start(sqlite3 *writer, const char *path, unsigned soft_pages, unsigned hard_pages,
                     bandb_ckpt **ret) {
        bandb_ckpt *c;
        int r;

        if (!writer || !path || !ret || soft_pages == 0 || hard_pages <= soft_pages)
                return -EINVAL;
        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->writer = writer;
        c->soft_pages = soft_pages;
        c->hard_pages = hard_pages;
        c->last_rc = SQLITE_OK;

        if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
                sqlite3_close(c->db);
                free(c);
                return -EIO;
        }
        /* A connection sees the WAL only once it has read the file's header
         * (until then a checkpoint is a no-op that reports success). */
        r = ckpt_is_wal(c->db);
        if (r < 0) {
                sqlite3_close(c->db);
                free(c);
                return r;
        }
        r = pthread_mutex_init(&c->lock, NULL);
        if (r != 0)
                goto fail_db;
        r = pthread_cond_init(&c->wake, NULL);
        if (r != 0)
                goto fail_mutex;
        r = pthread_create(&c->thread, NULL, ckpt_main, c);
        if (r != 0)
                goto fail_cond;
        /* replaces the automatic checkpoint, which is a WAL hook itself */
        sqlite3_wal_hook(writer, ckpt_hook, c);
        *ret = c;
        return 0;

fail_cond:
        pthread_cond_destroy(&c->wake);
fail_mutex:
        pthread_mutex_destroy(&c->lock);
fail_db:
        sqlite3_close(c->db);
        free(c);
        return -r;
}

void bandb_ckpt_stop(bandb_ckpt *c) {
        if (!c)
                return;
        sqlite3_wal_autocheckpoint(c->writer, BANDB_CKPT_SOFT_PAGES);
        pthread_mutex_lock(&c->lock);
        c->stop = true;
        pthread_cond_signal(&c->wake);
        pthread_mutex_unlock(&c->lock);
        pthread_join(c->thread, NULL);
        pthread_cond_destroy(&c->wake);
        pthread_mutex_destroy(&c->lock);
        sqlite3_close(c->db);
        free(c);
}

bool bandb_ckpt_take_report(bandb_ckpt *c, int *rc, char *msg, size_t size) {
        bool r;

        pthread_mutex_lock(&c->lock);
        r = c->report;
        if (r) {
                c->report = false;
                *rc = c->last_rc;
                snprintf(msg, size, "%s", c->last_msg);
        }
        pthread_mutex_unlock(&c->lock);
        return r;
}

void bandb_ckpt_get_stats(bandb_ckpt *c, bandb_ckpt_stats *ret) {
        pthread_mutex_lock(&c->lock);
        *ret = c->stats;
        pthread_mutex_unlock(&c->lock);
}
