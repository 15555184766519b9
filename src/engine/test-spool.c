/* SPDX-License-Identifier: MIT */
/*
 * The disk spool: CRC32C, append / pop / commit in order, the memory FIFO
 * overflowing to records read back from disk (order kept), replay after a
 * reopen from the checkpoint, a torn tail cut at the last good record, the
 * size bound, and queued acks settled only after the write.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hub.h"
#include "queue.h"
#include "spool.h"
#include "tests.h"

static hub h;

static spw_msg *make(uint64_t id, const char *scenario) {
        spw_msg *m = msg_new();
        char line[256];
        CHECK(m);
        int n = snprintf(line, sizeof line, "{\"scenario\":\"%s\",\"source\":{\"Ip\":\"192.0.2.7\",\"Scope\":\"Ip\",\"Value\":\"192.0.2.7\"}}",
                         scenario);
        m->raw = arena_strndup(&m->arena, line, (size_t) n);
        m->raw_len = (size_t) n;
        m->sig.id = id;
        m->sig.received_at = 1000 + id;
        m->ack = ACK_QUEUED;
        msg_expect(m, &h, 1);
        m->wait_spool = true;
        return m;
}

/* Pop everything until `want` messages came; returns their ids. */
static unsigned gen;

static size_t pop_all(spool *s, uint64_t *ids, size_t want, spool_pos *last) {
        spw_msg *items[64];
        spool_pos ends[64];
        size_t got = 0;
        usec_t until = now_monotonic() + 5 * USEC_PER_SEC;
        while (got < want && now_monotonic() < until) {
                size_t n = spool_pop(s, gen, items, ends, 64, now_monotonic() + 100 * USEC_PER_MSEC);
                for (size_t i = 0; i < n; i++) {
                        ids[got++] = items[i]->sig.id;
                        *last = ends[i];
                        msg_unref(items[i]);
                }
        }
        return got;
}

static int dispatched;
static void count_done(hub_item *it, bool discard) {
        spw_msg *m = (spw_msg *) ((char *) it - offsetof(spw_msg, done));
        dispatched++;
        msg_unref(m);
}

int main(void) {
        char tmpl[] = "/tmp/spw-test-spool-XXXXXX";
        char *dir = mkdtemp(tmpl);
        spool *s;
        spool_open_report rep;
        spw_error err = { 0 };
        uint64_t ids[20000];
        spool_pos last = { 0 };

        CHECK(dir);
        CHECK_OK(hub_init(&h));
        /* the standard check value of CRC-32C */
        CHECK_EQ(spool_crc32c(0, "123456789", 9), 0xE3069283u);

        /* memory FIFO of 8: 1000 signals go mostly through the disk */
        CHECK_OK(spool_open(dir, "b", SPOOL_SYNC_BATCH, 4 << 20, 8, NULL, NULL, &s, &gen, &rep, &err));
        CHECK_EQ(rep.replay, 0u);
        for (uint64_t i = 1; i <= 1000; i++) {
                spw_msg *m = make(i, "s");
                m->done.fn = count_done;
                CHECK_OK(spool_append(s, m));
                msg_unref(m);
        }
        CHECK_EQ(pop_all(s, ids, 1000, &last), 1000u);
        for (size_t i = 0; i < 1000; i++)
                CHECK_EQ(ids[i], (uint64_t) i + 1);
        /* every append was acknowledged through the hub, after its write */
        usec_t until = now_monotonic() + 5 * USEC_PER_SEC;
        while (dispatched < 1000 && now_monotonic() < until) {
                hub_dispatch(&h);
                usleep(1000);
        }
        CHECK_EQ(dispatched, 1000);

        /* commit the first 1000; 10 more are left uncommitted at "crash" */
        spool_commit(s, last, 1000);
        for (uint64_t i = 1001; i <= 1010; i++) {
                spw_msg *m = make(i, "t");
                CHECK_OK(spool_append(s, m));
                msg_unref(m);
        }
        CHECK_EQ(pop_all(s, ids, 10, &last), 10u);
        s = spool_close(s, gen);
        hub_dispatch(&h);

        /* reopen: exactly the 10 uncommitted ones come back, in order */
        CHECK_OK(spool_open(dir, "b", SPOOL_SYNC_BATCH, 1 << 20, 8, NULL, NULL, &s, &gen, &rep, &err));
        CHECK_EQ(rep.replay, 10u);
        CHECK_EQ(rep.truncated_bytes, 0u);
        CHECK_EQ(pop_all(s, ids, 10, &last), 10u);
        for (size_t i = 0; i < 10; i++)
                CHECK_EQ(ids[i], (uint64_t) 1001 + i);
        s = spool_close(s, gen);

        /* a torn tail: garbage after the last record of the newest segment */
        {
                char path[512];
                int newest = -1;
                for (int seg = 1; seg < 64; seg++) {
                        struct stat st;
                        snprintf(path, sizeof path, "%s/spool/b/%016x.seg", dir, seg);
                        if (stat(path, &st) == 0 && st.st_size > 0)
                                newest = seg;
                }
                CHECK(newest > 0);
                snprintf(path, sizeof path, "%s/spool/b/%016x.seg", dir, newest);
                int fd = open(path, O_WRONLY | O_APPEND);
                CHECK(fd >= 0);
                CHECK_EQ(write(fd, "\x30\0\0\0garbage", 11), 11);
                close(fd);
        }
        CHECK_OK(spool_open(dir, "b", SPOOL_SYNC_NEVER, 1 << 20, 8, NULL, NULL, &s, &gen, &rep, &err));
        CHECK_EQ(rep.replay, 10u);
        CHECK_EQ(rep.truncated_bytes, 11u);
        CHECK_EQ(pop_all(s, ids, 10, &last), 10u);
        spool_commit(s, last, 10);

        /* the bound: a 1 MiB spool refuses once full, and a commit frees room */
        size_t accepted = 0;
        int r = 0;
        for (uint64_t i = 2000; i < 2000 + 20000 && r == 0; i++) { /* 20,000 records take more than 1 MiB however fast the writer */
                spw_msg *m = make(i, "fill");
                r = spool_append(s, m);
                msg_unref(m);
                if (r == 0)
                        accepted++;
        }
        CHECK_EQ(r, -ENOSPC);
        CHECK(accepted > 100);
        CHECK_EQ(pop_all(s, ids, accepted, &last), accepted);
        spool_commit(s, last, accepted);
        spool_stats st;
        spool_get_stats(s, &st);
        CHECK_EQ(st.pending, 0u);
        {
                spw_msg *m = make(9999, "again");
                CHECK_OK(spool_append(s, m));
                msg_unref(m);
        }
        s = spool_close(s, gen);
        hub_dispatch(&h);
        hub_deinit(&h);
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        CHECK_EQ(system(cmd), 0);
        return 0;
}
