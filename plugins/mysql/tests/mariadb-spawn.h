/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A throw-away MariaDB server for C tests, through tests/mariadb-server.sh
 * (path in $MARIADB_SERVER_SH, set by meson). The script starts a watcher
 * with --watch-pid getpid(): a test that aborts never leaves a server
 * running. Root connects over the socket without a password.
 */

#include <stdbool.h>
#include <sys/types.h>

#include <mysql.h>

/* The script's exit status when the server binaries are not installed. */
#define MARIADB_SKIP 77

typedef struct mariadb_server {
        char dir[256];          /* the server's folder (datadir, socket, logs) */
        char socket[300];
        int port;               /* 127.0.0.1 TCP port, 0 when none */
        pid_t pid;
        bool tcp;               /* started with --port auto */
        char extra[1024];       /* extra mariadbd options, space-separated, kept for restarts */
} mariadb_server;

/* Start a server in dir (created; an existing datadir is reused). With tcp,
 * it also listens on a free port of 127.0.0.1. extra: mariadbd options
 * separated by spaces, or NULL. Returns 0, MARIADB_SKIP when the server is
 * not installed, or -1 (and prints why). */
int mariadb_start(mariadb_server *s, const char *dir, bool tcp, const char *extra);
/* Clean shutdown. */
int mariadb_stop(mariadb_server *s);
/* SIGKILL, as a crash: the data stays. */
int mariadb_kill(mariadb_server *s);
/* Start again in the same folder, on the same port. */
int mariadb_restart(mariadb_server *s);

/* A root connection over the socket (database db, or none), or NULL and a
 * message on stderr. */
MYSQL *mariadb_connect_root(const mariadb_server *s, const char *db);
