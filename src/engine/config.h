/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Configuration: the main file (spillway.yaml) and one file per backend
 * instance (plugins/backend/NAME.yaml), parsed with positions so every error
 * says file:line:column, the key, and what was expected.
 *
 * A backend file is either the seed's form
 *
 *     name: sqlite
 *     path: sqlite                 # a name in the plugin directory, or a path
 *     config: { db_path: ..., ... }
 *     queue_size: 10000            # optional per-backend queue settings
 *
 * or a CrowdSec v1 notification file (`type: http`, keys at top level),
 * which becomes a webhook backend. The global defaults (flush, max_records,
 * max_records_age, debug) are merged into every backend's config map;
 * ${VAR} and ${CREDENTIAL:name} are expanded in values.
 */

#include <stdbool.h>
#include <stddef.h>
#include <spillway/backend.h>

#include "error.h"
#include "ipaddr.h"
#include "timeutil.h"

typedef struct spw_plugin spw_plugin;

typedef enum on_full {
        ON_FULL_BLOCK,
        ON_FULL_DROP_OLDEST,
        ON_FULL_DROP_NEWEST,
} on_full;

const char *on_full_to_string(on_full p);

/* Where a backend's accepted signals live until it committed them
 * (spool.h): in memory only, or also in an on-disk spool. */
typedef enum durability {
        DURABILITY_MEMORY,
        DURABILITY_DISK,
} durability;

typedef enum spool_sync {
        SPOOL_SYNC_BATCH,          /* one fdatasync per batch of writes, before their acks */
        SPOOL_SYNC_ALWAYS,         /* one fdatasync per signal */
        SPOOL_SYNC_NEVER,          /* the page cache only: survives kill -9, not power loss */
} spool_sync;

const char *durability_to_string(durability d);
const char *spool_sync_to_string(spool_sync s);

typedef struct queue_settings {
        unsigned size;
        on_full policy;
        usec_t block_timeout;
        usec_t flush_interval;
        usec_t flush_delay;        /* an idle worker waits this long for company, then commits */
        unsigned flush_batch;
        unsigned max_retry;
        usec_t retry_backoff;
        usec_t retry_backoff_max;
        durability durability;
        spool_sync spool_sync;
        size_t spool_max_size;     /* bytes on disk, all segments */
} queue_settings;

typedef struct backend_config {
        char *name;
        char *file;                /* the YAML file it came from */
        unsigned line, column;     /* where its document starts */
        char *path;                /* resolved plugin file */
        spw_kv *config;            /* merged, expanded, sorted by key */
        size_t n_config;
        unsigned *key_line;        /* position of each config key (0: a default) */
        unsigned *key_column;
        queue_settings q;
        bool debug;
        char *fingerprint;         /* equal fingerprints: nothing changed */
} backend_config;

typedef struct spw_config {
        char *file;
        char *dir;                 /* relative paths are relative to this */
        char *backend_dir;
        char *profiles;
        char *plugin_dir;
        char *state_dir;
        char *ingest_socket;
        char *admin_socket;
        size_t max_line;
        unsigned max_connections;
        usec_t client_timeout;     /* idle client with a partial line */
        unsigned max_admin_connections;
        unsigned max_connections_per_uid; /* ingest socket */
        usec_t idle_timeout;       /* a connection that sends nothing; 0: off */
        size_t max_buffered_input; /* partial lines across all connections */
        unsigned min_prefix_v4;    /* automatic bans: nothing broader */
        unsigned min_prefix_v6;
        usec_t max_ban_duration;   /* automatic bans: longest until - received */
        usec_t ban_sync_interval;  /* bans.sync_interval: ban database -> enforcement, history (bansync.h) */
        unsigned ban_history_max;  /* bans.history_max: records in the ban-history index (banhist.h) */
        char *never_ban;           /* bans.never_ban as written ("none": empty) */
        ip_range *never_ban_ranges; /* parsed: no ban from any source may overlap one */
        size_t n_never_ban;
        struct {
                char *listen;      /* "127.0.0.1:7422 /run/spillway/http.sock", NULL: off */
                char *token;       /* after ${CREDENTIAL:...} expansion */
                char *token_file;
                char *unix_uids;   /* uids/user names allowed without a token over a unix socket */
                char *tls_cert, *tls_key;
                size_t max_body;
                size_t max_header;
                unsigned max_connections;
                usec_t timeout;    /* idle or slow client */
                char *crowdsec_decisions; /* "apply" | "ignore" (NULL: ignore) */
        } http;
        char *defaults_flush;
        char *defaults_max_records;
        char *defaults_max_records_age;
        char *defaults_debug;      /* NULL unless set */
        queue_settings q;
        usec_t drain_timeout;
        usec_t stuck_timeout;      /* a worker inside one plugin call this long is wedged */
        usec_t exit_on_idle;       /* 0: off */
        usec_t status_interval;
        char *ban_backend;         /* backend answering `ban list`, NULL: the first that can */
        bool credential_placeholders;
        unsigned unchecked_credentials; /* placeholders left by credential_placeholders */
        backend_config *backends;
        size_t n_backends;
} spw_config;

/* Command-line overrides (NULL: not given). */
typedef struct config_overrides {
        const char *state_dir;
        const char *runtime_dir;   /* sockets go here */
        const char *plugin_dir;
        const char *backend_dir;
        const char *profiles;
        /* a check outside the service: ${CREDENTIAL:x} without
         * $CREDENTIALS_DIRECTORY is a placeholder, counted in the config */
        bool credential_placeholders;
} config_overrides;

int config_load(const char *path, const config_overrides *o, spw_config **ret, spw_error *err);
/* Parse only the main file from memory (no backend files); for fuzzing. */
int config_parse_main_buffer(const char *filename, const char *buf, size_t len, spw_config **ret, spw_error *err);
/* Parse one backend file from memory and append its backends to c. */
int config_parse_backend_buffer(spw_config *c, const char *filename, const char *buf, size_t len, spw_error *err);
spw_config *config_free(spw_config *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(spw_config *, config_free);

/* Check a backend's config map against its plugin's key table. */
int config_validate_backend(const backend_config *b, const spw_plugin *p, spw_error *err);

/* "map[flush:false max_records:10000 ...]" as the seed logs it; secrets
 * (keys containing pass, token, secret, key, authorization) are masked. */
char *backend_config_describe(const backend_config *b, const spw_plugin *p);
/* True when config key `key` of plugin p is a secret (SPW_CONFIG_SECRET;
 * for a plugin that declares no keys, or p NULL, a guess from the name). */
bool config_key_is_secret(const spw_plugin *p, const char *key);

const backend_config *config_find_backend(const spw_config *c, const char *name);

/* The bans.never_ban entry that the ban target `text` (an IP or CIDR)
 * overlaps (contains or lies inside), as an index; -1 if none or if text
 * is no address. Every ban source asks: signals (producers' bans and the
 * profiles'), ban.add, CrowdSec alerts and fail2ban through ingest. */
int config_never_ban(const spw_config *c, const char *text);
