/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * YAML documents as a tree that remembers where every node came from, so
 * config errors can say file:line:column. Built with libyaml; all memory
 * lives in one arena freed by ydocs_free(). Anchors and aliases work (an
 * alias points at the anchored node); merge keys are not supported.
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

struct ynode {
        ynode_type type;
        unsigned line, column; /* 1-based */
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
