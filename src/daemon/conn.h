/* SPDX-License-Identifier: MIT */
#pragma once

/* Client connections and the line protocol (see conn.c). */

#include <stdbool.h>
#include <sys/socket.h>

#include "listener.h"
#include "timeutil.h"

typedef struct conn conn;
typedef struct daemon daemon_t;

/* Serve an accepted socket (takes fd on success); peer from SO_PEERCRED. */
int conn_new(daemon_t *d, int fd, listener_kind kind, const struct ucred *peer);
/* Open connections on the ingest socket from this uid. */
unsigned conn_count_uid(daemon_t *d, listener_kind kind, uid_t uid);
void conn_free(conn *c);
void conn_free_all(daemon_t *d);

/* Write the replies completed since the last call (one write per connection). */
void conn_flush_dirty(daemon_t *d);
/* Stopping: stop reading every connection. */
void conn_pause_all(daemon_t *d);
/* Disconnect clients with a half line and no data for client_timeout, and
 * clients that sent nothing at all for idle_timeout. */
void conn_expire_idle(daemon_t *d, usec_t now);
/* Rate limit of warnings about misbehaving clients. */
bool conn_warning_allowed(void);
