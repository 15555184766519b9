/* SPDX-License-Identifier: MIT */
/*
 * A backend on its worker thread, with the mock plugin: signals are
 * inserted and settled once flushed, administrative jobs run on the worker
 * and are committed before they are answered (a failed commit is an error
 * naming the backend and the plugin's reason, and nothing is listed
 * afterwards), the drop_newest policy, the idle commit (at once for a
 * "flushed" signal, after 4 x the last commit when only "queued" ones are
 * pending), an init failure, and a stop that shuts the plugin down.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "sigmodel.h"
#include "test-common.h"

static hub h;
static int msgs_done;
static admin_job *job_finished;

static void on_msg_done(spw_msg *m) {
        msgs_done++;
}

static bool enough_msgs(void *userdata) {
        return msgs_done >= *(int *) userdata;
}

static void on_job_done(hub_item *it, bool discard) {
        job_finished = (admin_job *) ((char *) it - offsetof(admin_job, done));
}

static bool job_is_done(void *userdata) {
        return job_finished != NULL;
}

static bool backend_stopped(void *userdata) {
        return backend_get_state(userdata) == BACKEND_STOPPED;
}

static spw_msg *new_msg(uint64_t id, const char *scenario, ack_level ack, const char *ban_target) {
        spw_msg *m = msg_new();
        CHECK(m);
        m->sig.id = id;
        m->sig.scenario = arena_strdup(&m->arena, scenario);
        m->ack = ack;
        m->on_done = on_msg_done;
        if (ban_target) {
                spw_error err = { 0 };
                spw_ban *ban = arena_alloc(&m->arena, sizeof *ban);
                CHECK(ban);
                CHECK_OK(ban_from_target(ban_target, false, now_realtime() + 3600 * USEC_PER_SEC, "ban", "cscli", scenario,
                                         &m->arena, ban, &err));
                m->sig.bans = ban;
                m->sig.n_bans = 1;
        }
        return m;
}

/* Start the only backend of a fresh configuration folder. */
static backend *start(testdir *t, spw_config_ref **ref, const char *queue, const char *config) {
        spw_plugin *p;
        spw_error err = { 0 };
        backend *b = NULL;
        char path[512];

        testdir_init(t);
        testdir_write(t, "spillway.yaml", "queue:\n  flush_interval: 20ms\n");
        testdir_mock_backend(t, "m", queue, config);
        *ref = config_ref_new(testdir_load(t));
        snprintf(path, sizeof path, "%s/mock.so", getenv("SPW_TEST_PLUGIN_DIR"));
        CHECK_OK(plugin_load(path, false, &p, &err));
        CHECK_OK(backend_start(&(*ref)->config->backends[0], *ref, p, &h, t->path, 30 * USEC_PER_SEC, 0, true, &b));
        return b;
}

static void finish(testdir *t, spw_config_ref *ref, backend *b) {
        backend_unref(b); /* stops and joins */
        config_ref_unref(ref);
        hub_dispatch(&h);
        testdir_remove(t->path);
}

static void test_signals_are_settled_when_flushed(void) {
        testdir t;
        spw_config_ref *ref;
        backend *b = start(&t, &ref, NULL, NULL);
        backend_counters n;
        int want = 5;

        CHECK_EQ(backend_get_state(b), BACKEND_RUNNING);
        CHECK_STREQ(backend_name(b), "m");
        CHECK_STREQ(backend_plugin(b)->ops.name, "mock");
        msgs_done = 0;
        for (int i = 0; i < want; i++) {
                spw_msg *m = new_msg((uint64_t) i + 1, "unit/flushed", ACK_FLUSHED, NULL);
                msg_expect(m, &h, 1);
                CHECK_EQ(backend_submit(b, m), 0);
                msg_unref(m);
        }
        backend_wake(b);
        hub_wait(&h, enough_msgs, &want);
        backend_get_counters(b, &n);
        CHECK_EQ(n.received, 5);
        CHECK_EQ(n.inserted, 5);
        CHECK_EQ(n.flushed, 5);
        CHECK_EQ(n.failed, 0);
        CHECK(n.flushes >= 1);
        CHECK_EQ(testdir_count(&t, "m", "unit/flushed"), 5);
        finish(&t, ref, b);
}

static admin_job *run_job(backend *b, admin_job *j) {
        job_finished = NULL;
        j->done.fn = on_job_done;
        backend_post_job(b, j);
        hub_wait(&h, job_is_done, NULL);
        CHECK(job_finished == j);
        return j;
}

static void test_admin_jobs_commit_before_answering(void) {
        testdir t;
        spw_config_ref *ref;
        backend *b = start(&t, &ref, NULL, NULL);
        admin_job *j;

        j = admin_job_new(JOB_INSERT);
        j->msg = new_msg(1, "unit/manual", ACK_QUEUED, "192.0.2.9");
        run_job(b, j);
        CHECK_EQ(j->r, 0);
        admin_job_free(j);
        /* committed: in the record file before the reply, and listed */
        CHECK_EQ(testdir_count(&t, "m", "unit/manual 192.0.2.9"), 1);
        j = admin_job_new(JOB_LIST);
        j->at = now_realtime();
        run_job(b, j);
        CHECK_EQ(j->r, 0);
        CHECK_EQ(j->total, 1);
        CHECK_CONTAINS(j->rows.data, "\"iptext\":\"192.0.2.9\"");
        admin_job_free(j);
        j = admin_job_new(JOB_DELETE);
        j->target = strdup("192.0.2.9");
        run_job(b, j);
        CHECK_EQ(j->r, 0);
        CHECK_EQ(j->count, 1);
        admin_job_free(j);
        finish(&t, ref, b);
}

static void test_commit_failure_inside_an_admin_job(void) {
        testdir t;
        spw_config_ref *ref;
        backend *b = start(&t, &ref, NULL, "  mode: flush_permanent\n");
        admin_job *j;

        j = admin_job_new(JOB_INSERT);
        j->msg = new_msg(1, "unit/manual", ACK_QUEUED, "192.0.2.10");
        run_job(b, j);
        CHECK(j->r < 0);
        CHECK_CONTAINS(j->error, "backend 'm'");
        CHECK_CONTAINS(j->error, "committing failed");
        CHECK_CONTAINS(j->error, "mock: flush failed (permanent)");
        admin_job_free(j);
        /* rolled back: nothing recorded, nothing listed */
        CHECK_EQ(testdir_count(&t, "m", "192.0.2.10"), 0);
        j = admin_job_new(JOB_LIST);
        j->at = now_realtime();
        run_job(b, j);
        CHECK_EQ(j->r, 0);
        CHECK_EQ(j->total, 0);
        admin_job_free(j);
        /* the worker goes on: a later signal is inserted (and its flush fails too) */
        int want = 1;
        msgs_done = 0;
        spw_msg *m = new_msg(2, "unit/after", ACK_FLUSHED, NULL);
        msg_expect(m, &h, 1);
        CHECK_EQ(backend_submit(b, m), 0);
        backend_wake(b);
        hub_wait(&h, enough_msgs, &want);
        CHECK_EQ(atomic_load(&m->n_failed), 1);
        CHECK_CONTAINS(atomic_load(&m->failure), "flush failed");
        msg_unref(m);
        finish(&t, ref, b);
}

static void test_drop_newest(void) {
        testdir t;
        spw_config_ref *ref;
        backend *b = start(&t, &ref, "queue_size: 1\non_full: drop_newest\n", "  delay: 300ms\n");
        backend_counters n;
        spw_msg *m;

        m = new_msg(1, "unit/one", ACK_QUEUED, NULL);
        CHECK_EQ(backend_submit(b, m), 0);
        msg_unref(m);
        backend_wake(b);
        for (int i = 0; i < 500 && backend_queue_depth(b) > 0; i++)
                usleep(2000);
        CHECK_EQ(backend_queue_depth(b), 0); /* the worker sleeps in insert */
        m = new_msg(2, "unit/two", ACK_QUEUED, NULL);
        CHECK_EQ(backend_submit(b, m), 0);
        msg_unref(m);
        m = new_msg(3, "unit/three", ACK_QUEUED, NULL);
        CHECK_EQ(backend_submit(b, m), 2);    /* the new one is dropped */
        msg_unref(m);
        CHECK_EQ(backend_queue_capacity(b), 1);
        CHECK_EQ(backend_queue_high_water(b), 1);
        backend_get_counters(b, &n);
        CHECK_EQ(n.dropped, 1);
        finish(&t, ref, b);
}

static uint64_t flushed_count(backend *b) {
        backend_counters n;
        backend_get_counters(b, &n);
        return n.flushed;
}

/* Wait until `want` signals are flushed; the time it took. */
static usec_t until_flushed(backend *b, uint64_t want) {
        usec_t t0 = now_monotonic();
        while (flushed_count(b) < want) {
                CHECK(now_monotonic() - t0 < 30 * USEC_PER_SEC);
                usleep(2000);
        }
        return now_monotonic() - t0;
}

static void submit(backend *b, uint64_t id, ack_level ack) {
        spw_msg *m = new_msg(id, "unit/idle", ack, NULL);
        msg_expect(m, &h, 1);
        CHECK_EQ(backend_submit(b, m), 0);
        msg_unref(m);
        backend_wake(b);
}

/* Issue 17: with only "queued" signals pending, a worker whose queue ran
 * dry waits 4 x its last commit for company (nobody waits for this
 * commit); a "flushed" signal is committed at once (flush_delay 0). */
static void test_idle_commit_waits_only_for_queued(void) {
        testdir t;
        spw_config_ref *ref;
        /* each commit takes 100 ms; flush_interval (the bound) 10 s */
        backend *b = start(&t, &ref, "flush_interval: 10s\n", "  commit_delay: 100ms\n");

        msgs_done = 0;
        submit(b, 1, ACK_QUEUED);
        until_flushed(b, 1);   /* the first commit: its cost is not known yet */
        submit(b, 2, ACK_QUEUED);
        usec_t queued_wait = until_flushed(b, 2);
        CHECK(queued_wait >= 350 * USEC_PER_MSEC);   /* 4 x 100 ms, then the 100 ms commit; at once before */
        CHECK(queued_wait < 5 * USEC_PER_SEC);       /* well inside flush_interval */
        submit(b, 3, ACK_FLUSHED);
        usec_t flushed_wait = until_flushed(b, 3);
        CHECK(flushed_wait < 350 * USEC_PER_MSEC);   /* the commit alone: a producer waits for it */
        CHECK_EQ(testdir_count(&t, "m", "unit/idle"), 3);
        finish(&t, ref, b);
}

static void test_init_failure(void) {
        testdir t;
        spw_config_ref *ref;
        backend *b = start(&t, &ref, NULL, "  mode: init_fail\n");
        char why[512];

        CHECK_EQ(backend_get_state(b), BACKEND_FAILED);
        backend_last_error(b, why, sizeof why, NULL);
        CHECK_STREQ(why, "mock: told to fail init");
        finish(&t, ref, b);
}

static void test_stop_shuts_the_plugin_down(void) {
        testdir t;
        spw_config_ref *ref;
        backend *b = start(&t, &ref, NULL, NULL);
        spw_msg *m = new_msg(1, "unit/last", ACK_QUEUED, NULL);

        CHECK_EQ(backend_submit(b, m), 0);
        msg_unref(m);
        backend_stop(b, now_monotonic() + 5 * USEC_PER_SEC);
        hub_wait(&h, backend_stopped, b);
        CHECK(hub_take_backend_event(&h));
        backend_join(b);
        /* drained before shutdown */
        CHECK_EQ(testdir_count(&t, "m", "unit/last"), 1);
        CHECK_EQ(testdir_count(&t, "m", "shutdown"), 1);
        m = new_msg(2, "unit/too-late", ACK_QUEUED, NULL);
        CHECK_EQ(backend_submit(b, m), -ESHUTDOWN);
        msg_unref(m);
        finish(&t, ref, b);
}

int main(void) {
        CHECK_OK(hub_init(&h));
        test_signals_are_settled_when_flushed();
        test_admin_jobs_commit_before_answering();
        test_commit_failure_inside_an_admin_job();
        test_drop_newest();
        test_idle_commit_waits_only_for_queued();
        test_init_failure();
        test_stop_shuts_the_plugin_down();
        hub_deinit(&h);
        plugin_unload_all();
        return 0;
}
