/* SPDX-License-Identifier: MIT */
/*
 * The transport-independent request: a reply is one JSON object; a request
 * that completes later runs its transport's callback; a detached request
 * (the client went away) is freed when it is done, never before; a
 * streaming reply hands its bytes over in order, tells the transport of
 * each piece, and gives credit back as the transport takes them.
 */
#include "request.h"
#include "tests.h"

static int callbacks, progress;
static size_t credit;

static void on_done(request *r, void *userdata) {
        CHECK(userdata == &callbacks);
        CHECK_EQ(r->state, REQ_DONE);
        callbacks++;
}

static void on_progress(request *r, void *userdata) {
        CHECK_EQ(r->state, REQ_WAIT_JOBS);
        progress++;
}

static void on_taken(request *r, size_t n) {
        credit += n;
}

int main(void) {
        struct ucred peer = { .pid = 42, .uid = 1000, .gid = 100 };
        request *r = request_new(on_done, &callbacks, &peer, 7);

        CHECK(r);
        CHECK_EQ(r->peer.uid, 1000);
        CHECK_EQ(r->owner, 7);
        request_error(r, "ban.add: %s: required", "target");
        CHECK_EQ(r->state, REQ_DONE);
        CHECK_STREQ(r->reply, "{\"ok\":false,\"error\":\"ban.add: target: required\"}");
        request_free(r);

        /* waits, then completes: the callback runs once */
        r = request_new(on_done, &callbacks, NULL, 1);
        CHECK_EQ(r->peer.uid, (uid_t) -1);
        r->state = REQ_WAIT_JOBS;
        request_reply_json(r, json_pack("{s:b, s:I}", "ok", 1, "count", (json_int_t) 3));
        request_complete(r);
        CHECK_EQ(callbacks, 1);
        CHECK_STREQ(r->reply, "{\"ok\":true,\"count\":3}");
        request_free(r);

        /* detached while waiting: no callback, freed when done (ASan
         * reports a leak or a use after free if that is wrong) */
        r = request_new(on_done, &callbacks, NULL, 1);
        r->state = REQ_WAIT_FLUSH;
        request_detach(r);
        request_error(r, "late");
        request_complete(r);
        CHECK_EQ(callbacks, 1);

        /* detached when already done: freed at once */
        r = request_new(on_done, &callbacks, NULL, 1);
        request_error(r, "done");
        request_detach(r);
        CHECK_EQ(callbacks, 1);

        /* streaming: pieces in order, the transport told of each, credit
         * back as it takes them, in as many bites as it likes */
        strbuf out = STRBUF_INIT;
        r = request_new(on_progress, NULL, NULL, 1);
        r->state = REQ_WAIT_JOBS;
        r->stream_taken = on_taken;
        CHECK_OK(request_stream(r, "{\"rows\":[1,", 11));
        CHECK_OK(request_stream(r, "2,3", 3));
        CHECK_EQ(progress, 2);
        CHECK_EQ(request_stream_take(r, &out, 5), 5);
        CHECK_EQ(credit, 5);
        CHECK_EQ(request_stream_take(r, &out, 100), 9);
        CHECK_EQ(request_stream_take(r, &out, 100), 0);
        CHECK_EQ(credit, 14);
        strbuf_putc(&out, 0);
        CHECK_STREQ(out.data, "{\"rows\":[1,2,3");
        /* detached: nobody is told, the bytes wait to be freed with it */
        request_detach(r);
        CHECK_OK(request_stream(r, "4", 1));
        CHECK_EQ(progress, 2);
        request_error(r, "gone");
        request_complete(r);
        strbuf_deinit(&out);
        return 0;
}
