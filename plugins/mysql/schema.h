/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The shared ban database on MySQL/MariaDB: table definitions, the schema
 * version and its migrations, the statements the plugin prepares, and the
 * conversion between Spillway's time (usec since the epoch, UTC) and
 * MYSQL_TIME. Shared by the plugin (mysql.c), its tests and its benchmark.
 *
 * Tables are CrowdSec v0.3's gorm tables with CrowdSec's column names and
 * gorm's MySQL types, except where those lose data (README.md, "Schema"):
 *   - times are DATETIME(6) in UTC (gorm: DATETIME in the local zone);
 *   - start_ip/end_ip are VARBINARY(16), IPv6 with IPv4 as ::ffff:a.b.c.d,
 *     compared bytewise (gorm: int unsigned, IPv4 only);
 *   - target_as is bigint (AS numbers go to 2^32 - 1), serialized is
 *     mediumtext, ip_text compares bytewise (utf8mb4_bin).
 *
 * Versions (table spillway_schema, one row; MySQL has no user_version):
 *   0  no spillway_schema table: an empty database, or CrowdSec v0.3's
 *   1  Spillway: the tables above with the indexes our queries need.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mysql.h>
#include <spillway/backend.h>

#include "spwp-bandb.h"

#define MYDB_SCHEMA_VERSION 3 /* 2: the ban-change log ban_changes (read_changes, ABI 2.1);
                                * 3: ban scopes (scope, value) and unique signal ids */

/* Where the version lives, and the names CrowdSec's tables are kept under
 * once a migration has copied their rows into ours. */
#define MYDB_VERSION_TABLE "spillway_schema"
#define MYDB_CROWDSEC_SUFFIX "_crowdsec_v03"

/* Schema 3: one row per (daemon signal id, origin). */
#define MYDB_SIGNAL_ID_INDEX "idx_signal_occurences_spillway_signal_id"

/* The index the soft-delete lookup is pinned to (FORCE INDEX). */
#define MYDB_IP_TEXT_INDEX "idx_ban_applications_ip_text_deleted_at"

/* A failure: the server's (or the client library's) error number and
 * message, and what we were doing. code 0: not a MySQL error. */
typedef spwp_bandb_error mydb_error;

/* Record the connection's last error into e (code and message). Returns -1. */
int mydb_error_from_conn(mydb_error *e, MYSQL *conn, const char *doing);
int mydb_error_from_stmt(mydb_error *e, MYSQL_STMT *st, const char *doing);

/* Convert t (usec since the epoch) to a DATETIME(6) value in UTC, clamped to
 * MySQL's range 1000-01-01 .. 9999-12-31 23:59:59.999999. */
void mydb_time_to_mysql(spw_usec_t t, MYSQL_TIME *ret);
/* The other way. Returns 0, or -EINVAL for a value that is not a date and
 * time (zero dates, months out of range). */
int mydb_time_from_mysql(const MYSQL_TIME *t, spw_usec_t *ret);

/* The schema version of the connection's database (0: no version table).
 * Returns 0, or -EIO with e set. */
int mydb_schema_version(MYSQL *conn, int *version, mydb_error *e);

/* Bring the schema to MYDB_SCHEMA_VERSION. Takes no lock (GET_LOCK is per
 * node on Galera): every step is idempotent and safe with hosts running it
 * at once, the version table's primary key keeps it one row, and a pass
 * that lost a race (mydb_migrate_retryable) is run again, up to
 * max_attempts passes; a migration interrupted half-way is finished by the
 * next start. *from is the version found (-1 if unknown); *crowdsec is set
 * when CrowdSec v0.3's tables were copied into ours. crowdsec_utc_offset is
 * the UTC offset in seconds of the zone CrowdSec wrote its times in (the
 * local zone: go-sql-driver's loc=Local).
 * Returns 0, -EPROTO (newer version than ours), -EBADMSG (the tables do not
 * have CrowdSec's layout: e says which), or -EIO for any other server error
 * (e). */
int mydb_migrate(MYSQL *conn, int max_attempts, long crowdsec_utc_offset, int *from, bool *crowdsec,
                 mydb_error *e);
/* A server error after which the migration is run again (a lost race). */
bool mydb_migrate_retryable(unsigned code);

/* The plugin's own tables outside the versioned schema: the lease table
 * (cluster-wide background work) and the batch tokens (did a batch whose
 * COMMIT lost its connection commit?). Created when missing. Returns 0 or
 * -1 with e set. */
#define MYDB_LEASE_TABLE "spillway_lease"
#define MYDB_BATCH_TABLE "spillway_batches"
int mydb_aux_tables(MYSQL *conn, mydb_error *e);

/* The statements, prepared once per connection. */
enum {
        MYDB_SQL_INSERT_SIGNAL,
        MYDB_SQL_INSERT_EVENT,
        MYDB_SQL_INSERT_BAN,
        MYDB_SQL_SUPERSEDE,        /* now, now, ip_text, ip_text, first ban id, manual, now */
        MYDB_SQL_UNDO_BANS,        /* signal id: remove a failed insert's rows */
        MYDB_SQL_UNDO_EVENTS,
        MYDB_SQL_UNDO_SIGNAL,
        MYDB_SQL_DELETE_TARGET,    /* now, now, ip_text */
        MYDB_SQL_DELETE_ALL,       /* now, now */
        MYDB_SQL_READ_AT,          /* at, at, at */
        MYDB_SQL_EXPIRE_PROBE,     /* now */
        MYDB_SQL_EXPIRE,           /* now, now, now, limit */
        MYDB_SQL_GC_COUNT_EDGE,    /* max_records: id of the newest ban not kept */
        MYDB_SQL_GC_PICK_COUNT,    /* edge id, now, limit -> (ban id, signal id) of ended bans */
        MYDB_SQL_GC_PICK_AGE,      /* cutoff, limit -> (ban id, signal id) */
        MYDB_SQL_GC_PICK_SIGNALS,  /* after id, before id, limit -> signal id (ban-less) */
        MYDB_SQL_GC_DELETE_BANS,   /* MYDB_GC_IN ids, the pick's now: only bans that ended */
        MYDB_SQL_GC_DELETE_SIGNALS,/* MYDB_GC_IN ids */
        MYDB_SQL_GC_DELETE_EVENTS, /* MYDB_GC_IN ids */
        MYDB_SQL_GC_SIG_BOUNDARY,  /* after id, cutoff -> the first signal after it stored at or after cutoff */
        MYDB_SQL_GC_BACKLOG_AGE,   /* -> the oldest deleted_at, seconds since the epoch */
        MYDB_SQL_GC_PICK_EXPIRED,  /* cutoff, limit -> (ban id, signal id): never soft-deleted, until < cutoff */
        MYDB_SQL_GC_EXCESS_COUNT,  /* edge, now, limit -> ended bans up to the edge, counted up to limit */
        MYDB_SQL_GC_EXCESS_AGE,    /* cutoff, limit, cutoff, limit -> bans ended before cutoff (limit per kind) */
        MYDB_SQL_DB_SIZE,          /* -> bytes used, bytes free (InnoDB's estimates) */
        MYDB_SQL_GET_LOCK,         /* name, timeout */
        MYDB_SQL_RELEASE_LOCK,     /* name */
        MYDB_SQL_CHANGE_ADD,       /* now, signal id */
        MYDB_SQL_CHANGE_DEL_TARGET,/* now, ip_text */
        MYDB_SQL_CHANGE_DEL_ALL,   /* now */
        MYDB_SQL_UNDO_CHANGES,     /* signal id */
        MYDB_SQL_CHANGES_MIN,
        MYDB_SQL_CHANGES_MAX,
        MYDB_SQL_CHANGES_GC,       /* cutoff, newest seq */
        MYDB_SQL_READ_CHANGES,     /* cursor */
        MYDB_SQL_READ_HISTORY,     /* since (read_history, ABI 2.2) */
        _MYDB_SQL_MAX,
};

/* Ids per GC delete statement (unused places are bound to 0, no row's id). */
#define MYDB_GC_IN 100

extern const char *const mydb_sql[_MYDB_SQL_MAX];

/* Prepare every statement into st[] (zeroed by the caller). On failure
 * returns -1 with e filled and *failed the index of the statement;
 * statements prepared so far stay in st[] for mydb_finalize(). */
int mydb_prepare(MYSQL *conn, MYSQL_STMT *st[static _MYDB_SQL_MAX], int *failed, mydb_error *e);
void mydb_finalize(MYSQL_STMT *st[static _MYDB_SQL_MAX]);

/* Parameters of the three INSERTs, in column order. */
enum {
        MYDB_SIG_CREATED_AT,
        MYDB_SIG_UPDATED_AT,
        MYDB_SIG_MAP_KEY,
        MYDB_SIG_SCENARIO,
        MYDB_SIG_BUCKET_ID,
        MYDB_SIG_ALERT_MESSAGE,
        MYDB_SIG_EVENTS_COUNT,
        MYDB_SIG_START_AT,
        MYDB_SIG_STOP_AT,
        MYDB_SIG_SOURCE_IP,
        MYDB_SIG_SOURCE_RANGE,
        MYDB_SIG_SOURCE_AS_NUMBER,
        MYDB_SIG_SOURCE_AS_ORG,
        MYDB_SIG_SOURCE_COUNTRY,
        MYDB_SIG_SOURCE_LATITUDE,
        MYDB_SIG_SOURCE_LONGITUDE,
        MYDB_SIG_DEST_IP,
        MYDB_SIG_CAPACITY,
        MYDB_SIG_LEAK_SPEED,
        MYDB_SIG_REPROCESS,
        MYDB_SIG_SPILLWAY_ID,
        MYDB_SIG_ORIGIN,
        _MYDB_SIG_MAX,
};

enum {
        MYDB_EVENT_CREATED_AT,
        MYDB_EVENT_UPDATED_AT,
        MYDB_EVENT_TIME,
        MYDB_EVENT_SOURCE_IP,
        MYDB_EVENT_SIGNAL_ID,
        MYDB_EVENT_SERIALIZED,
        _MYDB_EVENT_MAX,
};

enum {
        MYDB_BAN_CREATED_AT,
        MYDB_BAN_UPDATED_AT,
        MYDB_BAN_MEASURE_SOURCE,
        MYDB_BAN_MEASURE_TYPE,
        MYDB_BAN_MEASURE_EXTRA,
        MYDB_BAN_UNTIL,
        MYDB_BAN_START_IP,
        MYDB_BAN_END_IP,
        MYDB_BAN_TARGET_CN,
        MYDB_BAN_TARGET_AS,
        MYDB_BAN_TARGET_AS_NAME,
        MYDB_BAN_IP_TEXT,
        MYDB_BAN_REASON,
        MYDB_BAN_SCENARIO,
        MYDB_BAN_SIGNAL_ID,
        MYDB_BAN_SCOPE,
        MYDB_BAN_VALUE,
        _MYDB_BAN_MAX,
};

/* Columns of MYDB_SQL_READ_AT. */
enum {
        MYDB_ROW_SOURCE,
        MYDB_ROW_IPTEXT,
        MYDB_ROW_REASON,
        MYDB_ROW_BANCOUNT,
        MYDB_ROW_ACTION,
        MYDB_ROW_CN,
        MYDB_ROW_AS,
        MYDB_ROW_AS_NUMBER,
        MYDB_ROW_EVENTS_COUNT,
        MYDB_ROW_UNTIL,
        MYDB_ROW_SCOPE,
        MYDB_ROW_VALUE,
        _MYDB_ROW_MAX,
        /* MYDB_SQL_READ_CHANGES: the same, then */
        MYDB_ROW_SEQ = _MYDB_ROW_MAX,
        MYDB_ROW_KIND,
        MYDB_ROW_AT,
        _MYDB_CHANGE_MAX,
};

/* The widest varchar(255) utf8mb4 value, in bytes. */
#define MYDB_VARCHAR_BYTES 1020
