#!/bin/bash
# SPDX-License-Identifier: MIT
# A stand-in for mariadb-server.sh whose server never starts (a broken
# installation: the binaries are there, mariadbd exits at once).
echo "server-fails.sh: mariadbd exited with status 1 during start-up (stand-in for a broken server)" >&2
exit 1
