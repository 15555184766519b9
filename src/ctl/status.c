/* SPDX-License-Identifier: MIT */
/*
 * `spillwayctl status`: a verdict first (healthy, degraded, failing, and
 * why), in colour on a terminal only, then every fact of the status reply
 * that `-o json` prints. status_verdict() is shared with `top`.
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

/* The verdict on a status reply, and why, in one line. */
health status_verdict(json_t *st, char *why, size_t size) {
        size_t i, n = 0, up = 0;
        json_t *b;
        health h = HEALTHY;
        char first[256] = "";

        json_array_foreach(json_object_get(st, "backends"), i, b) {
                json_t *q = json_object_get(b, "queue");
                long long depth = jint(q, "depth"), capacity = jint(q, "capacity");
                n++;
                if (!strcmp(jstr(b, "state"), "running"))
                        up++;
                else if (!*first)
                        snprintf(first, sizeof first, "backend %s is %s%s%s", jstr(b, "name"), jstr(b, "state"),
                                 *jstr(b, "error") ? ": " : "", jstr(b, "error"));
                if (h == HEALTHY && capacity > 0 && depth * 10 >= capacity * 8) {
                        h = WARNING;
                        if (!*first)
                                snprintf(first, sizeof first, "backend %s's queue is %lld%% full", jstr(b, "name"),
                                         depth * 100 / capacity);
                }
        }
        if (strcmp(jstr(st, "state"), "running")) {
                h = FAILING;
                snprintf(why, size, "spillwayd is %s", jstr(st, "state"));
                return h;
        }
        if (n > 0 && up == 0)
                h = FAILING;
        else if (up < n)
                h = WARNING;
        if (json_object_get(st, "reload_error")) {
                if (h == HEALTHY)
                        h = WARNING;
                if (!*first)
                        snprintf(first, sizeof first, "the last reload failed (the previous configuration runs)");
        }
        snprintf(why, size, "%zu/%zu backends running%s%s", up, n, *first ? "; " : "", first);
        return h;
}

int cmd_status(const ctl_command *cmd, int argc, char **argv) {
        if (no_options(cmd, argc, argv))
                return EXIT_USAGE;
        if (optind < argc) {
                fprintf(stderr, "spillwayctl: status: unexpected argument '%s'\n", argv[optind]);
                return EXIT_USAGE;
        }
        json_t *reply = request(json_pack("{s:s}", "op", "status"));
        int r = check_reply(reply);
        size_t i;
        json_t *b;

        if (r) {
                json_decref(reply);
                return r;
        }
        if (arg_output != OUT_HUMAN) {
                print_json(reply);
                json_decref(reply);
                return 0;
        }
        static const char *const verdicts[] = { "healthy", "degraded", "failing" };
        static const char *const colours[] = { "\033[1;32m", "\033[1;33m", "\033[1;31m" };
        bool colour = use_colour();
        char why[512], uptime[64], started[64] = "";
        health h = status_verdict(reply, why, sizeof why);
        format_duration(uptime, sizeof uptime, jint(reply, "uptime_s") * USEC_PER_SEC);
        if (*jstr(reply, "started"))
                snprintf(started, sizeof started, " since %s", jstr(reply, "started"));

        /* first line: the verdict */
        printf("%s%s %s%s: %s\n", colour ? colours[h] : "", h == HEALTHY ? "●" : "×", verdicts[h], colour ? "\033[0m" : "", why);
        printf("spillwayd %s, pid %lld, %s, up %s%s\n", jstr(reply, "version"), jint(reply, "pid"), jstr(reply, "state"),
               uptime, started);
        printf("config %s, %lld reloads, %lld connections (this one included), %lld signals waiting for queue room, watchdog %s\n",
               jstr(reply, "config"), jint(reply, "reloads"), jint(reply, "connections"), jint(reply, "parked"),
               jint(reply, "watchdog_usec") ? "on" : "off");
        json_t *sig = json_object_get(reply, "signals");
        printf("signals: %lld accepted, %lld rejected, %lld flushed acks, %lld failed acks, %lld block timeouts, %lld oversized lines\n",
               jint(sig, "accepted"), jint(sig, "rejected"), jint(sig, "flushed_acks"), jint(sig, "failed_acks"),
               jint(sig, "blocked_timeouts"), jint(sig, "oversized_lines"));
        if (json_object_get(reply, "reload_error"))
                printf("%slast reload FAILED%s: %s\n", colour ? colours[FAILING] : "", colour ? "\033[0m" : "",
                       jstr(reply, "reload_error"));
        printf("\n%-16s %-10s %-9s %15s %9s %9s %9s %9s %9s %9s  %s\n", "BACKEND", "PLUGIN", "STATE", "QUEUE", "RECEIVED",
               "INSERTED", "FAILED", "RETRIED", "DROPPED", "FLUSHES", "LAST ERROR");
        json_array_foreach(json_object_get(reply, "backends"), i, b) {
                json_t *q = json_object_get(b, "queue");
                char queue[48];
                bool running = !strcmp(jstr(b, "state"), "running");
                if (q)
                        snprintf(queue, sizeof queue, "%lld/%lld", jint(q, "depth"), jint(q, "capacity"));
                else
                        snprintf(queue, sizeof queue, "-");
                printf("%-16s %-10s %s%-9s%s %15s %9lld %9lld %9lld %9lld %9lld %9lld  %s\n", jstr(b, "name"), jstr(b, "plugin"),
                       colour && !running ? colours[FAILING] : "", jstr(b, "state"), colour && !running ? "\033[0m" : "", queue,
                       jint(b, "received"), jint(b, "inserted"), jint(b, "failed"), jint(b, "retried"), jint(b, "dropped"),
                       jint(b, "flushes"), *jstr(b, "error") ? jstr(b, "error") : jstr(b, "last_error"));
                if (q)
                        printf("%-16s   queue: high water %lld, on_full %s; %lld flushed, %lld undelivered, busy %lld ms\n", "",
                               jint(q, "high_water"), jstr(q, "on_full"), jint(b, "flushed"), jint(b, "undelivered"),
                               jint(b, "busy_ms"));
                const char *k;
                json_t *v;
                json_object_foreach(json_object_get(b, "plugin_status"), k, v)
                        printf("%-16s   %s: %s\n", "", k, json_is_string(v) ? json_string_value(v) : "");
        }
        json_decref(reply);
        return 0;
}
