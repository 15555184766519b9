/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Scratch memory for the JSON tree of one ingest line.
 *
 * jansson builds a tree of ~40 small objects for a 900-byte alert, each
 * with its own malloc(), and json_decref() walks the tree to free() them
 * one by one: 12 % of the event loop's instructions per signal (issue 17).
 * The tree lives only while its line is handled (the signal model copies
 * what it keeps into the message's arena), so it can be bump-allocated
 * from one region and dropped at once.
 *
 * DESIGN
 *   - json_scratch_install() gives jansson our allocator
 *     (json_set_alloc_funcs: process-wide, before any other jansson call).
 *     It allocates from the region only on the thread that installed it
 *     (the event loop) and only between json_scratch_begin() and
 *     json_scratch_end(); everything else (replies, status, plugins on
 *     worker threads) gets malloc(), so a string from json_dumps() is
 *     still released with free().
 *   - The allocator's free() ignores pointers inside the region (checked
 *     by address: the region never moves) and free()s the rest, from any
 *     thread.
 *   - A tree larger than the region continues in malloc(): then
 *     json_scratch_drop() calls json_decref() (the region's part is
 *     ignored, the rest freed); otherwise it skips the walk. Either way the
 *     region is empty afterwards.
 *   - Nothing may keep a reference into the tree past json_scratch_drop():
 *     the same rule as json_decref(), which freed the tree before.
 *   - Under AddressSanitizer the free part of the region is poisoned, so a
 *     use after the drop is still reported.
 */

#include <stdbool.h>
#include <jansson.h>

/* Bytes in the region: a tree up to this size needs no malloc(). */
#define JSON_SCRATCH_SIZE (256 * 1024)

/* Call once, on the event loop's thread, before any other jansson call.
 * Returns 0 or -ENOMEM (jansson then keeps malloc and free). */
int json_scratch_install(void);

/* On the installing thread: jansson allocates from the region until
 * json_scratch_end(). Returns false (nothing changes) when not installed,
 * on another thread, or while a tree still lives in the region. */
bool json_scratch_begin(void);
void json_scratch_end(void);

/* json_loadb() between json_scratch_begin() and json_scratch_end():
 * *scratch says whether the tree (or a failed load's debris) is in the
 * region, for json_scratch_drop(). */
json_t *json_scratch_loadb(const char *buf, size_t len, size_t flags, json_error_t *err, bool *scratch);

/* Release `tree` (NULL is fine) loaded after json_scratch_begin() returned
 * `scratch`: with true, empty the region (and free what spilled into
 * malloc); with false, json_decref(). */
void json_scratch_drop(json_t *tree, bool scratch);

/* For tests: allocations that went to malloc() because the region was full
 * since install. */
unsigned long json_scratch_overflows(void);
