/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * spillwayd's state, shared by the daemon's rooms: listener.c (sockets),
 * conn.c (connections, line protocol), ingest.c (signals), adminops.c
 * (administrative operations), park.c (signals waiting for queue room),
 * reload.c, status.c, and daemon.c (life cycle). Each room's functions are
 * in its own header. The main thread owns all of it: the event loop, the
 * listening sockets, the client connections, the requests waiting for an
 * outcome, sd_notify and the watchdog. Worker threads talk to it only
 * through the engine's hub (an eventfd).
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "engine.h"
#include "listener.h"
#include "park.h"
#include "reload.h"

typedef struct conn conn;
typedef struct daemon daemon_t;

typedef struct daemon_options {
        const char *config_path;
        config_overrides overrides;
        engine_options engine;
} daemon_options;

typedef struct daemon_stats {
        uint64_t accepted;         /* signals acknowledged "queued" or better */
        uint64_t rejected;         /* malformed input */
        uint64_t flushed_acks;
        uint64_t failed_acks;
        uint64_t blocked_timeouts;
        uint64_t connections_total;
        uint64_t oversized;
        uint64_t refused_connections; /* a connection limit */
        uint64_t idle_disconnects;
        uint64_t shed_input;       /* connections cut for max_buffered_input */
} daemon_stats;

struct daemon {
        daemon_options opt;
        sd_event *event;
        engine *engine;
        listener listeners[LISTENER_MAX];
        size_t n_listeners;
        int http_fds[4];           /* activated sockets named "http" (http.c takes them) */
        size_t n_http_fds;
        struct http_state *http;   /* the HTTP ingest (http.c), NULL when off */
        conn *conns;
        unsigned n_conns;
        unsigned n_conns_kind[LISTENER_MAX]; /* per listener_kind */
        size_t buffered_input;     /* bytes of partial lines held, all connections (conn.c) */
        uint64_t next_conn_id;
        conn *dirty;               /* connections with replies completed since the last flush (conn.c) */
        park *park;                /* signals waiting for room in a full block queue */
        msg_pool msgs;             /* the signals' messages, reused (message.h) */
        unsigned n_waiting;        /* flushed acks and admin requests in flight */
        sd_event_source *hub_source;
        sd_event_source *status_timer;
        sd_event_source *watchdog_timer;
        sd_event_source *idle_timer;
        daemon_stats stats;
        usec_t started_at;         /* realtime */
        usec_t watchdog_usec;
        bool stopping;
        bool watchdog_withheld;
        usec_t idle_since;         /* monotonic, 0 = busy */
        char last_status[256];
        char reload_error[512];
        usec_t last_reload;
        uint64_t reloads;
        reload_job *reload;        /* being prepared off the loop */
        bool reload_again;         /* asked for while one was being prepared */
        reload_waiter *reload_waiters; /* for the next reload */
        int exit_code;
};

/* daemon.c */
/* Start, serve until stopped, and return the exit status. */
int daemon_run(const daemon_options *opt);
void daemon_update_status(daemon_t *d, bool force);
void daemon_begin_stop(daemon_t *d, const char *why);
/* Write the replies completed since the last call, on every transport. */
void daemon_flush_replies(daemon_t *d);
