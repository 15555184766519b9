/* SPDX-License-Identifier: MIT */
/*
 * Backend instances and their worker threads (see the DESIGN comment in
 * backend.h).
 *
 * The worker loop, in order of priority:
 *   1. administrative jobs (ban list/add/delete), each followed by a flush;
 *   2. signals from the queue, in batches, inserted with retries;
 *   3. a flush once flush_batch signals are pending, flush_delay after the
 *      queue ran dry (group commit: a lone signal is committed at once), or
 *      flush_interval after the last one; a failed flush re-inserts the batch after
 *      a backoff (all-or-nothing contract of backend.h);
 *   4. plugin timers (host->schedule), each followed by a flush.
 * It sleeps on the queue until the earliest of: new work, the next flush
 * deadline, the next timer.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "backend.h"
#include "log.h"
#include "msgid.h"
#include "spool.h"

#define POP_BATCH 256

struct spw_ctx {
        backend *b;
};

typedef struct backend_timer {
        usec_t interval;
        usec_t next;              /* monotonic */
        spw_timer_fn fn;
        void *userdata;
} backend_timer;

#define BACKEND_MAX_TIMERS 8
#define BACKEND_MAX_STATUS 32

typedef struct backend_stats {
        atomic_ullong received;   /* submitted to the queue */
        atomic_ullong inserted;   /* insert() succeeded */
        atomic_ullong flushed;    /* signals made durable by a successful flush */
        atomic_ullong failed;     /* given up: rejected, retries exhausted, undelivered */
        atomic_ullong retried;    /* retry attempts (insert or flush) */
        atomic_ullong dropped;    /* queue-full drops */
        atomic_ullong flushes;    /* successful flush() calls */
        atomic_ullong undelivered;/* left at stop */
        atomic_ullong handed_over;/* given to our successor at a reload */
        atomic_ullong inherited;  /* taken from a predecessor at a reload */
} backend_stats;

/* A "flushed" producer's message whose record a predecessor sharing our
 * spool left uncommitted: we read the record again as a new message, and
 * answer the producer once our commit has passed `end`. */
typedef struct spool_waiter {
        spw_msg *m;
        spool_pos end;
} spool_waiter;

struct backend {
        const backend_config *cfg;    /* borrowed from `config`, which we hold a reference on */
        spw_config_ref *config_ref;
        spw_plugin *plugin;
        const char *name;
        void *self;
        struct spw_ctx ctx;
        spw_queue queue;
        spool *spool;                 /* durability: disk, else NULL (the queue carries the signals) */
        unsigned spool_gen;           /* ours, among the openers of a shared spool (spool.h) */
        hub *hub;
        pthread_t thread;
        bool thread_started;
        usec_t stuck_timeout;
        const char *state_dir;

        atomic_int state;
        atomic_llong busy_since;
        atomic_llong last_activity;   /* monotonic, last time the worker did anything */
        backend_stats stats;

        pthread_mutex_t info_lock;
        pthread_cond_t info_cond;     /* init done; stop requested (wakes retry sleeps) */
        char last_error[512];
        usec_t last_error_at;         /* realtime */
        char init_error[512];
        spw_kv status[BACKEND_MAX_STATUS];
        size_t n_status;
        bool stop_requested;
        usec_t drain_deadline;        /* monotonic */

        pthread_mutex_t jobs_lock;
        admin_job *jobs_head, *jobs_tail;

        /* hand-over at a reload (see "hand-over" below); under info_lock */
        backend *successor;           /* set with the stop; the main thread holds a reference for us */
        spw_msg **inherited;          /* handed to us by predecessors, oldest first, not yet taken */
        size_t n_inherited, cap_inherited;
        atomic_uint predecessors;     /* still to hand over: our queue waits for them */
        usec_t hold_until;            /* monotonic: stop waiting for them then */
        bool inherit_closed;          /* our worker exited: a late hand-over fails its signals */
        bool held_wake;               /* a job or a stop for a worker waiting for its predecessor */
        atomic_size_t n_inherit_waiting; /* n_inherited, for a lock-free look from the worker loop */
        struct spool_waiter *waiters_in; /* disk: "flushed" producers of a predecessor's records */
        size_t n_waiters_in, cap_waiters_in;
        atomic_size_t n_waiters_waiting;

        /* worker thread only */
        char call_error[512];         /* set_error() text of the current call */
        bool autocommit;
        backend_timer timers[BACKEND_MAX_TIMERS];
        size_t n_timers;
        bool may_schedule;
        usec_t retry_after;
        spw_msg **unflushed;
        size_t n_unflushed, cap_unflushed;
        size_t n_waiters;             /* of them, acknowledged "flushed": a producer waits for the commit */
        usec_t flush_cost;            /* how long the last successful flush took */
        usec_t last_flush;
        spool_pos popped_end;         /* end of the last record taken from the spool */
        uint64_t n_uncommitted;       /* taken from the spool, handled, not yet committed */
        bool abandon;                 /* stopping with signals left in the spool: keep them */
        ratelimit log_rl;
        ratelimit fail_rl;
        bool handing;                 /* stopping with a successor: insert nothing more */
        spw_msg **kept;               /* what goes to the successor, oldest first */
        size_t n_kept, cap_kept;
        size_t n_kept_uncommitted;    /* of them, inserted here but not committed */
        spool_pos kept_end;           /* disk: end of the last record of what is kept */
        struct spool_waiter *spool_waiters; /* disk: answered when our commit passes their record */
        size_t n_spool_waiters, cap_spool_waiters;
        spool_pos committed_end;      /* disk: where our last commit ended */
        spw_msg **deferred;           /* popped while a predecessor's signals were due first */
        size_t n_deferred, head_deferred, cap_deferred;

        /* main thread only */
        unsigned refs;
        bool retiring;
        ratelimit drop_rl;
        uint64_t drops_reported;
};


const char *backend_state_to_string(backend_state s) {
        switch (s) {
        case BACKEND_INITIALIZING: return "initializing";
        case BACKEND_RUNNING: return "running";
        case BACKEND_FAILED: return "failed";
        case BACKEND_STOPPING: return "stopping";
        case BACKEND_STOPPED: return "stopped";
        }
        return "?";
}

/* ------------------------------------------------------------ config refs */

spw_config_ref *config_ref_new(spw_config *c) {
        spw_config_ref *r = calloc(1, sizeof *r);
        if (!r)
                return NULL;
        r->config = c;
        r->refs = 1;
        return r;
}

spw_config_ref *config_ref_ref(spw_config_ref *r) {
        r->refs++;
        return r;
}

spw_config_ref *config_ref_unref(spw_config_ref *r) {
        if (!r || --r->refs > 0)
                return NULL;
        config_free(r->config);
        free(r);
        return NULL;
}

/* ------------------------------------------------------------ host services */

static void set_error_text(backend *b, const char *text) {
        snprintf(b->call_error, sizeof b->call_error, "%s", text);
        pthread_mutex_lock(&b->info_lock);
        snprintf(b->last_error, sizeof b->last_error, "%s", text);
        b->last_error_at = now_realtime();
        pthread_mutex_unlock(&b->info_lock);
}

static void host_logv(spw_ctx *ctx, int priority, const spw_kv *extra, size_t n_extra, const char *format, va_list ap)
        __attribute__((format(printf, 5, 0)));
static void host_logv(spw_ctx *ctx, int priority, const spw_kv *extra, size_t n_extra, const char *format, va_list ap) {
        backend *b;
        char msg[2048];
        log_field fields[16];
        size_t n = 0;
        uint64_t suppressed = 0;

        priority &= LOG_PRIMASK;
        if (!ctx) {
                /* global_init: no instance yet; debug lines are dropped */
                if (priority == LOG_DEBUG)
                        return;
                vsnprintf(msg, sizeof msg, format, ap);
                log_fields_internal(priority, 0, __FILE__, __LINE__, "plugin", NULL, 0, "plugin: %s", msg);
                return;
        }
        b = ctx->b;
        if (priority == LOG_DEBUG && !b->cfg->debug)
                return;
        if (priority > LOG_ERR && !ratelimit_below(&b->log_rl, &suppressed))
                return;
        vsnprintf(msg, sizeof msg, format, ap);
        fields[n++] = (log_field) { "SPILLWAY_BACKEND", b->name };
        fields[n++] = (log_field) { "SPILLWAY_PLUGIN", b->plugin->ops.name };
        for (size_t i = 0; i < n_extra && n < ELEMENTSOF(fields); i++) {
                const char *k = extra[i].key;
                bool ok = k && *k && *k != '_' && extra[i].value;
                for (const char *p = k; ok && *p; p++)
                        ok = (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_';
                if (ok)
                        fields[n++] = (log_field) { k, extra[i].value };
        }
        if (suppressed)
                log_struct(LOG_WARNING, fields, 2, "backend %s: %llu log messages suppressed (rate limit)", b->name,
                           (unsigned long long) suppressed);
        log_fields_internal(priority, 0, __FILE__, __LINE__, b->plugin->ops.name, fields, n, "backend %s: %s", b->name, msg);
}

static void host_log(spw_ctx *ctx, int priority, const char *format, ...) __attribute__((format(printf, 3, 4)));
static void host_log(spw_ctx *ctx, int priority, const char *format, ...) {
        va_list ap;
        va_start(ap, format);
        host_logv(ctx, priority, NULL, 0, format, ap);
        va_end(ap);
}

static void host_log_fields(spw_ctx *ctx, int priority, const spw_kv *fields, size_t n, const char *format, ...) __attribute__((format(printf, 5, 6)));
static void host_log_fields(spw_ctx *ctx, int priority, const spw_kv *fields, size_t n, const char *format, ...) {
        va_list ap;
        va_start(ap, format);
        host_logv(ctx, priority, fields, n, format, ap);
        va_end(ap);
}

static void host_set_error(spw_ctx *ctx, const char *format, ...) __attribute__((format(printf, 2, 3)));
static void host_set_error(spw_ctx *ctx, const char *format, ...) {
        char text[512];
        va_list ap;
        va_start(ap, format);
        vsnprintf(text, sizeof text, format, ap);
        va_end(ap);
        set_error_text(ctx->b, text);
}

static spw_usec_t host_now(spw_ctx *ctx) {
        return now_realtime();
}

static int kv_key_cmp(const void *key, const void *kv) {
        return strcmp(key, ((const spw_kv *) kv)->key);
}

static const char *host_config_get(spw_ctx *ctx, const char *key) {
        const backend_config *c = ctx->b->cfg;
        const spw_kv *kv = bsearch(key, c->config, c->n_config, sizeof *c->config, kv_key_cmp);
        return kv ? kv->value : NULL;
}

static const char *host_instance_name(spw_ctx *ctx) {
        return ctx->b->name;
}

static const char *host_state_directory(spw_ctx *ctx) {
        return ctx->b->state_dir;
}

static int host_schedule(spw_ctx *ctx, spw_usec_t interval, spw_timer_fn fn, void *userdata) {
        backend *b = ctx->b;
        if (!b->may_schedule || !fn || interval < 10 * USEC_PER_MSEC)
                return -EINVAL;
        if (b->n_timers >= BACKEND_MAX_TIMERS)
                return -ENOSPC;
        b->timers[b->n_timers++] = (backend_timer) { interval, now_monotonic() + interval, fn, userdata };
        return 0;
}

static void host_retry_after(spw_ctx *ctx, spw_usec_t delay) {
        if (delay > 0)
                ctx->b->retry_after = delay;
}

static void host_set_status(spw_ctx *ctx, const char *key, const char *value) {
        backend *b = ctx->b;
        if (!key || !*key)
                return;
        pthread_mutex_lock(&b->info_lock);
        for (size_t i = 0; i < b->n_status; i++)
                if (streq(b->status[i].key, key)) {
                        free((char *) b->status[i].value);
                        if (value)
                                b->status[i].value = strdup(value);
                        else {
                                free((char *) b->status[i].key);
                                b->status[i] = b->status[--b->n_status];
                        }
                        goto out;
                }
        if (value && b->n_status < BACKEND_MAX_STATUS) {
                b->status[b->n_status] = (spw_kv) { strdup(key), strdup(value) };
                if (b->status[b->n_status].key && b->status[b->n_status].value)
                        b->n_status++;
                else {
                        free((char *) b->status[b->n_status].key);
                        free((char *) b->status[b->n_status].value);
                }
        }
out:
        pthread_mutex_unlock(&b->info_lock);
}

const struct spw_host backend_host = {
        .size = sizeof(struct spw_host),
        .abi_major = SPW_BACKEND_ABI_MAJOR,
        .abi_minor = SPW_BACKEND_ABI_MINOR,
        .log = host_log,
        .log_fields = host_log_fields,
        .set_error = host_set_error,
        .now = host_now,
        .config_get = host_config_get,
        .instance_name = host_instance_name,
        .state_directory = host_state_directory,
        .schedule = host_schedule,
        .retry_after = host_retry_after,
        .set_status = host_set_status,
};

/* ------------------------------------------------------------ worker helpers */

static inline void enter_plugin(backend *b) {
        usec_t now = now_monotonic();
        atomic_store(&b->busy_since, now);
        atomic_store(&b->last_activity, now);
}

static inline void leave_plugin(backend *b) {
        atomic_store(&b->busy_since, 0);
        atomic_store(&b->last_activity, now_monotonic());
}

static bool stop_requested(backend *b, usec_t *deadline) {
        bool s;
        pthread_mutex_lock(&b->info_lock);
        s = b->stop_requested;
        if (deadline)
                *deadline = b->drain_deadline;
        if (s && b->successor && !b->spool)
                b->handing = true;
        pthread_mutex_unlock(&b->info_lock);
        return s;
}

/* Sleep for a retry; returns false if the wait would pass the drain deadline. */
static bool retry_sleep(backend *b, unsigned attempt) {
        usec_t base = b->cfg->q.retry_backoff > 0 ? b->cfg->q.retry_backoff : 100 * USEC_PER_MSEC;
        usec_t cap = b->cfg->q.retry_backoff_max > 0 ? b->cfg->q.retry_backoff_max : base;
        usec_t d = base;
        usec_t deadline, until;

        for (unsigned i = 0; i < attempt && d < cap; i++)
                d *= 2;
        if (d > cap)
                d = cap;
        /* jitter: 80%..120%, so a fleet of hosts does not retry in step */
        d = d * 8 / 10 + (usec_t) ((double) d * 0.4 * ((double) random() / RAND_MAX));
        if (b->retry_after > d)
                d = b->retry_after;
        b->retry_after = 0;

        until = now_monotonic() + d;
        pthread_mutex_lock(&b->info_lock);
        for (;;) {
                if (b->stop_requested && b->successor) {
                        /* a reload hands our signals to the new instance:
                         * it tries them there instead of us here (a spool's
                         * records it reads itself) */
                        b->handing = !b->spool;
                        pthread_mutex_unlock(&b->info_lock);
                        return false;
                }
                deadline = b->stop_requested ? b->drain_deadline : USEC_INFINITY;
                if (until > deadline) {
                        pthread_mutex_unlock(&b->info_lock);
                        return false;
                }
                if (now_monotonic() >= until)
                        break;
                struct timespec ts = { .tv_sec = (time_t) (until / USEC_PER_SEC), .tv_nsec = (long) (until % USEC_PER_SEC) * 1000 };
                pthread_cond_timedwait(&b->info_cond, &b->info_lock, &ts);
        }
        pthread_mutex_unlock(&b->info_lock);
        return true;
}

/* The final line of a burst of failures the rate limit kept out of the
 * log: once its window closes (the worker wakes for it), or at exit. */
static void fail_summary(backend *b, bool at_exit) {
        uint64_t n = ratelimit_take_summary(&b->fail_rl, at_exit);
        if (n > 0)
                log_struct(LOG_WARNING, LOG_FIELDS({ "SPILLWAY_BACKEND", b->name }),
                           "backend %s: %llu more failed signals not logged (rate limit)", b->name, (unsigned long long) n);
}

static void fail_msg(backend *b, spw_msg *m, const char *why) {
        uint64_t suppressed = 0;
        atomic_fetch_add(&b->stats.failed, 1);
        if (ratelimit_below(&b->fail_rl, &suppressed)) {
                char id[32];
                snprintf(id, sizeof id, "%llu", (unsigned long long) m->sig.id);
                if (suppressed)
                        log_struct(LOG_WARNING, LOG_FIELDS({ "SPILLWAY_BACKEND", b->name }),
                                   "backend %s: %llu more failed signals not logged (rate limit)", b->name,
                                   (unsigned long long) suppressed);
                log_struct(LOG_WARNING,
                           LOG_FIELDS({ "MESSAGE_ID", SPW_MESSAGE_SIGNAL_FAILED }, { "SPILLWAY_BACKEND", b->name },
                                      { "SPILLWAY_SCENARIO", m->sig.scenario },
                                      { "SPILLWAY_SOURCE_IP", m->sig.source ? m->sig.source->ip : m->sig.source_ip },
                                      { "SPILLWAY_SIGNAL_ID", id }),
                           "backend %s: signal %s (%s) not delivered: %s", b->name, id, strna(m->sig.scenario), why);
        }
        msg_settle(m, b->name, false, why);
        msg_unref(m);
}

/* The reason the plugin gave for the failure of the call just made. */
static void error_text(backend *b, char *buf, size_t size, const char *fallback) {
        snprintf(buf, size, "%s", b->call_error[0] ? b->call_error : fallback);
}

static int remember_unflushed(backend *b, spw_msg *m) {
        if (b->n_unflushed == b->cap_unflushed) {
                size_t ncap = b->cap_unflushed ? b->cap_unflushed * 2 : 256;
                spw_msg **p = realloc(b->unflushed, ncap * sizeof *p);
                if (!p)
                        return -ENOMEM;
                b->unflushed = p;
                b->cap_unflushed = ncap;
        }
        b->unflushed[b->n_unflushed++] = m;
        if (m->ack == ACK_FLUSHED)
                b->n_waiters++;
        return 0;
}

/* ------------------------------------------------------------ hand-over
 *
 * A reload that replaces a memory-queued backend by a new instance of the
 * same name (backend_hand_over) moves what the old one has not delivered
 * to the new one instead of failing it. The old worker stops inserting at
 * once and commits only the batch it had inserted; if that flush fails (or
 * waits past the drain deadline) the batch goes over too, rolled back here
 * (at-least-once: a batch whose commit outcome is unknown may be stored
 * twice). Then it appends, oldest first, that batch, the signals it had
 * popped and its whole queue to the new instance's `inherited` list under
 * the new instance's info_lock (the only lock it takes then: locks never
 * nest), and kicks it. The new worker takes `inherited` before its queue,
 * and holds its queue until every predecessor has handed over (at most
 * until the old one's drain deadline), so submission order survives the
 * reload. Messages move with their references: the ack level and the
 * producer's reply (msg_settle counts outcomes, not instances) go with
 * them; retries start afresh at the new instance. A disk-spooled backend
 * needs none of this: the new instance shares the spool and replays what
 * the old one did not commit (spool.h). Only the "flushed" producers of
 * the records the old one leaves are handed over (spool_waiter): the new
 * worker answers them once its commit has passed their record. */

static int kept_grow(backend *b, size_t more) {
        if (b->n_kept + more <= b->cap_kept)
                return 0;
        size_t ncap = b->cap_kept ? b->cap_kept : 256;
        while (ncap < b->n_kept + more)
                ncap *= 2;
        spw_msg **p = realloc(b->kept, ncap * sizeof *p);
        if (!p)
                return -ENOMEM;
        b->kept = p;
        b->cap_kept = ncap;
        return 0;
}

/* Takes the reference: m goes to the successor, after what is kept. */
static void keep_msg(backend *b, spw_msg *m) {
        if (kept_grow(b, 1) < 0) {
                atomic_fetch_add(&b->stats.undelivered, 1);
                fail_msg(b, m, "undelivered: out of memory while handing it to the new instance");
                return;
        }
        b->kept[b->n_kept++] = m;
}

/* The uncommitted batch (rolled back, or its commit outcome unknown) goes
 * to the successor before everything kept so far: it is older. */
static void keep_unflushed(backend *b) {
        size_t n = b->n_unflushed;
        if (n > 0 && kept_grow(b, n) == 0) {
                memmove(b->kept + n, b->kept, b->n_kept * sizeof *b->kept);
                memcpy(b->kept, b->unflushed, n * sizeof *b->kept);
                b->n_kept += n;
                b->n_kept_uncommitted += n;
        } else
                for (size_t i = 0; i < n; i++) {
                        atomic_fetch_add(&b->stats.undelivered, 1);
                        fail_msg(b, b->unflushed[i], "undelivered: out of memory while handing it to the new instance");
                }
        b->n_unflushed = 0;
        b->n_waiters = 0;
}

static bool pos_before(spool_pos a, spool_pos b) {
        return a.seg < b.seg || (a.seg == b.seg && a.off < b.off);
}

/* Disk, stopping: m's record stays in the spool. A "flushed" producer
 * waits for a commit: with a successor sharing the spool (a reload), it is
 * answered once the successor's commit passes the record (`end`). */
static void drop_spooled(backend *b, spw_msg *m, spool_pos end) {
        if (m->ack == ACK_FLUSHED && b->successor && backend_spool(b->successor) == b->spool && kept_grow(b, 1) == 0) {
                b->kept[b->n_kept++] = m;
                if (pos_before(b->kept_end, end))
                        b->kept_end = end;
                return;
        }
        msg_unref(m);
}

/* Insert one message, retrying transient failures. Takes the message's
 * reference: keeps it in `unflushed` on success, settles it on failure.
 * Returns false when the retries were cut short by the drain deadline. */
static int call_insert(backend *b, spw_msg *m) {
        const spw_signal *sig = &m->sig;
        spw_signal shown;
        spw_ban *kept = NULL;
        int r;

        /* A plugin built before ABI 2.2 knows only Ip and Range: a ban of
         * another scope (Country, AS, username) has no address and would
         * read as 0.0.0.0, so it sees the signal without them. */
        if (b->plugin->abi_minor < 2 && sig->n_bans > 0) {
                size_t n = 0;
                for (size_t i = 0; i < sig->n_bans; i++)
                        n += sig->bans[i].scope != SPW_SCOPE_OTHER;
                if (n < sig->n_bans) {
                        kept = n ? calloc(n, sizeof *kept) : NULL;
                        if (n && !kept)
                                return -ENOMEM;
                        shown = *sig;
                        shown.n_bans = 0;
                        for (size_t i = 0; i < sig->n_bans; i++)
                                if (sig->bans[i].scope != SPW_SCOPE_OTHER)
                                        kept[shown.n_bans++] = sig->bans[i];
                        shown.bans = kept;
                        sig = &shown;
                }
        }
        b->call_error[0] = 0;
        enter_plugin(b);
        r = b->plugin->ops.insert(b->self, sig);
        leave_plugin(b);
        free(kept);
        return r;
}

static bool insert_one(backend *b, spw_msg *m) {
        char why[600];
        for (unsigned attempt = 0;; attempt++) {
                int r = call_insert(b, m);
                if (r == 0) {
                        atomic_fetch_add(&b->stats.inserted, 1);
                        if (remember_unflushed(b, m) < 0)
                                fail_msg(b, m, "out of memory");
                        return true;
                }
                if (r < 0 && spw_error_is_transient(r)) {
                        /* with a spool, retries go on for as long as it has
                         * room: the signal is safe on disk meanwhile */
                        if (attempt < b->cfg->q.max_retry || b->spool) {
                                atomic_fetch_add(&b->stats.retried, 1);
                                if (retry_sleep(b, attempt))
                                        continue;
                                if (b->handing) {
                                        /* the new instance tries it */
                                        keep_msg(b, m);
                                        return false;
                                }
                                if (b->spool) {
                                        /* stopping: it stays in the spool for the next start */
                                        b->abandon = true;
                                        drop_spooled(b, m, b->popped_end);
                                        return false;
                                }
                                error_text(b, why, sizeof why, "transient failure");
                                /* not given up: the stop cut it short */
                                atomic_fetch_add(&b->stats.undelivered, 1);
                                fail_msg(b, m, why);
                                return false;
                        }
                        error_text(b, why, sizeof why, "transient failure");
                        char tmp[700];
                        snprintf(tmp, sizeof tmp, "%s (gave up after %u retries)", why, b->cfg->q.max_retry);
                        fail_msg(b, m, tmp);
                        return true;
                }
                error_text(b, why, sizeof why, r < 0 ? strerror(-r) : "insert returned a positive value (a plugin bug)");
                if (b->spool)
                        (void) spool_dead_letter(b->spool, m, why);
                fail_msg(b, m, why);
                return true;
        }
}

/* The plugin undid its batch (a failed flush): insert every signal of it
 * again, each with the usual retries. */
static void reinsert_unflushed(backend *b) {
        size_t n = b->n_unflushed;
        spw_msg **batch = b->unflushed;

        if (b->handing) {
                keep_unflushed(b);    /* the new instance inserts it again */
                return;
        }
        b->unflushed = NULL;
        b->n_unflushed = b->cap_unflushed = 0;
        b->n_waiters = 0;
        for (size_t i = 0; i < n; i++) {
                if (b->abandon)
                        drop_spooled(b, batch[i], b->popped_end);  /* kept in the spool */
                else if (b->handing)
                        keep_msg(b, batch[i]); /* a hand-over began during the re-insert */
                else
                        insert_one(b, batch[i]);
        }
        free(batch);
}

/* Everything taken from the spool so far is flushed or dead-lettered. */
static void commit_spool(backend *b) {
        if (b->spool && b->n_uncommitted > 0 && b->n_unflushed == 0 && !b->abandon) {
                spool_commit(b->spool, b->popped_end, b->n_uncommitted);
                b->n_uncommitted = 0;
                b->committed_end = b->popped_end;
        }
}

/* Stopping with signals in the spool: drop our references, keep the records. */
static void abandon_unflushed(backend *b) {
        for (size_t i = 0; i < b->n_unflushed; i++)
                drop_spooled(b, b->unflushed[i], b->popped_end);
        b->n_unflushed = 0;
        b->n_waiters = 0;
        b->abandon = true;
}

static void settle_unflushed(backend *b, bool ok, const char *why) {
        if (ok) {
                hub_list done = { 0 };
                atomic_fetch_add(&b->stats.flushed, b->n_unflushed);
                for (size_t i = 0; i < b->n_unflushed; i++) {
                        msg_settle_into(b->unflushed[i], b->name, true, NULL, &done);
                        msg_unref(b->unflushed[i]);
                }
                hub_post_list(b->hub, &done);
                b->n_unflushed = 0;
                b->n_waiters = 0;
                commit_spool(b);
        } else
                for (size_t i = 0; i < b->n_unflushed; i++) {
                        if (b->spool)
                                (void) spool_dead_letter(b->spool, b->unflushed[i], why);
                        fail_msg(b, b->unflushed[i], why);
                }
        b->n_unflushed = 0;
        b->n_waiters = 0;
}

/* Flush; on a transient failure re-insert the batch and try again. */
static void do_flush(backend *b) {
        char why[600];
        b->last_flush = now_monotonic();
        if (!b->plugin->ops.flush) {
                settle_unflushed(b, true, NULL);
                return;
        }
        for (unsigned attempt = 0;; attempt++) {
                int r;
                usec_t t0 = now_monotonic();
                b->call_error[0] = 0;
                enter_plugin(b);
                r = b->plugin->ops.flush(b->self);
                leave_plugin(b);
                if (r >= 0) {
                        b->flush_cost = now_monotonic() - t0;
                        atomic_fetch_add(&b->stats.flushes, 1);
                        settle_unflushed(b, true, NULL);
                        return;
                }
                error_text(b, why, sizeof why, strerror(-r));
                if (b->handing) {
                        /* the batch goes to the new instance, not to the producers as a failure */
                        log_struct(LOG_NOTICE, LOG_FIELDS({ "SPILLWAY_BACKEND", b->name }),
                                   "backend %s: flush of %zu signals failed (%s); handing them to the new instance",
                                   b->name, b->n_unflushed, why);
                        keep_unflushed(b);
                        return;
                }
                if (!spw_error_is_transient(r) || (attempt >= b->cfg->q.max_retry && !b->spool)) {
                        char tmp[700];
                        if (spw_error_is_transient(r))
                                snprintf(tmp, sizeof tmp, "flush failed: %s (gave up after %u retries)", why, b->cfg->q.max_retry);
                        else
                                snprintf(tmp, sizeof tmp, "flush failed: %s", why);
                        settle_unflushed(b, false, tmp);
                        return;
                }
                atomic_fetch_add(&b->stats.retried, 1);
                log_struct(LOG_NOTICE, LOG_FIELDS({ "MESSAGE_ID", SPW_MESSAGE_BACKEND_RETRY }, { "SPILLWAY_BACKEND", b->name }),
                           "backend %s: flush of %zu signals failed (%s), retrying", b->name, b->n_unflushed, why);
                if (!retry_sleep(b, attempt)) {
                        if (b->handing)
                                keep_unflushed(b);
                        else if (b->spool)
                                abandon_unflushed(b);
                        else {
                                atomic_fetch_add(&b->stats.undelivered, b->n_unflushed);
                                settle_unflushed(b, false, "flush failed and the drain deadline passed");
                        }
                        return;
                }
                reinsert_unflushed(b);
                if (b->abandon)
                        return;
        }
}

static void run_job(backend *b, admin_job *j);

static void job_finished(backend *b, admin_job *j) {
        if (j->worker_done)
                j->worker_done(j);
        else
                hub_post(b->hub, &j->done);
}

static admin_job *take_jobs(backend *b) {
        admin_job *j;
        pthread_mutex_lock(&b->jobs_lock);
        j = b->jobs_head;
        b->jobs_head = b->jobs_tail = NULL;
        pthread_mutex_unlock(&b->jobs_lock);
        return j;
}

static usec_t next_timer(backend *b) {
        usec_t t = USEC_INFINITY;
        for (size_t i = 0; i < b->n_timers; i++)
                if (b->timers[i].next < t)
                        t = b->timers[i].next;
        return t;
}

static void run_timers(backend *b) {
        usec_t now = now_monotonic();
        bool ran = false;
        for (size_t i = 0; i < b->n_timers; i++) {
                backend_timer *t = &b->timers[i];
                if (t->next > now)
                        continue;
                enter_plugin(b);
                int r = t->fn(t->userdata, now_realtime());
                leave_plugin(b);
                if (r < 0) {
                        char why[512];
                        error_text(b, why, sizeof why, strerror(-r));
                        log_struct(LOG_WARNING, LOG_FIELDS({ "SPILLWAY_BACKEND", b->name }),
                                   "backend %s: background task failed: %s; it runs again in %lld ms", b->name, why,
                                   (long long) (t->interval / USEC_PER_MSEC));
                }
                t->next = now_monotonic() + t->interval;
                ran = true;
        }
        if (ran)
                do_flush(b);
}

/* How long a worker whose queue ran dry waits for company before it
 * commits. A producer waiting for a "flushed" ack: flush_delay (0 by
 * default: at once). Only "queued" signals pending: nobody waits for this
 * commit, so wait IDLE_COMMIT_SHARE times what the last commit took (at
 * most flush_interval). At any arrival rate a commit then costs at most a
 * quarter of the worker's time, where committing whenever the queue ran
 * dry made the commit the per-signal cost of a "queued" producer that
 * the worker keeps up with (SQLite: 49-76 signals per commit with one
 * lock-step producer, against ~850 under "flushed" pipelining). */
#define IDLE_COMMIT_SHARE 4

static usec_t idle_wait(const backend *b) {
        usec_t w = b->flush_cost * IDLE_COMMIT_SHARE;
        if (b->n_waiters > 0 || w <= b->cfg->q.flush_delay)
                return b->cfg->q.flush_delay;
        return w < b->cfg->q.flush_interval ? w : b->cfg->q.flush_interval;
}

/* Worker: signals a predecessor handed over come before our queue; while
 * one has still to hand over (and its deadline has not passed) the queue
 * waits (*held). Returns how many were taken into items. */
static size_t take_inherited(backend *b, void **items, size_t max, bool *held) {
        size_t n;

        *held = false;
        if (atomic_load(&b->n_inherit_waiting) == 0 && atomic_load(&b->predecessors) == 0)
                return 0; /* the common case: no lock */
        pthread_mutex_lock(&b->info_lock);
        n = b->n_inherited < max ? b->n_inherited : max;
        if (n > 0) {
                memcpy(items, b->inherited, n * sizeof *items);
                memmove(b->inherited, b->inherited + n, (b->n_inherited - n) * sizeof *b->inherited);
                b->n_inherited -= n;
        }
        atomic_store(&b->n_inherit_waiting, b->n_inherited);
        if (n == 0 && atomic_load(&b->predecessors) > 0 && now_monotonic() < b->hold_until)
                *held = true;
        pthread_mutex_unlock(&b->info_lock);
        return n;
}

/* Worker: a sleeping pop may return signals submitted after a hand-over
 * began, before the predecessor's signals arrived: they wait behind them. */
static bool defer_popped(backend *b, void **items, size_t n) {
        if (atomic_load(&b->predecessors) == 0 && atomic_load(&b->n_inherit_waiting) == 0)
                return false; /* the common case */
        if (b->n_deferred + n > b->cap_deferred) {
                size_t ncap = (b->n_deferred + n) * 2;
                spw_msg **p = realloc(b->deferred, ncap * sizeof *p);
                if (!p)
                        return false; /* order is lost, not the signals */
                b->deferred = p;
                b->cap_deferred = ncap;
        }
        memcpy(b->deferred + b->n_deferred, items, n * sizeof *items);
        b->n_deferred += n;
        return true;
}

static size_t take_deferred(backend *b, void **items, size_t max) {
        size_t n = b->n_deferred - b->head_deferred;
        if (n > max)
                n = max;
        if (n == 0)
                return 0;
        memcpy(items, b->deferred + b->head_deferred, n * sizeof *items);
        b->head_deferred += n;
        if (b->head_deferred == b->n_deferred)
                b->head_deferred = b->n_deferred = 0;
        return n;
}

/* Worker: wait for a predecessor's hand-over, a job, a stop, or `until`. */
static void wait_held(backend *b, usec_t until) {
        pthread_mutex_lock(&b->info_lock);
        if (until > b->hold_until)
                until = b->hold_until;
        while (!b->held_wake && b->n_inherited == 0 && atomic_load(&b->predecessors) > 0 && now_monotonic() < until) {
                struct timespec ts = { .tv_sec = (time_t) (until / USEC_PER_SEC), .tv_nsec = (long) (until % USEC_PER_SEC) * 1000 };
                pthread_cond_timedwait(&b->info_cond, &b->info_lock, &ts);
        }
        b->held_wake = false;
        pthread_mutex_unlock(&b->info_lock);
}

/* Worker, at exit: give the successor, oldest first, the batch kept from
 * the last flush, the signals popped and not inserted, what predecessors
 * handed us and our whole queue (nothing new enters it: we are retired). */
static void hand_over_now(backend *b) {
        backend *s = b->successor;    /* set before the stop, never changed after */
        void *items[POP_BATCH];
        size_t n, total, uncommitted = b->n_kept_uncommitted;
        bool held, closed;

        for (;;) {
                n = take_inherited(b, items, POP_BATCH, &held);
                for (size_t i = 0; i < n; i++)
                        keep_msg(b, items[i]);
                if (n == 0)
                        break;
        }
        while ((n = take_deferred(b, items, POP_BATCH)) > 0)
                for (size_t i = 0; i < n; i++)
                        keep_msg(b, items[i]);
        while ((n = queue_pop(&b->queue, items, POP_BATCH, 0)) > 0)
                for (size_t i = 0; i < n; i++)
                        keep_msg(b, items[i]);
        total = b->n_kept;

        pthread_mutex_lock(&s->info_lock);
        closed = s->inherit_closed;
        if (!closed && s->n_inherited + b->n_kept > s->cap_inherited) {
                size_t ncap = s->n_inherited + b->n_kept;
                spw_msg **p = realloc(s->inherited, ncap * sizeof *p);
                if (p) {
                        s->inherited = p;
                        s->cap_inherited = ncap;
                } else
                        closed = true;
        }
        if (!closed && b->n_kept > 0) {
                memcpy(s->inherited + s->n_inherited, b->kept, b->n_kept * sizeof *b->kept);
                s->n_inherited += b->n_kept;
                atomic_store(&s->n_inherit_waiting, s->n_inherited);
                atomic_fetch_add(&s->stats.inherited, b->n_kept);
                b->n_kept = 0;
        }
        atomic_fetch_sub(&s->predecessors, 1);
        s->held_wake = true;
        pthread_cond_broadcast(&s->info_cond);
        pthread_mutex_unlock(&s->info_lock);
        queue_kick(&s->queue);

        if (closed) {
                /* the new instance stopped before we were done (or no memory) */
                for (size_t i = 0; i < b->n_kept; i++) {
                        atomic_fetch_add(&b->stats.undelivered, 1);
                        fail_msg(b, b->kept[i], "undelivered: the new instance of the backend stopped before the hand-over");
                }
                b->n_kept = 0;
                total = 0;
        }
        atomic_fetch_add(&b->stats.handed_over, total);
        char cnt[32];
        snprintf(cnt, sizeof cnt, "%zu", total);
        log_struct(LOG_INFO, LOG_FIELDS({ "SPILLWAY_BACKEND", b->name }, { "SPILLWAY_HANDED_OVER", cnt }),
                   "backend %s: handed %zu signals over to its new instance (%zu of them inserted here but not committed)",
                   b->name, total, closed ? (size_t) 0 : uncommitted);
}

/* Worker, at exit, disk: the "flushed" producers of the records we leave
 * in the shared spool wait for the successor's commit instead. */
static void hand_waiters_now(backend *b) {
        backend *s = b->successor;
        bool ok;

        if (b->n_kept == 0)
                return;
        pthread_mutex_lock(&s->info_lock);
        ok = !s->inherit_closed;
        if (ok && s->n_waiters_in + b->n_kept > s->cap_waiters_in) {
                size_t ncap = (s->n_waiters_in + b->n_kept) * 2;
                spool_waiter *p = realloc(s->waiters_in, ncap * sizeof *p);
                if (p) {
                        s->waiters_in = p;
                        s->cap_waiters_in = ncap;
                } else
                        ok = false;
        }
        if (ok) {
                for (size_t i = 0; i < b->n_kept; i++)
                        s->waiters_in[s->n_waiters_in++] = (spool_waiter) { b->kept[i], b->kept_end };
                atomic_store(&s->n_waiters_waiting, s->n_waiters_in);
        }
        pthread_mutex_unlock(&s->info_lock);
        if (ok)
                spool_kick(s->spool);
        else
                for (size_t i = 0; i < b->n_kept; i++) {
                        msg_settle(b->kept[i], b->name, false, "not committed: the new instance stopped; kept in the spool");
                        msg_unref(b->kept[i]);
                }
        b->n_kept = 0;
}

/* Worker, disk: take the waiters a predecessor handed over, and answer
 * those whose record our commits have passed (at_exit: the others fail). */
static void settle_spool_waiters(backend *b, bool at_exit) {
        if (atomic_load(&b->n_waiters_waiting) > 0) {
                pthread_mutex_lock(&b->info_lock);
                size_t n = b->n_waiters_in;
                if (b->n_spool_waiters + n > b->cap_spool_waiters) {
                        size_t ncap = (b->n_spool_waiters + n) * 2;
                        spool_waiter *p = realloc(b->spool_waiters, ncap * sizeof *p);
                        if (p) {
                                b->spool_waiters = p;
                                b->cap_spool_waiters = ncap;
                        } else
                                n = 0; /* next time */
                }
                if (n > 0)
                        memcpy(b->spool_waiters + b->n_spool_waiters, b->waiters_in, n * sizeof *b->waiters_in);
                b->n_spool_waiters += n;
                b->n_waiters_in -= n;
                atomic_store(&b->n_waiters_waiting, b->n_waiters_in);
                pthread_mutex_unlock(&b->info_lock);
        }
        size_t k = 0;
        for (size_t i = 0; i < b->n_spool_waiters; i++) {
                spool_waiter *w = &b->spool_waiters[i];
                if (!pos_before(b->committed_end, w->end))
                        msg_settle(w->m, b->name, true, NULL);
                else if (at_exit)
                        msg_settle(w->m, b->name, false, "not committed before the stop; kept in the spool for the next start");
                else {
                        b->spool_waiters[k++] = *w;
                        continue;
                }
                msg_unref(w->m);
        }
        b->n_spool_waiters = k;
}

/* Worker, at exit: hand-overs that come now fail their signals. What
 * came too late for the loop is settled as undelivered. */
static void close_inheritance(backend *b) {
        spw_msg **left;
        size_t n;

        pthread_mutex_lock(&b->info_lock);
        b->inherit_closed = true;
        pthread_mutex_unlock(&b->info_lock);
        settle_spool_waiters(b, true);
        pthread_mutex_lock(&b->info_lock);
        left = b->inherited;
        n = b->n_inherited;
        b->inherited = NULL;
        b->n_inherited = b->cap_inherited = 0;
        atomic_store(&b->n_inherit_waiting, 0);
        pthread_mutex_unlock(&b->info_lock);
        for (size_t i = 0; i < n; i++) {
                atomic_fetch_add(&b->stats.undelivered, 1);
                fail_msg(b, left[i], "undelivered: the drain timeout passed at stop");
        }
        free(left);
}

static void *worker_main(void *userdata) {
        backend *b = userdata;
        sigset_t all;
        char tname[16];
        void *items[POP_BATCH];
        spool_pos ends[POP_BATCH];
        int r;

        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, NULL);
        snprintf(tname, sizeof tname, "spw-%s", b->name);
        pthread_setname_np(pthread_self(), tname);

        /* init */
        b->may_schedule = true;
        enter_plugin(b);
        r = b->plugin->ops.init(&b->ctx, &backend_host, b->cfg->config, b->cfg->n_config, &b->self);
        leave_plugin(b);
        if (r < 0) {
                pthread_mutex_lock(&b->info_lock);
                snprintf(b->init_error, sizeof b->init_error, "%s", b->call_error[0] ? b->call_error : strerror(-r));
                atomic_store(&b->state, BACKEND_FAILED);
                pthread_cond_broadcast(&b->info_cond);
                pthread_mutex_unlock(&b->info_lock);
                return NULL;
        }
        if (b->plugin->ops.start_autocommit && b->autocommit) {
                enter_plugin(b);
                r = b->plugin->ops.start_autocommit(b->self);
                leave_plugin(b);
                if (r < 0) {
                        char why[512];
                        error_text(b, why, sizeof why, strerror(-r));
                        log_struct(LOG_WARNING, LOG_FIELDS({ "SPILLWAY_BACKEND", b->name }),
                                   "backend %s: background duties did not start: %s; serving without them", b->name, why);
                }
        }
        b->may_schedule = false;
        b->last_flush = now_monotonic();

        pthread_mutex_lock(&b->info_lock);
        atomic_store(&b->state, BACKEND_RUNNING);
        pthread_cond_broadcast(&b->info_cond);
        pthread_mutex_unlock(&b->info_lock);

        usec_t idle_flush_at = USEC_INFINITY; /* commit then: the queue ran dry */
        for (;;) {
                usec_t drain_deadline = 0, deadline, now;
                bool stopping = stop_requested(b, &drain_deadline);
                size_t n;
                admin_job *jobs;

                /* 1. administrative jobs */
                jobs = take_jobs(b);
                while (jobs) {
                        admin_job *next = jobs->next;
                        run_job(b, jobs);
                        job_finished(b, jobs);
                        jobs = next;
                }

                /* 2. signals */
                size_t room = b->cfg->q.flush_batch > b->n_unflushed ? b->cfg->q.flush_batch - b->n_unflushed : 1;
                if (room > POP_BATCH)
                        room = POP_BATCH;
                if (b->n_unflushed > 0) {
                        deadline = b->last_flush + b->cfg->q.flush_interval;
                        if (idle_flush_at < deadline)
                                deadline = idle_flush_at;
                } else
                        deadline = USEC_INFINITY;
                if (next_timer(b) < deadline)
                        deadline = next_timer(b);
                if (ratelimit_summary_due(&b->fail_rl) < deadline)
                        deadline = ratelimit_summary_due(&b->fail_rl);
                if (stopping)
                        deadline = 0; /* never sleep while draining */
                bool held = false;
                size_t n_inh = b->abandon ? 0 : take_inherited(b, items, room, &held);
                if (held) {
                        /* a predecessor is handing over: our queue waits for it */
                        wait_held(b, stopping ? USEC_INFINITY : deadline);
                        n = 0;
                } else if (n_inh > 0)
                        n = n_inh;
                else if (b->handing)
                        n = 0;  /* the rest goes to the successor at exit */
                else if (b->n_deferred > 0)
                        n = n_inh = take_deferred(b, items, room); /* not from the spool either */
                else if (b->abandon)
                        n = 0;
                else if (b->spool)
                        n = spool_pop(b->spool, b->spool_gen, (spw_msg **) items, ends, room, deadline);
                else if (b->n_unflushed > 0 && b->n_waiters == 0 && idle_flush_at != USEC_INFINITY)
                        /* waiting for company anyway: no wake-up per signal */
                        n = queue_pop_lazy(&b->queue, items, room, deadline, room);
                else
                        n = queue_pop(&b->queue, items, room, deadline);
                if (n > 0 && n_inh == 0 && !b->spool && defer_popped(b, items, n))
                        n = 0;
                atomic_store(&b->last_activity, now_monotonic());
                for (size_t i = 0; i < n; i++) {
                        /* a stop may arrive in the middle of a batch */
                        if (!stopping)
                                stopping = stop_requested(b, &drain_deadline);
                        if (b->handing) {
                                keep_msg(b, items[i]);
                                continue;
                        }
                        if (b->spool && i >= n_inh && (b->abandon || (stopping && now_monotonic() > drain_deadline))) {
                                /* it stays in the spool for the next start */
                                b->abandon = true;
                                drop_spooled(b, items[i], ends[i]);
                                continue;
                        }
                        if (stopping && now_monotonic() > drain_deadline) {
                                fail_msg(b, items[i], "undelivered: the drain timeout passed at stop");
                                atomic_fetch_add(&b->stats.undelivered, 1);
                                continue;
                        }
                        if (b->spool && i >= n_inh) {
                                b->popped_end = ends[i];
                                b->n_uncommitted++;
                        }
                        insert_one(b, items[i]);
                }

                /* 3. flush: group commit. Under load, batches of flush_batch;
                 * when the queue runs dry, commit after flush_delay (the time
                 * an idle worker waits for company), so a lone signal is
                 * committed at once instead of waiting for flush_interval,
                 * which stays the upper bound on any signal's wait. */
                now = now_monotonic();
                if (b->n_unflushed > 0 && queue_count(&b->queue) == 0) {
                        usec_t at = now + idle_wait(b);
                        if (at < idle_flush_at)
                                idle_flush_at = at; /* a "flushed" signal may shorten the wait, never lengthen it */
                }
                if (b->n_unflushed > 0 &&
                    (b->n_unflushed >= b->cfg->q.flush_batch || now >= b->last_flush + b->cfg->q.flush_interval ||
                     now >= idle_flush_at || (stopping && n == 0) || b->handing))
                        do_flush(b);
                if (b->n_unflushed == 0) {
                        idle_flush_at = USEC_INFINITY;
                        commit_spool(b);
                }
                if (b->spool && (b->n_spool_waiters > 0 || atomic_load(&b->n_waiters_waiting) > 0))
                        settle_spool_waiters(b, false);

                /* 4. timers, and the summary of a burst of failures */
                if (!stopping && next_timer(b) <= now_monotonic())
                        run_timers(b);
                fail_summary(b, false);

                if (b->handing && !held && b->n_unflushed == 0)
                        break;  /* our batch is committed or kept: hand the rest over */
                if (stopping && n == 0 && b->n_unflushed == 0 && !held && atomic_load(&b->n_inherit_waiting) == 0 &&
                    b->n_deferred == 0) {
                        /* queue empty (or deadline passed and emptied): done */
                        if (b->spool || queue_count(&b->queue) == 0)
                                break;
                }
                if (b->abandon) {
                        abandon_unflushed(b);
                        break;
                }
        }

        if (b->handing)
                hand_over_now(b);
        else if (b->spool && b->successor)
                hand_waiters_now(b);
        close_inheritance(b);
        fail_summary(b, true);

        /* last jobs (answer them rather than leaving callers waiting) */
        admin_job *jobs = take_jobs(b);
        while (jobs) {
                admin_job *next = jobs->next;
                run_job(b, jobs);
                job_finished(b, jobs);
                jobs = next;
        }
        if (b->plugin->ops.shutdown) {
                enter_plugin(b);
                b->plugin->ops.shutdown(b->self);
                leave_plugin(b);
        }
        b->self = NULL;
        pthread_mutex_lock(&b->info_lock);
        atomic_store(&b->state, BACKEND_STOPPED);
        pthread_mutex_unlock(&b->info_lock);
        hub_signal_backend_event(b->hub);
        return NULL;
}

/* ------------------------------------------------------------ admin jobs */

typedef struct list_ctx {
        admin_job *job;
        backend *b;
        int stopped;              /* the stream stopped the listing (admin.h) */
} list_ctx;

static int list_row(const spw_ban_row *row, void *userdata) {
        list_ctx *ctx = userdata;
        admin_job *j = ctx->job;
        if (!ban_filter_match(&j->filter, row))
                return 0;
        j->total++;
        if (j->limit == 0 || j->n_rows < j->limit) {
                if (j->n_rows++ > 0)
                        strbuf_putc(&j->rows, ',');
                ban_row_append_json(&j->rows, row);
                if (j->rows.oom)
                        return -ENOMEM;
                if (j->chunk_fn && j->rows.len >= ADMIN_LIST_CHUNK) {
                        int r = admin_job_list_push(j, ctx->b->hub);
                        if (r < 0)
                                return ctx->stopped = r;
                }
        }
        return 0;
}

static void job_error(backend *b, admin_job *j, const char *what) {
        char why[512];
        error_text(b, why, sizeof why, strerror(-j->r));
        snprintf(j->error, sizeof j->error, "backend '%.64s': %s: %.400s", b->name, what, why);
}

/* Commit the open batch (with what the job added); false on failure, the
 * job's result then says why. */
static bool job_flush(backend *b, admin_job *j) {
        if (!b->plugin->ops.flush)
                return true;
        enter_plugin(b);
        int r = b->plugin->ops.flush(b->self);
        leave_plugin(b);
        if (r < 0) {
                j->r = r;
                job_error(b, j, "committing failed");
                /* the plugin rolled its batch back: signals inserted
                 * before the job go through the normal retry path */
                reinsert_unflushed(b);
                return false;
        }
        atomic_fetch_add(&b->stats.flushes, 1);
        settle_unflushed(b, true, NULL);
        b->last_flush = now_monotonic();
        return true;
}

static void run_job(backend *b, admin_job *j) {
        b->call_error[0] = 0;
        switch (j->type) {
        case JOB_CHANGES:
                if (!b->plugin->ops.read_changes) {
                        j->r = -EOPNOTSUPP;
                        snprintf(j->error, sizeof j->error, "backend '%s' cannot read ban changes (a plugin "
                                 "built for ABI 2.0)", b->name);
                        return;
                }
                /* read_changes wants no batch open: commit ours first */
                if (b->n_unflushed > 0 && !job_flush(b, j))
                        return;
                j->next_cursor = j->cursor;
                enter_plugin(b);
                j->r = b->plugin->ops.read_changes(b->self, j->cursor, j->change_fn, j->change_userdata, &j->next_cursor);
                leave_plugin(b);
                if (j->r < 0)
                        job_error(b, j, "reading ban changes failed");
                return;
        case JOB_HISTORY:
                if (!b->plugin->ops.read_history) {
                        j->r = -EOPNOTSUPP;
                        snprintf(j->error, sizeof j->error, "backend '%s' keeps no ban history (a plugin built "
                                 "for ABI 2.1 or older)", b->name);
                        return;
                }
                if (b->n_unflushed > 0 && !job_flush(b, j))
                        return;
                enter_plugin(b);
                j->r = b->plugin->ops.read_history(b->self, j->at, j->change_fn, j->change_userdata);
                leave_plugin(b);
                if (j->r < 0)
                        job_error(b, j, "reading the ban history failed");
                return;
        case JOB_RESYNC: {
                uint64_t count = 0;
                if (!b->plugin->ops.delete_all) {
                        j->r = -EOPNOTSUPP;
                        snprintf(j->error, sizeof j->error, "backend '%s' cannot delete bans", b->name);
                        return;
                }
                enter_plugin(b);
                j->r = b->plugin->ops.delete_all(b->self, &count);
                leave_plugin(b);
                if (j->r < 0) {
                        job_error(b, j, "forgetting the bans before a resync failed");
                        return;
                }
                if (j->msg) {
                        int r = call_insert(b, j->msg);
                        if (r != 0) {
                                j->r = r < 0 ? r : -EPROTO;
                                job_error(b, j, "storing the resynced bans failed");
                                return;
                        }
                }
                break;
        }
        case JOB_LIST: {
                list_ctx ctx = { j, b, 0 };
                if (!b->plugin->ops.read_at) {
                        j->r = -EOPNOTSUPP;
                        snprintf(j->error, sizeof j->error, "backend '%s' stores no bans", b->name);
                        return;
                }
                enter_plugin(b);
                j->r = b->plugin->ops.read_at(b->self, j->at, list_row, &ctx);
                leave_plugin(b);
                if (ctx.stopped == -ETIMEDOUT)
                        snprintf(j->error, sizeof j->error, "the client did not read the ban list in time: stopped "
                                 "after %zu rows (the listing holds backend '%.64s' while the client does not read)",
                                 j->n_rows, b->name);
                else if (ctx.stopped == -ECANCELED)
                        snprintf(j->error, sizeof j->error, "the client went away");
                else if (j->r < 0)
                        job_error(b, j, "reading bans failed");
                if (ctx.stopped < 0 && j->r >= 0)
                        j->r = ctx.stopped;
                return;
        }
        case JOB_DELETE:
        case JOB_DELETE_ALL: {
                int (*op_target)(void *, const char *, uint64_t *) = b->plugin->ops.delete_target;
                int (*op_all)(void *, uint64_t *) = b->plugin->ops.delete_all;
                if (j->type == JOB_DELETE ? !op_target : !op_all) {
                        j->r = -EOPNOTSUPP;
                        snprintf(j->error, sizeof j->error, "backend '%s' cannot delete bans", b->name);
                        return;
                }
                enter_plugin(b);
                j->r = j->type == JOB_DELETE ? op_target(b->self, j->target, &j->count) : op_all(b->self, &j->count);
                leave_plugin(b);
                if (j->r < 0) {
                        job_error(b, j, "deleting bans failed");
                        return;
                }
                break;
        }
        case JOB_INSERT: {
                int r = call_insert(b, j->msg);
                if (r != 0) {
                        j->r = r < 0 ? r : -EPROTO;
                        job_error(b, j, "storing the ban failed");
                        return;
                }
                atomic_fetch_add(&b->stats.inserted, 1);
                break;
        }
        }
        /* administrative writes are made durable before the reply */
        job_flush(b, j);
}

/* ------------------------------------------------------------ main thread API */

static void backend_free(backend *b) {
        b->spool = spool_close(b->spool, b->spool_gen);
        queue_deinit(&b->queue, msg_unref_void);
        admin_job *j = b->jobs_head;
        while (j) {
                admin_job *n = j->next;
                if (j->worker_done) { /* its owner waits for it: say it did not run */
                        j->r = -ECANCELED;
                        j->worker_done(j);
                } else
                        admin_job_free(j);
                j = n;
        }
        for (size_t i = 0; i < b->n_status; i++) {
                free((char *) b->status[i].key);
                free((char *) b->status[i].value);
        }
        for (size_t i = 0; i < b->n_unflushed; i++)
                msg_unref(b->unflushed[i]);
        free(b->unflushed);
        for (size_t i = 0; i < b->n_inherited; i++)
                msg_unref(b->inherited[i]);
        free(b->inherited);
        for (size_t i = 0; i < b->n_kept; i++)
                msg_unref(b->kept[i]);
        free(b->kept);
        for (size_t i = b->head_deferred; i < b->n_deferred; i++)
                msg_unref(b->deferred[i]);
        free(b->deferred);
        for (size_t i = 0; i < b->n_waiters_in; i++)
                msg_unref(b->waiters_in[i].m);
        free(b->waiters_in);
        for (size_t i = 0; i < b->n_spool_waiters; i++)
                msg_unref(b->spool_waiters[i].m);
        free(b->spool_waiters);
        backend_unref(b->successor);
        pthread_mutex_destroy(&b->info_lock);
        pthread_cond_destroy(&b->info_cond);
        pthread_mutex_destroy(&b->jobs_lock);
        config_ref_unref(b->config_ref);
        free(b);
}

int backend_start(const backend_config *cfg, spw_config_ref *config_ref, spw_plugin *plugin, hub *h,
                  const char *state_dir, usec_t stuck_timeout, usec_t init_timeout, bool autocommit, backend **ret) {
        backend *b;
        pthread_condattr_t attr;
        int r;

        b = calloc(1, sizeof *b);
        if (!b)
                return -ENOMEM;
        b->cfg = cfg;
        b->config_ref = config_ref_ref(config_ref);
        b->plugin = plugin;
        b->name = cfg->name;
        b->ctx.b = b;
        b->hub = h;
        b->state_dir = state_dir;
        b->stuck_timeout = stuck_timeout;
        b->refs = 1;
        b->log_rl = (ratelimit) RATELIMIT_INIT(10 * USEC_PER_SEC, 200);
        b->fail_rl = (ratelimit) RATELIMIT_INIT(10 * USEC_PER_SEC, 20);
        b->drop_rl = (ratelimit) RATELIMIT_INIT(10 * USEC_PER_SEC, 1);
        pthread_mutex_init(&b->info_lock, NULL);
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&b->info_cond, &attr);
        pthread_condattr_destroy(&attr);
        pthread_mutex_init(&b->jobs_lock, NULL);
        atomic_init(&b->state, BACKEND_INITIALIZING);
        r = queue_init(&b->queue, cfg->q.size, hub_signal_space, h);
        if (r < 0) {
                backend_free(b);
                return r;
        }
        b->autocommit = autocommit;
        if (cfg->q.durability == DURABILITY_DISK) {
                spool_open_report rep;
                spw_error err = { 0 };
                r = spool_open(state_dir, cfg->name, cfg->q.spool_sync, cfg->q.spool_max_size, cfg->q.size,
                               hub_signal_space, h, &b->spool, &b->spool_gen, &rep, &err);
                if (r < 0) {
                        /* reported like an init failure: the backend does not run */
                        snprintf(b->init_error, sizeof b->init_error, "%s", err.msg[0] ? err.msg : strerror(-r));
                        atomic_store(&b->state, BACKEND_FAILED);
                        *ret = b;
                        return 0;
                }
                if (rep.truncated_bytes > 0) {
                        char cnt[32];
                        snprintf(cnt, sizeof cnt, "%llu", (unsigned long long) rep.truncated_bytes);
                        log_struct(LOG_WARNING,
                                   LOG_FIELDS({ "MESSAGE_ID", SPW_MESSAGE_SPOOL_TRUNCATED }, { "SPILLWAY_BACKEND", cfg->name },
                                              { "SPILLWAY_TRUNCATED_BYTES", cnt }),
                                   "backend %s: spool %s had a torn or corrupt tail: %llu bytes cut in %llu place(s) (last: %s); "
                                   "%llu intact signals are replayed", cfg->name, spool_dir(b->spool),
                                   (unsigned long long) rep.truncated_bytes, (unsigned long long) rep.truncated_records_hint,
                                   rep.truncated_file, (unsigned long long) rep.replay);
                }
                if (rep.replay > 0)
                        log_struct(LOG_INFO, LOG_FIELDS({ "MESSAGE_ID", SPW_MESSAGE_SPOOL_REPLAY }, { "SPILLWAY_BACKEND", cfg->name }),
                                   "backend %s: replaying %llu signals kept in %s before new ones", cfg->name,
                                   (unsigned long long) rep.replay, spool_dir(b->spool));
        }

        r = -pthread_create(&b->thread, NULL, worker_main, b);
        if (r < 0) {
                backend_free(b);
                return r;
        }
        b->thread_started = true;

        /* wait for init */
        if (init_timeout <= 0)
                init_timeout = BACKEND_INIT_TIMEOUT;
        usec_t until = now_monotonic() + init_timeout;
        pthread_mutex_lock(&b->info_lock);
        while (atomic_load(&b->state) == BACKEND_INITIALIZING && now_monotonic() < until) {
                struct timespec ts = { .tv_sec = (time_t) (until / USEC_PER_SEC), .tv_nsec = (long) (until % USEC_PER_SEC) * 1000 };
                pthread_cond_timedwait(&b->info_cond, &b->info_lock, &ts);
        }
        if (atomic_load(&b->state) == BACKEND_INITIALIZING) {
                char d[DURATION_MAX];
                format_duration(d, sizeof d, init_timeout);
                snprintf(b->init_error, sizeof b->init_error, "init did not return within %s", d);
        }
        pthread_mutex_unlock(&b->info_lock);

        if (atomic_load(&b->state) == BACKEND_FAILED)
                pthread_join(b->thread, NULL), b->thread_started = false;
        *ret = b;
        return 0;
}

backend *backend_ref(backend *b) {
        b->refs++;
        return b;
}

backend *backend_unref(backend *b) {
        if (!b || --b->refs > 0)
                return NULL;
        if (b->thread_started) {
                backend_state s = atomic_load(&b->state);
                if (s == BACKEND_INITIALIZING) {
                        /* a hung init: we cannot free what the thread uses,
                         * nor unload the code it runs */
                        plugin_pin(b->plugin);
                        log_error("backend %s: init never returned; abandoning its thread (the plugin stays loaded)", b->name);
                        return NULL;
                }
                backend_stop(b, now_monotonic());
                pthread_join(b->thread, NULL);
                b->thread_started = false;
        }
        backend_free(b);
        return NULL;
}

int backend_submit(backend *b, spw_msg *m) {
        void *evicted = NULL;
        int r;

        if (atomic_load(&b->state) != BACKEND_RUNNING || b->retiring)
                return -ESHUTDOWN;
        atomic_fetch_add(&b->stats.received, 1);
        if (b->spool) {
                /* the spool is the queue: full means its bytes on disk */
                r = spool_append(b->spool, m);
                if (r >= 0)
                        return 0;
                if (r == -ENOSPC && b->cfg->q.policy == ON_FULL_BLOCK) {
                        atomic_fetch_sub(&b->stats.received, 1);
                        return -EAGAIN;
                }
                atomic_fetch_add(&b->stats.dropped, 1);
                const char *why = r == -ENOSPC ? "refused: the spool is full (spool_max_size)" : "refused: out of memory";
                msg_settle_spool(m, b->name, false, why);
                msg_settle(m, b->name, false, why);
                return 2;
        }
        switch (b->cfg->q.policy) {
        case ON_FULL_BLOCK:
                r = queue_push_urgent(&b->queue, msg_ref(m), m->ack == ACK_FLUSHED);
                if (r < 0) {
                        atomic_fetch_sub(&b->stats.received, 1);
                        msg_unref(m);
                }
                return r;
        case ON_FULL_DROP_NEWEST:
                r = queue_push_urgent(&b->queue, msg_ref(m), m->ack == ACK_FLUSHED);
                if (r < 0) {
                        msg_unref(m);
                        atomic_fetch_add(&b->stats.dropped, 1);
                        msg_settle(m, b->name, false, "dropped: queue full (on_full: drop_newest)");
                        return 2;
                }
                return 0;
        case ON_FULL_DROP_OLDEST:
                queue_push_evict(&b->queue, msg_ref(m), &evicted);
                if (evicted) {
                        atomic_fetch_add(&b->stats.dropped, 1);
                        msg_settle(evicted, b->name, false, "dropped: queue full (on_full: drop_oldest)");
                        msg_unref(evicted);
                        return 1;
                }
                return 0;
        }
        return -EINVAL;
}

void backend_post_job(backend *b, admin_job *j) {
        j->next = NULL;
        pthread_mutex_lock(&b->jobs_lock);
        if (b->jobs_tail)
                b->jobs_tail->next = j;
        else
                b->jobs_head = j;
        b->jobs_tail = j;
        pthread_mutex_unlock(&b->jobs_lock);
        queue_kick(&b->queue);
        if (b->spool)
                spool_kick(b->spool);
        if (atomic_load(&b->predecessors) > 0) {
                /* the worker may wait for a hand-over: jobs do not */
                pthread_mutex_lock(&b->info_lock);
                b->held_wake = true;
                pthread_cond_broadcast(&b->info_cond);
                pthread_mutex_unlock(&b->info_lock);
        }
}

void backend_stop(backend *b, usec_t deadline) {
        pthread_mutex_lock(&b->info_lock);
        if (!b->stop_requested || deadline < b->drain_deadline)
                b->drain_deadline = deadline;
        b->stop_requested = true;
        if (atomic_load(&b->state) == BACKEND_RUNNING)
                atomic_store(&b->state, BACKEND_STOPPING);
        pthread_cond_broadcast(&b->info_cond);
        pthread_mutex_unlock(&b->info_lock);
        queue_kick(&b->queue);
        if (b->spool)
                spool_kick(b->spool);
}

void backend_join(backend *b) {
        if (b->thread_started && atomic_load(&b->state) == BACKEND_STOPPED) {
                pthread_join(b->thread, NULL);
                b->thread_started = false;
        }
}

bool backend_is_stuck(backend *b, usec_t now, usec_t *busy_for) {
        usec_t since = atomic_load(&b->busy_since);
        if (busy_for)
                *busy_for = since ? now - since : 0;
        return since != 0 && now - since > b->stuck_timeout;
}

backend_state backend_get_state(backend *b) {
        return atomic_load(&b->state);
}

bool backend_can(const backend *b, const char *op) {
        if (streq(op, "read_at"))
                return b->plugin->ops.read_at != NULL;
        if (streq(op, "delete_target"))
                return b->plugin->ops.delete_target != NULL;
        if (streq(op, "delete_all"))
                return b->plugin->ops.delete_all != NULL;
        if (streq(op, "read_changes"))
                return b->plugin->ops.read_changes != NULL;
        return false;
}

void backend_last_error(backend *b, char *buf, size_t size, usec_t *at) {
        pthread_mutex_lock(&b->info_lock);
        snprintf(buf, size, "%s", b->init_error[0] ? b->init_error : b->last_error);
        if (at)
                *at = b->last_error_at;
        pthread_mutex_unlock(&b->info_lock);
}

json_t *backend_status_json(backend *b) {
        json_t *o = json_object();
        if (!o)
                return NULL;
        pthread_mutex_lock(&b->info_lock);
        for (size_t i = 0; i < b->n_status; i++)
                json_object_set_new(o, b->status[i].key, json_string(b->status[i].value));
        pthread_mutex_unlock(&b->info_lock);
        return o;
}

const char *backend_name(const backend *b) {
        return b->name;
}

const backend_config *backend_cfg(const backend *b) {
        return b->cfg;
}

const spw_plugin *backend_plugin(const backend *b) {
        return b->plugin;
}

usec_t backend_stuck_timeout(const backend *b) {
        return b->stuck_timeout;
}

bool backend_busy(backend *b) {
        return atomic_load(&b->busy_since) != 0;
}

void backend_get_counters(backend *b, backend_counters *ret) {
        *ret = (backend_counters) {
                .received = atomic_load(&b->stats.received),
                .inserted = atomic_load(&b->stats.inserted),
                .flushed = atomic_load(&b->stats.flushed),
                .failed = atomic_load(&b->stats.failed),
                .retried = atomic_load(&b->stats.retried),
                .dropped = atomic_load(&b->stats.dropped),
                .flushes = atomic_load(&b->stats.flushes),
                .undelivered = atomic_load(&b->stats.undelivered),
                .handed_over = atomic_load(&b->stats.handed_over),
                .inherited = atomic_load(&b->stats.inherited),
        };
}

size_t backend_queue_depth(backend *b) {
        if (b->spool) {
                spool_stats st;
                spool_get_stats(b->spool, &st);
                return (size_t) st.pending;
        }
        return queue_count(&b->queue) + atomic_load(&b->n_inherit_waiting);
}

bool backend_spool_stats(backend *b, spool_stats *ret) {
        if (!b->spool)
                return false;
        spool_get_stats(b->spool, ret);
        return true;
}

spool *backend_spool(backend *b) {
        return b->spool;
}

bool backend_is_durable(const backend *b) {
        return b->spool != NULL;
}

size_t backend_queue_capacity(const backend *b) {
        return b->queue.capacity;
}

size_t backend_queue_high_water(backend *b) {
        return queue_high_water(&b->queue, false);
}

bool backend_queue_room_or_arm(backend *b) {
        if (b->spool)
                return spool_room_or_arm(b->spool, NULL);
        return queue_room_or_arm(&b->queue);
}

void backend_wake(backend *b) {
        queue_wake(&b->queue);
}

void backend_retire(backend *b, usec_t deadline) {
        b->retiring = true;
        backend_stop(b, deadline);
}

void backend_hand_over(backend *b, backend *successor, usec_t deadline) {
        if (!successor || backend_get_state(successor) != BACKEND_RUNNING) {
                backend_retire(b, deadline);
                return;
        }
        if (b->spool) {
                /* the new instance reads the shared spool already (spool.h);
                 * only the "flushed" producers of what we leave uncommitted
                 * are handed over, to be answered by its commit */
                pthread_mutex_lock(&b->info_lock);
                b->successor = backend_ref(successor);
                pthread_mutex_unlock(&b->info_lock);
                backend_retire(b, deadline);
                return;
        }
        /* first the successor holds its queue, then we stop: the main thread
         * submits to the successor only after this returns */
        pthread_mutex_lock(&successor->info_lock);
        atomic_fetch_add(&successor->predecessors, 1);
        if (successor->hold_until < deadline)
                successor->hold_until = deadline;
        pthread_mutex_unlock(&successor->info_lock);
        pthread_mutex_lock(&b->info_lock);
        b->successor = backend_ref(successor);
        pthread_mutex_unlock(&b->info_lock);
        backend_retire(b, deadline);
}

bool backend_is_retiring(const backend *b) {
        return b->retiring;
}

bool backend_drop_warning_allowed(backend *b, uint64_t *suppressed) {
        return ratelimit_below(&b->drop_rl, suppressed);
}
