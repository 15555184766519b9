/* SPDX-License-Identifier: MIT */
/*
 * Sockets and the line protocol.
 *
 * Every connection reads newline-delimited JSON requests and answers each
 * one with exactly one line, in request order, so clients may pipeline.
 * Requests that cannot be answered at once (ack "flushed", a full "block"
 * queue, administrative jobs on worker threads) sit in the connection's
 * FIFO; replies are written as soon as the head of the FIFO is done.
 *
 * Flow control: a connection stops being read while one of its requests is
 * parked on a full queue (that is the "block the producer" policy) and while
 * it has more than OUT_HIGH bytes of unread replies (a client that does not
 * read cannot make us buffer without bound). Nothing here ever blocks: all
 * sockets are non-blocking and the loop serves every other client meanwhile.
 *
 * Bad input never closes a connection: malformed JSON, a wrong field, an
 * oversized line each get an error reply naming the problem, and the next
 * line is read normally.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "messages.h"
#include "ratelimit.h"
#include "sigmodel.h"
#include "strutil.h"

#define READ_CHUNK (64 * 1024)

/* warnings about misbehaving clients: a flood of them must not flood the journal */
static ratelimit client_rl = RATELIMIT_INIT(10 * USEC_PER_SEC, 20);

static bool client_warning_allowed(void) {
        uint64_t suppressed = 0;
        bool ok = ratelimit_below(&client_rl, &suppressed);
        if (ok && suppressed)
                log_warning("%llu warnings about clients suppressed (rate limit)", (unsigned long long) suppressed);
        return ok;
}
#define OUT_HIGH   (4 * 1024 * 1024)
#define MAX_PIPELINE 10000      /* requests in flight per connection */

static void conn_free(conn *c);
static void conn_flush_replies(conn *c);
static void conn_process(conn *c);

/* ------------------------------------------------------------ requests */

static request *request_new(conn *c) {
        request *r = calloc(1, sizeof *r);
        if (!r)
                return NULL;
        r->conn = c;
        r->d = c->d;
        if (c->tail)
                c->tail->next = r;
        else
                c->head = r;
        c->tail = r;
        c->n_requests++;
        return r;
}

static void request_free(request *r) {
        if (!r)
                return;
        free(r->reply);
        free(r->dropped);
        free(r->unavailable);
        free(r->job_error);
        free(r->list_reply);
        fanout_release(&r->fan);
        if (r->msg) {
                r->msg->cookie = NULL;
                msg_unref(r->msg);
        }
        free(r);
}

static void request_reply_json(request *r, json_t *o) {
        r->reply = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        r->state = REQ_DONE;
}

static void request_error(request *r, const char *fmt, ...) _printf_(2, 3);
static void request_error(request *r, const char *fmt, ...) {
        char text[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(text, sizeof text, fmt, ap);
        va_end(ap);
        request_reply_json(r, json_pack("{s:b, s:s}", "ok", 0, "error", text));
}

/* A request finished after the fact (worker result, unparked, timeout).
 * Its connection is only marked: the caller flushes every marked
 * connection once (server_flush_dirty), so a flush that completes 1000
 * signals costs one write per connection, not one per reply. */
static void request_completed(daemon_t *d, request *r) {
        conn *c = r->conn;
        if (!c) {
                /* the client went away: nobody to answer; free once nothing
                 * (a worker, the hub) refers to the request any more */
                if (r->state == REQ_DONE)
                        request_free(r);
                return;
        }
        if (!c->dirty) {
                c->dirty = true;
                c->dirty_next = d->dirty;
                d->dirty = c;
        }
}

static void server_flush_dirty(daemon_t *d) {
        while (d->dirty) {
                conn *c = d->dirty;
                d->dirty = c->dirty_next;
                c->dirty = false;
                c->dirty_next = NULL;
                conn_flush_replies(c); /* may free c */
        }
}

/* ------------------------------------------------------------ signals */

static void park_request(daemon_t *d, request *r, backend *blocked) {
        r->state = REQ_PARKED;
        park_add(d->park, &r->park, now_monotonic() + blocked->cfg->q.block_timeout, r->conn ? r->conn->id : 0);
        if (r->conn)
                r->conn->paused = true;
}

/* The reply to a signal. Built by hand, not with jansson: this is the hot
 * path (one per signal) and every member is a number or a backend name. */
static void reply_signal(daemon_t *d, request *r) {
        spw_msg *m = r->msg;
        strbuf b = STRBUF_INIT;

        if (m->ack == ACK_FLUSHED && atomic_load(&m->n_failed) > 0) {
                char *why = atomic_load(&m->failure);
                d->stats.failed_acks++;
                strbuf_printf(&b, "{\"ok\":false,\"id\":%llu,\"ack\":\"flushed\",\"error\":", (unsigned long long) m->sig.id);
                strbuf_json_string(&b, why ? why : "a backend failed");
        } else {
                if (m->ack == ACK_FLUSHED)
                        d->stats.flushed_acks++;
                strbuf_printf(&b, "{\"ok\":true,\"id\":%llu,\"ack\":\"%s\"", (unsigned long long) m->sig.id,
                              m->ack == ACK_FLUSHED ? "flushed" : "queued");
                if (r->dropped) {
                        strbuf_puts(&b, ",\"dropped\":");
                        strbuf_json_string(&b, r->dropped);
                }
                if (r->unavailable) {
                        strbuf_puts(&b, ",\"unavailable\":");
                        strbuf_json_string(&b, r->unavailable);
                }
        }
        if (m->sig.n_bans > 0)
                strbuf_printf(&b, ",\"bans\":%zu", m->sig.n_bans);
        strbuf_putc(&b, '}');
        free(r->reply);
        r->reply = b.oom ? NULL : strbuf_steal(&b);
        strbuf_deinit(&b);
        r->state = REQ_DONE;
}

/* The message sits in every routed queue: reply now ("queued") or wait
 * for the backends ("flushed"; the last one to settle posts it to the hub,
 * possibly right now from a worker). */
static void signal_accepted(daemon_t *d, request *r, const push_result *res) {
        d->stats.accepted++;
        if (res->dropped[0])
                r->dropped = strdup(res->dropped);
        r->unavailable = TAKE_PTR(r->fan.unavailable);
        fanout_release(&r->fan);
        if (r->msg->ack == ACK_FLUSHED) {
                r->state = REQ_WAIT_FLUSH;
                d->n_waiting++;
        } else
                reply_signal(d, r);
}

/* Every backend settled a message acknowledged "flushed" (hub). */
static void msg_done(spw_msg *m) {
        request *r = m->cookie;
        if (r && r->state == REQ_WAIT_FLUSH) {
                r->d->n_waiting--;
                reply_signal(r->d, r);
                request_completed(r->d, r);
        }
}

/* Try to push a routed message; the request is done, waiting, or parked. */
static void push_signal(daemon_t *d, request *r) {
        push_result res;
        int k = engine_push(d->engine, r->msg, &r->fan, &res);

        if (k == -EAGAIN)
                park_request(d, r, res.blocked);
        else
                signal_accepted(d, r, &res);
}

static void handle_signal(daemon_t *d, request *r, json_t *sigobj, ack_level ack, size_t line_len) {
        spw_error err = { 0 };
        spw_msg *m = msg_new();
        int k;

        if (!m) {
                request_error(r, "out of memory");
                return;
        }
        /* one arena chunk holds the whole parsed signal in the common case */
        m->arena.first_size = MAX((size_t) 1024, line_len + line_len / 2 + 512);
        k = signal_from_json(sigobj, &m->arena, &m->sig, &err);
        if (k < 0) {
                d->stats.rejected++;
                msg_unref(m);
                request_error(r, "%s", k == -ENOMEM ? "out of memory" : err.msg);
                return;
        }
        m->sig.id = ++d->engine->next_id;
        m->sig.received_at = now_realtime();
        m->ack = ack;
        m->cookie = r;
        m->on_done = msg_done;
        r->msg = m;
        k = engine_route(d->engine, m, &r->fan);
        if (k < 0) {
                request_error(r, "routing failed: %s", strerror(-k));
                return;
        }
        if (r->fan.n_targets == 0 && !r->fan.unavailable) {
                /* no profile wants it: accepted, and nothing to deliver */
                d->stats.accepted++;
                request_reply_json(r, json_pack("{s:b, s:I, s:s, s:[]}", "ok", 1, "id", (json_int_t) m->sig.id, "ack",
                                                 ack == ACK_FLUSHED ? "flushed" : "queued", "backends"));
                return;
        }
        push_signal(d, r);
}

/* ------------------------------------------------------------ admin */

enum {
        JOBK_LIST,
        JOBK_COUNT,          /* add/delete/flush: sum counts over backends */
};

static void log_admin(conn *c, const char *action, const char *detail) {
        char uid[16], gid[16], pid[16];
        snprintf(uid, sizeof uid, "%u", (unsigned) c->peer.uid);
        snprintf(gid, sizeof gid, "%u", (unsigned) c->peer.gid);
        snprintf(pid, sizeof pid, "%d", (int) c->peer.pid);
        log_struct(LOG_NOTICE,
                   LOG_FIELDS({ "MESSAGE_ID", SPW_MESSAGE_ADMIN_ACTION }, { "SPILLWAY_ACTION", action },
                              { "SPILLWAY_PEER_UID", uid }, { "SPILLWAY_PEER_GID", gid }, { "SPILLWAY_PEER_PID", pid }),
                   "admin: %s%s%s (peer uid %s gid %s pid %s)", action, detail ? " " : "", detail ? detail : "", uid, gid, pid);
}

static const char *get_str(json_t *req, const char *key) {
        json_t *v = json_object_get(req, key);
        return json_is_string(v) ? json_string_value(v) : NULL;
}

static void job_done(hub_item *it, bool discard);

static int start_jobs(daemon_t *d, request *r, admin_job_type type, json_t *req, const char *op) {
        engine *e = d->engine;
        const char *backend_name = get_str(req, "backend");
        unsigned n = 0;

        r->job_kind = JOBK_COUNT;
        for (size_t i = 0; i < e->n_slots; i++) {
                backend *b = e->slots[i].b;
                admin_job *j;
                if (!b || !backend_can(b, "read_at"))
                        continue;
                if (backend_name && !streq(backend_name, b->name))
                        continue;
                j = admin_job_new(type);
                if (!j || !(j->backend = strdup(b->name))) {
                        admin_job_free(j);
                        return -ENOMEM;
                }
                j->cookie = r;
                j->done.fn = job_done;
                if (type == JOB_DELETE)
                        j->target = strdup(get_str(req, "target"));
                if (type == JOB_INSERT)
                        j->msg = msg_ref(r->msg);
                backend_post_job(b, j);
                n++;
        }
        if (n == 0) {
                if (backend_name)
                        request_error(r, "%s: no running ban backend named '%s'", op, backend_name);
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
        if (!j || !(j->backend = strdup(b->name))) {
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
        if ((s = get_str(req, "reason")))
                j->filter.reason = strdup(s);
        if ((s = get_str(req, "country")))
                j->filter.country = strdup(s);
        if ((s = get_str(req, "as")))
                j->filter.as = strdup(s);
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

        if (!scope || (!streq(scope, "ip") && !streq(scope, "range"))) {
                request_error(r, "ban.add: scope: expected \"ip\" or \"range\"");
                return;
        }
        if (!target) {
                request_error(r, "ban.add: target: required (the IP or CIDR to ban)");
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
        if (ban_from_target(target, streq(scope, "range"), now + duration, remediation, "cscli", reason, &m->arena, ban, &err) < 0) {
                msg_unref(m);
                request_error(r, "ban.add: target: %s", err.msg);
                return;
        }
        m->sig.scenario = ban->reason;
        m->sig.alert_message = arena_printf(&m->arena, "manual '%s' from 'cscli'", remediation);
        m->sig.start_at = m->sig.stop_at = now;
        m->sig.received_at = now;
        m->sig.id = ++d->engine->next_id;
        m->sig.source_ip = streq(scope, "ip") ? ban->ip_text : NULL;
        m->sig.source_range = streq(scope, "range") ? ban->ip_text : NULL;
        m->sig.bans = ban;
        m->sig.n_bans = 1;
        r->msg = m;
        snprintf(detail, sizeof detail, "%s %s for %s: %s", remediation, target, dur, reason);
        log_admin(r->conn, "ban.add", detail);
        if (start_jobs(d, r, JOB_INSERT, req, "ban.add") < 0)
                request_error(r, "out of memory");
}

static void handle_ban_delete(daemon_t *d, request *r, json_t *req, bool all) {
        const char *target = get_str(req, "target"), *scope = get_str(req, "scope");
        ip_range range;

        if (!all) {
                if (!target) {
                        request_error(r, "ban.delete: target: required (the exact IP or CIDR of the ban)");
                        return;
                }
                if (scope && streq(scope, "range") ? ip_parse_cidr(target, false, &range) < 0 : ip_parse_addr(target, &range) < 0) {
                        request_error(r, "ban.delete: target: '%s' is not %s", target,
                                      scope && streq(scope, "range") ? "a CIDR range" : "an IP address");
                        return;
                }
        }
        log_admin(r->conn, all ? "ban.flush" : "ban.delete", target);
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
        if (d->engine->router) {
                route_result res = { 0 };
                if (router_route(d->engine->router, &m->sig, now_realtime(), &m->arena, &res) < 0) {
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
                        for (size_t k = 0; k < d->engine->n_slots; k++)
                                if (res.matches[i].backends & (UINT64_C(1) << k))
                                        json_array_append_new(json_object_get(p, "backends"), json_string(d->engine->slots[k].name));
                        json_array_append_new(profiles, p);
                }
                for (size_t i = 0; i < res.n_bans; i++)
                        json_array_append_new(bans, ban_to_json(&res.bans[i]));
                for (size_t k = 0; k < d->engine->n_slots; k++)
                        if (res.backends & (UINT64_C(1) << k))
                                json_array_append_new(targets, json_string(d->engine->slots[k].name));
                json_t *warnings = json_array();
                for (size_t i = 0; i < res.n_warnings; i++)
                        json_array_append_new(warnings, json_pack("{s:s, s:s}", "profile", res.warnings[i].profile, "message",
                                                                  res.warnings[i].message));
                json_object_set_new(o, "warnings", warnings);
        } else
                for (size_t k = 0; k < d->engine->n_slots; k++)
                        json_array_append_new(targets, json_string(d->engine->slots[k].name));
        for (size_t i = 0; i < m->sig.n_bans; i++) /* bans the producer sent */
                json_array_append_new(bans, ban_to_json(&m->sig.bans[i]));
        json_object_set_new(o, "ok", json_true());
        json_object_set_new(o, "scenario", json_string(m->sig.scenario));
        json_object_set_new(o, "profiles", profiles);
        json_object_set_new(o, "bans", bans);
        json_object_set_new(o, "backends", targets);
        json_object_set_new(o, "routing", json_string(d->engine->router ? engine_config(d->engine)->profiles : "none (no profiles file: every backend)"));
        request_reply_json(r, o);
}

static void handle_config_check(daemon_t *d, request *r) {
        spw_error err = { 0 };
        _cleanup_(config_freep) spw_config *c = NULL;
        int k = config_load(d->opt.config_path, &d->opt.overrides, &c, &err);
        if (k >= 0)
                k = engine_check_config(c, &d->opt.engine, &err);
        if (k < 0)
                request_reply_json(r, json_pack("{s:b, s:s, s:s}", "ok", 0, "error", err.msg, "config", d->opt.config_path));
        else
                request_reply_json(r, json_pack("{s:b, s:s, s:I}", "ok", 1, "config", d->opt.config_path, "backends",
                                                 (json_int_t) c->n_backends));
}

static void reload_done(daemon_t *d, int k, const char *error, void *userdata) {
        request *r = userdata;
        d->n_waiting--;
        if (k < 0)
                request_error(r, "reload failed, the previous configuration keeps running: %s", error);
        else
                request_reply_json(r, json_pack("{s:b, s:I}", "ok", 1, "backends", (json_int_t) d->engine->n_slots));
        request_completed(d, r);
}

static void handle_admin(daemon_t *d, request *r, json_t *req, const char *op) {
        if (streq(op, "status")) {
                json_t *o = status_json(d);
                request_reply_json(r, o);
        } else if (streq(op, "metrics")) {
                _cleanup_free_ char *text = metrics_text(d);
                request_reply_json(r, json_pack("{s:b, s:s}", "ok", 1, "metrics", text ? text : ""));
        } else if (streq(op, "reload")) {
                log_admin(r->conn, "reload", NULL);
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
        else {
                static const char *const ops[] = { "status", "metrics", "reload", "ban.list", "ban.add", "ban.delete",
                                                   "ban.flush", "route.test", "config.check" };
                const char *close = str_closest(op, ops, ELEMENTSOF(ops));
                request_error(r, "op: unknown operation '%s'%s%s%s", op, close ? "; did you mean '" : "", close ? close : "",
                              close ? "'?" : "");
        }
}

/* ------------------------------------------------------------ one line */

static void handle_line(conn *c, const char *line, size_t len) {
        daemon_t *d = c->d;
        json_error_t jerr;
        json_t *obj;
        request *r = request_new(c);

        if (!r) {
                log_error("out of memory handling a request");
                return;
        }
        c->lines++;
        if (len == 0 || (len == 1 && line[0] == '\r')) {
                d->stats.rejected++;
                request_error(r, "empty line: expected a JSON object");
                return;
        }
        obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!obj) {
                d->stats.rejected++;
                request_error(r, "invalid JSON at line %llu, column %d: %s", (unsigned long long) c->lines, jerr.column, jerr.text);
                return;
        }
        if (!json_is_object(obj)) {
                d->stats.rejected++;
                json_decref(obj);
                request_error(r, "expected a JSON object (a signal, or {\"signal\": {...}, \"ack\": \"flushed\"})");
                return;
        }

        json_t *op = json_object_get(obj, "op");
        json_t *env = json_object_get(obj, "signal");
        if (op) {
                if (!json_is_string(op))
                        request_error(r, "op: expected a string");
                else if (c->kind != LISTENER_ADMIN)
                        request_error(r, "op '%s' is only served on the admin socket; the ingest socket takes signals",
                                      json_string_value(op));
                else if (d->stopping)
                        request_error(r, "spillwayd is stopping");
                else
                        handle_admin(d, r, obj, json_string_value(op));
        } else if (env && json_is_object(env)) {
                json_t *ackv = json_object_get(obj, "ack");
                ack_level ack = ACK_QUEUED;
                const char *key;
                json_t *val;
                bool bad = false;
                json_object_foreach(obj, key, val)
                        if (!streq(key, "signal") && !streq(key, "ack")) {
                                request_error(r, "envelope: unknown key '%s' (an envelope has only \"signal\" and \"ack\")", key);
                                bad = true;
                                break;
                        }
                if (!bad) {
                        if (ackv && (!json_is_string(ackv) || (!streq(json_string_value(ackv), "queued") &&
                                                               !streq(json_string_value(ackv), "flushed")))) {
                                d->stats.rejected++;
                                request_error(r, "ack: expected \"queued\" or \"flushed\"");
                        }
                        else {
                                if (ackv && streq(json_string_value(ackv), "flushed"))
                                        ack = ACK_FLUSHED;
                                handle_signal(d, r, env, ack, len);
                        }
                }
                if (bad)
                        d->stats.rejected++;
        } else
                handle_signal(d, r, obj, ACK_QUEUED, len);
        json_decref(obj);
}

/* ------------------------------------------------------------ connections */

static void conn_update_events(conn *c) {
        uint32_t ev = 0;
        if (!c->paused && !c->eof && !c->d->stopping && c->out.len < OUT_HIGH && c->n_requests < MAX_PIPELINE)
                ev |= EPOLLIN;
        if (c->out.len > 0)
                ev |= EPOLLOUT;
        sd_event_source_set_io_events(c->source, ev);
        sd_event_source_set_enabled(c->source, ev ? SD_EVENT_ON : SD_EVENT_OFF);
}

static int conn_write(conn *c) {
        while (c->out.len > 0) {
                ssize_t n = write(c->fd, c->out.data, c->out.len);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return 0;
                        return -errno;
                }
                strbuf_consume(&c->out, (size_t) n);
        }
        return 0;
}

/* Move the replies that are ready, in request order, to the output buffer. */
static void conn_take_replies(conn *c) {
        while (c->head && c->head->state == REQ_DONE) {
                request *r = c->head;
                strbuf_puts(&c->out, r->reply ? r->reply : "{\"ok\":false,\"error\":\"out of memory\"}");
                strbuf_putc(&c->out, '\n');
                c->head = r->next;
                if (!c->head)
                        c->tail = NULL;
                c->n_requests--;
                r->conn = NULL;
                request_free(r);
        }
}

static void conn_flush_replies(conn *c) {
        conn_take_replies(c);
        if (conn_write(c) < 0 || (c->eof && !c->head && c->out.len == 0)) {
                conn_free(c);
                return;
        }
        /* unparked: lines that were waiting behind the parked one */
        if (!c->paused && c->in.len > 0 && !c->discarding)
                conn_process(c);
        else
                conn_update_events(c);
}

/* Handle every complete line in the input buffer. */
static void conn_process(conn *c) {
        daemon_t *d = c->d;
        size_t max_line = engine_config(d->engine)->max_line;
        size_t start = 0;

        while (!c->paused && !d->stopping && c->n_requests < MAX_PIPELINE) {
                char *nl = memchr(c->in.data + start + c->scanned, '\n', c->in.len - start - c->scanned);
                if (!nl) {
                        c->scanned = c->in.len - start;
                        break;
                }
                size_t len = (size_t) (nl - (c->in.data + start));
                c->scanned = 0;
                if (c->discarding) {
                        c->discarding = false;
                } else if (len > max_line) {
                        request *r = request_new(c);
                        d->stats.oversized++;
                        d->stats.rejected++;
                        if (r)
                                request_error(r, "line %llu is %zu bytes, longer than max_line (%zu): rejected",
                                              (unsigned long long) ++c->lines, len, max_line);
                } else
                        handle_line(c, c->in.data + start, len);
                start += len + 1;
                if (c->paused)
                        break;
        }
        strbuf_consume(&c->in, start);

        /* a line longer than max_line with no newline yet: answer now and
         * skip the rest of it, so a client cannot make us buffer without bound */
        if (!c->discarding && c->in.len > max_line) {
                request *r = request_new(c);
                d->stats.oversized++;
                d->stats.rejected++;
                if (r)
                        request_error(r, "line %llu is longer than max_line (%zu bytes): rejected; skipping to its end",
                                      (unsigned long long) ++c->lines, max_line);
                c->discarding = true;
                strbuf_reset(&c->in);
                c->scanned = 0;
        }
        if (c->discarding) {
                strbuf_reset(&c->in);
                c->scanned = 0;
        }

        if (c->eof && c->in.len > 0 && !c->paused) {
                request *r = request_new(c);
                if (client_warning_allowed())
                        log_warning("client pid %d (uid %u) closed its side with %zu bytes of an unterminated line; discarded",
                                    (int) c->peer.pid, (unsigned) c->peer.uid, c->in.len);
                if (r)
                        request_error(r, "incomplete line at end of input (%zu bytes without a newline): discarded", c->in.len);
                strbuf_reset(&c->in);
                c->scanned = 0;
        }

        /* replies that are ready (without recursing into conn_process) */
        conn_take_replies(c);
        if (conn_write(c) < 0 || (c->eof && !c->head && c->out.len == 0 && c->in.len == 0)) {
                conn_free(c);
                return;
        }
        conn_update_events(c);
}

static int conn_read(conn *c) {
        for (int rounds = 0; rounds < 16; rounds++) {
                ssize_t n;
                if (!strbuf_reserve(&c->in, READ_CHUNK))
                        return -ENOMEM;
                n = read(c->fd, c->in.data + c->in.len, READ_CHUNK);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return 0;
                        return -errno;
                }
                if (n == 0) {
                        c->eof = true;
                        return 0;
                }
                c->in.len += (size_t) n;
                c->in.data[c->in.len] = 0;
                c->last_input = now_monotonic();
                if (c->in.len > engine_config(c->d->engine)->max_line + READ_CHUNK)
                        break; /* let conn_process deal with the oversized line */
        }
        return 0;
}

static int on_conn_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        conn *c = userdata;
        daemon_t *d = c->d;
        int r;

        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                if (revents & EPOLLIN || !(revents & EPOLLOUT)) {
                        r = conn_read(c);
                        if (r < 0) {
                                if (r != -ECONNRESET)
                                        log_debug_errno(r, "client pid %d: read failed: %m", (int) c->peer.pid);
                                conn_free(c);
                                return 0;
                        }
                }
        }
        if (revents & EPOLLOUT) {
                r = conn_write(c);
                if (r < 0) {
                        conn_free(c);
                        return 0;
                }
        }
        conn_process(c); /* may free c */
        engine_wake(d->engine); /* one wake-up per burst of signals */
        return 0;
}

static void conn_free(conn *c) {
        daemon_t *d = c->d;
        request *r = c->head;

        if (c->dirty)
                for (conn **p = &d->dirty; *p; p = &(*p)->dirty_next)
                        if (*p == c) {
                                *p = c->dirty_next;
                                break;
                        }

        /* requests still waiting on workers or queues finish without us */
        while (r) {
                request *n = r->next;
                r->conn = NULL;
                if (r->state == REQ_DONE)
                        request_free(r);
                r = n;
        }
        if (c->prev)
                c->prev->next = c->next;
        else
                d->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        d->n_conns--;
        sd_event_source_disable_unref(c->source);
        close(c->fd);
        strbuf_deinit(&c->in);
        strbuf_deinit(&c->out);
        free(c);
        if (d->n_conns == 0)
                d->idle_since = now_monotonic();
}

/* Out of file descriptors (EMFILE, ENFILE) or kernel memory: the pending
 * connection stays in the backlog and the listener stays readable, so trying
 * again at once would spin (and flood the journal). Stop watching that
 * listener for a moment; its connections wait in the backlog meanwhile. */
#define ACCEPT_PAUSE (100 * USEC_PER_MSEC)

static int on_accept_resume(sd_event_source *s, uint64_t usec, void *userdata) {
        listener *l = userdata;
        if (l->source) /* NULL once the listeners are closed */
                sd_event_source_set_enabled(l->source, SD_EVENT_ON);
        return 0;
}

static void pause_accepting(listener *l, int err) {
        static ratelimit rl = RATELIMIT_INIT(10 * USEC_PER_SEC, 1);
        uint64_t suppressed = 0;

        if (ratelimit_below(&rl, &suppressed))
                log_warning_errno(err, "accept on the %s socket failed: %m; pausing accepts for %lld ms with %u connections open "
                                  "(raise LimitNOFILE= or lower max_connections)%s",
                                  l->kind == LISTENER_ADMIN ? "admin" : "ingest", (long long) (ACCEPT_PAUSE / USEC_PER_MSEC),
                                  l->d->n_conns, suppressed ? "; it happened again since the last warning" : "");
        sd_event_source_set_enabled(l->source, SD_EVENT_OFF);
        if (sd_event_add_time_relative(l->d->event, NULL, CLOCK_MONOTONIC, ACCEPT_PAUSE, 0, on_accept_resume, l) < 0)
                sd_event_source_set_enabled(l->source, SD_EVENT_ON);
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        listener *l = userdata;
        daemon_t *d = l->d;
        socklen_t len = sizeof(struct ucred);
        conn *c;
        int cfd;

        cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                        pause_accepting(l, errno);
                else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                        log_warning_errno(errno, "accept on the %s socket failed: %m", l->kind == LISTENER_ADMIN ? "admin" : "ingest");
                return 0;
        }
        if (d->n_conns >= engine_config(d->engine)->max_connections) {
                static const char msg[] = "{\"ok\":false,\"error\":\"too many connections (max_connections); try again later\"}\n";
                ssize_t k = write(cfd, msg, sizeof msg - 1);
                (void) k;
                close(cfd);
                if (client_warning_allowed())
                        log_warning("refused a connection on the %s socket: %u connections open (max_connections)",
                                    l->kind == LISTENER_ADMIN ? "admin" : "ingest", d->n_conns);
                return 0;
        }
        c = calloc(1, sizeof *c);
        if (!c) {
                close(cfd);
                return 0;
        }
        c->d = d;
        c->id = ++d->next_conn_id;
        c->kind = l->kind;
        c->fd = cfd;
        c->last_input = now_monotonic();
        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &c->peer, &len) < 0)
                c->peer = (struct ucred) { .pid = 0, .uid = (uid_t) -1, .gid = (gid_t) -1 };
        if (sd_event_add_io(d->event, &c->source, cfd, EPOLLIN, on_conn_io, c) < 0) {
                close(cfd);
                free(c);
                return 0;
        }
        c->next = d->conns;
        if (d->conns)
                d->conns->prev = c;
        d->conns = c;
        d->n_conns++;
        d->stats.connections_total++;
        d->idle_since = 0;
        return 0;
}

/* ------------------------------------------------------------ hub results */

static void job_done(hub_item *it, bool discard) {
        admin_job *j = (admin_job *) ((char *) it - offsetof(admin_job, done));
        request *r = j->cookie;
        daemon_t *d = r->d;

        if (discard) {
                admin_job_free(j);
                return;
        }

        if (j->r < 0 && !r->job_error)
                r->job_error = strdup(j->error[0] ? j->error : strerror(-j->r));
        if (j->type == JOB_LIST && j->r >= 0) {
                /* built as text: a list of all bans can be 100,000 rows */
                strbuf b = STRBUF_INIT;
                strbuf_puts(&b, "{\"ok\":true,\"backend\":");
                strbuf_json_string(&b, j->backend);
                strbuf_printf(&b, ",\"total\":%zu,\"rows\":[", j->total);
                strbuf_append(&b, j->rows.data ? j->rows.data : "", j->rows.len);
                strbuf_puts(&b, "]}");
                free(r->list_reply);
                r->list_reply = b.oom ? NULL : strbuf_steal(&b);
                strbuf_deinit(&b);
                if (!r->list_reply && !r->job_error)
                        r->job_error = strdup("out of memory");
        }
        r->job_count += j->count;
        if (j->type == JOB_INSERT && j->r >= 0)
                r->job_count++;
        admin_job_free(j);

        if (--r->jobs_pending > 0)
                return;
        d->n_waiting--;
        if (r->job_error)
                request_error(r, "%s", r->job_error);
        else if (r->job_kind == JOBK_LIST) {
                free(r->reply);
                r->reply = TAKE_PTR(r->list_reply);
                r->state = REQ_DONE;
        }
        else
                request_reply_json(r, json_pack("{s:b, s:I}", "ok", 1, "count", (json_int_t) r->job_count));
        request_completed(d, r);
}

void server_process_hub(daemon_t *d) {
        hub *h = engine_hub(d->engine);

        hub_dispatch(h); /* replies to flushed acks and admin jobs */
        if (hub_take_space(h)) {
                server_retry_parked(d);
                engine_wake(d->engine);
        }
        if (hub_take_backend_event(h))
                engine_reap(d->engine);
        server_flush_dirty(d);
}

/* ------------------------------------------------------------ parking */

#define request_of_park(it) ((request *) ((char *) (it) - offsetof(request, park)))

static int park_retry_one(park_item *it, usec_t *deadline, void *userdata) {
        daemon_t *d = userdata;
        request *r = request_of_park(it);
        push_result res;

        if (engine_push(d->engine, r->msg, &r->fan, &res) == -EAGAIN) {
                /* after a reload it may wait on another backend */
                *deadline = MIN(*deadline, now_monotonic() + res.blocked->cfg->q.block_timeout);
                return -EAGAIN;
        }
        if (r->conn)
                r->conn->paused = false;
        signal_accepted(d, r, &res);
        request_completed(d, r);
        return 0;
}

static void park_expire_one(park_item *it, void *userdata) {
        daemon_t *d = userdata;
        request *r = request_of_park(it);

        if (r->conn)
                r->conn->paused = false;
        d->stats.blocked_timeouts++;
        fanout_release(&r->fan);
        if (d->stopping)
                request_error(r, "spillwayd is stopping: signal not accepted, send it again later");
        else
                request_error(r, "a backend queue stayed full for block_timeout (on_full: block): signal not accepted, "
                              "retry later");
        request_completed(d, r);
}

static void park_after(void *userdata) {
        server_flush_dirty(userdata);
}

int server_init(daemon_t *d) {
        return park_new(d->event, park_retry_one, park_expire_one, park_after, d, &d->park);
}

void server_retry_parked(daemon_t *d) {
        park_retry(d->park);
        server_flush_dirty(d);
}

static void reroute_one(park_item *it, void *userdata) {
        daemon_t *d = userdata;
        request *r = request_of_park(it);
        fanout_release(&r->fan);
        if (engine_route(d->engine, r->msg, &r->fan) < 0)
                log_warning("re-routing a waiting signal after the reload failed; it waits for its old backends");
}

void server_reroute_parked(daemon_t *d) {
        park_foreach(d->park, reroute_one, d);
        server_retry_parked(d);
}

void server_expire_parked(daemon_t *d, usec_t now) {
        if (d->stopping)
                park_expire_all(d->park);
        else
                park_expire(d->park, now);
        server_flush_dirty(d);
}

/* A client that sent part of a line and then nothing for client_timeout is
 * disconnected (with an error line), so idle half-lines cannot pin memory. */
void server_expire_idle(daemon_t *d, usec_t now) {
        usec_t limit = engine_config(d->engine)->client_timeout;
        conn *c = d->conns;
        if (limit <= 0)
                return;
        while (c) {
                conn *next = c->next;
                if ((c->in.len > 0 || c->discarding) && !c->paused && now - c->last_input > limit) {
                        char line[160];
                        int n = snprintf(line, sizeof line,
                                         "{\"ok\":false,\"error\":\"incomplete line and no data for %lld s (client_timeout): disconnected\"}\n",
                                         (long long) (limit / USEC_PER_SEC));
                        if (client_warning_allowed())
                                log_warning("client pid %d (uid %u): %zu bytes of an unfinished line and no data for %lld s; disconnecting",
                                            (int) c->peer.pid, (unsigned) c->peer.uid, c->in.len, (long long) (limit / USEC_PER_SEC));
                        if (!c->head) {
                                ssize_t k = write(c->fd, line, (size_t) n);
                                (void) k;
                        }
                        conn_free(c);
                }
                c = next;
        }
}

void server_pause_all(daemon_t *d) {
        for (conn *c = d->conns; c; c = c->next)
                conn_update_events(c);
}

/* ------------------------------------------------------------ listeners */

static int make_listener(const char *path, mode_t mode, int *ret, spw_error *err) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1;
        char dir[sizeof sa.sun_path];
        char *slash;

        if (strlen(path) >= sizeof sa.sun_path)
                return spw_error_set(err, -ENAMETOOLONG, "socket path %s is longer than %zu bytes", path, sizeof sa.sun_path - 1);
        strcpy(sa.sun_path, path);
        snprintf(dir, sizeof dir, "%s", path);
        if ((slash = strrchr(dir, '/')) && slash != dir) {
                *slash = 0;
                if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
                        int r = negative_errno();
                        return spw_error_set(err, r, "cannot create the socket directory %s: %s", dir, strerror(-r));
                }
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return spw_error_set(err, negative_errno(), "socket(): %s", strerror(errno));

        /* a stale socket from a previous run: remove it only if nobody answers */
        struct stat st;
        if (lstat(path, &st) == 0) {
                if (!S_ISSOCK(st.st_mode))
                        return spw_error_set(err, -EEXIST, "%s exists and is not a socket: remove it or choose another path", path);
                int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (probe >= 0 && connect(probe, (struct sockaddr *) &sa, sizeof sa) == 0) {
                        close(probe);
                        return spw_error_set(err, -EADDRINUSE, "%s is in use by another running spillwayd", path);
                }
                if (probe >= 0)
                        close(probe);
                unlink(path);
        }
        mode_t old = umask(0777 & ~mode);
        int k = bind(fd, (struct sockaddr *) &sa, sizeof sa);
        umask(old);
        if (k < 0) {
                int r = negative_errno();
                return spw_error_set(err, r, "cannot bind %s: %s", path, strerror(-r));
        }
        if (chmod(path, mode) < 0 || listen(fd, SOMAXCONN) < 0) {
                int r = negative_errno();
                unlink(path);
                return spw_error_set(err, r, "cannot listen on %s: %s", path, strerror(-r));
        }
        *ret = TAKE_FD(fd);
        return 0;
}

int server_open_listeners(daemon_t *d, spw_error *err) {
        const spw_config *c = engine_config(d->engine);
        char **names = NULL;
        int n = sd_listen_fds_with_names(1, &names);
        int r = 0;

        d->n_listeners = 0;
        if (n < 0)
                return spw_error_set(err, n, "socket activation: %s", strerror(-n));
        for (int i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i;
                const char *name = names && names[i] ? names[i] : "unknown";
                listener_kind kind;
                if (streq(name, "ingest"))
                        kind = LISTENER_INGEST;
                else if (streq(name, "admin"))
                        kind = LISTENER_ADMIN;
                else if (n == 1 || (i == 0 && streq(name, "unknown")))
                        kind = LISTENER_INGEST; /* a single unnamed socket: ingest */
                else {
                        r = spw_error_set(err, -EINVAL, "socket activation: fd %d has name '%s'; expected FileDescriptorName=ingest or admin",
                                          fd, name);
                        break;
                }
                if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) <= 0) {
                        r = spw_error_set(err, -EINVAL, "socket activation: fd %d (%s) is not a listening unix stream socket", fd, name);
                        break;
                }
                fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
                fcntl(fd, F_SETFD, FD_CLOEXEC);
                bool dup = false;
                for (size_t k = 0; k < d->n_listeners; k++)
                        dup |= d->listeners[k].kind == kind;
                if (dup || d->n_listeners >= ELEMENTSOF(d->listeners)) {
                        r = spw_error_set(err, -EINVAL, "socket activation: more than one '%s' socket", name);
                        break;
                }
                d->listeners[d->n_listeners++] = (listener) { .d = d, .kind = kind, .fd = fd, .activated = true };
        }
        if (names) {
                for (int i = 0; i < n; i++)
                        free(names[i]);
                free(names);
        }
        if (r < 0)
                return r;

        /* whatever systemd did not pass, we open on the configured paths */
        for (listener_kind kind = LISTENER_INGEST; kind <= LISTENER_ADMIN; kind++) {
                bool have = false;
                for (size_t k = 0; k < d->n_listeners; k++)
                        have |= d->listeners[k].kind == kind;
                if (have || n > 0)
                        continue; /* under socket activation, only what systemd passed */
                const char *path = kind == LISTENER_ADMIN ? c->admin_socket : c->ingest_socket;
                int fd;
                r = make_listener(path, kind == LISTENER_ADMIN ? 0600 : 0660, &fd, err);
                if (r < 0)
                        return r;
                d->listeners[d->n_listeners++] = (listener) { .d = d, .kind = kind, .fd = fd, .path = strdup(path) };
        }
        for (size_t k = 0; k < d->n_listeners; k++) {
                listener *l = &d->listeners[k];
                r = sd_event_add_io(d->event, &l->source, l->fd, EPOLLIN, on_accept, l);
                if (r < 0)
                        return spw_error_set(err, r, "event loop: %s", strerror(-r));
        }
        return 0;
}

void server_close_listeners(daemon_t *d) {
        for (size_t k = 0; k < d->n_listeners; k++) {
                listener *l = &d->listeners[k];
                l->source = sd_event_source_disable_unref(l->source);
                if (l->fd >= 0)
                        close(l->fd);
                l->fd = -1;
                if (l->path) {
                        unlink(l->path);
                        free(l->path);
                        l->path = NULL;
                }
        }
        d->n_listeners = 0;
}

void server_close_all(daemon_t *d) {
        while (d->conns)
                conn_free(d->conns);
        /* requests left waiting: without a connection, expiring frees them */
        if (d->park)
                park_expire_all(d->park);
        d->park = park_free(d->park);
}
