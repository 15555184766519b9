/* SPDX-License-Identifier: MIT */
/*
 * libyaml event stream -> ynode tree. Recursion depth is bounded
 * (YAML_MAX_DEPTH) so a hostile document cannot exhaust the stack; the
 * number of nodes is bounded by the input size.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "strutil.h"
#include "yamltree.h"

#define YAML_MAX_DEPTH 64
#define YAML_MAX_FILE (16u << 20)

typedef struct anchor {
        const char *name;
        ynode *node;
        struct anchor *next;
} anchor;

typedef struct builder {
        yaml_parser_t parser;
        ydocs *docs;
        const char *filename;
        spw_error *err;
        anchor *anchors;
} builder;

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

static int remember_anchor(builder *b, const yaml_char_t *name, ynode *n) {
        anchor *a;
        if (!name)
                return 0;
        a = arena_alloc(&b->docs->arena, sizeof *a);
        if (!a || !(a->name = arena_strdup(&b->docs->arena, (const char *) name)))
                return -ENOMEM;
        a->node = n;
        a->next = b->anchors;
        b->anchors = a;
        return 0;
}

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

static int parse_node(builder *b, yaml_event_t *ev, unsigned depth, ynode **ret);

static int parse_sequence(builder *b, ynode *seq, unsigned depth) {
        size_t cap = 0;
        for (;;) {
                yaml_event_t ev;
                ynode *item;
                int r = next_event(b, &ev);
                if (r < 0)
                        return r;
                if (ev.type == YAML_SEQUENCE_END_EVENT) {
                        yaml_event_delete(&ev);
                        return 0;
                }
                r = parse_node(b, &ev, depth + 1, &item);
                yaml_event_delete(&ev);
                if (r < 0)
                        return r;
                if (grow(b, (void **) &seq->items, &cap, seq->n_items, sizeof(ynode *)) < 0)
                        return -ENOMEM;
                seq->items[seq->n_items++] = item;
        }
}

static int parse_mapping(builder *b, ynode *map, unsigned depth) {
        size_t cap = 0;
        for (;;) {
                yaml_event_t ev;
                ynode *key, *value;
                int r = next_event(b, &ev);
                if (r < 0)
                        return r;
                if (ev.type == YAML_MAPPING_END_EVENT) {
                        yaml_event_delete(&ev);
                        return 0;
                }
                r = parse_node(b, &ev, depth + 1, &key);
                yaml_event_delete(&ev);
                if (r < 0)
                        return r;
                if (key->type != YNODE_SCALAR)
                        return builder_fail(b, key->line, key->column, "a mapping key must be a plain string");
                if (key->plain && key->len == 2 && memcmp(key->value, "<<", 2) == 0)
                        return builder_fail(b, key->line, key->column, "merge keys (<<) are not supported");
                for (size_t i = 0; i < map->n_pairs; i++)
                        if (map->pairs[i].key->len == key->len && memcmp(map->pairs[i].key->value, key->value, key->len) == 0) {
                                char what[512];
                                snprintf(what, sizeof what, "duplicate key '%s' (first defined at line %u, column %u)",
                                         key->value, map->pairs[i].key->line, map->pairs[i].key->column);
                                return builder_fail(b, key->line, key->column, what);
                        }
                r = next_event(b, &ev);
                if (r < 0)
                        return r;
                r = parse_node(b, &ev, depth + 1, &value);
                yaml_event_delete(&ev);
                if (r < 0)
                        return r;
                if (grow(b, (void **) &map->pairs, &cap, map->n_pairs, sizeof(ypair)) < 0)
                        return -ENOMEM;
                map->pairs[map->n_pairs++] = (ypair) { key, value };
        }
}

static int parse_node(builder *b, yaml_event_t *ev, unsigned depth, ynode **ret) {
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
                        r = parse_sequence(b, n, depth);
                break;
        case YAML_MAPPING_START_EVENT:
                n = new_node(b, YNODE_MAPPING, &ev->start_mark);
                if (!n)
                        return -ENOMEM;
                r = remember_anchor(b, ev->data.mapping_start.anchor, n);
                if (r >= 0)
                        r = parse_mapping(b, n, depth);
                break;
        case YAML_ALIAS_EVENT:
                for (anchor *a = b->anchors; a; a = a->next)
                        if (streq(a->name, (const char *) ev->data.alias.anchor)) {
                                *ret = a->node;
                                return 0;
                        }
                return builder_fail(b, (unsigned) ev->start_mark.line + 1, (unsigned) ev->start_mark.column + 1,
                                    "unknown alias");
        default:
                return builder_fail(b, (unsigned) ev->start_mark.line + 1, (unsigned) ev->start_mark.column + 1,
                                    "unexpected YAML event");
        }
        if (r < 0)
                return r;
        *ret = n;
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
                        r = parse_node(&b, &ev, 0, &root);
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
                b.anchors = NULL; /* anchors do not cross documents */
        }
        yaml_parser_delete(&b.parser);
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
