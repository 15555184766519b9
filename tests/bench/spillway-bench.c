/* SPDX-License-Identifier: MIT */
/*
 * spillway-bench: drive the real spillwayd over its ingest socket and print
 * what users will measure: signals per second, latency percentiles from
 * send to the "queued" and to the "flushed" acknowledgement, and the
 * daemon's peak memory - for the null backend, the SQLite backend, and
 * both at once - beside the ceiling of the same work done directly (the
 * SQLite plugin's bench-ceiling program: the same rows, pragmas and batch
 * size, inserted by one thread with no daemon in between).
 *
 * Producers are threads, one connection each, pipelining up to --window
 * requests. Every run uses a fresh temporary configuration and database.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "jsonscratch.h"

static const char *arg_daemon, *arg_plugins, *arg_ceiling, *arg_ctl;
static unsigned arg_signals = 100000, arg_producers = 4, arg_window = 1024, arg_batch = 1000;
static const char *arg_only;
static unsigned arg_queue = 10000;  /* the shipped queue size */
static unsigned arg_repeat = 1;     /* --repeat: runs of the summary's paths */
/* 0: producers use the unix ingest socket; else POST /v1/signals on this
 * loopback port, NDJSON bodies of HTTP_BODY signals, keep-alive */
static unsigned http_port;
#define HTTP_BODY 100
static char start_at[32], stop_at[32];   /* "now" for every signal, so bans are active */

#define MIN_U(a, b) ((a) < (b) ? (a) : (b))

static int64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct producer {
        pthread_t thread;
        char *lines;            /* pre-generated: producing costs no CPU while measured */
        size_t *offsets;        /* start of line i; offsets[count] = end */
        const char *sock;
        unsigned first, count;
        bool flushed;
        int64_t *lat;           /* ns per request */
        unsigned errors;
        char errtext[256];
} producer;

/* ~900-byte signal, CrowdSec shape, a distinct source per index */
static int make_line(char *buf, size_t size, unsigned i, bool flushed) {
        char sig[1400];
        snprintf(sig, sizeof sig,
                 "{\"scenario\":\"crowdsecurity/ssh-bf\",\"bucket_id\":\"b-%u\",\"alert_message\":\"10.%u.%u.%u performed "
                 "'crowdsecurity/ssh-bf' (6 events over 20s)\",\"events_count\":6,\"start_at\":\"%s\","
                 "\"stop_at\":\"%s\",\"source\":{\"Ip\":\"10.%u.%u.%u\",\"Range\":\"10.%u.0.0/16\","
                 "\"AutonomousSystemNumber\":\"64496\",\"AutonomousSystemOrganization\":\"Example Networks\","
                 "\"Country\":\"FR\",\"Latitude\":48.85,\"Longitude\":2.35},\"Source_ip\":\"10.%u.%u.%u\","
                 "\"capacity\":5,\"leak_speed\":10000000000,\"Whitelisted\":false,\"Simulation\":false,"
                 "\"Labels\":{\"remediation\":\"true\",\"service\":\"ssh\",\"type\":\"bruteforce\"},"
                 "\"events_sequence\":[{\"time\":\"2024-05-21T10:00:01Z\",\"source_ip\":\"10.%u.%u.%u\","
                 "\"serialized\":\"{\\\"log_type\\\":\\\"ssh_failed-auth\\\",\\\"user\\\":\\\"root\\\"}\"}]}",
                 i, i >> 16 & 255, i >> 8 & 255, i & 255, start_at, stop_at, i >> 16 & 255, i >> 8 & 255, i & 255, i >> 16 & 255,
                 i >> 16 & 255, i >> 8 & 255, i & 255, i >> 16 & 255, i >> 8 & 255, i & 255);
        if (flushed)
                return snprintf(buf, size, "{\"signal\":%s,\"ack\":\"flushed\"}\n", sig);
        return snprintf(buf, size, "%s\n", sig);
}

static int connect_unix(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t len = strlen(path);
        if (len >= sizeof sa.sun_path)
                return -1;
        memcpy(sa.sun_path, path, len + 1);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                if (fd >= 0)
                        close(fd);
                return -1;
        }
        return fd;
}

static void *produce(void *userdata) {
        producer *p = userdata;
        int fd = connect_unix(p->sock);
        if (fd >= 0)
                fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        int64_t *sent = calloc(p->count, sizeof *sent);
        char in[1 << 16];
        size_t inlen = 0;
        unsigned next = 0, done = 0;

        if (fd < 0) {
                snprintf(p->errtext, sizeof p->errtext, "connect %s: %s", p->sock, strerror(errno));
                p->errors = p->count;
                free(sent);
                return NULL;
        }
        /* keep up to `window` requests in flight: write while there is room,
         * read whatever replies arrived, never block on one side only */
        size_t wpos = 0;               /* bytes of the stream written so far */
        size_t end_all = p->offsets[p->count];
        while (done < p->count) {
                size_t limit = next < p->count ? p->offsets[MIN_U(p->count, done + arg_window)] : end_all;
                struct pollfd pfd = { .fd = fd, .events = POLLIN | (wpos < limit ? POLLOUT : 0) };
                if (poll(&pfd, 1, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        snprintf(p->errtext, sizeof p->errtext, "poll: %s", strerror(errno));
                        goto out;
                }
                if ((pfd.revents & POLLOUT) && wpos < limit) {
                        ssize_t k = write(fd, p->lines + wpos, limit - wpos);
                        if (k < 0 && errno != EAGAIN && errno != EINTR) {
                                snprintf(p->errtext, sizeof p->errtext, "write: %s", strerror(errno));
                                goto out;
                        }
                        if (k > 0) {
                                int64_t t = now_ns();
                                wpos += (size_t) k;
                                while (next < p->count && p->offsets[next] < wpos)
                                        sent[next++] = t;  /* its first byte is on the wire */
                        }
                }
                if (!(pfd.revents & (POLLIN | POLLHUP | POLLERR)))
                        continue;
                ssize_t k = read(fd, in + inlen, sizeof in - inlen);
                if (k <= 0) {
                        if (k < 0 && (errno == EAGAIN || errno == EINTR))
                                continue;
                        snprintf(p->errtext, sizeof p->errtext, "spillwayd closed the connection");
                        goto out;
                }
                inlen += (size_t) k;
                char *s = in, *nl;
                while ((nl = memchr(s, '\n', (size_t) (in + inlen - s)))) {
                        p->lat[done] = now_ns() - sent[done];
                        if (strncmp(s, "{\"ok\":true", 10) != 0) {
                                if (!p->errors)
                                        snprintf(p->errtext, sizeof p->errtext, "%.*s", (int) ((nl - s) < 200 ? (nl - s) : 200), s);
                                p->errors++;
                        }
                        done++;
                        s = nl + 1;
                }
                inlen = (size_t) (in + inlen - s);
                memmove(in, s, inlen);
        }
out:
        p->errors += p->count - done;
        close(fd);
        free(sent);
        return NULL;
}

static int write_all(int fd, const char *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -1;
                }
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

/* HTTP producer: one keep-alive connection, one request in flight (HTTP/1.1
 * without pipelining), each body HTTP_BODY NDJSON signals; every signal of a
 * body gets the body's latency. */
static void *produce_http(void *userdata) {
        producer *p = userdata;
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t) http_port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
        unsigned done = 0;

        if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                snprintf(p->errtext, sizeof p->errtext, "connect 127.0.0.1:%u: %s", http_port, strerror(errno));
                p->errors = p->count;
                if (fd >= 0)
                        close(fd);
                return NULL;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char *in = malloc(1 << 22);
        while (done < p->count) {
                unsigned n = MIN_U(HTTP_BODY, p->count - done);
                size_t blen = p->offsets[done + n] - p->offsets[done];
                char head[256];
                int hl = snprintf(head, sizeof head,
                                  "POST /v1/signals?ack=%s HTTP/1.1\r\nHost: bench\r\nX-Api-Key: bench\r\n"
                                  "Content-Type: application/x-ndjson\r\nContent-Length: %zu\r\n\r\n",
                                  p->flushed ? "flushed" : "queued", blen);
                int64_t t = now_ns();
                if (write_all(fd, head, (size_t) hl) < 0 || write_all(fd, p->lines + p->offsets[done], blen) < 0) {
                        snprintf(p->errtext, sizeof p->errtext, "write: %s", strerror(errno));
                        break;
                }
                size_t got = 0, need = 0;
                char *body = NULL;
                while (!body || got < need) {
                        ssize_t k = read(fd, in + got, (1 << 22) - 1 - got);
                        if (k <= 0) {
                                snprintf(p->errtext, sizeof p->errtext, "spillwayd closed the HTTP connection");
                                goto out;
                        }
                        got += (size_t) k;
                        in[got] = 0;
                        if (!body && (body = strstr(in, "\r\n\r\n"))) {
                                const char *cl = strcasestr(in, "Content-Length:");
                                body += 4;
                                need = (size_t) (body - in) + (cl ? strtoul(cl + 15, NULL, 10) : 0);
                        }
                }
                int64_t lat = now_ns() - t;
                char want[48];
                snprintf(want, sizeof want, "\"accepted\":%u,", n);
                if (strncmp(in, "HTTP/1.1 200", 12) != 0 || !strstr(body, want)) {
                        if (!p->errors)
                                snprintf(p->errtext, sizeof p->errtext, "%.200s", in);
                        p->errors += n;
                }
                for (unsigned i = 0; i < n; i++)
                        p->lat[done + i] = lat;
                done += n;
        }
out:
        p->errors += p->count - done;
        free(in);
        close(fd);
        return NULL;
}

static int cmp_i64(const void *a, const void *b) {
        int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
        return x < y ? -1 : x > y;
}

typedef struct list_timing {
        double first50_ms, all_ms;
        long total;
} list_timing;

/* One admin request; returns the reply's length, fills *total from "total". */
static long admin_request(const char *sock, const char *req, long *total) {
        int fd = connect_unix(sock);
        char buf[1 << 16];
        long n = 0;
        if (fd < 0)
                return -1;
        if (write(fd, req, strlen(req)) < 0) {
                close(fd);
                return -1;
        }
        for (;;) {
                ssize_t k = read(fd, buf, sizeof buf - 1);
                if (k <= 0)
                        break;
                buf[k] = 0;
                if (n == 0 && total) {
                        char *t = strstr(buf, "\"total\":");
                        if (t)
                                *total = strtol(t + 8, NULL, 10);
                }
                n += k;
                if (buf[k - 1] == '\n')
                        break;
        }
        close(fd);
        return n;
}

/* The admin socket's status, over every backend: the most signals one
 * received, how many are not settled yet (neither flushed, failed nor
 * dropped), how many were flushed or failed, and the number of flushes. A
 * backend that routing sends nothing receives nothing. *sync_cursor: the
 * ban sync's place in the ban database's change log, -1 without a sync. */
static int status_counts(const char *sock, unsigned long long *received, unsigned long long *pending,
                         unsigned long long *settled, unsigned long long *flushes, long long *sync_cursor) {
        int fd = connect_unix(sock);
        char *buf = NULL;
        size_t len = 0, cap = 0;
        json_t *o = NULL, *bs, *b;
        size_t i;
        int r = -1;

        if (fd < 0)
                return -1;
        if (write(fd, "{\"op\":\"status\"}\n", 16) != 16)
                goto out;
        for (;;) {
                if (cap - len < 4096) {
                        char *n = realloc(buf, cap = cap ? 2 * cap : 65536);
                        if (!n)
                                goto out;
                        buf = n;
                }
                ssize_t k = read(fd, buf + len, cap - len - 1);
                if (k <= 0)
                        break;
                len += (size_t) k;
                if (buf[len - 1] == '\n')
                        break;
        }
        if (!buf || !(o = json_loadb(buf, len, 0, NULL)) || !json_is_array(bs = json_object_get(o, "backends")))
                goto out;
        *received = *pending = *settled = *flushes = 0;
        json_t *cur = json_object_get(json_object_get(json_object_get(o, "ban_history"), "sync"), "cursor");
        *sync_cursor = json_is_integer(cur) ? (long long) json_integer_value(cur) : -1;
        json_array_foreach(bs, i, b) {
                unsigned long long rcv = (unsigned long long) json_integer_value(json_object_get(b, "received"));
                unsigned long long s = (unsigned long long) (json_integer_value(json_object_get(b, "flushed")) +
                                                             json_integer_value(json_object_get(b, "failed")));
                unsigned long long gone = s + (unsigned long long) json_integer_value(json_object_get(b, "dropped"));
                if (rcv > *received)
                        *received = rcv;
                if (rcv > gone)
                        *pending += rcv - gone;
                *settled += s;
                *flushes += (unsigned long long) json_integer_value(json_object_get(b, "flushes"));
        }
        r = 0;
out:
        json_decref(o);
        free(buf);
        close(fd);
        return r;
}

typedef struct result {
        char threads[512];
        double main_us, worker_us; /* CPU per signal: the event loop thread, the backend workers */
        double commit_size;        /* signals per successful flush, over all backends */
        long idle_rss_kb;          /* after start, before any signal */
        double producer_cpu;       /* seconds of CPU the producers used */
        double rate;
        double cpu_us_per_signal;
        double p50_ms, p99_ms, max_ms;
        long peak_rss_kb;
        unsigned errors;
        uint64_t peak_spool_bytes; /* durability: disk, sampled every 10 ms */
} result;

/* The bytes in STATE/spool/BACKEND/ (durability: disk), sampled while a
 * run goes on. */
typedef struct spool_sampler {
        char dir[512];
        pthread_t thread;
        atomic_bool stop;
        uint64_t peak;
} spool_sampler;

static uint64_t dir_bytes(const char *path) {
        DIR *d = opendir(path);
        struct dirent *de;
        uint64_t n = 0;
        if (!d)
                return 0;
        while ((de = readdir(d))) {
                char p[1024];
                struct stat st;
                if (de->d_name[0] == '.')
                        continue;
                snprintf(p, sizeof p, "%s/%s", path, de->d_name);
                if (lstat(p, &st) < 0)
                        continue;
                n += S_ISDIR(st.st_mode) ? dir_bytes(p) : (uint64_t) st.st_size;
        }
        closedir(d);
        return n;
}

static void *sample_spool(void *userdata) {
        spool_sampler *s = userdata;
        while (!atomic_load(&s->stop)) {
                uint64_t n = dir_bytes(s->dir);
                if (n > s->peak)
                        s->peak = n;
                usleep(10000);
        }
        return NULL;
}

static void write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "w");
        if (!f) {
                perror(path);
                exit(1);
        }
        fputs(text, f);
        fclose(f);
}

/* user+system CPU seconds the process used so far */
static double cpu_seconds(pid_t pid) {
        char path[64], buf[1024];
        unsigned long ut = 0, st = 0;
        snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
        FILE *f = fopen(path, "r");
        if (!f)
                return -1;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        char *p = strrchr(buf, ')'); /* comm may contain spaces */
        if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
                return -1;
        return (double) (ut + st) / (double) sysconf(_SC_CLK_TCK);
}

/* "main 45%, spw-sqlite 80%": CPU of each daemon thread over `wall` seconds */
static void thread_cpu(pid_t pid, double wall, char *out, size_t size, double *main_s, double *worker_s) {
        char path[300], buf[1024], comm[64];
        size_t o = 0;
        out[0] = 0;
        *main_s = *worker_s = 0;
        snprintf(path, sizeof path, "/proc/%d/task", (int) pid);
        DIR *dir = opendir(path);
        if (!dir)
                return;
        struct dirent *de;
        while ((de = readdir(dir)) && o < size) {
                unsigned long ut, st, minflt;
                if (de->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof path, "/proc/%d/task/%s/stat", (int) pid, de->d_name);
                FILE *f = fopen(path, "r");
                if (!f)
                        continue;
                size_t n = fread(buf, 1, sizeof buf - 1, f);
                fclose(f);
                buf[n] = 0;
                char *l = strchr(buf, '('), *r = strrchr(buf, ')');
                if (!l || !r || r - l - 1 >= (long) sizeof comm)
                        continue;
                memcpy(comm, l + 1, (size_t) (r - l - 1));
                comm[r - l - 1] = 0;
                if (sscanf(r + 2, "%*c %*d %*d %*d %*d %*d %*u %lu %*u %*u %*u %lu %lu", &minflt, &ut, &st) != 3)
                        continue;
                double secs = (double) (ut + st) / (double) sysconf(_SC_CLK_TCK);
                double pct = 100.0 * secs / wall;
                if (!strncmp(comm, "spw-", 4))
                        *worker_s += secs; /* backend workers (and their helpers) */
                else
                        *main_s += secs;   /* the event loop: read, parse, route, reply */
                if (pct >= 1)
                        o += (size_t) snprintf(out + o, size - o, "%s%.20s %.0f%% (sys %.0f%%, %lu faults)", o ? ", " : "", comm, pct,
                                               100.0 * (double) st / (double) sysconf(_SC_CLK_TCK) / wall, minflt);
        }
        closedir(dir);
}

static long status_kb(pid_t pid, const char *field) {
        char path[64], line[256];
        size_t fl = strlen(field);
        long kb = -1;
        snprintf(path, sizeof path, "/proc/%d/status", (int) pid);
        FILE *f = fopen(path, "r");
        if (!f)
                return -1;
        while (fgets(line, sizeof line, f))
                if (!strncmp(line, field, fl) && line[fl] == ':') {
                        kb = strtol(line + fl + 1, NULL, 10);
                        break;
                }
        fclose(f);
        return kb;
}

static long peak_rss_kb(pid_t pid) {
        return status_kb(pid, "VmHWM");
}

/* One measured run: start spillwayd with `backends` in a fresh folder, send
 * arg_signals from arg_producers connections, stop it. */
static result run_daemon(const char *label, const char *backends_yaml[], bool profiles, bool flushed, char *dbpath, size_t dbsize,
                         list_timing *lt) {
        char dir[] = "/tmp/spw-bench-XXXXXX", path[512], sock[512], cmd[1024];
        result res = { 0 };
        if (!mkdtemp(dir)) {
                perror("mkdtemp");
                exit(1);
        }
        snprintf(path, sizeof path, "%s/plugins", dir);
        mkdir(path, 0755);
        snprintf(path, sizeof path, "%s/plugins/backend", dir);
        mkdir(path, 0755);
        snprintf(path, sizeof path, "%s/state", dir);
        mkdir(path, 0755);
        char main_yaml[512];
        snprintf(main_yaml, sizeof main_yaml,
                 "queue:\n  size: %u\n  flush_batch: %u\n  on_full: block\n  block_timeout: 60s\n"
                 "defaults:\n  flush: false\n", arg_queue, arg_batch);
        if (http_port) {
                size_t l = strlen(main_yaml);
                snprintf(main_yaml + l, sizeof main_yaml - l, "sockets:\n  http: 127.0.0.1:%u\n  http_token: bench\n  http_max_body: 64M\n",
                         http_port);
        }
        snprintf(path, sizeof path, "%s/spillway.yaml", dir);
        write_file(path, main_yaml);
        for (int i = 0; backends_yaml[i]; i++) {
                snprintf(path, sizeof path, "%s/plugins/backend/b%d.yaml", dir, i);
                write_file(path, backends_yaml[i]);
        }
        if (profiles) {
                snprintf(path, sizeof path, "%s/profiles.yaml", dir);
                write_file(path, "profile: default_remediation\nfilter: \"sig.Labels.remediation == 'true' && not sig.Whitelisted\"\n"
                                 "remediation:\n  ban: true\n  duration: 4h\noutputs:\n  - plugin: sqlite\n");
        }
        if (dbpath)
                snprintf(dbpath, dbsize, "%s/state/spillway.db", dir);

        pid_t pid = fork();
        if (pid == 0) {
                char cfg[512], state[512], run[512];
                snprintf(cfg, sizeof cfg, "%s/spillway.yaml", dir);
                snprintf(state, sizeof state, "%s/state", dir);
                snprintf(run, sizeof run, "%s/run", dir);
                int devnull = open("/dev/null", O_WRONLY);
                dup2(devnull, 1);
                if (!getenv("SPW_BENCH_VERBOSE"))
                        dup2(devnull, 2);
                execl(arg_daemon, arg_daemon, "-c", cfg, "--plugin-dir", arg_plugins, "--state-dir", state, "--runtime-dir", run,
                      "--allow-unsafe-plugins", "--log-target", "console", "--log-level", "warning", (char *) NULL);
                _exit(127);
        }
        snprintf(sock, sizeof sock, "%s/run/ingest.sock", dir);
        for (int i = 0; i < 3000; i++) { /* up to 30 s: a daemon under valgrind or heaptrack */
                int fd = connect_unix(sock);
                if (fd >= 0) {
                        close(fd);
                        break;
                }
                usleep(10000);
        }

        usleep(200000); /* the backends' init (SQLite opens its file) */
        res.idle_rss_kb = status_kb(pid, "VmRSS");
        char admin_sock[512];
        snprintf(admin_sock, sizeof admin_sock, "%s/run/admin.sock", dir);

        producer *ps = calloc(arg_producers, sizeof *ps);
        unsigned per = arg_signals / arg_producers;
        for (unsigned i = 0; i < arg_producers; i++) {
                char line[2048];
                size_t len = 0;
                ps[i] = (producer) { .sock = sock, .first = i * per, .count = per, .flushed = flushed };
                ps[i].lat = calloc(per, sizeof *ps[i].lat);
                ps[i].lines = malloc((size_t) per * sizeof line);
                ps[i].offsets = malloc(((size_t) per + 1) * sizeof *ps[i].offsets);
                for (unsigned k = 0; k < per; k++) {
                        int n = make_line(line, sizeof line, ps[i].first + k, flushed && !http_port);
                        ps[i].offsets[k] = len;
                        memcpy(ps[i].lines + len, line, (size_t) n);
                        len += (size_t) n;
                }
                ps[i].offsets[per] = len;
        }
        struct rusage ru0;
        getrusage(RUSAGE_SELF, &ru0);
        double cpu_before = ru0.ru_utime.tv_sec + ru0.ru_stime.tv_sec + (ru0.ru_utime.tv_usec + ru0.ru_stime.tv_usec) / 1e6;
        spool_sampler sampler = { .stop = false };
        snprintf(sampler.dir, sizeof sampler.dir, "%s/state/spool", dir);
        pthread_create(&sampler.thread, NULL, sample_spool, &sampler);
        int64_t t0 = now_ns();
        for (unsigned i = 0; i < arg_producers; i++)
                pthread_create(&ps[i].thread, NULL, http_port ? produce_http : produce, &ps[i]);
        for (unsigned i = 0; i < arg_producers; i++)
                pthread_join(ps[i].thread, NULL);
        int64_t t1 = now_ns();
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        res.producer_cpu = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6 - cpu_before;

        /* for queued acks the work is not done until the backends drained:
         * poll the status until every backend settled every signal, and
         * count that time (the daemon keeps running: its stop is not measured).
         * Every 5 ms: a status costs the loop ~0.5 M instructions, and polling
         * every 1 ms while a full SQLite queue drained was ~3 % of the loop's
         * CPU per signal; 5 ms is 0.25 % of a 2-second run's time. */
        int64_t t_done = t1;
        unsigned long long received = 0, pending = 1, settled = 0, flushes = 0;
        long long sync_cursor = -1;
        unsigned expect = per * arg_producers;
        for (int64_t give_up = now_ns() + 120 * (int64_t) 1000000000; now_ns() < give_up; usleep(5000))
                if (status_counts(admin_sock, &received, &pending, &settled, &flushes, &sync_cursor) == 0 &&
                    received >= expect && pending == 0)
                        break;
        if (!flushed)
                t_done = now_ns();
        if (received < expect || pending > 0) {
                fprintf(stderr, "%s: a backend received %llu of %u signals, %llu not settled\n", label, received, expect, pending);
                res.errors++;
        }
        /* the CPU figures below count the ban sync's reading of the run's
         * bans back from the change log (one change per signal here), which
         * may still be catching up when the backends have settled */
        if (profiles && sync_cursor >= 0) {
                for (int64_t give_up = now_ns() + 60 * (int64_t) 1000000000;
                     sync_cursor < (long long) expect && now_ns() < give_up; usleep(5000))
                        (void) status_counts(admin_sock, &received, &pending, &settled, &flushes, &sync_cursor);
                if (sync_cursor < (long long) expect) {
                        fprintf(stderr, "%s: the ban sync read %lld of %u changes\n", label, sync_cursor, expect);
                        res.errors++;
                }
        }
        res.commit_size = flushes ? (double) settled / (double) flushes : 0;
        /* before the ban list below: a list of every ban is a reply of tens
         * of MiB, and reading 100,000 bans costs the worker and the loop
         * about 4 us per signal of the run (until issue 17 the SQLite
         * `flushed` row counted it, the `queued` row did not) */
        res.peak_rss_kb = peak_rss_kb(pid);
        res.cpu_us_per_signal = cpu_seconds(pid) * 1e6 / expect;
        {
                double main_s, worker_s;
                thread_cpu(pid, (now_ns() - t0) / 1e9, res.threads, sizeof res.threads, &main_s, &worker_s);
                res.main_us = main_s * 1e6 / expect;
                res.worker_us = worker_s * 1e6 / expect;
        }
        if (lt) {
                char admin[512];
                snprintf(admin, sizeof admin, "%s/run/admin.sock", dir);
                int64_t a = now_ns();
                admin_request(admin, "{\"op\":\"ban.list\",\"limit\":50}\n", &lt->total);
                int64_t b = now_ns();
                admin_request(admin, "{\"op\":\"ban.list\",\"limit\":0}\n", NULL);
                int64_t e = now_ns();
                lt->first50_ms = (b - a) / 1e6;
                lt->all_ms = (e - b) / 1e6;
        }
        {
                size_t l = strlen(res.threads);
                snprintf(res.threads + l, sizeof res.threads - l, "; producers %.0f%%", 100.0 * res.producer_cpu / ((now_ns() - t0) / 1e9));
        }
        kill(pid, SIGTERM);
        int status;
        waitpid(pid, &status, 0);
        atomic_store(&sampler.stop, true);
        pthread_join(sampler.thread, NULL);
        res.peak_spool_bytes = sampler.peak;

        size_t n = (size_t) per * arg_producers, k = 0;
        int64_t *all = malloc(n * sizeof *all);
        for (unsigned i = 0; i < arg_producers; i++) {
                memcpy(all + k, ps[i].lat, per * sizeof *all);
                k += per;
                res.errors += ps[i].errors;
                free(ps[i].lines);
                free(ps[i].offsets);
                if (ps[i].errors)
                        fprintf(stderr, "%s: producer %u: %u errors, first: %s\n", label, i, ps[i].errors, ps[i].errtext);
                free(ps[i].lat);
        }
        qsort(all, n, sizeof *all, cmp_i64);
        res.p50_ms = all[n / 2] / 1e6;
        res.p99_ms = all[n * 99 / 100] / 1e6;
        res.max_ms = all[n - 1] / 1e6;
        /* signals/s: until every signal is delivered (queued acks) or acked durable (flushed) */
        res.rate = n / ((t_done - t0) / 1e9);
        free(all);
        free(ps);
        if (!dbpath) {
                snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
                if (system(cmd) != 0)
                        fprintf(stderr, "cleanup of %s failed\n", dir);
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "%s: spillwayd %s %d\n", label, WIFEXITED(status) ? "exited with" : "was killed by signal",
                        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
                res.errors++;
        }
        return res;
}

/* ------------------------------------------------------------ ceilings without the daemon */

/* The producers' lines, as run_daemon makes them. */
static producer *make_producers(const char *sock, bool flushed) {
        producer *ps = calloc(arg_producers, sizeof *ps);
        unsigned per = arg_signals / arg_producers;
        for (unsigned i = 0; i < arg_producers; i++) {
                char line[2048];
                size_t len = 0;
                ps[i] = (producer) { .sock = sock, .first = i * per, .count = per, .flushed = flushed };
                ps[i].lat = calloc(per, sizeof *ps[i].lat);
                ps[i].lines = malloc((size_t) per * sizeof line);
                ps[i].offsets = malloc(((size_t) per + 1) * sizeof *ps[i].offsets);
                for (unsigned k = 0; k < per; k++) {
                        int n = make_line(line, sizeof line, ps[i].first + k, flushed);
                        ps[i].offsets[k] = len;
                        memcpy(ps[i].lines + len, line, (size_t) n);
                        len += (size_t) n;
                }
                ps[i].offsets[per] = len;
        }
        return ps;
}

static void free_producers(producer *ps) {
        for (unsigned i = 0; i < arg_producers; i++) {
                free(ps[i].lines);
                free(ps[i].offsets);
                free(ps[i].lat);
        }
        free(ps);
}

static int64_t thread_cpu_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* JSON parse alone (jansson, as the daemon calls it), one thread: signals
 * per second of that thread's CPU time (a shared machine steals wall time,
 * and the figure is the loop's CPU budget, issue 17). With `scratch`, each
 * tree lives in the daemon's scratch region (jsonscratch.h) as it does in
 * the daemon; without, in malloc() with a json_decref() walk. */
static double parse_ceiling(bool scratch) {
        producer *ps = make_producers("", false);
        int64_t t0 = thread_cpu_ns();
        for (unsigned i = 0; i < arg_producers; i++)
                for (unsigned k = 0; k < ps[i].count; k++) {
                        const char *line = ps[i].lines + ps[i].offsets[k];
                        size_t len = ps[i].offsets[k + 1] - ps[i].offsets[k] - 1;
                        json_error_t e;
                        bool in_scratch = false;
                        json_t *o = scratch ? json_scratch_loadb(line, len, JSON_REJECT_DUPLICATES, &e, &in_scratch)
                                            : json_loadb(line, len, JSON_REJECT_DUPLICATES, &e);
                        json_scratch_drop(o, in_scratch);
                }
        double rate = ps[0].count * arg_producers / ((thread_cpu_ns() - t0) / 1e9);
        free_producers(ps);
        return rate;
}

/* The other vCPU's share of the daemon's work while the SQLite ceiling
 * runs: this thread parses the run's lines over and over until told to
 * stop (a daemon on two vCPUs parses on one while SQLite writes). It says
 * when its lines are built and it parses. */
static atomic_bool busy_stop, busy_parsing;

static void *busy_parse(void *unused) {
        producer *ps = make_producers("", false);
        atomic_store(&busy_parsing, true);
        while (!atomic_load(&busy_stop))
                for (unsigned i = 0; i < arg_producers; i++)
                        for (unsigned k = 0; k < ps[i].count && !atomic_load(&busy_stop); k++) {
                                json_error_t e;
                                json_decref(json_loadb(ps[i].lines + ps[i].offsets[k],
                                                       ps[i].offsets[k + 1] - ps[i].offsets[k] - 1, JSON_REJECT_DUPLICATES, &e));
                        }
        free_producers(ps);
        return NULL;
}

typedef struct echo_server {
        int lfd;
        unsigned clients;
} echo_server;

/* The daemon's transport with nothing behind it: one thread (the main
 * one, where the JSON scratch region is installed, as on the daemon's
 * event loop) polls every producer connection, reads, frames lines,
 * parses each one and answers with one write per read. */
static void *echo_serve(void *userdata) {
        echo_server *e = userdata;
        struct pollfd pfd[64];
        struct { char *in; size_t len; } cs[64] = { 0 };
        unsigned n = 0, open_ = 0;
        char out[1 << 17];
        unsigned long long id = 0;

        while (n < e->clients && n < 64) {
                int fd = accept4(e->lfd, NULL, NULL, SOCK_CLOEXEC);
                if (fd < 0)
                        return NULL;
                pfd[n] = (struct pollfd) { .fd = fd, .events = POLLIN };
                cs[n].in = malloc(1 << 20);
                n++;
                open_++;
        }
        while (open_ > 0) {
                if (poll(pfd, n, -1) < 0)
                        break;
                for (unsigned i = 0; i < n; i++) {
                        if (pfd[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                                continue;
                        ssize_t k = read(pfd[i].fd, cs[i].in + cs[i].len, (1 << 20) - cs[i].len);
                        if (k <= 0) {
                                close(pfd[i].fd);
                                pfd[i].fd = -1;
                                open_--;
                                continue;
                        }
                        cs[i].len += (size_t) k;
                        size_t o = 0;
                        char *s = cs[i].in, *nl;
                        while ((nl = memchr(s, '\n', (size_t) (cs[i].in + cs[i].len - s))) && o < sizeof out - 64) {
                                json_error_t je;
                                bool scratch;
                                json_t *j = json_scratch_loadb(s, (size_t) (nl - s), JSON_REJECT_DUPLICATES, &je, &scratch);
                                o += (size_t) snprintf(out + o, sizeof out - o, "{\"ok\":%s,\"id\":%llu,\"ack\":\"queued\"}\n",
                                                       j ? "true" : "false", ++id);
                                json_scratch_drop(j, scratch);
                                s = nl + 1;
                        }
                        cs[i].len = (size_t) (cs[i].in + cs[i].len - s);
                        memmove(cs[i].in, s, cs[i].len);
                        if (write_all(pfd[i].fd, out, o) < 0) {
                                close(pfd[i].fd);
                                pfd[i].fd = -1;
                                open_--;
                        }
                }
        }
        for (unsigned i = 0; i < n; i++)
                free(cs[i].in);
        return NULL;
}

/* socket + framing + parse + reply, the same producers as the daemon runs */
static double socket_parse_ceiling(void) {
        char dir[] = "/tmp/spw-bench-echo-XXXXXX", sock[sizeof dir + 2];
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        echo_server e = { .clients = arg_producers };
        double rate = -1;

        if (!mkdtemp(dir))
                return -1;
        snprintf(sock, sizeof sock, "%s/s", dir);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
        e.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (e.lfd < 0 || bind(e.lfd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen(e.lfd, 64) < 0)
                goto out;
        producer *ps = make_producers(sock, false);
        int64_t t0 = now_ns();
        for (unsigned i = 0; i < arg_producers; i++)
                pthread_create(&ps[i].thread, NULL, produce, &ps[i]);
        echo_serve(&e); /* until every producer has closed its connection */
        unsigned errors = 0;
        for (unsigned i = 0; i < arg_producers; i++) {
                pthread_join(ps[i].thread, NULL);
                errors += ps[i].errors;
        }
        rate = ps[0].count * arg_producers / ((now_ns() - t0) / 1e9);
        free_producers(ps);
        if (errors)
                rate = -1;
out:
        if (e.lfd >= 0)
                close(e.lfd);
        unlink(sock);
        rmdir(dir);
        return rate;
}

/* The SQLite ceiling's rate; its CPU per signal (user + system, from its
 * second line) goes to *cpu_us unless NULL, -1 when it prints none */
static double run_ceiling_batch(const char *dbpath, unsigned signals, unsigned batch, double *cpu_us) {
        char cmd[1024], line[512];
        double rate = -1;
        if (cpu_us)
                *cpu_us = -1;
        snprintf(cmd, sizeof cmd, "'%s' --signals %u --batch %u --db '%s' 2>&1", arg_ceiling, signals, batch, dbpath);
        FILE *p = popen(cmd, "r");
        if (!p)
                return -1;
        while (fgets(line, sizeof line, p)) {
                char *c = strstr(line, "ceiling:");
                if (c) {
                        rate = strtod(c + 8, NULL);
                        printf("  %s", c);
                }
                char *u = strstr(line, " per signal, ");
                if (u && cpu_us) {
                        double per_cpu_s = strtod(u + strlen(" per signal, "), NULL);
                        if (per_cpu_s > 0)
                                *cpu_us = 1e6 / per_cpu_s;
                }
        }
        pclose(p);
        return rate;
}

static double run_ceiling(const char *dbpath, double *cpu_us) {
        return run_ceiling_batch(dbpath, arg_signals, arg_batch, cpu_us);
}

/* The SQLite ceiling while another thread keeps the other vCPU busy
 * parsing, as the daemon's event loop does: bench-ceiling alone also has
 * that vCPU for its checkpoint thread. Its CPU per signal goes to *cpu_us. */
static double run_ceiling_busy(const char *dbpath, double *cpu_us) {
        pthread_t t;
        atomic_store(&busy_stop, false);
        atomic_store(&busy_parsing, false);
        if (pthread_create(&t, NULL, busy_parse, NULL) != 0)
                return -1;
        while (!atomic_load(&busy_parsing))
                usleep(1000);
        double rate = run_ceiling(dbpath, cpu_us);
        atomic_store(&busy_stop, true);
        pthread_join(t, NULL);
        return rate;
}

static void print_row(const char *label, const result *r) {
        printf("%-34s %8.0f/s  p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms  peak RSS %5.1f MiB  daemon CPU %5.1f us/signal%s\n",
               label, r->rate, r->p50_ms, r->p99_ms, r->max_ms, r->peak_rss_kb / 1024.0, r->cpu_us_per_signal,
               r->errors ? "  ERRORS" : "");
        if (r->threads[0])
                printf("%-34s threads: %s (CPU over the run, 100%% = one core)\n", "", r->threads);
        if (r->peak_spool_bytes)
                printf("%-34s peak spool on disk: %.1f MiB\n", "", r->peak_spool_bytes / 1048576.0);
}

/* One run of the summary's paths (--only table, null or sqlite): each
 * path's rows and the ceilings measured beside them. */
typedef struct table_run {
        result rows[2][2]; /* [null, sqlite][queued, flushed] */
        bool have[2];
        double parse, parse_malloc, sock, sqlite, sqlite_cpu_us, busy, busy_cpu_us;
} table_run;

/* The summary (issue 17): each path beside its ceiling, where the daemon's
 * CPU goes (the event loop: socket, parse, routing, replies; the worker:
 * the backend's statements and commits), and whether "queued" is at least
 * as fast as "flushed", which asks more of the daemon. */
static void print_table(const table_run *t) {
        static const char *const names[2] = { "null", "sqlite" }, *const acks[2] = { "queued", "flushed" };
        const result (*rows)[2] = t->rows;
        const bool *have = t->have;
        double ceil_parse = t->parse, ceil_sock = t->sock, ceil_sqlite = t->sqlite, ceil_sqlite_cpu_us = t->sqlite_cpu_us;
        printf("\nsummary (%u signals, %u producers, window %u, batch %u; CPU per signal from /proc, 100%% = one core):\n",
               arg_signals, arg_producers, arg_window, arg_batch);
        printf("%-15s %9s %9s %6s %9s %9s %9s %8s %8s %8s\n", "path", "rate/s", "ceiling", "ratio", "loop us", "worker us",
               "total us", "commit", "peak MiB", "idle MiB");
        for (int b = 0; b < 2; b++) {
                if (!have[b])
                        continue;
                double ceiling = b == 0 ? ceil_sock : ceil_sqlite;
                for (int a = 0; a < 2; a++) {
                        const result *x = &rows[b][a];
                        char label[32], cs[16] = "-", rs[16] = "-";
                        snprintf(label, sizeof label, "%s %s", names[b], acks[a]);
                        if (ceiling > 0) {
                                snprintf(cs, sizeof cs, "%.0f", ceiling);
                                snprintf(rs, sizeof rs, "%.2f", x->rate / ceiling);
                        }
                        printf("%-15s %9.0f %9s %6s %9.1f %9.1f %9.1f %8.0f %8.1f %8.1f\n", label, x->rate, cs, rs, x->main_us,
                               x->worker_us, x->cpu_us_per_signal, x->commit_size, x->peak_rss_kb / 1024.0, x->idle_rss_kb / 1024.0);
                }
        }
        printf("  ceilings: null = socket+parse (%s), sqlite = bench-ceiling (same rows, pragmas and batch); "
               "parse alone %.1f us/signal; 'commit' = signals per flush\n", ceil_sock > 0 ? "one thread" : "not measured",
               ceil_parse > 0 ? 1e6 / ceil_parse : 0);
        if (have[1] && ceil_sqlite_cpu_us > 0 && ceil_parse > 0) {
                double budget = 1e6 / ceil_parse + ceil_sqlite_cpu_us + 5;
                printf("  sqlite ceiling CPU %.1f us/signal; target daemon CPU <= parse + SQLite + 5 = %.1f us: "
                       "queued %.1f (%s), flushed %.1f (%s)\n", ceil_sqlite_cpu_us, budget,
                       rows[1][0].cpu_us_per_signal, rows[1][0].cpu_us_per_signal <= budget ? "yes" : "NO",
                       rows[1][1].cpu_us_per_signal, rows[1][1].cpu_us_per_signal <= budget ? "yes" : "NO");
                /* the most two vCPUs can do with no overhead at all: every
                 * signal's parse and SQLite work, both vCPUs busy all the
                 * time; the SQLite ceiling above has a vCPU and a part */
                double bound = 2e6 / (1e6 / ceil_parse + ceil_sqlite_cpu_us);
                printf("  two-vCPU bound (parse + SQLite work, no overhead, both vCPUs always busy): %.0f signals/s = %.2f x ceiling\n",
                       bound, ceil_sqlite > 0 ? bound / ceil_sqlite : 0);
        }
        if (have[1] && t->busy > 0)
                printf("  sqlite ceiling with the other vCPU parsing: %.0f signals/s (CPU %.1f us/signal); "
                       "queued / it = %.2f, flushed / it = %.2f\n", t->busy, t->busy_cpu_us,
                       rows[1][0].rate / t->busy, rows[1][1].rate / t->busy);
        for (int b = 0; b < 2; b++)
                if (have[b])
                        printf("  check: %s queued >= flushed: %s (%.0f vs %.0f signals/s, %.2f)\n", names[b],
                               rows[b][0].rate >= rows[b][1].rate ? "yes" : "NO", rows[b][0].rate, rows[b][1].rate,
                               rows[b][0].rate / rows[b][1].rate);
}

/* Lock-step producers (issue 18): each connection waits for the `flushed`
 * ack of one signal before it sends the next, as fail2ban actions, shell
 * scripts and CrowdSec's plugins do. Throughput must rise with connections
 * as commits are shared; beside it, the SQLite ceiling at one signal per
 * transaction. Then the wall time of one `spillwayctl send --ack flushed`. */
static unsigned lockstep(const char *sqlite_only[]) {
        static const unsigned conns[] = { 1, 4, 16, 64 };
        unsigned save_p = arg_producers, save_w = arg_window, save_n = arg_signals, errors = 0;
        /* each run long enough that the daemon's start-up is not what is measured */
        unsigned total = arg_signals / 4 < 1000 ? 1000 : arg_signals / 4;
        char db[512], label[64];
        result r;

        printf("lock-step producers (window 1, ack flushed, sqlite synchronous=normal):\n");
        arg_window = 1;
        for (size_t i = 0; i < sizeof conns / sizeof *conns; i++) {
                arg_producers = conns[i];
                arg_signals = total / conns[i] < 20 ? conns[i] * 20 : total / conns[i] * conns[i];
                r = run_daemon("lockstep", sqlite_only, true, true, NULL, 0, NULL);
                snprintf(label, sizeof label, "  %2u connection%s", conns[i], conns[i] == 1 ? " " : "s");
                print_row(label, &r);
                errors += r.errors;
        }
        arg_producers = save_p;
        arg_window = save_w;
        arg_signals = save_n;
        if (arg_ceiling) {
                snprintf(db, sizeof db, "/tmp/spw-bench-ceiling1-%d.db", (int) getpid());
                double c1 = run_ceiling_batch(db, total, 1, NULL);
                unlink(db);
                if (c1 > 0)
                        printf("  (the line above is the ceiling at one signal per transaction: the target for 1 connection is >= 0.5 x it)\n");
        }
        if (arg_ctl) {
                /* one `spillwayctl send --ack flushed` per call, as a fail2ban action does */
                char dir[] = "/tmp/spw-bench-ctl-XXXXXX", path[600], cmd[1400];
                if (!mkdtemp(dir))
                        return errors + 1;
                snprintf(path, sizeof path, "%s/sig.json", dir);
                char line[2048];
                make_line(line, sizeof line, 1, false);
                write_file(path, line);
                /* a daemon of its own, in the layout run_daemon uses */
                snprintf(cmd, sizeof cmd,
                         "mkdir -p '%s/plugins/backend' '%s/state' && printf 'queue:\\n  flush_interval: 100ms\\n' >'%s/spillway.yaml' && "
                         "printf 'name: sqlite\\npath: sqlite\\nconfig:\\n  synchronous: normal\\n' >'%s/plugins/backend/sqlite.yaml'",
                         dir, dir, dir, dir);
                if (system(cmd) != 0)
                        return errors + 1;
                pid_t pid = fork();
                if (pid == 0) {
                        char cfg[700], state[700], run[700];
                        snprintf(cfg, sizeof cfg, "%s/spillway.yaml", dir);
                        snprintf(state, sizeof state, "%s/state", dir);
                        snprintf(run, sizeof run, "%s/run", dir);
                        int devnull = open("/dev/null", O_WRONLY);
                        dup2(devnull, 1);
                        dup2(devnull, 2);
                        execl(arg_daemon, arg_daemon, "-c", cfg, "--plugin-dir", arg_plugins, "--state-dir", state, "--runtime-dir",
                              run, "--allow-unsafe-plugins", "--log-level", "warning", (char *) NULL);
                        _exit(127);
                }
                char sock[700];
                snprintf(sock, sizeof sock, "%s/run/ingest.sock", dir);
                for (int i = 0; i < 500; i++) {
                        int fd = connect_unix(sock);
                        if (fd >= 0) {
                                close(fd);
                                break;
                        }
                        usleep(10000);
                }
                const unsigned calls = 50;
                int64_t *lat = calloc(calls, sizeof *lat);
                snprintf(cmd, sizeof cmd, "'%s' -s '%s/run/admin.sock' send --ack flushed '%s' >/dev/null 2>&1", arg_ctl, dir, path);
                for (unsigned i = 0; i < calls && lat; i++) {
                        int64_t t = now_ns();
                        if (system(cmd) != 0) {
                                fprintf(stderr, "spillway-bench: %s failed\n", cmd);
                                errors++;
                        }
                        lat[i] = now_ns() - t;
                }
                if (lat) {
                        qsort(lat, calls, sizeof *lat, cmp_i64);
                        printf("  spillwayctl send --ack flushed, one signal per call: p50 %.2f ms  p99 %.2f ms per call (%u calls)\n",
                               lat[calls / 2] / 1e6, lat[calls * 99 / 100] / 1e6, calls);
                        free(lat);
                }
                kill(pid, SIGTERM);
                int status;
                waitpid(pid, &status, 0);
                snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
                if (system(cmd) != 0)
                        fprintf(stderr, "cleanup of %s failed\n", dir);
        }
        return errors;
}

static unsigned run_table(table_run *t) {
        static const char *null_only[] = { "name: null_backend\npath: null\n", NULL };
        static const char *sqlite_only[] = { "name: sqlite\npath: sqlite\nconfig:\n  synchronous: normal\n", NULL };
        unsigned errors = 0;
        result r;
        char db[512];

        *t = (table_run) { .parse = -1, .parse_malloc = -1, .sock = -1, .sqlite = -1, .sqlite_cpu_us = -1, .busy = -1,
                           .busy_cpu_us = -1 };
        if (!arg_only || !strcmp(arg_only, "null") || !strcmp(arg_only, "table")) {
                t->parse = parse_ceiling(true);
                t->parse_malloc = parse_ceiling(false);
                t->sock = socket_parse_ceiling();
                printf("  ceiling: JSON parse alone, one thread: %.0f signals per CPU second (%.1f us/signal) in the daemon's scratch "
                       "memory; %.0f (%.1f us) in malloc()\n", t->parse, 1e6 / t->parse, t->parse_malloc, 1e6 / t->parse_malloc);
                printf("  ceiling: socket + framing + parse + reply, one thread, the same producers: %.0f signals/s\n", t->sock);
                r = t->rows[0][0] = run_daemon("null", null_only, false, false, NULL, 0, NULL);
                print_row("null, ack queued (to delivery)", &r);
                errors += r.errors;
                r = t->rows[0][1] = run_daemon("null", null_only, false, true, NULL, 0, NULL);
                print_row("null, ack flushed", &r);
                errors += r.errors;
                t->have[0] = true;
        }
        if (!arg_only || !strcmp(arg_only, "sqlite") || !strcmp(arg_only, "table")) {
                r = t->rows[1][0] = run_daemon("sqlite", sqlite_only, true, false, NULL, 0, NULL);
                print_row("sqlite, ack queued (to delivery)", &r);
                errors += r.errors;
                list_timing lt = { 0 };
                r = t->rows[1][1] = run_daemon("sqlite", sqlite_only, true, true, db, sizeof db, &lt);
                t->have[1] = true;
                print_row("sqlite, ack flushed", &r);
                printf("  ban list over %ld active bans: first 50 in %.1f ms, all of them (JSON over the admin socket) in %.1f ms\n",
                       lt.total, lt.first50_ms, lt.all_ms);
                if (lt.total < (long) arg_signals * 9 / 10) {
                        fprintf(stderr, "spillway-bench: expected about %u active bans, ban list says %ld\n", arg_signals, lt.total);
                        errors++;
                }
                errors += r.errors;
                struct stat st;
                if (stat(db, &st) == 0)
                        printf("  database after the run: %.1f MiB (%s)\n", st.st_size / 1048576.0, db);
                if (arg_ceiling) {
                        char cdb[600];
                        snprintf(cdb, sizeof cdb, "%s.ceiling", db);
                        double ceiling = t->sqlite = run_ceiling(cdb, &t->sqlite_cpu_us);
                        if (ceiling > 0)
                                printf("  daemon (ack flushed) / ceiling = %.2f\n", r.rate / ceiling);
                        printf("  the same with the other vCPU parsing:\n");
                        t->busy = run_ceiling_busy(cdb, &t->busy_cpu_us);
                        unlink(cdb);
                }
                char cmd[700];
                char *slash = strrchr(db, '/');
                if (slash) {
                        *slash = 0;
                        slash = strrchr(db, '/');
                        if (slash) {
                                *slash = 0;
                                snprintf(cmd, sizeof cmd, "rm -rf '%s'", db);
                                if (system(cmd) != 0)
                                        fprintf(stderr, "cleanup failed\n");
                        }
                }
        }
        if (t->have[0] || t->have[1])
                print_table(t);
        return errors;
}

static int cmp_double(const void *x, const void *y) {
        double a = *(const double *) x, b = *(const double *) y;
        return (a > b) - (a < b);
}

/* "min / median / max" of v[0..n) (sorted in place) with `prec` decimals;
 * "-" when a value is missing (negative: not measured in that run) */
static const char *mmm(double *v, unsigned n, int prec, char *buf, size_t size) {
        char a[32], b[32], c[32];
        for (unsigned i = 0; i < n; i++)
                if (v[i] < 0)
                        return strcpy(buf, "-");
        qsort(v, n, sizeof *v, cmp_double);
        double med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
        snprintf(a, sizeof a, "%.*f", prec, v[0]);
        snprintf(b, sizeof b, "%.*f", prec, med);
        snprintf(c, sizeof c, "%.*f", prec, v[n - 1]);
        snprintf(buf, size, "%s / %s / %s", a, b, c);
        return buf;
}

/* --repeat: every run's figures as min / median / max, as a Markdown table */
static void print_repeats(const table_run *runs, unsigned n) {
        static const char *const names[2] = { "null", "sqlite" }, *const acks[2] = { "queued", "flushed" };
        double *v = calloc(n, sizeof *v);
        char c[7][100];
        if (!v)
                return;
#define COLLECT(expr) do { for (unsigned k = 0; k < n; k++) { const table_run *t = &runs[k]; v[k] = (expr); } } while (0)
        printf("\n%u runs, min / median / max:\n\n", n);
        printf("| path | signals/s | ratio to its ceiling | loop us | worker us | total us | peak MiB | idle MiB |\n");
        printf("|---|---|---|---|---|---|---|---|\n");
        for (int b = 0; b < 2; b++) {
                if (!runs[0].have[b])
                        continue;
                for (int a = 0; a < 2; a++) {
                        COLLECT(t->rows[b][a].rate);
                        mmm(v, n, 0, c[0], sizeof c[0]);
                        COLLECT((b ? t->sqlite : t->sock) > 0 ? t->rows[b][a].rate / (b ? t->sqlite : t->sock) : -1);
                        mmm(v, n, 2, c[1], sizeof c[1]);
                        COLLECT(t->rows[b][a].main_us);
                        mmm(v, n, 1, c[2], sizeof c[2]);
                        COLLECT(t->rows[b][a].worker_us);
                        mmm(v, n, 1, c[3], sizeof c[3]);
                        COLLECT(t->rows[b][a].cpu_us_per_signal);
                        mmm(v, n, 1, c[4], sizeof c[4]);
                        COLLECT(t->rows[b][a].peak_rss_kb / 1024.0);
                        mmm(v, n, 1, c[5], sizeof c[5]);
                        COLLECT(t->rows[b][a].idle_rss_kb / 1024.0);
                        mmm(v, n, 1, c[6], sizeof c[6]);
                        printf("| %s %s | %s | %s | %s | %s | %s | %s | %s |\n", names[b], acks[a], c[0], c[1], c[2], c[3], c[4],
                               c[5], c[6]);
                }
        }
        printf("\n");
        if (runs[0].have[0]) {
                COLLECT(t->parse > 0 ? 1e6 / t->parse : -1);
                printf("- parse alone, scratch memory: %s us of CPU per signal\n", mmm(v, n, 1, c[0], sizeof c[0]));
                COLLECT(t->parse_malloc > 0 ? 1e6 / t->parse_malloc : -1);
                printf("- parse alone, malloc(): %s us\n", mmm(v, n, 1, c[0], sizeof c[0]));
                COLLECT(t->sock);
                printf("- socket + parse ceiling: %s signals/s\n", mmm(v, n, 0, c[0], sizeof c[0]));
                COLLECT(t->rows[0][0].rate / t->rows[0][1].rate);
                printf("- null queued / flushed: %s\n", mmm(v, n, 2, c[0], sizeof c[0]));
        }
        if (runs[0].have[1]) {
                COLLECT(t->sqlite);
                printf("- bench-ceiling: %s signals/s", mmm(v, n, 0, c[0], sizeof c[0]));
                COLLECT(t->sqlite_cpu_us);
                printf(", %s us of CPU per signal\n", mmm(v, n, 1, c[0], sizeof c[0]));
                COLLECT(t->busy);
                printf("- bench-ceiling with the other vCPU parsing: %s signals/s", mmm(v, n, 0, c[0], sizeof c[0]));
                COLLECT(t->busy_cpu_us);
                printf(", %s us of CPU per signal\n", mmm(v, n, 1, c[0], sizeof c[0]));
                COLLECT(t->busy > 0 ? t->rows[1][0].rate / t->busy : -1);
                printf("- sqlite queued / that ceiling: %s", mmm(v, n, 2, c[0], sizeof c[0]));
                COLLECT(t->busy > 0 ? t->rows[1][1].rate / t->busy : -1);
                printf("; flushed / it: %s\n", mmm(v, n, 2, c[0], sizeof c[0]));
                COLLECT(t->parse > 0 && t->sqlite_cpu_us > 0 && t->sqlite > 0
                                ? 2e6 / (1e6 / t->parse + t->sqlite_cpu_us) / t->sqlite : -1);
                printf("- two-vCPU bound / bench-ceiling: %s\n", mmm(v, n, 2, c[0], sizeof c[0]));
                COLLECT(t->parse > 0 && t->sqlite_cpu_us > 0 ? 1e6 / t->parse + t->sqlite_cpu_us + 5 : -1);
                printf("- CPU budget parse + SQLite + 5: %s us", mmm(v, n, 1, c[0], sizeof c[0]));
                COLLECT(t->rows[1][0].cpu_us_per_signal);
                printf("; daemon queued %s", mmm(v, n, 1, c[0], sizeof c[0]));
                COLLECT(t->rows[1][1].cpu_us_per_signal);
                printf(", flushed %s\n", mmm(v, n, 1, c[0], sizeof c[0]));
                COLLECT(t->rows[1][0].rate / t->rows[1][1].rate);
                printf("- sqlite queued / flushed: %s\n", mmm(v, n, 2, c[0], sizeof c[0]));
        }
#undef COLLECT
        free(v);
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "daemon", required_argument, NULL, 'd' }, { "plugins", required_argument, NULL, 'p' },
                { "ceiling", required_argument, NULL, 'c' }, { "signals", required_argument, NULL, 'n' },
                { "producers", required_argument, NULL, 'P' }, { "window", required_argument, NULL, 'w' },
                { "batch", required_argument, NULL, 'b' }, { "only", required_argument, NULL, 'o' },
                { "ctl", required_argument, NULL, 'C' }, { "queue-size", required_argument, NULL, 'q' },
                { "repeat", required_argument, NULL, 'r' }, {}
        };
        int c;
        unsigned errors = 0;

        /* as spillwayd's main() does: the parse ceilings use it */
        if (json_scratch_install() < 0) {
                fprintf(stderr, "spillway-bench: json_scratch_install: out of memory\n");
                return 1;
        }
        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
                switch (c) {
                case 'd': arg_daemon = optarg; break;
                case 'p': arg_plugins = optarg; break;
                case 'c': arg_ceiling = optarg; break;
                case 'n': arg_signals = (unsigned) strtoul(optarg, NULL, 10); break;
                case 'P': arg_producers = (unsigned) strtoul(optarg, NULL, 10); break;
                case 'w': arg_window = (unsigned) strtoul(optarg, NULL, 10); break;
                case 'b': arg_batch = (unsigned) strtoul(optarg, NULL, 10); break;
                case 'o': arg_only = optarg; break;
                case 'C': arg_ctl = optarg; break;
                case 'q': arg_queue = (unsigned) strtoul(optarg, NULL, 10); break;
                case 'r': arg_repeat = (unsigned) strtoul(optarg, NULL, 10); break;
                default:
                        fprintf(stderr, "usage: spillway-bench --daemon PATH --plugins DIR [--ceiling PATH] [--signals N] "
                                        "[--producers N] [--window N] [--batch N] [--queue-size N] [--only table|null|sqlite|durability|both|http|lockstep] "
                                        "[--repeat N] [--ctl SPILLWAYCTL]\n");
                        return 2;
                }
        }
        if (arg_repeat < 1 || arg_repeat > 100) {
                fprintf(stderr, "spillway-bench: --repeat: expected 1 to 100 runs\n");
                return 2;
        }
        if (!arg_daemon || !arg_plugins || arg_producers == 0 || arg_signals < arg_producers) {
                fprintf(stderr, "spillway-bench: --daemon and --plugins are required\n");
                return 2;
        }
        signal(SIGPIPE, SIG_IGN);
        {
                time_t t = time(NULL);
                struct tm tm;
                gmtime_r(&t, &tm);
                strftime(stop_at, sizeof stop_at, "%Y-%m-%dT%H:%M:%SZ", &tm);
                t -= 20;
                gmtime_r(&t, &tm);
                strftime(start_at, sizeof start_at, "%Y-%m-%dT%H:%M:%SZ", &tm);
        }
        printf("spillway-bench: %u signals (~900 bytes each), %u producer connections, window %u, flush batch %u, "
               "synchronous=normal, WAL\n", arg_signals, arg_producers, arg_window, arg_batch);

        static const char *null_only[] = { "name: null_backend\npath: null\n", NULL };
        static const char *sqlite_only[] = { "name: sqlite\npath: sqlite\nconfig:\n  synchronous: normal\n", NULL };
        static const char *both[] = { "name: sqlite\npath: sqlite\nconfig:\n  synchronous: normal\n",
                                      "name: null_backend\npath: null\n", NULL };
        result r;

        if (!arg_only || !strcmp(arg_only, "null") || !strcmp(arg_only, "sqlite") || !strcmp(arg_only, "table")) {
                table_run *runs = calloc(arg_repeat, sizeof *runs);
                if (!runs)
                        return 1;
                for (unsigned k = 0; k < arg_repeat; k++) {
                        if (arg_repeat > 1)
                                printf("\nrun %u of %u\n", k + 1, arg_repeat);
                        errors += run_table(&runs[k]);
                }
                if (arg_repeat > 1)
                        print_repeats(runs, arg_repeat);
                free(runs);
        }
        if (!arg_only || !strcmp(arg_only, "durability")) {
                /* issue 12: the disk spool beside memory, same run, both sync modes */
                static const char *null_mem[] = { "name: null_backend\npath: null\n", NULL };
                static const char *null_batch[] = { "name: null_backend\npath: null\ndurability: disk\nspool_sync: batch\n", NULL };
                static const char *null_always[] = { "name: null_backend\npath: null\ndurability: disk\nspool_sync: always\n", NULL };
                static const char *null_never[] = { "name: null_backend\npath: null\ndurability: disk\nspool_sync: never\n", NULL };
                static const char *sq_batch[] = { "name: sqlite\npath: sqlite\ndurability: disk\nspool_sync: batch\nconfig:\n  synchronous: normal\n", NULL };
                static const char *sq_always[] = { "name: sqlite\npath: sqlite\ndurability: disk\nspool_sync: always\nconfig:\n  synchronous: normal\n", NULL };
                result mem, bat;
                mem = run_daemon("null", null_mem, false, false, NULL, 0, NULL);
                print_row("null, memory, ack queued", &mem);
                bat = run_daemon("null", null_batch, false, false, NULL, 0, NULL);
                print_row("null, disk batch, ack queued", &bat);
                r = run_daemon("null", null_always, false, false, NULL, 0, NULL);
                print_row("null, disk always, ack queued", &r);
                errors += r.errors;
                r = run_daemon("null", null_never, false, false, NULL, 0, NULL);
                print_row("null, disk never, ack queued", &r);
                errors += r.errors + mem.errors + bat.errors;
                printf("  null: disk (batch) / memory = %.2f\n", bat.rate / mem.rate);
                mem = run_daemon("sqlite", sqlite_only, true, false, NULL, 0, NULL);
                print_row("sqlite, memory, ack queued", &mem);
                bat = run_daemon("sqlite", sq_batch, true, false, NULL, 0, NULL);
                print_row("sqlite, disk batch, ack queued", &bat);
                r = run_daemon("sqlite", sq_always, true, false, NULL, 0, NULL);
                print_row("sqlite, disk always, ack queued", &r);
                errors += r.errors + mem.errors + bat.errors;
                printf("  sqlite: disk (batch) / memory = %.2f\n", bat.rate / mem.rate);
        }
        if (!arg_only || !strcmp(arg_only, "both")) {
                r = run_daemon("both", both, true, true, NULL, 0, NULL);
                print_row("sqlite + null, ack flushed", &r);
                errors += r.errors;
        }
        if (!arg_only || !strcmp(arg_only, "http")) {
                /* the same work over POST /v1/signals, beside the unix socket in this run */
                int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                socklen_t sl = sizeof sa;
                if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0 || getsockname(fd, (struct sockaddr *) &sa, &sl) < 0) {
                        perror("spillway-bench: a free TCP port");
                        return 1;
                }
                close(fd);
                printf("HTTP ingest: POST /v1/signals, NDJSON bodies of %d signals, keep-alive, %u connections:\n", HTTP_BODY, arg_producers);
                for (int http = 0; http <= 1; http++) {
                        http_port = http ? ntohs(sa.sin_port) : 0;
                        r = run_daemon("null", null_only, false, false, NULL, 0, NULL);
                        print_row(http ? "HTTP null, ack queued (to delivery)" : "unix null, ack queued (to delivery)", &r);
                        errors += r.errors;
                        r = run_daemon("sqlite", sqlite_only, true, true, NULL, 0, NULL);
                        print_row(http ? "HTTP sqlite, ack flushed" : "unix sqlite, ack flushed", &r);
                        errors += r.errors;
                }
                http_port = 0;
        }
        if (!arg_only || !strcmp(arg_only, "lockstep"))
                errors += lockstep(sqlite_only);
        if (errors) {
                fprintf(stderr, "spillway-bench: %u requests failed\n", errors);
                return 1;
        }
        return 0;
}
