#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Acknowledged signals per second through real spillwayd into the mysql
backend (ack: flushed), on one MariaDB server or a 3-node Galera cluster,
with 1 or 3 daemons writing one database:

  SPW_BUILD_ROOT=build SPW_SOURCE_ROOT=. PYTHONPATH=tests/integration \\
  SPILLWAYD=build/src/daemon/spillwayd SPILLWAYCTL=build/src/ctl/spillwayctl \\
  SPW_PLUGIN_DIR=build/plugins python3 tests/galera/throughput.py [--signals N] [--window W] \
  [--mode multi-row|per-row|both]

Each daemon gets one producer connection that keeps W signals in flight;
the figure is all acknowledgements over the wall time. Prints one line per
setting."""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from spwtest import SOURCE_ROOT, Daemon, signal_obj  # noqa: E402

SERVER = os.path.join(SOURCE_ROOT, "plugins", "mysql", "tests", "mariadb-server.sh")
CLUSTER = os.path.join(SOURCE_ROOT, "tests", "galera", "galera-cluster.sh")
PROFILES = """profile: p
filter: "true"
remediation:
  ban: true
  duration: 4h
outputs:
  - plugin: bans
"""
MAIN = "queue:\n  size: 100000\n  flush_interval: 50ms\n  flush_batch: 1000\n"
SETUP = ("CREATE DATABASE spillway CHARACTER SET utf8mb4; CREATE USER 'spw'@'localhost' IDENTIFIED BY 'pw'; "
         "GRANT ALL ON spillway.* TO 'spw'@'localhost'")


def backend(hosts, mode):
    return ("name: bans\npath: mysql\nconfig:\n  db_host:\n%s  db_username: spw\n  db_password: pw\n"
            "  db_name: spillway\n  multi_row: %s\n" % ("".join("    - %s\n" % h for h in hosts),
                                                       "true" if mode == "multi-row" else "false"))


def produce(d, prefix, n, window, out):
    c = d.client()
    sem = threading.Semaphore(window)
    ok = [0]

    def reader():
        for _ in range(n):
            r = c.readline()
            if r.get("ok"):
                ok[0] += 1
            sem.release()
    t = threading.Thread(target=reader)
    t.start()
    for i in range(n):
        sem.acquire()
        c.send({"signal": signal_obj(ip="%s.%d.%d" % (prefix, i // 250, i % 250 + 1), remediation=True),
                "ack": "flushed"})
    t.join()
    c.close()
    out.append(ok[0])


def measure(sockets_per_daemon, n, window, mode):
    daemons = [Daemon({"bans": backend(h, mode)}, main=MAIN, profiles=PROFILES) for h in sockets_per_daemon]
    try:
        for d in daemons:
            d.start(wait=False)
        for d in daemons:
            d.wait_ready(60)
        out = []
        threads = [threading.Thread(target=produce, args=(d, "10.%d" % i, n, window, out))
                   for i, d in enumerate(daemons)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        secs = time.monotonic() - t0
        for d in daemons:
            d.stop()
        return sum(out), secs
    finally:
        for d in daemons:
            d.cleanup()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--signals", type=int, default=20000, help="signals per daemon")
    ap.add_argument("--window", type=int, default=2000)
    ap.add_argument("--only", choices=["server", "cluster"])
    ap.add_argument("--mode", choices=["multi-row", "per-row", "both"], default="multi-row",
                    help="the plugin's multi_row key (both: per-row then multi-row, on the same server)")
    a = ap.parse_args()
    modes = ["per-row", "multi-row"] if a.mode == "both" else [a.mode]
    if a.only != "cluster":
        d = tempfile.mkdtemp(prefix="spw-tp-")
        p = subprocess.run([SERVER, "start", d, "--watch-pid", str(os.getpid())], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        sock = dict(line.split("=", 1) for line in p.stdout.split())["MARIADB_SOCKET"]
        try:
            for mode in modes:
                for k in (1, 3):
                    subprocess.run([SERVER, "sql", d, "DROP DATABASE IF EXISTS spillway; DROP USER IF EXISTS "
                                    "'spw'@'localhost'; " + SETUP], check=True, capture_output=True)
                    ok, secs = measure([[sock]] * k, a.signals, a.window, mode)
                    print("%s: one server, %d daemon(s): %d acks in %.1f s = %.0f signals/s (load %.1f)"
                          % (mode, k, ok, secs, ok / secs, os.getloadavg()[0]), flush=True)
        finally:
            subprocess.run([SERVER, "stop", d], capture_output=True)
            shutil.rmtree(d, ignore_errors=True)
    if a.only != "server":
        d = tempfile.mkdtemp(prefix="spw-tpg-")
        p = subprocess.run([CLUSTER, "start", d, "3"], capture_output=True, text=True)
        if p.returncode != 0:
            print("cluster: did not start: %s" % p.stderr.strip().splitlines()[-1:])
            return
        env = dict(line.split("=", 1) for line in p.stdout.split())
        socks = [env["NODE%d_SOCKET" % i] for i in (1, 2, 3)]
        try:
            for mode in modes:
                for k in (1, 3):
                    subprocess.run([CLUSTER, "sql", d, "1", "DROP DATABASE IF EXISTS spillway; DROP USER IF EXISTS "
                                    "'spw'@'localhost'; " + SETUP], check=True, capture_output=True)
                    ok, secs = measure([socks[i:] + socks[:i] for i in range(k)], a.signals, a.window, mode)
                    print("%s: 3-node cluster, %d daemon(s): %d acks in %.1f s = %.0f signals/s (load %.1f)"
                          % (mode, k, ok, secs, ok / secs, os.getloadavg()[0]), flush=True)
        finally:
            subprocess.run([CLUSTER, "stop", d], capture_output=True)
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
