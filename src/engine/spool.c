/* SPDX-License-Identifier: MIT */
/*
 * The disk spool of a backend (see the DESIGN comment in spool.h).
 *
 * Locking: `lock` protects the hand-over list (`in`), the memory FIFO, the
 * read/written positions, the disk-mode flag and the room bookkeeping.
 * The writer thread owns the write descriptor and writes without the lock;
 * the worker owns the read descriptor and the checkpoint. Byte counters are
 * atomics (status reads them).
 *
 * Segment files are named by a number that only grows; a new segment is
 * started at every open and when the current one passes seg_size. Reading
 * a segment below the written position to its end moves on to the next
 * number.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>

#include "log.h"
#include "queue.h"
#include "sigmodel.h"
#include "spool.h"
#include "strbuf.h"
#include "strutil.h"

#define REC_HEADER 28u                 /* len, crc, id, received_at, line_len */
#define REC_MAX ((uint64_t) 64 << 20)  /* a sanity bound when scanning */
#define RESERVE_SLACK 1024u            /* routed bans, estimated at append */

typedef struct ring_item {
        spw_msg *m;
        spool_pos end;
} ring_item;

struct spool {
        char *dir;
        char *name;
        _Atomic spool_sync sync;       /* atomics: a reload sharing the spool updates them */
        atomic_ullong max_size;
        uint64_t seg_size;

        pthread_mutex_t lock;
        pthread_mutex_t dl_lock;       /* the dead-letter file: worker appends, admin ops rewrite */
        pthread_cond_t wake_writer;
        pthread_cond_t wake_reader;
        spw_msg **in;                  /* appended, not yet written */
        size_t n_in, cap_in;
        bool writer_wanted;
        bool stop;
        pthread_t writer;
        bool writer_started;

        ring_item *ring;               /* written, for the worker */
        size_t cap, head, count;
        bool disk_mode;                /* read records back from the segments */
        /* `flushed` acks not in the ring: their producer waits on this very
         * message, so the worker gets it instead of the record read back */
        ring_item *held;
        size_t n_held, cap_held, head_held;
        spool_pos read_pos;
        spool_pos written_end;
        bool kicked;
        bool space_wanted;
        void (*on_space)(void *);
        void *userdata;

        /* writer thread */
        int wfd;
        uint64_t wseg, woff;

        /* worker */
        int rfd;
        uint64_t rseg;
        int ckfd;
        uint64_t oldest_seg;

        atomic_ullong bytes, reserved, peak, pending, dead_letters, write_errors;

        /* sharing (a reload starts a changed backend while the old one still
         * runs): the registry lock guards refs and next; `lock` guards the
         * generations. Only the active generation's worker consumes. */
        spool *next;
        unsigned refs;
        unsigned active_gen, last_gen;
        unsigned gens[8];
        size_t n_gens;
        spool_pos committed;           /* the highest position committed (under lock) */
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static spool *registry;

/* ------------------------------------------------------------ CRC32C */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
        for (uint32_t i = 0; i < 256; i++) {
                uint32_t c = i;
                for (int k = 0; k < 8; k++)
                        c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
                crc_table[i] = c;
        }
}

uint32_t spool_crc32c(uint32_t crc, const void *buf, size_t len) {
        const uint8_t *p = buf;
        pthread_once(&crc_once, crc_init);
        crc = ~crc;
        while (len--)
                crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
        return ~crc;
}

/* ------------------------------------------------------------ helpers */

static int pos_cmp(spool_pos a, spool_pos b) {
        if (a.seg != b.seg)
                return a.seg < b.seg ? -1 : 1;
        return a.off < b.off ? -1 : a.off > b.off;
}

static char *seg_path(const spool *s, uint64_t seg) {
        char *p;
        if (asprintf(&p, "%s/%016" PRIx64 ".seg", s->dir, seg) < 0)
                return NULL;
        return p;
}

static void put32(uint8_t *p, uint32_t v) {
        memcpy(p, &v, 4);
}
static void put64(uint8_t *p, uint64_t v) {
        memcpy(p, &v, 8);
}
static uint32_t get32(const uint8_t *p) {
        uint32_t v;
        memcpy(&v, p, 4);
        return v;
}
static uint64_t get64(const uint8_t *p) {
        uint64_t v;
        memcpy(&v, p, 8);
        return v;
}

static int write_all(int fd, const void *buf, size_t len) {
        const char *p = buf;
        while (len > 0) {
                ssize_t k = write(fd, p, len);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += k;
                len -= (size_t) k;
        }
        return 0;
}

static int pread_all(int fd, void *buf, size_t len, uint64_t off) {
        size_t got = 0;
        while (got < len) {
                ssize_t k = pread(fd, (char *) buf + got, len - got, (off_t) (off + got));
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                got += (size_t) k;
        }
        return (int) got;
}

static void add_bytes(spool *s, uint64_t n) {
        uint64_t now = atomic_fetch_add(&s->bytes, n) + n;
        unsigned long long peak = atomic_load(&s->peak);
        while (now > peak && !atomic_compare_exchange_weak(&s->peak, &peak, now))
                ;
}

/* The bans routing added (beyond the producer's), compact JSON; NULL if none. */
static void routed_bans_json(const spw_msg *m, strbuf *b) {
        size_t first = m->routed ? m->n_producer_bans : m->sig.n_bans;
        if (m->sig.n_bans <= first)
                return;
        strbuf_putc(b, '[');
        for (size_t i = first; i < m->sig.n_bans; i++) {
                const spw_ban *ban = &m->sig.bans[i];
                if (i > first)
                        strbuf_putc(b, ',');
                strbuf_puts(b, "{\"v\":");
                strbuf_json_string(b, ban->ip_text ? ban->ip_text : "");
                strbuf_printf(b, ",\"u\":%lld,\"t\":", (long long) ban->until);
                strbuf_json_string(b, ban->measure_type ? ban->measure_type : "ban");
                strbuf_puts(b, ",\"s\":");
                strbuf_json_string(b, ban->measure_source ? ban->measure_source : "local");
                strbuf_puts(b, ",\"r\":");
                strbuf_json_string(b, ban->reason ? ban->reason : "");
                if (ban->scenario) {
                        strbuf_puts(b, ",\"sc\":");
                        strbuf_json_string(b, ban->scenario);
                }
                strbuf_putc(b, '}');
        }
        strbuf_putc(b, ']');
}

static uint64_t estimate(const spw_msg *m) {
        return REC_HEADER + m->raw_len + RESERVE_SLACK;
}

/* ------------------------------------------------------------ checkpoint */

static int checkpoint_read(spool *s, spool_pos *ret) {
        char buf[64] = { 0 };
        unsigned long long seg, off;
        unsigned crc;
        int k = pread_all(s->ckfd, buf, sizeof buf - 1, 0);
        if (k < 0)
                return k;
        if (k == 0 || sscanf(buf, "%llx %llx %x", &seg, &off, &crc) != 3)
                return -ENOENT;
        uint8_t raw[16];
        put64(raw, seg);
        put64(raw + 8, off);
        if (spool_crc32c(0, raw, sizeof raw) != crc)
                return -EBADMSG;
        *ret = (spool_pos) { seg, off };
        return 0;
}

static void checkpoint_write(spool *s, spool_pos p) {
        char buf[64];
        uint8_t raw[16];
        put64(raw, p.seg);
        put64(raw + 8, p.off);
        int n = snprintf(buf, sizeof buf, "%016" PRIx64 " %016" PRIx64 " %08x\n", p.seg, p.off,
                         spool_crc32c(0, raw, sizeof raw));
        /* one small write at offset 0: the same length every time */
        if (pwrite(s->ckfd, buf, (size_t) n, 0) != n)
                log_warning("spool %s: writing the checkpoint failed: %m (signals may be delivered twice after a restart)",
                            s->dir);
}

/* ------------------------------------------------------------ open: scan */

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

static int list_segments(const char *dir, uint64_t **ret, size_t *n_ret) {
        DIR *d = opendir(dir);
        uint64_t *v = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                size_t l = strlen(de->d_name);
                char *end;
                if (l != 20 || !streq(de->d_name + 16, ".seg"))
                        continue;
                uint64_t seg = strtoull(de->d_name, &end, 16);
                if (end != de->d_name + 16)
                        continue;
                if (n == cap) {
                        uint64_t *p = realloc(v, (cap = cap ? cap * 2 : 16) * sizeof *v);
                        if (!p) {
                                free(v);
                                closedir(d);
                                return -ENOMEM;
                        }
                        v = p;
                }
                v[n++] = seg;
        }
        closedir(d);
        if (n > 1)
                qsort(v, n, sizeof *v, cmp_u64);
        *ret = v;
        *n_ret = n;
        return 0;
}

/* Validate the records of one segment from `from`; truncate at the first
 * bad one. Returns the number of good records. */
static uint64_t scan_segment(spool *s, const char *path, uint64_t from, spool_open_report *rep, uint64_t *size) {
        int fd = open(path, O_RDWR | O_CLOEXEC);
        uint64_t n = 0, off = from;
        uint8_t hdr[REC_HEADER];
        uint8_t *buf = NULL;
        size_t cap = 0;
        struct stat st;

        *size = 0;
        if (fd < 0)
                return 0;
        if (fstat(fd, &st) < 0) {
                close(fd);
                return 0;
        }
        for (;;) {
                int k = pread_all(fd, hdr, REC_HEADER, off);
                if (k == 0)
                        break;
                if (k < (int) REC_HEADER)
                        goto bad;
                uint32_t len = get32(hdr), crc = get32(hdr + 4);
                if (len < REC_HEADER - 8 || len > REC_MAX || get32(hdr + 24) > len - 20)
                        goto bad;
                if (cap < len) {
                        uint8_t *p = realloc(buf, len);
                        if (!p)
                                goto bad;
                        buf = p;
                        cap = len;
                }
                if (pread_all(fd, buf, len, off + 8) != (int) len)
                        goto bad;
                if (spool_crc32c(0, buf, len) != crc)
                        goto bad;
                off += 8 + len;
                n++;
        }
        goto out;
bad:
        rep->truncated_bytes += (uint64_t) st.st_size - off;
        rep->truncated_records_hint++;
        snprintf(rep->truncated_file, sizeof rep->truncated_file, "%s", path);
        if (ftruncate(fd, (off_t) off) < 0)
                log_warning("spool %s: truncating %s failed: %m", s->dir, path);
        else
                (void) fdatasync(fd);
out:
        *size = off;
        free(buf);
        close(fd);
        return n;
}

static int open_segment(spool *s, uint64_t seg) {
        char *p = seg_path(s, seg);
        if (!p)
                return -ENOMEM;
        int fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        int r = fd < 0 ? -errno : 0;
        free(p);
        if (r < 0)
                return r;
        if (s->wfd >= 0)
                close(s->wfd);
        s->wfd = fd;
        s->wseg = seg;
        s->woff = 0;
        /* the new name must survive a crash as well as its data */
        int dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
                if (s->sync != SPOOL_SYNC_NEVER)
                        (void) fsync(dfd);
                close(dfd);
        }
        return 0;
}

/* ------------------------------------------------------------ writer */

static void settle_batch(spool *s, spw_msg **v, size_t n, size_t from, bool ok, const char *why) {
        for (size_t i = from; i < n; i++) {
                if (!ok) {
                        msg_settle_spool(v[i], s->name, false, why);
                        msg_settle(v[i], s->name, false, why);
                        atomic_fetch_sub(&s->pending, 1);
                }
        }
}

/* Under the lock. */
static void hold(spool *s, spw_msg *m, spool_pos end) {
        if (s->head_held > 0 && s->head_held == s->n_held)
                s->head_held = s->n_held = 0;
        if (s->n_held == s->cap_held) {
                size_t nc = s->cap_held ? s->cap_held * 2 : 64;
                ring_item *p = realloc(s->held, nc * sizeof *p);
                if (!p) {
                        /* the record is on disk; only the flushed ack is lost */
                        log_error("spool %s: out of memory: a flushed acknowledgement will not be sent", s->dir);
                        return;
                }
                s->held = p;
                s->cap_held = nc;
        }
        s->held[s->n_held++] = (ring_item) { msg_ref(m), end };
}

/* The held message for the record ending at `end`, if any (takes it). */
static spw_msg *take_held(spool *s, spool_pos end) {
        spw_msg *m = NULL;
        pthread_mutex_lock(&s->lock);
        /* records read back come in order: anything held before `end` was
         * skipped (a corrupt record): let it go */
        while (s->head_held < s->n_held && pos_cmp(s->held[s->head_held].end, end) < 0)
                msg_unref(s->held[s->head_held++].m);
        if (s->head_held < s->n_held && pos_cmp(s->held[s->head_held].end, end) == 0)
                m = s->held[s->head_held++].m;
        pthread_mutex_unlock(&s->lock);
        return m;
}

static void *writer_main(void *userdata) {
        spool *s = userdata;
        sigset_t all;
        char tname[16];
        strbuf buf = STRBUF_INIT;
        spw_msg **batch = NULL;
        size_t cap_batch = 0;
        spool_pos *ends = NULL;

        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, NULL);
        snprintf(tname, sizeof tname, "spw-spool-%.5s", s->name);
        pthread_setname_np(pthread_self(), tname);

        for (;;) {
                size_t n;
                uint64_t reserved = 0;
                int r = 0;
                char why[300] = "";

                pthread_mutex_lock(&s->lock);
                while (s->n_in == 0 && !s->stop)
                        pthread_cond_wait(&s->wake_writer, &s->lock);
                if (s->n_in == 0 && s->stop) {
                        pthread_mutex_unlock(&s->lock);
                        break;
                }
                /* swap the hand-over list with our (empty) batch array */
                spw_msg **t = batch;
                size_t tc = cap_batch;
                batch = s->in;
                cap_batch = s->cap_in;
                n = s->n_in;
                s->in = t;
                s->cap_in = tc;
                s->n_in = 0;
                s->writer_wanted = false;
                pthread_mutex_unlock(&s->lock);

                spool_pos *ne = realloc(ends, n * sizeof *ends);
                if (!ne) {
                        settle_batch(s, batch, n, 0, false, "spool: out of memory");
                        for (size_t i = 0; i < n; i++) {
                                atomic_fetch_sub(&s->reserved, estimate(batch[i]));
                                msg_unref(batch[i]);
                        }
                        continue;
                }
                ends = ne;

                /* write: records into one buffer, written per segment */
                size_t written = 0;  /* records durably written */
                size_t i = 0;
                while (i < n && r >= 0) {
                        uint64_t start_off = s->woff;
                        size_t first = i;
                        strbuf_reset(&buf);
                        if (s->woff >= s->seg_size) {
                                if (s->sync != SPOOL_SYNC_NEVER)
                                        (void) fdatasync(s->wfd);
                                r = open_segment(s, s->wseg + 1);
                                if (r < 0) {
                                        snprintf(why, sizeof why, "spool %s: starting a segment failed: %s", s->dir, strerror(-r));
                                        break;
                                }
                                start_off = 0;
                        }
                        for (; i < n && s->woff + buf.len < s->seg_size; i++) {
                                spw_msg *m = batch[i];
                                uint8_t hdr[REC_HEADER];
                                size_t at = buf.len;
                                memset(hdr, 0, sizeof hdr);
                                strbuf_append(&buf, hdr, REC_HEADER); /* filled below */
                                strbuf_append(&buf, m->raw ? m->raw : "{}", m->raw ? m->raw_len : 2);
                                routed_bans_json(m, &buf);
                                if (buf.oom)
                                        break;
                                uint32_t len = (uint32_t) (buf.len - at - 8);
                                uint8_t *h = (uint8_t *) buf.data + at;
                                put32(h, len);
                                put64(h + 8, m->sig.id);
                                put64(h + 16, (uint64_t) m->sig.received_at);
                                put32(h + 24, (uint32_t) (m->raw ? m->raw_len : 2));
                                put32(h + 4, spool_crc32c(0, h + 8, len));
                                ends[i] = (spool_pos) { s->wseg, s->woff + buf.len };
                                if (s->sync == SPOOL_SYNC_ALWAYS) {
                                        i++;
                                        break;
                                }
                        }
                        if (buf.oom) {
                                r = -ENOMEM;
                                snprintf(why, sizeof why, "spool %s: out of memory", s->dir);
                                break;
                        }
                        r = write_all(s->wfd, buf.data, buf.len);
                        if (r >= 0 && s->sync != SPOOL_SYNC_NEVER && fdatasync(s->wfd) < 0)
                                r = -errno;
                        if (r < 0) {
                                snprintf(why, sizeof why, "spool %s: write failed: %s", s->dir, strerror(-r));
                                /* cut what may have been written partially */
                                if (ftruncate(s->wfd, (off_t) start_off) < 0)
                                        log_error("spool %s: could not cut a failed write: %m", s->dir);
                                i = first;
                                break;
                        }
                        s->woff += buf.len;
                        add_bytes(s, buf.len);
                        written = i;
                }
                for (size_t k = 0; k < n; k++)
                        atomic_fetch_sub(&s->reserved, estimate(batch[k]));
                if (r < 0)
                        atomic_fetch_add(&s->write_errors, 1);

                /* hand the written ones to the worker, then acknowledge */
                bool wake = false;
                pthread_mutex_lock(&s->lock);
                for (size_t k = 0; k < written; k++) {
                        if (!s->disk_mode && s->count < s->cap) {
                                s->ring[(s->head + s->count++) % s->cap] = (ring_item) { msg_ref(batch[k]), ends[k] };
                        } else {
                                if (!s->disk_mode) {
                                        s->disk_mode = true;
                                        s->read_pos = k > 0 ? ends[k - 1] : s->written_end;
                                }
                                if (batch[k]->ack == ACK_FLUSHED)
                                        hold(s, batch[k], ends[k]);
                        }
                        s->written_end = ends[k];
                        wake = true;
                }
                if (wake)
                        pthread_cond_signal(&s->wake_reader);
                pthread_mutex_unlock(&s->lock);

                for (size_t k = 0; k < written; k++)
                        msg_settle_spool(batch[k], s->name, true, NULL);
                if (written < n) {
                        log_error("%s; %zu signals refused", why, n - written);
                        settle_batch(s, batch, n, written, false, why);
                }
                for (size_t k = 0; k < n; k++)
                        msg_unref(batch[k]);
                (void) reserved;
        }
        strbuf_deinit(&buf);
        free(batch);
        free(ends);
        return NULL;
}

/* ------------------------------------------------------------ open/close */

static int mkdir_p(const char *path) {
        char *p = strdup(path);
        if (!p)
                return -ENOMEM;
        for (char *q = p + 1; *q; q++)
                if (*q == '/') {
                        *q = 0;
                        if (mkdir(p, 0700) < 0 && errno != EEXIST) {
                                int r = -errno;
                                free(p);
                                return r;
                        }
                        *q = '/';
                }
        int r = mkdir(p, 0700) < 0 && errno != EEXIST ? -errno : 0;
        free(p);
        return r;
}

static spool *spool_free(spool *s);

/* Under s->lock: generation `gen` becomes the consumer. Whatever the
 * previous one had not committed is read again from the log (at most its
 * batch in flight is delivered twice); `flushed` messages waiting in the
 * memory window stay attached to their records. */
static void takeover(spool *s, unsigned gen) {
        ring_item *h = NULL;
        size_t nh = 0, cap = s->count + (s->n_held - s->head_held) + 1;

        s->active_gen = gen;
        h = malloc(cap * sizeof *h);
        for (size_t i = 0; i < s->count; i++) {
                ring_item *it = &s->ring[(s->head + i) % s->cap];
                if (h && it->m->ack == ACK_FLUSHED)
                        h[nh++] = *it;
                else
                        msg_unref(it->m);
        }
        for (size_t i = s->head_held; i < s->n_held; i++) {
                if (h)
                        h[nh++] = s->held[i];
                else
                        msg_unref(s->held[i].m);
        }
        free(s->held);
        s->held = h;
        s->n_held = nh;
        s->cap_held = h ? cap : 0;
        s->head_held = 0;
        s->head = s->count = 0;
        s->read_pos = s->committed;
        s->disk_mode = true;
        s->kicked = true;
        pthread_cond_broadcast(&s->wake_reader);
}

int spool_open(const char *state_dir, const char *name, spool_sync sync, uint64_t max_size, size_t mem_capacity,
               void (*on_space)(void *), void *userdata, spool **ret, unsigned *gen, spool_open_report *rep,
               spw_error *err) {
        spool *s;
        uint64_t *segs = NULL;
        size_t n_segs = 0;
        spool_pos ck;
        int r;
        char *dir;

        memset(rep, 0, sizeof *rep);
        if (asprintf(&dir, "%s/spool/%s", state_dir, name) < 0)
                return -ENOMEM;
        /* already open (a reload's new backend beside the old one): share it */
        pthread_mutex_lock(&registry_lock);
        for (s = registry; s; s = s->next)
                if (streq(s->dir, dir))
                        break;
        if (s) {
                pthread_mutex_lock(&s->lock);
                if (s->n_gens < ELEMENTSOF(s->gens)) {
                        s->refs++;
                        *gen = ++s->last_gen;
                        s->gens[s->n_gens++] = *gen;
                        s->sync = sync;
                        s->max_size = max_size;
                        takeover(s, *gen);
                        rep->replay = atomic_load(&s->pending);
                        r = 0;
                } else
                        r = spw_error_set(err, -EBUSY, "spool %s: open too many times at once", dir);
                pthread_mutex_unlock(&s->lock);
                pthread_mutex_unlock(&registry_lock);
                free(dir);
                if (r < 0)
                        return r;
                *ret = s;
                return 0;
        }
        pthread_mutex_unlock(&registry_lock);
        free(dir);

        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->wfd = s->rfd = s->ckfd = -1;
        s->sync = sync;
        s->max_size = max_size;
        s->seg_size = max_size / 16;
        /* segments are removed whole once committed: small enough that
         * delivered signals do not linger, large enough to be few */
        if (s->seg_size > (16u << 20))
                s->seg_size = 16u << 20;
        if (s->seg_size < (256u << 10))
                s->seg_size = 256u << 10;
        s->cap = mem_capacity ? mem_capacity : 1;
        s->on_space = on_space;
        s->userdata = userdata;
        pthread_mutex_init(&s->lock, NULL);
        pthread_mutex_init(&s->dl_lock, NULL);
        pthread_cond_init(&s->wake_writer, NULL);
        {
                pthread_condattr_t a;
                pthread_condattr_init(&a);
                pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
                pthread_cond_init(&s->wake_reader, &a);
                pthread_condattr_destroy(&a);
        }
        s->name = strdup(name);
        s->ring = calloc(s->cap, sizeof *s->ring);
        if (!s->name || !s->ring || asprintf(&s->dir, "%s/spool/%s", state_dir, name) < 0) {
                s->dir = NULL;
                spool_free(s);
                return -ENOMEM;
        }
        r = mkdir_p(s->dir);
        if (r < 0) {
                spw_error_set(err, r, "spool %s: cannot create the directory: %s", s->dir, strerror(-r));
                spool_free(s);
                return r;
        }
        char *ckp;
        if (asprintf(&ckp, "%s/checkpoint", s->dir) < 0) {
                spool_free(s);
                return -ENOMEM;
        }
        s->ckfd = open(ckp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        r = s->ckfd < 0 ? -errno : 0;
        free(ckp);
        if (r < 0) {
                spw_error_set(err, r, "spool %s: cannot open the checkpoint: %s", s->dir, strerror(-r));
                spool_free(s);
                return r;
        }
        r = list_segments(s->dir, &segs, &n_segs);
        if (r < 0) {
                spw_error_set(err, r, "spool %s: cannot list the directory: %s", s->dir, strerror(-r));
                spool_free(s);
                return r;
        }
        if (checkpoint_read(s, &ck) < 0)
                ck = (spool_pos) { n_segs ? segs[0] : 1, 0 };
        /* segments the checkpoint passed are done */
        uint64_t total = 0;
        for (size_t i = 0; i < n_segs; i++) {
                char *p = seg_path(s, segs[i]);
                if (!p)
                        continue;
                if (segs[i] < ck.seg)
                        (void) unlink(p);
                else {
                        uint64_t size;
                        rep->replay += scan_segment(s, p, segs[i] == ck.seg ? ck.off : 0, rep, &size);
                        total += size;
                }
                free(p);
        }
        s->oldest_seg = ck.seg;
        s->read_pos = ck;
        s->committed = ck;
        s->disk_mode = true;
        atomic_store(&s->bytes, total);
        atomic_store(&s->peak, total);
        atomic_store(&s->pending, rep->replay);
        r = open_segment(s, MAX(n_segs ? segs[n_segs - 1] + 1 : 1, ck.seg + 1));
        free(segs);
        if (r < 0) {
                spw_error_set(err, r, "spool %s: cannot create a segment: %s", s->dir, strerror(-r));
                spool_free(s);
                return r;
        }
        s->written_end = (spool_pos) { s->wseg, 0 };
        r = -pthread_create(&s->writer, NULL, writer_main, s);
        if (r < 0) {
                spool_free(s);
                return r;
        }
        s->writer_started = true;
        s->refs = 1;
        *gen = s->active_gen = s->last_gen = 1;
        s->gens[s->n_gens++] = 1;
        pthread_mutex_lock(&registry_lock);
        s->next = registry;
        registry = s;
        pthread_mutex_unlock(&registry_lock);
        *ret = s;
        return 0;
}

spool *spool_close(spool *s, unsigned gen) {
        bool last;

        if (!s)
                return NULL;
        pthread_mutex_lock(&registry_lock);
        last = --s->refs == 0;
        if (last) {
                for (spool **p = &registry; *p; p = &(*p)->next)
                        if (*p == s) {
                                *p = s->next;
                                break;
                        }
        } else {
                pthread_mutex_lock(&s->lock);
                for (size_t i = 0; i < s->n_gens; i++)
                        if (s->gens[i] == gen) {
                                s->gens[i] = s->gens[--s->n_gens];
                                break;
                        }
                if (gen == s->active_gen) {
                        /* the consumer went away (a reload that failed or was
                         * undone): the newest remaining one takes over */
                        unsigned newest = 0;
                        for (size_t i = 0; i < s->n_gens; i++)
                                newest = MAX(newest, s->gens[i]);
                        takeover(s, newest);
                }
                pthread_mutex_unlock(&s->lock);
        }
        pthread_mutex_unlock(&registry_lock);
        return last ? spool_free(s) : NULL;
}

static spool *spool_free(spool *s) {
        if (!s)
                return NULL;
        if (s->writer_started) {
                pthread_mutex_lock(&s->lock);
                s->stop = true;
                pthread_cond_signal(&s->wake_writer);
                pthread_mutex_unlock(&s->lock);
                pthread_join(s->writer, NULL);
        }
        for (size_t i = 0; i < s->count; i++)
                msg_unref(s->ring[(s->head + i) % s->cap].m);
        for (size_t i = 0; i < s->n_in; i++)
                msg_unref(s->in[i]);
        for (size_t i = s->head_held; i < s->n_held; i++)
                msg_unref(s->held[i].m);
        free(s->held);
        if (s->wfd >= 0) {
                if (s->sync != SPOOL_SYNC_NEVER)
                        (void) fdatasync(s->wfd);
                close(s->wfd);
        }
        if (s->rfd >= 0)
                close(s->rfd);
        if (s->ckfd >= 0)
                close(s->ckfd);
        free(s->in);
        free(s->ring);
        free(s->dir);
        free(s->name);
        pthread_mutex_destroy(&s->lock);
        pthread_mutex_destroy(&s->dl_lock);
        pthread_cond_destroy(&s->wake_writer);
        pthread_cond_destroy(&s->wake_reader);
        free(s);
        return NULL;
}

/* ------------------------------------------------------------ main thread */

static bool has_room(spool *s, uint64_t need) {
        return atomic_load(&s->bytes) + atomic_load(&s->reserved) + need <= s->max_size;
}

bool spool_room_or_arm(spool *s, const spw_msg *m) {
        uint64_t need = m ? estimate(m) : 64u << 10;
        if (has_room(s, need))
                return true;
        pthread_mutex_lock(&s->lock);
        s->space_wanted = true;
        pthread_mutex_unlock(&s->lock);
        return has_room(s, need); /* a commit may have freed room meanwhile */
}

int spool_append(spool *s, spw_msg *m) {
        uint64_t need = estimate(m);
        if (!has_room(s, need)) {
                spool_room_or_arm(s, m);
                return -ENOSPC;
        }
        pthread_mutex_lock(&s->lock);
        if (s->n_in == s->cap_in) {
                size_t nc = s->cap_in ? s->cap_in * 2 : 256;
                spw_msg **p = realloc(s->in, nc * sizeof *p);
                if (!p) {
                        pthread_mutex_unlock(&s->lock);
                        return -ENOMEM;
                }
                s->in = p;
                s->cap_in = nc;
        }
        s->in[s->n_in++] = msg_ref(m);
        atomic_fetch_add(&s->reserved, need);
        atomic_fetch_add(&s->pending, 1);
        if (!s->writer_wanted) {
                s->writer_wanted = true;
                pthread_cond_signal(&s->wake_writer);
        }
        pthread_mutex_unlock(&s->lock);
        return 0;
}

/* ------------------------------------------------------------ worker */

static spw_ban *parse_bans(const char *text, size_t len, arena *a, size_t *n_ret) {
        json_t *arr = json_loadb(text, len, 0, NULL);
        spw_ban *v = NULL;
        size_t n = 0;
        if (!json_is_array(arr))
                goto out;
        v = arena_alloc(a, sizeof *v * (json_array_size(arr) + 1));
        if (!v)
                goto out;
        size_t i;
        json_t *o;
        json_array_foreach(arr, i, o) {
                const char *ip = json_string_value(json_object_get(o, "v"));
                spw_error err = { 0 };
                if (!ip)
                        continue;
                if (ban_from_target(ip, strchr(ip, '/') != NULL, (spw_usec_t) json_integer_value(json_object_get(o, "u")),
                                    json_string_value(json_object_get(o, "t")), json_string_value(json_object_get(o, "s")),
                                    json_string_value(json_object_get(o, "r")), a, &v[n], &err) < 0)
                        continue;
                const char *sc = json_string_value(json_object_get(o, "sc"));
                if (sc)
                        v[n].scenario = arena_strdup(a, sc);
                n++;
        }
out:
        json_decref(arr);
        *n_ret = n;
        return v;
}

/* One record back into a message. NULL if it does not parse (logged). */
static spw_msg *record_to_msg(spool *s, const uint8_t *rec, uint32_t len) {
        uint64_t id = get64(rec), at = get64(rec + 8);
        uint32_t line_len = get32(rec + 16);
        const char *line = (const char *) rec + 20;
        spw_msg *m = msg_new();
        spw_error err = { 0 };
        json_t *obj, *sig;

        if (!m)
                return NULL;
        m->arena.first_size = MAX((size_t) 1024, (size_t) len * 2 + 512);
        obj = json_loadb(line, line_len, 0, NULL);
        sig = json_object_get(obj, "signal");
        if (!json_is_object(sig))
                sig = obj;
        if (!json_is_object(sig) || signal_from_json(sig, &m->arena, &m->sig, &err) < 0) {
                log_error("spool %s: signal %" PRIu64 " does not parse again (%s); skipped", s->dir, id,
                          err.msg[0] ? err.msg : "not a JSON object");
                json_decref(obj);
                msg_unref(m);
                return NULL;
        }
        json_decref(obj);
        m->sig.id = id;
        m->sig.received_at = (spw_usec_t) at;
        m->ack = ACK_QUEUED;
        m->raw = arena_strndup(&m->arena, line, line_len);
        m->raw_len = m->raw ? line_len : 0;
        m->routed = true;
        m->producer_bans = m->sig.bans;
        m->n_producer_bans = m->sig.n_bans;
        if (len > 20 + line_len) {
                size_t n_extra = 0;
                spw_ban *extra = parse_bans(line + line_len, len - 20 - line_len, &m->arena, &n_extra);
                if (n_extra > 0) {
                        spw_ban *all = arena_alloc(&m->arena, sizeof *all * (m->sig.n_bans + n_extra));
                        if (all) {
                                if (m->sig.n_bans)
                                        memcpy(all, m->sig.bans, sizeof *all * m->sig.n_bans);
                                memcpy(all + m->sig.n_bans, extra, sizeof *all * n_extra);
                                m->sig.bans = all;
                                m->sig.n_bans += n_extra;
                        }
                }
        }
        return m;
}

/* Read records in [*pos, limit) (worker, without the lock). */
static size_t read_records(spool *s, spool_pos *pos, spool_pos limit, spw_msg **items, spool_pos *ends, size_t max) {
        size_t n = 0;
        uint8_t hdr[REC_HEADER];
        uint8_t *buf = NULL;
        size_t cap = 0;

        while (n < max && pos_cmp(*pos, limit) < 0) {
                if (s->rfd < 0 || s->rseg != pos->seg) {
                        char *p = seg_path(s, pos->seg);
                        if (s->rfd >= 0)
                                close(s->rfd);
                        s->rfd = p ? open(p, O_RDONLY | O_CLOEXEC) : -1;
                        s->rseg = pos->seg;
                        free(p);
                        if (s->rfd < 0) {
                                /* a gap in the numbers: go on with the next */
                                *pos = (spool_pos) { pos->seg + 1, 0 };
                                continue;
                        }
                }
                int k = pread_all(s->rfd, hdr, 8, pos->off);
                if (k == 0 && pos->seg < limit.seg) {
                        *pos = (spool_pos) { pos->seg + 1, 0 };
                        continue;
                }
                uint32_t len = k == 8 ? get32(hdr) : 0;
                if (k != 8 || len < 20 || len > REC_MAX) {
                        log_error("spool %s: unreadable record in segment %" PRIx64 " at %" PRIu64 "; skipping the rest of it",
                                  s->dir, pos->seg, pos->off);
                        *pos = pos->seg < limit.seg ? (spool_pos) { pos->seg + 1, 0 } : limit;
                        continue;
                }
                if (cap < len) {
                        uint8_t *p = realloc(buf, len);
                        if (!p)
                                break;
                        buf = p;
                        cap = len;
                }
                if (pread_all(s->rfd, buf, len, pos->off + 8) != (int) len || spool_crc32c(0, buf, len) != get32(hdr + 4)) {
                        log_error("spool %s: corrupt record in segment %" PRIx64 " at %" PRIu64 "; skipping the rest of it",
                                  s->dir, pos->seg, pos->off);
                        *pos = pos->seg < limit.seg ? (spool_pos) { pos->seg + 1, 0 } : limit;
                        continue;
                }
                pos->off += 8 + len;
                spw_msg *m = take_held(s, *pos);
                if (!m)
                        m = record_to_msg(s, buf, len);
                if (!m) {
                        atomic_fetch_sub(&s->pending, 1);
                        continue;
                }
                items[n] = m;
                ends[n] = *pos;
                n++;
        }
        free(buf);
        return n;
}

size_t spool_pop(spool *s, unsigned gen, spw_msg **items, spool_pos *ends, size_t max, usec_t deadline) {
        size_t n = 0;

        pthread_mutex_lock(&s->lock);
        for (;;) {
                if (gen != s->active_gen) {
                        /* another backend of this name consumes now: idle */
                } else if (s->count > 0) {
                        for (; n < max && s->count > 0; n++) {
                                ring_item *it = &s->ring[s->head];
                                items[n] = it->m;
                                ends[n] = it->end;
                                s->head = (s->head + 1) % s->cap;
                                s->count--;
                        }
                        break;
                }
                if (gen == s->active_gen && s->disk_mode) {
                        if (pos_cmp(s->read_pos, s->written_end) >= 0) {
                                s->disk_mode = false;
                                continue;
                        }
                        spool_pos pos = s->read_pos, limit = s->written_end;
                        pthread_mutex_unlock(&s->lock);
                        n = read_records(s, &pos, limit, items, ends, max);
                        pthread_mutex_lock(&s->lock);
                        if (gen != s->active_gen) {
                                /* taken over meanwhile: the new consumer reads these */
                                for (size_t i = 0; i < n; i++)
                                        msg_unref(items[i]);
                                n = 0;
                                continue;
                        }
                        s->read_pos = pos;
                        if (n > 0)
                                break;
                        continue;
                }
                if (s->kicked) {
                        s->kicked = false;
                        break;
                }
                if (deadline <= now_monotonic())
                        break;
                if (deadline == USEC_INFINITY)
                        pthread_cond_wait(&s->wake_reader, &s->lock);
                else {
                        struct timespec ts = { .tv_sec = (time_t) (deadline / USEC_PER_SEC),
                                               .tv_nsec = (long) (deadline % USEC_PER_SEC) * 1000 };
                        pthread_cond_timedwait(&s->wake_reader, &s->lock, &ts);
                }
        }
        pthread_mutex_unlock(&s->lock);
        return n;
}

void spool_kick(spool *s) {
        pthread_mutex_lock(&s->lock);
        s->kicked = true;
        pthread_cond_signal(&s->wake_reader);
        pthread_mutex_unlock(&s->lock);
}

void spool_commit(spool *s, spool_pos end, uint64_t n) {
        bool call = false;

        if (n == 0)
                return;
        pthread_mutex_lock(&s->lock);
        /* after a takeover records may be committed twice: count once */
        unsigned long long pend = atomic_load(&s->pending);
        atomic_store(&s->pending, pend > n ? pend - n : 0);
        if (pos_cmp(end, s->committed) > 0) {
                s->committed = end;
                checkpoint_write(s, end);
                for (; s->oldest_seg < end.seg; s->oldest_seg++) {
                        char *p = seg_path(s, s->oldest_seg);
                        struct stat st;
                        if (!p)
                                break;
                        if (stat(p, &st) == 0 && unlink(p) == 0)
                                atomic_fetch_sub(&s->bytes, (uint64_t) st.st_size);
                        free(p);
                }
        }
        if (s->space_wanted && has_room(s, 64u << 10)) {
                s->space_wanted = false;
                call = true;
        }
        pthread_mutex_unlock(&s->lock);
        if (call && s->on_space)
                s->on_space(s->userdata);
}

int spool_dead_letter(spool *s, const spw_msg *m, const char *why) {
        strbuf b = STRBUF_INIT;
        char *p;
        int fd, r;

        if (asprintf(&p, "%s/dead-letter", s->dir) < 0)
                return -ENOMEM;
        pthread_mutex_lock(&s->dl_lock);
        fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        r = fd < 0 ? -errno : 0;
        if (r < 0) {
                pthread_mutex_unlock(&s->dl_lock);
                log_error("spool %s: cannot open %s: %s; signal %" PRIu64 " is lost", s->dir, p, strerror(-r), m->sig.id);
                free(p);
                return r;
        }
        free(p);
        strbuf_printf(&b, "{\"id\":%" PRIu64 ",\"at\":%lld,\"backend\":", m->sig.id, (long long) now_realtime());
        strbuf_json_string(&b, s->name);
        strbuf_puts(&b, ",\"reason\":");
        strbuf_json_string(&b, why ? why : "rejected");
        strbuf_puts(&b, ",\"line\":");
        if (m->raw)
                strbuf_json_stringn(&b, m->raw, m->raw_len);
        else
                strbuf_puts(&b, "null");
        strbuf_puts(&b, "}\n");
        r = b.oom ? -ENOMEM : write_all(fd, b.data, b.len);
        if (r >= 0 && s->sync != SPOOL_SYNC_NEVER)
                (void) fdatasync(fd);
        close(fd);
        pthread_mutex_unlock(&s->dl_lock);
        strbuf_deinit(&b);
        if (r >= 0)
                atomic_fetch_add(&s->dead_letters, 1);
        return r;
}

void spool_get_stats(spool *s, spool_stats *ret) {
        *ret = (spool_stats) {
                .pending = atomic_load(&s->pending),
                .bytes = atomic_load(&s->bytes),
                .peak_bytes = atomic_load(&s->peak),
                .dead_letters = atomic_load(&s->dead_letters),
                .write_errors = atomic_load(&s->write_errors),
        };
}

const char *spool_dir(const spool *s) {
        return s->dir;
}

/* ------------------------------------------------------------ dead letters (admin) */

static bool id_wanted(json_t *entry, const uint64_t *ids, size_t n_ids) {
        json_t *id = json_object_get(entry, "id");
        if (!ids)
                return true;
        for (size_t i = 0; i < n_ids; i++)
                if (json_is_integer(id) && (uint64_t) json_integer_value(id) == ids[i])
                        return true;
        return false;
}

int spool_dead_letters(spool *s, const uint64_t *ids, size_t n_ids, bool take, json_t **ret) {
        char *p = NULL, *tmp = NULL;
        FILE *f;
        json_t *out = json_array(), *keep = json_array();
        char *line = NULL;
        size_t cap = 0;
        int r = 0;

        if (!out || !keep || asprintf(&p, "%s/dead-letter", s->dir) < 0) {
                json_decref(out);
                json_decref(keep);
                return -ENOMEM;
        }
        pthread_mutex_lock(&s->dl_lock);
        f = fopen(p, "re");
        if (!f) {
                r = errno == ENOENT ? 0 : -errno;
                goto out;
        }
        while (getline(&line, &cap, f) > 0) {
                json_t *e = json_loads(line, 0, NULL);
                if (!e)
                        continue;
                json_array_append_new(id_wanted(e, ids, n_ids) ? out : keep, e);
        }
        fclose(f);
        if (take && json_array_size(out) > 0) {
                /* rewrite with what stays, then swap it in */
                if (asprintf(&tmp, "%s.tmp", p) < 0) {
                        r = -ENOMEM;
                        goto out;
                }
                f = fopen(tmp, "we");
                if (!f) {
                        r = -errno;
                        goto out;
                }
                size_t i;
                json_t *e;
                json_array_foreach(keep, i, e) {
                        char *text = json_dumps(e, JSON_COMPACT);
                        if (text)
                                fprintf(f, "%s\n", text);
                        free(text);
                }
                if (fflush(f) != 0 || fdatasync(fileno(f)) < 0 || fclose(f) != 0) {
                        r = -errno;
                        (void) unlink(tmp);
                        goto out;
                }
                if (rename(tmp, p) < 0) {
                        r = -errno;
                        (void) unlink(tmp);
                        goto out;
                }
                atomic_fetch_sub(&s->dead_letters, MIN(atomic_load(&s->dead_letters), (unsigned long long) json_array_size(out)));
        }
out:
        pthread_mutex_unlock(&s->dl_lock);
        free(line);
        free(tmp);
        free(p);
        json_decref(keep);
        if (r < 0) {
                json_decref(out);
                return r;
        }
        *ret = out;
        return 0;
}

int spool_requeue_line(spool *s, uint64_t id, const char *line, size_t len) {
        uint8_t *rec = malloc(20 + len);
        spw_msg *m;
        int r;

        if (!rec)
                return -ENOMEM;
        put64(rec, id);
        put64(rec + 8, (uint64_t) now_realtime());
        put32(rec + 16, (uint32_t) len);
        memcpy(rec + 20, line, len);
        m = record_to_msg(s, rec, (uint32_t) (20 + len));
        free(rec);
        if (!m)
                return -EBADMSG;
        r = spool_append(s, m);
        msg_unref(m);
        return r;
}
