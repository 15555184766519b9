/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The ban-database core shared by the sqlite and mysql backends: everything
 * they do alike, once. A backend is a thin driver (a table of operations,
 * spwp_bandb_driver) that knows its SQL dialect, its client library and its
 * connection; the core owns the logic between the plugin ABI and those
 * operations:
 *
 *   - the batch: the transaction the first write after a flush opens and
 *     flush() commits; whether it was lost (rolled back by the database,
 *     connection gone) and then flush() answering -EAGAIN so the daemon
 *     inserts it again; undoing a failed insert by its signal id;
 *   - insert: checking the signal, the rows it writes (signal, events,
 *     bans, then the soft-delete of the targets' older bans, inside a
 *     savepoint when there are several), the messages and the transient /
 *     permanent verdict; or, for a driver with multi-row batches
 *     (buf_signal), handing the rows to the driver's buffer, which checks
 *     them (a value the server would refuse rejects that signal at insert)
 *     and writes the whole buffer at send(): before the commit and before
 *     anything else that runs in the batch (reads, deletes, timers, a
 *     row-by-row insert), so that they see it. A failure there rolls the
 *     batch back and the flush reports it (transient: inserted again;
 *     permanent: the batch failed), the ABI's flush contract;
 *   - read_at walking rows, delete_target/delete_all, and the timers:
 *     expiry every second; garbage collection of ended bans (soft-deleted
 *     or past until, whatever `flush` says) paced by the arrivals, a
 *     second after a run that did not finish, within a time budget
 *     (gc_max_pause), one chunk of each rule in turn (max_records,
 *     max_records_age, ban-less signals, max_db_size), and while behind a
 *     catch-up step after every flush; giving free space back where the
 *     driver can; chunks of up to CHUNK_ROWS rows join the batch or commit
 *     on their own;
 *   - the config keys both take (type, flush, max_records, max_records_age,
 *     max_db_size, gc_max_pause, debug), the totals shown by `spillwayctl
 *     status`, the warnings at shutdown and when collection falls behind.
 *
 * Statements are named by the core (SPWP_BANDB_Q_*) and their parameters
 * passed as typed values (spwp_bandb_value) in one logical order; each
 * driver maps them to its own statement texts and placeholders (SQLite
 * numbers them, ?1 used twice; MySQL repeats positional ? marks).
 *
 * Errors: driver operations return 0, or -1 with b->e filled (the
 * database's code and message and what was being done); the core asks the
 * driver whether a code is transient and which errno it means. Plugin
 * entry points follow the ABI's convention. Everything runs on the
 * backend's own worker thread: no locking.
 *
 * A driver's instance struct starts with a spwp_bandb (the core's state)
 * and the plugin hands that pointer to the host as its userdata.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <spillway/backend.h>

#include "spwp-config.h"

/* Config key table entries both backends declare alike: `type` (the
 * backend's own name, the other refused), the expiry and GC keys, debug. */
#define SPWP_BANDB_CONFIG_KEY_TYPE(name, other)                                                         \
        { "type", SPW_CONFIG_ENUM, name, "sqlite|mysql",                                                \
          "CrowdSec's database type key, accepted so its database.yaml loads; " other " is the " other  \
          " backend's job" }
#define SPWP_BANDB_CONFIG_KEYS_GC                                                                       \
        { "flush", SPW_CONFIG_BOOL, "true", NULL,                                                       \
          "expire bans automatically: every second, bans past `until` are soft-deleted (the limits "    \
          "below collect ended bans either way)" },                                                     \
        { "max_records", SPW_CONFIG_INT, "10000", NULL,                                                 \
          "keep at most this many bans: older ended bans (soft-deleted or past `until`) and their "     \
          "signals are removed; 0 = no limit" },                                                        \
        { "max_records_age", SPW_CONFIG_DURATION, "720h", NULL,                                         \
          "remove bans that ended (soft-deleted, or past `until`) longer ago than this, their signals, " \
          "and signals without bans; 0 = no limit" },                                                   \
        { "max_db_size", SPW_CONFIG_STRING, "0", NULL,                                                  \
          "storage limit like 500MB or 2GiB: above it the oldest history is removed first; "            \
          "0 = no limit" },                                                                             \
        { "gc_max_pause", SPW_CONFIG_DURATION, "200ms", NULL,                                           \
          "the longest one garbage-collection run may hold the backend (inserts wait meanwhile); "      \
          "when collection is behind it runs every second with up to this much work, and after every "  \
          "flush for up to 4 times this" },                                                             \
        { "gc_interval", SPW_CONFIG_DURATION, "1m", NULL,                                               \
          "the longest time between two garbage-collection runs (1s-1h); under a sustained rate "       \
          "they come more often, so that each run has a few thousand rows to remove" }
#define SPWP_BANDB_CONFIG_KEY_DEBUG \
        { "debug", SPW_CONFIG_BOOL, "false", NULL, "log every stored signal at debug level" }

/* Background work: transactions of at most CHUNK_ROWS rows. Expiry does at
 * most MAX_CHUNKS per run; garbage collection as many as its time budget
 * (gc_max_pause) allows, one chunk per rule in turn. */
/* The measure_source of manual bans (ban.add from the admin socket). */
#define SPWP_BANDB_MANUAL_SOURCE "cscli"

#define SPWP_BANDB_CHUNK_ROWS 1000
#define SPWP_BANDB_MAX_CHUNKS 10

/* A failure: the database's (or client library's) code and message, and
 * what we were doing. code 0: no database error. */
typedef struct spwp_bandb_error {
        unsigned code;
        char msg[512];
        const char *doing;
} spwp_bandb_error;

/* The statements the core runs, with their parameters in order. */
typedef enum spwp_bandb_query {
        SPWP_BANDB_Q_INSERT_SIGNAL,     /* SPWP_BANDB_SIG_* */
        SPWP_BANDB_Q_INSERT_EVENT,      /* SPWP_BANDB_EVENT_* */
        SPWP_BANDB_Q_INSERT_BAN,        /* SPWP_BANDB_BAN_* */
        SPWP_BANDB_Q_SUPERSEDE,         /* now, ip_text, the new signal's first ban id, new ban is manual (0/1) */
        SPWP_BANDB_Q_UNDO_BANS,         /* signal id */
        SPWP_BANDB_Q_UNDO_EVENTS,       /* signal id */
        SPWP_BANDB_Q_UNDO_SIGNAL,       /* signal id */
        SPWP_BANDB_Q_DELETE_TARGET,     /* now, ip_text */
        SPWP_BANDB_Q_DELETE_ALL,        /* now */
        SPWP_BANDB_Q_EXPIRE_PROBE,      /* now: a row if anything is to expire */
        SPWP_BANDB_Q_EXPIRE,            /* now, limit */
        SPWP_BANDB_Q_GC_EDGE,           /* max_records: id of the newest ban not kept */
        SPWP_BANDB_Q_GC_SIG_BOUNDARY,   /* after id, cutoff: the first signal after `after` stored at or after cutoff */
        SPWP_BANDB_Q_GC_BACKLOG_AGE,    /* the oldest deleted_at, in seconds since the epoch (the warning's) */
        /* the excess, counted up to a limit: how much collection has to catch up */
        SPWP_BANDB_Q_GC_EXCESS_COUNT,   /* edge, now, limit: ended bans (soft-deleted or until < now) with id <= edge */
        SPWP_BANDB_Q_GC_EXCESS_AGE,     /* cutoff, limit: bans soft-deleted before cutoff, plus (up to limit
                                         * again) bans never soft-deleted whose until is before cutoff */
        /* the ban-change log (read_changes, ABI 2.1) */
        SPWP_BANDB_Q_CHANGE_ADD,        /* now, signal id: an ADD per ban of the signal */
        SPWP_BANDB_Q_CHANGE_DEL_TARGET, /* now, ip_text: a DELETE per active ban of the target */
        SPWP_BANDB_Q_CHANGE_DEL_ALL,    /* now: a DELETE per active ban */
        SPWP_BANDB_Q_UNDO_CHANGES,      /* signal id */
        SPWP_BANDB_Q_CHANGES_MIN,       /* (none): the oldest seq kept */
        SPWP_BANDB_Q_CHANGES_MAX,       /* (none): the newest seq */
        SPWP_BANDB_Q_CHANGES_GC,        /* cutoff, newest seq (always kept) */
        _SPWP_BANDB_Q_MAX,
} spwp_bandb_query;

enum {
        SPWP_BANDB_SIG_NOW,             /* created_at and updated_at */
        SPWP_BANDB_SIG_MAP_KEY,
        SPWP_BANDB_SIG_SCENARIO,
        SPWP_BANDB_SIG_BUCKET_ID,
        SPWP_BANDB_SIG_ALERT_MESSAGE,
        SPWP_BANDB_SIG_EVENTS_COUNT,
        SPWP_BANDB_SIG_START_AT,
        SPWP_BANDB_SIG_STOP_AT,
        SPWP_BANDB_SIG_SOURCE_IP,
        SPWP_BANDB_SIG_SOURCE_RANGE,
        SPWP_BANDB_SIG_SOURCE_AS_NUMBER,
        SPWP_BANDB_SIG_SOURCE_AS_ORG,
        SPWP_BANDB_SIG_SOURCE_COUNTRY,
        SPWP_BANDB_SIG_SOURCE_LATITUDE,
        SPWP_BANDB_SIG_SOURCE_LONGITUDE,
        SPWP_BANDB_SIG_DEST_IP,
        SPWP_BANDB_SIG_CAPACITY,
        SPWP_BANDB_SIG_LEAK_SPEED,
        SPWP_BANDB_SIG_REPROCESS,
        SPWP_BANDB_SIG_SPILLWAY_ID,     /* schema 3: the daemon's stable signal id (0 binds NULL) */
        SPWP_BANDB_SIG_ORIGIN,          /* schema 3: whose id sequence it is (spwp_bandb.origin) */
        _SPWP_BANDB_SIG_MAX,
};

enum {
        SPWP_BANDB_EVENT_NOW,
        SPWP_BANDB_EVENT_TIME,
        SPWP_BANDB_EVENT_SOURCE_IP,
        SPWP_BANDB_EVENT_SIGNAL_ID,
        SPWP_BANDB_EVENT_SERIALIZED,
        _SPWP_BANDB_EVENT_MAX,
};

enum {
        SPWP_BANDB_BAN_NOW,
        SPWP_BANDB_BAN_MEASURE_SOURCE,
        SPWP_BANDB_BAN_MEASURE_TYPE,
        SPWP_BANDB_BAN_MEASURE_EXTRA,
        SPWP_BANDB_BAN_UNTIL,
        SPWP_BANDB_BAN_START_IP,
        SPWP_BANDB_BAN_END_IP,
        SPWP_BANDB_BAN_TARGET_CN,
        SPWP_BANDB_BAN_TARGET_AS,
        SPWP_BANDB_BAN_TARGET_AS_NAME,
        SPWP_BANDB_BAN_IP_TEXT,
        SPWP_BANDB_BAN_REASON,
        SPWP_BANDB_BAN_SCENARIO,
        SPWP_BANDB_BAN_SIGNAL_ID,
        SPWP_BANDB_BAN_SCOPE,           /* schema 3: "Ip", "Range", "Country", ... */
        SPWP_BANDB_BAN_VALUE,           /* schema 3: the target within the scope */
        _SPWP_BANDB_BAN_MAX,
};

/* The columns of a read_at row, in both dialects' SELECT order. */
enum {
        SPWP_BANDB_ROW_SOURCE,
        SPWP_BANDB_ROW_IPTEXT,
        SPWP_BANDB_ROW_REASON,
        SPWP_BANDB_ROW_BANCOUNT,
        SPWP_BANDB_ROW_ACTION,
        SPWP_BANDB_ROW_CN,
        SPWP_BANDB_ROW_AS,
        SPWP_BANDB_ROW_AS_NUMBER,
        SPWP_BANDB_ROW_EVENTS_COUNT,
        SPWP_BANDB_ROW_UNTIL,
        SPWP_BANDB_ROW_SCOPE,           /* NULL for rows stored before schema 3 */
        SPWP_BANDB_ROW_VALUE,
        _SPWP_BANDB_ROW_MAX,
        /* and, for the changes walk, after them: */
        SPWP_BANDB_ROW_SEQ = _SPWP_BANDB_ROW_MAX,
        SPWP_BANDB_ROW_KIND,
        SPWP_BANDB_ROW_AT,
        _SPWP_BANDB_CHANGE_MAX,
};

/* A parameter value. */
typedef enum spwp_bandb_kind {
        SPWP_BANDB_NULL,
        SPWP_BANDB_STR,         /* s, NULL binds NULL; a varchar(255) column (MySQL cuts to 255 characters) */
        SPWP_BANDB_TEXT,        /* s, NULL binds NULL; a long text column */
        SPWP_BANDB_NOW,         /* t: a time that is always set */
        SPWP_BANDB_TIME,        /* t, 0 (unset) binds NULL */
        SPWP_BANDB_INT,         /* i */
        SPWP_BANDB_INT32,       /* i, for an int column (MySQL clamps it) */
        SPWP_BANDB_NONZERO,     /* i, 0 binds NULL */
        SPWP_BANDB_ID,          /* u: a row id */
        SPWP_BANDB_DOUBLE,      /* d */
        SPWP_BANDB_ADDR,        /* a: 16 bytes */
} spwp_bandb_kind;

typedef struct spwp_bandb_value {
        spwp_bandb_kind kind;
        union {
                const char *s;
                spw_usec_t t;
                int64_t i;
                uint64_t u;
                double d;
                const uint8_t *a;
        };
} spwp_bandb_value;

/* What the garbage collector picks (spwp_bandb_driver.gc_pick). */
/* A ban has ended once soft-deleted or past its until: history, whatever
 * `flush` (expiry) says. gc_delete() removes only picked bans that have
 * ended at the pick's `now`. */
typedef enum spwp_bandb_pick {
        SPWP_BANDB_PICK_COUNT,          /* ended bans (soft-deleted, or until < now) with id <= edge, oldest id first */
        SPWP_BANDB_PICK_AGE,            /* bans soft-deleted before cutoff */
        SPWP_BANDB_PICK_SIGNALS,        /* signals without bans with after < id < before, in id order */
        SPWP_BANDB_PICK_EXPIRED,        /* bans never soft-deleted whose until is before cutoff (flush: false) */
} spwp_bandb_pick;

typedef struct spwp_bandb_pick_args {
        spw_usec_t now;                 /* every pick: "ended" is until < now */
        int64_t edge;                   /* PICK_COUNT */
        spw_usec_t cutoff;              /* PICK_AGE, PICK_EXPIRED */
        int64_t after, before;          /* PICK_SIGNALS */
        int64_t limit;                  /* at most this many (<= SPWP_BANDB_CHUNK_ROWS) */
} spwp_bandb_pick_args;

/* Storage, as the driver measures it (db_size). */
typedef struct spwp_bandb_size {
        uint64_t used;                  /* bytes holding rows and indexes */
        uint64_t free;                  /* bytes allocated but free for reuse */
        uint64_t file;                  /* bytes on disk (used + free, plus what the database keeps aside) */
} spwp_bandb_size;

/* The named locks background work takes when many hosts share a database. */
typedef enum spwp_bandb_lock {
        SPWP_BANDB_LOCK_EXPIRE,
        SPWP_BANDB_LOCK_GC,
} spwp_bandb_lock;

typedef struct spwp_bandb spwp_bandb;

typedef struct spwp_bandb_driver {
        const char *name;               /* "sqlite": the value of the `type` key */
        const char *other_name;         /* the other backend's `type` */
        const char *other_keys;         /* "give it %s": what the other backend needs */
        /* Messages: error text as "msg (error N)" rather than "msg"; timer
         * failures say what was being done. */
        bool show_code;
        bool timer_doing;
        /* Probe for expired bans even inside the batch (a consistent read
         * that takes no lock). */
        bool probe_in_batch;
        /* db_size() gives estimates that lag behind deletions (InnoDB's
         * statistics): above max_db_size, one chunk per run. */
        bool size_estimated;
        /* Log the stored row id with each stored signal (debug). */
        bool log_row_id;
        /* The lost batch: "<before>N<after>; the batch will be inserted again". */
        const char *lost_before, *lost_after;
        /* After a failed deletion on a lost connection. */
        const char *lost_delete;

        /* Errors: transient (worth retrying) and the errno of a code. */
        bool (*transient)(unsigned code);
        int (*to_errno)(unsigned code);

        /* A connection that works, opened again if it was lost (NULL: the
         * connection cannot be lost). Sets b->e on failure; connect_errno()
         * and advice() describe it. */
        int (*ensure)(spwp_bandb *b);
        int (*connect_errno)(unsigned code);
        const char *(*advice)(unsigned code);
        /* The connection was lost (the next ensure() reconnects). NULL: never. */
        bool (*lost)(spwp_bandb *b);

        /* Transactions. begin/commit set b->e on failure; rollback rolls back
         * whatever is open, if the connection can, and keeps b->e;
         * txn_alive says whether our transaction survived a failure. */
        int (*begin)(spwp_bandb *b, const char *doing);
        int (*commit)(spwp_bandb *b);
        void (*rollback)(spwp_bandb *b);
        bool (*txn_alive)(spwp_bandb *b);
        /* The savepoint around several soft-deletes: open, release, or roll
         * back to it and release it (keeping b->e). */
        int (*savepoint)(spwp_bandb *b, const char *doing);
        int (*release)(spwp_bandb *b, const char *doing);
        void (*rollback_to)(spwp_bandb *b);

        /* Run a statement that returns no rows; *changed (if not NULL) is
         * the number of rows written. */
        int (*run)(spwp_bandb *b, spwp_bandb_query q, const spwp_bandb_value *v, size_t n, uint64_t *changed,
                   const char *doing);
        /* The id the last run of q inserted. */
        uint64_t (*last_id)(spwp_bandb *b, spwp_bandb_query q);
        /* A SELECT of one integer: *found false if no row. */
        int (*select_int)(spwp_bandb *b, spwp_bandb_query q, const spwp_bandb_value *v, size_t n, int64_t *ret,
                          bool *found, const char *doing);

        /* read_at: start, then next() 1 per row (columns read with col_*),
         * 0 at the end, -1 on failure; end() with how it ended (0 done, 1
         * stopped by the callback, -1 failed). */
        int (*read_start)(spwp_bandb *b, spw_usec_t at);
        /* The same walk over the ban changes after `cursor` (ROW columns,
         * then SEQ, KIND, AT), oldest first; read_next, col_* and read_end
         * then apply to it. */
        int (*changes_start)(spwp_bandb *b, uint64_t cursor);
        /* The same walk over every ban kept, made at or after `since`, in
         * id order (ROW columns, then SEQ = the ban's id, KIND = 1 (ADD), AT
         * = when it was made). NULL: the driver cannot (read_history
         * answers -EOPNOTSUPP). */
        int (*history_start)(spwp_bandb *b, spw_usec_t since);
        int (*read_next)(spwp_bandb *b);
        const char *(*col_text)(spwp_bandb *b, int col);
        int64_t (*col_int)(spwp_bandb *b, int col);
        void (*col_time)(spwp_bandb *b, int col, spw_usec_t *ret);
        void (*read_end)(spwp_bandb *b, int how);

        /* Garbage collection: pick up to a->limit rows (*picked; *last the
         * highest id picked), then, inside a transaction, remove them with
         * the signals left without bans and their event sequences. */
        int (*gc_pick)(spwp_bandb *b, spwp_bandb_pick what, const spwp_bandb_pick_args *a, uint64_t *picked,
                       int64_t *last);
        int (*gc_delete)(spwp_bandb *b, bool bans, uint64_t *n_bans, uint64_t *n_signals, uint64_t *n_events);
        /* The storage the ban tables take (NULL: max_db_size is refused). */
        int (*db_size)(spwp_bandb *b, spwp_bandb_size *ret);
        /* Return up to max_bytes of free space to the file system (NULL:
         * the database only reuses it); *returned adds the bytes given
         * back. Runs inside a transaction. */
        int (*reclaim)(spwp_bandb *b, uint64_t max_bytes, uint64_t *returned);

        /* Multi-row batches (NULL: every insert writes its rows at once).
         * The core hands a signal's rows to the driver, which keeps them in
         * the open batch and writes them at send(): a handful of statements
         * for the whole buffer. buf_signal() takes the signal's row (v as
         * for SPWP_BANDB_Q_INSERT_SIGNAL, its non-zero spillway id `key`)
         * and returns 1 (buffered), 2 (that key is in the buffer already: a
         * duplicate), 0 (not for the buffer: the core writes it row by row,
         * after send()) or -1 (a value the server would refuse: b->e says
         * which; the signal is rejected, nothing buffered). buf_row() then
         * takes each event (SPWP_BANDB_Q_INSERT_EVENT) and ban
         * (SPWP_BANDB_Q_INSERT_BAN) row of that signal, its signal id left
         * 0 (filled at send), with the same answers but 2; on 0 or -1 the
         * core calls buf_cancel() to drop the signal's rows already taken.
         * send() writes the buffer inside the open transaction (then
         * empty, whatever happened); -1 with b->e set: some of it may be
         * written, the batch must be rolled back. The buffer is emptied by
         * begin, commit and rollback too. */
        int (*buf_signal)(spwp_bandb *b, int64_t key, const spwp_bandb_value *v, size_t n);
        int (*buf_row)(spwp_bandb *b, spwp_bandb_query q, const spwp_bandb_value *v, size_t n);
        void (*buf_cancel)(spwp_bandb *b);
        int (*send)(spwp_bandb *b);
        /* Signals in the buffer (0 without one). */
        size_t (*buffered)(spwp_bandb *b);

        /* Named locks for background work (NULL: one host per database). */
        int (*try_lock)(spwp_bandb *b, spwp_bandb_lock which, bool *got);
        void (*unlock)(spwp_bandb *b, spwp_bandb_lock which);
} spwp_bandb_driver;

struct spwp_bandb {
        const spwp_bandb_driver *drv;
        spw_ctx *ctx;
        const struct spw_host *host;
        const char *where;              /* the database, for messages (the driver's) */
        spwp_bandb_keys keys;           /* flush, max_records, max_records_age, debug */

        /* the batch */
        bool in_txn;                    /* our transaction is open */
        bool dirty;                     /* something was written in it */
        bool batch_lost;                /* it was lost dirty: the next flush says so */
        /* Writing the buffered rows failed (send): the batch was rolled
         * back, and the next flush returns batch_errno (-EAGAIN: it is
         * inserted again; else it failed) with batch_msg. */
        int batch_errno;
        char batch_msg[700];
        uint64_t n_pending;             /* inserts since the last flush */

        spwp_bandb_error e;             /* the last failure */

        /* totals for `spillwayctl status` */
        uint64_t n_expired, n_collected;
        uint64_t n_duplicates;          /* signals not stored again: their id was there */
        uint64_t n_other_scope;         /* bans stored of scopes other than Ip and Range */
        uint64_t pending_duplicates, pending_other_scope; /* the open batch's, counted at commit */

        /* Whose signal ids these are: a hash of the machine id and the
         * daemon's state directory (ids are unique per spool, not across
         * hosts sharing a MariaDB). Stored beside each signal's id; the pair
         * is unique (schema 3). */
        int64_t origin;

        /* storage limit (max_db_size, 0: none) and the GC's pacing */
        uint64_t max_db_size;
        spw_usec_t gc_max_pause;
        spw_usec_t gc_interval;         /* the longest time between two runs */
        struct {
                spw_usec_t next;        /* the next run is due (host clock) */
                spw_usec_t budget;      /* this run's time budget (monotonic) */
                spw_usec_t behind_since; /* 0: caught up */
                spw_usec_t warned_at;   /* the last "behind" warning */
                spw_usec_t size_warned_at;
                uint64_t removed_behind; /* rows removed since behind_since */
                int64_t sig_cursor;     /* ban-less signals up to this id are collected */
                int64_t sig_boundary;   /* the first signal younger than sig_boundary_cutoff */
                spw_usec_t sig_boundary_cutoff;
                spw_usec_t longest_run; /* the longest run (wall time): inserts waited this long */
                spw_usec_t longest_step; /* the longest catch-up step after a flush */
                uint64_t excess;        /* ended bans beyond the limits (the larger of the two below), 0: within */
                uint64_t excess_count, excess_age; /* beyond max_records, max_records_age (counted up to a limit) */
                uint64_t removed_steps; /* rows the catch-up steps removed while behind */
                spw_usec_t longest_step_ever;
                uint64_t debt;          /* rows the catch-up steps still owe (see gc_after_flush) */
                uint64_t steps;         /* catch-up steps run */
                uint64_t arrived;       /* signals committed since the last timer run */
                spw_usec_t last_run;    /* the last timer run (host clock) */
                spw_usec_t last_end;    /* the end of the last run or step (monotonic) */
                int64_t chunk_rows;     /* rows per chunk: CHUNK_ROWS, halved after a slow chunk (0: not yet set) */
                spw_usec_t longest_chunk; /* the longest chunk (pick, delete, commit) */
                bool running;           /* a run or step is working (SQLite's in-commit checkpoints are smaller then) */
                bool step_failed;       /* a step failed: none until the next timer run */
                spw_usec_t settled_at;  /* the last run that left nothing (0: none yet) */
                uint64_t removed_since; /* rows removed since settled_at */
                spw_usec_t interval;    /* the time to the next run after one that finished */
                bool warned;            /* warned in this episode of falling behind */
                uint64_t runs;
        } gc;
        spw_usec_t changes_collected_at; /* the change log's last collection */
        bool changes_left;              /* that collection ran out of time */
};

/* "500MB", "2GiB", "1048576" (bytes), "0": a storage size. kB/MB/GB/TB are
 * powers of 1000, KiB/MiB/GiB/TiB of 1024 (K, M, G, T alone: 1024). Returns
 * 0, or -EINVAL/-ERANGE. */
int spwp_bandb_parse_size(const char *s, uint64_t *ret);

/* Allocate a driver's instance of `size` bytes (starting with a spwp_bandb)
 * and set its core up. Returns 0 or a negative errno (with the host's error
 * set). */
int spwp_bandb_new(const spwp_bandb_driver *drv, size_t size, spw_ctx *ctx, const struct spw_host *host,
                   spwp_bandb **ret);

/* Read the config: the core's keys itself, the rest through driver_key,
 * which returns 1 (taken), 0 (not its key: warned about and ignored),
 * -EINVAL with *expected set (the core reports it), or another negative
 * errno with the host's error set. */
int spwp_bandb_configure(spwp_bandb *b, const spw_kv *config, size_t n_config,
                         int (*driver_key)(spwp_bandb *b, const char *key, const char *value, const char **expected));

/* "config key K: expected E, got "V"; the backend is not started". Returns -EINVAL. */
int spwp_bandb_config_error(spwp_bandb *b, const char *key, const char *value, const char *expected);

/* At shutdown: roll back a batch that was never flushed, with a warning.
 * The driver then closes its connection and frees the instance. */
void spwp_bandb_close(spwp_bandb *b);

/* The host's set_error(), log() and set_status() (when the host has it),
 * for the drivers. */
void spwp_bandb_set_error(spwp_bandb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void spwp_bandb_log(spwp_bandb *b, int priority, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void spwp_bandb_status(spwp_bandb *b, const char *key, const char *value);
/* A number for set_status(). */
void spwp_bandb_status_u64(spwp_bandb *b, const char *key, uint64_t v);

/* The plugin entry points (userdata is the spwp_bandb). */
int spwp_bandb_insert(void *userdata, const spw_signal *sig);
int spwp_bandb_flush(void *userdata);
int spwp_bandb_start_autocommit(void *userdata);
int spwp_bandb_read_at(void *userdata, spw_usec_t at, spw_row_fn fn, void *fn_userdata);
int spwp_bandb_read_history(void *userdata, spw_usec_t since, spw_change_fn fn, void *fn_userdata);
int spwp_bandb_read_changes(void *userdata, uint64_t cursor, spw_change_fn fn, void *fn_userdata,
                            uint64_t *next_cursor);

/* Ban changes older than this are collected (by the first flush after a
 * minute); a reader whose cursor is older gets a resync. */
#define SPWP_BANDB_CHANGES_KEEP (INT64_C(15) * 60 * 1000000)
int spwp_bandb_delete_target(void *userdata, const char *target, uint64_t *count);
int spwp_bandb_delete_all(void *userdata, uint64_t *count);

/* The operations every driver has, named op_NAME in the driver's file. */
#define SPWP_BANDB_DRIVER_OPS                   \
        .transient = op_transient,              \
        .to_errno = op_to_errno,                \
        .begin = op_begin,                      \
        .commit = op_commit,                    \
        .rollback = op_rollback,                \
        .txn_alive = op_txn_alive,              \
        .savepoint = op_savepoint,              \
        .release = op_release,                  \
        .rollback_to = op_rollback_to,          \
        .run = op_run,                          \
        .last_id = op_last_id,                  \
        .select_int = op_select_int,            \
        .read_start = op_read_start,            \
        .changes_start = op_changes_start,      \
        .read_next = op_read_next,              \
        .col_text = op_col_text,                \
        .col_int = op_col_int,                  \
        .col_time = op_col_time,                \
        .read_end = op_read_end,                \
        .gc_pick = op_gc_pick,                  \
        .gc_delete = op_gc_delete,              \
        .db_size = op_db_size

/* The descriptor members the core provides. */
#define SPWP_BANDB_BACKEND_OPS                                  \
        .insert = spwp_bandb_insert,                            \
        .flush = spwp_bandb_flush,                              \
        .start_autocommit = spwp_bandb_start_autocommit,        \
        .read_at = spwp_bandb_read_at,                          \
        .read_changes = spwp_bandb_read_changes,                \
        .read_history = spwp_bandb_read_history,                \
        .delete_target = spwp_bandb_delete_target,              \
        .delete_all = spwp_bandb_delete_all

_Static_assert((int) _SPWP_BANDB_EVENT_MAX <= (int) _SPWP_BANDB_SIG_MAX &&
               (int) _SPWP_BANDB_BAN_MAX <= (int) _SPWP_BANDB_SIG_MAX,
               "the signal's parameters are the most: arrays of _SPWP_BANDB_SIG_MAX hold any statement's");
