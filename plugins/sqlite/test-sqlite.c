/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the sqlite backend, against real database files in a
 * temporary directory. The plugin is loaded with dlopen() from the path
 * given as argv[1], as the daemon loads it, and driven through
 * tests/lib/testhost with a clock the tests move. A second SQLite
 * connection (the test's own) inspects the file, plays CrowdSec v0.3 to
 * create an old database, and plays another process holding a lock.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <sqlite3.h>

#include "schema.h"
#include "test-fixtures.h"
#include "testhost.h"
#include "tests.h"

static const struct spw_backend *plugin;
static char tmpdir[] = "/tmp/test-sqlite-XXXXXX";
static int db_counter;

/* ------------------------------------------------------------ fixtures */

/* A fresh database path in the temp dir. */
static void new_path(char *buf, size_t size) {
        snprintf(buf, size, "%s/db%d.sqlite", tmpdir, ++db_counter);
}

/* Init the plugin on `path` with extra config pairs (key, value, ..., NULL).
 * Returns init's result; on success f->self is set. */
static int fixture_open(fixture *f, const char *path, ...) {
        spw_kv kv[16];
        size_t n = 0;
        va_list ap;
        const char *k;

        if (path)
                kv[n++] = (spw_kv) { "db_path", path };
        va_start(ap, path);
        while ((k = va_arg(ap, const char *)) && n < 16) {
                kv[n].key = k;
                kv[n++].value = va_arg(ap, const char *);
        }
        va_end(ap);
        f->host = testhost_new("bans", kv, n);
        testhost_set_time(f->host, T0);
        testhost_set_state_directory(f->host, tmpdir);
        f->plugin = plugin;
        f->self = NULL;
        return testhost_init(f->host, plugin, &f->self);
}

static void fixture_close(fixture *f) {
        if (f->self)
                plugin->shutdown(f->self);
        f->self = NULL;
        testhost_free(f->host);
        f->host = NULL;
}

/* ------------------------------------------------------------ the test's own connection */

static sqlite3 *db_open(const char *path) {
        sqlite3 *db = NULL;
        CHECK_EQ(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL), SQLITE_OK);
        sqlite3_busy_timeout(db, 2000);
        return db;
}

static void db_exec(sqlite3 *db, const char *sql) {
        char *err = NULL;
        if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
                fprintf(stderr, "SQL failed: %s\n%s\n", err, sql);
                abort();
        }
}

/* The first column of the first row as an integer (-1 if no row). */
static int64_t q_int(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int64_t q_int(const char *path, const char *fmt, ...) {
        char sql[2048];
        sqlite3 *db = db_open(path);
        sqlite3_stmt *st = NULL;
        int64_t v = -1;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(sql, sizeof sql, fmt, ap);
        va_end(ap);
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
                fprintf(stderr, "prepare failed: %s\n%s\n", sqlite3_errmsg(db), sql);
                abort();
        }
        if (sqlite3_step(st) == SQLITE_ROW)
                v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        sqlite3_close(db);
        return v;
}

/* The first column of the first row as text into buf ("(null)" / "(none)"). */
static const char *q_text(char *buf, size_t size, const char *path, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static const char *q_text(char *buf, size_t size, const char *path, const char *fmt, ...) {
        char sql[2048];
        sqlite3 *db = db_open(path);
        sqlite3_stmt *st = NULL;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(sql, sizeof sql, fmt, ap);
        va_end(ap);
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
                fprintf(stderr, "prepare failed: %s\n%s\n", sqlite3_errmsg(db), sql);
                abort();
        }
        if (sqlite3_step(st) == SQLITE_ROW)
                copy(buf, size, (const char *) sqlite3_column_text(st, 0));
        else
                copy(buf, size, "(none)");
        sqlite3_finalize(st);
        sqlite3_close(db);
        return buf;
}

static const char *fmt_time(char buf[static BANDB_TIME_MAX], spw_usec_t t) {
        return bandb_time_format(buf, t);
}

/* ------------------------------------------------------------ tests */

static void test_descriptor(void) {
        static const char *const keys[] = { "db_path", "type", "flush", "max_records", "max_records_age",
                                            "synchronous", "busy_timeout", "debug" };
        const spw_config_key *k;
        size_t n = 0;

        CHECK_EQ(plugin->magic, SPW_BACKEND_MAGIC);
        CHECK_EQ(plugin->abi_major, SPW_BACKEND_ABI_MAJOR);
        CHECK_EQ(plugin->size, sizeof(struct spw_backend));
        CHECK_STREQ(plugin->name, "sqlite");
        CHECK(plugin->init && plugin->insert && plugin->flush && plugin->start_autocommit && plugin->read_at &&
              plugin->delete_target && plugin->delete_all && plugin->shutdown);
        for (k = plugin->config_keys; k->name; k++, n++)
                CHECK(k->description && *k->description);
        CHECK_EQ(n, sizeof keys / sizeof keys[0]);
        for (size_t i = 0; i < n; i++) {
                bool found = false;
                for (k = plugin->config_keys; k->name; k++)
                        found = found || strcmp(k->name, keys[i]) == 0;
                CHECK(found);
        }
}

static void test_time_format(void) {
        char buf[BANDB_TIME_MAX];
        spw_usec_t t;

        CHECK_STREQ(bandb_time_format(buf, 0), "1970-01-01 00:00:00.000000+00:00");
        CHECK_STREQ(bandb_time_format(buf, T0 + 123456), "2023-11-14 22:13:20.123456+00:00");
        CHECK_STREQ(bandb_time_format(buf, -1), "1969-12-31 23:59:59.999999+00:00");
        CHECK_OK(bandb_time_parse(buf, strlen(buf), &t));
        CHECK_EQ(t, -1);
        CHECK_STREQ(bandb_time_format(buf, INT64_C(951782400) * SEC), "2000-02-29 00:00:00.000000+00:00");
        CHECK_STREQ(bandb_time_format(buf, INT64_MAX), "9999-12-31 23:59:59.999999+00:00");
        CHECK_STREQ(bandb_time_format(buf, INT64_MIN), "0001-01-01 00:00:00.000000+00:00");
        /* what go-sqlite3 wrote for CrowdSec: local zone, nanoseconds */
        CHECK_OK(bandb_time_parse("2023-11-15 00:13:20.123456789+02:00", 35, &t));
        CHECK_EQ(t, T0 + 123456);
        CHECK_OK(bandb_time_parse("2023-11-14T22:13:20Z", 20, &t));
        CHECK_EQ(t, T0);
        CHECK_OK(bandb_time_parse("2023-11-14 22:13:20", 19, &t));
        CHECK_EQ(t, T0);
        CHECK_OK(bandb_time_parse("2023-11-14 17:13:20-0500", 24, &t));
        CHECK_EQ(t, T0);
        CHECK(bandb_time_parse("2023-11-14", 10, &t) < 0);
        CHECK(bandb_time_parse("2023-13-14 22:13:20", 19, &t) < 0);
        CHECK(bandb_time_parse("2023-11-14 22:13:20 UTC", 23, &t) < 0);
        CHECK(bandb_time_parse("2023-11-14 22:13:20.", 20, &t) < 0);
        /* fixed width: text order is time order */
        {
                char a[BANDB_TIME_MAX], b[BANDB_TIME_MAX];
                bandb_time_format(a, T0 + 999999);
                bandb_time_format(b, T0 + 1000000);
                CHECK(strcmp(a, b) < 0);
                bandb_time_format(a, 5 * SEC);
                bandb_time_format(b, 10 * SEC);
                CHECK(strcmp(a, b) < 0);
        }
}

static void test_schema_created(void) {
        fixture f;
        char path[256], buf[256];

        new_path(path, sizeof path);
        CHECK_OK(fixture_open(&f, path, NULL));
        CHECK_EQ(q_int(path, "PRAGMA user_version"), BANDB_SCHEMA_VERSION);
        CHECK_STREQ(q_text(buf, sizeof buf, path, "PRAGMA journal_mode"), "wal");
        /* CrowdSec's tables and columns */
        CHECK_EQ(q_int(path, "SELECT count(*) FROM pragma_table_info('signal_occurences') WHERE name IN "
                             "('id','created_at','updated_at','deleted_at','map_key','scenario','bucket_id',"
                             "'alert_message','events_count','start_at','stop_at','source_ip','source_range',"
                             "'source_autonomous_system_number','source_autonomous_system_organization',"
                             "'source_country','source_latitude','source_longitude','dest_ip','capacity',"
                             "'leak_speed','reprocess')"), 22);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM pragma_table_info('ban_applications') WHERE name IN "
                             "('id','created_at','updated_at','deleted_at','measure_source','measure_type',"
                             "'measure_extra','until','start_ip','end_ip','target_cn','target_as',"
                             "'target_as_name','ip_text','reason','scenario','signal_occurence_id')"), 17);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM pragma_table_info('event_sequences') WHERE name IN "
                             "('id','created_at','updated_at','deleted_at','time','source_ip','source_range',"
                             "'source_autonomous_system_number','source_autonomous_system_organization',"
                             "'source_country','signal_occurence_id','serialized')"), 12);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN "
                             "('idx_ban_applications_ip_text_deleted_at','idx_ban_applications_deleted_at_until',"
                             "'idx_ban_applications_signal_occurence_id','idx_event_sequences_signal_occurence_id')"),
                 4);
        CHECK_STREQ(testhost_status(f.host, "db_path"), path);
        CHECK_CONTAINS(testhost_log(f.host), "created the ban database (schema version 1)");
        fixture_close(&f);

        /* reopening a current database migrates nothing */
        CHECK_OK(fixture_open(&f, path, NULL));
        CHECK(!strstr(testhost_log(f.host), "schema"));
        fixture_close(&f);
}

/* CrowdSec v0.3's database as gorm v1's sqlite3 dialect creates it
 * (AutoMigrate of SignalOccurence, EventSequence, BanApplication), with
 * rows as go-sqlite3 writes them: local-zone times with nanoseconds, IPv4
 * addresses as uint32. */
static const char crowdsec_v03_schema[] =
        "CREATE TABLE \"signal_occurences\" (\"id\" integer primary key autoincrement,\"created_at\" datetime,"
        "\"updated_at\" datetime,\"deleted_at\" datetime,\"map_key\" varchar(255),\"scenario\" varchar(255),"
        "\"bucket_id\" varchar(255),\"alert_message\" varchar(255),\"events_count\" integer,\"start_at\" datetime,"
        "\"stop_at\" datetime,\"source_ip\" varchar(255),\"source_range\" varchar(255),"
        "\"source_autonomous_system_number\" varchar(255),\"source_autonomous_system_organization\" varchar(255),"
        "\"source_country\" varchar(255),\"source_latitude\" real,\"source_longitude\" real,\"dest_ip\" varchar(255),"
        "\"capacity\" integer,\"leak_speed\" bigint,\"reprocess\" bool );"
        "CREATE INDEX idx_signal_occurences_deleted_at ON \"signal_occurences\"(deleted_at) ;"
        "CREATE TABLE \"event_sequences\" (\"id\" integer primary key autoincrement,\"created_at\" datetime,"
        "\"updated_at\" datetime,\"deleted_at\" datetime,\"time\" datetime,\"source_ip\" varchar(255),"
        "\"source_range\" varchar(255),\"source_autonomous_system_number\" varchar(255),"
        "\"source_autonomous_system_organization\" varchar(255),\"source_country\" varchar(255),"
        "\"signal_occurence_id\" integer,\"serialized\" text );"
        "CREATE INDEX idx_event_sequences_deleted_at ON \"event_sequences\"(deleted_at) ;"
        "CREATE TABLE \"ban_applications\" (\"id\" integer primary key autoincrement,\"created_at\" datetime,"
        "\"updated_at\" datetime,\"deleted_at\" datetime,\"measure_source\" varchar(255),"
        "\"measure_type\" varchar(255),\"measure_extra\" varchar(255),\"until\" datetime,\"start_ip\" integer,"
        "\"end_ip\" integer,\"target_cn\" varchar(255),\"target_as\" integer,\"target_as_name\" varchar(255),"
        "\"ip_text\" varchar(255),\"reason\" varchar(255),\"scenario\" varchar(255),"
        "\"signal_occurence_id\" integer );"
        "CREATE INDEX idx_ban_applications_deleted_at ON \"ban_applications\"(deleted_at) ;";

/* T0 is 2023-11-14 22:13:20 UTC, written here in +02:00 as CrowdSec would. */
static const char crowdsec_v03_rows[] =
        "INSERT INTO signal_occurences VALUES (1,'2023-11-15 00:13:20.5+02:00','2023-11-15 00:13:20.5+02:00',NULL,"
        "'k','crowdsecurity/ssh-bf','b','alert',6,'2023-11-15 00:13:00+02:00','2023-11-15 00:13:19.999999999+02:00',"
        "'192.0.2.1','192.0.2.0/24','64500','Example AS','FR',48.85,2.35,'',5,10000000000,0);"
        "INSERT INTO event_sequences VALUES (1,'2023-11-15 00:13:20.5+02:00','2023-11-15 00:13:20.5+02:00',NULL,"
        "'2023-11-15 00:13:10+02:00','192.0.2.1','','','','',1,'{}');"
        /* active until T0 + 4h */
        "INSERT INTO ban_applications VALUES (1,'2023-11-15 00:13:20.5+02:00','2023-11-15 00:13:20.5+02:00',NULL,"
        "'local','ban','','2023-11-15 04:13:20+02:00',3221225985,3221225985,'FR',64500,'Example AS',"
        "'192.0.2.1','ssh bruteforce','crowdsecurity/ssh-bf',1);"
        /* deleted at T0 - 1h */
        "INSERT INTO signal_occurences VALUES (2,'2023-11-14 23:13:20+02:00','2023-11-14 23:13:20+02:00',NULL,"
        "'k','crowdsecurity/http-probing','b','alert',3,'2023-11-14 23:13:00+02:00','2023-11-14 23:13:19+02:00',"
        "'198.51.100.0','','','','US',0,0,'',5,10000000000,0);"
        "INSERT INTO ban_applications VALUES (2,'2023-11-14 23:13:20+02:00','2023-11-14 23:13:20+02:00',"
        "'2023-11-14 23:13:20+02:00','local','ban','','2023-11-15 03:13:20+02:00',3325256704,3325256959,'US',0,'',"
        "'198.51.100.0/24','probing','crowdsecurity/http-probing',2);";

static void test_migrate_from_crowdsec(void) {
        fixture f;
        char path[256], buf[256], t[BANDB_TIME_MAX];
        sqlite3 *db;
        rows rs;
        sigbuf s;

        new_path(path, sizeof path);
        db = db_open(path);
        db_exec(db, crowdsec_v03_schema);
        db_exec(db, crowdsec_v03_rows);
        sqlite3_close(db);
        CHECK_EQ(q_int(path, "PRAGMA user_version"), 0);

        CHECK_OK(fixture_open(&f, path, NULL));
        CHECK_EQ(q_int(path, "PRAGMA user_version"), BANDB_SCHEMA_VERSION);
        CHECK_CONTAINS(testhost_log(f.host), "upgraded the CrowdSec v0.3 database from schema version 0 to 1");
        /* rows kept, times normalised to UTC with microseconds */
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications"), 2);
        CHECK_STREQ(q_text(buf, sizeof buf, path, "SELECT created_at FROM ban_applications WHERE id = 1"),
                    fmt_time(t, T0 + 500000));
        CHECK_STREQ(q_text(buf, sizeof buf, path, "SELECT stop_at FROM signal_occurences WHERE id = 1"),
                    fmt_time(t, T0 - 1));
        CHECK_STREQ(q_text(buf, sizeof buf, path, "SELECT time FROM event_sequences WHERE id = 1"),
                    fmt_time(t, T0 - 10 * SEC));
        CHECK_STREQ(q_text(buf, sizeof buf, path, "SELECT until FROM ban_applications WHERE id = 1"),
                    fmt_time(t, T0 + 4 * 3600 * SEC));
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications WHERE deleted_at IS NULL"), 1);
        /* uint32 addresses became IPv4-mapped 16-byte blobs */
        CHECK_STREQ(q_text(buf, sizeof buf, path, "SELECT hex(start_ip) FROM ban_applications WHERE id = 1"),
                    "00000000000000000000FFFFC0000201");
        CHECK_STREQ(q_text(buf, sizeof buf, path, "SELECT hex(end_ip) FROM ban_applications WHERE id = 2"),
                    "00000000000000000000FFFFC63364FF");
        /* gorm's deleted_at indexes replaced by ours */
        CHECK_EQ(q_int(path, "SELECT count(*) FROM sqlite_master WHERE name IN ('idx_signal_occurences_deleted_at',"
                             "'idx_event_sequences_deleted_at','idx_ban_applications_deleted_at')"), 0);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM sqlite_master WHERE name = '" BANDB_IP_TEXT_INDEX "'"), 1);

        /* CrowdSec's active ban is served, the deleted one is not */
        rs = read_at(&f, T0);
        CHECK_EQ(rs.n, 1);
        CHECK_STREQ(rs.r[0].iptext, "192.0.2.1");
        CHECK_STREQ(rs.r[0].reason, "ssh bruteforce");
        CHECK_EQ(rs.r[0].events_count, 6);
        CHECK_EQ(rs.r[0].until, T0 + 4 * 3600 * SEC);
        /* before its deletion, the range ban was active */
        rs = read_at(&f, T0 - 2 * 3600 * SEC + SEC);
        CHECK_EQ(rs.n, 2);

        /* and new signals supersede CrowdSec's ban */
        CHECK_EQ(plugin->insert(f.self, mk_signal(&s, "192.0.2.1", "again", T0 + 8 * 3600 * SEC)), SPW_INSERT_OK);
        CHECK_OK(plugin->flush(f.self));
        rs = read_at(&f, T0);
        CHECK_EQ(rs.n, 1);
        CHECK_STREQ(rs.r[0].reason, "again");
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications WHERE ip_text = '192.0.2.1' AND "
                             "deleted_at IS NULL"), 1);
        fixture_close(&f);
}

static void test_newer_schema_refused(void) {
        fixture f;
        char path[256];
        sqlite3 *db;

        new_path(path, sizeof path);
        db = db_open(path);
        db_exec(db, "PRAGMA user_version = 99");
        sqlite3_close(db);
        CHECK(fixture_open(&f, path, NULL) < 0);
        CHECK_CONTAINS(testhost_last_error(f.host), path);
        CHECK_CONTAINS(testhost_last_error(f.host), "schema version 99 is newer");
        fixture_close(&f);
}

/* A table CrowdSec never had the columns of: refused, not half-used. */
static void test_foreign_tables_refused(void) {
        fixture f;
        char path[256];
        sqlite3 *db;

        new_path(path, sizeof path);
        db = db_open(path);
        db_exec(db, "CREATE TABLE ban_applications (id integer primary key, ip_text text)");
        sqlite3_close(db);
        CHECK(fixture_open(&f, path, NULL) < 0);
        CHECK_CONTAINS(testhost_last_error(f.host), path);
        CHECK_CONTAINS(testhost_last_error(f.host), "no such column");
        fixture_close(&f);
}

static void test_insert_rows(void) {
        fixture f;
        char path[256], buf[256], t[BANDB_TIME_MAX];
        sigbuf s;
        const spw_signal *sig;

        new_path(path, sizeof path);
        CHECK_OK(fixture_open(&f, path, NULL));
        sig = mk_signal(&s, "192.0.2.7", "crowdsecurity/ssh-bf", T0 + 3600 * SEC);
        CHECK_EQ(plugin->insert(f.self, sig), SPW_INSERT_OK);
        /* not visible to other connections before flush */
        CHECK_EQ(q_int(path, "SELECT count(*) FROM signal_occurences"), 0);
        CHECK_OK(plugin->flush(f.self));
        CHECK_OK(plugin->flush(f.self)); /* nothing pending: no-op */

        CHECK_EQ(q_int(path, "SELECT count(*) FROM signal_occurences"), 1);
        CHECK_STREQ(q_text(buf, sizeof buf, path,
                           "SELECT scenario || '|' || bucket_id || '|' || alert_message || '|' || events_count"
                           " || '|' || source_ip || '|' || source_country || '|' || source_autonomous_system_number"
                           " || '|' || capacity || '|' || leak_speed || '|' || reprocess || '|' || map_key"
                           " FROM signal_occurences"),
                    "crowdsecurity/ssh-bf|sunny-flower|test alert|6|192.0.2.7|FR|64500|5|10000000000|0|key");
        CHECK_STREQ(q_text(buf, sizeof buf, path, "SELECT created_at FROM signal_occurences"), fmt_time(t, T0));
        CHECK_STREQ(q_text(buf, sizeof buf, path, "SELECT start_at FROM signal_occurences"),
                    fmt_time(t, T0 - 20 * SEC));
        CHECK_EQ(q_int(path, "SELECT count(*) FROM event_sequences e JOIN signal_occurences s"
                             " ON e.signal_occurence_id = s.id WHERE e.serialized = '{\"log\":\"x\"}'"), 1);
        CHECK_STREQ(q_text(buf, sizeof buf, path, "SELECT time FROM event_sequences"), fmt_time(t, T0 - 10 * SEC));
        CHECK_STREQ(q_text(buf, sizeof buf, path,
                           "SELECT measure_source || '|' || measure_type || '|' || ip_text || '|' || reason"
                           " || '|' || target_cn || '|' || target_as || '|' || target_as_name || '|' || hex(start_ip)"
                           " FROM ban_applications b JOIN signal_occurences s ON s.id = b.signal_occurence_id"),
                    "local|ban|192.0.2.7|crowdsecurity/ssh-bf|FR|64500|Example AS|00000000000000000000FFFFC0000207");
        CHECK_STREQ(q_text(buf, sizeof buf, path, "SELECT until FROM ban_applications"),
                    fmt_time(t, T0 + 3600 * SEC));

        /* a signal without bans is stored, signal and events */
        CHECK_EQ(plugin->insert(f.self, mk_signal(&s, NULL, "no-remediation", 0)), SPW_INSERT_OK);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(path, "SELECT count(*) FROM signal_occurences WHERE scenario = 'no-remediation'"), 1);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM event_sequences"), 2);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications"), 1);

        /* `spillwayctl ban add`: a synthetic signal, one ban, no events */
        memset(&s, 0, sizeof s);
        s.ban = (spw_ban) { .measure_source = "cscli", .measure_type = "ban", .until = T0 + 600 * SEC,
                            .start_ip = { [10] = 0xff, [11] = 0xff, 203, 0, 113, 9 },
                            .end_ip = { [10] = 0xff, [11] = 0xff, 203, 0, 113, 9 },
                            .ip_text = "203.0.113.9", .reason = "manual ban", .scenario = "manual ban" };
        s.sig = (spw_signal) { .size = sizeof(spw_signal), .id = 999, .scenario = "manual ban",
                               .bans = &s.ban, .n_bans = 1 };
        CHECK_EQ(plugin->insert(f.self, &s.sig), SPW_INSERT_OK);
        CHECK_OK(plugin->flush(f.self));
        {
                rows rs = read_at(&f, T0);
                CHECK_EQ(rs.n, 2);
                CHECK_STREQ(rs.r[0].iptext, "203.0.113.9");
                CHECK_STREQ(rs.r[0].source, "cscli");
                CHECK_STREQ(rs.r[0].reason, "manual ban");
                CHECK_STREQ(rs.r[0].cn, "(null)");
                CHECK_EQ(rs.r[0].events_count, 0);
                CHECK_EQ(rs.r[0].until, T0 + 600 * SEC);
        }

        /* a ban without a target is rejected, naming why */
        s.ban.ip_text = NULL;
        CHECK_EQ(plugin->insert(f.self, &s.sig), SPW_INSERT_REJECT);
        CHECK_CONTAINS(testhost_last_error(f.host), "without ip_text");
        /* debug is off: no per-signal lines */
        CHECK(!strstr(testhost_log(f.host), "stored signal"));
        fixture_close(&f);
}

static void test_debug_log(void) {
        fixture f;
        char path[256];

        new_path(path, sizeof path);
        CHECK_OK(fixture_open(&f, path, "debug", "true", NULL));
        CHECK_EQ(insert(&f, "192.0.2.1", "scn", T0 + SEC), SPW_INSERT_OK);
        CHECK_CONTAINS(testhost_log(f.host), "7 stored signal");
        CHECK_CONTAINS(testhost_log(f.host), "scenario scn, source 192.0.2.1, 1 ban(s), 1 event(s)");
        fixture_close(&f);
}

static void test_supersede(void) {
        fixture f;
        char path[256], buf[256], t[BANDB_TIME_MAX];
        rows rs;

        new_path(path, sizeof path);
        CHECK_OK(fixture_open(&f, path, NULL));
        CHECK_EQ(insert(&f, "192.0.2.7", "first", T0 + 3600 * SEC), SPW_INSERT_OK);
        CHECK_EQ(insert(&f, "192.0.2.70", "other", T0 + 3600 * SEC), SPW_INSERT_OK);
        advance(&f, 10 * SEC);
        CHECK_EQ(insert(&f, "192.0.2.7", "second", T0 + 7200 * SEC), SPW_INSERT_OK);
        CHECK_OK(plugin->flush(f.self));

        /* the first ban was soft-deleted when the second arrived */
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications WHERE ip_text = '192.0.2.7'"), 2);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications WHERE ip_text = '192.0.2.7'"
                             " AND deleted_at IS NULL"), 1);
        CHECK_STREQ(q_text(buf, sizeof buf, path, "SELECT deleted_at FROM ban_applications WHERE reason = 'first'"),
                    fmt_time(t, T0 + 10 * SEC));
        CHECK_STREQ(q_text(buf, sizeof buf, path, "SELECT updated_at FROM ban_applications WHERE reason = 'first'"),
                    fmt_time(t, T0 + 10 * SEC));
        /* an exact match only */
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications WHERE reason = 'other' AND deleted_at IS NULL"), 1);
        /* the signals are all kept */
        CHECK_EQ(q_int(path, "SELECT count(*) FROM signal_occurences"), 3);

        rs = read_at(&f, testhost_time(f.host));
        CHECK_EQ(rs.n, 2);
        CHECK_STREQ(rs.r[0].iptext, "192.0.2.7");
        CHECK_STREQ(rs.r[0].reason, "second");
        CHECK_EQ(rs.r[0].bancount, 1);
        CHECK_STREQ(rs.r[1].iptext, "192.0.2.70");
        fixture_close(&f);
}

static void test_read_at(void) {
        fixture f;
        char path[256];
        rows rs;
        sigbuf s;

        new_path(path, sizeof path);
        CHECK_OK(fixture_open(&f, path, NULL));
        /* T0:       A until T0+1h, B until T0+3h
         * T0+10s:   A again (until T0+2h): supersedes the first A
         * T0+20s:   C until T0+30m, deleted at T0+40s */
        CHECK_EQ(insert(&f, "192.0.2.1", "a1", T0 + 3600 * SEC), SPW_INSERT_OK);
        CHECK_EQ(insert(&f, "2001:db8::/64", "b", T0 + 3 * 3600 * SEC), SPW_INSERT_OK);
        advance(&f, 10 * SEC);
        mk_signal(&s, "192.0.2.1", "a2", T0 + 2 * 3600 * SEC);
        s.sig.events_count = 42;
        s.ban.measure_type = "simulation:ban";
        s.ban.measure_source = "api";
        CHECK_EQ(plugin->insert(f.self, &s.sig), SPW_INSERT_OK);
        advance(&f, 10 * SEC);
        CHECK_EQ(insert(&f, "198.51.100.4", "c", T0 + 1800 * SEC), SPW_INSERT_OK);
        CHECK_OK(plugin->flush(f.self));
        advance(&f, 20 * SEC);
        {
                uint64_t n = 0;
                CHECK_OK(plugin->delete_target(f.self, "198.51.100.4", &n));
                CHECK_EQ(n, 1);
                CHECK_OK(plugin->flush(f.self));
        }

        /* now (T0+40s): A (a2) and B; newest first */
        rs = read_at(&f, T0 + 40 * SEC);
        CHECK_EQ(rs.n, 2);
        CHECK_STREQ(rs.r[0].iptext, "192.0.2.1");
        CHECK_STREQ(rs.r[0].reason, "a2");
        CHECK_STREQ(rs.r[0].action, "simulation:ban");
        CHECK_STREQ(rs.r[0].source, "api");
        CHECK_STREQ(rs.r[0].cn, "FR");
        CHECK_STREQ(rs.r[0].as, "Example AS");
        CHECK_EQ(rs.r[0].as_number, 64500);
        CHECK_EQ(rs.r[0].events_count, 42);
        CHECK_EQ(rs.r[0].until, T0 + 2 * 3600 * SEC);
        CHECK_EQ(rs.r[0].bancount, 1);
        CHECK_STREQ(rs.r[1].iptext, "2001:db8::/64");
        CHECK_EQ(rs.r[1].events_count, 6);

        /* T0+30s: C was not deleted yet */
        rs = read_at(&f, T0 + 30 * SEC);
        CHECK_EQ(rs.n, 3);
        CHECK_STREQ(rs.r[0].iptext, "198.51.100.4");

        /* T0+5s: the first A was still active: two bans for A, one row,
         * the newest ban's fields */
        rs = read_at(&f, T0 + 5 * SEC);
        CHECK_EQ(rs.n, 3);
        CHECK_STREQ(rs.r[0].iptext, "198.51.100.4");
        CHECK_STREQ(rs.r[1].iptext, "192.0.2.1");
        CHECK_STREQ(rs.r[1].reason, "a2");
        CHECK_EQ(rs.r[1].bancount, 2);

        /* T0+1h30: C expired; A and B */
        rs = read_at(&f, T0 + 5400 * SEC);
        CHECK_EQ(rs.n, 2);
        /* exactly at until: still active (until >= at) */
        rs = read_at(&f, T0 + 2 * 3600 * SEC);
        CHECK_EQ(rs.n, 2);
        /* T0+2h30: only B */
        rs = read_at(&f, T0 + 9000 * SEC);
        CHECK_EQ(rs.n, 1);
        CHECK_STREQ(rs.r[0].iptext, "2001:db8::/64");
        /* T0+4h: none */
        rs = read_at(&f, T0 + 4 * 3600 * SEC);
        CHECK_EQ(rs.n, 0);
        fixture_close(&f);
}

static int stop_after_first(const spw_ban_row *br, void *userdata) {
        (*(int *) userdata)++;
        return 7;
}

static void test_read_at_stop(void) {
        fixture f;
        char path[256];
        int calls = 0;

        new_path(path, sizeof path);
        CHECK_OK(fixture_open(&f, path, NULL));
        CHECK_EQ(insert(&f, "192.0.2.1", "a", T0 + 3600 * SEC), SPW_INSERT_OK);
        CHECK_EQ(insert(&f, "192.0.2.2", "b", T0 + 3600 * SEC), SPW_INSERT_OK);
        /* reads see the open batch (same connection) */
        CHECK_EQ(plugin->read_at(f.self, T0, stop_after_first, &calls), 7);
        CHECK_EQ(calls, 1);
        /* and the statement was reset: the next walk works */
        CHECK_EQ(read_at(&f, T0).n, 2);
        fixture_close(&f);
}

static void test_delete(void) {
        fixture f;
        char path[256];
        uint64_t n = 99;

        new_path(path, sizeof path);
        CHECK_OK(fixture_open(&f, path, NULL));
        CHECK_EQ(insert(&f, "192.0.2.7", "a", T0 + 3600 * SEC), SPW_INSERT_OK);
        CHECK_EQ(insert(&f, "192.0.2.70", "b", T0 + 3600 * SEC), SPW_INSERT_OK);
        CHECK_EQ(insert(&f, "2001:db8::/64", "c", T0 + 3600 * SEC), SPW_INSERT_OK);
        CHECK_EQ(insert(&f, "2001:db8::1", "d", T0 + 3600 * SEC), SPW_INSERT_OK);
        CHECK_OK(plugin->flush(f.self));

        /* no batch open: the delete is durable on return */
        advance(&f, SEC);
        CHECK_OK(plugin->delete_target(f.self, "192.0.2.7", &n));
        CHECK_EQ(n, 1);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications WHERE deleted_at IS NOT NULL"), 1);
        CHECK_OK(plugin->delete_target(f.self, "192.0.2.7", &n));
        CHECK_EQ(n, 0);
        CHECK_OK(plugin->delete_target(f.self, "2001:db8::/64", &n));
        CHECK_EQ(n, 1);
        CHECK_OK(plugin->delete_target(f.self, "10.0.0.1", &n));
        CHECK_EQ(n, 0);
        CHECK_EQ(plugin->delete_target(f.self, "", &n), -EINVAL);
        CHECK_EQ(read_at(&f, testhost_time(f.host)).n, 2);
        /* soft deletes: rows kept, and read_at before the deletion still sees them */
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications"), 4);
        CHECK_EQ(read_at(&f, T0).n, 4);

        /* inside an open batch, the delete joins it and flush commits it */
        CHECK_EQ(insert(&f, "203.0.113.1", "e", T0 + 3600 * SEC), SPW_INSERT_OK);
        CHECK_OK(plugin->delete_all(f.self, &n));
        CHECK_EQ(n, 3);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications WHERE deleted_at IS NULL"), 2);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications WHERE deleted_at IS NULL"), 0);
        CHECK_EQ(read_at(&f, testhost_time(f.host)).n, 0);
        CHECK_OK(plugin->delete_all(f.self, &n));
        CHECK_EQ(n, 0);
        fixture_close(&f);
}

static void test_expiry(void) {
        fixture f;
        char path[256], buf[256], t[BANDB_TIME_MAX];

        new_path(path, sizeof path);
        CHECK_OK(fixture_open(&f, path, "flush", "true", "max_records", "0", "max_records_age", "0", NULL));
        CHECK_OK(plugin->start_autocommit(f.self));
        CHECK_EQ(testhost_n_timers(f.host), 1); /* expiry only: GC disabled */
        CHECK_EQ(insert(&f, "192.0.2.1", "short", T0 + 10 * SEC), SPW_INSERT_OK);
        CHECK_EQ(insert(&f, "192.0.2.2", "long", T0 + 3600 * SEC), SPW_INSERT_OK);
        CHECK_OK(plugin->flush(f.self));

        advance(&f, 5 * SEC);
        CHECK_EQ(testhost_run_timers(f.host), 1);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications WHERE deleted_at IS NULL"), 2);

        advance(&f, 6 * SEC); /* T0 + 11s: "short" is past until */
        CHECK_EQ(testhost_run_timers(f.host), 1);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications WHERE deleted_at IS NULL"), 1);
        CHECK_STREQ(q_text(buf, sizeof buf, path, "SELECT deleted_at FROM ban_applications WHERE reason = 'short'"),
                    fmt_time(t, T0 + 11 * SEC));
        CHECK_STREQ(testhost_status(f.host, "expired"), "1");

        /* with a batch open, expiry joins it */
        advance(&f, 3600 * SEC);
        CHECK_EQ(insert(&f, "192.0.2.3", "pending", T0 + 7200 * SEC), SPW_INSERT_OK);
        CHECK_EQ(testhost_run_timers(f.host), 1);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications WHERE deleted_at IS NULL"), 1);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications WHERE deleted_at IS NULL"), 1);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications WHERE reason = 'pending' AND deleted_at IS NULL"), 1);
        fixture_close(&f);

        /* flush: false: no expiry timer */
        new_path(path, sizeof path);
        CHECK_OK(fixture_open(&f, path, "flush", "false", "max_records", "0", "max_records_age", "0", NULL));
        CHECK_OK(plugin->start_autocommit(f.self));
        CHECK_EQ(testhost_n_timers(f.host), 0);
        fixture_close(&f);

        /* defaults: expiry and GC */
        new_path(path, sizeof path);
        CHECK_OK(fixture_open(&f, path, NULL));
        CHECK_OK(plugin->start_autocommit(f.self));
        CHECK_EQ(testhost_n_timers(f.host), 2);
        fixture_close(&f);
}

/* n bans, then DeleteAll (which soft-deletes every active ban). */
static void fill_deleted(fixture *f, int n, const char *prefix) {
        uint64_t count;
        char ip[64];

        for (int i = 0; i < n; i++) {
                snprintf(ip, sizeof ip, "%s%d.%d", prefix, i / 250, i % 250);
                CHECK_EQ(insert(f, ip, "gc", testhost_time(f->host) + 3600 * SEC), SPW_INSERT_OK);
        }
        CHECK_OK(plugin->delete_all(f->self, &count));
        CHECK(count >= (uint64_t) n);
        CHECK_OK(plugin->flush(f->self));
}

static void test_gc_by_count(void) {
        fixture f;
        char path[256];

        new_path(path, sizeof path);
        CHECK_OK(fixture_open(&f, path, "flush", "false", "max_records", "5", "max_records_age", "0", NULL));
        CHECK_OK(plugin->start_autocommit(f.self));
        CHECK_EQ(testhost_n_timers(f.host), 1);
        fill_deleted(&f, 8, "10.0.");          /* ids 1..8, soft-deleted */
        CHECK_EQ(insert(&f, "10.1.0.1", "active-old", T0 + 3600 * SEC), SPW_INSERT_OK);
        CHECK_EQ(insert(&f, "10.1.0.2", "active-new", T0 + 3600 * SEC), SPW_INSERT_OK);
        CHECK_EQ(plugin->insert(f.self, &(spw_signal) { .size = sizeof(spw_signal), .scenario = "bare" }),
                 SPW_INSERT_OK);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications"), 10);

        advance(&f, 59 * SEC);
        CHECK_EQ(testhost_run_timers(f.host), 0);
        advance(&f, SEC);
        CHECK_EQ(testhost_run_timers(f.host), 1);
        CHECK_OK(plugin->flush(f.self));
        /* the newest 5 bans are ids 6..10; soft-deleted ones older than that go */
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications"), 5);
        CHECK_EQ(q_int(path, "SELECT min(id) FROM ban_applications"), 6);
        /* with their signals and event sequences, and nothing else */
        CHECK_EQ(q_int(path, "SELECT count(*) FROM signal_occurences"), 6);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM signal_occurences WHERE scenario = 'bare'"), 1);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM event_sequences"), 5);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM event_sequences e WHERE NOT EXISTS"
                             " (SELECT 1 FROM signal_occurences s WHERE s.id = e.signal_occurence_id)"), 0);
        CHECK_CONTAINS(testhost_log(f.host), "garbage collection removed 5 soft-deleted ban(s) (5 beyond max_records 5");
        CHECK_STREQ(testhost_status(f.host, "collected"), "5");

        /* active bans are never collected, however many */
        advance(&f, 60 * SEC);
        for (int i = 0; i < 6; i++) {
                char ip[32];
                snprintf(ip, sizeof ip, "10.2.0.%d", i);
                CHECK_EQ(insert(&f, ip, "active", T0 + 7200 * SEC), SPW_INSERT_OK);
        }
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(testhost_run_timers(f.host), 1);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications WHERE deleted_at IS NULL"), 8);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications"), 8);
        fixture_close(&f);
}

static void test_gc_by_age(void) {
        fixture f;
        char path[256];

        new_path(path, sizeof path);
        CHECK_OK(fixture_open(&f, path, "flush", "false", "max_records", "0", "max_records_age", "1h", NULL));
        CHECK_OK(plugin->start_autocommit(f.self));
        fill_deleted(&f, 3, "10.0.");                       /* deleted at T0 */
        CHECK_EQ(plugin->insert(f.self, &(spw_signal) { .size = sizeof(spw_signal), .scenario = "bare-old" }),
                 SPW_INSERT_OK);
        CHECK_EQ(insert(&f, "10.9.0.1", "active-old", T0 + 5 * 3600 * SEC), SPW_INSERT_OK);
        CHECK_OK(plugin->flush(f.self));
        advance(&f, 1800 * SEC);
        fill_deleted(&f, 2, "10.1.");                       /* deleted at T0+30m, 10.9.0.1 too */
        CHECK_EQ(insert(&f, "10.9.0.2", "active", T0 + 5 * 3600 * SEC), SPW_INSERT_OK);
        CHECK_EQ(plugin->insert(f.self, &(spw_signal) { .size = sizeof(spw_signal), .scenario = "bare-new" }),
                 SPW_INSERT_OK);
        CHECK_OK(plugin->flush(f.self));

        /* T0+1h10: the bans deleted at T0 are older than 1h, the others not */
        testhost_set_time(f.host, T0 + 4200 * SEC);
        CHECK_EQ(testhost_run_timers(f.host), 1);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications"), 4);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications WHERE ip_text LIKE '10.0.%%'"), 0);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM signal_occurences WHERE scenario = 'gc'"), 2);
        /* a signal that never had a ban, older than max_records_age, goes too */
        CHECK_EQ(q_int(path, "SELECT count(*) FROM signal_occurences WHERE scenario = 'bare-old'"), 0);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM signal_occurences WHERE scenario = 'bare-new'"), 1);
        /* the signal of a ban that is kept is kept */
        CHECK_EQ(q_int(path, "SELECT count(*) FROM signal_occurences WHERE scenario = 'active-old'"), 1);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM event_sequences e WHERE NOT EXISTS"
                             " (SELECT 1 FROM signal_occurences s WHERE s.id = e.signal_occurence_id)"), 0);
        CHECK_CONTAINS(testhost_log(f.host), "3 older than max_records_age");
        fixture_close(&f);
}

/* More than one chunk, with and without a batch open. */
static void test_gc_chunks(void) {
        fixture f;
        char path[256];

        new_path(path, sizeof path);
        CHECK_OK(fixture_open(&f, path, "flush", "false", "max_records", "10", "max_records_age", "0", NULL));
        CHECK_OK(plugin->start_autocommit(f.self));
        fill_deleted(&f, 2510, "10.5.");
        advance(&f, 60 * SEC);
        CHECK_EQ(testhost_run_timers(f.host), 1);     /* no batch: three transactions of its own */
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications"), 10);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM signal_occurences"), 10);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM event_sequences"), 10);

        fill_deleted(&f, 1500, "10.6.");
        CHECK_EQ(insert(&f, "12.0.0.1", "pending", T0 + 7200 * SEC), SPW_INSERT_OK);
        advance(&f, 60 * SEC);
        CHECK_EQ(testhost_run_timers(f.host), 1);     /* joins the open batch */
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications"), 1510);
        CHECK_OK(plugin->flush(f.self));
        /* the newest 10: 9 soft-deleted and the pending one */
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications"), 10);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications WHERE reason = 'pending'"), 1);
        fixture_close(&f);
}

static void test_ipv6(void) {
        fixture f;
        char path[256], buf[256];
        rows rs;

        new_path(path, sizeof path);
        CHECK_OK(fixture_open(&f, path, NULL));
        CHECK_EQ(insert(&f, "2001:db8::/64", "v6 range", T0 + 3600 * SEC), SPW_INSERT_OK);
        CHECK_EQ(insert(&f, "2001:db8:1::7", "v6 host", T0 + 3600 * SEC), SPW_INSERT_OK);
        CHECK_EQ(insert(&f, "192.0.2.0/24", "v4 range", T0 + 3600 * SEC), SPW_INSERT_OK);
        CHECK_EQ(insert(&f, "2001:db8::/64", "v6 range again", T0 + 3600 * SEC), SPW_INSERT_OK);
        CHECK_OK(plugin->flush(f.self));

        CHECK_STREQ(q_text(buf, sizeof buf, path, "SELECT hex(start_ip) || '-' || hex(end_ip) FROM ban_applications"
                                                  " WHERE reason = 'v6 range'"),
                    "20010DB8000000000000000000000000-20010DB800000000FFFFFFFFFFFFFFFF");
        /* addresses compare as blobs: which bans contain an address */
        CHECK_STREQ(q_text(buf, sizeof buf, path,
                           "SELECT group_concat(reason, ',') FROM ban_applications WHERE deleted_at IS NULL AND"
                           " x'20010db8000000000000abcdef000001' BETWEEN start_ip AND end_ip"),
                    "v6 range again");
        CHECK_STREQ(q_text(buf, sizeof buf, path,
                           "SELECT group_concat(reason, ',') FROM ban_applications WHERE"
                           " x'00000000000000000000ffffc00002fe' BETWEEN start_ip AND end_ip"),
                    "v4 range");
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications WHERE"
                             " x'20010db8000100000000000000000007' BETWEEN start_ip AND end_ip"), 1);
        rs = read_at(&f, T0);
        CHECK_EQ(rs.n, 3);
        CHECK_STREQ(rs.r[0].iptext, "2001:db8::/64");
        CHECK_STREQ(rs.r[0].reason, "v6 range again");
        fixture_close(&f);
}

/* Triggers (created by the test's own connection, fired in the plugin's)
 * make an insert fail after some of its rows are written: at the ban
 * insert (after the signal and its events), and at the soft-delete of the
 * older ban (its last step, after every insert). */
static void test_insert_failure_keeps_batch(void) {
        fixture f;
        char path[256];
        sqlite3 *db;
        sigbuf s;

        new_path(path, sizeof path);
        CHECK_OK(fixture_open(&f, path, NULL));
        db = db_open(path);
        db_exec(db, "CREATE TRIGGER fail_ban BEFORE INSERT ON ban_applications WHEN NEW.reason = 'boom'"
                    " BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END;"
                    "CREATE TRIGGER fail_supersede BEFORE UPDATE OF deleted_at ON ban_applications"
                    " WHEN OLD.reason = 'protected'"
                    " BEGIN SELECT RAISE(ABORT, 'soft-delete refused by test trigger'); END;");
        sqlite3_close(db);

        CHECK_EQ(insert(&f, "192.0.2.7", "kept", T0 + 3600 * SEC), SPW_INSERT_OK);
        CHECK_EQ(insert(&f, "192.0.2.20", "protected", T0 + 3600 * SEC), SPW_INSERT_OK);

        CHECK_EQ(insert(&f, "192.0.2.7", "boom", T0 + 3600 * SEC), SPW_INSERT_REJECT);
        CHECK_CONTAINS(testhost_last_error(f.host), path);
        CHECK_CONTAINS(testhost_last_error(f.host), "refused by test trigger while inserting into ban_applications");
        CHECK_CONTAINS(testhost_last_error(f.host), "signal rejected");

        CHECK_EQ(insert(&f, "192.0.2.20", "replacement", T0 + 3600 * SEC), SPW_INSERT_REJECT);
        CHECK_CONTAINS(testhost_last_error(f.host), "soft-delete refused by test trigger while soft-deleting "
                                                    "the targets' older active bans");

        CHECK_EQ(insert(&f, "192.0.2.8", "after", T0 + 3600 * SEC), SPW_INSERT_OK);
        /* the batch, seen from inside, holds exactly the good inserts */
        CHECK_EQ(read_at(&f, T0).n, 3);
        CHECK_OK(plugin->flush(f.self));

        /* the batch holds the inserts before and after, nothing of the failed ones */
        CHECK_EQ(q_int(path, "SELECT count(*) FROM signal_occurences"), 3);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM event_sequences"), 3);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications"), 3);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications WHERE deleted_at IS NULL"), 3);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications WHERE reason IN ('kept', 'protected')"
                             " AND deleted_at IS NULL"), 2);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM signal_occurences WHERE scenario IN ('boom', 'replacement')"), 0);

        /* the same with a signal that fails first in a batch */
        mk_signal(&s, "192.0.2.9", "boom", T0 + 3600 * SEC);
        CHECK_EQ(plugin->insert(f.self, &s.sig), SPW_INSERT_REJECT);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(path, "SELECT count(*) FROM signal_occurences"), 3);
        fixture_close(&f);
}

/* A signal with several bans supersedes each target's older ban, in one
 * statement. */
static void test_multi_ban_signal(void) {
        fixture f;
        char path[256];
        spw_ban bans[2];
        sigbuf s;

        new_path(path, sizeof path);
        CHECK_OK(fixture_open(&f, path, NULL));
        CHECK_EQ(insert(&f, "192.0.2.7", "old ip", T0 + 3600 * SEC), SPW_INSERT_OK);
        CHECK_EQ(insert(&f, "192.0.2.0/24", "old range", T0 + 3600 * SEC), SPW_INSERT_OK);
        CHECK_EQ(insert(&f, "198.51.100.1", "other", T0 + 3600 * SEC), SPW_INSERT_OK);
        advance(&f, SEC);
        mk_signal(&s, "192.0.2.7", "new ip", T0 + 7200 * SEC);
        bans[0] = s.ban;
        mk_signal(&s, "192.0.2.0/24", "new range", T0 + 7200 * SEC);
        bans[1] = s.ban;
        s.sig.bans = bans;
        s.sig.n_bans = 2;
        CHECK_EQ(plugin->insert(f.self, &s.sig), SPW_INSERT_OK);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications WHERE deleted_at IS NULL"), 3);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications WHERE reason LIKE 'new %%'"
                             " AND deleted_at IS NULL"), 2);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications WHERE reason LIKE 'old %%'"
                             " AND deleted_at IS NOT NULL"), 2);
        CHECK_EQ(q_int(path, "SELECT count(DISTINCT signal_occurence_id) FROM ban_applications"
                             " WHERE reason LIKE 'new %%'"), 1);

        /* the second soft-delete fails: the first is undone with the rest */
        {
                sqlite3 *db = db_open(path);
                db_exec(db, "CREATE TRIGGER fail_supersede BEFORE UPDATE OF deleted_at ON ban_applications"
                            " WHEN OLD.reason = 'new range'"
                            " BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END;");
                sqlite3_close(db);
        }
        advance(&f, SEC);
        mk_signal(&s, "192.0.2.7", "newer ip", T0 + 7200 * SEC);
        bans[0] = s.ban;
        mk_signal(&s, "192.0.2.0/24", "newer range", T0 + 7200 * SEC);
        bans[1] = s.ban;
        s.sig.bans = bans;
        s.sig.n_bans = 2;
        CHECK_EQ(plugin->insert(f.self, &s.sig), SPW_INSERT_REJECT);
        CHECK_CONTAINS(testhost_last_error(f.host), "refused by test trigger while soft-deleting");
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications WHERE reason LIKE 'new %%'"
                             " AND deleted_at IS NULL"), 2);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications WHERE reason LIKE 'newer %%'"), 0);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM signal_occurences"), 4);
        fixture_close(&f);
}

/* RAISE(ROLLBACK) plays SQLite rolling the whole transaction back after an
 * error (as it may on I/O errors or a full disk): the batch is lost, and
 * the next flush must say so, so the daemon inserts it again. */
static void test_batch_lost(void) {
        fixture f;
        char path[256];
        sqlite3 *db;

        new_path(path, sizeof path);
        CHECK_OK(fixture_open(&f, path, NULL));
        db = db_open(path);
        db_exec(db, "CREATE TRIGGER lose_batch BEFORE INSERT ON ban_applications WHEN NEW.reason = 'fatal'"
                    " BEGIN SELECT RAISE(ROLLBACK, 'transaction rolled back by test trigger'); END");
        sqlite3_close(db);

        CHECK_EQ(insert(&f, "192.0.2.1", "ok", T0 + 3600 * SEC), SPW_INSERT_OK);
        CHECK_EQ(insert(&f, "192.0.2.2", "ok", T0 + 3600 * SEC), SPW_INSERT_OK);
        CHECK_EQ(insert(&f, "192.0.2.3", "fatal", T0 + 3600 * SEC), SPW_INSERT_REJECT);
        CHECK_CONTAINS(testhost_last_error(f.host), "transaction rolled back by test trigger");
        CHECK_EQ(plugin->flush(f.self), -EAGAIN);
        CHECK_CONTAINS(testhost_last_error(f.host), path);
        CHECK_CONTAINS(testhost_last_error(f.host), "rolled the batch of 2 signal(s) back");
        CHECK_CONTAINS(testhost_last_error(f.host), "will be inserted again");
        CHECK_EQ(q_int(path, "SELECT count(*) FROM signal_occurences"), 0);

        /* the daemon's retry of the batch goes through */
        CHECK_EQ(insert(&f, "192.0.2.1", "ok", T0 + 3600 * SEC), SPW_INSERT_OK);
        CHECK_EQ(insert(&f, "192.0.2.2", "ok", T0 + 3600 * SEC), SPW_INSERT_OK);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications"), 2);

        /* first in its batch: nothing else was lost, flush has nothing to say */
        CHECK_EQ(insert(&f, "192.0.2.3", "fatal", T0 + 3600 * SEC), SPW_INSERT_REJECT);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications"), 2);

        /* two rollbacks in a row: the second (first insert of what would be
         * the next transaction) must not make the first batch's loss forgotten */
        CHECK_EQ(insert(&f, "192.0.2.4", "ok", T0 + 3600 * SEC), SPW_INSERT_OK);
        CHECK_EQ(insert(&f, "192.0.2.5", "fatal", T0 + 3600 * SEC), SPW_INSERT_REJECT);
        CHECK_EQ(insert(&f, "192.0.2.6", "fatal", T0 + 3600 * SEC), SPW_INSERT_REJECT);
        CHECK_EQ(plugin->flush(f.self), -EAGAIN);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications WHERE ip_text = '192.0.2.4'"), 0);
        fixture_close(&f);
}

/* Background work that cannot get the lock says so and tries again later. */
static void test_timer_errors(void) {
        fixture f;
        char path[256];
        sqlite3 *db;

        new_path(path, sizeof path);
        CHECK_OK(fixture_open(&f, path, "busy_timeout", "20ms", "max_records", "1", "max_records_age", "0", NULL));
        CHECK_OK(plugin->start_autocommit(f.self));
        CHECK_EQ(insert(&f, "192.0.2.1", "a", T0 + SEC), SPW_INSERT_OK);
        CHECK_EQ(insert(&f, "192.0.2.2", "b", T0 + SEC), SPW_INSERT_OK);
        CHECK_OK(plugin->flush(f.self));
        {
                uint64_t n;
                CHECK_OK(plugin->delete_target(f.self, "192.0.2.1", &n));
        }

        db = db_open(path);
        db_exec(db, "BEGIN IMMEDIATE; INSERT INTO signal_occurences (scenario) VALUES ('other writer')");
        advance(&f, 60 * SEC);
        CHECK_EQ(testhost_run_timers(f.host), 2);
        CHECK_CONTAINS(testhost_last_error(f.host), path);
        /* the GC runs last; the expiry failed the same way before it */
        CHECK_CONTAINS(testhost_last_error(f.host), "garbage collection failed: database is locked; "
                                                    "will try again in a minute");
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications"), 2);
        db_exec(db, "ROLLBACK");
        sqlite3_close(db);

        /* the lock is gone: the next runs do the work */
        advance(&f, 60 * SEC);
        CHECK_EQ(testhost_run_timers(f.host), 2);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications WHERE deleted_at IS NULL"), 0);
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications"), 1);
        fixture_close(&f);
}

static void test_busy_is_retry(void) {
        fixture f;
        char path[256];
        sqlite3 *db;

        new_path(path, sizeof path);
        CHECK_OK(fixture_open(&f, path, "busy_timeout", "50ms", NULL));
        db = db_open(path);
        db_exec(db, "BEGIN IMMEDIATE; INSERT INTO signal_occurences (scenario) VALUES ('other writer')");
        CHECK_EQ(insert(&f, "192.0.2.1", "x", T0 + SEC), SPW_INSERT_RETRY);
        CHECK_CONTAINS(testhost_last_error(f.host), path);
        CHECK_CONTAINS(testhost_last_error(f.host), "database is locked");
        CHECK_CONTAINS(testhost_last_error(f.host), "will retry");
        /* the other writer goes away: the retried insert works */
        db_exec(db, "COMMIT");
        sqlite3_close(db);
        CHECK_EQ(insert(&f, "192.0.2.1", "x", T0 + SEC), SPW_INSERT_OK);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(path, "SELECT count(*) FROM signal_occurences"), 2);
        fixture_close(&f);
}

/* The file size limit makes the commit's WAL writes fail. */
static void test_flush_failure_rolls_back(void) {
        fixture f;
        char path[256], wal[300];
        struct rlimit old, lim;
        struct stat st;
        int r;

        new_path(path, sizeof path);
        snprintf(wal, sizeof wal, "%s-wal", path);
        CHECK_OK(fixture_open(&f, path, NULL));
        CHECK_EQ(insert(&f, "192.0.2.1", "committed", T0 + 3600 * SEC), SPW_INSERT_OK);
        CHECK_OK(plugin->flush(f.self));

        for (int i = 0; i < 50; i++) {
                char ip[32];
                snprintf(ip, sizeof ip, "198.51.100.%d", i);
                CHECK_EQ(insert(&f, ip, "lost", T0 + 3600 * SEC), SPW_INSERT_OK);
        }
        CHECK_OK(stat(wal, &st) < 0 ? -errno : 0);
        signal(SIGXFSZ, SIG_IGN);
        CHECK_OK(getrlimit(RLIMIT_FSIZE, &old));
        lim = old;
        lim.rlim_cur = (rlim_t) st.st_size;
        CHECK_OK(setrlimit(RLIMIT_FSIZE, &lim));
        r = plugin->flush(f.self);
        CHECK_OK(setrlimit(RLIMIT_FSIZE, &old));
        CHECK_EQ(r, -EAGAIN);
        CHECK_CONTAINS(testhost_last_error(f.host), path);
        CHECK_CONTAINS(testhost_last_error(f.host), "cannot commit the batch of 50 signal(s)");
        CHECK_CONTAINS(testhost_last_error(f.host), "rolled back, will retry");

        /* all or nothing: none of the batch, and the plugin keeps working */
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications WHERE reason = 'lost'"), 0);
        CHECK_EQ(read_at(&f, T0).n, 1);
        CHECK_EQ(insert(&f, "198.51.100.1", "retried", T0 + 3600 * SEC), SPW_INSERT_OK);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(path, "SELECT count(*) FROM ban_applications"), 2);
        fixture_close(&f);
}

static void test_shutdown_rolls_back(void) {
        fixture f;
        char path[256];

        new_path(path, sizeof path);
        CHECK_OK(fixture_open(&f, path, NULL));
        CHECK_EQ(insert(&f, "192.0.2.1", "unflushed", T0 + 3600 * SEC), SPW_INSERT_OK);
        CHECK_EQ(insert(&f, "192.0.2.2", "unflushed", T0 + 3600 * SEC), SPW_INSERT_OK);
        plugin->shutdown(f.self);
        f.self = NULL;
        CHECK_CONTAINS(testhost_log(f.host), "shutting down with 2 signal(s) not flushed; rolled back");
        CHECK_EQ(q_int(path, "SELECT count(*) FROM signal_occurences"), 0);
        fixture_close(&f);
}

/* The soft-delete lookup must go through the (ip_text, deleted_at) index,
 * never through a deleted_at index (which would scan every active ban). */
static void query_plan(sqlite3 *db, const char *query, char *plan, size_t size) {
        char sql[2048];
        sqlite3_stmt *st;

        plan[0] = 0;
        snprintf(sql, sizeof sql, "EXPLAIN QUERY PLAN %s", query);
        CHECK_EQ(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW) {
                strncat(plan, (const char *) sqlite3_column_text(st, 3), size - strlen(plan) - 2);
                strcat(plan, ";");
        }
        sqlite3_finalize(st);
}

static void test_query_plans(void) {
        fixture f;
        char path[256], plan[2048];
        sqlite3 *db;

        new_path(path, sizeof path);
        CHECK_OK(fixture_open(&f, path, NULL));
        for (int i = 0; i < 200; i++) {
                char ip[32];
                snprintf(ip, sizeof ip, "10.0.%d.%d", i / 100, i % 100);
                CHECK_EQ(insert(&f, ip, "x", T0 + 3600 * SEC), SPW_INSERT_OK);
        }
        CHECK_OK(plugin->flush(f.self));

        db = db_open(path);
        /* with statistics that would tempt the planner, too */
        db_exec(db, "CREATE INDEX idx_tempting ON ban_applications (deleted_at); ANALYZE;");
        query_plan(db, bandb_sql[BANDB_SQL_SUPERSEDE], plan, sizeof plan);
        CHECK_CONTAINS(plan, "SEARCH ban_applications USING INDEX " BANDB_IP_TEXT_INDEX
                             " (ip_text=? AND deleted_at=? AND rowid<?)");
        CHECK(!strstr(plan, "SCAN"));
        query_plan(db, bandb_sql[BANDB_SQL_DELETE_TARGET], plan, sizeof plan);
        CHECK_CONTAINS(plan, "SEARCH ban_applications USING INDEX " BANDB_IP_TEXT_INDEX
                             " (ip_text=? AND deleted_at=?)");
        CHECK(!strstr(plan, "SCAN"));

        query_plan(db, bandb_sql[BANDB_SQL_EXPIRE_PROBE], plan, sizeof plan);
        CHECK_CONTAINS(plan, "idx_ban_applications_deleted_at_until (deleted_at=? AND until<?)");
        /* the undo and the GC's orphan lookups (the GC's temp tables are
         * per connection: make ours) */
        db_exec(db, "CREATE TEMP TABLE bandb_gc_ban (id INTEGER PRIMARY KEY, sig INTEGER);"
                    "CREATE TEMP TABLE bandb_gc_sig (id INTEGER PRIMARY KEY);");
        query_plan(db, bandb_sql[BANDB_SQL_UNDO_EVENTS], plan, sizeof plan);
        CHECK_CONTAINS(plan, "idx_event_sequences_signal_occurence_id (signal_occurence_id=?)");
        query_plan(db, bandb_sql[BANDB_SQL_GC_DELETE_SIGNALS], plan, sizeof plan);
        CHECK_CONTAINS(plan, "idx_ban_applications_signal_occurence_id (signal_occurence_id=?)");
        CHECK(!strstr(plan, "SCAN signal_occurences"));
        db_exec(db, "DROP INDEX idx_tempting");
        sqlite3_close(db);
        fixture_close(&f);
}

/* Set when a part could not run: main() exits 77 (meson's "skipped"). */
static bool skipped_part;

static void test_sqlite3_cli(void) {
        const char *cli = getenv("SQLITE3_CLI");
        fixture f;
        char path[256], cmd[1024], out[1024] = "";
        FILE *p;
        size_t n;

        if (!cli || !*cli || access(cli, X_OK) < 0) {
                fprintf(stderr, "SKIP: sqlite3 CLI not found (SQLITE3_CLI), the CLI check did not run\n");
                skipped_part = true;
                return;
        }
        new_path(path, sizeof path);
        CHECK_OK(fixture_open(&f, path, NULL));
        CHECK_EQ(insert(&f, "2001:db8::/64", "cli", T0 + 3600 * SEC), SPW_INSERT_OK);
        CHECK_OK(plugin->flush(f.self));
        /* while the plugin has it open, like an operator would */
        snprintf(cmd, sizeof cmd,
                 "%s -readonly '%s' \"SELECT ip_text, reason, datetime(until), until > datetime('2023-11-14 22:00'),"
                 " length(start_ip) FROM ban_applications WHERE deleted_at IS NULL\" 2>&1",
                 cli, path);
        p = popen(cmd, "r");
        CHECK(p);
        n = fread(out, 1, sizeof out - 1, p);
        out[n] = 0;
        CHECK_EQ(pclose(p), 0);
        CHECK_STREQ(out, "2001:db8::/64|cli|2023-11-14 23:13:20|1|16\n");
        fixture_close(&f);
}

static void test_config(void) {
        static const struct {
                const char *key, *value, *expect;
        } bad[] = {
                { "flush", "maybe", "config key flush: expected true or false, got \"maybe\"" },
                { "debug", "2", "config key debug: expected true or false" },
                { "max_records", "-1", "config key max_records: expected a non-negative integer" },
                { "max_records", "10k", "config key max_records" },
                { "max_records_age", "30", "config key max_records_age: expected a duration" },
                { "max_records_age", "1y", "config key max_records_age" },
                { "busy_timeout", "soon", "config key busy_timeout: expected a duration" },
                { "synchronous", "off", "config key synchronous: expected normal or full, got \"off\"" },
                { "type", "postgres", "config key type: expected sqlite" },
                { "type", "mysql", "served by the mysql backend" },
                { "db_path", "", "config key db_path: expected a file path" },
        };
        fixture f;
        char path[256];

        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                new_path(path, sizeof path);
                CHECK_EQ(fixture_open(&f, path, bad[i].key, bad[i].value, NULL), -EINVAL);
                CHECK_CONTAINS(testhost_last_error(f.host), bad[i].expect);
                CHECK_CONTAINS(testhost_last_error(f.host), "the backend is not started");
                CHECK(f.self == NULL);
                CHECK_EQ(access(path, F_OK), -1);
                fixture_close(&f);
        }

        /* CrowdSec's database.yaml, as the daemon passes it */
        new_path(path, sizeof path);
        CHECK_OK(fixture_open(&f, path, "type", "sqlite", "flush", "true", "max_records", "10000",
                              "max_records_age", "720h", "debug", "false", "synchronous", "FULL",
                              "busy_timeout", "1m30s", NULL));
        CHECK_STREQ(testhost_status(f.host, "synchronous"), "full");
        fixture_close(&f);

        /* unknown keys (a default the daemon merged in) are logged, not fatal */
        new_path(path, sizeof path);
        CHECK_OK(fixture_open(&f, path, "future_default", "1", NULL));
        CHECK_CONTAINS(testhost_log(f.host), "ignoring unknown config key future_default");
        fixture_close(&f);

        /* no db_path: under the state directory; relative: there too */
        CHECK_OK(fixture_open(&f, NULL, NULL));
        snprintf(path, sizeof path, "%s/spillway.db", tmpdir);
        CHECK_STREQ(testhost_status(f.host, "db_path"), path);
        CHECK_EQ(access(path, F_OK), 0);
        fixture_close(&f);
        CHECK_OK(fixture_open(&f, "sub.db", NULL));
        snprintf(path, sizeof path, "%s/sub.db", tmpdir);
        CHECK_STREQ(testhost_status(f.host, "db_path"), path);
        fixture_close(&f);
}

static void test_missing_directory(void) {
        fixture f;
        char path[256];

        snprintf(path, sizeof path, "%s/no/such/dir/bans.db", tmpdir);
        CHECK_EQ(fixture_open(&f, path, NULL), -ENOENT);
        CHECK_CONTAINS(testhost_last_error(f.host), path);
        CHECK_CONTAINS(testhost_last_error(f.host), "directory ");
        CHECK_CONTAINS(testhost_last_error(f.host), "No such file or directory");
        CHECK_CONTAINS(testhost_last_error(f.host), "set db_path");
        fixture_close(&f);

        snprintf(path, sizeof path, "%s", tmpdir);
        CHECK_EQ(fixture_open(&f, path, NULL), -EISDIR);
        CHECK_CONTAINS(testhost_last_error(f.host), "is a directory");
        fixture_close(&f);
}

/* Run the unwritable-directory check as an unprivileged user: root may
 * write anywhere. */
static void test_unwritable_directory(void) {
        char dir[256], path[300];
        pid_t pid;
        int status;

        snprintf(dir, sizeof dir, "%s/readonly", tmpdir);
        CHECK_OK(mkdir(dir, 0555) < 0 ? -errno : 0);
        CHECK_OK(chmod(dir, 0555) < 0 ? -errno : 0);
        snprintf(path, sizeof path, "%s/bans.db", dir);

        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                fixture f;
                char expect[64];

                if (geteuid() == 0) {
                        CHECK_OK(chmod(tmpdir, 0755) < 0 ? -errno : 0);
                        CHECK_OK(setgroups(0, NULL));
                        CHECK_OK(setresgid(65534, 65534, 65534));
                        CHECK_OK(setresuid(65534, 65534, 65534));
                }
                CHECK_EQ(fixture_open(&f, path, NULL), -EACCES);
                CHECK_CONTAINS(testhost_last_error(f.host), path);
                snprintf(expect, sizeof expect, "is not writable by uid %u", (unsigned) geteuid());
                CHECK_CONTAINS(testhost_last_error(f.host), expect);
                CHECK_CONTAINS(testhost_last_error(f.host), "-wal and -shm");
                CHECK_CONTAINS(testhost_last_error(f.host), "fix its owner or mode or set db_path");
                fixture_close(&f);
                _exit(0);
        }
        CHECK_EQ(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_corrupt_file(void) {
        fixture f;
        char path[256];
        FILE *file;

        new_path(path, sizeof path);
        file = fopen(path, "w");
        CHECK(file);
        for (int i = 0; i < 512; i++)
                fputs("this is not a database\n", file);
        fclose(file);
        CHECK_EQ(fixture_open(&f, path, NULL), -EBADMSG);
        CHECK_CONTAINS(testhost_last_error(f.host), path);
        CHECK_CONTAINS(testhost_last_error(f.host), "file is not a database");
        CHECK_CONTAINS(testhost_last_error(f.host), "move it aside (mv ");
        CHECK_CONTAINS(testhost_last_error(f.host), ".broken)");
        fixture_close(&f);
}

static void test_locked_database(void) {
        fixture f;
        char path[256];
        sqlite3 *db;

        /* another process holds an exclusive lock on a rollback-journal database */
        new_path(path, sizeof path);
        db = db_open(path);
        db_exec(db, "PRAGMA journal_mode = DELETE; BEGIN EXCLUSIVE; CREATE TABLE other (x);");
        CHECK_EQ(fixture_open(&f, path, "busy_timeout", "100ms", NULL), -EBUSY);
        CHECK_CONTAINS(testhost_last_error(f.host), path);
        CHECK_CONTAINS(testhost_last_error(f.host), "database is locked");
        CHECK_CONTAINS(testhost_last_error(f.host), "longer than busy_timeout (100 ms)");
        CHECK_CONTAINS(testhost_last_error(f.host), "fuser");
        fixture_close(&f);
        db_exec(db, "COMMIT");
        sqlite3_close(db);
        /* once released, it opens */
        CHECK_OK(fixture_open(&f, path, NULL));
        fixture_close(&f);
}

/* README.md's table documents every key of the descriptor's table, with
 * its type and default, and nothing else. */
static void test_readme(const char *readme) {
        static const char *const types[] = {
                [SPW_CONFIG_STRING] = "string", [SPW_CONFIG_BOOL] = "bool", [SPW_CONFIG_INT] = "int",
                [SPW_CONFIG_DURATION] = "duration", [SPW_CONFIG_ENUM] = "enum", [SPW_CONFIG_MAP] = "map",
        };
        char text[65536], line[1024];
        size_t n, n_keys = 0;
        FILE *f;

        f = fopen(readme, "r");
        CHECK(f);
        n = fread(text, 1, sizeof text - 1, f);
        text[n] = 0;
        fclose(f);
        for (const spw_config_key *k = plugin->config_keys; k->name; k++) {
                char head[128];
                const char *found, *end;

                snprintf(head, sizeof head, "\n| `%s` | %s", k->name, types[k->type]);
                found = strstr(text, head);
                if (!found)
                        fprintf(stderr, "README.md has no row \"%s\"\n", head + 1);
                CHECK(found);
                end = strchr(found + 1, '\n');
                CHECK(end);
                snprintf(line, sizeof line, "%.*s", (int) (end - found), found);
                snprintf(head, sizeof head, "| `%s` |", k->default_value);
                CHECK_CONTAINS(line, head);
                if (k->choices) {
                        char choices[128], *save = NULL;
                        snprintf(choices, sizeof choices, "%s", k->choices);
                        for (char *c = strtok_r(choices, "|", &save); c; c = strtok_r(NULL, "|", &save)) {
                                snprintf(head, sizeof head, "`%s`", c);
                                CHECK_CONTAINS(line, head);
                        }
                }
                n_keys++;
        }
        /* no undocumented extra rows in the configuration table */
        {
                const char *t = strstr(text, "| key | type | default | description |");
                size_t table_rows = 0;

                CHECK(t);
                for (t = strchr(t, '\n') + 1; t && strncmp(t, "|", 1) == 0; t = strchr(t, '\n'), t = t ? t + 1 : NULL)
                        if (strncmp(t, "| `", 3) == 0)
                                table_rows++;
                CHECK_EQ(table_rows, n_keys);
        }
}

static void test_exports(const char *so) {
        void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL);

        CHECK(h);
        CHECK(dlsym(h, SPW_BACKEND_ENTRY_SYMBOL));
        CHECK(!dlsym(h, "bandb_time_format"));
        CHECK(!dlsym(h, "bandb_sql"));
        CHECK(!dlsym(h, "bandb_migrate"));
        /* the plugins' shared helpers stay inside the plugin */
        CHECK(!dlsym(h, "spwp_parse_duration"));
        CHECK(!dlsym(h, "spwp_time_split"));
        dlclose(h);
}

int main(int argc, char **argv) {
        const struct spw_backend *(*entry)(void);
        char cmd[600];
        void *h;

        if (argc < 3) {
                fprintf(stderr, "usage: %s PATH/TO/sqlite.so PATH/TO/README.md\n", argv[0]);
                return 2;
        }
        h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
        if (!h) {
                fprintf(stderr, "%s\n", dlerror());
                return 1;
        }
        entry = (const struct spw_backend *(*)(void)) dlsym(h, SPW_BACKEND_ENTRY_SYMBOL);
        CHECK(entry);
        plugin = entry();
        CHECK(mkdtemp(tmpdir));

        test_exports(argv[1]);
        test_descriptor();
        test_readme(argv[2]);
        test_time_format();
        test_config();
        test_schema_created();
        test_migrate_from_crowdsec();
        test_newer_schema_refused();
        test_foreign_tables_refused();
        test_insert_rows();
        test_debug_log();
        test_supersede();
        test_read_at();
        test_read_at_stop();
        test_delete();
        test_expiry();
        test_gc_by_count();
        test_gc_by_age();
        test_gc_chunks();
        test_ipv6();
        test_insert_failure_keeps_batch();
        test_multi_ban_signal();
        test_batch_lost();
        test_timer_errors();
        test_busy_is_retry();
        test_flush_failure_rolls_back();
        test_shutdown_rolls_back();
        test_query_plans();
        test_sqlite3_cli();
        test_missing_directory();
        test_unwritable_directory();
        test_corrupt_file();
        test_locked_database();

        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        CHECK_EQ(system(cmd), 0);
        dlclose(h);
        return skipped_part ? 77 : 0;
}
