/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A bump allocator: many small allocations, freed together. Used for a
 * parsed signal (one arena per signal, so handing a signal between threads
 * moves one pointer) and for parsed YAML documents.
 */

#include <stddef.h>

typedef struct arena_chunk arena_chunk;

typedef struct arena {
        arena_chunk *head;
        size_t total;          /* bytes obtained from malloc */
        size_t first_size;     /* size of the first chunk, default 1 KiB */
} arena;

#define ARENA_INIT { 0 }

void *arena_alloc(arena *a, size_t size);          /* zeroed, aligned for any type */
char *arena_strdup(arena *a, const char *s);
char *arena_strndup(arena *a, const char *s, size_t n);
char *arena_printf(arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void arena_deinit(arena *a);
/* Bytes handed out (what the arena's users asked for, aligned). */
size_t arena_used(const arena *a);
/* Empty the arena for reuse with a first chunk of first_size: the oldest
 * chunk stays when its size is between first_size and 9/8 of it (no
 * malloc for the next user), the others are freed. */
void arena_reset(arena *a, size_t first_size);
