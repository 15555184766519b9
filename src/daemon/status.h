/* SPDX-License-Identifier: MIT */
#pragma once

/* What the daemon says about itself (see status.c). */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct daemon daemon_t;

json_t *status_json(daemon_t *d);
char *status_line(daemon_t *d);
char *metrics_text(daemon_t *d);
bool daemon_workers_healthy(daemon_t *d, char *why, size_t size);
