/* SPDX-License-Identifier: MIT */
/*
 * The mysql backend: the ban database of the sqlite backend, on a
 * MySQL/MariaDB server that many hosts share, so that a ban one host makes
 * is in every host's ban list. Stores each routed signal, its event
 * sequence and its ban applications in CrowdSec v0.3's tables (schema.c),
 * answers "which bans are active at T", deletes bans on request, expires
 * and garbage-collects them in the background.
 *
 * One instance owns one connection and is only ever called from its own
 * worker thread (the ABI's rule), so there is no locking here. libmariadb
 * initialises itself once per process (pthread_once) and needs nothing per
 * thread.
 *
 * The batch. The first write after a flush opens a transaction (START
 * TRANSACTION); flush() commits it. Everything that writes while a batch is
 * open joins it: inserts, Delete/DeleteAll and the timers (the daemon
 * flushes after each of those). Without an open batch, admin writes are
 * their own (autocommit) statement and timer work commits in chunks of its
 * own, so nothing the daemon did not ask to batch waits for a flush.
 *
 * Invariants:
 *   - in_txn is true exactly while our transaction is open; dirty once
 *     something was written in it. After a failed statement we ask the
 *     server (one "DO 0" and its status flags) whether the transaction is
 *     still open: InnoDB rolls the whole transaction back on a deadlock, a
 *     lost connection loses it. If a dirty batch was lost, the next flush()
 *     fails with -EAGAIN and the daemon inserts the whole batch again.
 *     batch_lost stays set until that flush, whatever happens to the
 *     transactions opened meanwhile (a second deadlock on the first insert
 *     of the next one must not clear it: the test with two hosts writing
 *     at once found that).
 *   - A failing insert leaves the batch as it was: every row an insert
 *     writes carries the new signal's id, so undoing it is three DELETEs by
 *     that id (a SAVEPOINT per insert costs two more round trips per
 *     signal). The soft-delete of older bans is the insert's last step: one
 *     UPDATE, atomic by itself, or several inside a savepoint for a signal
 *     with several bans.
 *   - One active ban per target: after a signal's bans are inserted, older
 *     active bans with the same ip_text are soft-deleted, through the
 *     (ip_text, deleted_at) index, pinned with FORCE INDEX. Two hosts
 *     banning the same target at the same instant may both leave an active
 *     ban; ReadAT still shows one row per target (and counts both).
 *   - A lost connection (server restarted, failover, network) is noticed by
 *     the failing call, which reports a transient failure; the next call
 *     reconnects (session settings, schema check, statements prepared
 *     again). An insert or a read that finds an idle connection dropped (no
 *     batch on it, nothing lost) reconnects and goes on at once. The client
 *     library never reconnects by itself: it would lose the batch and the
 *     prepared statements silently.
 *   - Background work is safe with several daemons on one database: each
 *     run takes a named lock (GET_LOCK, no wait) and skips its turn if
 *     another host holds it; every statement is correct if run twice.
 *   - Time comes from host->now() only (tests move the clock) and is stored
 *     as UTC DATETIME(6), bound as MYSQL_TIME.
 *   - The password is passed to the client library and never logged.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <spillway/backend.h>

#include "schema.h"
#include "spwp-config.h"

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

#define EXPIRE_INTERVAL (1 * USEC_PER_SEC)
#define GC_INTERVAL     (60 * USEC_PER_SEC)
/* Background work is done in steps of at most CHUNK_ROWS rows, each its own
 * transaction when no batch is open, and at most MAX_CHUNKS steps per timer
 * run (the rest waits for the next run): inserts never wait long. */
#define CHUNK_ROWS 1000
#define MAX_CHUNKS 10

/* Creating or upgrading the schema: how long a statement may take (copying
 * CrowdSec's tables) and how long to wait for another host doing it. */
#define MIGRATE_TIMEOUT_SEC   3600
#define MIGRATE_LOCK_WAIT_SEC 600

/* varchar(255) holds 255 characters; mediumtext 16 MiB. */
#define VARCHAR_CHARS 255

typedef struct mydb {
        spw_ctx *ctx;
        const struct spw_host *host;
        MYSQL *conn;
        MYSQL_STMT *st[_MYDB_SQL_MAX];
        bool broken;                    /* the connection must be opened again */

        /* configuration */
        char *db_host, *db_socket, *db_username, *db_password, *db_name, *tls_ca;
        unsigned db_port;
        bool tls;
        spw_usec_t connect_timeout, query_timeout, lock_wait_timeout;
        spwp_bandb_keys keys;           /* flush, max_records, max_records_age, debug */

        char where[600];                /* mysql://user@host:port/db, for messages */
        char lock_expire[65], lock_gc[65];

        /* the batch */
        bool in_txn;
        bool dirty;
        bool batch_lost;
        uint64_t n_pending;

        mydb_error e;                   /* the last failure */

        /* totals for `spillwayctl status` */
        uint64_t n_expired, n_collected, n_reconnects;

        /* the GC's picks */
        uint64_t pick_ban[CHUNK_ROWS], pick_sig[CHUNK_ROWS];
} mydb;

static mydb *mydb_free(mydb *b);

/* ------------------------------------------------------------ config */

static const spw_config_key mydb_config_keys[] = {
        { "db_host", SPW_CONFIG_STRING, "localhost", NULL,
          "server host name or address; localhost means the unix socket (db_socket), use 127.0.0.1 for TCP" },
        { "db_port", SPW_CONFIG_INT, "3306", NULL, "server TCP port" },
        { "db_socket", SPW_CONFIG_STRING, "/run/mysqld/mysqld.sock", NULL,
          "unix socket path, used when db_host is localhost" },
        { "db_username", SPW_CONFIG_STRING, "spillway", NULL, "user name" },
        { "db_password", SPW_CONFIG_STRING, NULL, NULL,
          "password; use ${CREDENTIAL:name} with LoadCredential= rather than writing it here; never logged" },
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
        { "type", SPW_CONFIG_ENUM, "mysql", "sqlite|mysql",
          "CrowdSec's database type key, accepted so its database.yaml loads; sqlite is the sqlite backend's job" },
        { "db_path", SPW_CONFIG_STRING, NULL, NULL,
          "CrowdSec's SQLite path, accepted so its database.yaml loads with type: mysql; ignored" },
        { "flush", SPW_CONFIG_BOOL, "true", NULL,
          "expire bans automatically: every second, bans past `until` are soft-deleted" },
        { "max_records", SPW_CONFIG_INT, "10000", NULL,
          "keep at most this many bans: older soft-deleted bans (and their signals) are removed; 0 = no limit" },
        { "max_records_age", SPW_CONFIG_DURATION, "720h", NULL,
          "remove soft-deleted bans older than this (and their signals), and signals without bans; 0 = no limit" },
        { "debug", SPW_CONFIG_BOOL, "false", NULL, "log every stored signal at debug level" },
        {}
};

static int mydb_config_error(mydb *b, const char *key, const char *value, const char *expected) {
        b->host->set_error(b->ctx, "config key %s: expected %s, got \"%s\"; the backend is not started",
                           key, expected, value);
        return -EINVAL;
}

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

static int mydb_configure(mydb *b, const spw_kv *config, size_t n_config) {
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

        for (size_t i = 0; i < n_config; i++) {
                const char *k = config[i].key, *v = config[i].value ? config[i].value : "", *expected;
                bool done = false;
                int r;

                for (size_t j = 0; j < sizeof strings / sizeof strings[0] && !done; j++) {
                        if (strcmp(k, strings[j].key) != 0)
                                continue;
                        if (!*v && !strings[j].may_be_empty)
                                return mydb_config_error(b, k, v, "a non-empty string");
                        if (set_string((char **) ((char *) b + strings[j].offset), v) < 0) {
                                b->host->set_error(b->ctx, "out of memory");
                                return -ENOMEM;
                        }
                        done = true;
                }
                if (done)
                        continue;

                if (strcmp(k, "db_port") == 0) {
                        uint64_t port;
                        if (spwp_parse_uint(v, 65535, &port) < 0 || port < 1)
                                return mydb_config_error(b, k, v, "a TCP port (1-65535)");
                        b->db_port = (unsigned) port;
                } else if (strcmp(k, "tls") == 0) {
                        if (spwp_parse_bool(v, &b->tls) < 0)
                                return mydb_config_error(b, k, v, "true or false");
                } else if (strcmp(k, "type") == 0) {
                        if (strcmp(v, "sqlite") == 0) {
                                b->host->set_error(b->ctx,
                                                   "config key type: \"sqlite\" is served by the sqlite backend, "
                                                   "not by this mysql plugin; point this backend's `path:` at "
                                                   "sqlite.so and give it db_path; the backend is not started");
                                return -EINVAL;
                        }
                        if (strcmp(v, "mysql") != 0)
                                return mydb_config_error(b, k, v, "mysql (or sqlite, with the sqlite backend)");
                } else if (strcmp(k, "db_path") == 0) {
                        if (*v)
                                b->host->log(b->ctx, LOG_NOTICE,
                                             "config key db_path is CrowdSec's SQLite path; the mysql backend "
                                             "ignores it");
                } else if ((r = spwp_bandb_keys_set(&b->keys, k, v, &expected)) != 0) {
                        if (r < 0)
                                return mydb_config_error(b, k, v, expected);
                } else if (strcmp(k, "connect_timeout") == 0 || strcmp(k, "query_timeout") == 0 ||
                           strcmp(k, "lock_wait_timeout") == 0) {
                        spw_usec_t t;
                        if (spwp_parse_duration(v, &t) < 0 || t <= 0 || t > 86400 * USEC_PER_SEC)
                                return mydb_config_error(b, k, v, "a duration like 5s or 1m, above 0 and at most 24h");
                        *(k[0] == 'c' ? &b->connect_timeout : k[0] == 'q' ? &b->query_timeout
                                                                          : &b->lock_wait_timeout) = t;
                } else
                        /* The daemon refuses unknown keys from files; one that
                         * still reaches us is a default the daemon merged in. */
                        b->host->log(b->ctx, LOG_WARNING, "ignoring unknown config key %s", k);
        }

        if (b->tls_ca && *b->tls_ca)
                b->tls = true;
        if (timeout_sec(b->query_timeout) <= timeout_sec(b->lock_wait_timeout)) {
                b->host->set_error(b->ctx,
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

/* Record a statement's or the connection's failure in b->e. Returns -1. */
static int mydb_fail_stmt(mydb *b, MYSQL_STMT *st, const char *doing) {
        mydb_error_from_stmt(&b->e, st, doing);
        if (code_connection(b->e.code))
                b->broken = true;
        return -1;
}

static int mydb_fail_conn(mydb *b, const char *doing) {
        mydb_error_from_conn(&b->e, b->conn, doing);
        if (code_connection(b->e.code))
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
 * characters (strict mode would refuse the whole signal instead). */
static void p_str(MYSQL_BIND *p, unsigned long *len, const char *s) {
        if (!s) {
                p->buffer_type = MYSQL_TYPE_NULL;
                return;
        }
        p->buffer_type = MYSQL_TYPE_STRING;
        p->buffer = (void *) s;
        *len = utf8_prefix(s, VARCHAR_CHARS);
        p->length = len;
}

static void p_text(MYSQL_BIND *p, unsigned long *len, const char *s) {
        if (!s) {
                p->buffer_type = MYSQL_TYPE_NULL;
                return;
        }
        p->buffer_type = MYSQL_TYPE_STRING;
        p->buffer = (void *) s;
        *len = (unsigned long) strlen(s);
        p->length = len;
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

/* Named locks are server-wide: qualify them with the database, and keep
 * them under MySQL's 64 characters. */
static void lock_name(char buf[static 65], const char *db, const char *what) {
        uint64_t h = UINT64_C(0xcbf29ce484222325);

        if (snprintf(buf, 65, "spillway.%s.%s", db, what) < 65)
                return;
        for (const char *p = db; *p; p++)
                h = (h ^ (unsigned char) *p) * UINT64_C(0x100000001b3);
        snprintf(buf, 65, "spillway.%016" PRIx64 ".%s", h, what);
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
                return mydb_error_from_conn(&b->e, c, "setting up the session");
        /* READ COMMITTED: no gap locks, so hosts inserting bans for different
         * targets never wait for each other. */
        if (mysql_query(c, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED") != 0)
                return mydb_error_from_conn(&b->e, c, "setting up the session");
        return 0;
}

/* Open a connection with the configured options and set its session up.
 * Returns 0, or -1 with b->e set (and nothing left open). */
static int mydb_open(mydb *b, unsigned read_timeout, MYSQL **ret) {
        unsigned ct = timeout_sec(b->connect_timeout), protocol = MYSQL_PROTOCOL_SOCKET;
        my_bool off = 0, on = 1;
        bool socket = strcmp(b->db_host, "localhost") == 0;
        MYSQL *c = mysql_init(NULL);

        if (!c) {
                snprintf(b->e.msg, sizeof b->e.msg, "out of memory");
                b->e.doing = "connecting";
                b->e.code = CR_OUT_OF_MEMORY;
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
        if (!mysql_real_connect(c, b->db_host, b->db_username, b->db_password, b->db_name,
                                socket ? 0 : b->db_port, socket ? b->db_socket : NULL, 0)) {
                mydb_error_from_conn(&b->e, c, "connecting");
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
 * CrowdSec table, or waiting for another host doing so, may take longer
 * than query_timeout allows a statement. */
static int mydb_upgrade(mydb *b, int *from, bool *crowdsec) {
        MYSQL *c = NULL;
        int r;

        if (mydb_open(b, MIGRATE_TIMEOUT_SEC, &c) < 0)
                return -EIO;
        r = mydb_migrate(c, MIGRATE_LOCK_WAIT_SEC, local_utc_offset(), from, crowdsec, &b->e);
        mysql_close(c);
        return r;
}

/* Open the connection, set up the session, check (or migrate) the schema
 * and prepare the statements. Returns 0 or a negative errno with b->e set
 * and, at init, the backend's error message. */
static int mydb_connect(mydb *b, bool at_init) {
        bool crowdsec = false;
        int from = -1, failed = -1, r;

        mydb_disconnect(b);
        memset(&b->e, 0, sizeof b->e);
        if (mydb_open(b, timeout_sec(b->query_timeout), &b->conn) < 0) {
                r = connect_errno(b->e.code);
                if (at_init && strcmp(b->e.doing, "connecting") == 0)
                        b->host->set_error(b->ctx, "%s: cannot connect: %s (error %u): %s; the backend is not started",
                                           b->where, b->e.msg, b->e.code, connect_advice(b->e.code));
                else if (at_init)
                        b->host->set_error(b->ctx, "%s: cannot set up the session: %s (error %u); the backend is "
                                           "not started", b->where, b->e.msg, b->e.code);
                return r;
        }

        /* the version is one cheap read; anything to do runs elsewhere */
        r = mydb_schema_version(b->conn, &from, &b->e);
        if (r == 0 && from != MYDB_SCHEMA_VERSION)
                r = mydb_upgrade(b, &from, &crowdsec);
        if (r < 0 && at_init) {
                if (r == -EPROTO)
                        b->host->set_error(b->ctx, "%s: schema version %d is newer than this plugin's (%d): the "
                                           "database was set up by a newer Spillway; upgrade the plugin on this "
                                           "host or set db_name to another database; the backend is not started",
                                           b->where, from, MYDB_SCHEMA_VERSION);
                else if (r == -EBADMSG)
                        b->host->set_error(b->ctx, "%s: cannot upgrade the schema from version %d: %s while %s: "
                                           "the existing tables do not have CrowdSec v0.3's layout; rename or "
                                           "drop them, or set db_name to another database; the backend is not "
                                           "started", b->where, from, b->e.msg, b->e.doing);
                else if (r == -EBUSY)
                        b->host->set_error(b->ctx, "%s: %s: another host is creating or upgrading the tables "
                                           "(see SHOW PROCESSLIST); the backend is not started",
                                           b->where, b->e.msg);
                else
                        b->host->set_error(b->ctx, "%s: cannot create or upgrade the schema: %s (error %u) while "
                                           "%s: %s; the backend is not started", b->where, b->e.msg, b->e.code,
                                           b->e.doing, connect_advice(b->e.code));
        }
        if (r < 0) {
                if (r == -EIO)
                        r = code_errno(b->e.code);
                mydb_disconnect(b);
                return r;
        }

        if (mydb_prepare(b->conn, b->st, &failed, &b->e) < 0) {
                r = code_connection(b->e.code) ? -ECONNRESET : -EBADMSG;
                if (at_init)
                        b->host->set_error(b->ctx, "%s: the tables do not have the layout this plugin needs "
                                           "(%s, in \"%.50s...\"); check the schema (README.md); the backend is "
                                           "not started", b->where, b->e.msg,
                                           failed >= 0 ? mydb_sql[failed] : "?");
                mydb_disconnect(b);
                return r;
        }

        if (from == 0 && crowdsec)
                b->host->log(b->ctx, LOG_INFO, "%s: upgraded CrowdSec v0.3's tables to schema version %d "
                             "(times converted from UTC%+ld s; CrowdSec's tables kept as *" MYDB_CROWDSEC_SUFFIX ")",
                             b->where, MYDB_SCHEMA_VERSION, local_utc_offset());
        else if (from == 0)
                b->host->log(b->ctx, LOG_INFO, "%s: created the ban database (schema version %d)", b->where,
                             MYDB_SCHEMA_VERSION);
        else if (from >= 0 && from < MYDB_SCHEMA_VERSION)
                b->host->log(b->ctx, LOG_INFO, "%s: upgraded the ban database from schema version %d to %d",
                             b->where, from, MYDB_SCHEMA_VERSION);
        if (SPW_HAS_MEMBER(b->host, struct spw_host, set_status)) {
                b->host->set_status(b->ctx, "server_version", mysql_get_server_info(b->conn));
                b->host->set_status(b->ctx, "connection", "up");
        }
        return 0;
}

/* A connection that works, opened again if it was lost. A batch that was
 * open on the lost connection is gone: the next flush says so. */
static int mydb_ensure(mydb *b) {
        int r;

        if (b->conn && !b->broken)
                return 0;
        if (b->in_txn) {
                b->batch_lost = b->batch_lost || b->dirty;
                b->in_txn = b->dirty = false;
        }
        r = mydb_connect(b, false);
        if (r < 0) {
                if (SPW_HAS_MEMBER(b->host, struct spw_host, set_status))
                        b->host->set_status(b->ctx, "connection", "lost");
                return r;
        }
        b->n_reconnects++;
        b->host->log(b->ctx, LOG_NOTICE, "%s: connected again (reconnection %" PRIu64 ")%s", b->where,
                     b->n_reconnects, b->batch_lost ? "; the open batch was lost and will be inserted again" : "");
        if (SPW_HAS_MEMBER(b->host, struct spw_host, set_status)) {
                char buf[32];
                snprintf(buf, sizeof buf, "%" PRIu64, b->n_reconnects);
                b->host->set_status(b->ctx, "reconnects", buf);
        }
        return 0;
}

/* After a failed statement inside the batch: is the transaction still open?
 * (InnoDB rolls it back whole on a deadlock; error packets carry no status
 * flags, so ask with a statement that does nothing.) */
static void mydb_check_txn(mydb *b) {
        unsigned status = 0;
        mydb_error keep = b->e;

        if (!b->in_txn)
                return;
        if (!b->broken && mysql_real_query(b->conn, "DO 0", 4) == 0 &&
            mariadb_get_infov(b->conn, MARIADB_CONNECTION_SERVER_STATUS, &status) == 0 &&
            (status & SERVER_STATUS_IN_TRANS))
                return;
        if (!b->broken && mysql_errno(b->conn) && code_connection(mysql_errno(b->conn)))
                b->broken = true;
        b->e = keep;
        b->in_txn = false;
        b->batch_lost = b->batch_lost || b->dirty;
        b->dirty = false;
}

/* Open the batch if none is open. */
static int mydb_begin(mydb *b) {
        if (b->in_txn)
                return 0;
        if (mydb_query(b, "START TRANSACTION", "opening the batch transaction") < 0)
                return -1;
        b->in_txn = true;
        return 0;
}

/* ------------------------------------------------------------ insert */

/* The signal's rows: the signal, its events, its bans, then the soft-delete
 * of older active bans of the same targets. *id is the new signal's id once
 * its row exists (0 before). */
static int mydb_write_signal(mydb *b, const spw_signal *sig, const MYSQL_TIME *now, uint64_t *id) {
        const spw_source *src = sig->has_source ? &sig->source : NULL;
        MYSQL_BIND p[_MYDB_SIG_MAX];
        unsigned long len[_MYDB_SIG_MAX];
        MYSQL_TIME t1, t2;
        int64_t events_count = clamp_int32(sig->events_count), capacity = clamp_int32(sig->capacity);
        int64_t leak = sig->leak_speed_ns, reprocess = sig->reprocess;
        double lat = sig->source_latitude != 0 || !src ? sig->source_latitude : src->latitude;
        double lon = sig->source_longitude != 0 || !src ? sig->source_longitude : src->longitude;
        uint64_t first_ban = 0;

        memset(p, 0, sizeof p);
        p_now(&p[MYDB_SIG_CREATED_AT], now);
        p_now(&p[MYDB_SIG_UPDATED_AT], now);
        p_str(&p[MYDB_SIG_MAP_KEY], &len[MYDB_SIG_MAP_KEY], sig->map_key);
        p_str(&p[MYDB_SIG_SCENARIO], &len[MYDB_SIG_SCENARIO], sig->scenario);
        p_str(&p[MYDB_SIG_BUCKET_ID], &len[MYDB_SIG_BUCKET_ID], sig->bucket_id);
        p_str(&p[MYDB_SIG_ALERT_MESSAGE], &len[MYDB_SIG_ALERT_MESSAGE], sig->alert_message);
        p_i64(&p[MYDB_SIG_EVENTS_COUNT], &events_count);
        p_time(&p[MYDB_SIG_START_AT], &t1, sig->start_at);
        p_time(&p[MYDB_SIG_STOP_AT], &t2, sig->stop_at);
        p_str(&p[MYDB_SIG_SOURCE_IP], &len[MYDB_SIG_SOURCE_IP], sig->source_ip ? sig->source_ip : src ? src->ip : NULL);
        p_str(&p[MYDB_SIG_SOURCE_RANGE], &len[MYDB_SIG_SOURCE_RANGE],
              sig->source_range ? sig->source_range : src ? src->range : NULL);
        p_str(&p[MYDB_SIG_SOURCE_AS_NUMBER], &len[MYDB_SIG_SOURCE_AS_NUMBER],
              sig->source_as_number ? sig->source_as_number : src ? src->as_number : NULL);
        p_str(&p[MYDB_SIG_SOURCE_AS_ORG], &len[MYDB_SIG_SOURCE_AS_ORG],
              sig->source_as_org ? sig->source_as_org : src ? src->as_org : NULL);
        p_str(&p[MYDB_SIG_SOURCE_COUNTRY], &len[MYDB_SIG_SOURCE_COUNTRY],
              sig->source_country ? sig->source_country : src ? src->country : NULL);
        p_double(&p[MYDB_SIG_SOURCE_LATITUDE], &lat);
        p_double(&p[MYDB_SIG_SOURCE_LONGITUDE], &lon);
        p_str(&p[MYDB_SIG_DEST_IP], &len[MYDB_SIG_DEST_IP], sig->dest_ip);
        p_i64(&p[MYDB_SIG_CAPACITY], &capacity);
        p_i64(&p[MYDB_SIG_LEAK_SPEED], &leak);
        p_i64(&p[MYDB_SIG_REPROCESS], &reprocess);
        if (mydb_run(b, MYDB_SQL_INSERT_SIGNAL, p, "inserting into signal_occurences") < 0)
                return -1;
        *id = mysql_stmt_insert_id(b->st[MYDB_SQL_INSERT_SIGNAL]);

        for (size_t i = 0; i < sig->n_events; i++) {
                const spw_event *ev = &sig->events[i];

                memset(p, 0, sizeof p);
                p_now(&p[MYDB_EVENT_CREATED_AT], now);
                p_now(&p[MYDB_EVENT_UPDATED_AT], now);
                p_time(&p[MYDB_EVENT_TIME], &t1, ev->time);
                p_str(&p[MYDB_EVENT_SOURCE_IP], &len[MYDB_EVENT_SOURCE_IP], ev->source_ip);
                p_u64(&p[MYDB_EVENT_SIGNAL_ID], id);
                p_text(&p[MYDB_EVENT_SERIALIZED], &len[MYDB_EVENT_SERIALIZED], ev->serialized);
                if (mydb_run(b, MYDB_SQL_INSERT_EVENT, p, "inserting into event_sequences") < 0)
                        return -1;
        }

        for (size_t i = 0; i < sig->n_bans; i++) {
                const spw_ban *ban = &sig->bans[i];
                int64_t as = ban->target_as;

                memset(p, 0, sizeof p);
                p_now(&p[MYDB_BAN_CREATED_AT], now);
                p_now(&p[MYDB_BAN_UPDATED_AT], now);
                p_str(&p[MYDB_BAN_MEASURE_SOURCE], &len[MYDB_BAN_MEASURE_SOURCE], ban->measure_source);
                p_str(&p[MYDB_BAN_MEASURE_TYPE], &len[MYDB_BAN_MEASURE_TYPE], ban->measure_type);
                p_str(&p[MYDB_BAN_MEASURE_EXTRA], &len[MYDB_BAN_MEASURE_EXTRA], ban->measure_extra);
                p_time(&p[MYDB_BAN_UNTIL], &t1, ban->until);
                p_blob(&p[MYDB_BAN_START_IP], &len[MYDB_BAN_START_IP], ban->start_ip, 16);
                p_blob(&p[MYDB_BAN_END_IP], &len[MYDB_BAN_END_IP], ban->end_ip, 16);
                p_str(&p[MYDB_BAN_TARGET_CN], &len[MYDB_BAN_TARGET_CN], ban->target_cn);
                p_nonzero(&p[MYDB_BAN_TARGET_AS], &as);
                p_str(&p[MYDB_BAN_TARGET_AS_NAME], &len[MYDB_BAN_TARGET_AS_NAME], ban->target_as_name);
                p_str(&p[MYDB_BAN_IP_TEXT], &len[MYDB_BAN_IP_TEXT], ban->ip_text);
                p_str(&p[MYDB_BAN_REASON], &len[MYDB_BAN_REASON], ban->reason);
                p_str(&p[MYDB_BAN_SCENARIO], &len[MYDB_BAN_SCENARIO], ban->scenario);
                p_u64(&p[MYDB_BAN_SIGNAL_ID], id);
                if (mydb_run(b, MYDB_SQL_INSERT_BAN, p, "inserting into ban_applications") < 0)
                        return -1;
                if (i == 0)
                        first_ban = mysql_stmt_insert_id(b->st[MYDB_SQL_INSERT_BAN]);
        }

        if (sig->n_bans == 0)
                return 0;
        /* One UPDATE is atomic by itself; several are made so by a savepoint
         * (only signals with more than one ban pay for it). */
        if (sig->n_bans > 1 &&
            mydb_query(b, "SAVEPOINT spw_supersede", "soft-deleting the targets' older active bans") < 0)
                return -1;
        for (size_t i = 0; i < sig->n_bans; i++) {
                memset(p, 0, sizeof p);
                p_now(&p[0], now);
                p_now(&p[1], now);
                p_str(&p[2], &len[2], sig->bans[i].ip_text);
                p_u64(&p[3], &first_ban);
                if (mydb_run(b, MYDB_SQL_SUPERSEDE, p, "soft-deleting the targets' older active bans") < 0) {
                        if (sig->n_bans > 1 && !b->broken) {
                                mydb_error keep = b->e;
                                if (mydb_query(b, "ROLLBACK TO SAVEPOINT spw_supersede", "rolling back") == 0)
                                        mydb_query(b, "RELEASE SAVEPOINT spw_supersede", "rolling back");
                                b->e = keep;
                        }
                        return -1;
                }
        }
        if (sig->n_bans > 1)
                return mydb_query(b, "RELEASE SAVEPOINT spw_supersede", "soft-deleting the targets' older active bans");
        return 0;
}

/* Remove the rows of a failed insert (see the top comment). If that fails
 * too, give up the batch: roll it back and let flush() report it lost. */
static void mydb_undo(mydb *b, uint64_t id) {
        static const int undo[] = { MYDB_SQL_UNDO_BANS, MYDB_SQL_UNDO_EVENTS, MYDB_SQL_UNDO_SIGNAL };
        mydb_error keep = b->e;
        MYSQL_BIND p[1];
        int r = 0;

        if (id == 0 || !b->in_txn || b->broken)
                return;
        for (size_t i = 0; r == 0 && i < sizeof undo / sizeof undo[0]; i++) {
                memset(p, 0, sizeof p);
                p_u64(&p[0], &id);
                r = mydb_run(b, undo[i], p, "undoing a failed insert");
        }
        if (r == 0) {
                b->e = keep;
                return;
        }
        b->host->log(b->ctx, LOG_WARNING, "%s: cannot undo the failed insert (%s); rolling back the batch of "
                     "%" PRIu64 " signal(s), the next flush reports it", b->where, b->e.msg, b->n_pending);
        if (!b->broken)
                mysql_rollback(b->conn);
        b->e = keep;
        b->in_txn = false;
        b->batch_lost = b->batch_lost || b->dirty;
        b->dirty = false;
}

static int mydb_reject(mydb *b, const spw_signal *sig, const char *why) {
        b->host->set_error(b->ctx, "%s: signal %" PRIu64 " (scenario %s) %s; signal rejected",
                           b->where, sig->id, sig->scenario ? sig->scenario : "none", why);
        return SPW_INSERT_REJECT;
}

static int mydb_insert(void *userdata, const spw_signal *sig) {
        mydb *b = userdata;
        MYSQL_TIME now;
        uint64_t id = 0;
        bool transient;
        int r;

        _Static_assert((int) _MYDB_EVENT_MAX <= (int) _MYDB_SIG_MAX && (int) _MYDB_BAN_MAX <= (int) _MYDB_SIG_MAX,
                       "mydb_write_signal reuses the signal's parameter arrays");
        if (!sig || !SPW_HAS_MEMBER(sig, spw_signal, n_bans)) {
                b->host->set_error(b->ctx, "%s: signal structure too small for this plugin; signal rejected",
                                   b->where);
                return SPW_INSERT_REJECT;
        }
        if ((sig->n_bans && !sig->bans) || (sig->n_events && !sig->events))
                return mydb_reject(b, sig, "has a ban or event count but no array");
        for (size_t i = 0; i < sig->n_bans; i++)
                if (!sig->bans[i].ip_text)
                        return mydb_reject(b, sig, "has a ban without ip_text (the ban's target)");

        for (int attempt = 0;; attempt++) {
                bool was_open = b->in_txn;

                r = mydb_ensure(b);
                if (r < 0) {
                        b->host->set_error(b->ctx, "%s: cannot store signal %" PRIu64 " (scenario %s): cannot "
                                           "connect: %s (error %u): %s; will retry", b->where, sig->id,
                                           sig->scenario ? sig->scenario : "none", b->e.msg, b->e.code,
                                           connect_advice(b->e.code));
                        return SPW_INSERT_RETRY;
                }

                mydb_time_to_mysql(b->host->now(b->ctx), &now);
                id = 0;
                r = mydb_begin(b);
                if (r == 0)
                        r = mydb_write_signal(b, sig, &now, &id);
                if (r == 0) {
                        b->dirty = true;
                        b->n_pending++;
                        if (b->keys.debug)
                                b->host->log(b->ctx, LOG_DEBUG,
                                             "stored signal %" PRIu64 " as id %" PRIu64 ": scenario %s, source %s, "
                                             "%zu ban(s), %zu event(s)", sig->id, id,
                                             sig->scenario ? sig->scenario : "none",
                                             sig->source_ip ? sig->source_ip : "none", sig->n_bans, sig->n_events);
                        return SPW_INSERT_OK;
                }
                /* An idle connection the server or the network dropped (wait_timeout,
                 * a failover) with no batch open on it: nothing was lost, connect
                 * again and carry on rather than make the daemon back off. */
                if (!b->broken || was_open || attempt > 0)
                        break;
                b->host->log(b->ctx, LOG_INFO, "%s: the idle connection was lost (%s); connecting again",
                             b->where, b->e.msg);
                b->in_txn = b->dirty = false;
        }

        transient = code_transient(b->e.code);
        b->host->set_error(b->ctx, "%s: cannot store signal %" PRIu64 " (scenario %s): %s (error %u) while %s; %s",
                           b->where, sig->id, sig->scenario ? sig->scenario : "none", b->e.msg, b->e.code,
                           b->e.doing, transient ? "will retry" : "signal rejected");
        mydb_check_txn(b);
        mydb_undo(b, id);
        return transient ? SPW_INSERT_RETRY : SPW_INSERT_REJECT;
}

/* ------------------------------------------------------------ flush */

static int mydb_flush(void *userdata) {
        mydb *b = userdata;
        uint64_t n = b->n_pending;

        if (b->in_txn && b->broken) {
                /* the connection died under the batch (noticed by a timer or a read) */
                b->batch_lost = b->batch_lost || b->dirty;
                b->in_txn = b->dirty = false;
        }
        if (b->batch_lost) {
                if (b->in_txn && b->conn && !b->broken)
                        mysql_rollback(b->conn);
                b->in_txn = b->batch_lost = b->dirty = false;
                b->n_pending = 0;
                b->host->set_error(b->ctx,
                                   "%s: the batch of %" PRIu64 " signal(s) was lost after an earlier error "
                                   "(logged with that call: lost connection, deadlock); the batch will be "
                                   "inserted again", b->where, n);
                return -EAGAIN;
        }
        if (!b->in_txn)
                return 0;

        if (mysql_commit(b->conn) == 0) {
                b->in_txn = b->dirty = false;
                b->n_pending = 0;
                return 0;
        }

        mydb_fail_conn(b, "committing");
        b->host->set_error(b->ctx, "%s: cannot commit the batch of %" PRIu64 " signal(s): %s (error %u); rolled "
                           "back, %s", b->where, n, b->e.msg, b->e.code,
                           code_transient(b->e.code) ? "will retry" : "the batch is dropped");
        if (!b->broken)
                mysql_rollback(b->conn);
        b->in_txn = b->dirty = false;
        b->n_pending = 0;
        /* a lost connection may have committed or not: at-least-once, the
         * daemon inserts the batch again */
        return code_transient(b->e.code) ? -EAGAIN : code_errno(b->e.code);
}

/* ------------------------------------------------------------ read_at */

typedef struct text_col {
        char buf[MYDB_VARCHAR_BYTES + 1];
        unsigned long len;
        my_bool null;
} text_col;

static void r_text(MYSQL_BIND *p, text_col *c) {
        p->buffer_type = MYSQL_TYPE_STRING;
        p->buffer = c->buf;
        p->buffer_length = sizeof c->buf - 1;
        p->length = &c->len;
        p->is_null = &c->null;
}

static const char *text_value(text_col *c) {
        if (c->null)
                return NULL;
        c->buf[c->len < sizeof c->buf ? c->len : sizeof c->buf - 1] = 0;
        return c->buf;
}

/* The result buffers of one ReadAT row. */
typedef struct read_buf {
        text_col source, iptext, reason, action, cn, as;
        int64_t bancount, as_number, events_count;
        my_bool null_as, null_events, null_until;
        MYSQL_TIME until;
        MYSQL_BIND res[_MYDB_ROW_MAX];
        uint64_t n_rows;        /* rows handed to the callback */
} read_buf;

static void read_buf_bind(read_buf *rb) {
        static const int ints[] = { MYDB_ROW_BANCOUNT, MYDB_ROW_AS_NUMBER, MYDB_ROW_EVENTS_COUNT };
        int64_t *const values[] = { &rb->bancount, &rb->as_number, &rb->events_count };
        my_bool *const nulls[] = { NULL, &rb->null_as, &rb->null_events };

        r_text(&rb->res[MYDB_ROW_SOURCE], &rb->source);
        r_text(&rb->res[MYDB_ROW_IPTEXT], &rb->iptext);
        r_text(&rb->res[MYDB_ROW_REASON], &rb->reason);
        r_text(&rb->res[MYDB_ROW_ACTION], &rb->action);
        r_text(&rb->res[MYDB_ROW_CN], &rb->cn);
        r_text(&rb->res[MYDB_ROW_AS], &rb->as);
        for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
                rb->res[ints[i]].buffer_type = MYSQL_TYPE_LONGLONG;
                rb->res[ints[i]].buffer = values[i];
                rb->res[ints[i]].is_null = nulls[i];
        }
        rb->res[MYDB_ROW_UNTIL].buffer_type = MYSQL_TYPE_DATETIME;
        rb->res[MYDB_ROW_UNTIL].buffer = &rb->until;
        rb->res[MYDB_ROW_UNTIL].is_null = &rb->null_until;
}

/* Run the query and call fn per row. Returns 0 with *stop set to fn's
 * non-zero return (if any), or -1 with b->e set. Rows are streamed, not
 * stored: a long ban list costs no memory. */
static int mydb_read_walk(mydb *b, spw_usec_t at, read_buf *rb, spw_row_fn fn, void *fn_userdata, int *stop) {
        MYSQL_STMT *st = b->st[MYDB_SQL_READ_AT];
        MYSQL_BIND p[2];
        MYSQL_TIME at_tm;
        int f;

        *stop = 0;
        memset(p, 0, sizeof p);
        mydb_time_to_mysql(at, &at_tm);
        p_now(&p[0], &at_tm);
        p_now(&p[1], &at_tm);
        read_buf_bind(rb);
        if (mysql_stmt_bind_param(st, p) || mysql_stmt_execute(st) || mysql_stmt_bind_result(st, rb->res))
                return mydb_fail_stmt(b, st, "reading active bans");
        while ((f = mysql_stmt_fetch(st)) == 0 || f == MYSQL_DATA_TRUNCATED) {
                spw_ban_row row = {
                        .size = sizeof(spw_ban_row),
                        .source = text_value(&rb->source),
                        .iptext = text_value(&rb->iptext),
                        .reason = text_value(&rb->reason),
                        .bancount = rb->bancount,
                        .action = text_value(&rb->action),
                        .cn = text_value(&rb->cn),
                        .as = text_value(&rb->as),
                        .as_number = rb->null_as ? 0 : rb->as_number,
                        .events_count = rb->null_events ? 0 : rb->events_count,
                };

                if (!rb->null_until)
                        (void) mydb_time_from_mysql(&rb->until, &row.until);
                rb->n_rows++;
                *stop = fn(&row, fn_userdata);
                if (*stop != 0) {
                        /* the rest of the rows must be read off the wire */
                        mysql_stmt_reset(st);
                        break;
                }
        }
        if (*stop == 0 && f != MYSQL_NO_DATA)
                return mydb_fail_stmt(b, st, "reading active bans");
        mysql_stmt_free_result(st);
        return 0;
}

static int mydb_read_at(void *userdata, spw_usec_t at, spw_row_fn fn, void *fn_userdata) {
        mydb *b = userdata;
        read_buf *rb;
        int stop = 0, r;

        if (mydb_ensure(b) < 0) {
                b->host->set_error(b->ctx, "%s: cannot read active bans: cannot connect: %s (error %u): %s",
                                   b->where, b->e.msg, b->e.code, connect_advice(b->e.code));
                return connect_errno(b->e.code);
        }
        rb = calloc(1, sizeof *rb);
        if (!rb) {
                b->host->set_error(b->ctx, "%s: cannot read active bans: out of memory", b->where);
                return -ENOMEM;
        }
        r = mydb_read_walk(b, at, rb, fn, fn_userdata, &stop);
        /* an idle connection lost before the first row: once more (see insert) */
        if (r < 0 && b->broken && !b->in_txn && rb->n_rows == 0 && mydb_ensure(b) == 0)
                r = mydb_read_walk(b, at, rb, fn, fn_userdata, &stop);
        free(rb);
        if (r == 0)
                return stop;

        b->host->set_error(b->ctx, "%s: cannot read active bans: %s (error %u)%s", b->where, b->e.msg, b->e.code,
                           b->broken ? "; the connection was lost, the next call reconnects" : "");
        if (!b->broken) {
                mysql_stmt_free_result(b->st[MYDB_SQL_READ_AT]);
                mysql_stmt_reset(b->st[MYDB_SQL_READ_AT]);
        }
        mydb_check_txn(b);
        return code_errno(b->e.code);
}

/* ------------------------------------------------------------ delete */

/* Admin writes join the open batch if there is one (the daemon flushes right
 * after, and they keep their order with the inserts); otherwise the UPDATE
 * commits by itself (autocommit), durable on return. */
static int mydb_soft_delete(mydb *b, int which, const char *target, uint64_t *count) {
        MYSQL_BIND p[3];
        MYSQL_TIME now;
        unsigned long len = 0;

        if (mydb_ensure(b) < 0) {
                b->host->set_error(b->ctx, "%s: cannot delete bans%s%s: cannot connect: %s (error %u): %s; "
                                   "nothing deleted", b->where, target ? " of " : "", target ? target : "",
                                   b->e.msg, b->e.code, connect_advice(b->e.code));
                return connect_errno(b->e.code);
        }
        memset(p, 0, sizeof p);
        mydb_time_to_mysql(b->host->now(b->ctx), &now);
        p_now(&p[0], &now);
        p_now(&p[1], &now);
        if (target)
                p_str(&p[2], &len, target);
        if (mydb_run(b, which, p, "deleting bans") < 0) {
                b->host->set_error(b->ctx, "%s: cannot delete bans%s%s: %s (error %u); %s", b->where,
                                   target ? " of " : "", target ? target : "", b->e.msg, b->e.code,
                                   b->broken && !b->in_txn ? "the connection was lost: the deletion may have been "
                                                             "applied or not, run it again (the next call "
                                                             "reconnects)"
                                                           : "nothing deleted");
                mydb_check_txn(b);
                return code_errno(b->e.code);
        }
        if (b->in_txn)
                b->dirty = true;
        if (count)
                *count = mysql_stmt_affected_rows(b->st[which]);
        return 0;
}

static int mydb_delete_target(void *userdata, const char *target, uint64_t *count) {
        mydb *b = userdata;

        if (!target || !*target) {
                b->host->set_error(b->ctx, "%s: delete needs a target (an IP or range as stored in ip_text)",
                                   b->where);
                return -EINVAL;
        }
        return mydb_soft_delete(b, MYDB_SQL_DELETE_TARGET, target, count);
}

static int mydb_delete_all(void *userdata, uint64_t *count) {
        return mydb_soft_delete(userdata, MYDB_SQL_DELETE_ALL, NULL, count);
}

/* ------------------------------------------------------------ timers */

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

/* A named lock, without waiting: true if we hold it now. */
static int mydb_try_lock(mydb *b, const char *name, bool *got) {
        MYSQL_BIND p[2];
        unsigned long len = 0;
        int64_t zero = 0;
        uint64_t v = 0;
        size_t n;

        memset(p, 0, sizeof p);
        p_text(&p[0], &len, name);
        p_i64(&p[1], &zero);
        if (mydb_select_ids(b, MYDB_SQL_GET_LOCK, p, &v, NULL, 1, &n, "taking the background work's lock") < 0)
                return -1;
        *got = n == 1 && v == 1;
        return 0;
}

static void mydb_unlock(mydb *b, const char *name) {
        MYSQL_BIND p[1];
        mydb_error keep = b->e;
        unsigned long len = 0;
        uint64_t v;
        size_t n;

        if (b->broken)
                return;
        memset(p, 0, sizeof p);
        p_text(&p[0], &len, name);
        (void) mydb_select_ids(b, MYDB_SQL_RELEASE_LOCK, p, &v, NULL, 1, &n, "releasing the background work's lock");
        b->e = keep;
}

/* Start one step of background work: join the batch if one is open, else
 * open a transaction of its own (*own). */
static int mydb_step_begin(mydb *b, bool *own) {
        *own = !b->in_txn;
        return *own ? mydb_query(b, "START TRANSACTION", "opening a transaction") : 0;
}

static int mydb_step_end(mydb *b, bool own, int r) {
        if (own) {
                if (r == 0 && mysql_commit(b->conn) != 0)
                        r = mydb_fail_conn(b, "committing");
                if (r < 0 && !b->broken) {
                        mydb_error keep = b->e;
                        mysql_rollback(b->conn);
                        b->e = keep;
                }
        } else if (r == 0)
                b->dirty = true;
        else
                mydb_check_txn(b);
        return r;
}

/* Soft-delete bans whose until has passed, every second. */
static int mydb_expire_tick(void *userdata, spw_usec_t now) {
        mydb *b = userdata;
        MYSQL_BIND p[4];
        MYSQL_TIME now_tm;
        int64_t limit = CHUNK_ROWS;
        uint64_t total = 0, one;
        bool got = false;
        size_t n;
        int r = 0;

        if (mydb_ensure(b) < 0) {
                b->host->set_error(b->ctx, "%s: cannot expire bans: cannot connect: %s (error %u); will try again "
                                   "in a second", b->where, b->e.msg, b->e.code);
                return connect_errno(b->e.code);
        }
        mydb_time_to_mysql(now, &now_tm);
        /* A consistent read first: most seconds there is nothing to expire,
         * and then no lock is taken, here or on the server. */
        memset(p, 0, sizeof p);
        p_now(&p[0], &now_tm);
        r = mydb_select_ids(b, MYDB_SQL_EXPIRE_PROBE, p, &one, NULL, 1, &n, "looking for expired bans");
        if (r == 0 && n == 0)
                return 0;
        if (r == 0)
                r = mydb_try_lock(b, b->lock_expire, &got);
        if (r == 0 && !got) {
                if (b->keys.debug)
                        b->host->log(b->ctx, LOG_DEBUG, "another host is expiring bans; skipping this run");
                return 0;
        }
        for (int chunk = 0; r == 0 && chunk < MAX_CHUNKS; chunk++) {
                uint64_t changed = 0;
                bool own;

                r = mydb_step_begin(b, &own);
                if (r == 0) {
                        memset(p, 0, sizeof p);
                        p_now(&p[0], &now_tm);
                        p_now(&p[1], &now_tm);
                        p_now(&p[2], &now_tm);
                        p_i64(&p[3], &limit);
                        r = mydb_run(b, MYDB_SQL_EXPIRE, p, "expiring bans");
                }
                if (r == 0)
                        changed = mysql_stmt_affected_rows(b->st[MYDB_SQL_EXPIRE]);
                r = mydb_step_end(b, own, r);
                if (r < 0)
                        break;
                total += changed;
                if (changed < CHUNK_ROWS)
                        break;
        }
        if (got)
                mydb_unlock(b, b->lock_expire);

        if (total > 0) {
                char buf[32];

                b->n_expired += total;
                if (b->keys.debug)
                        b->host->log(b->ctx, LOG_DEBUG, "expired %" PRIu64 " ban(s)", total);
                if (SPW_HAS_MEMBER(b->host, struct spw_host, set_status)) {
                        snprintf(buf, sizeof buf, "%" PRIu64, b->n_expired);
                        b->host->set_status(b->ctx, "expired", buf);
                }
        }
        if (r < 0) {
                b->host->set_error(b->ctx, "%s: cannot expire bans: %s (error %u) while %s; will try again in a "
                                   "second", b->where, b->e.msg, b->e.code, b->e.doing);
                return code_errno(b->e.code);
        }
        return 0;
}

typedef struct gc_counts {
        uint64_t by_count, by_age, signals, events;
} gc_counts;

static int cmp_u64(const void *x, const void *y) {
        uint64_t a = *(const uint64_t *) x, c = *(const uint64_t *) y;
        return a < c ? -1 : a > c;
}

/* Run a delete over ids[0..n) in groups of MYDB_GC_IN; *changed adds up the
 * rows removed. */
static int mydb_delete_ids(mydb *b, int which, const uint64_t *ids, size_t n, uint64_t *changed, const char *doing) {
        static const uint64_t none = 0;
        MYSQL_BIND p[MYDB_GC_IN];

        for (size_t i = 0; i < n; i += MYDB_GC_IN) {
                memset(p, 0, sizeof p);
                for (size_t j = 0; j < MYDB_GC_IN; j++)
                        p_u64(&p[j], i + j < n ? &ids[i + j] : &none);
                if (mydb_run(b, which, p, doing) < 0)
                        return -1;
                if (changed)
                        *changed += mysql_stmt_affected_rows(b->st[which]);
        }
        return 0;
}

/* One GC step over the picked bans (n_bans of b->pick_ban, their signals in
 * b->pick_sig) or, with bans == NULL, picked ban-less signals (b->pick_sig):
 * removes the bans, then the signals left without bans and their event
 * sequences. */
static int mydb_gc_step(mydb *b, size_t n, uint64_t *bans, gc_counts *c) {
        size_t n_sig = 0;
        bool own;
        int r;

        /* distinct signal ids */
        qsort(b->pick_sig, n, sizeof b->pick_sig[0], cmp_u64);
        for (size_t i = 0; i < n; i++)
                if (b->pick_sig[i] != 0 && (n_sig == 0 || b->pick_sig[n_sig - 1] != b->pick_sig[i]))
                        b->pick_sig[n_sig++] = b->pick_sig[i];

        r = mydb_step_begin(b, &own);
        if (r == 0 && bans)
                r = mydb_delete_ids(b, MYDB_SQL_GC_DELETE_BANS, b->pick_ban, n, bans, "removing old bans");
        if (r == 0)
                r = mydb_delete_ids(b, MYDB_SQL_GC_DELETE_SIGNALS, b->pick_sig, n_sig, &c->signals,
                                    "removing signals without bans");
        if (r == 0)
                r = mydb_delete_ids(b, MYDB_SQL_GC_DELETE_EVENTS, b->pick_sig, n_sig, &c->events,
                                    "removing the event sequences of removed signals");
        return mydb_step_end(b, own, r);
}

/* Every minute: hard-delete soft-deleted bans beyond the newest max_records
 * and older than max_records_age, with the signals and event sequences they
 * leave behind, and signals without bans older than max_records_age. */
static int mydb_gc_run(mydb *b, spw_usec_t now, gc_counts *c, int *chunks, size_t *picked) {
        MYSQL_BIND p[3];
        MYSQL_TIME cutoff;
        int64_t limit = CHUNK_ROWS, max_records = b->keys.max_records;
        uint64_t edge = 0;
        size_t n;

        *picked = CHUNK_ROWS;
        if (b->keys.max_records > 0) {
                memset(p, 0, sizeof p);
                p_i64(&p[0], &max_records);
                if (mydb_select_ids(b, MYDB_SQL_GC_COUNT_EDGE, p, &edge, NULL, 1, &n, "finding the oldest ban to keep") < 0)
                        return -1;
                for (*picked = CHUNK_ROWS; n > 0 && edge > 0 && *picked == CHUNK_ROWS && *chunks > 0; (*chunks)--) {
                        memset(p, 0, sizeof p);
                        p_u64(&p[0], &edge);
                        p_i64(&p[1], &limit);
                        if (mydb_select_ids(b, MYDB_SQL_GC_PICK_COUNT, p, b->pick_ban, b->pick_sig, CHUNK_ROWS, picked,
                                            "picking bans beyond max_records") < 0 ||
                            (*picked > 0 && mydb_gc_step(b, *picked, &c->by_count, c) < 0))
                                return -1;
                }
        }
        if (b->keys.max_records_age <= 0)
                return 0;
        mydb_time_to_mysql(now - b->keys.max_records_age, &cutoff);
        for (*picked = CHUNK_ROWS; *picked == CHUNK_ROWS && *chunks > 0; (*chunks)--) {
                memset(p, 0, sizeof p);
                p_now(&p[0], &cutoff);
                p_i64(&p[1], &limit);
                if (mydb_select_ids(b, MYDB_SQL_GC_PICK_AGE, p, b->pick_ban, b->pick_sig, CHUNK_ROWS, picked,
                                    "picking bans older than max_records_age") < 0 ||
                    (*picked > 0 && mydb_gc_step(b, *picked, &c->by_age, c) < 0))
                        return -1;
        }
        for (*picked = CHUNK_ROWS; *picked == CHUNK_ROWS && *chunks > 0; (*chunks)--) {
                memset(p, 0, sizeof p);
                p_now(&p[0], &cutoff);
                p_now(&p[1], &cutoff);
                p_i64(&p[2], &limit);
                if (mydb_select_ids(b, MYDB_SQL_GC_PICK_SIGNALS, p, b->pick_sig, NULL, CHUNK_ROWS, picked,
                                    "picking signals without bans older than max_records_age") < 0 ||
                    (*picked > 0 && mydb_gc_step(b, *picked, NULL, c) < 0))
                        return -1;
        }
        return 0;
}

static int mydb_gc_tick(void *userdata, spw_usec_t now) {
        mydb *b = userdata;
        gc_counts c = {};
        int chunks = MAX_CHUNKS, r;
        size_t picked = 0;
        bool got = false;

        if (mydb_ensure(b) < 0) {
                b->host->set_error(b->ctx, "%s: garbage collection failed: cannot connect: %s (error %u); will try "
                                   "again in a minute", b->where, b->e.msg, b->e.code);
                return connect_errno(b->e.code);
        }
        r = mydb_try_lock(b, b->lock_gc, &got);
        if (r == 0 && !got) {
                b->host->log(b->ctx, LOG_DEBUG, "another host is collecting garbage; skipping this run");
                return 0;
        }
        if (r == 0)
                r = mydb_gc_run(b, now, &c, &chunks, &picked);
        if (got)
                mydb_unlock(b, b->lock_gc);

        if (c.by_count + c.by_age + c.signals + c.events > 0) {
                char buf[32];

                b->n_collected += c.by_count + c.by_age;
                b->host->log(b->ctx, LOG_INFO,
                             "garbage collection removed %" PRIu64 " soft-deleted ban(s) (%" PRIu64
                             " beyond max_records %" PRId64 ", %" PRIu64 " older than max_records_age), "
                             "%" PRIu64 " signal(s), %" PRIu64 " event sequence(s)%s",
                             c.by_count + c.by_age, c.by_count, b->keys.max_records, c.by_age, c.signals,
                             c.events, chunks == 0 && picked == CHUNK_ROWS ? "; more left for the next run" : "");
                if (SPW_HAS_MEMBER(b->host, struct spw_host, set_status)) {
                        snprintf(buf, sizeof buf, "%" PRIu64, b->n_collected);
                        b->host->set_status(b->ctx, "collected", buf);
                }
        }
        if (r < 0) {
                b->host->set_error(b->ctx, "%s: garbage collection failed: %s (error %u) while %s; will try again "
                                   "in a minute", b->where, b->e.msg, b->e.code, b->e.doing);
                return code_errno(b->e.code);
        }
        return 0;
}

static int mydb_start_autocommit(void *userdata) {
        mydb *b = userdata;
        int r;

        if (b->keys.expire) {
                r = b->host->schedule(b->ctx, EXPIRE_INTERVAL, mydb_expire_tick, b);
                if (r < 0) {
                        b->host->set_error(b->ctx, "%s: cannot schedule ban expiry: %s", b->where, strerror(-r));
                        return r;
                }
        }
        if (b->keys.max_records > 0 || b->keys.max_records_age > 0) {
                r = b->host->schedule(b->ctx, GC_INTERVAL, mydb_gc_tick, b);
                if (r < 0) {
                        b->host->set_error(b->ctx, "%s: cannot schedule garbage collection: %s", b->where,
                                           strerror(-r));
                        return r;
                }
        }
        return 0;
}

/* ------------------------------------------------------------ init */

static int mydb_setup(mydb *b, const spw_kv *config, size_t n_config) {
        int r;

        r = mydb_configure(b, config, n_config);
        if (r < 0)
                return r;
        if (strcmp(b->db_host, "localhost") == 0)
                snprintf(b->where, sizeof b->where, "mysql://%s@localhost/%s (socket %s)", b->db_username,
                         b->db_name, b->db_socket);
        else
                snprintf(b->where, sizeof b->where, "mysql://%s@%s%s%s:%u/%s", b->db_username,
                         strchr(b->db_host, ':') ? "[" : "", b->db_host, strchr(b->db_host, ':') ? "]" : "",
                         b->db_port, b->db_name);
        lock_name(b->lock_expire, b->db_name, "expire");
        lock_name(b->lock_gc, b->db_name, "gc");

        /* once per process, thread-safe (pthread_once in libmariadb) */
        if (mysql_library_init(0, NULL, NULL) != 0) {
                b->host->set_error(b->ctx, "%s: cannot initialise the MySQL client library; the backend is not "
                                   "started", b->where);
                return -ENOMEM;
        }
        __atomic_store_n(&library_used, true, __ATOMIC_RELEASE);
        return mydb_connect(b, true);
}

static int mydb_init(spw_ctx *ctx, const struct spw_host *host, const spw_kv *config, size_t n_config,
                     void **selfp) {
        mydb *b;
        int r;

        if (!host || !SPW_HAS_MEMBER(host, struct spw_host, schedule))
                return -EPROTO;

        b = calloc(1, sizeof *b);
        if (!b) {
                host->set_error(ctx, "out of memory");
                return -ENOMEM;
        }
        b->ctx = ctx;
        b->host = host;
        b->keys = SPWP_BANDB_KEYS_DEFAULT;
        b->connect_timeout = 5 * USEC_PER_SEC;
        b->query_timeout = 30 * USEC_PER_SEC;
        b->lock_wait_timeout = 5 * USEC_PER_SEC;
        b->db_port = 3306;
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

        if (SPW_HAS_MEMBER(host, struct spw_host, set_status))
                host->set_status(ctx, "server", b->where);
        *selfp = b;
        return 0;
}

/* ------------------------------------------------------------ shutdown */

static mydb *mydb_free(mydb *b) {
        if (!b)
                return NULL;
        if (b->conn && !b->broken && b->in_txn) {
                b->host->log(b->ctx, LOG_WARNING,
                             "%s: shutting down with %" PRIu64 " signal(s) not flushed; rolled back",
                             b->where, b->n_pending);
                mysql_rollback(b->conn);
        }
        mydb_disconnect(b);
        free(b->db_host);
        free(b->db_socket);
        free(b->db_username);
        if (b->db_password) {
                explicit_bzero(b->db_password, strlen(b->db_password));
                free(b->db_password);
        }
        free(b->db_name);
        free(b->tls_ca);
        free(b);
        return NULL;
}

static void mydb_shutdown(void *userdata) {
        mydb_free(userdata);
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
        .delete_target = mydb_delete_target,
        .delete_all = mydb_delete_all,
        .shutdown = mydb_shutdown,
};

SPW_BACKEND_EXPORT(mydb_backend)
