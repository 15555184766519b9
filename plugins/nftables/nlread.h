/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The nftables backend's cheap reads of the kernel, over its own netlink
 * socket with libmnl + libnftnl (which libnftables itself is built on):
 * a table's handle, and the rules of one chain with the set each one looks
 * up and its counter. libnftables' own listings fetch every element of
 * every set first (nft 1.0.6), which costs seconds once a set holds 100,000
 * bans; these reads cost the same at any set size. Family inet only.
 * Errors: 0, -ENOENT (no such table or chain), or a negative errno.
 */

#include <stdint.h>

typedef struct nlread nlread;

nlread *nlread_new(void);
nlread *nlread_free(nlread *n);

/* The table's handle. */
int nlread_table(nlread *n, const char *table, uint64_t *handle);

/* fn(set, packets, bytes) for each rule of the chain: set is the name of
 * the set the rule looks up ("" when none), packets/bytes its counter. */
typedef void (*nlread_rule_fn)(const char *set, uint64_t packets, uint64_t bytes, void *userdata);
int nlread_rules(nlread *n, const char *table, const char *chain, nlread_rule_fn fn, void *userdata);
