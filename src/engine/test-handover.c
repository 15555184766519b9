/* SPDX-License-Identifier: MIT */
/*
 * The hand-over of a reload (backend_hand_over) on the mock plugin: an old
 * instance whose target fails (inserts or flushes retried forever) gives
 * its queue, the signals it holds and its uncommitted batch to a new
 * instance of the same name, which commits every one of them once, in
 * submission order, before the signals submitted to it after the swap;
 * "flushed" producers hear of success, nothing is counted as failed or
 * undelivered, and the counters say how many moved. A removed backend (no
 * successor) still fails what it cannot deliver by its drain deadline.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "test-common.h"

static hub h;
static int msgs_done, msgs_failed;

static void on_msg_done(spw_msg *m) {
        msgs_done++;
        msgs_failed += atomic_load(&m->n_failed) > 0;
}

static bool enough_msgs(void *userdata) {
        return msgs_done >= *(int *) userdata;
}

static bool backend_stopped(void *userdata) {
        return backend_get_state(userdata) == BACKEND_STOPPED;
}

static spw_msg *new_msg(uint64_t id, const char *scenario) {
        spw_msg *m = msg_new();
        CHECK(m);
        m->sig.id = id;
        m->sig.scenario = arena_strdup(&m->arena, scenario);
        m->ack = ACK_FLUSHED;
        m->on_done = on_msg_done;
        msg_expect(m, &h, 1);
        return m;
}

/* Backend "m" of a fresh configuration folder (each folder has its own
 * record file, so the two instances' commits are told apart). */
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
        CHECK_EQ(backend_get_state(b), BACKEND_RUNNING);
        return b;
}

/* The ids the mock committed, in commit order. */
static size_t committed_ids(const testdir *t, uint64_t *ids, size_t max) {
        char p[256], line[512];
        size_t n = 0;
        snprintf(p, sizeof p, "%s/m.log", t->path);
        FILE *f = fopen(p, "r");
        if (!f)
                return 0;
        while (fgets(line, sizeof line, f))
                if (strstr(line, "unit/") && n < max)
                        ids[n++] = strtoull(line, NULL, 10);
        fclose(f);
        return n;
}

static void submit(backend *b, uint64_t first, int count, const char *scenario) {
        for (int i = 0; i < count; i++) {
                spw_msg *m = new_msg(first + (uint64_t) i, scenario);
                CHECK_EQ(backend_submit(b, m), 0);
                msg_unref(m);
        }
        backend_wake(b);
}

/* old: its target fails as `old_config` says; 30 signals wait in it. */
static void hand_over_case(const char *old_config) {
        testdir to, tn;
        spw_config_ref *ro, *rn;
        backend *old = start(&to, &ro, "retry_backoff: 20ms\nmax_retry: 1000\nflush_batch: 10\n", old_config);
        backend *new = start(&tn, &rn, NULL, NULL);
        backend_counters co, cn;
        uint64_t ids[128];
        int want = 40;

        msgs_done = msgs_failed = 0;
        submit(old, 1, 30, "unit/before");
        usleep(200 * 1000);   /* the old worker is retrying by now */
        CHECK_EQ(msgs_done, 0);

        backend_hand_over(old, new, now_monotonic() + 10 * USEC_PER_SEC);
        spw_msg *late = new_msg(999, "unit/late");
        CHECK_EQ(backend_submit(old, late), -ESHUTDOWN);
        msg_unref(late);
        /* submitted to the new instance after the swap: committed after the old ones */
        submit(new, 31, 10, "unit/after");
        hub_wait(&h, enough_msgs, &want);
        CHECK_EQ(msgs_done, 40);
        CHECK_EQ(msgs_failed, 0);

        hub_wait(&h, backend_stopped, old);
        backend_join(old);
        CHECK_EQ(committed_ids(&to, ids, 128), 0);
        CHECK_EQ(committed_ids(&tn, ids, 128), 40);
        for (size_t i = 0; i < 40; i++)
                CHECK_EQ(ids[i], i + 1);   /* each once, in submission order */

        backend_get_counters(old, &co);
        backend_get_counters(new, &cn);
        CHECK_EQ(co.received, 30);
        CHECK_EQ(co.handed_over, 30);
        CHECK_EQ(co.failed, 0);
        CHECK_EQ(co.undelivered, 0);
        CHECK_EQ(co.flushed, 0);
        CHECK_EQ(cn.received, 10);
        CHECK_EQ(cn.inherited, 30);
        CHECK_EQ(cn.flushed, 40);
        CHECK_EQ(cn.failed, 0);
        CHECK_EQ(backend_queue_depth(new), 0);

        backend_unref(old);   /* drops its reference on the new one */
        backend_unref(new);
        config_ref_unref(ro);
        config_ref_unref(rn);
        hub_dispatch(&h);
        while (hub_take_backend_event(&h))
                ;
        testdir_remove(to.path);
        testdir_remove(tn.path);
}

/* Inserts fail: the signals are in the queue or in the worker's hands. */
static void test_queued_signals_move_to_the_new_instance(void) {
        hand_over_case("  mode: transient\n");
}

/* Inserts succeed, flushes fail: the inserted batch is rolled back at the
 * old instance and inserted again at the new one. */
static void test_a_batch_whose_flush_fails_moves_too(void) {
        hand_over_case("  mode: flush_transient\n");
}

/* Two reloads in a row: the second instance is replaced while it still
 * waits for the first one's signals; they pass through it, in order, to the
 * third, which commits everything once. */
static void test_two_reloads_in_a_row(void) {
        testdir t1, t2, t3;
        spw_config_ref *r1, *r2, *r3;
        const char *failing = "  mode: transient\n";
        const char *q = "retry_backoff: 20ms\nmax_retry: 1000\n";
        backend *b1 = start(&t1, &r1, q, failing);
        backend *b2 = start(&t2, &r2, q, failing);
        backend *b3 = start(&t3, &r3, NULL, NULL);
        backend_counters c1, c2, c3;
        uint64_t ids[128];
        int want = 30;

        msgs_done = msgs_failed = 0;
        submit(b1, 1, 10, "unit/first");
        usleep(100 * 1000);
        backend_hand_over(b1, b2, now_monotonic() + 10 * USEC_PER_SEC);
        submit(b2, 11, 10, "unit/second");
        backend_hand_over(b2, b3, now_monotonic() + 10 * USEC_PER_SEC);
        submit(b3, 21, 10, "unit/third");
        hub_wait(&h, enough_msgs, &want);
        CHECK_EQ(msgs_failed, 0);
        hub_wait(&h, backend_stopped, b1);
        hub_wait(&h, backend_stopped, b2);
        CHECK_EQ(committed_ids(&t1, ids, 128) + committed_ids(&t2, ids, 128), 0);
        CHECK_EQ(committed_ids(&t3, ids, 128), 30);
        for (size_t i = 0; i < 30; i++)
                CHECK_EQ(ids[i], i + 1);
        backend_get_counters(b1, &c1);
        backend_get_counters(b2, &c2);
        backend_get_counters(b3, &c3);
        CHECK_EQ(c1.handed_over, 10);
        CHECK_EQ(c2.inherited, 10);
        CHECK_EQ(c2.handed_over, 20);
        CHECK_EQ(c3.inherited, 20);
        CHECK_EQ(c3.flushed, 30);
        CHECK_EQ(c1.failed + c2.failed + c3.failed, 0);
        backend_join(b1);
        backend_join(b2);
        backend_unref(b1);
        backend_unref(b2);
        backend_unref(b3);
        config_ref_unref(r1);
        config_ref_unref(r2);
        config_ref_unref(r3);
        hub_dispatch(&h);
        while (hub_take_backend_event(&h))
                ;
        testdir_remove(t1.path);
        testdir_remove(t2.path);
        testdir_remove(t3.path);
}

/* Without a successor nothing changes: what the drain deadline leaves is
 * failed back, counted as undelivered. */
static void test_a_removed_backend_still_fails_at_its_deadline(void) {
        testdir t;
        spw_config_ref *r;
        backend *b = start(&t, &r, "retry_backoff: 20ms\nmax_retry: 1000\n", "  mode: transient\n");
        backend_counters c;
        int want = 5;

        msgs_done = msgs_failed = 0;
        submit(b, 1, 5, "unit/removed");
        backend_retire(b, now_monotonic() + 200 * USEC_PER_MSEC);
        hub_wait(&h, enough_msgs, &want);
        CHECK_EQ(msgs_failed, 5);
        hub_wait(&h, backend_stopped, b);
        backend_join(b);
        backend_get_counters(b, &c);
        CHECK_EQ(c.undelivered, 5);
        CHECK_EQ(c.handed_over, 0);
        backend_unref(b);
        config_ref_unref(r);
        hub_dispatch(&h);
        while (hub_take_backend_event(&h))
                ;
        testdir_remove(t.path);
}

int main(void) {
        CHECK_OK(hub_init(&h));
        test_queued_signals_move_to_the_new_instance();
        test_a_batch_whose_flush_fails_moves_too();
        test_two_reloads_in_a_row();
        test_a_removed_backend_still_fails_at_its_deadline();
        hub_deinit(&h);
        plugin_unload_all();
        return 0;
}
