/* SPDX-License-Identifier: MIT */
/*
 * Unit test of the nftables backend's memory (elements.c): address
 * parsing and the allow list, replacements, nested ranges kept disjoint
 * in the kernel, the undo log, expiry and promotion. The emit callback
 * writes each kernel change as a line ("+192.0.2.7", "-10.0.0.0-10.255.255.255")
 * so the test reads exactly what would reach nft.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "elements.h"
#include "tests.h"

#define SEC INT64_C(1000000)
#define NOW (INT64_C(1700000000) * SEC)

static char out[4096];

static int record(void *userdata, int op, elem *e, int64_t in_kernel_until) {
        (void) in_kernel_until;
        char a[64], z[64];
        (void) userdata;
        nfaddr_format(e->r.start, a, sizeof a);
        nfaddr_format(e->r.end, z, sizeof z);
        if (memcmp(e->r.start, e->r.end, 16) == 0)
                snprintf(out + strlen(out), sizeof out - strlen(out), "%c%s ", op == ELEMS_ADD ? '+' : '-', a);
        else
                snprintf(out + strlen(out), sizeof out - strlen(out), "%c%s-%s ", op == ELEMS_ADD ? '+' : '-', a, z);
        return 0;
}

static nfaddr_range R(const char *s) {
        nfaddr_range r;
        CHECK_OK(nfaddr_parse(s, false, &r));
        return r;
}

static int put(elems *t, const char *s, int64_t until) {
        nfaddr_range r = R(s);
        return elems_put(t, &r, until, s, "test/scenario", "local", NOW);
}

static const char *take(void) {
        static char copy[4096];
        snprintf(copy, sizeof copy, "%s", out);
        out[0] = 0;
        return copy;
}

static void test_addresses(void) {
        nfaddr_range r;
        char buf[64];

        CHECK_OK(nfaddr_parse("192.0.2.7", false, &r));
        CHECK(nfaddr_is_v4(r.start));
        CHECK_STREQ(nfaddr_format(r.start, buf, sizeof buf), "192.0.2.7");
        CHECK_OK(nfaddr_parse("198.51.100.0/24", false, &r));
        CHECK_STREQ(nfaddr_format(r.end, buf, sizeof buf), "198.51.100.255");
        CHECK_OK(nfaddr_parse("2001:db8::/32", false, &r));
        CHECK(!nfaddr_is_v4(r.start));
        CHECK_STREQ(nfaddr_format(r.end, buf, sizeof buf), "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff");
        CHECK_EQ(nfaddr_parse("198.51.100.1/24", false, &r), -EINVAL);  /* host bits */
        CHECK_OK(nfaddr_parse("198.51.100.1/24", true, &r));
        CHECK_EQ(nfaddr_parse("192.0.2.300", false, &r), -EINVAL);
        CHECK_EQ(nfaddr_parse("192.0.2.0/33", false, &r), -EINVAL);
        CHECK_EQ(nfaddr_parse("192.0.2.0/", false, &r), -EINVAL);
        CHECK_EQ(nfaddr_parse("", false, &r), -EINVAL);

        nfaddr_range a = R("10.0.0.0/8"), b = R("10.1.0.0/16"), c = R("11.0.0.1");
        CHECK(nfaddr_overlap(&a, &b) && nfaddr_contains(&a, &b) && !nfaddr_contains(&b, &a));
        CHECK(!nfaddr_overlap(&a, &c));
}

static void test_allow_list(void) {
        nfaddr_list l = { 0 };
        char bad[64];
        nfaddr_range r;

        CHECK_OK(nfaddr_list_parse(&l, "127.0.0.0/8, ::1/128 169.254.0.0/16,fe80::/10", bad, sizeof bad));
        CHECK_EQ(l.n, 4);
        r = R("127.0.0.1");
        CHECK_EQ(nfaddr_list_overlap(&l, &r), 0);
        r = R("::1");
        CHECK_EQ(nfaddr_list_overlap(&l, &r), 1);
        r = R("fe80::1");
        CHECK_EQ(nfaddr_list_overlap(&l, &r), 3);
        r = R("192.0.2.7");
        CHECK_EQ(nfaddr_list_overlap(&l, &r), -1);
        /* a range that contains an allowed address is refused too */
        r = R("126.0.0.0/7");
        CHECK_EQ(nfaddr_list_overlap(&l, &r), 0);
        CHECK_EQ(nfaddr_list_parse(&l, "127.0.0.0/8, banana", bad, sizeof bad), -EINVAL);
        CHECK_STREQ(bad, "banana");
        CHECK_EQ(l.n, 4);       /* unchanged on error */
        CHECK_OK(nfaddr_list_parse(&l, "", bad, sizeof bad));
        CHECK_EQ(l.n, 0);
        nfaddr_list_free(&l);
}

static void test_replace_and_rollback(void) {
        elems *t = elems_new(record, NULL);
        uint64_t n;
        bool found;
        nfaddr_range r;

        CHECK_OK(put(t, "192.0.2.7", NOW + 60 * SEC));
        CHECK_OK(put(t, "2001:db8::7", NOW + 60 * SEC));
        CHECK_STREQ(take(), "+192.0.2.7 +2001:db8::7 ");
        elems_commit(t);
        /* the same target again: one element, replaced (new until) */
        CHECK_OK(put(t, "192.0.2.7", NOW + 120 * SEC));
        CHECK_STREQ(take(), "+192.0.2.7 ");
        elems_commit(t);
        elems_counts c = elems_count(t, NOW);
        CHECK_EQ(c.addr4, 1);
        CHECK_EQ(c.addr6, 1);
        /* a failed transaction: the memory is as at the last commit */
        CHECK_OK(put(t, "192.0.2.8", NOW + 60 * SEC));
        r = R("2001:db8::7");
        CHECK_OK(elems_remove(t, &r, &found, NOW));
        CHECK(found);
        CHECK_STREQ(take(), "+192.0.2.8 -2001:db8::7 ");
        CHECK(elems_dirty(t));
        elems_rollback(t);
        CHECK(!elems_dirty(t));
        c = elems_count(t, NOW);
        CHECK_EQ(c.addr4, 1);
        CHECK_EQ(c.addr6, 1);
        /* the committed replacement of 192.0.2.7 (until +120 s) is kept */
        CHECK_EQ(elems_count(t, NOW + 90 * SEC).addr4, 1);
        CHECK_OK(put(t, "192.0.2.7", NOW + 10 * SEC));
        elems_rollback(t);
        CHECK_EQ(elems_count(t, NOW + 90 * SEC).addr4, 1);
        take();
        CHECK_OK(elems_clear(t, &n, NOW));
        CHECK_EQ(n, 2);
        CHECK_EQ(elems_count(t, NOW).addr4, 0);
        elems_rollback(t);
        CHECK_EQ(elems_count(t, NOW).addr4, 1);
        CHECK_OK(elems_clear(t, &n, NOW));
        elems_commit(t);
        CHECK_EQ(elems_count(t, NOW).addr6, 0);
        r = R("192.0.2.99");
        CHECK_OK(elems_remove(t, &r, &found, NOW));
        CHECK(!found);
        CHECK_STREQ(take(), "");
        elems_free(t);
}

static void test_nested_ranges(void) {
        elems *t = elems_new(record, NULL);
        nfaddr_range r;
        bool found;

        CHECK_OK(put(t, "10.1.0.0/16", NOW + 600 * SEC));
        CHECK_OK(put(t, "10.2.0.0/16", NOW + 30 * SEC));
        CHECK_STREQ(take(), "+10.1.0.0-10.1.255.255 +10.2.0.0-10.2.255.255 ");
        /* a wider range replaces the two inside it in the kernel */
        CHECK_OK(put(t, "10.0.0.0/8", NOW + 60 * SEC));
        CHECK_STREQ(take(), "-10.1.0.0-10.1.255.255 -10.2.0.0-10.2.255.255 +10.0.0.0-10.255.255.255 ");
        /* a narrower one inside it stays out of the kernel */
        CHECK_OK(put(t, "10.3.0.0/16", NOW + 30 * SEC));
        CHECK_STREQ(take(), "");
        /* single addresses are another set: no conflict with ranges */
        CHECK_OK(put(t, "10.1.2.3", NOW + 30 * SEC));
        CHECK_STREQ(take(), "+10.1.2.3 ");
        elems_commit(t);
        elems_counts c = elems_count(t, NOW);
        CHECK_EQ(c.range4, 1);
        CHECK_EQ(c.covered, 3);
        CHECK_EQ(c.addr4, 1);
        /* the wide one deleted: the covered ones still active come back */
        r = R("10.0.0.0/8");
        CHECK_OK(elems_remove(t, &r, &found, NOW));
        CHECK(found);
        const char *o = take();
        CHECK_CONTAINS(o, "-10.0.0.0-10.255.255.255 ");
        CHECK_CONTAINS(o, "+10.1.0.0-10.1.255.255 ");
        CHECK_CONTAINS(o, "+10.2.0.0-10.2.255.255 ");
        CHECK_CONTAINS(o, "+10.3.0.0-10.3.255.255 ");
        elems_commit(t);
        CHECK_EQ(elems_count(t, NOW).range4, 3);
        /* again, and this time it expires: the kernel drops it, expire()
         * forgets it and promotes the one that outlives it */
        CHECK_OK(put(t, "10.0.0.0/8", NOW + 60 * SEC));
        take();
        elems_commit(t);
        CHECK_EQ(elems_expire(t, NOW + 45 * SEC), 3);  /* 10.2/16, 10.3/16 and 10.1.2.3 expired */
        CHECK_STREQ(take(), "");
        elems_commit(t);
        CHECK_EQ(elems_expire(t, NOW + 61 * SEC), 1);  /* 10/8 */
        CHECK_STREQ(take(), "+10.1.0.0-10.1.255.255 ");
        elems_commit(t);
        /* replay after the table was lost: every active in-kernel element */
        CHECK_OK(put(t, "2001:db8::/48", NOW + 600 * SEC));
        CHECK_OK(put(t, "2001:db8:0:1::/64", NOW + 600 * SEC));
        elems_commit(t);
        take();
        CHECK_OK(elems_replay(t, NOW + 62 * SEC));
        o = take();
        CHECK_CONTAINS(o, "+10.1.0.0-10.1.255.255 ");
        CHECK_CONTAINS(o, "+2001:db8::-2001:db8:0:ffff:ffff:ffff:ffff:ffff ");
        CHECK(!strstr(o, "2001:db8:0:1::"));
        elems_free(t);
}

static int count_rows(const elem *e, void *userdata) {
        (void) e;
        (*(int *) userdata)++;
        return 0;
}

static void test_many(void) {
        elems *t = elems_new(record, NULL);
        char ip[32];
        int n = 0;

        for (int i = 0; i < 100000; i++) {
                nfaddr_range r;
                snprintf(ip, sizeof ip, "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
                CHECK_OK(nfaddr_parse(ip, false, &r));
                CHECK_OK(elems_put(t, &r, NOW + (i % 2 ? 10 : 100) * SEC, ip, "s", "local", NOW));
                out[0] = 0;
        }
        elems_commit(t);
        CHECK_EQ(elems_count(t, NOW).addr4, 100000);
        CHECK_OK(elems_foreach(t, NOW + 50 * SEC, count_rows, &n));
        CHECK_EQ(n, 50000);
        CHECK_EQ(elems_expire(t, NOW + 50 * SEC), 50000);
        CHECK_EQ(elems_count(t, NOW).addr4, 50000);
        elems_free(t);
}

int main(void) {
        test_addresses();
        test_allow_list();
        test_replace_and_rollback();
        test_nested_ranges();
        test_many();
        printf("ok\n");
        return 0;
}
