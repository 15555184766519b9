/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the mysql backend against a real MariaDB server that the
 * test starts itself (tests/mariadb-server.sh, in a temporary folder, on a
 * unix socket and a 127.0.0.1 port) and stops on every path: a watcher
 * shuts it down when this process ends however it ends. Each test gets a
 * database of its own. The plugin is loaded with dlopen() from argv[1], as
 * the daemon loads it, and driven through tests/lib/testhost with a clock
 * the tests move. A root connection (the test's own) inspects the tables,
 * plays CrowdSec v0.3 to create an old database, and plays another host
 * holding locks. Exits 77 (skipped), saying why, when the MariaDB server
 * is not installed or does not start.
 *
 * The tests both ban databases share run from plugins/common's
 * test-bandb-suite.c through the hooks below; this file keeps the checks
 * only MySQL has (connecting, TLS, lost connections, deadlocks, other
 * hosts, migrations, query plans).
 */
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mysql.h>

#include "mariadb-spawn.h"
#include "schema.h"
#include "test-bandb-suite.h"
#include "test-fixtures.h"
#include "testhost.h"
#include "tests.h"

#define PASSWORD "s3cret-Pw-for-tests"

static const struct spw_backend *plugin;
static char tmpdir[] = "/tmp/test-mysql-XXXXXX";
static mariadb_server srv;
static MYSQL *root;
static int db_counter;

/* ------------------------------------------------------------ the test's own connection */

static void db_exec(const char *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void db_exec(const char *db, const char *fmt, ...) {
        char sql[8192];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(sql, sizeof sql, fmt, ap);
        va_end(ap);
        if (db && mysql_select_db(root, db) != 0) {
                fprintf(stderr, "USE %s failed: %s\n", db, mysql_error(root));
                abort();
        }
        if (mysql_real_query(root, sql, (unsigned long) strlen(sql)) != 0) {
                fprintf(stderr, "SQL failed: %s\n%s\n", mysql_error(root), sql);
                abort();
        }
        /* drain any result */
        MYSQL_RES *res = mysql_store_result(root);
        if (res)
                mysql_free_result(res);
}

/* The first column of the first row as text into buf ("(null)" / "(none)"). */
static const char *q_text(char *buf, size_t size, const char *db, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static const char *q_text(char *buf, size_t size, const char *db, const char *fmt, ...) {
        char sql[8192];
        MYSQL_RES *res;
        MYSQL_ROW r0;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(sql, sizeof sql, fmt, ap);
        va_end(ap);
        if (mysql_select_db(root, db) != 0 || mysql_real_query(root, sql, (unsigned long) strlen(sql)) != 0 ||
            !(res = mysql_store_result(root))) {
                fprintf(stderr, "query failed: %s\n%s\n", mysql_error(root), sql);
                abort();
        }
        r0 = mysql_fetch_row(res);
        snprintf(buf, size, "%s", !r0 ? "(none)" : r0[0] ? r0[0] : "(null)");
        mysql_free_result(res);
        return buf;
}

/* The first column of the first row as an integer (-1 if no row or NULL). */
static int64_t q_int(const char *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int64_t q_int(const char *db, const char *fmt, ...) {
        char sql[8192], buf[64];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(sql, sizeof sql, fmt, ap);
        va_end(ap);
        q_text(buf, sizeof buf, db, "%s", sql);
        return strcmp(buf, "(none)") == 0 || strcmp(buf, "(null)") == 0 ? -1 : strtoll(buf, NULL, 10);
}

/* The test's own connection plays "another host": READ COMMITTED like the
 * plugin, and a lock wait shorter than a test's patience. */
static MYSQL *root_connect(void) {
        MYSQL *m = mariadb_connect_root(&srv, NULL);

        CHECK(m);
        CHECK_EQ(mysql_query(m, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"), 0);
        CHECK_EQ(mysql_query(m, "SET SESSION innodb_lock_wait_timeout = 5"), 0);
        return m;
}

/* A fresh database the test user may use. */
static void new_db(char *buf, size_t size) {
        snprintf(buf, size, "spw_test_%d", ++db_counter);
        db_exec(NULL, "CREATE DATABASE %s", buf);
        db_exec(NULL, "GRANT ALL PRIVILEGES ON %s.* TO 'spillway'@'localhost', 'spillway'@'127.0.0.1'", buf);
}

/* UTC text of t at microsecond precision, as SELECT shows DATETIME(6). */
static const char *fmt_time(char buf[static 64], spw_usec_t t) {
        time_t s = (time_t) (t / SEC);
        struct tm tm;

        gmtime_r(&s, &tm);
        snprintf(buf, 64, "%04d-%02d-%02d %02d:%02d:%02d.%06d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec, (int) (t % SEC));
        return buf;
}

/* ------------------------------------------------------------ the shared suite's hooks */

/* Init the plugin on database db (over the socket, as user spillway) with
 * extra config pairs overriding these defaults. */
static int suite_open(fixture *f, const char *db, const spw_kv *extra, size_t n_extra) {
        spw_kv kv[24];
        size_t n = 0;

        kv[n++] = (spw_kv) { "db_socket", srv.socket };
        kv[n++] = (spw_kv) { "db_username", "spillway" };
        kv[n++] = (spw_kv) { "db_password", PASSWORD };
        kv[n++] = (spw_kv) { "db_name", db };
        kv[n++] = (spw_kv) { "lock_wait_timeout", "1s" };
        kv[n++] = (spw_kv) { "query_timeout", "10s" };
        for (size_t j = 0; j < n_extra && n < 24; j++) {
                size_t i;

                for (i = 0; i < n && strcmp(kv[i].key, extra[j].key) != 0; i++)
                        ;
                kv[i] = extra[j];
                if (i == n)
                        n++;
        }
        f->host = testhost_new("bans", kv, n);
        testhost_set_time(f->host, T0);
        return testhost_init(f->host, plugin, &f->self);
}

/* The password never shows, whatever happened. */
static void suite_closing(fixture *f) {
        CHECK(!strstr(testhost_log(f->host), PASSWORD));
        CHECK(!strstr(testhost_last_error(f->host), PASSWORD));
}

static void suite_exec(const char *db, const char *sql) {
        db_exec(db, "%s", sql);
}

static int64_t suite_q_int(const char *db, const char *sql) {
        return q_int(db, "%s", sql);
}

static void suite_q_text(char *buf, size_t size, const char *db, const char *sql) {
        q_text(buf, size, db, "%s", sql);
}

static void suite_set_newer_version(const char *db) {
        db_exec(db, "CREATE TABLE " MYDB_VERSION_TABLE " (version int NOT NULL, migrated_at datetime(6) NOT NULL)");
        db_exec(db, "INSERT INTO " MYDB_VERSION_TABLE " VALUES (99, NOW())");
}

static void suite_add_trigger(const char *db, const char *name, bool update, const char *reason, const char *message) {
        db_exec(db, "CREATE TRIGGER %s BEFORE %s ON ban_applications FOR EACH ROW IF %s.reason = '%s'"
                " THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '%s'; END IF", name, update ? "UPDATE" : "INSERT",
                update ? "OLD" : "NEW", reason, message);
}

/* Another host holds the background-work lease (expiry and GC alike). */
static void suite_hold_lock(const char *db, const char *what, bool hold) {
        (void) what;
        if (hold)
                db_exec(db, "INSERT INTO " MYDB_LEASE_TABLE " VALUES ('background', 'other-host:1:x',"
                            " UTC_TIMESTAMP(6) + INTERVAL 1 HOUR, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE"
                            " owner = 'other-host:1:x', expires_at = UTC_TIMESTAMP(6) + INTERVAL 1 HOUR");
        else
                db_exec(db, "DELETE FROM " MYDB_LEASE_TABLE " WHERE owner = 'other-host:1:x'");
}

static const char *const suite_keys[] = {
        "db_host", "failback_interval", "lease_ttl", "db_port", "multi_row", "db_socket", "db_username", "db_password", "db_name", "tls", "tls_ca",
        "connect_timeout", "query_timeout", "lock_wait_timeout", "type", "db_path", "flush", "max_records",
        "max_records_age", "max_db_size", "gc_max_pause", "gc_interval", "debug",
};

static const char *const suite_hidden[] = { "mydb_migrate", "mydb_sql", "mydb_time_to_mysql", NULL };

static bandb_suite suite = {
        .name = "mysql",
        BANDB_SUITE_HOOKS,
        .new_db = new_db,
        .closing = suite_closing,
        .fmt_time = fmt_time,
        .foreign_table_sql = "CREATE TABLE ban_applications (id int primary key, created_at datetime,"
                             " ip_text varchar(255))",
        .foreign_table_error = "Unknown column",
        .count_tables_sql = "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()",
        .trigger_code = " (error 1644)",
        .rows_at_flush = true,
        .hold_lock = suite_hold_lock,
};

#define fixture_open(f, db, ...) bandb_fixture_open(&suite, f, db, __VA_ARGS__)
#define fixture_close(f) bandb_fixture_close(&suite, f)

/* ------------------------------------------------------------ fixtures */

/* The plugin's connection id(s) on database db, from the server's side. */
static int64_t plugin_connection(const char *db) {
        return q_int(db, "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'spillway' AND DB = '%s'"
                         " ORDER BY ID DESC LIMIT 1", db);
}

/* ------------------------------------------------------------ tests: time */

static void test_time_conversion(void) {
        MYSQL_TIME t;
        spw_usec_t u;

        mydb_time_to_mysql(T0 + 123456, &t);
        CHECK_EQ(t.year, 2023);
        CHECK_EQ(t.month, 11);
        CHECK_EQ(t.day, 14);
        CHECK_EQ(t.hour, 22);
        CHECK_EQ(t.minute, 13);
        CHECK_EQ(t.second, 20);
        CHECK_EQ(t.second_part, 123456);
        CHECK_EQ(t.time_type, MYSQL_TIMESTAMP_DATETIME);
        CHECK_OK(mydb_time_from_mysql(&t, &u));
        CHECK_EQ(u, T0 + 123456);
        mydb_time_to_mysql(-1, &t);
        CHECK_EQ(t.year, 1969);
        CHECK_EQ(t.second_part, 999999);
        CHECK_OK(mydb_time_from_mysql(&t, &u));
        CHECK_EQ(u, -1);
        mydb_time_to_mysql(INT64_C(951782400) * SEC, &t); /* 2000-02-29 */
        CHECK_EQ(t.month, 2);
        CHECK_EQ(t.day, 29);
        /* clamped to DATETIME's range */
        mydb_time_to_mysql(INT64_MAX, &t);
        CHECK_EQ(t.year, 9999);
        CHECK_EQ(t.second_part, 999999);
        mydb_time_to_mysql(INT64_MIN, &t);
        CHECK_EQ(t.year, 1000);
        CHECK_EQ(t.month, 1);
        /* a zero date is not a time */
        memset(&t, 0, sizeof t);
        t.time_type = MYSQL_TIMESTAMP_DATETIME;
        CHECK(mydb_time_from_mysql(&t, &u) < 0);
}

/* ------------------------------------------------------------ tests: config and errors */

static void test_config(void) {
        static const struct {
                const char *key, *value, *expect;
        } bad[] = {
                { "flush", "maybe", "config key flush: expected true or false, got \"maybe\"" },
                { "debug", "2", "config key debug: expected true or false" },
                { "tls", "sometimes", "config key tls: expected true or false" },
                { "max_records", "-1", "config key max_records: expected a non-negative integer" },
                { "max_records_age", "30", "config key max_records_age: expected a duration" },
                { "connect_timeout", "soon", "config key connect_timeout: expected a duration" },
                { "connect_timeout", "0", "config key connect_timeout: expected a duration" },
                { "query_timeout", "1s", "config key query_timeout: 1 s must be longer than lock_wait_timeout (1 s)" },
                { "db_port", "0", "config key db_port: expected a TCP port (1-65535), got \"0\"" },
                { "db_port", "70000", "config key db_port: expected a TCP port" },
                { "db_name", "", "config key db_name: expected a non-empty string" },
                { "type", "postgres", "config key type: expected mysql" },
                { "type", "sqlite", "served by the sqlite backend" },
        };
        fixture f;
        char db[64];

        new_db(db, sizeof db);
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                CHECK_EQ(fixture_open(&f, db, bad[i].key, bad[i].value, NULL), -EINVAL);
                CHECK_CONTAINS(testhost_last_error(f.host), bad[i].expect);
                CHECK_CONTAINS(testhost_last_error(f.host), "the backend is not started");
                CHECK(f.self == NULL);
                fixture_close(&f);
        }
        /* nothing was created by the refused configurations */
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '%s'", db), 0);

        /* CrowdSec's database.yaml with type: mysql, as the daemon passes it
         * (db_path stays in the file: ignored, with a notice) */
        CHECK_OK(fixture_open(&f, db, "type", "mysql", "db_path", "/var/lib/crowdsec/data/crowdsec.db",
                              "flush", "true", "debug", "false", "max_records", "10000", "max_records_age", "720h",
                              "connect_timeout", "2s", NULL));
        CHECK_CONTAINS(testhost_log(f.host), "db_path is CrowdSec's SQLite path; the mysql backend ignores it");
        CHECK_CONTAINS(testhost_status(f.host, "server"), "mysql://spillway@localhost/");
        CHECK_CONTAINS(testhost_status(f.host, "server_version"), "MariaDB");
        CHECK_STREQ(testhost_status(f.host, "connection"), "up");
        fixture_close(&f);

        /* unknown keys (a default the daemon merged in) are logged, not fatal */
        CHECK_OK(fixture_open(&f, db, "future_default", "1", NULL));
        CHECK_CONTAINS(testhost_log(f.host), "ignoring unknown config key future_default");
        fixture_close(&f);
}

static void test_connect_errors(void) {
        fixture f;
        char db[64], sock[300], port[16];

        new_db(db, sizeof db);

        /* unreachable: no server on that socket */
        snprintf(sock, sizeof sock, "%s/no-such.sock", tmpdir);
        CHECK_EQ(fixture_open(&f, db, "db_socket", sock, NULL), -ECONNREFUSED);
        CHECK_CONTAINS(testhost_last_error(f.host), "mysql://spillway@localhost/");
        CHECK_CONTAINS(testhost_last_error(f.host), sock);
        CHECK_CONTAINS(testhost_last_error(f.host), "cannot connect");
        CHECK_CONTAINS(testhost_last_error(f.host), "the server is unreachable: check that it runs");
        CHECK_CONTAINS(testhost_last_error(f.host), "the backend is not started");
        fixture_close(&f);

        /* unreachable over TCP: a port nobody listens on */
        CHECK_EQ(fixture_open(&f, db, "db_host", "127.0.0.1", "db_port", "1", NULL), -ECONNREFUSED);
        CHECK_CONTAINS(testhost_last_error(f.host), "mysql://spillway@127.0.0.1:1/");
        CHECK_CONTAINS(testhost_last_error(f.host), "db_host and db_port");
        fixture_close(&f);

        /* wrong password: access denied, and the password is not in the message */
        CHECK_EQ(fixture_open(&f, db, "db_password", "wrong-" PASSWORD, NULL), -EACCES);
        CHECK_CONTAINS(testhost_last_error(f.host), "Access denied for user 'spillway'@'localhost'");
        CHECK_CONTAINS(testhost_last_error(f.host), "check db_username and db_password");
        CHECK(!strstr(testhost_last_error(f.host), "wrong-"));
        fixture_close(&f);

        /* unknown database (the server says so to a user who may see it) */
        CHECK_EQ(fixture_open(&f, "spw_no_such_db", "db_username", "spwadmin", NULL), -ENOENT);
        CHECK_CONTAINS(testhost_last_error(f.host), "/spw_no_such_db");
        CHECK_CONTAINS(testhost_last_error(f.host), "Unknown database 'spw_no_such_db'");
        CHECK_CONTAINS(testhost_last_error(f.host), "create the database (CREATE DATABASE name CHARACTER SET utf8mb4)");
        fixture_close(&f);

        /* a database the user has no grant on */
        db_exec(NULL, "CREATE DATABASE spw_not_granted");
        CHECK_EQ(fixture_open(&f, "spw_not_granted", NULL), -EACCES);
        CHECK_CONTAINS(testhost_last_error(f.host), "Access denied for user 'spillway'@'localhost' to database");
        CHECK_CONTAINS(testhost_last_error(f.host), "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP");
        CHECK_CONTAINS(testhost_last_error(f.host), "if the database does not exist, create it first");
        fixture_close(&f);

        /* a user who may use the tables but not create them */
        db_exec(NULL, "CREATE USER 'reader'@'localhost' IDENTIFIED BY '" PASSWORD "'");
        db_exec(NULL, "GRANT SELECT, INSERT, UPDATE, DELETE ON %s.* TO 'reader'@'localhost'", db);
        CHECK_EQ(fixture_open(&f, db, "db_username", "reader", NULL), -EACCES);
        CHECK_CONTAINS(testhost_last_error(f.host), "CREATE command denied");
        CHECK_CONTAINS(testhost_last_error(f.host), "may not create or change the tables");
        fixture_close(&f);

        /* TCP, with the right port: works */
        snprintf(port, sizeof port, "%d", srv.port);
        CHECK_OK(fixture_open(&f, db, "db_host", "127.0.0.1", "db_port", port, NULL));
        CHECK_EQ(insert(&f, "192.0.2.1", "tcp", T0 + 3600 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(read_at(&f, T0).n, 1);
        fixture_close(&f);
}

/* ------------------------------------------------------------ tests: schema */

static void test_schema_created(void) {
        fixture f;
        char db[64], buf[256];

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, NULL));
        CHECK_EQ(q_int(db, "SELECT version FROM " MYDB_VERSION_TABLE), MYDB_SCHEMA_VERSION);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM " MYDB_VERSION_TABLE), 1);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND"
                           " TABLE_NAME = 'signal_occurences' AND COLUMN_NAME IN "
                           "('id','created_at','updated_at','deleted_at','map_key','scenario','bucket_id',"
                           "'alert_message','events_count','start_at','stop_at','source_ip','source_range',"
                           "'source_autonomous_system_number','source_autonomous_system_organization',"
                           "'source_country','source_latitude','source_longitude','dest_ip','capacity',"
                           "'leak_speed','reprocess')"), 22);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND"
                           " TABLE_NAME = 'ban_applications' AND COLUMN_NAME IN "
                           "('id','created_at','updated_at','deleted_at','measure_source','measure_type',"
                           "'measure_extra','until','start_ip','end_ip','target_cn','target_as',"
                           "'target_as_name','ip_text','reason','scenario','signal_occurence_id')"), 17);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND"
                           " TABLE_NAME = 'event_sequences' AND COLUMN_NAME IN "
                           "('id','created_at','updated_at','deleted_at','time','source_ip','source_range',"
                           "'source_autonomous_system_number','source_autonomous_system_organization',"
                           "'source_country','signal_occurence_id','serialized')"), 12);
        /* gorm's types, and ours where they differ */
        CHECK_STREQ(q_text(buf, sizeof buf, db, "SELECT GROUP_CONCAT(COLUMN_NAME, ' ', COLUMN_TYPE ORDER BY COLUMN_NAME)"
                                                " FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND"
                                                " TABLE_NAME = 'ban_applications' AND COLUMN_NAME IN ('id', 'start_ip',"
                                                " 'until', 'target_as', 'ip_text')"),
                    "id int(10) unsigned,ip_text varchar(255),start_ip varbinary(16),target_as bigint(20),"
                    "until datetime(6)");
        CHECK_STREQ(q_text(buf, sizeof buf, db, "SELECT COLLATION_NAME FROM information_schema.COLUMNS WHERE"
                                                " TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'ban_applications'"
                                                " AND COLUMN_NAME = 'ip_text'"), "utf8mb4_bin");
        CHECK_STREQ(q_text(buf, sizeof buf, db, "SELECT ENGINE FROM information_schema.TABLES WHERE"
                                                " TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'signal_occurences'"),
                    "InnoDB");
        CHECK_EQ(q_int(db, "SELECT COUNT(DISTINCT INDEX_NAME) FROM information_schema.STATISTICS WHERE"
                           " TABLE_SCHEMA = DATABASE() AND INDEX_NAME IN ('" MYDB_IP_TEXT_INDEX "',"
                           " 'idx_ban_applications_deleted_at_until', 'idx_ban_applications_signal_occurence_id',"
                           " 'idx_event_sequences_signal_occurence_id')"), 4);
        CHECK_CONTAINS(testhost_log(f.host), "created the ban database (schema version 3)");
        fixture_close(&f);

        /* reopening a current database migrates nothing */
        CHECK_OK(fixture_open(&f, db, NULL));
        CHECK(!strstr(testhost_log(f.host), "schema"));
        fixture_close(&f);

        /* a migration cut short after the tables (no version row yet) is finished */
        db_exec(db, "DROP TABLE " MYDB_VERSION_TABLE);
        CHECK_OK(fixture_open(&f, db, NULL));
        CHECK_EQ(q_int(db, "SELECT version FROM " MYDB_VERSION_TABLE), MYDB_SCHEMA_VERSION);
        fixture_close(&f);
}

/* CrowdSec v0.3's MySQL database as gorm v1's mysql dialect creates it
 * (AutoMigrate of SignalOccurence, EventSequence, BanApplication), with
 * rows as go-sql-driver writes them with loc=Local: local times without a
 * zone, IPv4 addresses as uint32, '' for absent strings. */
static const char *const crowdsec_v03_schema[] = {
        "CREATE TABLE `signal_occurences` (`id` int unsigned AUTO_INCREMENT,`created_at` datetime NULL,"
        "`updated_at` datetime NULL,`deleted_at` datetime NULL,`map_key` varchar(255),`scenario` varchar(255),"
        "`bucket_id` varchar(255),`alert_message` varchar(255),`events_count` int,`start_at` datetime NULL,"
        "`stop_at` datetime NULL,`source_ip` varchar(255),`source_range` varchar(255),"
        "`source_autonomous_system_number` varchar(255),`source_autonomous_system_organization` varchar(255),"
        "`source_country` varchar(255),`source_latitude` double,`source_longitude` double,"
        "`dest_ip` varchar(255),`capacity` int,`leak_speed` bigint,`reprocess` boolean , PRIMARY KEY (`id`))",
        "CREATE INDEX idx_signal_occurences_deleted_at ON `signal_occurences`(deleted_at)",
        "CREATE TABLE `event_sequences` (`id` int unsigned AUTO_INCREMENT,`created_at` datetime NULL,"
        "`updated_at` datetime NULL,`deleted_at` datetime NULL,`time` datetime NULL,`source_ip` varchar(255),"
        "`source_range` varchar(255),`source_autonomous_system_number` varchar(255),"
        "`source_autonomous_system_organization` varchar(255),`source_country` varchar(255),"
        "`signal_occurence_id` int unsigned,`serialized` varchar(255) , PRIMARY KEY (`id`))",
        "CREATE INDEX idx_event_sequences_deleted_at ON `event_sequences`(deleted_at)",
        "CREATE TABLE `ban_applications` (`id` int unsigned AUTO_INCREMENT,`created_at` datetime NULL,"
        "`updated_at` datetime NULL,`deleted_at` datetime NULL,`measure_source` varchar(255),"
        "`measure_type` varchar(255),`measure_extra` varchar(255),`until` datetime NULL,"
        "`start_ip` int unsigned,`end_ip` int unsigned,`target_cn` varchar(255),`target_as` int,"
        "`target_as_name` varchar(255),`ip_text` varchar(255),`reason` varchar(255),`scenario` varchar(255),"
        "`signal_occurence_id` int unsigned , PRIMARY KEY (`id`))",
        "CREATE INDEX idx_ban_applications_deleted_at ON `ban_applications`(deleted_at)",
        /* T0 is 2023-11-14 22:13:20 UTC, written in +02:00 as CrowdSec on such a host would */
        "INSERT INTO signal_occurences VALUES (1,'2023-11-15 00:13:20','2023-11-15 00:13:20',NULL,"
        "'k','crowdsecurity/ssh-bf','b','alert',6,'2023-11-15 00:13:00','2023-11-15 00:13:19',"
        "'192.0.2.1','192.0.2.0/24','64500','Example AS','FR',48.85,2.35,'',5,10000000000,0)",
        "INSERT INTO event_sequences VALUES (1,'2023-11-15 00:13:20','2023-11-15 00:13:20',NULL,"
        "'2023-11-15 00:13:10','192.0.2.1','','','','',1,'{}')",
        /* active until T0 + 4h */
        "INSERT INTO ban_applications VALUES (1,'2023-11-15 00:13:20','2023-11-15 00:13:20',NULL,"
        "'local','ban','','2023-11-15 04:13:20',3221225985,3221225985,'FR',64500,'Example AS',"
        "'192.0.2.1','ssh bruteforce','crowdsecurity/ssh-bf',1)",
        /* deleted at T0 - 1h */
        "INSERT INTO signal_occurences VALUES (2,'2023-11-14 23:13:20','2023-11-14 23:13:20',NULL,"
        "'k','crowdsecurity/http-probing','b','alert',3,'2023-11-14 23:13:00','2023-11-14 23:13:19',"
        "'198.51.100.0','','','','US',0,0,'',5,10000000000,0)",
        "INSERT INTO ban_applications VALUES (2,'2023-11-14 23:13:20','2023-11-14 23:13:20',"
        "'2023-11-14 23:13:20','local','ban','','2023-11-15 03:13:20',3325256704,3325256959,'US',0,'',"
        "'198.51.100.0/24','probing','crowdsecurity/http-probing',2)",
};

static void test_migrate_from_crowdsec(void) {
        fixture f;
        char db[64], buf[256], t[64];
        const char *old_tz = getenv("TZ");
        char saved_tz[64];
        rows rs;
        sigbuf s;

        snprintf(saved_tz, sizeof saved_tz, "%s", old_tz ? old_tz : "");
        new_db(db, sizeof db);
        for (size_t i = 0; i < sizeof crowdsec_v03_schema / sizeof crowdsec_v03_schema[0]; i++)
                db_exec(db, "%s", crowdsec_v03_schema[i]);

        /* the plugin's host is in UTC+2, like the CrowdSec that wrote the rows */
        setenv("TZ", "XXX-2", 1);
        tzset();
        CHECK_OK(fixture_open(&f, db, NULL));
        if (old_tz)
                setenv("TZ", saved_tz, 1);
        else
                unsetenv("TZ");
        tzset();

        CHECK_EQ(q_int(db, "SELECT version FROM " MYDB_VERSION_TABLE), MYDB_SCHEMA_VERSION);
        CHECK_CONTAINS(testhost_log(f.host), "upgraded CrowdSec v0.3's tables to schema version 3");
        CHECK_CONTAINS(testhost_log(f.host), "UTC+7200 s");
        /* rows kept, times in UTC with microseconds */
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications"), 2);
        CHECK_STREQ(q_text(buf, sizeof buf, db, "SELECT created_at FROM ban_applications WHERE id = 1"),
                    fmt_time(t, T0));
        CHECK_STREQ(q_text(buf, sizeof buf, db, "SELECT stop_at FROM signal_occurences WHERE id = 1"),
                    fmt_time(t, T0 - SEC));
        CHECK_STREQ(q_text(buf, sizeof buf, db, "SELECT time FROM event_sequences WHERE id = 1"),
                    fmt_time(t, T0 - 10 * SEC));
        CHECK_STREQ(q_text(buf, sizeof buf, db, "SELECT until FROM ban_applications WHERE id = 1"),
                    fmt_time(t, T0 + 4 * 3600 * SEC));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NULL"), 1);
        /* '' became NULL, 0 AS too */
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE measure_extra IS NULL"), 2);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE target_as IS NULL"), 1);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences WHERE dest_ip IS NULL"), 2);
        /* uint32 addresses became IPv4-mapped 16-byte values */
        CHECK_STREQ(q_text(buf, sizeof buf, db, "SELECT HEX(start_ip) FROM ban_applications WHERE id = 1"),
                    "00000000000000000000FFFFC0000201");
        CHECK_STREQ(q_text(buf, sizeof buf, db, "SELECT HEX(end_ip) FROM ban_applications WHERE id = 2"),
                    "00000000000000000000FFFFC63364FF");
        /* CrowdSec's tables kept aside, ours have our indexes */
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications" MYDB_CROWDSEC_SUFFIX), 2);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences" MYDB_CROWDSEC_SUFFIX), 2);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE()"
                           " AND TABLE_NAME = 'ban_applications' AND INDEX_NAME = '" MYDB_IP_TEXT_INDEX "'"), 2);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
                           " AND TABLE_NAME LIKE '%%spillway_new'"), 0);

        /* CrowdSec's active ban is served, the deleted one is not */
        rs = read_at(&f, T0);
        CHECK_EQ(rs.n, 1);
        CHECK_STREQ(rs.r[0].iptext, "192.0.2.1");
        CHECK_STREQ(rs.r[0].reason, "ssh bruteforce");
        CHECK_EQ(rs.r[0].events_count, 6);
        CHECK_EQ(rs.r[0].until, T0 + 4 * 3600 * SEC);
        /* before its deletion, the range ban was active */
        CHECK_EQ(read_at(&f, T0 - 2 * 3600 * SEC + SEC).n, 2);

        /* new signals get new ids and supersede CrowdSec's ban */
        CHECK_EQ(plugin->insert(f.self, mk_signal(&s, "192.0.2.1", "again", T0 + 8 * 3600 * SEC)), 0);
        CHECK_OK(plugin->flush(f.self));
        rs = read_at(&f, T0);
        CHECK_EQ(rs.n, 1);
        CHECK_STREQ(rs.r[0].reason, "again");
        CHECK_EQ(q_int(db, "SELECT MAX(id) FROM signal_occurences"), 3);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE ip_text = '192.0.2.1' AND deleted_at IS NULL"), 1);
        fixture_close(&f);
}

/* Two hosts starting at once on an empty database migrate once. */
typedef struct opener {
        const char *db;
        int r;
} opener;

static void *open_thread(void *userdata) {
        opener *o = userdata;
        fixture f;

        o->r = fixture_open(&f, o->db, NULL);
        fixture_close(&f);
        return NULL;
}

/* Six hosts at once, while a client holds the named lock the plugin used
 * to take (GET_LOCK is per node on Galera: nothing may wait for it now):
 * all start, one version row, and the key keeps it one. */
static void test_concurrent_creation(void) {
        pthread_t th[6];
        opener o[6];
        char db[64], lock[128];
        MYSQL *holder;

        new_db(db, sizeof db);
        holder = mariadb_connect_root(&srv, db);
        CHECK(holder);
        snprintf(lock, sizeof lock, "DO GET_LOCK(CONCAT('spillway-schema-', LEFT(MD5('%s'), 16)), 0)", db);
        CHECK_EQ(mysql_query(holder, lock), 0);
        for (int i = 0; i < 6; i++) {
                o[i] = (opener) { .db = db };
                CHECK_EQ(pthread_create(&th[i], NULL, open_thread, &o[i]), 0);
        }
        for (int i = 0; i < 6; i++) {
                CHECK_EQ(pthread_join(th[i], NULL), 0);
                CHECK_OK(o[i].r);
        }
        mysql_close(holder);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM " MYDB_VERSION_TABLE), 1);
        CHECK_EQ(q_int(db, "SELECT version FROM " MYDB_VERSION_TABLE), MYDB_SCHEMA_VERSION);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = DATABASE()"
                           " AND TABLE_NAME = '" MYDB_VERSION_TABLE "' AND CONSTRAINT_NAME = 'PRIMARY'"), 1);
        /* the three tables, the ban-change log, the version table, the lease and the batch tokens */
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"), 7);
}

/* A version table from before the primary key, with the two rows a race
 * could leave: one row remains, the highest version, now under the key;
 * and the pass is run again after a lost race. */
static void test_version_table_gets_key(void) {
        fixture f;
        char db[64];

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, NULL));
        fixture_close(&f);
        db_exec(db, "DROP TABLE " MYDB_VERSION_TABLE);
        db_exec(db, "CREATE TABLE " MYDB_VERSION_TABLE " (version int NOT NULL, migrated_at datetime(6) NOT NULL)");
        db_exec(db, "INSERT INTO " MYDB_VERSION_TABLE " VALUES (1, NOW()), (1, NOW())");
        CHECK_OK(fixture_open(&f, db, NULL));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM " MYDB_VERSION_TABLE), 1);
        CHECK_EQ(q_int(db, "SELECT version FROM " MYDB_VERSION_TABLE), MYDB_SCHEMA_VERSION);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = DATABASE()"
                           " AND TABLE_NAME = '" MYDB_VERSION_TABLE "' AND CONSTRAINT_NAME = 'PRIMARY'"), 1);
        fixture_close(&f);
        /* the key refuses a second row */
        {
                char sql[256];
                snprintf(sql, sizeof sql, "INSERT INTO `%s`." MYDB_VERSION_TABLE " (version, migrated_at)"
                         " VALUES (1, NOW())", db);
                CHECK(mysql_query(root, sql) != 0);
                CHECK_EQ(mysql_errno(root), 1062u);
        }
        CHECK(mydb_migrate_retryable(1213));
        CHECK(mydb_migrate_retryable(1047));
        CHECK(!mydb_migrate_retryable(1045));
}

static int count_change(const spw_ban_change *c, void *userdata) {
        (*(int *) userdata)++;
        return 0;
}

/* A version 2 database (before scopes and signal ids) is upgraded in
 * place; its rows read as Ip/Range and are never duplicates; a migration
 * cut short (some columns added, no version row) is finished. */
static void test_migrate_2_to_3(void) {
        fixture f;
        char db[64];
        sigbuf s;

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, NULL));
        CHECK_EQ(insert(&f, "192.0.2.1", "before", T0 + 3600 * SEC), 0);
        CHECK_EQ(insert(&f, "198.51.100.0/24", "before", T0 + 3600 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));
        fixture_close(&f);
        db_exec(db, "ALTER TABLE signal_occurences DROP INDEX " MYDB_SIGNAL_ID_INDEX ","
                    " DROP COLUMN spillway_signal_id, DROP COLUMN spillway_origin");
        db_exec(db, "ALTER TABLE ban_applications DROP COLUMN scope, DROP COLUMN value");
        db_exec(db, "UPDATE " MYDB_VERSION_TABLE " SET version = 2");

        CHECK_OK(fixture_open(&f, db, NULL));
        CHECK_EQ(q_int(db, "SELECT version FROM " MYDB_VERSION_TABLE), 3);
        CHECK_CONTAINS(testhost_log(f.host), "upgraded the ban database from schema version 2 to 3");
        {
                rows rs = read_at(&f, T0);
                CHECK_EQ(rs.n, 2);
                CHECK_STREQ(rs.r[0].scope, "Range");
                CHECK_STREQ(rs.r[1].scope, "Ip");
                CHECK_STREQ(rs.r[1].value, "192.0.2.1");
        }
        mk_signal(&s, "192.0.2.3", "after", T0 + 3600 * SEC);
        CHECK_EQ(plugin->insert(f.self, &s.sig), 0);
        CHECK_EQ(plugin->insert(f.self, &s.sig), 0);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 3);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences WHERE spillway_signal_id IS NULL"), 2);
        CHECK_STREQ(testhost_status(f.host, "duplicates_skipped"), "1");
        fixture_close(&f);

        /* cut short: the ban columns added, the signal columns not, no version row */
        db_exec(db, "ALTER TABLE signal_occurences DROP INDEX " MYDB_SIGNAL_ID_INDEX ","
                    " DROP COLUMN spillway_signal_id, DROP COLUMN spillway_origin");
        db_exec(db, "UPDATE " MYDB_VERSION_TABLE " SET version = 2");
        CHECK_OK(fixture_open(&f, db, NULL));
        CHECK_EQ(q_int(db, "SELECT version FROM " MYDB_VERSION_TABLE), 3);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE()"
                           " AND INDEX_NAME = '" MYDB_SIGNAL_ID_INDEX "' AND NON_UNIQUE = 0"), 2);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE scope = 'Ip'"), 1);
        fixture_close(&f);
}

/* A version 1 database (before the change log) is upgraded in place: its
 * bans stay, the change log starts empty, and cursor 0 lists them. */
static void test_migrate_1_to_2(void) {
        fixture f;
        char db[64];
        uint64_t cur = 0;
        int n = 0;

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, NULL));
        CHECK_EQ(insert(&f, "192.0.2.1", "before", T0 + 3600 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));
        fixture_close(&f);
        db_exec(db, "DROP TABLE ban_changes");
        db_exec(db, "UPDATE " MYDB_VERSION_TABLE " SET version = 1");

        CHECK_OK(fixture_open(&f, db, NULL));
        CHECK_EQ(q_int(db, "SELECT version FROM " MYDB_VERSION_TABLE), MYDB_SCHEMA_VERSION);
        CHECK_CONTAINS(testhost_log(f.host), "upgraded the ban database from schema version 1 to 3");
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_changes"), 0);
        CHECK_OK(plugin->read_changes(f.self, 0, count_change, &n, &cur));
        CHECK_EQ(n, 1);
        CHECK_EQ(insert(&f, "192.0.2.2", "after", T0 + 3600 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_changes WHERE kind = 1 AND ip_text = '192.0.2.2'"), 1);
        fixture_close(&f);
}

/* ------------------------------------------------------------ tests: the operations */

/* Strings longer than varchar(255) are cut at a character boundary, not
 * refused (strict mode would refuse the whole signal). */
static void test_long_strings_cut(void) {
        fixture f;
        char db[64], long_msg[700];
        sigbuf s;

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, NULL));
        memset(long_msg, 0, sizeof long_msg);
        for (size_t i = 0; i + 2 < 300 * 2; i += 2)
                memcpy(long_msg + i, "\xc3\xa9", 2); /* é x 299 */
        mk_signal(&s, "192.0.2.99", "long", T0 + 600 * SEC);
        s.sig.alert_message = long_msg;
        CHECK_EQ(plugin->insert(f.self, &s.sig), 0);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(db, "SELECT CHAR_LENGTH(alert_message) FROM signal_occurences WHERE scenario = 'long'"), 255);
        CHECK_EQ(q_int(db, "SELECT LENGTH(alert_message) FROM signal_occurences WHERE scenario = 'long'"), 510);
        fixture_close(&f);
}

/* Multi-row batches (issue 21): a batch is a handful of statements, not
 * four per signal; a value the server would refuse is refused at insert(),
 * for that signal only, and the rest of its batch is stored; reads and
 * deletes inside the batch see its rows; statements stay under the
 * server's max_allowed_packet. */
static void test_multi_row_batches(void) {
        fixture f;
        char db[64], bad_utf8[] = "caf\xc3 au lait", big[40000];
        int64_t before, after;
        uint64_t n = 0;
        sigbuf s;

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, NULL));
        CHECK_EQ(insert(&f, "192.0.2.1", "warm-up", T0 + 3600 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));

        /* refused at insert, the rest of the batch stored */
        CHECK_EQ(insert(&f, "203.0.113.1", "good one", T0 + 3600 * SEC), 0);
        mk_signal(&s, "203.0.113.2", "bad text", T0 + 3600 * SEC);
        s.sig.source_as_org = bad_utf8;
        CHECK_EQ(plugin->insert(f.self, &s.sig), -EINVAL);
        CHECK_CONTAINS(testhost_last_error(f.host), "text that is not valid UTF-8 in "
                       "signal_occurences.source_autonomous_system_organization");
        CHECK_CONTAINS(testhost_last_error(f.host), "signal rejected");
        mk_signal(&s, "203.0.113.3", "bad number", T0 + 3600 * SEC);
        s.sig.source_latitude = 0.0 / 0.0;
        CHECK_EQ(plugin->insert(f.self, &s.sig), -EINVAL);
        CHECK_CONTAINS(testhost_last_error(f.host), "a number that is not finite in signal_occurences.source_latitude");
        mk_signal(&s, "203.0.113.4", "bad ban", T0 + 3600 * SEC);
        s.ban.reason = bad_utf8;
        CHECK_EQ(plugin->insert(f.self, &s.sig), -EINVAL);
        CHECK_CONTAINS(testhost_last_error(f.host), "ban_applications.reason");
        CHECK_EQ(insert(&f, "203.0.113.5", "good two", T0 + 3600 * SEC), 0);

        /* reads and deletes see the open batch */
        CHECK_EQ(read_at(&f, T0).n, 3);
        CHECK_OK(plugin->delete_target(f.self, "203.0.113.5", &n));
        CHECK_EQ(n, 1);
        CHECK_EQ(insert(&f, "203.0.113.6", "good three", T0 + 3600 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences WHERE scenario LIKE 'good %%'"), 3);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences WHERE scenario LIKE 'bad %%'"), 0);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NULL"), 3);
        /* 300 signals: a few round trips, not 1,200 */
        before = q_int(db, "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'QUESTIONS'");
        for (int i = 0; i < 300; i++) {
                char target[32];

                snprintf(target, sizeof target, "198.51.%d.%d", i / 200, i % 200 + 1);
                mk_signal(&s, target, "many", T0 + 3600 * SEC);
                CHECK_EQ(plugin->insert(f.self, &s.sig), 0);
        }
        CHECK_OK(plugin->flush(f.self));
        after = q_int(db, "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'QUESTIONS'");
        /* START TRANSACTION, the signals, the rest in one multi-statement
         * (4), the token and COMMIT (2), the lease, this test's two reads */
        fprintf(stderr, "multi-row: %" PRId64 " statements for a batch of 300 signals\n", after - before);
        CHECK(after - before < 20);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences WHERE scenario = 'many'"), 300);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM event_sequences e JOIN signal_occurences s ON s.id ="
                           " e.signal_occurence_id WHERE s.scenario = 'many'"), 300);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications b JOIN signal_occurences s ON s.id ="
                           " b.signal_occurence_id WHERE s.scenario = 'many' AND b.reason = 'many'"), 300);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_changes"), 305);

        fixture_close(&f);

        /* a small max_allowed_packet: several statements, and an event too
         * big for a shared statement goes row by row */
        db_exec(NULL, "SET GLOBAL max_allowed_packet = 65536");
        CHECK_OK(fixture_open(&f, db, NULL));
        memset(big, 'x', sizeof big - 1);
        big[sizeof big - 1] = 0;
        for (int i = 0; i < 400; i++) {
                char target[32];

                snprintf(target, sizeof target, "100.64.%d.%d", i / 200, i % 200 + 1);
                mk_signal(&s, target, "small packets", T0 + 3600 * SEC);
                if (i == 123)
                        s.ev.serialized = big;
                CHECK_EQ(plugin->insert(f.self, &s.sig), 0);
        }
        CHECK_OK(plugin->flush(f.self));
        db_exec(NULL, "SET GLOBAL max_allowed_packet = 16777216");
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences WHERE scenario = 'small packets'"), 400);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE reason = 'small packets' AND deleted_at IS NULL"),
                 400);
        CHECK_EQ(q_int(db, "SELECT MAX(LENGTH(serialized)) FROM event_sequences"), (int64_t) sizeof big - 1);
        fixture_close(&f);
}

/* Another host holds a row the insert must soft-delete: the insert waits
 * lock_wait_timeout, is a retry, and the batch is intact (row by row).
 * With multi-row batches the wait comes at the flush, which rolls the
 * batch back and says it is to be inserted again; the re-insert works. */
static void test_lock_wait_is_retry(void) {
        fixture f;
        char db[64];

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, "multi_row", "false", NULL));
        CHECK_EQ(insert(&f, "192.0.2.1", "first", T0 + 3600 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(insert(&f, "192.0.2.2", "in the batch", T0 + 3600 * SEC), 0);

        db_exec(db, "START TRANSACTION");
        db_exec(db, "SELECT * FROM ban_applications WHERE id = 1 FOR UPDATE");
        CHECK_EQ(insert(&f, "192.0.2.1", "second", T0 + 3600 * SEC), -EAGAIN);
        CHECK_CONTAINS(testhost_last_error(f.host), "Lock wait timeout exceeded");
        CHECK_CONTAINS(testhost_last_error(f.host), "(error 1205) while soft-deleting");
        CHECK_CONTAINS(testhost_last_error(f.host), "will retry");
        db_exec(db, "ROLLBACK");

        /* the other host is done: the retried insert works, the batch is whole */
        CHECK_EQ(insert(&f, "192.0.2.1", "second", T0 + 3600 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 3);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NULL"), 2);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE reason = 'in the batch'"), 1);
        fixture_close(&f);

        /* multi-row: at the flush */
        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, NULL));
        CHECK_EQ(insert(&f, "192.0.2.1", "first", T0 + 3600 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));
        db_exec(db, "START TRANSACTION");
        db_exec(db, "SELECT * FROM ban_applications WHERE id = 1 FOR UPDATE");
        for (int attempt = 0; attempt < 2; attempt++) {
                sigbuf a, b2;

                mk_signal(&a, "192.0.2.2", "in the batch", T0 + 3600 * SEC);
                mk_signal(&b2, "192.0.2.1", "second", T0 + 3600 * SEC);
                a.sig.id = 5000;
                b2.sig.id = 5001;
                CHECK_EQ(plugin->insert(f.self, &a.sig), 0);
                CHECK_EQ(plugin->insert(f.self, &b2.sig), 0);
                if (attempt == 0) {
                        CHECK_EQ(plugin->flush(f.self), -EAGAIN);
                        CHECK_CONTAINS(testhost_last_error(f.host), "cannot write the batch of 2 signal(s)");
                        CHECK_CONTAINS(testhost_last_error(f.host), "(error 1205) while soft-deleting");
                        CHECK_CONTAINS(testhost_last_error(f.host), "it will be inserted again");
                        db_exec(db, "ROLLBACK");
                } else
                        CHECK_OK(plugin->flush(f.self));
        }
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 3);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NULL"), 2);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE reason = 'in the batch'"), 1);
        fixture_close(&f);
}

/* A deadlock with another host: InnoDB rolls the plugin's whole transaction
 * back (the smaller one). The insert is a retry, the next flush reports the
 * batch lost, the daemon's re-insert goes through. */
typedef struct other_host {
        const char *db;
        MYSQL *m;
} other_host;

static void *other_host_thread(void *userdata) {
        other_host *o = userdata;
        struct timespec ts = { 0, 300 * 1000 * 1000 };

        /* once the plugin waits for our lock on X, ask for its Y */
        nanosleep(&ts, NULL);
        if (mysql_query(o->m, "UPDATE ban_applications SET updated_at = updated_at WHERE id = 2") != 0)
                fprintf(stderr, "other host: %s\n", mysql_error(o->m));
        return NULL;
}

/* Another host holds X in a big transaction; the plugin inserts s (banning
 * Y, then X): it locks Y and waits for X, the other host then asks for Y:
 * a deadlock, and InnoDB rolls the plugin's (smaller) transaction back. */
static void deadlock_insert(fixture *f, const char *db, const spw_signal *sig) {
        other_host o = { .db = db };
        pthread_t th;

        o.m = mariadb_connect_root(&srv, db);
        CHECK(o.m);
        CHECK_EQ(mysql_query(o.m, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"), 0);
        CHECK_EQ(mysql_query(o.m, "START TRANSACTION"), 0);
        CHECK_EQ(mysql_query(o.m, "UPDATE filler SET v = v + 1"), 0);
        CHECK_EQ(mysql_query(o.m, "UPDATE ban_applications SET updated_at = updated_at WHERE id = 1"), 0);
        CHECK_EQ(pthread_create(&th, NULL, other_host_thread, &o), 0);
        CHECK_EQ(plugin->insert(f->self, sig), -EAGAIN);
        CHECK_CONTAINS(testhost_last_error(f->host), "Deadlock found");
        CHECK_CONTAINS(testhost_last_error(f->host), "will retry");
        CHECK_EQ(pthread_join(th, NULL), 0);
        CHECK_EQ(mysql_query(o.m, "ROLLBACK"), 0);
        mysql_close(o.m);
}

static void test_deadlock_loses_batch(void) {
        fixture f;
        char db[64];
        spw_ban bans[2];
        sigbuf s;

        new_db(db, sizeof db);
        /* a deadlock inside an insert: the row-by-row path (multi-row
         * batches meet it at the flush, test_lock_wait_is_retry) */
        CHECK_OK(fixture_open(&f, db, "lock_wait_timeout", "5s", "multi_row", "false", NULL));
        CHECK_EQ(insert(&f, "192.0.2.1", "x", T0 + 3600 * SEC), 0);
        CHECK_EQ(insert(&f, "192.0.2.2", "y", T0 + 3600 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));
        db_exec(db, "CREATE TABLE filler (id int PRIMARY KEY, v int) ENGINE=InnoDB");
        db_exec(db, "INSERT INTO filler SELECT seq, 0 FROM seq_1_to_500");

        /* a signal banning Y then X */
        mk_signal(&s, "192.0.2.2", "y again", T0 + 7200 * SEC);
        bans[1] = s.ban;
        mk_signal(&s, "192.0.2.1", "x again", T0 + 7200 * SEC);
        bans[0] = bans[1];
        bans[1] = s.ban;
        s.sig.bans = bans;
        s.sig.n_bans = 2;

        /* the batch: one good insert, then the deadlock */
        CHECK_EQ(insert(&f, "203.0.113.1", "batched", T0 + 3600 * SEC), 0);
        deadlock_insert(&f, db, &s.sig);
        /* the daemon retries the insert, and it deadlocks again: the first
         * statement of a new transaction; the batch stays lost */
        deadlock_insert(&f, db, &s.sig);

        CHECK_EQ(plugin->flush(f.self), -EAGAIN);
        CHECK_CONTAINS(testhost_last_error(f.host), "the batch of 1 signal(s) was lost");
        CHECK_CONTAINS(testhost_last_error(f.host), "will be inserted again");
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 2);

        /* the daemon inserts the batch again */
        CHECK_EQ(insert(&f, "203.0.113.1", "batched", T0 + 3600 * SEC), 0);
        CHECK_EQ(plugin->insert(f.self, &s.sig), 0);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 4);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NULL"), 3);
        fixture_close(&f);
}

/* The plugin's connection is killed (a network cut, a proxy, an admin):
 * the batch on it is lost, reported, and the plugin reconnects. */
static void connection_killed_multirow(void) {
        fixture f;
        char db[64];
        int64_t id;

        /* multi-row batches: the inserts buffer, the flush finds the
         * connection gone, and the batch is inserted again */
        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, NULL));
        CHECK_EQ(insert(&f, "192.0.2.1", "committed", T0 + 3600 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(insert(&f, "192.0.2.2", "lost", T0 + 3600 * SEC), 0);
        id = plugin_connection(db);
        CHECK(id > 0);
        db_exec(NULL, "KILL CONNECTION %" PRId64, id);
        CHECK_EQ(insert(&f, "192.0.2.3", "next", T0 + 3600 * SEC), 0);
        CHECK_EQ(plugin->flush(f.self), -EAGAIN);
        CHECK_CONTAINS(testhost_last_error(f.host), "cannot write the batch of 2 signal(s)");
        CHECK_CONTAINS(testhost_last_error(f.host), "it will be inserted again");
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 1);
        CHECK_EQ(insert(&f, "192.0.2.2", "lost", T0 + 3600 * SEC), 0);
        CHECK_EQ(insert(&f, "192.0.2.3", "next", T0 + 3600 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));
        CHECK_STREQ(testhost_status(f.host, "reconnects"), "1");
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 3);
        fixture_close(&f);
}

static void test_connection_killed(void) {
        fixture f;
        char db[64];
        int64_t id;
        rows rs;

        connection_killed_multirow();
        /* row by row: the next insert notices */
        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, "multi_row", "false", NULL));
        CHECK_EQ(insert(&f, "192.0.2.1", "committed", T0 + 3600 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));

        /* between two inserts of a batch */
        CHECK_EQ(insert(&f, "192.0.2.2", "lost", T0 + 3600 * SEC), 0);
        id = plugin_connection(db);
        CHECK(id > 0);
        db_exec(NULL, "KILL CONNECTION %" PRId64, id);
        CHECK_EQ(insert(&f, "192.0.2.3", "next", T0 + 3600 * SEC), -EAGAIN);
        CHECK_CONTAINS(testhost_last_error(f.host), "will retry");
        /* the daemon retries the insert: the plugin reconnects */
        CHECK_EQ(insert(&f, "192.0.2.3", "next", T0 + 3600 * SEC), 0);
        CHECK_CONTAINS(testhost_log(f.host), "connected again (reconnection 1); the open batch was lost");
        CHECK_STREQ(testhost_status(f.host, "reconnects"), "1");
        CHECK_EQ(plugin->flush(f.self), -EAGAIN);
        CHECK_CONTAINS(testhost_last_error(f.host), "was lost");
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 1);
        /* the whole batch again */
        CHECK_EQ(insert(&f, "192.0.2.2", "lost", T0 + 3600 * SEC), 0);
        CHECK_EQ(insert(&f, "192.0.2.3", "next", T0 + 3600 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 3);

        /* idle connection killed: inserts and reads notice and reconnect
         * at once (no batch was open, nothing was lost) */
        db_exec(NULL, "KILL CONNECTION %" PRId64, plugin_connection(db));
        rs = read_at(&f, T0);
        CHECK_EQ(rs.n, 3);
        CHECK_CONTAINS(testhost_log(f.host), "connected again (reconnection 2)");
        db_exec(NULL, "KILL CONNECTION %" PRId64, plugin_connection(db));
        CHECK_EQ(insert(&f, "192.0.2.4", "after idle", T0 + 3600 * SEC), 0);
        CHECK_CONTAINS(testhost_log(f.host), "the idle connection was lost");
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 4);
        /* a delete may have committed before the connection died: it is
         * reported, not repeated; the next call reconnects */
        db_exec(NULL, "KILL CONNECTION %" PRId64, plugin_connection(db));
        {
                uint64_t n = 0;
                CHECK(plugin->delete_target(f.self, "192.0.2.1", &n) < 0);
                CHECK_CONTAINS(testhost_last_error(f.host), "cannot delete bans of 192.0.2.1");
                CHECK_CONTAINS(testhost_last_error(f.host), "the deletion may have been applied or not, run it again");
                CHECK_OK(plugin->delete_target(f.self, "192.0.2.1", &n));
                CHECK_EQ(n, 1);
        }
        CHECK_OK(plugin->start_autocommit(f.self));
        db_exec(NULL, "KILL CONNECTION %" PRId64, plugin_connection(db));
        advance(&f, 4000 * SEC);
        testhost_run_timers(f.host); /* notices */
        advance(&f, 1 * SEC);
        testhost_run_timers(f.host);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NULL"), 0);
        fixture_close(&f);
}

/* The server goes away in the middle: a crash with a batch open, then a
 * clean stop. Connection loss is -EAGAIN, the plugin reconnects once the
 * server is back, and the daemon's re-insert works. */
static void test_server_restart(void) {
        fixture f;
        char db[64];

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, "connect_timeout", "1s", NULL));
        CHECK_EQ(insert(&f, "192.0.2.1", "committed", T0 + 3600 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(insert(&f, "192.0.2.2", "pending", T0 + 3600 * SEC), 0);
        CHECK_EQ(insert(&f, "192.0.2.3", "pending", T0 + 3600 * SEC), 0);

        /* crash, restart (crash recovery): the batch was never committed */
        CHECK_OK(mariadb_kill(&srv));
        CHECK_EQ(mariadb_restart(&srv), 0);
        mysql_close(root);
        root = root_connect();
        CHECK_EQ(plugin->flush(f.self), -EAGAIN);
        CHECK_CONTAINS(testhost_last_error(f.host), db);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 1);
        /* the daemon's re-insert after the backoff reconnects */
        CHECK_EQ(insert(&f, "192.0.2.2", "pending", T0 + 3600 * SEC), 0);
        CHECK_EQ(insert(&f, "192.0.2.3", "pending", T0 + 3600 * SEC), 0);
        if (plugin->flush(f.self) != 0)
                fprintf(stderr, "flush: %s\n%s\n", testhost_last_error(f.host), testhost_log(f.host));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 3);
        CHECK_EQ(read_at(&f, T0).n, 3);

        /* a clean stop: while the server is down, inserts are retries
         * naming the server and what to check */
        CHECK_OK(mariadb_stop(&srv));
        CHECK_EQ(insert(&f, "192.0.2.4", "while down", T0 + 3600 * SEC), -EAGAIN);
        CHECK_EQ(insert(&f, "192.0.2.4", "while down", T0 + 3600 * SEC), -EAGAIN);
        CHECK_CONTAINS(testhost_last_error(f.host), "cannot connect");
        CHECK_CONTAINS(testhost_last_error(f.host), "the server is unreachable");
        CHECK_CONTAINS(testhost_last_error(f.host), "will retry");
        CHECK_STREQ(testhost_status(f.host, "connection"), "lost");
        CHECK(plugin->flush(f.self) == 0 || testhost_last_error(f.host)[0]);
        CHECK_EQ(mariadb_restart(&srv), 0);
        mysql_close(root);
        root = root_connect();
        CHECK_EQ(insert(&f, "192.0.2.4", "while down", T0 + 3600 * SEC), 0);
        CHECK_STREQ(testhost_status(f.host, "connection"), "up");
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 4);
        fixture_close(&f);
}

/* Two daemons ("hosts") on one database see each other's bans, supersede
 * each other's, and delete each other's. */
static void test_two_hosts(void) {
        fixture a, b;
        char db[64];
        rows rs;
        uint64_t n;

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&a, db, "max_records", "0", "max_records_age", "0", NULL));
        CHECK_OK(fixture_open(&b, db, "max_records", "0", "max_records_age", "0", NULL));
        testhost_set_time(b.host, T0 + SEC);

        CHECK_EQ(insert(&a, "192.0.2.1", "seen by a", T0 + 3600 * SEC), 0);
        CHECK_EQ(insert(&b, "198.51.100.1", "seen by b", T0 + 3600 * SEC), 0);
        /* before a flush, each sees only its own */
        CHECK_EQ(read_at(&a, T0 + SEC).n, 1);
        CHECK_EQ(read_at(&b, T0 + SEC).n, 1);
        CHECK_OK(plugin->flush(a.self));
        CHECK_OK(plugin->flush(b.self));
        rs = read_at(&a, T0 + SEC);
        CHECK_EQ(rs.n, 2);
        CHECK_STREQ(rs.r[0].reason, "seen by b");
        CHECK_EQ(read_at(&b, T0 + SEC).n, 2);

        /* b bans a's target again: one active ban, b's */
        advance(&b, SEC);
        CHECK_EQ(insert(&b, "192.0.2.1", "again by b", T0 + 7200 * SEC), 0);
        CHECK_OK(plugin->flush(b.self));
        rs = read_at(&a, T0 + 2 * SEC);
        CHECK_EQ(rs.n, 2);
        CHECK_STREQ(rs.r[0].iptext, "192.0.2.1");
        CHECK_STREQ(rs.r[0].reason, "again by b");
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE ip_text = '192.0.2.1' AND deleted_at IS NULL"), 1);

        /* a deletes it for everyone */
        advance(&a, 3 * SEC);
        CHECK_OK(plugin->delete_target(a.self, "192.0.2.1", &n));
        CHECK_EQ(n, 1);
        CHECK_EQ(read_at(&b, T0 + 3 * SEC).n, 1);

        /* both run expiry at the same second: each ban expires once */
        CHECK_OK(plugin->start_autocommit(a.self));
        CHECK_OK(plugin->start_autocommit(b.self));
        testhost_set_time(a.host, T0 + 4000 * SEC);
        testhost_set_time(b.host, T0 + 4000 * SEC);
        CHECK_EQ(testhost_run_timers(a.host), 1);
        CHECK_EQ(testhost_run_timers(b.host), 1);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NULL"), 0);
        CHECK_STREQ(testhost_status(a.host, "expired"), "1");
        CHECK(!testhost_status(b.host, "expired"));
        fixture_close(&a);
        fixture_close(&b);
}

/* Hosts writing at once, as daemons would: each thread drives its own
 * plugin instance like the daemon's worker (retry an insert that says so,
 * insert the whole batch again after a flush that says so) with signals
 * banning two targets of a small shared set in random order, so that the
 * hosts' transactions deadlock now and then, and runs the expiry between
 * batches while the clock moves past the bans' end. In the end every
 * signal is stored exactly once (no commit was ambiguous: no connection was
 * lost), nothing was rejected, every expired ban was expired, and read_at
 * shows one row per target. */
#define HOST_SIGNALS 400
#define HOST_BATCH 20
#define SHARED_TARGETS 12

typedef struct busy_host {
        const char *db;
        unsigned seed;
        int retries, lost_batches, rejected;
} busy_host;

static void *busy_host_thread(void *userdata) {
        busy_host *h = userdata;
        sigbuf batch[HOST_BATCH];
        spw_ban bans[HOST_BATCH][2];
        fixture f;

        CHECK_OK(fixture_open(&f, h->db, "lock_wait_timeout", "3s", "max_records", "0", "max_records_age", "0", NULL));
        CHECK_OK(plugin->start_autocommit(f.self));
        for (int i = 0; i < HOST_SIGNALS; i += HOST_BATCH) {
                char ips[HOST_BATCH][2][32];
                int r;

                for (int j = 0; j < HOST_BATCH; j++) {
                        int a = (int) (rand_r(&h->seed) % SHARED_TARGETS), b;

                        do
                                b = (int) (rand_r(&h->seed) % SHARED_TARGETS);
                        while (b == a);
                        snprintf(ips[j][0], sizeof ips[j][0], "198.51.100.%d", a);
                        snprintf(ips[j][1], sizeof ips[j][1], "198.51.100.%d", b);
                        mk_signal(&batch[j], ips[j][1], "busy", T0 + 600 * SEC);
                        bans[j][1] = batch[j].ban;
                        mk_signal(&batch[j], ips[j][0], "busy", T0 + 600 * SEC);
                        bans[j][0] = batch[j].ban;
                        batch[j].sig.bans = bans[j];
                        batch[j].sig.n_bans = 2;
                }
                for (;;) {
                        for (int j = 0; j < HOST_BATCH; j++) {
                                int tries = 0;
                                while ((r = plugin->insert(f.self, &batch[j].sig)) == -EAGAIN && tries++ < 50) {
                                        h->retries++;
                                        if (getenv("BUSY_DEBUG"))
                                                fprintf(stderr, "retry: %s\n", testhost_last_error(f.host));
                                }
                                if (r == -EINVAL) {
                                        fprintf(stderr, "busy host: %s\n", testhost_last_error(f.host));
                                        h->rejected++;
                                }
                        }
                        r = plugin->flush(f.self);
                        if (r == 0)
                                break;
                        CHECK_EQ(r, -EAGAIN);
                        h->lost_batches++;
                }
                advance(&f, 61 * SEC);
                testhost_run_timers(f.host);
                CHECK_OK(plugin->flush(f.self));
        }
        fixture_close(&f);
        return NULL;
}

static void test_busy_hosts(void) {
        busy_host hosts[2];
        pthread_t th[2];
        char db[64];
        fixture f;
        rows rs;

        new_db(db, sizeof db);
        /* create the schema first: the hosts start together on a ready database */
        CHECK_OK(fixture_open(&f, db, NULL));
        fixture_close(&f);
        for (int i = 0; i < 2; i++) {
                hosts[i] = (busy_host) { .db = db, .seed = 4242u + (unsigned) i };
                CHECK_EQ(pthread_create(&th[i], NULL, busy_host_thread, &hosts[i]), 0);
        }
        for (int i = 0; i < 2; i++)
                CHECK_EQ(pthread_join(th[i], NULL), 0);
        fprintf(stderr, "busy hosts: %d + %d insert retries, %d + %d batches lost and inserted again\n",
                hosts[0].retries, hosts[1].retries, hosts[0].lost_batches, hosts[1].lost_batches);
        CHECK_EQ(hosts[0].rejected + hosts[1].rejected, 0);
        /* every signal exactly once, with its two bans and its event */
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 2 * HOST_SIGNALS);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications"), 4 * HOST_SIGNALS);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM event_sequences"), 2 * HOST_SIGNALS);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences s WHERE"
                           " (SELECT COUNT(*) FROM ban_applications b WHERE b.signal_occurence_id = s.id) != 2"), 0);
        /* the hosts' expiry runs left the database consistent: one more
         * run finds what is left, and then nothing is active */
        CHECK_OK(fixture_open(&f, db, "max_records", "0", "max_records_age", "0", NULL));
        CHECK_OK(plugin->start_autocommit(f.self));
        advance(&f, 4000 * SEC);
        CHECK_EQ(testhost_run_timers(f.host), 1);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NULL"), 0);
        fixture_close(&f);
        /* every target has an active ban; read_at shows one row per target */
        CHECK_OK(fixture_open(&f, db, NULL));
        rs = read_at(&f, T0);
        CHECK_EQ(rs.n, SHARED_TARGETS);
        fixture_close(&f);
}

/* Background work that cannot get a row says so and tries again later. */
static void test_timer_errors(void) {
        fixture f;
        char db[64];

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, "max_records", "0", "max_records_age", "0", NULL));
        CHECK_OK(plugin->start_autocommit(f.self));
        CHECK_EQ(insert(&f, "192.0.2.1", "a", T0 + SEC), 0);
        CHECK_OK(plugin->flush(f.self));

        db_exec(db, "START TRANSACTION");
        db_exec(db, "SELECT * FROM ban_applications FOR UPDATE");
        advance(&f, 10 * SEC);
        CHECK_EQ(testhost_run_timers(f.host), 1);
        CHECK_CONTAINS(testhost_last_error(f.host), db);
        CHECK_CONTAINS(testhost_last_error(f.host), "cannot expire bans: Lock wait timeout exceeded");
        CHECK_CONTAINS(testhost_last_error(f.host), "will try again in a second");
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NULL"), 1);
        db_exec(db, "ROLLBACK");

        advance(&f, SEC);
        CHECK_EQ(testhost_run_timers(f.host), 1);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NULL"), 0);
        fixture_close(&f);
}

/* A column of EXPLAIN's first row for a statement (the prepared
 * statement's text with values for its placeholders). */
static const char *explain_column(char *buf, size_t size, const char *db, const char *sql, const char *column) {
        MYSQL_RES *res;
        MYSQL_ROW r0;
        MYSQL_FIELD *fields;
        unsigned key_col = 0, n;
        char q[4096];

        snprintf(q, sizeof q, "EXPLAIN %s", sql);
        CHECK_EQ(mysql_select_db(root, db), 0);
        if (mysql_query(root, q) != 0) {
                fprintf(stderr, "EXPLAIN failed: %s\n%s\n", mysql_error(root), q);
                abort();
        }
        res = mysql_store_result(root);
        CHECK(res);
        n = mysql_num_fields(res);
        fields = mysql_fetch_fields(res);
        for (unsigned i = 0; i < n; i++)
                if (strcmp(fields[i].name, column) == 0)
                        key_col = i;
        r0 = mysql_fetch_row(res);
        CHECK(r0);
        snprintf(buf, size, "%s", r0[key_col] ? r0[key_col] : "(null)");
        mysql_free_result(res);
        return buf;
}

/* The key EXPLAIN says the server uses. */
static const char *explain_key(char *buf, size_t size, const char *db, const char *sql) {
        return explain_column(buf, size, db, sql, "key");
}

/* Every row of EXPLAIN as "table:type:key;". */
static const char *explain_all(char *buf, size_t size, const char *db, const char *sql) {
        MYSQL_RES *res;
        MYSQL_ROW row;
        MYSQL_FIELD *fields;
        unsigned c_table = 0, c_type = 0, c_key = 0, n;
        char q[8192];

        buf[0] = 0;
        snprintf(q, sizeof q, "EXPLAIN %s", sql);
        CHECK_EQ(mysql_select_db(root, db), 0);
        if (mysql_query(root, q) != 0) {
                fprintf(stderr, "EXPLAIN failed: %s\n%s\n", mysql_error(root), q);
                abort();
        }
        res = mysql_store_result(root);
        CHECK(res);
        n = mysql_num_fields(res);
        fields = mysql_fetch_fields(res);
        for (unsigned i = 0; i < n; i++) {
                if (strcmp(fields[i].name, "table") == 0)
                        c_table = i;
                if (strcmp(fields[i].name, "type") == 0)
                        c_type = i;
                if (strcmp(fields[i].name, "key") == 0)
                        c_key = i;
        }
        while ((row = mysql_fetch_row(res)))
                snprintf(buf + strlen(buf), size - strlen(buf), "%s:%s:%s;", row[c_table] ? row[c_table] : "",
                         row[c_type] ? row[c_type] : "", row[c_key] ? row[c_key] : "");
        mysql_free_result(res);
        return buf;
}

/* The rows the server read for a statement (Handler_read_* of the session). */
static int64_t handler_reads(const char *db, const char *sql) {
        MYSQL_RES *res;
        MYSQL_ROW row;
        int64_t n = 0;

        CHECK_EQ(mysql_select_db(root, db), 0);
        CHECK_EQ(mysql_query(root, "FLUSH STATUS"), 0);
        CHECK_EQ(mysql_query(root, sql), 0);
        res = mysql_store_result(root);
        if (res)
                mysql_free_result(res);
        CHECK_EQ(mysql_query(root, "SHOW SESSION STATUS LIKE 'Handler_read%'"), 0);
        res = mysql_store_result(root);
        CHECK(res);
        while ((row = mysql_fetch_row(res)))
                if (strcmp(row[0], "Handler_read_key") == 0 || strcmp(row[0], "Handler_read_next") == 0 ||
                    strcmp(row[0], "Handler_read_rnd_next") == 0 || strcmp(row[0], "Handler_read_prev") == 0)
                        n += strtoll(row[1], NULL, 10);
        mysql_free_result(res);
        return n;
}

/* ReadAT reads the active bans only: its plan goes through the (deleted_at,
 * until) index, and the rows the server reads are the same with 100,000
 * rows of history as with none. */
static void test_read_at_ignores_history(void) {
        fixture f;
        char db[64], plan[2048], sql[4096], at[64];
        const char *p;
        int64_t reads[2];

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, NULL));
        for (int i = 0; i < 300; i++) {
                char ip[32];
                snprintf(ip, sizeof ip, "10.0.%d.%d", i / 100, i % 100);
                CHECK_EQ(insert(&f, ip, "active", T0 + 3600 * SEC), 0);
        }
        CHECK_OK(plugin->flush(f.self));
        fmt_time(at, T0);
        /* the statement with its placeholders filled in */
        {
                const char *src = mydb_sql[MYDB_SQL_READ_AT];
                size_t o = 0;

                for (; *src && o < sizeof sql - 70; src++) {
                        if (*src == '?')
                                o += (size_t) snprintf(sql + o, sizeof sql - o, "'%s'", at);
                        else
                                sql[o++] = *src;
                }
                sql[o] = 0;
        }
        for (int k = 0; k < 2; k++) {
                if (k == 1) {
                        snprintf(plan, sizeof plan,
                                 "INSERT INTO ban_applications (created_at, updated_at, deleted_at, until, ip_text, reason)"
                                 " SELECT '%s', '%s', '%s', '%s', CONCAT('10.', seq), 'bulk' FROM seq_1_to_100000",
                                 at, at, at, at);
                        db_exec(db, "%s", plan);
                        db_exec(db, "ANALYZE TABLE ban_applications");
                }
                reads[k] = handler_reads(db, sql);
        }
        fprintf(stderr, "read_at: the server read %" PRId64 " rows without history, %" PRId64
                " with 100,000 rows of it\n", reads[0], reads[1]);
        CHECK(reads[1] <= reads[0] + reads[0] / 10);
        explain_all(plan, sizeof plan, db, sql);
        fprintf(stderr, "read_at plan: %s\n", plan);
        p = strstr(plan, "ban_applications:range:idx_ban_applications_deleted_at_until;");
        CHECK(p);
        CHECK(strstr(p + 1, "ban_applications:range:idx_ban_applications_deleted_at_until;"));
        for (p = plan; (p = strstr(p, "ban_applications:")); p++)
                CHECK(strncmp(p, "ban_applications:ALL", 20) != 0 && strncmp(p, "ban_applications:index", 22) != 0);
        CHECK_CONTAINS(plan, "b:eq_ref:PRIMARY");
        fixture_close(&f);
}

/* max_db_size on InnoDB's figures: above it the oldest history goes first
 * (one chunk of 250 a run, the figures lagging behind), the journal says
 * so, active bans stay. */
static void test_max_db_size(void) {
        fixture f;
        char db[64], t[64], ip[32];

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, NULL));
        fixture_close(&f);
        fmt_time(t, T0 - 3600 * SEC);
        db_exec(db, "INSERT INTO signal_occurences (id, created_at, updated_at, scenario)"
                    " SELECT seq, '%s', '%s', 'bulk' FROM seq_1_to_3000", t, t);
        db_exec(db, "INSERT INTO event_sequences (created_at, updated_at, signal_occurence_id, serialized)"
                    " SELECT '%s', '%s', seq, REPEAT('x', 2000) FROM seq_1_to_3000", t, t);
        db_exec(db, "INSERT INTO ban_applications (id, created_at, updated_at, deleted_at, until, ip_text, reason,"
                    " signal_occurence_id) SELECT seq, '%s', '%s', '%s', '%s', CONCAT('10.', seq), 'bulk', seq"
                    " FROM seq_1_to_3000", t, t, t, t);
        db_exec(db, "ANALYZE TABLE ban_applications, signal_occurences, event_sequences");
        CHECK(q_int(db, "SELECT SUM(data_length + index_length) FROM information_schema.TABLES"
                        " WHERE table_schema = DATABASE()") > 2 << 20);

        CHECK_OK(fixture_open(&f, db, "flush", "false", "max_records", "0", "max_records_age", "0",
                              "max_db_size", "1MiB", NULL));
        CHECK_OK(plugin->start_autocommit(f.self));
        for (int i = 0; i < 5; i++) {
                snprintf(ip, sizeof ip, "192.0.2.%d", i);
                CHECK_EQ(insert(&f, ip, "active", T0 + 3600 * SEC), 0);
        }
        CHECK_OK(plugin->flush(f.self));
        advance(&f, 60 * SEC);
        CHECK_EQ(testhost_run_timers(f.host), 1);
        CHECK_OK(plugin->flush(f.self));
        /* the oldest 250 went, and only they */
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE reason = 'bulk'"), 2750);
        CHECK_EQ(q_int(db, "SELECT MIN(id) FROM ban_applications WHERE reason = 'bulk'"), 251);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences WHERE id <= 250"), 0);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM event_sequences WHERE signal_occurence_id <= 250"), 0);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE reason = 'active'"), 5);
        CHECK_CONTAINS(testhost_log(f.host), "max_db_size 1.0 MiB reached");
        CHECK_CONTAINS(testhost_log(f.host), "removed the oldest history first, 250 ended ban(s)");
        fixture_close(&f);
}

/* The soft-delete lookup must go through the (ip_text, deleted_at) index,
 * never through a deleted_at index (which would scan every active ban). */
static void test_query_plans(void) {
        fixture f;
        char db[64], key[128];

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, NULL));
        for (int i = 0; i < 300; i++) {
                char ip[32];
                snprintf(ip, sizeof ip, "10.0.%d.%d", i / 100, i % 100);
                CHECK_EQ(insert(&f, ip, "x", T0 + 3600 * SEC), 0);
        }
        CHECK_OK(plugin->flush(f.self));
        /* with statistics that would tempt the planner, too */
        db_exec(db, "CREATE INDEX idx_tempting ON ban_applications (deleted_at)");
        db_exec(db, "ANALYZE TABLE ban_applications, signal_occurences, event_sequences");

        CHECK_STREQ(explain_key(key, sizeof key, db,
                                "UPDATE ban_applications FORCE INDEX (" MYDB_IP_TEXT_INDEX ") SET deleted_at = NOW(6),"
                                " updated_at = NOW(6) WHERE ip_text = '10.0.1.1' AND deleted_at IS NULL AND id < 1000"),
                    MYDB_IP_TEXT_INDEX);
        CHECK_STREQ(explain_key(key, sizeof key, db,
                                "UPDATE ban_applications FORCE INDEX (" MYDB_IP_TEXT_INDEX ") SET deleted_at = NOW(6),"
                                " updated_at = NOW(6) WHERE ip_text = '10.0.1.1' AND deleted_at IS NULL"),
                    MYDB_IP_TEXT_INDEX);
        /* without the hint, the server picks it by itself too */
        CHECK_STREQ(explain_key(key, sizeof key, db,
                                "SELECT id FROM ban_applications WHERE ip_text = '10.0.1.1' AND deleted_at IS NULL"),
                    MYDB_IP_TEXT_INDEX);
        CHECK_STREQ(explain_key(key, sizeof key, db,
                                "SELECT 1 FROM ban_applications WHERE deleted_at IS NULL AND until < NOW(6) LIMIT 1"),
                    "idx_ban_applications_deleted_at_until");
        {
                char extra[256];
                CHECK_STREQ(explain_key(key, sizeof key, db,
                                        "UPDATE ban_applications FORCE INDEX (idx_ban_applications_deleted_at_until)"
                                        " SET deleted_at = NOW(6), updated_at = NOW(6)"
                                        " WHERE deleted_at IS NULL AND until < NOW(6) ORDER BY deleted_at, until, id LIMIT 1000"),
                            "idx_ban_applications_deleted_at_until");
                explain_column(extra, sizeof extra, db,
                               "UPDATE ban_applications FORCE INDEX (idx_ban_applications_deleted_at_until)"
                               " SET deleted_at = NOW(6), updated_at = NOW(6)"
                               " WHERE deleted_at IS NULL AND until < NOW(6) ORDER BY deleted_at, until, id LIMIT 1000",
                               "Extra");
                CHECK(!strstr(extra, "filesort"));
                CHECK(strstr(mydb_sql[MYDB_SQL_EXPIRE], "ORDER BY deleted_at, until, id LIMIT ?"));
        }
        CHECK_STREQ(explain_key(key, sizeof key, db, "DELETE FROM event_sequences WHERE signal_occurence_id = 7"),
                    "idx_event_sequences_signal_occurence_id");
        CHECK_STREQ(explain_key(key, sizeof key, db, "DELETE FROM ban_applications WHERE signal_occurence_id = 7"),
                    "idx_ban_applications_signal_occurence_id");
        db_exec(db, "DROP INDEX idx_tempting ON ban_applications");

        /* the index gone, the statements refuse to prepare instead of scanning */
        db_exec(db, "DROP INDEX " MYDB_IP_TEXT_INDEX " ON ban_applications");
        fixture_close(&f);
        CHECK_EQ(fixture_open(&f, db, NULL), -EBADMSG);
        CHECK_CONTAINS(testhost_last_error(f.host), "Key '" MYDB_IP_TEXT_INDEX "' doesn't exist");
        fixture_close(&f);
}

/* ------------------------------------------------------------ tests: TLS */

static bool have_tls;

/* A CA, a server certificate for 127.0.0.1 and localhost signed by it, and
 * another CA that signed nothing, made with the openssl tool. */
static bool make_certificates(void) {
        char cmd[2048];

        snprintf(cmd, sizeof cmd,
                 "command -v openssl >/dev/null || exit 77; (cd '%s' &&"
                 " openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2"
                 "   -subj '/CN=Spillway test CA' &&"
                 " openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj '/CN=localhost' &&"
                 " printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > ext.cnf &&"
                 " openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem"
                 "   -days 2 -extfile ext.cnf &&"
                 " openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 2"
                 "   -subj '/CN=Other CA')",
                 tmpdir);
        snprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), " >'%s/openssl.log' 2>&1", tmpdir);
        return system(cmd) == 0;
}

static void test_tls(void) {
        fixture f;
        char db[64], port[16], ca[300], other[300];

        if (!have_tls) {
                fprintf(stderr, "test_tls: SKIP: openssl not found; TLS not tested (main exits 77)\n");
                return;
        }
        new_db(db, sizeof db);
        snprintf(port, sizeof port, "%d", srv.port);
        snprintf(ca, sizeof ca, "%s/ca.pem", tmpdir);
        snprintf(other, sizeof other, "%s/other.pem", tmpdir);
        db_exec(NULL, "CREATE USER 'tlsuser'@'127.0.0.1' IDENTIFIED BY '" PASSWORD "' REQUIRE SSL");
        db_exec(NULL, "GRANT ALL PRIVILEGES ON %s.* TO 'tlsuser'@'127.0.0.1'", db);

        /* the user must use TLS: with it (and the server verified) it works */
        CHECK_OK(fixture_open(&f, db, "db_host", "127.0.0.1", "db_port", port, "db_username", "tlsuser",
                              "tls_ca", ca, NULL));
        CHECK_EQ(insert(&f, "192.0.2.1", "over tls", T0 + 3600 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(read_at(&f, T0).n, 1);
        fixture_close(&f);

        /* without TLS the server refuses the user */
        CHECK_EQ(fixture_open(&f, db, "db_host", "127.0.0.1", "db_port", port, "db_username", "tlsuser", NULL),
                 -EACCES);
        CHECK_CONTAINS(testhost_last_error(f.host), "Access denied");
        fixture_close(&f);

        /* a certificate signed by another CA is refused */
        CHECK(fixture_open(&f, db, "db_host", "127.0.0.1", "db_port", port, "db_username", "tlsuser",
                           "tls_ca", other, NULL) < 0);
        CHECK_CONTAINS(testhost_last_error(f.host), "mysql://tlsuser@127.0.0.1:");
        CHECK_CONTAINS(testhost_last_error(f.host), "TLS failed: check that the server has TLS enabled, that tls_ca");
        CHECK_CONTAINS(testhost_last_error(f.host), "the backend is not started");
        fixture_close(&f);

        /* tls without tls_ca: the system's CAs do not know ours */
        CHECK(fixture_open(&f, db, "db_host", "127.0.0.1", "db_port", port, "db_username", "tlsuser",
                           "tls", "true", NULL) < 0);
        CHECK_CONTAINS(testhost_last_error(f.host), "TLS failed");
        fixture_close(&f);
}

/* ------------------------------------------------------------ main */


/* ------------------------------------------------------------ main */


/* ------------------------------------------------------------ tests: several hosts */

static int64_t q_int_on(MYSQL *m, const char *db, const char *sql) {
        MYSQL_RES *res;
        MYSQL_ROW r0;
        int64_t v;

        if (mysql_select_db(m, db) != 0 || mysql_query(m, sql) != 0 || !(res = mysql_store_result(m))) {
                fprintf(stderr, "query failed: %s\n%s\n", mysql_error(m), sql);
                abort();
        }
        r0 = mysql_fetch_row(res);
        v = r0 && r0[0] ? strtoll(r0[0], NULL, 10) : -1;
        mysql_free_result(res);
        return v;
}

/* db_host lists two servers: the first dies under an open batch, the
 * backend moves to the second and the batch is inserted there (nothing
 * acknowledged is lost); once the first is back, a flush after
 * failback_interval moves back. Each switch is a journal entry; the
 * errors behind the retries are logged with the server's code and kept
 * per kind in the status. */
static void test_failover(void) {
        mariadb_server srv2;
        MYSQL *root2;
        char dir[320], db[64], hosts[700], sql[256];
        fixture f;
        int r;

        snprintf(dir, sizeof dir, "%s/server2", tmpdir);
        r = mariadb_start(&srv2, dir, false, NULL);
        CHECK_EQ(r, 0);
        root2 = mariadb_connect_root(&srv2, NULL);
        CHECK(root2);
        new_db(db, sizeof db);
        snprintf(sql, sizeof sql, "CREATE DATABASE %s", db);
        CHECK_EQ(mysql_query(root2, sql), 0);
        CHECK_EQ(mysql_query(root2, "CREATE USER 'spillway'@'localhost' IDENTIFIED BY '" PASSWORD "'"), 0);
        snprintf(sql, sizeof sql, "GRANT ALL PRIVILEGES ON %s.* TO 'spillway'@'localhost'", db);
        CHECK_EQ(mysql_query(root2, sql), 0);

        snprintf(hosts, sizeof hosts, " %s , %s", srv.socket, srv2.socket);
        CHECK_OK(fixture_open(&f, db, "db_host", hosts, "failback_interval", "1s", "connect_timeout", "1s", NULL));
        CHECK_STREQ(testhost_status(f.host, "host"), srv.socket);
        CHECK_EQ(insert(&f, "192.0.2.1", "first", T0 + 3600 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 1);

        /* the preferred server dies under an open batch of two */
        CHECK_EQ(insert(&f, "192.0.2.2", "batch", T0 + 3600 * SEC), 0);
        CHECK_EQ(insert(&f, "192.0.2.3", "batch", T0 + 3600 * SEC), 0);
        CHECK_OK(mariadb_kill(&srv));
        /* multi-row batches: the flush writes them and finds it gone */
        CHECK_EQ(insert(&f, "192.0.2.4", "batch", T0 + 3600 * SEC), 0);
        CHECK_EQ(plugin->flush(f.self), -EAGAIN);
        CHECK_CONTAINS(testhost_last_error(f.host), "it will be inserted again");
        /* the daemon inserts the whole batch again: on the second host at once */
        CHECK_EQ(insert(&f, "192.0.2.2", "batch", T0 + 3600 * SEC), 0);
        CHECK_STREQ(testhost_status(f.host, "host"), srv2.socket);
        CHECK_CONTAINS(testhost_log(f.host), "switched from host");
        CHECK_EQ(insert(&f, "192.0.2.3", "batch", T0 + 3600 * SEC), 0);
        CHECK_EQ(insert(&f, "192.0.2.4", "batch", T0 + 3600 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int_on(root2, db, "SELECT COUNT(*) FROM signal_occurences"), 3);
        CHECK_EQ(q_int_on(root2, db, "SELECT COUNT(DISTINCT source_ip) FROM signal_occurences"), 3);
        /* the error behind the retry: logged with its code, kept as the flush's */
        CHECK_CONTAINS(testhost_log(f.host), "server error during flush");
        CHECK(testhost_status(f.host, "last_error_flush"));
        CHECK_CONTAINS(testhost_status(f.host, "last_error_flush"), "(error 20");
        CHECK(testhost_status(f.host, "last_error_connect"));
        CHECK_CONTAINS(testhost_status(f.host, "last_error_connect"), "(error 2002)");
        CHECK_STREQ(testhost_status(f.host, "host_switches"), "1");

        /* back to the preferred host while idle: the failback timer, not
         * before failback_interval */
        CHECK_OK(plugin->start_autocommit(f.self));
        CHECK_EQ(mariadb_restart(&srv), 0);
        mysql_close(root);
        root = root_connect();
        usleep(1100 * 1000);
        advance(&f, 1 * SEC);
        testhost_run_timers(f.host);
        CHECK_STREQ(testhost_status(f.host, "host"), srv.socket);
        CHECK_CONTAINS(testhost_log(f.host), "the preferred host is back");
        CHECK_STREQ(testhost_status(f.host, "host_switches"), "2");
        CHECK_EQ(insert(&f, "192.0.2.5", "back", T0 + 3600 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 2);
        fixture_close(&f);

        /* row by row: the next insert finds the host gone; after a flush,
         * back to the preferred host */
        snprintf(sql, sizeof sql, "DROP DATABASE %s", db);
        CHECK_EQ(mysql_query(root2, sql), 0);
        snprintf(sql, sizeof sql, "CREATE DATABASE %s", db);
        CHECK_EQ(mysql_query(root2, sql), 0);
        CHECK_OK(fixture_open(&f, db, "db_host", hosts, "failback_interval", "1s", "connect_timeout", "1s",
                              "multi_row", "false", NULL));
        CHECK_EQ(insert(&f, "192.0.2.2", "batch", T0 + 3600 * SEC), 0);
        CHECK_OK(mariadb_kill(&srv));
        CHECK_EQ(insert(&f, "192.0.2.4", "batch", T0 + 3600 * SEC), -EAGAIN);
        CHECK_EQ(insert(&f, "192.0.2.4", "batch", T0 + 3600 * SEC), 0);
        CHECK_STREQ(testhost_status(f.host, "host"), srv2.socket);
        CHECK_CONTAINS(testhost_log(f.host), "server error during insert");
        CHECK_CONTAINS(testhost_status(f.host, "last_error_insert"), "(error 20");
        CHECK_EQ(plugin->flush(f.self), -EAGAIN);
        CHECK_EQ(insert(&f, "192.0.2.2", "batch", T0 + 3600 * SEC), 0);
        CHECK_EQ(insert(&f, "192.0.2.4", "batch", T0 + 3600 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int_on(root2, db, "SELECT COUNT(*) FROM signal_occurences"), 2);
        CHECK_EQ(mariadb_restart(&srv), 0);
        mysql_close(root);
        root = root_connect();
        usleep(1100 * 1000);
        CHECK_OK(plugin->flush(f.self));
        CHECK_STREQ(testhost_status(f.host, "host"), srv.socket);
        fixture_close(&f);

        /* a bad entry is refused, naming it */
        CHECK_EQ(fixture_open(&f, db, "db_host", "127.0.0.1:0", NULL), -EINVAL);
        CHECK_CONTAINS(testhost_last_error(f.host), "127.0.0.1:0");
        fixture_close(&f);

        mysql_close(root2);
        CHECK_OK(mariadb_stop(&srv2));
}

/* Expiry and GC run on one host, the lease holder; the lease moves at once
 * after a clean stop, and within lease_ttl after a holder stops renewing
 * (a host that died). */
static void test_lease(void) {
        fixture a, b, c;
        char db[64];
        struct timespec t0, t1;
        double waited;

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&a, db, "lease_ttl", "2s", "max_records", "0", "max_records_age", "0", NULL));
        CHECK_OK(fixture_open(&b, db, "lease_ttl", "2s", "max_records", "0", "max_records_age", "0", NULL));
        CHECK_OK(plugin->start_autocommit(a.self));
        CHECK_OK(plugin->start_autocommit(b.self));
        CHECK_EQ(insert(&a, "192.0.2.1", "expires", T0 + 10 * SEC), 0);
        CHECK_OK(plugin->flush(a.self));

        /* a takes the lease and expires the ban */
        advance(&a, 20 * SEC);
        CHECK_EQ(testhost_run_timers(a.host), 1);
        CHECK_STREQ(testhost_status(a.host, "lease"), "held");
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NULL"), 0);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM " MYDB_LEASE_TABLE), 1);

        /* b finds work but not the lease: it skips */
        CHECK_EQ(insert(&b, "192.0.2.2", "expires", T0 + 10 * SEC), 0);
        CHECK_OK(plugin->flush(b.self));
        advance(&b, 20 * SEC);
        CHECK_EQ(testhost_run_timers(b.host), 1);
        CHECK_STREQ(testhost_status(b.host, "lease"), "not held");
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NULL"), 1);

        /* a stops cleanly: b takes over at its next tick */
        fixture_close(&a);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM " MYDB_LEASE_TABLE), 0);
        advance(&b, 2 * SEC);
        CHECK_EQ(testhost_run_timers(b.host), 1);
        CHECK_STREQ(testhost_status(b.host, "lease"), "held");
        CHECK_CONTAINS(testhost_log(b.host), "took the background-work lease");
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NULL"), 0);

        /* b stops renewing (as a dead host): c takes over once it expired */
        CHECK_OK(fixture_open(&c, db, "lease_ttl", "2s", "max_records", "0", "max_records_age", "0", NULL));
        CHECK_OK(plugin->start_autocommit(c.self));
        CHECK_EQ(insert(&c, "192.0.2.3", "expires", T0 + 10 * SEC), 0);
        CHECK_OK(plugin->flush(c.self));
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int i = 0;; i++) {
                advance(&c, 2 * SEC);
                CHECK_EQ(testhost_run_timers(c.host), 1);
                if (testhost_status(c.host, "lease") && strcmp(testhost_status(c.host, "lease"), "held") == 0)
                        break;
                CHECK(i < 100);
                usleep(100 * 1000);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        waited = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
        CHECK(waited < 3.5);
        CHECK(waited > 0.3 || getenv("SLOW"));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NULL"), 0);
        fixture_close(&b);
        fixture_close(&c);
}

int main(int argc, char **argv) {
        char dir[300], extra[1024];
        void *h = bandb_suite_load(&suite, argc, argv);
        int r;

        plugin = suite.plugin;
        CHECK(mkdtemp(tmpdir));
        bandb_suite_run_static(&suite);
        test_time_conversion();

        snprintf(dir, sizeof dir, "%s/server", tmpdir);
        have_tls = make_certificates();
        if (have_tls)
                snprintf(extra, sizeof extra, "--ssl-ca=%s/ca.pem --ssl-cert=%s/server.pem --ssl-key=%s/server.key",
                         tmpdir, tmpdir, tmpdir);
        r = mariadb_start(&srv, dir, true, have_tls ? extra : NULL);
        if (r != 0) {
                fprintf(stderr, "SKIP: %s; the tests against a server did not run\n",
                        r == MARIADB_SKIP ? "the MariaDB server is not installed"
                                          : "the MariaDB server did not start (see its log above)");
                bandb_remove_tree(tmpdir);
                return 77;
        }
        root = root_connect();
        db_exec(NULL, "CREATE USER 'spillway'@'localhost' IDENTIFIED BY '" PASSWORD "'");
        db_exec(NULL, "CREATE USER 'spillway'@'127.0.0.1' IDENTIFIED BY '" PASSWORD "'");
        db_exec(NULL, "CREATE USER 'spwadmin'@'localhost' IDENTIFIED BY '" PASSWORD "'");
        db_exec(NULL, "GRANT ALL PRIVILEGES ON *.* TO 'spwadmin'@'localhost'");

        BANDB_RUN(test_config);
        BANDB_RUN(test_connect_errors);
        BANDB_RUN(test_schema_created);
        BANDB_RUN(test_migrate_from_crowdsec);
        BANDB_RUN(test_concurrent_creation);
        BANDB_RUN(test_version_table_gets_key);
        BANDB_RUN(test_migrate_1_to_2);
        BANDB_RUN(test_migrate_2_to_3);
        bandb_suite_run(&suite);
        BANDB_RUN(test_long_strings_cut);
        BANDB_RUN(test_multi_row_batches);
        BANDB_RUN(test_lock_wait_is_retry);
        BANDB_RUN(test_deadlock_loses_batch);
        BANDB_RUN(test_timer_errors);
        BANDB_RUN(test_query_plans);
        BANDB_RUN(test_read_at_ignores_history);
        BANDB_RUN(test_max_db_size);
        BANDB_RUN(test_connection_killed);
        BANDB_RUN(test_two_hosts);
        BANDB_RUN(test_busy_hosts);
        BANDB_RUN(test_tls);
        BANDB_RUN(test_server_restart);
        BANDB_RUN(test_lease);
        BANDB_RUN(test_failover);

        mysql_close(root);
        CHECK_OK(mariadb_stop(&srv));
        bandb_remove_tree(tmpdir);
        dlclose(h);
        return have_tls ? 0 : 77;   /* TLS untested: skipped, not passed */
}
