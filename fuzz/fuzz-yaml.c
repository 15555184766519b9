/* SPDX-License-Identifier: MIT */
/*
 * The YAML loader (src/util/yamltree.c) with anchors and aliases. Beyond
 * "no crash": walking the tree the way a reader does, expanding every
 * alias, must see exactly each root's recorded weight, which the loader
 * bounds by the input plus YAML_MAX_ALIAS_NODES per document (issue 11 item
 * 7), and must end (no cycles); the recorded alias depth stays within
 * YAML_MAX_ALIAS_DEPTH.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "yamltree.h"

static size_t walk(const ynode *n, unsigned depth) {
        size_t w = 1;

        if (depth > YAML_MAX_DEPTH + 1 || n->alias_depth > YAML_MAX_ALIAS_DEPTH) {
                fprintf(stderr, "depth %u / alias depth %u beyond the limits\n", depth, n->alias_depth);
                abort();
        }
        if (n->type == YNODE_SEQUENCE)
                for (size_t i = 0; i < n->n_items; i++)
                        w += walk(n->items[i], depth + 1);
        if (n->type == YNODE_MAPPING)
                for (size_t i = 0; i < n->n_pairs; i++) {
                        if (n->pairs[i].key->type != YNODE_SCALAR)
                                abort();
                        w += walk(n->pairs[i].key, depth + 1) + walk(n->pairs[i].value, depth + 1);
                        (void) ynode_get(n, n->pairs[i].key->value);
                }
        if (n->type == YNODE_SCALAR) {
                bool b;
                (void) ynode_is_null(n);
                (void) ynode_bool(n, &b);
        }
        return w;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        ydocs *d = NULL;
        spw_error err;

        if (ydocs_parse("fuzz.yaml", (const char *) data, size, &d, &err) < 0)
                return 0;
        for (size_t i = 0; i < d->n_docs; i++) {
                const ynode *root = d->docs[i];
                if (!root)
                        continue;
                size_t w = walk(root, 0);
                if (w != root->weight || w > 2 * size + 2 + YAML_MAX_ALIAS_NODES) {
                        fprintf(stderr, "document %zu: walked %zu nodes, weight %zu, input %zu bytes\n", i, w,
                                root->weight, size);
                        abort();
                }
        }
        ydocs_free(d);
        return 0;
}
