/* SPDX-License-Identifier: MIT */
/*
 * libyaml event stream -> ynode tree, in one pass and linear time:
 *   - recursion depth is bounded (YAML_MAX_DEPTH) so a hostile document
 *     cannot exhaust the stack;
 *   - anchors live in a hash table (per document), duplicate keys are found
 *     with one hash table of (mapping, key) for the whole stream;
 *   - every node records its weight (nodes with aliases expanded) and its
 *     alias depth once it is complete, so an alias costs O(1) to check
 *     against YAML_MAX_ALIAS_NODES and YAML_MAX_ALIAS_DEPTH, and a node still
 *     being built (weight 0) cannot be aliased: no cycles.
 * The number of nodes is bounded by the input size, the expanded size by
 * the input size plus YAML_MAX_ALIAS_NODES: whatever walks the tree later,
 * expanding aliases or not, does bounded work.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <yaml.h>

#include "strutil.h"
#include "yamltree.h"

typedef struct anchor {
        const char *name;
        ynode *node;
        struct anchor *next;
} anchor;

typedef struct key_entry {
        const ynode *map;      /* NULL: free slot */
        const ynode *key;
} key_entry;

typedef struct builder {
        yaml_parser_t parser;
        ydocs *docs;
        const char *filename;
        spw_error *err;
        /* the current document's anchors: chained hash, later ones shadow */
        anchor **anchors;
        size_t n_buckets, n_anchors;
        /* every (mapping, key) of the stream: open addressing, load <= 1/2 */
        key_entry *keys;
        size_t keys_cap, n_keys;
        size_t alias_nodes;    /* nodes the current document gained through aliases */
} builder;

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n) {
        const unsigned char *c = p;
        for (size_t i = 0; i < n; i++)
                h = (h ^ c[i]) * UINT64_C(0x100000001b3);
        return h;
}

#define HASH_SEED UINT64_C(0xcbf29ce484222325)

static int builder_fail(builder *b, unsigned line, unsigned col, const char *what) {
        return spw_error_set(b->err, -EINVAL, "%s:%u:%u: %s", b->filename, line, col, what);
}

static int next_event(builder *b, yaml_event_t *ev) {
        if (!yaml_parser_parse(&b->parser, ev)) {
                const yaml_mark_t *m = b->parser.problem_mark.line || b->parser.problem_mark.column
                                               ? &b->parser.problem_mark : &b->parser.context_mark;
                return spw_error_set(b->err, -EINVAL, "%s:%zu:%zu: invalid YAML: %s%s%s", b->filename,
                                     m->line + 1, m->column + 1, b->parser.problem ? b->parser.problem : "syntax error",
                                     b->parser.context ? " " : "", b->parser.context ? b->parser.context : "");
        }
        return 0;
}

static ynode *new_node(builder *b, ynode_type t, const yaml_mark_t *m) {
        ynode *n = arena_alloc(&b->docs->arena, sizeof *n);
        if (!n)
                return NULL;
        n->type = t;
        n->line = (unsigned) m->line + 1;
        n->column = (unsigned) m->column + 1;
        return n;
}

/* ------------------------------------------------------------ anchors */

static int remember_anchor(builder *b, const yaml_char_t *name, ynode *n) {
        anchor *a;
        size_t i;

        if (!name)
                return 0;
        if (b->n_anchors >= 2 * b->n_buckets) {
                size_t nb = b->n_buckets ? b->n_buckets * 4 : 16;
                anchor **t = calloc(nb, sizeof *t);
                if (!t)
                        return -ENOMEM;
                /* each name is in the table once (a redefinition replaces
                 * it), so chain order does not matter */
                for (size_t k = 0; k < b->n_buckets; k++)
                        for (anchor *x = b->anchors[k], *next; x; x = next) {
                                next = x->next;
                                i = hash_bytes(HASH_SEED, x->name, strlen(x->name)) & (nb - 1);
                                x->next = t[i];
                                t[i] = x;
                        }
                free(b->anchors);
                b->anchors = t;
                b->n_buckets = nb;
        }
        a = arena_alloc(&b->docs->arena, sizeof *a);
        if (!a || !(a->name = arena_strdup(&b->docs->arena, (const char *) name)))
                return -ENOMEM;
        a->node = n;
        i = hash_bytes(HASH_SEED, a->name, strlen(a->name)) & (b->n_buckets - 1);
        /* a redefined anchor replaces the old one for later aliases */
        for (anchor **pp = &b->anchors[i]; *pp; pp = &(*pp)->next)
                if (streq((*pp)->name, a->name)) {
                        a->next = (*pp)->next;
                        *pp = a;
                        return 0;
                }
        a->next = b->anchors[i];
        b->anchors[i] = a;
        b->n_anchors++;
        return 0;
}

static ynode *find_anchor(builder *b, const char *name) {
        if (!b->n_buckets)
                return NULL;
        for (anchor *a = b->anchors[hash_bytes(HASH_SEED, name, strlen(name)) & (b->n_buckets - 1)]; a; a = a->next)
                if (streq(a->name, name))
                        return a->node;
        return NULL;
}

static void forget_anchors(builder *b) {
        if (b->n_buckets)
                memset(b->anchors, 0, b->n_buckets * sizeof *b->anchors);
        b->n_anchors = 0;
}

/* ------------------------------------------------------------ duplicate keys */

static size_t key_slot(const builder *b, const ynode *map, const ynode *key) {
        uint64_t h = hash_bytes(HASH_SEED, &map, sizeof map);
        return hash_bytes(h, key->value, key->len) & (b->keys_cap - 1);
}

/* Add key to map's set. Returns 0, 1 with *first set when the map already
 * has that key, or -ENOMEM. */
static int add_key(builder *b, const ynode *map, const ynode *key, const ynode **first) {
        size_t i;

        if (2 * (b->n_keys + 1) > b->keys_cap) {
                size_t ncap = b->keys_cap ? b->keys_cap * 2 : 64;
                key_entry *old = b->keys, *t = calloc(ncap, sizeof *t);
                size_t ocap = b->keys_cap;
                if (!t)
                        return -ENOMEM;
                b->keys = t;
                b->keys_cap = ncap;
                for (size_t k = 0; k < ocap; k++)
                        if (old[k].map) {
                                for (i = key_slot(b, old[k].map, old[k].key); t[i].map; i = (i + 1) & (ncap - 1))
                                        ;
                                t[i] = old[k];
                        }
                free(old);
        }
        for (i = key_slot(b, map, key); b->keys[i].map; i = (i + 1) & (b->keys_cap - 1))
                if (b->keys[i].map == map && b->keys[i].key->len == key->len &&
                    memcmp(b->keys[i].key->value, key->value, key->len) == 0) {
                        *first = b->keys[i].key;
                        return 1;
                }
        b->keys[i] = (key_entry) { map, key };
        b->n_keys++;
        return 0;
}

/* ------------------------------------------------------------ the tree */

static int grow(builder *b, void **items, size_t *cap, size_t n, size_t elem) {
        if (n < *cap)
                return 0;
        size_t ncap = *cap ? *cap * 2 : 4;
        void *p = arena_alloc(&b->docs->arena, ncap * elem);
        if (!p)
                return -ENOMEM;
        if (n)
                memcpy(p, *items, n * elem);
        *items = p;
        *cap = ncap;
        return 0;
}

/* A child seen from its parent: the node, and how deep its aliases nest as
 * the parent sees them (one more than the node's own when it came through
 * an alias). */
static int parse_node(builder *b, yaml_event_t *ev, unsigned depth, ynode **ret, unsigned *ret_alias_depth);

/* The weight and alias depth of a node being built are summed here, and
 * stored in the node only when it is complete: weight 0 marks a node that
 * an alias may not name yet. */
typedef struct subtree {
        size_t weight;
        unsigned alias_depth;
} subtree;

static void add_child(subtree *t, const ynode *child, unsigned child_alias_depth) {
        t->weight += child->weight;
        if (child_alias_depth > t->alias_depth)
                t->alias_depth = child_alias_depth;
}

static int parse_sequence(builder *b, ynode *seq, unsigned depth, subtree *t) {
        size_t cap = 0;
        for (;;) {
                yaml_event_t ev;
                ynode *item;
                unsigned ad;
                int r = next_event(b, &ev);
                if (r < 0)
                        return r;
                if (ev.type == YAML_SEQUENCE_END_EVENT) {
                        yaml_event_delete(&ev);
                        return 0;
                }
                r = parse_node(b, &ev, depth + 1, &item, &ad);
                yaml_event_delete(&ev);
                if (r < 0)
                        return r;
                if (grow(b, (void **) &seq->items, &cap, seq->n_items, sizeof(ynode *)) < 0)
                        return -ENOMEM;
                seq->items[seq->n_items++] = item;
                add_child(t, item, ad);
        }
}

static int parse_mapping(builder *b, ynode *map, unsigned depth, subtree *t) {
        size_t cap = 0;
        for (;;) {
                yaml_event_t ev;
                ynode *key, *value;
                const ynode *first;
                unsigned kad, vad;
                int r = next_event(b, &ev);
                if (r < 0)
                        return r;
                if (ev.type == YAML_MAPPING_END_EVENT) {
                        yaml_event_delete(&ev);
                        return 0;
                }
                r = parse_node(b, &ev, depth + 1, &key, &kad);
                yaml_event_delete(&ev);
                if (r < 0)
                        return r;
                if (key->type != YNODE_SCALAR)
                        return builder_fail(b, key->line, key->column, "a mapping key must be a plain string");
                if (key->plain && key->len == 2 && memcmp(key->value, "<<", 2) == 0)
                        return builder_fail(b, key->line, key->column, "merge keys (<<) are not supported");
                r = add_key(b, map, key, &first);
                if (r < 0)
                        return r;
                if (r > 0) {
                        char what[512];
                        snprintf(what, sizeof what, "duplicate key '%.200s' (first defined at line %u, column %u)",
                                 key->value, first->line, first->column);
                        return builder_fail(b, key->line, key->column, what);
                }
                r = next_event(b, &ev);
                if (r < 0)
                        return r;
                r = parse_node(b, &ev, depth + 1, &value, &vad);
                yaml_event_delete(&ev);
                if (r < 0)
                        return r;
                if (grow(b, (void **) &map->pairs, &cap, map->n_pairs, sizeof(ypair)) < 0)
                        return -ENOMEM;
                map->pairs[map->n_pairs++] = (ypair) { key, value };
                add_child(t, key, kad);
                add_child(t, value, vad);
        }
}

static int parse_alias(builder *b, yaml_event_t *ev, ynode **ret, unsigned *ret_alias_depth) {
        const char *name = (const char *) ev->data.alias.anchor;
        unsigned line = (unsigned) ev->start_mark.line + 1, col = (unsigned) ev->start_mark.column + 1;
        char what[512];
        ynode *n = find_anchor(b, name);

        if (!n) {
                snprintf(what, sizeof what, "unknown alias *%.200s", name);
                return builder_fail(b, line, col, what);
        }
        if (n->weight == 0) {
                snprintf(what, sizeof what, "alias *%.200s is inside the node it names (line %u, column %u): "
                         "a recursive alias is refused", name, n->line, n->column);
                return builder_fail(b, line, col, what);
        }
        if (n->alias_depth + 1 > YAML_MAX_ALIAS_DEPTH) {
                snprintf(what, sizeof what, "alias *%.200s: aliases nested more than %d deep "
                         "(an alias of a node holding aliases of nodes holding aliases...); refused", name,
                         YAML_MAX_ALIAS_DEPTH);
                return builder_fail(b, line, col, what);
        }
        if (n->weight > YAML_MAX_ALIAS_NODES - b->alias_nodes) {
                snprintf(what, sizeof what, "alias *%.200s: aliases would add more than %d nodes to this document "
                         "(%zu so far, this one %zu): refused as an alias bomb", name, YAML_MAX_ALIAS_NODES,
                         b->alias_nodes, n->weight);
                return builder_fail(b, line, col, what);
        }
        b->alias_nodes += n->weight;
        *ret = n;
        *ret_alias_depth = n->alias_depth + 1;
        return 0;
}

static int parse_node(builder *b, yaml_event_t *ev, unsigned depth, ynode **ret, unsigned *ret_alias_depth) {
        subtree t = { 0 };
        ynode *n;
        int r;

        if (depth > YAML_MAX_DEPTH)
                return builder_fail(b, (unsigned) ev->start_mark.line + 1, (unsigned) ev->start_mark.column + 1,
                                    "nesting too deep");
        switch (ev->type) {
        case YAML_SCALAR_EVENT:
                n = new_node(b, YNODE_SCALAR, &ev->start_mark);
                if (!n || !(n->value = arena_strndup(&b->docs->arena, (const char *) ev->data.scalar.value,
                                                     ev->data.scalar.length)))
                        return -ENOMEM;
                n->len = ev->data.scalar.length;
                if (strlen(n->value) != n->len)
                        return builder_fail(b, n->line, n->column, "NUL byte in a string");
                n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
                r = remember_anchor(b, ev->data.scalar.anchor, n);
                break;
        case YAML_SEQUENCE_START_EVENT:
                n = new_node(b, YNODE_SEQUENCE, &ev->start_mark);
                if (!n)
                        return -ENOMEM;
                r = remember_anchor(b, ev->data.sequence_start.anchor, n);
                if (r >= 0)
                        r = parse_sequence(b, n, depth, &t);
                break;
        case YAML_MAPPING_START_EVENT:
                n = new_node(b, YNODE_MAPPING, &ev->start_mark);
                if (!n)
                        return -ENOMEM;
                r = remember_anchor(b, ev->data.mapping_start.anchor, n);
                if (r >= 0)
                        r = parse_mapping(b, n, depth, &t);
                break;
        case YAML_ALIAS_EVENT:
                return parse_alias(b, ev, ret, ret_alias_depth);
        default:
                return builder_fail(b, (unsigned) ev->start_mark.line + 1, (unsigned) ev->start_mark.column + 1,
                                    "unexpected YAML event");
        }
        if (r < 0)
                return r;
        n->weight = t.weight + 1; /* itself too: from now on it may be aliased */
        n->alias_depth = t.alias_depth;
        *ret = n;
        *ret_alias_depth = n->alias_depth;
        return 0;
}

int ydocs_parse(const char *filename, const char *buf, size_t len, ydocs **ret, spw_error *err) {
        builder b = { .filename = filename, .err = err };
        size_t cap = 0;
        int r = 0;

        b.docs = calloc(1, sizeof *b.docs);
        if (!b.docs)
                return -ENOMEM;
        b.docs->filename = arena_strdup(&b.docs->arena, filename);
        if (!yaml_parser_initialize(&b.parser)) {
                free(b.docs);
                return -ENOMEM;
        }
        yaml_parser_set_input_string(&b.parser, (const unsigned char *) buf, len);

        for (;;) {
                yaml_event_t ev;
                r = next_event(&b, &ev);
                if (r < 0)
                        break;
                if (ev.type == YAML_STREAM_END_EVENT) {
                        yaml_event_delete(&ev);
                        break;
                }
                if (ev.type != YAML_DOCUMENT_START_EVENT) {
                        yaml_event_delete(&ev);
                        continue; /* STREAM_START */
                }
                unsigned line = (unsigned) ev.start_mark.line + 1;
                yaml_event_delete(&ev);

                ynode *root = NULL;
                r = next_event(&b, &ev);
                if (r < 0)
                        break;
                if (ev.type != YAML_DOCUMENT_END_EVENT) {
                        unsigned ad;
                        r = parse_node(&b, &ev, 0, &root, &ad);
                        yaml_event_delete(&ev);
                        if (r < 0)
                                break;
                        r = next_event(&b, &ev);
                        if (r < 0)
                                break;
                }
                yaml_event_delete(&ev); /* DOCUMENT_END */

                size_t cap2 = cap;
                if (grow(&b, (void **) &b.docs->docs, &cap, b.docs->n_docs, sizeof(ynode *)) < 0 ||
                    grow(&b, (void **) &b.docs->doc_lines, &cap2, b.docs->n_docs, sizeof(unsigned)) < 0) {
                        r = -ENOMEM;
                        break;
                }
                b.docs->docs[b.docs->n_docs] = root;
                b.docs->doc_lines[b.docs->n_docs] = line;
                b.docs->n_docs++;
                forget_anchors(&b); /* anchors do not cross documents */
                b.alias_nodes = 0;
        }
        yaml_parser_delete(&b.parser);
        free(b.anchors);
        free(b.keys);
        if (r < 0) {
                if (r == -ENOMEM)
                        spw_error_set(err, r, "%s: out of memory", filename);
                ydocs_free(b.docs);
                return r;
        }
        *ret = b.docs;
        return 0;
}

int ydocs_load_file(const char *path, ydocs **ret, spw_error *err) {
        _cleanup_free_ char *buf = NULL;
        size_t len;
        int r = read_full_file(path, YAML_MAX_FILE, &buf, &len, err);
        if (r < 0)
                return r;
        return ydocs_parse(path, buf, len, ret, err);
}

ydocs *ydocs_free(ydocs *d) {
        if (!d)
                return NULL;
        arena_deinit(&d->arena);
        free(d);
        return NULL;
}

const char *ynode_type_name(ynode_type t) {
        switch (t) {
        case YNODE_SCALAR: return "a scalar";
        case YNODE_SEQUENCE: return "a list";
        case YNODE_MAPPING: return "a mapping";
        }
        return "?";
}

bool ynode_is_null(const ynode *n) {
        if (!n)
                return true;
        if (n->type != YNODE_SCALAR || !n->plain)
                return false;
        return n->len == 0 || streq(n->value, "~") || streq(n->value, "null") || streq(n->value, "Null") ||
               streq(n->value, "NULL");
}

ynode *ynode_get(const ynode *map, const char *key) {
        if (!map || map->type != YNODE_MAPPING)
                return NULL;
        for (size_t i = 0; i < map->n_pairs; i++)
                if (streq(map->pairs[i].key->value, key))
                        return map->pairs[i].value;
        return NULL;
}

int ynode_bool(const ynode *n, bool *ret) {
        static const char *const yes[] = { "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "y", "Y" };
        static const char *const no[] = { "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", "n", "N" };

        if (!n || n->type != YNODE_SCALAR)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                if (streq(n->value, yes[i])) {
                        *ret = true;
                        return 0;
                }
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                if (streq(n->value, no[i])) {
                        *ret = false;
                        return 0;
                }
        return -EINVAL;
}
