/* SPDX-License-Identifier: MIT */
/*
 * Engine: configuration -> running backends + router, and the fan-out step.
 *
 * Invariants
 *   - slots[i] corresponds to config->backends[i] and to bit i of the
 *     router's masks.
 *   - A backend pointer is only used by the main thread while it holds a
 *     reference (slots, retiring, fanouts of parked requests).
 *   - A message reaches a backend either entirely (queued) or not at all;
 *     engine_push checks every block-policy queue for room before pushing to
 *     any, and the main thread is the only producer, so room cannot vanish
 *     between the check and the push.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bansync.h"
#include "engine.h"
#include "ipaddr.h"
#include "strbuf.h"
#include "strutil.h"
#include "log.h"
#include "msgid.h"
#include "sigmodel.h"

typedef struct engine_slot {
        char *name;
        backend *b;                  /* NULL: init failed */
        char *error;                 /* why it failed */
} engine_slot;

struct engine {
        spw_config_ref *config;
        engine_slot *slots;
        size_t n_slots;
        backend **retiring;          /* removed by a reload, draining */
        size_t n_retiring;
        spw_router *router;          /* NULL: no profiles file, every signal to every backend */
        hub hub;
        engine_options opt;
        uint64_t next_id;
        ratelimit ban_rl;
        ratelimit warn_rl;
        banhist *hist;               /* ban history (GetDecisionsCount), kept across reloads */
        bansync *sync;               /* NULL: no ban backend with a change log */
        size_t sync_slot;            /* the slot bansync follows (valid when sync) */
};

static int load_plugins(spw_config *c, const engine_options *o, spw_plugin **plugins, spw_error *err) {
        if (c->n_backends > ENGINE_MAX_BACKENDS)
                return spw_error_set(err, -E2BIG, "%s: %zu backends configured, at most %d are supported", c->backend_dir,
                                     c->n_backends, ENGINE_MAX_BACKENDS);
        for (size_t i = 0; i < c->n_backends; i++) {
                backend_config *b = &c->backends[i];
                int r = plugin_load(b->path, !o->allow_unsafe_plugins, &plugins[i], err);
                if (r < 0) {
                        spw_error_prefix(err, "%s:%u: backend '%s'", b->file, b->line, b->name);
                        return r;
                }
                r = config_validate_backend(b, plugins[i], err);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The backend the ban sync follows: ban_backend if its plugin keeps a
 * change log, else (no ban_backend) the first that does; -1: none. */
static ssize_t sync_source(const spw_config *c, spw_plugin **plugins) {
        for (size_t i = 0; i < c->n_backends; i++) {
                if (c->ban_backend && !streq(c->ban_backend, c->backends[i].name))
                        continue;
                if (plugins[i]->ops.read_changes)
                        return (ssize_t) i;
                if (c->ban_backend)
                        return -1;
        }
        return -1;
}

/* Warnings (not errors) found while loading are handed to `warn`: the
 * caller decides whether they go to the journal (start, reload) or into a
 * reply (config check). */
static int load_router(spw_config *c, spw_plugin **plugins, spw_router **ret, engine_warning_fn warn, void *userdata,
                       spw_error *err) {
        const char *names[ENGINE_MAX_BACKENDS];
        unsigned flags[ENGINE_MAX_BACKENDS];

        if (access(c->profiles, F_OK) < 0 && errno == ENOENT) {
                *ret = NULL; /* no routing file: every signal to every backend */
                return 0;
        }
        ssize_t src = sync_source(c, plugins);
        for (size_t i = 0; i < c->n_backends; i++) {
                names[i] = c->backends[i].name;
                flags[i] = plugins[i]->ops.read_at ? ROUTE_BACKEND_STORES_BANS : 0;
                if ((ssize_t) i == src)
                        flags[i] |= ROUTE_BACKEND_HISTORY;
        }
        int r = router_load_file(c->profiles, names, flags, c->n_backends, ret, err);
        if (r < 0)
                return r;
        for (size_t i = 0; warn && i < router_n_profiles(*ret); i++) {
                route_profile_info info;
                char text[1024];
                if (router_profile_info(*ret, i, &info) == 0 && info.n_decisions > 0 && info.backends == 0) {
                        snprintf(text, sizeof text,
                                 "%s:%u: profile %s makes decisions but no configured backend stores bans "
                                 "(add the sqlite backend): its bans go nowhere",
                                 info.filename, info.line, info.name);
                        warn(text, userdata);
                }
        }
        return 0;
}

static void log_warning_text(const char *text, void *userdata) {
        log_warning("%s", text);
}

int engine_check_config(spw_config *c, const engine_options *o, engine_warning_fn warn, void *userdata, spw_error *err) {
        spw_plugin *plugins[ENGINE_MAX_BACKENDS];
        _cleanup_(router_freep) spw_router *router = NULL;
        int r;

        r = load_plugins(c, o, plugins, err);
        if (r < 0)
                return r;
        return load_router(c, plugins, &router, warn, userdata, err);
}

static void log_backend_started(backend *b) {
        const backend_config *bc = backend_cfg(b);
        const spw_plugin *p = backend_plugin(b);
        _cleanup_free_ char *map = backend_config_describe(bc, p);
        log_struct(LOG_INFO,
                   LOG_FIELDS({ "MESSAGE_ID", SPW_MESSAGE_BACKEND_LOADED }, { "SPILLWAY_BACKEND", bc->name },
                              { "SPILLWAY_PLUGIN", p->ops.name }, { "SPILLWAY_PLUGIN_PATH", p->path }),
                   "backend %s: plugin %s %s initialised with config %s (queue %u, on_full %s)", bc->name,
                   p->ops.name, strempty(p->ops.version), strna(map), bc->q.size, on_full_to_string(bc->q.policy));
}

static void log_backend_failed(const backend_config *bc, const char *why) {
        log_struct(LOG_ERR, LOG_FIELDS({ "MESSAGE_ID", SPW_MESSAGE_BACKEND_FAILED }, { "SPILLWAY_BACKEND", bc->name }),
                   "backend %s (%s): initialisation failed: %s; the backend is discarded, the others keep running",
                   bc->name, bc->path, why);
}

/* Start backend i of the configuration `ref`. An init failure is recorded
 * in the slot, not returned: the other backends keep going. */
static int start_slot(hub *h, const engine_options *o, spw_config_ref *ref, size_t i, spw_plugin *plugin, engine_slot *slot) {
        const backend_config *bc = &ref->config->backends[i];
        backend *b;
        int r;

        slot->name = strdup(bc->name);
        if (!slot->name)
                return -ENOMEM;
        r = backend_start(bc, ref, plugin, h, ref->config->state_dir, ref->config->stuck_timeout, o->init_timeout, true, &b);
        if (r < 0) {
                slot->error = strdup(strerror(-r));
                log_backend_failed(bc, strerror(-r));
                return 0;
        }
        if (backend_get_state(b) != BACKEND_RUNNING) {
                char why[512];
                backend_last_error(b, why, sizeof why, NULL);
                slot->error = strdup(why);
                log_backend_failed(bc, why);
                backend_unref(b);
                return 0;
        }
        slot->b = b;
        log_backend_started(b);
        return 0;
}

static void slots_free(engine_slot *slots, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(slots[i].name);
                free(slots[i].error);
                backend_unref(slots[i].b);
        }
        free(slots);
}

/* Start the ban sync over the running backends (bansync.h). `wait`: block
 * until its first walk is delivered (start: before READY=1). Logs. */
static void start_sync(engine *e, bool wait) {
        const spw_config *c = e->config->config;
        backend *subs[ENGINE_MAX_BACKENDS];
        size_t n_subs = 0;
        ssize_t src = -1;

        for (size_t i = 0; i < e->n_slots && src < 0; i++) {
                backend *b = e->slots[i].b;
                if (c->ban_backend && !streq(c->ban_backend, e->slots[i].name))
                        continue;
                if (b && backend_can(b, "read_changes"))
                        src = (ssize_t) i;
                else if (c->ban_backend || (b && backend_can(b, "read_at"))) {
                        if (b)
                                log_struct(LOG_NOTICE, LOG_FIELDS({ "SPILLWAY_BACKEND", e->slots[i].name }),
                                           "ban sync disabled: ban backend %s (plugin %s) has no change log (a plugin "
                                           "built for ABI 2.0, or one that stores no bans); enforcement backends follow "
                                           "this daemon's own bans only, and GetDecisionsCount() is refused",
                                           e->slots[i].name, backend_plugin(b)->ops.name);
                        if (c->ban_backend)
                                return;
                }
        }
        if (src < 0)
                return;
        for (size_t i = 0; i < e->n_slots; i++) {
                backend *b = e->slots[i].b;
                if (b && (ssize_t) i != src && backend_can(b, "delete_target") && backend_can(b, "delete_all") &&
                    !backend_can(b, "read_changes"))
                        subs[n_subs++] = b;
        }
        bansync_options o = { .interval = c->ban_sync_interval, .load_history = wait };
        int r = bansync_new(e->slots[src].b, subs, n_subs, e->hist, &o, &e->sync);
        if (r < 0) {
                log_struct(LOG_ERR, LOG_FIELDS({ "SPILLWAY_BACKEND", e->slots[src].name }),
                           "ban sync from %s could not start: %s; enforcement backends follow this daemon's own bans only",
                           e->slots[src].name, strerror(-r));
                return;
        }
        e->sync_slot = (size_t) src;
        log_struct(LOG_INFO, LOG_FIELDS({ "SPILLWAY_BACKEND", e->slots[src].name }),
                   "ban sync: following %s every %llums for %zu enforcement backend%s and the ban history",
                   e->slots[src].name, (unsigned long long) (o.interval / USEC_PER_MSEC), n_subs, n_subs == 1 ? "" : "s");
        if (!wait)
                return;
        usec_t t0 = now_monotonic();
        usec_t timeout = e->opt.init_timeout ? e->opt.init_timeout : BACKEND_INIT_TIMEOUT;
        r = bansync_wait_first(e->sync, timeout);
        if (r < 0) {
                bansync_stats st;
                bansync_get_stats(e->sync, &st);
                log_struct(LOG_WARNING, LOG_FIELDS({ "SPILLWAY_BACKEND", e->slots[src].name }),
                           "ban sync: the active bans of %s could not be loaded at start: %s; starting with what the "
                           "enforcement backends hold, retrying every %llums", e->slots[src].name,
                           r == -ETIMEDOUT ? "timed out" : st.last_error, (unsigned long long) (o.interval / USEC_PER_MSEC));
        } else
                log_struct(LOG_INFO, LOG_FIELDS({ "SPILLWAY_BACKEND", e->slots[src].name }),
                           "ban sync: active bans of %s loaded in %llums", e->slots[src].name,
                           (unsigned long long) ((now_monotonic() - t0) / USEC_PER_MSEC));
}

int engine_new(spw_config *c, const engine_options *o, engine **ret, spw_error *err) {
        spw_plugin *plugins[ENGINE_MAX_BACKENDS];
        engine *e;
        size_t running = 0;
        int r;

        r = load_plugins(c, o, plugins, err);
        if (r < 0) {
                config_free(c);
                return r;
        }
        e = calloc(1, sizeof *e);
        if (!e) {
                config_free(c);
                return -ENOMEM;
        }
        e->opt = *o;
        e->ban_rl = (ratelimit) RATELIMIT_INIT(10 * USEC_PER_SEC, 1000);
        e->warn_rl = (ratelimit) RATELIMIT_INIT(10 * USEC_PER_SEC, 50);
        e->config = config_ref_new(c);
        if (!e->config) {
                config_free(c);
                free(e);
                return -ENOMEM;
        }
        r = hub_init(&e->hub);
        if (r < 0) {
                config_ref_unref(e->config);
                free(e);
                return r;
        }
        r = load_router(c, plugins, &e->router, log_warning_text, NULL, err);
        if (r < 0)
                goto fail;
        e->slots = calloc(c->n_backends, sizeof *e->slots);
        if (!e->slots) {
                r = -ENOMEM;
                goto fail;
        }
        e->n_slots = c->n_backends;
        for (size_t i = 0; i < c->n_backends; i++) {
                r = start_slot(&e->hub, &e->opt, e->config, i, plugins[i], &e->slots[i]);
                if (r < 0)
                        goto fail;
                running += e->slots[i].b != NULL;
        }
        if (running == 0) {
                r = spw_error_set(err, -ENODEV, "no backend could be started (%zu configured, see the errors above)", c->n_backends);
                goto fail;
        }
        e->hist = banhist_new(c->ban_history_max);
        if (!e->hist) {
                r = -ENOMEM;
                goto fail;
        }
        start_sync(e, true);
        *ret = e;
        return 0;
fail:
        engine_free(e);
        return r;
}

engine *engine_free(engine *e) {
        if (!e)
                return NULL;
        /* before the backends stop: its jobs run on their workers */
        e->sync = bansync_free(e->sync);
        engine_stop(e, now_monotonic() + e->config->config->drain_timeout);
        slots_free(e->slots, e->n_slots);
        for (size_t i = 0; i < e->n_retiring; i++)
                backend_unref(e->retiring[i]);
        free(e->retiring);
        router_free(e->router);
        hub_deinit(&e->hub);
        config_ref_unref(e->config);
        banhist_free(e->hist);
        free(e);
        return NULL;
}

const spw_config *engine_config(engine *e) {
        return e->config->config;
}

hub *engine_hub(engine *e) {
        return &e->hub;
}

size_t engine_n_backends(engine *e) {
        return e->n_slots;
}

const char *engine_backend_name(engine *e, size_t i) {
        return i < e->n_slots ? e->slots[i].name : NULL;
}

backend *engine_backend(engine *e, size_t i) {
        return i < e->n_slots ? e->slots[i].b : NULL;
}

const char *engine_backend_error(engine *e, size_t i) {
        return i < e->n_slots ? e->slots[i].error : NULL;
}

size_t engine_n_retiring(engine *e) {
        return e->n_retiring;
}

backend *engine_retiring(engine *e, size_t i) {
        return i < e->n_retiring ? e->retiring[i] : NULL;
}

const spw_router *engine_router(engine *e) {
        return e->router;
}

uint64_t engine_next_signal_id(engine *e) {
        /* ids stay unique across restarts (a replayed signal keeps its own):
         * the first one is the start time in microseconds */
        if (e->next_id == 0)
                e->next_id = (uint64_t) now_realtime();
        return ++e->next_id;
}

bool engine_busy(engine *e) {
        for (size_t i = 0; i < e->n_slots; i++) {
                backend *b = e->slots[i].b;
                if (b && (backend_queue_depth(b) > 0 || backend_busy(b)))
                        return true;
        }
        return false;
}

/* ------------------------------------------------------------ routing */

void fanout_release(fanout *f) {
        for (size_t i = 0; i < f->n_targets; i++)
                backend_unref(f->targets[i]);
        f->n_targets = 0;
        free(f->unavailable);
        f->unavailable = NULL;
}

static void add_unavailable(fanout *f, const char *name) {
        char *n = NULL;
        if (asprintf(&n, "%s%s%s", f->unavailable ? f->unavailable : "", f->unavailable ? ", " : "", name) < 0)
                return;
        free(f->unavailable);
        f->unavailable = n;
}

static void log_decisions(engine *e, const spw_msg *m, const route_result *res) {
        for (size_t i = 0; i < res->n_warnings; i++) {
                const route_warning *w = &res->warnings[i];
                if (w->level == LOG_DEBUG) {
                        log_struct(LOG_DEBUG, LOG_FIELDS({ "SPILLWAY_PROFILE", w->profile }, { "SPILLWAY_SCENARIO", m->sig.scenario }),
                                   "profile %s: %s", w->profile, w->message);
                        continue;
                }
                uint64_t suppressed = 0;
                if (!ratelimit_below(&e->warn_rl, &suppressed))
                        continue;
                if (suppressed)
                        log_warning("%llu routing warnings suppressed (rate limit)", (unsigned long long) suppressed);
                log_struct(LOG_WARNING, LOG_FIELDS({ "SPILLWAY_PROFILE", w->profile }, { "SPILLWAY_SCENARIO", m->sig.scenario }),
                           "profile %s: %s; profile skipped for this signal", w->profile, w->message);
        }
        for (size_t i = 0; i < res->n_matches; i++) {
                const route_match *mt = &res->matches[i];
                for (size_t k = 0; k < mt->n_bans; k++) {
                        const spw_ban *ban = &mt->bans[k];
                        char dur[DURATION_MAX];
                        uint64_t suppressed = 0;
                        usec_t base = m->sig.stop_at ? m->sig.stop_at : m->sig.received_at;
                        if (!ratelimit_below(&e->ban_rl, &suppressed))
                                continue;
                        if (suppressed)
                                log_info("%llu ban decisions not logged (rate limit)", (unsigned long long) suppressed);
                        format_duration(dur, sizeof dur, ban->until - base);
                        log_struct(LOG_INFO,
                                   LOG_FIELDS({ "MESSAGE_ID", SPW_MESSAGE_BAN_DECISION }, { "SPILLWAY_PROFILE", mt->profile },
                                              { "SPILLWAY_SCENARIO", m->sig.scenario }, { "SPILLWAY_TARGET", ban->ip_text },
                                              { "SPILLWAY_ACTION", ban->measure_type }, { "SPILLWAY_DURATION", dur }),
                                   "profile %s: %s %s for %s (%s)", mt->profile, ban->measure_type, ban->ip_text, dur,
                                   strna(m->sig.scenario));
                }
        }
}

/* The ban policy, applied to every automatic ban (the producer's and the
 * profiles'), after routing and again after a reload's re-routing:
 *   - nothing broader than bans.min_prefix_v4 / _v6 (a /0 from a producer
 *     would ban the whole internet): such a ban is refused, the signal goes
 *     on without it, the reply says so and the journal warns (rate-limited);
 *   - nothing that overlaps bans.never_ban (loopback, link-local, the
 *     operator's own networks): refused the same way;
 *   - a ban lasts what the producer asked for, counted from when Spillway
 *     received the signal, not from the producer's clock: until - stop_at
 *     (or - received_at without stop_at), at most bans.max_duration, then
 *     re-based on received_at. A ban that ends before its own signal's
 *     stop_at is an already expired ban: refused.
 * Manual bans (ban.add) do not come through here; adminops.c applies
 * never_ban to them itself. */
static int apply_ban_policy(engine *e, spw_msg *m) {
        const spw_config *c = engine_config(e);
        spw_signal *sig = &m->sig;
        spw_usec_t base = sig->stop_at ? sig->stop_at : sig->received_at;
        strbuf why = STRBUF_INIT;
        spw_ban *out;
        size_t n = 0;

        m->bans_refused = NULL;
        if (sig->n_bans == 0)
                return 0;
        out = arena_alloc(&m->arena, sizeof *out * sig->n_bans);
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < sig->n_bans; i++) {
                spw_ban b = sig->bans[i];
                ip_range rg;
                char problem[200] = "";

                if (ip_parse_cidr(b.ip_text, false, &rg) == 0) {
                        unsigned min = rg.is_v4 ? c->min_prefix_v4 : c->min_prefix_v6;
                        if (rg.prefix < min)
                                snprintf(problem, sizeof problem, "broader than /%u (bans.min_prefix_%s)", min, rg.is_v4 ? "v4" : "v6");
                }
                int nb = problem[0] ? -1 : config_never_ban(c, b.ip_text);
                if (nb >= 0) {
                        char text[IP_RANGE_TEXT_MAX];
                        snprintf(problem, sizeof problem, "it overlaps bans.never_ban entry %s",
                                 ip_range_text(text, sizeof text, &c->never_ban_ranges[nb], true));
                }
                if (!problem[0] && b.until <= base)
                        snprintf(problem, sizeof problem, "ends before the signal's stop_at (an expired ban)");
                if (problem[0]) {
                        uint64_t suppressed = 0;
                        if (why.len)
                                strbuf_puts(&why, "; ");
                        strbuf_printf(&why, "%.64s: %s", strna(b.ip_text), problem);
                        if (ratelimit_below(&e->warn_rl, &suppressed))
                                log_struct(LOG_WARNING, LOG_FIELDS({ "SPILLWAY_SCENARIO", sig->scenario }, { "SPILLWAY_TARGET", b.ip_text }),
                                           "signal %llu (scenario %s): ban of %s refused: %s%s",
                                           (unsigned long long) sig->id, strna(sig->scenario), strna(b.ip_text), problem,
                                           suppressed ? " (earlier warnings suppressed by the rate limit)" : "");
                        continue;
                }
                /* manual bans come from the admin socket only */
                if (b.measure_source && streq(b.measure_source, "cscli"))
                        b.measure_source = "api";
                spw_usec_t d = b.until - base;
                if (c->max_ban_duration > 0 && d > (spw_usec_t) c->max_ban_duration)
                        d = (spw_usec_t) c->max_ban_duration;
                b.until = sig->received_at + d;
                out[n++] = b;
        }
        if (why.len) {
                m->bans_refused = why.oom ? "(out of memory)" : arena_strdup(&m->arena, why.data);
                if (!m->bans_refused)
                        m->bans_refused = "(out of memory)";
        }
        strbuf_deinit(&why);
        sig->bans = out;
        sig->n_bans = n;
        return 0;
}

int engine_route(engine *e, spw_msg *m, fanout *f) {
        uint64_t mask = 0;

        f->n_targets = 0;
        f->unavailable = NULL;
        if (!m->routed) {
                m->producer_bans = m->sig.bans;
                m->n_producer_bans = m->sig.n_bans;
                m->routed = true;
        }
        m->sig.bans = m->producer_bans;
        m->sig.n_bans = m->n_producer_bans;
        if (e->router) {
                route_result res = { 0 };
                /* received_at, so a ban without stop_at and its logged
                 * duration count from the same instant */
                int r = router_route_history(e->router, &m->sig, m->sig.received_at, e->sync ? banhist_count : NULL,
                                             e->hist, &m->arena, &res);
                if (r < 0)
                        return r;
                mask = res.backends;
                if (res.n_bans > 0) {
                        spw_ban *all = arena_alloc(&m->arena, sizeof *all * (m->sig.n_bans + res.n_bans));
                        if (!all)
                                return -ENOMEM;
                        if (m->sig.n_bans)
                                memcpy(all, m->sig.bans, sizeof *all * m->sig.n_bans);
                        memcpy(all + m->sig.n_bans, res.bans, sizeof *all * res.n_bans);
                        m->sig.bans = all;
                        m->sig.n_bans += res.n_bans;
                }
                log_decisions(e, m, &res);
        } else
                mask = e->n_slots >= 64 ? UINT64_MAX : (UINT64_C(1) << e->n_slots) - 1;
        if (apply_ban_policy(e, m) < 0)
                return -ENOMEM;

        /* this daemon's own bans count in the history at once (the change
         * log brings them back later: the index knows them by their end) */
        if (e->sync && (mask & (UINT64_C(1) << e->sync_slot)))
                for (size_t i = 0; i < m->sig.n_bans; i++)
                        (void) banhist_record(e->hist, m->sig.bans[i].ip_text, m->sig.received_at, m->sig.bans[i].until);

        for (size_t i = 0; i < e->n_slots; i++) {
                if (!(mask & (UINT64_C(1) << i)))
                        continue;
                if (!e->slots[i].b) {
                        add_unavailable(f, e->slots[i].name);
                        continue;
                }
                f->targets[f->n_targets++] = backend_ref(e->slots[i].b);
        }
        return 0;
}

int engine_push(engine *e, spw_msg *m, fanout *f, push_result *res) {
        size_t dl = 0;

        res->blocked = NULL;
        res->dropped[0] = 0;
        for (size_t i = 0; i < f->n_targets; i++) {
                backend *b = f->targets[i];
                if (backend_is_retiring(b) || backend_get_state(b) != BACKEND_RUNNING)
                        continue;
                if (backend_cfg(b)->q.policy == ON_FULL_BLOCK && !backend_queue_room_or_arm(b)) {
                        res->blocked = b;
                        return -EAGAIN;
                }
        }

        /* a `queued` ack waits until every routed disk spool has written the
         * signal; a `flushed` ack waits for the backends, as always */
        int n_disk = 0;
        if (m->ack == ACK_QUEUED)
                for (size_t i = 0; i < f->n_targets; i++)
                        if (backend_is_durable(f->targets[i]) && !backend_is_retiring(f->targets[i]) &&
                            backend_get_state(f->targets[i]) == BACKEND_RUNNING)
                                n_disk++;
        m->wait_spool = n_disk > 0;
        msg_expect(m, &e->hub, m->wait_spool ? n_disk : (int) f->n_targets + (f->unavailable ? 1 : 0));
        if (f->unavailable)
                msg_settle(m, f->unavailable, false, "not running (initialisation failed)");
        for (size_t i = 0; i < f->n_targets; i++) {
                backend *b = f->targets[i];
                int r;
                r = backend_submit(b, m);
                if (r == -ESHUTDOWN) {
                        msg_settle(m, backend_name(b), false, "the backend is stopping");
                        continue;
                }
                if (r == 2 && backend_is_durable(b))
                        continue; /* refused by a full spool: the reply says so (ok:false) */
                if (r == -EAGAIN) {
                        /* rare: we are the only producer and checked for room
                         * (a spool's check assumes a line of at most 64 KiB) */
                        msg_settle(m, backend_name(b), false, "queue full");
                        msg_settle_spool(m, backend_name(b), false, "the spool is full (spool_max_size)");
                        continue;
                }
                if (r > 0) {
                        uint64_t suppressed = 0;
                        dl += (size_t) snprintf(res->dropped + dl, dl < sizeof res->dropped ? sizeof res->dropped - dl : 0,
                                                "%s%s", dl ? "," : "", backend_name(b));
                        if (dl >= sizeof res->dropped)
                                dl = sizeof res->dropped - 1;
                        if (backend_drop_warning_allowed(b, &suppressed)) {
                                const backend_config *bc = backend_cfg(b);
                                backend_counters n;
                                char cnt[32];
                                backend_get_counters(b, &n);
                                snprintf(cnt, sizeof cnt, "%llu", (unsigned long long) n.dropped);
                                log_struct(LOG_WARNING,
                                           LOG_FIELDS({ "MESSAGE_ID", SPW_MESSAGE_QUEUE_FULL }, { "SPILLWAY_BACKEND", bc->name },
                                                      { "SPILLWAY_DROPPED", cnt }),
                                           "backend %s: queue full (%u), dropping the %s signal (on_full: %s); %llu dropped so far",
                                           bc->name, bc->q.size, r == 1 ? "oldest" : "newest", on_full_to_string(bc->q.policy),
                                           (unsigned long long) n.dropped);
                        }
                }
        }
        return 0;
}

void engine_wake(engine *e) {
        for (size_t i = 0; i < e->n_slots; i++)
                if (e->slots[i].b)
                        backend_wake(e->slots[i].b);
}

/* ------------------------------------------------------------ reload */

/* A configuration prepared for a reload. The snapshot (names and
 * fingerprints of what runs) is taken on the main thread, so preparing
 * never touches the running backends: a backend whose name and fingerprint
 * are unchanged is only marked for reuse, and picked up by the commit. */
struct engine_next {
        engine_options opt;
        hub *hub;
        char **run_names, **run_fingerprints;
        size_t n_run;
        spw_config_ref *ref;
        spw_router *router;
        engine_slot *slots;
        bool *reuse;
        size_t n_slots;
};

int engine_next_new(engine *e, engine_next **ret) {
        engine_next *n = calloc(1, sizeof *n);
        if (!n)
                return -ENOMEM;
        n->opt = e->opt;
        n->hub = &e->hub;
        n->run_names = calloc(e->n_slots + 1, sizeof *n->run_names);
        n->run_fingerprints = calloc(e->n_slots + 1, sizeof *n->run_fingerprints);
        if (!n->run_names || !n->run_fingerprints) {
                engine_next_free(n);
                return -ENOMEM;
        }
        for (size_t i = 0; i < e->n_slots; i++) {
                backend *b = e->slots[i].b;
                if (!b)
                        continue;
                n->run_names[n->n_run] = strdup(backend_name(b));
                n->run_fingerprints[n->n_run] = strdup(backend_cfg(b)->fingerprint);
                if (!n->run_names[n->n_run] || !n->run_fingerprints[n->n_run]) {
                        n->n_run++;
                        engine_next_free(n);
                        return -ENOMEM;
                }
                n->n_run++;
        }
        *ret = n;
        return 0;
}

engine_next *engine_next_free(engine_next *n) {
        if (!n)
                return NULL;
        for (size_t i = 0; i < n->n_run; i++) {
                free(n->run_names[i]);
                free(n->run_fingerprints[i]);
        }
        free(n->run_names);
        free(n->run_fingerprints);
        /* backends started for a configuration that was not committed stop
         * now (their queues are empty: nothing was routed to them) */
        slots_free(n->slots, n->n_slots);
        free(n->reuse);
        router_free(n->router);
        config_ref_unref(n->ref);
        free(n);
        return NULL;
}

static bool snapshot_runs(const engine_next *n, const backend_config *bc) {
        for (size_t i = 0; i < n->n_run; i++)
                if (streq(n->run_names[i], bc->name) && streq(n->run_fingerprints[i], bc->fingerprint))
                        return true;
        return false;
}

int engine_next_prepare(engine_next *n, spw_config *c, spw_error *err) {
        spw_plugin *plugins[ENGINE_MAX_BACKENDS];
        size_t running = 0;
        int r;

        r = load_plugins(c, &n->opt, plugins, err);
        if (r < 0) {
                config_free(c);
                return r;
        }
        r = load_router(c, plugins, &n->router, log_warning_text, NULL, err);
        if (r < 0) {
                config_free(c);
                return r;
        }
        n->ref = config_ref_new(c);
        if (!n->ref) {
                config_free(c);
                return -ENOMEM;
        }
        n->slots = calloc(c->n_backends ? c->n_backends : 1, sizeof *n->slots);
        n->reuse = calloc(c->n_backends ? c->n_backends : 1, sizeof *n->reuse);
        if (!n->slots || !n->reuse)
                return -ENOMEM;
        n->n_slots = c->n_backends;
        for (size_t i = 0; i < c->n_backends; i++) {
                if (snapshot_runs(n, &c->backends[i])) {
                        n->reuse[i] = true;
                        n->slots[i].name = strdup(c->backends[i].name);
                        if (!n->slots[i].name)
                                return -ENOMEM;
                        running++;
                        continue;
                }
                r = start_slot(n->hub, &n->opt, n->ref, i, plugins[i], &n->slots[i]);
                if (r < 0)
                        return r;
                running += n->slots[i].b != NULL;
        }
        if (running == 0)
                return spw_error_set(err, -ENODEV, "no backend of the new configuration could be started");
        return 0;
}

static backend *find_running(engine *e, const backend_config *bc) {
        for (size_t i = 0; i < e->n_slots; i++) {
                backend *b = e->slots[i].b;
                if (b && streq(backend_name(b), bc->name) && streq(backend_cfg(b)->fingerprint, bc->fingerprint))
                        return b;
        }
        return NULL;
}

int engine_next_commit(engine *e, engine_next *n) {
        const spw_config *c = n->ref->config;

        for (size_t i = 0; i < n->n_slots; i++) {
                if (!n->reuse[i])
                        continue;
                backend *b = find_running(e, &c->backends[i]);
                /* the snapshot and the engine cannot differ: only a commit
                 * changes the running set, and one reload runs at a time */
                if (!b) {
                        engine_next_free(n);
                        return -ESTALE;
                }
                n->slots[i].b = backend_ref(b);
        }

        /* a changed backend whose new instance failed to start: the old
         * one keeps serving, with its queue and its configuration (status
         * shows it running; the next reload tries the new one again) */
        for (size_t i = 0; i < n->n_slots; i++) {
                if (n->reuse[i] || n->slots[i].b)
                        continue;
                backend *old = engine_find(e, n->slots[i].name);
                if (!old)
                        continue;
                n->slots[i].b = backend_ref(old);
                log_struct(LOG_WARNING, LOG_FIELDS({ "SPILLWAY_BACKEND", n->slots[i].name }),
                           "backend %s: its new configuration did not start (%s); the running instance keeps serving "
                           "with the previous one", n->slots[i].name, strna(n->slots[i].error));
        }

        /* the sync follows the old backends: stop it before they retire
         * (it waits for the job it has out, a plugin call at most) */
        e->sync = bansync_free(e->sync);

        /* swap: backends not carried over drain and stop in the background */
        for (size_t i = 0; i < e->n_slots; i++) {
                backend *b = e->slots[i].b;
                bool kept = false;
                for (size_t k = 0; b && k < n->n_slots; k++)
                        kept |= n->slots[k].b == b;
                if (b && !kept) {
                        backend **nr = realloc(e->retiring, (e->n_retiring + 1) * sizeof *nr);
                        if (nr) {
                                /* changed: a new instance of the same name takes
                                 * over what this one has not delivered */
                                backend *succ = NULL;
                                for (size_t k = 0; k < n->n_slots && !succ; k++)
                                        if (n->slots[k].b && !n->reuse[k] && streq(n->slots[k].name, backend_name(b)))
                                                succ = n->slots[k].b;
                                size_t depth = backend_queue_depth(b);
                                e->retiring = nr;
                                if (succ) {
                                        log_struct(LOG_INFO, LOG_FIELDS({ "SPILLWAY_BACKEND", backend_name(b) }),
                                                   "backend %s: changed by the reload; its new instance %s the "
                                                   "%zu %s", backend_name(b),
                                                   backend_is_durable(b) ? "replays" : "takes over", depth,
                                                   backend_is_durable(b)
                                                           ? "signals kept in the spool"
                                                           : "queued signals and the batch not yet committed");
                                        backend_hand_over(b, succ, now_monotonic() + c->drain_timeout);
                                } else {
                                        backend_retire(b, now_monotonic() + c->drain_timeout);
                                        log_struct(LOG_INFO, LOG_FIELDS({ "SPILLWAY_BACKEND", backend_name(b) }),
                                                   "backend %s: removed by the reload; draining %zu queued signals",
                                                   backend_name(b), depth);
                                }
                                e->retiring[e->n_retiring++] = backend_ref(b);
                        }
                }
        }
        slots_free(e->slots, e->n_slots);
        e->slots = TAKE_PTR(n->slots);
        e->n_slots = n->n_slots;
        n->n_slots = 0;
        router_free(e->router);
        e->router = TAKE_PTR(n->router);
        config_ref_unref(e->config);
        e->config = TAKE_PTR(n->ref);
        engine_next_free(n);
        /* from cursor 0: the enforcement sets are rebuilt from the ban
         * database (in the background: the loop keeps serving) */
        start_sync(e, false);
        return 0;
}

int engine_reload(engine *e, spw_config *c, spw_error *err) {
        engine_next *n = NULL;
        int r = engine_next_new(e, &n);
        if (r < 0) {
                config_free(c);
                return r;
        }
        r = engine_next_prepare(n, c, err);
        if (r < 0) {
                engine_next_free(n);
                return r;
        }
        return engine_next_commit(e, n);
}

/* ------------------------------------------------------------ stop */

void engine_stop(engine *e, usec_t deadline) {
        /* first: its jobs need running workers (it waits for the one it has
         * out; the workers still run jobs while they drain) */
        e->sync = bansync_free(e->sync);
        for (size_t i = 0; i < e->n_slots; i++)
                if (e->slots[i].b)
                        backend_stop(e->slots[i].b, deadline);
        for (size_t i = 0; i < e->n_retiring; i++)
                backend_stop(e->retiring[i], deadline);
}

bool engine_all_stopped(engine *e) {
        for (size_t i = 0; i < e->n_slots; i++)
                if (e->slots[i].b && backend_get_state(e->slots[i].b) != BACKEND_STOPPED)
                        return false;
        for (size_t i = 0; i < e->n_retiring; i++)
                if (backend_get_state(e->retiring[i]) != BACKEND_STOPPED)
                        return false;
        return true;
}

void engine_reap(engine *e) {
        size_t k = 0;
        for (size_t i = 0; i < e->n_retiring; i++) {
                backend *b = e->retiring[i];
                if (backend_get_state(b) == BACKEND_STOPPED) {
                        backend_counters n;
                        backend_get_counters(b, &n);
                        backend_join(b);
                        log_struct(n.undelivered ? LOG_WARNING : LOG_INFO,
                                   LOG_FIELDS({ "MESSAGE_ID", SPW_MESSAGE_BACKEND_STOPPED }, { "SPILLWAY_BACKEND", backend_name(b) }),
                                   "backend %s: stopped after the reload (%llu signals undelivered, %llu handed over to "
                                   "its new instance)", backend_name(b), (unsigned long long) n.undelivered,
                                   (unsigned long long) n.handed_over);
                        backend_unref(b);
                } else
                        e->retiring[k++] = b;
        }
        e->n_retiring = k;
}

banhist *engine_banhist(engine *e) {
        return e->hist;
}

bansync *engine_bansync(engine *e) {
        return e->sync;
}

json_t *engine_bansync_json(engine *e) {
        banhist_stats h;
        banhist_get_stats(e->hist, &h);
        json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "records", (json_int_t) h.records, "targets",
                              (json_int_t) h.targets, "max", (json_int_t) h.cap, "evicted", (json_int_t) h.evicted,
                              "lookups", (json_int_t) h.lookups, "hits", (json_int_t) h.hits);
        if (!o)
                return NULL;
        if (e->sync) {
                bansync_stats st;
                char at[RFC3339_MAX];
                bansync_get_stats(e->sync, &st);
                json_t *sj = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "source",
                                       bansync_source_name(e->sync), "interval_ms",
                                       (json_int_t) (e->config->config->ban_sync_interval / USEC_PER_MSEC), "walks",
                                       (json_int_t) st.walks, "failures", (json_int_t) st.failures, "adds",
                                       (json_int_t) st.adds, "deletes", (json_int_t) st.deletes, "resyncs",
                                       (json_int_t) st.resyncs, "cursor", (json_int_t) st.cursor, "history_loaded",
                                       (json_int_t) st.history_loaded);
                if (sj && st.last_ok)
                        json_object_set_new(sj, "last_ok", json_string(format_rfc3339(at, sizeof at, st.last_ok)));
                if (sj && st.failures && st.last_error[0])
                        json_object_set_new(sj, "last_error", json_string(st.last_error));
                json_object_set_new(o, "sync", sj ? sj : json_null());
        }
        return o;
}

void engine_bansync_metrics(engine *e, strbuf *m) {
        banhist_stats h;
        banhist_get_stats(e->hist, &h);
        strbuf_printf(m, "# HELP spillway_ban_history_records Ban-history records kept (GetDecisionsCount).\n"
                         "# TYPE spillway_ban_history_records gauge\nspillway_ban_history_records %zu\n"
                         "# HELP spillway_ban_history_evicted_total Records forgotten at bans.history_max.\n"
                         "# TYPE spillway_ban_history_evicted_total counter\nspillway_ban_history_evicted_total %llu\n"
                         "# HELP spillway_ban_history_lookups_total GetDecisions* queries.\n"
                         "# TYPE spillway_ban_history_lookups_total counter\nspillway_ban_history_lookups_total %llu\n"
                         "# HELP spillway_ban_history_hits_total GetDecisions* queries that found the target.\n"
                         "# TYPE spillway_ban_history_hits_total counter\nspillway_ban_history_hits_total %llu\n",
                      h.records, (unsigned long long) h.evicted, (unsigned long long) h.lookups,
                      (unsigned long long) h.hits);
        if (e->sync) {
                bansync_stats st;
                bansync_get_stats(e->sync, &st);
                strbuf_printf(m, "# HELP spillway_ban_sync_walks_total Walks of the ban database's change log.\n"
                                 "# TYPE spillway_ban_sync_walks_total counter\nspillway_ban_sync_walks_total %llu\n"
                                 "# HELP spillway_ban_sync_failures_total Walks or deliveries that failed.\n"
                                 "# TYPE spillway_ban_sync_failures_total counter\nspillway_ban_sync_failures_total %llu\n",
                              (unsigned long long) st.walks, (unsigned long long) st.failures);
        }
}

void engine_bansync_kick(engine *e) {
        bansync_kick(e->sync);
}

backend *engine_find(engine *e, const char *name) {
        for (size_t i = 0; i < e->n_slots; i++)
                if (e->slots[i].b && streq(e->slots[i].name, name))
                        return e->slots[i].b;
        return NULL;
}

backend *engine_ban_backend(engine *e, const char *name) {
        if (!name)
                name = e->config->config->ban_backend;
        if (name)
                return engine_find(e, name);
        for (size_t i = 0; i < e->n_slots; i++)
                if (e->slots[i].b && backend_can(e->slots[i].b, "read_at"))
                        return e->slots[i].b;
        return NULL;
}
