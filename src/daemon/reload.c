/* SPDX-License-Identifier: MIT */
/*
 * Reload without blocking the event loop.
 *
 * Starting a new backend waits for its init (up to 30 s). That wait happens
 * on a short-lived thread: it reads the configuration, loads plugins and
 * profiles and starts the new and changed backends (engine_next_prepare),
 * then posts the result to the hub. Meanwhile the loop keeps serving with
 * the old configuration and keeps pinging the watchdog. The main thread
 * then swaps atomically (engine_next_commit), re-routes the signals waiting
 * for queue room, says READY=1 and answers whoever asked.
 *
 * One reload at a time: a reload asked for while one is being prepared runs
 * right after it (with the files as they are then); its askers wait for
 * that one. A stop while a reload is being prepared waits for it and
 * discards it (its new backends are shut down).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "daemon.h"
#include "ingest.h"
#include "log.h"
#include "msgid.h"
#include "http.h"
#include "reload.h"

typedef struct reload_waiter {
        reload_done_fn fn;
        void *userdata;
        struct reload_waiter *next;
} reload_waiter;

struct reload_job {
        hub_item done;               /* posted by the thread when prepared */
        daemon_t *d;
        pthread_t thread;
        bool thread_started;
        engine_next *next;
        int r;
        spw_error err;
        reload_waiter *waiters;
};

static void answer(daemon_t *d, reload_waiter *w, int r, const char *error) {
        while (w) {
                reload_waiter *n = w->next;
                w->fn(d, r, error, w->userdata);
                free(w);
                w = n;
        }
}

static void *reload_thread(void *userdata) {
        reload_job *job = userdata;
        daemon_t *d = job->d;       /* only its immutable options are read here */
        spw_config *c = NULL;

        pthread_setname_np(pthread_self(), "spw-reload");
        job->r = config_load(d->opt.config_path, &d->opt.overrides, &c, &job->err);
        if (job->r >= 0)
                job->r = engine_next_prepare(job->next, c, &job->err); /* takes c */
        hub_post(engine_hub(d->engine), &job->done);
        return NULL;
}

static void finish(reload_job *job, bool discard);

static void reload_prepared(hub_item *it, bool discard) {
        finish((reload_job *) ((char *) it - offsetof(reload_job, done)), discard);
}

static void start(daemon_t *d) {
        reload_job *job = calloc(1, sizeof *job);
        int r;

        d->reload_again = false;
        sd_notifyf(0, "RELOADING=1\nSTATUS=reloading %s", d->opt.config_path);
        if (!job) {
                reload_waiter *w = TAKE_PTR(d->reload_waiters);
                log_error("reload failed, the previous configuration keeps running: out of memory");
                sd_notify(0, "READY=1");
                answer(d, w, -ENOMEM, "out of memory");
                return;
        }
        job->d = d;
        job->done.fn = reload_prepared;
        job->waiters = TAKE_PTR(d->reload_waiters);
        d->reload = job;
        r = engine_next_new(d->engine, &job->next);
        if (r >= 0)
                r = -pthread_create(&job->thread, NULL, reload_thread, job);
        job->thread_started = r >= 0;
        if (r < 0) {
                job->r = spw_error_set(&job->err, r, "cannot prepare the new configuration: %s", strerror(-r));
                finish(job, false);
        }
}

static void finish(reload_job *job, bool discard) {
        daemon_t *d = job->d;
        char n[16];
        int r = job->r;

        if (job->thread_started)
                pthread_join(job->thread, NULL);
        d->reload = NULL;
        if (discard) {
                /* the hub is torn down at exit: nothing to swap or answer */
                engine_next_free(job->next);
                for (reload_waiter *w = job->waiters; w;) {
                        reload_waiter *nw = w->next;
                        free(w);
                        w = nw;
                }
                free(job);
                return;
        }
        if (r >= 0 && d->stopping)
                r = spw_error_set(&job->err, -ECANCELED, "spillwayd is stopping");
        if (r >= 0) {
                r = engine_next_commit(d->engine, TAKE_PTR(job->next));
                if (r < 0)
                        spw_error_set(&job->err, r, "the running backends changed while the reload was prepared");
        }
        job->next = engine_next_free(job->next);

        if (r == -ECANCELED)
                log_info("reload discarded: spillwayd is stopping (the backends it started are shut down)");
        else if (r < 0) {
                snprintf(d->reload_error, sizeof d->reload_error, "%s", job->err.msg[0] ? job->err.msg : strerror(-r));
                log_struct(LOG_ERR, LOG_FIELDS({ "MESSAGE_ID", SPW_MESSAGE_RELOAD_FAILED }),
                           "reload failed, the previous configuration keeps running: %s", d->reload_error);
        } else {
                d->reload_error[0] = 0;
                d->reloads++;
                d->last_reload = now_realtime();
                ingest_reroute_parked(d);
                http_reload(d);
                daemon_flush_replies(d);
                snprintf(n, sizeof n, "%zu", engine_n_backends(d->engine));
                log_struct(LOG_INFO, LOG_FIELDS({ "MESSAGE_ID", SPW_MESSAGE_RELOADED }, { "SPILLWAY_BACKENDS", n }),
                           "configuration reloaded from %s: %s backends", d->opt.config_path, n);
        }
        if (!d->stopping) {
                sd_notify(0, "READY=1");
                daemon_update_status(d, true);
        }
        answer(d, job->waiters, r, r == -ECANCELED ? "spillwayd is stopping" : r < 0 ? d->reload_error : NULL);
        free(job);

        if (d->stopping)
                answer(d, TAKE_PTR(d->reload_waiters), -ECANCELED, "spillwayd is stopping");
        else if (d->reload_again)
                start(d);
}

void daemon_reload(daemon_t *d, reload_done_fn fn, void *userdata) {
        if (fn) {
                reload_waiter *w = calloc(1, sizeof *w), **p = &d->reload_waiters;
                if (!w) {
                        fn(d, -ENOMEM, "out of memory", userdata);
                        return;
                }
                *w = (reload_waiter) { fn, userdata, NULL };
                while (*p)
                        p = &(*p)->next;
                *p = w;
        }
        if (d->stopping) {
                answer(d, TAKE_PTR(d->reload_waiters), -ECANCELED, "spillwayd is stopping");
                return;
        }
        if (d->reload) {
                d->reload_again = true;
                return;
        }
        start(d);
}

bool daemon_reloading(daemon_t *d) {
        return d->reload != NULL;
}
