/* SPDX-License-Identifier: MIT */
/*
 * The ban-history index: counts all and since a time, one ban seen twice
 * (own routing, then the change log) counted once, the cap forgets the
 * oldest record first (and frees a target whose last record goes), the
 * look-up and hit counters, and the heap one record costs (issue 17).
 */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "banhist.h"
#include "tests.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define HAVE_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HAVE_ASAN 1
#endif

static uint64_t count(banhist *h, const char *t, int64_t since) {
        uint64_t n = 99;
        CHECK_OK(banhist_count(h, t, since, &n));
        return n;
}

static void test_counts(void) {
        banhist *h = banhist_new(100);
        CHECK(h);
        CHECK_EQ(count(h, "192.0.2.7", 0), 0u);
        CHECK_EQ(banhist_record(h, "192.0.2.7", 1000, 5000), 1);
        CHECK_EQ(banhist_record(h, "192.0.2.7", 2000, 9000), 1);
        CHECK_EQ(banhist_record(h, "192.0.2.7", 2001, 9000), 0); /* the same ban, from the change log */
        CHECK_EQ(banhist_record(h, "2001:db8::/64", 3000, 9000), 1);
        CHECK_EQ(count(h, "192.0.2.7", 0), 2u);
        CHECK_EQ(count(h, "192.0.2.7", 1500), 1u);
        CHECK_EQ(count(h, "192.0.2.7", 2000), 1u);
        CHECK_EQ(count(h, "192.0.2.7", 2001), 0u);
        CHECK_EQ(count(h, "2001:db8::/64", 0), 1u);
        CHECK_EQ(count(h, "192.0.2.8", 0), 0u);

        banhist_stats st;
        banhist_get_stats(h, &st);
        CHECK_EQ(st.records, 3u);
        CHECK_EQ(st.targets, 2u);
        CHECK_EQ(st.lookups, 7u);
        CHECK_EQ(st.hits, 5u);
        banhist_clear(h);
        CHECK_EQ(count(h, "192.0.2.7", 0), 0u);
        banhist_free(h);
}

static void test_cap(void) {
        banhist *h = banhist_new(3);
        CHECK_EQ(banhist_record(h, "a", 1, 10), 1);
        CHECK_EQ(banhist_record(h, "b", 2, 20), 1);
        CHECK_EQ(banhist_record(h, "a", 3, 30), 1);
        /* full: the oldest record (a@1) goes */
        CHECK_EQ(banhist_record(h, "c", 4, 40), 1);
        CHECK_EQ(count(h, "a", 0), 1u);
        CHECK_EQ(count(h, "a", 3), 1u);
        /* then b's only record: the target is freed, and a new record of b
         * starts a fresh entry */
        CHECK_EQ(banhist_record(h, "b", 5, 50), 1);
        CHECK_EQ(count(h, "b", 0), 1u);
        CHECK_EQ(count(h, "b", 5), 1u);
        /* a target whose only record is the oldest gets a new one */
        CHECK_EQ(banhist_record(h, "a", 6, 60), 1); /* evicts a@3 */
        CHECK_EQ(count(h, "a", 0), 1u);
        CHECK_EQ(count(h, "a", 6), 1u);
        banhist_stats st;
        banhist_get_stats(h, &st);
        CHECK_EQ(st.records, 3u);
        CHECK_EQ(st.evicted, 3u);
        CHECK_EQ(st.targets, 3u);
        banhist_free(h);
}

static void test_many(void) {
        /* past the initial bucket count and per-entry growth, with evictions */
        banhist *h = banhist_new(5000);
        char t[32];
        for (int i = 0; i < 20000; i++) {
                snprintf(t, sizeof t, "10.0.%d.%d", (i / 256) % 256, i % 256);
                CHECK_EQ(banhist_record(h, t, i, 100000 + i), 1);
                CHECK_EQ(banhist_record(h, "hot", i, 100000 + i), 1);
        }
        banhist_stats st;
        banhist_get_stats(h, &st);
        CHECK_EQ(st.records, 5000u);
        /* the newest 2,500 of each kept */
        CHECK_EQ(count(h, "hot", 0), 2500u);
        CHECK_EQ(count(h, "10.0.78.31", 0), 1u); /* i = 19999 */
        CHECK_EQ(count(h, "10.0.0.1", 0), 0u);
        banhist_free(h);
}

/* One record per IPv4 target (the common case: 100,000 distinct sources
 * held 17 MiB before issue 17, four allocations of 160 bytes per target):
 * one allocation of 64 bytes now, plus the hash buckets. The ring's slots
 * are one calloc, mapped and touched as they fill; not counted here.
 * glibc's heap statistics mean nothing under a sanitizer's allocator. */
static void test_footprint(void) {
#ifndef HAVE_ASAN
        const int n = 20000;
        banhist *h = banhist_new(1000000);
        struct mallinfo2 before, after;
        char t[32];

        CHECK_EQ(banhist_record(h, "10.255.255.255", 1, 2), 1); /* the ring */
        before = mallinfo2();
        for (int i = 0; i < n; i++) {
                snprintf(t, sizeof t, "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
                CHECK_EQ(banhist_record(h, t, i, 100000 + i), 1);
        }
        after = mallinfo2();
        size_t used = (after.uordblks - before.uordblks) + (after.hblkhd - before.hblkhd);
        printf("banhist: %zu bytes of heap per IPv4 target with one record\n", used / n);
        CHECK(used / n <= 96);
        banhist_free(h);
#endif
}

int main(void) {
        test_counts();
        test_cap();
        test_many();
        test_footprint();
        banhist_free(NULL);
        return 0;
}
