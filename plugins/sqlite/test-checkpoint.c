/* SPDX-License-Identifier: MIT */
/*
 * test-checkpoint.c -- the WAL checkpoint thread against real database files:
 * commits past the soft threshold wake the thread (and are not checkpointed
 * in the commit), a reader that pins the WAL makes the writer checkpoint
 * itself past the hard threshold, the WAL restarts after a thread
 * checkpoint, and stop gives the writer SQLite's automatic checkpoint back.
 */

#include "checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int failures;

#define CHECK(cond)                                                                                  \
        do {                                                                                         \
                if (!(cond)) {                                                                       \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);      \
                        failures++;                                                                  \
                }                                                                                    \
        } while (0)

static void exec(sqlite3 *db, const char *sql) {
        char *err = NULL;

        if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
                fprintf(stderr, "%s: %s\n", sql, err);
                exit(1);
        }
}

static sqlite3 *open_db(const char *path) {
        sqlite3 *db = NULL;

        if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK) {
                fprintf(stderr, "%s: %s\n", path, sqlite3_errmsg(db));
                exit(1);
        }
        return db;
}

/* One commit of about `pages` new pages (4 KiB rows of random bytes). */
static void commit_pages(sqlite3 *db, int pages) {
        char sql[160];

        snprintf(sql, sizeof sql, "INSERT INTO t(b) SELECT randomblob(4000) FROM generate_series(1, %d)", pages);
        if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
                /* no generate_series in this build: a recursive CTE */
                snprintf(sql, sizeof sql,
                         "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d) "
                         "INSERT INTO t(b) SELECT randomblob(4000) FROM n", pages);
                exec(db, sql);
        }
}

static off_t file_size(const char *path) {
        struct stat st;

        return stat(path, &st) == 0 ? st.st_size : -1;
}

static bandb_ckpt_stats wait_runs(bandb_ckpt *c, uint64_t runs) {
        bandb_ckpt_stats s;

        for (int i = 0; i < 1000; i++) {
                bandb_ckpt_get_stats(c, &s);
                if (s.runs >= runs)
                        break;
                nanosleep(&(struct timespec) { .tv_nsec = 10 * 1000 * 1000 }, NULL);
        }
        return s;
}


int main(void) {
        char dir[] = "/tmp/spw-test-checkpoint-XXXXXX", path[256], wal[300];
        bandb_ckpt_stats s;
        bandb_ckpt *c = NULL;
        sqlite3 *w, *reader;

        if (!mkdtemp(dir))
                return 1;
        snprintf(path, sizeof path, "%s/t.db", dir);
        snprintf(wal, sizeof wal, "%s-wal", path);
        /* a database not in WAL mode has nothing to checkpoint: refused */
        w = open_db(path);
        exec(w, "CREATE TABLE r(x)");
        CHECK(bandb_ckpt_start(w, path, 50, 400, &c) < 0 && !c);

        exec(w, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; CREATE TABLE t(b BLOB)");

        /* bad arguments leave the writer as it was */
        CHECK(bandb_ckpt_start(w, path, 0, 10, &c) < 0 && !c);
        CHECK(bandb_ckpt_start(w, path, 10, 10, &c) < 0 && !c);

        CHECK(bandb_ckpt_start(w, path, 50, 400, &c) == 0 && c);
        if (!c)
                return 1;

        /* below the soft threshold: nothing runs */
        commit_pages(w, 20);
        nanosleep(&(struct timespec) { .tv_nsec = 100 * 1000 * 1000 }, NULL);
        bandb_ckpt_get_stats(c, &s);
        CHECK(s.runs == 0);

        /* past it: the thread checkpoints, the commit did not */
        commit_pages(w, 60);
        s = wait_runs(c, 1);
        CHECK(s.runs >= 1);
        CHECK(s.inline_runs == 0);
        CHECK(s.failures == 0);
        CHECK(s.longest_usec > 0);

        /* a complete checkpoint lets the next write start the WAL again:
         * many commits past the threshold keep it near one checkpoint's worth
         * (SQLite's automatic checkpoint is off: without the thread the WAL
         * would hold every page written below) */
        for (int i = 0; i < 40; i++) {
                commit_pages(w, 30);
                nanosleep(&(struct timespec) { .tv_nsec = 20 * 1000 * 1000 }, NULL);
        }
        bandb_ckpt_get_stats(c, &s);
        CHECK(s.runs >= 5);
        CHECK(file_size(wal) < (off_t) 400 * 4200);
        CHECK(s.inline_runs == 0);

        /* a reader holding an old snapshot: the thread cannot copy past it,
         * the WAL grows, and past the hard threshold the writer checkpoints
         * itself (counted) */
        reader = open_db(path);
        exec(reader, "BEGIN; SELECT count(*) FROM t");
        for (int i = 0; i < 10; i++)
                commit_pages(w, 60);
        bandb_ckpt_get_stats(c, &s);
        CHECK(s.inline_runs >= 1);
        exec(reader, "COMMIT");
        sqlite3_close(reader);

        /* nothing failed: nothing to report */
        {
                int rc;
                char msg[64];
                CHECK(!bandb_ckpt_take_report(c, &rc, msg, sizeof msg));
        }
        bandb_ckpt_stop(c);
        /* the writer has SQLite's automatic checkpoint back */
        CHECK(sqlite3_wal_autocheckpoint(w, 1000) == SQLITE_OK);
        commit_pages(w, 5);
        CHECK(sqlite3_close(w) == SQLITE_OK);
        /* the last close checkpointed and removed the WAL */
        CHECK(file_size(wal) < 0);

        unlink(path);
        rmdir(dir);
        if (failures) {
                fprintf(stderr, "%d check(s) failed\n", failures);
                return 1;
        }
        printf("ok: checkpoint thread\n");
        return 0;
}
