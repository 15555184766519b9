#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The daemon's life cycle without systemd (issue 4): reloads while
producers keep sending lose nothing and keep unchanged backends' workers,
an invalid configuration on reload leaves the old one running, exit on idle
leaves cleanly with nothing lost, and the journal catalog explains every
MESSAGE_ID the code sends."""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from spwtest import (SLOW, SOURCE_ROOT, Client, Daemon, mock_backend, run, signal_obj, wait_for)


def entries(path):
    """A mock record file as (ids, other lines)."""
    ids, other = [], []
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if parts and parts[0].isdigit():
                    ids.append(int(parts[0]))
                elif parts:
                    other.append(line.strip())
    except FileNotFoundError:
        pass
    return ids, other


def worker_tids(pid, name):
    tids = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                if f.read().strip() == "spw-" + name:
                    tids.append(int(tid))
        except FileNotFoundError:
            pass
    return tids


class Producer(threading.Thread):
    """One connection sending signals until told to stop; keeps the
    acknowledged ids and every reply that was not a clean acceptance."""

    def __init__(self, d, n, ack):
        super().__init__(daemon=True)
        self.d, self.n, self.ack = d, n, ack
        self.stop = threading.Event()
        self.acked = []
        self.bad = []
        self.error = None

    def run(self):
        try:
            c = self.d.client()
            i = 0
            while not self.stop.is_set():
                # a few pipelined signals per round trip
                batch = [signal_obj(scenario="p%d/%d" % (self.n, i + k), ip="198.51.100.%d" % ((i + k) % 250 + 1))
                         for k in range(5)]
                for s in batch:
                    c.send({"signal": s, "ack": self.ack} if self.ack == "flushed" else s)
                for _ in batch:
                    r = c.readline()
                    if r.get("ok") and "unavailable" not in r and "dropped" not in r:
                        self.acked.append(r["id"])
                    else:
                        self.bad.append(r)
                i += len(batch)
                time.sleep(0.005)
            c.close()
        except Exception as e:  # reported by the test
            self.error = e


def test_ten_reloads_under_load_lose_nothing():
    with Daemon({}) as d:
        keep = d.path("keep.log")

        def config(gen):
            # "swap" changes at every reload (a new record file, so each
            # instance's deliveries can be told apart): it is replaced. "keep"
            # never changes: it must keep its queue and worker thread.
            d.write_config({"keep": mock_backend("keep", keep),
                            "swap": mock_backend("swap", d.path("swap-%d.log" % gen), delay="1ms" if gen % 2 else "0")},
                           main="queue:\n  flush_interval: 20ms\n")

        config(0)
        d.start()
        tids = worker_tids(d.proc.pid, "keep")
        assert len(tids) == 1, tids
        producers = [Producer(d, n, "flushed" if n % 2 else "queued") for n in range(4)]
        for p in producers:
            p.start()
        wait_for(lambda: all(len(p.acked) > 20 for p in producers), what="producers under way")
        for gen in range(1, 11):
            config(gen)
            before = d.status()["reloads"]
            d.signal(signal.SIGHUP)
            wait_for(lambda: d.status()["reloads"] == before + 1, what="reload %d" % gen)
            time.sleep(0.15)
        time.sleep(0.3)
        for p in producers:
            p.stop.set()
        for p in producers:
            p.join(30 * SLOW)
            assert not p.is_alive(), "a producer is stuck"
            assert p.error is None, "producer %d: %r" % (p.n, p.error)
            assert not p.bad, "producer %d got replies that were not clean acceptances: %s" % (p.n, p.bad[:3])
        st = d.status()
        assert st["reloads"] == 10 and "reload_error" not in st, st
        assert worker_tids(d.proc.pid, "keep") == tids, "the unchanged backend's worker was replaced"
        acked = sorted(i for p in producers for i in p.acked)
        assert len(acked) > 200, len(acked)
        assert d.stop() == 0
        # every acknowledged signal reached both backends exactly once
        keep_ids, keep_other = entries(keep)
        assert sorted(keep_ids) == acked, "keep: %d acked, %d delivered, missing %s" % (
            len(acked), len(keep_ids), sorted(set(acked) - set(keep_ids))[:10])
        assert keep_other == ["shutdown"], keep_other  # one instance, shut down once, at the end
        swap_ids = []
        for gen in range(11):
            ids, other = entries(d.path("swap-%d.log" % gen))
            swap_ids += ids
            assert other == ["shutdown"], "swap generation %d: %s" % (gen, other)  # each instance drained and stopped
        assert sorted(swap_ids) == acked, "swap: %d acked, %d delivered, missing %s" % (
            len(acked), len(swap_ids), sorted(set(acked) - set(swap_ids))[:10])


def test_invalid_config_on_reload_keeps_the_old_one():
    with Daemon({}) as d:
        a = d.path("a.log")
        d.write_config({"a": mock_backend("a", a)})
        d.start(notify=True)
        wait_for(lambda: d.notify.seen("READY=1"), what="READY=1")
        with open(d.config, "w") as f:
            f.write("queue:\n  flush_interval: 50ms\n  sise: 10\n")     # unknown key
        with open(os.path.join(d.dir, "plugins", "backend", "b.yaml"), "w") as f:
            f.write(mock_backend("b", d.path("b.log")))
        # the first step of ExecReload= refuses it
        chk = subprocess.run(d.args(["--check-config"]), capture_output=True, text=True, timeout=30)
        assert chk.returncode == 1 and "sise" in chk.stderr and "did you mean" in chk.stderr, chk.stderr
        d.signal(signal.SIGHUP)
        wait_for(lambda: "reload_error" in d.status(), what="the reload error in status")
        st = d.status()
        assert "spillway.yaml:3" in st["reload_error"] and "sise" in st["reload_error"], st["reload_error"]
        assert [b["name"] for b in st["backends"]] == ["a"], st["backends"]
        wait_for(lambda: len(d.notify.seen("READY=1")) >= 2, what="READY=1 after the failed reload")
        assert d.notify.seen("RELOADING=1")
        wait_for(lambda: [m for m in d.notify.seen("STATUS=") if "last reload failed" in m and "sise" in m],
                 what="STATUS= naming the failure")
        assert "reload failed, the previous configuration keeps running" in d.read_log()
        r = d.client().request({"signal": signal_obj(scenario="after-failed-reload"), "ack": "flushed"})
        assert r["ok"], r
        # fixed: the reload goes through and the new backend starts
        with open(d.config, "w") as f:
            f.write("queue:\n  flush_interval: 50ms\n")
        d.signal(signal.SIGHUP)
        wait_for(lambda: [b["name"] for b in d.status()["backends"]] == ["a", "b"], what="backend b after the fix")
        assert "reload_error" not in d.status()
        assert d.stop() == 0
        assert "after-failed-reload" in open(a).read()


def test_reload_with_a_slow_backend_keeps_serving():
    # A new backend whose init takes 3 s: the reload prepares it off the
    # event loop, so status requests, signals and the watchdog are served
    # meanwhile by the old configuration; the swap happens when it is ready.
    with Daemon({}) as d:
        m = d.path("m.log")
        d.write_config({"m": mock_backend("m", m)})
        d.start(notify=True, watchdog_usec=2000000)
        wait_for(lambda: d.notify.seen("READY=1"), what="READY=1")
        d.write_config({"m": mock_backend("m", m), "slow": mock_backend("slow", d.path("slow.log"), init_delay="3s")})
        adm = d.client(admin=True)
        t0 = time.monotonic()
        adm.send({"op": "reload"})
        worst, probes, accepted = 0.0, 0, []
        while time.monotonic() - t0 < 2.5:
            p0 = time.monotonic()
            st = d.status()
            worst = max(worst, time.monotonic() - p0)
            probes += 1
            assert [b["name"] for b in st["backends"]] == ["m"], st["backends"]   # the old configuration serves
            r = d.client().request(signal_obj(scenario="during-reload"))
            assert r["ok"], r
            accepted.append(r["id"])
            time.sleep(0.05)
        assert worst < 0.5 * SLOW, "a status request took %.2fs during the reload" % worst
        assert probes >= 10, probes
        pings = len(d.notify.seen("WATCHDOG=1"))
        r = adm.readline()
        assert r["ok"] and r["backends"] == 2, r
        assert time.monotonic() - t0 >= 2.9, "the reload answered before the slow backend was ready"
        st = d.status()
        assert [(b["name"], b["state"]) for b in st["backends"]] == [("m", "running"), ("slow", "running")], st["backends"]
        assert st["reloads"] == 1, st
        assert pings >= 2, "watchdog pings during the reload: %d" % pings
        r = d.client().request({"signal": signal_obj(scenario="after-reload"), "ack": "flushed"})
        assert r["ok"], r
        assert d.stop() == 0
        ids, _ = entries(m)
        assert set(accepted) <= set(ids), sorted(set(accepted) - set(ids))
        assert "after-reload" in open(d.path("slow.log")).read()


def test_stop_during_a_slow_reload():
    # SIGTERM while a reload is still preparing: the daemon waits for it,
    # discards it (the new backend is shut down), and exits cleanly.
    with Daemon({}) as d:
        d.write_config({"m": mock_backend("m", d.path("m.log"))})
        d.start()
        d.write_config({"m": mock_backend("m", d.path("m.log")), "slow": mock_backend("slow", d.path("slow.log"), init_delay="2s")})
        d.signal(signal.SIGHUP)
        time.sleep(0.5)
        t0 = time.monotonic()
        assert d.stop() == 0, d.read_log()
        assert time.monotonic() - t0 < 10 * SLOW
        assert open(d.path("slow.log")).read().strip().splitlines()[-1] == "shutdown"
        assert "reload" in d.read_log()


def test_exit_on_idle_leaves_cleanly_and_loses_nothing():
    with Daemon({}) as d:
        log = d.path("m.log")
        d.write_config({"m": mock_backend("m", log, delay="200ms")},
                       main="exit_on_idle: 1s\nqueue:\n  flush_interval: 50ms\n")
        d.start(notify=True)
        c = d.client()
        ids = [c.request(signal_obj(scenario="idle/%d" % i))["id"] for i in range(5)]  # queued: 1 s of work
        r = c.request({"signal": signal_obj(scenario="idle/flushed"), "ack": "flushed"})
        assert r["ok"], r
        ids.append(r["id"])
        # an open connection is not idle
        time.sleep(2.0 * SLOW)
        assert d.proc.poll() is None, "exited with a client connected"
        c.close()
        t = time.monotonic()
        rc = d.proc.wait(15 * SLOW)
        assert rc == 0, "exit status %d:\n%s" % (rc, d.read_log())
        assert time.monotonic() - t >= 0.8, "exited before the idle time"
        delivered, other = entries(log)
        assert sorted(delivered) == sorted(ids), (delivered, ids)
        assert other == ["shutdown"], other
        assert d.notify.seen("STOPPING=1")
        assert "stopping (idle)" in d.read_log(), d.read_log()
        assert not os.path.exists(d.ingest), "left its socket behind"


def test_exit_on_idle_waits_for_the_queues():
    with Daemon({}) as d:
        log = d.path("m.log")
        d.write_config({"m": mock_backend("m", log, delay="300ms")},
                       main="exit_on_idle: 500ms\nqueue:\n  flush_interval: 50ms\n")
        d.start()
        c = d.client()
        ids = [c.request(signal_obj(scenario="q/%d" % i))["id"] for i in range(8)]  # 2.4 s of work
        c.close()
        # no client for longer than exit_on_idle, but the queue is not empty:
        # still running and listening
        time.sleep(1.3)
        assert d.proc.poll() is None, "exited with signals still queued"
        c = d.client()
        r = c.request(signal_obj(scenario="q/late"))
        assert r["ok"], r
        ids.append(r["id"])
        c.close()
        assert d.proc.wait(15 * SLOW) == 0
        assert sorted(entries(log)[0]) == sorted(ids)


def test_out_of_file_descriptors_pauses_accepting():
    """Under systemd, LimitNOFILE= can be below max_connections. A full
    descriptor table must not make the daemon spin on its listener (and flood
    the journal); waiting connections are served once descriptors free up."""
    import resource
    with Daemon({}) as d:
        d.write_config({"m": mock_backend("m", d.path("m.log"))})
        d.start()
        resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE, (128, 128))
        clients = []
        for i in range(200):   # more than the daemon can hold: the rest wait in the backlog
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(d.ingest)
            clients.append(s)
        time.sleep(1.0)
        assert d.proc.poll() is None
        warnings = d.read_log().count("accept on the ingest socket failed")
        assert 1 <= warnings <= 2, "%d accept warnings in 1 s" % warnings
        assert "pausing accepts" in d.read_log()
        # the daemon still answers on a connection it holds
        first = Client.__new__(Client)
        first.sock, first.buf = clients[0], b""
        first.sock.settimeout(10 * SLOW)
        assert first.request(signal_obj(scenario="fd/first"))["ok"]
        # free descriptors: the last connection, from the backlog, is served
        for s in clients[1:100]:
            s.close()
        last = Client.__new__(Client)
        last.sock, last.buf = clients[-1], b""
        last.sock.settimeout(10 * SLOW)
        assert last.request({"signal": signal_obj(scenario="fd/last"), "ack": "flushed"})["ok"]
        for s in clients[100:]:
            s.close()
        first.close()
        assert d.stop() == 0


# ------------------------------------------------------------------ catalog

CATALOG = os.path.join(SOURCE_ROOT, "src", "daemon", "spillway.catalog")
MESSAGES = os.path.join(SOURCE_ROOT, "src", "engine", "msgid.h")


def parse_catalog(path):
    """Parse a journal catalog strictly (the format of journalctl
    --update-catalog): '-- ID [LANG]' headers, 'Key: value' lines up to a
    blank line, then the text. Returns {id: (headers, text)}."""
    out = {}
    cur = None
    in_headers = False
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            m = re.match(r"^-- ([0-9a-f]{32})( [a-z]{2}(_[A-Z]{2})?)?$", line)
            if line.startswith("--"):
                assert m, "%s:%d: bad entry header %r (expected '-- <32 lowercase hex>')" % (path, n, line)
                assert m.group(1) not in out, "%s:%d: duplicate id %s" % (path, n, m.group(1))
                cur = m.group(1)
                out[cur] = ({}, [])
                in_headers = True
                continue
            if cur is None:
                assert line == "" or line.startswith("#"), "%s:%d: text before the first entry" % (path, n)
                continue
            if in_headers:
                if line == "":
                    in_headers = False
                    continue
                hm = re.match(r"^([A-Za-z-]+): (.+)$", line)
                assert hm, "%s:%d: bad header line %r" % (path, n, line)
                out[cur][0][hm.group(1)] = hm.group(2)
            else:
                out[cur][1].append(line)
    return out


def test_catalog_covers_every_message_id():
    with open(MESSAGES) as f:
        ids = dict((m.group(2), m.group(1)) for m in
                   re.finditer(r'#define\s+(SPW_MESSAGE_\w+)\s+"([0-9a-fA-F]+)"', f.read()))
    assert len(ids) >= 10, ids
    for i, name in ids.items():
        assert re.fullmatch(r"[0-9a-f]{32}", i), "%s: %s is not 32 lowercase hex digits" % (name, i)
    cat = parse_catalog(CATALOG)
    missing = [name for i, name in ids.items() if i not in cat]
    assert not missing, "no catalog entry for %s" % missing
    orphans = [i for i in cat if i not in ids]
    assert not orphans, "catalog entries for ids the code does not define: %s" % orphans
    sources = ""
    for root in ("src", "plugins"):
        for dirpath, _, files in os.walk(os.path.join(SOURCE_ROOT, root)):
            for fn in files:
                if fn.endswith(".c"):
                    with open(os.path.join(dirpath, fn), errors="replace") as f:
                        sources += f.read()
    for i, (headers, text) in cat.items():
        for key in ("Subject", "Defined-By", "Support"):
            assert headers.get(key), "%s (%s): no %s" % (i, ids[i], key)
        assert any(t.strip() for t in text), "%s (%s): no text" % (i, ids[i])
        assert ids[i] in sources, "%s is never logged" % ids[i]
        # every @FIELD@ the text uses is a field the code sends
        for field in re.findall(r"@([A-Z0-9_]+)@", headers["Subject"] + "\n".join(text)):
            assert '"%s"' % field in sources, "%s (%s) uses @%s@, which no code sends" % (i, ids[i], field)

    # and journalctl itself accepts the file
    if not shutil.which("journalctl"):
        return
    root = tempfile.mkdtemp(prefix="spw-catalog-")
    try:
        os.makedirs(os.path.join(root, "usr", "lib", "systemd", "catalog"))
        shutil.copy(CATALOG, os.path.join(root, "usr", "lib", "systemd", "catalog", "spillway.catalog"))
        p = subprocess.run(["journalctl", "--root", root, "--update-catalog"], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and not p.stderr.strip(), "journalctl --update-catalog: %s" % p.stderr
        p = subprocess.run(["journalctl", "--root", root, "--list-catalog"], capture_output=True, text=True, timeout=60)
        listed = {line.split()[0] for line in p.stdout.splitlines() if line.strip()}
        assert listed == set(ids), (sorted(listed), sorted(ids))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    run([
        test_ten_reloads_under_load_lose_nothing,
        test_invalid_config_on_reload_keeps_the_old_one,
        test_reload_with_a_slow_backend_keeps_serving,
        test_stop_during_a_slow_reload,
        test_exit_on_idle_leaves_cleanly_and_loses_nothing,
        test_exit_on_idle_waits_for_the_queues,
        test_out_of_file_descriptors_pauses_accepting,
        test_catalog_covers_every_message_id,
    ])
