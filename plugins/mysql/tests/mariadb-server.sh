#!/bin/bash
# SPDX-License-Identifier: MIT
#
# mariadb-server.sh: a throw-away MariaDB server for tests, in a folder of
# its own, reachable over a unix socket (and 127.0.0.1 if asked), with a
# passwordless root@localhost. Used by the mysql backend's unit tests and
# benchmark, and meant for the integration tests too.
#
#   mariadb-server.sh start DIR [--port N|auto] [--watch-pid PID] [--cleanup]
#                               [-- EXTRA-MARIADBD-OPTIONS...]
#       Create DIR/data if missing (a datadir already there is reused, so
#       stop + start is a server restart), start mariadbd, wait until it
#       answers, and print shell-style lines on stdout:
#           MARIADB_SOCKET=DIR/mysql.sock
#           MARIADB_PORT=N          (0: no TCP listener)
#           MARIADB_PID=PID
#           MARIADB_DIR=DIR
#       --port auto picks a free port on 127.0.0.1; N binds 127.0.0.1:N.
#       --watch-pid PID starts a watcher that shuts the server down (kill -9
#       after 10 s) once PID has exited, however it exited (abort, SIGKILL):
#       a crashing test never leaves a server behind. --cleanup makes the
#       watcher remove DIR too.
#   mariadb-server.sh stop DIR     clean shutdown, waits for the process
#   mariadb-server.sh kill DIR     SIGKILL, as a crash would (data is kept)
#   mariadb-server.sh sql DIR SQL  run SQL as root, tab-separated output
#   mariadb-server.sh env DIR      print the lines of `start` again
#
# Exit status: 0 done, 77 the MariaDB server binaries are not installed
# (a test can pass that on as "skipped"), 1 anything else, with the reason
# and the tail of DIR/error.log on stderr.
#
# Environment: MARIADBD, MARIADB_CLIENT, MARIADB_ADMIN override the
# binaries; MARIADB_TEMPLATE_DIR names a folder where an initialised datadir
# is kept and copied from (initialising costs seconds, copying does not).
#
# The datadir is initialised with the server's own bootstrap mode and the
# system tables only (no help tables, no sys schema: ~3 s instead of ~6 s
# for mariadb-install-db, which is the fallback when the SQL files are not
# where Debian puts them).

set -u

die() {
        echo "mariadb-server.sh: $*" >&2
        exit 1
}

skip() {
        echo "mariadb-server.sh: SKIP: $*" >&2
        exit 77
}

find_bin() {
        for name in "$@"; do
                for d in /usr/sbin /usr/bin /usr/libexec /usr/local/sbin /usr/local/bin; do
                        if [ -x "$d/$name" ]; then
                                echo "$d/$name"
                                return 0
                        fi
                done
                if p=$(command -v "$name" 2>/dev/null); then
                        echo "$p"
                        return 0
                fi
        done
        return 1
}

MARIADBD=${MARIADBD:-$(find_bin mariadbd mysqld || true)}
CLIENT=${MARIADB_CLIENT:-$(find_bin mariadb mysql || true)}
ADMIN=${MARIADB_ADMIN:-$(find_bin mariadb-admin mysqladmin || true)}

need_server() {
        [ -n "$MARIADBD" ] && [ -x "$MARIADBD" ] ||
                skip "no mariadbd or mysqld found (apt install mariadb-server)"
        [ -n "$CLIENT" ] && [ -x "$CLIENT" ] || skip "no mariadb or mysql client found (apt install mariadb-client)"
        [ -n "$ADMIN" ] && [ -x "$ADMIN" ] || skip "no mariadb-admin or mysqladmin found (apt install mariadb-client)"
}

as_root_opt() {
        if [ "$(id -u)" = 0 ]; then
                echo "--user=root"
        fi
}

# Small and quick: tests, not production.
server_opts() {
        echo "--innodb-buffer-pool-size=32M --innodb-log-file-size=8M"
        echo "--innodb-data-file-path=ibdata1:12M:autoextend"
        echo "--innodb-temp-data-file-path=ibtmp1:1M:autoextend"
        echo "--innodb-use-native-aio=0 --skip-name-resolve --max-connections=200"
        echo "--innodb-buffer-pool-dump-at-shutdown=0 --innodb-buffer-pool-load-at-startup=0"
}

sql_dir() {
        for d in /usr/share/mariadb /usr/share/mysql; do
                if [ -f "$d/mysql_system_tables.sql" ] && [ -f "$d/mysql_system_tables_data.sql" ]; then
                        echo "$d"
                        return 0
                fi
        done
        return 1
}

# Initialise an empty datadir at $1 (log in $2).
bootstrap() {
        data=$1
        log=$2
        mkdir -p "$data" || die "cannot create $data"
        if d=$(sql_dir); then
                {
                        echo "create database if not exists mysql;"
                        echo "use mysql;"
                        echo "SET @auth_root_socket=NULL;"
                        cat "$d/mysql_system_tables.sql"
                        [ -f "$d/mysql_performance_tables.sql" ] && cat "$d/mysql_performance_tables.sql"
                        cat "$d/mysql_system_tables_data.sql"
                } | "$MARIADBD" --no-defaults --bootstrap --datadir="$data" $(as_root_opt) \
                        --log-warnings=0 --lc-messages=en_US --enforce-storage-engine= \
                        --max-allowed-packet=8M --net-buffer-length=16K $(server_opts) >"$log" 2>&1 && return 0
        fi
        inst=$(find_bin mariadb-install-db mysql_install_db) || { tail -20 "$log" >&2; die "cannot initialise $data"; }
        rm -rf "$data"
        "$inst" --no-defaults --datadir="$data" $(as_root_opt) --auth-root-authentication-method=normal \
                --skip-test-db $(server_opts) >>"$log" 2>&1 || { tail -20 "$log" >&2; die "cannot initialise $data (see $log)"; }
}

init_datadir() {
        data=$1
        log=$2
        if [ -d "$data/mysql" ]; then
                return 0
        fi
        if [ -n "${MARIADB_TEMPLATE_DIR:-}" ]; then
                mkdir -p "$MARIADB_TEMPLATE_DIR" || die "cannot create $MARIADB_TEMPLATE_DIR"
                # "ready" holds the server's version: another version
                # (a package upgrade) initialises the template again
                version=$("$MARIADBD" --no-defaults --version 2>/dev/null)
                (
                        flock 9
                        if [ "$(cat "$MARIADB_TEMPLATE_DIR/ready" 2>/dev/null)" != "$version" ]; then
                                rm -rf "$MARIADB_TEMPLATE_DIR/data" "$MARIADB_TEMPLATE_DIR/ready"
                                bootstrap "$MARIADB_TEMPLATE_DIR/data" "$log" &&
                                        echo "$version" >"$MARIADB_TEMPLATE_DIR/ready"
                        fi
                ) 9>"$MARIADB_TEMPLATE_DIR/lock"
                [ "$(cat "$MARIADB_TEMPLATE_DIR/ready" 2>/dev/null)" = "$version" ] ||
                        die "cannot initialise the template datadir in $MARIADB_TEMPLATE_DIR"
                cp -a "$MARIADB_TEMPLATE_DIR/data" "$data" || die "cannot copy the template datadir to $data"
                return 0
        fi
        bootstrap "$data" "$log"
}

# A random place in 20000-39999, so that servers started at the same moment
# do not scan the same ports.
random_port() {
        echo $(( 20000 + (RANDOM * 32768 + RANDOM + $$) % 20000 ))
}

# A free port on 127.0.0.1, from $1 on (default: $MARIADB_FIRST_PORT, else
# random_port).
free_port() {
        p=${1:-${MARIADB_FIRST_PORT:-$(random_port)}}
        for _ in $(seq 1 200); do
                if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
                        echo "$p"
                        return 0
                fi
                p=$(( p + 1 ))
        done
        return 1
}

print_env() {
        dir=$1
        [ -f "$dir/port" ] && port=$(cat "$dir/port") || port=0
        [ -f "$dir/mariadbd.pid" ] || die "no server running in $dir"
        echo "MARIADB_SOCKET=$dir/mysql.sock"
        echo "MARIADB_PORT=$port"
        echo "MARIADB_PID=$(cat "$dir/mariadbd.pid")"
        echo "MARIADB_DIR=$dir"
}

ping_server() {
        "$ADMIN" --no-defaults --socket="$1/mysql.sock" -uroot --connect-timeout=2 ping >/dev/null 2>&1
}

server_pid() {
        [ -f "$1/mariadbd.pid" ] && cat "$1/mariadbd.pid"
}

alive() {
        [ -n "$1" ] && kill -0 "$1" 2>/dev/null
}

cmd_start() {
        dir=$1
        shift
        port=0
        watch=
        cleanup=0
        while [ $# -gt 0 ]; do
                case $1 in
                --port) port=$2; shift 2 ;;
                --watch-pid) watch=$2; shift 2 ;;
                --cleanup) cleanup=1; shift ;;
                --) shift; break ;;
                *) die "start: unknown option $1" ;;
                esac
        done
        need_server
        mkdir -p "$dir" "$dir/tmp" || die "cannot create $dir"
        dir=$(cd "$dir" && pwd)
        if alive "$(server_pid "$dir")"; then
                die "a server already runs in $dir (pid $(server_pid "$dir"))"
        fi
        # a restart binds the same port again
        auto_port=0
        if [ "$port" = auto ]; then
                if [ -f "$dir/port" ] && [ "$(cat "$dir/port")" != 0 ]; then
                        port=$(cat "$dir/port")
                else
                        auto_port=1
                        port=$(free_port) || die "no free TCP port found on 127.0.0.1"
                fi
        fi
        init_datadir "$dir/data" "$dir/bootstrap.log"

        # A port found free may be taken by someone else (a test starting
        # its own server in parallel) before mariadbd binds it: a port we
        # chose is chosen again, up to 5 times; a port we were given is not.
        attempt=0
        while :; do
                echo "$port" >"$dir/port"
                if [ "$port" = 0 ]; then
                        net="--skip-networking"
                else
                        net="--bind-address=127.0.0.1 --port=$port"
                fi
                rm -f "$dir/mariadbd.pid" "$dir/mysql.sock"
                : >"$dir/error.log"
                # setsid: the server is not in the test's process group, so a ^C or a
                # test runner killing the group leaves it to the watcher's clean stop.
                setsid "$MARIADBD" --no-defaults $(as_root_opt) --datadir="$dir/data" --tmpdir="$dir/tmp" \
                        --socket="$dir/mysql.sock" --pid-file="$dir/mariadbd.pid" --log-error="$dir/error.log" \
                        $net $(server_opts) "$@" </dev/null >/dev/null 2>&1 &
                pid=$!
                echo "$pid" >"$dir/mariadbd.pid.launch"
                taken=0
                i=0
                while ! ping_server "$dir"; do
                        if ! alive "$pid"; then
                                if [ $auto_port = 1 ] && [ $attempt -lt 5 ] &&
                                   grep -qE 'Address already in use|another server running on port' "$dir/error.log"; then
                                        taken=1
                                        break
                                fi
                                tail -20 "$dir/error.log" >&2
                                die "mariadbd exited at start (see $dir/error.log)"
                        fi
                        i=$((i + 1))
                        if [ $i -gt 600 ]; then
                                kill -9 "$pid" 2>/dev/null
                                tail -20 "$dir/error.log" >&2
                                die "mariadbd did not answer within 30 s (see $dir/error.log)"
                        fi
                        sleep 0.05
                done
                [ $taken = 0 ] && break
                attempt=$((attempt + 1))
                echo "mariadb-server.sh: port $port was taken before mariadbd bound it; choosing another" >&2
                port=$(free_port "$(random_port)") || die "no free TCP port found on 127.0.0.1"
        done
        # the pid file appears a little after the socket answers
        i=0
        while [ ! -s "$dir/mariadbd.pid" ] && [ $i -lt 100 ]; do
                sleep 0.02
                i=$((i + 1))
        done
        [ -s "$dir/mariadbd.pid" ] || echo "$pid" >"$dir/mariadbd.pid"

        if [ -n "$watch" ]; then
                # Detached, stdio closed: it must not keep the caller's pipes open.
                setsid sh -c '
                        watch=$1 dir=$2 cleanup=$3 admin=$4 pid=$5
                        while kill -0 "$watch" 2>/dev/null && kill -0 "$pid" 2>/dev/null; do
                                sleep 0.5
                        done
                        if kill -0 "$pid" 2>/dev/null; then
                                "$admin" --no-defaults --socket="$dir/mysql.sock" -uroot shutdown 2>/dev/null ||
                                        kill "$pid" 2>/dev/null
                                i=0
                                while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
                                        sleep 0.1
                                        i=$((i + 1))
                                done
                                kill -9 "$pid" 2>/dev/null
                        fi
                        if [ "$cleanup" = 1 ] && ! kill -0 "$watch" 2>/dev/null; then
                                rm -rf "$dir"
                        fi
                ' mariadb-watch "$watch" "$dir" "$cleanup" "$ADMIN" "$pid" </dev/null >/dev/null 2>&1 &
        fi
        print_env "$dir"
}

cmd_stop() {
        dir=$1
        need_server
        pid=$(server_pid "$dir" || cat "$dir/mariadbd.pid.launch" 2>/dev/null || true)
        if ! alive "$pid"; then
                return 0
        fi
        "$ADMIN" --no-defaults --socket="$dir/mysql.sock" -uroot --connect-timeout=5 shutdown >/dev/null 2>&1 ||
                kill "$pid" 2>/dev/null
        i=0
        while alive "$pid"; do
                i=$((i + 1))
                if [ $i -gt 300 ]; then
                        echo "mariadb-server.sh: mariadbd $pid did not stop within 30 s, killing it" >&2
                        kill -9 "$pid" 2>/dev/null
                        break
                fi
                sleep 0.1
        done
        rm -f "$dir/mariadbd.pid"
}

cmd_kill() {
        dir=$1
        pid=$(server_pid "$dir" || true)
        if alive "$pid"; then
                kill -9 "$pid"
                while alive "$pid"; do
                        sleep 0.02
                done
        fi
        rm -f "$dir/mariadbd.pid"
}

[ $# -ge 2 ] || die "usage: mariadb-server.sh start|stop|kill|sql|env DIR [...]"
cmd=$1
dir=$2
shift 2
case $cmd in
start) cmd_start "$dir" "$@" ;;
stop) cmd_stop "$dir" ;;
kill) cmd_kill "$dir" ;;
env) print_env "$dir" ;;
sql)
        need_server
        [ $# -ge 1 ] || die "sql: no SQL given"
        exec "$CLIENT" --no-defaults --socket="$dir/mysql.sock" -uroot --batch --skip-column-names -e "$1"
        ;;
*) die "unknown command $cmd (start, stop, kill, sql, env)" ;;
esac
