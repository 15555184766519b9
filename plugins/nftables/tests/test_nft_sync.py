#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The ban database drives the kernel sets (issue 13, ban sync; issue 15,
ban history shared between hosts), with real packets.

- restart: the table is deleted while the daemon is down; at READY=1 the
  bans stored in SQLite are already in the kernel again (rebuilt from the
  ban database before the daemon said it was ready);
- two daemons in two host namespaces sharing one real MariaDB: a ban made
  on one is dropped by the other within sync_interval (+ a margin), a
  deletion likewise, and a third ban of an IP within 24h gets the escalated
  duration whichever host made the earlier two.

Root, `ip`, `nft` (and MariaDB's server for the second test); otherwise
each test is skipped (exit 77 when nothing ran) and says why."""
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_nftables as T  # noqa: E402  (the namespaces and helpers)
from spwtest import SLOW, SOURCE_ROOT, run, start_mariadb, wait_for  # noqa: E402

HOST2_NS = "spwg%d" % T.PID
HOST2_4 = "198.51.100.1"
ATTACKER2 = ["198.51.100.7", "198.51.100.8"]
SERVER = os.path.join(SOURCE_ROOT, "plugins", "mysql", "tests", "mariadb-server.sh")
SYNC = 0.5   # sync_interval of the tests, seconds

MAIN_SQLITE = "ban_backend: sqlite\nqueue:\n  flush_interval: 20ms\nbans:\n  sync_interval: 500ms\n"
MAIN_MYSQL = "ban_backend: bans\nqueue:\n  flush_interval: 20ms\nbans:\n  sync_interval: 500ms\n"

# CrowdSec's documented form; the decisions go to every backend that
# stores or enforces bans (bans/sqlite and nftables)
ESCALATE = """name: escalating_ip_remediation
filters:
 - Alert.Remediation == true && Alert.GetScope() == "Ip"
decisions:
 - type: ban
   duration: 4h
duration_expr: Sprintf('%dh', (GetDecisionsSinceCount(Alert.GetValue(), "24h") + 1) * 4)
on_success: break
"""


class Host2Daemon(T.Daemon):
    def args(self, extra=()):
        return [T.IP, "netns", "exec", HOST2_NS] + super().args(extra)


def ready_seen(d):
    if d.proc.poll() is not None:
        raise AssertionError("spillwayd exited during start:\n" + d.read_log())
    return bool(d.notify.seen("READY=1"))


def test_restart_enforces_sqlite_bans_before_ready():
    with T.HostDaemon({"nftables": T.NFTABLES, "sqlite": T.SQLITE}, main=MAIN_SQLITE, profiles=ESCALATE) as d:
        d.start()
        T.send(d, T.future_signal("192.0.2.7"))
        d.ctl("ban", "add", "range", "2001:db8::1:0:0:0/96", "1h", "range", check=0)
        assert not T.NET.connects("192.0.2.7") and not T.NET.connects("2001:db8::1:0:0:5")
        T.stop_clean(d)
        # the kernel forgets everything while the daemon is down
        T.in_host(T.NFT, "delete", "table", "inet", "spillway")
        assert T.NET.connects("192.0.2.7", timeout=2)
        for sock in (d.admin, d.ingest):
            if os.path.exists(sock):
                os.unlink(sock)
        d.start(notify=True, wait=False)
        wait_for(lambda: ready_seen(d), 15, "READY=1")
        # right at READY=1: the elements are there and drop
        sets = T.in_host(T.NFT, "list", "table", "inet", "spillway").stdout
        assert "192.0.2.7" in sets and "2001:db8:0:0:1::/96" in sets, sets
        assert not T.NET.connects("192.0.2.7"), "192.0.2.7 not dropped at READY=1"
        assert not T.NET.connects("2001:db8::1:0:0:5"), "the range not dropped at READY=1"
        assert T.NET.connects("192.0.2.8", timeout=2)
        log = d.read_log()
        start = log.rindex("ban sync: following sqlite")
        assert "ban sync: active bans of sqlite loaded" in log[start:], log[start:]
        assert log.index("ban sync: active bans of sqlite loaded", start) < log.index("started:", start), log[start:]
        T.stop_clean(d)


class Net2:
    """A second host namespace with its own veth to the attacker."""

    def __init__(self):
        T.sh(T.IP, "netns", "add", HOST2_NS)
        vh, va = ("vg%d" % T.PID)[:15], ("vb%d" % T.PID)[:15]
        T.sh(T.IP, "link", "add", vh, "netns", HOST2_NS, "type", "veth", "peer", "name", va, "netns", T.ATTACKER_NS)
        T.sh(T.IP, "-n", HOST2_NS, "addr", "add", HOST2_4 + "/24", "dev", vh)
        for a in ATTACKER2:
            T.sh(T.IP, "-n", T.ATTACKER_NS, "addr", "add", a + "/24", "dev", va)
        for ns, dev in ((HOST2_NS, vh), (T.ATTACKER_NS, va)):
            T.sh(T.IP, "-n", ns, "link", "set", dev, "up")
        T.sh(T.IP, "-n", HOST2_NS, "link", "set", "lo", "up")
        self.listener = subprocess.Popen([T.IP, "netns", "exec", HOST2_NS, sys.executable, "-c", T.LISTENER,
                                          str(T.PORT)], stdout=subprocess.PIPE, text=True)
        assert self.listener.stdout.readline().strip() == "listening"

    def cleanup(self):
        if self.listener.poll() is None:
            self.listener.kill()
            self.listener.wait()
        subprocess.run([T.IP, "netns", "del", HOST2_NS], capture_output=True)


def connects(src, dst, timeout=0.3):
    c = T.NET.connector
    c.stdin.write("%s %s %d %s\n" % (src, dst, T.PORT, timeout * SLOW))
    c.stdin.flush()
    return c.stdout.readline().strip() == "1"


def mysql_backend(sock):
    return ("name: bans\npath: mysql\nconfig:\n  db_socket: %s\n  db_username: spw\n  db_password: Pw-123\n"
            "  db_name: spillway\n" % sock)


def until_true(cond, limit):
    """Seconds until cond() holds (polling), or fail after `limit`."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > limit * SLOW:
            raise AssertionError("not within %.1fs" % (limit * SLOW))
        time.sleep(0.02)
    return time.monotonic() - t0


def test_two_hosts_one_mariadb():
    srv, env = start_mariadb("Pw-123")
    net2 = Net2()
    try:
        bans = mysql_backend(env["MARIADB_SOCKET"])
        with T.HostDaemon({"nftables": T.NFTABLES, "bans": bans}, main=MAIN_MYSQL, profiles=ESCALATE) as a, \
             Host2Daemon({"nftables": T.NFTABLES, "bans": bans}, main=MAIN_MYSQL, profiles=ESCALATE) as b:
            a.start()
            b.start()
            ip = ATTACKER2[0]
            assert connects(ip, HOST2_4, timeout=2), "%s cannot reach host B before any ban" % ip
            # a ban made on A is dropped on B within sync_interval and a margin
            T.send(a, T.future_signal(ip))
            took = until_true(lambda: not connects(ip, HOST2_4, timeout=0.1), SYNC + 2.0)
            print("# ban on A -> dropped on B: %.0f ms (sync_interval %.0f ms)" % (took * 1000, SYNC * 1000), flush=True)
            # a deletion on A: B lets it in again
            a.ctl("ban", "del", "ip", ip, check=0)
            took = until_true(lambda: connects(ip, HOST2_4, timeout=0.1), SYNC + 2.0)
            print("# delete on A -> allowed on B: %.0f ms" % (took * 1000), flush=True)
            # the third ban within 24h is 12h, whichever host made the first two
            ip = ATTACKER2[1]
            T.send(a, T.future_signal(ip))                           # A: 4h
            until_true(lambda: not connects(ip, HOST2_4, timeout=0.1), SYNC + 2.0)  # B knows it
            T.send(b, T.future_signal(ip))                           # B: 8h
            wait_for(lambda: b.status()["ban_history"]["sync"]["walks"] > 0, 5, "B's sync")
            time.sleep(SYNC * 3 * SLOW)                               # A learns B's ban
            T.send(a, T.future_signal(ip))                           # A: 12h
            assert "ban %s for 4h" % ip in a.read_log(), a.read_log()[-3000:]
            assert "ban %s for 8h" % ip in b.read_log(), b.read_log()[-3000:]
            assert "ban %s for 12h" % ip in a.read_log(), a.read_log()[-3000:]
            T.stop_clean(a)
            T.stop_clean(b)
    finally:
        net2.cleanup()
        subprocess.run([SERVER, "stop", srv], capture_output=True)
        shutil.rmtree(srv, ignore_errors=True)


if __name__ == "__main__":
    if os.geteuid() != 0:
        T.skip("needs root (network namespaces and nftables)")
    if not os.path.exists(T.NFT) or not os.path.exists(T.IP):
        T.skip("needs nft and ip (Debian: nftables, iproute2)")
    if T.sh(T.IP, "netns", "add", "spwprobe%d" % T.PID, check=False).returncode != 0:
        T.skip("cannot create a network namespace here")
    T.sh(T.IP, "netns", "del", "spwprobe%d" % T.PID)
    T.NET = T.Net()
    try:
        run([test_restart_enforces_sqlite_bans_before_ready, test_two_hosts_one_mariadb])
    finally:
        T.NET.cleanup()
