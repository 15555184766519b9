/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Start and stop tests/receiver.py from a C test: the interpreter and the
 * script come from $PYTHON3 and $WEBHOOK_RECEIVER (set by meson). The child
 * gets PR_SET_PDEATHSIG and --exit-on-stdin-eof, so a test that aborts never
 * leaves a receiver behind.
 */

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

typedef struct receiver_opts {
        int port;               /* 0: any free port */
        const char *unix_path;  /* listen here instead of TCP */
        const char *plan;       /* JSON text, or NULL: always 200 */
        const char *cert;       /* TLS server certificate and key, or NULL */
        const char *key;
        const char *client_ca;  /* require a client certificate */
} receiver_opts;

typedef struct receiver {
        pid_t pid;
        int port;               /* the TCP port, 0 for a unix socket */
        int stdin_fd;           /* write end of the child's stdin */
        char record[512];       /* JSON lines of every request */
} receiver;

/* Start a receiver recording into record_path (truncated first; NULL: no
 * recording); returns 0
 * when it listens, or a negative errno (and prints why). */
int receiver_start(receiver *r, const char *record_path, const receiver_opts *o);
/* SIGTERM and wait. Safe on a stopped receiver. */
void receiver_stop(receiver *r);
/* Every recorded request, as a JSON array of objects (caller decrefs). */
json_t *receiver_requests(const receiver *r);
/* Number of recorded requests. */
size_t receiver_count(const receiver *r);
