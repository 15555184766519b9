/* SPDX-License-Identifier: MIT */
/*
 * bench-mysql: how fast the mysql backend stores signals, beside the
 * ceiling of the same rows written directly.
 *
 * Direct mode ("ceiling") writes each signal the way the plugin does, with
 * the plugin's own schema and prepared statements (schema.c): one row each
 * into signal_occurences, event_sequences and ban_applications, then the
 * soft-delete UPDATE of the target's older active bans, committing every
 * --batch signals. Through-plugin mode loads mysql.so and drives its
 * insert() and flush() through tests/lib/testhost with the same rows and
 * batch size, then times one read_at() over the resulting active bans. The
 * difference between the two figures is the plugin's own overhead; both
 * are bound by round trips to the server (four statements per signal).
 *
 * The server: by default a throw-away MariaDB started with
 * tests/mariadb-server.sh ($MARIADB_SERVER_SH) in a temporary folder, over
 * its unix socket, with the server's default durability
 * (innodb_flush_log_at_trx_commit = 1: every COMMIT is fsynced). --socket
 * uses a running server instead (as root without a password, or --user and
 * --password), in database --database, which is dropped and created again.
 *
 * Output (one line per mode; keep the format):
 *   ceiling: N signals/s (batch B, rows R, server S)
 *   plugin: N signals/s (batch B, rows R, server S)
 *   read_at: N rows in T ms
 * Exit status 77 when no server can be started (MariaDB not installed).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mysql.h>

#include "mariadb-spawn.h"
#include "schema.h"
#include "test-fixtures.h"
#include "tests.h"
#include "timeutil.h"

#ifndef MYDB_PLUGIN_PATH
#define MYDB_PLUGIN_PATH "mysql.so"
#endif

typedef struct options {
        uint64_t signals;
        uint64_t batch;
        uint64_t targets;
        const char *socket;
        const char *user;
        const char *password;
        const char *database;
        const char *plugin;
        bool direct_only, plugin_only;
} options;

static void die_conn(MYSQL *m, const char *what) {
        fprintf(stderr, "bench-mysql: %s: %s\n", what, mysql_error(m));
        exit(1);
}

static void die_stmt(MYSQL_STMT *st, const char *what) {
        fprintf(stderr, "bench-mysql: %s: %s\n", what, mysql_stmt_error(st));
        exit(1);
}

static MYSQL *connect_to(const options *o, const char *db) {
        MYSQL *m = mysql_init(NULL);
        unsigned protocol = MYSQL_PROTOCOL_SOCKET;

        CHECK(m);
        mysql_options(m, MYSQL_OPT_PROTOCOL, &protocol);
        mysql_options(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
        if (!mysql_real_connect(m, "localhost", o->user, o->password, db, 0, o->socket, 0))
                die_conn(m, "connect");
        return m;
}

static void query(MYSQL *m, const char *sql) {
        if (mysql_query(m, sql) != 0)
                die_conn(m, sql);
}

static void recreate_database(const options *o) {
        MYSQL *m = connect_to(o, NULL);
        char sql[256];

        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS `%s`", o->database);
        query(m, sql);
        snprintf(sql, sizeof sql, "CREATE DATABASE `%s` CHARACTER SET utf8mb4", o->database);
        query(m, sql);
        mysql_close(m);
}

static void bind_str(MYSQL_BIND *p, unsigned long *len, const char *s) {
        p->buffer_type = MYSQL_TYPE_STRING;
        p->buffer = (void *) s;
        *len = (unsigned long) strlen(s);
        p->length = len;
}

static void run(MYSQL_STMT *st, MYSQL_BIND *p) {
        if (mysql_stmt_bind_param(st, p) || mysql_stmt_execute(st))
                die_stmt(st, "execute");
}

/* The rows of one sample, bound by hand: what the plugin writes, without
 * the plugin. */
static void write_direct(MYSQL_STMT **st, const sample *s, usec_t now) {
        MYSQL_BIND p[_MYDB_SIG_MAX];
        unsigned long len[_MYDB_SIG_MAX];
        MYSQL_TIME tn, t1, t2;
        int64_t events = s->sig.events_count, capacity = s->sig.capacity, leak = s->sig.leak_speed_ns, zero = 0;
        int64_t as = s->ban.target_as;
        double lat = s->sig.source_latitude, lon = s->sig.source_longitude;
        uint64_t id, ban_id;

        mydb_time_to_mysql(now, &tn);
        memset(p, 0, sizeof p);
        p[MYDB_SIG_CREATED_AT] = (MYSQL_BIND) { .buffer_type = MYSQL_TYPE_DATETIME, .buffer = &tn };
        p[MYDB_SIG_UPDATED_AT] = p[MYDB_SIG_CREATED_AT];
        bind_str(&p[MYDB_SIG_MAP_KEY], &len[MYDB_SIG_MAP_KEY], s->sig.map_key);
        bind_str(&p[MYDB_SIG_SCENARIO], &len[MYDB_SIG_SCENARIO], s->sig.scenario);
        bind_str(&p[MYDB_SIG_BUCKET_ID], &len[MYDB_SIG_BUCKET_ID], s->sig.bucket_id);
        bind_str(&p[MYDB_SIG_ALERT_MESSAGE], &len[MYDB_SIG_ALERT_MESSAGE], s->sig.alert_message);
        p[MYDB_SIG_EVENTS_COUNT] = (MYSQL_BIND) { .buffer_type = MYSQL_TYPE_LONGLONG, .buffer = &events };
        mydb_time_to_mysql(s->sig.start_at, &t1);
        mydb_time_to_mysql(s->sig.stop_at, &t2);
        p[MYDB_SIG_START_AT] = (MYSQL_BIND) { .buffer_type = MYSQL_TYPE_DATETIME, .buffer = &t1 };
        p[MYDB_SIG_STOP_AT] = (MYSQL_BIND) { .buffer_type = MYSQL_TYPE_DATETIME, .buffer = &t2 };
        bind_str(&p[MYDB_SIG_SOURCE_IP], &len[MYDB_SIG_SOURCE_IP], s->sig.source_ip);
        p[MYDB_SIG_SOURCE_RANGE].buffer_type = MYSQL_TYPE_NULL;
        bind_str(&p[MYDB_SIG_SOURCE_AS_NUMBER], &len[MYDB_SIG_SOURCE_AS_NUMBER], s->sig.source_as_number);
        bind_str(&p[MYDB_SIG_SOURCE_AS_ORG], &len[MYDB_SIG_SOURCE_AS_ORG], s->sig.source_as_org);
        bind_str(&p[MYDB_SIG_SOURCE_COUNTRY], &len[MYDB_SIG_SOURCE_COUNTRY], s->sig.source_country);
        p[MYDB_SIG_SOURCE_LATITUDE] = (MYSQL_BIND) { .buffer_type = MYSQL_TYPE_DOUBLE, .buffer = &lat };
        p[MYDB_SIG_SOURCE_LONGITUDE] = (MYSQL_BIND) { .buffer_type = MYSQL_TYPE_DOUBLE, .buffer = &lon };
        p[MYDB_SIG_DEST_IP].buffer_type = MYSQL_TYPE_NULL;
        p[MYDB_SIG_CAPACITY] = (MYSQL_BIND) { .buffer_type = MYSQL_TYPE_LONGLONG, .buffer = &capacity };
        p[MYDB_SIG_LEAK_SPEED] = (MYSQL_BIND) { .buffer_type = MYSQL_TYPE_LONGLONG, .buffer = &leak };
        p[MYDB_SIG_REPROCESS] = (MYSQL_BIND) { .buffer_type = MYSQL_TYPE_LONGLONG, .buffer = &zero };
        run(st[MYDB_SQL_INSERT_SIGNAL], p);
        id = mysql_stmt_insert_id(st[MYDB_SQL_INSERT_SIGNAL]);

        memset(p, 0, sizeof p);
        p[MYDB_EVENT_CREATED_AT] = (MYSQL_BIND) { .buffer_type = MYSQL_TYPE_DATETIME, .buffer = &tn };
        p[MYDB_EVENT_UPDATED_AT] = p[MYDB_EVENT_CREATED_AT];
        mydb_time_to_mysql(s->ev.time, &t1);
        p[MYDB_EVENT_TIME] = (MYSQL_BIND) { .buffer_type = MYSQL_TYPE_DATETIME, .buffer = &t1 };
        bind_str(&p[MYDB_EVENT_SOURCE_IP], &len[MYDB_EVENT_SOURCE_IP], s->ev.source_ip);
        p[MYDB_EVENT_SIGNAL_ID] = (MYSQL_BIND) { .buffer_type = MYSQL_TYPE_LONGLONG, .buffer = &id, .is_unsigned = 1 };
        bind_str(&p[MYDB_EVENT_SERIALIZED], &len[MYDB_EVENT_SERIALIZED], s->ev.serialized);
        run(st[MYDB_SQL_INSERT_EVENT], p);

        memset(p, 0, sizeof p);
        p[MYDB_BAN_CREATED_AT] = (MYSQL_BIND) { .buffer_type = MYSQL_TYPE_DATETIME, .buffer = &tn };
        p[MYDB_BAN_UPDATED_AT] = p[MYDB_BAN_CREATED_AT];
        bind_str(&p[MYDB_BAN_MEASURE_SOURCE], &len[MYDB_BAN_MEASURE_SOURCE], s->ban.measure_source);
        bind_str(&p[MYDB_BAN_MEASURE_TYPE], &len[MYDB_BAN_MEASURE_TYPE], s->ban.measure_type);
        p[MYDB_BAN_MEASURE_EXTRA].buffer_type = MYSQL_TYPE_NULL;
        mydb_time_to_mysql(s->ban.until, &t1);
        p[MYDB_BAN_UNTIL] = (MYSQL_BIND) { .buffer_type = MYSQL_TYPE_DATETIME, .buffer = &t1 };
        len[MYDB_BAN_START_IP] = len[MYDB_BAN_END_IP] = 16;
        p[MYDB_BAN_START_IP] = (MYSQL_BIND) { .buffer_type = MYSQL_TYPE_BLOB, .buffer = (void *) s->ban.start_ip,
                                              .length = &len[MYDB_BAN_START_IP] };
        p[MYDB_BAN_END_IP] = (MYSQL_BIND) { .buffer_type = MYSQL_TYPE_BLOB, .buffer = (void *) s->ban.end_ip,
                                            .length = &len[MYDB_BAN_END_IP] };
        bind_str(&p[MYDB_BAN_TARGET_CN], &len[MYDB_BAN_TARGET_CN], s->ban.target_cn);
        p[MYDB_BAN_TARGET_AS] = (MYSQL_BIND) { .buffer_type = MYSQL_TYPE_LONGLONG, .buffer = &as };
        bind_str(&p[MYDB_BAN_TARGET_AS_NAME], &len[MYDB_BAN_TARGET_AS_NAME], s->ban.target_as_name);
        bind_str(&p[MYDB_BAN_IP_TEXT], &len[MYDB_BAN_IP_TEXT], s->ban.ip_text);
        bind_str(&p[MYDB_BAN_REASON], &len[MYDB_BAN_REASON], s->ban.reason);
        bind_str(&p[MYDB_BAN_SCENARIO], &len[MYDB_BAN_SCENARIO], s->ban.scenario);
        p[MYDB_BAN_SIGNAL_ID] = (MYSQL_BIND) { .buffer_type = MYSQL_TYPE_LONGLONG, .buffer = &id, .is_unsigned = 1 };
        run(st[MYDB_SQL_INSERT_BAN], p);
        ban_id = mysql_stmt_insert_id(st[MYDB_SQL_INSERT_BAN]);

        memset(p, 0, 4 * sizeof p[0]);
        p[0] = (MYSQL_BIND) { .buffer_type = MYSQL_TYPE_DATETIME, .buffer = &tn };
        p[1] = p[0];
        bind_str(&p[2], &len[2], s->ban.ip_text);
        p[3] = (MYSQL_BIND) { .buffer_type = MYSQL_TYPE_LONGLONG, .buffer = &ban_id, .is_unsigned = 1 };
        run(st[MYDB_SQL_SUPERSEDE], p);
}

static double bench_direct(const options *o) {
        MYSQL_STMT *st[_MYDB_SQL_MAX] = {};
        MYSQL *m = connect_to(o, o->database);
        mydb_error e;
        usec_t start, elapsed;
        bool crowdsec;
        int from, failed;
        sample s;

        query(m, "SET SESSION time_zone = '+00:00'");
        query(m, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED");
        if (mydb_migrate(m, 30, 0, &from, &crowdsec, &e) < 0 || mydb_prepare(m, st, &failed, &e) < 0) {
                fprintf(stderr, "bench-mysql: schema: %s while %s\n", e.msg, e.doing);
                exit(1);
        }
        start = now_monotonic();
        for (uint64_t i = 0; i < o->signals; i++) {
                usec_t now = now_realtime();

                sample_fill(&s, i, o->targets, now);
                if (i % o->batch == 0)
                        query(m, "START TRANSACTION");
                write_direct(st, &s, now);
                if (((i + 1) % o->batch == 0 || i + 1 == o->signals) && mysql_commit(m) != 0)
                        die_conn(m, "commit");
        }
        elapsed = now_monotonic() - start;
        mydb_finalize(st);
        mysql_close(m);
        return (double) elapsed / 1e6;
}

static double bench_plugin(const options *o, uint64_t *read_rows, double *read_ms) {
        const spw_kv config[] = {
                { "db_socket", o->socket },
                { "db_username", o->user },
                { "db_password", o->password ? o->password : "" },
                { "db_name", o->database },
        };

        return bench_through_plugin("bench-mysql", o->plugin, config, sizeof config / sizeof config[0], o->signals,
                                    o->batch, o->targets, NULL, read_rows, read_ms);
}

static void server_description(const options *o, char *buf, size_t size) {
        MYSQL *m = connect_to(o, NULL);
        MYSQL_RES *res;
        MYSQL_ROW row;

        query(m, "SELECT VERSION(), @@innodb_flush_log_at_trx_commit");
        res = mysql_store_result(m);
        row = res ? mysql_fetch_row(res) : NULL;
        snprintf(buf, size, "%s, innodb_flush_log_at_trx_commit %s, unix socket", row && row[0] ? row[0] : "?",
                 row && row[1] ? row[1] : "?");
        if (res)
                mysql_free_result(res);
        mysql_close(m);
}

static void usage(FILE *f) {
        fputs("usage: bench-mysql [--signals N] [--batch B] [--targets K] [--direct-only|--plugin-only]\n"
              "                   [--plugin PATH] [--socket PATH [--user U] [--password P]] [--database D]\n"
              "  --signals N       signals to insert per mode (default 20000)\n"
              "  --batch B         signals per transaction (default 100)\n"
              "  --targets K       distinct source addresses (default: N, all distinct)\n"
              "  --direct-only     only the ceiling: the plugin's statements without the plugin\n"
              "  --plugin-only     only through mysql.so's insert()/flush()\n"
              "  --plugin PATH     the plugin to load (default: the build tree's)\n"
              "  --socket PATH     a running server (default: start one with $MARIADB_SERVER_SH)\n"
              "  --user, --password  account on that server (default root, no password)\n"
              "  --database D      database to drop and create (default spillway_bench)\n", f);
}

int main(int argc, char **argv) {
        static const struct option longopts[] = {
                { "signals", required_argument, NULL, 'n' },
                { "batch", required_argument, NULL, 'b' },
                { "targets", required_argument, NULL, 't' },
                { "direct-only", no_argument, NULL, 'D' },
                { "plugin-only", no_argument, NULL, 'P' },
                { "plugin", required_argument, NULL, 'p' },
                { "socket", required_argument, NULL, 's' },
                { "user", required_argument, NULL, 'u' },
                { "password", required_argument, NULL, 'w' },
                { "database", required_argument, NULL, 'd' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        options o = { .signals = 20000, .batch = 100, .plugin = MYDB_PLUGIN_PATH, .user = "root",
                      .database = "spillway_bench" };
        char tmp[] = "/tmp/bench-mysql-XXXXXX", dir[64], desc[256], cmd[128];
        mariadb_server srv = { .pid = 0 };
        double secs, read_ms = 0;
        uint64_t read_rows = 0;
        bool own_server = false;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) >= 0) {
                switch (c) {
                case 'n':
                case 'b':
                case 't':
                        if (parse_u64(optarg, c == 'n' ? &o.signals : c == 'b' ? &o.batch : &o.targets) < 0) {
                                fprintf(stderr, "bench-mysql: --%s: expected a positive integer, got \"%s\"\n",
                                        c == 'n' ? "signals" : c == 'b' ? "batch" : "targets", optarg);
                                return 2;
                        }
                        break;
                case 'D':
                        o.direct_only = true;
                        break;
                case 'P':
                        o.plugin_only = true;
                        break;
                case 'p':
                        o.plugin = optarg;
                        break;
                case 's':
                        o.socket = optarg;
                        break;
                case 'u':
                        o.user = optarg;
                        break;
                case 'w':
                        o.password = optarg;
                        break;
                case 'd':
                        o.database = optarg;
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
                fprintf(stderr, "bench-mysql: unexpected argument \"%s\"\n", argv[optind]);
                usage(stderr);
                return 2;
        }
        if (!o.targets)
                o.targets = o.signals;

        if (!o.socket) {
                CHECK(mkdtemp(tmp));
                snprintf(dir, sizeof dir, "%s/server", tmp);
                /* the database outgrows the helper's 32 MiB buffer pool at ~20,000 signals */
                r = mariadb_start(&srv, dir, false, "--innodb-buffer-pool-size=512M");
                if (r == MARIADB_SKIP) {
                        fprintf(stderr, "bench-mysql: SKIP: the MariaDB server is not installed\n");
                        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
                        return system(cmd) == 0 ? 77 : 1;
                }
                if (r != 0) {
                        fprintf(stderr, "bench-mysql: cannot start a MariaDB server in %s\n", dir);
                        return 1;
                }
                o.socket = srv.socket;
                own_server = true;
        }
        server_description(&o, desc, sizeof desc);

        if (!o.plugin_only) {
                recreate_database(&o);
                secs = bench_direct(&o);
                printf("ceiling: %.0f signals/s (batch %" PRIu64 ", rows %" PRIu64 ", server %s)\n",
                       (double) o.signals / secs, o.batch, o.signals * 3, desc);
                printf("  %" PRIu64 " signals in %.3f s, %.1f us per signal, %" PRIu64 " distinct targets\n",
                       o.signals, secs, secs * 1e6 / (double) o.signals, o.targets);
        }
        if (!o.direct_only) {
                recreate_database(&o);
                secs = bench_plugin(&o, &read_rows, &read_ms);
                printf("plugin: %.0f signals/s (batch %" PRIu64 ", rows %" PRIu64 ", server %s)\n",
                       (double) o.signals / secs, o.batch, o.signals * 3, desc);
                printf("  %" PRIu64 " signals in %.3f s, %.1f us per signal, %" PRIu64 " distinct targets\n",
                       o.signals, secs, secs * 1e6 / (double) o.signals, o.targets);
                printf("read_at: %" PRIu64 " rows in %.1f ms\n", read_rows, read_ms);
        }
        fflush(stdout);

        if (own_server) {
                mariadb_stop(&srv);
                snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
                if (system(cmd) != 0)
                        fprintf(stderr, "bench-mysql: cannot remove %s\n", tmp);
        }
        return 0;
}
