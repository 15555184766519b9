/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * YAML documents as a tree that remembers where every node came from, so
 * config errors can say file:line:column. Built with libyaml; all memory
 * lives in one arena freed by ydocs_free(). Anchors and aliases work (an
 * alias points at the anchored node, so the tree is a DAG); merge keys are
 * not supported.
 *
 * Limits, each refused with file:line:column (issue 11 item 7: a 580-byte
 * alias bomb hung every reader that walks the tree):
 *   - nesting depth YAML_MAX_DEPTH;
 *   - aliases: a document may grow by at most YAML_MAX_ALIAS_NODES nodes
 *     through aliases (counted as a reader expanding every alias sees them),
 *     and aliases may nest YAML_MAX_ALIAS_DEPTH deep (an anchored node holding
 *     an alias of an anchored node holding an alias...); an alias inside the
 *     node it names is refused (a cycle);
 *   - files: YAML_MAX_FILE bytes, checked with fstat() before reading.
 * Building is linear in the input: anchors and the duplicate-key check use
 * hash tables.
 */

#include <stdbool.h>
#include <stddef.h>

#include "arena.h"
#include "error.h"

typedef enum ynode_type {
        YNODE_SCALAR,
        YNODE_SEQUENCE,
        YNODE_MAPPING,
} ynode_type;

typedef struct ynode ynode;

typedef struct ypair {
        ynode *key;            /* always a scalar */
        ynode *value;
} ypair;

#define YAML_MAX_DEPTH 64
#define YAML_MAX_ALIAS_NODES 10000
#define YAML_MAX_ALIAS_DEPTH 4
#define YAML_MAX_FILE (16u << 20)

struct ynode {
        ynode_type type;
        unsigned line, column; /* 1-based */
        size_t weight;         /* nodes in this subtree with aliases expanded (itself included) */
        unsigned alias_depth;  /* aliases nested in this subtree: 0 none, 1 an alias of a plain node, ... */
        /* scalar */
        const char *value;
        size_t len;
        bool plain;            /* unquoted, so "null"/"~"/"" mean null */
        /* sequence */
        ynode **items;
        size_t n_items;
        /* mapping, in document order */
        ypair *pairs;
        size_t n_pairs;
};

typedef struct ydocs {
        arena arena;
        const char *filename;
        ynode **docs;          /* a document's root may be NULL (empty document) */
        unsigned *doc_lines;   /* line where each document starts */
        size_t n_docs;
} ydocs;

/* Parse every document of a buffer. On error fills err with
 * "file:line:column: problem" and returns -EINVAL. */
int ydocs_parse(const char *filename, const char *buf, size_t len, ydocs **ret, spw_error *err);
/* The same for a file, refused before reading when larger than YAML_MAX_FILE. */
int ydocs_load_file(const char *path, ydocs **ret, spw_error *err);
ydocs *ydocs_free(ydocs *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(ydocs *, ydocs_free);

const char *ynode_type_name(ynode_type t);
bool ynode_is_null(const ynode *n);
/* Lookup in a mapping; NULL when absent. */
ynode *ynode_get(const ynode *map, const char *key);
/* YAML 1.1 booleans as Go's yaml.v2 reads them: true/false/yes/no/on/off.
 * Returns 0 or -EINVAL. */
int ynode_bool(const ynode *n, bool *ret);
