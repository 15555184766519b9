/* SPDX-License-Identifier: MIT */
/*
 * The engine with real backends on the mock plugin: start, route and push
 * (all-or-nothing against a full block queue, which reports room through
 * the hub), routing twice gives the same bans (a reload re-routes waiting
 * signals), and a reload prepared on another thread then committed: the
 * unchanged backend is kept (same worker), the changed one retires and is
 * reaped, the new one starts; a reload with no usable backend changes
 * nothing; a backend whose init hangs is abandoned without unloading its
 * plugin.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "engine.h"
#include "test-common.h"

static int msgs_done;

static void on_msg_done(spw_msg *m) {
        msgs_done++;
}

static bool enough_msgs(void *userdata) {
        return msgs_done >= *(int *) userdata;
}

static bool no_retiring(void *userdata) {
        engine *e = userdata;
        if (hub_take_backend_event(engine_hub(e)))
                engine_reap(e);
        return engine_n_retiring(e) == 0;
}

static bool all_stopped(void *userdata) {
        return engine_all_stopped(userdata);
}

/* Drain and stop as the daemon does, then free. */
static void stop(engine *e) {
        engine_stop(e, now_monotonic() + 10 * USEC_PER_SEC);
        hub_wait(engine_hub(e), all_stopped, e);
        engine_free(e);
}

static spw_msg *new_msg(engine *e, const char *scenario, ack_level ack, bool remediation) {
        spw_msg *m = msg_new();
        CHECK(m);
        m->sig.id = engine_next_signal_id(e);
        m->sig.scenario = arena_strdup(&m->arena, scenario);
        m->sig.received_at = now_realtime();
        m->sig.source_ip = "192.0.2.20";
        if (remediation) {
                static const spw_kv labels[] = { { "remediation", "true" } };
                m->sig.labels = labels;
                m->sig.n_labels = 1;
        }
        m->ack = ack;
        m->on_done = on_msg_done;
        return m;
}

static engine *start(testdir *t) {
        engine_options o = { .allow_unsafe_plugins = true };
        spw_error err = { 0 };
        engine *e = NULL;

        testdir_init(t);
        testdir_write(t, "spillway.yaml", "queue:\n  flush_interval: 20ms\n");
        testdir_mock_backend(t, "a", NULL, NULL);
        testdir_mock_backend(t, "b", NULL, NULL);
        CHECK_OK(engine_new(testdir_load(t), &o, &e, &err));
        return e;
}

static void test_route_and_push(void) {
        testdir t;
        engine *e = start(&t);
        fanout f = { 0 };
        push_result res;
        int want = 1;

        CHECK_EQ(engine_n_backends(e), 2);
        CHECK_STREQ(engine_backend_name(e, 0), "a");
        CHECK_STREQ(backend_name(engine_backend(e, 1)), "b");
        CHECK(engine_router(e) == NULL); /* no profiles file: every backend */
        CHECK(engine_backend(e, 2) == NULL);

        spw_msg *m = new_msg(e, "unit/both", ACK_FLUSHED, false);
        CHECK_OK(engine_route(e, m, &f));
        CHECK_EQ(f.n_targets, 2);
        msgs_done = 0;
        CHECK_OK(engine_push(e, m, &f, &res));
        fanout_release(&f);
        engine_wake(e);
        hub_wait(engine_hub(e), enough_msgs, &want);
        CHECK_EQ(atomic_load(&m->n_failed), 0);
        msg_unref(m);
        CHECK_EQ(testdir_count(&t, "a", "unit/both"), 1);
        CHECK_EQ(testdir_count(&t, "b", "unit/both"), 1);
        stop(e);
        testdir_remove(t.path);
}

static void test_full_block_queue_pushes_nothing(void) {
        engine_options o = { .allow_unsafe_plugins = true };
        spw_error err = { 0 };
        engine *e = NULL;
        testdir t;
        fanout f = { 0 };
        push_result res;

        testdir_init(&t);
        testdir_write(&t, "spillway.yaml", "queue:\n  flush_interval: 20ms\n");
        testdir_mock_backend(&t, "fast", NULL, NULL);
        testdir_mock_backend(&t, "slow", "queue_size: 1\non_full: block\n", "  delay: 200ms\n");
        CHECK_OK(engine_new(testdir_load(&t), &o, &e, &err));
        backend *slow = engine_backend(e, 1);

        for (int i = 0; i < 2; i++) {
                spw_msg *m = new_msg(e, "unit/fill", ACK_QUEUED, false);
                CHECK_OK(engine_route(e, m, &f));
                CHECK_OK(engine_push(e, m, &f, &res));
                fanout_release(&f);
                msg_unref(m);
                engine_wake(e);
                for (int k = 0; i == 0 && k < 500 && backend_queue_depth(slow) > 0; k++)
                        usleep(2000);
        }
        spw_msg *m = new_msg(e, "unit/blocked", ACK_QUEUED, false);
        CHECK_OK(engine_route(e, m, &f));
        CHECK_EQ(engine_push(e, m, &f, &res), -EAGAIN);
        CHECK(res.blocked == slow);
        CHECK(engine_busy(e));
        /* the slow worker makes room: the hub says so */
        for (int k = 0; k < 1000 && !hub_take_space(engine_hub(e)); k++)
                usleep(2000);
        CHECK_OK(engine_push(e, m, &f, &res));
        fanout_release(&f);
        msg_unref(m);
        stop(e);
        /* all or nothing: the refused push gave the fast backend nothing */
        CHECK_EQ(testdir_count(&t, "fast", "unit/blocked"), 1);
        CHECK_EQ(testdir_count(&t, "slow", "unit/blocked"), 1);
        testdir_remove(t.path);
}

static void test_routing_twice_gives_the_same_bans(void) {
        engine_options o = { .allow_unsafe_plugins = true };
        spw_error err = { 0 };
        engine *e = NULL;
        testdir t;
        fanout f = { 0 };

        testdir_init(&t);
        testdir_write(&t, "spillway.yaml", "queue:\n  flush_interval: 20ms\n");
        testdir_mock_backend(&t, "db", NULL, NULL);
        testdir_write(&t, "profiles.yaml",
                      "name: ban_it\nfilters:\n - Alert.Remediation == true\ndecisions:\n - type: ban\n   duration: 4h\n");
        CHECK_OK(engine_new(testdir_load(&t), &o, &e, &err));
        CHECK(engine_router(e) != NULL);
        spw_msg *m = new_msg(e, "unit/ban", ACK_QUEUED, true);
        for (int i = 0; i < 3; i++) {
                CHECK_OK(engine_route(e, m, &f));
                CHECK_EQ(f.n_targets, 1);
                CHECK_EQ(m->sig.n_bans, 1);
                CHECK_STREQ(m->sig.bans[0].ip_text, "192.0.2.20");
                fanout_release(&f);
        }
        msg_unref(m);
        stop(e);
        testdir_remove(t.path);
}

typedef struct prepare_args {
        engine_next *n;
        spw_config *c;
        spw_error err;
        int r;
} prepare_args;

static void *prepare_thread(void *userdata) {
        prepare_args *a = userdata;
        a->r = engine_next_prepare(a->n, a->c, &a->err);
        return NULL;
}

/* Prepare on another thread, as the daemon does; commit here. */
static int reload(engine *e, spw_config *c, spw_error *err) {
        prepare_args a = { .c = c };
        pthread_t th;
        CHECK_OK(engine_next_new(e, &a.n));
        CHECK_EQ(pthread_create(&th, NULL, prepare_thread, &a), 0);
        CHECK_EQ(pthread_join(th, NULL), 0);
        if (a.r < 0) {
                *err = a.err;
                engine_next_free(a.n);
                return a.r;
        }
        return engine_next_commit(e, a.n);
}

static void test_reload(void) {
        testdir t;
        engine *e = start(&t);
        spw_error err = { 0 };
        backend *a = engine_backend(e, 0), *b = engine_backend(e, 1);

        /* a unchanged, b changed, c new */
        testdir_mock_backend(&t, "b", "queue_size: 77\n", NULL);
        testdir_mock_backend(&t, "c", NULL, NULL);
        CHECK_OK(reload(e, testdir_load(&t), &err));
        CHECK_EQ(engine_n_backends(e), 3);
        CHECK(engine_backend(e, 0) == a);
        CHECK(engine_backend(e, 1) != b);
        CHECK_EQ(backend_queue_capacity(engine_backend(e, 1)), 77);
        CHECK_STREQ(engine_backend_name(e, 2), "c");
        CHECK_EQ(engine_n_retiring(e), 1);
        CHECK(engine_retiring(e, 0) == b);
        CHECK(backend_is_retiring(b));
        hub_wait(engine_hub(e), no_retiring, e);

        /* nothing usable: refused, the running configuration stays */
        testdir_mock_backend(&t, "a", NULL, "  mode: init_fail\n");
        testdir_mock_backend(&t, "b", NULL, "  mode: init_fail\n");
        testdir_mock_backend(&t, "c", NULL, "  mode: init_fail\n");
        CHECK_EQ(reload(e, testdir_load(&t), &err), -ENODEV);
        CHECK_CONTAINS(err.msg, "no backend of the new configuration could be started");
        CHECK_EQ(engine_n_backends(e), 3);
        CHECK(engine_backend(e, 0) == a);
        CHECK_EQ(backend_get_state(a), BACKEND_RUNNING);
        stop(e);
        testdir_remove(t.path);
}

/* A backend whose init does not return in time is abandoned; its thread
 * may still run the plugin's code, so the plugin stays mapped after
 * plugin_unload_all(): when the init finally returns, the thread returns
 * into mapped code (unloaded, this test dies with SIGSEGV). Runs last: it
 * leaves that thread behind. */
static void test_hung_init_is_abandoned_and_its_plugin_stays_loaded(void) {
        engine_options o = { .allow_unsafe_plugins = true, .init_timeout = 200 * USEC_PER_MSEC };
        spw_error err = { 0 };
        engine *e = NULL;
        testdir t;

        testdir_init(&t);
        testdir_write(&t, "spillway.yaml", "queue:\n  flush_interval: 20ms\n");
        testdir_mock_backend(&t, "a", NULL, NULL);
        testdir_mock_backend(&t, "hung", NULL, "  init_delay: 1s\n");
        CHECK_OK(engine_new(testdir_load(&t), &o, &e, &err));
        CHECK(engine_backend(e, 0) != NULL);
        CHECK(engine_backend(e, 1) == NULL);
        CHECK_STREQ(engine_backend_error(e, 1), "init did not return within 200ms");
        stop(e);
        plugin_unload_all();
        usleep(1500 * 1000); /* the init returns meanwhile */
        testdir_remove(t.path);
}

int main(void) {
        test_route_and_push();
        test_full_block_queue_pushes_nothing();
        test_routing_twice_gives_the_same_bans();
        test_reload();
        test_hung_init_is_abandoned_and_its_plugin_stays_loaded();
        return 0;
}
