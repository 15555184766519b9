/* SPDX-License-Identifier: MIT */
/*
 * Spawning tests/receiver.py for the webhook tests and benchmark. The child
 * prints its port (or "ready") on stdout once it listens; we wait for that
 * line with a deadline, so a receiver that cannot start fails the test
 * instead of hanging it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "receiver-spawn.h"

int receiver_start(receiver *r, const char *record_path, const receiver_opts *o) {
        const char *python = getenv("PYTHON3"), *script = getenv("WEBHOOK_RECEIVER");
        const char *argv[32];
        char port[16], line[64] = "";
        int out[2], in[2], n = 0;
        size_t got = 0;
        FILE *f;

        *r = (receiver) { .pid = -1, .stdin_fd = -1 };
        if (!python || !script) {
                fprintf(stderr, "receiver: $PYTHON3 and $WEBHOOK_RECEIVER must be set (meson test sets them)\n");
                return -EINVAL;
        }
        if (record_path) {
                snprintf(r->record, sizeof r->record, "%s", record_path);
                f = fopen(record_path, "w");
                if (!f)
                        return -errno;
                fclose(f);
        }

        argv[n++] = python;
        argv[n++] = script;
        argv[n++] = "--exit-on-stdin-eof";
        if (record_path) {
                argv[n++] = "--record";
                argv[n++] = record_path;
        }
        if (o && o->unix_path) {
                argv[n++] = "--unix";
                argv[n++] = o->unix_path;
        } else {
                snprintf(port, sizeof port, "%d", o ? o->port : 0);
                argv[n++] = "--port";
                argv[n++] = port;
        }
        if (o && o->plan) {
                argv[n++] = "--plan";
                argv[n++] = o->plan;
        }
        if (o && o->cert) {
                argv[n++] = "--cert";
                argv[n++] = o->cert;
                argv[n++] = "--key";
                argv[n++] = o->key;
        }
        if (o && o->client_ca) {
                argv[n++] = "--client-ca";
                argv[n++] = o->client_ca;
        }
        if (getenv("RECEIVER_VERBOSE"))
                argv[n++] = "--verbose";
        argv[n] = NULL;

        if (pipe2(out, O_CLOEXEC) < 0 || pipe2(in, O_CLOEXEC) < 0)
                return -errno;
        r->pid = fork();
        if (r->pid < 0)
                return -errno;
        if (r->pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGTERM);
                dup2(in[0], 0);
                dup2(out[1], 1);
                execv(python, (char **) argv);
                _exit(127);
        }
        close(in[0]);
        close(out[1]);
        r->stdin_fd = in[1];

        /* the first line: a port number or "ready" */
        while (got < sizeof line - 1 && !strchr(line, '\n')) {
                struct pollfd p = { .fd = out[0], .events = POLLIN };
                ssize_t k;
                if (poll(&p, 1, 15000) <= 0)
                        break;
                k = read(out[0], line + got, sizeof line - 1 - got);
                if (k <= 0)
                        break;
                got += (size_t) k;
                line[got] = 0;
        }
        close(out[0]);
        if (!strchr(line, '\n')) {
                fprintf(stderr, "receiver: did not start (output: \"%s\")\n", line);
                receiver_stop(r);
                return -EIO;
        }
        r->port = (o && o->unix_path) ? 0 : atoi(line);
        return 0;
}

void receiver_stop(receiver *r) {
        if (r->pid > 0) {
                kill(r->pid, SIGTERM);
                waitpid(r->pid, NULL, 0);
        }
        if (r->stdin_fd >= 0)
                close(r->stdin_fd);
        r->pid = -1;
        r->stdin_fd = -1;
}

json_t *receiver_requests(const receiver *r) {
        json_t *all = json_array();
        char *buf = NULL;
        size_t cap = 0;
        FILE *f = fopen(r->record, "r");

        if (!f)
                return all;
        while (getline(&buf, &cap, f) > 0) {
                json_error_t e;
                json_t *v = json_loads(buf, 0, &e);
                if (v)
                        json_array_append_new(all, v);
                else
                        fprintf(stderr, "receiver: bad record line: %s\n", e.text);
        }
        free(buf);
        fclose(f);
        return all;
}

size_t receiver_count(const receiver *r) {
        json_t *all = receiver_requests(r);
        size_t n = json_array_size(all);
        json_decref(all);
        return n;
}
