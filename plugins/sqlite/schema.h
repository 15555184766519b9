/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The ban database's schema, pragmas and statements, shared by the sqlite
 * plugin (sqlite.c) and the direct-insert ceiling program (bench-ceiling.c)
 * so that both write exactly the same rows the same way.
 *
 * Tables are CrowdSec v0.3's gorm tables with CrowdSec's column names. Two
 * storage choices differ from what gorm wrote and are normalised by the
 * migration from version 0:
 *   - times are UTC text "YYYY-MM-DD HH:MM:SS.ffffff+00:00" (fixed width,
 *     so text order is time order and the sqlite3 CLI's date functions read
 *     it); gorm/go-sqlite3 wrote the process's local zone and a variable
 *     fraction;
 *   - start_ip/end_ip are 16-byte BLOBs (IPv6, IPv4 as ::ffff:a.b.c.d), which
 *     SQLite compares with memcmp(); CrowdSec stored uint32 (IPv4 only).
 *
 * Versions (PRAGMA user_version):
 *   0  empty file, or a database created by CrowdSec v0.3 (gorm AutoMigrate)
 *   1  Spillway: the same tables, times and addresses normalised, the
 *      indexes our queries need instead of gorm's deleted_at indexes.
 *   2  the ban-change log ban_changes (read_changes, ABI 2.1): seq
 *      (AUTOINCREMENT: never reused, also after a rollback), at, kind
 *      (1 add, 2 delete), ban_id, ip_text.
 *   3  decision scopes and signal ids: ban_applications.scope ("Ip",
 *      "Range", "Country", ...) and .value (the target within the scope;
 *      ip_text is its key, "Scope:value" for scopes that are not
 *      addresses); signal_occurences.spillway_signal_id and
 *      .spillway_origin, unique together (a redelivered signal is stored
 *      once). NULL in rows from before.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>
#include <spillway/backend.h>

#define BANDB_SCHEMA_VERSION 3

/* "YYYY-MM-DD HH:MM:SS.ffffff+00:00" and its NUL. */
#define BANDB_TIME_LEN 32
#define BANDB_TIME_MAX (BANDB_TIME_LEN + 1)

/* Format t (usec since the epoch, UTC) the way the database stores times.
 * Times outside years 1..9999 are clamped. Returns buf. */
char *bandb_time_format(char buf[static BANDB_TIME_MAX], spw_usec_t t);

/* Parse a stored time: "YYYY-MM-DD HH:MM:SS", 'T' accepted for the space,
 * any number of fraction digits (microseconds kept), then "Z", "+HH:MM",
 * "-HH:MM", "+HHMM" or nothing (UTC). Returns 0 or -EINVAL. */
int bandb_time_parse(const char *s, size_t n, spw_usec_t *ret);

/* The connection settings every writer uses: auto_vacuum INCREMENTAL (takes
 * effect on a new file), WAL, synchronous, temp store in memory, page cache,
 * the WAL file cut back to 64 MiB after checkpoints. On failure returns the SQLite result code and
 * leaves sqlite3_errmsg() describing it. */
int bandb_apply_pragmas(sqlite3 *db, bool synchronous_full);

/* The page cache's default size (the cache_size key). */
#define BANDB_CACHE_KIB_DEFAULT 2048
#define BANDB_CACHE_SIZE_DEFAULT ((uint64_t) BANDB_CACHE_KIB_DEFAULT * 1024)
#define BANDB_STR_(x) #x
#define BANDB_STR(x) BANDB_STR_(x)

/* SQLite's process-wide settings (memory statistics off), once, before
 * the first connection is opened; without effect once SQLite runs. */
void bandb_global_config(void);

/* Bring the schema to BANDB_SCHEMA_VERSION in one IMMEDIATE transaction.
 * *from is set to the version found. Returns an SQLite result code with
 * SQLite's message in err; on SQLITE_ERROR with a version newer than ours,
 * *from tells which. The caller turns codes into messages. */
int bandb_migrate(sqlite3 *db, int *from, char *err, size_t err_size);

/* The statements, prepared once per connection. */
enum {
        BANDB_SQL_BEGIN,
        BANDB_SQL_COMMIT,
        BANDB_SQL_ROLLBACK,
        BANDB_SQL_INSERT_SIGNAL,
        BANDB_SQL_INSERT_EVENT,
        BANDB_SQL_INSERT_BAN,
        BANDB_SQL_SUPERSEDE,      /* ?1 now, ?2 ip_text, ?3 the new signal's first ban id, ?4 new ban is manual */
        BANDB_SQL_SAVEPOINT,      /* around the soft-deletes of a signal with several bans */
        BANDB_SQL_RELEASE,
        BANDB_SQL_ROLLBACK_TO,
        BANDB_SQL_UNDO_SIGNAL,    /* ?1 signal id: remove a failed insert's rows */
        BANDB_SQL_UNDO_EVENTS,
        BANDB_SQL_UNDO_BANS,
        BANDB_SQL_DELETE_TARGET,  /* ?1 now, ?2 ip_text */
        BANDB_SQL_READ_AT,        /* ?1 at */
        BANDB_SQL_DELETE_ALL,     /* ?1 now */
        BANDB_SQL_EXPIRE_PROBE,   /* ?1 now */
        BANDB_SQL_EXPIRE,         /* ?1 now, ?2 limit */
        BANDB_SQL_GC_CLEAR_BANS,
        BANDB_SQL_GC_CLEAR_SIGNALS,
        BANDB_SQL_GC_COUNT_EDGE,  /* ?1 max_records: id of the newest ban not kept */
        BANDB_SQL_GC_PICK_COUNT,  /* ?1 edge id, ?2 limit, ?3 now: ended bans */
        BANDB_SQL_GC_PICK_AGE,    /* ?1 cutoff, ?2 limit */
        BANDB_SQL_GC_PICK_SIGNALS,/* ?1 after id, ?2 before id, ?3 limit: ban-less signals */
        BANDB_SQL_GC_DELETE_BANS, /* ?1 the pick's now: only bans that ended */
        BANDB_SQL_GC_ORPHANS,
        BANDB_SQL_GC_DELETE_SIGNALS,
        BANDB_SQL_GC_DELETE_EVENTS,
        BANDB_SQL_GC_LAST_SIG,    /* the highest signal id picked */
        BANDB_SQL_GC_SIG_BOUNDARY,/* ?1 after id, ?2 cutoff: the first signal after ?1 stored at or after ?2 */
        BANDB_SQL_GC_BACKLOG_AGE, /* the oldest deleted_at, seconds since the epoch */
        BANDB_SQL_GC_PICK_EXPIRED,/* ?1 cutoff, ?2 limit: never soft-deleted, until before ?1 */
        BANDB_SQL_GC_EXCESS_COUNT,/* ?1 edge, ?2 now, ?3 limit: ended bans up to the edge, counted up to ?3 */
        BANDB_SQL_GC_EXCESS_AGE,  /* ?1 cutoff, ?2 limit: bans that ended before ?1, up to ?2 of each kind */
        BANDB_SQL_PAGE_COUNT,
        BANDB_SQL_FREELIST_COUNT,
        BANDB_SQL_PAGE_SIZE,
        BANDB_SQL_CHANGE_ADD,     /* ?1 now, ?2 signal id */
        BANDB_SQL_CHANGE_DEL_TARGET, /* ?1 now, ?2 ip_text */
        BANDB_SQL_CHANGE_DEL_ALL, /* ?1 now */
        BANDB_SQL_UNDO_CHANGES,   /* ?1 signal id */
        BANDB_SQL_CHANGES_MIN,
        BANDB_SQL_CHANGES_MAX,
        BANDB_SQL_CHANGES_GC,     /* ?1 cutoff, ?2 newest seq */
        BANDB_SQL_READ_CHANGES,   /* ?1 cursor */
        BANDB_SQL_READ_HISTORY,   /* ?1 since (read_history, ABI 2.2) */
        BANDB_SQL_SUPERSEDE_PROBE,/* ?2 ip_text: 1 if the target has more than one active ban */
        _BANDB_SQL_MAX,
};

extern const char *const bandb_sql[_BANDB_SQL_MAX];

/* Create the GC's temp tables and prepare every statement into st[] (which
 * must be zeroed). On failure returns the SQLite code and sets *failed to
 * the failing statement's index (-1: the temp tables); statements prepared
 * so far stay in st[] for bandb_finalize(). */
int bandb_prepare(sqlite3 *db, sqlite3_stmt *st[static _BANDB_SQL_MAX], int *failed);
/* Finalize every statement in st[] (NULL entries are fine). */
void bandb_finalize(sqlite3_stmt *st[static _BANDB_SQL_MAX]);

/* Parameter numbers of the three INSERTs, in column order. */
enum {
        BANDB_SIG_CREATED_AT = 1, /* also updated_at */
        BANDB_SIG_MAP_KEY,
        BANDB_SIG_SCENARIO,
        BANDB_SIG_BUCKET_ID,
        BANDB_SIG_ALERT_MESSAGE,
        BANDB_SIG_EVENTS_COUNT,
        BANDB_SIG_START_AT,
        BANDB_SIG_STOP_AT,
        BANDB_SIG_SOURCE_IP,
        BANDB_SIG_SOURCE_RANGE,
        BANDB_SIG_SOURCE_AS_NUMBER,
        BANDB_SIG_SOURCE_AS_ORG,
        BANDB_SIG_SOURCE_COUNTRY,
        BANDB_SIG_SOURCE_LATITUDE,
        BANDB_SIG_SOURCE_LONGITUDE,
        BANDB_SIG_DEST_IP,
        BANDB_SIG_CAPACITY,
        BANDB_SIG_LEAK_SPEED,
        BANDB_SIG_REPROCESS,
        BANDB_SIG_SPILLWAY_ID,
        BANDB_SIG_ORIGIN,
};

enum {
        BANDB_EVENT_CREATED_AT = 1,
        BANDB_EVENT_TIME,
        BANDB_EVENT_SOURCE_IP,
        BANDB_EVENT_SIGNAL_ID,
        BANDB_EVENT_SERIALIZED,
};

enum {
        BANDB_BAN_CREATED_AT = 1,
        BANDB_BAN_MEASURE_SOURCE,
        BANDB_BAN_MEASURE_TYPE,
        BANDB_BAN_MEASURE_EXTRA,
        BANDB_BAN_UNTIL,
        BANDB_BAN_START_IP,
        BANDB_BAN_END_IP,
        BANDB_BAN_TARGET_CN,
        BANDB_BAN_TARGET_AS,
        BANDB_BAN_TARGET_AS_NAME,
        BANDB_BAN_IP_TEXT,
        BANDB_BAN_REASON,
        BANDB_BAN_SCENARIO,
        BANDB_BAN_SIGNAL_ID,
        BANDB_BAN_SCOPE,
        BANDB_BAN_VALUE,
};

/* Columns of BANDB_SQL_READ_AT. */
enum {
        BANDB_ROW_SOURCE,
        BANDB_ROW_IPTEXT,
        BANDB_ROW_REASON,
        BANDB_ROW_BANCOUNT,
        BANDB_ROW_ACTION,
        BANDB_ROW_CN,
        BANDB_ROW_AS,
        BANDB_ROW_AS_NUMBER,
        BANDB_ROW_EVENTS_COUNT,
        BANDB_ROW_UNTIL,
        BANDB_ROW_SCOPE,
        BANDB_ROW_VALUE,
};

/* The index expiry, DeleteAll, ReadAT and the GC by age are pinned to. */
#define BANDB_DELETED_UNTIL_INDEX "idx_ban_applications_deleted_at_until"

/* A database smaller than this that was created without auto_vacuum is
 * converted (VACUUM) when the plugin opens it; larger ones are left to the
 * operator (README.md). */
#define BANDB_AUTO_VACUUM_CONVERT_MAX (UINT64_C(64) << 20)

/* Schema 3: one row per (daemon signal id, origin). */
#define BANDB_SIGNAL_ID_INDEX "idx_signal_occurences_spillway_signal_id"

/* The index the soft-delete lookup is pinned to (INDEXED BY). */
#define BANDB_IP_TEXT_INDEX "idx_ban_applications_ip_text_deleted_at"
