/* SPDX-License-Identifier: MIT */
/*
 * Ingest and adminops driven the way any transport drives them (here a
 * transport of its own, with no socket and no line framing): build a
 * request with a completion callback, hand it the parsed JSON, take the
 * reply at once when the request is done, or in the callback when it
 * waited (a flushed ack, an admin job on a worker, a reload prepared off
 * the loop, a full block queue). Real backends on the mock plugin.
 */
#include <poll.h>
#include <string.h>

#include "adminops.h"
#include "daemon.h"
#include "ingest.h"
#include "../engine/test-common.h"

static int completions;
static bool last_kept_line;    /* the last signal's message kept the producer's line */

static void on_reply(request *r, void *userdata) {
        completions++;
}

static bool completed(void *userdata) {
        return completions >= *(int *) userdata;
}

/* One request through ingest or adminops; waits for the reply if needed. */
static json_t *ask(daemon_t *d, const char *text, bool admin) {
        json_error_t jerr;
        json_t *req = json_loads(text, 0, &jerr);
        request *r = request_new(on_reply, NULL, NULL, 1);
        int before = completions, want = before + 1;

        CHECK(req && r);
        if (admin)
                adminops_handle(d, r, req, json_string_value(json_object_get(req, "op")));
        else
                ingest_handle(d, r, req, text, strlen(text));
        json_decref(req);
        ingest_wake(d); /* after each burst; here a burst of one */
        if (r->state != REQ_DONE)
                hub_wait(engine_hub(d->engine), completed, &want);
        else
                CHECK_EQ(completions, before); /* done at once: no callback */
        CHECK_EQ(r->state, REQ_DONE);
        json_t *reply = json_loads(r->reply, 0, &jerr);
        CHECK(reply);
        last_kept_line = r->msg && r->msg->raw;
        request_free(r);
        return reply;
}

static bool ok(json_t *reply) {
        return json_is_true(json_object_get(reply, "ok"));
}

static const char *str(json_t *reply, const char *key) {
        return json_string_value(json_object_get(reply, key));
}

int main(void) {
        testdir t;
        daemon_t d = { 0 };
        spw_error err = { 0 };
        char config_path[128];
        json_t *rep;

        testdir_init(&t);
        testdir_write(&t, "spillway.yaml", "queue:\n  flush_interval: 20ms\n");
        testdir_mock_backend(&t, "bans", NULL, NULL);
        snprintf(config_path, sizeof config_path, "%s/spillway.yaml", t.path);
        d.opt.config_path = config_path;
        d.opt.overrides = (config_overrides) { .state_dir = t.path, .runtime_dir = t.path };
        d.opt.engine.allow_unsafe_plugins = true;
        d.started_at = now_realtime();
        CHECK_OK(sd_event_new(&d.event));
        CHECK_OK(engine_new(testdir_load(&t), &d.opt.engine, &d.engine, &err));
        CHECK_OK(ingest_init(&d));

        /* a bare signal: acknowledged "queued" at once */
        rep = ask(&d, "{\"scenario\":\"unit/bare\",\"source\":{\"Ip\":\"192.0.2.1\"}}", false);
        CHECK(ok(rep));
        CHECK_STREQ(str(rep, "ack"), "queued");
        json_decref(rep);
        /* an envelope asking for "flushed": answered through the callback */
        rep = ask(&d, "{\"signal\":{\"scenario\":\"unit/env\",\"source\":{\"Ip\":\"192.0.2.2\"}},\"ack\":\"flushed\"}", false);
        CHECK(ok(rep));
        CHECK_STREQ(str(rep, "ack"), "flushed");
        CHECK_EQ(testdir_count(&t, "bans", "unit/env"), 1);
        /* issue 17: only a disk spool reads the line; a memory queue does not keep a copy */
        CHECK(!last_kept_line);
        json_decref(rep);
        /* errors name the problem */
        rep = ask(&d, "{\"signal\":{\"scenario\":\"x\"},\"ack\":\"later\"}", false);
        CHECK(!ok(rep));
        CHECK_STREQ(str(rep, "error"), "ack: expected \"queued\" or \"flushed\"");
        json_decref(rep);
        rep = ask(&d, "{\"signal\":{\"scenario\":\"x\"},\"extra\":1}", false);
        CHECK_CONTAINS(str(rep, "error"), "envelope: unknown key 'extra'");
        json_decref(rep);
        CHECK_EQ(d.stats.accepted, 2);

        /* admin: status at once; a ban through a job on the worker */
        rep = ask(&d, "{\"op\":\"status\"}", true);
        CHECK(ok(rep));
        CHECK_EQ(json_array_size(json_object_get(rep, "backends")), 1);
        json_decref(rep);
        rep = ask(&d, "{\"op\":\"ban.add\",\"scope\":\"ip\",\"target\":\"192.0.2.50\",\"duration\":\"1h\",\"reason\":\"unit\"}", true);
        CHECK(ok(rep));
        CHECK_EQ(json_integer_value(json_object_get(rep, "count")), 1);
        json_decref(rep);
        rep = ask(&d, "{\"op\":\"ban.list\"}", true);
        CHECK(ok(rep));
        CHECK_EQ(json_integer_value(json_object_get(rep, "total")), 1);
        CHECK_STREQ(str(json_array_get(json_object_get(rep, "rows"), 0), "iptext"), "192.0.2.50");
        json_decref(rep);
        rep = ask(&d, "{\"op\":\"statsu\"}", true);
        CHECK_CONTAINS(str(rep, "error"), "did you mean 'status'?");
        json_decref(rep);

        /* a reload: prepared on a thread, answered once it runs */
        testdir_mock_backend(&t, "second", NULL, NULL);
        rep = ask(&d, "{\"op\":\"reload\"}", true);
        CHECK(ok(rep));
        CHECK_EQ(json_integer_value(json_object_get(rep, "backends")), 2);
        CHECK_EQ(d.reloads, 1);
        CHECK(!daemon_reloading(&d));
        json_decref(rep);
        rep = ask(&d, "{\"signal\":{\"scenario\":\"unit/after\",\"source\":{\"Ip\":\"192.0.2.3\"}},\"ack\":\"flushed\"}", false);
        CHECK(ok(rep));
        CHECK_EQ(testdir_count(&t, "second", "unit/after"), 1);
        json_decref(rep);

        /* stopping: admin refuses, waiting requests would be expired */
        d.stopping = true;
        rep = ask(&d, "{\"op\":\"status\"}", true);
        CHECK_STREQ(str(rep, "error"), "spillwayd is stopping");
        json_decref(rep);

        ingest_done(&d);
        engine_stop(d.engine, now_monotonic() + 5 * USEC_PER_SEC);
        while (!engine_all_stopped(d.engine)) {
                struct pollfd p = { .fd = hub_fd(engine_hub(d.engine)), .events = POLLIN };
                poll(&p, 1, 10);
                hub_dispatch(engine_hub(d.engine));
        }
        engine_free(d.engine);
        msg_pool_deinit(&d.msgs); /* as daemon_run: after every holder of a message */
        sd_event_unref(d.event);
        plugin_unload_all();
        testdir_remove(t.path);
        return 0;
}
