#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The mysql backend on a real 3-node MariaDB Galera cluster on loopback
(Debian's galera-4, nodes run as the mysql user), three spillwayd, each
with the three nodes in its db_host list, its own node first:

  - simultaneous first start on an empty database: all three start, the
    schema version table holds exactly one row;
  - kill -9 of a node while the producers stream with `ack: flushed`: its
    daemon fails over, the producers see no error, every acknowledged
    signal is in the database exactly once;
  - the background-work lease is held by exactly one daemon, and moves
    when that daemon stops.

Skipped (exit 77, with the reason) where Galera cannot start."""
import os
import shutil
import subprocess
import tempfile
import threading
import time

from spwtest import PLUGIN_DIR, SLOW, SOURCE_ROOT, Daemon, SkipTest, run, signal_obj, wait_for

CLUSTER = os.path.join(SOURCE_ROOT, "tests", "galera", "galera-cluster.sh")
PASSWORD = "Pw-galera-123"
PROFILES = """profile: default_remediation
filter: "sig.Labels.remediation == 'true' && not sig.Whitelisted"
remediation:
  ban: true
  duration: 4h
outputs:
  - plugin: bans
"""


class Cluster:
    def __init__(self):
        if not os.path.exists(os.path.join(PLUGIN_DIR, "mysql.so")):
            raise SkipTest("the mysql backend is not built (meson -Dmysql=enabled)")
        self.dir = tempfile.mkdtemp(prefix="spw-galera-")
        env = dict(os.environ)
        # the one-node template is kept in the build tree between runs
        if os.environ.get("SPW_BUILD_ROOT"):
            env.setdefault("GALERA_TEMPLATE_DIR", os.path.join(os.environ["SPW_BUILD_ROOT"], "tests", "galera-template"))
        p = subprocess.run([CLUSTER, "start", self.dir, "3"], capture_output=True, text=True, env=env,
                           timeout=300 * SLOW)
        if p.returncode == 77:
            reason = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else "Galera cannot run here"
            self.stop()
            raise SkipTest(reason)
        if p.returncode != 0:
            self.stop()
            raise AssertionError("the Galera cluster did not start:\n" + p.stderr)
        self.env = dict(line.split("=", 1) for line in p.stdout.split())
        self.sockets = [self.env["NODE%d_SOCKET" % i] for i in (1, 2, 3)]

    def sql(self, node, text):
        p = subprocess.run([CLUSTER, "sql", self.dir, str(node), text], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return p.stdout.strip()

    def kill(self, node):
        subprocess.run([CLUSTER, "kill", self.dir, str(node)], check=True, timeout=60)

    def stop(self):
        subprocess.run([CLUSTER, "stop", self.dir], capture_output=True, timeout=120)
        shutil.rmtree(self.dir, ignore_errors=True)


def backend(sockets, first):
    order = sockets[first:] + sockets[:first]
    hosts = "".join("    - %s\n" % s for s in order)
    return ("name: bans\npath: mysql\nconfig:\n  db_host:\n%s  db_username: spw\n  db_password: %s\n"
            "  db_name: spillway\n  connect_timeout: 2s\n  lease_ttl: 3s\n  failback_interval: 60s\n"
            % (hosts, PASSWORD))


def lease_holders(daemons):
    return [i for i, d in enumerate(daemons)
            if d.proc and d.proc.poll() is None and
            d.backend_status("bans").get("plugin_status", {}).get("lease") == "held"]


NUDGES = [0]


def nudge(daemons):
    """One signal through each running daemon (a flush renews or takes the lease)."""
    for d in daemons:
        if d.proc and d.proc.poll() is None:
            c = d.client()
            try:
                NUDGES[0] += 1
                ip = "172.16.%d.%d" % (NUDGES[0] // 250, NUDGES[0] % 250 + 1)
                assert c.request({"signal": signal_obj(ip=ip, remediation=True), "ack": "flushed"})["ok"]
            finally:
                c.close()
    return False


def producer(d, prefix, stop, acked, errors, slowest):
    # While the cluster evicts the killed node (evs.suspect_timeout 3 s,
    # inactive 5 s; longer on a loaded machine) the surviving nodes hold
    # their commits, so a `flushed` ack can take that long: a producer
    # that waits is not one that sees an error. The slowest ack is printed.
    c = d.client(timeout=60.0)
    n = 0
    try:
        while not stop.is_set():
            ip = "%s.%d.%d" % (prefix, n // 250, n % 250 + 1)
            n += 1
            s = signal_obj(ip=ip, remediation=True)
            t0 = time.monotonic()
            r = c.request({"signal": s, "ack": "flushed"})
            slowest[0] = max(slowest[0], time.monotonic() - t0)
            if r.get("ok"):
                acked.append(ip)
            else:
                errors.append((ip, r))
    except Exception as e:  # noqa: BLE001 - a broken producer is a failure the test reports
        errors.append(("exception", repr(e)))
    finally:
        c.close()


def test_galera_cluster():
    cl = Cluster()
    daemons = []
    try:
        cl.sql(1, "CREATE DATABASE spillway CHARACTER SET utf8mb4; "
                  "CREATE USER 'spw'@'localhost' IDENTIFIED BY '%s'; "
                  "GRANT ALL ON spillway.* TO 'spw'@'localhost'" % PASSWORD)
        daemons = [Daemon({"bans": backend(cl.sockets, i)}, profiles=PROFILES, name="g%d" % i) for i in range(3)]

        # simultaneous first start on the empty database
        for d in daemons:
            d.start(wait=False)
        for d in daemons:
            d.wait_ready(timeout=60 * SLOW)
        for d in daemons:
            st = d.backend_status("bans")
            assert st["state"] == "running", (st, d.log_tail())
        for node in (1, 2, 3):
            assert cl.sql(node, "SELECT COUNT(*) FROM spillway.spillway_schema") == "1"
        # exactly one lease holder (taken after a flush, or by the first expiry or GC run)
        nudge(daemons)
        wait_for(lambda: nudge(daemons) or len(lease_holders(daemons)) == 1, timeout=15 * SLOW,
                 what="one lease holder", interval=0.5)

        # stream with ack flushed; kill -9 node 1 (daemon 0's preferred) mid-stream
        stop = threading.Event()
        acked = [[], [], []]
        errors = []
        slowest = [0.0]
        threads = [threading.Thread(target=producer, args=(d, "10.%d" % i, stop, acked[i], errors, slowest))
                   for i, d in enumerate(daemons)]
        for t in threads:
            t.start()
        time.sleep(3)
        before_kill = sum(len(a) for a in acked)
        cl.kill(1)
        time.sleep(8)
        stop.set()
        for t in threads:
            t.join(120 * SLOW)
        print("# slowest flushed ack across the node's kill: %.2f s" % slowest[0], flush=True)
        assert not errors, (errors[:5], "slowest ack %.2f s" % slowest[0])
        after_kill = sum(len(a) for a in acked) - before_kill
        assert before_kill > 0 and after_kill > 0, (before_kill, after_kill)
        assert len(acked[0]) > 0
        log0 = daemons[0].read_log()
        assert "switched from host" in log0, daemons[0].log_tail()

        # every acknowledged signal once, as node 2 (and node 3) see it
        all_acked = [ip for a in acked for ip in a]
        for node in (2, 3):
            dup = cl.sql(node, "SELECT COUNT(*) FROM (SELECT source_ip FROM spillway.signal_occurences "
                               "GROUP BY source_ip HAVING COUNT(*) > 1) AS d")
            assert dup == "0", "%s duplicated signals on node %d" % (dup, node)
            stored = set(cl.sql(node, "SELECT source_ip FROM spillway.signal_occurences").split())
            missing = [ip for ip in all_acked if ip not in stored]
            assert not missing, "%d acknowledged signals missing on node %d: %s" % (len(missing), node, missing[:5])
        print("galera: %d signals acknowledged (%d after the kill), none lost or duplicated" %
              (len(all_acked), after_kill))

        # the lease moves when its holder stops
        holders = lease_holders(daemons)
        assert len(holders) == 1, holders
        t0 = time.monotonic()
        daemons[holders[0]].stop()
        wait_for(lambda: nudge(daemons) or len(lease_holders(daemons)) == 1, timeout=15 * SLOW,
                 what="another lease holder", interval=0.5)
        print("galera: the lease moved in %.1f s" % (time.monotonic() - t0))
        for d in daemons:
            d.stop()
    finally:
        for d in daemons:
            if d.proc and d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait()
            d.cleanup()
        cl.stop()


if __name__ == "__main__":
    run([test_galera_cluster])
