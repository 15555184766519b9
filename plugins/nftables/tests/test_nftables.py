#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The nftables backend with real packets (issue 13).

Two network namespaces joined by a veth pair: "host" runs the real
spillwayd (nftables + sqlite backends) and a TCP listener; "attacker" has
192.0.2.7, 2001:db8::7 and a few more addresses and tries real TCP
connections from each. Needs root, `ip` and `nft`; otherwise it exits 77
(skip) and says why. The namespaces are removed whatever happens."""
import atexit
import json
import os
import shutil
import subprocess
import sys
import time

from spwtest import Daemon, SLOW, run, signal_obj, wait_for

PID = os.getpid()
HOST_NS = "spwh%d" % PID
ATTACKER_NS = "spwa%d" % PID
PORT = 8022
IP = os.environ.get("IP") or shutil.which("ip") or "/usr/sbin/ip"
NFT = os.environ.get("NFT") or shutil.which("nft") or "/usr/sbin/nft"
HOST4, HOST6 = "192.0.2.1", "2001:db8::1"
ATTACKER = ["192.0.2.7", "192.0.2.8", "192.0.2.9", "192.0.2.20", "192.0.2.30",
            "2001:db8::7", "2001:db8::8", "2001:db8::1:0:0:5"]

PROFILES = """profile: short
filter: "sig.Scenario == 'test/short'"
remediation:
  ban: true
  duration: 3s
outputs:
  - plugin: nftables
  - plugin: sqlite
---
profile: default_remediation
filter: "sig.Labels.remediation == 'true' && not sig.Whitelisted && sig.Scenario != 'test/short'"
remediation:
  ban: true
  duration: 4h
outputs:
  - plugin: nftables
  - plugin: sqlite
"""
NFTABLES = """name: nftables
path: nftables
flush_interval: 20ms
config:
  check_interval: 500ms
  never_ban: 127.0.0.0/8, ::1/128, 169.254.0.0/16, fe80::/10, 192.0.2.9/32
"""
SQLITE = "name: sqlite\npath: sqlite\nconfig:\n  db_path: bans.db\n"
MAIN = "ban_backend: sqlite\nqueue:\n  flush_interval: 20ms\n"

LISTENER = r"""
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", int(sys.argv[1])))
s.listen(128)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    c.close()
"""

# Reads "SRC DST PORT TIMEOUT" lines, answers "1" (connected) or "0".
CONNECTOR = r"""
import socket, sys
for line in sys.stdin:
    src, dst, port, timeout = line.split()
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(float(timeout))
    try:
        s.bind((src, 0))
        s.connect((dst, int(port)))
        print("1", flush=True)
    except OSError:
        print("0", flush=True)
    finally:
        s.close()
"""


def sh(*args, check=True):
    p = subprocess.run(list(args), capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError("%s: exit %d: %s" % (" ".join(args), p.returncode, p.stderr.strip()))
    return p


def in_host(*args, check=True):
    return sh(IP, "netns", "exec", HOST_NS, *args, check=check)


def skip(why):
    print("1..0 # SKIP %s" % why, flush=True)
    sys.exit(77)


class Net:
    """The two namespaces, the listener and the connector."""

    def __init__(self):
        self.procs = []
        atexit.register(self.cleanup)
        sh(IP, "netns", "add", HOST_NS)
        sh(IP, "netns", "add", ATTACKER_NS)
        veth_h, veth_a = "vh%d" % PID, "va%d" % PID
        sh(IP, "link", "add", veth_h[:15], "netns", HOST_NS, "type", "veth", "peer", "name", veth_a[:15], "netns", ATTACKER_NS)
        for ns, dev, addrs in ((HOST_NS, veth_h, [HOST4 + "/24", HOST6 + "/64"]),
                               (ATTACKER_NS, veth_a, [a + ("/64" if ":" in a else "/24") for a in ATTACKER])):
            for a in addrs:
                extra = ["nodad"] if ":" in a else []
                sh(IP, "-n", ns, "addr", "add", a, "dev", dev[:15], *extra)
            sh(IP, "-n", ns, "link", "set", dev[:15], "up")
            sh(IP, "-n", ns, "link", "set", "lo", "up")
        self.listener = subprocess.Popen([IP, "netns", "exec", HOST_NS, sys.executable, "-c", LISTENER, str(PORT)],
                                         stdout=subprocess.PIPE, text=True)
        self.procs.append(self.listener)
        assert self.listener.stdout.readline().strip() == "listening"
        self.connector = subprocess.Popen([IP, "netns", "exec", ATTACKER_NS, sys.executable, "-c", CONNECTOR],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.procs.append(self.connector)

    def connects(self, src, timeout=0.3):
        dst = HOST6 if ":" in src else HOST4
        self.connector.stdin.write("%s %s %d %s\n" % (src, dst, PORT, timeout * SLOW))
        self.connector.stdin.flush()
        return self.connector.stdout.readline().strip() == "1"

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.procs = []
        for ns in (HOST_NS, ATTACKER_NS):
            subprocess.run([IP, "netns", "del", ns], capture_output=True)


class HostDaemon(Daemon):
    """spillwayd inside the host namespace."""

    def args(self, extra=()):
        return [IP, "netns", "exec", HOST_NS] + super().args(extra)


def future_signal(ip, scenario="crowdsecurity/ssh-bf"):
    s = signal_obj(scenario=scenario, ip=ip, remediation=True)
    now = time.time()
    s["start_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 20))
    s["stop_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    return s


def stop_clean(d):
    """Stop the daemon; it must exit 0 with no sanitizer report."""
    rc = d.stop()
    log = d.read_log()
    assert rc == 0, "spillwayd exited %s:\n%s" % (rc, log[-3000:])
    for bad in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        assert bad not in log, log[-5000:]


def send(d, sig):
    c = d.client()
    try:
        t0 = time.monotonic()
        r = c.request({"signal": sig, "ack": "flushed"})
        assert r["ok"], r
        return time.monotonic() - t0
    finally:
        c.close()


def status_value(d, key):
    b = d.backend_status("nftables")
    for where in (b, b.get("status") or {}, b.get("plugin_status") or {}):
        if isinstance(where, dict) and key in where:
            return int(where[key])
    raise AssertionError("no %s in the nftables backend's status: %s" % (key, json.dumps(b)))


NET = None


def test_bans_become_drops():
    with HostDaemon({"nftables": NFTABLES, "sqlite": SQLITE}, main=MAIN, profiles=PROFILES) as d:
        d.start()
        wait_for(lambda: "nftables" in [b["name"] for b in d.status()["backends"]
                                        if b.get("state") == "running"], 10, "the nftables backend to run")
        # before any ban, everyone connects
        for a in ATTACKER:
            assert NET.connects(a, timeout=2), "%s cannot connect before any ban" % a
        # a signal routed to a ban: dropped as soon as the ack says flushed
        send(d, future_signal("192.0.2.7"))
        assert not NET.connects("192.0.2.7"), "192.0.2.7 still connects after its ban was flushed"
        assert NET.connects("192.0.2.8"), "192.0.2.8 (not banned) cannot connect"
        send(d, future_signal("2001:db8::7"))
        assert not NET.connects("2001:db8::7"), "2001:db8::7 still connects after its ban"
        assert NET.connects("2001:db8::8"), "2001:db8::8 (not banned) cannot connect"
        # the same target again: replaced, not an error
        send(d, future_signal("192.0.2.7", scenario="crowdsecurity/http-probing"))
        assert not NET.connects("192.0.2.7")
        in_host(NFT, "list", "table", "inet", "spillway")
        # the status shows the elements and the drops (read every check_interval)
        wait_for(lambda: status_value(d, "elements_ipv4") == 1 and status_value(d, "elements_ipv6") == 1
                 and status_value(d, "dropped_packets") > 0, 5, "element counts and drop counters in status")
        # `ban list --backend nftables`: what this host enforces
        rows = json.loads(d.ctl("-o", "json", "ban", "list", "--backend", "nftables", check=0).stdout)["rows"]
        assert sorted(r["iptext"] for r in rows) == ["192.0.2.7", "2001:db8::7"], rows

        # ban del reaches every ban backend: it connects again
        p = d.ctl("ban", "del", "ip", "192.0.2.7", check=0)
        assert NET.connects("192.0.2.7", timeout=2), "192.0.2.7 cannot connect after `ban del`: " + p.stdout
        assert not NET.connects("2001:db8::7")

        # an allow-listed address is never dropped, and the refusal is logged
        send(d, future_signal("192.0.2.9"))
        assert NET.connects("192.0.2.9", timeout=2), "never_ban address 192.0.2.9 was dropped"
        wait_for(lambda: "refusing to enforce the ban of 192.0.2.9" in d.read_log(), 5, "the never_ban warning")
        assert "scenario crowdsecurity/ssh-bf" in d.read_log()
        wait_for(lambda: status_value(d, "refused_never_ban") == 1, 5, "refused_never_ban in status")

        # a remediation other than ban is not enforced
        d.ctl("ban", "add", "ip", "192.0.2.8", "1h", "captcha", "only", "--remediation", "captcha", check=0)
        assert NET.connects("192.0.2.8", timeout=2), "a captcha decision was enforced as a drop"
        wait_for(lambda: status_value(d, "not_enforced") >= 1, 5, "not_enforced in status")

        # a range ban covers the whole range (and nothing outside it)
        d.ctl("ban", "add", "range", "192.0.2.16/28", "1h", "noisy", "subnet", check=0)
        assert not NET.connects("192.0.2.20") and not NET.connects("192.0.2.30"), "the range ban leaks"
        assert NET.connects("192.0.2.8", timeout=2)
        d.ctl("ban", "add", "range", "2001:db8:0:0:1::/80", "1h", "v6", "range", check=0)
        assert not NET.connects("2001:db8::1:0:0:5"), "the IPv6 range ban leaks"
        assert NET.connects("2001:db8::8", timeout=2)
        # a narrower range inside it, then the wider one deleted: the narrower one holds
        d.ctl("ban", "add", "range", "192.0.2.16/29", "1h", "narrow", check=0)
        d.ctl("ban", "del", "range", "192.0.2.16/28", check=0)
        assert NET.connects("192.0.2.30", timeout=2), "192.0.2.30 still dropped after its range was deleted"
        assert not NET.connects("192.0.2.20"), "192.0.2.20 (in the narrower range) connects"

        # a short ban lets the address back in after expiry, by the kernel
        send(d, future_signal("192.0.2.8", scenario="test/short"))
        assert not NET.connects("192.0.2.8"), "the short ban is not enforced"
        t0 = time.monotonic()
        wait_for(lambda: NET.connects("192.0.2.8", timeout=0.2), 8, "the 3 s ban of 192.0.2.8 to expire")
        assert time.monotonic() - t0 < 4.5 * SLOW

        # someone flushes the whole ruleset: enforcement comes back by itself
        in_host(NFT, "flush", "ruleset")
        t0 = time.monotonic()
        wait_for(lambda: not NET.connects("2001:db8::7", timeout=0.2), 5, "the ban of 2001:db8::7 to come back")
        took = time.monotonic() - t0
        wait_for(lambda: "restored it with" in d.read_log(), 5, "the restore journal entry")
        assert not NET.connects("192.0.2.20") and not NET.connects("2001:db8::1:0:0:5"), "ranges were not restored"
        assert NET.connects("192.0.2.30", timeout=2)
        print("# enforcement back %.2f s after `nft flush ruleset` (check_interval 500ms)" % took)
        assert status_value(d, "restored") >= 1

        # stop: the table stays (keep_on_stop), so a restart opens no gap
        stop_clean(d)
        assert not NET.connects("2001:db8::7"), "the ban went away with the daemon (keep_on_stop: true)"
        d.start()
        wait_for(lambda: "kept in the kernel sets (from the copy saved at the last stop)" in d.read_log(), 10,
                 "the adoption of the elements saved at stop")
        assert not NET.connects("2001:db8::7")
        rows = json.loads(d.ctl("-o", "json", "ban", "list", "--backend", "nftables", check=0).stdout)["rows"]
        assert "2001:db8::7" in [r["iptext"] for r in rows], rows
        # a crash leaves no saved copy: the next start reads the kernel's sets
        d.signal(9)
        d.proc.wait()
        assert not NET.connects("2001:db8::7")
        for sock in (d.admin, d.ingest):   # left behind by the kill: wait for the new ones
            os.unlink(sock)
        d.start()
        wait_for(lambda: "kept in the kernel sets (read from the kernel)" in d.read_log(), 10,
                 "the adoption of the kernel's elements")
        rows = json.loads(d.ctl("-o", "json", "ban", "list", "--backend", "nftables", check=0).stdout)["rows"]
        assert "2001:db8::7" in [r["iptext"] for r in rows], rows
        # an adopted element is replaced like any other (its timeout too)
        d.ctl("ban", "add", "ip", "2001:db8::7", "2s", "short", "now", check=0)
        wait_for(lambda: NET.connects("2001:db8::7", timeout=0.2), 6, "the replaced 2 s ban of 2001:db8::7 to expire")
        # a saved copy is only trusted for the same table: deleted and made
        # again meanwhile (someone's nft), the copy is dropped
        stop_clean(d)
        assert os.path.exists(d.path("state", "nftables-nftables.elements"))
        in_host(NFT, "delete", "table", "inet", "spillway")
        kept = d.read_log().count("kept in the kernel sets")
        d.start()
        assert d.read_log().count("kept in the kernel sets") == kept, d.read_log()[-2000:]
        assert not os.path.exists(d.path("state", "nftables-nftables.elements"))
        # the deleted table took its bans with it; the ban database (the
        # truth) gave them back before READY=1 (ban sync)
        rows = json.loads(d.ctl("-o", "json", "ban", "list", "--backend", "nftables", check=0).stdout)["rows"]
        stored = json.loads(d.ctl("-o", "json", "ban", "list", "--backend", "sqlite", check=0).stdout)["rows"]
        # (what nftables enforces: `ban` decisions, not on the never_ban list)
        enforced = [r["iptext"] for r in stored if r["action"] == "ban" and r["iptext"] != "192.0.2.9"]
        assert rows and sorted(r["iptext"] for r in rows) == sorted(enforced), (rows, stored)
        assert not NET.connects("192.0.2.20")
        # ban flush empties the sets
        d.ctl("ban", "add", "ip", "2001:db8::7", "1h", "again", check=0)
        d.ctl("ban", "add", "range", "192.0.2.16/28", "1h", "again", check=0)
        d.ctl("ban", "add", "range", "2001:db8:0:0:1::/80", "1h", "again", check=0)
        for a in ("2001:db8::7", "192.0.2.20", "2001:db8::1:0:0:5"):
            assert not NET.connects(a), "%s not dropped" % a
        d.ctl("ban", "flush", check=0)
        for a in ("2001:db8::7", "192.0.2.20", "2001:db8::1:0:0:5"):
            assert NET.connects(a, timeout=2), "%s still dropped after `ban flush`" % a
        stop_clean(d)


def test_keep_on_stop_false_and_reject():
    backend = NFTABLES.replace("config:\n", "config:\n  keep_on_stop: false\n  verdict: reject\n  hooks: input,forward\n  priority: -5\n")
    with HostDaemon({"nftables": backend, "sqlite": SQLITE}, main=MAIN, profiles=PROFILES) as d:
        d.start()
        wait_for(lambda: "nftables" in [b["name"] for b in d.status()["backends"] if b.get("state") == "running"],
                 10, "the nftables backend to run")
        send(d, future_signal("192.0.2.7"))
        # reject answers at once (a refused connection, not a timeout)
        t0 = time.monotonic()
        assert not NET.connects("192.0.2.7", timeout=3)
        assert time.monotonic() - t0 < 1.0 * SLOW, "verdict reject did not answer quickly"
        listing = in_host(NFT, "list", "table", "inet", "spillway").stdout
        assert "hook forward priority filter - 5" in listing and "reject" in listing, listing
        stop_clean(d)
        assert in_host(NFT, "list", "table", "inet", "spillway", check=False).returncode != 0, \
            "keep_on_stop: false left the table"
        assert NET.connects("192.0.2.7", timeout=2)


def test_latency_figures():
    """Signal -> flushed ack (the kernel transaction is committed before the
    ack) for sequential producers: figures, with the default flush_interval
    (200ms) and with 20ms. Only sanity is asserted."""
    profiles = PROFILES.replace("  - plugin: sqlite\n", "")
    for flush in (None, "20ms"):
        backend = NFTABLES.replace("flush_interval: 20ms\n", "" if flush is None else "flush_interval: %s\n" % flush)
        with HostDaemon({"nftables": backend}, main="", profiles=profiles) as d:
            d.start()
            wait_for(lambda: "nftables" in [b["name"] for b in d.status()["backends"] if b.get("state") == "running"],
                     10, "the nftables backend to run")
            c = d.client()
            lat = []
            for i in range(60):
                t0 = time.monotonic()
                r = c.request({"signal": future_signal("198.51.100.%d" % (i + 1)), "ack": "flushed"})
                lat.append(time.monotonic() - t0)
                assert r["ok"], r
            c.close()
            lat.sort()
            p50, p99 = lat[len(lat) // 2] * 1000, lat[int(len(lat) * 0.99) - 1] * 1000
            print("# signal -> kernel set (flushed ack), flush_interval %s: p50 %.1f ms, p99 %.1f ms (%d signals)" %
                  (flush or "200ms (default)", p50, p99, len(lat)))
            assert p99 < 2000 * SLOW, lat
            listing = in_host(NFT, "list", "set", "inet", "spillway", "addr4").stdout
            assert "198.51.100.60" in listing, listing
            stop_clean(d)


def test_bad_config_is_refused():
    bad = NFTABLES.replace("config:\n", "config:\n  table: ip6 spillway\n")
    with HostDaemon({"nftables": bad, "sqlite": SQLITE}, main=MAIN, profiles=PROFILES) as d:
        d.start()
        wait_for(lambda: "table: expected `inet NAME`" in d.read_log(), 10, "the config error")
        d.stop()


if __name__ == "__main__":
    if os.geteuid() != 0:
        skip("needs root (network namespaces and nftables)")
    if not os.path.exists(NFT) or not os.path.exists(IP):
        skip("needs nft and ip (Debian: nftables, iproute2)")
    if sh(IP, "netns", "add", "spwprobe%d" % PID, check=False).returncode != 0:
        skip("cannot create a network namespace here")
    sh(IP, "netns", "del", "spwprobe%d" % PID)
    NET = Net()
    try:
        run([test_bans_become_drops, test_keep_on_stop_false_and_reject, test_latency_figures, test_bad_config_is_refused])
    finally:
        NET.cleanup()
