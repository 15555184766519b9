/* SPDX-License-Identifier: MIT */
/*
 * The ban database's SQL: table and index definitions, the migrations from
 * each older version, the connection pragmas, every statement the plugin
 * prepares, and the stored time format. Shared by the plugin and the
 * ceiling benchmark, so the benchmark measures exactly the plugin's rows.
 *
 * Invariants:
 *   - A migration runs inside one IMMEDIATE transaction and ends by setting
 *     PRAGMA user_version, so a crash leaves the old version intact and a
 *     second process migrating at the same time finds the work done.
 *   - Migrations only add: a database CrowdSec v0.3 created keeps its
 *     tables and rows; only gorm's single-column deleted_at indexes are
 *     replaced (by the compound indexes below, which serve the same lookups).
 *   - Every stored time has the same fixed width and zone, so comparing the
 *     text compares the times; bound parameters use the same format.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "schema.h"
#include "spwp-time.h"

/* ------------------------------------------------------------ time */

#define USEC_PER_SEC INT64_C(1000000)
/* 0001-01-01 00:00:00 and 9999-12-31 23:59:59.999999 UTC */
#define TIME_MIN (INT64_C(-62135596800) * USEC_PER_SEC)
#define TIME_MAX (INT64_C(253402300800) * USEC_PER_SEC - 1)

char *bandb_time_format(char buf[static BANDB_TIME_MAX], spw_usec_t t) {
        spwp_tm tm;
        char *p = buf;

        if (t < TIME_MIN)
                t = TIME_MIN;
        if (t > TIME_MAX)
                t = TIME_MAX;
        spwp_time_split(t, &tm);

        p = spwp_put_digits(p, (unsigned) tm.year, 4);
        *p++ = '-';
        p = spwp_put_digits(p, tm.month, 2);
        *p++ = '-';
        p = spwp_put_digits(p, tm.day, 2);
        *p++ = ' ';
        p = spwp_put_digits(p, tm.hour, 2);
        *p++ = ':';
        p = spwp_put_digits(p, tm.minute, 2);
        *p++ = ':';
        p = spwp_put_digits(p, tm.second, 2);
        *p++ = '.';
        p = spwp_put_digits(p, tm.usec, 6);
        memcpy(p, "+00:00", 7);
        return buf;
}

int bandb_time_parse(const char *s, size_t n, spw_usec_t *ret) {
        const char *p = s, *end = s + n;
        unsigned y, mo, d, h, mi, sec, usec = 0, scale = 100000;
        int64_t offset = 0;

        if (!s)
                return -EINVAL;
        if (spwp_take_digits(&p, end, 4, &y) < 0 || spwp_take_char(&p, end, '-') < 0 ||
            spwp_take_digits(&p, end, 2, &mo) < 0 || spwp_take_char(&p, end, '-') < 0 ||
            spwp_take_digits(&p, end, 2, &d) < 0)
                return -EINVAL;
        if (p >= end || (*p != ' ' && *p != 'T'))
                return -EINVAL;
        p++;
        if (spwp_take_digits(&p, end, 2, &h) < 0 || spwp_take_char(&p, end, ':') < 0 ||
            spwp_take_digits(&p, end, 2, &mi) < 0 || spwp_take_char(&p, end, ':') < 0 ||
            spwp_take_digits(&p, end, 2, &sec) < 0)
                return -EINVAL;
        if (!spwp_date_valid(y, mo, d) || h > 23 || mi > 59 || sec > 60)
                return -EINVAL;
        if (p < end && *p == '.') {
                p++;
                if (p >= end || *p < '0' || *p > '9')
                        return -EINVAL;
                for (; p < end && *p >= '0' && *p <= '9'; p++) {
                        usec += (unsigned) (*p - '0') * scale;
                        scale /= 10;
                }
        }
        if (p < end && (*p == 'Z' || *p == 'z'))
                p++;
        else if (p < end && (*p == '+' || *p == '-')) {
                bool neg = *p++ == '-';
                unsigned oh, om;

                if (spwp_take_digits(&p, end, 2, &oh) < 0)
                        return -EINVAL;
                if (p < end && *p == ':')
                        p++;
                if (spwp_take_digits(&p, end, 2, &om) < 0 || oh > 23 || om > 59)
                        return -EINVAL;
                offset = ((int64_t) oh * 3600 + om * 60) * (neg ? -1 : 1);
        }
        if (p != end)
                return -EINVAL;

        /* a leap second (60) carries into the next minute */
        *ret = spwp_time_join(&(spwp_tm) { y, mo, d, h, mi, sec, usec }) - offset * USEC_PER_SEC;
        return 0;
}

/* ------------------------------------------------------------ schema */

/* CrowdSec v0.3's tables as gorm v1's sqlite3 dialect declares them (column
 * order and declared types included), with two differences:
 *   - start_ip/end_ip are blobs (gorm declared "integer" for uint32);
 *   - "id" is "integer primary key" without AUTOINCREMENT, which updates
 *     sqlite_sequence on every insert: 16% of the instructions per signal.
 *     Ids still only grow while the newest row exists (SQLite uses max+1);
 *     tables CrowdSec created keep their AUTOINCREMENT.
 * "datetime" has NUMERIC affinity: our time text is not a number, so it
 * stays text. */
#define SQL_CREATE_TABLES                                                               \
        "CREATE TABLE IF NOT EXISTS \"signal_occurences\" ("                            \
        "\"id\" integer primary key,"                                     \
        "\"created_at\" datetime,\"updated_at\" datetime,\"deleted_at\" datetime,"      \
        "\"map_key\" varchar(255),\"scenario\" varchar(255),\"bucket_id\" varchar(255)," \
        "\"alert_message\" varchar(255),\"events_count\" integer,"                      \
        "\"start_at\" datetime,\"stop_at\" datetime,"                                   \
        "\"source_ip\" varchar(255),\"source_range\" varchar(255),"                     \
        "\"source_autonomous_system_number\" varchar(255),"                             \
        "\"source_autonomous_system_organization\" varchar(255),"                       \
        "\"source_country\" varchar(255),\"source_latitude\" real,"                     \
        "\"source_longitude\" real,\"dest_ip\" varchar(255),\"capacity\" integer,"      \
        "\"leak_speed\" bigint,\"reprocess\" bool);\n"                                  \
        "CREATE TABLE IF NOT EXISTS \"event_sequences\" ("                              \
        "\"id\" integer primary key,"                                     \
        "\"created_at\" datetime,\"updated_at\" datetime,\"deleted_at\" datetime,"      \
        "\"time\" datetime,\"source_ip\" varchar(255),\"source_range\" varchar(255),"   \
        "\"source_autonomous_system_number\" varchar(255),"                             \
        "\"source_autonomous_system_organization\" varchar(255),"                       \
        "\"source_country\" varchar(255),\"signal_occurence_id\" integer,"              \
        "\"serialized\" text);\n"                                                       \
        "CREATE TABLE IF NOT EXISTS \"ban_applications\" ("                             \
        "\"id\" integer primary key,"                                     \
        "\"created_at\" datetime,\"updated_at\" datetime,\"deleted_at\" datetime,"      \
        "\"measure_source\" varchar(255),\"measure_type\" varchar(255),"                \
        "\"measure_extra\" varchar(255),\"until\" datetime,"                            \
        "\"start_ip\" blob,\"end_ip\" blob,"                                            \
        "\"target_cn\" varchar(255),\"target_as\" integer,\"target_as_name\" varchar(255)," \
        "\"ip_text\" varchar(255),\"reason\" varchar(255),\"scenario\" varchar(255),"   \
        "\"signal_occurence_id\" integer);\n"

#define TIME_GLOB "'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'"
#define NORMALIZE(table, col) \
        "UPDATE " table " SET " col " = bandb_time(" col ") WHERE " col " NOT GLOB " TIME_GLOB ";\n"

/* Version 0 (empty, or CrowdSec v0.3's gorm schema) to 1. */
static const char migrate_0_to_1[] =
        SQL_CREATE_TABLES
        /* go-sqlite3 wrote "2006-01-02 15:04:05.999999999-07:00" in local time */
        NORMALIZE("signal_occurences", "created_at")
        NORMALIZE("signal_occurences", "updated_at")
        NORMALIZE("signal_occurences", "deleted_at")
        NORMALIZE("signal_occurences", "start_at")
        NORMALIZE("signal_occurences", "stop_at")
        NORMALIZE("event_sequences", "created_at")
        NORMALIZE("event_sequences", "updated_at")
        NORMALIZE("event_sequences", "deleted_at")
        NORMALIZE("event_sequences", "time")
        NORMALIZE("ban_applications", "created_at")
        NORMALIZE("ban_applications", "updated_at")
        NORMALIZE("ban_applications", "deleted_at")
        NORMALIZE("ban_applications", "until")
        /* uint32 IPv4 to 16-byte IPv4-mapped IPv6 */
        "UPDATE ban_applications SET start_ip = bandb_ipv4(start_ip), end_ip = bandb_ipv4(end_ip)"
        " WHERE typeof(start_ip) = 'integer' OR typeof(end_ip) = 'integer';\n"
        /* gorm's deleted_at indexes: the planner could pick them for the
         * ip_text lookup and scan every active ban; the compound indexes
         * below serve every deleted_at lookup we make. */
        "DROP INDEX IF EXISTS idx_signal_occurences_deleted_at;\n"
        "DROP INDEX IF EXISTS idx_event_sequences_deleted_at;\n"
        "DROP INDEX IF EXISTS idx_ban_applications_deleted_at;\n"
        /* one active ban per target: the soft-delete lookup, Delete(target) */
        "CREATE INDEX IF NOT EXISTS " BANDB_IP_TEXT_INDEX " ON ban_applications (ip_text, deleted_at);\n"
        /* expiry (deleted_at IS NULL AND until < now), DeleteAll, GC by age */
        "CREATE INDEX IF NOT EXISTS idx_ban_applications_deleted_at_until ON ban_applications (deleted_at, until);\n"
        /* GC: is a signal still referenced, and its event sequences */
        "CREATE INDEX IF NOT EXISTS idx_ban_applications_signal_occurence_id ON ban_applications (signal_occurence_id);\n"
        "CREATE INDEX IF NOT EXISTS idx_event_sequences_signal_occurence_id ON event_sequences (signal_occurence_id);\n";

/* Version 1 to 2: the ban-change log. */
static const char migrate_1_to_2[] =
        "CREATE TABLE IF NOT EXISTS ban_changes ("
        "seq integer primary key autoincrement, at datetime not null, kind integer not null,"
        " ban_id integer not null, ip_text varchar(255));\n"
        "CREATE INDEX IF NOT EXISTS idx_ban_changes_at ON ban_changes (at);\n"
        "CREATE INDEX IF NOT EXISTS idx_ban_changes_ban_id ON ban_changes (ban_id);\n";

/* Version 2 to 3: decision scopes other than Ip and Range (the ban's scope
 * and its value; ip_text stays the target's key, "Scope:value" for those),
 * and the daemon's stable signal id with its origin, unique together, so a
 * redelivered signal is not stored twice. Rows from before keep NULL in
 * the new columns: read as Ip/Range (from ip_text) and never duplicates
 * (NULLs are distinct in a unique index). */
static const char migrate_2_to_3[] =
        "ALTER TABLE ban_applications ADD COLUMN scope varchar(255);\n"
        "ALTER TABLE ban_applications ADD COLUMN value varchar(255);\n"
        "ALTER TABLE signal_occurences ADD COLUMN spillway_signal_id integer;\n"
        "ALTER TABLE signal_occurences ADD COLUMN spillway_origin integer;\n"
        "CREATE UNIQUE INDEX IF NOT EXISTS " BANDB_SIGNAL_ID_INDEX
        " ON signal_occurences (spillway_signal_id, spillway_origin);\n";

/* migrations[v] takes version v to v + 1 */
static const char *const migrations[BANDB_SCHEMA_VERSION] = {
        [0] = migrate_0_to_1,
        [1] = migrate_1_to_2,
        [2] = migrate_2_to_3,
};

/* bandb_time(x): a stored time in any format we can parse, as ours; other
 * values unchanged. */
static void sql_bandb_time(sqlite3_context *c, int argc, sqlite3_value **argv) {
        const char *s = (const char *) sqlite3_value_text(argv[0]);
        char buf[BANDB_TIME_MAX];
        spw_usec_t t;

        if (sqlite3_value_type(argv[0]) != SQLITE_TEXT || !s ||
            bandb_time_parse(s, (size_t) sqlite3_value_bytes(argv[0]), &t) < 0) {
                sqlite3_result_value(c, argv[0]);
                return;
        }
        sqlite3_result_text(c, bandb_time_format(buf, t), BANDB_TIME_LEN, SQLITE_TRANSIENT);
}

/* bandb_ipv4(x): a uint32 IPv4 address as 16 bytes ::ffff:a.b.c.d; other
 * values unchanged. */
static void sql_bandb_ipv4(sqlite3_context *c, int argc, sqlite3_value **argv) {
        uint8_t a[16] = { [10] = 0xff, [11] = 0xff };
        sqlite3_int64 v;

        if (sqlite3_value_type(argv[0]) != SQLITE_INTEGER ||
            (v = sqlite3_value_int64(argv[0])) < 0 || v > UINT32_MAX) {
                sqlite3_result_value(c, argv[0]);
                return;
        }
        a[12] = (uint8_t) (v >> 24);
        a[13] = (uint8_t) (v >> 16);
        a[14] = (uint8_t) (v >> 8);
        a[15] = (uint8_t) v;
        sqlite3_result_blob(c, a, sizeof a, SQLITE_TRANSIENT);
}

static int read_user_version(sqlite3 *db, int *ret) {
        sqlite3_stmt *st = NULL;
        int r;

        r = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
        if (r != SQLITE_OK)
                return r;
        r = sqlite3_step(st);
        if (r == SQLITE_ROW) {
                *ret = sqlite3_column_int(st, 0);
                r = SQLITE_OK;
        }
        sqlite3_finalize(st);
        return r;
}

int bandb_migrate(sqlite3 *db, int *from, char *err, size_t err_size) {
        char sql[64];
        int r, v = 0;

        snprintf(err, err_size, "%s", "not an error");

        r = read_user_version(db, &v);
        if (r != SQLITE_OK) {
                snprintf(err, err_size, "%s", sqlite3_errmsg(db));
                return r;
        }
        *from = v;
        if (v == BANDB_SCHEMA_VERSION)
                return SQLITE_OK;
        if (v < 0 || v > BANDB_SCHEMA_VERSION)
                return SQLITE_ERROR;

        r = sqlite3_create_function_v2(db, "bandb_time", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
                                       NULL, sql_bandb_time, NULL, NULL, NULL);
        if (r == SQLITE_OK)
                r = sqlite3_create_function_v2(db, "bandb_ipv4", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
                                               NULL, sql_bandb_ipv4, NULL, NULL, NULL);
        if (r == SQLITE_OK)
                r = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (r != SQLITE_OK) {
                snprintf(err, err_size, "%s", sqlite3_errmsg(db));
                return r;
        }
        /* Another writer may have migrated while we waited for the lock. */
        r = read_user_version(db, &v);
        if (r == SQLITE_OK && v > BANDB_SCHEMA_VERSION)
                r = SQLITE_ERROR;
        for (; r == SQLITE_OK && v < BANDB_SCHEMA_VERSION; v++)
                r = sqlite3_exec(db, migrations[v], NULL, NULL, NULL);
        if (r == SQLITE_OK) {
                snprintf(sql, sizeof sql, "PRAGMA user_version = %d", BANDB_SCHEMA_VERSION);
                r = sqlite3_exec(db, sql, NULL, NULL, NULL);
        }
        if (r == SQLITE_OK)
                r = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        if (r != SQLITE_OK) {
                /* the failing statement's message, before ROLLBACK resets it */
                snprintf(err, err_size, "%s", sqlite3_errmsg(db));
                if (!sqlite3_get_autocommit(db))
                        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        }
        return r;
}

static void global_config_once(void) {
        /* SQLite's memory statistics (sqlite3_memory_used(), the soft heap
         * limit; nothing here reads them) take a global mutex around every
         * allocation and free, about 150 lock/unlock pairs per stored
         * signal on a path that is never contended otherwise. Possible only
         * before SQLite is initialized: if something in the process
         * initialized it first, this is refused (SQLITE_MISUSE) and
         * nothing changes. */
        (void) sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

void bandb_global_config(void) {
        static pthread_once_t once = PTHREAD_ONCE_INIT;

        pthread_once(&once, global_config_once);
}

int bandb_apply_pragmas(sqlite3 *db, bool synchronous_full) {
        sqlite3_stmt *st = NULL;
        int r;

        /* Freed pages are reused by later inserts in any mode; INCREMENTAL
         * lets the GC also give them back (PRAGMA incremental_vacuum) when
         * many are free. Takes effect only before the first table is made
         * (bandb_convert_auto_vacuum() converts older files). */
        r = sqlite3_exec(db, "PRAGMA auto_vacuum = INCREMENTAL", NULL, NULL, NULL);
        if (r != SQLITE_OK)
                return r;
        /* journal_mode returns the mode in effect: WAL needs shared memory
         * next to the file, and is refused on some network filesystems. */
        r = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
        if (r != SQLITE_OK)
                return r;
        r = sqlite3_step(st);
        if (r == SQLITE_ROW)
                r = sqlite3_stricmp((const char *) sqlite3_column_text(st, 0), "wal") == 0 ? SQLITE_OK : SQLITE_CANTOPEN;
        sqlite3_finalize(st);
        if (r != SQLITE_OK)
                return r;

        return sqlite3_exec(db,
                            synchronous_full ? "PRAGMA synchronous = FULL;" : "PRAGMA synchronous = NORMAL;"
                            /* savepoint journals and the GC's scratch tables */
                            "PRAGMA temp_store = MEMORY;"
                            /* the default cache_size (sqlite.c sets the configured
                             * one after this): the ip_text index's inner pages stay
                             * hot. 16 MiB cost 13.5 MiB more RSS and bought no CPU
                             * (bench-ceiling, 100,000 and 400,000 targets: 17.4-18.3
                             * against 17.0-17.2 us per signal) */
                            "PRAGMA cache_size = -" BANDB_STR(BANDB_CACHE_KIB_DEFAULT) ";"
                            /* the WAL file shrinks back after a burst */
                            "PRAGMA journal_size_limit = 67108864;"
                            "PRAGMA foreign_keys = OFF;",
                            NULL, NULL, NULL);
}

/* ------------------------------------------------------------ statements */

const char *const bandb_sql[_BANDB_SQL_MAX] = {
        [BANDB_SQL_BEGIN] = "BEGIN IMMEDIATE",
        [BANDB_SQL_COMMIT] = "COMMIT",
        [BANDB_SQL_ROLLBACK] = "ROLLBACK",
        [BANDB_SQL_INSERT_SIGNAL] =
                "INSERT INTO signal_occurences (created_at, updated_at, map_key, scenario, bucket_id,"
                " alert_message, events_count, start_at, stop_at, source_ip, source_range,"
                " source_autonomous_system_number, source_autonomous_system_organization,"
                " source_country, source_latitude, source_longitude, dest_ip, capacity, leak_speed,"
                " reprocess, spillway_signal_id, spillway_origin)"
                " VALUES (?1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,"
                " ?17, ?18, ?19, ?20, ?21)"
                /* a signal id stored before: nothing inserted, changes() 0 */
                " ON CONFLICT (spillway_signal_id, spillway_origin) DO NOTHING",
        [BANDB_SQL_INSERT_EVENT] =
                "INSERT INTO event_sequences (created_at, updated_at, time, source_ip,"
                " signal_occurence_id, serialized)"
                " VALUES (?1, ?1, ?2, ?3, ?4, ?5)",
        [BANDB_SQL_INSERT_BAN] =
                "INSERT INTO ban_applications (created_at, updated_at, measure_source, measure_type,"
                " measure_extra, until, start_ip, end_ip, target_cn, target_as, target_as_name,"
                " ip_text, reason, scenario, signal_occurence_id, scope, value)"
                " VALUES (?1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",

        /* One active ban per target: once a signal's bans are inserted, every
         * active ban of each target but one is soft-deleted. The one kept:
         * a new manual ban (?4 = 1: the admin decides), else a manual ban
         * still running (automatic bans never replace the admin's), else the
         * one that ends last, the newest on a tie. So a new ban extends a
         * ban, never shortens it: a shorter new ban is stored already
         * soft-deleted (kept for the record). Pinned to the (ip_text,
         * deleted_at) index with INDEXED BY: if the index ever went missing
         * the statement fails to prepare instead of scanning every active
         * ban; the target's active bans are a handful of rows. */
        [BANDB_SQL_SUPERSEDE] =
                "UPDATE ban_applications INDEXED BY " BANDB_IP_TEXT_INDEX
                " SET deleted_at = ?1, updated_at = ?1 WHERE ip_text = ?2 AND deleted_at IS NULL AND id <>"
                " (SELECT id FROM ban_applications INDEXED BY " BANDB_IP_TEXT_INDEX
                " WHERE ip_text = ?2 AND deleted_at IS NULL"
                " ORDER BY (id >= ?3 AND ?4) DESC, (until > ?1 AND COALESCE(measure_source, '') = 'cscli') DESC,"
                " until DESC, id DESC LIMIT 1)",
        /* Run before SUPERSEDE (same parameters, ?2 the target): a target
         * with one active ban (the new one; most signals) has nothing to
         * soft-delete. The UPDATE opens two ephemeral tables whatever it
         * finds (its row set, as it changes the index it walks, and the
         * sort of the subquery), about half of the SQLite work of a
         * signal; this covering lookup of two index entries is a
         * fraction of that. */
        [BANDB_SQL_SUPERSEDE_PROBE] =
                "SELECT count(*) > 1 FROM (SELECT 1 FROM ban_applications INDEXED BY " BANDB_IP_TEXT_INDEX
                " WHERE ip_text = ?2 AND deleted_at IS NULL LIMIT 2)",
        [BANDB_SQL_SAVEPOINT] = "SAVEPOINT bandb_supersede",
        [BANDB_SQL_RELEASE] = "RELEASE bandb_supersede",
        [BANDB_SQL_ROLLBACK_TO] = "ROLLBACK TO bandb_supersede",
        /* A failed insert is undone by removing what it inserted: every row
         * it wrote carries the new signal's id. */
        [BANDB_SQL_UNDO_SIGNAL] = "DELETE FROM signal_occurences WHERE id = ?1",
        [BANDB_SQL_UNDO_EVENTS] = "DELETE FROM event_sequences WHERE signal_occurence_id = ?1",
        [BANDB_SQL_UNDO_BANS] = "DELETE FROM ban_applications WHERE signal_occurence_id = ?1",
        [BANDB_SQL_DELETE_TARGET] =
                "UPDATE ban_applications INDEXED BY " BANDB_IP_TEXT_INDEX
                " SET deleted_at = ?1, updated_at = ?1 WHERE ip_text = ?2 AND deleted_at IS NULL",

        /* Active at ?1: not (yet) deleted at ?1 and not expired. One row per
         * target: its newest ban (highest id), with the number of the
         * target's bans active at ?1. The rows come from two ranges of the
         * (deleted_at, until) index, pinned with INDEXED BY: the active bans
         * (deleted_at NULL, until >= ?1) and the bans deleted after ?1 (none
         * when ?1 is now). History, however long, is never read: the cost
         * is that of the active bans (README.md; test-sqlite checks the
         * plan). Newest first: g is grouped, then sorted on two narrow
         * columns, and is the outer loop (CROSS JOIN keeps the planner from
         * reordering), so the lookups of each ban and its signal walk the
         * tables backwards instead of at random. */
        [BANDB_SQL_READ_AT] =
                "SELECT b.measure_source, b.ip_text, b.reason, g.n, b.measure_type, b.target_cn,"
                " b.target_as_name, b.target_as, s.events_count, b.until, b.scope, b.value"
                " FROM (SELECT max(id) AS id, count(*) AS n FROM"
                "        (SELECT id, ip_text FROM ban_applications INDEXED BY " BANDB_DELETED_UNTIL_INDEX
                "         WHERE deleted_at IS NULL AND until >= ?1"
                "         UNION ALL"
                "         SELECT id, ip_text FROM ban_applications INDEXED BY " BANDB_DELETED_UNTIL_INDEX
                "         WHERE deleted_at > ?1 AND until >= ?1)"
                "       GROUP BY ip_text ORDER BY 1 DESC) AS g"
                " CROSS JOIN ban_applications AS b ON b.id = g.id"
                " LEFT JOIN signal_occurences AS s ON s.id = b.signal_occurence_id",

        /* The change log (schema.h, version 2). */
        [BANDB_SQL_CHANGE_ADD] =
                "INSERT INTO ban_changes (at, kind, ban_id, ip_text)"
                " SELECT ?1, 1, id, ip_text FROM ban_applications WHERE signal_occurence_id = ?2 ORDER BY id",
        [BANDB_SQL_CHANGE_DEL_TARGET] =
                "INSERT INTO ban_changes (at, kind, ban_id, ip_text)"
                " SELECT ?1, 2, id, ip_text FROM ban_applications INDEXED BY " BANDB_IP_TEXT_INDEX
                " WHERE ip_text = ?2 AND deleted_at IS NULL ORDER BY id",
        [BANDB_SQL_CHANGE_DEL_ALL] =
                "INSERT INTO ban_changes (at, kind, ban_id, ip_text)"
                " SELECT ?1, 2, id, ip_text FROM ban_applications WHERE deleted_at IS NULL ORDER BY id",
        [BANDB_SQL_UNDO_CHANGES] =
                "DELETE FROM ban_changes WHERE ban_id IN (SELECT id FROM ban_applications WHERE signal_occurence_id = ?1)",
        [BANDB_SQL_CHANGES_MIN] = "SELECT coalesce(min(seq), 0) FROM ban_changes",
        [BANDB_SQL_CHANGES_MAX] = "SELECT coalesce(max(seq), 0) FROM ban_changes",
        [BANDB_SQL_CHANGES_GC] = "DELETE FROM ban_changes WHERE at < ?1 AND seq < ?2",
        /* read_at's columns (one ban: bancount 1), then seq, kind, at; the
         * ban row may be gone (garbage collection): the change's own
         * ip_text stays */
        [BANDB_SQL_READ_CHANGES] =
                "SELECT b.measure_source, c.ip_text, b.reason, 1, b.measure_type, b.target_cn,"
                " b.target_as_name, b.target_as, s.events_count, b.until, b.scope, b.value,"
                " c.seq, c.kind, c.at"
                " FROM ban_changes AS c"
                " LEFT JOIN ban_applications AS b ON b.id = c.ban_id"
                " LEFT JOIN signal_occurences AS s ON s.id = b.signal_occurence_id"
                " WHERE c.seq > ?1 ORDER BY c.seq",

        /* read_changes' columns over every ban kept: seq = the ban's id,
         * kind 1 (ADD), at = when it was made (read_history, ABI 2.2) */
        [BANDB_SQL_READ_HISTORY] =
                "SELECT b.measure_source, b.ip_text, b.reason, 1, b.measure_type, b.target_cn,"
                " b.target_as_name, b.target_as, NULL, b.until, b.scope, b.value, b.id, 1, b.created_at"
                " FROM ban_applications AS b WHERE b.created_at >= ?1 ORDER BY b.id",

        [BANDB_SQL_DELETE_ALL] =
                "UPDATE ban_applications INDEXED BY " BANDB_DELETED_UNTIL_INDEX
                " SET deleted_at = ?1, updated_at = ?1 WHERE deleted_at IS NULL",

        [BANDB_SQL_EXPIRE_PROBE] =
                "SELECT 1 FROM ban_applications WHERE deleted_at IS NULL AND until < ?1 LIMIT 1",
        [BANDB_SQL_EXPIRE] =
                "UPDATE ban_applications SET deleted_at = ?1, updated_at = ?1 WHERE id IN"
                " (SELECT id FROM ban_applications WHERE deleted_at IS NULL AND until < ?1 LIMIT ?2)",

        [BANDB_SQL_GC_CLEAR_BANS] = "DELETE FROM temp.bandb_gc_ban",
        [BANDB_SQL_GC_CLEAR_SIGNALS] = "DELETE FROM temp.bandb_gc_sig",
        [BANDB_SQL_GC_COUNT_EDGE] =
                "SELECT id FROM ban_applications ORDER BY id DESC LIMIT 1 OFFSET ?1",
        /* Ended bans: soft-deleted, or past until (flush: false never
         * soft-deletes them); the ban table from its start, the oldest
         * first. */
        [BANDB_SQL_GC_PICK_COUNT] =
                "INSERT INTO temp.bandb_gc_ban (id, sig) SELECT id, signal_occurence_id"
                " FROM ban_applications WHERE id <= ?1 AND (deleted_at IS NOT NULL OR until < ?3)"
                " ORDER BY id LIMIT ?2",
        /* never soft-deleted, ended before the cutoff: the (deleted_at,
         * until) index's range of active bans, up to the cutoff */
        [BANDB_SQL_GC_PICK_EXPIRED] =
                "INSERT INTO temp.bandb_gc_ban (id, sig) SELECT id, signal_occurence_id"
                " FROM ban_applications INDEXED BY " BANDB_DELETED_UNTIL_INDEX
                " WHERE deleted_at IS NULL AND until < ?1 ORDER BY deleted_at, until LIMIT ?2",
        /* How far behind collection is, counted up to a limit (index
         * ranges and the table's start: the cost of the limit at most) */
        [BANDB_SQL_GC_EXCESS_COUNT] =
                "SELECT count(*) FROM (SELECT 1 FROM ban_applications"
                " WHERE id <= ?1 AND (deleted_at IS NOT NULL OR until < ?2) LIMIT ?3)",
        [BANDB_SQL_GC_EXCESS_AGE] =
                "SELECT (SELECT count(*) FROM (SELECT 1 FROM ban_applications INDEXED BY " BANDB_DELETED_UNTIL_INDEX
                "        WHERE deleted_at < ?1 LIMIT ?2))"
                "     + (SELECT count(*) FROM (SELECT 1 FROM ban_applications INDEXED BY " BANDB_DELETED_UNTIL_INDEX
                "        WHERE deleted_at IS NULL AND until < ?1 LIMIT ?2))",
        [BANDB_SQL_GC_PICK_AGE] =
                "INSERT INTO temp.bandb_gc_ban (id, sig) SELECT id, signal_occurence_id"
                " FROM ban_applications INDEXED BY " BANDB_DELETED_UNTIL_INDEX
                " WHERE deleted_at < ?1 ORDER BY deleted_at LIMIT ?2",
        /* Signals that never had a ban, between two ids: the core's cursor
         * (everything before it is collected) and the first signal younger
         * than max_records_age (ids grow with created_at), so a chunk reads
         * only signals it may collect and the ones whose bans are kept. */
        [BANDB_SQL_GC_PICK_SIGNALS] =
                "INSERT INTO temp.bandb_gc_sig (id) SELECT s.id FROM signal_occurences AS s"
                " WHERE s.id > ?1 AND s.id < ?2"
                "   AND NOT EXISTS (SELECT 1 FROM ban_applications AS b WHERE b.signal_occurence_id = s.id)"
                " ORDER BY s.id LIMIT ?3",
        [BANDB_SQL_GC_DELETE_BANS] =
                "DELETE FROM ban_applications WHERE id IN (SELECT id FROM temp.bandb_gc_ban)"
                " AND (deleted_at IS NOT NULL OR until < ?1)",
        [BANDB_SQL_GC_ORPHANS] =
                "INSERT OR IGNORE INTO temp.bandb_gc_sig (id) SELECT sig FROM temp.bandb_gc_ban"
                " WHERE sig IS NOT NULL",
        [BANDB_SQL_GC_DELETE_SIGNALS] =
                "DELETE FROM signal_occurences WHERE id IN (SELECT id FROM temp.bandb_gc_sig)"
                " AND NOT EXISTS (SELECT 1 FROM ban_applications AS b"
                "                 WHERE b.signal_occurence_id = signal_occurences.id)",
        [BANDB_SQL_GC_DELETE_EVENTS] =
                "DELETE FROM event_sequences WHERE signal_occurence_id IN (SELECT id FROM temp.bandb_gc_sig)"
                " AND NOT EXISTS (SELECT 1 FROM signal_occurences AS s"
                "                 WHERE s.id = event_sequences.signal_occurence_id)",
        [BANDB_SQL_GC_LAST_SIG] = "SELECT max(id) FROM temp.bandb_gc_sig",
        [BANDB_SQL_GC_SIG_BOUNDARY] =
                "SELECT id FROM signal_occurences WHERE id > ?1 AND created_at >= ?2 ORDER BY id LIMIT 1",
        /* the falling-behind warning's figures: index ends, no scan */
        [BANDB_SQL_GC_BACKLOG_AGE] =
                "SELECT CAST(strftime('%s', min(deleted_at)) AS INTEGER) FROM ban_applications"
                " WHERE deleted_at IS NOT NULL",
        [BANDB_SQL_PAGE_COUNT] = "PRAGMA page_count",
        [BANDB_SQL_FREELIST_COUNT] = "PRAGMA freelist_count",
        [BANDB_SQL_PAGE_SIZE] = "PRAGMA page_size",
};

int bandb_prepare(sqlite3 *db, sqlite3_stmt *st[static _BANDB_SQL_MAX], int *failed) {
        int r;

        /* Per-connection scratch tables of the garbage collector. */
        r = sqlite3_exec(db,
                         "CREATE TEMP TABLE IF NOT EXISTS bandb_gc_ban (id INTEGER PRIMARY KEY, sig INTEGER);"
                         "CREATE TEMP TABLE IF NOT EXISTS bandb_gc_sig (id INTEGER PRIMARY KEY);",
                         NULL, NULL, NULL);
        if (r != SQLITE_OK) {
                *failed = -1;
                return r;
        }
        for (int i = 0; i < _BANDB_SQL_MAX; i++) {
                r = sqlite3_prepare_v3(db, bandb_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st[i], NULL);
                if (r != SQLITE_OK) {
                        *failed = i;
                        return r;
                }
        }
        return SQLITE_OK;
}

void bandb_finalize(sqlite3_stmt *st[static _BANDB_SQL_MAX]) {
        for (int i = 0; i < _BANDB_SQL_MAX; i++) {
                sqlite3_finalize(st[i]);
                st[i] = NULL;
        }
}
