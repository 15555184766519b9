#!/bin/bash
# SPDX-License-Identifier: MIT
# mariadb-server.sh start --port auto, when the port it found free is taken
# before mariadbd binds it (a test starting its own server in parallel): it
# must choose another port and start, not fail (a failed start makes the
# MySQL tests skip). The port is held bound (not listening: a connect test
# still finds it free) by this script. Usage: port-taken.sh MARIADB-SERVER-SH
set -u
server=$1
command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || { echo "SKIP: mariadbd is not installed"; exit 77; }
dir=$(mktemp -d /tmp/spw-port-taken-XXXXXX)
python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
time.sleep(300)' >"$dir/held" &
holder=$!
trap '"$server" stop "$dir/srv" >/dev/null 2>&1; kill $holder 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do [ -s "$dir/held" ] && break; sleep 0.05; done
read -r held <"$dir/held"
out=$(MARIADB_FIRST_PORT=$held "$server" start "$dir/srv" --port auto 2>&1)
rc=$?
port=$(sed -n 's/^MARIADB_PORT=//p' <<<"$out")
if [ "$rc" -ne 0 ] || [ -z "$port" ] || [ "$port" = "$held" ]; then
        printf '%s\n' "$out" >&2
        echo "port-taken: exit status $rc, port '$port' (held: $held); expected a start on another port" >&2
        exit 1
fi
if ! grep -q "port $held was taken before mariadbd bound it" <<<"$out"; then
        printf '%s\n' "$out" >&2
        echo "port-taken: no line saying port $held was taken" >&2
        exit 1
fi
echo "ok: port $held was held, the server started on $port"
