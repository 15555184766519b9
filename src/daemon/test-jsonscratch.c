/* SPDX-License-Identifier: MIT */
/*
 * The scratch region for an ingest line's JSON tree (jsonscratch.h): a
 * tree that fits is dropped without a walk and the region is reused; one
 * that does not fit continues in malloc() and is freed by the drop (no
 * leak: malloc's count of bytes in use comes back); other threads and
 * other times get malloc(); a second tree cannot start while one lives.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonscratch.h"
#include "test-common.h"

static const char small[] =
        "{\"scenario\":\"crowdsecurity/ssh-bf\",\"events_count\":6,\"labels\":{\"remediation\":\"true\"},"
        "\"events_sequence\":[{\"meta\":[{\"key\":\"source_ip\",\"value\":\"192.0.2.7\"}]}]}";

/* A JSON array of n strings of 32 bytes: ~n * 100 bytes of tree. */
static char *big_doc(size_t n) {
        char *s = malloc(n * 40 + 16), *p = s;
        CHECK(s);
        *p++ = '[';
        for (size_t i = 0; i < n; i++)
                p += sprintf(p, "%s\"%030zu\"", i ? "," : "", i);
        *p++ = ']';
        *p = 0;
        return s;
}

static json_t *load(const char *text, bool *scratch) {
        json_error_t jerr;
        json_t *o = json_scratch_loadb(text, strlen(text), JSON_REJECT_DUPLICATES, &jerr, scratch);
        CHECK(o);
        return o;
}

static void *other_thread(void *arg) {
        (void) arg;
        /* not the installing thread: no scratch, plain malloc */
        CHECK(!json_scratch_begin());
        json_t *o = json_pack("{s:s, s:[i,i]}", "made", "elsewhere", "n", 1, 2);
        CHECK(o);
        return o;
}

static void test_before_install(void) {
        CHECK(!json_scratch_begin());
        json_t *o = json_string("malloc'd before install");
        CHECK(o);
        CHECK_OK(json_scratch_install());
        json_decref(o); /* freed by the scratch allocator's free(): not in the region */
}

static void test_small_trees_reuse_the_region(void) {
        unsigned long before = json_scratch_overflows();
        const char *first = NULL;

        for (int i = 0; i < 1000; i++) {
                bool scratch;
                json_t *o = load(small, &scratch);
                CHECK(scratch);
                CHECK_STREQ(json_string_value(json_object_get(o, "scenario")), "crowdsecurity/ssh-bf");
                CHECK_EQ(json_integer_value(json_object_get(o, "events_count")), 6);
                json_t *ev = json_array_get(json_object_get(o, "events_sequence"), 0);
                json_t *meta = json_array_get(json_object_get(ev, "meta"), 0);
                CHECK_STREQ(json_string_value(json_object_get(meta, "value")), "192.0.2.7");
                /* what the signal model does with unknown keys: a malloc'd
                 * object referring into the tree, released before the drop */
                CHECK(!json_scratch_begin()); /* one tree at a time */
                json_t *extra = json_object();
                CHECK(extra);
                CHECK_OK(json_object_set(extra, "labels", json_object_get(o, "labels")));
                char *text = json_dumps(extra, JSON_COMPACT);
                CHECK_STREQ(text, "{\"labels\":{\"remediation\":\"true\"}}");
                free(text); /* json_dumps' result is released with free() */
                json_decref(extra);
                /* every tree starts at the same place: the region is reused */
                if (!first)
                        first = json_string_value(json_object_get(o, "scenario"));
                CHECK(json_string_value(json_object_get(o, "scenario")) == first);
                json_scratch_drop(o, scratch);
        }
        CHECK_EQ(json_scratch_overflows(), before);
}

static void test_large_tree_spills_and_is_freed(void) {
        char *doc = big_doc(20000); /* ~2 MB of tree: far past the region */
        bool scratch;

        /* warm up malloc's own bookkeeping, then count */
        json_t *o = load(doc, &scratch);
        json_scratch_drop(o, scratch);
        size_t base = mallinfo2().uordblks;
        unsigned long before = json_scratch_overflows();
        for (int i = 0; i < 5; i++) {
                o = load(doc, &scratch);
                CHECK(scratch);
                CHECK_EQ(json_array_size(o), 20000u);
                CHECK_STREQ(json_string_value(json_array_get(o, 19999)), "000000000000000000000000019999");
                json_scratch_drop(o, scratch);
        }
        CHECK(json_scratch_overflows() > before);
        size_t after = mallinfo2().uordblks;
        if (after > base + 64 * 1024) {
                fprintf(stderr, "bytes in use grew from %zu to %zu over five spilled trees\n", base, after);
                CHECK(false);
        }
        /* and the region works again after a spill */
        o = load(small, &scratch);
        CHECK(scratch);
        CHECK_STREQ(json_string_value(json_object_get(o, "scenario")), "crowdsecurity/ssh-bf");
        json_scratch_drop(o, scratch);
        free(doc);
}

static void test_other_threads_use_malloc(void) {
        pthread_t t;
        void *ret;
        bool scratch;

        /* a tree in the region while another thread builds and we free its object */
        json_t *tree = load(small, &scratch);
        CHECK(scratch);
        CHECK_EQ(pthread_create(&t, NULL, other_thread, NULL), 0);
        CHECK_EQ(pthread_join(t, &ret), 0);
        json_t *o = ret;
        CHECK_STREQ(json_string_value(json_object_get(o, "made")), "elsewhere");
        json_scratch_drop(tree, scratch);
        /* the other thread's object outlives the drop: it was never in the region */
        CHECK_EQ(json_integer_value(json_array_get(json_object_get(o, "n"), 1)), 2);
        json_decref(o);
        /* outside begin/end, this thread too gets malloc */
        o = json_string("not scratch");
        json_t *t2 = load(small, &scratch);
        json_scratch_drop(t2, scratch);
        CHECK_STREQ(json_string_value(o), "not scratch");
        json_decref(o);
}

static void test_failed_load(void) {
        json_error_t jerr;
        CHECK(json_scratch_begin());
        json_t *o = json_loads("{\"a\": [1, 2, {\"b\": ", 0, &jerr);
        json_scratch_end();
        CHECK(!o);
        json_scratch_drop(NULL, true);
        CHECK(json_scratch_begin()); /* nothing lives: a new tree may start */
        json_scratch_end();
        json_scratch_drop(NULL, true);
}

int main(void) {
        test_before_install();
        test_small_trees_reuse_the_region();
        test_large_tree_spills_and_is_freed();
        test_other_threads_use_malloc();
        test_failed_load();
        return 0;
}
