/* SPDX-License-Identifier: MIT */
/*
 * The shared ban database's SQL: table definitions, the migration from each
 * older version, every statement the plugin prepares, and the time
 * conversion. Shared by the plugin, its tests and its benchmark, so the
 * benchmark measures exactly the plugin's rows.
 *
 * Invariants:
 *   - MySQL has no transactional DDL, so a migration cannot be one
 *     transaction as SQLite's is. It takes no lock either: GET_LOCK is per
 *     node on a Galera cluster, so hosts starting together on different
 *     nodes would all "hold" it. Instead every step can be run by any
 *     number of hosts at once (CREATE ... IF NOT EXISTS; the CrowdSec copy
 *     is swapped in by one atomic RENAME that only one host can win), the
 *     version table has a primary key so it holds one row whoever writes
 *     it, the version row is written last (a migration cut short is
 *     finished by the next start), and a pass that lost a race (deadlock,
 *     Galera certification failure, a table swapped under it) is run
 *     again after a random pause: the next pass finds the work done.
 *   - Migrations only add: CrowdSec v0.3's tables are copied into new tables
 *     of our layout, then swapped in with one atomic RENAME TABLE that keeps
 *     CrowdSec's under the name TABLE_crowdsec_v03 (an operator drops them
 *     once satisfied). A table counts as ours when its created_at keeps
 *     microseconds: gorm's DATETIME does not.
 *   - Times are stored in UTC; every connection sets time_zone = '+00:00' so
 *     that NOW() and friends agree, but the plugin binds all times itself.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "schema.h"
#include "spwp-time.h"

/* ------------------------------------------------------------ errors */

int mydb_error_from_conn(mydb_error *e, MYSQL *conn, const char *doing) {
        e->code = mysql_errno(conn);
        snprintf(e->msg, sizeof e->msg, "%s", mysql_error(conn));
        e->doing = doing;
        return -1;
}

int mydb_error_from_stmt(mydb_error *e, MYSQL_STMT *st, const char *doing) {
        e->code = mysql_stmt_errno(st);
        snprintf(e->msg, sizeof e->msg, "%s", mysql_stmt_error(st));
        e->doing = doing;
        return -1;
}

/* ------------------------------------------------------------ time */

#define USEC_PER_SEC INT64_C(1000000)
/* DATETIME's range: 1000-01-01 00:00:00 .. 9999-12-31 23:59:59.999999 UTC */
#define TIME_MIN (INT64_C(-30610224000) * USEC_PER_SEC)
#define TIME_MAX (INT64_C(253402300800) * USEC_PER_SEC - 1)

void mydb_time_to_mysql(spw_usec_t t, MYSQL_TIME *ret) {
        spwp_tm tm;

        if (t < TIME_MIN)
                t = TIME_MIN;
        if (t > TIME_MAX)
                t = TIME_MAX;
        spwp_time_split(t, &tm);

        memset(ret, 0, sizeof *ret);
        ret->year = (unsigned) tm.year;
        ret->month = tm.month;
        ret->day = tm.day;
        ret->hour = tm.hour;
        ret->minute = tm.minute;
        ret->second = tm.second;
        ret->second_part = tm.usec;
        ret->time_type = MYSQL_TIMESTAMP_DATETIME;
}

int mydb_time_from_mysql(const MYSQL_TIME *t, spw_usec_t *ret) {
        if (t->time_type != MYSQL_TIMESTAMP_DATETIME && t->time_type != MYSQL_TIMESTAMP_DATE)
                return -EINVAL;
        if (!spwp_date_valid(t->year, t->month, t->day) || t->hour > 23 || t->minute > 59 || t->second > 59 ||
            t->second_part >= (unsigned long) USEC_PER_SEC || t->neg)
                return -EINVAL;
        *ret = spwp_time_join(&(spwp_tm) { t->year, t->month, t->day, t->hour, t->minute, t->second,
                                           (unsigned) t->second_part });
        return 0;
}

/* ------------------------------------------------------------ tables */

#define TABLE_OPTIONS " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC"

/* gorm's MySQL types for CrowdSec v0.3's structs (gorm.Model's id, the
 * three times, then the struct's fields), with the changes in schema.h. The
 * table name is {T}: migrations build copies under other names (and copy
 * from {S}). */
static const char ddl_signals[] =
        "CREATE TABLE IF NOT EXISTS `{T}` ("
        "`id` int unsigned NOT NULL AUTO_INCREMENT,"
        "`created_at` datetime(6) NULL,`updated_at` datetime(6) NULL,`deleted_at` datetime(6) NULL,"
        "`map_key` varchar(255),`scenario` varchar(255),`bucket_id` varchar(255),`alert_message` varchar(255),"
        "`events_count` int,`start_at` datetime(6) NULL,`stop_at` datetime(6) NULL,"
        "`source_ip` varchar(255),`source_range` varchar(255),`source_autonomous_system_number` varchar(255),"
        "`source_autonomous_system_organization` varchar(255),`source_country` varchar(255),"
        "`source_latitude` double,`source_longitude` double,`dest_ip` varchar(255),`capacity` int,"
        "`leak_speed` bigint,`reprocess` boolean,"
        "PRIMARY KEY (`id`))" TABLE_OPTIONS;

static const char ddl_events[] =
        "CREATE TABLE IF NOT EXISTS `{T}` ("
        "`id` int unsigned NOT NULL AUTO_INCREMENT,"
        "`created_at` datetime(6) NULL,`updated_at` datetime(6) NULL,`deleted_at` datetime(6) NULL,"
        "`time` datetime(6) NULL,`source_ip` varchar(255),`source_range` varchar(255),"
        "`source_autonomous_system_number` varchar(255),`source_autonomous_system_organization` varchar(255),"
        "`source_country` varchar(255),`signal_occurence_id` int unsigned,`serialized` mediumtext,"
        "PRIMARY KEY (`id`),"
        "KEY `idx_event_sequences_signal_occurence_id` (`signal_occurence_id`))" TABLE_OPTIONS;

/* (ip_text, deleted_at): the soft-delete of a target's active bans and
 * Delete; (deleted_at, until): expiry, DeleteAll, GC by age, ReadAT;
 * signal_occurence_id: undoing a failed insert and the GC's orphan checks. */
static const char ddl_bans[] =
        "CREATE TABLE IF NOT EXISTS `{T}` ("
        "`id` int unsigned NOT NULL AUTO_INCREMENT,"
        "`created_at` datetime(6) NULL,`updated_at` datetime(6) NULL,`deleted_at` datetime(6) NULL,"
        "`measure_source` varchar(255),`measure_type` varchar(255),`measure_extra` varchar(255),"
        "`until` datetime(6) NULL,`start_ip` varbinary(16),`end_ip` varbinary(16),"
        "`target_cn` varchar(255),`target_as` bigint,`target_as_name` varchar(255),"
        "`ip_text` varchar(255) COLLATE utf8mb4_bin,`reason` varchar(255),`scenario` varchar(255),"
        "`signal_occurence_id` int unsigned,"
        "PRIMARY KEY (`id`),"
        "KEY `" MYDB_IP_TEXT_INDEX "` (`ip_text`,`deleted_at`),"
        "KEY `idx_ban_applications_deleted_at_until` (`deleted_at`,`until`),"
        "KEY `idx_ban_applications_signal_occurence_id` (`signal_occurence_id`))" TABLE_OPTIONS;

/* Copying CrowdSec's rows: its local times to UTC (@spw_offset seconds east
 * of UTC), gorm's zero values to NULL, uint32 addresses to ::ffff:a.b.c.d. */
#define T(c) "NULLIF(`" c "`, '0000-00-00 00:00:00') - INTERVAL @spw_offset SECOND"
#define S(c) "NULLIF(`" c "`, '')"
#define IP(c) "IF(`" c "` IS NULL, NULL, CONCAT(X'00000000000000000000FFFF', UNHEX(LPAD(HEX(`" c "`), 8, '0'))))"

static const char copy_signals[] =
        "INSERT INTO `{T}` (id, created_at, updated_at, deleted_at, map_key, scenario, bucket_id, alert_message,"
        " events_count, start_at, stop_at, source_ip, source_range, source_autonomous_system_number,"
        " source_autonomous_system_organization, source_country, source_latitude, source_longitude, dest_ip,"
        " capacity, leak_speed, reprocess)"
        " SELECT id, " T("created_at") ", " T("updated_at") ", " T("deleted_at") ", " S("map_key") ", "
        S("scenario") ", " S("bucket_id") ", " S("alert_message") ", events_count, " T("start_at") ", "
        T("stop_at") ", " S("source_ip") ", " S("source_range") ", " S("source_autonomous_system_number") ", "
        S("source_autonomous_system_organization") ", " S("source_country") ", source_latitude,"
        " source_longitude, " S("dest_ip") ", capacity, leak_speed, reprocess FROM `{S}`";

static const char copy_events[] =
        "INSERT INTO `{T}` (id, created_at, updated_at, deleted_at, time, source_ip, source_range,"
        " source_autonomous_system_number, source_autonomous_system_organization, source_country,"
        " signal_occurence_id, serialized)"
        " SELECT id, " T("created_at") ", " T("updated_at") ", " T("deleted_at") ", " T("time") ", "
        S("source_ip") ", " S("source_range") ", " S("source_autonomous_system_number") ", "
        S("source_autonomous_system_organization") ", " S("source_country") ", signal_occurence_id,"
        " serialized FROM `{S}`";

static const char copy_bans[] =
        "INSERT INTO `{T}` (id, created_at, updated_at, deleted_at, measure_source, measure_type, measure_extra,"
        " until, start_ip, end_ip, target_cn, target_as, target_as_name, ip_text, reason, scenario,"
        " signal_occurence_id)"
        " SELECT id, " T("created_at") ", " T("updated_at") ", " T("deleted_at") ", " S("measure_source") ", "
        S("measure_type") ", " S("measure_extra") ", " T("until") ", " IP("start_ip") ", " IP("end_ip") ", "
        S("target_cn") ", NULLIF(target_as, 0), " S("target_as_name") ", " S("ip_text") ", " S("reason") ", "
        S("scenario") ", signal_occurence_id FROM `{S}`";

#undef T
#undef S
#undef IP

static const struct {
        const char *name;
        const char *ddl;
        const char *copy;
} tables[] = {
        { "signal_occurences", ddl_signals, copy_signals },
        { "event_sequences", ddl_events, copy_events },
        { "ban_applications", ddl_bans, copy_bans },
};
#define N_TABLES (sizeof tables / sizeof tables[0])

/* ------------------------------------------------------------ text-protocol helpers */

static int exec(MYSQL *c, mydb_error *e, const char *doing, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static int exec(MYSQL *c, mydb_error *e, const char *doing, const char *fmt, ...) {
        char sql[4096];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(sql, sizeof sql, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t) n >= sizeof sql) {
                e->code = 0;
                snprintf(e->msg, sizeof e->msg, "statement too long");
                e->doing = doing;
                return -1;
        }
        if (mysql_real_query(c, sql, (unsigned long) n) != 0)
                return mydb_error_from_conn(e, c, doing);
        /* statements here return no rows, except SELECTs the caller reads */
        return 0;
}

/* The first column of the first row of a query, as a long; *found is false
 * for no row or NULL. */
static int query_long(MYSQL *c, mydb_error *e, const char *doing, const char *sql, long *ret, bool *found) {
        MYSQL_RES *res;
        MYSQL_ROW row;

        *found = false;
        if (mysql_real_query(c, sql, (unsigned long) strlen(sql)) != 0)
                return mydb_error_from_conn(e, c, doing);
        res = mysql_store_result(c);
        if (!res)
                return mysql_errno(c) ? mydb_error_from_conn(e, c, doing) : 0;
        row = mysql_fetch_row(res);
        if (row && row[0]) {
                *ret = strtol(row[0], NULL, 10);
                *found = true;
        }
        mysql_free_result(res);
        return 0;
}

/* Run a statement template with {T} (and {S}) replaced by table names. */
static int exec_tmpl(MYSQL *c, mydb_error *e, const char *doing, const char *tmpl, const char *t, const char *src) {
        char sql[4096];
        size_t o = 0;

        for (const char *p = tmpl; *p && o + 1 < sizeof sql; p++) {
                const char *with = strncmp(p, "{T}", 3) == 0 ? t : strncmp(p, "{S}", 3) == 0 ? src : NULL;

                if (with) {
                        o += (size_t) snprintf(sql + o, sizeof sql - o, "%s", with);
                        p += 2;
                } else
                        sql[o++] = *p;
        }
        if (o + 1 >= sizeof sql) {
                e->code = 0;
                snprintf(e->msg, sizeof e->msg, "statement too long");
                e->doing = doing;
                return -1;
        }
        sql[o] = 0;
        return exec(c, e, doing, "%s", sql);
}

/* ------------------------------------------------------------ migration */

/* Which of the three tables exist, and which of those are ours. */
typedef struct layout {
        bool exists[N_TABLES];
        bool ours[N_TABLES];
} layout;

static int read_layout(MYSQL *c, layout *l, mydb_error *e) {
        /* One statement: another host creating the tables between two reads
         * would make ours look like a foreign table without created_at. */
        static const char sql[] =
                "SELECT t.TABLE_NAME, c.DATETIME_PRECISION FROM information_schema.TABLES AS t"
                " LEFT JOIN information_schema.COLUMNS AS c ON c.TABLE_SCHEMA = t.TABLE_SCHEMA"
                "  AND c.TABLE_NAME = t.TABLE_NAME AND c.COLUMN_NAME = 'created_at'"
                " WHERE t.TABLE_SCHEMA = DATABASE()"
                " AND t.TABLE_NAME IN ('signal_occurences', 'event_sequences', 'ban_applications')";
        MYSQL_RES *res;
        MYSQL_ROW row;

        memset(l, 0, sizeof *l);
        if (mysql_real_query(c, sql, sizeof sql - 1) != 0 || !(res = mysql_store_result(c)))
                return mydb_error_from_conn(e, c, "reading the tables' layout from information_schema");
        /* a table without created_at is no CrowdSec table: the copy says which column is missing */
        while ((row = mysql_fetch_row(res)))
                for (size_t i = 0; i < N_TABLES; i++)
                        if (row[0] && strcmp(row[0], tables[i].name) == 0) {
                                l->exists[i] = true;
                                l->ours[i] = row[1] && strtol(row[1], NULL, 10) == 6;
                        }
        mysql_free_result(res);
        return 0;
}

int mydb_schema_version(MYSQL *c, int *version, mydb_error *e) {
        long v = 0;
        bool found;

        if (query_long(c, e, "reading the schema version", "SELECT MAX(version) FROM " MYDB_VERSION_TABLE, &v,
                       &found) < 0) {
                if (e->code == 1146) { /* ER_NO_SUCH_TABLE: version 0 */
                        *version = 0;
                        return 0;
                }
                return -EIO;
        }
        *version = found ? (int) v : 0;
        return 0;
}

/* Copy the CrowdSec tables (those existing and not ours) into new tables of
 * our layout, then swap them in with one RENAME TABLE. */
static int copy_crowdsec(MYSQL *c, const layout *l, long utc_offset, bool *copied, mydb_error *e) {
        char rename[1024] = "RENAME TABLE";
        size_t o = strlen(rename);
        int r = 0;

        *copied = false;
        /* gorm wrote zero dates and '' where we write NULL: relax the mode for the copy */
        if (exec(c, e, "preparing the copy of CrowdSec's tables",
                 "SET @spw_saved_mode = @@SESSION.sql_mode, SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION',"
                 " @spw_offset = %ld", utc_offset) < 0)
                return -1;
        for (size_t i = 0; i < N_TABLES && r == 0; i++) {
                char tmp[96];

                if (!l->exists[i] || l->ours[i])
                        continue;
                snprintf(tmp, sizeof tmp, "%s_spillway_new", tables[i].name);
                if (exec(c, e, "creating the table a CrowdSec table is copied into", "DROP TABLE IF EXISTS `%s`", tmp) < 0 ||
                    exec_tmpl(c, e, "creating the table a CrowdSec table is copied into", tables[i].ddl, tmp, NULL) < 0 ||
                    exec_tmpl(c, e, "copying CrowdSec's rows", tables[i].copy, tmp, tables[i].name) < 0) {
                        r = -1;
                        break;
                }
                o += (size_t) snprintf(rename + o, sizeof rename - o, "%s `%s` TO `%s" MYDB_CROWDSEC_SUFFIX "`, `%s` TO `%s`",
                                       *copied ? "," : "", tables[i].name, tables[i].name, tmp, tables[i].name);
                *copied = true;
        }
        if (r == 0 && *copied && exec(c, e, "swapping the copied tables in", "%s", rename) < 0)
                r = -1;
        if (r < 0) {
                /* keep the failure's message: the clean-up below resets it */
                mydb_error keep = *e;
                for (size_t i = 0; i < N_TABLES; i++)
                        if (l->exists[i] && !l->ours[i])
                                exec(c, e, "cleaning up", "DROP TABLE IF EXISTS `%s_spillway_new`", tables[i].name);
                *e = keep;
        }
        {
                mydb_error ignored;
                if (exec(c, r < 0 ? &ignored : e, "restoring the sql_mode", "SET SESSION sql_mode = @spw_saved_mode") < 0)
                        r = -1;
        }
        return r;
}

static int migrate_0_to_1(MYSQL *c, long utc_offset, bool *crowdsec, mydb_error *e) {
        layout l;

        if (read_layout(c, &l, e) < 0)
                return -EIO;
        if (copy_crowdsec(c, &l, utc_offset, crowdsec, e) < 0)
                switch (e->code) {
                case 1054: /* ER_BAD_FIELD_ERROR: not CrowdSec's columns */
                case 1146:
                case 1264: /* out of range values */
                case 1366:
                case 1406:
                        return -EBADMSG;
                default:
                        return -EIO;
                }
        for (size_t i = 0; i < N_TABLES; i++)
                if (exec_tmpl(c, e, "creating the tables", tables[i].ddl, tables[i].name, NULL) < 0)
                        return -EIO;
        return 0;
}

/* 1 to 2: the ban-change log (idempotent: IF NOT EXISTS). seq is
 * AUTO_INCREMENT; with several hosts writing, a row may commit after a
 * higher seq was read (see plugins/mysql/README.md). */
static int migrate_1_to_2(MYSQL *c, mydb_error *e) {
        return exec(c, e, "creating the ban change log",
                    "CREATE TABLE IF NOT EXISTS `ban_changes` ("
                    "`seq` bigint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,"
                    " `at` datetime(6) NOT NULL, `kind` tinyint NOT NULL,"
                    " `ban_id` bigint unsigned NOT NULL, `ip_text` varchar(255) NULL,"
                    " KEY `idx_ban_changes_at` (`at`), KEY `idx_ban_changes_ban_id` (`ban_id`))" TABLE_OPTIONS) < 0
                       ? -EIO : 0;
}

/* 2 to 3: decision scopes other than Ip and Range (scope, value; ip_text
 * stays the target's key, "Scope:value" for those) and the daemon's stable
 * signal id with its origin, unique together: a redelivered signal is
 * stored once. Each step can run again (IF NOT EXISTS). Rows from before
 * keep NULL: read as Ip/Range, never duplicates (NULLs are distinct). */
static int migrate_2_to_3(MYSQL *c, mydb_error *e) {
        return exec(c, e, "adding the scope columns to ban_applications",
                    "ALTER TABLE `ban_applications` ADD COLUMN IF NOT EXISTS `scope` varchar(255) NULL,"
                    " ADD COLUMN IF NOT EXISTS `value` varchar(255) COLLATE utf8mb4_bin NULL") < 0 ||
               exec(c, e, "adding the signal id columns to signal_occurences",
                    "ALTER TABLE `signal_occurences` ADD COLUMN IF NOT EXISTS `spillway_signal_id` bigint unsigned NULL,"
                    " ADD COLUMN IF NOT EXISTS `spillway_origin` bigint NULL,"
                    " ADD UNIQUE KEY IF NOT EXISTS `" MYDB_SIGNAL_ID_INDEX "` (`spillway_signal_id`, `spillway_origin`)") < 0
                       ? -EIO : 0;
}

/* The version table: one row, id 1, that the primary key keeps single
 * (hosts writing it at once collide on the key instead of adding rows). A
 * table from before (no id column, maybe two rows after a race) is given
 * the key: ALTER IGNORE keeps one row per id, the highest version first. */
static int version_table(MYSQL *c, mydb_error *e) {
        long n = 0;
        bool found;

        if (exec(c, e, "creating the schema version table",
                 "CREATE TABLE IF NOT EXISTS `" MYDB_VERSION_TABLE "` (`id` tinyint unsigned NOT NULL DEFAULT 1,"
                 " `version` int NOT NULL, `migrated_at` datetime(6) NOT NULL, PRIMARY KEY (`id`))" TABLE_OPTIONS) < 0 ||
            query_long(c, e, "reading the schema version table's layout",
                       "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()"
                       " AND TABLE_NAME = '" MYDB_VERSION_TABLE "' AND COLUMN_NAME = 'id'", &n, &found) < 0)
                return -1;
        if (n > 0)
                return 0;
        if (exec(c, e, "giving the schema version table its primary key",
                 "DELETE v FROM `" MYDB_VERSION_TABLE "` AS v JOIN (SELECT MAX(version) AS m FROM `"
                 MYDB_VERSION_TABLE "`) AS x ON v.version < x.m") < 0 ||
            exec(c, e, "giving the schema version table its primary key",
                 "ALTER IGNORE TABLE `" MYDB_VERSION_TABLE "` ADD COLUMN IF NOT EXISTS `id` tinyint unsigned NOT NULL"
                 " DEFAULT 1 FIRST, ADD PRIMARY KEY IF NOT EXISTS (`id`)") < 0) {
                /* another host did it meanwhile */
                if (e->code == 1060 || e->code == 1068)
                        return 0;
                return -1;
        }
        return 0;
}

/* The version row, written last (one statement, autocommit): it never goes
 * down, and the key makes it one row whoever writes it. */
static int write_version(MYSQL *c, mydb_error *e) {
        return exec(c, e, "writing the schema version",
                    "INSERT INTO `" MYDB_VERSION_TABLE "` (id, version, migrated_at) VALUES (1, %d, UTC_TIMESTAMP(6))"
                    " ON DUPLICATE KEY UPDATE migrated_at = IF(version < VALUES(version), VALUES(migrated_at),"
                    " migrated_at), version = GREATEST(version, VALUES(version))",
                    MYDB_SCHEMA_VERSION) < 0 ? -EIO : 0;
}

/* Worth running the migration again: another host's concurrent DDL or
 * version write won (InnoDB's deadlock, Galera's certification failure,
 * which it reports as a deadlock, or a brute-force abort), a lock wait
 * timed out, the node is not ready yet, or the tables another host was
 * swapping in appeared under our feet. */
bool mydb_migrate_retryable(unsigned code) {
        switch (code) {
        case 1205: /* ER_LOCK_WAIT_TIMEOUT */
        case 1213: /* ER_LOCK_DEADLOCK: also Galera's certification failure */
        case 1047: /* ER_UNKNOWN_COM_ERROR: Galera node not ready (WSREP has not yet prepared node) */
        case 1050: /* ER_TABLE_EXISTS_ERROR: the copy's RENAME after another host's */
        case 1146: /* ER_NO_SUCH_TABLE: the same, the other way round */
        case 1180: /* ER_ERROR_DURING_COMMIT */
        case 1181: /* ER_ERROR_DURING_ROLLBACK */
        case 1412: /* ER_TABLE_DEF_CHANGED: a table changed by another host's DDL */
        case 1684: /* ER_QUERY_INTERRUPTED in Galera (BF abort) */
        case 1317: /* ER_QUERY_INTERRUPTED */
        case 1062: /* ER_DUP_ENTRY: the version row, written at once (older tables) */
                return true;
        default:
                return false;
        }
}

/* One pass: every step can be run again, by any number of hosts at once. */
static int migrate_once(MYSQL *c, long utc_offset, int *from, bool *crowdsec, mydb_error *e) {
        int v, r;

        r = mydb_schema_version(c, &v, e) < 0 ? -EIO : 0;
        if (r == 0)
                *from = v;
        if (r == 0 && (v > MYDB_SCHEMA_VERSION || v < 0))
                return -EPROTO;
        if (r == 0 && v == MYDB_SCHEMA_VERSION)
                return 0;
        if (r == 0 && v == 0)
                r = migrate_0_to_1(c, utc_offset, crowdsec, e);
        if (r == 0 && v <= 1)
                r = migrate_1_to_2(c, e);
        if (r == 0 && v <= 2)
                r = migrate_2_to_3(c, e);
        if (r == 0 && v < MYDB_SCHEMA_VERSION)
                r = version_table(c, e) < 0 ? -EIO : write_version(c, e);
        return r;
}

int mydb_migrate(MYSQL *c, int max_attempts, long crowdsec_utc_offset, int *from, bool *crowdsec, mydb_error *e) {
        unsigned seed = (unsigned) mysql_thread_id(c);
        int r = 0;

        *from = -1;
        *crowdsec = false;
        for (int attempt = 1; attempt <= max_attempts; attempt++) {
                struct timespec ts;
                long ms;

                r = migrate_once(c, crowdsec_utc_offset, from, crowdsec, e);
                if (r != -EIO && r != -EBADMSG)
                        return r;
                if (!mydb_migrate_retryable(e->code) || attempt == max_attempts)
                        return r;
                /* a deadlock rolled back what was open; back off at random so
                 * that the hosts do not collide again */
                mysql_rollback(c);
                ms = 20 + (long) (rand_r(&seed) % (unsigned) (50 * attempt));
                ts = (struct timespec) { ms / 1000, (ms % 1000) * 1000000L };
                nanosleep(&ts, NULL);
        }
        return r;
}

/* ------------------------------------------------------------ tables outside the versioned schema */

/* The lease table (one row per kind of cluster-wide background work: who
 * does it, until when) and the batch tokens (one row per committed batch,
 * written in the batch's transaction: after a connection lost during
 * COMMIT, the token says whether it committed). They belong to this plugin
 * only, so they are not part of CrowdSec's versioned layout: created when
 * missing, at every connection, idempotently (a read first: on Galera even
 * a CREATE of an existing table is replicated DDL). */
int mydb_aux_tables(MYSQL *c, mydb_error *e) {
        long n = 0;
        bool found;

        for (int attempt = 1;; attempt++) {
                int r = 0;

                if (query_long(c, e, "looking for the lease and batch tables",
                               "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
                               " AND TABLE_NAME IN ('" MYDB_LEASE_TABLE "', '" MYDB_BATCH_TABLE "')", &n, &found) < 0)
                        return -1;
                if (n >= 2)
                        return 0;
                if (exec(c, e, "creating the lease table",
                         "CREATE TABLE IF NOT EXISTS `" MYDB_LEASE_TABLE "` (`name` varchar(64) NOT NULL,"
                         " `owner` varchar(255) NOT NULL, `expires_at` datetime(6) NOT NULL,"
                         " `renewed_at` datetime(6) NOT NULL, PRIMARY KEY (`name`))" TABLE_OPTIONS) < 0 ||
                    exec(c, e, "creating the batch token table",
                         "CREATE TABLE IF NOT EXISTS `" MYDB_BATCH_TABLE "` (`token` binary(16) NOT NULL,"
                         " `committed_at` datetime(6) NOT NULL, PRIMARY KEY (`token`),"
                         " KEY `idx_spillway_batches_committed_at` (`committed_at`))" TABLE_OPTIONS) < 0)
                        r = -1;
                if (r == 0)
                        return 0;
                if (!mydb_migrate_retryable(e->code) || attempt >= 10)
                        return -1;
                nanosleep(&(struct timespec) { 0, 20000000L * attempt }, NULL);
        }
}

/* ------------------------------------------------------------ statements */

#define Q10 "?,?,?,?,?,?,?,?,?,?"
#define Q100 Q10 "," Q10 "," Q10 "," Q10 "," Q10 "," Q10 "," Q10 "," Q10 "," Q10 "," Q10

const char *const mydb_sql[_MYDB_SQL_MAX] = {
        [MYDB_SQL_INSERT_SIGNAL] =
                "INSERT INTO signal_occurences (created_at, updated_at, map_key, scenario, bucket_id,"
                " alert_message, events_count, start_at, stop_at, source_ip, source_range,"
                " source_autonomous_system_number, source_autonomous_system_organization,"
                " source_country, source_latitude, source_longitude, dest_ip, capacity, leak_speed,"
                " reprocess, spillway_signal_id, spillway_origin) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
                /* a signal id stored before: no row written (affected rows 0;
                 * the connection does not ask for CLIENT_FOUND_ROWS) */
                " ON DUPLICATE KEY UPDATE id = id",
        [MYDB_SQL_INSERT_EVENT] =
                "INSERT INTO event_sequences (created_at, updated_at, time, source_ip, signal_occurence_id,"
                " serialized) VALUES (?,?,?,?,?,?)",
        [MYDB_SQL_INSERT_BAN] =
                "INSERT INTO ban_applications (created_at, updated_at, measure_source, measure_type,"
                " measure_extra, until, start_ip, end_ip, target_cn, target_as, target_as_name, ip_text,"
                " reason, scenario, signal_occurence_id, scope, value) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",

        /* One active ban per target: once a signal's bans are inserted, every
         * active ban of each target but one is soft-deleted. The one kept:
         * a new manual ban (the admin decides), else a manual ban still
         * running (automatic bans never replace the admin's), else the one
         * that ends last, the newest on a tie: a new ban extends a ban,
         * never shortens it. The winner is read through a derived table
         * with LIMIT (materialised, so MySQL lets the UPDATE read its own
         * table). Pinned to the (ip_text, deleted_at) index. */
        [MYDB_SQL_SUPERSEDE] =
                "UPDATE ban_applications FORCE INDEX (" MYDB_IP_TEXT_INDEX ")"
                " SET deleted_at = ?, updated_at = ? WHERE ip_text = ? AND deleted_at IS NULL AND id <>"
                " (SELECT w.id FROM (SELECT id FROM ban_applications FORCE INDEX (" MYDB_IP_TEXT_INDEX ")"
                " WHERE ip_text = ? AND deleted_at IS NULL"
                " ORDER BY (id >= ? AND ? = 1) DESC, (until > ? AND COALESCE(measure_source, '') = 'cscli') DESC,"
                " until DESC, id DESC LIMIT 1) AS w)",
        /* A failed insert is undone by removing what it inserted: every row
         * it wrote carries the new signal's id. */
        [MYDB_SQL_UNDO_BANS] = "DELETE FROM ban_applications WHERE signal_occurence_id = ?",
        [MYDB_SQL_UNDO_EVENTS] = "DELETE FROM event_sequences WHERE signal_occurence_id = ?",
        [MYDB_SQL_UNDO_SIGNAL] = "DELETE FROM signal_occurences WHERE id = ?",
        [MYDB_SQL_DELETE_TARGET] =
                "UPDATE ban_applications FORCE INDEX (" MYDB_IP_TEXT_INDEX ")"
                " SET deleted_at = ?, updated_at = ? WHERE ip_text = ? AND deleted_at IS NULL",
        [MYDB_SQL_DELETE_ALL] =
                "UPDATE ban_applications FORCE INDEX (idx_ban_applications_deleted_at_until)"
                " SET deleted_at = ?, updated_at = ? WHERE deleted_at IS NULL",

        /* Active at ?: not (yet) deleted at ? and not expired. One row per
         * target: its newest ban (highest id), with the number of the
         * target's bans active then. Newest first. The rows come from two
         * ranges of the (deleted_at, until) index: the active bans, and the
         * bans deleted after ? (none when ? is now); history is never read,
         * so the cost is that of the active bans (test-mysql checks the
         * plan and the rows the server reads). */
        [MYDB_SQL_READ_AT] =
                "SELECT b.measure_source, b.ip_text, b.reason, g.n, b.measure_type, b.target_cn,"
                " b.target_as_name, b.target_as, s.events_count, b.until, b.scope, b.value"
                " FROM (SELECT MAX(id) AS id, COUNT(*) AS n FROM"
                "        (SELECT id, ip_text FROM ban_applications FORCE INDEX (idx_ban_applications_deleted_at_until)"
                "         WHERE deleted_at IS NULL AND until >= ?"
                "         UNION ALL"
                "         SELECT id, ip_text FROM ban_applications FORCE INDEX (idx_ban_applications_deleted_at_until)"
                "         WHERE deleted_at > ? AND until >= ?) AS a"
                "       GROUP BY ip_text) AS g"
                " JOIN ban_applications AS b ON b.id = g.id"
                " LEFT JOIN signal_occurences AS s ON s.id = b.signal_occurence_id"
                " ORDER BY g.id DESC",

        /* The change log (schema.h, version 2). */
        [MYDB_SQL_CHANGE_ADD] =
                "INSERT INTO ban_changes (at, kind, ban_id, ip_text)"
                " SELECT ?, 1, id, ip_text FROM ban_applications WHERE signal_occurence_id = ? ORDER BY id",
        [MYDB_SQL_CHANGE_DEL_TARGET] =
                "INSERT INTO ban_changes (at, kind, ban_id, ip_text)"
                " SELECT ?, 2, id, ip_text FROM ban_applications FORCE INDEX (" MYDB_IP_TEXT_INDEX ")"
                " WHERE ip_text = ? AND deleted_at IS NULL ORDER BY id",
        [MYDB_SQL_CHANGE_DEL_ALL] =
                "INSERT INTO ban_changes (at, kind, ban_id, ip_text)"
                " SELECT ?, 2, id, ip_text FROM ban_applications WHERE deleted_at IS NULL ORDER BY id",
        [MYDB_SQL_UNDO_CHANGES] =
                "DELETE FROM ban_changes WHERE ban_id IN (SELECT id FROM ban_applications WHERE signal_occurence_id = ?)",
        [MYDB_SQL_CHANGES_MIN] = "SELECT COALESCE(MIN(seq), 0) FROM ban_changes",
        [MYDB_SQL_CHANGES_MAX] = "SELECT COALESCE(MAX(seq), 0) FROM ban_changes",
        [MYDB_SQL_CHANGES_GC] = "DELETE FROM ban_changes WHERE at < ? AND seq < ?",
        [MYDB_SQL_READ_CHANGES] =
                "SELECT b.measure_source, c.ip_text, b.reason, 1, b.measure_type, b.target_cn,"
                " b.target_as_name, b.target_as, s.events_count, b.until, b.scope, b.value,"
                " c.seq, c.kind, c.at"
                " FROM ban_changes AS c"
                " LEFT JOIN ban_applications AS b ON b.id = c.ban_id"
                " LEFT JOIN signal_occurences AS s ON s.id = b.signal_occurence_id"
                " WHERE c.seq > ? ORDER BY c.seq",
        /* read_changes' columns over every ban kept: seq = the ban's id,
         * kind 1 (ADD), at = when it was made (read_history, ABI 2.2) */
        [MYDB_SQL_READ_HISTORY] =
                "SELECT b.measure_source, b.ip_text, b.reason, 1, b.measure_type, b.target_cn,"
                " b.target_as_name, b.target_as, NULL, b.until, b.scope, b.value, b.id, 1, b.created_at"
                " FROM ban_applications AS b WHERE b.created_at >= ? ORDER BY b.id",

        [MYDB_SQL_EXPIRE_PROBE] =
                "SELECT 1 FROM ban_applications WHERE deleted_at IS NULL AND until < ? LIMIT 1",
        /* ORDER BY: an UPDATE with LIMIT must say which rows, or
         * statement-based replication calls it unsafe. The order is the
         * (deleted_at, until) index's own, so it costs no sort, but the
         * optimizer would rather walk the primary key for it: pinned. */
        [MYDB_SQL_EXPIRE] =
                "UPDATE ban_applications FORCE INDEX (idx_ban_applications_deleted_at_until)"
                " SET deleted_at = ?, updated_at = ?"
                " WHERE deleted_at IS NULL AND until < ? ORDER BY deleted_at, until, id LIMIT ?",

        [MYDB_SQL_GC_COUNT_EDGE] = "SELECT id FROM ban_applications ORDER BY id DESC LIMIT 1 OFFSET ?",
        /* Ended bans: soft-deleted, or past until (flush: false never
         * soft-deletes them), from the table's start */
        [MYDB_SQL_GC_PICK_COUNT] =
                "SELECT id, signal_occurence_id FROM ban_applications"
                " WHERE id <= ? AND (deleted_at IS NOT NULL OR until < ?) ORDER BY id LIMIT ?",
        /* never soft-deleted, ended before the cutoff: the active range of
         * the (deleted_at, until) index, up to the cutoff */
        [MYDB_SQL_GC_PICK_EXPIRED] =
                "SELECT id, signal_occurence_id FROM ban_applications"
                " FORCE INDEX (idx_ban_applications_deleted_at_until)"
                " WHERE deleted_at IS NULL AND until < ? ORDER BY deleted_at, until LIMIT ?",
        /* how far behind collection is, counted up to a limit */
        [MYDB_SQL_GC_EXCESS_COUNT] =
                "SELECT COUNT(*) FROM (SELECT 1 FROM ban_applications"
                " WHERE id <= ? AND (deleted_at IS NOT NULL OR until < ?) ORDER BY id LIMIT ?) AS x",
        [MYDB_SQL_GC_EXCESS_AGE] =
                "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM ban_applications"
                "        FORCE INDEX (idx_ban_applications_deleted_at_until) WHERE deleted_at < ? LIMIT ?) AS d)"
                "     + (SELECT COUNT(*) FROM (SELECT 1 FROM ban_applications"
                "        FORCE INDEX (idx_ban_applications_deleted_at_until)"
                "        WHERE deleted_at IS NULL AND until < ? LIMIT ?) AS e)",
        [MYDB_SQL_GC_PICK_AGE] =
                "SELECT id, signal_occurence_id FROM ban_applications WHERE deleted_at < ? ORDER BY deleted_at LIMIT ?",
        /* Signals that never had a ban, between the core's cursor (all
         * before it collected) and the first signal younger than
         * max_records_age (ids grow with time). */
        [MYDB_SQL_GC_PICK_SIGNALS] =
                "SELECT s.id FROM signal_occurences AS s"
                " WHERE s.id > ? AND s.id < ?"
                "   AND NOT EXISTS (SELECT 1 FROM ban_applications AS b WHERE b.signal_occurence_id = s.id)"
                " ORDER BY s.id LIMIT ?",
        [MYDB_SQL_GC_DELETE_BANS] =
                "DELETE FROM ban_applications WHERE id IN (" Q100 ") AND (deleted_at IS NOT NULL OR until < ?)",
        [MYDB_SQL_GC_DELETE_SIGNALS] =
                "DELETE FROM signal_occurences WHERE id IN (" Q100 ")"
                " AND NOT EXISTS (SELECT 1 FROM ban_applications AS b"
                "                 WHERE b.signal_occurence_id = signal_occurences.id)",
        [MYDB_SQL_GC_DELETE_EVENTS] =
                "DELETE FROM event_sequences WHERE signal_occurence_id IN (" Q100 ")"
                " AND NOT EXISTS (SELECT 1 FROM signal_occurences AS s"
                "                 WHERE s.id = event_sequences.signal_occurence_id)",

        [MYDB_SQL_GC_SIG_BOUNDARY] =
                "SELECT id FROM signal_occurences WHERE id > ? AND created_at >= ? ORDER BY id LIMIT 1",
        /* the falling-behind warning's figures: index ends, no scan */
        [MYDB_SQL_GC_BACKLOG_AGE] =
                "SELECT UNIX_TIMESTAMP(MIN(deleted_at)) FROM ban_applications WHERE deleted_at IS NOT NULL",
        /* InnoDB's figures, refreshed with its statistics (not at every
         * change): the size rule takes one chunk per run on them. */
        [MYDB_SQL_DB_SIZE] =
                "SELECT CAST(COALESCE(SUM(data_length + index_length), 0) AS UNSIGNED),"
                " CAST(COALESCE(SUM(data_free), 0) AS UNSIGNED) FROM information_schema.TABLES"
                " WHERE table_schema = DATABASE()"
                "   AND table_name IN ('signal_occurences', 'event_sequences', 'ban_applications')",
        [MYDB_SQL_GET_LOCK] = "SELECT GET_LOCK(?, ?)",
        [MYDB_SQL_RELEASE_LOCK] = "SELECT RELEASE_LOCK(?)",
};

int mydb_prepare(MYSQL *conn, MYSQL_STMT *st[static _MYDB_SQL_MAX], int *failed, mydb_error *e) {
        for (int i = 0; i < _MYDB_SQL_MAX; i++) {
                st[i] = mysql_stmt_init(conn);
                if (!st[i]) {
                        *failed = i;
                        return mydb_error_from_conn(e, conn, "preparing the statements");
                }
                if (mysql_stmt_prepare(st[i], mydb_sql[i], (unsigned long) strlen(mydb_sql[i])) != 0) {
                        *failed = i;
                        return mydb_error_from_stmt(e, st[i], "preparing the statements");
                }
        }
        return 0;
}

void mydb_finalize(MYSQL_STMT *st[static _MYDB_SQL_MAX]) {
        for (int i = 0; i < _MYDB_SQL_MAX; i++) {
                if (st[i])
                        mysql_stmt_close(st[i]);
                st[i] = NULL;
        }
}
