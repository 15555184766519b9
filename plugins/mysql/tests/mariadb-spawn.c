/* SPDX-License-Identifier: MIT */
/*
 * Running tests/mariadb-server.sh from C: start parses the script's
 * KEY=VALUE lines; everything else is the script's job (see its header), so
 * the Python integration tests and these C tests start servers the same way.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mariadb-spawn.h"

/* Run the script with args; its stdout into out (if not NULL). Returns its
 * exit status, or -1. */
static int run_script(const char *const *args, char *out, size_t out_size) {
        const char *script = getenv("MARIADB_SERVER_SH");
        const char *argv[48];
        int fds[2], status, n = 0;
        size_t got = 0;
        pid_t pid;

        if (!script || !*script) {
                fprintf(stderr, "mariadb-spawn: $MARIADB_SERVER_SH is not set (meson test sets it)\n");
                return -1;
        }
        argv[n++] = "/bin/bash";
        argv[n++] = script;
        for (; *args && n < 47; args++)
                argv[n++] = *args;
        argv[n] = NULL;
        if (pipe(fds) < 0)
                return -1;
        pid = fork();
        if (pid < 0)
                return -1;
        if (pid == 0) {
                dup2(fds[1], STDOUT_FILENO);
                /* nothing else: an inherited client socket would keep a
                 * server session alive after the test closed it */
                close_range(3, ~0U, 0);
                execv(argv[0], (char *const *) argv);
                _exit(127);
        }
        close(fds[1]);
        for (;;) {
                char buf[512];
                ssize_t k = read(fds[0], buf, sizeof buf);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                if (out && got + (size_t) k < out_size) {
                        memcpy(out + got, buf, (size_t) k);
                        got += (size_t) k;
                }
        }
        if (out)
                out[got] = 0;
        close(fds[0]);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int start(mariadb_server *s) {
        const char *args[40];
        char out[2048], watch[32], extra[sizeof s->extra];
        char *save = NULL, *line;
        int n = 0, r;

        snprintf(watch, sizeof watch, "%d", (int) getpid());
        args[n++] = "start";
        args[n++] = s->dir;
        args[n++] = "--watch-pid";
        args[n++] = watch;
        if (s->tcp) {
                args[n++] = "--port";
                args[n++] = "auto";
        }
        args[n++] = "--";
        snprintf(extra, sizeof extra, "%s", s->extra);
        for (char *t = strtok_r(extra, " ", &save); t && n < 38; t = strtok_r(NULL, " ", &save))
                args[n++] = t;
        args[n] = NULL;

        r = run_script(args, out, sizeof out);
        if (r != 0)
                return r == MARIADB_SKIP ? MARIADB_SKIP : -1;
        for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                if (strncmp(line, "MARIADB_SOCKET=", 15) == 0)
                        snprintf(s->socket, sizeof s->socket, "%s", line + 15);
                else if (strncmp(line, "MARIADB_PORT=", 13) == 0)
                        s->port = atoi(line + 13);
                else if (strncmp(line, "MARIADB_PID=", 12) == 0)
                        s->pid = (pid_t) atoi(line + 12);
        }
        if (!s->socket[0] || s->pid <= 0) {
                fprintf(stderr, "mariadb-spawn: the script printed no socket or pid\n");
                return -1;
        }
        return 0;
}

int mariadb_start(mariadb_server *s, const char *dir, bool tcp, const char *extra) {
        memset(s, 0, sizeof *s);
        snprintf(s->dir, sizeof s->dir, "%s", dir);
        snprintf(s->extra, sizeof s->extra, "%s", extra ? extra : "");
        s->tcp = tcp;
        return start(s);
}

int mariadb_restart(mariadb_server *s) {
        return start(s);
}

int mariadb_stop(mariadb_server *s) {
        const char *args[] = { "stop", s->dir, NULL };
        return run_script(args, NULL, 0) == 0 ? 0 : -1;
}

int mariadb_kill(mariadb_server *s) {
        const char *args[] = { "kill", s->dir, NULL };
        return run_script(args, NULL, 0) == 0 ? 0 : -1;
}

MYSQL *mariadb_connect_root(const mariadb_server *s, const char *db) {
        MYSQL *m = mysql_init(NULL);
        unsigned protocol = MYSQL_PROTOCOL_SOCKET;

        if (!m)
                return NULL;
        mysql_options(m, MYSQL_OPT_PROTOCOL, &protocol);
        mysql_options(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
        if (!mysql_real_connect(m, "localhost", "root", NULL, db, 0, s->socket, 0)) {
                fprintf(stderr, "mariadb-spawn: cannot connect as root to %s: %s\n", s->socket, mysql_error(m));
                mysql_close(m);
                return NULL;
        }
        return m;
}
