/* SPDX-License-Identifier: MIT */
/*
 * Ban sync (bansync.h has the design): one thread that reads the ban
 * database's change log through the ban backend's worker and replays it on
 * the enforcement backends' workers and into the ban-history index.
 *
 * Locking: `lock` guards the wake-up flags, the job hand-back (`done` of
 * each job the thread waits for) and the stats. Changes are copied into
 * `pending` by the source's worker while this thread sleeps on the job: the
 * job's completion (under `lock`) orders those writes before the reads.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "bansync.h"
#include "log.h"
#include "message.h"
#include "sigmodel.h"

typedef struct change {
        int kind;
        usec_t at, until;
        char *target, *action, *source, *reason;
} change;

struct bansync {
        backend *source;
        backend **subs;
        size_t n_subs;
        banhist *hist;
        bool load_history;
        usec_t interval;

        pthread_t thread;
        bool started;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool stop, kick;
        bool first_done;
        int first_r;
        unsigned jobs_out;      /* jobs posted and not yet finished */
        bool freed;             /* bansync_free ran: the last job back frees */
        int jobs_r;             /* first failure among them */
        char jobs_error[512];

        uint64_t cursor;
        bool synced_once;       /* a walk was delivered (bansync thread only) */
        size_t last_walk_changes; /* changes the last walk read (bansync thread only) */
        bool more;              /* the last walk stopped at BANSYNC_PAGE (bansync thread only) */
        change *pending;        /* filled by the source's worker */
        size_t n_pending, cap_pending;
        bool pending_oom;
        bool page_full;         /* collect stopped at BANSYNC_PAGE */
        size_t n_seen;          /* changes collect took in this walk */
        bool seen_resync;       /* ... the first of them flagged RESYNC */

        bansync_stats stats;
};

static void change_clear(change *c) {
        free(c->target);
        free(c->action);
        free(c->source);
        free(c->reason);
}

static void pending_clear(bansync *s) {
        for (size_t i = 0; i < s->n_pending; i++)
                change_clear(&s->pending[i]);
        s->n_pending = 0;
        if (s->cap_pending > 2 * BANSYNC_PAGE) { /* after a resync's whole set */
                free(s->pending);
                s->pending = NULL;
                s->cap_pending = 0;
        }
        s->pending_oom = false;
        s->page_full = false;
        s->n_seen = 0;
        s->seen_resync = false;
}

/* On the source's worker: copy one change. */
static int collect(const spw_ban_change *ch, void *userdata) {
        bansync *s = userdata;
        const spw_ban_row *row = ch->row;

        /* a full page: stop here; the walk's cursor is the last change
         * taken, so the next walk starts with this one */
        if (!(ch->flags & SPW_CHANGE_RESYNC) && s->n_seen >= BANSYNC_PAGE) {
                s->page_full = true;
                return 1;
        }
        if (s->n_seen++ == 0)
                s->seen_resync = ch->flags & SPW_CHANGE_RESYNC;
        /* no subscriber: the ban history is the only reader, and takes the
         * change here (it has its own lock) instead of a copy of every
         * change waiting for the walk's end (a walk from nothing copies the
         * whole active set: 100,000 bans were ~19 MiB of the worker's heap) */
        if (s->n_subs == 0) {
                if (s->hist && ch->kind == SPW_CHANGE_ADD && row && row->iptext && row->until > 0)
                        (void) banhist_record(s->hist, row->iptext, ch->at, row->until);
                return 0;
        }
        if (s->n_pending == s->cap_pending) {
                size_t n = s->cap_pending ? s->cap_pending * 2 : 64;
                change *p = realloc(s->pending, n * sizeof *p);
                if (!p) {
                        s->pending_oom = true;
                        return -ENOMEM;
                }
                s->pending = p;
                s->cap_pending = n;
        }
        change *c = &s->pending[s->n_pending];
        *c = (change) {
                .kind = ch->kind,
                .at = ch->at,
                .until = row ? row->until : 0,
                .target = row && row->iptext ? strdup(row->iptext) : NULL,
                .action = row && row->action ? strdup(row->action) : NULL,
                .source = row && row->source ? strdup(row->source) : NULL,
                .reason = row && row->reason ? strdup(row->reason) : NULL,
        };
        if (!c->target || (row->action && !c->action) || (row->source && !c->source) ||
            (row->reason && !c->reason)) {
                change_clear(c);
                s->pending_oom = true;
                return -ENOMEM;
        }
        s->n_pending++;
        return 0;
}

static void destroy(bansync *s);

/* On a worker: a job of ours finished (or, r == -ECANCELED, was freed
 * unrun by a stopped backend). */
static void job_back(admin_job *j) {
        bansync *s = j->cookie;
        bool last;

        pthread_mutex_lock(&s->lock);
        if (j->r < 0 && s->jobs_r == 0) {
                s->jobs_r = j->r;
                snprintf(s->jobs_error, sizeof s->jobs_error, "%.500s", j->error[0] ? j->error : strerror(-j->r));
        }
        if (j->type == JOB_CHANGES)
                s->cursor = j->r >= 0 ? j->next_cursor : s->cursor;
        s->jobs_out--;
        last = s->freed && s->jobs_out == 0;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
        admin_job_free(j);
        if (last)
                destroy(s);
}

static admin_job *job_new(bansync *s, admin_job_type type) {
        admin_job *j = admin_job_new(type);
        if (!j)
                return NULL;
        j->cookie = s;
        j->worker_done = job_back;
        return j;
}

static void post(bansync *s, backend *b, admin_job *j) {
        pthread_mutex_lock(&s->lock);
        if (s->stop) { /* stopping: the workers may be gone soon */
                pthread_mutex_unlock(&s->lock);
                admin_job_free(j);
                return;
        }
        s->jobs_out++;
        pthread_mutex_unlock(&s->lock);
        backend_post_job(b, j);
        backend_wake(b);
}

/* Wait for every job posted; returns the first failure (and its text), or
 * -ECANCELED when bansync_free asked to stop first: the jobs still out
 * then own the struct (the last one back frees it) and may still be
 * writing pending[], which the thread must not touch any more. A stop
 * must not wait for them: a worker may be in a long retry that only the
 * stop that follows ends. */
static int wait_jobs(bansync *s, char *why, size_t size) {
        pthread_mutex_lock(&s->lock);
        while (s->jobs_out > 0 && !s->stop)
                pthread_cond_wait(&s->cond, &s->lock);
        if (s->stop) {
                pthread_mutex_unlock(&s->lock);
                return -ECANCELED;
        }
        int r = s->jobs_r;
        if (r < 0 && why)
                snprintf(why, size, "%.500s", s->jobs_error);
        s->jobs_r = 0;
        s->jobs_error[0] = 0;
        pthread_mutex_unlock(&s->lock);
        return r;
}

/* An ADD that a subscriber can enforce: an address or a CIDR, not ended. */
static bool enforceable(const change *c, usec_t now, bool *range) {
        ip_range r;
        if (c->kind != SPW_CHANGE_ADD || c->until <= now)
                return false;
        *range = strchr(c->target, '/') != NULL;
        return (*range ? ip_parse_cidr(c->target, false, &r) : ip_parse_addr(c->target, &r)) == 0;
}

/* One signal carrying the enforceable ADDs of pending[from, to). NULL with
 * *oom when memory ran out, NULL alone when there is nothing to send. */
static spw_msg *bans_msg(bansync *s, size_t from, size_t to, usec_t now, bool *oom) {
        size_t n = 0;
        bool range;

        *oom = false;
        for (size_t i = from; i < to; i++)
                n += enforceable(&s->pending[i], now, &range);
        if (n == 0)
                return NULL;
        spw_msg *m = msg_new();
        spw_ban *bans = m ? arena_alloc(&m->arena, n * sizeof *bans) : NULL;
        if (!bans) {
                msg_unref(m);
                *oom = true;
                return NULL;
        }
        size_t k = 0;
        for (size_t i = from; i < to; i++) {
                const change *c = &s->pending[i];
                spw_error err;
                if (!enforceable(c, now, &range))
                        continue;
                if (ban_from_target(c->target, range, c->until, c->action ? c->action : "ban",
                                    c->source ? c->source : "local", c->reason ? c->reason : "ban-sync", &m->arena,
                                    &bans[k], &err) < 0)
                        continue; /* not in canonical form: nothing a set can hold */
                k++;
        }
        m->sig.scenario = "spillway/ban-sync";
        m->sig.received_at = now;
        m->sig.start_at = m->sig.stop_at = now;
        m->sig.bans = bans;
        m->sig.n_bans = k;
        return m;
}

static void count_stats(bansync *s, uint64_t adds, uint64_t deletes, uint64_t resyncs) {
        pthread_mutex_lock(&s->lock);
        s->stats.adds += adds;
        s->stats.deletes += deletes;
        s->stats.resyncs += resyncs;
        pthread_mutex_unlock(&s->lock);
}

/* Replay pending[] on every subscriber; `resync`: pending[] is the whole
 * active set (possibly empty), replacing what the subscribers hold. */
static int deliver(bansync *s, bool resync, char *why, size_t size) {
        usec_t now = now_realtime();
        bool oom;
        size_t i = 0;

        if (s->n_subs == 0)
                return 0;
        if (resync) {
                /* the whole active set: one batch per subscriber */
                spw_msg *m = bans_msg(s, 0, s->n_pending, now, &oom);
                if (oom)
                        return -ENOMEM;
                count_stats(s, s->n_pending, 0, 1);
                for (size_t k = 0; k < s->n_subs; k++) {
                        admin_job *j = job_new(s, JOB_RESYNC);
                        if (!j) {
                                msg_unref(m);
                                wait_jobs(s, NULL, 0);
                                return -ENOMEM;
                        }
                        j->msg = m ? msg_ref(m) : NULL;
                        post(s, s->subs[k], j);
                }
                msg_unref(m);
                return wait_jobs(s, why, size);
        }
        while (i < s->n_pending) {
                size_t end = i;
                if (s->pending[i].kind == SPW_CHANGE_ADD) {
                        while (end < s->n_pending && s->pending[end].kind == SPW_CHANGE_ADD)
                                end++;
                        spw_msg *m = bans_msg(s, i, end, now, &oom);
                        if (oom) {
                                wait_jobs(s, NULL, 0);
                                return -ENOMEM;
                        }
                        count_stats(s, end - i, 0, 0);
                        for (size_t k = 0; m && k < s->n_subs; k++) {
                                admin_job *j = job_new(s, JOB_INSERT);
                                if (!j) {
                                        msg_unref(m);
                                        wait_jobs(s, NULL, 0);
                                        return -ENOMEM;
                                }
                                j->msg = msg_ref(m);
                                post(s, s->subs[k], j);
                        }
                        msg_unref(m);
                } else {
                        end = i + 1;
                        count_stats(s, 0, 1, 0);
                        for (size_t k = 0; k < s->n_subs; k++) {
                                admin_job *j = job_new(s, JOB_DELETE);
                                if (!j || !(j->target = strdup(s->pending[i].target))) {
                                        admin_job_free(j);
                                        wait_jobs(s, NULL, 0);
                                        return -ENOMEM;
                                }
                                post(s, s->subs[k], j);
                        }
                }
                i = end;
        }
        return wait_jobs(s, why, size);
}

static void record_history(bansync *s) {
        if (!s->hist)
                return;
        for (size_t i = 0; i < s->n_pending; i++) {
                const change *c = &s->pending[i];
                if (c->kind == SPW_CHANGE_ADD && c->until > 0)
                        (void) banhist_record(s->hist, c->target, c->at, c->until);
        }
}

/* At start: the ban history the source keeps, into the index. A source
 * without it (-EOPNOTSUPP) is fine: the index starts from the active bans
 * of the first walk. */
static int load_history(bansync *s, char *why, size_t size) {
        admin_job *j = job_new(s, JOB_HISTORY);
        if (!j)
                return -ENOMEM;
        j->at = 0;
        j->change_fn = collect;
        j->change_userdata = s;
        pending_clear(s);
        post(s, s->source, j);
        int r = wait_jobs(s, why, size);
        if (r == -ECANCELED)
                return r;
        if (r >= 0) {
                record_history(s);
                pthread_mutex_lock(&s->lock);
                s->stats.history_loaded = s->n_seen;
                pthread_mutex_unlock(&s->lock);
        }
        pending_clear(s);
        return r == -EOPNOTSUPP ? 0 : r;
}

/* One walk: read the changes, deliver them, move the cursor. */
static int walk(bansync *s, char *why, size_t size) {
        uint64_t from;
        int r;

        pthread_mutex_lock(&s->lock);
        from = s->cursor;
        pthread_mutex_unlock(&s->lock);

        admin_job *j = job_new(s, JOB_CHANGES);
        if (!j)
                return -ENOMEM;
        j->cursor = from;
        j->change_fn = collect;
        j->change_userdata = s;
        pending_clear(s);
        post(s, s->source, j);
        r = wait_jobs(s, why, size);
        if (r == -ECANCELED)
                return r;
        if (r < 0) {
                if (s->pending_oom)
                        snprintf(why, size, "out of memory copying the ban changes");
                pthread_mutex_lock(&s->lock);
                s->cursor = from;
                pthread_mutex_unlock(&s->lock);
                pending_clear(s);
                return r;
        }
        record_history(s);
        s->last_walk_changes = s->n_seen;
        s->more = s->page_full;
        /* a walk from nothing is the whole set: flagged by the backend, or
         * our first walk from cursor 0 (an empty ban database gives no
         * change to flag, and the subscribers' stale bans must go; later
         * walks from 0 while the change log is still empty are not
         * resyncs, or bans routed only to a subscriber would be wiped) */
        bool resync = s->seen_resync || (from == 0 && !s->synced_once);
        r = deliver(s, resync, why, size);
        if (r >= 0)
                s->synced_once = true;
        if (r < 0) {
                /* read these changes again next time (a RESYNC from 0 if
                 * this walk was one: the subscriber may hold half of it) */
                pthread_mutex_lock(&s->lock);
                s->cursor = resync ? 0 : from;
                pthread_mutex_unlock(&s->lock);
                if (r == -ENOMEM && !why[0])
                        snprintf(why, size, "out of memory");
        }
        pending_clear(s);
        return r;
}

/* Wait on cond (lock held) for at most `left`. */
static void wait_until(bansync *s, usec_t left) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += left / USEC_PER_SEC;
        ts.tv_nsec += (left % USEC_PER_SEC) * 1000;
        if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&s->cond, &s->lock, &ts);
}

static void *bansync_thread(void *userdata) {
        bansync *s = userdata;
        sigset_t all;
        char why[512];
        bool failing = false;

        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, NULL);
        if (s->hist && s->load_history) {
                why[0] = 0;
                int r = load_history(s, why, sizeof why);
                if (r == -ECANCELED)
                        return NULL;
                if (r < 0) {
                        pthread_mutex_lock(&s->lock);
                        s->stats.failures++;
                        snprintf(s->stats.last_error, sizeof s->stats.last_error, "%.500s",
                                 why[0] ? why : strerror(-r));
                        pthread_mutex_unlock(&s->lock);
                }
        }
        for (;;) {
                why[0] = 0;
                int r = walk(s, why, sizeof why);
                if (r == -ECANCELED)
                        return NULL; /* stopping: the jobs out own the struct */

                pthread_mutex_lock(&s->lock);
                s->stats.walks++;
                s->stats.cursor = s->cursor;
                if (r < 0) {
                        s->stats.failures++;
                        snprintf(s->stats.last_error, sizeof s->stats.last_error, "%s",
                                 why[0] ? why : strerror(-r));
                } else
                        s->stats.last_ok = now_realtime();
                if (!s->first_done) {
                        s->first_done = true;
                        s->first_r = r;
                        pthread_cond_broadcast(&s->cond);
                }
                /* bans but no change log yet (rows written outside
                 * Spillway, a database migrated from CrowdSec): every walk
                 * from 0 reads the whole active set again, so not every
                 * interval (a log appears with the first ban stored) */
                usec_t until = now_monotonic() +
                               (r >= 0 && s->more ? 0 /* the rest of a long change log, now */
                                : s->cursor == 0 && s->last_walk_changes > 0 ? MAX(s->interval, BANSYNC_NO_LOG_INTERVAL)
                                                                               : s->interval);
                while (!s->stop && !s->kick) {
                        usec_t now = now_monotonic();
                        if (now >= until)
                                break;
                        wait_until(s, until - now);
                }
                bool stop = s->stop;
                s->kick = false;
                pthread_mutex_unlock(&s->lock);
                /* the journal hears of a change of health, not of every walk */
                if (r < 0 && !failing)
                        log_struct(LOG_WARNING, LOG_FIELDS({ "SPILLWAY_BACKEND", backend_name(s->source) }),
                                   "ban sync from %s failed: %s; enforcement and the ban history keep what they "
                                   "have, retrying every %llums", backend_name(s->source), why[0] ? why : strerror(-r),
                                   (unsigned long long) (s->interval / USEC_PER_MSEC));
                else if (r >= 0 && failing)
                        log_struct(LOG_NOTICE, LOG_FIELDS({ "SPILLWAY_BACKEND", backend_name(s->source) }),
                                   "ban sync from %s works again", backend_name(s->source));
                failing = r < 0;
                if (stop)
                        return NULL;
        }
}

int bansync_new(backend *source, backend *const *subs, size_t n_subs, banhist *hist, const bansync_options *o,
                bansync **ret) {
        pthread_condattr_t ca;
        bansync *s;
        int r;

        if (!backend_can(source, "read_changes"))
                return -EOPNOTSUPP;
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->subs = calloc(n_subs ? n_subs : 1, sizeof *s->subs);
        if (!s->subs) {
                free(s);
                return -ENOMEM;
        }
        s->source = backend_ref(source);
        for (size_t i = 0; i < n_subs; i++)
                s->subs[s->n_subs++] = backend_ref(subs[i]);
        s->hist = hist;
        s->load_history = o && o->load_history;
        s->interval = o && o->interval > 0 ? o->interval : BANSYNC_DEFAULT_INTERVAL;
        pthread_mutex_init(&s->lock, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&s->cond, &ca);
        pthread_condattr_destroy(&ca);
        r = -pthread_create(&s->thread, NULL, bansync_thread, s);
        if (r < 0) {
                bansync_free(s);
                return r;
        }
        s->started = true;
        pthread_setname_np(s->thread, "spw-bansync");
        *ret = s;
        return 0;
}

static void destroy(bansync *s) {
        pending_clear(s);
        free(s->pending);
        free(s->subs);
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->lock);
        free(s);
}

bansync *bansync_free(bansync *s) {
        bool last;

        if (!s)
                return NULL;
        pthread_mutex_lock(&s->lock);
        s->stop = true;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
        if (s->started)
                pthread_join(s->thread, NULL);
        /* the backends stay alive for jobs still queued: the engine holds
         * them until their workers stopped, and a stopped backend hands
         * back what it did not run (job_back with -ECANCELED) */
        backend_unref(s->source);
        for (size_t i = 0; i < s->n_subs; i++)
                backend_unref(s->subs[i]);
        pthread_mutex_lock(&s->lock);
        s->freed = true;
        last = s->jobs_out == 0;
        pthread_mutex_unlock(&s->lock);
        if (last)
                destroy(s);
        return NULL;
}

int bansync_wait_first(bansync *s, usec_t timeout) {
        usec_t until = now_monotonic() + timeout;
        int r;

        pthread_mutex_lock(&s->lock);
        while (!s->first_done) {
                usec_t now = now_monotonic();
                if (now >= until)
                        break;
                wait_until(s, until - now);
        }
        r = s->first_done ? s->first_r : -ETIMEDOUT;
        pthread_mutex_unlock(&s->lock);
        return r;
}

void bansync_kick(bansync *s) {
        if (!s)
                return;
        pthread_mutex_lock(&s->lock);
        s->kick = true;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
}

void bansync_get_stats(bansync *s, bansync_stats *ret) {
        pthread_mutex_lock(&s->lock);
        *ret = s->stats;
        pthread_mutex_unlock(&s->lock);
}

const char *bansync_source_name(const bansync *s) {
        return backend_name(s->source);
}
