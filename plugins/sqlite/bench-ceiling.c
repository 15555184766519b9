/* SPDX-License-Identifier: MIT */
/*
 * bench-ceiling: how fast SQLite stores the ban database's rows when nothing
 * else runs -- the ceiling the daemon's end-to-end benchmark is compared to.
 *
 * Direct mode (default) writes each signal the way the plugin does, with the
 * plugin's own schema, pragmas and prepared statements (schema.c): one row
 * each into signal_occurences (with the daemon's signal id and origin, the
 * unique key), event_sequences, ban_applications (with scope and value) and
 * the ban-change log (ban_changes), then the soft-delete UPDATE of the
 * target's older active bans, committing every
 * --batch signals. --savepoint wraps each signal in a SAVEPOINT, to measure
 * what the plugin saves by undoing failed inserts by id instead. WAL
 * checkpoints run on a thread as in the plugin (checkpoint.c);
 * --inline-checkpoints leaves them in the commits (SQLite's default), to
 * measure what that thread saves.
 *
 * --through-plugin loads sqlite.so and drives its insert() and flush()
 * through tests/lib/testhost with the same rows and batch size, then times
 * one read_at() over the resulting active bans. The difference between the
 * two figures is the plugin's own overhead.
 *
 * Output (parsed by the daemon benchmark; keep the format):
 *   ceiling: N signals/s (batch B, synchronous S, rows R, db size X MiB)
 * where R is the number of rows written (4 per signal). --through-plugin
 * prints the same line starting "plugin:" and a "read_at:" line.
 *
 * The database is created fresh: an existing --db file (and its -wal, -shm)
 * is removed first. Without --db a temporary file is used and removed.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "checkpoint.h"
#include "schema.h"
#include "test-fixtures.h"
#include "timeutil.h"

#ifndef BANDB_PLUGIN_PATH
#define BANDB_PLUGIN_PATH "sqlite.so"
#endif

typedef struct options {
        uint64_t signals;
        uint64_t batch;
        uint64_t targets;
        const char *db;
        bool sync_full;
        bool savepoint;
        bool inline_checkpoints;
        bool through_plugin;
        bool keep;
        const char *plugin;
        const char *cache_size;   /* the plugin's cache_size key (through-plugin) */
} options;

static void remove_db(const char *path) {
        char p[4096];

        unlink(path);
        snprintf(p, sizeof p, "%s-wal", path);
        unlink(p);
        snprintf(p, sizeof p, "%s-shm", path);
        unlink(p);
}

static double db_size_mib(const char *path) {
        struct stat st;
        char p[4096];
        double total = 0;

        if (stat(path, &st) == 0)
                total += (double) st.st_size;
        snprintf(p, sizeof p, "%s-wal", path);
        if (stat(p, &st) == 0)
                total += (double) st.st_size;
        return total / (1024.0 * 1024.0);
}

static void die_sql(sqlite3 *db, const char *what) {
        fprintf(stderr, "bench-ceiling: %s: %s\n", what, sqlite3_errmsg(db));
        exit(1);
}

static void run(sqlite3 *db, sqlite3_stmt *st) {
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE && rc != SQLITE_ROW)
                die_sql(db, sqlite3_sql(st));
        sqlite3_reset(st);
}

static void bind_t(sqlite3_stmt *st, int i, spw_usec_t t, char buf[static BANDB_TIME_MAX]) {
        sqlite3_bind_text(st, i, bandb_time_format(buf, t), BANDB_TIME_LEN, SQLITE_STATIC);
}

/* The rows of one sample, bound by hand: what the plugin writes, without the
 * plugin. */
static void write_direct(sqlite3 *db, sqlite3_stmt **st, const sample *s, usec_t now) {
        char tn[BANDB_TIME_MAX], t1[BANDB_TIME_MAX], t2[BANDB_TIME_MAX];
        sqlite3_stmt *q;
        sqlite3_int64 id, ban_id;
        int more;

        bandb_time_format(tn, now);

        q = st[BANDB_SQL_INSERT_SIGNAL];
        sqlite3_bind_text(q, BANDB_SIG_CREATED_AT, tn, BANDB_TIME_LEN, SQLITE_STATIC);
        sqlite3_bind_text(q, BANDB_SIG_MAP_KEY, s->sig.map_key, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, BANDB_SIG_SCENARIO, s->sig.scenario, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, BANDB_SIG_BUCKET_ID, s->sig.bucket_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, BANDB_SIG_ALERT_MESSAGE, s->sig.alert_message, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, BANDB_SIG_EVENTS_COUNT, s->sig.events_count);
        bind_t(q, BANDB_SIG_START_AT, s->sig.start_at, t1);
        bind_t(q, BANDB_SIG_STOP_AT, s->sig.stop_at, t2);
        sqlite3_bind_text(q, BANDB_SIG_SOURCE_IP, s->sig.source_ip, -1, SQLITE_STATIC);
        sqlite3_bind_null(q, BANDB_SIG_SOURCE_RANGE);
        sqlite3_bind_text(q, BANDB_SIG_SOURCE_AS_NUMBER, s->sig.source_as_number, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, BANDB_SIG_SOURCE_AS_ORG, s->sig.source_as_org, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, BANDB_SIG_SOURCE_COUNTRY, s->sig.source_country, -1, SQLITE_STATIC);
        sqlite3_bind_double(q, BANDB_SIG_SOURCE_LATITUDE, s->sig.source_latitude);
        sqlite3_bind_double(q, BANDB_SIG_SOURCE_LONGITUDE, s->sig.source_longitude);
        sqlite3_bind_null(q, BANDB_SIG_DEST_IP);
        sqlite3_bind_int64(q, BANDB_SIG_CAPACITY, s->sig.capacity);
        sqlite3_bind_int64(q, BANDB_SIG_LEAK_SPEED, s->sig.leak_speed_ns);
        sqlite3_bind_int(q, BANDB_SIG_REPROCESS, 0);
        /* the daemon's signal id and origin: the unique key that makes a
         * redelivered signal a no-op (the plugin binds them too) */
        sqlite3_bind_int64(q, BANDB_SIG_SPILLWAY_ID, (sqlite3_int64) s->sig.id);
        sqlite3_bind_int64(q, BANDB_SIG_ORIGIN, INT64_C(0x1234567890abcdef));
        run(db, q);
        id = sqlite3_last_insert_rowid(db);

        q = st[BANDB_SQL_INSERT_EVENT];
        sqlite3_bind_text(q, BANDB_EVENT_CREATED_AT, tn, BANDB_TIME_LEN, SQLITE_STATIC);
        bind_t(q, BANDB_EVENT_TIME, s->ev.time, t1);
        sqlite3_bind_text(q, BANDB_EVENT_SOURCE_IP, s->ev.source_ip, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, BANDB_EVENT_SIGNAL_ID, id);
        sqlite3_bind_text(q, BANDB_EVENT_SERIALIZED, s->ev.serialized, -1, SQLITE_STATIC);
        run(db, q);

        q = st[BANDB_SQL_INSERT_BAN];
        sqlite3_bind_text(q, BANDB_BAN_CREATED_AT, tn, BANDB_TIME_LEN, SQLITE_STATIC);
        sqlite3_bind_text(q, BANDB_BAN_MEASURE_SOURCE, s->ban.measure_source, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, BANDB_BAN_MEASURE_TYPE, s->ban.measure_type, -1, SQLITE_STATIC);
        sqlite3_bind_null(q, BANDB_BAN_MEASURE_EXTRA);
        bind_t(q, BANDB_BAN_UNTIL, s->ban.until, t1);
        sqlite3_bind_blob(q, BANDB_BAN_START_IP, s->ban.start_ip, 16, SQLITE_STATIC);
        sqlite3_bind_blob(q, BANDB_BAN_END_IP, s->ban.end_ip, 16, SQLITE_STATIC);
        sqlite3_bind_text(q, BANDB_BAN_TARGET_CN, s->ban.target_cn, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, BANDB_BAN_TARGET_AS, s->ban.target_as);
        sqlite3_bind_text(q, BANDB_BAN_TARGET_AS_NAME, s->ban.target_as_name, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, BANDB_BAN_IP_TEXT, s->ban.ip_text, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, BANDB_BAN_REASON, s->ban.reason, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, BANDB_BAN_SCENARIO, s->ban.scenario, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, BANDB_BAN_SIGNAL_ID, id);
        sqlite3_bind_text(q, BANDB_BAN_SCOPE, "Ip", -1, SQLITE_STATIC);
        sqlite3_bind_text(q, BANDB_BAN_VALUE, s->ban.ip_text, -1, SQLITE_STATIC);
        run(db, q);
        ban_id = sqlite3_last_insert_rowid(db);

        /* the ban-change log's ADD row, as the plugin writes it */
        q = st[BANDB_SQL_CHANGE_ADD];
        sqlite3_bind_text(q, 1, tn, BANDB_TIME_LEN, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, id);
        run(db, q);

        /* the plugin's soft-delete: probe, then UPDATE only when the
         * target has more than one active ban (sqlite.c, op_run) */
        q = st[BANDB_SQL_SUPERSEDE_PROBE];
        sqlite3_bind_text(q, 2, s->ban.ip_text, -1, SQLITE_STATIC);
        if (sqlite3_step(q) != SQLITE_ROW)
                die_sql(db, sqlite3_sql(q));
        more = sqlite3_column_int(q, 0);
        sqlite3_reset(q);
        if (!more)
                return;

        q = st[BANDB_SQL_SUPERSEDE];
        sqlite3_bind_text(q, 1, tn, BANDB_TIME_LEN, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, s->ban.ip_text, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 3, ban_id);
        sqlite3_bind_int(q, 4, 0);
        run(db, q);
}

static double bench_direct(const options *o, double *cpu) {
        sqlite3_stmt *st[_BANDB_SQL_MAX] = {}, *savepoint = NULL, *release = NULL;
        bandb_ckpt *ckpt = NULL;
        sqlite3 *db = NULL;
        char err[512];
        int from, failed;
        usec_t start, elapsed;
        sample s;

        bandb_global_config(); /* as the plugin does */
        if (sqlite3_open_v2(o->db, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL))
                die_sql(db, o->db);
        sqlite3_busy_timeout(db, 5000);
        if (bandb_apply_pragmas(db, o->sync_full) != SQLITE_OK)
                die_sql(db, "pragmas");
        if (bandb_migrate(db, &from, err, sizeof err) != SQLITE_OK) {
                fprintf(stderr, "bench-ceiling: schema: %s\n", err);
                exit(1);
        }
        if (bandb_prepare(db, st, &failed) != SQLITE_OK)
                die_sql(db, "prepare");
        if (sqlite3_prepare_v2(db, "SAVEPOINT bench", -1, &savepoint, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(db, "RELEASE bench", -1, &release, NULL) != SQLITE_OK)
                die_sql(db, "prepare");
        if (!o->inline_checkpoints &&
            bandb_ckpt_start(db, o->db, BANDB_CKPT_SOFT_PAGES, BANDB_CKPT_HARD_PAGES, &ckpt) < 0) {
                fprintf(stderr, "bench-ceiling: cannot start the checkpoint thread\n");
                exit(1);
        }

        *cpu = cpu_seconds();
        start = now_monotonic();
        for (uint64_t i = 0; i < o->signals; i++) {
                usec_t now = now_realtime();

                sample_fill(&s, i, o->targets, now);
                if (i % o->batch == 0)
                        run(db, st[BANDB_SQL_BEGIN]);
                if (o->savepoint)
                        run(db, savepoint);
                write_direct(db, st, &s, now);
                if (o->savepoint)
                        run(db, release);
                if ((i + 1) % o->batch == 0 || i + 1 == o->signals)
                        run(db, st[BANDB_SQL_COMMIT]);
        }
        elapsed = now_monotonic() - start;
        *cpu = cpu_seconds() - *cpu;

        bandb_ckpt_stop(ckpt);
        bandb_finalize(st);
        sqlite3_finalize(savepoint);
        sqlite3_finalize(release);
        sqlite3_close(db);
        return (double) elapsed / 1e6;
}

static double bench_plugin(const options *o, double *cpu, uint64_t *read_rows, double *read_ms) {
        const spw_kv config[] = {
                { "db_path", o->db },
                { "synchronous", o->sync_full ? "full" : "normal" },
                { "cache_size", o->cache_size }, /* last: left out unless given (the plugin's default) */
        };
        size_t n = sizeof config / sizeof config[0] - (o->cache_size ? 0 : 1);

        return bench_through_plugin("bench-ceiling", o->plugin, config, n, o->signals,
                                    o->batch, o->targets, cpu, read_rows, read_ms);
}

static void usage(FILE *f) {
        fputs("usage: bench-ceiling [--signals N] [--batch B] [--db PATH] [--synchronous normal|full]\n"
              "                     [--targets K] [--savepoint] [--inline-checkpoints] [--through-plugin [--plugin PATH] [--cache-size S]] [--keep]\n"
              "  --signals N       signals to insert (default 20000)\n"
              "  --batch B         signals per transaction (default 100)\n"
              "  --db PATH         database file, recreated (default: a temporary file, removed)\n"
              "  --synchronous S   normal (default) or full\n"
              "  --targets K       distinct source addresses (default: N, all distinct)\n"
              "  --savepoint       wrap each signal in a SAVEPOINT (direct mode)\n"
              "  --inline-checkpoints  WAL checkpoints in the commits, not on a thread (direct mode)\n"
              "  --through-plugin  insert through sqlite.so's insert()/flush() instead\n"
              "  --plugin PATH     the plugin to load (default: the build tree's)\n"
              "  --cache-size S    the plugin's cache_size key (through-plugin; default: the plugin's)\n"
              "  --keep            keep the database file\n", f);
}

int main(int argc, char **argv) {
        static const struct option longopts[] = {
                { "signals", required_argument, NULL, 'n' },
                { "batch", required_argument, NULL, 'b' },
                { "db", required_argument, NULL, 'd' },
                { "synchronous", required_argument, NULL, 's' },
                { "targets", required_argument, NULL, 't' },
                { "savepoint", no_argument, NULL, 'S' },
                { "inline-checkpoints", no_argument, NULL, 'I' },
                { "through-plugin", no_argument, NULL, 'P' },
                { "plugin", required_argument, NULL, 'p' },
                { "cache-size", required_argument, NULL, 'c' },
                { "keep", no_argument, NULL, 'k' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        options o = { .signals = 20000, .batch = 100, .plugin = BANDB_PLUGIN_PATH };
        char tmp[64];
        double secs, cpu = 0, mib, read_ms = 0;
        uint64_t read_rows = 0;
        int c;

        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) >= 0) {
                switch (c) {
                case 'n':
                case 'b':
                case 't':
                        if (parse_u64(optarg, c == 'n' ? &o.signals : c == 'b' ? &o.batch : &o.targets) < 0) {
                                fprintf(stderr, "bench-ceiling: --%s: expected a positive integer, got \"%s\"\n",
                                        c == 'n' ? "signals" : c == 'b' ? "batch" : "targets", optarg);
                                return 2;
                        }
                        break;
                case 'd':
                        o.db = optarg;
                        break;
                case 's':
                        if (strcmp(optarg, "normal") && strcmp(optarg, "full")) {
                                fprintf(stderr, "bench-ceiling: --synchronous: expected normal or full, got \"%s\"\n",
                                        optarg);
                                return 2;
                        }
                        o.sync_full = strcmp(optarg, "full") == 0;
                        break;
                case 'S':
                        o.savepoint = true;
                        break;
                case 'I':
                        o.inline_checkpoints = true;
                        break;
                case 'P':
                        o.through_plugin = true;
                        break;
                case 'p':
                        o.plugin = optarg;
                        break;
                case 'c':
                        o.cache_size = optarg;
                        break;
                case 'k':
                        o.keep = true;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "bench-ceiling: unexpected argument \"%s\"\n", argv[optind]);
                usage(stderr);
                return 2;
        }
        if (!o.targets)
                o.targets = o.signals;
        if (!o.db) {
                snprintf(tmp, sizeof tmp, "/tmp/bench-ceiling-%d.db", (int) getpid());
                o.db = tmp;
        } else
                o.keep = true;
        remove_db(o.db);

        if (o.through_plugin)
                secs = bench_plugin(&o, &cpu, &read_rows, &read_ms);
        else
                secs = bench_direct(&o, &cpu);
        mib = db_size_mib(o.db);

        printf("%s: %.0f signals/s (batch %" PRIu64 ", synchronous %s, rows %" PRIu64 ", db size %.1f MiB)\n",
               o.through_plugin ? "plugin" : "ceiling", (double) o.signals / secs, o.batch,
               o.sync_full ? "full" : "normal", o.signals * 4, mib);
        printf("  %" PRIu64 " signals in %.3f s, %.2f us per signal, %.0f signals per CPU second, "
               "%" PRIu64 " distinct targets%s\n",
               o.signals, secs, secs * 1e6 / (double) o.signals, cpu > 0 ? (double) o.signals / cpu : 0,
               o.targets, o.savepoint ? ", savepoint per signal" : "");
        if (o.through_plugin)
                printf("read_at: %" PRIu64 " rows in %.1f ms\n", read_rows, read_ms);
        if (!o.keep)
                remove_db(o.db);
        return 0;
}
