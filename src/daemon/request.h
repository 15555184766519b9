/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * One request from a client, independent of how it arrived (a line on a
 * unix socket today; an HTTP body tomorrow) and of how its reply leaves.
 *
 * The transport creates a request with a completion callback and hands it,
 * with the parsed JSON, to ingest_handle() or adminops_handle(). When that
 * returns, the request is either done (state REQ_DONE, `reply` set: the
 * transport takes it at once; the callback is not called) or it waits (a
 * flushed ack, a full "block" queue, a job on a worker, a reload); then the
 * callback runs on the main thread once the reply is ready. A transport
 * whose client went away detaches the request: it is freed when done.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <jansson.h>

#include "engine.h"
#include "macro.h"
#include "park.h"
#include "strbuf.h"

typedef struct request request;
typedef void (*request_done_fn)(request *r, void *userdata);

typedef enum request_state {
        REQ_DONE,                  /* reply ready */
        REQ_WAIT_FLUSH,            /* ack: flushed, waiting for the backends */
        REQ_PARKED,                /* block policy, waiting for queue room */
        REQ_WAIT_JOBS,             /* admin jobs on workers, or a reload */
} request_state;

struct request {
        request_state state;
        char *reply;               /* one JSON object, no newline */
        size_t reply_len;          /* strlen(reply) when known (large replies), else 0 */
        /* the transport */
        request_done_fn done;
        void *userdata;
        bool detached;             /* the client went away: free when done */
        struct ucred peer;         /* logged with administrative actions */
        uint64_t owner;            /* requests of one owner keep their order while waiting */
        request *next;             /* the transport's FIFO */
        void *ctx;                 /* the handler's (ingest, adminops) context */
        /* signals (ingest.c) */
        spw_msg *msg;
        fanout fan;
        park_item park;            /* REQ_PARKED */
        char *dropped;             /* backends that dropped it (queue full) */
        char *unavailable;         /* routed backends that are not running */
        /* administrative jobs (adminops.c) */
        unsigned jobs_pending;
        int job_kind;
        char *list_reply;          /* ban.list: the rest of the reply */
        size_t list_reply_len;
        /* a reply that streams (ban.list): bytes ready before the request is
         * done; the transport takes them in order (request_stream_take),
         * then `reply` when done */
        strbuf stream;
        void (*stream_taken)(request *r, size_t n); /* credit back to the producer */
        void *stream_ctx;
        char *job_error;
        bool job_failed;           /* a job or the reply failed (job_error may be NULL: out of memory) */
        uint64_t job_count;
};

request *request_new(request_done_fn done, void *userdata, const struct ucred *peer, uint64_t owner);
request *request_free(request *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(request *, request_free);

/* Set the reply (takes o) / an error reply; the request is done. */
void request_reply_json(request *r, json_t *o);
void request_error(request *r, const char *fmt, ...) _printf_(2, 3);
/* A waiting request became done: run the transport's callback, or free it
 * if detached. */
void request_complete(request *r);
/* Streaming: the handler adds bytes of the reply (copied) and the
 * transport is told as by request_complete (the request is not done);
 * the transport moves up to max of them to out. */
int request_stream(request *r, const char *data, size_t len);
size_t request_stream_take(request *r, strbuf *out, size_t max);
/* The transport lets go: freed now if done, else when it is. */
void request_detach(request *r);
