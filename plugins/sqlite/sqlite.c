/* SPDX-License-Identifier: MIT */
/*
 * The sqlite backend: the ban database. Stores each routed signal, its
 * event sequence and its ban applications in CrowdSec v0.3's tables (see
 * schema.c), answers "which bans are active at T", deletes bans on request,
 * expires and garbage-collects them in the background.
 *
 * This file is the SQLite driver of the ban-database core
 * (plugins/common/spwp-bandb.c), which holds the batch, insert, read_at,
 * delete and timer logic shared with the mysql backend. Here: the config
 * keys of a database file, opening and migrating it, and the driver's
 * operations (statements, binding, SQLite's error codes).
 *
 * One instance owns one SQLite connection and is only ever called from its
 * own worker thread (the ABI's rule), so there is no locking here and the
 * connection is opened SQLITE_OPEN_NOMUTEX.
 *
 * SQLite specifics:
 *   - The batch opens with BEGIN IMMEDIATE, so a competing writer shows up
 *     as a retryable insert rather than as a failed commit.
 *   - After a failed statement SQLite may have rolled the whole
 *     transaction back (I/O errors, a full disk): txn_alive asks
 *     sqlite3_get_autocommit().
 *   - Undoing a failed insert is three DELETEs by signal id: a SAVEPOINT
 *     per insert would do the same but costs ~15% of the insert rate and
 *     46% more instructions (README.md).
 *   - The soft-delete of older bans goes through the (ip_text, deleted_at)
 *     index, pinned with INDEXED BY, and runs only when a probe of that
 *     index finds more than one active ban for the target (the UPDATE
 *     opens two ephemeral tables even when it has nothing to do). It indexes active bans only (WHERE
 *     deleted_at IS NULL; rebuilt so once when an older file is opened):
 *     history is not in it, so collecting history touches no random page
 *     of it.
 *   - Time is stored as fixed-width UTC text, so SQL compares it as text.
 *   - Strings from the daemon are bound SQLITE_STATIC: they outlive the
 *     step, and bindings are cleared right after it. The garbage collector
 *     picks into per-connection temp tables.
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
#include <time.h>
#include <unistd.h>

#include <spillway/backend.h>
#include <sqlite3.h>

#include "checkpoint.h"
#include "schema.h"
#include "spwp-bandb.h"
#include "spwp-config.h"

#ifndef BANDB_VERSION
#define BANDB_VERSION "unknown"
#endif

#define USEC_PER_MSEC INT64_C(1000)
#define USEC_PER_SEC  INT64_C(1000000)

typedef struct bandb {
        spwp_bandb core;                /* first: the plugin's userdata */
        sqlite3 *db;
        sqlite3_stmt *st[_BANDB_SQL_MAX];
        char *path;
        bandb_ckpt *ckpt;               /* WAL checkpoints off the commit path; NULL: SQLite's own */

        /* configuration */
        const char *db_path;            /* borrowed from the config during init */
        bool synchronous_full;
        uint64_t cache_size;            /* bytes of SQLite page cache */
        spw_usec_t busy_timeout;
        spw_usec_t watch_interval;

        /* the last "now" bound, as stored text (bound SQLITE_STATIC) */
        spw_usec_t now_t;
        char now_text[BANDB_TIME_MAX];
        char at_text[BANDB_TIME_MAX];
        int reading;                    /* the statement read_next/col_* apply to */
        spw_usec_t gc_now;              /* the last GC pick's now: its delete removes only bans ended then */

        /* the longest WAL checkpoint so far (status checkpoint_longest_ms) */
        spw_usec_t checkpoint_longest;

        /* the file watch (bandb_watch): the database file we opened */
        dev_t dev;
        ino_t ino;
        bool watching;
        char broken[1024];              /* why the file can no longer be trusted; "" while fine */
} bandb;

static bandb *bandb_free(bandb *b);

static bandb *bandb_of(spwp_bandb *core) {
        return (bandb *) core;
}

/* ------------------------------------------------------------ config */

static const spw_config_key bandb_config_keys[] = {
        { "db_path", SPW_CONFIG_STRING, "<state directory>/spillway.db", NULL,
          "database file; created if missing; relative paths are under the state directory" },
        SPWP_BANDB_CONFIG_KEY_TYPE("sqlite", "mysql"),
        SPWP_BANDB_CONFIG_KEYS_GC,
        { "synchronous", SPW_CONFIG_ENUM, "normal", "normal|full",
          "SQLite synchronous mode with WAL: normal may lose the last commits on power loss, full fsyncs each commit" },
        { "cache_size", SPW_CONFIG_STRING, "2MiB", NULL,
          "SQLite page cache of the connection, e.g. 4MiB, 16MiB (at least 256KiB): more keeps more of a large ban "
          "table's index in memory, at that much more resident memory" },
        { "busy_timeout", SPW_CONFIG_DURATION, "5s", NULL,
          "how long to wait for another process holding the database lock" },
        { "watch_interval", SPW_CONFIG_DURATION, "2s", NULL,
          "how often to check that the database file is still there and intact (0: at each commit only)" },
        SPWP_BANDB_CONFIG_KEY_DEBUG,
        {}
};

static int bandb_config_key(spwp_bandb *core, const char *k, const char *v, const char **expected) {
        bandb *b = bandb_of(core);

        if (strcmp(k, "db_path") == 0) {
                *expected = "a file path";
                if (!*v)
                        return -EINVAL;
                b->db_path = v;
        } else if (strcmp(k, "cache_size") == 0) {
                *expected = "a size like 4MiB or 16MiB, at least 256KiB";
                if (spwp_bandb_parse_size(v, &b->cache_size) < 0 || b->cache_size < 256 * 1024 ||
                    b->cache_size > (UINT64_C(1) << 40))
                        return -EINVAL;
        } else if (strcmp(k, "busy_timeout") == 0) {
                *expected = "a duration like 5s or 500ms";
                if (spwp_parse_duration(v, &b->busy_timeout) < 0)
                        return -EINVAL;
        } else if (strcmp(k, "watch_interval") == 0) {
                *expected = "a duration like 2s, or 0";
                if (spwp_parse_duration(v, &b->watch_interval) < 0)
                        return -EINVAL;
        } else if (strcmp(k, "synchronous") == 0) {
                *expected = "normal or full";
                if (strcasecmp(v, "normal") == 0)
                        b->synchronous_full = false;
                else if (strcasecmp(v, "full") == 0)
                        b->synchronous_full = true;
                else
                        return -EINVAL;
        } else
                return 0;
        return 1;
}

/* ------------------------------------------------------------ errors */

static bool rc_transient(int rc) {
        switch (rc & 0xff) {
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
                /* the file went bad under us (bandb_watch): keep the
                 * signals (the daemon retries, the spool holds them) */
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
                spwp_bandb_set_error(&b->core,
                                     "%s: %s: %s: the file is damaged or is not an SQLite database; "
                                     "move it aside (mv %s %s.broken) to start a new ban database, "
                                     "or restore a backup; the backend is not started",
                                     b->path, doing, msg, b->path, b->path);
                return -EBADMSG;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                spwp_bandb_set_error(&b->core,
                                     "%s: %s: %s: another process kept the database locked for longer "
                                     "than busy_timeout (%" PRId64 " ms); find it with `fuser %s`, stop it "
                                     "or raise busy_timeout; the backend is not started",
                                     b->path, doing, msg, b->busy_timeout / USEC_PER_MSEC, b->path);
                return -EBUSY;
        case SQLITE_CANTOPEN:
        case SQLITE_READONLY:
        case SQLITE_PERM:
        case SQLITE_AUTH:
                spwp_bandb_set_error(&b->core,
                                     "%s: %s: %s: the file and its directory must be writable by uid %u "
                                     "(SQLite creates %s-wal and %s-shm beside it); fix their owner and mode "
                                     "or set db_path; the backend is not started",
                                     b->path, doing, msg, (unsigned) geteuid(), b->path, b->path);
                return -EACCES;
        case SQLITE_FULL:
                spwp_bandb_set_error(&b->core, "%s: %s: %s: the filesystem is full; free some space; "
                                     "the backend is not started", b->path, doing, msg);
                return -ENOSPC;
        default:
                spwp_bandb_set_error(&b->core, "%s: %s: %s; the backend is not started", b->path, doing, msg);
                return rc_errno(rc);
        }
}

static bool op_transient(unsigned code) {
        return rc_transient((int) code);
}

static int op_to_errno(unsigned code) {
        return rc_errno((int) code);
}

/* ------------------------------------------------------------ the driver's operations */

/* ------------------------------------------------------------ the file watch */

/* The database file is checked before every transaction and commit and by a
 * timer: deleted, replaced by another file, truncated, or overwritten with
 * something that is not SQLite (SQLite itself would keep writing to the
 * unlinked inode, or to pages it cached, and report success). Once broken,
 * the backend stays failed (status, journal) and every insert and flush
 * fails transiently, so the daemon (and a disk spool) keeps the signals
 * until the file is fixed and the service restarted. */
static void bandb_mark_broken(bandb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bandb_mark_broken(bandb *b, const char *fmt, ...) {
        char why[300], status[320];
        va_list ap;

        if (b->broken[0])
                return;
        va_start(ap, fmt);
        vsnprintf(why, sizeof why, fmt, ap);
        va_end(ap);
        snprintf(b->broken, sizeof b->broken, "%.400s: %.300s; signals are kept, not acknowledged as stored: restore "
                 "the file (or move it aside for a new one), then restart spillway", b->path, why);
        snprintf(status, sizeof status, "failed: %.300s", why);
        spwp_bandb_status(&b->core, "database", status);
        spwp_bandb_log(&b->core, LOG_ERR, "%s", b->broken);
        b->core.host->set_error(b->core.ctx, "%s", b->broken);
}

static void bandb_checkpoint_took(bandb *b, spw_usec_t took) {
        if (took > b->checkpoint_longest) {
                b->checkpoint_longest = took;
                spwp_bandb_status_u64(&b->core, "checkpoint_longest_ms", (uint64_t) (took / USEC_PER_MSEC));
        }
}

/* The checkpoint thread's longest run and verdict, published from the
 * worker (the thread calls nothing of the host's). */
static void bandb_ckpt_poll(bandb *b) {
        bandb_ckpt_stats s;
        char msg[256];
        int rc;

        if (!b->ckpt)
                return;
        bandb_ckpt_get_stats(b->ckpt, &s);
        bandb_checkpoint_took(b, (spw_usec_t) s.longest_usec);
        if (!bandb_ckpt_take_report(b->ckpt, &rc, msg, sizeof msg))
                return;
        if (rc == SQLITE_OK)
                spwp_bandb_log(&b->core, LOG_NOTICE, "%s: WAL checkpoints work again", b->path);
        else
                spwp_bandb_log(&b->core, LOG_WARNING, "%s: WAL checkpoint failed: %s (error %d); the WAL file grows "
                               "until one succeeds, and past %u pages each commit checkpoints itself",
                               b->path, msg, rc, BANDB_CKPT_HARD_PAGES);
}

static int bandb_watch(bandb *b) {
        static const char magic[16] = "SQLite format 3";
        struct stat st;
        char head[16];

        bandb_ckpt_poll(b);
        if (b->broken[0] || !b->watching)
                return b->broken[0] ? -1 : 0;
        if (stat(b->path, &st) < 0) {
                if (errno == ENOENT)
                        bandb_mark_broken(b, "the database file was deleted");
                else
                        bandb_mark_broken(b, "the database file cannot be checked: %s", strerror(errno));
                return -1;
        }
        if (st.st_dev != b->dev || st.st_ino != b->ino) {
                bandb_mark_broken(b, "the database file was replaced by another file");
                return -1;
        }
        if (st.st_size == 0) {
                bandb_mark_broken(b, "the database file was truncated to 0 bytes");
                return -1;
        }
        /* Read the header through SQLite's own file handle: opening and
         * closing another descriptor of the file would drop every POSIX lock
         * this process holds on it (fcntl locks belong to the process and
         * inode), and an outside reader would then believe it is alone,
         * checkpoint and delete the -wal file under our feet. */
        sqlite3_file *f = NULL;
        ssize_t k = -1;
        if (sqlite3_file_control(b->db, "main", SQLITE_FCNTL_FILE_POINTER, &f) == SQLITE_OK && f && f->pMethods)
                k = f->pMethods->xRead(f, head, (int) sizeof head, 0) == SQLITE_OK ? (ssize_t) sizeof head : 0;
        if (k != (ssize_t) sizeof head || memcmp(head, magic, sizeof magic) != 0) {
                bandb_mark_broken(b, k < (ssize_t) sizeof head ? "the database file was truncated"
                                                                : "the database file was overwritten: it is no longer an SQLite database");
                return -1;
        }
        return 0;
}

static int bandb_watch_timer(void *userdata, spw_usec_t now) {
        (void) bandb_watch(userdata);
        return 0;
}

/* Record a failure (SQLite's message now: a rollback would reset it). Returns -1. */
static int bandb_fail(bandb *b, int rc, const char *doing) {
        b->core.e.code = (unsigned) rc;
        snprintf(b->core.e.msg, sizeof b->core.e.msg, "%s", sqlite3_errmsg(b->db));
        b->core.e.doing = doing;
        if ((rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB)
                bandb_mark_broken(b, "SQLite reports the database damaged (%s) while %s", b->core.e.msg, doing);
        return -1;
}

/* The watch found the file broken: fail the operation transiently. */
static int bandb_fail_broken(bandb *b, const char *doing) {
        b->core.e.code = SQLITE_IOERR;
        snprintf(b->core.e.msg, sizeof b->core.e.msg, "%.500s", b->broken);
        b->core.e.doing = doing;
        return -1;
}

/* ReadAT's columns and the INSERTs' parameter numbers are the core's order
 * (parameter i + 1 takes the core's value i; created_at and updated_at
 * share ?1). */
#define SAME(a, b) ((int) (a) == (int) (b))
_Static_assert(SAME(BANDB_ROW_SOURCE, SPWP_BANDB_ROW_SOURCE) && SAME(BANDB_ROW_IPTEXT, SPWP_BANDB_ROW_IPTEXT) &&
               SAME(BANDB_ROW_REASON, SPWP_BANDB_ROW_REASON) && SAME(BANDB_ROW_BANCOUNT, SPWP_BANDB_ROW_BANCOUNT) &&
               SAME(BANDB_ROW_ACTION, SPWP_BANDB_ROW_ACTION) && SAME(BANDB_ROW_CN, SPWP_BANDB_ROW_CN) &&
               SAME(BANDB_ROW_AS, SPWP_BANDB_ROW_AS) && SAME(BANDB_ROW_AS_NUMBER, SPWP_BANDB_ROW_AS_NUMBER) &&
               SAME(BANDB_ROW_EVENTS_COUNT, SPWP_BANDB_ROW_EVENTS_COUNT) &&
               SAME(BANDB_ROW_UNTIL, SPWP_BANDB_ROW_UNTIL),
               "ReadAT's columns in the core's order");
_Static_assert(SAME(BANDB_SIG_SOURCE_IP, SPWP_BANDB_SIG_SOURCE_IP + 1) &&
               SAME(BANDB_SIG_REPROCESS, SPWP_BANDB_SIG_REPROCESS + 1) &&
               SAME(BANDB_EVENT_SERIALIZED, SPWP_BANDB_EVENT_SERIALIZED + 1) &&
               SAME(BANDB_BAN_IP_TEXT, SPWP_BANDB_BAN_IP_TEXT + 1) &&
               SAME(BANDB_BAN_SIGNAL_ID, SPWP_BANDB_BAN_SIGNAL_ID + 1),
               "the INSERTs' parameters numbered in the core's order");
#undef SAME

/* The core's statements. */
static const int bandb_stmt[_SPWP_BANDB_Q_MAX] = {
        [SPWP_BANDB_Q_INSERT_SIGNAL] = BANDB_SQL_INSERT_SIGNAL,
        [SPWP_BANDB_Q_INSERT_EVENT] = BANDB_SQL_INSERT_EVENT,
        [SPWP_BANDB_Q_INSERT_BAN] = BANDB_SQL_INSERT_BAN,
        [SPWP_BANDB_Q_SUPERSEDE] = BANDB_SQL_SUPERSEDE,
        [SPWP_BANDB_Q_UNDO_BANS] = BANDB_SQL_UNDO_BANS,
        [SPWP_BANDB_Q_UNDO_EVENTS] = BANDB_SQL_UNDO_EVENTS,
        [SPWP_BANDB_Q_UNDO_SIGNAL] = BANDB_SQL_UNDO_SIGNAL,
        [SPWP_BANDB_Q_DELETE_TARGET] = BANDB_SQL_DELETE_TARGET,
        [SPWP_BANDB_Q_DELETE_ALL] = BANDB_SQL_DELETE_ALL,
        [SPWP_BANDB_Q_EXPIRE_PROBE] = BANDB_SQL_EXPIRE_PROBE,
        [SPWP_BANDB_Q_EXPIRE] = BANDB_SQL_EXPIRE,
        [SPWP_BANDB_Q_GC_EDGE] = BANDB_SQL_GC_COUNT_EDGE,
        [SPWP_BANDB_Q_GC_SIG_BOUNDARY] = BANDB_SQL_GC_SIG_BOUNDARY,
        [SPWP_BANDB_Q_GC_BACKLOG_AGE] = BANDB_SQL_GC_BACKLOG_AGE,
        [SPWP_BANDB_Q_GC_EXCESS_COUNT] = BANDB_SQL_GC_EXCESS_COUNT,
        [SPWP_BANDB_Q_GC_EXCESS_AGE] = BANDB_SQL_GC_EXCESS_AGE,
        [SPWP_BANDB_Q_CHANGE_ADD] = BANDB_SQL_CHANGE_ADD,
        [SPWP_BANDB_Q_CHANGE_DEL_TARGET] = BANDB_SQL_CHANGE_DEL_TARGET,
        [SPWP_BANDB_Q_CHANGE_DEL_ALL] = BANDB_SQL_CHANGE_DEL_ALL,
        [SPWP_BANDB_Q_UNDO_CHANGES] = BANDB_SQL_UNDO_CHANGES,
        [SPWP_BANDB_Q_CHANGES_MIN] = BANDB_SQL_CHANGES_MIN,
        [SPWP_BANDB_Q_CHANGES_MAX] = BANDB_SQL_CHANGES_MAX,
        [SPWP_BANDB_Q_CHANGES_GC] = BANDB_SQL_CHANGES_GC,
};

/* Bind v[i] to ?(i+1): the statements number their parameters in the
 * core's order (created_at and updated_at share ?1). Times are text; the
 * ones other than now go in tbuf, which must live until the step. */
static int bandb_bind(bandb *b, sqlite3_stmt *st, const spwp_bandb_value *v, size_t n,
                      char (*tbuf)[BANDB_TIME_MAX]) {
        int rc = SQLITE_OK;

        for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
                int p = (int) i + 1;

                switch (v[i].kind) {
                case SPWP_BANDB_STR:
                case SPWP_BANDB_TEXT:
                        rc = v[i].s ? sqlite3_bind_text(st, p, v[i].s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, p);
                        break;
                case SPWP_BANDB_NOW:
                        if (v[i].t != b->now_t || !b->now_text[0]) {
                                bandb_time_format(b->now_text, v[i].t);
                                b->now_t = v[i].t;
                        }
                        rc = sqlite3_bind_text(st, p, b->now_text, BANDB_TIME_LEN, SQLITE_STATIC);
                        break;
                case SPWP_BANDB_TIME:
                        rc = v[i].t == 0 ? sqlite3_bind_null(st, p)
                                         : sqlite3_bind_text(st, p, bandb_time_format(tbuf[i], v[i].t), BANDB_TIME_LEN,
                                                             SQLITE_STATIC);
                        break;
                case SPWP_BANDB_INT:
                case SPWP_BANDB_INT32:
                        rc = sqlite3_bind_int64(st, p, v[i].i);
                        break;
                case SPWP_BANDB_NONZERO:
                        rc = v[i].i ? sqlite3_bind_int64(st, p, v[i].i) : sqlite3_bind_null(st, p);
                        break;
                case SPWP_BANDB_ID:
                        rc = sqlite3_bind_int64(st, p, (sqlite3_int64) v[i].u);
                        break;
                case SPWP_BANDB_DOUBLE:
                        rc = sqlite3_bind_double(st, p, v[i].d);
                        break;
                case SPWP_BANDB_ADDR:
                        rc = sqlite3_bind_blob(st, p, v[i].a, 16, SQLITE_STATIC);
                        break;
                case SPWP_BANDB_NULL:
                default:
                        rc = sqlite3_bind_null(st, p);
                        break;
                }
        }
        return rc;
}

/* Bind, step once, reset and clear a statement. *row tells whether it
 * returned a row (its first column in *first); *changed the rows written. */
static int bandb_step(bandb *b, int which, const spwp_bandb_value *v, size_t n, uint64_t *changed, int64_t *first,
                      bool *row, const char *doing) {
        sqlite3_stmt *st = b->st[which];
        char tbuf[_SPWP_BANDB_SIG_MAX][BANDB_TIME_MAX];
        int rc;

        rc = n <= _SPWP_BANDB_SIG_MAX ? bandb_bind(b, st, v, n, tbuf) : SQLITE_RANGE;
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                if (first)
                        *first = sqlite3_column_int64(st, 0);
                if (row)
                        *row = true;
                rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
                if (row)
                        *row = false;
                if (changed)
                        *changed = (uint64_t) sqlite3_changes(b->db);
                rc = SQLITE_OK;
        } else
                bandb_fail(b, rc, doing);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return rc == SQLITE_OK ? 0 : -1;
}

static int bandb_exec(bandb *b, int which, const char *doing) {
        return bandb_step(b, which, NULL, 0, NULL, NULL, NULL, doing);
}

static int op_run(spwp_bandb *core, spwp_bandb_query q, const spwp_bandb_value *v, size_t n, uint64_t *changed,
                  const char *doing) {
        bandb *b = bandb_of(core);

        /* the soft-delete of older bans: only for a target that has more
         * than the one active ban just inserted (schema.c, the probe) */
        if (q == SPWP_BANDB_Q_SUPERSEDE && n >= 2) {
                int64_t more = 0;
                bool row = false;

                if (bandb_step(b, BANDB_SQL_SUPERSEDE_PROBE, v, 2, NULL, &more, &row, doing) < 0)
                        return -1;
                if (!row || !more) {
                        if (changed)
                                *changed = 0;
                        return 0;
                }
        }
        return bandb_step(b, bandb_stmt[q], v, n, changed, NULL, NULL, doing);
}

static uint64_t op_last_id(spwp_bandb *core, spwp_bandb_query q) {
        (void) q;
        return (uint64_t) sqlite3_last_insert_rowid(bandb_of(core)->db);
}

static int op_select_int(spwp_bandb *core, spwp_bandb_query q, const spwp_bandb_value *v, size_t n, int64_t *ret,
                         bool *found, const char *doing) {
        *ret = 0;
        return bandb_step(bandb_of(core), bandb_stmt[q], v, n, NULL, ret, found, doing);
}

static int op_begin(spwp_bandb *core, const char *doing) {
        if (bandb_watch(bandb_of(core)) < 0)
                return bandb_fail_broken(bandb_of(core), doing);
        return bandb_exec(bandb_of(core), BANDB_SQL_BEGIN, doing);
}

static int op_commit(spwp_bandb *core) {
        /* never acknowledge a commit into a file that is gone */
        if (bandb_watch(bandb_of(core)) < 0)
                return bandb_fail_broken(bandb_of(core), "committing");
        return bandb_exec(bandb_of(core), BANDB_SQL_COMMIT, "committing");
}

static void op_rollback(spwp_bandb *core) {
        bandb *b = bandb_of(core);

        if (!sqlite3_get_autocommit(b->db))
                sqlite3_exec(b->db, "ROLLBACK", NULL, NULL, NULL);
}

static bool op_txn_alive(spwp_bandb *core) {
        return !sqlite3_get_autocommit(bandb_of(core)->db);
}

static int op_savepoint(spwp_bandb *core, const char *doing) {
        return bandb_exec(bandb_of(core), BANDB_SQL_SAVEPOINT, doing);
}

static int op_release(spwp_bandb *core, const char *doing) {
        return bandb_exec(bandb_of(core), BANDB_SQL_RELEASE, doing);
}

static void op_rollback_to(spwp_bandb *core) {
        bandb *b = bandb_of(core);
        spwp_bandb_error keep = core->e;

        if (!sqlite3_get_autocommit(b->db) && bandb_exec(b, BANDB_SQL_ROLLBACK_TO, "rolling back") == 0)
                bandb_exec(b, BANDB_SQL_RELEASE, "rolling back");
        core->e = keep;
}

/* Starts a row read whose one parameter is a time (read_at, read_history). */
static int time_read_start(bandb *b, int which, spw_usec_t t, const char *doing) {
        int rc;

        b->reading = which;
        rc = sqlite3_bind_text(b->st[which], 1, bandb_time_format(b->at_text, t), BANDB_TIME_LEN, SQLITE_STATIC);
        return rc == SQLITE_OK ? 0 : bandb_fail(b, rc, doing);
}

static int op_read_start(spwp_bandb *core, spw_usec_t at) {
        return time_read_start(bandb_of(core), BANDB_SQL_READ_AT, at, "reading active bans");
}

static int op_changes_start(spwp_bandb *core, uint64_t cursor) {
        bandb *b = bandb_of(core);
        int rc;

        b->reading = BANDB_SQL_READ_CHANGES;
        rc = sqlite3_bind_int64(b->st[BANDB_SQL_READ_CHANGES], 1, (sqlite3_int64) cursor);
        return rc == SQLITE_OK ? 0 : bandb_fail(b, rc, "reading ban changes");
}

static int op_history_start(spwp_bandb *core, spw_usec_t since) {
        return time_read_start(bandb_of(core), BANDB_SQL_READ_HISTORY, since, "reading the ban history");
}

static int op_read_next(spwp_bandb *core) {
        bandb *b = bandb_of(core);
        int rc = sqlite3_step(b->st[b->reading]);

        if (rc == SQLITE_ROW)
                return 1;
        if (rc == SQLITE_DONE)
                return 0;
        return bandb_fail(b, rc, b->reading == BANDB_SQL_READ_AT        ? "reading active bans"
                                 : b->reading == BANDB_SQL_READ_HISTORY ? "reading the ban history"
                                                                        : "reading ban changes");
}

static const char *op_col_text(spwp_bandb *core, int col) {
        bandb *b = bandb_of(core);
        return (const char *) sqlite3_column_text(b->st[b->reading], col);
}

static int64_t op_col_int(spwp_bandb *core, int col) {
        bandb *b = bandb_of(core);
        return sqlite3_column_int64(b->st[b->reading], col);
}

static void op_col_time(spwp_bandb *core, int col, spw_usec_t *ret) {
        bandb *b = bandb_of(core);
        sqlite3_stmt *st = b->st[b->reading];
        const char *s = (const char *) sqlite3_column_text(st, col);

        if (s)
                (void) bandb_time_parse(s, (size_t) sqlite3_column_bytes(st, col), ret);
}

static void op_read_end(spwp_bandb *core, int how) {
        bandb *b = bandb_of(core);
        sqlite3_stmt *st = b->st[b->reading];

        (void) how;
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        b->reading = BANDB_SQL_READ_AT;
}

/* Pick into temp.bandb_gc_ban (bans) or temp.bandb_gc_sig (ban-less
 * signals): the pick writes only to temp tables, no write lock on the file
 * yet. */
static int op_gc_pick(spwp_bandb *core, spwp_bandb_pick what, const spwp_bandb_pick_args *a, uint64_t *picked,
                      int64_t *last) {
        static const int pick[] = {
                [SPWP_BANDB_PICK_COUNT] = BANDB_SQL_GC_PICK_COUNT,
                [SPWP_BANDB_PICK_AGE] = BANDB_SQL_GC_PICK_AGE,
                [SPWP_BANDB_PICK_SIGNALS] = BANDB_SQL_GC_PICK_SIGNALS,
                [SPWP_BANDB_PICK_EXPIRED] = BANDB_SQL_GC_PICK_EXPIRED,
        };
        bandb *b = bandb_of(core);
        spwp_bandb_value v[3];
        size_t n = 2;
        bool row = false;
        int r;

        switch (what) {
        case SPWP_BANDB_PICK_COUNT:
                v[0] = (spwp_bandb_value) { .kind = SPWP_BANDB_INT, .i = a->edge };
                v[1] = (spwp_bandb_value) { .kind = SPWP_BANDB_INT, .i = a->limit };
                v[2] = (spwp_bandb_value) { .kind = SPWP_BANDB_NOW, .t = a->now };
                n = 3;
                break;
        case SPWP_BANDB_PICK_AGE:
        case SPWP_BANDB_PICK_EXPIRED:
                v[0] = (spwp_bandb_value) { .kind = SPWP_BANDB_NOW, .t = a->cutoff };
                break;
        case SPWP_BANDB_PICK_SIGNALS:
        default:
                v[0] = (spwp_bandb_value) { .kind = SPWP_BANDB_INT, .i = a->after };
                v[1] = (spwp_bandb_value) { .kind = SPWP_BANDB_INT, .i = a->before };
                n = 3;
                break;
        }
        if (what != SPWP_BANDB_PICK_COUNT)
                v[n - 1] = (spwp_bandb_value) { .kind = SPWP_BANDB_INT, .i = a->limit };
        b->gc_now = a->now;

        *picked = 0;
        *last = 0;
        if (bandb_exec(b, BANDB_SQL_GC_CLEAR_BANS, "garbage collection") < 0 ||
            bandb_exec(b, BANDB_SQL_GC_CLEAR_SIGNALS, "garbage collection") < 0)
                return -1;
        r = bandb_step(b, pick[what], v, n, picked, NULL, NULL, "garbage collection");
        if (r == 0 && what == SPWP_BANDB_PICK_SIGNALS && *picked > 0)
                r = bandb_step(b, BANDB_SQL_GC_LAST_SIG, NULL, 0, NULL, last, &row, "garbage collection");
        return r;
}

static int pragma_int(bandb *b, int which, int64_t *ret) {
        bool row = false;

        *ret = 0;
        return bandb_step(b, which, NULL, 0, NULL, ret, &row, "measuring the database");
}

static int op_db_size(spwp_bandb *core, spwp_bandb_size *ret) {
        bandb *b = bandb_of(core);
        int64_t pages, free_pages, page_size;

        if (pragma_int(b, BANDB_SQL_PAGE_COUNT, &pages) < 0 || pragma_int(b, BANDB_SQL_FREELIST_COUNT, &free_pages) < 0 ||
            pragma_int(b, BANDB_SQL_PAGE_SIZE, &page_size) < 0)
                return -1;
        ret->file = (uint64_t) pages * (uint64_t) page_size;
        ret->free = (uint64_t) free_pages * (uint64_t) page_size;
        ret->used = ret->file - ret->free;
        return 0;
}

/* PRAGMA incremental_vacuum(N): moves pages from the end of the file into
 * free ones and truncates it (at the next checkpoint, in WAL mode). A file
 * without auto_vacuum INCREMENTAL ignores it and only reuses free pages. */
static int op_reclaim(spwp_bandb *core, uint64_t max_bytes, uint64_t *returned) {
        bandb *b = bandb_of(core);
        int64_t page_size, before, after;
        char sql[64];
        int rc;

        if (pragma_int(b, BANDB_SQL_PAGE_SIZE, &page_size) < 0 || page_size <= 0 ||
            pragma_int(b, BANDB_SQL_PAGE_COUNT, &before) < 0)
                return -1;
        snprintf(sql, sizeof sql, "PRAGMA incremental_vacuum(%" PRIu64 ")", max_bytes / (uint64_t) page_size + 1);
        rc = sqlite3_exec(b->db, sql, NULL, NULL, NULL);
        if (rc != SQLITE_OK)
                return bandb_fail(b, rc, "returning free pages (incremental_vacuum)");
        if (pragma_int(b, BANDB_SQL_PAGE_COUNT, &after) < 0)
                return -1;
        if (after < before)
                *returned += (uint64_t) (before - after) * (uint64_t) page_size;
        return 0;
}

static int op_gc_delete(spwp_bandb *core, bool bans, uint64_t *n_bans, uint64_t *n_signals, uint64_t *n_events) {
        bandb *b = bandb_of(core);
        uint64_t n = 0;

        spwp_bandb_value now = { .kind = SPWP_BANDB_NOW, .t = b->gc_now };

        /* only bans that had ended when they were picked */
        if (bandb_step(b, BANDB_SQL_GC_DELETE_BANS, &now, 1, &n, NULL, NULL, "garbage collection") < 0)
                return -1;
        if (bans)
                *n_bans += n;
        if (bandb_exec(b, BANDB_SQL_GC_ORPHANS, "garbage collection") < 0 ||
            bandb_step(b, BANDB_SQL_GC_DELETE_SIGNALS, NULL, 0, &n, NULL, NULL, "garbage collection") < 0)
                return -1;
        *n_signals += n;
        if (bandb_step(b, BANDB_SQL_GC_DELETE_EVENTS, NULL, 0, &n, NULL, NULL, "garbage collection") < 0)
                return -1;
        *n_events += n;
        return 0;
}

static const spwp_bandb_driver bandb_driver = {
        .name = "sqlite",
        .other_name = "mysql",
        .other_keys = "the mysql keys",
        .lost_before = "SQLite rolled the batch of ",
        .lost_after = " signal(s) back after an earlier error (logged with that insert)",
        .lost_delete = "nothing deleted",
        SPWP_BANDB_DRIVER_OPS,
        .history_start = op_history_start,
        .reclaim = op_reclaim,
};

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
                spwp_bandb_set_error(&b->core, "%s: directory %s: %s; create it (the unit's StateDirectory= does) "
                                     "or set db_path; the backend is not started", b->path, dir, strerror(-r));
        } else if (!S_ISDIR(st.st_mode)) {
                r = -ENOTDIR;
                spwp_bandb_set_error(&b->core, "%s: %s is not a directory; set db_path to a file in a writable "
                                     "directory; the backend is not started", b->path, dir);
        } else if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) < 0) {
                r = -errno;
                spwp_bandb_set_error(&b->core, "%s: directory %s is not writable by uid %u (%s): SQLite creates "
                                     "the database and its -wal and -shm files there; fix its owner or mode "
                                     "or set db_path; the backend is not started",
                                     b->path, dir, (unsigned) geteuid(), strerror(-r));
        } else if (stat(b->path, &st) == 0) {
                if (S_ISDIR(st.st_mode)) {
                        r = -EISDIR;
                        spwp_bandb_set_error(&b->core, "%s is a directory; db_path names the database file; "
                                             "the backend is not started", b->path);
                } else if (faccessat(AT_FDCWD, b->path, R_OK | W_OK, AT_EACCESS) < 0) {
                        r = -errno;
                        spwp_bandb_set_error(&b->core, "%s: the database file is not readable and writable by "
                                             "uid %u (%s); fix its owner or mode; the backend is not started",
                                             b->path, (unsigned) geteuid(), strerror(-r));
                }
        }
        /* SQLite opens an unwritable -wal or -shm read-only without an
         * error, and every write then fails: refuse to start instead */
        for (int i = 0; r == 0 && i < 2; i++) {
                const char *suffix = i == 0 ? "-wal" : "-shm";
                char side[PATH_MAX];

                snprintf(side, sizeof side, "%s%s", b->path, suffix);
                /* never open() it: closing that descriptor would drop the
                 * POSIX locks another instance of this process (the one a
                 * reload replaces) holds on it */
                if (faccessat(AT_FDCWD, side, R_OK | W_OK, AT_EACCESS) == 0 || errno == ENOENT)
                        continue;
                r = -errno;
                spwp_bandb_set_error(&b->core, "%s: %s is not writable by uid %u (%s): SQLite writes it beside the "
                                     "database; fix its owner and mode (chown, chmod u+rw; chattr -i if it is "
                                     "immutable) or remove it while spillwayd is stopped, then reload; the backend "
                                     "is not started", b->path, side, (unsigned) geteuid(), strerror(-r));
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

/* A file made without auto_vacuum (by CrowdSec, or by Spillway before it set
 * it) only reuses its free pages. Converting it is a VACUUM: a copy of the
 * whole file, under an exclusive lock. Done here for small files; larger
 * ones are left as they are, with the command to run in the log. */
static void bandb_convert_auto_vacuum(bandb *b) {
        sqlite3_stmt *st = NULL;
        int64_t mode = -1, pages = 0, page_size = 0;
        uint64_t size;
        int rc;

        if (sqlite3_prepare_v2(b->db, "SELECT * FROM pragma_auto_vacuum, pragma_page_count, pragma_page_size", -1, &st,
                               NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW) {
                mode = sqlite3_column_int64(st, 0);
                pages = sqlite3_column_int64(st, 1);
                page_size = sqlite3_column_int64(st, 2);
        }
        sqlite3_finalize(st);
        if (mode != 0)
                return;
        size = (uint64_t) pages * (uint64_t) page_size;
        if (size > BANDB_AUTO_VACUUM_CONVERT_MAX) {
                spwp_bandb_log(&b->core, LOG_NOTICE,
                               "%s: the file (%" PRIu64 " MiB) was created without auto_vacuum: free pages are reused "
                               "but never given back to the file system; to let garbage collection shrink it, stop "
                               "the daemon and run: sqlite3 %s 'PRAGMA auto_vacuum = INCREMENTAL; VACUUM' (needs "
                               "as much free disk space as the file)", b->path, size >> 20, b->path);
                return;
        }
        rc = sqlite3_exec(b->db, "PRAGMA auto_vacuum = INCREMENTAL; VACUUM", NULL, NULL, NULL);
        if (rc != SQLITE_OK)
                spwp_bandb_log(&b->core, LOG_WARNING, "%s: cannot convert the file to auto_vacuum INCREMENTAL (%s); "
                               "it keeps reusing its free pages only", b->path, sqlite3_errmsg(b->db));
        else
                spwp_bandb_log(&b->core, LOG_INFO, "%s: converted the file to auto_vacuum INCREMENTAL (%" PRIu64
                               " KiB)", b->path, size >> 10);
}

/* The (ip_text, deleted_at) index holds the active bans only (a partial
 * index, WHERE deleted_at IS NULL): every statement pinned to it asks for
 * active bans, and soft-deleted history in it cost garbage collection a
 * page at a random place of the index per ban removed, which at 10 M rows
 * of history (300 MB of index, 16 MiB of page cache) made collection five
 * times slower than at 1 M (README.md, "History and garbage collection").
 * Schema versions 1 and 2 created it whole: it is rebuilt once, here (a
 * read of the table's active bans; 10 M rows of history take seconds). */
static void bandb_partial_ip_index(bandb *b) {
        static const char rebuild[] =
                "BEGIN IMMEDIATE;"
                "DROP INDEX IF EXISTS " BANDB_IP_TEXT_INDEX ";"
                "CREATE INDEX " BANDB_IP_TEXT_INDEX " ON ban_applications (ip_text, deleted_at)"
                " WHERE deleted_at IS NULL;"
                "COMMIT";
        sqlite3_stmt *st = NULL;
        bool partial = true;
        struct timespec t0, t1;
        int rc;

        if (sqlite3_prepare_v2(b->db, "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?1", -1, &st,
                               NULL) == SQLITE_OK &&
            sqlite3_bind_text(st, 1, BANDB_IP_TEXT_INDEX, -1, SQLITE_STATIC) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW) {
                const char *sql = (const char *) sqlite3_column_text(st, 0);

                partial = sql && strstr(sql, " WHERE ");
        }
        sqlite3_finalize(st);
        if (partial)
                return;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        rc = sqlite3_exec(b->db, rebuild, NULL, NULL, NULL);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (rc != SQLITE_OK) {
                spwp_bandb_log(&b->core, LOG_WARNING, "%s: cannot rebuild " BANDB_IP_TEXT_INDEX " for active bans "
                               "only (%s); it keeps indexing the history too (garbage collection is slower with "
                               "millions of rows); the next start tries again", b->path, sqlite3_errmsg(b->db));
                sqlite3_exec(b->db, "ROLLBACK", NULL, NULL, NULL);
                return;
        }
        spwp_bandb_log(&b->core, LOG_INFO, "%s: rebuilt " BANDB_IP_TEXT_INDEX " for active bans only in %.1f s",
                       b->path, (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9);
}

/* WAL checkpoints run on the checkpoint thread (checkpoint.c, started in
 * bandb_init): a commit never waits for one. Only when that thread cannot
 * start does this hook checkpoint in the commit (PASSIVE: what no reader
 * needs) that brings the WAL to BANDB_CKPT_SOFT_PAGES, as SQLite's own
 * autocheckpoint does, but timed: the commit's caller (an insert's flush,
 * a collection chunk) waits for it, and after large deletions it is a large
 * part of a stall (issue 19). Its cost follows the pages it writes back
 * (bench-gc, 1 M rows of history: 167 ms at most for 1,000 pages, 317 ms
 * when collection left it 4,000): while garbage collection works, its
 * chunks' commits checkpoint at BANDB_CHECKPOINT_GC_PAGES, so that what a
 * run overshoots its budget by (one chunk and the checkpoint its commit
 * runs) stays small. `spillwayctl status` shows checkpoint_longest_ms, of
 * the thread or of this hook. */
#define BANDB_CHECKPOINT_GC_PAGES (BANDB_CKPT_SOFT_PAGES / 4)

static void bandb_checkpoint(bandb *b, const char *name) {
        struct timespec t0, t1;
        spw_usec_t took;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        /* SQLITE_BUSY (a reader holds the end): the next commit tries again */
        (void) sqlite3_wal_checkpoint_v2(b->db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        clock_gettime(CLOCK_MONOTONIC, &t1);

        took = (spw_usec_t) (t1.tv_sec - t0.tv_sec) * USEC_PER_SEC + (t1.tv_nsec - t0.tv_nsec) / 1000;
        bandb_checkpoint_took(b, took);
}

static int bandb_wal_hook(void *userdata, sqlite3 *db, const char *name, int frames) {
        bandb *b = userdata;

        (void) db;
        if (frames >= (b->core.gc.running ? BANDB_CHECKPOINT_GC_PAGES : BANDB_CKPT_SOFT_PAGES))
                bandb_checkpoint(b, name);
        return SQLITE_OK;
}

static int bandb_open(bandb *b) {
        char err[512], sql[64];
        int rc, from = 0, failed = 0, tables;

        bandb_global_config();
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
        snprintf(sql, sizeof sql, "PRAGMA cache_size = -%" PRIu64, b->cache_size / 1024);
        rc = sqlite3_exec(b->db, sql, NULL, NULL, NULL);
        if (rc != SQLITE_OK)
                return bandb_open_error(b, rc, "cannot set the page cache size", NULL);
        /* what SQLite took, in status (set in KiB: negative) */
        {
                sqlite3_stmt *st = NULL;
                if (sqlite3_prepare_v2(b->db, "PRAGMA cache_size", -1, &st, NULL) == SQLITE_OK &&
                    sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) < 0)
                        spwp_bandb_status_u64(&b->core, "cache_size", (uint64_t) -sqlite3_column_int64(st, 0) * 1024);
                sqlite3_finalize(st);
        }
        sqlite3_wal_hook(b->db, bandb_wal_hook, b);

        tables = bandb_count_tables(b);
        rc = bandb_migrate(b->db, &from, err, sizeof err);
        if (rc != SQLITE_OK && from > BANDB_SCHEMA_VERSION) {
                spwp_bandb_set_error(&b->core, "%s: schema version %d is newer than this plugin's (%d): the file was "
                                     "written by a newer Spillway; upgrade the plugin or set db_path to another "
                                     "file; the backend is not started", b->path, from, BANDB_SCHEMA_VERSION);
                return -EPROTO;
        }
        if (rc == SQLITE_ERROR) {
                spwp_bandb_set_error(&b->core, "%s: cannot upgrade the schema from version %d: %s: the existing "
                                     "tables do not have CrowdSec v0.3's layout; move the file aside "
                                     "(mv %s %s.broken) or set db_path to another file; the backend is not "
                                     "started", b->path, from, err, b->path, b->path);
                return -EBADMSG;
        }
        if (rc != SQLITE_OK)
                return bandb_open_error(b, rc, from == 0 ? "cannot create or upgrade the schema"
                                                         : "cannot upgrade the schema", err);

        bandb_convert_auto_vacuum(b);
        bandb_partial_ip_index(b);

        rc = bandb_prepare(b->db, b->st, &failed);
        if (rc != SQLITE_OK) {
                spwp_bandb_set_error(&b->core, "%s: the tables do not have CrowdSec v0.3's layout (%s, in "
                                     "\"%.40s...\"); move the file aside or fix the schema; the backend is not "
                                     "started",
                                     b->path, sqlite3_errmsg(b->db), failed >= 0 ? bandb_sql[failed] : "temp tables");
                return -EBADMSG;
        }

        if (from == 0 && tables == 0)
                spwp_bandb_log(&b->core, LOG_INFO, "%s: created the ban database (schema version %d)", b->path,
                               BANDB_SCHEMA_VERSION);
        else if (from < BANDB_SCHEMA_VERSION)
                spwp_bandb_log(&b->core, LOG_INFO, "%s: upgraded the %s database from schema version %d to %d",
                               b->path, from == 0 ? "CrowdSec v0.3" : "ban", from, BANDB_SCHEMA_VERSION);
        return 0;
}

/* Everything init does once b has its host: config, path, file, schema. */
static int bandb_setup(bandb *b, const spw_kv *config, size_t n_config) {
        const char *db_path, *name;
        int r;

        r = spwp_bandb_configure(&b->core, config, n_config, bandb_config_key);
        if (r < 0)
                return r;
        db_path = b->db_path;

        if (db_path && db_path[0] == '/')
                b->path = strdup(db_path);
        else {
                const char *dir = b->core.host->state_directory(b->core.ctx);
                size_t l;

                if (!dir || !*dir) {
                        spwp_bandb_set_error(&b->core, "no db_path set and the daemon has no state directory; "
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
                spwp_bandb_set_error(&b->core, "out of memory");
                return -ENOMEM;
        }
        b->core.where = b->path;

        r = bandb_check_location(b);
        if (r < 0)
                return r;
        return bandb_open(b);
}

static int bandb_init(spw_ctx *ctx, const struct spw_host *host, const spw_kv *config, size_t n_config,
                      void **selfp) {
        spwp_bandb *core;
        bandb *b;
        int r;

        r = spwp_bandb_new(&bandb_driver, sizeof(bandb), ctx, host, &core);
        if (r < 0)
                return r;
        b = bandb_of(core);
        b->busy_timeout = 5 * USEC_PER_SEC;
        b->watch_interval = 2 * USEC_PER_SEC;
        b->cache_size = BANDB_CACHE_SIZE_DEFAULT;

        r = bandb_setup(b, config, n_config);
        b->db_path = NULL;
        if (r < 0) {
                bandb_free(b);
                return r;
        }

        struct stat st;
        if (stat(b->path, &st) == 0) {
                b->dev = st.st_dev;
                b->ino = st.st_ino;
                b->watching = true;
                /* noticed within seconds even when no signal comes */
                if (b->watch_interval > 0 && host->schedule(ctx, b->watch_interval, bandb_watch_timer, b) < 0)
                        spwp_bandb_log(core, LOG_WARNING, "%s: cannot schedule the file watch; the file is checked "
                                       "at each commit only", b->path);
        }
        r = bandb_ckpt_start(b->db, b->path, BANDB_CKPT_SOFT_PAGES, BANDB_CKPT_HARD_PAGES, &b->ckpt);
        if (r < 0)
                spwp_bandb_log(core, LOG_WARNING, "%s: cannot start the WAL checkpoint thread (%s); commits "
                               "checkpoint the WAL themselves", b->path, strerror(-r));
        spwp_bandb_status(core, "checkpoints", b->ckpt ? "background" : "in commits");
        spwp_bandb_status(core, "database", "ok");
        spwp_bandb_status(core, "db_path", b->path);
        spwp_bandb_status(core, "synchronous", b->synchronous_full ? "full" : "normal");
        *selfp = b;
        return 0;
}

/* ------------------------------------------------------------ shutdown */

static bandb *bandb_free(bandb *b) {
        if (!b)
                return NULL;
        if (b->db) {
                spwp_bandb_close(&b->core);
                /* before the last connection closes: its close checkpoints
                 * and removes the WAL */
                bandb_ckpt_stop(b->ckpt);
                b->ckpt = NULL;
                bandb_finalize(b->st);
                if (sqlite3_close(b->db) != SQLITE_OK)
                        spwp_bandb_log(&b->core, LOG_ERR, "%s: cannot close the database: %s", b->path,
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
        SPWP_BANDB_BACKEND_OPS,
        .shutdown = bandb_shutdown,
};

SPW_BACKEND_EXPORT(bandb_backend)
