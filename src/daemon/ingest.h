/* SPDX-License-Identifier: MIT */
#pragma once

/* Signals from producers, independent of the transport (see ingest.c). */

#include <jansson.h>
#include <stddef.h>

#include "request.h"

typedef struct daemon daemon_t;

int ingest_init(daemon_t *d);
/* Expire (and so free) the requests still waiting; at exit. */
void ingest_done(daemon_t *d);

/* One request: a bare signal or an envelope. `line` is the request's text
 * (`size` bytes): it sizes the message's arena and is what a disk spool
 * keeps (NULL: serialised from obj). */
void ingest_handle(daemon_t *d, request *r, json_t *obj, const char *line, size_t size);

/* Wake the workers of the backends that received signals: once after a
 * burst of ingest_handle() calls (pushes do not wake them one by one). */
void ingest_wake(daemon_t *d);

/* A full queue has room: offer it to the waiting signals. */
void ingest_retry_parked(daemon_t *d);
/* After a reload: route the waiting signals again, then retry. */
void ingest_reroute_parked(daemon_t *d);
/* Answer the waiting signals whose block_timeout passed (all when stopping). */
void ingest_expire_parked(daemon_t *d);
