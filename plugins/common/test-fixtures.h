/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Test fixtures shared by the ban-database plugins' tests (sqlite's
 * test-sqlite.c, mysql's tests/test-mysql.c) and benchmarks (bench-ceiling.c,
 * tests/bench-mysql.c): one plugin instance on a testhost whose clock the
 * test moves, the signals they insert, and the rows read_at returns. For
 * test programs only (it links src/util and tests/lib); a failed check
 * aborts.
 */

#include <stdint.h>

#include <spillway/backend.h>

#include "testhost.h"
#include "timeutil.h"

#define SEC INT64_C(1000000)
/* The tests' "now" when a fixture opens: 2023-11-14 22:13:20 UTC. */
#define T0 (INT64_C(1700000000) * SEC)

/* One plugin instance, driven through a testhost. Each test opens its own
 * (fixture_open() in the test: the config differs per backend). */
typedef struct fixture {
        const struct spw_backend *plugin;
        testhost *host;
        void *self;
} fixture;

/* Move the fixture's clock by d. */
void advance(fixture *f, spw_usec_t d);

/* A signal with one event and, when target is not NULL, one ban of target
 * (an address or a CIDR range) until `until`. Ids count up from 1. */
typedef struct sigbuf {
        spw_signal sig;
        spw_ban ban;
        spw_event ev;
} sigbuf;
const spw_signal *mk_signal(sigbuf *s, const char *target, const char *reason, spw_usec_t until);

/* Insert such a signal. Returns insert()'s result. */
int insert(fixture *f, const char *target, const char *reason, spw_usec_t until);

/* What read_at returned, strings copied ("(null)" for NULL). */
typedef struct read_row {
        char source[32], iptext[64], reason[64], action[32], cn[8], as[64], scope[32], value[64];
        int64_t bancount, as_number, events_count;
        spw_usec_t until;
} read_row;

typedef struct rows {
        read_row r[64];
        size_t n;
} rows;

/* snprintf s into dst, "(null)" for NULL. */
void copy(char *dst, size_t size, const char *s);
/* A read_at callback appending to the rows at userdata (at most 64). */
int collect(const spw_ban_row *br, void *userdata);
/* The rows read_at(at) returns; it must succeed. */
rows read_at(fixture *f, spw_usec_t at);

/* ------------------------------------------------------------ benchmarks */

/* One signal's worth of rows: a typical ssh-bruteforce overflow (about the
 * ~870-byte JSON signal of PERFORMANCE-NOTES.md), one event, one 4h ban. */
typedef struct sample {
        spw_signal sig;
        spw_event ev;
        spw_ban ban;
        char ip[16];
} sample;

/* Fill s as signal number i (id i + 1) at now, from one of `targets`
 * addresses (10.x.y.z, i modulo targets). */
void sample_fill(sample *s, uint64_t i, uint64_t targets, usec_t now);

/* CPU seconds (user + system) of this process so far: on a shared machine
 * a steadier figure than wall time. */
double cpu_seconds(void);

/* Load the plugin at path with dlopen() as the daemon does, start it with
 * config on a testhost whose clock is the real time, insert `signals`
 * samples of `targets` addresses, flushing every `batch` signals and after
 * the last, then time one read_at(now) over what is stored. Returns the
 * wall seconds of the inserts and flushes; *cpu (when not NULL) their CPU
 * seconds. Any failure prints "prog: what: why" and exits 1. */
double bench_through_plugin(const char *prog, const char *path, const spw_kv *config, size_t n_config,
                            uint64_t signals, uint64_t batch, uint64_t targets, double *cpu, uint64_t *read_rows,
                            double *read_ms);

/* A positive decimal integer (a command-line count). 0 or -EINVAL. */
int parse_u64(const char *s, uint64_t *ret);
