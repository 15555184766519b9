/* SPDX-License-Identifier: MIT */
#ifndef SPILLWAY_BACKEND_H
#define SPILLWAY_BACKEND_H

/*
 * <spillway/backend.h> -- the Spillway output-backend plugin ABI, version 2.
 *
 * A backend plugin is a shared object that exports one function,
 *
 *     const struct spw_backend *spw_backend_v2(void);
 *
 * returning a pointer to a constant descriptor. The daemon dlopen()s the
 * file, resolves that symbol and checks the descriptor (magic, ABI major,
 * struct size) before it calls anything else in the plugin. A plugin that
 * exports spw_backend_v1 (ABI 1) is refused with "rebuild".
 *
 * Versioning rules
 *   - SPW_BACKEND_ABI_MAJOR changes when anything below changes
 *     incompatibly. The exported symbol carries the major ("_v2") so a
 *     plugin of another major is refused before its descriptor is read.
 *   - SPW_BACKEND_ABI_MINOR changes when a member is appended to a struct
 *     that grows. Old plugins keep loading: the daemon never reads
 *     descriptor members beyond descriptor->size (and never calls an
 *     operation the plugin's minor does not have), and a plugin must never
 *     read a member beyond the size or stride the daemon gives it
 *     (SPW_HAS_MEMBER(), SPW_SIGNAL_BAN_HAS(), SPW_SIGNAL_EVENT_HAS()).
 *
 *   Which structs are frozen and which grow (members are only appended):
 *     struct spw_backend      grows: ->size (SPW_BACKEND_HEADER sets it)
 *     struct spw_host         grows: ->size
 *     spw_signal              grows: ->size
 *     spw_source              grows: ->size
 *     spw_ban                 grows: stride spw_signal.ban_size; use spw_signal_ban()
 *     spw_event               grows: stride spw_signal.event_size; use spw_signal_event()
 *     spw_config_key          grows: stride spw_backend.config_key_size
 *     spw_ban_row             grows: ->size (set by the plugin)
 *     spw_ban_change          grows: ->size (set by the plugin)      [2.1]
 *     spw_kv                  frozen (a key and a value, forever)
 *     enums                   values are only added
 *
 *   History: 2.0 (this layout); 2.1 adds read_changes (the ban-change
 *   cursor); 2.2 adds decision scopes other than Ip and Range
 *   (SPW_SCOPE_OTHER, spw_ban.scope_name/value, spw_ban_row.scope/value)
 *   and read_history (every ban the store keeps, for the ban-history
 *   index). ABI 1 plugins must be rebuilt.
 *
 * Threading
 *   Each plugin instance (the `self` returned by init) is only ever called
 *   from its own worker thread, one call at a time, and every call may
 *   block. A plugin needs no locking for its own state. Different instances
 *   of the same plugin run on different threads, so global mutable state in
 *   a plugin needs locking (or, better, does not exist); process-wide
 *   library set-up belongs in global_init (see struct spw_backend).
 *
 *   Host services and the threads they may be called from (ctx is the
 *   instance's own handle):
 *     log, log_fields, now, config_get, instance_name, state_directory,
 *     set_status          any thread of the instance (its worker, or a
 *                         thread the plugin started and joins in shutdown)
 *     set_error,
 *     retry_after         only during a call the worker made (init, insert,
 *                         flush, a timer, read_at, read_changes, read_history,
 *                         delete_*), on that worker thread
 *     schedule            only during init or start_autocommit
 *   global_init's host argument offers log with ctx == NULL only.
 *
 * Memory
 *   Everything the daemon passes to an operation (signals, the config
 *   array, strings) is borrowed for the duration of the call only: copy
 *   what you keep. Exception: the strings config_get() returns stay valid
 *   until shutdown() returns, so a plugin may keep them in its state.
 *
 * Errors
 *   Every operation returns 0 on success and a negative errno on failure;
 *   insert and flush follow one convention: spw_error_is_transient(r)
 *   (below) decides. A transient failure is retried by the daemon (backoff,
 *   or retry_after()), up to the backend's max_retry; any other negative
 *   value is permanent: logged, counted, not retried. A positive value is
 *   a plugin bug and treated as permanent. Before returning a failure,
 *   call host->set_error() with a one-line reason: the daemon logs it with
 *   the backend's name and shows it in `spillwayctl status`.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SPW_BACKEND_MAGIC     UINT32_C(0x53505742) /* "SPWB" */
#define SPW_BACKEND_ABI_MAJOR 2
#define SPW_BACKEND_ABI_MINOR 2

/* The exported entry point, and the string the loader resolves. */
#define SPW_BACKEND_ENTRY        spw_backend_v2
#define SPW_BACKEND_ENTRY_SYMBOL "spw_backend_v2"

/* True when the struct at `ptr` (whose first member is `size_t size`) is
 * large enough to contain `member`. */
#define SPW_HAS_MEMBER(ptr, type, member) \
        ((ptr)->size >= offsetof(type, member) + sizeof(((type *)0)->member))

/* Time is microseconds since the Unix epoch, UTC. 0 means "not set". */
typedef int64_t spw_usec_t;

/* Frozen. */
typedef struct spw_kv {
        const char *key;
        const char *value;
} spw_kv;

/* ------------------------------------------------------------------ data */

/* The signal's source (CrowdSec's `source` object). Grows: check
 * SPW_HAS_MEMBER(src, spw_source, member) for members after longitude. */
typedef struct spw_source {
        size_t size;          /* sizeof(struct spw_source) in the daemon */
        const char *ip;       /* "Ip": textual IPv4 or IPv6, or NULL */
        const char *range;    /* "Range": CIDR, or NULL */
        const char *as_number;/* "AutonomousSystemNumber", or NULL */
        const char *as_org;   /* "AutonomousSystemOrganization", or NULL */
        const char *country;  /* "Country", ISO code, or NULL */
        double latitude;
        double longitude;
} spw_source;

/* One event of the signal's `events_sequence`. Grows: reach events
 * through spw_signal_event(), never by indexing signal->events. */
typedef struct spw_event {
        spw_usec_t time;
        const char *source_ip;  /* or NULL */
        const char *serialized; /* or NULL */
} spw_event;

enum spw_scope {
        SPW_SCOPE_IP = 0,
        SPW_SCOPE_RANGE = 1,
        /* [2.2] Any other CrowdSec decision scope ("Country", "AS",
         * "username", ...): not an address. start_ip/end_ip are all zero,
         * scope_name and value say what is banned, and ip_text is the
         * target's key "Scope:value" (e.g. "Country:FR"), which no address
         * text can equal. Address-based backends (firewalls) must skip such
         * bans; ban databases store them, forwarders forward them. */
        SPW_SCOPE_OTHER = 2,
};

/* A ban application (CrowdSec's BanApplication). Grows: reach bans
 * through spw_signal_ban(), never by indexing signal->bans. Addresses are stored as
 * 16-byte IPv6 in network order (IPv4 as ::ffff:a.b.c.d), inclusive, so
 * memcmp() orders them and a range check is two comparisons. */
typedef struct spw_ban {
        const char *measure_source; /* "local" or "api" */
        const char *measure_type;   /* "ban", "slow", "captcha", or "simulation:ban" ... */
        const char *measure_extra;  /* or NULL */
        spw_usec_t until;
        uint8_t start_ip[16];
        uint8_t end_ip[16];
        int scope;                  /* enum spw_scope */
        const char *target_cn;      /* or NULL */
        int64_t target_as;          /* 0 if unknown */
        const char *target_as_name; /* or NULL */
        const char *ip_text;        /* "192.0.2.7", "2001:db8::/64" */
        const char *reason;
        const char *scenario;
        /* ---- 2.2 (check SPW_SIGNAL_BAN_HAS(sig, value)) ---- */
        const char *scope_name;     /* "Ip", "Range", or the other scope as given ("Country") */
        const char *value;          /* the target within the scope: "192.0.2.7", "FR" */
} spw_ban;

/* One overflow signal (CrowdSec v0.3's SignalOccurence), parsed. Strings
 * are NULL when the field was absent. */
typedef struct spw_signal {
        size_t size;                /* sizeof(struct spw_signal) in the daemon */
        uint64_t id;                /* unique within one daemon run */
        spw_usec_t received_at;

        const char *scenario;
        const char *bucket_id;
        const char *alert_message;
        const char *map_key;
        int64_t events_count;
        spw_usec_t start_at;
        spw_usec_t stop_at;

        const spw_source *source;   /* NULL when the signal had no `source` */

        const char *source_ip;
        const char *source_range;
        const char *source_as_number;
        const char *source_as_org;
        const char *source_country;
        double source_latitude;
        double source_longitude;
        const char *dest_ip;

        int64_t capacity;
        int64_t leak_speed_ns;
        bool whitelisted;
        bool simulation;
        bool reprocess;

        const spw_kv *labels;       /* sorted by key (spw_kv is frozen: index it) */
        size_t n_labels;
        const spw_event *events;    /* use spw_signal_event() */
        size_t n_events;
        size_t event_size;          /* stride of events: sizeof(spw_event) in the daemon */
        const spw_ban *bans;        /* from the producer and from routing; use spw_signal_ban() */
        size_t n_bans;
        size_t ban_size;            /* stride of bans: sizeof(spw_ban) in the daemon */

        /* Top-level members the daemon does not know, as one JSON object
         * text ("{...}"), or NULL. Untrusted: forward, never interpret. */
        const char *extra_json;
} spw_signal;

/* The i-th ban / event of a signal (i < n_bans / n_events). The daemon's
 * spw_ban may be larger than the plugin's: the stride comes from the
 * signal. */
static inline const spw_ban *spw_signal_ban(const spw_signal *sig, size_t i) {
        return (const spw_ban *) (const void *) ((const char *) sig->bans + i * sig->ban_size);
}

static inline const spw_event *spw_signal_event(const spw_signal *sig, size_t i) {
        return (const spw_event *) (const void *) ((const char *) sig->events + i * sig->event_size);
}

/* True when the daemon's spw_ban / spw_event has `member` (for members
 * added after 2.0). */
#define SPW_SIGNAL_BAN_HAS(sig, member) \
        ((sig)->ban_size >= offsetof(spw_ban, member) + sizeof(((spw_ban *)0)->member))
#define SPW_SIGNAL_EVENT_HAS(sig, member) \
        ((sig)->event_size >= offsetof(spw_event, member) + sizeof(((spw_event *)0)->member))

/* One row of read_at(): an active ban. */
typedef struct spw_ban_row {
        size_t size;                /* sizeof(struct spw_ban_row) in the plugin */
        const char *source;         /* measure source: "local", "api" */
        const char *iptext;
        const char *reason;
        int64_t bancount;           /* bans recorded for this target */
        const char *action;         /* measure type */
        const char *cn;             /* country, or NULL */
        const char *as;             /* AS name, or NULL */
        int64_t as_number;
        int64_t events_count;
        spw_usec_t until;
        /* ---- 2.2 (check SPW_HAS_MEMBER(row, spw_ban_row, value)) ---- */
        const char *scope;          /* "Ip", "Range", "Country", ...; NULL if unknown */
        const char *value;          /* the target within the scope ("FR"); iptext is its key */
} spw_ban_row;

/* Called once per row by read_at; a non-zero return stops the walk and is
 * returned by read_at. */
typedef int (*spw_row_fn)(const spw_ban_row *row, void *userdata);

/* [2.1] One change of the ban store, from read_changes(). */
enum spw_change_kind {
        SPW_CHANGE_ADD = 1,         /* a ban became active (or was extended) */
        SPW_CHANGE_DELETE = 2,      /* a ban was removed or expired */
};

enum spw_change_flags {
        /* This walk restarted from nothing (cursor 0, or a cursor older
         * than the backend keeps): a reader drops what it holds and takes
         * the ADDs that follow as the whole set. */
        SPW_CHANGE_RESYNC = 1u << 0,
};

typedef struct spw_ban_change {
        size_t size;                /* sizeof(struct spw_ban_change) in the plugin */
        uint64_t seq;               /* the change's position; increases */
        int kind;                   /* enum spw_change_kind */
        unsigned flags;             /* enum spw_change_flags */
        spw_usec_t at;              /* when the change happened */
        const spw_ban_row *row;     /* the ban; iptext always set, the other
                                     * members NULL/0 if the ban's row is gone */
} spw_ban_change;

typedef int (*spw_change_fn)(const spw_ban_change *change, void *userdata);

/* ------------------------------------------------------- host services */

/* Opaque handle for one backend instance, passed back to host services. */
typedef struct spw_ctx spw_ctx;

typedef int (*spw_timer_fn)(void *userdata, spw_usec_t now);

struct spw_host {
        size_t size;                /* sizeof(struct spw_host) in the daemon */
        uint16_t abi_major;
        uint16_t abi_minor;

        /* Log a line (syslog priority, LOG_ERR ... LOG_DEBUG). The daemon
         * adds the backend's name (SPILLWAY_BACKEND=) and plugin. LOG_DEBUG
         * lines are dropped unless the backend has `debug: true`. */
        void (*log)(spw_ctx *ctx, int priority, const char *format, ...)
                __attribute__((format(printf, 3, 4)));

        /* Same, with extra journal fields ("SPILLWAY_FOO", "value"); field
         * names are upper case letters, digits and '_'. */
        void (*log_fields)(spw_ctx *ctx, int priority, const spw_kv *fields, size_t n_fields,
                           const char *format, ...)
                __attribute__((format(printf, 5, 6)));

        /* Record a one-line reason for the failure about to be returned.
         * Only on the worker thread, during a call the daemon made. */
        void (*set_error)(spw_ctx *ctx, const char *format, ...)
                __attribute__((format(printf, 2, 3)));

        /* The daemon's wall clock, usec since the epoch. */
        spw_usec_t (*now)(spw_ctx *ctx);

        /* The instance's merged config value for key, or NULL. The string
         * stays valid until shutdown() returns: it may be kept. */
        const char *(*config_get)(spw_ctx *ctx, const char *key);

        /* The instance name (`name:` of its YAML file). */
        const char *(*instance_name)(spw_ctx *ctx);

        /* The daemon's state directory (for default database paths). */
        const char *(*state_directory)(spw_ctx *ctx);

        /* Run fn(userdata, now) every interval_usec on this instance's own
         * worker thread, between other calls. Only valid from init or
         * start_autocommit. A negative return is logged and counted. */
        int (*schedule)(spw_ctx *ctx, spw_usec_t interval_usec, spw_timer_fn fn, void *userdata);

        /* Ask the daemon to wait at least `delay` before the retry that
         * follows the failure about to be returned (e.g. HTTP Retry-After).
         * Only on the worker thread, during insert or flush. */
        void (*retry_after)(spw_ctx *ctx, spw_usec_t delay);

        /* Publish a plugin-specific figure or fact ("last_http_status",
         * "delivered") shown under the backend in `spillwayctl status`. The
         * value is copied; NULL removes the key. */
        void (*set_status)(spw_ctx *ctx, const char *key, const char *value);
};

/* --------------------------------------------------------- the plugin */

/* Types of config keys, checked by the daemon before init() runs. */
enum spw_config_type {
        SPW_CONFIG_STRING = 0,
        SPW_CONFIG_BOOL,     /* true/false (also yes/no/on/off/1/0) */
        SPW_CONFIG_INT,      /* decimal, non-negative */
        SPW_CONFIG_DURATION, /* Go syntax: "500ms", "4h", "1h30m", "2d" */
        SPW_CONFIG_ENUM,     /* one of `choices` */
        SPW_CONFIG_MAP,      /* a YAML mapping, passed flattened as "key.sub" */
};

/* Flags of a config key. */
enum spw_config_flags {
        /* The value is a secret (password, token, a URL with credentials,
         * HTTP headers): the daemon never logs it, at any level, and shows
         * "(secret)" instead in --list-plugins, status and error messages. */
        SPW_CONFIG_SECRET = 1u << 0,
        /* The key must be set: a backend file without it is a configuration
         * error naming the key (file:line:column of the `config:` map). */
        SPW_CONFIG_REQUIRED = 1u << 1,
};

/* One config key a plugin accepts. The daemon refuses unknown keys (with
 * file:line:column and a "did you mean"), checks types, and prints the table
 * in `spillwayd --list-plugins`. The global defaults (flush, max_records,
 * max_records_age, debug) are always accepted. Grows: the daemon steps
 * through the array by spw_backend.config_key_size. */
typedef struct spw_config_key {
        const char *name;
        int type;                  /* enum spw_config_type */
        const char *default_value; /* documentation only, or NULL */
        const char *choices;       /* SPW_CONFIG_ENUM: "a|b|c" */
        const char *description;
        unsigned flags;            /* enum spw_config_flags */
} spw_config_key;

/* The one classification of insert and flush failures: true for a
 * transient failure the daemon retries (the peer or the disk may recover:
 * try again later), false for a permanent one (bad data, bad
 * configuration, a bug: retrying cannot help). EIO counts as transient (a
 * lost connection mid-transfer, a storage hiccup); ENOMEM too (memory
 * pressure passes). Use -EAGAIN when in doubt that a retry can help, and
 * -EINVAL / -EBADMSG / -EPROTO / -EPERM for "never". */
static inline bool spw_error_is_transient(int r) {
        switch (-r) {
        case EAGAIN: case ETIMEDOUT: case ECONNREFUSED: case ECONNRESET: case ECONNABORTED:
        case EHOSTUNREACH: case ENETUNREACH: case ENETDOWN: case EBUSY: case ENOSPC: case EIO:
        case EINTR: case ENOBUFS: case EPIPE: case ENOMEM:
                return true;
        default:
                return false;
        }
}

struct spw_backend {
        uint32_t magic;             /* SPW_BACKEND_MAGIC */
        uint16_t abi_major;         /* SPW_BACKEND_ABI_MAJOR */
        uint16_t abi_minor;         /* SPW_BACKEND_ABI_MINOR */
        size_t size;                /* sizeof(struct spw_backend) */
        const char *name;           /* short plugin name, e.g. "sqlite" */
        const char *version;        /* plugin version string */
        const char *description;

        /* Accepted config keys, ended by an entry with name == NULL; NULL to
         * accept any key. config_key_size is the stride of the array,
         * sizeof(spw_config_key) (SPW_BACKEND_HEADER sets it). */
        const spw_config_key *config_keys;
        size_t config_key_size;

        /* Init(map[string]string): config is the backend's `config:` map with
         * the global defaults merged in, sorted by key. Store your state in
         * *selfp. An error discards this backend; the daemon goes on. */
        int (*init)(spw_ctx *ctx, const struct spw_host *host,
                    const spw_kv *config, size_t n_config, void **selfp);

        /* Insert(SignalOccurence): one routed signal. Required. Returns 0,
         * or a negative errno classified by spw_error_is_transient(): a
         * transient failure is retried (the same signal inserted again),
         * a permanent one fails this signal only. */
        int (*insert)(void *self, const spw_signal *signal);

        /* Flush(): commit what insert() batched. Called every flush_interval
         * or flush_batch inserts, after timers and administrative writes,
         * and before shutdown. May be NULL (nothing to commit).
         *
         * All or nothing: on failure, undo the whole batch (every insert since
         * the last successful flush) and return a negative errno:
         *   transient (spw_error_is_transient()): the daemon waits (backoff,
         *           or retry_after()) then inserts the same signals again and
         *           flushes, up to max_retry times (at-least-once delivery);
         *   anything else: the batch is counted as failed, not retried.
         * A failed insert must likewise leave the batch as it was before the
         * call. */
        int (*flush)(void *self);

        /* StartAutoCommit(): called once after init, in the daemon only
         * (never by `--check-config`). May be NULL. */
        int (*start_autocommit)(void *self);

        /* ReadAT(time): call fn once per active ban at `at`. NULL when the
         * backend stores no bans. */
        int (*read_at)(void *self, spw_usec_t at, spw_row_fn fn, void *userdata);

        /* Delete(target): remove bans whose target is exactly `target`; store
         * the number removed in *count. May be NULL. */
        int (*delete_target)(void *self, const char *target, uint64_t *count);

        /* DeleteAll(): remove every ban; count in *count. May be NULL. */
        int (*delete_all)(void *self, uint64_t *count);

        /* Shutdown(): last call; free self. May be NULL. */
        void (*shutdown)(void *self);

        /* Process-wide set-up and tear-down for libraries that need it
         * (curl_global_init, ...). global_init is called once per loaded
         * plugin file, from the thread that loads it, before any init();
         * a negative return refuses the plugin (host->log with ctx NULL
         * may explain why). global_fini is called once when the file is
         * unloaded, after every instance's shutdown. Both may be NULL. */
        int (*global_init)(const struct spw_host *host);
        void (*global_fini)(void);

        /* ---- 2.1 ---- */

        /* ReadChanges(cursor): the ban changes after `cursor`, oldest first,
         * one fn() call each; store in *next_cursor the cursor to pass next
         * time. Cursor 0 means "from nothing": every active ban as an ADD.
         * A cursor older than what the backend keeps is answered like 0
         * (every active ban as an ADD, with SPW_CHANGE_RESYNC in flags) so a
         * reader never misses a delete silently. An ADD replaces what the
         * reader held for the same target (a superseding ban is one ADD);
         * expiry is no change (the ADD's until says when the ban ends).
         * The daemon calls it with no batch open (after a flush); a backend
         * may answer -EBUSY otherwise. A non-zero fn() return stops the walk
         * and is returned; *next_cursor is then the last change fn accepted.
         * NULL when the backend stores no bans. */
        int (*read_changes)(void *self, uint64_t cursor, spw_change_fn fn, void *userdata,
                            uint64_t *next_cursor);

        /* ---- 2.2 ---- */

        /* ReadHistory(since): every ban the store still keeps (active,
         * ended, superseded or deleted: what garbage collection left) made
         * at or after `since` (0: all), oldest first, one fn() call each
         * as an SPW_CHANGE_ADD whose `at` is when the ban was made and
         * whose row has at least iptext and until. The daemon reads it once
         * at start to load its ban-history index (GetDecisionsCount());
         * read_changes keeps the index current from then on. Called with
         * no batch open. A non-zero fn() return stops the walk and is
         * returned. NULL (or -EOPNOTSUPP) when the backend keeps no ban
         * history: the index then starts from the active bans. */
        int (*read_history)(void *self, spw_usec_t since, spw_change_fn fn, void *userdata);
};

/* Declare the entry point in a plugin:
 *
 *     static const struct spw_backend backend = { SPW_BACKEND_HEADER, ... };
 *     SPW_BACKEND_EXPORT(backend)
 */
#define SPW_BACKEND_HEADER                              \
        .magic = SPW_BACKEND_MAGIC,                     \
        .abi_major = SPW_BACKEND_ABI_MAJOR,             \
        .abi_minor = SPW_BACKEND_ABI_MINOR,             \
        .size = sizeof(struct spw_backend),            \
        .config_key_size = sizeof(struct spw_config_key)

#define SPW_BACKEND_EXPORT(descriptor)                                          \
        __attribute__((visibility("default"))) const struct spw_backend *      \
        SPW_BACKEND_ENTRY(void);                                                \
        __attribute__((visibility("default"))) const struct spw_backend *      \
        SPW_BACKEND_ENTRY(void) { return &(descriptor); }

#ifdef __cplusplus
}
#endif

#endif
