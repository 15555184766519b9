/* SPDX-License-Identifier: MIT */
#pragma once

/* Administrative operations, independent of the transport (see adminops.c). */

#include <jansson.h>

#include "request.h"

typedef struct daemon daemon_t;

/* One request {"op": OP, ...}. */
void adminops_handle(daemon_t *d, request *r, json_t *req, const char *op);
