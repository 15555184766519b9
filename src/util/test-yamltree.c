/* SPDX-License-Identifier: MIT */
#include <errno.h>

#include "tests.h"
#include "yamltree.h"

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
        return 0;
}
