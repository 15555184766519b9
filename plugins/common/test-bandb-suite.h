/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The ban-database test suite both backends pass: the same assertions run
 * against the sqlite plugin (real database files) and the mysql plugin (a
 * real MariaDB server), each loaded with dlopen() and driven through a
 * testhost whose clock the tests move. What differs between them (how to
 * make a database, how the test's own connection queries it, the dialect
 * of a trigger) is a table of hooks each test program fills in; each
 * program keeps the checks only its backend has (connection loss, locks
 * held by another process, migrations, query plans...).
 *
 * The test's own connection speaks both dialects' common SQL; the sqlite
 * side registers CONCAT and CONCAT_WS so that MySQL's spelling works there.
 * For test programs only; a failed check aborts.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <spillway/backend.h>

#include "test-fixtures.h"

typedef struct bandb_suite {
        const char *name;                       /* the plugin's name: "sqlite" */
        const struct spw_backend *plugin;
        const char *plugin_path;                /* the .so, for the exports test */
        const char *const *keys;                /* every config key, n_keys of them */
        size_t n_keys;
        const char *const *hidden;              /* symbols the plugin must not export, NULL-terminated */
        const char *readme;                     /* the plugin's README.md */

        /* A fresh, empty database: a file path or a database name. */
        void (*new_db)(char *buf, size_t size);
        /* Init the plugin on db with the config pairs (after the driver's
         * own defaults; a key given twice: the later one wins). Returns
         * init's result, with f->self set on success. */
        int (*open)(fixture *f, const char *db, const spw_kv *kv, size_t n);
        /* Checks on a fixture before it is freed (NULL: none). */
        void (*closing)(fixture *f);

        /* The test's own connection: run a statement; the first column of
         * the first row as an integer (-1: no row) or as text ("(null)",
         * "(none)"). */
        void (*exec)(const char *db, const char *sql);
        int64_t (*q_int)(const char *db, const char *sql);
        void (*q_text)(char *buf, size_t size, const char *db, const char *sql);
        /* A time as the database stores and returns it. */
        const char *(*fmt_time)(char buf[static 64], spw_usec_t t);

        /* Mark db as written by a newer schema version (99). */
        void (*set_newer_version)(const char *db);
        /* A ban_applications table of another layout; what the error then
         * names; and a query counting the database's tables. */
        const char *foreign_table_sql, *foreign_table_error, *count_tables_sql;
        /* Create trigger `name` that makes an INSERT (update false) of a
         * ban with reason `reason`, or an UPDATE of such a ban, fail with
         * `message`. */
        void (*add_trigger)(const char *db, const char *name, bool update, const char *reason, const char *message);
        /* What follows such a trigger's message in the plugin's errors. */
        const char *trigger_code;
        /* The driver keeps a batch's rows and writes them at flush
         * (multi-row batches): what only the server can refuse (a trigger)
         * fails the flush, the whole batch. */
        bool rows_at_flush;

        /* The bytes the database takes on disk (NULL: not measured). */
        uint64_t (*db_bytes)(const char *db);

        /* Another host holding the named lock of background work ("expire",
         * "gc"), or letting it go (NULL: one host per database). */
        void (*hold_lock)(const char *db, const char *what, bool hold);
} bandb_suite;

/* The hooks every test program has, named suite_NAME in it (and its
 * suite_keys and suite_hidden tables). */
#define BANDB_SUITE_HOOKS                                                       \
        .keys = suite_keys,                                                     \
        .n_keys = sizeof suite_keys / sizeof suite_keys[0],                     \
        .hidden = suite_hidden,                                                 \
        .open = suite_open,                                                     \
        .exec = suite_exec,                                                     \
        .q_int = suite_q_int,                                                   \
        .q_text = suite_q_text,                                                 \
        .set_newer_version = suite_set_newer_version,                           \
        .add_trigger = suite_add_trigger

/* Load the plugin named by argv[1] with dlopen(), as the daemon does, and
 * fill suite's plugin, plugin_path and readme (argv[2]). Exits 2 on a
 * wrong command line, 1 when the plugin does not load. Returns the handle
 * for dlclose(). */
void *bandb_suite_load(bandb_suite *suite, int argc, char **argv);
/* rm -rf dir (the test's temporary folder). */
void bandb_remove_tree(const char *dir);

/* The shared tests that need no database: exports, descriptor, README. */
void bandb_suite_run_static(const bandb_suite *suite);
/* The shared tests against databases, each timed on stderr. */
void bandb_suite_run(const bandb_suite *suite);

/* The fixtures, for the programs' own tests: open with extra config pairs
 * (key, value, ..., NULL) and close (through the suite's hooks). */
int bandb_fixture_open(const bandb_suite *suite, fixture *f, const char *db, ...);
int bandb_fixture_openv(const bandb_suite *suite, fixture *f, const char *db, const spw_kv *kv, size_t n);
void bandb_fixture_close(const bandb_suite *suite, fixture *f);

/* Seconds on a monotonic clock, for the timing lines. */
double bandb_now_sec(void);

/* Run one test and print its name and time: the suites have a time budget. */
/* BANDB_ONLY=name,name runs only those (a developer's shortcut). */
#define BANDB_RUN(test)                                                                 \
        do {                                                                            \
                double _t = bandb_now_sec();                                            \
                if (getenv("BANDB_ONLY") && !strstr(getenv("BANDB_ONLY"), #test))       \
                        break;                                                          \
                test();                                                                 \
                fprintf(stderr, "%-32s %6.2f s\n", #test, bandb_now_sec() - _t);        \
        } while (0)
