#!/bin/bash
# SPDX-License-Identifier: MIT
#
# galera-cluster.sh: a throw-away MariaDB Galera cluster for tests, all
# nodes on 127.0.0.1, each in DIR/nodeN, run as the `mysql` user (state
# transfer, rsync, runs as the server's user and needs to own the files).
#
#   galera-cluster.sh start DIR [N]   bootstrap node 1, join nodes 2..N (default 3)
#                                     and print, per node i:
#                                       NODEi_SOCKET=... NODEi_PORT=... NODEi_PID=...
#   galera-cluster.sh kill DIR i      SIGKILL node i (a crash)
#   galera-cluster.sh stop DIR        stop every node
#   galera-cluster.sh sql DIR i SQL   run SQL as root on node i (tab-separated)
#   galera-cluster.sh size DIR i      wsrep_cluster_size as node i sees it
#
# Exit status: 0 done, 77 Galera cannot run here (the reason on stderr:
# no galera-4 provider, no mysql user, no mariadbd, or the cluster did not
# form), 1 anything else.
#
# The first start initialises DIR/template (mariadb-install-db) and copies
# it to each node; nodes 2..N still go through a full state transfer
# (rsync) from node 1, as a real joiner does.

set -u

skip() {
        echo "galera-cluster.sh: SKIP: $*" >&2
        exit 77
}

die() {
        echo "galera-cluster.sh: $*" >&2
        exit 1
}

find_bin() {
        for name in "$@"; do
                for d in /usr/sbin /usr/bin /usr/local/sbin /usr/local/bin; do
                        [ -x "$d/$name" ] && { echo "$d/$name"; return 0; }
                done
        done
        return 1
}

MARIADBD=$(find_bin mariadbd mysqld) || true
CLIENT=$(find_bin mariadb mysql) || true
INSTALL_DB=$(find_bin mariadb-install-db mysql_install_db) || true
PROVIDER=
for p in /usr/lib/galera/libgalera_smm.so /usr/lib/libgalera_smm.so /usr/lib64/galera-4/libgalera_smm.so \
         /usr/lib/x86_64-linux-gnu/galera/libgalera_smm.so; do
        [ -f "$p" ] && { PROVIDER=$p; break; }
done

need() {
        [ -n "$MARIADBD" ] || skip "no mariadbd (apt install mariadb-server)"
        [ -n "$CLIENT" ] || skip "no mariadb client (apt install mariadb-client)"
        [ -n "$PROVIDER" ] || skip "no Galera provider libgalera_smm.so (apt install galera-4)"
        command -v rsync >/dev/null || skip "no rsync for Galera's state transfer (apt install rsync)"
        id mysql >/dev/null 2>&1 || skip "no mysql user to run the nodes as"
        [ "$(id -u)" = 0 ] || skip "not root: the nodes must run as the mysql user"
}

free_port() {
        p=$(( 21000 + (RANDOM % 20000) ))
        for _ in $(seq 1 500); do
                if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && ! grep -qx "$p" "$DIR/ports" 2>/dev/null; then
                        echo "$p" >>"$DIR/ports"
                        echo "$p"
                        return 0
                fi
                p=$(( p + 1 ))
        done
        return 1
}

node_opts() {
        i=$1
        nd=$DIR/node$i
        addr=
        for j in $(seq 1 "$N"); do
                addr="$addr${addr:+,}127.0.0.1:$(cat "$DIR/node$j/gport")"
        done
        echo "--no-defaults --user=mysql --datadir=$nd/data --socket=$nd/mysql.sock --pid-file=$nd/mariadbd.pid"
        echo "--log-error=$nd/error.log --bind-address=127.0.0.1 --port=$(cat "$nd/port") --tmpdir=$nd/tmp"
        echo "--innodb-buffer-pool-size=32M --innodb-log-file-size=16M --skip-name-resolve --max-connections=200"
        echo "--innodb-use-native-aio=0 --innodb-flush-log-at-trx-commit=2"
        echo "--binlog-format=ROW --default-storage-engine=InnoDB --innodb-autoinc-lock-mode=2"
        echo "--wsrep-on=ON --wsrep-provider=$PROVIDER --wsrep-cluster-name=spillway-test"
        echo "--wsrep-cluster-address=gcomm://$addr --wsrep-node-name=node$i"
        echo "--wsrep-node-address=127.0.0.1:$(cat "$nd/gport") --wsrep-sst-method=rsync"
        echo "--wsrep-sst-receive-address=127.0.0.1:$(cat "$nd/sport")"
        echo "--wsrep-provider-options=gmcast.listen_addr=tcp://127.0.0.1:$(cat "$nd/gport");ist.recv_addr=127.0.0.1:$(cat "$nd/iport");gcache.size=64M;evs.suspect_timeout=PT3S;evs.inactive_timeout=PT5S;evs.keepalive_period=PT0.5S;evs.inactive_check_period=PT0.5S"
}

ping_node() {
        "$CLIENT" --no-defaults --socket="$DIR/node$1/mysql.sock" -uroot --connect-timeout=2 -N -B \
                -e "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME='wsrep_ready'" \
                2>/dev/null | grep -qx ON
}

start_node() {
        i=$1
        shift
        nd=$DIR/node$i
        # shellcheck disable=SC2046
        setsid "$MARIADBD" $(node_opts "$i") "$@" </dev/null >/dev/null 2>&1 &
        echo $! >"$nd/launch.pid"
        for _ in $(seq 1 1200); do
                ping_node "$i" && return 0
                kill -0 "$(cat "$nd/launch.pid")" 2>/dev/null || {
                        tail -25 "$nd/error.log" >&2
                        return 1
                }
                sleep 0.05
        done
        tail -25 "$nd/error.log" >&2
        return 1
}

print_env() {
        for i in $(seq 1 "$N"); do
                echo "NODE${i}_SOCKET=$DIR/node$i/mysql.sock"
                echo "NODE${i}_PORT=$(cat "$DIR/node$i/port")"
                echo "NODE${i}_PID=$(cat "$DIR/node$i/mariadbd.pid" 2>/dev/null || cat "$DIR/node$i/launch.pid")"
        done
}

cmd_start() {
        need
        mkdir -p "$DIR" || die "cannot create $DIR"
        DIR=$(cd "$DIR" && pwd)
        echo "$N" >"$DIR/nodes"
        # the mysql user must reach every folder down to the nodes'
        d=$DIR
        while [ "$d" != / ]; do
                chmod o+x "$d" 2>/dev/null
                d=$(dirname "$d")
        done
        # The template: a datadir that was once a one-node cluster, stopped
        # cleanly, so that its grastate.dat holds the cluster's state id.
        # Every node starts from a copy: node 1 bootstraps the cluster from
        # that state, and the joiners, at the same position, need no state
        # transfer (a full rsync of each takes ~15 s on a loaded machine).
        T=${GALERA_TEMPLATE_DIR:-$DIR/template}
        mkdir -p "$T"
        (
                flock 9
                if [ ! -f "$T/ready" ]; then
                        rm -rf "$T/data" "$T/node0"
                        "$INSTALL_DB" --no-defaults --user=mysql --datadir="$T/data" --skip-test-db \
                                --auth-root-authentication-method=socket >"$T/install.log" 2>&1 ||
                                { tail -20 "$T/install.log" >&2; exit 1; }
                        chown -R mysql: "$T"
                        mkdir -p "$T/node0/tmp"
                        free_port >"$T/node0/port"; free_port >"$T/node0/gport"
                        free_port >"$T/node0/iport"; free_port >"$T/node0/sport"
                        chown -R mysql: "$T/node0"
                        # shellcheck disable=SC2046
                        ( DIR=$T; N=0; nd=$T/node0
                          setsid "$MARIADBD" $(node_opts 0 | sed "s|--datadir=[^ ]*|--datadir=$T/data|;s|gcomm://[^ ]*|gcomm://|") \
                                --wsrep-new-cluster </dev/null >/dev/null 2>&1 &
                          pid=$!
                          for _ in $(seq 1 1200); do
                                "$CLIENT" --no-defaults --socket="$nd/mysql.sock" -uroot -N -B -e "SELECT 1" \
                                        >/dev/null 2>&1 && break
                                kill -0 $pid 2>/dev/null || exit 1
                                sleep 0.05
                          done
                          kill $pid
                          while kill -0 $pid 2>/dev/null; do sleep 0.05; done ) ||
                                { tail -20 "$T/node0/error.log" >&2; exit 1; }
                        grep -q '^uuid:' "$T/data/grastate.dat" || exit 1
                        touch "$T/ready"
                fi
        ) 9>"$T.lock" || skip "cannot make a one-node Galera template (see $T/node0/error.log)"
        for i in $(seq 1 "$N"); do
                nd=$DIR/node$i
                mkdir -p "$nd/tmp"
                [ -d "$nd/data" ] || cp -a "$T/data" "$nd/data"
                for k in port gport iport sport; do
                        [ -f "$nd/$k" ] || free_port >"$nd/$k" || die "no free port"
                done
                chown -R mysql: "$nd"
        done
        # Node 1 bootstraps the cluster from the template's state; the
        # joiners, a few transactions behind (view changes are written to
        # mysql.wsrep_cluster*), catch up by IST, together.
        start_node 1 --wsrep-new-cluster || skip "the first Galera node did not start (see $DIR/node1/error.log)"
        for i in $(seq 2 "$N"); do
                start_node "$i" &
                echo $! >"$DIR/node$i/starter"
        done
        for i in $(seq 2 "$N"); do
                wait "$(cat "$DIR/node$i/starter")" || skip "Galera node $i did not join (see $DIR/node$i/error.log)"
        done
        print_env
}

node_pid() {
        cat "$DIR/node$1/mariadbd.pid" 2>/dev/null || cat "$DIR/node$1/launch.pid" 2>/dev/null
}

[ $# -ge 2 ] || die "usage: galera-cluster.sh start|kill|stop|sql|size DIR [...]"
cmd=$1
DIR=$2
shift 2
N=3
[ -f "$DIR/nodes" ] && N=$(cat "$DIR/nodes")
case $cmd in
start)
        [ $# -ge 1 ] && N=$1
        cmd_start
        ;;
kill)
        pid=$(node_pid "$1")
        [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
        while [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.02; done
        rm -f "$DIR/node$1/mariadbd.pid"
        ;;
stop)
        for i in $(seq "$N" -1 1); do
                pid=$(node_pid "$i")
                [ -n "$pid" ] && kill "$pid" 2>/dev/null
        done
        for i in $(seq 1 "$N"); do
                pid=$(node_pid "$i")
                for _ in $(seq 1 300); do
                        [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break
                        sleep 0.1
                done
                [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
                rm -f "$DIR/node$i/mariadbd.pid"
        done
        ;;
sql)
        exec "$CLIENT" --no-defaults --socket="$DIR/node$1/mysql.sock" -uroot --batch --skip-column-names -e "$2"
        ;;
size)
        exec "$CLIENT" --no-defaults --socket="$DIR/node$1/mysql.sock" -uroot -N -B \
                -e "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME='wsrep_cluster_size'"
        ;;
*) die "unknown command $cmd" ;;
esac
