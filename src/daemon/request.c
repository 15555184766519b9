/* SPDX-License-Identifier: MIT */
/*
 * The transport-independent request (see request.h). A request that waits
 * is referred to by a worker's job or a message (cookie) or the park, never
 * by its transport alone: that is why a detached request lives on until it
 * is done.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "request.h"

request *request_new(request_done_fn done, void *userdata, const struct ucred *peer, uint64_t owner) {
        request *r = calloc(1, sizeof *r);
        if (!r)
                return NULL;
        r->done = done;
        r->userdata = userdata;
        r->owner = owner;
        if (peer)
                r->peer = *peer;
        else
                r->peer = (struct ucred) { .pid = 0, .uid = (uid_t) -1, .gid = (gid_t) -1 };
        return r;
}

request *request_free(request *r) {
        if (!r)
                return NULL;
        free(r->reply);
        free(r->dropped);
        free(r->unavailable);
        free(r->job_error);
        free(r->list_reply);
        strbuf_deinit(&r->stream);
        fanout_release(&r->fan);
        if (r->msg) {
                r->msg->cookie = NULL;
                msg_unref(r->msg);
        }
        free(r);
        return NULL;
}

void request_reply_json(request *r, json_t *o) {
        free(r->reply);
        r->reply = o ? json_dumps(o, JSON_COMPACT) : NULL;
        r->reply_len = 0;
        json_decref(o);
        r->state = REQ_DONE;
}

void request_error(request *r, const char *fmt, ...) {
        char text[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(text, sizeof text, fmt, ap);
        va_end(ap);
        request_reply_json(r, json_pack("{s:b, s:s}", "ok", 0, "error", text));
}

void request_complete(request *r) {
        if (r->detached) {
                if (r->state == REQ_DONE)
                        request_free(r);
                return;
        }
        if (r->done)
                r->done(r, r->userdata);
}

int request_stream(request *r, const char *data, size_t len) {
        strbuf_append(&r->stream, data, len);
        if (r->stream.oom)
                return -ENOMEM;
        if (!r->detached && r->done)
                r->done(r, r->userdata);
        return 0;
}

size_t request_stream_take(request *r, strbuf *out, size_t max) {
        size_t n = MIN(max, r->stream.len);
        if (n == 0)
                return 0;
        strbuf_append(out, r->stream.data, n);
        if (out->oom)
                return 0;
        strbuf_consume(&r->stream, n);
        if (r->stream_taken)
                r->stream_taken(r, n);
        return n;
}

void request_detach(request *r) {
        r->detached = true;
        r->done = NULL;
        r->userdata = NULL;
        if (r->state == REQ_DONE)
                request_free(r);
}
