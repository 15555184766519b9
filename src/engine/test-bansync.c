/* SPDX-License-Identifier: MIT */
/*
 * Ban sync with real backends on the mock plugin: "db" (mock.so, with a
 * change log: the ban backend) and "enf" (mock20.so, built for ABI 2.0:
 * no change log, so an enforcement subscriber). A ban stored in db only
 * reaches enf through the sync and counts in the history; a delete in db
 * removes it from enf; a reload resyncs enf from nothing; a ban backend
 * without a change log leaves the sync off. (The mock keeps one ban per
 * signal: the test sends bans one walk apart.)
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "banhist.h"
#include "bansync.h"
#include "engine.h"
#include "sigmodel.h"
#include "test-common.h"

static bool job_seen;

static void job_done(hub_item *it, bool discard) {
        admin_job *j = (admin_job *) ((char *) it - offsetof(admin_job, done));
        job_seen = true;
        CHECK_EQ(j->r, 0);
        admin_job_free(j);
}

static bool seen(void *userdata) {
        return job_seen;
}

/* Run one admin job on backend `name` and wait for it. */
static void run(engine *e, const char *name, admin_job *j) {
        job_seen = false;
        j->done.fn = job_done;
        backend *b = engine_find(e, name);
        CHECK(b);
        backend_post_job(b, j);
        backend_wake(b);
        hub_wait(engine_hub(e), seen, NULL);
}

static void ban_in(engine *e, const char *name, const char *target, usec_t until) {
        admin_job *j = admin_job_new(JOB_INSERT);
        spw_error err;
        spw_msg *m = msg_new();
        spw_ban *ban = arena_alloc(&m->arena, sizeof *ban);
        CHECK(ban);
        CHECK_OK(ban_from_target(target, strchr(target, '/') != NULL, until, "ban", "cscli", "unit", &m->arena, ban, &err));
        m->sig.scenario = "unit";
        m->sig.received_at = now_realtime();
        m->sig.id = engine_next_signal_id(e);
        m->sig.bans = ban;
        m->sig.n_bans = 1;
        j->msg = m;
        run(e, name, j);
}

static size_t list_count;

static void list_done(hub_item *it, bool discard) {
        admin_job *j = (admin_job *) ((char *) it - offsetof(admin_job, done));
        job_seen = true;
        CHECK_EQ(j->r, 0);
        list_count = j->total;
        admin_job_free(j);
}

/* How many active bans `name` holds. */
static size_t active(engine *e, const char *name) {
        admin_job *j = admin_job_new(JOB_LIST);
        j->at = now_realtime();
        job_seen = false;
        j->done.fn = list_done;
        backend *b = engine_find(e, name);
        backend_post_job(b, j);
        backend_wake(b);
        hub_wait(engine_hub(e), seen, NULL);
        return list_count;
}

static bool all_stopped(void *userdata) {
        return engine_all_stopped(userdata);
}

static void stop(engine *e) {
        engine_stop(e, now_monotonic() + 10 * USEC_PER_SEC);
        hub_wait(engine_hub(e), all_stopped, e);
        engine_free(e);
}

/* Poll (dispatching the hub) until `name` holds n bans; 5 s at most. */
static void wait_active(engine *e, const char *name, size_t n) {
        size_t got = 0;
        for (int i = 0; i < 500; i++) {
                got = active(e, name);
                if (got == n)
                        return;
                usleep(10000);
        }
        fprintf(stderr, "%s holds %zu bans, expected %zu\n", name, got, n);
        CHECK(false);
}

static void write_config_every(testdir *t, const char *ban_backend, const char *interval) {
        char text[256], file[256];
        snprintf(text, sizeof text, "ban_backend: %s\nbans:\n  sync_interval: %s\nqueue:\n  flush_interval: 20ms\n",
                 ban_backend, interval);
        testdir_write(t, "spillway.yaml", text);
        testdir_mock_backend(t, "db", NULL, NULL);
        snprintf(text, sizeof text, "name: enf\npath: %s/mock20.so\nconfig:\n  record: %s/enf.log\n",
                 getenv("SPW_TEST_PLUGIN_DIR"), t->path);
        snprintf(file, sizeof file, "plugins/backend/enf.yaml");
        testdir_write(t, file, text);
}

static void write_config(testdir *t, const char *ban_backend) {
        write_config_every(t, ban_backend, "50ms");
}

static void test_sync(void) {
        engine_options o = { .allow_unsafe_plugins = true };
        spw_error err = { 0 };
        engine *e = NULL;
        testdir t;
        uint64_t n;

        testdir_init(&t);
        write_config(&t, "db");
        CHECK_OK(engine_new(testdir_load(&t), &o, &e, &err));
        CHECK(engine_bansync(e) != NULL);
        CHECK_STREQ(bansync_source_name(engine_bansync(e)), "db");

        /* stored in db only: enf gets it from the change log */
        ban_in(e, "db", "192.0.2.7", now_realtime() + 3600 * USEC_PER_SEC);
        wait_active(e, "enf", 1);
        CHECK(testdir_count(&t, "enf", "spillway/ban-sync 192.0.2.7") >= 1);
        CHECK_OK(banhist_count(engine_banhist(e), "192.0.2.7", 0, &n));
        CHECK_EQ(n, 1u);

        /* a second ban of the same target and a range */
        ban_in(e, "db", "192.0.2.7", now_realtime() + 7200 * USEC_PER_SEC);
        wait_active(e, "enf", 2); /* the mock keeps superseded bans */
        ban_in(e, "db", "198.51.100.0/24", now_realtime() + 3600 * USEC_PER_SEC);
        wait_active(e, "enf", 3);
        CHECK_OK(banhist_count(engine_banhist(e), "192.0.2.7", 0, &n));
        CHECK_EQ(n, 2u);

        /* a ban that already ended is not enforced */
        ban_in(e, "db", "192.0.2.9", now_realtime() - USEC_PER_SEC);

        /* a delete in db reaches enf */
        admin_job *j = admin_job_new(JOB_DELETE);
        j->target = strdup("192.0.2.7");
        run(e, "db", j);
        wait_active(e, "enf", 1);

        /* a reload resyncs from nothing: enf holds what db holds */
        ban_in(e, "enf", "203.0.113.5", now_realtime() + 3600 * USEC_PER_SEC); /* enf only: dropped by the resync */
        CHECK_EQ(active(e, "enf"), 2u);
        write_config(&t, "db");
        testdir_write(&t, "plugins/backend/enf.yaml", ""); /* placeholder, rewritten below */
        {
                char text[256];
                /* a changed enf (new fingerprint) starts empty; an unchanged
                 * one keeps its bans: keep it, and see the resync drop the
                 * extra ban */
                snprintf(text, sizeof text, "name: enf\npath: %s/mock20.so\nconfig:\n  record: %s/enf.log\n",
                         getenv("SPW_TEST_PLUGIN_DIR"), t.path);
                testdir_write(&t, "plugins/backend/enf.yaml", text);
        }
        CHECK_OK(engine_reload(e, testdir_load(&t), &err));
        CHECK(engine_bansync(e) != NULL);
        wait_active(e, "enf", 1);
        bansync_stats st;
        bansync_get_stats(engine_bansync(e), &st);
        CHECK(st.resyncs >= 1);

        /* the ban database empties: a reload's resync empties enf too,
         * although an empty store gives no change to flag as a resync */
        admin_job *all = admin_job_new(JOB_DELETE_ALL);
        run(e, "db", all);
        wait_active(e, "enf", 0);
        ban_in(e, "enf", "203.0.113.6", now_realtime() + 3600 * USEC_PER_SEC);
        CHECK_EQ(active(e, "enf"), 1u);
        CHECK_OK(engine_reload(e, testdir_load(&t), &err));
        wait_active(e, "enf", 0);
        stop(e);
        testdir_remove(t.path);
}

/* Bans of n distinct addresses 10.x.y.z (i = 0..n-1) stored in "db". */
static void ban_many(engine *e, size_t n) {
        for (size_t i = 0; i < n; i++) {
                char ip[32];
                snprintf(ip, sizeof ip, "10.%zu.%zu.%zu", i >> 16 & 255, i >> 8 & 255, i & 255);
                ban_in(e, "db", ip, now_realtime() + 3600 * USEC_PER_SEC);
        }
}

/* The history's count of `target` once it is not 0 (or 0 after 5 s). */
static uint64_t wait_history(engine *e, const char *target) {
        uint64_t count = 0;
        for (int i = 0; i < 500 && count == 0; i++) {
                usleep(10000);
                CHECK_OK(banhist_count(engine_banhist(e), target, 0, &count));
        }
        return count;
}

/* More changes than one walk takes: the walk stops at BANSYNC_PAGE (a
 * bounded copy) and the next one follows at once, not an interval later. */
static void test_long_change_log(void) {
        engine_options o = { .allow_unsafe_plugins = true };
        spw_error err = { 0 };
        engine *e = NULL;
        bansync_stats before, after;
        const size_t n = BANSYNC_PAGE + 100;
        uint64_t count;
        testdir t;

        testdir_init(&t);
        write_config_every(&t, "db", "1h");
        CHECK_OK(engine_new(testdir_load(&t), &o, &e, &err));
        CHECK_OK(bansync_wait_first(engine_bansync(e), 10 * USEC_PER_SEC));
        /* one change first, so that the walk below reads the change log
         * (a walk from cursor 0 is a resync: every active ban at once) */
        ban_in(e, "db", "192.0.2.1", now_realtime() + 3600 * USEC_PER_SEC);
        bansync_kick(engine_bansync(e));
        for (int i = 0; i < 500; i++) {
                bansync_get_stats(engine_bansync(e), &before);
                if (before.cursor > 0)
                        break;
                usleep(10000);
        }
        CHECK(before.cursor > 0);
        ban_many(e, n);
        bansync_kick(engine_bansync(e));
        /* with a 1 h interval, only the follow-up walks bring the rest */
        /* (a walk's adds are counted when delivered, its walk just after) */
        for (int i = 0; i < 500; i++) {
                bansync_get_stats(engine_bansync(e), &after);
                if (after.adds - before.adds >= n && after.walks - before.walks >= 2)
                        break;
                usleep(10000);
        }
        if (after.failures != before.failures)
                fprintf(stderr, "ban sync failed: %s\n", after.last_error);
        CHECK_EQ(after.failures, before.failures);
        CHECK_EQ(after.adds - before.adds, n);
        CHECK(after.walks - before.walks >= 2);
        CHECK_EQ(after.resyncs, before.resyncs);
        CHECK_OK(banhist_count(engine_banhist(e), "10.0.0.0", 0, &count));
        CHECK_EQ(count, 1u);
        CHECK_OK(banhist_count(engine_banhist(e), "10.0.16.99", 0, &count)); /* the last one: 4195 */
        CHECK_EQ(count, 1u);
        stop(e);
        testdir_remove(t.path);
}

/* No enforcement backend: the history alone reads the changes, as they
 * come (nothing is copied), across pages. */
static void test_history_only(void) {
        engine_options o = { .allow_unsafe_plugins = true };
        spw_error err = { 0 };
        engine *e = NULL;
        bansync_stats st;
        const size_t n = BANSYNC_PAGE + 10;
        uint64_t count = 0;
        testdir t;

        testdir_init(&t);
        testdir_write(&t, "spillway.yaml", "ban_backend: db\nbans:\n  sync_interval: 20ms\nqueue:\n  flush_interval: 20ms\n");
        testdir_mock_backend(&t, "db", NULL, NULL);
        CHECK_OK(engine_new(testdir_load(&t), &o, &e, &err));
        CHECK(engine_bansync(e) != NULL);
        ban_in(e, "db", "192.0.2.1", now_realtime() + 3600 * USEC_PER_SEC);
        CHECK_EQ(wait_history(e, "192.0.2.1"), 1u);
        ban_many(e, n);
        CHECK_EQ(wait_history(e, "10.0.16.9"), 1u); /* the last: 4105 */
        CHECK_OK(banhist_count(engine_banhist(e), "10.0.0.0", 0, &count));
        CHECK_EQ(count, 1u);
        bansync_get_stats(engine_bansync(e), &st);
        CHECK_EQ(st.failures, 0u);
        stop(e);
        testdir_remove(t.path);
}

static void test_no_change_log(void) {
        engine_options o = { .allow_unsafe_plugins = true };
        spw_error err = { 0 };
        engine *e = NULL;
        testdir t;

        testdir_init(&t);
        write_config(&t, "enf"); /* a ban backend built for ABI 2.0 */
        CHECK_OK(engine_new(testdir_load(&t), &o, &e, &err));
        CHECK(engine_bansync(e) == NULL);
        stop(e);
        testdir_remove(t.path);
}

/* The ban backend's worker retries a failing signal until the stop (a
 * deleted database, a server down): the sync's job waits behind it. The
 * stop must not wait for that job, or the stop that ends the retries never
 * comes (the daemon hung at exit). */
static void test_stop_while_the_source_retries(void) {
        engine_options o = { .allow_unsafe_plugins = true };
        spw_error err = { 0 };
        engine *e = NULL;
        fanout f = { 0 };
        push_result res;
        testdir t;

        testdir_init(&t);
        testdir_write(&t, "spillway.yaml", "ban_backend: db\nbans:\n  sync_interval: 20ms\n");
        testdir_mock_backend(&t, "db", "max_retry: 1000\nretry_backoff: 10ms\nretry_backoff_max: 10ms\n",
                             "  mode: transient\n  fail_count: 0\n");
        CHECK_OK(engine_new(testdir_load(&t), &o, &e, &err));
        CHECK(engine_bansync(e) != NULL);
        spw_msg *m = msg_new();
        m->sig.id = engine_next_signal_id(e);
        m->sig.scenario = "retried";
        m->sig.received_at = now_realtime();
        m->ack = ACK_QUEUED;
        CHECK_OK(engine_route(e, m, &f));
        CHECK_EQ(engine_push(e, m, &f, &res), 0);
        fanout_release(&f);
        msg_unref(m);
        engine_wake(e);
        usleep(200 * 1000); /* the worker retries; a sync job waits behind */
        usec_t t0 = now_monotonic();
        engine_stop(e, now_monotonic() + 500 * USEC_PER_MSEC);
        hub_wait(engine_hub(e), all_stopped, e);
        engine_free(e);
        CHECK(now_monotonic() - t0 < 5 * USEC_PER_SEC);
        testdir_remove(t.path);
}

int main(void) {
        test_stop_while_the_source_retries();
        test_sync();
        test_long_change_log();
        test_history_only();
        test_no_change_log();
        return 0;
}
