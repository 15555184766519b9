/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The signal model: CrowdSec v0.3 SignalOccurence JSON <-> struct spw_signal.
 *
 * Field names are matched case-insensitively, as Go's encoding/json does, so
 * both "Source_ip" and "source_ip" are accepted. Every string and array of
 * the parsed signal lives in the caller's arena. Members the model does not
 * know are collected, compact, into sig->extra_json (forwarded by backends
 * that want them, never interpreted).
 */

#include <jansson.h>
#include <spillway/backend.h>

#include "arena.h"
#include "error.h"
#include "ipaddr.h"
#include "strbuf.h"

/* Per-field size limits (documented in spillwayd(8) and README): a legal
 * line of max_line bytes must not become megabytes in every database. A
 * signal over one is rejected with an error naming the field. */
#define SPW_SIGNAL_MAX_STRING        4096u   /* any string field not named below */
#define SPW_SIGNAL_MAX_ALERT_MESSAGE 16384u  /* alert_message */
#define SPW_SIGNAL_MAX_LABELS        64u     /* Labels: members */
#define SPW_SIGNAL_MAX_EVENTS        1000u   /* events_sequence: entries */
#define SPW_SIGNAL_MAX_EVENT         16384u  /* events_sequence[i].serialized */
#define SPW_SIGNAL_MAX_EVENTS_BYTES  (256u << 10) /* events_sequence: all serialized texts */
#define SPW_SIGNAL_MAX_BANS          64u     /* ban_applications: entries */
#define SPW_BAN_MAX_SCOPE            SCOPE_NAME_MAX /* a decision's scope name */
#define SPW_BAN_MAX_VALUE            SCOPE_VALUE_MAX    /* a non-address decision's value ("Scope:value" fits varchar(255)) */

/* Parse one JSON text holding a signal object. err says which field is wrong
 * and why ("source.Ip: 'x' is not an IPv4 or IPv6 address"). */
int signal_parse(const char *buf, size_t len, arena *a, spw_signal *sig, spw_error *err);

/* Same, from an already parsed JSON object. */
int signal_from_json(json_t *obj, arena *a, spw_signal *sig, spw_error *err);

/* The textual source IP of a signal (source.Ip, else Source_ip), or NULL. */
const char *signal_source_ip(const spw_signal *sig);
const char *signal_source_range(const spw_signal *sig);

/* A ban in CrowdSec's BanApplication JSON (for `route.test` replies), with
 * Scope, Value and Enforceable (false: not an address). */
json_t *ban_to_json(const spw_ban *ban);
/* "Ip", "Range" or the other scope's name. */
const char *ban_scope_name(const spw_ban *ban);

/* Decision scopes (ABI 2.2): CrowdSec's Ip and Range, and any other scope
 * (Country, AS, username...) stored and forwarded but not enforced by
 * address; scope names as scope_canonical() (ipaddr.h) reads them. */
/* The target key of a non-address ban, "Scope:value" (spw_ban.ip_text). */
char *ban_scope_key(arena *a, const char *scope, const char *value);
/* A ban of any scope: Ip and Range as ban_from_target(), others with
 * SPW_SCOPE_OTHER. */
int ban_from_scope(const char *scope, const char *value, spw_usec_t until, const char *measure_type,
                   const char *measure_source, const char *reason, arena *a, spw_ban *ban, spw_error *err);

/* A ban for `spillwayctl ban add`: target is an IP or CIDR; fills ban with
 * arena memory. */
int ban_from_target(const char *target, bool range, spw_usec_t until, const char *measure_type,
                    const char *measure_source, const char *reason, arena *a, spw_ban *ban, spw_error *err);
