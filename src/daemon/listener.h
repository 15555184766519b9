/* SPDX-License-Identifier: MIT */
#pragma once

/* The listening sockets (see listener.c). */

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "error.h"

typedef struct daemon daemon_t;

typedef enum listener_kind {
        LISTENER_INGEST,
        LISTENER_ADMIN,
} listener_kind;

typedef struct listener {
        daemon_t *d;
        listener_kind kind;
        int fd;
        bool activated;            /* from systemd; never unlink its path */
        char *path;                /* only when we created it */
        sd_event_source *source;
} listener;

#define LISTENER_MAX 2

int listener_open_all(daemon_t *d, spw_error *err);
void listener_close_all(daemon_t *d);
