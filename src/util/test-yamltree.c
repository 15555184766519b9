/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "strbuf.h"
#include "tests.h"
#include "yamltree.h"

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* A backend file whose config: map is a "billion laughs" of mappings,
 * levels deep: each level names the previous one nine times. */
static char *alias_bomb(int levels) {
        strbuf b = STRBUF_INIT;
        strbuf_puts(&b, "name: bomb\npath: sqlite\nconfig:\n  l0: &l0 {a: x, b: x, c: x, d: x, e: x, f: x, g: x, h: x, i: x}\n");
        for (int i = 1; i <= levels; i++)
                strbuf_printf(&b, "  l%d: &l%d {a: *l%d, b: *l%d, c: *l%d, d: *l%d, e: *l%d, f: *l%d, g: *l%d, h: *l%d, i: *l%d}\n",
                              i, i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
        return strbuf_steal(&b);
}

/* Issue 11 item 7: alias expansion is bounded in count and depth, refused
 * with file:line:column, and building stays linear. */
static void test_aliases(void) {
        _cleanup_(ydocs_freep) ydocs *d = NULL;
        spw_error err = { 0 };
        double t0;

        /* the 580-byte bomb of the report (6 levels) and a deeper one: refused at once */
        for (int levels = 6; levels <= 40; levels += 34) {
                _cleanup_free_ char *bomb = alias_bomb(levels);
                t0 = now_s();
                CHECK_EQ(ydocs_parse("bomb.yaml", bomb, strlen(bomb), &d, &err), -EINVAL);
                CHECK(now_s() - t0 < 0.5);
                CHECK_CONTAINS(err.msg, "bomb.yaml:");
                CHECK_CONTAINS(err.msg, "refused");
        }
        {
                _cleanup_free_ char *bomb = alias_bomb(6);
                CHECK(strlen(bomb) < 700);
        }
        /* 2 levels: 1,800 nodes through aliases, nested 2 deep: fine; 3
         * levels would add 16,551 */
        {
                _cleanup_free_ char *ok = alias_bomb(2);
                if (ydocs_parse("ok.yaml", ok, strlen(ok), &d, &err) < 0) {
                        fprintf(stderr, "%s\n", err.msg);
                        abort();
                }
                ynode *l2 = ynode_get(ynode_get(d->docs[0], "config"), "l2");
                CHECK_EQ(l2->alias_depth, 2);
                CHECK_EQ(l2->weight, 1 + 9 * (1 + 1 + 9 * (1 + 1 + 9 * 2)));
                d = ydocs_free(d);
                _cleanup_free_ char *bad = alias_bomb(3);
                CHECK_EQ(ydocs_parse("three.yaml", bad, strlen(bad), &d, &err), -EINVAL);
                CHECK_CONTAINS(err.msg, "three.yaml:7:");
                CHECK_CONTAINS(err.msg, "alias *l2: aliases would add more than 10000 nodes to this document");
        }
        /* depth: four levels of one alias each are fine, five are not */
        static const char deep4[] =
                "a: &a {k: v}\nb: &b {k: *a}\nc: &c {k: *b}\nd: &d {k: *c}\ne: {k: *d}\n";
        CHECK_OK(ydocs_parse("deep4.yaml", deep4, sizeof deep4 - 1, &d, &err));
        d = ydocs_free(d);
        static const char deep5[] =
                "a: &a {k: v}\nb: &b {k: *a}\nc: &c {k: *b}\nd: &d {k: *c}\ne: &e {k: *d}\nf: {k: *e}\n";
        CHECK_EQ(ydocs_parse("deep5.yaml", deep5, sizeof deep5 - 1, &d, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "deep5.yaml:6:8: alias *e: aliases nested more than 4 deep");
        /* count: one big anchored list named many times */
        {
                strbuf b = STRBUF_INIT;
                strbuf_puts(&b, "big: &big [");
                for (int i = 0; i < 1000; i++)
                        strbuf_puts(&b, "x, ");
                strbuf_puts(&b, "x]\nuses:\n");
                for (int i = 0; i < 11; i++)
                        strbuf_puts(&b, "  - *big\n");
                CHECK_EQ(ydocs_parse("count.yaml", b.data, b.len, &d, &err), -EINVAL);
                CHECK_CONTAINS(err.msg, "count.yaml:12:5: alias *big: aliases would add more than 10000 nodes");
                strbuf_deinit(&b);
        }
        /* a cycle: an alias inside the node it names */
        static const char cycle[] = "a: &a [x, *a]\n";
        CHECK_EQ(ydocs_parse("cycle.yaml", cycle, sizeof cycle - 1, &d, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "cycle.yaml:1:11: alias *a is inside the node it names");
        static const char cycle2[] = "a: &a {k: &b {j: *a}}\n";
        CHECK_EQ(ydocs_parse("cycle2.yaml", cycle2, sizeof cycle2 - 1, &d, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "recursive alias is refused");
        /* an anchor redefined: later aliases see the new one */
        static const char redef[] = "a: &x 1\nb: *x\nc: &x 2\nd: *x\n";
        CHECK_OK(ydocs_parse("redef.yaml", redef, sizeof redef - 1, &d, &err));
        CHECK_STREQ(ynode_get(d->docs[0], "b")->value, "1");
        CHECK_STREQ(ynode_get(d->docs[0], "d")->value, "2");
        d = ydocs_free(d);
        /* the count is per document, and anchors do not cross documents */
        static const char docs[] = "a: &x 1\n---\nb: *x\n";
        CHECK_EQ(ydocs_parse("docs.yaml", docs, sizeof docs - 1, &d, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "docs.yaml:3:4: unknown alias *x");

        /* linear: 200,000 keys in one mapping and 50,000 anchors/aliases
         * (quadratic, each took minutes) */
        {
                strbuf b = STRBUF_INIT;
                for (int i = 0; i < 200000; i++)
                        strbuf_printf(&b, "key%d: &a%d v\n", i, i);
                strbuf_puts(&b, "last:\n");
                for (int i = 0; i < 5000; i++)
                        strbuf_printf(&b, "  - *a%d\n", i * 40);
                t0 = now_s();
                CHECK_OK(ydocs_parse("wide.yaml", b.data, b.len, &d, &err));
                fprintf(stderr, "200,000 keys, 5,000 aliases: %.3f s\n", now_s() - t0);
                CHECK(now_s() - t0 < 20); /* generous for sanitizers; quadratic took minutes */
                CHECK_EQ(d->docs[0]->n_pairs, 200001);
                CHECK_STREQ(ynode_get(d->docs[0], "last")->items[4999]->value, "v");
                d = ydocs_free(d);
                strbuf_puts(&b, "key7: again\n");
                CHECK_EQ(ydocs_parse("wide.yaml", b.data, b.len, &d, &err), -EINVAL);
                CHECK_CONTAINS(err.msg, "duplicate key 'key7' (first defined at line 8, column 1)");
                strbuf_deinit(&b);
        }
}

/* Issue 11 item 7: a file's size is checked before it is read. */
static void test_file_size(void) {
        _cleanup_(ydocs_freep) ydocs *d = NULL;
        spw_error err = { 0 };
        char path[] = "/tmp/spw-test-yaml-XXXXXX";
        int fd = mkstemp(path);
        double t0;

        CHECK(fd >= 0);
        /* a sparse 8 GiB file: reading it would take seconds and memory */
        CHECK(ftruncate(fd, INT64_C(8) << 30) == 0);
        t0 = now_s();
        CHECK_EQ(ydocs_load_file(path, &d, &err), -EFBIG);
        CHECK(now_s() - t0 < 0.5);
        CHECK_CONTAINS(err.msg, "file is 8589934592 bytes, larger than the limit of 16777216 bytes; not read");
        CHECK(ftruncate(fd, 0) == 0);
        CHECK(write(fd, "a: 1\n", 5) == 5);
        CHECK_OK(ydocs_load_file(path, &d, &err));
        CHECK_STREQ(ynode_get(d->docs[0], "a")->value, "1");
        close(fd);
        unlink(path);
        CHECK_EQ(ydocs_load_file("/tmp", &d, &err), -EISDIR);
}

static const char multi[] =
        "profile: a\n"
        "filter: \"x == 'y'\"\n"
        "outputs:\n"
        "  - plugin: database\n"
        "    store: false\n"
        "---\n"
        "profile: b\n"
        "list: [1, 2]\n"
        "anchor: &A {k: v}\n"
        "alias: *A\n";

int main(void) {
        _cleanup_(ydocs_freep) ydocs *d = NULL;
        spw_error err = { 0 };
        bool b;

        CHECK_OK(ydocs_parse("t.yaml", multi, sizeof multi - 1, &d, &err));
        CHECK_EQ(d->n_docs, 2);
        ynode *r = d->docs[0];
        CHECK(r->type == YNODE_MAPPING);
        CHECK_STREQ(ynode_get(r, "profile")->value, "a");
        ynode *outs = ynode_get(r, "outputs");
        CHECK(outs && outs->type == YNODE_SEQUENCE && outs->n_items == 1);
        ynode *store = ynode_get(outs->items[0], "store");
        CHECK_EQ(store->line, 5);
        CHECK_EQ(store->column, 12);
        CHECK_OK(ynode_bool(store, &b));
        CHECK(!b);
        CHECK_EQ(d->doc_lines[1], 6);
        ynode *al = ynode_get(d->docs[1], "alias");
        CHECK(al && al->type == YNODE_MAPPING);
        CHECK_STREQ(ynode_get(al, "k")->value, "v");
        d = ydocs_free(d);

        static const char dup[] = "a: 1\nb: 2\na: 3\n";
        CHECK_EQ(ydocs_parse("dup.yaml", dup, sizeof dup - 1, &d, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "dup.yaml:3:1: duplicate key 'a'");

        static const char bad[] = "a: [1, 2\nb: 3\n";
        CHECK_EQ(ydocs_parse("bad.yaml", bad, sizeof bad - 1, &d, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "bad.yaml:");
        CHECK_CONTAINS(err.msg, "invalid YAML");

        static const char empty[] = "# only a comment\n";
        CHECK_OK(ydocs_parse("e.yaml", empty, sizeof empty - 1, &d, &err));
        CHECK_EQ(d->n_docs, 0);
        d = ydocs_free(d);

        /* deep nesting is refused, not a stack overflow */
        char deep[4096];
        size_t n = 0;
        for (int i = 0; i < 1000; i++)
                deep[n++] = '[';
        deep[n] = 0;
        CHECK_EQ(ydocs_parse("deep.yaml", deep, n, &d, &err), -EINVAL);

        CHECK_EQ(ydocs_load_file("/nonexistent/x.yaml", &d, &err), -ENOENT);
        CHECK_CONTAINS(err.msg, "/nonexistent/x.yaml");

        test_aliases();
        test_file_size();
        return 0;
}
