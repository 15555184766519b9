/* SPDX-License-Identifier: MIT */
/*
 * The transport-independent request: a reply is one JSON object; a request
 * that completes later runs its transport's callback; a detached request
 * (the client went away) is freed when it is done, never before.
 */
#include "request.h"
#include "tests.h"

static int callbacks;

static void on_done(request *r, void *userdata) {
        CHECK(userdata == &callbacks);
        CHECK_EQ(r->state, REQ_DONE);
        callbacks++;
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
        return 0;
}
