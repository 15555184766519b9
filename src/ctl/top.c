/* SPDX-License-Identifier: MIT */
/*
 * `spillwayctl top`: the live view of an incident, like systemd-cgtop.
 * Every --delay seconds it asks the admin socket for `status` and for the
 * number of active bans (`ban.list` with limit 1), and draws one screen:
 * rates are the difference of the counters since the previous screen.
 * On a terminal the screen is redrawn in place, stdin is read key by key
 * (q quits, any other key refreshes) and an unreachable daemon is shown and
 * retried; otherwise each screen is printed once (-o json: one status
 * object per line) and an unreachable daemon ends it (exit status 3).
 */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cmdline.h"
#include "ctl.h"
#include "macro.h"
#include "strbuf.h"
#include "timeutil.h"

const ctl_option top_options[] = {
        { "delay", 'd', required_argument, "SECONDS", NULL },
        { "iterations", 'n', required_argument, "N", NULL }, {}
};

typedef struct top_prev {
        char name[128];
        long long received, flushed;
} top_prev;

static struct termios top_saved;
static bool top_raw;
static volatile sig_atomic_t top_quit;

static void top_restore(void) {
        if (top_raw) {
                tcsetattr(STDIN_FILENO, TCSANOW, &top_saved);
                top_raw = false;
        }
}

static void top_on_signal(int sig) {
        top_quit = 1;
}

/* One frame into b. prev/n_prev: the counters of the previous frame. */
static void top_frame(strbuf *b, json_t *st, long long bans, const char *ban_error, top_prev *prev, size_t *n_prev,
                      double secs, bool first, unsigned cols) {
        size_t i;
        json_t *be;
        char uptime[64], why[512], line[1024];
        static long long prev_accepted, prev_rejected;
        top_prev cur[64];
        size_t n_cur = 0;

        health h = status_verdict(st, why, sizeof why);
        static const char *const verdicts[] = { "healthy", "degraded", "failing" };
        json_t *sig = json_object_get(st, "signals");
        long long accepted = jint(sig, "accepted"), rejected = jint(sig, "rejected");
        format_duration(uptime, sizeof uptime, jint(st, "uptime_s") * USEC_PER_SEC);

#define LINE(...) do { snprintf(line, sizeof line, __VA_ARGS__); strbuf_printf(b, "%.*s\n", (int) MIN(strlen(line), (size_t) cols), line); } while (0)
        LINE("spillwayd %s  pid %lld  %s  up %s  %s: %s", jstr(st, "version"), jint(st, "pid"), jstr(st, "state"), uptime,
             verdicts[h], why);
        if (first)
                LINE("signals in: - /s (%lld accepted, %lld rejected)", accepted, rejected);
        else
                LINE("signals in: %.1f/s accepted, %.1f/s rejected (%lld accepted, %lld rejected)",
                     (double) (accepted - prev_accepted) / secs, (double) (rejected - prev_rejected) / secs, accepted, rejected);
        if (bans >= 0)
                LINE("bans: %lld active   connections: %lld   waiting for queue room: %lld", bans, jint(st, "connections"),
                     jint(st, "parked"));
        else
                LINE("bans: - (%s)   connections: %lld   waiting for queue room: %lld", ban_error, jint(st, "connections"),
                     jint(st, "parked"));
        prev_accepted = accepted;
        prev_rejected = rejected;
        strbuf_putc(b, '\n');
        LINE("%-16s %-9s %9s %9s %13s %5s %8s %8s %8s  %s", "BACKEND", "STATE", "IN/s", "OUT/s", "QUEUE", "FILL", "RETRIES",
             "DROPS", "FAILED", "LAST ERROR");
        json_array_foreach(json_object_get(st, "backends"), i, be) {
                const char *name = jstr(be, "name");
                json_t *q = json_object_get(be, "queue");
                long long received = jint(be, "received"), flushed = jint(be, "flushed");
                long long depth = jint(q, "depth"), capacity = jint(q, "capacity");
                char in[32] = "-", out[32] = "-", queue[32] = "-", fill[16] = "-";
                for (size_t k = 0; k < *n_prev && !first; k++)
                        if (!strcmp(prev[k].name, name)) {
                                snprintf(in, sizeof in, "%.1f", (double) (received - prev[k].received) / secs);
                                snprintf(out, sizeof out, "%.1f", (double) (flushed - prev[k].flushed) / secs);
                        }
                if (q) {
                        snprintf(queue, sizeof queue, "%lld/%lld", depth, capacity);
                        if (capacity > 0)
                                snprintf(fill, sizeof fill, "%lld%%", depth * 100 / capacity);
                }
                LINE("%-16s %-9s %9s %9s %13s %5s %8lld %8lld %8lld  %s", name, jstr(be, "state"), in, out, queue, fill,
                     jint(be, "retried"), jint(be, "dropped"), jint(be, "failed"),
                     *jstr(be, "error") ? jstr(be, "error") : jstr(be, "last_error"));
                if (n_cur < ELEMENTSOF(cur)) {
                        snprintf(cur[n_cur].name, sizeof cur[n_cur].name, "%s", name);
                        cur[n_cur].received = received;
                        cur[n_cur++].flushed = flushed;
                }
        }
        memcpy(prev, cur, n_cur * sizeof *cur);
        *n_prev = n_cur;
#undef LINE
}

int cmd_top(const ctl_command *cmd, int argc, char **argv) {
        double delay = 1.0;
        long iterations = 0;
        int c;

        while ((c = ctl_getopt(cmd, argc, argv, stderr)) >= 0) {
                char *end;
                if (c == '?')
                        return EXIT_USAGE;
                if (c == 'd') {
                        delay = strtod(optarg, &end);
                        if (*end || !(delay >= 0.1 && delay <= 3600)) {
                                fprintf(stderr, "spillwayctl: top: --delay: expected seconds between 0.1 and 3600, got '%s'\n", optarg);
                                return EXIT_USAGE;
                        }
                } else {
                        iterations = strtol(optarg, &end, 10);
                        if (*end || iterations <= 0) {
                                fprintf(stderr, "spillwayctl: top: --iterations: expected a positive number, got '%s'\n", optarg);
                                return EXIT_USAGE;
                        }
                }
        }
        if (optind < argc) {
                fprintf(stderr, "spillwayctl: top: unexpected argument '%s'\n", argv[optind]);
                return EXIT_USAGE;
        }
        bool tty = is_terminal(STDOUT_FILENO);
        if (arg_output != OUT_HUMAN)
                tty = false;
        if (tty && isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &top_saved) == 0) {
                struct termios t = top_saved;
                t.c_lflag &= (tcflag_t) ~(ICANON | ECHO);
                t.c_cc[VMIN] = 0;
                t.c_cc[VTIME] = 0;
                if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0) {
                        top_raw = true;
                        atexit(top_restore);
                }
        }
        struct sigaction sa = { .sa_handler = top_on_signal };
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        if (tty)
                fputs("\033[?25l", stdout);     /* hide the cursor */

        top_prev prev[64];
        size_t n_prev = 0;
        usec_t last = 0;
        int ret = 0;
        soft_errors = tty;      /* on a screen, an unreachable daemon is shown and retried */
        for (long it = 0; !top_quit && (iterations == 0 || it < iterations); it++) {
                strbuf frame = STRBUF_INIT;
                unsigned rows, cols;
                terminal_size(STDOUT_FILENO, &rows, &cols);
                if (!tty)
                        cols = 1000;
                usec_t now = now_monotonic();
                json_t *st = request(json_pack("{s:s}", "op", "status"));
                if (st && json_is_true(json_object_get(st, "ok"))) {
                        json_t *bl = request(json_pack("{s:s, s:i}", "op", "ban.list", "limit", 1));
                        long long bans = -1;
                        char ban_error[200] = "no ban backend";
                        if (bl && json_is_true(json_object_get(bl, "ok")))
                                bans = jint(bl, "total");
                        else if (bl)
                                snprintf(ban_error, sizeof ban_error, "%.190s", jstr(bl, "error"));
                        json_decref(bl);
                        if (arg_output == OUT_JSON) {
                                json_object_set_new(st, "bans", bans >= 0 ? json_integer(bans) : json_null());
                                char *s = json_dumps(st, JSON_COMPACT);
                                strbuf_printf(&frame, "%s\n", s ? s : "null");
                                free(s);
                        } else
                                top_frame(&frame, st, bans, ban_error, prev, &n_prev, (double) (now - last) / USEC_PER_SEC,
                                          last == 0, cols);
                        last = now;
                } else {
                        const char *e = st ? jstr(st, "error") : last_error;
                        if (!tty) {
                                fprintf(stderr, "spillwayctl: %s\n", e);
                                json_decref(st);
                                strbuf_deinit(&frame);
                                ret = st ? EXIT_OP_FAILED : EXIT_UNREACHABLE;
                                break;
                        }
                        strbuf_printf(&frame, "spillwayd unreachable: %.*s\n(retrying every %.1fs)\n", (int) MIN(strlen(e), (size_t) cols), e, delay);
                        last = 0;
                }
                json_decref(st);
                if (tty) {
                        char clock[64];
                        time_t t = time(NULL);
                        strftime(clock, sizeof clock, "%H:%M:%S", localtime(&t));
                        fputs("\033[H\033[2J", stdout);
                        fwrite(frame.data, 1, frame.len, stdout);
                        printf("\n%s  every %.1fs; q: quit, any other key: refresh", clock, delay);
                } else {
                        fwrite(frame.data, 1, frame.len, stdout);
                        if (arg_output == OUT_HUMAN)
                                putchar('\n');
                }
                fflush(stdout);
                strbuf_deinit(&frame);
                if (iterations && it + 1 >= iterations)
                        break;
                /* wait for the delay, or a key */
                struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
                usec_t until = now_monotonic() + (usec_t) (delay * USEC_PER_SEC);
                while (!top_quit) {
                        usec_t left = until - now_monotonic();
                        if (left <= 0)
                                break;
                        int r = poll(&p, top_raw ? 1 : 0, (int) (left / USEC_PER_MSEC) + 1);
                        if (r > 0 && top_raw) {
                                char key;
                                if (read(STDIN_FILENO, &key, 1) == 1 && (key == 'q' || key == 'Q'))
                                        top_quit = 1;
                                break;
                        }
                        if (r == 0)
                                break;
                }
        }
        if (tty)
                fputs("\033[?25h\n", stdout);   /* the cursor back, below the last frame */
        fflush(stdout);
        top_restore();
        return ret;
}
