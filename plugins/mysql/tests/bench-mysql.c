/* SPDX-License-Identifier: MIT */
/*
 * bench-mysql: how fast the mysql backend stores signals, beside the
 * ceiling of the same rows written directly.
 *
 * Direct mode ("ceiling") writes each signal the way the plugin does, with
 * the plugin's own schema and prepared statements (schema.c): one row each
 * into signal_occurences, event_sequences and ban_applications, then the
 * change log's ADD and the soft-delete UPDATE of the target's older active
 * bans, committing every --batch signals. Through-plugin mode loads mysql.so and drives its
 * insert() and flush() through tests/lib/testhost with the same rows and
 * batch size, then times one read_at() over the resulting active bans. The
 * difference between the two figures is the plugin's own overhead; both
 * are bound by round trips to the server (five statements per signal).
 * --multirow adds a third figure: each batch written as a handful of
 * multi-row statements (write_batch_multirow), the ceiling of issue 21's
 * batched design, with the time each statement took.
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
#include <stdarg.h>
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
        bool multirow;                  /* also the multi-row ceiling */
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
        int64_t as = s->ban.target_as, origin = 1;
        uint64_t sid = s->sig.id;
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
        p[MYDB_SIG_SPILLWAY_ID] = (MYSQL_BIND) { .buffer_type = MYSQL_TYPE_LONGLONG, .buffer = &sid, .is_unsigned = 1 };
        p[MYDB_SIG_ORIGIN] = (MYSQL_BIND) { .buffer_type = MYSQL_TYPE_LONGLONG, .buffer = &origin };
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
        bind_str(&p[MYDB_BAN_SCOPE], &len[MYDB_BAN_SCOPE], "Ip");
        bind_str(&p[MYDB_BAN_VALUE], &len[MYDB_BAN_VALUE], s->ban.ip_text);
        run(st[MYDB_SQL_INSERT_BAN], p);
        ban_id = mysql_stmt_insert_id(st[MYDB_SQL_INSERT_BAN]);

        /* the change log's ADD (now, signal id) */
        memset(p, 0, 2 * sizeof p[0]);
        p[0] = (MYSQL_BIND) { .buffer_type = MYSQL_TYPE_DATETIME, .buffer = &tn };
        p[1] = (MYSQL_BIND) { .buffer_type = MYSQL_TYPE_LONGLONG, .buffer = &id, .is_unsigned = 1 };
        run(st[MYDB_SQL_CHANGE_ADD], p);

        /* the soft-delete: now, now, ip_text, ip_text, first ban id, manual, now */
        memset(p, 0, 7 * sizeof p[0]);
        p[0] = (MYSQL_BIND) { .buffer_type = MYSQL_TYPE_DATETIME, .buffer = &tn };
        p[1] = p[0];
        bind_str(&p[2], &len[2], s->ban.ip_text);
        p[3] = p[2];
        p[4] = (MYSQL_BIND) { .buffer_type = MYSQL_TYPE_LONGLONG, .buffer = &ban_id, .is_unsigned = 1 };
        p[5] = (MYSQL_BIND) { .buffer_type = MYSQL_TYPE_LONGLONG, .buffer = &zero };
        p[6] = p[0];
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

/* ------------------------------------------------------------ multi-row ceiling */

/* A growing SQL text. */
typedef struct sqlbuf {
        char *s;
        size_t len, size;
} sqlbuf;

static void sb_add(sqlbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sqlbuf *b, const char *fmt, ...) {
        for (;;) {
                va_list ap;
                int n;

                va_start(ap, fmt);
                n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->size - b->len : 0, fmt, ap);
                va_end(ap);
                CHECK(n >= 0);
                if (b->s && b->len + (size_t) n < b->size) {
                        b->len += (size_t) n;
                        return;
                }
                b->size = (b->size + (size_t) n + 1) * 2;
                b->s = realloc(b->s, b->size);
                CHECK(b->s);
        }
}

static void sb_str(sqlbuf *b, MYSQL *m, const char *s) {
        size_t n;

        if (!s) {
                sb_add(b, "NULL");
                return;
        }
        n = strlen(s);
        if (b->len + 2 * n + 4 > b->size) {
                b->size = (b->len + 2 * n + 4) * 2;
                b->s = realloc(b->s, b->size);
                CHECK(b->s);
        }
        b->s[b->len++] = '\'';
        b->len += mysql_real_escape_string(m, b->s + b->len, s, (unsigned long) n);
        b->s[b->len++] = '\'';
        b->s[b->len] = 0;
}

static void sb_time(sqlbuf *b, usec_t t) {
        MYSQL_TIME tm;

        mydb_time_to_mysql(t, &tm);
        sb_add(b, "'%04u-%02u-%02u %02u:%02u:%02u.%06lu'", tm.year, tm.month, tm.day, tm.hour, tm.minute,
               tm.second, tm.second_part);
}

static void sb_addr(sqlbuf *b, const uint8_t a[16]) {
        sb_add(b, "X'");
        for (int i = 0; i < 16; i++)
                sb_add(b, "%02x", a[i]);
        sb_add(b, "'");
}

/* Time spent per statement of the multi-row batch (printed with the figure). */
enum { MR_SIGNALS, MR_IDS, MR_EVENTS, MR_BANS, MR_CHANGES, MR_SUPERSEDE, MR_COMMIT, _MR_MAX };
static const char *const mr_name[_MR_MAX] = { "signals", "id read-back", "events", "bans", "change log",
                                              "soft-delete", "commit" };
static usec_t mr_usec[_MR_MAX];
static uint64_t mr_count[_MR_MAX];

static void sb_run_step(MYSQL *m, sqlbuf *b, int step) {
        usec_t t0 = now_monotonic();

        if (mysql_real_query(m, b->s, (unsigned long) b->len) != 0)
                die_conn(m, "multi-row statement");
        mr_usec[step] += now_monotonic() - t0;
        mr_count[step]++;
        b->len = 0;
        b->s[0] = 0;
}

/* One batch the way the multi-row design writes it: a handful of
 * statements whatever its size. Signal ids are read back by the unique
 * (spillway_signal_id, spillway_origin) key, not derived from
 * LAST_INSERT_ID() (auto_increment_increment differs per Galera node and
 * innodb_autoinc_lock_mode 2 does not promise consecutive ids). */
static void write_batch_multirow(MYSQL *m, sqlbuf *b, const sample *s, size_t n, usec_t now, int64_t origin,
                                 uint64_t *row_ids, uint64_t *superseded) {
        MYSQL_RES *res;
        MYSQL_ROW row;

        /* 1. the signals; a duplicate (spillway id, origin) is skipped */
        sb_add(b, "INSERT IGNORE INTO signal_occurences (created_at, updated_at, map_key, scenario, bucket_id,"
               " alert_message, events_count, start_at, stop_at, source_ip, source_range,"
               " source_autonomous_system_number, source_autonomous_system_organization,"
               " source_country, source_latitude, source_longitude, dest_ip, capacity, leak_speed,"
               " reprocess, spillway_signal_id, spillway_origin) VALUES ");
        for (size_t i = 0; i < n; i++) {
                const spw_signal *g = &s[i].sig;

                sb_add(b, i ? ",(" : "(");
                sb_time(b, now);
                sb_add(b, ",");
                sb_time(b, now);
                sb_add(b, ",");
                sb_str(b, m, g->map_key);
                sb_add(b, ",");
                sb_str(b, m, g->scenario);
                sb_add(b, ",");
                sb_str(b, m, g->bucket_id);
                sb_add(b, ",");
                sb_str(b, m, g->alert_message);
                sb_add(b, ",%" PRId64 ",", (int64_t) g->events_count);
                sb_time(b, g->start_at);
                sb_add(b, ",");
                sb_time(b, g->stop_at);
                sb_add(b, ",");
                sb_str(b, m, g->source_ip);
                sb_add(b, ",NULL,");
                sb_str(b, m, g->source_as_number);
                sb_add(b, ",");
                sb_str(b, m, g->source_as_org);
                sb_add(b, ",");
                sb_str(b, m, g->source_country);
                sb_add(b, ",%.17g,%.17g,NULL,%" PRId64 ",%" PRId64 ",0,%" PRIu64 ",%" PRId64 ")", g->source_latitude,
                       g->source_longitude, (int64_t) g->capacity, g->leak_speed_ns, g->id, origin);
        }
        sb_run_step(m, b, MR_SIGNALS);

        /* 2. their row ids, by the unique key */
        sb_add(b, "SELECT spillway_signal_id, id FROM signal_occurences WHERE spillway_origin = %" PRId64
               " AND spillway_signal_id IN (", origin);
        for (size_t i = 0; i < n; i++)
                sb_add(b, "%s%" PRIu64, i ? "," : "", s[i].sig.id);
        sb_add(b, ")");
        sb_run_step(m, b, MR_IDS);
        res = mysql_store_result(m);
        CHECK(res);
        while ((row = mysql_fetch_row(res))) {
                uint64_t sid = strtoull(row[0], NULL, 10);

                /* the samples' ids are consecutive within the batch */
                CHECK(sid >= s[0].sig.id && sid < s[0].sig.id + n);
                row_ids[sid - s[0].sig.id] = strtoull(row[1], NULL, 10);
        }
        mysql_free_result(res);

        /* 3. the events, 4. the bans */
        sb_add(b, "INSERT INTO event_sequences (created_at, updated_at, time, source_ip, signal_occurence_id,"
               " serialized) VALUES ");
        for (size_t i = 0; i < n; i++) {
                sb_add(b, i ? ",(" : "(");
                sb_time(b, now);
                sb_add(b, ",");
                sb_time(b, now);
                sb_add(b, ",");
                sb_time(b, s[i].ev.time);
                sb_add(b, ",");
                sb_str(b, m, s[i].ev.source_ip);
                sb_add(b, ",%" PRIu64 ",", row_ids[i]);
                sb_str(b, m, s[i].ev.serialized);
                sb_add(b, ")");
        }
        sb_run_step(m, b, MR_EVENTS);
        sb_add(b, "INSERT INTO ban_applications (created_at, updated_at, measure_source, measure_type,"
               " measure_extra, until, start_ip, end_ip, target_cn, target_as, target_as_name, ip_text,"
               " reason, scenario, signal_occurence_id, scope, value) VALUES ");
        for (size_t i = 0; i < n; i++) {
                const spw_ban *ban = &s[i].ban;

                sb_add(b, i ? ",(" : "(");
                sb_time(b, now);
                sb_add(b, ",");
                sb_time(b, now);
                sb_add(b, ",");
                sb_str(b, m, ban->measure_source);
                sb_add(b, ",");
                sb_str(b, m, ban->measure_type);
                sb_add(b, ",NULL,");
                sb_time(b, ban->until);
                sb_add(b, ",");
                sb_addr(b, ban->start_ip);
                sb_add(b, ",");
                sb_addr(b, ban->end_ip);
                sb_add(b, ",");
                sb_str(b, m, ban->target_cn);
                sb_add(b, ",%" PRId64 ",", (int64_t) ban->target_as);
                sb_str(b, m, ban->target_as_name);
                sb_add(b, ",");
                sb_str(b, m, ban->ip_text);
                sb_add(b, ",");
                sb_str(b, m, ban->reason);
                sb_add(b, ",");
                sb_str(b, m, ban->scenario);
                sb_add(b, ",%" PRIu64 ",'Ip',", row_ids[i]);
                sb_str(b, m, ban->ip_text);
                sb_add(b, ")");
        }
        sb_run_step(m, b, MR_BANS);

        /* 5. the change log: an ADD per ban of the batch */
        sb_add(b, "INSERT INTO ban_changes (at, kind, ban_id, ip_text) SELECT ");
        sb_time(b, now);
        sb_add(b, ", 1, id, ip_text FROM ban_applications WHERE signal_occurence_id IN (");
        for (size_t i = 0; i < n; i++)
                sb_add(b, "%s%" PRIu64, i ? "," : "", row_ids[i]);
        sb_add(b, ") ORDER BY id");
        sb_run_step(m, b, MR_CHANGES);

        /* 6. the soft-delete, one statement for the batch: of each target's
         * active bans all but one, ranked as MYDB_SQL_SUPERSEDE ranks them
         * (a running manual ban first, then the one that ends last, the
         * newest on a tie; a new manual ban's own rule is per target and
         * left to that statement). The ranking is a window over the
         * batch's targets, materialised, so the UPDATE may read its table. */
        sb_add(b, "UPDATE ban_applications AS b JOIN (SELECT r.id FROM (SELECT id, ROW_NUMBER() OVER"
               " (PARTITION BY ip_text ORDER BY (until > ");
        sb_time(b, now);
        sb_add(b, " AND COALESCE(measure_source, '') = 'cscli') DESC, until DESC, id DESC) AS rn"
               " FROM ban_applications FORCE INDEX (" MYDB_IP_TEXT_INDEX ") WHERE deleted_at IS NULL AND ip_text IN (");
        for (size_t i = 0; i < n; i++) {
                sb_add(b, i ? "," : "");
                sb_str(b, m, s[i].ban.ip_text);
        }
        sb_add(b, ")) AS r WHERE r.rn > 1) AS l ON l.id = b.id SET b.deleted_at = ");
        sb_time(b, now);
        sb_add(b, ", b.updated_at = b.deleted_at");
        sb_run_step(m, b, MR_SUPERSEDE);
        *superseded += mysql_affected_rows(m);
}

static double bench_multirow(const options *o) {
        MYSQL *m = connect_to(o, o->database);
        sample *s = calloc(o->batch, sizeof *s);
        uint64_t *row_ids = calloc(o->batch, sizeof *row_ids);
        sqlbuf b = {};
        mydb_error e;
        usec_t start, elapsed;
        uint64_t superseded = 0, active, total;
        bool crowdsec;
        int from;

        CHECK(s && row_ids);
        query(m, "SET SESSION time_zone = '+00:00'");
        query(m, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED");
        if (mydb_migrate(m, 30, 0, &from, &crowdsec, &e) < 0) {
                fprintf(stderr, "bench-mysql: schema: %s while %s\n", e.msg, e.doing);
                exit(1);
        }
        start = now_monotonic();
        for (uint64_t i = 0; i < o->signals; i += o->batch) {
                usec_t now = now_realtime(), t0;
                size_t n = (size_t) (o->signals - i < o->batch ? o->signals - i : o->batch);

                for (size_t k = 0; k < n; k++) {
                        sample_fill(&s[k], i + k, o->targets, now);
                        /* sample_fill points into the sample itself */
                        s[k].sig.events = &s[k].ev;
                        s[k].sig.bans = &s[k].ban;
                }
                query(m, "START TRANSACTION");
                write_batch_multirow(m, &b, s, n, now, 1, row_ids, &superseded);
                t0 = now_monotonic();
                if (mysql_commit(m) != 0)
                        die_conn(m, "commit");
                mr_usec[MR_COMMIT] += now_monotonic() - t0;
                mr_count[MR_COMMIT]++;
        }
        elapsed = now_monotonic() - start;
        /* every row is there, and one active ban per target is left */
        query(m, "SELECT (SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NULL),"
                 " (SELECT COUNT(*) FROM ban_applications), (SELECT COUNT(*) FROM ban_changes),"
                 " (SELECT COUNT(*) FROM event_sequences)");
        {
                MYSQL_RES *res = mysql_store_result(m);
                MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;

                CHECK(row);
                active = strtoull(row[0], NULL, 10);
                total = strtoull(row[1], NULL, 10);
                CHECK_EQ(total, o->signals);
                CHECK_EQ(strtoull(row[2], NULL, 10), o->signals);
                CHECK_EQ(strtoull(row[3], NULL, 10), o->signals);
                CHECK_EQ(active, o->targets < o->signals ? o->targets : o->signals);
                CHECK_EQ(superseded, total - active);
                mysql_free_result(res);
        }
        free(b.s);
        free(row_ids);
        free(s);
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
              "  --multirow        also the multi-row ceiling: each batch as a handful of multi-row\n"
              "                    statements (signals, id read-back, events, bans, change log, conflicts)\n"
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
                { "multirow", no_argument, NULL, 'M' },
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
                case 'M':
                        o.multirow = true;
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
        if (o.multirow && !o.plugin_only) {
                recreate_database(&o);
                secs = bench_multirow(&o);
                printf("ceiling (multi-row): %.0f signals/s (batch %" PRIu64 ", rows %" PRIu64 ", server %s)\n",
                       (double) o.signals / secs, o.batch, o.signals * 4, desc);
                printf("  %" PRIu64 " signals in %.3f s, %.1f us per signal, %" PRIu64 " distinct targets\n",
                       o.signals, secs, secs * 1e6 / (double) o.signals, o.targets);
                for (int k = 0; k < _MR_MAX; k++)
                        printf("  %-15s %6" PRIu64 " statements, %8.1f ms\n", mr_name[k], mr_count[k],
                               (double) mr_usec[k] / 1e3);
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
