#!/bin/bash
# SPDX-License-Identifier: MIT
# Run test-mysql with a server that does not start: it must exit 77 (meson's
# skip) and say why, not abort or pass. Usage: expect-skip.sh TEST-MYSQL ARGS...
set -u
out=$(MARIADB_SERVER_SH="$(dirname "$0")/server-fails.sh" "$@" 2>&1)
rc=$?
if [ "$rc" -ne 77 ]; then
        printf '%s\n' "$out" >&2
        echo "expect-skip: exit status $rc, expected 77 (skipped)" >&2
        exit 1
fi
if ! grep -q '^SKIP: the MariaDB server did not start' <<<"$out"; then
        printf '%s\n' "$out" >&2
        echo "expect-skip: no SKIP line saying the server did not start" >&2
        exit 1
fi
echo "ok: exit 77 with: $(grep '^SKIP' <<<"$out")"
