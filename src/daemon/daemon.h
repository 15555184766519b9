/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * spillwayd's state. The main thread owns all of it: the event loop, the
 * listening sockets, the client connections, the requests waiting for an
 * outcome, sd_notify and the watchdog. Worker threads talk to it only
 * through the engine's hub (an eventfd).
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "engine.h"
#include "park.h"
#include "strbuf.h"

typedef struct conn conn;
typedef struct request request;
typedef struct daemon daemon_t;
typedef struct reload_job reload_job;
typedef struct reload_waiter reload_waiter;
/* The outcome of a reload: r < 0 and error on failure. */
typedef void (*reload_done_fn)(daemon_t *d, int r, const char *error, void *userdata);

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

typedef enum request_state {
        REQ_DONE,                  /* reply ready */
        REQ_WAIT_FLUSH,            /* ack: flushed, waiting for the backends */
        REQ_PARKED,                /* block policy, waiting for queue room */
        REQ_WAIT_JOBS,             /* admin jobs running on workers */
} request_state;

struct request {
        daemon_t *d;
        conn *conn;                /* NULL once the client went away */
        request *next;             /* the connection's FIFO */
        park_item park;            /* REQ_PARKED: in the daemon's park */
        request_state state;
        char *reply;               /* one JSON line, no newline */
        /* signal requests */
        spw_msg *msg;
        fanout fan;
        char *dropped;             /* backends that dropped it (queue full) */
        char *unavailable;         /* routed backends that are not running */
        /* admin job requests */
        unsigned jobs_pending;
        int job_kind;
        char *list_reply;          /* ban.list: the whole reply line */
        char *job_error;
        uint64_t job_count;
};

struct conn {
        daemon_t *d;
        uint64_t id;               /* unique, for the park's per-connection order */
        listener_kind kind;
        int fd;
        sd_event_source *source;
        struct ucred peer;
        strbuf in;
        size_t scanned;            /* bytes of `in` known to hold no newline */
        bool discarding;           /* skipping the rest of an oversized line */
        strbuf out;
        request *head, *tail;
        unsigned n_requests;
        bool paused;               /* a parked request holds the line order */
        bool eof;
        usec_t last_input;         /* monotonic */
        uint64_t lines;
        bool dirty;                /* has replies to flush (in daemon.dirty) */
        conn *dirty_next;
        conn *prev, *next;
};

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
} daemon_stats;

struct daemon {
        daemon_options opt;
        sd_event *event;
        engine *engine;
        listener listeners[2];
        size_t n_listeners;
        conn *conns;
        unsigned n_conns;
        uint64_t next_conn_id;
        conn *dirty;               /* connections with replies completed since the last flush */
        park *park;                /* signals waiting for room in a full block queue */
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

/* server.c */
int server_init(daemon_t *d);
int server_open_listeners(daemon_t *d, spw_error *err);
void server_close_listeners(daemon_t *d);
void server_close_all(daemon_t *d);
void server_process_hub(daemon_t *d);
void server_retry_parked(daemon_t *d);
void server_reroute_parked(daemon_t *d);
void server_expire_parked(daemon_t *d, usec_t now);
void server_pause_all(daemon_t *d);
void server_expire_idle(daemon_t *d, usec_t now);

/* status.c */
json_t *status_json(daemon_t *d);
char *status_line(daemon_t *d);
char *metrics_text(daemon_t *d);
bool daemon_workers_healthy(daemon_t *d, char *why, size_t size);

/* reload.c: start a reload (or join the next one); fn (may be NULL) gets
 * the outcome, possibly before this returns. */
void daemon_reload(daemon_t *d, reload_done_fn fn, void *userdata);
bool daemon_reloading(daemon_t *d);

/* daemon.c */
void daemon_update_status(daemon_t *d, bool force);
void daemon_begin_stop(daemon_t *d, const char *why);
