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
 *   - A failing insert leaves the batch as it was: every row an insert
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
 *   - Time comes from host->now() only (tests move the clock).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "spwp-bandb.h"

#define USEC_PER_SEC INT64_C(1000000)

#define EXPIRE_INTERVAL (1 * USEC_PER_SEC)
#define GC_INTERVAL     (60 * USEC_PER_SEC)
#define CHUNK_ROWS      SPWP_BANDB_CHUNK_ROWS
#define MAX_CHUNKS      SPWP_BANDB_MAX_CHUNKS

/* ------------------------------------------------------------ set-up */

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

/* The signal's rows: the signal, its events, its bans, then the soft-delete
 * of older active bans of the same targets. *id is the new signal's id once
 * its row exists (0 before). */
static int write_signal(spwp_bandb *b, const spw_signal *sig, spw_usec_t now, uint64_t *id) {
        const spwp_bandb_driver *d = b->drv;
        const spw_source *src = sig->has_source ? &sig->source : NULL;
        spwp_bandb_value v[_SPWP_BANDB_SIG_MAX];
        uint64_t first_ban = 0;
        const char *doing = "soft-deleting the targets' older active bans";

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
#undef FALLBACK
        if (d->run(b, SPWP_BANDB_Q_INSERT_SIGNAL, v, _SPWP_BANDB_SIG_MAX, NULL, "inserting into signal_occurences") < 0)
                return -1;
        *id = d->last_id(b, SPWP_BANDB_Q_INSERT_SIGNAL);

        for (size_t i = 0; i < sig->n_events; i++) {
                const spw_event *ev = &sig->events[i];

                v[SPWP_BANDB_EVENT_NOW] = v_now(now);
                v[SPWP_BANDB_EVENT_TIME] = (spwp_bandb_value) { .kind = SPWP_BANDB_TIME, .t = ev->time };
                v[SPWP_BANDB_EVENT_SOURCE_IP] = v_str(ev->source_ip);
                v[SPWP_BANDB_EVENT_SIGNAL_ID] = v_id(*id);
                v[SPWP_BANDB_EVENT_SERIALIZED] = (spwp_bandb_value) { .kind = SPWP_BANDB_TEXT, .s = ev->serialized };
                if (d->run(b, SPWP_BANDB_Q_INSERT_EVENT, v, _SPWP_BANDB_EVENT_MAX, NULL,
                           "inserting into event_sequences") < 0)
                        return -1;
        }

        for (size_t i = 0; i < sig->n_bans; i++) {
                const spw_ban *ban = &sig->bans[i];

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
                v[SPWP_BANDB_BAN_SIGNAL_ID] = v_id(*id);
                if (d->run(b, SPWP_BANDB_Q_INSERT_BAN, v, _SPWP_BANDB_BAN_MAX, NULL,
                           "inserting into ban_applications") < 0)
                        return -1;
                if (i == 0)
                        first_ban = d->last_id(b, SPWP_BANDB_Q_INSERT_BAN);
        }

        if (sig->n_bans == 0)
                return 0;
        /* One UPDATE is atomic by itself; several are made so by a savepoint
         * (only signals with more than one ban pay for it). */
        if (sig->n_bans > 1 && d->savepoint(b, doing) < 0)
                return -1;
        for (size_t i = 0; i < sig->n_bans; i++) {
                const char *ms = sig->bans[i].measure_source;
                bool manual = ms && strcmp(ms, SPWP_BANDB_MANUAL_SOURCE) == 0;
                if (d->run(b, SPWP_BANDB_Q_SUPERSEDE,
                           VALUES(v_now(now), v_str(sig->bans[i].ip_text), v_id(first_ban), v_int(manual)), NULL, doing) < 0) {
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
                SPWP_BANDB_Q_UNDO_BANS, SPWP_BANDB_Q_UNDO_EVENTS, SPWP_BANDB_Q_UNDO_SIGNAL,
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

static int reject(spwp_bandb *b, const spw_signal *sig, const char *why) {
        b->host->set_error(b->ctx, "%s: signal %" PRIu64 " (scenario %s) %s; signal rejected",
                           b->where, sig->id, scenario(sig), why);
        return SPW_INSERT_REJECT;
}

int spwp_bandb_insert(void *userdata, const spw_signal *sig) {
        spwp_bandb *b = userdata;
        char buf[600];
        uint64_t id = 0;
        bool retry;
        int r;

        if (!sig || !SPW_HAS_MEMBER(sig, spw_signal, n_bans)) {
                b->host->set_error(b->ctx, "%s: signal structure too small for this plugin; signal rejected",
                                   b->where);
                return SPW_INSERT_REJECT;
        }
        if ((sig->n_bans && !sig->bans) || (sig->n_events && !sig->events))
                return reject(b, sig, "has a ban or event count but no array");
        for (size_t i = 0; i < sig->n_bans; i++)
                if (!sig->bans[i].ip_text)
                        return reject(b, sig, "has a ban without ip_text (the ban's target)");

        for (int attempt = 0;; attempt++) {
                bool was_open = b->in_txn;

                if (ensure(b) < 0) {
                        b->host->set_error(b->ctx, "%s: cannot store signal %" PRIu64 " (scenario %s): cannot "
                                           "connect: %s (error %u): %s; will retry", b->where, sig->id,
                                           scenario(sig), b->e.msg, b->e.code, b->drv->advice(b->e.code));
                        return SPW_INSERT_RETRY;
                }
                id = 0;
                r = begin_batch(b);
                if (r == 0)
                        r = write_signal(b, sig, b->host->now(b->ctx), &id);
                if (r == 0) {
                        b->dirty = true;
                        b->n_pending++;
                        if (!b->keys.debug)
                                return SPW_INSERT_OK;
                        if (b->drv->log_row_id)
                                snprintf(buf, sizeof buf, " as id %" PRIu64, id);
                        else
                                buf[0] = 0;
                        b->host->log(b->ctx, LOG_DEBUG,
                                     "stored signal %" PRIu64 "%s: scenario %s, source %s, %zu ban(s), %zu event(s)",
                                     sig->id, buf, scenario(sig), sig->source_ip ? sig->source_ip : "none",
                                     sig->n_bans, sig->n_events);
                        return SPW_INSERT_OK;
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
        return retry ? SPW_INSERT_RETRY : SPW_INSERT_REJECT;
}

/* ------------------------------------------------------------ flush */

int spwp_bandb_flush(void *userdata) {
        spwp_bandb *b = userdata;
        uint64_t n = b->n_pending;
        char buf[600];
        bool retry;

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
                b->host->set_error(b->ctx, "%s: %s%" PRIu64 "%s; the batch will be inserted again", b->where,
                                   b->drv->lost_before, n, b->drv->lost_after);
                return -EAGAIN;
        }
        if (!b->in_txn)
                return 0;

        if (b->drv->commit(b) == 0) {
                b->in_txn = b->dirty = false;
                b->n_pending = 0;
                return 0;
        }

        retry = transient(b);
        b->host->set_error(b->ctx, "%s: cannot commit the batch of %" PRIu64 " signal(s): %s; rolled back, %s",
                           b->where, n, describe(b, buf), retry ? "will retry" : "the batch is dropped");
        b->drv->rollback(b);
        b->in_txn = b->dirty = false;
        b->n_pending = 0;
        /* a lost connection may have committed or not: at-least-once, the
         * daemon inserts the batch again */
        return retry ? -EAGAIN : err_errno(b);
}

/* ------------------------------------------------------------ read_at */

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
                spw_ban_row row = {
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
                };

                d->col_time(b, SPWP_BANDB_ROW_UNTIL, &row.until);
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
        if (b->drv->run(b, q, v, target ? 2 : 1, &changed, "deleting bans") < 0) {
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
                b->host->set_error(b->ctx, "%s: delete needs a target (an IP or range as stored in ip_text)",
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

typedef struct gc_counts {
        uint64_t by_count, by_age, signals, events;
        uint64_t picked;
        int chunks;
} gc_counts;

/* One GC step: pick, then remove what was picked (bans, or with bans ==
 * NULL ban-less signals) with the signals left without bans and their
 * event sequences. */
static int gc_step(spwp_bandb *b, spwp_bandb_pick what, int64_t edge, spw_usec_t cutoff, uint64_t *bans,
                   gc_counts *c) {
        bool own;
        int r;

        r = b->drv->gc_pick(b, what, edge, cutoff, &c->picked);
        if (r < 0 || c->picked == 0)
                return r;
        r = step_begin(b, &own);
        if (r == 0)
                r = b->drv->gc_delete(b, bans != NULL, bans, &c->signals, &c->events);
        return step_end(b, own, r);
}

/* Hard-delete soft-deleted bans beyond the newest max_records and older
 * than max_records_age, with the signals and event sequences they leave
 * behind, and signals without bans older than max_records_age. */
static int gc_run(spwp_bandb *b, spw_usec_t now, gc_counts *c) {
        spw_usec_t cutoff;
        int r = 0;

        c->picked = CHUNK_ROWS;
        if (b->keys.max_records > 0) {
                int64_t edge = 0;
                bool found = false;

                r = b->drv->select_int(b, SPWP_BANDB_Q_GC_EDGE, VALUES(v_int(b->keys.max_records)), &edge, &found,
                                       "finding the oldest ban to keep");
                for (c->picked = CHUNK_ROWS; r == 0 && found && edge > 0 && c->picked == CHUNK_ROWS && c->chunks > 0;
                     c->chunks--)
                        r = gc_step(b, SPWP_BANDB_PICK_COUNT, edge, 0, &c->by_count, c);
        }
        if (b->keys.max_records_age <= 0 || r < 0)
                return r;
        cutoff = now - b->keys.max_records_age;
        for (c->picked = CHUNK_ROWS; r == 0 && c->picked == CHUNK_ROWS && c->chunks > 0; c->chunks--)
                r = gc_step(b, SPWP_BANDB_PICK_AGE, 0, cutoff, &c->by_age, c);
        for (c->picked = CHUNK_ROWS; r == 0 && c->picked == CHUNK_ROWS && c->chunks > 0; c->chunks--)
                r = gc_step(b, SPWP_BANDB_PICK_SIGNALS, 0, cutoff, NULL, c);
        return r;
}

/* Every minute: garbage collection. */
static int gc_tick(void *userdata, spw_usec_t now) {
        spwp_bandb *b = userdata;
        gc_counts c = { .chunks = MAX_CHUNKS };
        bool got = false;
        int r = 0;

        if (ensure(b) < 0)
                return timer_connect_error(b, "garbage collection failed", "will try again in a minute");
        memset(&b->e, 0, sizeof b->e);
        if (b->drv->try_lock) {
                r = b->drv->try_lock(b, SPWP_BANDB_LOCK_GC, &got);
                if (r == 0 && !got) {
                        b->host->log(b->ctx, LOG_DEBUG, "another host is collecting garbage; skipping this run");
                        return 0;
                }
        }
        if (r == 0)
                r = gc_run(b, now, &c);
        if (got)
                b->drv->unlock(b, SPWP_BANDB_LOCK_GC);

        if (c.by_count + c.by_age + c.signals + c.events > 0) {
                b->n_collected += c.by_count + c.by_age;
                b->host->log(b->ctx, LOG_INFO,
                             "garbage collection removed %" PRIu64 " soft-deleted ban(s) (%" PRIu64
                             " beyond max_records %" PRId64 ", %" PRIu64 " older than max_records_age), "
                             "%" PRIu64 " signal(s), %" PRIu64 " event sequence(s)%s",
                             c.by_count + c.by_age, c.by_count, b->keys.max_records, c.by_age, c.signals,
                             c.events, c.chunks == 0 && c.picked == CHUNK_ROWS ? "; more left for the next run" : "");
                spwp_bandb_status_u64(b, "collected", b->n_collected);
        }
        if (r < 0)
                return timer_error(b, "garbage collection failed", "will try again in a minute");
        return 0;
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
        if (b->keys.max_records > 0 || b->keys.max_records_age > 0) {
                r = b->host->schedule(b->ctx, GC_INTERVAL, gc_tick, b);
                if (r < 0) {
                        b->host->set_error(b->ctx, "%s: cannot schedule garbage collection: %s", b->where,
                                           strerror(-r));
                        return r;
                }
        }
        return 0;
}
