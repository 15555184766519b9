/* SPDX-License-Identifier: MIT */
/*
 * What the daemon says about itself: the `status` reply, the one-line
 * STATUS= for systemd, Prometheus metrics, and the watchdog's health check.
 * Counters are read from atomics; texts under each backend's info lock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "build-config.h"
#include "daemon.h"
#include "reload.h"
#include "status.h"
#include "http.h"
#include "strbuf.h"

static json_t *backend_json(const char *name, backend *b, const char *failure, usec_t now_mono) {
        json_t *o;
        char err[512], at[RFC3339_MAX];
        usec_t err_at = 0, busy = 0;
        backend_counters n;

        if (!b)
                return json_pack("{s:s, s:s, s:s}", "name", name, "state", "failed", "error",
                                 failure ? failure : "initialisation failed");
        backend_last_error(b, err, sizeof err, &err_at);
        backend_is_stuck(b, now_mono, &busy);
        backend_get_counters(b, &n);
        o = json_pack("{s:s, s:s, s:s, s:{s:I, s:I, s:I, s:s}, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                      "name", backend_name(b), "plugin", backend_plugin(b)->ops.name,
                      "state", backend_state_to_string(backend_get_state(b)),
                      "queue", "depth", (json_int_t) backend_queue_depth(b), "capacity", (json_int_t) backend_queue_capacity(b),
                      "high_water", (json_int_t) backend_queue_high_water(b), "on_full", on_full_to_string(backend_cfg(b)->q.policy),
                      "received", (json_int_t) n.received,
                      "inserted", (json_int_t) n.inserted,
                      "flushed", (json_int_t) n.flushed,
                      "failed", (json_int_t) n.failed,
                      "retried", (json_int_t) n.retried,
                      "dropped", (json_int_t) n.dropped,
                      "flushes", (json_int_t) n.flushes,
                      "undelivered", (json_int_t) n.undelivered,
                      "busy_ms", (json_int_t) (busy / USEC_PER_MSEC));
        if (!o)
                return NULL;
        /* a reload's hand-over (backend.h): not in received, flushed or failed twice */
        json_object_set_new(o, "handed_over", json_integer((json_int_t) n.handed_over));
        json_object_set_new(o, "inherited", json_integer((json_int_t) n.inherited));
        if (err[0]) {
                json_object_set_new(o, "last_error", json_string(err));
                if (err_at)
                        json_object_set_new(o, "last_error_at", json_string(format_rfc3339(at, sizeof at, err_at)));
        }
        json_object_set_new(o, "plugin_status", backend_status_json(b));
        spool_stats sp;
        if (backend_spool_stats(b, &sp))
                json_object_set_new(o, "spool",
                                    json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "durability", "disk", "sync",
                                              spool_sync_to_string(backend_cfg(b)->q.spool_sync), "pending", (json_int_t) sp.pending,
                                              "bytes", (json_int_t) sp.bytes, "peak_bytes", (json_int_t) sp.peak_bytes,
                                              "max_bytes", (json_int_t) backend_cfg(b)->q.spool_max_size,
                                              "dead_letters", (json_int_t) sp.dead_letters, "write_errors",
                                              (json_int_t) sp.write_errors));
        return o;
}

json_t *status_json(daemon_t *d) {
        engine *e = d->engine;
        usec_t now = now_monotonic();
        char started[RFC3339_MAX];
        json_t *backends = json_array(), *o;

        for (size_t i = 0; i < engine_n_backends(e); i++)
                json_array_append_new(backends, backend_json(engine_backend_name(e, i), engine_backend(e, i),
                                                             engine_backend_error(e, i), now));
        for (size_t i = 0; i < engine_n_retiring(e); i++) {
                backend *b = engine_retiring(e, i);
                json_t *bj = backend_json(backend_name(b), b, NULL, now);
                json_object_set_new(bj, "retiring", json_true());
                json_array_append_new(backends, bj);
        }
        o = json_pack("{s:b, s:s, s:i, s:s, s:I, s:s, s:{s:I, s:I, s:I, s:I, s:I, s:I}, s:I, s:I, s:I, s:o, s:s, s:I}",
                      "ok", 1, "version", SPW_VERSION, "pid", (int) getpid(), "started", format_rfc3339(started, sizeof started, d->started_at),
                      "uptime_s", (json_int_t) ((now_realtime() - d->started_at) / USEC_PER_SEC),
                      "state", d->stopping ? "stopping" : "running",
                      "signals", "accepted", (json_int_t) d->stats.accepted, "rejected", (json_int_t) d->stats.rejected,
                      "flushed_acks", (json_int_t) d->stats.flushed_acks, "failed_acks", (json_int_t) d->stats.failed_acks,
                      "blocked_timeouts", (json_int_t) d->stats.blocked_timeouts, "oversized_lines", (json_int_t) d->stats.oversized,
                      "connections", (json_int_t) d->n_conns, "parked", (json_int_t) park_count(d->park), "reloads", (json_int_t) d->reloads,
                      "backends", backends, "config", d->opt.config_path, "watchdog_usec", (json_int_t) d->watchdog_usec);
        if (o)
                json_object_set_new(o, "ban_history", engine_bansync_json(e));
        if (o && d->reload_error[0])
                json_object_set_new(o, "reload_error", json_string(d->reload_error));
        if (o && daemon_reloading(d))
                json_object_set_new(o, "reloading", json_true());
        if (o && d->watchdog_withheld)
                json_object_set_new(o, "watchdog_withheld", json_true());
        return o;
}

char *status_line(daemon_t *d) {
        engine *e = d->engine;
        size_t up = 0, failed = 0;
        unsigned long long dropped = 0, failed_signals = 0;
        unsigned fill = 0;
        char *s = NULL;

        for (size_t i = 0; i < engine_n_backends(e); i++) {
                backend *b = engine_backend(e, i);
                backend_counters n;
                if (!b) {
                        failed++;
                        continue;
                }
                backend_get_counters(b, &n);
                up += backend_get_state(b) == BACKEND_RUNNING;
                dropped += n.dropped;
                failed_signals += n.failed;
                unsigned pct = (unsigned) (backend_queue_depth(b) * 100 / backend_queue_capacity(b));
                if (pct > fill)
                        fill = pct;
        }
        if (asprintf(&s, "%s%zu/%zu backends up%s%s; %llu signals; queue max %u%%; %llu dropped; %llu failed%s%s",
                     d->stopping ? "stopping; " : "", up, engine_n_backends(e), failed ? ", " : "", failed ? "some failed" : "",
                     (unsigned long long) d->stats.accepted, fill, dropped, failed_signals,
                     d->reload_error[0] ? "; last reload failed: " : "", d->reload_error[0] ? d->reload_error : "") < 0)
                return NULL;
        if (strlen(s) > 200)
                s[200] = 0;
        return s;
}

static void metric(strbuf *m, const char *name, const char *type, const char *help) {
        strbuf_printf(m, "# HELP spillway_%s %s\n# TYPE spillway_%s %s\n", name, help, name, type);
}

char *metrics_text(daemon_t *d) {
        engine *e = d->engine;
        strbuf m = STRBUF_INIT;

        metric(&m, "signals_accepted_total", "counter", "Signals acknowledged to producers.");
        strbuf_printf(&m, "spillway_signals_accepted_total %llu\n", (unsigned long long) d->stats.accepted);
        metric(&m, "signals_rejected_total", "counter", "Malformed or invalid input lines.");
        strbuf_printf(&m, "spillway_signals_rejected_total %llu\n", (unsigned long long) d->stats.rejected);
        metric(&m, "connections", "gauge", "Open client connections.");
        strbuf_printf(&m, "spillway_connections %u\n", d->n_conns);
        http_metrics(d, &m);
        metric(&m, "reloads_total", "counter", "Successful configuration reloads.");
        strbuf_printf(&m, "spillway_reloads_total %llu\n", (unsigned long long) d->reloads);

        static const struct {
                const char *name, *help;
                size_t offset;
        } counters[] = {
                { "backend_received_total", "Signals queued for the backend.", offsetof(backend_counters, received) },
                { "backend_inserted_total", "Successful inserts.", offsetof(backend_counters, inserted) },
                { "backend_flushed_total", "Signals made durable by a flush.", offsetof(backend_counters, flushed) },
                { "backend_failed_total", "Signals the backend did not take.", offsetof(backend_counters, failed) },
                { "backend_retried_total", "Retry attempts.", offsetof(backend_counters, retried) },
                { "backend_dropped_total", "Signals dropped because the queue was full.", offsetof(backend_counters, dropped) },
                { "backend_flushes_total", "Successful flushes.", offsetof(backend_counters, flushes) },
        };
        for (size_t k = 0; k < ELEMENTSOF(counters); k++) {
                metric(&m, counters[k].name, "counter", counters[k].help);
                for (size_t i = 0; i < engine_n_backends(e); i++) {
                        backend *b = engine_backend(e, i);
                        backend_counters n;
                        if (!b)
                                continue;
                        backend_get_counters(b, &n);
                        strbuf_printf(&m, "spillway_%s{backend=\"%s\"} %llu\n", counters[k].name, backend_name(b),
                                      (unsigned long long) *(const uint64_t *) ((const char *) &n + counters[k].offset));
                }
        }
        metric(&m, "backend_queue_depth", "gauge", "Signals waiting in the backend's queue.");
        for (size_t i = 0; i < engine_n_backends(e); i++)
                if (engine_backend(e, i))
                        strbuf_printf(&m, "spillway_backend_queue_depth{backend=\"%s\"} %zu\n", engine_backend_name(e, i),
                                      backend_queue_depth(engine_backend(e, i)));
        metric(&m, "backend_queue_capacity", "gauge", "Size of the backend's queue.");
        for (size_t i = 0; i < engine_n_backends(e); i++)
                if (engine_backend(e, i))
                        strbuf_printf(&m, "spillway_backend_queue_capacity{backend=\"%s\"} %zu\n", engine_backend_name(e, i),
                                      backend_queue_capacity(engine_backend(e, i)));
        engine_bansync_metrics(e, &m);
        metric(&m, "backend_up", "gauge", "1 if the backend is running.");
        for (size_t i = 0; i < engine_n_backends(e); i++)
                strbuf_printf(&m, "spillway_backend_up{backend=\"%s\"} %d\n", engine_backend_name(e, i),
                              engine_backend(e, i) && backend_get_state(engine_backend(e, i)) == BACKEND_RUNNING);
        if (m.oom) {
                strbuf_deinit(&m);
                return NULL;
        }
        return strbuf_steal(&m);
}

bool daemon_workers_healthy(daemon_t *d, char *why, size_t size) {
        engine *e = d->engine;
        usec_t now = now_monotonic(), busy;
        for (size_t i = 0; i < engine_n_backends(e); i++) {
                backend *b = engine_backend(e, i);
                if (b && backend_is_stuck(b, now, &busy)) {
                        snprintf(why, size, "backend %s has been inside one plugin call for %lld s (stuck_timeout %lld s)",
                                 backend_name(b), (long long) (busy / USEC_PER_SEC),
                                 (long long) (backend_stuck_timeout(b) / USEC_PER_SEC));
                        return false;
                }
        }
        return true;
}
