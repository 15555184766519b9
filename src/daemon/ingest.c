/* SPDX-License-Identifier: MIT */
/*
 * Ingest: what happens to a signal, whichever transport brought it. Given a
 * parsed request (a bare signal or an envelope), parse the signal into a
 * message, route it, push it to every routed backend's queue, and answer
 * at the acknowledgement level asked for: at once ("queued"), when every
 * backend has flushed it ("flushed", through the hub), or after waiting for
 * room in a full "block" queue (the park, bounded by block_timeout).
 *
 * The transport learns that a request waits from its state when
 * ingest_handle() returns (REQ_PARKED: stop reading from that client, that
 * is the "block the producer" policy) and gets the reply through the
 * request's completion callback.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "ingest.h"
#include "log.h"
#include "sigmodel.h"
#include "strbuf.h"
#include "strutil.h"

/* ------------------------------------------------------------ signals */

static void park_request(daemon_t *d, request *r, backend *blocked) {
        r->state = REQ_PARKED;
        park_add(d->park, &r->park, now_monotonic() + backend_cfg(blocked)->q.block_timeout, r->owner);
}

/* The reply to a signal. Built by hand, not with jansson: this is the hot
 * path (one per signal) and every member is a number or a backend name. */
static void reply_signal(daemon_t *d, request *r) {
        spw_msg *m = r->msg;
        strbuf b = STRBUF_INIT;

        strbuf_reserve(&b, 96); /* the common reply in one allocation */
        if ((m->ack == ACK_FLUSHED || m->wait_spool) && atomic_load(&m->n_failed) > 0) {
                char *why = atomic_load(&m->failure);
                d->stats.failed_acks++;
                strbuf_printf(&b, "{\"ok\":false,\"id\":%llu,\"ack\":\"%s\",\"error\":", (unsigned long long) m->sig.id,
                              m->ack == ACK_FLUSHED ? "flushed" : "queued");
                strbuf_json_string(&b, why ? why : "a backend failed");
        } else {
                if (m->ack == ACK_FLUSHED)
                        d->stats.flushed_acks++;
                strbuf_puts(&b, "{\"ok\":true,\"id\":");
                strbuf_put_uint(&b, m->sig.id);
                strbuf_puts(&b, m->ack == ACK_FLUSHED ? ",\"ack\":\"flushed\"" : ",\"ack\":\"queued\"");
                if (r->dropped) {
                        strbuf_puts(&b, ",\"dropped\":");
                        strbuf_json_string(&b, r->dropped);
                }
                if (r->unavailable) {
                        strbuf_puts(&b, ",\"unavailable\":");
                        strbuf_json_string(&b, r->unavailable);
                }
        }
        if (m->sig.n_bans > 0) {
                strbuf_puts(&b, ",\"bans\":");
                strbuf_put_uint(&b, m->sig.n_bans);
        }
        if (m->bans_refused) {
                strbuf_puts(&b, ",\"bans_refused\":");
                strbuf_json_string(&b, m->bans_refused);
        }
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
        if (r->msg->ack == ACK_FLUSHED || r->msg->wait_spool) {
                /* "flushed": the backends; "queued" with disk spools: the
                 * spools' writes (group-committed, off the loop) */
                r->state = REQ_WAIT_FLUSH;
                d->n_waiting++;
        } else
                reply_signal(d, r);
}

/* Every backend settled a message acknowledged "flushed" (hub). */
static void msg_done(spw_msg *m) {
        request *r = m->cookie;
        if (r && r->state == REQ_WAIT_FLUSH) {
                daemon_t *d = r->ctx;
                d->n_waiting--;
                reply_signal(d, r);
                request_complete(r);
        }
}

/* The producer's line, kept with the message for the disk spools that
 * write it (copied: the read buffer moves on). Only then: a copy per
 * signal was ~900 bytes of memory and 3-6 % of the loop's CPU that no
 * memory queue reads. */
static void keep_raw(spw_msg *m, json_t *sigobj, const char *line, size_t line_len) {
        if (m->raw)
                return;
        if (line) {
                m->raw = arena_strndup(&m->arena, line, line_len);
                m->raw_len = m->raw ? line_len : 0;
        } else {
                char *text = json_dumps(sigobj, JSON_COMPACT);
                if (text) {
                        m->raw = arena_strdup(&m->arena, text);
                        m->raw_len = m->raw ? strlen(text) : 0;
                        free(text);
                }
        }
}

static bool routed_to_spool(const fanout *f) {
        for (size_t i = 0; i < f->n_targets; i++)
                if (backend_is_durable(f->targets[i]))
                        return true;
        return false;
}

/* Try to push a routed message; the request is done, waiting, or parked.
 * A parked one keeps its line: a reload may route it to a disk spool. */
static void push_signal(daemon_t *d, request *r, json_t *sigobj, const char *line, size_t line_len) {
        push_result res;
        int k;

        if (routed_to_spool(&r->fan))
                keep_raw(r->msg, sigobj, line, line_len);
        msg_pool_learn(&d->msgs, r->msg); /* complete: parsed, routed, its line kept if a spool needs it */
        k = engine_push(d->engine, r->msg, &r->fan, &res);
        if (k == -EAGAIN) {
                keep_raw(r->msg, sigobj, line, line_len);
                park_request(d, r, res.blocked);
        } else
                signal_accepted(d, r, &res);
}

/* No profile wants it: accepted, and nothing to deliver. */
static bool routed_nowhere(const request *r) {
        return r->fan.n_targets == 0 && !r->fan.unavailable;
}

static void accept_routed_nowhere(daemon_t *d, request *r) {
        d->stats.accepted++;
        json_t *o = json_pack("{s:b, s:I, s:s, s:[]}", "ok", 1, "id", (json_int_t) r->msg->sig.id, "ack",
                              r->msg->ack == ACK_FLUSHED ? "flushed" : "queued", "backends");
        if (o && r->msg->bans_refused)
                json_object_set_new(o, "bans_refused", json_string(r->msg->bans_refused));
        request_reply_json(r, o);
}

/* Does any backend keep a disk spool (which keeps the producer's line)? */
static bool engine_has_spool(daemon_t *d) {
        const spw_config *c = engine_config(d->engine);
        for (size_t i = 0; i < c->n_backends; i++)
                if (c->backends[i].q.durability == DURABILITY_DISK)
                        return true;
        return false;
}

static void handle_signal(daemon_t *d, request *r, json_t *sigobj, ack_level ack, const char *line, size_t line_len) {
        spw_error err = { 0 };
        spw_msg *m;
        int k;

        r->ctx = d;
        /* One arena chunk holds the whole message in the common case: a
         * 900-byte CrowdSec alert takes ~400 bytes parsed and ~600 more
         * once routed (its bans), and the line too when a disk spool keeps
         * it (keep_raw). A message that outgrows its first chunk takes a
         * second one twice as large: a first chunk of half the line made
         * a full 10,000-signal queue 3.1 KiB per signal (+28 MiB); a 900-byte
         * line gets 1,308 bytes, 1,008 of them used, until the pool has
         * seen a window of messages: then the largest of them plus 1/16
         * (1,088 bytes here; msg_pool_learn). */
        m = msg_pool_get(&d->msgs, MAX((size_t) 1024, line_len * 3 / 5 + 768 + (engine_has_spool(d) ? line_len : 0)));
        if (!m) {
                request_error(r, "out of memory");
                return;
        }
        k = signal_from_json(sigobj, &m->arena, &m->sig, &err);
        if (k < 0) {
                d->stats.rejected++;
                msg_unref(m);
                request_error(r, "%s", k == -ENOMEM ? "out of memory" : err.msg);
                return;
        }
        m->sig.id = engine_next_signal_id(d->engine);
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
        if (routed_nowhere(r)) {
                accept_routed_nowhere(d, r);
                return;
        }
        push_signal(d, r, sigobj, line, line_len);
}

/* A bare signal, or an envelope {"signal": {...}, "ack": "queued"|"flushed"}. */
void ingest_handle(daemon_t *d, request *r, json_t *obj, const char *line, size_t size) {
        json_t *env = json_object_get(obj, "signal");
        json_t *ackv;
        ack_level ack = ACK_QUEUED;
        const char *key;
        json_t *val;

        if (!env) {
                handle_signal(d, r, obj, ACK_QUEUED, line, size);
                return;
        }
        if (!json_is_object(env)) {
                d->stats.rejected++;
                request_error(r, "signal: expected an object (the signal inside an envelope {\"signal\": {...}, "
                              "\"ack\": \"flushed\"}), got %s", json_is_string(env) ? "a string" : json_is_array(env) ? "an array" :
                              json_is_null(env) ? "null" : json_is_boolean(env) ? "a boolean" : "a number");
                return;
        }
        json_object_foreach(obj, key, val)
                if (!streq(key, "signal") && !streq(key, "ack")) {
                        d->stats.rejected++;
                        request_error(r, "envelope: unknown key '%s' (an envelope has only \"signal\" and \"ack\")", key);
                        return;
                }
        ackv = json_object_get(obj, "ack");
        if (ackv && (!json_is_string(ackv) ||
                     (!streq(json_string_value(ackv), "queued") && !streq(json_string_value(ackv), "flushed")))) {
                d->stats.rejected++;
                request_error(r, "ack: expected \"queued\" or \"flushed\"");
                return;
        }
        if (ackv && streq(json_string_value(ackv), "flushed"))
                ack = ACK_FLUSHED;
        handle_signal(d, r, env, ack, line, size);
}

void ingest_wake(daemon_t *d) {
        engine_wake(d->engine);
}

/* ------------------------------------------------------------ waiting for room */

#define request_of_park(it) ((request *) ((char *) (it) - offsetof(request, park)))

static int park_retry_one(park_item *it, usec_t *deadline, void *userdata) {
        daemon_t *d = userdata;
        request *r = request_of_park(it);
        push_result res;

        if (routed_nowhere(r)) { /* re-routed by a reload */
                accept_routed_nowhere(d, r);
                request_complete(r);
                return 0;
        }
        if (engine_push(d->engine, r->msg, &r->fan, &res) == -EAGAIN) {
                /* after a reload it may wait on another backend */
                *deadline = MIN(*deadline, now_monotonic() + backend_cfg(res.blocked)->q.block_timeout);
                return -EAGAIN;
        }
        signal_accepted(d, r, &res);
        request_complete(r);
        return 0;
}

static void park_expire_one(park_item *it, void *userdata) {
        daemon_t *d = userdata;
        request *r = request_of_park(it);

        d->stats.blocked_timeouts++;
        fanout_release(&r->fan);
        if (d->stopping)
                request_error(r, "spillwayd is stopping: signal not accepted, send it again later");
        else
                request_error(r, "a backend queue stayed full for block_timeout (on_full: block): signal not accepted, "
                              "retry later");
        request_complete(r);
}

static void park_after(void *userdata) {
        daemon_flush_replies(userdata);
}

int ingest_init(daemon_t *d) {
        return park_new(d->event, park_retry_one, park_expire_one, park_after, d, &d->park);
}

void ingest_done(daemon_t *d) {
        /* requests left waiting: their transports are gone, expiring frees them */
        if (d->park)
                park_expire_all(d->park);
        d->park = park_free(d->park);
}

void ingest_retry_parked(daemon_t *d) {
        park_retry(d->park);
}

static void reroute_one(park_item *it, void *userdata) {
        daemon_t *d = userdata;
        request *r = request_of_park(it);
        fanout f = { 0 };

        if (engine_route(d->engine, r->msg, &f) < 0) {
                fanout_release(&f);
                log_warning("re-routing a waiting signal after the reload failed (out of memory); it waits for its old backends");
                return;
        }
        fanout_release(&r->fan);
        r->fan = f;
}

void ingest_reroute_parked(daemon_t *d) {
        park_foreach(d->park, reroute_one, d);
        ingest_retry_parked(d);
}

void ingest_expire_parked(daemon_t *d) {
        if (d->stopping)
                park_expire_all(d->park);
        else
                park_expire(d->park, now_monotonic());
}
