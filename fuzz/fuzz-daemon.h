/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A real spillwayd in the fuzzing process, for the targets that speak the
 * line protocol (fuzz-ingest, fuzz-admin): the daemon's own connection code
 * (conn.c: framing, pipelining, oversized lines, the last line at EOF),
 * ingest and adminops, on an sd-event loop, with two real backends (null,
 * and sqlite as the ban backend in a scratch folder). No socket file: each
 * input is one connection on a socketpair, handed to conn_new() as the
 * listener would.
 *
 * One input: byte 0 chooses how the rest is written (all at once, or in
 * pieces of 1..64 bytes, so a line is split at every place); the rest is
 * the byte stream a client sends, then the client closes its side and
 * reads every reply until the daemon closes.
 *
 * The oracle (beyond sanitizers): the protocol answers every line with
 * exactly one line, a JSON object with a boolean "ok", in order; a line is
 * every newline-terminated piece, plus the piece after the last newline if
 * any (end of input ends it). The connection must be done within 20 s.
 *
 * The plugins come from SPW_FUZZ_PLUGIN_DIR (environment, else the build
 * tree's staged build/plugins, set by meson, else `plugins` beside the
 * program, where oss-fuzz-build.sh puts them).
 */

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include "conn.h"
#include "daemon.h"
#include "http.h"
#include "ingest.h"
#include "jsonscratch.h"
#include "log.h"
#include "macro.h"
#include "strbuf.h"

#ifndef SPW_FUZZ_PLUGIN_DIR
#define SPW_FUZZ_PLUGIN_DIR "."
#endif

static daemon_t fz_d;
static char fz_dir[64];
static char fz_config[128];
static int fz_http_port;      /* the HTTP ingest on 127.0.0.1 (fuzz-http) */
#define FZ_HTTP_TOKEN "fuzz-token"

static inline void fz_write(const char *name, const char *text) {
        char p[256];
        snprintf(p, sizeof p, "%s/%s", fz_dir, name);
        FILE *f = fopen(p, "we");
        if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
                fprintf(stderr, "fuzz: cannot write %s: %m\n", p);
                abort();
        }
}

/* What daemon.c's process_hub() does: worker results, queue room, backend
 * state changes, then the replies. */
static inline int fz_on_hub(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        daemon_t *d = userdata;
        hub *h = engine_hub(d->engine);
        hub_dispatch(h);
        if (hub_take_space(h)) {
                ingest_retry_parked(d);
                engine_wake(d->engine);
        }
        if (hub_take_backend_event(h))
                engine_reap(d->engine);
        daemon_flush_replies(d);
        return 0;
}

static inline const char *fz_plugin_dir(void) {
        static char beside[4096];
        char probe[4200];
        ssize_t n;

        if (getenv("SPW_FUZZ_PLUGIN_DIR"))
                return getenv("SPW_FUZZ_PLUGIN_DIR");
        snprintf(probe, sizeof probe, "%s/null.so", SPW_FUZZ_PLUGIN_DIR);
        if (access(probe, R_OK) == 0)
                return SPW_FUZZ_PLUGIN_DIR;
        n = readlink("/proc/self/exe", beside, sizeof beside - 16);
        if (n <= 0)
                return SPW_FUZZ_PLUGIN_DIR;
        beside[n] = 0;
        char *slash = strrchr(beside, '/');
        snprintf(slash ? slash + 1 : beside, 16, "plugins");
        return beside;
}

static inline void fz_setup(void) {
        const char *plugins = fz_plugin_dir();
        spw_error err = { 0 };
        spw_config *c = NULL;
        char text[8192], p[128];

        signal(SIGPIPE, SIG_IGN);
        if (json_scratch_install() < 0) /* as spillwayd's main() does */
                abort();
        log_set_max_level(getenv("SPW_FUZZ_LOG") ? LOG_DEBUG : LOG_CRIT);
        snprintf(fz_dir, sizeof fz_dir, "/tmp/spw-fuzz-XXXXXX");
        if (!mkdtemp(fz_dir))
                abort();
        snprintf(p, sizeof p, "%s/plugins", fz_dir);
        (void) mkdir(p, 0755);
        snprintf(p, sizeof p, "%s/plugins/backend", fz_dir);
        (void) mkdir(p, 0755);
        /* a free port for the HTTP ingest (served only by fuzz-http) */
        {
                struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                socklen_t sl = sizeof sa;
                int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0 || getsockname(fd, (struct sockaddr *) &sa, &sl) < 0)
                        abort();
                fz_http_port = ntohs(sa.sin_port);
                close(fd);
        }
        /* small limits so that short inputs reach them */
        snprintf(text, sizeof text,
                 "ban_backend: bans\n"
                 "sockets:\n  max_line: 1024\n  http: 127.0.0.1:%d\n  http_token: " FZ_HTTP_TOKEN "\n"
                 "  http_max_body: 16K\n  http_max_header: 4K\n  http_timeout: 2s\n  crowdsec_decisions: apply\n"
                 "queue:\n  flush_interval: 5ms\n  size: 64\n  block_timeout: 50ms\n"
                 "bans:\n  max_duration: 48h\n", fz_http_port);
        fz_write("spillway.yaml", text);
        snprintf(text, sizeof text, "name: n\npath: %s/null.so\nconfig: {}\n", plugins);
        fz_write("plugins/backend/n.yaml", text);
        snprintf(text, sizeof text, "name: bans\npath: %s/sqlite.so\nconfig:\n  db_path: %s/bans.db\n  synchronous: normal\n",
                 plugins, fz_dir);
        fz_write("plugins/backend/bans.yaml", text);
        snprintf(fz_config, sizeof fz_config, "%s/spillway.yaml", fz_dir);

        fz_d.opt.config_path = fz_config;
        fz_d.opt.overrides = (config_overrides) { .state_dir = fz_dir, .runtime_dir = fz_dir };
        fz_d.opt.engine.allow_unsafe_plugins = true; /* the build tree's plugins are not root's */
        fz_d.started_at = now_realtime();
        if (config_load(fz_config, &fz_d.opt.overrides, &c, &err) < 0 || engine_new(c, &fz_d.opt.engine, &fz_d.engine, &err) < 0) {
                fprintf(stderr, "fuzz: cannot start the daemon in %s (plugins from %s): %s\n", fz_dir, plugins, err.msg);
                abort();
        }
        if (sd_event_new(&fz_d.event) < 0 || ingest_init(&fz_d) < 0 ||
            sd_event_add_io(fz_d.event, &fz_d.hub_source, hub_fd(engine_hub(fz_d.engine)), EPOLLIN, fz_on_hub, &fz_d) < 0)
                abort();
}

/* Lines the protocol must answer in `data`. */
static inline size_t fz_count_lines(const uint8_t *data, size_t size) {
        size_t n = 0, last = 0;
        for (size_t i = 0; i < size; i++)
                if (data[i] == '\n') {
                        n++;
                        last = i + 1;
                }
        return n + (last < size);
}

static inline void fz_read_replies(int fd, strbuf *out, bool *eof) {
        for (;;) {
                if (!strbuf_reserve(out, 65536))
                        abort();
                ssize_t k = read(fd, out->data + out->len, 65536);
                if (k > 0) {
                        out->len += (size_t) k;
                        continue;
                }
                if (k == 0)
                        *eof = true;
                else if (errno != EAGAIN && errno != EINTR) {
                        fprintf(stderr, "fuzz: reading replies: %m\n");
                        abort();
                }
                return;
        }
}

static inline void fz_check_replies(const strbuf *out, size_t want) {
        size_t n = 0, start = 0;
        for (size_t i = 0; i < out->len; i++) {
                if (out->data[i] != '\n')
                        continue;
                json_error_t jerr;
                json_t *o = json_loadb(out->data + start, i - start, 0, &jerr);
                if (!json_is_object(o) || !json_is_boolean(json_object_get(o, "ok"))) {
                        fprintf(stderr, "fuzz: reply %zu is not a JSON object with a boolean ok: %.*s\n", n + 1,
                                (int) (i - start > 300 ? 300 : i - start), out->data + start);
                        abort();
                }
                json_decref(o);
                n++;
                start = i + 1;
        }
        if (start != out->len || n != want) {
                fprintf(stderr, "fuzz: %zu lines sent, %zu replies (%zu bytes after the last newline):\n%.*s\n", want, n,
                        out->len - start, (int) MIN(out->len, (size_t) 4000), out->data);
                abort();
        }
}

/* One client: connect on `kind`, send, close, read every reply. */
static inline void fz_run_client(listener_kind kind, const uint8_t *data, size_t size) {
        struct ucred peer = { .pid = getpid(), .uid = getuid(), .gid = getgid() };
        strbuf out = STRBUF_INIT;
        size_t piece, off = 1, want;
        bool eof = false, closed = false;
        int fd[2];
        usec_t t0;

        if (size == 0)
                return;
        if (!fz_d.engine)
                fz_setup();
        piece = data[0] & 0x80 ? SIZE_MAX : (size_t) (data[0] & 0x3f) + 1;
        want = fz_count_lines(data + 1, size - 1);
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fd) < 0)
                abort();
        if (conn_new(&fz_d, fd[0], kind, &peer) < 0)
                abort();
        t0 = now_monotonic();
        while (!eof) {
                if (off < size) {
                        size_t n = MIN(piece, size - off);
                        ssize_t k = write(fd[1], data + off, n);
                        if (k > 0)
                                off += (size_t) k;
                        else if (k < 0 && errno != EAGAIN && errno != EINTR)
                                break; /* the daemon closed: the replies tell */
                } else if (!closed) {
                        shutdown(fd[1], SHUT_WR);
                        closed = true;
                }
                (void) sd_event_run(fz_d.event, off < size ? 0 : 1000);
                fz_read_replies(fd[1], &out, &eof);
                if (now_monotonic() - t0 > 20 * USEC_PER_SEC) {
                        fprintf(stderr, "fuzz: the connection is not done after 20 s (%zu of %zu bytes sent, %zu replied)\n",
                                off, size, out.len);
                        abort();
                }
        }
        close(fd[1]);
        fz_check_replies(&out, want);
        strbuf_deinit(&out);
}

/* One HTTP client on the ingest's TCP port (fuzz-http): byte 0 chooses the
 * pieces as for the line protocol, the rest is the raw request bytes. The
 * client sends, reads until the server closes or stays quiet (8 ms), then
 * closes; the daemon must let go of its connections (see below). Whatever
 * came back must be an HTTP/1.x status line. */
static inline void fz_run_http(const uint8_t *data, size_t size) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        strbuf out = STRBUF_INIT;
        size_t piece, off = 1;
        bool eof = false;
        unsigned quiet = 0;
        int fd;
        usec_t t0;

        if (size == 0)
                return;
        if (!fz_d.engine) {
                spw_error err = { 0 };
                fz_setup();
                if (http_start(&fz_d, &err) < 0) {
                        fprintf(stderr, "fuzz: http_start: %s\n", err.msg);
                        abort();
                }
        }
        piece = data[0] & 0x80 ? SIZE_MAX : (size_t) (data[0] & 0x3f) + 1;
        sa.sin_port = htons((uint16_t) fz_http_port);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0 || (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0 && errno != EINPROGRESS))
                abort();
        t0 = now_monotonic();
        while (!eof && quiet < 8) {
                size_t before = out.len;
                if (off < size) {
                        ssize_t k = write(fd, data + off, MIN(piece, size - off));
                        if (k > 0)
                                off += (size_t) k;
                        else if (k < 0 && errno != EAGAIN && errno != EINTR && errno != ENOTCONN)
                                break; /* the server closed on us */
                }
                int busy = sd_event_run(fz_d.event, 1000);
                fz_read_replies(fd, &out, &eof);
                quiet = off >= size && busy == 0 && out.len == before ? quiet + 1 : 0;
                if (now_monotonic() - t0 > 20 * USEC_PER_SEC) {
                        fprintf(stderr, "fuzz: the HTTP exchange is not over after 20 s\n");
                        abort();
                }
        }
        close(fd);
        if (getenv("SPW_FUZZ_SHOW"))
                fprintf(stderr, "fuzz: %zu bytes back: %.*s\n", out.len, (int) MIN(out.len, (size_t) 300), out.data);
        if (out.len > 0 && (out.len < 9 || memcmp(out.data, "HTTP/1.", 7) != 0)) {
                fprintf(stderr, "fuzz: the reply does not start with an HTTP/1.x status line: %.*s\n",
                        (int) MIN(out.len, (size_t) 200), out.data);
                abort();
        }
        strbuf_deinit(&out);
        /* Usually the daemon lets go at once. libmicrohttpd 0.9.75 (external
         * epoll) notices a close during a pipelined, unfinished second
         * request only at http_timeout (2 s here; fuzz/corpus/http keeps
         * the input): give 50 ms, then go on while the loop reaps it; but
         * connections that pile up beyond a timeout's worth are a leak. */
        t0 = now_monotonic();
        while (http_connections(&fz_d) > 0 && now_monotonic() - t0 < 50 * USEC_PER_MSEC)
                (void) sd_event_run(fz_d.event, 1000);
        t0 = now_monotonic();
        while (http_connections(&fz_d) > 16) {
                (void) sd_event_run(fz_d.event, 1000);
                if (now_monotonic() - t0 > 5 * USEC_PER_SEC) {
                        fprintf(stderr, "fuzz: %u HTTP connections still open 5 s after their clients closed (http_timeout 2 s)\n",
                                http_connections(&fz_d));
                        abort();
                }
        }
}
