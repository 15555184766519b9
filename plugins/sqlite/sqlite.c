/* SPDX-License-Identifier: MIT */
/*
 * The sqlite backend: the ban database. Stores each routed signal, its
 * event sequence and its ban applications in CrowdSec v0.3's tables (see
 * schema.c), answers "which bans are active at T", deletes bans on request,
 * expires and garbage-collects them in the background.
 *
 * One instance owns one SQLite connection and is only ever called from its
 * own worker thread (the ABI's rule), so there is no locking here and the
 * connection is opened SQLITE_OPEN_NOMUTEX.
 *
 * The batch. The first write after a flush opens a transaction (BEGIN
 * IMMEDIATE, so a competing writer shows up as a retryable insert rather
 * than as a failed commit); flush() commits it. Everything that writes
 * while a batch is open joins it: inserts, Delete/DeleteAll and the timers
 * (the daemon flushes after each of those). Without an open batch, admin
 * writes run as their own implicit transaction and timer work commits in
 * chunks of its own, so nothing the daemon did not ask to batch waits for
 * a flush.
 *
 * Invariants:
 *   - in_txn is true exactly while our BEGIN is open; dirty once something
 *     was written in it. After every failed statement we ask SQLite whether
 *     it rolled the whole transaction back (it may, on I/O errors and a
 *     full disk); if a dirty batch was lost that way, the next flush() fails
 *     with -EAGAIN, so the daemon inserts the whole batch again (all or
 *     nothing, at-least-once).
 *   - A failing insert leaves the batch as it was: every row an insert
 *     writes carries the new signal's id, so undoing it is three DELETEs by
 *     that id (a SAVEPOINT per insert would do the same but costs ~15% of
 *     the insert rate and 46% more instructions, see README.md). The
 *     soft-delete of older bans is the insert's last step: one UPDATE,
 *     atomic by itself, or for a signal with several bans, several inside a
 *     savepoint. If the undo fails too, the batch is rolled back and
 *     reported lost.
 *   - One active ban per target: after a signal's bans are inserted, older
 *     active bans with the same ip_text are soft-deleted (deleted_at = now),
 *     through the (ip_text, deleted_at) index, pinned with INDEXED BY.
 *   - Time comes from host->now() only (tests move the clock); it is stored
 *     as fixed-width UTC text, so SQL compares it as text.
 *   - Strings from the daemon are bound SQLITE_STATIC: they outlive the
 *     step, and bindings are cleared right after it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <spillway/backend.h>
#include <sqlite3.h>

#include "schema.h"
#include "spwp-config.h"

#ifndef BANDB_VERSION
#define BANDB_VERSION "unknown"
#endif

#define USEC_PER_MSEC INT64_C(1000)
#define USEC_PER_SEC  INT64_C(1000000)

#define EXPIRE_INTERVAL   (1 * USEC_PER_SEC)
#define GC_INTERVAL       (60 * USEC_PER_SEC)
/* Background work is done in steps of at most CHUNK_ROWS rows, each its own
 * transaction when no batch is open, and at most MAX_CHUNKS steps per timer
 * run (the rest waits for the next run): inserts never wait long. */
#define CHUNK_ROWS        1000
#define MAX_CHUNKS        10

typedef struct bandb {
        spw_ctx *ctx;
        const struct spw_host *host;
        sqlite3 *db;
        sqlite3_stmt *st[_BANDB_SQL_MAX];
        char *path;

        /* configuration */
        spwp_bandb_keys keys;           /* flush, max_records, max_records_age, debug */
        bool synchronous_full;
        spw_usec_t busy_timeout;

        /* the batch */
        bool in_txn;
        bool dirty;                     /* something was written in the batch */
        bool batch_lost;
        uint64_t n_pending;             /* inserts since the last flush */

        /* SQLite's message of a failure we had to roll back (to a
         * savepoint) before reporting it: that resets sqlite3_errmsg() */
        char err[256];

        /* totals for `spillwayctl status` */
        uint64_t n_expired;
        uint64_t n_collected;
} bandb;

static bandb *bandb_free(bandb *b);

/* ------------------------------------------------------------ config */

static const spw_config_key bandb_config_keys[] = {
        { "db_path", SPW_CONFIG_STRING, "<state directory>/spillway.db", NULL,
          "database file; created if missing; relative paths are under the state directory" },
        { "type", SPW_CONFIG_ENUM, "sqlite", "sqlite|mysql",
          "CrowdSec's database type key, accepted so its database.yaml loads; mysql is the mysql backend's job" },
        { "flush", SPW_CONFIG_BOOL, "true", NULL,
          "expire bans automatically: every second, bans past `until` are soft-deleted" },
        { "max_records", SPW_CONFIG_INT, "10000", NULL,
          "keep at most this many bans: older soft-deleted bans (and their signals) are removed; 0 = no limit" },
        { "max_records_age", SPW_CONFIG_DURATION, "720h", NULL,
          "remove soft-deleted bans older than this (and their signals), and signals without bans; 0 = no limit" },
        { "synchronous", SPW_CONFIG_ENUM, "normal", "normal|full",
          "SQLite synchronous mode with WAL: normal may lose the last commits on power loss, full fsyncs each commit" },
        { "busy_timeout", SPW_CONFIG_DURATION, "5s", NULL,
          "how long to wait for another process holding the database lock" },
        { "debug", SPW_CONFIG_BOOL, "false", NULL,
          "log every stored signal at debug level" },
        {}
};

static int bandb_config_error(bandb *b, const char *key, const char *value, const char *expected) {
        b->host->set_error(b->ctx, "config key %s: expected %s, got \"%s\"; the backend is not started",
                           key, expected, value);
        return -EINVAL;
}

static int bandb_configure(bandb *b, const spw_kv *config, size_t n_config, const char **db_path) {
        for (size_t i = 0; i < n_config; i++) {
                const char *k = config[i].key, *v = config[i].value ? config[i].value : "", *expected;
                int r;

                if (strcmp(k, "db_path") == 0) {
                        if (!*v)
                                return bandb_config_error(b, k, v, "a file path");
                        *db_path = v;
                } else if (strcmp(k, "type") == 0) {
                        if (strcmp(v, "mysql") == 0) {
                                b->host->set_error(b->ctx,
                                                   "config key type: \"mysql\" is served by the mysql backend, "
                                                   "not by this sqlite plugin; point this backend's `path:` at "
                                                   "mysql.so and give it the mysql keys; the backend is not started");
                                return -EINVAL;
                        }
                        if (strcmp(v, "sqlite") != 0)
                                return bandb_config_error(b, k, v, "sqlite (or mysql, with the mysql backend)");
                } else if ((r = spwp_bandb_keys_set(&b->keys, k, v, &expected)) != 0) {
                        if (r < 0)
                                return bandb_config_error(b, k, v, expected);
                } else if (strcmp(k, "busy_timeout") == 0) {
                        if (spwp_parse_duration(v, &b->busy_timeout) < 0)
                                return bandb_config_error(b, k, v, "a duration like 5s or 500ms");
                } else if (strcmp(k, "synchronous") == 0) {
                        if (strcasecmp(v, "normal") == 0)
                                b->synchronous_full = false;
                        else if (strcasecmp(v, "full") == 0)
                                b->synchronous_full = true;
                        else
                                return bandb_config_error(b, k, v, "normal or full");
                } else
                        /* The daemon refuses unknown keys from files; one that
                         * still reaches us is a default the daemon merged in. */
                        b->host->log(b->ctx, LOG_WARNING, "ignoring unknown config key %s", k);
        }
        return 0;
}

/* ------------------------------------------------------------ errors */

static bool rc_transient(int rc) {
        switch (rc & 0xff) {
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
        case SQLITE_FULL:
        case SQLITE_IOERR:
        case SQLITE_NOMEM:
        case SQLITE_CANTOPEN:
        case SQLITE_READONLY:
        case SQLITE_PROTOCOL:
        case SQLITE_INTERRUPT:
                return true;
        default:
                return false;
        }
}

static int rc_errno(int rc) {
        switch (rc & 0xff) {
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_IOERR:
                return -EIO;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
                return -EBADMSG;
        case SQLITE_CANTOPEN:
        case SQLITE_READONLY:
        case SQLITE_PERM:
        case SQLITE_AUTH:
                return -EACCES;
        case SQLITE_CONSTRAINT:
        case SQLITE_TOOBIG:
        case SQLITE_MISMATCH:
        case SQLITE_RANGE:
                return -EINVAL;
        default:
                return -EPROTO;
        }
}

/* An error while opening or migrating, with what to do about it. msg is
 * SQLite's message, or NULL for the connection's last one. */
static int bandb_open_error(bandb *b, int rc, const char *doing, const char *msg) {
        if (!msg)
                msg = b->db ? sqlite3_errmsg(b->db) : sqlite3_errstr(rc);

        switch (rc & 0xff) {
        case SQLITE_NOTADB:
        case SQLITE_CORRUPT:
                b->host->set_error(b->ctx,
                                   "%s: %s: %s: the file is damaged or is not an SQLite database; "
                                   "move it aside (mv %s %s.broken) to start a new ban database, "
                                   "or restore a backup; the backend is not started",
                                   b->path, doing, msg, b->path, b->path);
                return -EBADMSG;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                b->host->set_error(b->ctx,
                                   "%s: %s: %s: another process kept the database locked for longer "
                                   "than busy_timeout (%" PRId64 " ms); find it with `fuser %s`, stop it "
                                   "or raise busy_timeout; the backend is not started",
                                   b->path, doing, msg, b->busy_timeout / USEC_PER_MSEC, b->path);
                return -EBUSY;
        case SQLITE_CANTOPEN:
        case SQLITE_READONLY:
        case SQLITE_PERM:
        case SQLITE_AUTH:
                b->host->set_error(b->ctx,
                                   "%s: %s: %s: the file and its directory must be writable by uid %u "
                                   "(SQLite creates %s-wal and %s-shm beside it); fix their owner and mode "
                                   "or set db_path; the backend is not started",
                                   b->path, doing, msg, (unsigned) geteuid(), b->path, b->path);
                return -EACCES;
        case SQLITE_FULL:
                b->host->set_error(b->ctx, "%s: %s: %s: the filesystem is full; free some space; "
                                   "the backend is not started", b->path, doing, msg);
                return -ENOSPC;
        default:
                b->host->set_error(b->ctx, "%s: %s: %s; the backend is not started", b->path, doing, msg);
                return rc_errno(rc);
        }
}

/* Catch a transaction SQLite rolled back by itself after a failure. */
static void bandb_check_txn(bandb *b) {
        if (b->in_txn && sqlite3_get_autocommit(b->db)) {
                b->in_txn = false;
                b->batch_lost = b->batch_lost || b->dirty;
                b->dirty = false;
        }
}

/* ------------------------------------------------------------ helpers */

/* Step a statement, reset it and clear its bindings. Returns SQLITE_OK or
 * the error; sqlite3_errmsg() describes it until the next statement. */
static int bandb_run(bandb *b, int which) {
        sqlite3_stmt *st = b->st[which];
        int rc = sqlite3_step(st);

        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static int bind_text(sqlite3_stmt *st, int i, const char *s) {
        return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

/* 0 (unset) is stored as NULL. buf must live until the step. */
static int bind_time(sqlite3_stmt *st, int i, spw_usec_t t, char buf[static BANDB_TIME_MAX]) {
        if (t == 0)
                return sqlite3_bind_null(st, i);
        return sqlite3_bind_text(st, i, bandb_time_format(buf, t), BANDB_TIME_LEN, SQLITE_STATIC);
}

static int bind_nonzero(sqlite3_stmt *st, int i, int64_t v) {
        return v ? sqlite3_bind_int64(st, i, v) : sqlite3_bind_null(st, i);
}

static int first_error(const int *rcs, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (rcs[i] != SQLITE_OK)
                        return rcs[i];
        return SQLITE_OK;
}
#define FIRST_ERROR(...) first_error((const int[]) { __VA_ARGS__ }, sizeof((const int[]) { __VA_ARGS__ }) / sizeof(int))

/* Open the batch if none is open. */
static int bandb_begin(bandb *b) {
        int rc;

        if (b->in_txn)
                return SQLITE_OK;
        rc = bandb_run(b, BANDB_SQL_BEGIN);
        if (rc == SQLITE_OK)
                b->in_txn = true;
        return rc;
}

/* ------------------------------------------------------------ insert */

/* The signal's rows: the signal, its events, its bans, then the soft-delete
 * of older active bans of the same targets. *id is the new signal's id once
 * its row exists (0 before); *what says which step failed. */
static int bandb_write_signal(bandb *b, const spw_signal *sig, const char *now, sqlite3_int64 *id,
                              const char **what) {
        const spw_source *src = sig->has_source ? &sig->source : NULL;
        char t1[BANDB_TIME_MAX], t2[BANDB_TIME_MAX];
        sqlite3_int64 first_ban = 0;
        sqlite3_stmt *st;
        int rc;

        b->err[0] = 0;
        *what = "inserting into signal_occurences";
        st = b->st[BANDB_SQL_INSERT_SIGNAL];
        rc = FIRST_ERROR(
                sqlite3_bind_text(st, BANDB_SIG_CREATED_AT, now, BANDB_TIME_LEN, SQLITE_STATIC),
                bind_text(st, BANDB_SIG_MAP_KEY, sig->map_key),
                bind_text(st, BANDB_SIG_SCENARIO, sig->scenario),
                bind_text(st, BANDB_SIG_BUCKET_ID, sig->bucket_id),
                bind_text(st, BANDB_SIG_ALERT_MESSAGE, sig->alert_message),
                sqlite3_bind_int64(st, BANDB_SIG_EVENTS_COUNT, sig->events_count),
                bind_time(st, BANDB_SIG_START_AT, sig->start_at, t1),
                bind_time(st, BANDB_SIG_STOP_AT, sig->stop_at, t2),
                bind_text(st, BANDB_SIG_SOURCE_IP, sig->source_ip ? sig->source_ip : src ? src->ip : NULL),
                bind_text(st, BANDB_SIG_SOURCE_RANGE,
                          sig->source_range ? sig->source_range : src ? src->range : NULL),
                bind_text(st, BANDB_SIG_SOURCE_AS_NUMBER,
                          sig->source_as_number ? sig->source_as_number : src ? src->as_number : NULL),
                bind_text(st, BANDB_SIG_SOURCE_AS_ORG,
                          sig->source_as_org ? sig->source_as_org : src ? src->as_org : NULL),
                bind_text(st, BANDB_SIG_SOURCE_COUNTRY,
                          sig->source_country ? sig->source_country : src ? src->country : NULL),
                sqlite3_bind_double(st, BANDB_SIG_SOURCE_LATITUDE,
                                    sig->source_latitude != 0 || !src ? sig->source_latitude : src->latitude),
                sqlite3_bind_double(st, BANDB_SIG_SOURCE_LONGITUDE,
                                    sig->source_longitude != 0 || !src ? sig->source_longitude : src->longitude),
                bind_text(st, BANDB_SIG_DEST_IP, sig->dest_ip),
                sqlite3_bind_int64(st, BANDB_SIG_CAPACITY, sig->capacity),
                sqlite3_bind_int64(st, BANDB_SIG_LEAK_SPEED, sig->leak_speed_ns),
                sqlite3_bind_int(st, BANDB_SIG_REPROCESS, sig->reprocess));
        if (rc == SQLITE_OK)
                rc = bandb_run(b, BANDB_SQL_INSERT_SIGNAL);
        if (rc != SQLITE_OK)
                return rc;
        *id = sqlite3_last_insert_rowid(b->db);

        *what = "inserting into event_sequences";
        st = b->st[BANDB_SQL_INSERT_EVENT];
        for (size_t i = 0; i < sig->n_events; i++) {
                const spw_event *e = &sig->events[i];

                rc = FIRST_ERROR(sqlite3_bind_text(st, BANDB_EVENT_CREATED_AT, now, BANDB_TIME_LEN, SQLITE_STATIC),
                                 bind_time(st, BANDB_EVENT_TIME, e->time, t1),
                                 bind_text(st, BANDB_EVENT_SOURCE_IP, e->source_ip),
                                 sqlite3_bind_int64(st, BANDB_EVENT_SIGNAL_ID, *id),
                                 bind_text(st, BANDB_EVENT_SERIALIZED, e->serialized));
                if (rc == SQLITE_OK)
                        rc = bandb_run(b, BANDB_SQL_INSERT_EVENT);
                if (rc != SQLITE_OK)
                        return rc;
        }

        *what = "inserting into ban_applications";
        st = b->st[BANDB_SQL_INSERT_BAN];
        for (size_t i = 0; i < sig->n_bans; i++) {
                const spw_ban *ban = &sig->bans[i];

                rc = FIRST_ERROR(sqlite3_bind_text(st, BANDB_BAN_CREATED_AT, now, BANDB_TIME_LEN, SQLITE_STATIC),
                                 bind_text(st, BANDB_BAN_MEASURE_SOURCE, ban->measure_source),
                                 bind_text(st, BANDB_BAN_MEASURE_TYPE, ban->measure_type),
                                 bind_text(st, BANDB_BAN_MEASURE_EXTRA, ban->measure_extra),
                                 bind_time(st, BANDB_BAN_UNTIL, ban->until, t1),
                                 sqlite3_bind_blob(st, BANDB_BAN_START_IP, ban->start_ip, 16, SQLITE_STATIC),
                                 sqlite3_bind_blob(st, BANDB_BAN_END_IP, ban->end_ip, 16, SQLITE_STATIC),
                                 bind_text(st, BANDB_BAN_TARGET_CN, ban->target_cn),
                                 bind_nonzero(st, BANDB_BAN_TARGET_AS, ban->target_as),
                                 bind_text(st, BANDB_BAN_TARGET_AS_NAME, ban->target_as_name),
                                 bind_text(st, BANDB_BAN_IP_TEXT, ban->ip_text),
                                 bind_text(st, BANDB_BAN_REASON, ban->reason),
                                 bind_text(st, BANDB_BAN_SCENARIO, ban->scenario),
                                 sqlite3_bind_int64(st, BANDB_BAN_SIGNAL_ID, *id));
                if (rc == SQLITE_OK)
                        rc = bandb_run(b, BANDB_SQL_INSERT_BAN);
                if (rc != SQLITE_OK)
                        return rc;
                if (i == 0)
                        first_ban = sqlite3_last_insert_rowid(b->db);
        }

        if (sig->n_bans == 0)
                return SQLITE_OK;
        *what = "soft-deleting the targets' older active bans";
        /* One UPDATE is atomic by itself; several are made so by a savepoint
         * (only signals with more than one ban pay for it). */
        if (sig->n_bans > 1) {
                rc = bandb_run(b, BANDB_SQL_SAVEPOINT);
                if (rc != SQLITE_OK)
                        return rc;
        }
        st = b->st[BANDB_SQL_SUPERSEDE];
        for (size_t i = 0; rc == SQLITE_OK && i < sig->n_bans; i++) {
                rc = FIRST_ERROR(sqlite3_bind_text(st, 1, now, BANDB_TIME_LEN, SQLITE_STATIC),
                                 bind_text(st, 2, sig->bans[i].ip_text),
                                 sqlite3_bind_int64(st, 3, first_ban));
                if (rc == SQLITE_OK)
                        rc = bandb_run(b, BANDB_SQL_SUPERSEDE);
        }
        if (sig->n_bans > 1 && !sqlite3_get_autocommit(b->db)) {
                if (rc == SQLITE_OK)
                        return bandb_run(b, BANDB_SQL_RELEASE);
                /* keep the failure's message: the caller reports it */
                snprintf(b->err, sizeof b->err, "%s", sqlite3_errmsg(b->db));
                if (bandb_run(b, BANDB_SQL_ROLLBACK_TO) == SQLITE_OK)
                        bandb_run(b, BANDB_SQL_RELEASE);
        }
        return rc;
}

/* Remove the rows of a failed insert (see the top comment). If that fails
 * too, give up the batch: roll it back and let flush() report it lost. */
static void bandb_undo(bandb *b, sqlite3_int64 id) {
        static const int undo[] = { BANDB_SQL_UNDO_BANS, BANDB_SQL_UNDO_EVENTS, BANDB_SQL_UNDO_SIGNAL };
        int rc = SQLITE_OK;

        if (id == 0 || !b->in_txn)
                return;
        for (size_t i = 0; rc == SQLITE_OK && i < sizeof undo / sizeof undo[0]; i++) {
                rc = sqlite3_bind_int64(b->st[undo[i]], 1, id);
                if (rc == SQLITE_OK)
                        rc = bandb_run(b, undo[i]);
        }
        if (rc == SQLITE_OK)
                return;
        b->host->log(b->ctx, LOG_WARNING, "%s: cannot undo the failed insert (%s); rolling back the batch of "
                     "%" PRIu64 " signal(s), the next flush reports it", b->path, sqlite3_errmsg(b->db),
                     b->n_pending);
        if (!sqlite3_get_autocommit(b->db))
                sqlite3_exec(b->db, "ROLLBACK", NULL, NULL, NULL);
        b->in_txn = false;
        b->batch_lost = b->batch_lost || b->dirty;
        b->dirty = false;
}

static int bandb_reject(bandb *b, const spw_signal *sig, const char *why) {
        b->host->set_error(b->ctx, "%s: signal %" PRIu64 " (scenario %s) %s; signal rejected",
                           b->path, sig->id, sig->scenario ? sig->scenario : "none", why);
        return SPW_INSERT_REJECT;
}

static int bandb_insert(void *userdata, const spw_signal *sig) {
        bandb *b = userdata;
        char now[BANDB_TIME_MAX];
        const char *what = "opening the batch transaction";
        sqlite3_int64 id = 0;
        bool transient;
        int rc;

        if (!sig || !SPW_HAS_MEMBER(sig, spw_signal, n_bans)) {
                b->host->set_error(b->ctx, "%s: signal structure too small for this plugin; signal rejected",
                                   b->path);
                return SPW_INSERT_REJECT;
        }
        if ((sig->n_bans && !sig->bans) || (sig->n_events && !sig->events))
                return bandb_reject(b, sig, "has a ban or event count but no array");
        for (size_t i = 0; i < sig->n_bans; i++)
                if (!sig->bans[i].ip_text)
                        return bandb_reject(b, sig, "has a ban without ip_text (the ban's target)");

        bandb_time_format(now, b->host->now(b->ctx));

        rc = bandb_begin(b);
        if (rc == SQLITE_OK)
                rc = bandb_write_signal(b, sig, now, &id, &what);
        if (rc == SQLITE_OK) {
                b->dirty = true;
                b->n_pending++;
                if (b->keys.debug)
                        b->host->log(b->ctx, LOG_DEBUG,
                                     "stored signal %" PRIu64 ": scenario %s, source %s, %zu ban(s), %zu event(s)",
                                     sig->id, sig->scenario ? sig->scenario : "none",
                                     sig->source_ip ? sig->source_ip : "none", sig->n_bans, sig->n_events);
                return SPW_INSERT_OK;
        }

        transient = rc_transient(rc);
        b->host->set_error(b->ctx, "%s: cannot store signal %" PRIu64 " (scenario %s): %s while %s; %s",
                           b->path, sig->id, sig->scenario ? sig->scenario : "none",
                           b->err[0] ? b->err : sqlite3_errmsg(b->db), what,
                           transient ? "will retry" : "signal rejected");
        bandb_check_txn(b);
        bandb_undo(b, id);
        return transient ? SPW_INSERT_RETRY : SPW_INSERT_REJECT;
}

/* ------------------------------------------------------------ flush */

static int bandb_flush(void *userdata) {
        bandb *b = userdata;
        uint64_t n = b->n_pending;
        int rc;

        if (b->batch_lost) {
                if (b->in_txn && !sqlite3_get_autocommit(b->db))
                        bandb_run(b, BANDB_SQL_ROLLBACK);
                b->in_txn = b->batch_lost = b->dirty = false;
                b->n_pending = 0;
                b->host->set_error(b->ctx,
                                   "%s: SQLite rolled the batch of %" PRIu64 " signal(s) back after an earlier "
                                   "error (logged with that insert); the batch will be inserted again",
                                   b->path, n);
                return -EAGAIN;
        }
        if (!b->in_txn)
                return 0;

        rc = bandb_run(b, BANDB_SQL_COMMIT);
        if (rc == SQLITE_OK) {
                b->in_txn = b->dirty = false;
                b->n_pending = 0;
                return 0;
        }

        b->host->set_error(b->ctx, "%s: cannot commit the batch of %" PRIu64 " signal(s): %s; rolled back, %s",
                           b->path, n, sqlite3_errmsg(b->db),
                           rc_transient(rc) ? "will retry" : "the batch is dropped");
        if (!sqlite3_get_autocommit(b->db))
                bandb_run(b, BANDB_SQL_ROLLBACK);
        b->in_txn = b->dirty = false;
        b->n_pending = 0;
        return rc_transient(rc) ? -EAGAIN : rc_errno(rc);
}

/* ------------------------------------------------------------ read_at */

static int bandb_read_at(void *userdata, spw_usec_t at, spw_row_fn fn, void *fn_userdata) {
        bandb *b = userdata;
        sqlite3_stmt *st = b->st[BANDB_SQL_READ_AT];
        char at_text[BANDB_TIME_MAX];
        int rc, r = 0;

        rc = sqlite3_bind_text(st, 1, bandb_time_format(at_text, at), BANDB_TIME_LEN, SQLITE_STATIC);
        while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                spw_ban_row row = {
                        .size = sizeof(spw_ban_row),
                        .source = (const char *) sqlite3_column_text(st, BANDB_ROW_SOURCE),
                        .iptext = (const char *) sqlite3_column_text(st, BANDB_ROW_IPTEXT),
                        .reason = (const char *) sqlite3_column_text(st, BANDB_ROW_REASON),
                        .bancount = sqlite3_column_int64(st, BANDB_ROW_BANCOUNT),
                        .action = (const char *) sqlite3_column_text(st, BANDB_ROW_ACTION),
                        .cn = (const char *) sqlite3_column_text(st, BANDB_ROW_CN),
                        .as = (const char *) sqlite3_column_text(st, BANDB_ROW_AS),
                        .as_number = sqlite3_column_int64(st, BANDB_ROW_AS_NUMBER),
                        .events_count = sqlite3_column_int64(st, BANDB_ROW_EVENTS_COUNT),
                };
                const char *until = (const char *) sqlite3_column_text(st, BANDB_ROW_UNTIL);

                if (until)
                        (void) bandb_time_parse(until, (size_t) sqlite3_column_bytes(st, BANDB_ROW_UNTIL),
                                                &row.until);
                r = fn(&row, fn_userdata);
                if (r != 0)
                        break;
                rc = SQLITE_OK;
        }
        if (r == 0 && rc != SQLITE_DONE) {
                b->host->set_error(b->ctx, "%s: cannot read active bans: %s", b->path, sqlite3_errmsg(b->db));
                r = rc_errno(rc);
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        bandb_check_txn(b);
        return r;
}

/* ------------------------------------------------------------ delete */

/* Admin writes join the open batch if there is one (the daemon flushes right
 * after, and they keep their order with the inserts); otherwise the UPDATE
 * is its own transaction, durable on return. */
static int bandb_soft_delete(bandb *b, int which, const char *target, uint64_t *count) {
        sqlite3_stmt *st = b->st[which];
        char now[BANDB_TIME_MAX];
        int rc;

        rc = sqlite3_bind_text(st, 1, bandb_time_format(now, b->host->now(b->ctx)), BANDB_TIME_LEN, SQLITE_STATIC);
        if (rc == SQLITE_OK && target)
                rc = sqlite3_bind_text(st, 2, target, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
                rc = bandb_run(b, which);
        if (rc != SQLITE_OK) {
                b->host->set_error(b->ctx, "%s: cannot delete bans%s%s: %s; nothing deleted", b->path,
                                   target ? " of " : "", target ? target : "", sqlite3_errmsg(b->db));
                bandb_check_txn(b);
                return rc_errno(rc);
        }
        if (b->in_txn)
                b->dirty = true;
        if (count)
                *count = (uint64_t) sqlite3_changes(b->db);
        return 0;
}

static int bandb_delete_target(void *userdata, const char *target, uint64_t *count) {
        bandb *b = userdata;

        if (!target || !*target) {
                b->host->set_error(b->ctx, "%s: delete needs a target (an IP or range as stored in ip_text)",
                                   b->path);
                return -EINVAL;
        }
        return bandb_soft_delete(b, BANDB_SQL_DELETE_TARGET, target, count);
}

static int bandb_delete_all(void *userdata, uint64_t *count) {
        return bandb_soft_delete(userdata, BANDB_SQL_DELETE_ALL, NULL, count);
}

/* ------------------------------------------------------------ timers */

/* Start one step of background work: join the batch if one is open, else
 * open a transaction of its own (*own). */
static int bandb_step_begin(bandb *b, bool *own) {
        *own = !b->in_txn;
        return *own ? bandb_run(b, BANDB_SQL_BEGIN) : SQLITE_OK;
}

static int bandb_step_end(bandb *b, bool own, int rc) {
        if (own) {
                if (rc == SQLITE_OK)
                        rc = bandb_run(b, BANDB_SQL_COMMIT);
                if (rc != SQLITE_OK && !sqlite3_get_autocommit(b->db)) {
                        snprintf(b->err, sizeof b->err, "%s", sqlite3_errmsg(b->db));
                        sqlite3_exec(b->db, "ROLLBACK", NULL, NULL, NULL);
                }
        } else if (rc == SQLITE_OK)
                b->dirty = true;
        else
                bandb_check_txn(b);
        return rc;
}

/* The message of a timer's failure. */
static const char *bandb_timer_error(bandb *b) {
        return b->err[0] ? b->err : sqlite3_errmsg(b->db);
}

/* Soft-delete bans whose until has passed, every second. */
static int bandb_expire_tick(void *userdata, spw_usec_t now) {
        bandb *b = userdata;
        char now_text[BANDB_TIME_MAX];
        uint64_t total = 0;
        int rc = SQLITE_OK;

        b->err[0] = 0;
        bandb_time_format(now_text, now);
        if (!b->in_txn) {
                /* A read first: most seconds there is nothing to expire, and
                 * then we take no write lock. */
                sqlite3_stmt *st = b->st[BANDB_SQL_EXPIRE_PROBE];
                sqlite3_bind_text(st, 1, now_text, BANDB_TIME_LEN, SQLITE_STATIC);
                rc = sqlite3_step(st);
                sqlite3_reset(st);
                sqlite3_clear_bindings(st);
                if (rc == SQLITE_DONE)
                        return 0;
                rc = rc == SQLITE_ROW ? SQLITE_OK : rc;
        }
        for (int chunk = 0; rc == SQLITE_OK && chunk < MAX_CHUNKS; chunk++) {
                sqlite3_stmt *st = b->st[BANDB_SQL_EXPIRE];
                uint64_t n = 0;
                bool own;

                rc = bandb_step_begin(b, &own);
                if (rc == SQLITE_OK)
                        rc = FIRST_ERROR(sqlite3_bind_text(st, 1, now_text, BANDB_TIME_LEN, SQLITE_STATIC),
                                         sqlite3_bind_int(st, 2, CHUNK_ROWS));
                if (rc == SQLITE_OK)
                        rc = bandb_run(b, BANDB_SQL_EXPIRE);
                if (rc == SQLITE_OK)
                        n = (uint64_t) sqlite3_changes(b->db);
                rc = bandb_step_end(b, own, rc);
                if (rc != SQLITE_OK)
                        break;
                total += n;
                if (n < CHUNK_ROWS)
                        break;
        }
        if (total > 0) {
                char buf[32];

                b->n_expired += total;
                if (b->keys.debug)
                        b->host->log(b->ctx, LOG_DEBUG, "expired %" PRIu64 " ban(s)", total);
                if (SPW_HAS_MEMBER(b->host, struct spw_host, set_status)) {
                        snprintf(buf, sizeof buf, "%" PRIu64, b->n_expired);
                        b->host->set_status(b->ctx, "expired", buf);
                }
        }
        if (rc != SQLITE_OK) {
                b->host->set_error(b->ctx, "%s: cannot expire bans: %s; will try again in a second",
                                   b->path, bandb_timer_error(b));
                return rc_errno(rc);
        }
        return 0;
}

typedef struct gc_counts {
        uint64_t by_count, by_age, signals, events;
} gc_counts;

/* One GC step. pick is a statement filling temp.bandb_gc_ban (bans) or
 * temp.bandb_gc_sig (ban-less signals); its parameters are bound. Removes
 * what was picked, then the signals left without bans and their event
 * sequences. *picked is how many rows the pick found (a full chunk means
 * there may be more). */
static int bandb_gc_step(bandb *b, int pick, uint64_t *picked, uint64_t *bans, gc_counts *c) {
        bool own;
        int rc;

        *picked = 0;
        rc = bandb_run(b, BANDB_SQL_GC_CLEAR_BANS);
        if (rc == SQLITE_OK)
                rc = bandb_run(b, BANDB_SQL_GC_CLEAR_SIGNALS);
        /* The pick writes only to temp tables: no write lock on the file yet. */
        if (rc == SQLITE_OK)
                rc = bandb_run(b, pick);
        else {
                sqlite3_reset(b->st[pick]);
                sqlite3_clear_bindings(b->st[pick]);
        }
        if (rc != SQLITE_OK)
                return rc;
        *picked = (uint64_t) sqlite3_changes(b->db);
        if (*picked == 0)
                return SQLITE_OK;

        rc = bandb_step_begin(b, &own);
        if (rc == SQLITE_OK)
                rc = bandb_run(b, BANDB_SQL_GC_DELETE_BANS);
        if (rc == SQLITE_OK) {
                if (bans)
                        *bans += (uint64_t) sqlite3_changes(b->db);
                rc = bandb_run(b, BANDB_SQL_GC_ORPHANS);
        }
        if (rc == SQLITE_OK)
                rc = bandb_run(b, BANDB_SQL_GC_DELETE_SIGNALS);
        if (rc == SQLITE_OK) {
                c->signals += (uint64_t) sqlite3_changes(b->db);
                rc = bandb_run(b, BANDB_SQL_GC_DELETE_EVENTS);
        }
        if (rc == SQLITE_OK)
                c->events += (uint64_t) sqlite3_changes(b->db);
        return bandb_step_end(b, own, rc);
}

/* Every minute: hard-delete soft-deleted bans beyond the newest max_records
 * and older than max_records_age, with the signals and event sequences they
 * leave behind, and signals without bans older than max_records_age. */
static int bandb_gc_tick(void *userdata, spw_usec_t now) {
        bandb *b = userdata;
        gc_counts c = {};
        char cutoff[BANDB_TIME_MAX];
        uint64_t picked = CHUNK_ROWS;
        int chunks = MAX_CHUNKS, rc = SQLITE_OK;

        b->err[0] = 0;
        if (b->keys.max_records > 0) {
                sqlite3_stmt *st = b->st[BANDB_SQL_GC_COUNT_EDGE];
                sqlite3_int64 edge = 0;

                sqlite3_bind_int64(st, 1, b->keys.max_records);
                rc = sqlite3_step(st);
                if (rc == SQLITE_ROW)
                        edge = sqlite3_column_int64(st, 0);
                sqlite3_reset(st);
                rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
                for (picked = CHUNK_ROWS; rc == SQLITE_OK && edge > 0 && picked == CHUNK_ROWS && chunks > 0; chunks--) {
                        st = b->st[BANDB_SQL_GC_PICK_COUNT];
                        rc = FIRST_ERROR(sqlite3_bind_int64(st, 1, edge), sqlite3_bind_int(st, 2, CHUNK_ROWS));
                        if (rc == SQLITE_OK)
                                rc = bandb_gc_step(b, BANDB_SQL_GC_PICK_COUNT, &picked, &c.by_count, &c);
                }
        }
        if (b->keys.max_records_age > 0 && rc == SQLITE_OK) {
                bandb_time_format(cutoff, now - b->keys.max_records_age);
                for (picked = CHUNK_ROWS; rc == SQLITE_OK && picked == CHUNK_ROWS && chunks > 0; chunks--) {
                        sqlite3_stmt *st = b->st[BANDB_SQL_GC_PICK_AGE];
                        rc = FIRST_ERROR(sqlite3_bind_text(st, 1, cutoff, BANDB_TIME_LEN, SQLITE_STATIC),
                                         sqlite3_bind_int(st, 2, CHUNK_ROWS));
                        if (rc == SQLITE_OK)
                                rc = bandb_gc_step(b, BANDB_SQL_GC_PICK_AGE, &picked, &c.by_age, &c);
                }
                for (picked = CHUNK_ROWS; rc == SQLITE_OK && picked == CHUNK_ROWS && chunks > 0; chunks--) {
                        sqlite3_stmt *st = b->st[BANDB_SQL_GC_PICK_SIGNALS];
                        rc = FIRST_ERROR(sqlite3_bind_text(st, 1, cutoff, BANDB_TIME_LEN, SQLITE_STATIC),
                                         sqlite3_bind_int(st, 2, CHUNK_ROWS));
                        if (rc == SQLITE_OK)
                                rc = bandb_gc_step(b, BANDB_SQL_GC_PICK_SIGNALS, &picked, NULL, &c);
                }
        }

        if (c.by_count + c.by_age + c.signals + c.events > 0) {
                char buf[32];

                b->n_collected += c.by_count + c.by_age;
                b->host->log(b->ctx, LOG_INFO,
                             "garbage collection removed %" PRIu64 " soft-deleted ban(s) (%" PRIu64
                             " beyond max_records %" PRId64 ", %" PRIu64 " older than max_records_age), "
                             "%" PRIu64 " signal(s), %" PRIu64 " event sequence(s)%s",
                             c.by_count + c.by_age, c.by_count, b->keys.max_records, c.by_age, c.signals,
                             c.events, chunks == 0 && picked == CHUNK_ROWS ? "; more left for the next run" : "");
                if (SPW_HAS_MEMBER(b->host, struct spw_host, set_status)) {
                        snprintf(buf, sizeof buf, "%" PRIu64, b->n_collected);
                        b->host->set_status(b->ctx, "collected", buf);
                }
        }
        if (rc != SQLITE_OK) {
                b->host->set_error(b->ctx, "%s: garbage collection failed: %s; will try again in a minute",
                                   b->path, bandb_timer_error(b));
                return rc_errno(rc);
        }
        return 0;
}

static int bandb_start_autocommit(void *userdata) {
        bandb *b = userdata;
        int r;

        if (b->keys.expire) {
                r = b->host->schedule(b->ctx, EXPIRE_INTERVAL, bandb_expire_tick, b);
                if (r < 0) {
                        b->host->set_error(b->ctx, "%s: cannot schedule ban expiry: %s", b->path, strerror(-r));
                        return r;
                }
        }
        if (b->keys.max_records > 0 || b->keys.max_records_age > 0) {
                r = b->host->schedule(b->ctx, GC_INTERVAL, bandb_gc_tick, b);
                if (r < 0) {
                        b->host->set_error(b->ctx, "%s: cannot schedule garbage collection: %s", b->path,
                                           strerror(-r));
                        return r;
                }
        }
        return 0;
}

/* ------------------------------------------------------------ init */

/* The database location, checked before SQLite sees it so that the error
 * says which directory or file is wrong and why. */
static int bandb_check_location(bandb *b) {
        char *dir, *slash;
        struct stat st;
        int r = 0;

        dir = strdup(b->path);
        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (!slash)
                strcpy(dir, ".");
        else if (slash == dir)
                slash[1] = 0;
        else
                *slash = 0;

        if (stat(dir, &st) < 0) {
                r = -errno;
                b->host->set_error(b->ctx, "%s: directory %s: %s; create it (the unit's StateDirectory= does) "
                                   "or set db_path; the backend is not started", b->path, dir, strerror(-r));
        } else if (!S_ISDIR(st.st_mode)) {
                r = -ENOTDIR;
                b->host->set_error(b->ctx, "%s: %s is not a directory; set db_path to a file in a writable "
                                   "directory; the backend is not started", b->path, dir);
        } else if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) < 0) {
                r = -errno;
                b->host->set_error(b->ctx, "%s: directory %s is not writable by uid %u (%s): SQLite creates "
                                   "the database and its -wal and -shm files there; fix its owner or mode "
                                   "or set db_path; the backend is not started",
                                   b->path, dir, (unsigned) geteuid(), strerror(-r));
        } else if (stat(b->path, &st) == 0) {
                if (S_ISDIR(st.st_mode)) {
                        r = -EISDIR;
                        b->host->set_error(b->ctx, "%s is a directory; db_path names the database file; "
                                           "the backend is not started", b->path);
                } else if (faccessat(AT_FDCWD, b->path, R_OK | W_OK, AT_EACCESS) < 0) {
                        r = -errno;
                        b->host->set_error(b->ctx, "%s: the database file is not readable and writable by "
                                           "uid %u (%s); fix its owner or mode; the backend is not started",
                                           b->path, (unsigned) geteuid(), strerror(-r));
                }
        }
        free(dir);
        return r;
}

/* How many of the three tables exist: 0 for a new file. */
static int bandb_count_tables(bandb *b) {
        sqlite3_stmt *st = NULL;
        int n = -1;

        if (sqlite3_prepare_v2(b->db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN"
                               " ('signal_occurences', 'event_sequences', 'ban_applications')",
                               -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
                n = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        return n;
}

static int bandb_open(bandb *b) {
        char err[512];
        int rc, from = 0, failed = 0, tables;

        rc = sqlite3_open_v2(b->path, &b->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
        if (rc != SQLITE_OK)
                return bandb_open_error(b, rc, "cannot open", NULL);
        sqlite3_extended_result_codes(b->db, 1);
        sqlite3_busy_timeout(b->db, (int) (b->busy_timeout / USEC_PER_MSEC > INT_MAX ? INT_MAX
                                                                                       : b->busy_timeout / USEC_PER_MSEC));
        if (sqlite3_db_readonly(b->db, "main") == 1)
                return bandb_open_error(b, SQLITE_READONLY, "opened read-only", sqlite3_errstr(SQLITE_READONLY));

        rc = bandb_apply_pragmas(b->db, b->synchronous_full);
        if (rc != SQLITE_OK)
                return bandb_open_error(b, rc, "cannot open the database in WAL mode", NULL);

        tables = bandb_count_tables(b);
        rc = bandb_migrate(b->db, &from, err, sizeof err);
        if (rc != SQLITE_OK && from > BANDB_SCHEMA_VERSION) {
                b->host->set_error(b->ctx, "%s: schema version %d is newer than this plugin's (%d): the file was "
                                   "written by a newer Spillway; upgrade the plugin or set db_path to another "
                                   "file; the backend is not started", b->path, from, BANDB_SCHEMA_VERSION);
                return -EPROTO;
        }
        if (rc == SQLITE_ERROR) {
                b->host->set_error(b->ctx, "%s: cannot upgrade the schema from version %d: %s: the existing "
                                   "tables do not have CrowdSec v0.3's layout; move the file aside "
                                   "(mv %s %s.broken) or set db_path to another file; the backend is not "
                                   "started", b->path, from, err, b->path, b->path);
                return -EBADMSG;
        }
        if (rc != SQLITE_OK)
                return bandb_open_error(b, rc, from == 0 ? "cannot create or upgrade the schema"
                                                         : "cannot upgrade the schema", err);

        rc = bandb_prepare(b->db, b->st, &failed);
        if (rc != SQLITE_OK) {
                b->host->set_error(b->ctx, "%s: the tables do not have CrowdSec v0.3's layout (%s, in \"%.40s...\"); "
                                   "move the file aside or fix the schema; the backend is not started",
                                   b->path, sqlite3_errmsg(b->db), failed >= 0 ? bandb_sql[failed] : "temp tables");
                return -EBADMSG;
        }

        if (from == 0 && tables == 0)
                b->host->log(b->ctx, LOG_INFO, "%s: created the ban database (schema version %d)", b->path,
                             BANDB_SCHEMA_VERSION);
        else if (from < BANDB_SCHEMA_VERSION)
                b->host->log(b->ctx, LOG_INFO, "%s: upgraded the %s database from schema version %d to %d",
                             b->path, from == 0 ? "CrowdSec v0.3" : "ban", from, BANDB_SCHEMA_VERSION);
        return 0;
}

/* Everything init does once b has its host: config, path, file, schema. */
static int bandb_setup(bandb *b, const spw_kv *config, size_t n_config) {
        const char *db_path = NULL, *name;
        int r;

        r = bandb_configure(b, config, n_config, &db_path);
        if (r < 0)
                return r;

        if (db_path && db_path[0] == '/')
                b->path = strdup(db_path);
        else {
                const char *dir = b->host->state_directory(b->ctx);
                size_t l;

                if (!dir || !*dir) {
                        b->host->set_error(b->ctx, "no db_path set and the daemon has no state directory; "
                                           "set db_path; the backend is not started");
                        return -EINVAL;
                }
                name = db_path ? db_path : "spillway.db";
                l = strlen(dir) + 1 + strlen(name) + 1;
                b->path = malloc(l);
                if (b->path)
                        snprintf(b->path, l, "%s/%s", dir, name);
        }
        if (!b->path) {
                b->host->set_error(b->ctx, "out of memory");
                return -ENOMEM;
        }

        r = bandb_check_location(b);
        if (r < 0)
                return r;
        return bandb_open(b);
}

static int bandb_init(spw_ctx *ctx, const struct spw_host *host, const spw_kv *config, size_t n_config,
                      void **selfp) {
        bandb *b;
        int r;

        if (!host || !SPW_HAS_MEMBER(host, struct spw_host, schedule))
                return -EPROTO;

        b = calloc(1, sizeof *b);
        if (!b) {
                host->set_error(ctx, "out of memory");
                return -ENOMEM;
        }
        b->ctx = ctx;
        b->host = host;
        b->keys = SPWP_BANDB_KEYS_DEFAULT;
        b->busy_timeout = 5 * USEC_PER_SEC;

        r = bandb_setup(b, config, n_config);
        if (r < 0) {
                bandb_free(b);
                return r;
        }

        if (SPW_HAS_MEMBER(host, struct spw_host, set_status)) {
                host->set_status(ctx, "db_path", b->path);
                host->set_status(ctx, "synchronous", b->synchronous_full ? "full" : "normal");
        }
        *selfp = b;
        return 0;
}

/* ------------------------------------------------------------ shutdown */

static bandb *bandb_free(bandb *b) {
        if (!b)
                return NULL;
        if (b->db) {
                if (!sqlite3_get_autocommit(b->db)) {
                        b->host->log(b->ctx, LOG_WARNING,
                                     "%s: shutting down with %" PRIu64 " signal(s) not flushed; rolled back",
                                     b->path, b->n_pending);
                        sqlite3_exec(b->db, "ROLLBACK", NULL, NULL, NULL);
                }
                bandb_finalize(b->st);
                if (sqlite3_close(b->db) != SQLITE_OK)
                        b->host->log(b->ctx, LOG_ERR, "%s: cannot close the database: %s", b->path,
                                     sqlite3_errmsg(b->db));
        }
        free(b->path);
        free(b);
        return NULL;
}

static void bandb_shutdown(void *userdata) {
        bandb_free(userdata);
}

static const struct spw_backend bandb_backend = {
        SPW_BACKEND_HEADER,
        .name = "sqlite",
        .version = BANDB_VERSION,
        .description = "SQLite ban database with CrowdSec v0.3's schema",
        .config_keys = bandb_config_keys,
        .init = bandb_init,
        .insert = bandb_insert,
        .flush = bandb_flush,
        .start_autocommit = bandb_start_autocommit,
        .read_at = bandb_read_at,
        .delete_target = bandb_delete_target,
        .delete_all = bandb_delete_all,
        .shutdown = bandb_shutdown,
};

SPW_BACKEND_EXPORT(bandb_backend)
