/* SPDX-License-Identifier: MIT */
/*
 * bench-gc: what history costs the ban database, and what collecting it
 * costs the inserts (issue 19).
 *
 *   1. --active bans are stored through the plugin (sqlite.so, loaded with
 *      dlopen() and driven through tests/lib/testhost); read_at() of the
 *      first 50 active bans (`spillwayctl ban list --limit 50`) is timed;
 *   2. --history soft-deleted bans, each with its signal and one event
 *      (~300 bytes), are written directly with SQL, deleted two hours ago;
 *      read_at() of the first 50 is timed again;
 *   3. the plugin is opened with max_records_age 1h and its garbage
 *      collection runs (every second while behind, as in the daemon) while
 *      signals keep coming at --rate per second (a flush every 100, each
 *      followed by a catch-up step while collection is behind); the bench
 *      prints the collection's throughput, the longest stall (a timer run
 *      or a flush with its step: the worker inserts nothing meanwhile), the
 *      stalls' percentiles, the longest WAL checkpoint and chunk, and the
 *      longest gap between two inserts, then read_at() once more and the
 *      file's size.
 *
 * Output lines start with "history:", "read_at:", "collection:", "after:".
 * The database is created fresh (an existing --db is removed); without --db
 * a temporary file is used and removed.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <dlfcn.h>
#include <sqlite3.h>

#include "schema.h"
#include "test-fixtures.h"
#include "tests.h"
#include "timeutil.h"

#ifndef BANDB_PLUGIN_PATH
#define BANDB_PLUGIN_PATH "sqlite.so"
#endif

static const char *prog = "bench-gc";

static void remove_db(const char *path) {
        char p[4096];

        unlink(path);
        snprintf(p, sizeof p, "%s-wal", path);
        unlink(p);
        snprintf(p, sizeof p, "%s-shm", path);
        unlink(p);
}

static uint64_t file_bytes(const char *path) {
        struct stat st;

        return stat(path, &st) == 0 ? (uint64_t) st.st_size : 0;
}

static void copy_file(const char *from, const char *to) {
        char buf[1 << 16];
        FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
        size_t n;

        if (!in || !out) {
                fprintf(stderr, "%s: copying %s to %s: %s\n", prog, from, to, strerror(errno));
                exit(1);
        }
        while ((n = fread(buf, 1, sizeof buf, in)) > 0)
                if (fwrite(buf, 1, n, out) != n) {
                        fprintf(stderr, "%s: writing %s: %s\n", prog, to, strerror(errno));
                        exit(1);
                }
        fclose(in);
        if (fclose(out) != 0) {
                fprintf(stderr, "%s: writing %s: %s\n", prog, to, strerror(errno));
                exit(1);
        }
}

typedef struct bench {
        const struct spw_backend *b;
        testhost *host;
        void *self;
        spw_usec_t offset;      /* the host clock runs this far ahead of the real one */
} bench;

static void bench_open(bench *x, const struct spw_backend *b, const char *db, const char *max_age) {
        spw_kv kv[] = {
                { "db_path", db }, { "flush", "false" }, { "max_records", "0" }, { "max_records_age", max_age },
        };

        x->b = b;
        x->host = testhost_new("bench", kv, sizeof kv / sizeof kv[0]);
        testhost_set_time(x->host, now_realtime() + x->offset);
        if (testhost_init(x->host, b, &x->self) < 0) {
                fprintf(stderr, "%s: plugin init: %s\n", prog, testhost_last_error(x->host));
                exit(1);
        }
}

static void bench_close(bench *x) {
        x->b->shutdown(x->self);
        testhost_free(x->host);
}

static void insert_one(bench *x, uint64_t i, uint64_t targets) {
        sample s;
        usec_t now = now_realtime() + x->offset;

        testhost_set_time(x->host, now);
        sample_fill(&s, i, targets, now);
        if (x->b->insert(x->self, &s.sig) != 0) {
                fprintf(stderr, "%s: insert: %s\n", prog, testhost_last_error(x->host));
                exit(1);
        }
}

static void flush_or_die(bench *x) {
        if (x->b->flush(x->self) < 0) {
                fprintf(stderr, "%s: flush: %s\n", prog, testhost_last_error(x->host));
                exit(1);
        }
}

/* Every stall (a flush with its catch-up step, a timer run with its
 * flush), for the percentiles. */
static double *stalls;
static size_t n_stalls, cap_stalls;

static void stall_add(double ms) {
        if (n_stalls == cap_stalls) {
                cap_stalls = cap_stalls ? 2 * cap_stalls : 4096;
                stalls = realloc(stalls, cap_stalls * sizeof *stalls);
                CHECK(stalls);
        }
        stalls[n_stalls++] = ms;
}

static int cmp_double(const void *a, const void *b);

static double stall_pct(double p) {
        if (n_stalls == 0)
                return 0;
        qsort(stalls, n_stalls, sizeof *stalls, cmp_double);
        return stalls[(size_t) (p * (double) (n_stalls - 1))];
}

static int stop_at_50(const spw_ban_row *row, void *userdata) {
        (void) row;
        return ++*(int *) userdata >= 50 ? 1 : 0;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

/* One read_at() call stopped after 50 rows, in ms. */
static double read_50_once(bench *x) {
        usec_t start = now_monotonic();
        int n = 0, r = x->b->read_at(x->self, now_realtime() + x->offset, stop_at_50, &n);

        if (r < 0 || n != 50) {
                fprintf(stderr, "%s: read_at: %d rows (%s)\n", prog, n, testhost_last_error(x->host));
                exit(1);
        }
        return (double) (now_monotonic() - start) / 1e3;
}

/* The median of 9 read_at() calls stopped after 50 rows, in ms (*min:
 * the fastest: on a shared machine the steadier figure). */
static double read_first_50(bench *x, double *min) {
        double t[9];

        for (int k = 0; k < 9; k++) {
                usec_t start = now_monotonic();
                int n = 0, r = x->b->read_at(x->self, now_realtime() + x->offset, stop_at_50, &n);

                if (r < 0 || n != 50) {
                        fprintf(stderr, "%s: read_at: %d rows (%s)\n", prog, n, testhost_last_error(x->host));
                        exit(1);
                }
                t[k] = (double) (now_monotonic() - start) / 1e3;
        }
        qsort(t, 9, sizeof t[0], cmp_double);
        *min = t[0];
        return t[4];
}

static void history_part(const char *db, uint64_t first, uint64_t n, spw_usec_t deleted) {
        char sql[4096], ts[BANDB_TIME_MAX];
        sqlite3 *h = NULL;
        char *err = NULL;

        bandb_time_format(ts, deleted);
        snprintf(sql, sizeof sql,
                 "BEGIN;"
                 "WITH RECURSIVE n(i) AS (SELECT %" PRIu64 " UNION ALL SELECT i + 1 FROM n WHERE i < %" PRIu64 ")"
                 " INSERT INTO signal_occurences (id, created_at, updated_at, scenario, bucket_id, alert_message,"
                 " events_count, source_ip, capacity, leak_speed)"
                 " SELECT i, '%s', '%s', 'crowdsecurity/ssh-bf', 'sunny-flower',"
                 " '10.0.0.1 performed crowdsecurity/ssh-bf (6 events over 4s)', 6, '10.200.0.1', 5, 10000000000"
                 " FROM n;"
                 "WITH RECURSIVE n(i) AS (SELECT %" PRIu64 " UNION ALL SELECT i + 1 FROM n WHERE i < %" PRIu64 ")"
                 " INSERT INTO event_sequences (created_at, updated_at, time, source_ip, signal_occurence_id,"
                 " serialized) SELECT '%s', '%s', '%s', '10.200.0.1', i, printf('%%.300c', 'x') FROM n;"
                 "WITH RECURSIVE n(i) AS (SELECT %" PRIu64 " UNION ALL SELECT i + 1 FROM n WHERE i < %" PRIu64 ")"
                 " INSERT INTO ban_applications (created_at, updated_at, deleted_at, measure_source, measure_type,"
                 " until, start_ip, end_ip, target_cn, ip_text, reason, scenario, signal_occurence_id)"
                 " SELECT '%s', '%s', '%s', 'local', 'ban', '%s', zeroblob(16), zeroblob(16), 'FR',"
                 " '10.200.' || (i / 250 %% 250) || '.' || (i %% 250), 'crowdsecurity/ssh-bf',"
                 " 'crowdsecurity/ssh-bf', i FROM n;"
                 "COMMIT",
                 first, first + n - 1, ts, ts, first, first + n - 1, ts, ts, ts, first, first + n - 1, ts, ts, ts,
                 ts);
        if (sqlite3_open(db, &h) != SQLITE_OK || sqlite3_exec(h, "PRAGMA journal_mode = WAL", NULL, NULL, &err) ||
            sqlite3_exec(h, sql, NULL, NULL, &err) != SQLITE_OK) {
                fprintf(stderr, "%s: writing the history: %s\n", prog, err ? err : sqlite3_errmsg(h));
                exit(1);
        }
        sqlite3_exec(h, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
        sqlite3_close(h);
}

/* In transactions of 500,000, each checkpointed: the WAL stays small. */
static void history(const char *db, uint64_t first, uint64_t n, spw_usec_t deleted) {
        for (uint64_t done = 0; done < n; done += 500000)
                history_part(db, first + done, n - done < 500000 ? n - done : 500000, deleted);
}

static void usage(FILE *f) {
        fprintf(f, "usage: %s [--history N] [--active N] [--rate N] [--collect-seconds N] [--db PATH] [--plugin PATH]\n"
                   "  --history N   soft-deleted bans of history (default 1000000)\n"
                   "  --active N    active bans (default 50000)\n"
                   "  --rate N      signals per second inserted while collecting (default 2000)\n"
                   "  --collect-seconds N  stop collecting after N seconds (default: when done)\n",
                prog);
}

int main(int argc, char **argv) {
        static const struct option longopts[] = {
                { "history", required_argument, NULL, 'H' }, { "active", required_argument, NULL, 'a' },
                { "rate", required_argument, NULL, 'r' },    { "db", required_argument, NULL, 'd' },
                { "plugin", required_argument, NULL, 'p' },  { "help", no_argument, NULL, 'h' },
                { "collect-seconds", required_argument, NULL, 'c' },
                {}
        };
        uint64_t n_history = 1000000, n_active = 50000, rate = 2000, next_id, inserted = 0, runs = 0, limit = 0, steps = 0;
        const char *plugin = BANDB_PLUGIN_PATH, *db = NULL, *st;
        char tmp[] = "/tmp/bench-gc-XXXXXX", path[4096], nohist[4200];
        const struct spw_backend *(*entry)(void);
        double t_empty, t_history, t_after, m_empty, m_history, m_after, longest_run = 0, longest_gap = 0, gc_time = 0;
        usec_t start, last_insert, last_tick, wall;
        uint64_t left;
        bench x = { 0 };
        void *h;
        int c;

        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) >= 0) {
                switch (c) {
                case 'H':
                case 'a':
                case 'r':
                case 'c': {
                        uint64_t v;
                        if (parse_u64(optarg, &v) < 0) {
                                usage(stderr);
                                return 2;
                        }
                        *(c == 'H' ? &n_history : c == 'a' ? &n_active : c == 'r' ? &rate : &limit) = v;
                        break;
                }
                case 'd':
                        db = optarg;
                        break;
                case 'p':
                        plugin = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (n_active < 50) {
                fprintf(stderr, "%s: --active must be at least 50\n", prog);
                return 2;
        }
        if (!db) {
                if (!mkdtemp(tmp)) {
                        fprintf(stderr, "%s: mkdtemp: %s\n", prog, strerror(errno));
                        return 1;
                }
                snprintf(path, sizeof path, "%s/gc.db", tmp);
                db = path;
        }
        remove_db(db);
        h = dlopen(plugin, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
                fprintf(stderr, "%s: %s\n", prog, dlerror());
                return 1;
        }
        entry = (const struct spw_backend *(*)(void)) dlsym(h, SPW_BACKEND_ENTRY_SYMBOL);
        CHECK(entry);

        /* 1. the active bans, read without history */
        bench_open(&x, entry(), db, "0");
        for (uint64_t i = 0; i < n_active; i++) {
                insert_one(&x, i, n_active + rate * 3600);
                if ((i + 1) % 1000 == 0)
                        flush_or_die(&x);
        }
        flush_or_die(&x);
        bench_close(&x);
        /* the same bans without history, read in turn with the history
         * file below: the machine's load is then the same for both */
        snprintf(nohist, sizeof nohist, "%s-nohistory", db);
        copy_file(db, nohist);

        /* 2. history */
        start = now_monotonic();
        next_id = 10 * (n_active + n_history);
        history(db, next_id, n_history, now_realtime() - 2 * 3600 * USEC_PER_SEC);
        next_id += n_history;
        printf("history: %" PRIu64 " soft-deleted bans with their signals and events written in %.1f s; "
               "db %.1f MiB\n", n_history, (double) (now_monotonic() - start) / 1e6,
               (double) file_bytes(db) / 1048576.0);
        {
                bench y = { 0 };
                double te[9], th[9];

                bench_open(&x, entry(), db, "0");
                bench_open(&y, entry(), nohist, "0");
                (void) read_50_once(&x);        /* warm both caches */
                (void) read_50_once(&y);
                for (int k = 0; k < 9; k++) {
                        te[k] = read_50_once(&y);
                        th[k] = read_50_once(&x);
                }
                qsort(te, 9, sizeof te[0], cmp_double);
                qsort(th, 9, sizeof th[0], cmp_double);
                t_empty = te[4], m_empty = te[0], t_history = th[4], m_history = th[0];
                bench_close(&y);
                bench_close(&x);
                remove_db(nohist);
        }
        printf("read_at: first 50 of %" PRIu64 " active bans in %.2f ms (fastest %.2f) without history, %.2f ms "
               "(fastest %.2f) with %" PRIu64 " rows of it (median of 9, in turn)\n", n_active, t_empty, m_empty, t_history,
               m_history, n_history);
        fflush(stdout);

        /* 3. collection while signals keep coming */
        x.offset = 0;
        bench_open(&x, entry(), db, "1h");
        CHECK_OK(x.b->start_autocommit(x.self));
        x.offset = 61 * USEC_PER_SEC;   /* the first run is due a minute after the start */
        start = last_insert = last_tick = now_monotonic();
        for (;;) {
                usec_t now = now_monotonic(), due = start + (usec_t) (inserted * USEC_PER_SEC / rate);

                if (now < due) {
                        struct timespec ts = { 0, (long) ((due - now) * 1000) };
                        nanosleep(&ts, NULL);
                }
                insert_one(&x, n_active + inserted, n_active + rate * 3600);
                inserted++;
                if (inserted % 100 == 0) {
                        /* while behind, each flush is followed by a
                         * catch-up step: its time is collection's (with
                         * the commit of 100 signals), and a stall */
                        usec_t t0 = now_monotonic();
                        const char *gc = testhost_status(x.host, "gc");
                        bool behind = gc && strcmp(gc, "behind") == 0;
                        double took;

                        flush_or_die(&x);
                        took = (double) (now_monotonic() - t0) / 1e3;
                        longest_run = took > longest_run ? took : longest_run;
                        stall_add(took);
                        if (behind) {
                                gc_time += took;
                                steps++;
                        }
                }
                now = now_monotonic();
                if ((double) (now - last_insert) / 1e3 > longest_gap && inserted > 1)
                        longest_gap = (double) (now - last_insert) / 1e3;
                last_insert = now;

                if (now - last_tick >= USEC_PER_SEC) {
                        const char *before = testhost_status(x.host, "collected");
                        char was[32];
                        usec_t t0;
                        double took;

                        snprintf(was, sizeof was, "%s", before ? before : "");
                        flush_or_die(&x);
                        last_tick = now;
                        testhost_set_time(x.host, now_realtime() + x.offset);
                        t0 = now_monotonic();
                        testhost_run_timers(x.host);
                        flush_or_die(&x);
                        took = (double) (now_monotonic() - t0) / 1e3;
                        longest_run = took > longest_run ? took : longest_run;
                        stall_add(took);
                        before = testhost_status(x.host, "collected");
                        if (before && strcmp(before, was) != 0) {
                                runs++;         /* a run was due */
                                gc_time += took;
                        }
                        /* done (the last of it may have gone in a
                         * catch-up step after a flush) */
                        st = testhost_status(x.host, "gc");
                        if (before && st && strcmp(st, "caught up") == 0)
                                break;
                        if (limit && now_monotonic() - start >= (usec_t) limit * USEC_PER_SEC)
                                break;
                }
        }
        wall = now_monotonic() - start;
        flush_or_die(&x);
        {
                sqlite3 *q = NULL;
                sqlite3_stmt *s = NULL;

                CHECK_EQ(sqlite3_open(db, &q), SQLITE_OK);
                CHECK_EQ(sqlite3_prepare_v2(q, "SELECT count(*) FROM ban_applications WHERE deleted_at IS NOT NULL",
                                            -1, &s, NULL), SQLITE_OK);
                CHECK_EQ(sqlite3_step(s), SQLITE_ROW);
                left = (uint64_t) sqlite3_column_int64(s, 0);
                sqlite3_finalize(s);
                sqlite3_close(q);
        }
        printf("collection: %" PRIu64 " soft-deleted bans (and as many signals and events) in %.2f s of "
               "collection over %" PRIu64 " runs and %" PRIu64 " catch-up steps after flushes: %.0f bans/s, %.0f "
               "rows/s; %.1f s wall while inserting %" PRIu64 " signals at %" PRIu64 "/s; %" PRIu64 " left\n",
               n_history - left, gc_time / 1e3, runs, steps, (double) (n_history - left) / (gc_time / 1e3),
               3.0 * (double) (n_history - left) / (gc_time / 1e3), (double) wall / 1e6, inserted, rate, left);
        printf("collection: longest run or flush with its step (insert stall) %.1f ms, gc_longest_pause_ms %s, longest gap between two "
               "inserts %.1f ms, longest WAL checkpoint %s ms, longest chunk %s ms\n", longest_run,
               testhost_status(x.host, "gc_longest_pause_ms") ? testhost_status(x.host, "gc_longest_pause_ms") : "?",
               longest_gap,
               testhost_status(x.host, "checkpoint_longest_ms") ? testhost_status(x.host, "checkpoint_longest_ms") : "?",
               testhost_status(x.host, "gc_longest_chunk_ms") ? testhost_status(x.host, "gc_longest_chunk_ms") : "?");
        printf("collection: stalls (flushes with their step, timer runs): %zu, median %.1f ms, p99 %.1f ms, "
               "p99.9 %.1f ms, max %.1f ms\n", n_stalls, stall_pct(0.5), stall_pct(0.99), stall_pct(0.999),
               stall_pct(1.0));
        t_after = read_first_50(&x, &m_after);
        bench_close(&x);
        printf("after: read_at first 50 of %" PRIu64 " active bans in %.2f ms (fastest %.2f); db %.1f MiB\n",
               n_active + inserted, t_after, m_after, (double) file_bytes(db) / 1048576.0);

        if (db == path) {
                remove_db(db);
                rmdir(tmp);
        }
        dlclose(h);
        return 0;
}
