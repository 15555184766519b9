/* SPDX-License-Identifier: MIT */
#ifndef SPILLWAY_SQLITE_CHECKPOINT_H
#define SPILLWAY_SQLITE_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sqlite3.h>

/* WAL checkpoints on a thread of their own (see checkpoint.c). */

typedef struct bandb_ckpt bandb_ckpt;

/* The defaults: wake the thread once the WAL holds soft pages (SQLite's own
 * automatic checkpoint threshold); the writer checkpoints itself past hard
 * pages (the thread fell behind). */
#define BANDB_CKPT_SOFT_PAGES 1000
#define BANDB_CKPT_HARD_PAGES 16000

/* Opens a second connection to path for the thread, starts the thread and
 * takes over the writer's WAL hook (replacing SQLite's automatic checkpoint).
 * On failure returns a negative errno and leaves the writer as it was
 * (automatic checkpoints in the commit). */
int bandb_ckpt_start(sqlite3 *writer, const char *path, unsigned soft_pages, unsigned hard_pages,
                     bandb_ckpt **ret);

/* Stops and joins the thread, closes its connection, and gives the writer
 * back SQLite's automatic checkpoint. NULL is a no-op. */
void bandb_ckpt_stop(bandb_ckpt *c);

typedef struct bandb_ckpt_stats {
        uint64_t runs;          /* checkpoints the thread ran */
        uint64_t inline_runs;   /* checkpoints the writer ran past hard_pages */
        uint64_t failures;      /* runs that returned an error other than SQLITE_BUSY */
        uint64_t longest_usec;  /* the longest run, of the thread or the writer */
} bandb_ckpt_stats;

void bandb_ckpt_get_stats(bandb_ckpt *c, bandb_ckpt_stats *ret);

/* The thread's verdict, for the writer's thread to log (the thread itself
 * calls nothing of the host's): true once after checkpoints start failing
 * (*rc the error, msg SQLite's message) and once after they work again
 * (*rc SQLITE_OK). */
bool bandb_ckpt_take_report(bandb_ckpt *c, int *rc, char *msg, size_t size);

#endif
