/* SPDX-License-Identifier: MIT */
/*
 * Administrative operations, whichever transport brought them: ban
 * list/add/delete/flush (jobs run on the ban backends' workers, see
 * engine/admin.h), status, metrics, reload, route.test and config.check.
 * Every action that changes something is logged with the peer's
 * credentials. The request's completion callback delivers replies that
 * wait for workers or a reload.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adminops.h"
#include "daemon.h"
#include "log.h"
#include "msgid.h"
#include "sigmodel.h"
#include "status.h"
#include "strbuf.h"
#include "strutil.h"

enum {
        JOBK_LIST,
        JOBK_COUNT,          /* add/delete/flush: sum counts over backends */
};

static void log_admin(const request *r, const char *action, const char *detail) {
        char uid[16], gid[16], pid[16];
        snprintf(uid, sizeof uid, "%u", (unsigned) r->peer.uid);
        snprintf(gid, sizeof gid, "%u", (unsigned) r->peer.gid);
        snprintf(pid, sizeof pid, "%d", (int) r->peer.pid);
        log_struct(LOG_NOTICE,
                   LOG_FIELDS({ "MESSAGE_ID", SPW_MESSAGE_ADMIN_ACTION }, { "SPILLWAY_ACTION", action },
                              { "SPILLWAY_PEER_UID", uid }, { "SPILLWAY_PEER_GID", gid }, { "SPILLWAY_PEER_PID", pid }),
                   "admin: %s%s%s (peer uid %s gid %s pid %s)", action, detail ? " " : "", detail ? detail : "", uid, gid, pid);
}

static const char *get_str(json_t *req, const char *key) {
        json_t *v = json_object_get(req, key);
        return json_is_string(v) ? json_string_value(v) : NULL;
}

static void job_done(hub_item *it, bool discard) {
        admin_job *j = (admin_job *) ((char *) it - offsetof(admin_job, done));
        request *r = j->cookie;
        daemon_t *d = r->ctx;

        if (discard) {
                admin_job_free(j);
                return;
        }

        if (j->r < 0) {
                r->job_failed = true; /* even if the copy of the message fails */
                if (!r->job_error)
                        r->job_error = strdup(j->error[0] ? j->error : strerror(-j->r));
        }
        if (j->type == JOB_LIST)
                r->stream_ctx = NULL; /* the job is gone: nothing to give credit to */
        if (j->type == JOB_LIST && (j->r >= 0 || j->streamed)) {
                /* What the worker did not stream yet (all of it for a short
                 * list: the head handle_ban_list wrote, and the rows) plus
                 * the tail is the rest of the reply, taken without a copy.
                 * Once rows went out, a failure can only end the object:
                 * "ok" comes last for that reason. */
                if (j->r >= 0)
                        strbuf_printf(&j->rows, "],\"total\":%zu,\"ok\":true}", j->total);
                else {
                        strbuf_printf(&j->rows, "],\"total\":%zu,\"ok\":false,\"error\":", j->n_rows);
                        strbuf_json_string(&j->rows, j->error[0] ? j->error : strerror(-j->r));
                        strbuf_putc(&j->rows, '}');
                        r->job_failed = false;
                        free(r->job_error);
                        r->job_error = NULL;
                }
                free(r->list_reply);
                r->list_reply = NULL;
                if (!j->rows.oom) {
                        r->list_reply_len = j->rows.len;
                        r->list_reply = strbuf_steal(&j->rows);
                }
                if (!r->list_reply)
                        r->job_failed = true;
        }
        r->job_count += j->count;
        if (j->type == JOB_INSERT && j->r >= 0)
                r->job_count++;
        admin_job_free(j);

        if (--r->jobs_pending > 0)
                return;
        d->n_waiting--;
        if (r->job_failed || r->job_error)
                request_error(r, "%s", r->job_error ? r->job_error : "out of memory");
        else if (r->job_kind == JOBK_LIST) {
                free(r->reply);
                r->reply = TAKE_PTR(r->list_reply);
                r->reply_len = r->list_reply_len;
                r->state = REQ_DONE;
        }
        else
                request_reply_json(r, json_pack("{s:b, s:I}", "ok", 1, "count", (json_int_t) r->job_count));
        request_complete(r);
}

/* A chunk of a streaming ban list (admin.h), on the main thread: on to the
 * request's transport, or, if its client went away, stop the listing. */
static void list_chunk(admin_job *j, char *data, size_t len, bool discard) {
        request *r = j->cookie;
        if (!discard) {
                if (r->detached)
                        admin_job_list_cancel(j);
                else if (request_stream(r, data, len) < 0) {
                        r->job_failed = true;
                        admin_job_list_cancel(j);
                }
        }
        free(data);
}

static void list_taken(request *r, size_t n) {
        if (r->stream_ctx)
                admin_job_list_taken(r->stream_ctx, n);
}

static int start_jobs(daemon_t *d, request *r, admin_job_type type, json_t *req, const char *op) {
        engine *e = d->engine;
        const char *only = get_str(req, "backend");
        unsigned n = 0;

        r->job_kind = JOBK_COUNT;
        for (size_t i = 0; i < engine_n_backends(e); i++) {
                backend *b = engine_backend(e, i);
                admin_job *j;
                if (!b || !backend_can(b, "read_at"))
                        continue;
                if (only && !streq(only, backend_name(b)))
                        continue;
                j = admin_job_new(type);
                if (!j || !(j->backend = strdup(backend_name(b))) ||
                    (type == JOB_DELETE && !(j->target = strdup(get_str(req, "target"))))) {
                        admin_job_free(j);
                        if (n == 0)
                                return -ENOMEM;
                        /* jobs already posted point at r: it must wait for
                         * them (freeing it now would leave them a dangling
                         * request), then answer the failure */
                        r->job_failed = true;
                        break;
                }
                j->cookie = r;
                j->done.fn = job_done;
                if (type == JOB_INSERT)
                        j->msg = msg_ref(r->msg);
                backend_post_job(b, j);
                n++;
        }
        if (n == 0) {
                if (only)
                        request_error(r, "%s: no running ban backend named '%s'", op, only);
                else
                        request_error(r, "%s: no running backend stores bans (configure the sqlite or mysql backend)", op);
                return 0;
        }
        r->jobs_pending = n;
        r->state = REQ_WAIT_JOBS;
        d->n_waiting++;
        return 0;
}

static void handle_ban_list(daemon_t *d, request *r, json_t *req) {
        backend *b = engine_ban_backend(d->engine, get_str(req, "backend"));
        admin_job *j;
        const char *s;
        json_t *v;

        if (!b) {
                request_error(r, "ban.list: no running backend stores bans%s%s", get_str(req, "backend") ? " named " : "",
                              strempty(get_str(req, "backend")));
                return;
        }
        j = admin_job_new(JOB_LIST);
        if (!j || !(j->backend = strdup(backend_name(b)))) {
                admin_job_free(j);
                request_error(r, "out of memory");
                return;
        }
        j->at = now_realtime();
        if ((s = get_str(req, "at")) && parse_time_arg(s, now_realtime(), &j->at) < 0) {
                admin_job_free(j);
                request_error(r, "ban.list: at: '%s' is not a time (RFC 3339 like 2024-01-02T15:04:05Z, or +1h, -30m, now)", s);
                return;
        }
        if ((s = get_str(req, "ip"))) {
                if (ip_parse_addr(s, &j->filter.ip) < 0) {
                        admin_job_free(j);
                        request_error(r, "ban.list: ip: '%s' is not an IPv4 or IPv6 address", s);
                        return;
                }
                j->filter.has_ip = true;
        }
        if ((s = get_str(req, "range"))) {
                if (ip_parse_cidr(s, false, &j->filter.range) < 0) {
                        admin_job_free(j);
                        request_error(r, "ban.list: range: '%s' is not a CIDR range", s);
                        return;
                }
                j->filter.has_range = true;
        }
        /* a filter that cannot be copied must fail the request, not vanish
         * (an unfiltered list is a different answer) */
        if ((s = get_str(req, "scope")) && !scope_canonical(s)) {
                admin_job_free(j);
                request_error(r, "ban.list: scope: '%s' is not a scope name (Ip, Range, Country, AS, username...)", s);
                return;
        }
        if (((s = get_str(req, "scope")) && !(j->filter.scope = strdup(scope_canonical(s)))) ||
            ((s = get_str(req, "reason")) && !(j->filter.reason = strdup(s))) ||
            ((s = get_str(req, "country")) && !(j->filter.country = strdup(s))) ||
            ((s = get_str(req, "as")) && !(j->filter.as = strdup(s)))) {
                admin_job_free(j);
                request_error(r, "out of memory");
                return;
        }
        v = json_object_get(req, "limit");
        j->limit = 50;
        if (v) {
                if (!json_is_integer(v) || json_integer_value(v) < 0) {
                        admin_job_free(j);
                        request_error(r, "ban.list: limit: expected a non-negative integer (0 = all)");
                        return;
                }
                j->limit = (size_t) json_integer_value(v);
        }
        /* the reply's head; the worker appends the rows and streams them
         * in chunks (a slow reader is given client_timeout, 5 s at most,
         * of waiting in all), job_done appends the tail */
        {
                usec_t t = engine_config(d->engine)->client_timeout;
                j->max_wait = t > 0 && t < 5 * USEC_PER_SEC ? t : 5 * USEC_PER_SEC;
        }
        j->chunk_fn = list_chunk;
        r->stream_taken = list_taken;
        r->stream_ctx = j;
        strbuf_puts(&j->rows, "{\"backend\":");
        strbuf_json_string(&j->rows, backend_name(b));
        strbuf_puts(&j->rows, ",\"rows\":[");
        if (j->rows.oom) {
                admin_job_free(j);
                request_error(r, "out of memory");
                return;
        }
        j->cookie = r;
        j->done.fn = job_done;
        r->job_kind = JOBK_LIST;
        r->jobs_pending = 1;
        r->state = REQ_WAIT_JOBS;
        d->n_waiting++;
        backend_post_job(b, j);
}

static void handle_ban_add(daemon_t *d, request *r, json_t *req) {
        const char *scope = get_str(req, "scope"), *target = get_str(req, "target"), *dur = get_str(req, "duration");
        const char *reason = get_str(req, "reason"), *remediation = get_str(req, "remediation");
        spw_error err = { 0 };
        usec_t duration, now = now_realtime();
        spw_msg *m;
        spw_ban *ban;
        char detail[512];

        const char *canon = scope ? scope_canonical(scope) : NULL;
        if (!canon) {
                request_error(r, "ban.add: scope: expected ip, range, or another scope name such as Country, AS or "
                              "username (letters, digits, '_', '-', '.'), got '%s'", strna(scope));
                return;
        }
        bool address = streq(canon, "Ip") || streq(canon, "Range");
        if (!target) {
                request_error(r, "ban.add: target: required (the IP or CIDR, or the %s value, to ban)", canon);
                return;
        }
        if (!dur || parse_duration(dur, &duration) < 0 || duration <= 0) {
                request_error(r, "ban.add: duration: expected a positive duration like 4h, 90m or 2d, got '%s'", strna(dur));
                return;
        }
        if (!reason || !*reason) {
                request_error(r, "ban.add: reason: required (free text shown in ban list)");
                return;
        }
        if (!remediation)
                remediation = "ban";
        if (!streq(remediation, "ban") && !streq(remediation, "slow") && !streq(remediation, "captcha")) {
                request_error(r, "ban.add: remediation: expected ban, slow or captcha, got '%s'", remediation);
                return;
        }
        m = msg_new();
        if (!m || !(ban = arena_alloc(&m->arena, sizeof *ban))) {
                msg_unref(m);
                request_error(r, "out of memory");
                return;
        }
        if (ban_from_scope(canon, target, now + duration, remediation, "cscli", reason, &m->arena, ban, &err) < 0) {
                msg_unref(m);
                request_error(r, "ban.add: target: %s", err.msg);
                return;
        }
        {
                /* the admin may go broader than the producers' limit, but only explicitly */
                const spw_config *c = engine_config(d->engine);
                ip_range rg;
                if (address && ip_parse_cidr(ban->ip_text, false, &rg) == 0 && rg.prefix < (rg.is_v4 ? c->min_prefix_v4 : c->min_prefix_v6) &&
                    !json_is_true(json_object_get(req, "force"))) {
                        request_error(r, "ban.add: target: %s is broader than /%u (bans.min_prefix_%s): refused; "
                                      "add \"force\": true (spillwayctl ban add --force) to ban it anyway",
                                      ban->ip_text, rg.is_v4 ? c->min_prefix_v4 : c->min_prefix_v6, rg.is_v4 ? "v4" : "v6");
                        msg_unref(m);
                        return;
                }
                /* never_ban holds for the admin too: lockout protection
                 * that --force could lift would not protect */
                int nb = config_never_ban(c, ban->ip_text);
                if (nb >= 0) {
                        char text[IP_RANGE_TEXT_MAX];
                        request_error(r, "ban.add: target: %s overlaps bans.never_ban entry %s: refused; remove the entry "
                                      "from bans.never_ban in %s and reload to ban it", ban->ip_text,
                                      ip_range_text(text, sizeof text, &c->never_ban_ranges[nb], true), c->file);
                        msg_unref(m);
                        return;
                }
        }
        m->sig.scenario = ban->reason;
        m->sig.alert_message = arena_printf(&m->arena, "manual '%s' from 'cscli'", remediation);
        m->sig.start_at = m->sig.stop_at = now;
        m->sig.received_at = now;
        m->sig.id = engine_next_signal_id(d->engine);
        m->sig.source_ip = streq(canon, "Ip") ? ban->ip_text : NULL;
        m->sig.source_range = streq(canon, "Range") ? ban->ip_text : NULL;
        m->sig.bans = ban;
        m->sig.n_bans = 1;
        r->msg = m;
        snprintf(detail, sizeof detail, "%s %s%s%s for %s: %s%s", remediation, address ? "" : canon, address ? "" : " ",
                 target, dur, reason, address ? "" : " (not an address: stored and forwarded, not enforced by address)");
        log_admin(r, "ban.add", detail);
        if (start_jobs(d, r, JOB_INSERT, req, "ban.add") < 0)
                request_error(r, "out of memory");
}

/* The key a ban of `scope` and `target` was stored under, set as req's
 * "target": the normalised address text for Ip and Range (::ffff:1.2.3.4
 * is 1.2.3.4), "Scope:value" for other scopes. Without a scope, an address
 * or a range is what it looks like. 0, or -1 with the request failed. */
static int delete_key(request *r, json_t *req, const char *target, const char *scope) {
        const char *sc = scope ? scope_canonical(scope) : strchr(target, '/') ? "Range" : "Ip";
        _cleanup_free_ char *key = NULL;
        char canon[IP_RANGE_TEXT_MAX];
        spw_error err = { 0 };
        ip_range range;

        if (!sc) {
                request_error(r, "ban.delete: scope: '%s' is not a scope name (ip, range, Country, AS, username...)", scope);
                return -1;
        }
        if (streq(sc, "Ip") || streq(sc, "Range")) {
                bool is_range = streq(sc, "Range");
                if (is_range ? ip_parse_cidr(target, false, &range) < 0 : ip_parse_addr(target, &range) < 0) {
                        request_error(r, "ban.delete: target: '%s' is not %s", target,
                                      is_range ? "a CIDR range" : "an IP address");
                        return -1;
                }
                key = strdup(ip_range_text(canon, sizeof canon, &range, is_range));
        } else if (scope_value_check(target, &err) < 0) {
                request_error(r, "ban.delete: target: %s", err.msg);
                return -1;
        } else if (asprintf(&key, "%s:%s", sc, target) < 0)
                key = NULL;
        if (!key || json_object_set_new(req, "target", json_string(key)) < 0) {
                request_error(r, "out of memory");
                return -1;
        }
        return 0;
}

static void handle_ban_delete(daemon_t *d, request *r, json_t *req, bool all) {
        const char *target = get_str(req, "target");

        if (!all) {
                if (!target) {
                        request_error(r, "ban.delete: target: required (the exact IP or CIDR, or the scope's value, of the ban)");
                        return;
                }
                if (delete_key(r, req, target, get_str(req, "scope")) < 0)
                        return;
                target = get_str(req, "target");
        }
        log_admin(r, all ? "ban.flush" : "ban.delete", target);
        if (start_jobs(d, r, all ? JOB_DELETE_ALL : JOB_DELETE, req, all ? "ban.flush" : "ban.delete") < 0)
                request_error(r, "out of memory");
}

static void handle_route_test(daemon_t *d, request *r, json_t *req) {
        json_t *sigobj = json_object_get(req, "signal");
        spw_error err = { 0 };
        _cleanup_(msg_unrefp) spw_msg *m = msg_new();
        json_t *o, *profiles, *bans, *targets;

        if (!m) {
                request_error(r, "out of memory");
                return;
        }
        if (!sigobj) {
                request_error(r, "route.test: signal: required");
                return;
        }
        if (signal_from_json(sigobj, &m->arena, &m->sig, &err) < 0) {
                request_error(r, "route.test: %s", err.msg);
                return;
        }
        m->sig.received_at = now_realtime();
        o = json_object();
        profiles = json_array();
        bans = json_array();
        targets = json_array();
        if (engine_router(d->engine)) {
                route_result res = { 0 };
                if (router_route(engine_router(d->engine), &m->sig, now_realtime(), &m->arena, &res) < 0) {
                        json_decref(o);
                        json_decref(profiles);
                        json_decref(bans);
                        json_decref(targets);
                        request_error(r, "route.test: routing failed");
                        return;
                }
                for (size_t i = 0; i < res.n_matches; i++) {
                        json_t *p = json_pack("{s:s, s:I, s:[]}", "profile", res.matches[i].profile, "line",
                                              (json_int_t) res.matches[i].line, "backends");
                        for (size_t k = 0; k < engine_n_backends(d->engine); k++)
                                if (res.matches[i].backends & (UINT64_C(1) << k))
                                        json_array_append_new(json_object_get(p, "backends"), json_string(engine_backend_name(d->engine, k)));
                        json_array_append_new(profiles, p);
                }
                for (size_t i = 0; i < res.n_bans; i++)
                        json_array_append_new(bans, ban_to_json(&res.bans[i]));
                for (size_t k = 0; k < engine_n_backends(d->engine); k++)
                        if (res.backends & (UINT64_C(1) << k))
                                json_array_append_new(targets, json_string(engine_backend_name(d->engine, k)));
                json_t *warnings = json_array();
                for (size_t i = 0; i < res.n_warnings; i++)
                        json_array_append_new(warnings, json_pack("{s:s, s:s}", "profile", res.warnings[i].profile, "message",
                                                                  res.warnings[i].message));
                json_object_set_new(o, "warnings", warnings);
        } else
                for (size_t k = 0; k < engine_n_backends(d->engine); k++)
                        json_array_append_new(targets, json_string(engine_backend_name(d->engine, k)));
        for (size_t i = 0; i < m->sig.n_bans; i++) /* bans the producer sent */
                json_array_append_new(bans, ban_to_json(&m->sig.bans[i]));
        json_object_set_new(o, "ok", json_true());
        json_object_set_new(o, "scenario", json_string(m->sig.scenario));
        json_object_set_new(o, "profiles", profiles);
        json_object_set_new(o, "bans", bans);
        json_object_set_new(o, "backends", targets);
        json_object_set_new(o, "routing", json_string(engine_router(d->engine) ? engine_config(d->engine)->profiles : "none (no profiles file: every backend)"));
        request_reply_json(r, o);
}

static void add_warning(const char *text, void *userdata) {
        json_array_append_new(userdata, json_string(text));
}

static void handle_config_check(daemon_t *d, request *r) {
        spw_error err = { 0 };
        _cleanup_(config_freep) spw_config *c = NULL;
        json_t *warnings = json_array();
        int k = config_load(d->opt.config_path, &d->opt.overrides, &c, &err);
        if (k >= 0)
                k = engine_check_config(c, &d->opt.engine, add_warning, warnings, &err);
        if (k < 0)
                request_reply_json(r, json_pack("{s:b, s:s, s:s, s:o}", "ok", 0, "error", err.msg, "config", d->opt.config_path,
                                                "warnings", warnings));
        else
                request_reply_json(r, json_pack("{s:b, s:s, s:I, s:o}", "ok", 1, "config", d->opt.config_path, "backends",
                                                (json_int_t) c->n_backends, "warnings", warnings));
}

static void reload_done(daemon_t *d, int k, const char *error, void *userdata) {
        request *r = userdata;
        d->n_waiting--;
        if (k < 0)
                request_error(r, "reload failed, the previous configuration keeps running: %s", error);
        else
                request_reply_json(r, json_pack("{s:b, s:I}", "ok", 1, "backends", (json_int_t) engine_n_backends(d->engine)));
        request_complete(r);
}

/* deadletter.list / .drop / .retry {"backend": NAME, "ids": [ID, ...] | "all": true}:
 * the signals a disk backend rejected for good (spool.h). list without ids
 * lists all; drop and retry need ids or "all": true. retry appends them to
 * the backend's spool again, with their ids. */
static void handle_deadletter(daemon_t *d, request *r, json_t *req, const char *what) {
        const char *name = get_str(req, "backend");
        json_t *idsv = json_object_get(req, "ids"), *entries = NULL;
        bool all = json_is_true(json_object_get(req, "all")), list = streq(what, "list");
        _cleanup_free_ uint64_t *ids = NULL;
        size_t n_ids = 0, i;
        backend *b;
        spool *sp;
        json_t *v;
        int k;

        if (!name) {
                request_error(r, "backend: expected the name of a backend with durability: disk");
                return;
        }
        b = engine_find(d->engine, name);
        if (!b) {
                request_error(r, "backend: no running backend '%s'", name);
                return;
        }
        sp = backend_spool(b);
        if (!sp) {
                request_error(r, "backend '%s' has durability: memory: it keeps no dead letters", name);
                return;
        }
        if (idsv) {
                if (!json_is_array(idsv)) {
                        request_error(r, "ids: expected an array of signal ids");
                        return;
                }
                ids = calloc(json_array_size(idsv) + 1, sizeof *ids);
                if (!ids) {
                        request_error(r, "out of memory");
                        return;
                }
                json_array_foreach(idsv, i, v) {
                        if (!json_is_integer(v) || json_integer_value(v) < 0) {
                                request_error(r, "ids[%zu]: expected a signal id (a non-negative integer)", i);
                                return;
                        }
                        ids[n_ids++] = (uint64_t) json_integer_value(v);
                }
        } else if (!list && !all) {
                request_error(r, "deadletter.%s: give \"ids\": [...] or \"all\": true", what);
                return;
        }
        k = spool_dead_letters(sp, idsv ? ids : NULL, n_ids, !list, &entries);
        if (k < 0) {
                request_error(r, "%s/dead-letter: %s", spool_dir(sp), strerror(-k));
                return;
        }
        if (list) {
                request_reply_json(r, json_pack("{s:b, s:s, s:I, s:o}", "ok", 1, "backend", name, "total",
                                                (json_int_t) json_array_size(entries), "entries", entries));
                return;
        }
        size_t requeued = 0, failed = 0;
        if (streq(what, "retry"))
                json_array_foreach(entries, i, v) {
                        const char *line = json_string_value(json_object_get(v, "line"));
                        json_t *id = json_object_get(v, "id");
                        if (line && json_is_integer(id) &&
                            spool_requeue_line(sp, (uint64_t) json_integer_value(id), line, strlen(line)) == 0)
                                requeued++;
                        else
                                failed++;
                }
        char detail[128];
        snprintf(detail, sizeof detail, "backend %s, %zu entries", name, json_array_size(entries));
        log_admin(r, streq(what, "retry") ? "dead letters retried" : "dead letters dropped", detail);
        if (failed)
                request_error(r, "%zu of %zu dead letters could not be queued again (spool full, or the line no longer "
                              "parses); they are removed from %s/dead-letter", failed, json_array_size(entries), spool_dir(sp));
        else
                request_reply_json(r, json_pack("{s:b, s:s, s:I}", "ok", 1, "backend", name,
                                                streq(what, "retry") ? "requeued" : "dropped",
                                                (json_int_t) (streq(what, "retry") ? requeued : json_array_size(entries))));
        json_decref(entries);
        backend_wake(b);
}

void adminops_handle(daemon_t *d, request *r, json_t *req, const char *op) {
        r->ctx = d;
        if (d->stopping) {
                request_error(r, "spillwayd is stopping");
                return;
        }
        if (streq(op, "status")) {
                json_t *o = status_json(d);
                request_reply_json(r, o);
        } else if (streq(op, "metrics")) {
                _cleanup_free_ char *text = metrics_text(d);
                request_reply_json(r, json_pack("{s:b, s:s}", "ok", 1, "metrics", text ? text : ""));
        } else if (streq(op, "reload")) {
                log_admin(r, "reload", NULL);
                r->state = REQ_WAIT_JOBS;
                d->n_waiting++;
                daemon_reload(d, reload_done, r);
        } else if (streq(op, "ban.list"))
                handle_ban_list(d, r, req);
        else if (streq(op, "ban.add"))
                handle_ban_add(d, r, req);
        else if (streq(op, "ban.delete"))
                handle_ban_delete(d, r, req, false);
        else if (streq(op, "ban.flush"))
                handle_ban_delete(d, r, req, true);
        else if (streq(op, "route.test"))
                handle_route_test(d, r, req);
        else if (streq(op, "config.check"))
                handle_config_check(d, r);
        else if (streq(op, "deadletter.list"))
                handle_deadletter(d, r, req, "list");
        else if (streq(op, "deadletter.drop"))
                handle_deadletter(d, r, req, "drop");
        else if (streq(op, "deadletter.retry"))
                handle_deadletter(d, r, req, "retry");
        else {
                static const char *const ops[] = { "status", "metrics", "reload", "ban.list", "ban.add", "ban.delete",
                                                   "ban.flush", "route.test", "config.check", "deadletter.list",
                                                   "deadletter.drop", "deadletter.retry" };
                const char *close = str_closest(op, ops, ELEMENTSOF(ops));
                request_error(r, "op: unknown operation '%s'%s%s%s", op, close ? "; did you mean '" : "", close ? close : "",
                              close ? "'?" : "");
        }
}
