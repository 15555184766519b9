/* SPDX-License-Identifier: MIT */
/*
 * The mysql backend: the ban database of the sqlite backend, on a
 * MySQL/MariaDB server that many hosts share, so that a ban one host makes
 * is in every host's ban list. Stores each routed signal, its event
 * sequence and its ban applications in CrowdSec v0.3's tables (schema.c),
 * answers "which bans are active at T", deletes bans on request, expires
 * and garbage-collects them in the background.
 *
 * This file is the MySQL driver of the ban-database core
 * (plugins/common/spwp-bandb.c), which holds the batch, insert, read_at,
 * delete and timer logic shared with the sqlite backend. Here: the config
 * keys of a server, the connection and its loss, the schema check, and the
 * driver's operations (statement and parameter maps, binding, MySQL's
 * error codes, the host list, the lease).
 *
 * One instance owns one connection and is only ever called from its own
 * worker thread (the ABI's rule), so there is no locking here. libmariadb
 * initialises itself once per process (pthread_once) and needs nothing per
 * thread.
 *
 * MySQL specifics:
 *   - The batch opens with START TRANSACTION. After a failed statement we
 *     ask the server (one "DO 0" and its status flags) whether the
 *     transaction is still open: InnoDB rolls the whole transaction back on
 *     a deadlock, a lost connection loses it.
 *   - On MariaDB 10.5+ (multi_row, the default) a batch's rows are kept as
 *     SQL text and written at flush in a handful of multi-row statements
 *     (see "multi-row batches" below); a value the server would refuse is
 *     refused at insert. Otherwise, and for signals without a spillway id
 *     and new manual bans, four prepared statements per signal.
 *   - Undoing a failed row-by-row insert is three DELETEs by signal id (a
 *     SAVEPOINT per insert costs two more round trips per signal).
 *   - One active ban per target, through the (ip_text, deleted_at) index
 *     pinned with FORCE INDEX. Two hosts banning the same target at the
 *     same instant may both leave an active ban; ReadAT still shows one row
 *     per target (and counts both).
 *   - A lost connection (server restarted, failover, network) is noticed by
 *     the failing call, which reports a transient failure; the next call
 *     reconnects (session settings, schema check, statements prepared
 *     again). The client library never reconnects by itself: it would lose
 *     the batch and the prepared statements silently.
 *   - db_host is a list in preference order: a (re)connection takes the
 *     first host that works, a host after the first is left for a
 *     preferred one every failback_interval (after a flush, or from a
 *     timer when idle; never with a batch open);
 *     each switch is a journal entry. A batch lost with its host is
 *     inserted again on the next (the core's batch_lost).
 *   - A flush writes a token row in the batch; a COMMIT that lost its
 *     connection is followed by a look for the token on the host we fail
 *     over to: a committed batch is not inserted twice.
 *   - Background work (expiry, GC) is done by the holder of a lease row
 *     (spillway_lease), taken and renewed on a connection of its own in
 *     autocommit; GET_LOCK is not used (per node on Galera). Every
 *     statement is still correct if run twice. The probe for expired bans
 *     is a consistent read that takes no lock, so it runs inside the batch
 *     too.
 *   - Server errors are logged where they happen (rate-limited per code and
 *     kind) and kept in the status per kind: the core's retries no longer
 *     hide them.
 *   - Time is stored as UTC DATETIME(6), bound as MYSQL_TIME.
 *   - The password is passed to the client library and never logged.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <spillway/backend.h>

#include "schema.h"
#include "spwp-bandb.h"
#include "spwp-config.h"
#include "utf8.h"

/* libmariadb's process-wide state (mysql_library_init) is released when the
 * plugin is unloaded: the daemon unloads plugins only after every worker has
 * ended, and without this LeakSanitizer reports it at every stop. */
static bool library_used;

__attribute__((destructor)) static void mydb_library_fini(void) {
        if (__atomic_load_n(&library_used, __ATOMIC_ACQUIRE))
                mysql_library_end();
}

#ifndef MYDB_PLUGIN_VERSION
#define MYDB_PLUGIN_VERSION "unknown"
#endif

#define USEC_PER_SEC  INT64_C(1000000)
#define CHUNK_ROWS    SPWP_BANDB_CHUNK_ROWS

/* Creating or upgrading the schema: how long a statement may take (copying
 * CrowdSec's tables) and how many passes lose a race to other hosts (each
 * after a random pause of up to 50 ms times the pass) before giving up. */
#define MIGRATE_TIMEOUT_SEC 3600
#define MIGRATE_ATTEMPTS    30

/* varchar(255) holds 255 characters; mediumtext 16 MiB. */
#define VARCHAR_CHARS 255

/* ------------------------------------------------------------ read_at */

typedef struct text_col {
        char buf[MYDB_VARCHAR_BYTES + 1];
        unsigned long len;
} text_col;

/* The result buffers of one ReadAT row, by column. */
typedef struct read_buf {
        text_col text[_MYDB_CHANGE_MAX];
        int64_t ints[_MYDB_CHANGE_MAX];
        my_bool null[_MYDB_CHANGE_MAX];
        MYSQL_TIME until, at;
        MYSQL_BIND res[_MYDB_CHANGE_MAX];
} read_buf;

/* ReadAT's columns are the core's, in its order. */
#define SAME(a, b) ((int) (a) == (int) (b))
_Static_assert(SAME(MYDB_ROW_SOURCE, SPWP_BANDB_ROW_SOURCE) && SAME(MYDB_ROW_IPTEXT, SPWP_BANDB_ROW_IPTEXT) &&
               SAME(MYDB_ROW_REASON, SPWP_BANDB_ROW_REASON) && SAME(MYDB_ROW_BANCOUNT, SPWP_BANDB_ROW_BANCOUNT) &&
               SAME(MYDB_ROW_ACTION, SPWP_BANDB_ROW_ACTION) && SAME(MYDB_ROW_CN, SPWP_BANDB_ROW_CN) &&
               SAME(MYDB_ROW_AS, SPWP_BANDB_ROW_AS) && SAME(MYDB_ROW_AS_NUMBER, SPWP_BANDB_ROW_AS_NUMBER) &&
               SAME(MYDB_ROW_EVENTS_COUNT, SPWP_BANDB_ROW_EVENTS_COUNT) && SAME(MYDB_ROW_UNTIL, SPWP_BANDB_ROW_UNTIL),
               "ReadAT's columns in the core's order");
/* The INSERTs take created_at and updated_at (both now), then the core's
 * values in order (mydb_q below). */
_Static_assert(SAME(_MYDB_SIG_MAX, _SPWP_BANDB_SIG_MAX + 1) && SAME(_MYDB_EVENT_MAX, _SPWP_BANDB_EVENT_MAX + 1) &&
               SAME(_MYDB_BAN_MAX, _SPWP_BANDB_BAN_MAX + 1),
               "the INSERTs' parameters are the core's and updated_at");
#undef SAME

static void read_buf_bind(read_buf *rb) {
        for (int col = 0; col < _MYDB_CHANGE_MAX; col++) {
                MYSQL_BIND *p = &rb->res[col];

                p->is_null = &rb->null[col];
                switch (col) {
                case MYDB_ROW_BANCOUNT:
                case MYDB_ROW_AS_NUMBER:
                case MYDB_ROW_EVENTS_COUNT:
                case MYDB_ROW_SEQ:
                case MYDB_ROW_KIND:
                        p->buffer_type = MYSQL_TYPE_LONGLONG;
                        p->buffer = &rb->ints[col];
                        break;
                case MYDB_ROW_UNTIL:
                case MYDB_ROW_AT:
                        p->buffer_type = MYSQL_TYPE_DATETIME;
                        p->buffer = col == MYDB_ROW_AT ? &rb->at : &rb->until;
                        break;
                default:
                        p->buffer_type = MYSQL_TYPE_STRING;
                        p->buffer = rb->text[col].buf;
                        p->buffer_length = sizeof rb->text[col].buf - 1;
                        p->length = &rb->text[col].len;
                        break;
                }
        }
}

/* What the backend was doing when a server error came: `status` keeps the
 * last error of each kind (last_error_KIND), so a flush failure does not
 * hide the insert or connection error behind it. */
typedef enum mydb_phase {
        PHASE_BACKGROUND,       /* the timers: expiry, GC */
        PHASE_CONNECT,
        PHASE_INSERT,
        PHASE_FLUSH,
        PHASE_READ,
        PHASE_ADMIN,            /* delete_target, delete_all */
        _PHASE_MAX,
} mydb_phase;

static const char *const phase_name[_PHASE_MAX] = {
        [PHASE_BACKGROUND] = "background", [PHASE_CONNECT] = "connect", [PHASE_INSERT] = "insert",
        [PHASE_FLUSH] = "flush",           [PHASE_READ] = "read",       [PHASE_ADMIN] = "admin",
};

/* Server errors are logged once per code and kind per ERROR_LOG_EVERY;
 * the repeats meanwhile are counted and shown with the next line. */
#define ERROR_LOG_EVERY (10 * USEC_PER_SEC)
#define ERROR_LOG_SLOTS 8

typedef struct error_slot {
        unsigned code;
        mydb_phase phase;
        spw_usec_t logged_at;   /* CLOCK_MONOTONIC */
        uint64_t suppressed;
} error_slot;

/* ------------------------------------------------------------ multi-row batches */

/*
 * On MariaDB 10.5 and later (INSERT ... RETURNING), the open batch's
 * signals are kept here, as SQL text, and written at send() (before the
 * commit, a read, a delete, a timer or a row-by-row insert) by a fixed
 * handful of statements whatever their number:
 *
 *   1. INSERT IGNORE INTO signal_occurences VALUES (...),(...) RETURNING
 *      id, spillway_signal_id: a signal whose (spillway_signal_id,
 *      spillway_origin) is stored already is skipped and not returned (a
 *      redelivery); the row ids come back by that unique key, never from
 *      LAST_INSERT_ID() (Galera's auto_increment_increment and
 *      innodb_autoinc_lock_mode 2 give no consecutive ids);
 *   2. in one multi-statement round trip: the events and the bans of the
 *      signals stored (multi-row, their signal ids patched into the text),
 *      the change log's ADDs (INSERT ... SELECT by those signal ids), and
 *      the soft-delete of every target's older active bans as one UPDATE
 *      over a ranking (ROW_NUMBER() per ip_text, in MYDB_SQL_SUPERSEDE's
 *      order: a running manual ban, then the one that ends last, the
 *      newest on a tie; all ranks above 1 go).
 *
 * Every statement stays under the server's max_allowed_packet (read at
 * connect): a longer list is cut into several statements. The buffer holds
 * what the daemon inserts between two flushes (flush_batch signals) and is
 * sent early above MR_MAX_BYTES. Values are checked as they are buffered
 * (valid UTF-8, text lengths, finite numbers): what the server would refuse
 * is refused at insert(), for that signal only; varchar(255) values are
 * cut at 255 characters as the row-by-row path cuts them.
 */

#define MR_ID_WIDTH   20                 /* a row id patched into the text: "%20" PRIu64 */
#define MR_MAX_BYTES  (UINT64_C(32) << 20) /* sent early above this */
#define MR_STMT_MAX   (UINT64_C(8) << 20)

typedef struct mr_text {
        char *s;
        size_t len, size;
} mr_text;

typedef struct mr_sig {
        int64_t key;                    /* spillway_signal_id */
        uint64_t row_id;                /* 0: not stored (a duplicate) */
        size_t off, len;                /* its tuple in sigs */
} mr_sig;

typedef struct mr_row {
        size_t sig;                     /* index in sig[] */
        size_t off, len, id_at;         /* its tuple in evs or bans; the id's place */
        size_t t_off, t_len;            /* bans: the quoted ip_text in targets */
} mr_row;

typedef struct mr_buf {
        mr_text sigs, evs, bans, targets;
        mr_sig *sig;
        mr_row *ev, *ban;
        size_t n_sig, n_ev, n_ban, cap_sig, cap_ev, cap_ban;
        /* the signal being buffered: where to cut back to (buf_cancel) */
        size_t mark_sigs, mark_evs, mark_bans, mark_targets, mark_n_ev, mark_n_ban;
        struct mr_key {
                int64_t key;
                size_t i;
        } *order;                       /* sig[] indexes sorted by key (send) */
        mr_text stmt;                   /* the statement being built */
        mr_text list;                   /* a list of targets (the soft-delete) */
} mr_buf;

typedef struct mr_key mr_key;

/* One entry of db_host: a TCP host (and port), or a unix socket. */
typedef struct mydb_host {
        char *name;                     /* host name or address; NULL: the unix socket */
        char *socket;                   /* its path (name NULL) */
        unsigned port;
        char label[300];                /* as the operator wrote it, for the journal */
        char where[600];                /* mysql://user@host:port/db, for messages */
} mydb_host;

typedef struct mydb {
        spwp_bandb core;                /* first: the plugin's userdata */

        /* db_host, in preference order; cur is the one connected (or last tried) */
        mydb_host *hosts;
        size_t n_hosts, cur;
        bool ever_connected;
        spw_usec_t failback_interval, failback_at; /* CLOCK_MONOTONIC */
        uint64_t n_switches;

        /* the background-work lease, on a connection of its own (autocommit:
         * never inside a batch, whose commit it would make conflict) */
        MYSQL *lease_conn;
        size_t lease_host;
        char owner[200];
        char db_quoted[300];            /* `db_name`, for the lease connection's statements */
        spw_usec_t lease_ttl;
        bool lease_held;
        spw_usec_t lease_valid_until;   /* host clock: held for sure until then */
        spw_usec_t lease_checked_at;    /* host clock: the last try */
        spw_usec_t tokens_collected_at;
        spw_usec_t lease_flush_at;      /* CLOCK_MONOTONIC: the last try after a flush */
        uint64_t n_lease_takeovers;

        /* the batch token written with each flush's commit */
        uint8_t token[16];
        uint64_t token_seq;

        mydb_phase phase;
        bool connecting;                /* errors now are connection errors */
        error_slot errlog[ERROR_LOG_SLOTS];
        uint64_t n_server_errors[_PHASE_MAX];
        MYSQL *conn;
        MYSQL_STMT *st[_MYDB_SQL_MAX];
        bool broken;                    /* the connection must be opened again */

        /* configuration */
        char *db_host, *db_socket, *db_username, *db_password, *db_name, *tls_ca;
        unsigned db_port;
        bool tls;
        spw_usec_t connect_timeout, query_timeout, lock_wait_timeout;

        char where[600];                /* mysql://user@host:port/db, for messages */

        uint64_t n_reconnects;          /* for `spillwayctl status` */

        /* the last "now" bound */
        spw_usec_t now_t;
        MYSQL_TIME now_tm;

        read_buf rb;                    /* ReadAT's (or the changes walk's) row */
        int reading;                    /* MYDB_SQL_READ_AT, _READ_CHANGES or _READ_HISTORY */
        const char *reading_doing;      /* what that read is, for its errors */

        /* the GC's picks */
        uint64_t pick_ban[CHUNK_ROWS], pick_sig[CHUNK_ROWS];
        size_t n_picked;

        /* multi-row batches: the open batch's rows, not sent yet */
        bool multi_row;                 /* the multi_row key */
        bool multirow_server;           /* the server takes INSERT ... RETURNING (MariaDB 10.5+) */
        size_t stmt_limit;              /* the longest statement: under its max_allowed_packet */
        mr_buf mr;
        MYSQL_TIME gc_now;              /* the pick's now: its delete removes only bans that had ended */
} mydb;

static mydb *mydb_free(mydb *b);

static mydb *mydb_of(spwp_bandb *core) {
        return (mydb *) core;
}

/* ------------------------------------------------------------ config */

static const spw_config_key mydb_config_keys[] = {
        { "db_host", SPW_CONFIG_STRING, "localhost", NULL,
          "server host name or address, or a list of them in preference order (a YAML list or "
          "comma-separated; each may be host:port, [v6]:port, or /path/to/socket); localhost means the unix "
          "socket (db_socket), use 127.0.0.1 for TCP; when a host fails the backend moves to the next" },
        { "failback_interval", SPW_CONFIG_DURATION, "10s", NULL,
          "on a host other than the first of db_host: how often to try the preferred ones again" },
        { "lease_ttl", SPW_CONFIG_DURATION, "15s", NULL,
          "background work (expiry, garbage collection) is done by one host at a time, which holds a lease "
          "in the database; another host takes over at most this long after the holder stops" },
        { "db_port", SPW_CONFIG_INT, "3306", NULL, "server TCP port" },
        { "multi_row", SPW_CONFIG_BOOL, "true", NULL,
          "write a batch as a handful of multi-row statements at flush (MariaDB 10.5 or later; other servers "
          "always write row by row); false: four statements per signal, each at its insert" },
        { "db_socket", SPW_CONFIG_STRING, "/run/mysqld/mysqld.sock", NULL,
          "unix socket path, used when db_host is localhost" },
        { "db_username", SPW_CONFIG_STRING, "spillway", NULL, "user name" },
        { "db_password", SPW_CONFIG_STRING, NULL, NULL,
          "password; use ${CREDENTIAL:name} with LoadCredential= rather than writing it here; never logged",
          SPW_CONFIG_SECRET },
        { "db_name", SPW_CONFIG_STRING, "spillway", NULL,
          "database; it must exist, the tables are created on first use" },
        { "tls", SPW_CONFIG_BOOL, "false", NULL,
          "require TLS and verify the server's certificate and name (over TCP)" },
        { "tls_ca", SPW_CONFIG_STRING, NULL, NULL,
          "CA certificate file (PEM) the server's certificate is checked against; implies tls" },
        { "connect_timeout", SPW_CONFIG_DURATION, "5s", NULL, "how long to wait for the server when connecting" },
        { "query_timeout", SPW_CONFIG_DURATION, "30s", NULL,
          "how long to wait for the server's answer before the connection counts as lost; longer than lock_wait_timeout" },
        { "lock_wait_timeout", SPW_CONFIG_DURATION, "5s", NULL,
          "how long a statement waits for rows another host has locked (innodb_lock_wait_timeout, whole seconds)" },
        SPWP_BANDB_CONFIG_KEY_TYPE("mysql", "sqlite"),
        { "db_path", SPW_CONFIG_STRING, NULL, NULL,
          "CrowdSec's SQLite path, accepted so its database.yaml loads with type: mysql; ignored" },
        SPWP_BANDB_CONFIG_KEYS_GC,
        SPWP_BANDB_CONFIG_KEY_DEBUG,
        {}
};

/* A timeout for the client library: whole seconds, at least 1. */
static unsigned timeout_sec(spw_usec_t t) {
        spw_usec_t s = (t + USEC_PER_SEC - 1) / USEC_PER_SEC;
        return s < 1 ? 1 : s > 86400 ? 86400 : (unsigned) s;
}

static int set_string(char **field, const char *v) {
        if (*field)
                explicit_bzero(*field, strlen(*field)); /* it may be the password */
        free(*field);
        *field = strdup(v);
        return *field ? 0 : -ENOMEM;
}

static int mydb_config_key(spwp_bandb *core, const char *k, const char *v, const char **expected) {
        static const struct {
                const char *key;
                size_t offset;
                bool may_be_empty;
        } strings[] = {
                { "db_host", offsetof(mydb, db_host), false },
                { "db_socket", offsetof(mydb, db_socket), false },
                { "db_username", offsetof(mydb, db_username), false },
                { "db_password", offsetof(mydb, db_password), true },
                { "db_name", offsetof(mydb, db_name), false },
                { "tls_ca", offsetof(mydb, tls_ca), true },
        };
        mydb *b = mydb_of(core);

        for (size_t j = 0; j < sizeof strings / sizeof strings[0]; j++) {
                if (strcmp(k, strings[j].key) != 0)
                        continue;
                *expected = "a non-empty string";
                if (!*v && !strings[j].may_be_empty)
                        return -EINVAL;
                if (set_string((char **) ((char *) b + strings[j].offset), v) < 0) {
                        spwp_bandb_set_error(core, "out of memory");
                        return -ENOMEM;
                }
                return 1;
        }

        if (strcmp(k, "db_port") == 0) {
                uint64_t port;
                *expected = "a TCP port (1-65535)";
                if (spwp_parse_uint(v, 65535, &port) < 0 || port < 1)
                        return -EINVAL;
                b->db_port = (unsigned) port;
        } else if (strcmp(k, "multi_row") == 0) {
                *expected = "true or false";
                if (spwp_parse_bool(v, &b->multi_row) < 0)
                        return -EINVAL;
        } else if (strcmp(k, "tls") == 0) {
                *expected = "true or false";
                if (spwp_parse_bool(v, &b->tls) < 0)
                        return -EINVAL;
        } else if (strcmp(k, "db_path") == 0) {
                if (*v)
                        spwp_bandb_log(core, LOG_NOTICE,
                                       "config key db_path is CrowdSec's SQLite path; the mysql backend ignores it");
        } else if (strcmp(k, "failback_interval") == 0 || strcmp(k, "lease_ttl") == 0) {
                spw_usec_t t;
                *expected = "a duration like 10s or 1m, from 1s to 24h";
                if (spwp_parse_duration(v, &t) < 0 || t < USEC_PER_SEC || t > 86400 * USEC_PER_SEC)
                        return -EINVAL;
                *(k[0] == 'f' ? &b->failback_interval : &b->lease_ttl) = t;
        } else if (strcmp(k, "connect_timeout") == 0 || strcmp(k, "query_timeout") == 0 ||
                   strcmp(k, "lock_wait_timeout") == 0) {
                spw_usec_t t;
                *expected = "a duration like 5s or 1m, above 0 and at most 24h";
                if (spwp_parse_duration(v, &t) < 0 || t <= 0 || t > 86400 * USEC_PER_SEC)
                        return -EINVAL;
                *(k[0] == 'c' ? &b->connect_timeout : k[0] == 'q' ? &b->query_timeout : &b->lock_wait_timeout) = t;
        } else
                return 0;
        return 1;
}

static void hosts_free(mydb *b) {
        for (size_t i = 0; i < b->n_hosts; i++) {
                free(b->hosts[i].name);
                free(b->hosts[i].socket);
        }
        free(b->hosts);
        b->hosts = NULL;
        b->n_hosts = 0;
}

/* One entry of db_host (trimmed, not empty) into h. */
static int host_parse(mydb *b, const char *entry, mydb_host *h) {
        const char *colon = strrchr(entry, ':'), *port_s = NULL;
        size_t name_len = strlen(entry);
        uint64_t port = b->db_port;

        *h = (mydb_host) { .port = b->db_port };
        snprintf(h->label, sizeof h->label, "%s", entry);
        if (strcmp(entry, "localhost") == 0 || entry[0] == '/') {
                h->socket = strdup(entry[0] == '/' ? entry : b->db_socket);
                if (!h->socket)
                        return -ENOMEM;
                snprintf(h->where, sizeof h->where, "mysql://%s@localhost/%s (socket %s)", b->db_username,
                         b->db_name, h->socket);
                return 0;
        }
        if (entry[0] == '[') {
                const char *close = strchr(entry, ']');
                if (!close || close == entry + 1 || (close[1] && close[1] != ':'))
                        return -EINVAL;
                entry++;
                name_len = (size_t) (close - entry);
                port_s = close[1] == ':' ? close + 2 : NULL;
        } else if (colon && strchr(entry, ':') == colon) {
                /* exactly one colon: host:port (several: an IPv6 address alone) */
                name_len = (size_t) (colon - entry);
                port_s = colon + 1;
        }
        if (name_len == 0)
                return -EINVAL;
        if (port_s && (spwp_parse_uint(port_s, 65535, &port) < 0 || port < 1))
                return -EINVAL;
        h->port = (unsigned) port;
        h->name = strndup(entry, name_len);
        if (!h->name)
                return -ENOMEM;
        snprintf(h->where, sizeof h->where, "mysql://%s@%s%s%s:%u/%s", b->db_username, strchr(h->name, ':') ? "[" : "",
                 h->name, strchr(h->name, ':') ? "]" : "", h->port, b->db_name);
        return 0;
}

/* db_host: one host, or a comma-separated list (a YAML list arrives so). */
static int hosts_parse(mydb *b) {
        char *copy = strdup(b->db_host), *save = NULL;
        int r = 0;

        if (!copy) {
                spwp_bandb_set_error(&b->core, "out of memory");
                return -ENOMEM;
        }
        hosts_free(b);
        for (char *tok = strtok_r(copy, ",", &save); tok && r == 0; tok = strtok_r(NULL, ",", &save)) {
                char *end;
                mydb_host *n;

                while (*tok == ' ' || *tok == '\t')
                        tok++;
                end = tok + strlen(tok);
                while (end > tok && (end[-1] == ' ' || end[-1] == '\t'))
                        *--end = 0;
                if (!*tok)
                        continue;
                n = realloc(b->hosts, (b->n_hosts + 1) * sizeof *n);
                if (!n) {
                        r = -ENOMEM;
                        break;
                }
                b->hosts = n;
                r = host_parse(b, tok, &b->hosts[b->n_hosts]);
                if (r == 0)
                        b->n_hosts++;
                else if (r == -EINVAL)
                        r = spwp_bandb_config_error(&b->core, "db_host", tok,
                                                    "a host name or address, host:port, [IPv6]:port, localhost or "
                                                    "a socket path, in a list separated by commas");
        }
        free(copy);
        if (r == -ENOMEM)
                spwp_bandb_set_error(&b->core, "out of memory");
        if (r == 0 && b->n_hosts == 0)
                r = spwp_bandb_config_error(&b->core, "db_host", b->db_host, "at least one host");
        return r;
}

static int mydb_configure(mydb *b, const spw_kv *config, size_t n_config) {
        int r;

        r = spwp_bandb_configure(&b->core, config, n_config, mydb_config_key);
        if (r < 0)
                return r;
        r = hosts_parse(b);
        if (r < 0)
                return r;
        if (b->tls_ca && *b->tls_ca)
                b->tls = true;
        if (timeout_sec(b->query_timeout) <= timeout_sec(b->lock_wait_timeout)) {
                spwp_bandb_set_error(&b->core,
                                     "config key query_timeout: %u s must be longer than lock_wait_timeout (%u s), "
                                     "or a statement waiting for another host's lock would count as a lost "
                                     "connection; the backend is not started",
                                     timeout_sec(b->query_timeout), timeout_sec(b->lock_wait_timeout));
                return -EINVAL;
        }
        return 0;
}

/* ------------------------------------------------------------ errors */

/* The connection is gone (or unusable): reconnect before the next call. */
static bool code_connection(unsigned code) {
        switch (code) {
        case CR_CONNECTION_ERROR:
        case CR_CONN_HOST_ERROR:
        case CR_UNKNOWN_HOST:
        case CR_SERVER_GONE_ERROR:
        case CR_SERVER_LOST:
        case CR_COMMANDS_OUT_OF_SYNC:
        case CR_SERVER_LOST_EXTENDED:
        case CR_ERR_NET_READ:
        case CR_ERR_NET_WRITE:
        case CR_SSL_CONNECTION_ERROR:
        case ER_SERVER_SHUTDOWN:
        case ER_CONNECTION_KILLED:
        case ER_ABORTING_CONNECTION:
        case ER_NEW_ABORTING_CONNECTION:
        case ER_NET_READ_ERROR:
        case ER_NET_READ_INTERRUPTED:
        case ER_NET_ERROR_ON_WRITE:
        case ER_NET_WRITE_INTERRUPTED:
        case 4031: /* MySQL 8: disconnected by the server because of inactivity */
                return true;
        default:
                return false;
        }
}

/* Worth retrying: the same statement may work later. */
static bool code_transient(unsigned code) {
        if (code_connection(code))
                return true;
        switch (code) {
        case ER_LOCK_WAIT_TIMEOUT:
        case ER_LOCK_DEADLOCK:
        case ER_LOCK_TABLE_FULL:
        case ER_CON_COUNT_ERROR:
        case ER_TOO_MANY_USER_CONNECTIONS:
        case ER_QUERY_INTERRUPTED:
        case ER_STATEMENT_TIMEOUT:
        case ER_DISK_FULL:
        case ER_RECORD_FILE_FULL:
        case ER_OUT_OF_RESOURCES:
        case ER_OUTOFMEMORY:
        case ER_CANT_LOCK:
        case ER_ERROR_DURING_COMMIT:
        case ER_OPTION_PREVENTS_STATEMENT: /* --read-only: a replica, during a failover */
        case ER_READ_ONLY_MODE:
        case ER_UNKNOWN_COM_ERROR:        /* Galera: node not ready */
        case ER_LOCK_ABORTED:
        case CR_OUT_OF_MEMORY:
                return true;
        default:
                return false;
        }
}

static int code_errno(unsigned code) {
        switch (code) {
        case ER_LOCK_WAIT_TIMEOUT:
        case ER_LOCK_DEADLOCK:
        case ER_LOCK_TABLE_FULL:
        case ER_CANT_LOCK:
        case ER_LOCK_ABORTED:
                return -EBUSY;
        case ER_DISK_FULL:
        case ER_RECORD_FILE_FULL:
                return -ENOSPC;
        case ER_OUTOFMEMORY:
        case ER_OUT_OF_RESOURCES:
        case CR_OUT_OF_MEMORY:
                return -ENOMEM;
        case ER_ACCESS_DENIED_ERROR:
        case ER_DBACCESS_DENIED_ERROR:
        case ER_TABLEACCESS_DENIED_ERROR:
        case ER_COLUMNACCESS_DENIED_ERROR:
        case ER_SPECIFIC_ACCESS_DENIED_ERROR:
                return -EACCES;
        case ER_BAD_DB_ERROR:
                return -ENOENT;
        case ER_DATA_TOO_LONG:
        case ER_TRUNCATED_WRONG_VALUE:
        case ER_TRUNCATED_WRONG_VALUE_FOR_FIELD:
        case ER_BAD_NULL_ERROR:
        case ER_DUP_ENTRY:
        case ER_WARN_DATA_OUT_OF_RANGE:
        case ER_SIGNAL_EXCEPTION:
                return -EINVAL;
        case CR_CONNECTION_ERROR:
        case CR_CONN_HOST_ERROR:
                return -ECONNREFUSED;
        case CR_UNKNOWN_HOST:
                return -EHOSTUNREACH;
        case CR_SSL_CONNECTION_ERROR:
                return -EPROTO;
        default:
                return code_transient(code) ? -EAGAIN : -EPROTO;
        }
}

static spw_usec_t mono_now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (spw_usec_t) ts.tv_sec * USEC_PER_SEC + ts.tv_nsec / 1000;
}

/* Every server error, where it happens (the core may retry it and report
 * only "will retry" or "lost after an earlier error"): the status keeps it
 * as the last error of its kind, and the log shows it with the server's
 * code and message, once per code and kind every ERROR_LOG_EVERY. */
static void mydb_report(mydb *b) {
        const mydb_error *e = &b->core.e;
        mydb_phase ph = b->connecting ? PHASE_CONNECT : b->phase;
        spw_usec_t now = mono_now();
        error_slot *slot = NULL, *oldest = &b->errlog[0];
        char key[32], val[700], more[64] = "";

        b->n_server_errors[ph]++;
        snprintf(key, sizeof key, "last_error_%s", phase_name[ph]);
        snprintf(val, sizeof val, "%s (error %u) while %s", e->msg, e->code, e->doing ? e->doing : "?");
        spwp_bandb_status(&b->core, key, val);
        snprintf(key, sizeof key, "errors_%s", phase_name[ph]);
        spwp_bandb_status_u64(&b->core, key, b->n_server_errors[ph]);

        for (size_t i = 0; i < ERROR_LOG_SLOTS; i++) {
                if (b->errlog[i].logged_at != 0 && b->errlog[i].code == e->code && b->errlog[i].phase == ph) {
                        slot = &b->errlog[i];
                        break;
                }
                if (b->errlog[i].logged_at < oldest->logged_at)
                        oldest = &b->errlog[i];
        }
        if (slot && now - slot->logged_at < ERROR_LOG_EVERY) {
                slot->suppressed++;
                return;
        }
        if (!slot) {
                slot = oldest;
                *slot = (error_slot) { .code = e->code, .phase = ph };
        }
        if (slot->suppressed > 0)
                snprintf(more, sizeof more, " (and %" PRIu64 " more like it since the last report)", slot->suppressed);
        slot->logged_at = now;
        slot->suppressed = 0;
        spwp_bandb_log(&b->core, LOG_WARNING, "%s: server error during %s: %s (error %u) while %s%s; %s", b->where,
                       phase_name[ph], e->msg, e->code, e->doing ? e->doing : "?", more,
                       code_transient(e->code) ? "will retry" : "not retried");
}

/* Record a statement's or the connection's failure in b->core.e. Returns -1. */
static int mydb_fail_stmt(mydb *b, MYSQL_STMT *st, const char *doing) {
        mydb_error_from_stmt(&b->core.e, st, doing);
        mydb_report(b);
        if (code_connection(b->core.e.code))
                b->broken = true;
        return -1;
}

static int mydb_fail_conn(mydb *b, const char *doing) {
        mydb_error_from_conn(&b->core.e, b->conn, doing);
        mydb_report(b);
        if (code_connection(b->core.e.code))
                b->broken = true;
        return -1;
}

/* What to do about a failure to connect or to set up the connection. */
static const char *connect_advice(unsigned code) {
        switch (code) {
        case CR_CONNECTION_ERROR:
        case CR_CONN_HOST_ERROR:
        case CR_SERVER_LOST:
        case CR_SERVER_GONE_ERROR:
        case CR_SERVER_LOST_EXTENDED:
        case ER_SERVER_SHUTDOWN:
                return "the server is unreachable: check that it runs and that db_host and db_port (or "
                       "db_socket, for localhost) point at it, and that no firewall is in the way";
        case CR_UNKNOWN_HOST:
                return "the server's host name does not resolve: check db_host";
        case ER_ACCESS_DENIED_ERROR:
        case ER_ACCESS_DENIED_NO_PASSWORD_ERROR:
                return "check db_username and db_password, and that the user may connect from this host "
                       "(CREATE USER 'user'@'host' IDENTIFIED BY '...')";
        case ER_DBACCESS_DENIED_ERROR:
                return "grant the user the database: GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, "
                       "INDEX, DROP ON db.* TO 'user'@'host'; if the database does not exist, create it first "
                       "(the server tells a user without rights on it no more than this)";
        case ER_BAD_DB_ERROR:
                return "create the database (CREATE DATABASE name CHARACTER SET utf8mb4) and grant the user "
                       "access to it, or set db_name";
        case ER_TABLEACCESS_DENIED_ERROR:
        case ER_SPECIFIC_ACCESS_DENIED_ERROR:
                return "the user may not create or change the tables: GRANT SELECT, INSERT, UPDATE, DELETE, "
                       "CREATE, ALTER, INDEX, DROP ON db.* TO 'user'@'host'";
        case CR_SSL_CONNECTION_ERROR:
                return "TLS failed: check that the server has TLS enabled, that tls_ca is the CA that signed "
                       "its certificate, and that db_host is a name the certificate holds";
        case ER_CON_COUNT_ERROR:
        case ER_TOO_MANY_USER_CONNECTIONS:
                return "the server has no connection to spare: raise max_connections (or the user's "
                       "MAX_USER_CONNECTIONS) or close idle clients";
        case CR_SERVER_HANDSHAKE_ERR:
                return "the server and this client library do not agree on the protocol or the "
                       "authentication plugin";
        default:
                return "see the server's error log";
        }
}

static int connect_errno(unsigned code) {
        switch (code) {
        case ER_ACCESS_DENIED_ERROR:
        case ER_ACCESS_DENIED_NO_PASSWORD_ERROR:
        case ER_DBACCESS_DENIED_ERROR:
        case ER_TABLEACCESS_DENIED_ERROR:
        case ER_SPECIFIC_ACCESS_DENIED_ERROR:
                return -EACCES;
        case ER_BAD_DB_ERROR:
                return -ENOENT;
        case CR_SERVER_GONE_ERROR:
        case CR_SERVER_LOST:
        case CR_SERVER_LOST_EXTENDED:
        case ER_SERVER_SHUTDOWN:
                return -ECONNREFUSED;
        default:
                return code_errno(code);
        }
}

/* ------------------------------------------------------------ binding */

/* The byte length of s cut to at most `chars` UTF-8 characters. */
static unsigned long utf8_prefix(const char *s, size_t chars) {
        size_t i = 0, n = 0;

        for (; s[i]; i++) {
                if (((unsigned char) s[i] & 0xc0) != 0x80 && n++ == chars)
                        break;
        }
        return (unsigned long) i;
}

/* NULL strings bind as NULL; varchar(255) columns get at most 255
 * characters (strict mode would refuse the whole signal instead), text
 * columns (max_chars SIZE_MAX) all of it. */
static void p_chars(MYSQL_BIND *p, unsigned long *len, const char *s, size_t max_chars) {
        if (!s) {
                p->buffer_type = MYSQL_TYPE_NULL;
                return;
        }
        p->buffer_type = MYSQL_TYPE_STRING;
        p->buffer = (void *) s;
        *len = max_chars == SIZE_MAX ? (unsigned long) strlen(s) : utf8_prefix(s, max_chars);
        p->length = len;
}

static void p_str(MYSQL_BIND *p, unsigned long *len, const char *s) {
        p_chars(p, len, s, VARCHAR_CHARS);
}

static void p_text(MYSQL_BIND *p, unsigned long *len, const char *s) {
        p_chars(p, len, s, SIZE_MAX);
}

static void p_blob(MYSQL_BIND *p, unsigned long *len, const uint8_t *data, size_t n) {
        p->buffer_type = MYSQL_TYPE_BLOB;
        p->buffer = (void *) data;
        *len = (unsigned long) n;
        p->length = len;
}

/* 0 (unset) binds as NULL. */
static void p_time(MYSQL_BIND *p, MYSQL_TIME *tm, spw_usec_t t) {
        if (t == 0) {
                p->buffer_type = MYSQL_TYPE_NULL;
                return;
        }
        mydb_time_to_mysql(t, tm);
        p->buffer_type = MYSQL_TYPE_DATETIME;
        p->buffer = tm;
}

static void p_now(MYSQL_BIND *p, const MYSQL_TIME *now) {
        p->buffer_type = MYSQL_TYPE_DATETIME;
        p->buffer = (void *) now;
}

static void p_i64(MYSQL_BIND *p, const int64_t *v) {
        p->buffer_type = MYSQL_TYPE_LONGLONG;
        p->buffer = (void *) v;
}

static void p_u64(MYSQL_BIND *p, const uint64_t *v) {
        p->buffer_type = MYSQL_TYPE_LONGLONG;
        p->buffer = (void *) v;
        p->is_unsigned = 1;
}

static void p_double(MYSQL_BIND *p, const double *v) {
        p->buffer_type = MYSQL_TYPE_DOUBLE;
        p->buffer = (void *) v;
}

static void p_nonzero(MYSQL_BIND *p, const int64_t *v) {
        if (*v == 0)
                p->buffer_type = MYSQL_TYPE_NULL;
        else
                p_i64(p, v);
}

/* int columns: clamp instead of failing the signal in strict mode. */
static int64_t clamp_int32(int64_t v) {
        return v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : v;
}

/* Bind and execute a statement that returns no rows. */
static int mydb_run(mydb *b, int which, MYSQL_BIND *params, const char *doing) {
        MYSQL_STMT *st = b->st[which];

        if ((params && mysql_stmt_bind_param(st, params)) || mysql_stmt_execute(st))
                return mydb_fail_stmt(b, st, doing);
        return 0;
}

/* A query on the text protocol (transaction control). */
static int mydb_query(mydb *b, const char *sql, const char *doing) {
        if (mysql_real_query(b->conn, sql, (unsigned long) strlen(sql)) != 0)
                return mydb_fail_conn(b, doing);
        return 0;
}

/* ------------------------------------------------------------ connection */

static void mydb_disconnect(mydb *b) {
        mydb_finalize(b->st);
        if (b->conn)
                mysql_close(b->conn);
        b->conn = NULL;
        b->broken = false;
}

/* The UTC offset of the local zone, in seconds east: the zone CrowdSec
 * (go-sql-driver with loc=Local) wrote its DATETIMEs in. */
static long local_utc_offset(void) {
        time_t now = time(NULL);
        struct tm tm;

        return localtime_r(&now, &tm) ? tm.tm_gmtoff : 0;
}

/* Session settings that do not depend on the server's configuration. */
static int mydb_session(mydb *b, MYSQL *c) {
        char sql[512];

        snprintf(sql, sizeof sql,
                 "SET SESSION time_zone = '+00:00',"
                 " SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,"
                 "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION',"
                 " SESSION innodb_lock_wait_timeout = %u", timeout_sec(b->lock_wait_timeout));
        if (mysql_real_query(c, sql, (unsigned long) strlen(sql)) != 0)
                return mydb_error_from_conn(&b->core.e, c, "setting up the session");
        /* READ COMMITTED: no gap locks, so hosts inserting bans for different
         * targets never wait for each other. */
        if (mysql_query(c, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED") != 0)
                return mydb_error_from_conn(&b->core.e, c, "setting up the session");
        return 0;
}

/* Open a connection to host h with the configured options and set its
 * session up. Returns 0, or -1 with b->e set (and nothing left open). */
static int mydb_open(mydb *b, size_t h, unsigned read_timeout, bool with_db, MYSQL **ret) {
        const mydb_host *host = &b->hosts[h];
        unsigned ct = timeout_sec(b->connect_timeout), protocol = MYSQL_PROTOCOL_SOCKET;
        my_bool off = 0, on = 1;
        bool socket = !host->name;
        MYSQL *c = mysql_init(NULL);

        if (!c) {
                snprintf(b->core.e.msg, sizeof b->core.e.msg, "out of memory");
                b->core.e.doing = "connecting";
                b->core.e.code = CR_OUT_OF_MEMORY;
                return -1;
        }
        mysql_options(c, MYSQL_OPT_CONNECT_TIMEOUT, &ct);
        mysql_options(c, MYSQL_OPT_READ_TIMEOUT, &read_timeout);
        mysql_options(c, MYSQL_OPT_WRITE_TIMEOUT, &read_timeout);
        mysql_options(c, MYSQL_SET_CHARSET_NAME, "utf8mb4");
        mysql_options(c, MYSQL_OPT_RECONNECT, &off);
        mysql_options(c, MYSQL_OPT_LOCAL_INFILE, &(unsigned) { 0 });
        mysql_optionsv(c, MYSQL_OPT_CONNECT_ATTR_ADD, "program_name", "spillwayd");
        if (socket)
                mysql_options(c, MYSQL_OPT_PROTOCOL, &protocol);
        if (b->tls) {
                mysql_options(c, MYSQL_OPT_SSL_ENFORCE, &on);
                mysql_options(c, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &on);
                if (b->tls_ca && *b->tls_ca)
                        mysql_options(c, MYSQL_OPT_SSL_CA, b->tls_ca);
        }
        if (!mysql_real_connect(c, socket ? "localhost" : host->name, b->db_username, b->db_password,
                                with_db ? b->db_name : NULL,
                                socket ? 0 : host->port, socket ? host->socket : NULL, CLIENT_MULTI_STATEMENTS)) {
                mydb_error_from_conn(&b->core.e, c, "connecting");
                mysql_close(c);
                return -1;
        }
        if (mydb_session(b, c) < 0) {
                mysql_close(c);
                return -1;
        }
        *ret = c;
        return 0;
}

/* Bring the schema up to date over a connection of its own: copying a big
 * CrowdSec table may take longer than query_timeout allows a statement. */
static int mydb_upgrade(mydb *b, size_t h, int *from, bool *crowdsec) {
        MYSQL *c = NULL;
        int r;

        if (mydb_open(b, h, MIGRATE_TIMEOUT_SEC, true, &c) < 0)
                return -EIO;
        r = mydb_migrate(c, MIGRATE_ATTEMPTS, local_utc_offset(), from, crowdsec, &b->core.e);
        mysql_close(c);
        return r;
}

/* Connect to host h: open, set up the session, check (or migrate) the
 * schema, create the plugin's own tables if missing and prepare the
 * statements, into *conn and st. Returns 0, or a negative errno with b->e
 * set, the failure reported (mydb_report) and, at init, the backend's error
 * message; nothing is left open. */
static int mydb_try_host(mydb *b, size_t h, bool at_init, MYSQL **conn, MYSQL_STMT *st[static _MYDB_SQL_MAX]) {
        const char *where = b->hosts[h].where;
        bool crowdsec = false;
        int from = -1, failed = -1, r;

        *conn = NULL;
        memset(st, 0, _MYDB_SQL_MAX * sizeof st[0]);
        memset(&b->core.e, 0, sizeof b->core.e);
        if (mydb_open(b, h, timeout_sec(b->query_timeout), true, conn) < 0) {
                mydb_report(b);
                r = connect_errno(b->core.e.code);
                if (at_init && strcmp(b->core.e.doing, "connecting") == 0)
                        spwp_bandb_set_error(&b->core, "%s: cannot connect: %s (error %u): %s; the backend is not "
                                             "started",
                                             where, b->core.e.msg, b->core.e.code, connect_advice(b->core.e.code));
                else if (at_init)
                        spwp_bandb_set_error(&b->core, "%s: cannot set up the session: %s (error %u); the backend is "
                                             "not started", where, b->core.e.msg, b->core.e.code);
                return r;
        }

        /* the version is one cheap read; anything to do runs elsewhere */
        r = mydb_schema_version(*conn, &from, &b->core.e);
        if (r == 0 && from != MYDB_SCHEMA_VERSION)
                r = mydb_upgrade(b, h, &from, &crowdsec);
        if (r == 0 && mydb_aux_tables(*conn, &b->core.e) < 0)
                r = -EIO;
        if (r < 0) {
                mydb_report(b);
                if (at_init) {
                        if (r == -EPROTO)
                                spwp_bandb_set_error(&b->core, "%s: schema version %d is newer than this plugin's (%d): "
                                                     "the database was set up by a newer Spillway; upgrade the plugin "
                                                     "on this host or set db_name to another database; the backend is "
                                                     "not started", where, from, MYDB_SCHEMA_VERSION);
                        else if (r == -EBADMSG)
                                spwp_bandb_set_error(&b->core, "%s: cannot upgrade the schema from version %d: %s while "
                                                     "%s: the existing tables do not have CrowdSec v0.3's layout; "
                                                     "rename or drop them, or set db_name to another database; the "
                                                     "backend is not started", where, from, b->core.e.msg,
                                                     b->core.e.doing);
                        else
                                spwp_bandb_set_error(&b->core, "%s: cannot create or upgrade the schema: %s (error %u) "
                                                     "while %s: %s; the backend is not started", where,
                                                     b->core.e.msg, b->core.e.code, b->core.e.doing,
                                                     connect_advice(b->core.e.code));
                }
                if (r == -EIO)
                        r = code_errno(b->core.e.code);
                mysql_close(*conn);
                *conn = NULL;
                return r;
        }

        if (mydb_prepare(*conn, st, &failed, &b->core.e) < 0) {
                mydb_report(b);
                r = code_connection(b->core.e.code) ? -ECONNRESET : -EBADMSG;
                if (at_init)
                        spwp_bandb_set_error(&b->core, "%s: the tables do not have the layout this plugin needs "
                                             "(%s, in \"%.50s...\"); check the schema (README.md); the backend is "
                                             "not started", where, b->core.e.msg,
                                             failed >= 0 ? mydb_sql[failed] : "?");
                mydb_finalize(st);
                mysql_close(*conn);
                *conn = NULL;
                return r;
        }

        if (from == 0 && crowdsec)
                spwp_bandb_log(&b->core, LOG_INFO, "%s: upgraded CrowdSec v0.3's tables to schema version %d "
                               "(times converted from UTC%+ld s; CrowdSec's tables kept as *"
                               MYDB_CROWDSEC_SUFFIX ")",
                               where, MYDB_SCHEMA_VERSION, local_utc_offset());
        else if (from == 0)
                spwp_bandb_log(&b->core, LOG_INFO, "%s: created the ban database (schema version %d)", where,
                               MYDB_SCHEMA_VERSION);
        else if (from >= 0 && from < MYDB_SCHEMA_VERSION)
                spwp_bandb_log(&b->core, LOG_INFO, "%s: upgraded the ban database from schema version %d to %d",
                               where, from, MYDB_SCHEMA_VERSION);
        return 0;
}

/* Make host h's connection (from mydb_try_host) the backend's, with a
 * journal entry when it is another host than before. */
/* What the server takes: INSERT ... RETURNING (multi-row batches), and the
 * longest statement (max_allowed_packet, less room for the protocol). */
static void mydb_server_caps(mydb *b) {
        MYSQL_RES *res;
        MYSQL_ROW row;
        uint64_t packet = 0;

        b->multirow_server = mariadb_connection(b->conn) && mysql_get_server_version(b->conn) >= 100500;
        if (mysql_query(b->conn, "SELECT @@max_allowed_packet") == 0 && (res = mysql_store_result(b->conn))) {
                if ((row = mysql_fetch_row(res)) && row[0])
                        packet = strtoull(row[0], NULL, 10);
                mysql_free_result(res);
        }
        b->stmt_limit = packet >= 4 * 16384 ? (size_t) (packet - 16384) : packet >= 8192 ? (size_t) packet / 2 : 4096;
        if (b->stmt_limit > MR_STMT_MAX)
                b->stmt_limit = MR_STMT_MAX;
}

static void mydb_install(mydb *b, size_t h, MYSQL *conn, MYSQL_STMT *st[static _MYDB_SQL_MAX], const char *why) {
        size_t prev = b->cur;
        bool had = b->ever_connected;

        mydb_disconnect(b);
        b->conn = conn;
        memcpy(b->st, st, sizeof b->st);
        b->cur = h;
        b->ever_connected = true;
        snprintf(b->where, sizeof b->where, "%s", b->hosts[h].where);
        if (had && prev != h) {
                b->n_switches++;
                spwp_bandb_log(&b->core, h > prev ? LOG_WARNING : LOG_NOTICE,
                               "%s: switched from host %s (preference %zu of %zu) to host %s (preference %zu)%s%s",
                               b->where, b->hosts[prev].label, prev + 1, b->n_hosts, b->hosts[h].label, h + 1,
                               h < prev ? ": the preferred host is back" : ": ", h < prev ? "" : why);
        } else if (!had && h > 0)
                spwp_bandb_log(&b->core, LOG_WARNING, "%s: started on host %s (preference %zu of %zu): %s",
                               b->where, b->hosts[h].label, h + 1, b->n_hosts, why);
        spwp_bandb_status(&b->core, "server", b->where);
        spwp_bandb_status(&b->core, "host", b->hosts[h].label);
        spwp_bandb_status_u64(&b->core, "host_switches", b->n_switches);
        spwp_bandb_status(&b->core, "server_version", mysql_get_server_info(b->conn));
        spwp_bandb_status(&b->core, "connection", "up");
        mydb_server_caps(b);
        /* after a switch, try the preferred host again in failback_interval */
        b->failback_at = mono_now() + b->failback_interval;
}

/* Connect to the first host, in preference order, that works. Returns 0 or
 * the last host's negative errno with b->e set and, at init, the backend's
 * error message. */
static int mydb_connect(mydb *b, bool at_init) {
        MYSQL_STMT *st[_MYDB_SQL_MAX];
        char why[1200] = "";
        MYSQL *conn;
        int r = -ECONNREFUSED;

        mydb_disconnect(b);
        b->connecting = true;
        for (size_t h = 0; h < b->n_hosts; h++) {
                snprintf(b->where, sizeof b->where, "%s", b->hosts[h].where);
                r = mydb_try_host(b, h, at_init, &conn, st);
                if (r == 0) {
                        b->connecting = false;
                        mydb_install(b, h, conn, st, why);
                        return 0;
                }
                /* the database's contents are the same behind every host */
                if (r == -EPROTO || r == -EBADMSG)
                        break;
                if (!why[0])
                        snprintf(why, sizeof why, "host %s: %s (error %u) while %s", b->hosts[h].label,
                                 b->core.e.msg, b->core.e.code, b->core.e.doing);
        }
        b->connecting = false;
        return r;
}

/* Connected to a host after the first: every failback_interval, with no
 * batch open, try the preferred ones again and move back to the first that
 * works. A failure keeps the connection we have. */
static void mydb_failback(mydb *b) {
        MYSQL_STMT *st[_MYDB_SQL_MAX];
        MYSQL *conn;

        if (b->cur == 0 || !b->conn || b->broken || b->core.in_txn || mono_now() < b->failback_at)
                return;
        b->failback_at = mono_now() + b->failback_interval;
        b->connecting = true;
        for (size_t h = 0; h < b->cur; h++)
                if (mydb_try_host(b, h, false, &conn, st) == 0) {
                        b->connecting = false;
                        mydb_install(b, h, conn, st, "");
                        return;
                }
        b->connecting = false;
        snprintf(b->where, sizeof b->where, "%s", b->hosts[b->cur].where);
        memset(&b->core.e, 0, sizeof b->core.e);
}

/* A connection that works, opened again if it was lost. A batch that was
 * open on the lost connection is gone: the next flush says so. */
static int mydb_ensure(mydb *b) {
        int r;

        if (b->conn && !b->broken)
                return 0;
        if (b->core.in_txn) {
                b->core.batch_lost = b->core.batch_lost || b->core.dirty;
                b->core.in_txn = b->core.dirty = false;
        }
        r = mydb_connect(b, false);
        if (r < 0) {
                spwp_bandb_status(&b->core, "connection", "lost");
                return r;
        }
        b->n_reconnects++;
        spwp_bandb_log(&b->core, LOG_NOTICE, "%s: connected again (reconnection %" PRIu64 ")%s", b->where,
                       b->n_reconnects,
                       b->core.batch_lost ? "; the open batch was lost and will be inserted again" : "");
        spwp_bandb_status_u64(&b->core, "reconnects", b->n_reconnects);
        return 0;
}

/* After a failed statement inside the batch: is the transaction still open?
 * (InnoDB rolls it back whole on a deadlock; error packets carry no status
 * flags, so ask with a statement that does nothing.) */
/* ------------------------------------------------------------ the driver's operations */

/* The core's statements: which of ours, and for each ? the index of the
 * core's value bound to it (created_at and updated_at both take now). */
static const struct {
        int stmt;
        unsigned char n;
        unsigned char pos[_MYDB_SIG_MAX];
} mydb_q[_SPWP_BANDB_Q_MAX] = {
        [SPWP_BANDB_Q_INSERT_SIGNAL] = { MYDB_SQL_INSERT_SIGNAL, 22,
                                         { 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20 } },
        [SPWP_BANDB_Q_INSERT_EVENT] = { MYDB_SQL_INSERT_EVENT, 6, { 0, 0, 1, 2, 3, 4 } },
        [SPWP_BANDB_Q_INSERT_BAN] = { MYDB_SQL_INSERT_BAN, 17,
                                      { 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 } },
        [SPWP_BANDB_Q_SUPERSEDE] = { MYDB_SQL_SUPERSEDE, 7, { 0, 0, 1, 1, 2, 3, 0 } },
        [SPWP_BANDB_Q_UNDO_BANS] = { MYDB_SQL_UNDO_BANS, 1, { 0 } },
        [SPWP_BANDB_Q_UNDO_EVENTS] = { MYDB_SQL_UNDO_EVENTS, 1, { 0 } },
        [SPWP_BANDB_Q_UNDO_SIGNAL] = { MYDB_SQL_UNDO_SIGNAL, 1, { 0 } },
        [SPWP_BANDB_Q_DELETE_TARGET] = { MYDB_SQL_DELETE_TARGET, 3, { 0, 0, 1 } },
        [SPWP_BANDB_Q_DELETE_ALL] = { MYDB_SQL_DELETE_ALL, 2, { 0, 0 } },
        [SPWP_BANDB_Q_EXPIRE_PROBE] = { MYDB_SQL_EXPIRE_PROBE, 1, { 0 } },
        [SPWP_BANDB_Q_EXPIRE] = { MYDB_SQL_EXPIRE, 4, { 0, 0, 0, 1 } },
        [SPWP_BANDB_Q_GC_EDGE] = { MYDB_SQL_GC_COUNT_EDGE, 1, { 0 } },
        [SPWP_BANDB_Q_GC_SIG_BOUNDARY] = { MYDB_SQL_GC_SIG_BOUNDARY, 2, { 0, 1 } },
        [SPWP_BANDB_Q_GC_BACKLOG_AGE] = { MYDB_SQL_GC_BACKLOG_AGE, 0, { 0 } },
        [SPWP_BANDB_Q_GC_EXCESS_COUNT] = { MYDB_SQL_GC_EXCESS_COUNT, 3, { 0, 1, 2 } },
        [SPWP_BANDB_Q_GC_EXCESS_AGE] = { MYDB_SQL_GC_EXCESS_AGE, 4, { 0, 1, 0, 1 } },
        [SPWP_BANDB_Q_CHANGE_ADD] = { MYDB_SQL_CHANGE_ADD, 2, { 0, 1 } },
        [SPWP_BANDB_Q_CHANGE_DEL_TARGET] = { MYDB_SQL_CHANGE_DEL_TARGET, 2, { 0, 1 } },
        [SPWP_BANDB_Q_CHANGE_DEL_ALL] = { MYDB_SQL_CHANGE_DEL_ALL, 1, { 0 } },
        [SPWP_BANDB_Q_UNDO_CHANGES] = { MYDB_SQL_UNDO_CHANGES, 1, { 0 } },
        [SPWP_BANDB_Q_CHANGES_MIN] = { MYDB_SQL_CHANGES_MIN, 0, { 0 } },
        [SPWP_BANDB_Q_CHANGES_MAX] = { MYDB_SQL_CHANGES_MAX, 0, { 0 } },
        [SPWP_BANDB_Q_CHANGES_GC] = { MYDB_SQL_CHANGES_GC, 2, { 0, 1 } },
};

/* The bound parameters and the values they point at (alive until execute). */
typedef struct mydb_params {
        MYSQL_BIND p[_MYDB_SIG_MAX];
        unsigned long len[_MYDB_SIG_MAX];
        MYSQL_TIME tm[_MYDB_SIG_MAX];
        int64_t i[_MYDB_SIG_MAX];
        uint64_t u[_MYDB_SIG_MAX];
        double d[_MYDB_SIG_MAX];
} mydb_params;

static void mydb_bind_value(mydb *b, mydb_params *mp, size_t k, const spwp_bandb_value *v) {
        MYSQL_BIND *p = &mp->p[k];

        switch (v->kind) {
        case SPWP_BANDB_STR:
                p_str(p, &mp->len[k], v->s);
                break;
        case SPWP_BANDB_TEXT:
                p_text(p, &mp->len[k], v->s);
                break;
        case SPWP_BANDB_NOW:
                if (v->t != b->now_t || b->now_tm.year == 0) {
                        mydb_time_to_mysql(v->t, &b->now_tm);
                        b->now_t = v->t;
                }
                p_now(p, &b->now_tm);
                break;
        case SPWP_BANDB_TIME:
                p_time(p, &mp->tm[k], v->t);
                break;
        case SPWP_BANDB_INT:
                mp->i[k] = v->i;
                p_i64(p, &mp->i[k]);
                break;
        case SPWP_BANDB_INT32:
                mp->i[k] = clamp_int32(v->i);
                p_i64(p, &mp->i[k]);
                break;
        case SPWP_BANDB_NONZERO:
                mp->i[k] = v->i;
                p_nonzero(p, &mp->i[k]);
                break;
        case SPWP_BANDB_ID:
                mp->u[k] = v->u;
                p_u64(p, &mp->u[k]);
                break;
        case SPWP_BANDB_DOUBLE:
                mp->d[k] = v->d;
                p_double(p, &mp->d[k]);
                break;
        case SPWP_BANDB_ADDR:
                p_blob(p, &mp->len[k], v->a, 16);
                break;
        case SPWP_BANDB_NULL:
        default:
                p->buffer_type = MYSQL_TYPE_NULL;
                break;
        }
}

/* Map the core's values onto q's parameters. */
static MYSQL_BIND *mydb_params_of(mydb *b, mydb_params *mp, spwp_bandb_query q, const spwp_bandb_value *v, size_t n) {
        static const spwp_bandb_value null = { .kind = SPWP_BANDB_NULL };

        memset(mp->p, 0, mydb_q[q].n * sizeof mp->p[0]);
        for (size_t k = 0; k < mydb_q[q].n; k++)
                mydb_bind_value(b, mp, k, mydb_q[q].pos[k] < n ? &v[mydb_q[q].pos[k]] : &null);
        return mp->p;
}

static int op_run(spwp_bandb *core, spwp_bandb_query q, const spwp_bandb_value *v, size_t n, uint64_t *changed,
                  const char *doing) {
        mydb *b = mydb_of(core);
        mydb_params mp;

        if (mydb_run(b, mydb_q[q].stmt, mydb_params_of(b, &mp, q, v, n), doing) < 0)
                return -1;
        if (changed)
                *changed = mysql_stmt_affected_rows(b->st[mydb_q[q].stmt]);
        return 0;
}

static uint64_t op_last_id(spwp_bandb *core, spwp_bandb_query q) {
        return mysql_stmt_insert_id(mydb_of(core)->st[mydb_q[q].stmt]);
}

static int mydb_select_ids(mydb *b, int which, MYSQL_BIND *params, uint64_t *a, uint64_t *a2, size_t max,
                           size_t *n, const char *doing);

static int op_select_int(spwp_bandb *core, spwp_bandb_query q, const spwp_bandb_value *v, size_t n, int64_t *ret,
                         bool *found, const char *doing) {
        mydb *b = mydb_of(core);
        mydb_params mp;
        uint64_t u = 0;
        size_t rows = 0;

        if (mydb_select_ids(b, mydb_q[q].stmt, mydb_params_of(b, &mp, q, v, n), &u, NULL, 1, &rows, doing) < 0)
                return -1;
        *ret = (int64_t) u;
        *found = rows > 0;
        return 0;
}

static bool op_transient(unsigned code) {
        return code_transient(code);
}

static int op_to_errno(unsigned code) {
        return code_errno(code);
}

static int op_ensure(spwp_bandb *core) {
        return mydb_ensure(mydb_of(core));
}

static bool op_lost(spwp_bandb *core) {
        mydb *b = mydb_of(core);
        return !b->conn || b->broken;
}

static void mr_clear(mr_buf *m);

static int op_begin(spwp_bandb *core, const char *doing) {
        mr_clear(&mydb_of(core)->mr);
        return mydb_query(mydb_of(core), "START TRANSACTION", doing);
}

/* The batch token as SQL: X'...'. */
static void token_sql(const mydb *b, char out[static 40]) {
        static const char hex[] = "0123456789abcdef";
        char *o = out;

        *o++ = 'X';
        *o++ = '\'';
        for (size_t i = 0; i < sizeof b->token; i++) {
                *o++ = hex[b->token[i] >> 4];
                *o++ = hex[b->token[i] & 15];
        }
        *o++ = '\'';
        *o = 0;
}

/* After a connection lost during COMMIT: did the batch commit? Asked on
 * whichever host works now (on Galera, after waiting for the node to have
 * applied everything the cluster committed: wsrep_sync_wait). 1 yes, 0 no,
 * -1 cannot tell. */
static int token_committed(mydb *b) {
        char tok[40], sql[160];
        MYSQL_RES *res;
        int found;

        if (mydb_ensure(b) < 0)
                return -1;
        token_sql(b, tok);
        /* not Galera: unknown variable, ignored */
        (void) mysql_query(b->conn, "SET SESSION wsrep_sync_wait = 1");
        snprintf(sql, sizeof sql, "SELECT 1 FROM `" MYDB_BATCH_TABLE "` WHERE token = %s", tok);
        if (mysql_real_query(b->conn, sql, (unsigned long) strlen(sql)) != 0 || !(res = mysql_store_result(b->conn))) {
                mydb_fail_conn(b, "asking whether the batch committed");
                return -1;
        }
        found = mysql_num_rows(res) > 0;
        mysql_free_result(res);
        (void) mysql_query(b->conn, "SET SESSION wsrep_sync_wait = 0");
        return found;
}

/* A flush's commit writes the batch's token in the batch: if the
 * connection is lost during COMMIT, the outcome is unknown (on Galera the
 * write set may have reached the other nodes before the node died), and
 * the token, read on the host we fail over to, tells. Without it the batch
 * would be inserted again, twice in the database. */
static int op_commit(spwp_bandb *core) {
        mydb *b = mydb_of(core);
        bool with_token = b->phase == PHASE_FLUSH && b->core.dirty;
        char tok[40], sql[200];
        mydb_error keep;
        uint64_t n = b->core.n_pending;
        int r;

        if (with_token) {
                if (getrandom(b->token, sizeof b->token, 0) != (ssize_t) sizeof b->token) {
                        /* not random enough to matter for uniqueness: a counter and the owner */
                        b->token_seq++;
                        memcpy(b->token, &b->token_seq, sizeof b->token_seq);
                        memcpy(b->token + 8, &b->conn, sizeof(void *) < 8 ? sizeof(void *) : 8);
                }
                token_sql(b, tok);
                /* one round trip: the token, then COMMIT (the server stops at
                 * the first statement that fails) */
                snprintf(sql, sizeof sql, "INSERT INTO `" MYDB_BATCH_TABLE "` VALUES (%s, UTC_TIMESTAMP(6)); COMMIT",
                         tok);
                if (mysql_real_query(b->conn, sql, (unsigned long) strlen(sql)) == 0) {
                        int more;

                        while ((more = mysql_next_result(b->conn)) == 0)
                                ;
                        if (more < 0)
                                return 0;
                }
        } else if (mysql_commit(b->conn) == 0)
                return 0;
        mydb_fail_conn(b, "committing");
        if (!with_token || !b->broken)
                return -1;
        keep = b->core.e;
        {
                /* the core settles this batch from our answer: the reconnection
                 * must not also mark it lost for the next flush */
                bool lost_before = b->core.batch_lost;

                b->core.in_txn = b->core.dirty = false;
                r = token_committed(b);
                b->core.batch_lost = lost_before;
                b->core.in_txn = true;
        }
        if (r == 1) {
                spwp_bandb_log(&b->core, LOG_NOTICE, "%s: the connection was lost during the commit of %" PRIu64
                               " signal(s), and the batch is in the database: it committed (not inserted again)",
                               b->where, n);
                return 0;
        }
        b->core.e = keep;
        if (r == 0)
                spwp_bandb_log(&b->core, LOG_NOTICE, "%s: the connection was lost during the commit of %" PRIu64
                               " signal(s), and the batch is not in the database: it will be inserted again",
                               b->where, n);
        /* a reconnection, if any, has no transaction open: the core's rollback is harmless */
        return -1;
}

static void op_rollback(spwp_bandb *core) {
        mydb *b = mydb_of(core);
        mydb_error keep = b->core.e;

        mr_clear(&b->mr);
        if (!b->conn || b->broken)
                return;
        mysql_rollback(b->conn);
        b->core.e = keep;
}

/* After a failed statement inside the batch: is the transaction still open?
 * (InnoDB rolls it back whole on a deadlock; error packets carry no status
 * flags, so ask with a statement that does nothing.) */
static bool op_txn_alive(spwp_bandb *core) {
        mydb *b = mydb_of(core);
        mydb_error keep = b->core.e;
        unsigned status = 0;

        if (!b->broken && mysql_real_query(b->conn, "DO 0", 4) == 0 &&
            mariadb_get_infov(b->conn, MARIADB_CONNECTION_SERVER_STATUS, &status) == 0 &&
            (status & SERVER_STATUS_IN_TRANS))
                return true;
        if (!b->broken && mysql_errno(b->conn) && code_connection(mysql_errno(b->conn)))
                b->broken = true;
        b->core.e = keep;
        return false;
}

static int op_savepoint(spwp_bandb *core, const char *doing) {
        return mydb_query(mydb_of(core), "SAVEPOINT spw_supersede", doing);
}

static int op_release(spwp_bandb *core, const char *doing) {
        return mydb_query(mydb_of(core), "RELEASE SAVEPOINT spw_supersede", doing);
}

static void op_rollback_to(spwp_bandb *core) {
        mydb *b = mydb_of(core);
        mydb_error keep = b->core.e;

        if (b->broken)
                return;
        if (mydb_query(b, "ROLLBACK TO SAVEPOINT spw_supersede", "rolling back") == 0)
                mydb_query(b, "RELEASE SAVEPOINT spw_supersede", "rolling back");
        b->core.e = keep;
}

/* Runs one of the row reads (read_at, read_changes, read_history: the
 * same columns) with its bound parameters; the rows are then fetched one
 * by one into b->rb. */
static int read_begin(mydb *b, int which, MYSQL_BIND *p, const char *doing) {
        MYSQL_STMT *st = b->st[which];

        b->reading = which;
        b->reading_doing = doing;
        memset(&b->rb, 0, sizeof b->rb);
        read_buf_bind(&b->rb);
        if (mysql_stmt_bind_param(st, p) || mysql_stmt_execute(st) || mysql_stmt_bind_result(st, b->rb.res))
                return mydb_fail_stmt(b, st, doing);
        return 0;
}

/* ReadAT: rows are streamed, not stored: a long ban list costs no memory. */
static int op_read_start(spwp_bandb *core, spw_usec_t at) {
        mydb *b = mydb_of(core);
        MYSQL_BIND p[3];
        MYSQL_TIME at_tm;

        memset(p, 0, sizeof p);
        mydb_time_to_mysql(at, &at_tm);
        p_now(&p[0], &at_tm);
        p_now(&p[1], &at_tm);
        p_now(&p[2], &at_tm);
        return read_begin(b, MYDB_SQL_READ_AT, p, "reading active bans");
}

static int op_changes_start(spwp_bandb *core, uint64_t cursor) {
        mydb *b = mydb_of(core);
        MYSQL_BIND p[1];
        unsigned long long c = cursor;

        memset(p, 0, sizeof p);
        p[0].buffer_type = MYSQL_TYPE_LONGLONG;
        p[0].buffer = &c;
        p[0].is_unsigned = 1;
        return read_begin(b, MYDB_SQL_READ_CHANGES, p, "reading ban changes");
}

static int op_history_start(spwp_bandb *core, spw_usec_t since) {
        mydb *b = mydb_of(core);
        MYSQL_BIND p[1];
        MYSQL_TIME since_tm;

        memset(p, 0, sizeof p);
        mydb_time_to_mysql(since, &since_tm);
        p_now(&p[0], &since_tm);
        return read_begin(b, MYDB_SQL_READ_HISTORY, p, "reading the ban history");
}

static int op_read_next(spwp_bandb *core) {
        mydb *b = mydb_of(core);
        int f = mysql_stmt_fetch(b->st[b->reading]);

        if (f == 0 || f == MYSQL_DATA_TRUNCATED)
                return 1;
        if (f == MYSQL_NO_DATA)
                return 0;
        return mydb_fail_stmt(b, b->st[b->reading], b->reading_doing);
}

static const char *op_col_text(spwp_bandb *core, int col) {
        text_col *c = &mydb_of(core)->rb.text[col];

        if (mydb_of(core)->rb.null[col])
                return NULL;
        c->buf[c->len < sizeof c->buf ? c->len : sizeof c->buf - 1] = 0;
        return c->buf;
}

static int64_t op_col_int(spwp_bandb *core, int col) {
        read_buf *rb = &mydb_of(core)->rb;
        return rb->null[col] ? 0 : rb->ints[col];
}

static void op_col_time(spwp_bandb *core, int col, spw_usec_t *ret) {
        read_buf *rb = &mydb_of(core)->rb;

        if (!rb->null[col])
                (void) mydb_time_from_mysql(col == MYDB_ROW_AT ? &rb->at : &rb->until, ret);
}

static void op_read_end(spwp_bandb *core, int how) {
        mydb *b = mydb_of(core);
        MYSQL_STMT *st = b->st[b->reading];

        if (how > 0)
                /* stopped early: the rest of the rows must be read off the wire */
                mysql_stmt_reset(st);
        if (how >= 0 || !b->broken)
                mysql_stmt_free_result(st);
        if (how < 0 && !b->broken)
                mysql_stmt_reset(st);
        b->reading = MYDB_SQL_READ_AT;
}


/* Run a SELECT whose rows are one or two unsigned integers; store up to max
 * rows into a[] (and b2[] for the second column, 0 for NULL). */
static int mydb_select_ids(mydb *b, int which, MYSQL_BIND *params, uint64_t *a, uint64_t *a2, size_t max,
                           size_t *n, const char *doing) {
        MYSQL_STMT *st = b->st[which];
        MYSQL_BIND res[2];
        uint64_t v1 = 0, v2 = 0;
        my_bool null1 = 0, null2 = 0;
        int f;

        *n = 0;
        memset(res, 0, sizeof res);
        res[0].buffer_type = MYSQL_TYPE_LONGLONG;
        res[0].buffer = &v1;
        res[0].is_unsigned = 1;
        res[0].is_null = &null1;
        res[1].buffer_type = MYSQL_TYPE_LONGLONG;
        res[1].buffer = &v2;
        res[1].is_unsigned = 1;
        res[1].is_null = &null2;
        if (mysql_stmt_bind_param(st, params) || mysql_stmt_execute(st) || mysql_stmt_bind_result(st, res) ||
            mysql_stmt_store_result(st))
                return mydb_fail_stmt(b, st, doing);
        while ((f = mysql_stmt_fetch(st)) == 0 || f == MYSQL_DATA_TRUNCATED) {
                if (*n < max) {
                        a[*n] = null1 ? 0 : v1;
                        if (a2)
                                a2[*n] = null2 ? 0 : v2;
                        (*n)++;
                }
        }
        mysql_stmt_free_result(st);
        if (f != MYSQL_NO_DATA)
                return mydb_fail_stmt(b, st, doing);
        return 0;
}

static int cmp_u64(const void *x, const void *y) {
        uint64_t a = *(const uint64_t *) x, c = *(const uint64_t *) y;
        return a < c ? -1 : a > c;
}

/* Run a delete over ids[0..n) in groups of MYDB_GC_IN (and `ended`, when
 * not NULL, bound after them); *changed adds up the rows removed. */
static int mydb_delete_ids(mydb *b, int which, const uint64_t *ids, size_t n, uint64_t *changed, const char *doing,
                           MYSQL_TIME *ended) {
        static const uint64_t none = 0;
        MYSQL_BIND p[MYDB_GC_IN + 1];

        for (size_t i = 0; i < n; i += MYDB_GC_IN) {
                memset(p, 0, sizeof p);
                for (size_t j = 0; j < MYDB_GC_IN; j++)
                        p_u64(&p[j], i + j < n ? &ids[i + j] : &none);
                if (ended)
                        p_now(&p[MYDB_GC_IN], ended);
                if (mydb_run(b, which, p, doing) < 0)
                        return -1;
                if (changed)
                        *changed += mysql_stmt_affected_rows(b->st[which]);
        }
        return 0;
}

/* Pick up to CHUNK_ROWS bans (into pick_ban, their signals into pick_sig)
 * or ban-less signals (into pick_sig). */
static int op_gc_pick(spwp_bandb *core, spwp_bandb_pick what, const spwp_bandb_pick_args *a, uint64_t *picked,
                      int64_t *last) {
        mydb *b = mydb_of(core);
        MYSQL_BIND p[3];
        MYSQL_TIME cutoff_tm;
        int64_t limit = a->limit > CHUNK_ROWS ? CHUNK_ROWS : a->limit;
        uint64_t edge_id = a->edge < 0 ? 0 : (uint64_t) a->edge, after = (uint64_t) a->after,
                 before = (uint64_t) a->before;
        int r;

        memset(p, 0, sizeof p);
        mydb_time_to_mysql(a->cutoff, &cutoff_tm);
        mydb_time_to_mysql(a->now, &b->gc_now);
        b->n_picked = 0;
        *last = 0;
        switch (what) {
        case SPWP_BANDB_PICK_COUNT:
                p_u64(&p[0], &edge_id);
                p_now(&p[1], &b->gc_now);
                p_i64(&p[2], &limit);
                r = mydb_select_ids(b, MYDB_SQL_GC_PICK_COUNT, p, b->pick_ban, b->pick_sig, CHUNK_ROWS, &b->n_picked,
                                    "picking bans beyond max_records");
                break;
        case SPWP_BANDB_PICK_AGE:
                p_now(&p[0], &cutoff_tm);
                p_i64(&p[1], &limit);
                r = mydb_select_ids(b, MYDB_SQL_GC_PICK_AGE, p, b->pick_ban, b->pick_sig, CHUNK_ROWS, &b->n_picked,
                                    "picking bans older than max_records_age");
                break;
        case SPWP_BANDB_PICK_EXPIRED:
                p_now(&p[0], &cutoff_tm);
                p_i64(&p[1], &limit);
                r = mydb_select_ids(b, MYDB_SQL_GC_PICK_EXPIRED, p, b->pick_ban, b->pick_sig, CHUNK_ROWS, &b->n_picked,
                                    "picking bans that ended longer than max_records_age ago");
                break;
        case SPWP_BANDB_PICK_SIGNALS:
        default:
                p_u64(&p[0], &after);
                p_u64(&p[1], &before);
                p_i64(&p[2], &limit);
                r = mydb_select_ids(b, MYDB_SQL_GC_PICK_SIGNALS, p, b->pick_sig, NULL, CHUNK_ROWS, &b->n_picked,
                                    "picking signals without bans older than max_records_age");
                /* in id order */
                if (r == 0 && b->n_picked > 0)
                        *last = (int64_t) b->pick_sig[b->n_picked - 1];
                break;
        }
        *picked = b->n_picked;
        return r;
}

static int op_db_size(spwp_bandb *core, spwp_bandb_size *ret) {
        mydb *b = mydb_of(core);
        uint64_t used = 0, free_bytes = 0;
        MYSQL_BIND none[1];
        size_t n = 0;

        memset(none, 0, sizeof none);
        if (mydb_select_ids(b, MYDB_SQL_DB_SIZE, none, &used, &free_bytes, 1, &n, "measuring the tables") < 0)
                return -1;
        ret->used = used;
        ret->free = free_bytes;
        ret->file = used + free_bytes;
        return 0;
}

/* Remove the picked bans (bans), then the signals left without bans and
 * their event sequences. */
static int op_gc_delete(spwp_bandb *core, bool bans, uint64_t *n_bans, uint64_t *n_signals, uint64_t *n_events) {
        mydb *b = mydb_of(core);
        size_t n = b->n_picked, n_sig = 0;

        /* distinct signal ids */
        qsort(b->pick_sig, n, sizeof b->pick_sig[0], cmp_u64);
        for (size_t i = 0; i < n; i++)
                if (b->pick_sig[i] != 0 && (n_sig == 0 || b->pick_sig[n_sig - 1] != b->pick_sig[i]))
                        b->pick_sig[n_sig++] = b->pick_sig[i];

        if (bans && mydb_delete_ids(b, MYDB_SQL_GC_DELETE_BANS, b->pick_ban, n, n_bans, "removing old bans",
                                    &b->gc_now) < 0)
                return -1;
        if (mydb_delete_ids(b, MYDB_SQL_GC_DELETE_SIGNALS, b->pick_sig, n_sig, n_signals,
                            "removing signals without bans", NULL) < 0)
                return -1;
        return mydb_delete_ids(b, MYDB_SQL_GC_DELETE_EVENTS, b->pick_sig, n_sig, n_events,
                               "removing the event sequences of removed signals", NULL);
}

/* ------------------------------------------------------------ the lease */

/*
 * Cluster-wide background work (expiry, garbage collection, the batch
 * tokens' collection) is done by the holder of one lease row,
 * spillway_lease.background: its owner (host:pid:random of this instance)
 * and an expiry in the server's clock. Taking and renewing are one
 * statement: the row is inserted, or updated only if it is ours or has
 * expired (MySQL evaluates the assignments left to right, so expires_at
 * sees the new owner); one row changed means we hold it. The holder renews
 * it after a third of lease_ttl; the others try once a second, and take it
 * over once it has expired: at most lease_ttl after the holder stopped
 * (at once after a clean stop, which deletes the row). It runs on a
 * connection of its own in autocommit, never inside a batch: the lease
 * row's writes would make every host's batch commits conflict (Galera's
 * certification) or wait (row locks).
 */
#define LEASE_NAME "background"
#define LEASE_RETRY (1 * USEC_PER_SEC)
#define TOKENS_KEEP_SEC 3600
#define TOKENS_GC_EVERY (60 * USEC_PER_SEC)

static void lease_conn_close(mydb *b) {
        if (b->lease_conn)
                mysql_close(b->lease_conn);
        b->lease_conn = NULL;
}

static void lease_lost(mydb *b, const char *why) {
        if (b->lease_held)
                spwp_bandb_log(&b->core, LOG_NOTICE, "%s: no longer holds the background-work lease (%s); another "
                               "host does expiry and garbage collection", b->where, why);
        b->lease_held = false;
        spwp_bandb_status(&b->core, "lease", "not held");
}

static int lease_query(mydb *b, const char *sql, const char *doing) {
        if (mysql_real_query(b->lease_conn, sql, (unsigned long) strlen(sql)) == 0)
                return 0;
        mydb_error_from_conn(&b->core.e, b->lease_conn, doing);
        mydb_report(b);
        if (code_connection(b->core.e.code))
                lease_conn_close(b);
        return -1;
}

/* The old batch tokens go, by the lease holder, once a minute. */
static void tokens_collect(mydb *b) {
        char sql[1024];
        spw_usec_t now = b->core.host->now(b->core.ctx);

        if (b->tokens_collected_at != 0 && now - b->tokens_collected_at < TOKENS_GC_EVERY)
                return;
        b->tokens_collected_at = now;
        snprintf(sql, sizeof sql, "DELETE FROM %s.`" MYDB_BATCH_TABLE "` WHERE committed_at < UTC_TIMESTAMP(6) -"
                 " INTERVAL %d SECOND LIMIT 10000", b->db_quoted, TOKENS_KEEP_SEC);
        (void) lease_query(b, sql, "collecting old batch tokens");
}

static int mydb_lease(mydb *b, bool *got) {
        char owner[2 * sizeof b->owner + 1], sql[2048];
        spw_usec_t now = b->core.host->now(b->core.ctx); /* the core's clock: tests move it */
        mydb_error keep = b->core.e;

        *got = false;
        if (b->lease_held && now < b->lease_valid_until - b->lease_ttl * 2 / 3) {
                *got = true;
                return 0;
        }
        if (!b->lease_held && b->lease_checked_at != 0 && now - b->lease_checked_at < LEASE_RETRY)
                return 0;
        b->lease_checked_at = now;
        /* on the host the backend uses */
        if (b->lease_conn && b->lease_host != b->cur)
                lease_conn_close(b);
        if (!b->lease_conn) {
                /* no default database: tables named in full, and the
                 * connection tells itself apart in the process list */
                if (mydb_open(b, b->cur, timeout_sec(b->query_timeout), false, &b->lease_conn) < 0) {
                        mydb_report(b);
                        b->lease_conn = NULL;
                        lease_lost(b, "cannot connect");
                        b->core.e = keep;
                        return 0;
                }
                b->lease_host = b->cur;
        }
        mysql_real_escape_string(b->lease_conn, owner, b->owner, (unsigned long) strlen(b->owner));
        snprintf(sql, sizeof sql,
                 "INSERT INTO %s.`" MYDB_LEASE_TABLE "` (name, owner, expires_at, renewed_at) VALUES ('" LEASE_NAME "',"
                 " '%s', UTC_TIMESTAMP(6) + INTERVAL %" PRId64 " MICROSECOND, UTC_TIMESTAMP(6))"
                 " ON DUPLICATE KEY UPDATE"
                 " owner = IF(owner = VALUES(owner) OR expires_at < UTC_TIMESTAMP(6), VALUES(owner), owner),"
                 " expires_at = IF(owner = VALUES(owner), VALUES(expires_at), expires_at),"
                 " renewed_at = IF(owner = VALUES(owner), VALUES(renewed_at), renewed_at)",
                 b->db_quoted, owner, (int64_t) b->lease_ttl);
        if (lease_query(b, sql, "taking or renewing the background-work lease") < 0) {
                /* a conflict (another host took it at the same moment) or a lost connection */
                lease_lost(b, b->core.e.msg);
                b->core.e = keep;
                return 0;
        }
        *got = mysql_affected_rows(b->lease_conn) > 0;
        b->core.e = keep;
        if (*got) {
                b->lease_valid_until = now + b->lease_ttl;
                if (!b->lease_held) {
                        b->n_lease_takeovers++;
                        spwp_bandb_log(&b->core, LOG_NOTICE, "%s: took the background-work lease (expiry and garbage "
                                       "collection run on this host now; owner %s)", b->where, b->owner);
                        spwp_bandb_status(&b->core, "lease", "held");
                        spwp_bandb_status_u64(&b->core, "lease_takeovers", b->n_lease_takeovers);
                }
                b->lease_held = true;
                tokens_collect(b);
                b->core.e = keep;
        } else
                lease_lost(b, "another host holds it");
        return 0;
}

/* At a clean stop: hand the lease over at once. */
static void mydb_lease_release(mydb *b) {
        char owner[2 * sizeof b->owner + 1], sql[1024];

        if (b->lease_conn && b->lease_held) {
                mysql_real_escape_string(b->lease_conn, owner, b->owner, (unsigned long) strlen(b->owner));
                snprintf(sql, sizeof sql, "DELETE FROM %s.`" MYDB_LEASE_TABLE "` WHERE name = '" LEASE_NAME "'"
                         " AND owner = '%s'", b->db_quoted, owner);
                (void) mysql_real_query(b->lease_conn, sql, (unsigned long) strlen(sql));
        }
        b->lease_held = false;
        lease_conn_close(b);
}

static int op_try_lock(spwp_bandb *core, spwp_bandb_lock which, bool *got) {
        (void) which;
        return mydb_lease(mydb_of(core), got);
}

static void op_unlock(spwp_bandb *core, spwp_bandb_lock which) {
        /* the lease is kept, and renewed, while this host lives */
        (void) core;
        (void) which;
}

/* ------------------------------------------------------------ multi-row batches (see the types above) */

static int mt_reserve(mr_text *t, size_t more) {
        char *s;
        size_t size;

        if (t->len + more + 1 <= t->size)
                return 0;
        size = (t->len + more + 1) * 2;
        s = realloc(t->s, size);
        if (!s)
                return -1;
        t->s = s;
        t->size = size;
        return 0;
}

static int mt_mem(mr_text *t, const char *s, size_t n) {
        if (mt_reserve(t, n) < 0)
                return -1;
        memcpy(t->s + t->len, s, n);
        t->len += n;
        t->s[t->len] = 0;
        return 0;
}

static int mt_add(mr_text *t, const char *s) {
        return mt_mem(t, s, strlen(s));
}

static int mt_u64(mr_text *t, uint64_t u) {
        char buf[24];
        return mt_mem(t, buf, (size_t) snprintf(buf, sizeof buf, "%" PRIu64, u));
}

static void mt_free(mr_text *t) {
        free(t->s);
        *t = (mr_text) {};
}

/* A refused value: b->e says which and why (the core rejects the signal). */
static int mr_refuse(mydb *b, const char *table, const char *column, const char *why) {
        b->core.e = (mydb_error) { .doing = "checking the signal's values" };
        snprintf(b->core.e.msg, sizeof b->core.e.msg, "has %s in %s.%s, which the server refuses", why, table,
                 column);
        return -1;
}

/* The columns of the three INSERTs, in mydb_q's order (created_at and
 * updated_at first), for the messages; the signal id is moved first in
 * events and bans (its place patched at send). */
static const char *const mr_sig_cols[_MYDB_SIG_MAX] = {
        "created_at", "updated_at", "map_key", "scenario", "bucket_id", "alert_message", "events_count",
        "start_at", "stop_at", "source_ip", "source_range", "source_autonomous_system_number",
        "source_autonomous_system_organization", "source_country", "source_latitude", "source_longitude",
        "dest_ip", "capacity", "leak_speed", "reprocess", "spillway_signal_id", "spillway_origin",
};
static const char *const mr_event_cols[_MYDB_EVENT_MAX] = {
        "created_at", "updated_at", "time", "source_ip", "signal_occurence_id", "serialized",
};
static const char *const mr_ban_cols[_MYDB_BAN_MAX] = {
        "created_at", "updated_at", "measure_source", "measure_type", "measure_extra", "until", "start_ip",
        "end_ip", "target_cn", "target_as", "target_as_name", "ip_text", "reason", "scenario",
        "signal_occurence_id", "scope", "value",
};

/* mediumtext: 16 MiB - 1 bytes */
#define MR_TEXT_MAX ((UINT64_C(1) << 24) - 1)

/* One value as SQL text, as mydb_bind_value binds it. -1: refused (b->e),
 * -2: out of memory. */
static int mr_value(mydb *b, mr_text *t, const spwp_bandb_value *v, const char *table, const char *column) {
        char buf[64];
        MYSQL_TIME tm;
        size_t n;

        switch (v->kind) {
        case SPWP_BANDB_STR:
        case SPWP_BANDB_TEXT:
                if (!v->s)
                        return mt_add(t, "NULL") < 0 ? -2 : 0;
                n = strlen(v->s);
                if (!utf8_valid(v->s, n))
                        return mr_refuse(b, table, column, "text that is not valid UTF-8");
                if (v->kind == SPWP_BANDB_STR)
                        n = utf8_prefix(v->s, VARCHAR_CHARS);
                else if (n > MR_TEXT_MAX)
                        return mr_refuse(b, table, column, "text longer than a mediumtext (16 MiB)");
                if (mt_reserve(t, 2 * n + 3) < 0)
                        return -2;
                t->s[t->len++] = '\'';
                t->len += mysql_real_escape_string(b->conn, t->s + t->len, v->s, (unsigned long) n);
                t->s[t->len++] = '\'';
                t->s[t->len] = 0;
                return 0;
        case SPWP_BANDB_TIME:
        case SPWP_BANDB_NOW:
                if (v->kind == SPWP_BANDB_TIME && v->t == 0)
                        return mt_add(t, "NULL") < 0 ? -2 : 0;
                mydb_time_to_mysql(v->t, &tm);
                snprintf(buf, sizeof buf, "'%04u-%02u-%02u %02u:%02u:%02u.%06lu'", tm.year, tm.month, tm.day, tm.hour,
                         tm.minute, tm.second, tm.second_part);
                break;
        case SPWP_BANDB_INT:
                snprintf(buf, sizeof buf, "%" PRId64, v->i);
                break;
        case SPWP_BANDB_INT32:
                snprintf(buf, sizeof buf, "%" PRId64, clamp_int32(v->i));
                break;
        case SPWP_BANDB_NONZERO:
                if (v->i == 0)
                        snprintf(buf, sizeof buf, "NULL");
                else
                        snprintf(buf, sizeof buf, "%" PRId64, v->i);
                break;
        case SPWP_BANDB_ID:
                snprintf(buf, sizeof buf, "%" PRIu64, v->u);
                break;
        case SPWP_BANDB_DOUBLE:
                if (v->d != v->d || v->d > 1.7976931348623157e308 || v->d < -1.7976931348623157e308)
                        return mr_refuse(b, table, column, "a number that is not finite");
                snprintf(buf, sizeof buf, "%.17g", v->d);
                break;
        case SPWP_BANDB_ADDR:
                buf[0] = 'X';
                buf[1] = '\'';
                for (int i = 0; i < 16; i++)
                        snprintf(buf + 2 + 2 * i, 3, "%02x", v->a[i]);
                buf[34] = '\'';
                buf[35] = 0;
                break;
        case SPWP_BANDB_NULL:
        default:
                snprintf(buf, sizeof buf, "NULL");
                break;
        }
        return mt_add(t, buf) < 0 ? -2 : 0;
}

/* Grow an array of `each`-byte items to hold n + 1. */
static int mr_grow(void **a, size_t *cap, size_t n, size_t each) {
        void *p;
        size_t c;

        if (n < *cap)
                return 0;
        c = *cap ? *cap * 2 : 256;
        p = realloc(*a, c * each);
        if (!p)
                return -1;
        *a = p;
        *cap = c;
        return 0;
}

static void mr_clear(mr_buf *m) {
        m->sigs.len = m->evs.len = m->bans.len = m->targets.len = 0;
        m->n_sig = m->n_ev = m->n_ban = 0;
}

static void mr_free(mr_buf *m) {
        mt_free(&m->sigs);
        mt_free(&m->evs);
        mt_free(&m->bans);
        mt_free(&m->targets);
        mt_free(&m->stmt);
        mt_free(&m->list);
        free(m->sig);
        free(m->ev);
        free(m->ban);
        free(m->order);
        *m = (mr_buf) {};
}

/* A tuple "(v, v, ...)" of query q's values into t; the signal id (events,
 * bans) first, as a placeholder of MR_ID_WIDTH blanks (*id_at its place). */
static int mr_tuple(mydb *b, mr_text *t, spwp_bandb_query q, const spwp_bandb_value *v, size_t n, int id_pos,
                    size_t *id_at) {
        static const spwp_bandb_value null = { .kind = SPWP_BANDB_NULL };
        const char *table = q == SPWP_BANDB_Q_INSERT_SIGNAL ? "signal_occurences"
                            : q == SPWP_BANDB_Q_INSERT_EVENT ? "event_sequences" : "ban_applications";
        const char *const *cols = q == SPWP_BANDB_Q_INSERT_SIGNAL ? mr_sig_cols
                                  : q == SPWP_BANDB_Q_INSERT_EVENT ? mr_event_cols : mr_ban_cols;
        bool first = true;
        int r;

        _Static_assert(MR_ID_WIDTH == 20, "the placeholder below");
        if (mt_add(t, "(") < 0)
                return -2;
        if (id_pos >= 0) {
                *id_at = t->len;
                if (mt_add(t, "                    ,") < 0)
                        return -2;
        }
        for (size_t k = 0; k < mydb_q[q].n; k++) {
                if ((int) k == id_pos)
                        continue;
                if (!first && mt_add(t, ",") < 0)
                        return -2;
                first = false;
                r = mr_value(b, t, mydb_q[q].pos[k] < n ? &v[mydb_q[q].pos[k]] : &null, table, cols[k]);
                if (r < 0)
                        return r;
        }
        return mt_add(t, ")") < 0 ? -2 : 0;
}

/* The longest statement we send: under the server's max_allowed_packet. */
static size_t mr_stmt_limit(const mydb *b) {
        return b->stmt_limit ? b->stmt_limit : 4096;
}

static int op_buf_signal(spwp_bandb *core, int64_t key, const spwp_bandb_value *v, size_t n) {
        mydb *b = mydb_of(core);
        mr_buf *m = &b->mr;
        int r;

        if (!b->multi_row || !b->multirow_server || !b->conn)
                return 0;
        /* a bound on the buffer's memory: above it, the core sends the
         * buffer and writes this signal row by row */
        if ((uint64_t) m->sigs.len + m->evs.len + m->bans.len > MR_MAX_BYTES)
                return 0;
        for (size_t i = 0; i < m->n_sig; i++)
                if (m->sig[i].key == key)
                        return 2;
        m->mark_sigs = m->sigs.len;
        m->mark_evs = m->evs.len;
        m->mark_bans = m->bans.len;
        m->mark_targets = m->targets.len;
        m->mark_n_ev = m->n_ev;
        m->mark_n_ban = m->n_ban;
        if (mr_grow((void **) &m->sig, &m->cap_sig, m->n_sig, sizeof m->sig[0]) < 0)
                return 0;
        r = mr_tuple(b, &m->sigs, SPWP_BANDB_Q_INSERT_SIGNAL, v, n, -1, NULL);
        if (r == 0 && m->sigs.len - m->mark_sigs + 4096 > mr_stmt_limit(b) / 4)
                r = -2;
        if (r < 0) {
                m->sigs.len = m->mark_sigs;
                return r == -1 ? -1 : 0;
        }
        m->sig[m->n_sig++] = (mr_sig) { .key = key, .off = m->mark_sigs, .len = m->sigs.len - m->mark_sigs };
        return 1;
}

static void op_buf_cancel(spwp_bandb *core) {
        mr_buf *m = &mydb_of(core)->mr;

        m->n_sig--;
        m->sigs.len = m->mark_sigs;
        m->evs.len = m->mark_evs;
        m->bans.len = m->mark_bans;
        m->targets.len = m->mark_targets;
        m->n_ev = m->mark_n_ev;
        m->n_ban = m->mark_n_ban;
}

static int op_buf_row(spwp_bandb *core, spwp_bandb_query q, const spwp_bandb_value *v, size_t n) {
        mydb *b = mydb_of(core);
        mr_buf *m = &b->mr;
        bool ban = q == SPWP_BANDB_Q_INSERT_BAN;
        mr_text *t = ban ? &m->bans : &m->evs;
        mr_row row = { .sig = m->n_sig - 1, .off = t->len };
        int r;

        if (ban ? mr_grow((void **) &m->ban, &m->cap_ban, m->n_ban, sizeof m->ban[0])
                : mr_grow((void **) &m->ev, &m->cap_ev, m->n_ev, sizeof m->ev[0]))
                return 0;
        r = mr_tuple(b, t, q, v, n, ban ? MYDB_BAN_SIGNAL_ID : MYDB_EVENT_SIGNAL_ID, &row.id_at);
        if (r < 0)
                return r == -1 ? -1 : 0;
        row.len = t->len - row.off;
        if (row.len + 4096 > mr_stmt_limit(b) / 4)
                return 0;
        if (ban) {
                row.t_off = m->targets.len;
                if (mr_value(b, &m->targets, &v[SPWP_BANDB_BAN_IP_TEXT], "ban_applications", "ip_text") < 0)
                        return 0;
                row.t_len = m->targets.len - row.t_off;
                m->ban[m->n_ban++] = row;
        } else
                m->ev[m->n_ev++] = row;
        return 1;
}

static size_t op_buffered(spwp_bandb *core) {
        return mydb_of(core)->mr.n_sig;
}

/* Run the statements in m->stmt (n of them, ';'-separated) in one round
 * trip; doing[k] names the k-th for its error. */
static int mr_exec(mydb *b, size_t n, const char *const *doing) {
        mr_text *t = &b->mr.stmt;
        size_t k = 0;
        int more;

        if (t->len == 0)
                return 0;
        if (mysql_real_query(b->conn, t->s, (unsigned long) t->len) != 0)
                return mydb_fail_conn(b, doing[0]);
        while ((more = mysql_next_result(b->conn)) == 0)
                k++;
        t->len = 0;
        if (more > 0)
                return mydb_fail_conn(b, doing[k + 1 < n ? k + 1 : n - 1]);
        return 0;
}

static int cmp_key(const void *x, const void *y) {
        int64_t a = ((const mr_key *) x)->key, c = ((const mr_key *) y)->key;
        return a < c ? -1 : a > c;
}

/* The signals, RETURNING their row ids, in statements under the limit. */
static int mr_send_signals(mydb *b) {
        static const char head[] =
                "INSERT IGNORE INTO signal_occurences (created_at, updated_at, map_key, scenario, bucket_id,"
                " alert_message, events_count, start_at, stop_at, source_ip, source_range,"
                " source_autonomous_system_number, source_autonomous_system_organization,"
                " source_country, source_latitude, source_longitude, dest_ip, capacity, leak_speed,"
                " reprocess, spillway_signal_id, spillway_origin) VALUES ";
        mr_buf *m = &b->mr;
        size_t limit = mr_stmt_limit(b), i = 0;

        while (i < m->n_sig) {
                MYSQL_RES *res;
                MYSQL_ROW row;
                size_t first = i;

                m->stmt.len = 0;
                if (mt_add(&m->stmt, head) < 0)
                        goto oom;
                for (; i < m->n_sig && (i == first || m->stmt.len + m->sig[i].len + 64 < limit); i++)
                        if ((i > first && mt_add(&m->stmt, ",") < 0) ||
                            mt_mem(&m->stmt, m->sigs.s + m->sig[i].off, m->sig[i].len) < 0)
                                goto oom;
                if (mt_add(&m->stmt, " RETURNING id, spillway_signal_id") < 0)
                        goto oom;
                if (mysql_real_query(b->conn, m->stmt.s, (unsigned long) m->stmt.len) != 0)
                        return mydb_fail_conn(b, "inserting into signal_occurences");
                res = mysql_store_result(b->conn);
                if (!res)
                        return mydb_fail_conn(b, "reading the stored signals' ids");
                while ((row = mysql_fetch_row(res))) {
                        int64_t key = row[1] ? strtoll(row[1], NULL, 10) : 0;
                        size_t lo = 0, hi = m->n_sig;

                        /* m->order: indexes sorted by key */
                        while (lo < hi) {
                                size_t mid = (lo + hi) / 2;
                                if (m->order[mid].key < key)
                                        lo = mid + 1;
                                else
                                        hi = mid;
                        }
                        if (lo < m->n_sig && m->order[lo].key == key && row[0])
                                m->sig[m->order[lo].i].row_id = strtoull(row[0], NULL, 10);
                }
                mysql_free_result(res);
        }
        m->stmt.len = 0;
        return 0;
oom:
        b->core.e = (mydb_error) { .code = CR_OUT_OF_MEMORY, .doing = "building the batch's statements" };
        snprintf(b->core.e.msg, sizeof b->core.e.msg, "out of memory");
        return -1;
}

/* Append one statement of a list to m->stmt: flush the round trip first if
 * it would go over the limit. */
typedef struct mr_batch {
        size_t n;
        const char *doing[64];
} mr_batch;

static int mr_stmt_done(mydb *b, mr_batch *x, const char *doing) {
        x->doing[x->n++] = doing;
        /* what is pending stays under limit/4: with the next statement (at
         * most limit/2 and its head), under the limit */
        if (x->n == 64 || b->mr.stmt.len > mr_stmt_limit(b) / 4) {
                int r = mr_exec(b, x->n, x->doing);
                x->n = 0;
                return r < 0 ? -1 : 0;
        }
        return mt_add(&b->mr.stmt, ";") < 0 ? -2 : 0;
}

/* A list statement: head, then items (item(i) appends the i-th, returning
 * false to skip it), then tail, cut into several under the limit. */
static int mr_list(mydb *b, mr_batch *x, const char *head, const char *tail, size_t n_items,
                   int (*item)(mydb *b, size_t i, bool first), const char *doing) {
        mr_text *t = &b->mr.stmt;
        size_t limit = mr_stmt_limit(b);
        size_t i = 0;

        while (i < n_items) {
                size_t start = t->len, items = 0;
                int r;

                if (mt_add(t, head) < 0)
                        return -2;
                for (; i < n_items; i++) {
                        /* a statement: up to limit/4 and one item (at most limit/4, see buf_*) */
                        if (items > 0 && t->len - start > limit / 4)
                                break;
                        r = item(b, i, items == 0);
                        if (r < 0)
                                return r;
                        items += (size_t) r;
                }
                if (items == 0) {
                        t->len = start;
                        t->s[t->len] = 0;
                        break;
                }
                if (mt_add(t, tail) < 0)
                        return -2;
                r = mr_stmt_done(b, x, doing);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* An event or ban tuple of a stored signal, its id patched in. */
static int mr_item_row(mydb *b, mr_row *rows, mr_text *src, size_t i, bool first) {
        const mr_sig *s = &b->mr.sig[rows[i].sig];
        char id[MR_ID_WIDTH + 1];

        if (s->row_id == 0)
                return 0;
        snprintf(id, sizeof id, "%*" PRIu64, MR_ID_WIDTH, s->row_id);
        memcpy(src->s + rows[i].id_at, id, MR_ID_WIDTH);
        if ((!first && mt_add(&b->mr.stmt, ",") < 0) || mt_mem(&b->mr.stmt, src->s + rows[i].off, rows[i].len) < 0)
                return -2;
        return 1;
}

static int mr_item_event(mydb *b, size_t i, bool first) {
        return mr_item_row(b, b->mr.ev, &b->mr.evs, i, first);
}

static int mr_item_ban(mydb *b, size_t i, bool first) {
        return mr_item_row(b, b->mr.ban, &b->mr.bans, i, first);
}

static int mr_item_sig_id(mydb *b, size_t i, bool first) {
        const mr_sig *s = &b->mr.sig[i];

        if (s->row_id == 0)
                return 0;
        if ((!first && mt_add(&b->mr.stmt, ",") < 0) || mt_u64(&b->mr.stmt, s->row_id) < 0)
                return -2;
        return 1;
}

/* The one-active-ban rule for the batch's targets at once: of each
 * target's active bans, all but the first in MYDB_SQL_SUPERSEDE's order (a
 * running manual ban, then the one that ends last, the newest on a tie).
 * A single-table UPDATE along the (ip_text, deleted_at) index, as the
 * row-by-row statement: it locks the batch's targets' rows only (a JOIN
 * would read, and wait for, other hosts' uncommitted rows); the ranking is
 * a consistent read in a derived table (window functions keep it
 * materialised, so the UPDATE may read its own table). */
static int mr_supersede(mydb *b, mr_batch *x, const char *now) {
        mr_buf *m = &b->mr;
        mr_text *l = &m->list, *t = &m->stmt;
        size_t limit = mr_stmt_limit(b), i = 0;
        char buf[1024];
        int r;

        while (i < m->n_ban) {
                size_t items = 0;

                l->len = 0;
                for (; i < m->n_ban && (items == 0 || l->len < limit / 8); i++) {
                        const mr_row *row = &m->ban[i];

                        if (m->sig[row->sig].row_id == 0)
                                continue;
                        if ((items++ > 0 && mt_add(l, ",") < 0) || mt_mem(l, m->targets.s + row->t_off, row->t_len) < 0)
                                return -2;
                }
                if (items == 0)
                        break;
                snprintf(buf, sizeof buf, "UPDATE ban_applications FORCE INDEX (" MYDB_IP_TEXT_INDEX ") SET"
                         " deleted_at = %s, updated_at = %s WHERE deleted_at IS NULL AND ip_text IN (", now, now);
                if (mt_add(t, buf) < 0 || mt_mem(t, l->s, l->len) < 0)
                        return -2;
                snprintf(buf, sizeof buf, ") AND id IN (SELECT r.id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY"
                         " ip_text ORDER BY (until > %s AND COALESCE(measure_source, '') = 'cscli') DESC, until DESC,"
                         " id DESC) AS rn FROM ban_applications FORCE INDEX (" MYDB_IP_TEXT_INDEX ") WHERE"
                         " deleted_at IS NULL AND ip_text IN (", now);
                if (mt_add(t, buf) < 0 || mt_mem(t, l->s, l->len) < 0 || mt_add(t, ")) AS r WHERE r.rn > 1)") < 0)
                        return -2;
                r = mr_stmt_done(b, x, "soft-deleting the targets' older active bans");
                if (r < 0)
                        return r;
        }
        return 0;
}

static int op_send(spwp_bandb *core) {
        mydb *b = mydb_of(core);
        mr_buf *m = &b->mr;
        mr_batch x = { 0 };
        char now[64], head[1024];
        MYSQL_TIME tm;
        int r;

        if (m->n_sig == 0)
                return 0;
        free(m->order);
        m->order = malloc(m->n_sig * sizeof m->order[0]);
        if (!m->order) {
                mr_clear(m);
                b->core.e = (mydb_error) { .code = CR_OUT_OF_MEMORY, .doing = "building the batch's statements" };
                snprintf(b->core.e.msg, sizeof b->core.e.msg, "out of memory");
                return -1;
        }
        for (size_t i = 0; i < m->n_sig; i++) {
                m->order[i] = (mr_key) { m->sig[i].key, i };
                m->sig[i].row_id = 0;
        }
        qsort(m->order, m->n_sig, sizeof m->order[0], cmp_key);

        m->stmt.len = 0;
        r = mr_send_signals(b);
        if (r == 0) {
                /* the signals stored before (redeliveries) write nothing more */
                for (size_t i = 0; i < m->n_sig; i++)
                        if (m->sig[i].row_id == 0) {
                                b->core.pending_duplicates++;
                                if (b->core.keys.debug)
                                        spwp_bandb_log(core, LOG_DEBUG, "signal %" PRId64 " is stored already: not "
                                                       "stored again", m->sig[i].key);
                        }
                mydb_time_to_mysql(b->core.host->now(b->core.ctx), &tm);
                snprintf(now, sizeof now, "'%04u-%02u-%02u %02u:%02u:%02u.%06lu'", tm.year, tm.month, tm.day,
                         tm.hour, tm.minute, tm.second, tm.second_part);
                r = mr_list(b, &x, "INSERT INTO event_sequences (signal_occurence_id, created_at, updated_at, time,"
                            " source_ip, serialized) VALUES ", "", m->n_ev, mr_item_event,
                            "inserting into event_sequences");
        }
        if (r == 0)
                r = mr_list(b, &x, "INSERT INTO ban_applications (signal_occurence_id, created_at, updated_at,"
                            " measure_source, measure_type, measure_extra, until, start_ip, end_ip, target_cn,"
                            " target_as, target_as_name, ip_text, reason, scenario, scope, value) VALUES ", "",
                            m->n_ban, mr_item_ban, "inserting into ban_applications");
        if (r == 0) {
                snprintf(head, sizeof head, "INSERT INTO ban_changes (at, kind, ban_id, ip_text) SELECT %s, 1, id,"
                         " ip_text FROM ban_applications WHERE signal_occurence_id IN (", now);
                r = mr_list(b, &x, head, ") ORDER BY id", m->n_sig, mr_item_sig_id, "logging the ban changes");
        }
        if (r == 0)
                r = mr_supersede(b, &x, now);
        if (r == 0 && x.n > 0) {
                /* the last ';' */
                m->stmt.len--;
                r = mr_exec(b, x.n, x.doing);
        }
        if (r == -2) {
                b->core.e = (mydb_error) { .code = CR_OUT_OF_MEMORY, .doing = "building the batch's statements" };
                snprintf(b->core.e.msg, sizeof b->core.e.msg, "out of memory");
        }
        mr_clear(m);
        m->stmt.len = 0;
        return r < 0 ? -1 : 0;
}

static const spwp_bandb_driver mydb_driver = {
        .name = "mysql",
        .other_name = "sqlite",
        .other_keys = "db_path",
        .show_code = true,
        .timer_doing = true,
        .probe_in_batch = true,
        .log_row_id = true,
        .size_estimated = true,
        .lost_before = "the batch of ",
        .lost_after = " signal(s) was lost after an earlier error (logged with that call: lost connection, deadlock)",
        .lost_delete = "the connection was lost: the deletion may have been applied or not, run it again (the "
                       "next call reconnects)",
        SPWP_BANDB_DRIVER_OPS,
        .history_start = op_history_start,
        .ensure = op_ensure,
        .connect_errno = connect_errno,
        .advice = connect_advice,
        .lost = op_lost,
        .try_lock = op_try_lock,
        .unlock = op_unlock,
        .buf_signal = op_buf_signal,
        .buf_row = op_buf_row,
        .buf_cancel = op_buf_cancel,
        .send = op_send,
        .buffered = op_buffered,
};

/* ------------------------------------------------------------ init */

static int mydb_setup(mydb *b, const spw_kv *config, size_t n_config) {
        int r;

        r = mydb_configure(b, config, n_config);
        if (r < 0)
                return r;
        snprintf(b->where, sizeof b->where, "%s", b->hosts[0].where);
        {
                size_t o = 0;

                b->db_quoted[o++] = '`';
                for (const char *p = b->db_name; *p && o + 3 < sizeof b->db_quoted; p++) {
                        if (*p == '`')
                                b->db_quoted[o++] = '`';
                        b->db_quoted[o++] = *p;
                }
                b->db_quoted[o++] = '`';
                b->db_quoted[o] = 0;
        }
        {
                char hn[64] = "?";
                uint64_t rnd = 0;
                struct timespec ts;

                gethostname(hn, sizeof hn - 1);
                clock_gettime(CLOCK_REALTIME, &ts);
                rnd = (uint64_t) ts.tv_nsec ^ ((uint64_t) ts.tv_sec << 20) ^ (uint64_t) (uintptr_t) b;
                snprintf(b->owner, sizeof b->owner, "%s:%ld:%016" PRIx64, hn, (long) getpid(), rnd);
        }

        /* once per process, thread-safe (pthread_once in libmariadb) */
        if (mysql_library_init(0, NULL, NULL) != 0) {
                spwp_bandb_set_error(&b->core, "%s: cannot initialise the MySQL client library; the backend is not "
                                     "started", b->where);
                return -ENOMEM;
        }
        __atomic_store_n(&library_used, true, __ATOMIC_RELEASE);
        return mydb_connect(b, true);
}

static int mydb_init(spw_ctx *ctx, const struct spw_host *host, const spw_kv *config, size_t n_config,
                     void **selfp) {
        spwp_bandb *core;
        mydb *b;
        int r;

        r = spwp_bandb_new(&mydb_driver, sizeof(mydb), ctx, host, &core);
        if (r < 0)
                return r;
        b = mydb_of(core);
        b->core.where = b->where;
        b->connect_timeout = 5 * USEC_PER_SEC;
        b->query_timeout = 30 * USEC_PER_SEC;
        b->lock_wait_timeout = 5 * USEC_PER_SEC;
        b->db_port = 3306;
        b->failback_interval = 10 * USEC_PER_SEC;
        b->multi_row = true;
        b->lease_ttl = 15 * USEC_PER_SEC;
        b->db_host = strdup("localhost");
        b->db_socket = strdup("/run/mysqld/mysqld.sock");
        b->db_username = strdup("spillway");
        b->db_password = strdup("");
        b->db_name = strdup("spillway");
        if (!b->db_host || !b->db_socket || !b->db_username || !b->db_password || !b->db_name) {
                host->set_error(ctx, "out of memory");
                mydb_free(b);
                return -ENOMEM;
        }

        r = mydb_setup(b, config, n_config);
        if (r < 0) {
                mydb_free(b);
                return r;
        }

        *selfp = b;
        return 0;
}

/* ------------------------------------------------------------ shutdown */

static mydb *mydb_free(mydb *b) {
        if (!b)
                return NULL;
        spwp_bandb_close(&b->core);
        mydb_lease_release(b);
        mydb_disconnect(b);
        hosts_free(b);
        free(b->db_host);
        free(b->db_socket);
        free(b->db_username);
        if (b->db_password) {
                explicit_bzero(b->db_password, strlen(b->db_password));
                free(b->db_password);
        }
        free(b->db_name);
        free(b->tls_ca);
        mr_free(&b->mr);
        free(b);
        return NULL;
}

static void mydb_shutdown(void *userdata) {
        mydb_free(userdata);
}

/* ------------------------------------------------------------ entry points */

/* The core's entry points, with what the backend is doing (for the status'
 * last error of each kind) and, after a flush, the way back to the
 * preferred host. */
#define PHASED(ph, call)                        \
        do {                                    \
                mydb *b_ = userdata;            \
                int r_;                         \
                b_->phase = (ph);               \
                r_ = (call);                    \
                b_->phase = PHASE_BACKGROUND;   \
                return r_;                      \
        } while (0)

static int mydb_insert(void *userdata, const spw_signal *sig) {
        PHASED(PHASE_INSERT, spwp_bandb_insert(userdata, sig));
}

static int mydb_flush(void *userdata) {
        mydb *b = userdata;
        int r;

        b->phase = PHASE_FLUSH;
        r = spwp_bandb_flush(userdata);
        b->phase = PHASE_BACKGROUND;
        if (r == 0) {
                bool got;

                mydb_failback(b);
                /* a host with traffic keeps the lease taken (or renewed) even
                 * while no expiry or GC run asks for it: after a flush, on the
                 * lease's own connection, at most once a second */
                if (!b->core.in_txn && mono_now() - b->lease_flush_at >= LEASE_RETRY &&
                    (b->core.keys.expire || b->core.keys.max_records || b->core.keys.max_records_age ||
                     b->core.max_db_size)) {
                        b->lease_flush_at = mono_now();
                        (void) mydb_lease(b, &got);
                }
        }
        return r;
}

/* An idle daemon goes back to its preferred host too: every
 * failback_interval, between other calls, the same check as after a
 * flush (no batch open, the interval since the switch passed). */
static int mydb_failback_tick(void *userdata, spw_usec_t now) {
        (void) now;
        mydb_failback(userdata);
        return 0;
}

static int mydb_start_autocommit(void *userdata) {
        mydb *b = userdata;
        int r;

        r = spwp_bandb_start_autocommit(userdata);
        if (r < 0 || b->n_hosts < 2)
                return r;
        r = b->core.host->schedule(b->core.ctx, b->failback_interval, mydb_failback_tick, b);
        if (r < 0)
                spwp_bandb_set_error(&b->core, "%s: cannot schedule the return to the preferred host: %s", b->where,
                                     strerror(-r));
        return r;
}

static int mydb_read_at(void *userdata, spw_usec_t at, spw_row_fn fn, void *fn_userdata) {
        PHASED(PHASE_READ, spwp_bandb_read_at(userdata, at, fn, fn_userdata));
}

static int mydb_read_changes(void *userdata, uint64_t cursor, spw_change_fn fn, void *fn_userdata,
                             uint64_t *next_cursor) {
        PHASED(PHASE_READ, spwp_bandb_read_changes(userdata, cursor, fn, fn_userdata, next_cursor));
}

static int mydb_read_history(void *userdata, spw_usec_t since, spw_change_fn fn, void *fn_userdata) {
        PHASED(PHASE_READ, spwp_bandb_read_history(userdata, since, fn, fn_userdata));
}

static int mydb_delete_target(void *userdata, const char *target, uint64_t *count) {
        PHASED(PHASE_ADMIN, spwp_bandb_delete_target(userdata, target, count));
}

static int mydb_delete_all(void *userdata, uint64_t *count) {
        PHASED(PHASE_ADMIN, spwp_bandb_delete_all(userdata, count));
}

static const struct spw_backend mydb_backend = {
        SPW_BACKEND_HEADER,
        .name = "mysql",
        .version = MYDB_PLUGIN_VERSION,
        .description = "MySQL/MariaDB ban database shared by many hosts, with CrowdSec v0.3's schema",
        .config_keys = mydb_config_keys,
        .init = mydb_init,
        .insert = mydb_insert,
        .flush = mydb_flush,
        .start_autocommit = mydb_start_autocommit,
        .read_at = mydb_read_at,
        .read_changes = mydb_read_changes,
        .read_history = mydb_read_history,
        .delete_target = mydb_delete_target,
        .delete_all = mydb_delete_all,
        .shutdown = mydb_shutdown,
};

SPW_BACKEND_EXPORT(mydb_backend)