/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The nftables backend's memory of what it enforces, and the address
 * arithmetic under it. Needs libc only (plugins never link src/util), so
 * it is unit-tested without root and without a kernel.
 *
 * Addresses are 16 bytes in network order, IPv4 as ::ffff:a.b.c.d (the
 * spw_ban layout), so memcmp() orders them and a range is [start, end].
 *
 * elems: every ban this instance put into the kernel sets, keyed by
 * (start, end). Single addresses and ranges live in two tables, because
 * the kernel keeps them in two kinds of set: addresses in hash sets (any
 * number of them, overlaps impossible), ranges in interval sets, where two
 * elements must never overlap. Ranges from CIDRs are either disjoint or
 * nested, so the range table keeps the invariant "the ranges in the kernel
 * are disjoint": a range inside a wider one already in the kernel is
 * remembered but not put there (`covered`); a wider range replaces the
 * narrower ones it covers; when the wider one goes (expiry, deletion),
 * elems_promote() puts the covered ones that are still active back.
 *
 * Each change that needs the kernel calls the emit callback with ELEMS_ADD
 * (put this element, replacing one with the same key) or ELEMS_DEL; the
 * caller turns those into one netlink transaction. Changes are recorded in
 * an undo log until elems_commit(); elems_rollback() restores the memory as
 * it was at the last commit (a failed transaction changes nothing in the
 * kernel either). Errors: 0 or a negative errno.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- addresses */

typedef struct nfaddr_range {
        uint8_t start[16];
        uint8_t end[16];
} nfaddr_range;

/* Whether the address is an IPv4 one (::ffff:0:0/96). */
bool nfaddr_is_v4(const uint8_t a[16]);

/* An address ("192.0.2.7", "2001:db8::1") or a CIDR ("198.51.100.0/24",
 * "2001:db8::/64"; host bits must be zero unless lax) into a range.
 * Returns 0 or -EINVAL. */
int nfaddr_parse(const char *s, bool lax, nfaddr_range *ret);

/* An address as nft writes it: dotted quad for IPv4, RFC 5952 for IPv6.
 * buf needs 46 bytes. */
const char *nfaddr_format(const uint8_t a[16], char *buf, size_t size);

/* Whether two ranges share at least one address. */
bool nfaddr_overlap(const nfaddr_range *a, const nfaddr_range *b);
/* Whether outer contains inner. */
bool nfaddr_contains(const nfaddr_range *outer, const nfaddr_range *inner);

/* A list of CIDRs (the `never_ban` allow list). */
typedef struct nfaddr_list {
        nfaddr_range *r;
        char **text;
        size_t n;
} nfaddr_list;

/* Parse "127.0.0.0/8, ::1/128 fe80::/10" (commas and/or spaces; plain
 * addresses allowed). On -EINVAL, *bad points at the offending word (up to
 * badsize bytes copied). */
int nfaddr_list_parse(nfaddr_list *l, const char *s, char *bad, size_t badsize);
void nfaddr_list_free(nfaddr_list *l);
/* The first entry overlapping r, or -1. */
int nfaddr_list_overlap(const nfaddr_list *l, const nfaddr_range *r);

/* ---------------------------------------------------------------- elements */

typedef int64_t elems_usec_t;

typedef struct elem {
        nfaddr_range r;
        elems_usec_t until;
        char *text;             /* the ban's ip_text */
        char *reason;           /* scenario */
        char *source;           /* measure source ("local", "api") */
        uint64_t mark;          /* free for the emit callback */
        bool covered;           /* a range nested in a wider one in the kernel */
        bool uncertain;         /* adopted: in the kernel unless it changed meanwhile */
        uint8_t state;          /* internal */
} elem;

enum { ELEMS_ADD = 1, ELEMS_DEL = 2 };

/* Called for each kernel change: op, the element (valid during the call),
 * and until when the kernel holds it already as far as the memory knows
 * (0: not in the kernel; ELEMS_UNCERTAIN: perhaps, an adopted element), so
 * the caller can choose the cheapest commands that cannot fail. */
#define ELEMS_UNCERTAIN INT64_MIN
typedef int (*elems_emit_fn)(void *userdata, int op, elem *e, elems_usec_t in_kernel_until);

typedef struct elems elems;

elems *elems_new(elems_emit_fn emit, void *userdata);
elems *elems_free(elems *t);

/* Put a ban (its strings are copied). now: for the ranges' liveness.
 * Returns 0, -ENOMEM, or what emit returned. */
int elems_put(elems *t, const nfaddr_range *r, elems_usec_t until, const char *text, const char *reason,
              const char *source, elems_usec_t now);

/* Remember an element found in the kernel (or in a saved copy of this
 * memory) without emitting anything; not undoable (call between batches).
 * Its first change is emitted with ELEMS_UNCERTAIN. An element already
 * remembered wins. */
int elems_adopt(elems *t, const nfaddr_range *r, elems_usec_t until, bool covered, const char *text,
                const char *reason, const char *source);

/* Remove the element with exactly this range; *found set to whether there
 * was one (active or not). */
int elems_remove(elems *t, const nfaddr_range *r, bool *found, elems_usec_t now);

/* Forget everything (the caller flushes the kernel sets). *count: the
 * active elements forgotten. */
int elems_clear(elems *t, uint64_t *count, elems_usec_t now);

/* Accept / undo every change since the last commit. */
void elems_commit(elems *t);
void elems_rollback(elems *t);
/* Whether there are changes not committed yet. */
bool elems_dirty(const elems *t);

/* Forget what expired (until <= now) and put the covered ranges that no
 * longer have a wider range in the kernel back (emitting ELEMS_ADD). Only
 * when not dirty. Returns the number of elements forgotten, or an error
 * from emit. */
int elems_expire(elems *t, elems_usec_t now);

/* Call fn for each active element (until > at), addresses then ranges;
 * a non-zero return stops the walk and is returned. */
int elems_foreach(elems *t, elems_usec_t at, int (*fn)(const elem *e, void *userdata), void *userdata);

/* Re-emit ELEMS_ADD for every active element in the kernel (covered
 * ranges excepted), after the sets were lost. */
int elems_replay(elems *t, elems_usec_t now);

typedef struct elems_counts {
        uint64_t addr4, addr6, range4, range6, covered;
} elems_counts;
elems_counts elems_count(const elems *t, elems_usec_t now);
