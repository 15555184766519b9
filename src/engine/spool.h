/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The disk spool of one backend (durability: disk): an append-only log of
 * the signals accepted for it, so that a `queued` acknowledgement survives
 * kill -9, a stop with the backend down and outages of any length.
 *
 * DESIGN
 *   Files. STATE_DIR/spool/BACKEND/ holds numbered segments
 *   (%016llx.seg), a `checkpoint` (the position up to which the backend's
 *   flush committed everything) and `dead-letter` (JSON lines: signals the
 *   backend permanently rejected, with the reason). A record is a 28-byte
 *   header (payload length, CRC32C of everything after the CRC, signal id,
 *   received_at, length of the line) followed by the producer's JSON line
 *   and the bans routing added (a JSON array). Replay re-parses the line.
 *
 *   Threads. The main thread appends (spool_append: reserves room, hands
 *   the message over; never touches the disk). A writer thread per spool
 *   writes the batch waiting, fdatasyncs it once (spool_sync: batch), and
 *   only then settles the messages' spool outcome (the `queued` ack follows
 *   through the hub) and hands them to the worker: into a bounded memory
 *   FIFO, or, when that is full or records wait on disk, not at all (the
 *   worker reads them back from the segment). The worker pops (spool_pop)
 *   in log order, and after a successful flush commits the end position of
 *   the last record it handled (spool_commit): whole segments below it are
 *   deleted.
 *
 *   Start. spool_open scans from the checkpoint, checks every record's
 *   CRC, truncates a torn or corrupt tail at the last good record (counted,
 *   reported by the caller) and leaves the rest to be replayed before any
 *   new signal.
 *
 *   Room. spool_max_size bounds the bytes on disk (written + reserved);
 *   when full the backend's on_full policy applies (block: the producer
 *   waits, on_space is called when a commit frees room; drop_*: the new
 *   signal is refused with an error).
 */

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"
#include "hub.h"
#include "message.h"

typedef struct spool spool;

typedef struct spool_pos {
        uint64_t seg;
        uint64_t off;
} spool_pos;

typedef struct spool_open_report {
        uint64_t replay;          /* records to deliver again */
        uint64_t truncated_bytes; /* a torn or corrupt tail cut off */
        uint64_t truncated_records_hint; /* 1 when a partial record was cut, else 0 */
        char truncated_file[256];
} spool_open_report;

/* Open (create) STATE_DIR/spool/NAME and start its writer thread.
 * mem_capacity bounds the messages kept in memory for the worker.
 * on_space(userdata) is called when a commit frees room after a refused
 * append. */
/* Opening a spool that is open already (a reload starts a changed backend
 * while the old one drains) shares it: the new opener's generation (*gen)
 * becomes the only consumer, and what the old one had not committed is
 * read again from the log. */
int spool_open(const char *state_dir, const char *name, spool_sync sync, uint64_t max_size, size_t mem_capacity,
               void (*on_space)(void *), void *userdata, spool **ret, unsigned *gen, spool_open_report *rep,
               spw_error *err);
/* Let go of it; the last close stops the writer (what waits is written
 * first) and frees. If `gen` consumed, the newest other opener takes over. */
spool *spool_close(spool *s, unsigned gen);

/* Main thread. 0: handed over (takes a reference); -ENOSPC: full (and
 * on_space will be called when room appears). */
int spool_append(spool *s, spw_msg *m);
bool spool_room_or_arm(spool *s, const spw_msg *m);

/* Worker. Up to max messages in log order (their end positions in ends),
 * waiting until deadline (monotonic) or spool_kick(). Records read back
 * from disk are new messages (ACK_QUEUED, no producer waiting). */
size_t spool_pop(spool *s, unsigned gen, spw_msg **items, spool_pos *ends, size_t max, usec_t deadline);
void spool_kick(spool *s);
/* Worker: everything up to `end` is delivered or dead-lettered. */
void spool_commit(spool *s, spool_pos end, uint64_t n_records);
/* Worker: record a permanently rejected signal with the reason. */
int spool_dead_letter(spool *s, const spw_msg *m, const char *why);

/* Dead letters (admin, main thread): the entries (JSON objects) whose id is
 * in ids (all when ids is NULL); with take, they are also removed from the
 * file. */
int spool_dead_letters(spool *s, const uint64_t *ids, size_t n_ids, bool take, json_t **ret);
/* Append a producer's line again (a dead letter retried), keeping its id. */
int spool_requeue_line(spool *s, uint64_t id, const char *line, size_t len);

/* Counters (any thread). */
typedef struct spool_stats {
        uint64_t pending;         /* records written or waiting, not yet committed */
        uint64_t bytes;           /* on disk now */
        uint64_t peak_bytes;
        uint64_t dead_letters;
        uint64_t write_errors;
} spool_stats;
void spool_get_stats(spool *s, spool_stats *ret);
const char *spool_dir(const spool *s);

/* CRC32C (Castagnoli), exposed for the tests. */
uint32_t spool_crc32c(uint32_t crc, const void *buf, size_t len);
