/* SPDX-License-Identifier: MIT */
/*
 * The daemon's life cycle on the sd-event loop: start (configuration,
 * backends, sockets, READY=1), reload on SIGHUP (RELOADING=1 ... READY=1),
 * stop on SIGTERM/SIGINT (STOPPING=1, drain, exit), STATUS= kept current,
 * and WATCHDOG=1 only while every worker makes progress.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "build-config.h"
#include "conn.h"
#include "daemon.h"
#include "http.h"
#include "ingest.h"
#include "listener.h"
#include "log.h"
#include "msgid.h"
#include "reload.h"
#include "status.h"

void daemon_flush_replies(daemon_t *d) {
        conn_flush_dirty(d);
        http_flush_dirty(d);
}

/* Results from the workers and the reload thread. */
static void process_hub(daemon_t *d) {
        hub *h = engine_hub(d->engine);

        hub_dispatch(h); /* replies to flushed acks, admin jobs, a prepared reload */
        if (hub_take_space(h)) {
                ingest_retry_parked(d);
                engine_wake(d->engine);
        }
        if (hub_take_backend_event(h))
                engine_reap(d->engine);
        daemon_flush_replies(d);
}

void daemon_update_status(daemon_t *d, bool force) {
        _cleanup_free_ char *line = status_line(d);
        if (!line)
                return;
        if (!force && streq(line, d->last_status))
                return;
        snprintf(d->last_status, sizeof d->last_status, "%s", line);
        sd_notifyf(0, "STATUS=%s", line);
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        daemon_t *d = userdata;
        daemon_reload(d, NULL, NULL);
        return 0;
}

static void report_undelivered(daemon_t *d) {
        engine *e = d->engine;
        unsigned long long total = 0;
        for (size_t i = 0; i < engine_n_backends(e); i++) {
                backend *b = engine_backend(e, i);
                backend_counters c;
                if (!b)
                        continue;
                backend_get_counters(b, &c);
                unsigned long long und = c.undelivered + backend_queue_depth(b);
                total += und;
                if (und) {
                        char n[32];
                        snprintf(n, sizeof n, "%llu", und);
                        log_struct(LOG_WARNING,
                                   LOG_FIELDS({ "MESSAGE_ID", SPW_MESSAGE_UNDELIVERED }, { "SPILLWAY_BACKEND", backend_name(b) },
                                              { "SPILLWAY_UNDELIVERED", n }),
                                   backend_is_durable(b)
                                           ? "backend %s: %llu signals not delivered yet; kept in its spool for the next start"
                                           : "backend %s: %llu signals could not be delivered before the drain timeout; they are lost",
                                   backend_name(b), und);
                }
        }
        char n[32];
        snprintf(n, sizeof n, "%llu", total);
        log_struct(LOG_INFO, LOG_FIELDS({ "MESSAGE_ID", SPW_MESSAGE_STOPPED }, { "SPILLWAY_UNDELIVERED", n }),
                   "stopped: %llu signals accepted, %llu undelivered", (unsigned long long) d->stats.accepted, total);
}

static int on_stop_poll(sd_event_source *s, uint64_t usec, void *userdata);

void daemon_begin_stop(daemon_t *d, const char *why) {
        if (d->stopping)
                return;
        d->stopping = true;
        sd_notify(0, "STOPPING=1");
        log_info("stopping (%s): draining the queues for up to %lld ms", why,
                 (long long) (engine_config(d->engine)->drain_timeout / USEC_PER_MSEC));
        listener_close_all(d);
        http_quiesce(d);
        ingest_expire_parked(d);
        daemon_flush_replies(d);
        conn_pause_all(d);
        engine_stop(d->engine, now_monotonic() + engine_config(d->engine)->drain_timeout);
        daemon_update_status(d, true);
        sd_event_add_time_relative(d->event, NULL, CLOCK_MONOTONIC, 20 * USEC_PER_MSEC, 0, on_stop_poll, d);
}

static int on_stop_poll(sd_event_source *s, uint64_t usec, void *userdata) {
        daemon_t *d = userdata;
        process_hub(d);
        if (engine_all_stopped(d->engine) && !daemon_reloading(d)) {
                process_hub(d); /* replies to the last flushed acks */
                report_undelivered(d);
                sd_event_exit(d->event, d->exit_code);
                return 0;
        }
        sd_event_source_set_time_relative(s, 20 * USEC_PER_MSEC);
        sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

static int on_sigterm(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        daemon_begin_stop(userdata, si->ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
        return 0;
}

static int on_hub(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        process_hub(userdata);
        return 0;
}

static int on_status_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        daemon_t *d = userdata;
        daemon_update_status(d, false);
        conn_expire_idle(d, now_monotonic());
        sd_event_source_set_time_relative(s, (uint64_t) engine_config(d->engine)->status_interval);
        sd_event_source_set_enabled(s, SD_EVENT_ON);
        return 0;
}

static int on_watchdog(sd_event_source *s, uint64_t usec, void *userdata) {
        daemon_t *d = userdata;
        char why[512];

        if (daemon_workers_healthy(d, why, sizeof why)) {
                sd_notify(0, "WATCHDOG=1");
                if (d->watchdog_withheld)
                        log_notice("every backend worker makes progress again: watchdog pings resumed");
                d->watchdog_withheld = false;
        } else if (!d->watchdog_withheld) {
                d->watchdog_withheld = true;
                log_struct(LOG_CRIT, LOG_FIELDS({ "MESSAGE_ID", SPW_MESSAGE_WATCHDOG_STUCK }),
                           "%s: withholding watchdog pings so systemd restarts the service", why);
                sd_notifyf(0, "STATUS=wedged: %s", why);
        }
        sd_event_source_set_time_relative(s, (uint64_t) d->watchdog_usec / 2);
        sd_event_source_set_enabled(s, SD_EVENT_ON);
        return 0;
}

static bool daemon_idle(daemon_t *d) {
        return d->n_conns == 0 && http_connections(d) == 0 && park_count(d->park) == 0 && d->n_waiting == 0 && !daemon_reloading(d) &&
               !engine_busy(d->engine);
}

static int on_idle_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        daemon_t *d = userdata;
        usec_t limit = engine_config(d->engine)->exit_on_idle;
        if (limit > 0 && !d->stopping) {
                if (!daemon_idle(d))
                        d->idle_since = 0;
                else if (!d->idle_since)
                        d->idle_since = now_monotonic();
                else if (now_monotonic() - d->idle_since >= limit) {
                        /* stop listening first: connections that arrive now wait in
                         * the socket's backlog for the next activation */
                        daemon_begin_stop(d, "idle");
                        return 0;
                }
        }
        /* messages the workers gave back and no signal took since */
        msg_pool_trim(&d->msgs, MSG_POOL_KEEP);
        sd_event_source_set_time_relative(s, 500 * USEC_PER_MSEC);
        sd_event_source_set_enabled(s, SD_EVENT_ON);
        return 0;
}

/* Undo a start that failed once ingest was set up (each step accepts what
 * was never made). */
static int start_failed(daemon_t *d) {
        d->hub_source = sd_event_source_disable_unref(d->hub_source);
        d->status_timer = sd_event_source_disable_unref(d->status_timer);
        d->idle_timer = sd_event_source_disable_unref(d->idle_timer);
        d->watchdog_timer = sd_event_source_disable_unref(d->watchdog_timer);
        http_free_all(d);
        listener_close_all(d);
        ingest_done(d);
        engine_free(d->engine);
        msg_pool_deinit(&d->msgs);
        sd_event_unref(d->event);
        return EXIT_FAILURE;
}

int daemon_run(const daemon_options *opt) {
        daemon_t d = { .opt = *opt, .exit_code = 0 };
        spw_error err = { 0 };
        spw_config *c = NULL;
        sigset_t mask;
        uint64_t wd = 0;
        int r;

        d.started_at = now_realtime();
        /* No mallopt(): glibc's defaults return freed memory after a burst.
         * Keeping it instead (a trim threshold) is an operator's choice,
         * documented in README.md ("Performance"): GLIBC_TUNABLES=
         * glibc.malloc.trim_threshold=... in the unit's environment. */
        /* Block signals before any thread starts, so workers inherit the mask. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);

        r = config_load(opt->config_path, &opt->overrides, &c, &err);
        if (r < 0) {
                log_error("%s", err.msg);
                sd_notifyf(0, "STATUS=configuration error: %s", err.msg);
                return EXIT_FAILURE;
        }
        r = engine_new(c, &opt->engine, &d.engine, &err); /* takes c */
        if (r < 0) {
                log_error("%s", err.msg);
                sd_notifyf(0, "STATUS=failed to start: %s", err.msg);
                return EXIT_FAILURE;
        }
        r = sd_event_default(&d.event);
        if (r < 0) {
                log_error_errno(r, "cannot create the event loop: %m");
                engine_free(d.engine);
                return EXIT_FAILURE;
        }
        r = ingest_init(&d);
        if (r < 0) {
                log_error_errno(r, "cannot set up the wait for queue room: %m");
                engine_free(d.engine);
                sd_event_unref(d.event);
                return EXIT_FAILURE;
        }
        r = listener_open_all(&d, &err);
        if (r < 0) {
                log_error("%s", err.msg);
                sd_notifyf(0, "STATUS=failed to listen: %s", err.msg);
                return start_failed(&d);
        }
        r = http_start(&d, &err);
        if (r < 0) {
                log_error("%s", r == -ENOMEM ? "out of memory" : err.msg);
                sd_notifyf(0, "STATUS=failed to listen: %s", err.msg);
                return start_failed(&d);
        }
        /* without these the daemon would run deaf (no SIGTERM, no worker
         * results, no timeouts): a failure is a failed start */
        if ((r = sd_event_add_signal(d.event, NULL, SIGTERM, on_sigterm, &d)) < 0 ||
            (r = sd_event_add_signal(d.event, NULL, SIGINT, on_sigterm, &d)) < 0 ||
            (r = sd_event_add_signal(d.event, NULL, SIGHUP, on_sighup, &d)) < 0 ||
            (r = sd_event_add_io(d.event, &d.hub_source, hub_fd(engine_hub(d.engine)), EPOLLIN, on_hub, &d)) < 0 ||
            (r = sd_event_add_time_relative(d.event, &d.status_timer, CLOCK_MONOTONIC,
                                            (uint64_t) engine_config(d.engine)->status_interval, 50 * USEC_PER_MSEC,
                                            on_status_timer, &d)) < 0 ||
            (r = sd_event_add_time_relative(d.event, &d.idle_timer, CLOCK_MONOTONIC, 500 * USEC_PER_MSEC, 50 * USEC_PER_MSEC,
                                            on_idle_timer, &d)) < 0 ||
            (sd_watchdog_enabled(0, &wd) > 0 && wd > 0 &&
             (r = sd_event_add_time_relative(d.event, &d.watchdog_timer, CLOCK_MONOTONIC, wd / 2, 0, on_watchdog, &d)) < 0)) {
                log_error_errno(r, "cannot set up the event loop (signals, hub, timers): %m; not starting");
                sd_notifyf(0, "STATUS=failed to set up the event loop: %s", strerror(-r));
                return start_failed(&d);
        }
        if (d.watchdog_timer)
                d.watchdog_usec = (usec_t) wd;
        d.idle_since = now_monotonic();

        {
                char n[16];
                snprintf(n, sizeof n, "%zu", engine_n_backends(d.engine));
                log_struct(LOG_INFO, LOG_FIELDS({ "MESSAGE_ID", SPW_MESSAGE_STARTED }, { "SPILLWAY_BACKENDS", n }),
                           "spillwayd %s started: %s backends, ingest %s, admin %s%s", SPW_VERSION, n,
                           d.listeners[0].path ? d.listeners[0].path : "(socket activation)",
                           d.n_listeners > 1 && d.listeners[1].path ? d.listeners[1].path : d.n_listeners > 1 ? "(socket activation)" : "(none)",
                           engine_router(d.engine) ? "" : " (no profiles file: every signal goes to every backend)");
        }
        sd_notify(0, "READY=1");
        daemon_update_status(&d, true);

        r = sd_event_loop(d.event);
        if (r < 0)
                log_error_errno(r, "event loop failed: %m");

        listener_close_all(&d);
        conn_free_all(&d);
        http_free_all(&d);
        ingest_done(&d);
        engine_free(d.engine); /* already stopped: joins the workers */
        msg_pool_deinit(&d.msgs); /* after every holder of a message */
        sd_event_source_disable_unref(d.hub_source);
        sd_event_source_disable_unref(d.status_timer);
        sd_event_source_disable_unref(d.idle_timer);
        sd_event_source_disable_unref(d.watchdog_timer);
        sd_event_unref(d.event);
        plugin_unload_all();
        return r < 0 ? EXIT_FAILURE : d.exit_code;
}
