/* SPDX-License-Identifier: MIT */
/*
 * Configuration loading. The main file and the backend files are read into
 * yamltree documents, then walked against declarative key tables
 * (key_spec): each table names its keys, their types and where the value
 * goes, so unknown keys, wrong types and "did you mean" are handled in one
 * place. Values are copied out of the YAML arena, so the spw_config outlives
 * the documents.
 *
 * Precedence for paths: command line > config file > systemd's
 * $STATE_DIRECTORY / $RUNTIME_DIRECTORY > compiled-in defaults.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "config.h"
#include "config-defaults.h"
#include "plugin.h"
#include "strbuf.h"
#include "strutil.h"
#include "yamltree.h"

const char *on_full_to_string(on_full p) {
        switch (p) {
        case ON_FULL_BLOCK: return "block";
        case ON_FULL_DROP_OLDEST: return "drop_oldest";
        case ON_FULL_DROP_NEWEST: return "drop_newest";
        }
        return "?";
}

const char *durability_to_string(durability d) {
        return d == DURABILITY_DISK ? "disk" : "memory";
}

const char *spool_sync_to_string(spool_sync s) {
        switch (s) {
        case SPOOL_SYNC_BATCH: return "batch";
        case SPOOL_SYNC_ALWAYS: return "always";
        case SPOOL_SYNC_NEVER: return "never";
        }
        return "?";
}

/* ------------------------------------------------------------ key tables */

typedef enum ktype {
        K_STRING,
        K_PATH,       /* relative to the config file's directory */
        K_UINT,
        K_SIZE,       /* bytes, with optional K/M/G (KiB, MiB, GiB) suffix */
        K_DURATION,
        K_BOOL_TEXT,  /* a boolean, stored as "true"/"false" text */
        K_UINT_TEXT,  /* an integer, stored as text */
        K_DURATION_TEXT,
        K_ON_FULL,
        K_DURABILITY,
        K_SPOOL_SYNC,
        K_SECTION,
} ktype;

typedef struct key_spec {
        const char *name;
        ktype type;
        size_t offset;
        const struct key_spec *section;
        unsigned long long min, max;
} key_spec;

#define Q(field) offsetof(spw_config, q) + offsetof(queue_settings, field)

static const key_spec sockets_keys[] = {
        { "ingest", K_PATH, offsetof(spw_config, ingest_socket) },
        { "admin", K_PATH, offsetof(spw_config, admin_socket) },
        { "max_line", K_SIZE, offsetof(spw_config, max_line), .min = 1024, .max = 64u << 20 },
        { "max_connections", K_UINT, offsetof(spw_config, max_connections), .min = 1, .max = 65536 },
        { "client_timeout", K_DURATION, offsetof(spw_config, client_timeout) },
        { "max_admin_connections", K_UINT, offsetof(spw_config, max_admin_connections), .min = 1, .max = 65536 },
        { "max_connections_per_uid", K_UINT, offsetof(spw_config, max_connections_per_uid), .min = 1, .max = 65536 },
        { "idle_timeout", K_DURATION, offsetof(spw_config, idle_timeout) },
        { "max_buffered_input", K_SIZE, offsetof(spw_config, max_buffered_input), .min = 64u << 10, .max = 4ull << 30 },
        /* the HTTP ingest (src/daemon/http.c) */
        { "http", K_STRING, offsetof(spw_config, http.listen) },
        { "http_token", K_STRING, offsetof(spw_config, http.token) },
        { "http_token_file", K_PATH, offsetof(spw_config, http.token_file) },
        { "http_unix_uids", K_STRING, offsetof(spw_config, http.unix_uids) },
        { "http_tls_cert", K_PATH, offsetof(spw_config, http.tls_cert) },
        { "http_tls_key", K_PATH, offsetof(spw_config, http.tls_key) },
        { "http_max_body", K_SIZE, offsetof(spw_config, http.max_body), .min = 1024, .max = 1u << 30 },
        { "http_max_header", K_SIZE, offsetof(spw_config, http.max_header), .min = 4096, .max = 1u << 20 },
        { "http_max_connections", K_UINT, offsetof(spw_config, http.max_connections), .min = 1, .max = 65536 },
        { "http_timeout", K_DURATION, offsetof(spw_config, http.timeout) },
        { "crowdsec_decisions", K_STRING, offsetof(spw_config, http.crowdsec_decisions) },
        { NULL },
};

static const key_spec bans_keys[] = {
        { "min_prefix_v4", K_UINT, offsetof(spw_config, min_prefix_v4), .min = 0, .max = 32 },
        { "min_prefix_v6", K_UINT, offsetof(spw_config, min_prefix_v6), .min = 0, .max = 128 },
        { "max_duration", K_DURATION, offsetof(spw_config, max_ban_duration) },
        { "sync_interval", K_DURATION, offsetof(spw_config, ban_sync_interval), .min = 10 * USEC_PER_MSEC },
        { "history_max", K_UINT, offsetof(spw_config, ban_history_max), .min = 1, .max = 100000000 },
        { "never_ban", K_STRING, offsetof(spw_config, never_ban) },
        { NULL },
};

static const key_spec defaults_keys[] = {
        { "flush", K_BOOL_TEXT, offsetof(spw_config, defaults_flush) },
        { "max_records", K_UINT_TEXT, offsetof(spw_config, defaults_max_records) },
        { "max_records_age", K_DURATION_TEXT, offsetof(spw_config, defaults_max_records_age) },
        { "debug", K_BOOL_TEXT, offsetof(spw_config, defaults_debug) },
        { NULL },
};

static const key_spec queue_keys[] = {
        { "size", K_UINT, Q(size), .min = 1, .max = 10000000 },
        { "on_full", K_ON_FULL, Q(policy) },
        { "block_timeout", K_DURATION, Q(block_timeout) },
        { "flush_interval", K_DURATION, Q(flush_interval) },
        { "flush_delay", K_DURATION, Q(flush_delay) },
        { "flush_batch", K_UINT, Q(flush_batch), .min = 1, .max = 1000000 },
        { "max_retry", K_UINT, Q(max_retry), .max = 1000 },
        { "retry_backoff", K_DURATION, Q(retry_backoff) },
        { "retry_backoff_max", K_DURATION, Q(retry_backoff_max) },
        { "durability", K_DURABILITY, Q(durability) },
        { "spool_sync", K_SPOOL_SYNC, Q(spool_sync) },
        { "spool_max_size", K_SIZE, Q(spool_max_size), .min = 1 << 20, .max = (unsigned long long) 1 << 50 },
        { NULL },
};

static const key_spec main_keys[] = {
        { "backend_dir", K_PATH, offsetof(spw_config, backend_dir) },
        { "profiles", K_PATH, offsetof(spw_config, profiles) },
        { "plugin_dir", K_PATH, offsetof(spw_config, plugin_dir) },
        { "state_dir", K_PATH, offsetof(spw_config, state_dir) },
        { "ban_backend", K_STRING, offsetof(spw_config, ban_backend) },
        { "drain_timeout", K_DURATION, offsetof(spw_config, drain_timeout) },
        { "stuck_timeout", K_DURATION, offsetof(spw_config, stuck_timeout) },
        { "exit_on_idle", K_DURATION, offsetof(spw_config, exit_on_idle) },
        { "status_interval", K_DURATION, offsetof(spw_config, status_interval) },
        { "sockets", K_SECTION, .section = sockets_keys },
        { "bans", K_SECTION, .section = bans_keys },
        { "defaults", K_SECTION, .section = defaults_keys },
        { "queue", K_SECTION, .section = queue_keys },
        { NULL },
};

/* per-backend keys of the seed form; offsets into backend_config */
#define BQ(field) offsetof(backend_config, q) + offsetof(queue_settings, field)
static const key_spec backend_queue_keys[] = {
        { "queue_size", K_UINT, BQ(size), .min = 1, .max = 10000000 },
        { "on_full", K_ON_FULL, BQ(policy) },
        { "block_timeout", K_DURATION, BQ(block_timeout) },
        { "flush_interval", K_DURATION, BQ(flush_interval) },
        { "flush_delay", K_DURATION, BQ(flush_delay) },
        { "flush_batch", K_UINT, BQ(flush_batch), .min = 1, .max = 1000000 },
        { "max_retry", K_UINT, BQ(max_retry), .max = 1000 },
        { "retry_backoff", K_DURATION, BQ(retry_backoff) },
        { "retry_backoff_max", K_DURATION, BQ(retry_backoff_max) },
        { "durability", K_DURABILITY, BQ(durability) },
        { "spool_sync", K_SPOOL_SYNC, BQ(spool_sync) },
        { "spool_max_size", K_SIZE, BQ(spool_max_size), .min = 1 << 20, .max = (unsigned long long) 1 << 50 },
        { NULL },
};

static const char *const backend_base_keys[] = { "name", "path", "config" };

/* ------------------------------------------------------------ helpers */

static int fail_at(spw_error *err, const char *file, const ynode *n, const char *fmt, ...) _printf_(4, 5);
static int fail_at(spw_error *err, const char *file, const ynode *n, const char *fmt, ...) {
        char what[400];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        return spw_error_set(err, -EINVAL, "%s:%u:%u: %s", file, n ? n->line : 1, n ? n->column : 1, what);
}

static char *path_join(const char *dir, const char *p) {
        char *r;
        if (p[0] == '/' || !dir)
                return strdup(p);
        if (asprintf(&r, "%s/%s", dir, p) < 0)
                return NULL;
        return r;
}

static int replace_str(char **slot, const char *v) {
        char *n = v ? strdup(v) : NULL;
        if (v && !n)
                return -ENOMEM;
        free(*slot);
        *slot = n;
        return 0;
}

static int parse_size(const char *s, unsigned long long *ret) {
        char *end;
        unsigned long long v, mult = 1;

        if (!s || *s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno)
                return -ERANGE;
        if (*end) {
                if (!strcasecmp(end, "k") || !strcasecmp(end, "kib") || !strcasecmp(end, "kb"))
                        mult = 1024;
                else if (!strcasecmp(end, "m") || !strcasecmp(end, "mib") || !strcasecmp(end, "mb"))
                        mult = 1024 * 1024;
                else if (!strcasecmp(end, "g") || !strcasecmp(end, "gib") || !strcasecmp(end, "gb"))
                        mult = 1024 * 1024 * 1024;
                else
                        return -EINVAL;
        }
        if (v > ULLONG_MAX / mult)
                return -ERANGE;
        *ret = v * mult;
        return 0;
}

static int key_names(const key_spec *t, const char **names, size_t max) {
        size_t n = 0;
        for (; t->name && n < max; t++)
                names[n++] = t->name;
        return (int) n;
}

static int unknown_key(spw_error *err, const char *file, const ynode *key, const char *where,
                       const char *const *names, size_t n) {
        const char *close = str_closest(key->value, names, n);
        strbuf list = STRBUF_INIT;
        int r;

        for (size_t i = 0; i < n; i++)
                strbuf_printf(&list, "%s%s", i ? ", " : "", names[i]);
        if (close)
                r = fail_at(err, file, key, "unknown key '%s'%s; did you mean '%s'?", key->value, where, close);
        else
                r = fail_at(err, file, key, "unknown key '%s'%s (expected one of: %s)", key->value, where,
                            list.data ? list.data : "");
        strbuf_deinit(&list);
        return r;
}

static int expect_scalar(spw_error *err, const char *file, const char *key, const ynode *v) {
        if (v->type != YNODE_SCALAR)
                return fail_at(err, file, v, "%s: expected a single value, got %s", key, ynode_type_name(v->type));
        return 0;
}

/* Convert one value according to its spec and store it at base + offset. */
static int apply_value(void *base, const key_spec *k, const char *file, const char *dir, const char *keyname,
                       const ynode *v, spw_error *err) {
        unsigned long long u;
        usec_t d;
        bool b;
        int r;

        if (k->type == K_SECTION)
                return 0;
        r = expect_scalar(err, file, keyname, v);
        if (r < 0)
                return r;
        char *slot_s = NULL;
        switch (k->type) {
        case K_STRING:
                if (!*v->value)
                        return fail_at(err, file, v, "%s: expected a non-empty string", keyname);
                return replace_str((char **) ((char *) base + k->offset), v->value);
        case K_PATH:
                if (!*v->value)
                        return fail_at(err, file, v, "%s: expected a path", keyname);
                slot_s = path_join(dir, v->value);
                if (!slot_s)
                        return -ENOMEM;
                free(*(char **) ((char *) base + k->offset));
                *(char **) ((char *) base + k->offset) = slot_s;
                return 0;
        case K_UINT:
        case K_UINT_TEXT:
                r = str_to_u64(v->value, k->min, k->max ? k->max : UINT_MAX, &u);
                if (r == -ERANGE)
                        return fail_at(err, file, v, "%s: %s is out of range (%llu to %llu)", keyname, v->value, k->min,
                                       k->max ? k->max : UINT_MAX);
                if (r < 0)
                        return fail_at(err, file, v, "%s: expected a non-negative integer, got '%s'", keyname, v->value);
                if (k->type == K_UINT_TEXT)
                        return replace_str((char **) ((char *) base + k->offset), v->value);
                *(unsigned *) ((char *) base + k->offset) = (unsigned) u;
                return 0;
        case K_SIZE:
                r = parse_size(v->value, &u);
                if (r < 0 || u < k->min || u > k->max)
                        return fail_at(err, file, v, "%s: expected a size in bytes between %llu and %llu (suffixes K, M, G), got '%s'",
                                       keyname, k->min, k->max, v->value);
                *(size_t *) ((char *) base + k->offset) = (size_t) u;
                return 0;
        case K_DURATION:
        case K_DURATION_TEXT:
                if (parse_duration(v->value, &d) < 0 || d < 0)
                        return fail_at(err, file, v, "%s: expected a duration like 500ms, 30s, 4h or 2d (at most 2562047h), got '%s'", keyname, v->value);
                if (k->type == K_DURATION_TEXT)
                        return replace_str((char **) ((char *) base + k->offset), v->value);
                if (k->min && (unsigned long long) d < k->min)
                        return fail_at(err, file, v, "%s: '%s' is too short: at least %llums", keyname, v->value,
                                       k->min / 1000);
                *(usec_t *) ((char *) base + k->offset) = d;
                return 0;
        case K_BOOL_TEXT:
                if (ynode_bool(v, &b) < 0)
                        return fail_at(err, file, v, "%s: expected true or false, got '%s'", keyname, v->value);
                return replace_str((char **) ((char *) base + k->offset), b ? "true" : "false");
        case K_ON_FULL:
                if (streq(v->value, "block"))
                        *(on_full *) ((char *) base + k->offset) = ON_FULL_BLOCK;
                else if (streq(v->value, "drop_oldest"))
                        *(on_full *) ((char *) base + k->offset) = ON_FULL_DROP_OLDEST;
                else if (streq(v->value, "drop_newest"))
                        *(on_full *) ((char *) base + k->offset) = ON_FULL_DROP_NEWEST;
                else
                        return fail_at(err, file, v, "%s: expected block, drop_oldest or drop_newest, got '%s'", keyname, v->value);
                return 0;
        case K_DURABILITY:
                if (streq(v->value, "memory"))
                        *(durability *) ((char *) base + k->offset) = DURABILITY_MEMORY;
                else if (streq(v->value, "disk"))
                        *(durability *) ((char *) base + k->offset) = DURABILITY_DISK;
                else
                        return fail_at(err, file, v, "%s: expected memory or disk, got '%s'", keyname, v->value);
                return 0;
        case K_SPOOL_SYNC:
                if (streq(v->value, "batch"))
                        *(spool_sync *) ((char *) base + k->offset) = SPOOL_SYNC_BATCH;
                else if (streq(v->value, "always"))
                        *(spool_sync *) ((char *) base + k->offset) = SPOOL_SYNC_ALWAYS;
                else if (streq(v->value, "never"))
                        *(spool_sync *) ((char *) base + k->offset) = SPOOL_SYNC_NEVER;
                else
                        return fail_at(err, file, v, "%s: expected batch, always or never, got '%s'", keyname, v->value);
                return 0;
        case K_SECTION:
                break;
        }
        return 0;
}

static int walk_section(void *base, const key_spec *table, const char *file, const char *dir, const char *prefix,
                        const ynode *map, spw_error *err) {
        const char *names[32];
        int n = key_names(table, names, ELEMENTSOF(names));

        if (ynode_is_null(map))
                return 0;
        if (map->type != YNODE_MAPPING)
                return fail_at(err, file, map, "%s: expected a mapping of keys, got %s", prefix ? prefix : "file",
                               ynode_type_name(map->type));
        for (size_t i = 0; i < map->n_pairs; i++) {
                const ynode *key = map->pairs[i].key, *val = map->pairs[i].value;
                const key_spec *k = NULL;
                char full[128];
                int r;

                for (const key_spec *t = table; t->name; t++)
                        if (streq(t->name, key->value)) {
                                k = t;
                                break;
                        }
                if (!k) {
                        char where[160] = "";
                        if (prefix)
                                snprintf(where, sizeof where, " in '%s'", prefix);
                        return unknown_key(err, file, key, where, names, (size_t) n);
                }
                snprintf(full, sizeof full, "%s%s%s", prefix ? prefix : "", prefix ? "." : "", k->name);
                if (k->type == K_SECTION)
                        r = walk_section(base, k->section, file, dir, full, val, err);
                else
                        r = apply_value(base, k, file, dir, full, val, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ------------------------------------------------------------ main file */

static spw_config *config_new(void) {
        spw_config *c = calloc(1, sizeof *c);
        if (!c)
                return NULL;
        c->max_line = SPW_DEFAULT_MAX_LINE;
        c->max_connections = SPW_DEFAULT_MAX_CONNECTIONS;
        c->client_timeout = SPW_DEFAULT_CLIENT_TIMEOUT;
        c->max_admin_connections = SPW_DEFAULT_MAX_ADMIN_CONNECTIONS;
        c->max_connections_per_uid = SPW_DEFAULT_MAX_CONNECTIONS_PER_UID;
        c->idle_timeout = SPW_DEFAULT_IDLE_TIMEOUT;
        c->max_buffered_input = SPW_DEFAULT_MAX_BUFFERED_INPUT;
        c->min_prefix_v4 = SPW_DEFAULT_MIN_PREFIX_V4;
        c->min_prefix_v6 = SPW_DEFAULT_MIN_PREFIX_V6;
        c->max_ban_duration = SPW_DEFAULT_MAX_BAN_DURATION;
        c->ban_sync_interval = SPW_DEFAULT_BAN_SYNC_INTERVAL;
        c->ban_history_max = SPW_DEFAULT_BAN_HISTORY_MAX;
        c->http.max_body = 16u << 20;
        c->http.max_header = 32u << 10;
        c->http.max_connections = 256;
        c->http.timeout = 30 * USEC_PER_SEC;
        c->q = (queue_settings) {
                .size = SPW_DEFAULT_QUEUE_SIZE,
                .policy = ON_FULL_BLOCK,
                .block_timeout = SPW_DEFAULT_BLOCK_TIMEOUT,
                .flush_interval = SPW_DEFAULT_FLUSH_INTERVAL,
                .flush_delay = SPW_DEFAULT_FLUSH_DELAY,
                .flush_batch = SPW_DEFAULT_FLUSH_BATCH,
                .max_retry = SPW_DEFAULT_MAX_RETRY,
                .retry_backoff = SPW_DEFAULT_RETRY_BACKOFF,
                .retry_backoff_max = SPW_DEFAULT_RETRY_BACKOFF_MAX,
                .durability = DURABILITY_MEMORY,
                .spool_sync = SPOOL_SYNC_BATCH,
                .spool_max_size = SPW_DEFAULT_SPOOL_MAX_SIZE,
        };
        c->drain_timeout = SPW_DEFAULT_DRAIN_TIMEOUT;
        c->stuck_timeout = SPW_DEFAULT_STUCK_TIMEOUT;
        c->status_interval = SPW_DEFAULT_STATUS_INTERVAL;
        if (replace_str(&c->defaults_flush, "false") < 0 || replace_str(&c->defaults_max_records, "10000") < 0 ||
            replace_str(&c->defaults_max_records_age, "720h") < 0)
                return config_free(c);
        return c;
}

static void backend_config_deinit(backend_config *b) {
        free(b->name);
        free(b->file);
        free(b->path);
        for (size_t i = 0; i < b->n_config; i++) {
                free((char *) b->config[i].key);
                free((char *) b->config[i].value);
        }
        free(b->config);
        free(b->key_line);
        free(b->key_column);
        free(b->fingerprint);
}

spw_config *config_free(spw_config *c) {
        if (!c)
                return NULL;
        free(c->file);
        free(c->dir);
        free(c->backend_dir);
        free(c->profiles);
        free(c->plugin_dir);
        free(c->state_dir);
        free(c->ingest_socket);
        free(c->http.listen);
        free(c->http.token);
        free(c->http.token_file);
        free(c->http.unix_uids);
        free(c->http.tls_cert);
        free(c->http.tls_key);
        free(c->http.crowdsec_decisions);
        free(c->admin_socket);
        free(c->defaults_flush);
        free(c->defaults_max_records);
        free(c->defaults_max_records_age);
        free(c->defaults_debug);
        free(c->ban_backend);
        free(c->never_ban);
        free(c->never_ban_ranges);
        for (size_t i = 0; i < c->n_backends; i++)
                backend_config_deinit(&c->backends[i]);
        free(c->backends);
        free(c);
        return NULL;
}

/* bans.never_ban: CIDRs or addresses separated by commas or spaces, or
 * "none". Absent: SPW_DEFAULT_NEVER_BAN. */
static int parse_never_ban(spw_config *c, const char *file, spw_error *err) {
        const char *text = c->never_ban ? c->never_ban : SPW_DEFAULT_NEVER_BAN;
        _cleanup_free_ char *copy = strdup(text);
        char *save = NULL;
        size_t n = 0;

        if (!copy)
                return -ENOMEM;
        if (streq(text, "none"))
                return 0;
        c->never_ban_ranges = calloc(strlen(text) / 2 + 1, sizeof *c->never_ban_ranges);
        if (!c->never_ban_ranges)
                return -ENOMEM;
        for (char *tok = strtok_r(copy, ", \t\n", &save); tok; tok = strtok_r(NULL, ", \t\n", &save)) {
                ip_range *r = &c->never_ban_ranges[n];
                if ((strchr(tok, '/') ? ip_parse_cidr(tok, true, r) : ip_parse_addr(tok, r)) < 0)
                        return spw_error_set(err, -EINVAL, "%s: bans.never_ban: '%s' is not an IP address or CIDR range "
                                             "(host bits must be zero; \"none\" for an empty list)", file, tok);
                n++;
        }
        c->n_never_ban = n;
        return 0;
}

static int parse_main_docs(spw_config *c, const ydocs *d, spw_error *err) {
        if (d->n_docs > 1)
                return spw_error_set(err, -EINVAL, "%s:%u:1: the main configuration is one YAML document, found %zu",
                                     d->filename, d->doc_lines[1], d->n_docs);
        if (d->n_docs > 0 && d->docs[0]) { /* else an empty file: all defaults */
                int r = walk_section(c, main_keys, d->filename, c->dir, NULL, d->docs[0], err);
                if (r < 0)
                        return r;
        }
        return parse_never_ban(c, d->filename, err);
}

int config_parse_main_buffer(const char *filename, const char *buf, size_t len, spw_config **ret, spw_error *err) {
        _cleanup_(config_freep) spw_config *c = config_new();
        _cleanup_(ydocs_freep) ydocs *d = NULL;
        int r;

        if (!c)
                return -ENOMEM;
        c->file = strdup(filename);
        if (!c->file)
                return -ENOMEM;
        r = ydocs_parse(filename, buf, len, &d, err);
        if (r < 0)
                return r;
        r = parse_main_docs(c, d, err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

/* ------------------------------------------------------------ backend files */

typedef struct kv_pos {
        char *key;
        char *value;
        unsigned line, column;       /* of the key */
        unsigned vline, vcolumn;     /* of the value */
} kv_pos;

typedef struct kv_list {
        kv_pos *items;
        size_t n, cap;
} kv_list;

static void kv_list_deinit(kv_list *l) {
        for (size_t i = 0; i < l->n; i++) {
                free(l->items[i].key);
                free(l->items[i].value);
        }
        free(l->items);
        *l = (kv_list) { 0 };
}

static kv_pos *kv_list_find(kv_list *l, const char *key) {
        for (size_t i = 0; i < l->n; i++)
                if (streq(l->items[i].key, key))
                        return &l->items[i];
        return NULL;
}

static int kv_list_add(kv_list *l, const char *key, const char *value, const ynode *kn, const ynode *vn) {
        if (l->n == l->cap) {
                size_t ncap = l->cap ? l->cap * 2 : 16;
                kv_pos *p = realloc(l->items, ncap * sizeof *p);
                if (!p)
                        return -ENOMEM;
                l->items = p;
                l->cap = ncap;
        }
        kv_pos *e = &l->items[l->n];
        *e = (kv_pos) { strdup(key), strdup(value), kn ? kn->line : 0, kn ? kn->column : 0,
                        vn ? vn->line : 0, vn ? vn->column : 0 };
        if (!e->key || !e->value) {
                free(e->key);
                free(e->value);
                return -ENOMEM;
        }
        l->n++;
        return 0;
}

/* Flatten a YAML mapping into "a.b" keys. */
static int flatten(kv_list *l, const char *file, const char *prefix, const ynode *map, spw_error *err) {
        for (size_t i = 0; i < map->n_pairs; i++) {
                const ynode *k = map->pairs[i].key, *v = map->pairs[i].value;
                char key[256];
                int r;

                if (snprintf(key, sizeof key, "%s%s%s", prefix ? prefix : "", prefix ? "." : "", k->value) >= (int) sizeof key)
                        return fail_at(err, file, k, "key '%s' is too long", k->value);
                if (v->type == YNODE_MAPPING) {
                        r = flatten(l, file, key, v, err);
                } else if (v->type == YNODE_SEQUENCE) {
                        /* a list of plain values (mysql's db_host) arrives comma-separated */
                        char joined[4096];
                        size_t o = 0;

                        for (size_t j = 0; j < v->n_items; j++) {
                                const ynode *it = v->items[j];
                                if (it->type != YNODE_SCALAR || ynode_is_null(it) || strchr(it->value, ',') ||
                                    o + strlen(it->value) + 2 >= sizeof joined)
                                        return fail_at(err, file, it, "config.%s: expected a list of values without "
                                                       "commas, or a value, or a mapping", key);
                                o += (size_t) snprintf(joined + o, sizeof joined - o, "%s%s", j ? "," : "", it->value);
                        }
                        joined[o] = 0;
                        r = kv_list_add(l, key, joined, k, v);
                } else
                        r = kv_list_add(l, key, ynode_is_null(v) ? "" : v->value, k, v); /* twice: kv_list_check_unique() */
                if (r < 0)
                        return r;
        }
        return 0;
}

static int kv_cmp(const void *a, const void *b) {
        return strcmp(((const kv_pos *) a)->key, ((const kv_pos *) b)->key);
}

/* A key given twice after flattening ("a.b: 1" beside "a: {b: 2}"), named
 * where it comes the second time. Sorting first keeps this O(n log n): a
 * search per key took 16 s for a config: map of 100,000 keys. */
static int kv_list_check_unique(kv_list *l, const char *file, spw_error *err) {
        if (l->n < 2)
                return 0; /* nothing to compare (and qsort() must not see a NULL array) */
        qsort(l->items, l->n, sizeof *l->items, kv_cmp);
        for (size_t i = 1; i < l->n; i++)
                if (streq(l->items[i - 1].key, l->items[i].key)) {
                        const kv_pos *a = &l->items[i - 1], *b = &l->items[i];
                        const kv_pos *second = a->line > b->line || (a->line == b->line && a->column > b->column) ? a : b;
                        return spw_error_set(err, -EINVAL, "%s:%u:%u: config key '%s' is given twice", file,
                                             second->line, second->column, second->key);
                }
        return 0;
}

static const char *kv_get(const kv_list *l, const char *key) {
        for (size_t i = 0; i < l->n; i++)
                if (streq(l->items[i].key, key))
                        return l->items[i].value;
        return NULL;
}

/* "sqlite" -> plugin_dir/sqlite.so; CrowdSec's database.so -> our sqlite/mysql */
static char *resolve_plugin(const spw_config *c, const char *path, const kv_list *cfg) {
        char *r = NULL;
        const char *base = strrchr(path, '/');

        if (!strchr(path, '/')) {
                size_t l = strlen(path);
                bool has_so = l > 3 && streq(path + l - 3, ".so");
                if (asprintf(&r, "%s/%s%s", c->plugin_dir, path, has_so ? "" : ".so") < 0)
                        return NULL;
                return r;
        }
        if (path[0] == '/') {
                struct stat st;
                if (stat(path, &st) < 0 && base && streq(base + 1, "database.so")) {
                        const char *type = kv_get(cfg, "type");
                        if (asprintf(&r, "%s/%s.so", c->plugin_dir, type && streq(type, "mysql") ? "mysql" : "sqlite") < 0)
                                return NULL;
                        return r;
                }
                return strdup(path);
        }
        return path_join(c->dir, path);
}

static void fingerprint(backend_config *b) {
        strbuf s = STRBUF_INIT;
        strbuf_printf(&s, "%s\n%s\n%u/%d/%lld/%lld/%lld/%u/%u/%lld/%lld/%d/%d/%d/%zu\n", b->name, b->path, b->q.size, (int) b->q.policy,
                      (long long) b->q.block_timeout, (long long) b->q.flush_interval, (long long) b->q.flush_delay,
                      b->q.flush_batch, b->q.max_retry,
                      (long long) b->q.retry_backoff, (long long) b->q.retry_backoff_max, b->debug,
                      (int) b->q.durability, (int) b->q.spool_sync, b->q.spool_max_size);
        for (size_t i = 0; i < b->n_config; i++)
                strbuf_printf(&s, "%s=%s\n", b->config[i].key, b->config[i].value);
        b->fingerprint = s.oom ? NULL : strbuf_steal(&s);
        strbuf_deinit(&s);
}

/* Plugin config keys that also set a queue setting (CrowdSec's notification
 * plugins batch with group_wait/group_threshold; the webhook declares the
 * retry keys too), unless the backend file sets the queue key itself. */
typedef struct queue_alias {
        const char *alias;       /* key in the config map */
        const char *queue_key;   /* top-level key that wins over it */
        size_t offset;           /* in queue_settings */
        bool duration;           /* else an unsigned integer in [min, max] */
        bool zero_is_unset;      /* a 0 duration keeps the default */
        unsigned min, max;
        const char *example;
} queue_alias;

static const queue_alias queue_aliases[] = {
        { "group_wait", "flush_interval", offsetof(queue_settings, flush_interval), true, true, 0, 0, "30s" },
        /* CrowdSec users set group_wait to collect alerts: an idle worker waits that long too */
        { "group_wait", "flush_delay", offsetof(queue_settings, flush_delay), true, true, 0, 0, "30s" },
        { "group_threshold", "flush_batch", offsetof(queue_settings, flush_batch), false, false, 1, 1000000, NULL },
        { "max_retry", "max_retry", offsetof(queue_settings, max_retry), false, false, 0, 1000, NULL },
        { "retry_backoff", "retry_backoff", offsetof(queue_settings, retry_backoff), true, false, 0, 0, "1s" },
};

static bool is_crowdsec_notification(const ynode *doc) {
        return ynode_get(doc, "type") && !ynode_get(doc, "path");
}

static int parse_backend_doc(spw_config *c, const char *file, const char *dir, const ynode *doc, unsigned doc_line,
                             spw_error *err) {
        backend_config b = { .q = c->q, .line = doc_line, .column = 1 };
        kv_list cfg = { 0 };
        const ynode *name = ynode_get(doc, "name");
        const ynode *path = NULL;
        bool notification = is_crowdsec_notification(doc);
        int r;

        if (name && name->type == YNODE_SCALAR && name->plain && *name->value && ynode_is_null(name)) {
                r = fail_at(err, file, name, "name: '%s' is YAML's null; quote it (name: \"%s\") or choose another name",
                            name->value, name->value);
                goto fail;
        }
        if (!name || ynode_is_null(name)) {
                r = fail_at(err, file, doc, "a backend needs a `name:` (used in profiles.yaml and logs)");
                goto fail;
        }
        if (name->type != YNODE_SCALAR || !str_is_identifier(name->value)) {
                r = fail_at(err, file, name, "name: expected letters, digits, '_', '-' or '.', got '%s'",
                            name->type == YNODE_SCALAR ? name->value : ynode_type_name(name->type));
                goto fail;
        }
        for (size_t i = 0; i < c->n_backends; i++)
                if (streq(c->backends[i].name, name->value)) {
                        r = fail_at(err, file, name, "a backend named '%s' is already defined in %s:%u: names must be unique",
                                    name->value, c->backends[i].file, c->backends[i].line);
                        goto fail;
                }

        if (notification) {
                /* CrowdSec v1 notification file: every key but name is plugin config. */
                const ynode *type = ynode_get(doc, "type");
                if (type->type != YNODE_SCALAR || !streq(type->value, "http")) {
                        r = fail_at(err, file, type, "type: only CrowdSec's 'http' notification plugin has a Spillway equivalent "
                                    "(the webhook backend), got '%s'", type->type == YNODE_SCALAR ? type->value : "?");
                        goto fail;
                }
                for (size_t i = 0; i < doc->n_pairs; i++) {
                        const ynode *k = doc->pairs[i].key, *v = doc->pairs[i].value;
                        if (streq(k->value, "name"))
                                continue;
                        if (v->type == YNODE_MAPPING)
                                r = flatten(&cfg, file, k->value, v, err);
                        else if (v->type == YNODE_SEQUENCE)
                                r = fail_at(err, file, v, "%s: expected a value or a mapping, got a list", k->value);
                        else
                                r = kv_list_add(&cfg, k->value, ynode_is_null(v) ? "" : v->value, k, v);
                        if (r < 0)
                                goto fail;
                }
                if (asprintf(&b.path, "%s/webhook.so", c->plugin_dir) < 0) {
                        r = -ENOMEM;
                        goto fail;
                }
        } else {
                const char *names[16];
                size_t n = 0;
                for (size_t i = 0; i < ELEMENTSOF(backend_base_keys); i++)
                        names[n++] = backend_base_keys[i];
                for (const key_spec *k = backend_queue_keys; k->name; k++)
                        names[n++] = k->name;

                for (size_t i = 0; i < doc->n_pairs; i++) {
                        const ynode *k = doc->pairs[i].key, *v = doc->pairs[i].value;
                        const key_spec *spec = NULL;

                        if (streq(k->value, "name"))
                                continue;
                        if (streq(k->value, "path")) {
                                r = expect_scalar(err, file, "path", v);
                                if (r < 0)
                                        goto fail;
                                if (!*v->value) {
                                        r = fail_at(err, file, v, "path: expected a plugin name (like sqlite) or a file path");
                                        goto fail;
                                }
                                path = v;
                                continue;
                        }
                        if (streq(k->value, "config")) {
                                if (ynode_is_null(v))
                                        continue;
                                if (v->type != YNODE_MAPPING) {
                                        r = fail_at(err, file, v, "config: expected a mapping of plugin settings, got %s",
                                                    ynode_type_name(v->type));
                                        goto fail;
                                }
                                r = flatten(&cfg, file, NULL, v, err);
                                if (r < 0)
                                        goto fail;
                                continue;
                        }
                        for (const key_spec *t = backend_queue_keys; t->name; t++)
                                if (streq(t->name, k->value))
                                        spec = t;
                        if (!spec) {
                                r = unknown_key(err, file, k, " in a backend file", names, n);
                                goto fail;
                        }
                        r = apply_value(&b, spec, file, dir, spec->name, v, err);
                        if (r < 0)
                                goto fail;
                }
                if (!path) {
                        r = fail_at(err, file, doc, "backend '%s' needs a `path:` (a plugin name like sqlite, or a .so path)",
                                    name->value);
                        goto fail;
                }
                b.path = resolve_plugin(c, path->value, &cfg);
                if (!b.path) {
                        r = -ENOMEM;
                        goto fail;
                }
        }

        r = kv_list_check_unique(&cfg, file, err);
        if (r < 0)
                goto fail;

        /* Aliases from the plugin's own keys (CrowdSec's group_wait/...) when
         * the backend file did not set the queue key itself. */
        for (size_t a = 0; a < ELEMENTSOF(queue_aliases); a++) {
                const queue_alias *al = &queue_aliases[a];
                const kv_pos *e = kv_list_find(&cfg, al->alias);
                bool top_level = false;
                for (size_t i = 0; !notification && i < doc->n_pairs; i++)
                        top_level |= streq(doc->pairs[i].key->value, al->queue_key);
                if (top_level || !e || !*e->value)
                        continue;
                if (al->duration) {
                        usec_t d;
                        if (parse_duration(e->value, &d) < 0 || d < 0) {
                                r = spw_error_set(err, -EINVAL, "%s:%u:%u: %s: expected a duration like %s (at most 2562047h), got '%s'",
                                                  file, e->vline, e->vcolumn, al->alias, al->example, e->value);
                                goto fail;
                        }
                        if (d > 0 || !al->zero_is_unset)
                                *(usec_t *) ((char *) &b.q + al->offset) = d;
                } else {
                        unsigned long long u;
                        if (str_to_u64(e->value, al->min, al->max, &u) < 0) {
                                r = spw_error_set(err, -EINVAL, "%s:%u:%u: %s: expected an integer from %u to %u, got '%s'",
                                                  file, e->vline, e->vcolumn, al->alias, al->min, al->max, e->value);
                                goto fail;
                        }
                        *(unsigned *) ((char *) &b.q + al->offset) = (unsigned) u;
                }
        }

        /* global defaults, where the backend did not set them */
        static const struct {
                const char *key;
                size_t offset;
        } defaults[] = {
                { "flush", offsetof(spw_config, defaults_flush) },
                { "max_records", offsetof(spw_config, defaults_max_records) },
                { "max_records_age", offsetof(spw_config, defaults_max_records_age) },
                { "debug", offsetof(spw_config, defaults_debug) },
        };
        for (size_t i = 0; i < ELEMENTSOF(defaults); i++) {
                const char *v = *(char **) ((char *) c + defaults[i].offset);
                if (v && !kv_list_find(&cfg, defaults[i].key)) {
                        r = kv_list_add(&cfg, defaults[i].key, v, NULL, NULL);
                        if (r < 0)
                                goto fail;
                }
        }
        {
                const char *dbg = kv_get(&cfg, "debug");
                bool on = false;
                b.debug = dbg && str_to_bool(dbg, &on) == 0 && on;
                const char *lvl = kv_get(&cfg, "log_level");
                if (lvl && (streq(lvl, "debug") || streq(lvl, "trace")))
                        b.debug = true;
        }

        /* ${VAR} / ${CREDENTIAL:name} */
        for (size_t i = 0; i < cfg.n; i++) {
                char *expanded;
                if (!strchr(cfg.items[i].value, '$'))
                        continue;
                r = str_expand_vars_full(cfg.items[i].value, c->credential_placeholders ? STR_EXPAND_CREDENTIAL_PLACEHOLDERS : 0,
                                         &c->unchecked_credentials, &expanded, err);
                if (r < 0) {
                        spw_error_prefix(err, "%s:%u:%u: config.%s", file, cfg.items[i].vline, cfg.items[i].vcolumn,
                                         cfg.items[i].key);
                        goto fail;
                }
                free(cfg.items[i].value);
                cfg.items[i].value = expanded;
        }

        qsort(cfg.items, cfg.n, sizeof *cfg.items, kv_cmp);
        b.config = calloc(cfg.n + 1, sizeof *b.config);
        b.key_line = calloc(cfg.n + 1, sizeof *b.key_line);
        b.key_column = calloc(cfg.n + 1, sizeof *b.key_column);
        b.name = strdup(name->value);
        b.file = strdup(file);
        if (!b.config || !b.key_line || !b.key_column || !b.name || !b.file) {
                r = -ENOMEM;
                goto fail;
        }
        for (size_t i = 0; i < cfg.n; i++) {
                b.config[i] = (spw_kv) { TAKE_PTR(cfg.items[i].key), TAKE_PTR(cfg.items[i].value) };
                b.key_line[i] = cfg.items[i].line;
                b.key_column[i] = cfg.items[i].column;
        }
        b.n_config = cfg.n;
        kv_list_deinit(&cfg);
        fingerprint(&b);
        if (!b.fingerprint) {
                r = -ENOMEM;
                goto fail;
        }

        backend_config *nb = realloc(c->backends, (c->n_backends + 1) * sizeof *nb);
        if (!nb) {
                r = -ENOMEM;
                goto fail;
        }
        c->backends = nb;
        c->backends[c->n_backends++] = b;
        return 0;
fail:
        kv_list_deinit(&cfg);
        backend_config_deinit(&b);
        return r;
}

static int parse_backend_docs(spw_config *c, const ydocs *d, spw_error *err) {
        _cleanup_free_ char *dir = NULL;
        const char *slash = strrchr(d->filename, '/');

        if (slash && !(dir = strndup(d->filename, (size_t) (slash - d->filename))))
                return -ENOMEM;
        for (size_t i = 0; i < d->n_docs; i++) {
                const ynode *doc = d->docs[i];
                int r;
                if (!doc || ynode_is_null(doc))
                        continue; /* an empty document (CrowdSec files end with a commented-out one) */
                if (doc->type != YNODE_MAPPING)
                        return fail_at(err, d->filename, doc, "a backend document must be a mapping (name, path, config), got %s",
                                       ynode_type_name(doc->type));
                r = parse_backend_doc(c, d->filename, dir, doc, d->doc_lines[i], err);
                if (r < 0)
                        return r;
        }
        return 0;
}

int config_parse_backend_buffer(spw_config *c, const char *filename, const char *buf, size_t len, spw_error *err) {
        _cleanup_(ydocs_freep) ydocs *d = NULL;
        int r = ydocs_parse(filename, buf, len, &d, err);
        if (r < 0)
                return r;
        return parse_backend_docs(c, d, err);
}

static int filter_yaml(const struct dirent *de) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.')
                return 0;
        return (l > 5 && streq(de->d_name + l - 5, ".yaml")) || (l > 4 && streq(de->d_name + l - 4, ".yml"));
}

static int load_backend_dir(spw_config *c, spw_error *err) {
        struct dirent **list = NULL;
        int n, r = 0;

        n = scandir(c->backend_dir, &list, filter_yaml, alphasort);
        if (n < 0) {
                r = negative_errno();
                return spw_error_set(err, r, "%s: cannot read the backend directory: %s (set backend_dir in %s)",
                                     c->backend_dir, strerror(-r), c->file);
        }
        for (int i = 0; i < n; i++) {
                _cleanup_free_ char *p = NULL;
                _cleanup_(ydocs_freep) ydocs *d = NULL;
                if (r >= 0) {
                        if (asprintf(&p, "%s/%s", c->backend_dir, list[i]->d_name) < 0)
                                r = -ENOMEM;
                        else {
                                r = ydocs_load_file(p, &d, err);
                                if (r >= 0)
                                        r = parse_backend_docs(c, d, err);
                        }
                }
                free(list[i]);
        }
        free(list);
        if (r < 0)
                return r;
        if (c->n_backends == 0)
                return spw_error_set(err, -ENOENT, "%s: no backend is configured (add a NAME.yaml file with name, path and config)",
                                     c->backend_dir);
        return 0;
}

int config_load(const char *path, const config_overrides *o, spw_config **ret, spw_error *err) {
        _cleanup_(config_freep) spw_config *c = config_new();
        _cleanup_(ydocs_freep) ydocs *d = NULL;
        const char *slash;
        int r;

        if (!c || !(c->file = strdup(path)))
                return -ENOMEM;
        c->credential_placeholders = o && o->credential_placeholders;
        slash = strrchr(path, '/');
        c->dir = slash ? strndup(path, (size_t) (slash - path)) : strdup(".");
        if (!c->dir)
                return -ENOMEM;

        r = ydocs_load_file(path, &d, err);
        if (r < 0)
                return r;
        r = parse_main_docs(c, d, err);
        if (r < 0)
                return r;

        /* fill the paths the file did not set */
        const char *env_state = getenv("STATE_DIRECTORY"), *env_run = getenv("RUNTIME_DIRECTORY");
        char *colon;
        if (!c->backend_dir && !(c->backend_dir = path_join(c->dir, "plugins/backend")))
                return -ENOMEM;
        if (!c->profiles && !(c->profiles = path_join(c->dir, "profiles.yaml")))
                return -ENOMEM;
        if (!c->plugin_dir && replace_str(&c->plugin_dir, SPW_PLUGINDIR) < 0)
                return -ENOMEM;
        if (!c->state_dir) {
                if (replace_str(&c->state_dir, env_state ? env_state : SPW_STATEDIR) < 0)
                        return -ENOMEM;
                if ((colon = strchr(c->state_dir, ':'))) /* several StateDirectory= entries */
                        *colon = 0;
        }
        if (o) {
                if ((o->state_dir && replace_str(&c->state_dir, o->state_dir) < 0) ||
                    (o->plugin_dir && replace_str(&c->plugin_dir, o->plugin_dir) < 0) ||
                    (o->backend_dir && replace_str(&c->backend_dir, o->backend_dir) < 0) ||
                    (o->profiles && replace_str(&c->profiles, o->profiles) < 0))
                        return -ENOMEM;
        }
        const char *rundir = o && o->runtime_dir ? o->runtime_dir : NULL;
        _cleanup_free_ char *envrun = NULL;
        if (!rundir && env_run) {
                envrun = strdup(env_run);
                if (!envrun)
                        return -ENOMEM;
                if ((colon = strchr(envrun, ':')))
                        *colon = 0;
                rundir = envrun;
        }
        if (o && o->runtime_dir) {
                /* the command line wins over the file */
                free(c->ingest_socket);
                free(c->admin_socket);
                c->ingest_socket = c->admin_socket = NULL;
        }
        if (!c->ingest_socket && asprintf(&c->ingest_socket, "%s/ingest.sock", rundir ? rundir : SPW_RUNDIR) < 0)
                return -ENOMEM;
        if (!c->admin_socket && asprintf(&c->admin_socket, "%s/admin.sock", rundir ? rundir : SPW_RUNDIR) < 0)
                return -ENOMEM;

        r = load_backend_dir(c, err);
        if (r < 0)
                return r;
        if (c->http.crowdsec_decisions && !streq(c->http.crowdsec_decisions, "apply") && !streq(c->http.crowdsec_decisions, "ignore"))
                return spw_error_set(err, -EINVAL, "%s: sockets.crowdsec_decisions: expected \"apply\" or \"ignore\", not '%s'", c->file,
                                     c->http.crowdsec_decisions);
        if (c->http.token && strchr(c->http.token, '$')) {
                /* ${CREDENTIAL:name} (LoadCredential=), as in backend files */
                char *expanded;
                r = str_expand_vars_full(c->http.token, c->credential_placeholders ? STR_EXPAND_CREDENTIAL_PLACEHOLDERS : 0,
                                         &c->unchecked_credentials, &expanded, err);
                if (r < 0) {
                        spw_error_prefix(err, "%s: sockets.http_token", c->file);
                        return r;
                }
                free(c->http.token);
                c->http.token = expanded;
        }
        if (!c->http.tls_cert != !c->http.tls_key)
                return spw_error_set(err, -EINVAL, "%s: sockets.http_tls_cert and http_tls_key: give both or neither", c->file);
        if (c->ban_backend && !config_find_backend(c, c->ban_backend))
                return spw_error_set(err, -EINVAL, "%s: ban_backend: no backend is named '%s'", c->file, c->ban_backend);
        *ret = TAKE_PTR(c);
        return 0;
}

int config_never_ban(const spw_config *c, const char *text) {
        ip_range t;
        if (!text || ip_parse_cidr(text, false, &t) < 0)
                return -1;
        for (size_t i = 0; i < c->n_never_ban; i++) {
                const ip_range *nb = &c->never_ban_ranges[i];
                if (ip_range_contains(nb, &t) || ip_range_contains(&t, nb))
                        return (int) i;
        }
        return -1;
}

const backend_config *config_find_backend(const spw_config *c, const char *name) {
        for (size_t i = 0; i < c->n_backends; i++)
                if (streq(c->backends[i].name, name))
                        return &c->backends[i];
        return NULL;
}

/* ------------------------------------------------------------ plugin keys */

static bool is_global_default(const char *key) {
        return streq(key, "flush") || streq(key, "max_records") || streq(key, "max_records_age") || streq(key, "debug");
}

/* The plugin's key that config key `key` belongs to (a MAP key's "name.sub"
 * belongs to "name"), or NULL. */
static const spw_config_key *find_plugin_key(const spw_config_key *keys, const char *key) {
        if (!keys)
                return NULL;
        for (const spw_config_key *t = keys; t->name; t++) {
                size_t l = strlen(t->name);
                if (streq(t->name, key) ||
                    (t->type == SPW_CONFIG_MAP && strncmp(key, t->name, l) == 0 && key[l] == '.' && key[l + 1]))
                        return t;
        }
        return NULL;
}

static bool is_secret_key(const char *key);

bool config_key_is_secret(const spw_plugin *p, const char *key) {
        const spw_config_key *k = p ? find_plugin_key(p->ops.config_keys, key) : NULL;
        if (k)
                return k->flags & SPW_CONFIG_SECRET;
        /* a plugin that declares no keys: guess from the name */
        return is_secret_key(key);
}

static int check_type(const backend_config *b, size_t i, int type, const char *choices, bool secret, spw_error *err) {
        const char *v = b->config[i].value;
        unsigned long long u;
        usec_t d;
        bool flag;

        switch (type) {
        case SPW_CONFIG_BOOL:
                if (str_to_bool(v, &flag) < 0)
                        goto bad;
                return 0;
        case SPW_CONFIG_INT:
                if (str_to_u64(v, 0, ULLONG_MAX, &u) < 0)
                        goto bad;
                return 0;
        case SPW_CONFIG_DURATION:
                if (parse_duration(v, &d) < 0 || d < 0)
                        goto bad;
                return 0;
        case SPW_CONFIG_ENUM:
                if (choices) {
                        size_t l = strlen(v);
                        for (const char *p = choices; *p;) {
                                const char *bar = strchr(p, '|');
                                size_t n = bar ? (size_t) (bar - p) : strlen(p);
                                if (n == l && strncmp(p, v, n) == 0)
                                        return 0;
                                p += n + (bar ? 1 : 0);
                        }
                        goto bad;
                }
                return 0;
        default:
                return 0;
        }
bad:;
        static const char *const expected[] = {
                [SPW_CONFIG_STRING] = "a string", [SPW_CONFIG_BOOL] = "true or false",
                [SPW_CONFIG_INT] = "a non-negative integer", [SPW_CONFIG_DURATION] = "a duration like 500ms, 30s, 4h (at most 2562047h)",
                [SPW_CONFIG_ENUM] = "one of", [SPW_CONFIG_MAP] = "a mapping",
        };
        return spw_error_set(err, -EINVAL, secret ? "%s:%u:%u: backend '%s': config.%s: expected %s%s%s, got %s" :
                             "%s:%u:%u: backend '%s': config.%s: expected %s%s%s, got '%s'", b->file,
                             b->key_line[i] ? b->key_line[i] : b->line, b->key_line[i] ? b->key_column[i] : 1, b->name,
                             b->config[i].key, expected[type], type == SPW_CONFIG_ENUM ? " " : "",
                             type == SPW_CONFIG_ENUM ? choices : "", secret ? "(secret)" : v);
}

int config_validate_backend(const backend_config *b, const spw_plugin *p, spw_error *err) {
        const spw_config_key *keys = p->ops.config_keys;

        for (size_t i = 0; i < b->n_config; i++) {
                const char *key = b->config[i].key;
                const spw_config_key *k = NULL;
                int r;

                if (is_global_default(key)) {
                        r = check_type(b, i, streq(key, "max_records") ? SPW_CONFIG_INT
                                                : streq(key, "max_records_age") ? SPW_CONFIG_DURATION : SPW_CONFIG_BOOL,
                                       NULL, false, err);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (!keys)
                        continue;
                k = find_plugin_key(keys, key);
                if (!k) {
                        const char *names[128];
                        size_t n = 0;
                        strbuf list = STRBUF_INIT;
                        for (const spw_config_key *t = keys; t->name && n < ELEMENTSOF(names); t++) {
                                names[n++] = t->name;
                                strbuf_printf(&list, "%s%s", n > 1 ? ", " : "", t->name);
                        }
                        const char *close = str_closest(key, names, n);
                        if (close)
                                r = spw_error_set(err, -EINVAL, "%s:%u:%u: backend '%s' (plugin %s): unknown config key '%s'; did you mean '%s'?",
                                                  b->file, b->key_line[i], b->key_column[i], b->name, p->ops.name, key, close);
                        else
                                r = spw_error_set(err, -EINVAL, "%s:%u:%u: backend '%s' (plugin %s): unknown config key '%s' (accepted: %s)",
                                                  b->file, b->key_line[i], b->key_column[i], b->name, p->ops.name, key,
                                                  list.data ? list.data : "");
                        strbuf_deinit(&list);
                        return r;
                }
                if (k->type == SPW_CONFIG_MAP && streq(key, k->name))
                        return spw_error_set(err, -EINVAL, "%s:%u:%u: backend '%s': config.%s: expected a mapping (KEY: value lines)",
                                             b->file, b->key_line[i], b->key_column[i], b->name, key);
                r = check_type(b, i, k->type, k->choices, k->flags & SPW_CONFIG_SECRET, err);
                if (r < 0)
                        return r;
        }
        /* required keys: given explicitly (a MAP key by at least one entry) */
        for (const spw_config_key *k = keys; k && k->name; k++) {
                bool found = false;
                if (!(k->flags & SPW_CONFIG_REQUIRED))
                        continue;
                for (size_t i = 0; i < b->n_config && !found; i++)
                        found = find_plugin_key(k, b->config[i].key) == k && (k->type != SPW_CONFIG_MAP || !streq(b->config[i].key, k->name));
                if (!found)
                        return spw_error_set(err, -EINVAL,
                                             "%s:%u:%u: backend '%s' (plugin %s): config.%s is required (%s); "
                                             "add it under `config:`; the backend is not started",
                                             b->file, b->line, b->column, b->name, p->ops.name, k->name,
                                             strna(k->description));
        }
        return 0;
}

static bool is_secret_key(const char *key) {
        static const char *const words[] = { "pass", "token", "secret", "key", "authorization", "auth", "cookie" };
        for (size_t i = 0; i < ELEMENTSOF(words); i++)
                if (strcasestr(key, words[i]))
                        return true;
        return false;
}

char *backend_config_describe(const backend_config *b, const spw_plugin *p) {
        strbuf s = STRBUF_INIT;
        strbuf_puts(&s, "map[");
        for (size_t i = 0; i < b->n_config; i++)
                strbuf_printf(&s, "%s%s:%s", i ? " " : "", b->config[i].key,
                              config_key_is_secret(p, b->config[i].key) && *b->config[i].value ? "(secret)" : b->config[i].value);
        strbuf_puts(&s, "]");
        if (s.oom) {
                strbuf_deinit(&s);
                return NULL;
        }
        return strbuf_steal(&s);
}
