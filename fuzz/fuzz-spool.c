/* SPDX-License-Identifier: MIT */
/*
 * The spool's record reader (src/engine/spool.c): what spool_open() scans
 * and truncates, and what the worker reads back and parses again
 * (read_records, record_to_msg, the routed bans) after a crash. The input
 * becomes segment files of a spool in a scratch state directory:
 *   byte 0 bit 0  raw: the rest is written as one segment file verbatim
 *                 (torn tails, bad lengths, bad CRCs);
 *          bit 1  structured records are split over two segments;
 *          bit 2  the last record's CRC is wrong (a corrupt tail);
 *          bit 3  open the spool a second time after the commit.
 * Structured: the rest is a series of [u16 length][payload] (payload: id,
 * received_at, line length, the producer's line, the routed bans as JSON);
 * the harness adds each record's length and CRC32C, so the fuzzer reaches
 * the parser behind the checksum. Then the spool is opened, every record
 * popped and committed, and closed. Beyond sanitizers: no more messages
 * come out than spool_open counted for replay, and a second open after
 * the commit counts no more than the first did. (Each open starts the
 * spool's writer thread: with ASan that is most of an execution's cost.)
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "spool.h"

static char dir[64];
static char spool_dir_path[128];

static void put_file(uint64_t seg, const uint8_t *data, size_t len) {
        char p[256];
        snprintf(p, sizeof p, "%s/%016llx.seg", spool_dir_path, (unsigned long long) seg);
        FILE *f = fopen(p, "we");
        if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0)
                abort();
}

static void clear(void) {
        DIR *d = opendir(spool_dir_path);
        struct dirent *de;
        if (!d)
                abort();
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        (void) unlinkat(dirfd(d), de->d_name, 0);
        closedir(d);
}

static uint64_t drain(uint64_t expect_max) {
        spool *s = NULL;
        unsigned gen = 0;
        spool_open_report rep;
        spw_error err = { 0 };
        uint64_t got = 0;

        if (spool_open(dir, "fz", SPOOL_SYNC_NEVER, 1 << 30, 16, NULL, NULL, &s, &gen, &rep, &err) < 0) {
                fprintf(stderr, "spool_open: %s\n", err.msg);
                abort();
        }
        if (rep.replay > expect_max) {
                fprintf(stderr, "spool_open counts %llu records to replay, expected at most %llu\n",
                        (unsigned long long) rep.replay, (unsigned long long) expect_max);
                abort();
        }
        for (;;) {
                spw_msg *items[8];
                spool_pos ends[8];
                size_t n = spool_pop(s, gen, items, ends, 8, now_monotonic());
                if (n == 0)
                        break;
                got += n;
                for (size_t i = 0; i < n; i++)
                        msg_unref(items[i]);
                spool_commit(s, ends[n - 1], n);
        }
        if (got > rep.replay) {
                fprintf(stderr, "%llu messages read back, but spool_open counted %llu records\n", (unsigned long long) got,
                        (unsigned long long) rep.replay);
                abort();
        }
        spool_close(s, gen);
        return rep.replay;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (!dir[0]) {
                log_set_max_level(getenv("SPW_FUZZ_LOG") ? LOG_DEBUG : LOG_CRIT);
                snprintf(dir, sizeof dir, "/tmp/spw-fuzz-spool-XXXXXX");
                if (!mkdtemp(dir))
                        abort();
                snprintf(spool_dir_path, sizeof spool_dir_path, "%s/spool", dir);
                (void) mkdir(spool_dir_path, 0700);
                snprintf(spool_dir_path, sizeof spool_dir_path, "%s/spool/fz", dir);
                (void) mkdir(spool_dir_path, 0700);
        }
        if (size == 0)
                return 0;
        clear();
        uint8_t flags = data[0];
        uint64_t records = 0;
        if (flags & 1) {
                put_file(1, data + 1, size - 1);
                records = (size - 1) / 28 + 1;
        } else {
                uint8_t *out = malloc(size * 2 + 64);
                size_t off = 1, len = 0, split = SIZE_MAX, last = SIZE_MAX;
                if (!out)
                        abort();
                while (off + 2 <= size) {
                        size_t l = (size_t) data[off] | (size_t) data[off + 1] << 8;
                        off += 2;
                        l = l < size - off ? l : size - off;
                        if (l < 20) { /* id, received_at, line length at least */
                                off += l;
                                continue;
                        }
                        uint32_t l32 = (uint32_t) l, crc = spool_crc32c(0, data + off, l);
                        if (records == 1 && (flags & 2))
                                split = len;
                        last = len;
                        memcpy(out + len, &l32, 4);
                        memcpy(out + len + 4, &crc, 4);
                        memcpy(out + len + 8, data + off, l);
                        len += 8 + l;
                        off += l;
                        records++;
                }
                if ((flags & 4) && last != SIZE_MAX)
                        out[last + 4] ^= 0x5a;
                if (split != SIZE_MAX) {
                        put_file(1, out, split);
                        put_file(2, out + split, len - split);
                } else
                        put_file(1, out, len);
                free(out);
        }
        uint64_t replay = drain(records);
        if (flags & 8) /* again: what was committed is not replayed, what was cut stays cut */
                drain(replay);
        return 0;
}
