/* SPDX-License-Identifier: MIT */
/*
 * The ban-database core (see spwp-bandb.h): the logic the sqlite and mysql
 * backends share, over a driver's table of operations.
 *
 * The batch. The first write after a flush opens a transaction; flush()
 * commits it. Everything that writes while a batch is open joins it:
 * inserts, Delete/DeleteAll and the timers (the daemon flushes after each
 * of those). Without an open batch, admin writes are their own statement
 * and timer work commits in chunks of its own, so nothing the daemon did
 * not ask to batch waits for a flush.
 *
 * Invariants:
 *   - in_txn is true exactly while our transaction is open; dirty once
 *     something was written in it. After every failed statement inside it
 *     the driver says whether it survived (a database may roll the whole
 *     transaction back: SQLite on I/O errors and a full disk, InnoDB on a
 *     deadlock; a lost connection loses it). If a dirty batch was lost,
 *     the next flush() fails with -EAGAIN and the daemon inserts the whole
 *     batch again (all or nothing, at-least-once). batch_lost stays set
 *     until that flush, whatever happens to transactions opened meanwhile.
 *   - Multi-row batches (drivers with buf_signal): the rows of a signal
 *     with a spillway id and no new manual ban go to the driver's buffer;
 *     send_buffer() writes it before anything else runs in the batch
 *     (flush, read_at, delete, timers, a row-by-row insert), so every
 *     reader sees the batch as if written at insert. A failed send rolls
 *     the batch back (batch_lost, batch_errno): the batch, not a signal,
 *     is the unit then; the next flush returns its fate.
 *   - A failing row-by-row insert leaves the batch as it was: every row an insert
 *     writes carries the new signal's id, so undoing it is three DELETEs by
 *     that id (a SAVEPOINT per insert costs more, see the backends'
 *     READMEs). The soft-delete of older bans is the insert's last step:
 *     one UPDATE, atomic by itself, or for a signal with several bans,
 *     several inside a savepoint. If the undo fails too, the batch is
 *     rolled back and reported lost.
 *   - One active ban per target: after a signal's bans are inserted, all
 *     active bans with the same ip_text but one are soft-deleted. The one
 *     kept is a new manual ban, else a running manual ban (automatic bans
 *     never replace the admin's), else the one that ends last: a new ban
 *     can extend a ban, never shorten or expire it (a shorter one is
 *     stored soft-deleted, for the record).
 *   - An insert or a read that finds an idle connection dropped (no batch
 *     on it, nothing lost) reconnects and goes on at once (drivers whose
 *     connection can be lost).
 *   - Time comes from host->now() only (tests move the clock); the GC's
 *     time budget alone is measured on CLOCK_MONOTONIC (it bounds the
 *     worker's real stall).
 *
 * Garbage collection keeps every bound at any rate the database ingests:
 *   - what is history: a ban that ended, soft-deleted or past its until
 *     (flush: false never soft-deletes; it only turns expiry off);
 *   - pacing: the timer ticks every second; a run is due a second after
 *     one that left work; after one that finished, when GC_RUN_ROWS rows
 *     have arrived at the rate measured since the previous such run, or
 *     were stored by this backend since the last run, and at most
 *     gc_interval (a minute) later. Its budget
 *     starts at gc_max_pause / 4 and doubles after each unfinished run, up
 *     to gc_max_pause; it is checked before each chunk after the first
 *     round, so a run lasts at most gc_max_pause plus one chunk;
 *   - fairness: a round takes one chunk of each rule with work left (size,
 *     count, age, ban-less signals), so none starves another;
 *   - ban-less signals are found from a cursor: every signal below it that
 *     never had a ban is collected (signals gain no bans after their
 *     insert; one whose bans go is removed with them), so a chunk reads
 *     only signals it may remove and those whose bans are still kept;
 *   - behind (a run left work): the excess is counted (bounded), and
 *     every flush is followed by a catch-up step that removes twice what
 *     the batch stored plus a share of the excess (gc_after_flush), so
 *     collection wins against the inserts at any rate: they slow down and
 *     the daemon's queue fills before the database grows;
 *   - chunks halve after a slow one (the unit a run overshoots by; the
 *     driver may keep its own upkeep small meanwhile: SQLite, when its
 *     checkpoint thread could not start and commits checkpoint the WAL,
 *     does so at a quarter of the usual size while gc.running);
 *   - behind for GC_WARN_AFTER: a warning with the backlog, at most every
 *     GC_WARN_EVERY; a notice when it caught up.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "spwp-bandb.h"

#define USEC_PER_SEC  INT64_C(1000000)
#define USEC_PER_MSEC INT64_C(1000)

#define EXPIRE_INTERVAL (1 * USEC_PER_SEC)
#define CHUNK_ROWS      SPWP_BANDB_CHUNK_ROWS
#define MAX_CHUNKS      SPWP_BANDB_MAX_CHUNKS

/* Garbage collection's pacing (see gc_tick): the timer ticks every second;
 * a run is due a minute after one that finished everything, a second after
 * one that left work. A run's time budget starts at a quarter of
 * gc_max_pause and doubles after each run that could not finish, up to
 * gc_max_pause. Behind for GC_WARN_AFTER: a warning, at most every
 * GC_WARN_EVERY. */
#define GC_TICK              (1 * USEC_PER_SEC)
#define GC_INTERVAL          (60 * USEC_PER_SEC)
/* Rows one run is meant to find (bans, signals and event sequences count
 * alike): after a run that finished, the next is due when about this many
 * rows have arrived at the rate measured since the last such run, at most
 * gc_interval later. At 2,000 signals/s this is about once a second, each
 * run a few tens of ms, instead of 120,000 bans once a minute (issue 19:
 * soft-deleted bans swung up to max_records plus a minute of arrivals). */
#define GC_RUN_ROWS          (4 * CHUNK_ROWS)
#define GC_ROWS_PER_SIGNAL   3
#define GC_MAX_PAUSE_DEFAULT (200 * USEC_PER_MSEC)
/* Behind for GC_WARN_AFTER: a warning (at most every GC_WARN_EVERY); the
 * size limit's, at most every GC_WARN_SIZE_EVERY. */
#define GC_WARN_AFTER        (10 * USEC_PER_SEC)
#define GC_WARN_EVERY        (300 * USEC_PER_SEC)
#define GC_WARN_SIZE_EVERY   (60 * USEC_PER_SEC)
/* Behind (a run left work): the excess is counted up to GC_EXCESS_LIMIT
 * ended bans per rule, and after every flush a catch-up step removes
 * GC_CATCHUP_FACTOR times the rows the flush stored plus the excess at a
 * pace that clears it in GC_EXCESS_TIME of the worker's time, for at most
 * GC_STEP_PAUSES times gc_max_pause (see gc_after_flush). */
#define GC_EXCESS_LIMIT      (8 * GC_RUN_ROWS)
#define GC_CATCHUP_FACTOR    2
#define GC_EXCESS_TIME       (16 * USEC_PER_SEC)
#define GC_STEP_PAUSES       4
/* Chunks: halved after one slower than half of gc_max_pause (at least
 * GC_SLOW_CHUNK), down to GC_MIN_CHUNK rows (see gc_chunk). */
#define GC_SLOW_CHUNK        (50 * USEC_PER_MSEC)
#define GC_MIN_CHUNK         (CHUNK_ROWS / 8)
#define MIN_DB_SIZE          (UINT64_C(1) << 20)
#define SIZE_CHUNK_ROWS      (CHUNK_ROWS / 4)
/* Free space returned per run at most (SQLite: incremental_vacuum). */
#define RECLAIM_STEP         (UINT64_C(8) << 20)

/* ------------------------------------------------------------ set-up */

/* The signal ids' origin (spwp_bandb.origin): a 63-bit FNV-1a hash of
 * "MACHINE-ID:STATE-DIR". The daemon's ids are unique per state directory
 * (they start at its start time and survive restarts through the spool),
 * not across hosts: two hosts sharing a MariaDB must not take each other's
 * signals for duplicates. A number, not the text: the unique index stays
 * two integers wide (the text made every insert 1.6 times slower in
 * bench-ceiling). Without /etc/machine-id, the host name stands in. */
static void origin_init(spwp_bandb *b) {
        const char *dir = b->host->state_directory ? b->host->state_directory(b->ctx) : NULL;
        char machine[64] = "", text[320];
        uint64_t h = UINT64_C(0xcbf29ce484222325);
        FILE *f = fopen("/etc/machine-id", "re");

        if (f) {
                if (!fgets(machine, sizeof machine, f))
                        machine[0] = 0;
                fclose(f);
                machine[strcspn(machine, "\r\n")] = 0;
        }
        if (!machine[0] && gethostname(machine, sizeof machine - 1) < 0)
                snprintf(machine, sizeof machine, "unknown");
        snprintf(text, sizeof text, "%.63s:%.250s", machine, dir ? dir : "");
        for (const char *p = text; *p; p++)
                h = (h ^ (unsigned char) *p) * UINT64_C(0x100000001b3);
        b->origin = (int64_t) (h >> 1); /* positive in a signed 64-bit column */
}

static spw_usec_t mono_now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (spw_usec_t) ts.tv_sec * USEC_PER_SEC + ts.tv_nsec / 1000;
}

int spwp_bandb_new(const spwp_bandb_driver *drv, size_t size, spw_ctx *ctx, const struct spw_host *host,
                   spwp_bandb **ret) {
        spwp_bandb *b;

        if (!host || !SPW_HAS_MEMBER(host, struct spw_host, schedule))
                return -EPROTO;
        b = calloc(1, size);
        if (!b) {
                host->set_error(ctx, "out of memory");
                return -ENOMEM;
        }
        b->drv = drv;
        b->ctx = ctx;
        b->host = host;
        b->where = drv->name;
        b->keys = SPWP_BANDB_KEYS_DEFAULT;
        b->gc_max_pause = GC_MAX_PAUSE_DEFAULT;
        origin_init(b);
        b->gc_interval = GC_INTERVAL;
        *ret = b;
        return 0;
}

int spwp_bandb_config_error(spwp_bandb *b, const char *key, const char *value, const char *expected) {
        b->host->set_error(b->ctx, "config key %s: expected %s, got \"%s\"; the backend is not started",
                           key, expected, value);
        return -EINVAL;
}

int spwp_bandb_configure(spwp_bandb *b, const spw_kv *config, size_t n_config,
                         int (*driver_key)(spwp_bandb *b, const char *key, const char *value, const char **expected)) {
        const spwp_bandb_driver *d = b->drv;

        for (size_t i = 0; i < n_config; i++) {
                const char *k = config[i].key, *v = config[i].value ? config[i].value : "", *expected = NULL;
                int r;

                if (strcmp(k, "type") == 0) {
                        char buf[128];

                        if (strcmp(v, d->other_name) == 0) {
                                b->host->set_error(b->ctx,
                                                   "config key type: \"%s\" is served by the %s backend, not by "
                                                   "this %s plugin; point this backend's `path:` at %s.so and "
                                                   "give it %s; the backend is not started",
                                                   d->other_name, d->other_name, d->name, d->other_name,
                                                   d->other_keys);
                                return -EINVAL;
                        }
                        snprintf(buf, sizeof buf, "%s (or %s, with the %s backend)", d->name, d->other_name,
                                 d->other_name);
                        if (strcmp(v, d->name) != 0)
                                return spwp_bandb_config_error(b, k, v, buf);
                } else if (strcmp(k, "max_db_size") == 0) {
                        if (spwp_bandb_parse_size(v, &b->max_db_size) < 0)
                                return spwp_bandb_config_error(b, k, v, "a size like 500MB or 2GiB, or 0");
                        if (b->max_db_size > 0 && !d->db_size)
                                return spwp_bandb_config_error(b, k, v, "0 (this backend cannot measure its size)");
                        if (b->max_db_size > 0 && b->max_db_size < MIN_DB_SIZE)
                                return spwp_bandb_config_error(b, k, v, "0 or at least 1MiB");
                } else if (strcmp(k, "gc_max_pause") == 0) {
                        int64_t t;

                        if (spwp_parse_duration(v, &t) < 0 || t < USEC_PER_MSEC || t > 60 * USEC_PER_SEC)
                                return spwp_bandb_config_error(b, k, v, "a duration from 1ms to 1m, like 200ms");
                        b->gc_max_pause = t;
                } else if (strcmp(k, "gc_interval") == 0) {
                        int64_t t;

                        if (spwp_parse_duration(v, &t) < 0 || t < USEC_PER_SEC || t > 3600 * USEC_PER_SEC)
                                return spwp_bandb_config_error(b, k, v, "a duration from 1s to 1h, like 1m");
                        b->gc_interval = t;
                } else if ((r = spwp_bandb_keys_set(&b->keys, k, v, &expected)) != 0) {
                        if (r < 0)
                                return spwp_bandb_config_error(b, k, v, expected);
                } else if ((r = driver_key(b, k, v, &expected)) < 0) {
                        return r == -EINVAL && expected ? spwp_bandb_config_error(b, k, v, expected) : r;
                } else if (r == 0)
                        /* The daemon refuses unknown keys from files; one that
                         * still reaches us is a default the daemon merged in. */
                        b->host->log(b->ctx, LOG_WARNING, "ignoring unknown config key %s", k);
        }
        return 0;
}

void spwp_bandb_set_error(spwp_bandb *b, const char *fmt, ...) {
        char buf[2048];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        b->host->set_error(b->ctx, "%s", buf);
}

void spwp_bandb_log(spwp_bandb *b, int priority, const char *fmt, ...) {
        char buf[2048];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        b->host->log(b->ctx, priority, "%s", buf);
}

void spwp_bandb_status(spwp_bandb *b, const char *key, const char *value) {
        if (SPW_HAS_MEMBER(b->host, struct spw_host, set_status))
                b->host->set_status(b->ctx, key, value);
}

void spwp_bandb_status_u64(spwp_bandb *b, const char *key, uint64_t v) {
        char buf[32];

        snprintf(buf, sizeof buf, "%" PRIu64, v);
        spwp_bandb_status(b, key, buf);
}

void spwp_bandb_close(spwp_bandb *b) {
        if (!b->in_txn || (b->drv->lost && b->drv->lost(b)))
                return;
        b->host->log(b->ctx, LOG_WARNING, "%s: shutting down with %" PRIu64 " signal(s) not flushed; rolled back",
                     b->where, b->n_pending);
        b->drv->rollback(b);
        b->in_txn = b->dirty = false;
}

/* ------------------------------------------------------------ helpers */

static bool lost(spwp_bandb *b) {
        return b->drv->lost && b->drv->lost(b);
}

static int ensure(spwp_bandb *b) {
        return b->drv->ensure ? b->drv->ensure(b) : 0;
}

/* The last failure as the messages show it. */
static const char *describe(spwp_bandb *b, char buf[static 600]) {
        if (!b->drv->show_code)
                return b->e.msg;
        snprintf(buf, 600, "%s (error %u)", b->e.msg, b->e.code);
        return buf;
}

static bool transient(spwp_bandb *b) {
        return b->drv->transient(b->e.code);
}

static int err_errno(spwp_bandb *b) {
        return b->drv->to_errno(b->e.code);
}

static const char *scenario(const spw_signal *sig) {
        return sig->scenario ? sig->scenario : "none";
}

/* After a failed statement: did our transaction survive it? */
static void check_txn(spwp_bandb *b) {
        if (!b->in_txn || b->drv->txn_alive(b))
                return;
        b->in_txn = false;
        b->batch_lost = b->batch_lost || b->dirty;
        b->dirty = false;
}

/* Open the batch if none is open. */
static int begin_batch(spwp_bandb *b) {
        if (b->in_txn)
                return 0;
        if (b->drv->begin(b, "opening the batch transaction") < 0)
                return -1;
        b->in_txn = true;
        return 0;
}

/* Start one step of background work: join the batch if one is open, else
 * open a transaction of its own (*own). */
static int step_begin(spwp_bandb *b, bool *own) {
        *own = !b->in_txn;
        return *own ? b->drv->begin(b, "opening a transaction") : 0;
}

static int step_end(spwp_bandb *b, bool own, int r) {
        if (own) {
                if (r == 0 && b->drv->commit(b) < 0)
                        r = -1;
                if (r < 0)
                        b->drv->rollback(b);
        } else if (r == 0)
                b->dirty = true;
        else
                check_txn(b);
        return r;
}

#define VALUES(...) (const spwp_bandb_value[]) { __VA_ARGS__ }, \
        sizeof((const spwp_bandb_value[]) { __VA_ARGS__ }) / sizeof(spwp_bandb_value)

static spwp_bandb_value v_str(const char *s) {
        return (spwp_bandb_value) { .kind = SPWP_BANDB_STR, .s = s };
}

static spwp_bandb_value v_now(spw_usec_t t) {
        return (spwp_bandb_value) { .kind = SPWP_BANDB_NOW, .t = t };
}

static spwp_bandb_value v_id(uint64_t u) {
        return (spwp_bandb_value) { .kind = SPWP_BANDB_ID, .u = u };
}

static spwp_bandb_value v_int(int64_t i) {
        return (spwp_bandb_value) { .kind = SPWP_BANDB_INT, .i = i };
}

/* ------------------------------------------------------------ insert */

static bool ban_manual(const spw_ban *ban) {
        return ban->measure_source && strcmp(ban->measure_source, SPWP_BANDB_MANUAL_SOURCE) == 0;
}

/* The values of a signal's rows, in the order of SPWP_BANDB_Q_INSERT_SIGNAL,
 * _EVENT and _BAN (id: the signal's row id, 0 while unknown). */
_Static_assert((int) _SPWP_BANDB_SIG_MAX >= (int) _SPWP_BANDB_BAN_MAX &&
               (int) _SPWP_BANDB_SIG_MAX >= (int) _SPWP_BANDB_EVENT_MAX, "the rows' value arrays");
static void signal_values(spwp_bandb *b, const spw_signal *sig, spw_usec_t now, spwp_bandb_value *v) {
        const spw_source *src = sig->source;

#define FALLBACK(field, srcfield) v_str(sig->field ? sig->field : src ? src->srcfield : NULL)
        v[SPWP_BANDB_SIG_NOW] = v_now(now);
        v[SPWP_BANDB_SIG_MAP_KEY] = v_str(sig->map_key);
        v[SPWP_BANDB_SIG_SCENARIO] = v_str(sig->scenario);
        v[SPWP_BANDB_SIG_BUCKET_ID] = v_str(sig->bucket_id);
        v[SPWP_BANDB_SIG_ALERT_MESSAGE] = v_str(sig->alert_message);
        v[SPWP_BANDB_SIG_EVENTS_COUNT] = (spwp_bandb_value) { .kind = SPWP_BANDB_INT32, .i = sig->events_count };
        v[SPWP_BANDB_SIG_START_AT] = (spwp_bandb_value) { .kind = SPWP_BANDB_TIME, .t = sig->start_at };
        v[SPWP_BANDB_SIG_STOP_AT] = (spwp_bandb_value) { .kind = SPWP_BANDB_TIME, .t = sig->stop_at };
        v[SPWP_BANDB_SIG_SOURCE_IP] = FALLBACK(source_ip, ip);
        v[SPWP_BANDB_SIG_SOURCE_RANGE] = FALLBACK(source_range, range);
        v[SPWP_BANDB_SIG_SOURCE_AS_NUMBER] = FALLBACK(source_as_number, as_number);
        v[SPWP_BANDB_SIG_SOURCE_AS_ORG] = FALLBACK(source_as_org, as_org);
        v[SPWP_BANDB_SIG_SOURCE_COUNTRY] = FALLBACK(source_country, country);
        v[SPWP_BANDB_SIG_SOURCE_LATITUDE] = (spwp_bandb_value) {
                .kind = SPWP_BANDB_DOUBLE,
                .d = sig->source_latitude != 0 || !src ? sig->source_latitude : src->latitude };
        v[SPWP_BANDB_SIG_SOURCE_LONGITUDE] = (spwp_bandb_value) {
                .kind = SPWP_BANDB_DOUBLE,
                .d = sig->source_longitude != 0 || !src ? sig->source_longitude : src->longitude };
        v[SPWP_BANDB_SIG_DEST_IP] = v_str(sig->dest_ip);
        v[SPWP_BANDB_SIG_CAPACITY] = (spwp_bandb_value) { .kind = SPWP_BANDB_INT32, .i = sig->capacity };
        v[SPWP_BANDB_SIG_LEAK_SPEED] = v_int(sig->leak_speed_ns);
        v[SPWP_BANDB_SIG_REPROCESS] = v_int(sig->reprocess);
        /* ids above INT64_MAX cannot be stored (never made: they start at
         * the start time in microseconds); they are not deduplicated */
        v[SPWP_BANDB_SIG_SPILLWAY_ID] = (spwp_bandb_value) {
                .kind = SPWP_BANDB_NONZERO, .i = sig->id <= INT64_MAX ? (int64_t) sig->id : 0 };
        v[SPWP_BANDB_SIG_ORIGIN] = v_int(b->origin);
#undef FALLBACK
}

static void event_values(const spw_event *ev, spw_usec_t now, uint64_t id, spwp_bandb_value *v) {
        v[SPWP_BANDB_EVENT_NOW] = v_now(now);
        v[SPWP_BANDB_EVENT_TIME] = (spwp_bandb_value) { .kind = SPWP_BANDB_TIME, .t = ev->time };
        v[SPWP_BANDB_EVENT_SOURCE_IP] = v_str(ev->source_ip);
        v[SPWP_BANDB_EVENT_SIGNAL_ID] = v_id(id);
        v[SPWP_BANDB_EVENT_SERIALIZED] = (spwp_bandb_value) { .kind = SPWP_BANDB_TEXT, .s = ev->serialized };
}

static void ban_values(const spw_signal *sig, size_t i, spw_usec_t now, uint64_t id, spwp_bandb_value *v) {
        const spw_ban *ban = spw_signal_ban(sig, i);
        bool has_scope = sig->n_bans > 0 && SPW_SIGNAL_BAN_HAS(sig, value);

        v[SPWP_BANDB_BAN_NOW] = v_now(now);
        v[SPWP_BANDB_BAN_MEASURE_SOURCE] = v_str(ban->measure_source);
        v[SPWP_BANDB_BAN_MEASURE_TYPE] = v_str(ban->measure_type);
        v[SPWP_BANDB_BAN_MEASURE_EXTRA] = v_str(ban->measure_extra);
        v[SPWP_BANDB_BAN_UNTIL] = (spwp_bandb_value) { .kind = SPWP_BANDB_TIME, .t = ban->until };
        v[SPWP_BANDB_BAN_START_IP] = (spwp_bandb_value) { .kind = SPWP_BANDB_ADDR, .a = ban->start_ip };
        v[SPWP_BANDB_BAN_END_IP] = (spwp_bandb_value) { .kind = SPWP_BANDB_ADDR, .a = ban->end_ip };
        v[SPWP_BANDB_BAN_TARGET_CN] = v_str(ban->target_cn);
        v[SPWP_BANDB_BAN_TARGET_AS] = (spwp_bandb_value) { .kind = SPWP_BANDB_NONZERO, .i = ban->target_as };
        v[SPWP_BANDB_BAN_TARGET_AS_NAME] = v_str(ban->target_as_name);
        v[SPWP_BANDB_BAN_IP_TEXT] = v_str(ban->ip_text);
        v[SPWP_BANDB_BAN_REASON] = v_str(ban->reason);
        v[SPWP_BANDB_BAN_SCENARIO] = v_str(ban->scenario);
        v[SPWP_BANDB_BAN_SIGNAL_ID] = v_id(id);
        /* plugins of ABI 2.2 see the scope's name; an older daemon's
         * bans are Ip or Range, told apart by the int */
        v[SPWP_BANDB_BAN_SCOPE] = v_str(has_scope && ban->scope_name ? ban->scope_name
                                        : ban->scope == SPW_SCOPE_RANGE ? "Range" : "Ip");
        v[SPWP_BANDB_BAN_VALUE] = v_str(has_scope && ban->value ? ban->value : ban->ip_text);
}

/* Multi-row batches (drivers with buf_signal): hand the signal's rows to
 * the driver's buffer. 1 buffered, 2 a duplicate of a buffered signal, 0
 * not for the buffer (no spillway id to read its row id back by, or a new
 * manual ban, whose ranking is per target: row by row), -1 a value the
 * server would refuse (b->e). */
static int buffer_signal(spwp_bandb *b, const spw_signal *sig, spw_usec_t now) {
        const spwp_bandb_driver *d = b->drv;
        spwp_bandb_value v[_SPWP_BANDB_SIG_MAX];
        int r;

        if (!d->buf_signal || sig->id == 0 || sig->id > INT64_MAX)
                return 0;
        for (size_t i = 0; i < sig->n_bans; i++)
                if (ban_manual(spw_signal_ban(sig, i)))
                        return 0;
        signal_values(b, sig, now, v);
        r = d->buf_signal(b, (int64_t) sig->id, v, _SPWP_BANDB_SIG_MAX);
        if (r != 1)
                return r;
        for (size_t i = 0; r == 1 && i < sig->n_events; i++) {
                event_values(spw_signal_event(sig, i), now, 0, v);
                r = d->buf_row(b, SPWP_BANDB_Q_INSERT_EVENT, v, _SPWP_BANDB_EVENT_MAX);
        }
        for (size_t i = 0; r == 1 && i < sig->n_bans; i++) {
                ban_values(sig, i, now, 0, v);
                r = d->buf_row(b, SPWP_BANDB_Q_INSERT_BAN, v, _SPWP_BANDB_BAN_MAX);
        }
        if (r != 1)
                d->buf_cancel(b);
        return r;
}

/* Write the buffered rows into the open batch: before anything else runs
 * in it (a read, a delete, a timer, a row-by-row insert, the commit), so
 * that it sees them. If that fails, some rows may be written: the batch is
 * rolled back, and the next flush returns the error (transient: it is
 * inserted again; permanent: it failed). Returns 0, or -1 (b->e, and
 * batch_msg the batch's fate). */
static int send_buffer(spwp_bandb *b) {
        char buf[600];
        bool retry;

        if (!b->drv->send || !b->in_txn || b->drv->buffered(b) == 0)
                return 0;
        if (b->drv->send(b) == 0)
                return 0;
        retry = transient(b);
        /* the message may be cut: batch_msg is a bounded copy */
        if (snprintf(b->batch_msg, sizeof b->batch_msg, "cannot write the batch of %" PRIu64 " signal(s): %.500s "
                     "while %.80s; rolled back, %s", b->n_pending, describe(b, buf),
                     b->e.doing ? b->e.doing : "writing it",
                     retry ? "it will be inserted again" : "the batch is dropped") < 0)
                b->batch_msg[0] = 0;
        b->batch_errno = retry ? -EAGAIN : err_errno(b);
        b->drv->rollback(b);
        b->in_txn = b->dirty = false;
        b->batch_lost = true;
        return -1;
}

/* The signal's rows: the signal, its events, its bans, then the soft-delete
 * of older active bans of the same targets. *id is the new signal's id once
 * its row exists (0 before). */
static int write_signal(spwp_bandb *b, const spw_signal *sig, spw_usec_t now, uint64_t *id, bool *duplicate) {
        const spwp_bandb_driver *d = b->drv;
        spwp_bandb_value v[_SPWP_BANDB_SIG_MAX]; /* the widest: see the assertion above */
        uint64_t first_ban = 0, inserted = 0;
        const char *doing = "soft-deleting the targets' older active bans";

        signal_values(b, sig, now, v);
        /* a signal id already stored (the spool redelivers the batch that
         * was in flight at a crash) inserts nothing: the statement ignores
         * the unique (spillway_signal_id, spillway_origin) conflict */
        *duplicate = false;
        if (d->run(b, SPWP_BANDB_Q_INSERT_SIGNAL, v, _SPWP_BANDB_SIG_MAX, &inserted,
                   "inserting into signal_occurences") < 0)
                return -1;
        if (inserted == 0) {
                *duplicate = true;
                return 0;
        }
        *id = d->last_id(b, SPWP_BANDB_Q_INSERT_SIGNAL);

        for (size_t i = 0; i < sig->n_events; i++) {
                event_values(spw_signal_event(sig, i), now, *id, v);
                if (d->run(b, SPWP_BANDB_Q_INSERT_EVENT, v, _SPWP_BANDB_EVENT_MAX, NULL,
                           "inserting into event_sequences") < 0)
                        return -1;
        }

        for (size_t i = 0; i < sig->n_bans; i++) {
                ban_values(sig, i, now, *id, v);
                if (d->run(b, SPWP_BANDB_Q_INSERT_BAN, v, _SPWP_BANDB_BAN_MAX, NULL,
                           "inserting into ban_applications") < 0)
                        return -1;
                if (i == 0)
                        first_ban = d->last_id(b, SPWP_BANDB_Q_INSERT_BAN);
        }

        if (sig->n_bans == 0)
                return 0;
        /* the change log: one ADD per ban, in the same transaction */
        if (d->run(b, SPWP_BANDB_Q_CHANGE_ADD, VALUES(v_now(now), v_id(*id)), NULL, "logging the ban changes") < 0)
                return -1;
        /* One UPDATE is atomic by itself; several are made so by a savepoint
         * (only signals with more than one ban pay for it). */
        if (sig->n_bans > 1 && d->savepoint(b, doing) < 0)
                return -1;
        for (size_t i = 0; i < sig->n_bans; i++) {
                bool manual = ban_manual(spw_signal_ban(sig, i));
                if (d->run(b, SPWP_BANDB_Q_SUPERSEDE,
                           VALUES(v_now(now), v_str(spw_signal_ban(sig, i)->ip_text), v_id(first_ban), v_int(manual)), NULL, doing) < 0) {
                        if (sig->n_bans > 1)
                                d->rollback_to(b);
                        return -1;
                }
        }
        return sig->n_bans > 1 ? d->release(b, doing) : 0;
}

/* Remove the rows of a failed insert (see the top comment). If that fails
 * too, give up the batch: roll it back and let flush() report it lost. */
static void undo(spwp_bandb *b, uint64_t id) {
        static const spwp_bandb_query undo_q[] = {
                SPWP_BANDB_Q_UNDO_CHANGES, SPWP_BANDB_Q_UNDO_BANS, SPWP_BANDB_Q_UNDO_EVENTS, SPWP_BANDB_Q_UNDO_SIGNAL,
        };
        spwp_bandb_error keep = b->e;
        int r = 0;

        if (id == 0 || !b->in_txn || lost(b))
                return;
        for (size_t i = 0; r == 0 && i < sizeof undo_q / sizeof undo_q[0]; i++)
                r = b->drv->run(b, undo_q[i], VALUES(v_id(id)), NULL, "undoing a failed insert");
        if (r == 0) {
                b->e = keep;
                return;
        }
        b->host->log(b->ctx, LOG_WARNING, "%s: cannot undo the failed insert (%s); rolling back the batch of "
                     "%" PRIu64 " signal(s), the next flush reports it", b->where, b->e.msg, b->n_pending);
        b->drv->rollback(b);
        b->e = keep;
        b->in_txn = false;
        b->batch_lost = b->batch_lost || b->dirty;
        b->dirty = false;
}

/* Bans of scopes other than Ip and Range: stored and listed, and counted
 * in status (once committed), which says that address-based backends do
 * not enforce them. */
static void other_scope_count(spwp_bandb *b, const spw_signal *sig) {
        for (size_t i = 0; i < sig->n_bans; i++)
                if (spw_signal_ban(sig, i)->scope == SPW_SCOPE_OTHER)
                        b->pending_other_scope++;
}

/* The batch committed (true) or is gone (false): its counts become totals
 * or are forgotten (a batch inserted again counts again). */
static void batch_counts(spwp_bandb *b, bool committed) {
        if (committed && b->pending_duplicates > 0) {
                b->n_duplicates += b->pending_duplicates;
                spwp_bandb_status_u64(b, "duplicates_skipped", b->n_duplicates);
        }
        if (committed && b->pending_other_scope > 0) {
                b->n_other_scope += b->pending_other_scope;
                spwp_bandb_status_u64(b, "other_scope_bans", b->n_other_scope);
                spwp_bandb_status(b, "other_scopes", "stored and listed; not enforced by address-based backends "
                                  "(only Ip and Range are); forwarded by webhook and journal");
        }
        b->pending_duplicates = b->pending_other_scope = 0;
}

static int reject(spwp_bandb *b, const spw_signal *sig, const char *why) {
        b->host->set_error(b->ctx, "%s: signal %" PRIu64 " (scenario %s) %s; signal rejected",
                           b->where, sig->id, scenario(sig), why);
        return -EINVAL;
}

int spwp_bandb_insert(void *userdata, const spw_signal *sig) {
        spwp_bandb *b = userdata;
        char buf[600];
        uint64_t id = 0;
        bool retry, duplicate = false;
        int r;

        if (!sig || !SPW_HAS_MEMBER(sig, spw_signal, ban_size)) {
                b->host->set_error(b->ctx, "%s: signal structure too small for this plugin; signal rejected",
                                   b->where);
                return -EINVAL;
        }
        if ((sig->n_bans && !sig->bans) || (sig->n_events && !sig->events))
                return reject(b, sig, "has a ban or event count but no array");
        if ((sig->n_bans && sig->ban_size < sizeof(spw_ban)) || (sig->n_events && sig->event_size < sizeof(spw_event)))
                return reject(b, sig, "has a ban or event stride smaller than ABI 2.0's");
        for (size_t i = 0; i < sig->n_bans; i++)
                if (!spw_signal_ban(sig, i)->ip_text)
                        return reject(b, sig, "has a ban without ip_text (the ban's target)");

        for (int attempt = 0;; attempt++) {
                bool was_open = b->in_txn;

                if (ensure(b) < 0) {
                        b->host->set_error(b->ctx, "%s: cannot store signal %" PRIu64 " (scenario %s): cannot "
                                           "connect: %s (error %u): %s; will retry", b->where, sig->id,
                                           scenario(sig), b->e.msg, b->e.code, b->drv->advice(b->e.code));
                        return -EAGAIN;
                }
                id = 0;
                r = begin_batch(b);
                if (r == 0) {
                        spw_usec_t now = b->host->now(b->ctx);
                        int q = buffer_signal(b, sig, now);

                        if (q < 0)
                                return reject(b, sig, b->e.msg);
                        if (q == 2)
                                duplicate = true;
                        else if (q == 0 && send_buffer(b) < 0) {
                                /* the rows before it failed: the batch is gone, this signal comes again */
                                b->host->set_error(b->ctx, "%s: cannot store signal %" PRIu64 " (scenario %s): %s; "
                                                   "will retry", b->where, sig->id, scenario(sig), b->batch_msg);
                                return -EAGAIN;
                        } else if (q == 0)
                                r = write_signal(b, sig, now, &id, &duplicate);
                }
                if (r == 0 && duplicate) {
                        /* stored before (a redelivery): done, and counted
                         * once the batch commits */
                        b->pending_duplicates++;
                        if (b->keys.debug)
                                b->host->log(b->ctx, LOG_DEBUG, "signal %" PRIu64 " (scenario %s) is stored "
                                             "already: not stored again", sig->id, scenario(sig));
                        return 0;
                }
                if (r == 0) {
                        b->dirty = true;
                        b->n_pending++;
                        other_scope_count(b, sig);
                        if (!b->keys.debug)
                                return 0;
                        if (b->drv->log_row_id && id != 0)
                                snprintf(buf, sizeof buf, " as id %" PRIu64, id);
                        else
                                buf[0] = 0;
                        b->host->log(b->ctx, LOG_DEBUG,
                                     "stored signal %" PRIu64 "%s: scenario %s, source %s, %zu ban(s), %zu event(s)",
                                     sig->id, buf, scenario(sig), sig->source_ip ? sig->source_ip : "none",
                                     sig->n_bans, sig->n_events);
                        return 0;
                }
                /* An idle connection the server or the network dropped (wait_timeout,
                 * a failover) with no batch open on it: nothing was lost, connect
                 * again and carry on rather than make the daemon back off. */
                if (!lost(b) || was_open || attempt > 0)
                        break;
                b->host->log(b->ctx, LOG_INFO, "%s: the idle connection was lost (%s); connecting again",
                             b->where, b->e.msg);
                b->in_txn = b->dirty = false;
        }

        retry = transient(b);
        b->host->set_error(b->ctx, "%s: cannot store signal %" PRIu64 " (scenario %s): %s while %s; %s",
                           b->where, sig->id, scenario(sig), describe(b, buf), b->e.doing,
                           retry ? "will retry" : "signal rejected");
        check_txn(b);
        undo(b, id);
        return retry ? -EAGAIN : -EINVAL;
}

/* ------------------------------------------------------------ flush */

static void gc_after_flush(spwp_bandb *b, uint64_t n);

/* After a commit, at most once a minute: forget the ban changes older than
 * SPWP_BANDB_CHANGES_KEEP (never the newest: it keeps the sequence's
 * position visible to readers). The log only grows with writes, each
 * followed by a flush, so it stays bounded without a timer of its own.
 * In chunks of CHANGES_CHUNK sequence numbers, each its own statement, for
 * at most a quarter of gc_max_pause: at 2,000 signals/s a minute of the log
 * is ~240,000 rows, one DELETE of which held the worker for seconds; what
 * is left goes a second later. A failure is logged; the next minute tries
 * again. */
#define CHANGES_CHUNK (4 * CHUNK_ROWS)
static void changes_collect(spwp_bandb *b) {
        spw_usec_t now = b->host->now(b->ctx), start;
        int64_t max = 0, min = 0;
        bool found = false, left = false;
        int r;

        if (b->changes_collected_at != 0 && now - b->changes_collected_at < GC_INTERVAL &&
            !(b->changes_left && now - b->changes_collected_at >= GC_TICK))
                return;
        b->changes_collected_at = now;
        start = mono_now();
        r = b->drv->select_int(b, SPWP_BANDB_Q_CHANGES_MAX, NULL, 0, &max, &found, "reading the newest ban change");
        if (r == 0)
                r = b->drv->select_int(b, SPWP_BANDB_Q_CHANGES_MIN, NULL, 0, &min, &found,
                                       "reading the oldest ban change");
        while (r == 0 && min < max) {
                int64_t hi = max - min > CHANGES_CHUNK ? min + CHANGES_CHUNK : max;
                uint64_t changed = 0;

                r = b->drv->run(b, SPWP_BANDB_Q_CHANGES_GC,
                                VALUES(v_now(now - SPWP_BANDB_CHANGES_KEEP), v_id((uint64_t) hi)), &changed,
                                "collecting old ban changes");
                /* nothing older than the limit in the chunk: the rest is younger */
                if (r < 0 || changed == 0 || hi == max)
                        break;
                min = hi;
                if (mono_now() - start >= b->gc_max_pause / 4) {
                        left = true;
                        break;
                }
        }
        b->changes_left = left;
        if (r < 0)
                b->host->log(b->ctx, LOG_WARNING, "%s: cannot collect old ban changes: %s; will try again in a minute",
                             b->where, b->e.msg);
}

int spwp_bandb_flush(void *userdata) {
        spwp_bandb *b = userdata;
        uint64_t n = b->n_pending;
        char buf[600];
        bool retry;
        int r;

        if (b->in_txn && !lost(b))
                (void) send_buffer(b); /* a failure: batch_lost, batch_errno */
        if (b->in_txn && lost(b)) {
                /* the connection died under the batch (noticed by a timer or a read) */
                b->batch_lost = b->batch_lost || b->dirty;
                b->in_txn = b->dirty = false;
        }
        if (b->batch_lost) {
                if (b->in_txn)
                        b->drv->rollback(b);
                b->in_txn = b->batch_lost = b->dirty = false;
                b->n_pending = 0;
                batch_counts(b, false);
                if (b->batch_errno != 0) {
                        /* its buffered rows could not be written (send_buffer) */
                        r = b->batch_errno;
                        b->batch_errno = 0;
                        b->host->set_error(b->ctx, "%s: %s", b->where, b->batch_msg);
                        return r;
                }
                b->host->set_error(b->ctx, "%s: %s%" PRIu64 "%s; the batch will be inserted again", b->where,
                                   b->drv->lost_before, n, b->drv->lost_after);
                return -EAGAIN;
        }
        if (!b->in_txn)
                return 0;

        if (b->drv->commit(b) == 0) {
                b->in_txn = b->dirty = false;
                b->n_pending = 0;
                batch_counts(b, true);
                changes_collect(b);
                gc_after_flush(b, n);
                return 0;
        }

        retry = transient(b);
        b->host->set_error(b->ctx, "%s: cannot commit the batch of %" PRIu64 " signal(s): %s; rolled back, %s",
                           b->where, n, describe(b, buf), retry ? "will retry" : "the batch is dropped");
        b->drv->rollback(b);
        b->in_txn = b->dirty = false;
        b->n_pending = 0;
        batch_counts(b, false);
        /* a lost connection may have committed or not: at-least-once, the
         * daemon inserts the batch again */
        return retry ? -EAGAIN : err_errno(b);
}

/* ------------------------------------------------------------ read_at */

/* The current row of a ban query (read_at, read_changes) as the ABI's row. */
static void row_read(spwp_bandb *b, spw_ban_row *row) {
        const spwp_bandb_driver *d = b->drv;

        *row = (spw_ban_row) {
                .size = sizeof(spw_ban_row),
                .source = d->col_text(b, SPWP_BANDB_ROW_SOURCE),
                .iptext = d->col_text(b, SPWP_BANDB_ROW_IPTEXT),
                .reason = d->col_text(b, SPWP_BANDB_ROW_REASON),
                .bancount = d->col_int(b, SPWP_BANDB_ROW_BANCOUNT),
                .action = d->col_text(b, SPWP_BANDB_ROW_ACTION),
                .cn = d->col_text(b, SPWP_BANDB_ROW_CN),
                .as = d->col_text(b, SPWP_BANDB_ROW_AS),
                .as_number = d->col_int(b, SPWP_BANDB_ROW_AS_NUMBER),
                .events_count = d->col_int(b, SPWP_BANDB_ROW_EVENTS_COUNT),
                .scope = d->col_text(b, SPWP_BANDB_ROW_SCOPE),
                .value = d->col_text(b, SPWP_BANDB_ROW_VALUE),
        };
        d->col_time(b, SPWP_BANDB_ROW_UNTIL, &row->until);
        /* rows stored before schema 3 hold an Ip or a Range */
        if (!row->scope && row->iptext)
                row->scope = strchr(row->iptext, '/') ? "Range" : "Ip";
        if (!row->value)
                row->value = row->iptext;
}

/* Run the query and call fn per row. Returns 0 with *stop set to fn's
 * non-zero return (if any), or -1 with b->e set. */
static int read_walk(spwp_bandb *b, spw_usec_t at, spw_row_fn fn, void *fn_userdata, int *stop, uint64_t *n_rows) {
        const spwp_bandb_driver *d = b->drv;
        int r;

        *stop = 0;
        if (d->read_start(b, at) < 0) {
                d->read_end(b, -1);
                return -1;
        }
        while ((r = d->read_next(b)) > 0) {
                spw_ban_row row;

                row_read(b, &row);
                (*n_rows)++;
                *stop = fn(&row, fn_userdata);
                if (*stop != 0)
                        break;
        }
        d->read_end(b, *stop != 0 ? 1 : r < 0 ? -1 : 0);
        return *stop == 0 && r < 0 ? -1 : 0;
}

int spwp_bandb_read_at(void *userdata, spw_usec_t at, spw_row_fn fn, void *fn_userdata) {
        spwp_bandb *b = userdata;
        uint64_t n_rows = 0;
        char buf[600];
        int stop = 0, r;

        if (ensure(b) < 0) {
                b->host->set_error(b->ctx, "%s: cannot read active bans: cannot connect: %s (error %u): %s",
                                   b->where, b->e.msg, b->e.code, b->drv->advice(b->e.code));
                return b->drv->connect_errno(b->e.code);
        }
        if (send_buffer(b) < 0) {
                b->host->set_error(b->ctx, "%s: cannot read active bans: %s", b->where, b->batch_msg);
                return err_errno(b);
        }
        r = read_walk(b, at, fn, fn_userdata, &stop, &n_rows);
        /* an idle connection lost before the first row: once more (see insert) */
        if (r < 0 && lost(b) && !b->in_txn && n_rows == 0 && ensure(b) == 0)
                r = read_walk(b, at, fn, fn_userdata, &stop, &n_rows);
        if (r == 0)
                return stop;

        b->host->set_error(b->ctx, "%s: cannot read active bans: %s%s", b->where, describe(b, buf),
                           lost(b) ? "; the connection was lost, the next call reconnects" : "");
        check_txn(b);
        return err_errno(b);
}

/* ------------------------------------------------------------ changes */

/*
 * The ban-change log (ABI 2.1 read_changes): a table ban_changes (seq, at,
 * kind, ban_id, ip_text), written in the transaction that changes the bans:
 * an ADD per new ban (insert), a DELETE per active ban an admin delete
 * removes. A superseding ban is its ADD alone (readers key on the target),
 * expiry writes nothing (the row's until says when a ban ends). Rows older
 * than SPWP_BANDB_CHANGES_KEEP are collected every minute, except the
 * newest, so "cursor older than the oldest row kept" is how a reader that
 * fell behind is detected: it gets every active ban again (RESYNC).
 *
 * The walk is read with no batch open: uncommitted rows of our own could
 * be rolled back after the reader saw them.
 */

typedef struct resync_ctx {
        spw_change_fn fn;
        void *userdata;
        uint64_t seq;
        spw_usec_t now;
} resync_ctx;

static int resync_row(const spw_ban_row *row, void *userdata) {
        resync_ctx *c = userdata;
        spw_ban_change ch = { .size = sizeof ch, .seq = c->seq, .kind = SPW_CHANGE_ADD, .flags = SPW_CHANGE_RESYNC,
                              .at = c->now, .row = row };
        return c->fn(&ch, c->userdata);
}

/* The change log after `cursor`, or (history) every ban made at or after
 * `since`: the same columns, the same walk. */
static int changes_walk(spwp_bandb *b, uint64_t cursor, bool history, spw_usec_t since, spw_change_fn fn,
                        void *fn_userdata, int *stop, uint64_t *next_cursor) {
        const spwp_bandb_driver *d = b->drv;
        int r;

        *stop = 0;
        if ((history ? d->history_start(b, since) : d->changes_start(b, cursor)) < 0) {
                d->read_end(b, -1);
                return -1;
        }
        while ((r = d->read_next(b)) > 0) {
                spw_ban_row row;
                spw_ban_change ch = { .size = sizeof ch, .seq = (uint64_t) d->col_int(b, SPWP_BANDB_ROW_SEQ),
                                      .kind = (int) d->col_int(b, SPWP_BANDB_ROW_KIND), .row = &row };

                row_read(b, &row);
                d->col_time(b, SPWP_BANDB_ROW_AT, &ch.at);
                *stop = fn(&ch, fn_userdata);
                if (*stop != 0)
                        break;
                *next_cursor = ch.seq;
        }
        d->read_end(b, *stop != 0 ? 1 : r < 0 ? -1 : 0);
        return *stop == 0 && r < 0 ? -1 : 0;
}

int spwp_bandb_read_changes(void *userdata, uint64_t cursor, spw_change_fn fn, void *fn_userdata,
                            uint64_t *next_cursor) {
        spwp_bandb *b = userdata;
        int64_t max = 0, min = 0;
        bool found = false;
        uint64_t n_rows = 0;
        char buf[600];
        int stop = 0, r;

        *next_cursor = cursor;
        if (b->in_txn && b->dirty) {
                b->host->set_error(b->ctx, "%s: cannot read ban changes while a batch is open (flush first)", b->where);
                return -EBUSY;
        }
        if (ensure(b) < 0) {
                b->host->set_error(b->ctx, "%s: cannot read ban changes: cannot connect: %s (error %u): %s",
                                   b->where, b->e.msg, b->e.code, b->drv->advice(b->e.code));
                return b->drv->connect_errno(b->e.code);
        }
        r = b->drv->select_int(b, SPWP_BANDB_Q_CHANGES_MAX, NULL, 0, &max, &found, "reading the newest ban change");
        if (r == 0)
                r = b->drv->select_int(b, SPWP_BANDB_Q_CHANGES_MIN, NULL, 0, &min, &found, "reading the oldest ban change");
        if (r == 0) {
                if (cursor == 0 || cursor > (uint64_t) max || (min > 0 && cursor + 1 < (uint64_t) min)) {
                        /* from nothing, or fell behind what is kept: every active ban */
                        resync_ctx c = { fn, fn_userdata, (uint64_t) max, b->host->now(b->ctx) };
                        r = read_walk(b, c.now, resync_row, &c, &stop, &n_rows);
                        if (r == 0 && stop == 0)
                                *next_cursor = (uint64_t) max;
                } else
                        r = changes_walk(b, cursor, false, 0, fn, fn_userdata, &stop, next_cursor);
        }
        if (r == 0)
                return stop;
        b->host->set_error(b->ctx, "%s: cannot read ban changes: %s%s", b->where, describe(b, buf),
                           lost(b) ? "; the connection was lost, the next call reconnects" : "");
        check_txn(b);
        return err_errno(b);
}

int spwp_bandb_read_history(void *userdata, spw_usec_t since, spw_change_fn fn, void *fn_userdata) {
        spwp_bandb *b = userdata;
        uint64_t last = 0;
        char buf[600];
        int stop = 0, r;

        if (!b->drv->history_start) {
                b->host->set_error(b->ctx, "%s: this driver cannot read the ban history", b->where);
                return -EOPNOTSUPP;
        }
        if (b->in_txn && b->dirty) {
                b->host->set_error(b->ctx, "%s: cannot read the ban history while a batch is open (flush first)", b->where);
                return -EBUSY;
        }
        if (ensure(b) < 0) {
                b->host->set_error(b->ctx, "%s: cannot read the ban history: cannot connect: %s (error %u): %s",
                                   b->where, b->e.msg, b->e.code, b->drv->advice(b->e.code));
                return b->drv->connect_errno(b->e.code);
        }
        r = changes_walk(b, 0, true, since, fn, fn_userdata, &stop, &last);
        if (r == 0)
                return stop;
        b->host->set_error(b->ctx, "%s: cannot read the ban history: %s%s", b->where, describe(b, buf),
                           lost(b) ? "; the connection was lost, the next call reconnects" : "");
        check_txn(b);
        return err_errno(b);
}

/* ------------------------------------------------------------ delete */

/* Admin writes join the open batch if there is one (the daemon flushes right
 * after, and they keep their order with the inserts); otherwise the UPDATE
 * is its own transaction, durable on return. */
static int soft_delete(spwp_bandb *b, spwp_bandb_query q, const char *target, uint64_t *count) {
        spwp_bandb_value v[2] = { v_now(b->host->now(b->ctx)), v_str(target) };
        uint64_t changed = 0;
        char buf[600];

        if (ensure(b) < 0) {
                b->host->set_error(b->ctx, "%s: cannot delete bans%s%s: cannot connect: %s (error %u): %s; "
                                   "nothing deleted", b->where, target ? " of " : "", target ? target : "",
                                   b->e.msg, b->e.code, b->drv->advice(b->e.code));
                return b->drv->connect_errno(b->e.code);
        }
        if (send_buffer(b) < 0) {
                b->host->set_error(b->ctx, "%s: cannot delete bans%s%s: %s; nothing deleted", b->where,
                                   target ? " of " : "", target ? target : "", b->batch_msg);
                return err_errno(b);
        }
        /* the change log's DELETEs and the soft delete, in one transaction
         * (the batch's if one is open, else a short one of their own) */
        bool own = !b->in_txn;
        if ((own && b->drv->begin(b, "deleting bans") < 0) ||
            b->drv->run(b, target ? SPWP_BANDB_Q_CHANGE_DEL_TARGET : SPWP_BANDB_Q_CHANGE_DEL_ALL, v, target ? 2 : 1,
                        NULL, "logging the ban changes") < 0 ||
            b->drv->run(b, q, v, target ? 2 : 1, &changed, "deleting bans") < 0 ||
            (own && b->drv->commit(b) < 0)) {
                if (own)
                        b->drv->rollback(b);
                b->host->set_error(b->ctx, "%s: cannot delete bans%s%s: %s; %s", b->where,
                                   target ? " of " : "", target ? target : "", describe(b, buf),
                                   lost(b) && !b->in_txn ? b->drv->lost_delete : "nothing deleted");
                check_txn(b);
                return err_errno(b);
        }
        if (b->in_txn)
                b->dirty = true;
        if (count)
                *count = changed;
        return 0;
}

int spwp_bandb_delete_target(void *userdata, const char *target, uint64_t *count) {
        spwp_bandb *b = userdata;

        if (!target || !*target) {
                b->host->set_error(b->ctx, "%s: delete needs a target (an IP or range, or Scope:value, as stored in ip_text)",
                                   b->where);
                return -EINVAL;
        }
        return soft_delete(b, SPWP_BANDB_Q_DELETE_TARGET, target, count);
}

int spwp_bandb_delete_all(void *userdata, uint64_t *count) {
        return soft_delete(userdata, SPWP_BANDB_Q_DELETE_ALL, NULL, count);
}

/* ------------------------------------------------------------ timers */

/* A timer's failure: "<what>: msg[ (error N)][ while doing]; <next>". */
static int timer_error(spwp_bandb *b, const char *what, const char *next) {
        char buf[600];
        bool doing = b->drv->timer_doing && b->e.doing;

        b->host->set_error(b->ctx, "%s: %s: %s%s%s; %s", b->where, what, describe(b, buf),
                           doing ? " while " : "", doing ? b->e.doing : "", next);
        return err_errno(b);
}

static int timer_connect_error(spwp_bandb *b, const char *what, const char *next) {
        b->host->set_error(b->ctx, "%s: %s: cannot connect: %s (error %u); %s", b->where, what, b->e.msg,
                           b->e.code, next);
        return b->drv->connect_errno(b->e.code);
}

/* Soft-delete bans whose until has passed, every second. */
static int expire_tick(void *userdata, spw_usec_t now) {
        spwp_bandb *b = userdata;
        const spwp_bandb_driver *d = b->drv;
        uint64_t total = 0;
        bool got = false;
        int r = 0;

        if (ensure(b) < 0)
                return timer_connect_error(b, "cannot expire bans", "will try again in a second");
        if (send_buffer(b) < 0)
                return timer_error(b, "cannot expire bans", "will try again in a second");
        memset(&b->e, 0, sizeof b->e);
        if (!b->in_txn || d->probe_in_batch) {
                /* A read first: most seconds there is nothing to expire, and
                 * then no lock is taken. */
                int64_t one;
                bool found;

                r = d->select_int(b, SPWP_BANDB_Q_EXPIRE_PROBE, VALUES(v_now(now)), &one, &found,
                                  "looking for expired bans");
                if (r == 0 && !found)
                        return 0;
        }
        if (r == 0 && d->try_lock) {
                r = d->try_lock(b, SPWP_BANDB_LOCK_EXPIRE, &got);
                if (r == 0 && !got) {
                        if (b->keys.debug)
                                b->host->log(b->ctx, LOG_DEBUG, "another host is expiring bans; skipping this run");
                        return 0;
                }
        }
        for (int chunk = 0; r == 0 && chunk < MAX_CHUNKS; chunk++) {
                uint64_t changed = 0;
                bool own;

                r = step_begin(b, &own);
                if (r == 0)
                        r = d->run(b, SPWP_BANDB_Q_EXPIRE, VALUES(v_now(now), v_int(CHUNK_ROWS)), &changed,
                                   "expiring bans");
                r = step_end(b, own, r);
                if (r < 0)
                        break;
                total += changed;
                if (changed < CHUNK_ROWS)
                        break;
        }
        if (got)
                d->unlock(b, SPWP_BANDB_LOCK_EXPIRE);

        if (total > 0) {
                b->n_expired += total;
                if (b->keys.debug)
                        b->host->log(b->ctx, LOG_DEBUG, "expired %" PRIu64 " ban(s)", total);
                spwp_bandb_status_u64(b, "expired", b->n_expired);
        }
        if (r < 0)
                return timer_error(b, "cannot expire bans", "will try again in a second");
        return 0;
}

/* ------------------------------------------------------------ garbage collection */

/* "1h2m3s", "45s", "250ms" */
static const char *fmt_duration(char buf[static 32], spw_usec_t d) {
        int64_t s = d / USEC_PER_SEC;

        if (d < USEC_PER_SEC)
                snprintf(buf, 32, "%" PRId64 "ms", d / USEC_PER_MSEC);
        else if (s < 60)
                snprintf(buf, 32, "%" PRId64 "s", s);
        else if (s < 3600)
                snprintf(buf, 32, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
        else
                snprintf(buf, 32, "%" PRId64 "h%02" PRId64 "m", s / 3600, s / 60 % 60);
        return buf;
}

static const char *fmt_size(char buf[static 32], uint64_t n) {
        if (n >= (UINT64_C(1) << 30))
                snprintf(buf, 32, "%.2f GiB", (double) n / (double) (UINT64_C(1) << 30));
        else
                snprintf(buf, 32, "%.1f MiB", (double) n / (double) (UINT64_C(1) << 20));
        return buf;
}

int spwp_bandb_parse_size(const char *s, uint64_t *ret) {
        static const struct {
                const char *suffix;
                uint64_t mult;
        } units[] = {
                { "", 1 }, { "B", 1 },
                { "k", 1000 }, { "kB", 1000 }, { "KB", 1000 }, { "K", 1024 }, { "KiB", 1024 },
                { "M", UINT64_C(1) << 20 }, { "MB", 1000000 }, { "MiB", UINT64_C(1) << 20 },
                { "G", UINT64_C(1) << 30 }, { "GB", 1000000000 }, { "GiB", UINT64_C(1) << 30 },
                { "T", UINT64_C(1) << 40 }, { "TB", UINT64_C(1000000000000) }, { "TiB", UINT64_C(1) << 40 },
        };
        uint64_t n = 0;
        const char *p = s;

        if (!s || *s < '0' || *s > '9')
                return -EINVAL;
        for (; *p >= '0' && *p <= '9'; p++) {
                if (n > (UINT64_MAX - 9) / 10)
                        return -ERANGE;
                n = n * 10 + (uint64_t) (*p - '0');
        }
        if (*p == ' ')
                p++;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
                if (strcmp(p, units[i].suffix) == 0) {
                        if (n > UINT64_MAX / units[i].mult)
                                return -ERANGE;
                        *ret = n * units[i].mult;
                        return 0;
                }
        return -EINVAL;
}

/* The rules, in the order each run takes one chunk of each in turn. */
enum { RULE_SIZE, RULE_COUNT, RULE_AGE, RULE_EXPIRED, RULE_SIGNALS, _RULE_MAX };

typedef struct gc_run {
        spw_usec_t now;                 /* the host clock at the start: "ended" is until < now */
        spw_usec_t budget;              /* time (monotonic), checked before each chunk after the first round */
        uint64_t target;                /* a catch-up step: rows to remove (0: a timer run, the budget alone) */
        spw_usec_t cutoff;              /* max_records_age's */
        int64_t edge;                   /* max_records': the newest ban not kept */
        int64_t sig_before;             /* the first signal younger than cutoff */
        bool more[_RULE_MAX];           /* work is left for the rule */
        bool size_exhausted;            /* over max_db_size with no history left */
        bool reclaim_left;              /* more free space to give back than one step */
        uint64_t by_count, by_age, by_expired, by_size, signals, events, chunks, reclaimed;
        spwp_bandb_size size;           /* at the start (max_db_size) */
} gc_run;

/* Bans and signals removed (what catch-up steps count against their target). */
static uint64_t gc_removed(const gc_run *g) {
        return g->by_count + g->by_age + g->by_expired + g->by_size + g->signals;
}

/* One chunk: pick, then remove what was picked (bans, or with bans == NULL
 * ban-less signals) with the signals left without bans and their event
 * sequences, in one transaction (or in the open batch). */
static int gc_chunk(spwp_bandb *b, spwp_bandb_pick what, const spwp_bandb_pick_args *a, uint64_t *bans, gc_run *g,
                    uint64_t *picked, int64_t *last) {
        spw_usec_t t0 = mono_now(), took, slow;
        bool own;
        int r;

        *picked = 0;
        *last = 0;
        r = b->drv->gc_pick(b, what, a, picked, last);
        if (r < 0 || *picked == 0)
                return r;
        g->chunks++;
        r = step_begin(b, &own);
        if (r == 0)
                r = b->drv->gc_delete(b, bans != NULL, bans, &g->signals, &g->events);
        r = step_end(b, own, r);
        /* A chunk is the unit a run overshoots its budget by: one that
         * took more than half of gc_max_pause (GC_SLOW_CHUNK at least)
         * halves the next ones, down to GC_MIN_CHUNK rows; quick full
         * ones double them back up to CHUNK_ROWS. */
        took = mono_now() - t0;
        slow = b->gc_max_pause / 2 > GC_SLOW_CHUNK ? b->gc_max_pause / 2 : GC_SLOW_CHUNK;
        if (took > b->gc.longest_chunk) {
                b->gc.longest_chunk = took;
                spwp_bandb_status_u64(b, "gc_longest_chunk_ms", (uint64_t) (took / USEC_PER_MSEC));
        }
        if (took > slow && b->gc.chunk_rows > GC_MIN_CHUNK)
                b->gc.chunk_rows /= 2;
        else if (took < slow / 4 && *picked == (uint64_t) a->limit && b->gc.chunk_rows < CHUNK_ROWS)
                b->gc.chunk_rows *= 2;
        return r;
}

/* One chunk of one rule; updates g->more[rule]. */
static int gc_rule(spwp_bandb *b, int rule, gc_run *g) {
        spwp_bandb_pick_args a = { .now = g->now, .limit = b->gc.chunk_rows };
        uint64_t picked = 0;
        int64_t last = 0;
        int r;

        switch (rule) {
        case RULE_SIZE: {
                /* the oldest history first: ended bans by age of id,
                 * then signals without bans */
                spwp_bandb_size now_size;

                /* smaller chunks: no more than a few hundred rows too many */
                a.limit = SIZE_CHUNK_ROWS;
                a.edge = INT64_MAX;
                r = gc_chunk(b, SPWP_BANDB_PICK_COUNT, &a, &g->by_size, g, &picked, &last);
                if (r == 0 && picked == 0) {
                        a.after = 0;
                        a.before = INT64_MAX;
                        r = gc_chunk(b, SPWP_BANDB_PICK_SIGNALS, &a, NULL, g, &picked, &last);
                }
                if (r < 0)
                        return r;
                if (picked == 0) {
                        g->more[rule] = false;
                        g->size_exhausted = true;
                        return 0;
                }
                if (b->drv->size_estimated) {
                        g->more[rule] = false;
                        return 0;
                }
                r = b->drv->db_size(b, &now_size);
                g->more[rule] = r == 0 && now_size.used > b->max_db_size;
                return r;
        }
        case RULE_COUNT:
                a.edge = g->edge;
                r = gc_chunk(b, SPWP_BANDB_PICK_COUNT, &a, &g->by_count, g, &picked, &last);
                break;
        case RULE_AGE:
                a.cutoff = g->cutoff;
                r = gc_chunk(b, SPWP_BANDB_PICK_AGE, &a, &g->by_age, g, &picked, &last);
                break;
        case RULE_EXPIRED:
                /* bans that ended long ago without a soft-delete (flush:
                 * false, or expiry behind): history like the others */
                a.cutoff = g->cutoff;
                r = gc_chunk(b, SPWP_BANDB_PICK_EXPIRED, &a, &g->by_expired, g, &picked, &last);
                break;
        case RULE_SIGNALS:
        default:
                /* Signals below the cursor that never had a ban are gone:
                 * signals gain no bans after their insert, and one whose
                 * bans are collected goes with them. */
                a.after = b->gc.sig_cursor;
                a.before = g->sig_before;
                r = gc_chunk(b, SPWP_BANDB_PICK_SIGNALS, &a, NULL, g, &picked, &last);
                if (r < 0)
                        return r;
                if (picked == (uint64_t) a.limit)
                        b->gc.sig_cursor = last;
                else if (g->sig_before != INT64_MAX)
                        b->gc.sig_cursor = g->sig_before - 1;
                else if (last > b->gc.sig_cursor)
                        b->gc.sig_cursor = last;
                break;
        }
        g->more[rule] = r == 0 && picked == (uint64_t) a.limit;
        return r;
}

static bool gc_more(const gc_run *g) {
        for (int i = 0; i < _RULE_MAX; i++)
                if (g->more[i])
                        return true;
        return false;
}

/* Return free space when much of the file is free: a quarter of the file
 * (at least 16 MiB) is kept for reuse, all of it above max_db_size. */
static int gc_reclaim(spwp_bandb *b, gc_run *g, bool now) {
        spwp_bandb_size sz;
        uint64_t keep, want;
        bool own;
        int r;

        if (!b->drv->reclaim || !b->drv->db_size)
                return 0;
        r = b->drv->db_size(b, &sz);
        if (r < 0)
                return r;
        keep = b->max_db_size > 0 && sz.file > b->max_db_size ? 0 : sz.file / 4;
        if (keep > 0 && keep < (UINT64_C(16) << 20))
                keep = UINT64_C(16) << 20;
        if (sz.free <= keep)
                return 0;
        if (!now) {
                g->reclaim_left = true;
                return 0;
        }
        want = sz.free - keep < RECLAIM_STEP ? sz.free - keep : RECLAIM_STEP;
        g->reclaim_left = sz.free - keep > RECLAIM_STEP;
        r = step_begin(b, &own);
        if (r == 0)
                r = b->drv->reclaim(b, want, &g->reclaimed);
        return step_end(b, own, r);
}

/* Hard-delete what the limits no longer keep: ended bans (soft-deleted, or
 * past until: flush: false never soft-deletes them) beyond the newest
 * max_records, bans that ended longer than max_records_age ago (with the
 * signals and event sequences they leave behind), signals without bans
 * older than max_records_age, and above max_db_size the oldest history.
 * One chunk of each rule in turn, until nothing is left, the run's time
 * budget is spent or (a catch-up step) its target is removed: every rule
 * makes progress every run. */
static int gc_run_rules(spwp_bandb *b, gc_run *g) {
        spw_usec_t start = mono_now();
        int r = 0;

        if (b->max_db_size > 0) {
                r = b->drv->db_size(b, &g->size);
                g->more[RULE_SIZE] = r == 0 && g->size.used > b->max_db_size;
        }
        if (r == 0 && b->keys.max_records > 0) {
                bool found = false;

                r = b->drv->select_int(b, SPWP_BANDB_Q_GC_EDGE, VALUES(v_int(b->keys.max_records)), &g->edge, &found,
                                       "finding the oldest ban to keep");
                g->more[RULE_COUNT] = r == 0 && found && g->edge > 0;
        }
        if (r == 0 && b->keys.max_records_age > 0) {
                bool found = false;

                /* The cutoff only moves forward, so does the boundary: the
                 * search starts at the last one found and reads the
                 * signals stored since, not the backlog before it. */
                int64_t from = b->gc.sig_cursor;

                g->cutoff = g->now - b->keys.max_records_age;
                if (g->cutoff >= b->gc.sig_boundary_cutoff && b->gc.sig_boundary - 1 > from)
                        from = b->gc.sig_boundary - 1;
                g->more[RULE_AGE] = g->more[RULE_EXPIRED] = true;
                r = b->drv->select_int(b, SPWP_BANDB_Q_GC_SIG_BOUNDARY, VALUES(v_int(from), v_now(g->cutoff)),
                                       &g->sig_before, &found, "finding the first signal younger than max_records_age");
                if (r == 0 && found && g->cutoff >= b->gc.sig_boundary_cutoff) {
                        b->gc.sig_boundary = g->sig_before;
                        b->gc.sig_boundary_cutoff = g->cutoff;
                }
                if (!found)
                        g->sig_before = INT64_MAX;
                g->more[RULE_SIGNALS] = r == 0 && g->sig_before > b->gc.sig_cursor + 1;
        }
        /* the first round takes one chunk of every rule whatever the
         * budget; after that the budget (and a step's target) is checked
         * before each chunk */
        for (bool first = true; r == 0 && gc_more(g); first = false)
                for (int rule = 0; r == 0 && rule < _RULE_MAX; rule++) {
                        if (!g->more[rule])
                                continue;
                        if (!first && (mono_now() - start >= g->budget || (g->target && gc_removed(g) >= g->target)))
                                goto out;
                        r = gc_rule(b, rule, g);
                }
out:
        /* space back to the file system when at least half of the budget
         * is left (rows first; else the next run, a second later, does it) */
        if (r == 0)
                r = gc_reclaim(b, g, !g->target && mono_now() - start < g->budget / 2);
        return r;
}

/* How far behind collection is: ended bans beyond max_records and ended
 * longer than max_records_age ago, each counted up to GC_EXCESS_LIMIT (an
 * index range or the start of the ban table: a few ms). After a timer run
 * that left work; the catch-up steps take a share of it. */
static int gc_measure_excess(spwp_bandb *b, const gc_run *g) {
        int64_t n = 0;
        bool found = false;
        int r = 0;

        b->gc.excess_count = b->gc.excess_age = 0;
        if (b->keys.max_records > 0 && g->edge > 0) {
                r = b->drv->select_int(b, SPWP_BANDB_Q_GC_EXCESS_COUNT,
                                       VALUES(v_int(g->edge), v_now(g->now), v_int(GC_EXCESS_LIMIT)), &n, &found,
                                       "counting the bans beyond max_records");
                if (r == 0 && found && n > 0)
                        b->gc.excess_count = (uint64_t) n;
        }
        if (r == 0 && b->keys.max_records_age > 0) {
                r = b->drv->select_int(b, SPWP_BANDB_Q_GC_EXCESS_AGE, VALUES(v_now(g->cutoff), v_int(GC_EXCESS_LIMIT)),
                                       &n, &found, "counting the bans older than max_records_age");
                if (r == 0 && found && n > 0)
                        b->gc.excess_age = (uint64_t) n;
        }
        b->gc.excess = b->gc.excess_count > b->gc.excess_age ? b->gc.excess_count : b->gc.excess_age;
        spwp_bandb_status_u64(b, "gc_excess", b->gc.excess);
        return r;
}

/* Falling behind: say so, with what waits, how fast it goes and what the
 * catch-up steps take; at most every GC_WARN_EVERY. */
static void gc_warn_behind(spwp_bandb *b, spw_usec_t now) {
        char d1[32], d2[32], d3[32], d4[32], d5[32], counts[400] = "";
        int64_t oldest = 0;
        spwp_bandb_error keep = b->e;
        spw_usec_t behind = now - b->gc.behind_since;
        bool found = false;

        if (b->keys.max_records > 0 && b->gc.excess_count > 0)
                snprintf(counts, sizeof counts, "%s%" PRIu64 " ended ban(s) beyond max_records %" PRId64,
                         b->gc.excess_count >= GC_EXCESS_LIMIT ? "at least " : "", b->gc.excess_count,
                         b->keys.max_records);
        if (b->keys.max_records_age > 0 && b->gc.excess_age > 0)
                snprintf(counts + strlen(counts), sizeof counts - strlen(counts),
                         "%s%s%" PRIu64 " ended longer than max_records_age (%s) ago", counts[0] ? ", " : "",
                         b->gc.excess_age >= GC_EXCESS_LIMIT ? "at least " : "", b->gc.excess_age,
                         fmt_duration(d1, b->keys.max_records_age));
        /* the oldest deletion: the index's end, no scan */
        if (b->keys.max_records_age > 0 &&
            (b->drv->select_int(b, SPWP_BANDB_Q_GC_BACKLOG_AGE, NULL, 0, &oldest, &found,
                                "estimating the backlog") < 0 || !found))
                oldest = 0;
        b->e = keep;
        if (oldest > 0 && now / USEC_PER_SEC > oldest)
                snprintf(counts + strlen(counts), sizeof counts - strlen(counts),
                         "%sthe oldest soft-deleted ban was deleted %s ago", counts[0] ? "; " : "",
                         fmt_duration(d4, (now / USEC_PER_SEC - oldest) * USEC_PER_SEC));
        b->host->log(b->ctx, LOG_WARNING,
                     "%s: garbage collection is behind: for %s every run left work undone; waiting: %s; "
                     "it removed %" PRIu64 " row(s) in that time (%" PRIu64 "/s). Until it catches up it runs "
                     "every second for up to gc_max_pause (%s), and after every flush removes %d times the rows "
                     "stored plus the excess over %s (%" PRIu64 " step(s), the longest %s), which slows the "
                     "inserts down: the queue fills before the database grows. Raise gc_max_pause, lower the "
                     "signal rate or max_records, or move the database to faster storage",
                     b->where, fmt_duration(d2, behind), counts[0] ? counts : "signals without bans",
                     b->gc.removed_behind,
                     behind >= USEC_PER_SEC ? b->gc.removed_behind / (uint64_t) (behind / USEC_PER_SEC) : 0,
                     fmt_duration(d3, b->gc_max_pause), GC_CATCHUP_FACTOR, fmt_duration(d5, GC_EXCESS_TIME),
                     b->gc.steps,
                     fmt_duration(d1, b->gc.longest_step));
        b->gc.warned_at = now;
        b->gc.warned = true;
}

static void gc_log_size(spwp_bandb *b, spw_usec_t now, const gc_run *g) {
        char s1[32], s2[32];

        if (b->gc.size_warned_at && now - b->gc.size_warned_at < GC_WARN_SIZE_EVERY)
                return;
        b->gc.size_warned_at = now;
        b->host->log(b->ctx, LOG_WARNING,
                     "%s: max_db_size %s reached (the ban tables used %s): removed the oldest history first, "
                     "%" PRIu64 " ended ban(s) and %" PRIu64 " signal(s) this run%s",
                     b->where, fmt_size(s1, b->max_db_size), fmt_size(s2, g->size.used), g->by_size, g->signals,
                     g->size_exhausted ? "; only active bans are left and they alone exceed it: they are never "
                                         "removed, raise max_db_size or lower the ban durations"
                                       : "");
}

/* After a timer run that left nothing: the next is due when GC_RUN_ROWS
 * rows have come at the rate seen since the last such run (removed rows,
 * by runs and catch-up steps, are what arrived), between GC_TICK and
 * gc_interval from now. (It took more than GC_RUN_ROWS rows to trust the
 * rate: a run that caught up with less a second after the last one then
 * set a minute's interval, and 90,000 ended bans piled up in the
 * 20-minute soak.) */
static void gc_pace(spwp_bandb *b, spw_usec_t now) {
        spw_usec_t interval = b->gc_interval;

        if (b->gc.settled_at > 0 && now > b->gc.settled_at && b->gc.removed_since > 0) {
                double per_usec = (double) b->gc.removed_since / (double) (now - b->gc.settled_at);
                double t = (double) GC_RUN_ROWS / per_usec;

                interval = t < (double) GC_TICK ? GC_TICK : t > (double) b->gc_interval ? b->gc_interval
                                                                                          : (spw_usec_t) t;
        }
        if (interval != b->gc.interval) {
                b->gc.interval = interval;
                spwp_bandb_status_u64(b, "gc_interval_ms", (uint64_t) (interval / USEC_PER_MSEC));
        }
        b->gc.settled_at = now;
        b->gc.removed_since = 0;
        b->gc.next = now + interval;
}

/* One run: a timer run (g->target 0) or a catch-up step after a flush.
 * Returns 0, or -1 with b->e set (*connect: the connection could not be
 * made). */
static int gc_collect(spwp_bandb *b, spw_usec_t now, gc_run *g, bool *connect) {
        bool step = g->target > 0, got = false, behind;
        uint64_t removed;
        spw_usec_t t0, took;
        char d1[32], d2[32];
        int r = 0;

        *connect = false;
        g->now = now;
        if (ensure(b) < 0) {
                *connect = true;
                return -1;
        }
        memset(&b->e, 0, sizeof b->e);
        if (b->drv->try_lock) {
                r = b->drv->try_lock(b, SPWP_BANDB_LOCK_GC, &got);
                if (r == 0 && !got) {
                        if (!step)
                                b->host->log(b->ctx, LOG_DEBUG, "another host is collecting garbage; skipping this run");
                        return 0;
                }
        }
        t0 = mono_now();
        if (b->gc.chunk_rows <= 0)
                b->gc.chunk_rows = CHUNK_ROWS;
        b->gc.running = true;
        if (r == 0)
                r = gc_run_rules(b, g);
        b->gc.running = false;
        took = mono_now() - t0;
        behind = gc_more(g);
        /* how far behind, for the catch-up steps and the warning (the
         * timer's runs: at most once a second) */
        if (r == 0 && behind && !step && gc_measure_excess(b, g) < 0)
                r = -1;
        if (got)
                b->drv->unlock(b, SPWP_BANDB_LOCK_GC);

        if (!step)
                b->gc.runs++;
        removed = gc_removed(g);
        b->gc.removed_since += removed + g->events;
        b->n_collected += g->by_count + g->by_age + g->by_expired + g->by_size;
        if (removed > 0)
                spwp_bandb_status_u64(b, "collected", b->n_collected);
        if (g->by_size > 0 || (b->max_db_size > 0 && g->size.used > b->max_db_size))
                gc_log_size(b, now, g);
        if (r < 0)
                return -1;

        if (behind) {
                if (!b->gc.behind_since) {
                        b->gc.behind_since = now;
                        b->gc.removed_behind = 0;
                        b->gc.warned = false;
                        b->gc.steps = 0;
                        b->gc.longest_step = 0;
                }
                b->gc.removed_behind += removed;
                spwp_bandb_status(b, "gc", "behind");
                if (step) {
                        /* what this step could not remove in its time is owed */
                        b->gc.debt = g->target > removed ? g->target - removed : 0;
                        if (b->gc.debt > GC_EXCESS_LIMIT)
                                b->gc.debt = GC_EXCESS_LIMIT;
                        return 0;
                }
                /* more often and more per run until it catches up */
                b->gc.budget = b->gc.budget * 2 < b->gc_max_pause ? b->gc.budget * 2 : b->gc_max_pause;
                b->gc.next = now + GC_TICK;
                if (now - b->gc.behind_since >= GC_WARN_AFTER &&
                    (!b->gc.warned_at || now - b->gc.warned_at >= GC_WARN_EVERY))
                        gc_warn_behind(b, now);
                if (b->keys.debug)
                        b->host->log(b->ctx, LOG_DEBUG, "garbage collection removed %" PRIu64 " row(s) in %s; "
                                     "more left (about %" PRIu64 " ended ban(s) over the limits), next run in a "
                                     "second and a step after each flush", removed, fmt_duration(d1, took),
                                     b->gc.excess);
                return 0;
        }
        if (b->gc.behind_since) {
                if (b->gc.warned)
                        b->host->log(b->ctx, LOG_NOTICE,
                                     "%s: garbage collection caught up after %s behind (%" PRIu64 " row(s) removed "
                                     "meanwhile, %" PRIu64 " of them in %" PRIu64 " step(s) after flushes, the "
                                     "longest %s)", b->where, fmt_duration(d1, now - b->gc.behind_since),
                                     b->gc.removed_behind + removed, b->gc.removed_steps, b->gc.steps,
                                     fmt_duration(d2, b->gc.longest_step));
                else if (removed + g->events == 0 && b->gc.removed_behind > 0)
                        /* the rows went in earlier runs and steps (a slow
                         * machine halves chunks): one line for all of them */
                        b->host->log(b->ctx, LOG_INFO,
                                     "garbage collection removed %" PRIu64 " row(s) while catching up over %s",
                                     b->gc.removed_behind, fmt_duration(d1, now - b->gc.behind_since));
                b->gc.behind_since = 0;
                b->gc.removed_steps = 0;
                spwp_bandb_status(b, "gc", "caught up");
        }
        b->gc.excess = b->gc.debt = 0;
        spwp_bandb_status_u64(b, "gc_excess", 0);
        b->gc.budget = b->gc_max_pause / 4;
        if (step) {
                /* the timer's next run measures the rate (the rows of the
                 * steps included) and paces from there */
                if (b->gc.next > now + GC_TICK)
                        b->gc.next = now + GC_TICK;
        } else
                gc_pace(b, now);
        /* free space still to give back: the next step in a second */
        if (g->reclaim_left)
                b->gc.next = now + GC_TICK;

        if (removed + g->events > 0)
                b->host->log(b->ctx, LOG_INFO,
                             "garbage collection removed %" PRIu64 " ended ban(s) (%" PRIu64
                             " beyond max_records %" PRId64 ", %" PRIu64 " older than max_records_age, %" PRIu64
                             " of them never soft-deleted, %" PRIu64 " above max_db_size), %" PRIu64
                             " signal(s), %" PRIu64 " event sequence(s) in %s%s",
                             g->by_count + g->by_age + g->by_expired + g->by_size, g->by_count, b->keys.max_records,
                             g->by_age + g->by_expired, g->by_expired, g->by_size, g->signals, g->events,
                             fmt_duration(d1, took), step ? " (after a flush)" : "");
        return 0;
}

/* Every second: a garbage-collection run when one is due (see GC_TICK),
 * timed whole: the worker stores nothing meanwhile. */
static int gc_tick(void *userdata, spw_usec_t now) {
        spwp_bandb *b = userdata;
        gc_run g = { 0 };
        spw_usec_t t0, took;
        bool connect;
        int r;

        /* due by the clock, or by what this host stored since the last
         * run (about GC_RUN_ROWS rows: a signal with its ban and event is
         * 3): the pacing below measures the rate from what runs remove,
         * which says nothing before the first run and little after a
         * quiet spell */
        if (now < b->gc.next &&
            !(b->gc.arrived * GC_ROWS_PER_SIGNAL >= GC_RUN_ROWS && now >= b->gc.last_run + GC_TICK))
                return 0;
        if (send_buffer(b) < 0) /* the open batch's rows first (multi-row batches) */
                return timer_error(b, "cannot collect garbage", "will try again in a second");
        b->gc.arrived = 0;
        b->gc.last_run = now;
        b->gc.next = now + b->gc_interval;
        if (b->gc.budget <= 0)
                b->gc.budget = b->gc_max_pause / 4;
        g.budget = b->gc.budget;
        b->gc.step_failed = false;
        t0 = mono_now();
        r = gc_collect(b, now, &g, &connect);
        b->gc.last_end = mono_now();
        took = b->gc.last_end - t0;
        if (took > b->gc.longest_run) {
                b->gc.longest_run = took;
                spwp_bandb_status_u64(b, "gc_longest_pause_ms", (uint64_t) (took / USEC_PER_MSEC));
        }
        if (r < 0 && connect)
                return timer_connect_error(b, "garbage collection failed", "will try again in a minute");
        if (r < 0)
                return timer_error(b, "garbage collection failed", "will try again in a minute");
        return 0;
}

/* After each commit while collection is behind (a run left work): a
 * catch-up step between two batches, so that collection wins against the
 * inserts instead of taking gc_max_pause a second whatever comes. It
 * removes GC_CATCHUP_FACTOR times the rows the batch stored (a signal and
 * its ban: 2 rows each), the excess at a pace that clears it within
 * GC_EXCESS_TIME of the worker's time (in proportion to the time since the
 * last run or step, so not more for more frequent flushes), and what
 * earlier steps could not, in chunks of CHUNK_ROWS (each its own
 * transaction), for at most GC_STEP_PAUSES times gc_max_pause. The excess
 * thus shrinks by at least what arrives, at any rate the backend stores:
 * the inserts slow down (the daemon's queue fills and holds the producers
 * back) before the database grows. */
static void gc_after_flush(spwp_bandb *b, uint64_t n) {
        gc_run g = { 0 };
        spw_usec_t t0, took, since;
        bool connect;
        int r;

        b->gc.arrived += n;
        if (!b->gc.behind_since || b->gc.step_failed)
                return;
        /* the excess at a pace that clears it in GC_EXCESS_TIME of the
         * worker's time, whatever the flushes' frequency */
        t0 = mono_now();
        since = b->gc.last_end > 0 && t0 > b->gc.last_end ? t0 - b->gc.last_end : 0;
        if (since > USEC_PER_SEC)
                since = USEC_PER_SEC;
        g.target = b->gc.debt + GC_CATCHUP_FACTOR * 2 * n +
                   (uint64_t) ((double) b->gc.excess * (double) since / (double) GC_EXCESS_TIME) + 1;
        g.budget = GC_STEP_PAUSES * b->gc_max_pause;
        r = gc_collect(b, b->host->now(b->ctx), &g, &connect);
        b->gc.last_end = mono_now();
        took = b->gc.last_end - t0;
        b->gc.steps++;
        b->gc.removed_steps += gc_removed(&g);
        if (took > b->gc.longest_step)
                b->gc.longest_step = took;
        if (took > b->gc.longest_step_ever) {
                b->gc.longest_step_ever = took;
                spwp_bandb_status_u64(b, "gc_longest_step_ms", (uint64_t) (took / USEC_PER_MSEC));
        }
        if (took > b->gc.longest_run) {
                b->gc.longest_run = took;
                spwp_bandb_status_u64(b, "gc_longest_pause_ms", (uint64_t) (took / USEC_PER_MSEC));
        }
        if (r < 0) {
                char buf[600];

                b->gc.step_failed = true;
                b->host->log(b->ctx, LOG_WARNING, "%s: garbage collection after a flush failed: %s%s; the next "
                             "timer run tries again", b->where, connect ? "cannot connect: " : "", describe(b, buf));
        }
}

int spwp_bandb_start_autocommit(void *userdata) {
        spwp_bandb *b = userdata;
        int r;

        if (b->keys.expire) {
                r = b->host->schedule(b->ctx, EXPIRE_INTERVAL, expire_tick, b);
                if (r < 0) {
                        b->host->set_error(b->ctx, "%s: cannot schedule ban expiry: %s", b->where, strerror(-r));
                        return r;
                }
        }
        if (b->keys.max_records > 0 || b->keys.max_records_age > 0 || b->max_db_size > 0) {
                b->gc.next = b->host->now(b->ctx) + b->gc_interval;
                b->gc.settled_at = b->host->now(b->ctx);
                b->gc.budget = b->gc_max_pause / 4;
                r = b->host->schedule(b->ctx, GC_TICK, gc_tick, b);
                if (r < 0) {
                        b->host->set_error(b->ctx, "%s: cannot schedule garbage collection: %s", b->where,
                                           strerror(-r));
                        return r;
                }
        }
        return 0;
}
