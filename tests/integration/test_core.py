#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The core of issue 2 with the real daemon: fan-out to every backend,
full-queue policies, retries, init failures, acknowledgement levels, stop
draining, and bad input of every kind."""
import os
import signal
import socket
import subprocess
import time

from spwtest import (MOCK, SLOW, SOURCE_ROOT, Client, Daemon, SkipTest, mock_backend, recorded, run, signal_obj, wait_for)


def test_signal_reaches_every_backend():
    with Daemon({}) as d:
        a, b = d.path("a.log"), d.path("b.log")
        d.write_config({"a": mock_backend("a", a), "b": mock_backend("b", b), "n": "name: n\npath: null\n"})
        d.start()
        c = d.client()
        replies = [c.request(signal_obj(ip="192.0.2.%d" % i)) for i in range(1, 21)]
        assert all(r["ok"] and r["ack"] == "queued" for r in replies), replies
        ids = sorted(r["id"] for r in replies)
        wait_for(lambda: len(recorded(a)) == 20 and len(recorded(b)) == 20, what="both mocks to commit 20 signals")
        assert [x[0] for x in recorded(a)] == ids  # in order
        assert [x[0] for x in recorded(b)] == ids
        wait_for(lambda: d.backend_status("n")["inserted"] == 20, what="null backend to count 20")
        # each worker thread is named after its backend
        names = set()
        for tid in os.listdir("/proc/%d/task" % d.proc.pid):
            with open("/proc/%d/task/%s/comm" % (d.proc.pid, tid)) as f:
                names.add(f.read().strip())
        assert {"spw-a", "spw-b", "spw-n"} <= names, names
        assert d.stop() == 0


def test_flushed_ack_only_after_flush():
    with Daemon({}) as d:
        log = d.path("m.log")
        # an idle worker waits a second for company before it commits: a
        # flushed ack must wait for that commit, a queued one must not
        d.write_config({"m": mock_backend("m", log, flush_interval="1s", flush_delay="1s", flush_batch=100000)})
        d.start()
        c = d.client()
        t0 = time.monotonic()
        r = c.request(signal_obj())
        assert r["ok"] and r["ack"] == "queued"
        assert time.monotonic() - t0 < 0.5
        t0 = time.monotonic()
        c.send({"signal": signal_obj(scenario="durable"), "ack": "flushed"})
        r = c.readline()
        elapsed = time.monotonic() - t0
        assert r["ok"] and r["ack"] == "flushed", r
        # when the ack arrives, the mock has committed the signal
        assert r["id"] in [x[0] for x in recorded(log)], recorded(log)
        assert elapsed > 0.2, elapsed  # it waited for the flush
        d.stop()


def test_group_commit_of_many_producers():
    with Daemon({}) as d:
        log = d.path("m.log")
        d.write_config({"m": mock_backend("m", log, flush_interval="300ms", flush_delay="300ms", flush_batch=100000)})
        d.start()
        clients = [d.client() for _ in range(8)]
        for i, c in enumerate(clients):
            c.send({"signal": signal_obj(scenario="p%d" % i), "ack": "flushed"})
        replies = [c.readline() for c in clients]
        assert all(r["ok"] for r in replies), replies
        flushes = d.backend_status("m")["flushes"]
        assert flushes <= 3, "8 producers' signals should share a few flushes, got %d" % flushes
        d.stop()


def test_slow_backend_drop_oldest_does_not_slow_others():
    with Daemon({}) as d:
        fast, slow = d.path("fast.log"), d.path("slow.log")
        d.write_config({"fast": mock_backend("fast", fast),
                        "slow": mock_backend("slow", slow, delay="200ms", queue_size=5, on_full="drop_oldest")})
        d.start()
        c = d.client()
        t0 = time.monotonic()
        for i in range(200):
            c.send(signal_obj(ip="198.51.100.%d" % (i % 250)))
        replies = [c.readline() for _ in range(200)]
        elapsed = time.monotonic() - t0
        assert all(r["ok"] for r in replies)
        assert elapsed < 5, "producer was slowed down by the slow backend: %.1fs" % elapsed
        assert any("dropped" in r for r in replies), "replies should name the backend that dropped"
        wait_for(lambda: len(recorded(fast)) == 200, what="fast backend to get all 200")
        st = d.backend_status("slow")
        assert st["dropped"] > 150, st
        assert "queue full" in d.read_log() and "dropping" in d.read_log()
        d.stop()


def test_block_policy_pushes_back_with_error():
    with Daemon({}) as d:
        d.write_config({"m": mock_backend("m", d.path("m.log"), delay="3s", queue_size=1, on_full="block",
                                          block_timeout="500ms", max_retry=0)})
        d.start()
        c = d.client()
        r1 = c.request(signal_obj(scenario="one"))   # taken by the worker, which sleeps 3s
        assert r1["ok"]
        wait_for(lambda: d.backend_status("m")["queue"]["depth"] == 0, what="worker to take the first signal")
        r2 = c.request(signal_obj(scenario="two"))   # fills the queue
        assert r2["ok"]
        t0 = time.monotonic()
        r3 = c.request(signal_obj(scenario="three"))  # blocks, then errors
        waited = time.monotonic() - t0
        assert not r3["ok"], r3
        assert "block_timeout" in r3["error"] and "retry later" in r3["error"], r3
        assert 0.4 < waited < 2.5, waited
        # the connection stays usable and other clients were served meanwhile
        assert d.status()["signals"]["blocked_timeouts"] == 1
        d.stop()


def test_block_policy_waits_for_room():
    with Daemon({}) as d:
        log = d.path("m.log")
        d.write_config({"m": mock_backend("m", log, delay="100ms", queue_size=2, on_full="block", block_timeout="10s")})
        d.start()
        c = d.client()
        for i in range(10):
            c.send(signal_obj(scenario="s%d" % i))
        replies = [c.readline() for _ in range(10)]
        assert all(r["ok"] for r in replies), replies
        wait_for(lambda: len(recorded(log)) == 10, what="all 10 delivered")
        assert [x[1] for x in recorded(log)] == ["s%d" % i for i in range(10)]
        d.stop()


def test_transient_failures_are_retried():
    with Daemon({}) as d:
        log = d.path("m.log")
        d.write_config({"m": mock_backend("m", log, mode="transient", fail_count=3, retry_backoff="20ms", max_retry=5)})
        d.start()
        c = d.client()
        c.send({"signal": signal_obj(), "ack": "flushed"})
        r = c.readline()
        assert r["ok"], r
        st = d.backend_status("m")
        assert st["retried"] == 3 and st["failed"] == 0, st
        assert len(recorded(log)) == 1
        d.stop()


def test_retries_exhausted_and_permanent_failures():
    with Daemon({}) as d:
        d.write_config({"t": mock_backend("t", d.path("t.log"), mode="transient", retry_backoff="10ms", max_retry=2),
                        "p": mock_backend("p", d.path("p.log"), mode="permanent"),
                        "ok": mock_backend("ok", d.path("ok.log"))})
        d.start()
        c = d.client()
        r = c.request({"signal": signal_obj(), "ack": "flushed"})
        assert not r["ok"], r
        assert "backend 't'" in r["error"] or "backend 'p'" in r["error"], r
        assert len(recorded(d.path("ok.log"))) == 1  # the healthy backend got it anyway
        st = d.backend_status("t")
        assert st["retried"] == 2 and st["failed"] == 1, st
        assert "gave up after 2 retries" in st["last_error"] or "transient" in st["last_error"], st
        assert d.backend_status("p")["failed"] == 1
        assert "rejected signal" in d.read_log()
        d.stop()


def test_flush_failure_reinserts_batch():
    with Daemon({}) as d:
        log = d.path("m.log")
        d.write_config({"m": mock_backend("m", log, mode="flush_transient", fail_count=2, retry_backoff="20ms")})
        d.start()
        c = d.client()
        for i in range(5):
            c.send({"signal": signal_obj(scenario="s%d" % i), "ack": "flushed"})
        replies = [c.readline() for _ in range(5)]
        assert all(r["ok"] for r in replies), replies
        assert sorted(x[1] for x in recorded(log)) == ["s%d" % i for i in range(5)]
        assert d.backend_status("m")["retried"] >= 2
        d.stop()


def test_init_failure_leaves_others_running():
    with Daemon({}) as d:
        good = d.path("good.log")
        d.write_config({"bad": mock_backend("bad", mode="init_fail"), "good": mock_backend("good", good)})
        d.start()
        st = {b["name"]: b for b in d.status()["backends"]}
        assert st["bad"]["state"] == "failed" and "told to fail init" in st["bad"]["error"], st
        assert st["good"]["state"] == "running"
        c = d.client()
        r = c.request(signal_obj())
        assert r["ok"] and "unavailable" in r and "bad" in r["unavailable"], r
        r = c.request({"signal": signal_obj(), "ack": "flushed"})
        assert not r["ok"] and "bad" in r["error"], r  # a durable ack cannot be promised
        wait_for(lambda: len(recorded(good)) == 2, what="good backend to commit")
        assert "initialisation failed" in d.read_log()
        d.stop()


def test_no_usable_backend_is_a_startup_error():
    with Daemon({}) as d:
        d.write_config({"bad": mock_backend("bad", mode="init_fail")})
        d.start(wait=False)
        rc = d.proc.wait(20)
        assert rc != 0
        assert "no backend could be started" in d.read_log()


def test_sigterm_drains_everything_acked():
    with Daemon({}) as d:
        log = d.path("m.log")
        d.write_config({"m": mock_backend("m", log, delay="5ms")}, main="drain_timeout: 30s\n")
        d.start()
        c = d.client()
        for i in range(300):
            c.send(signal_obj(scenario="s%d" % i))
        ids = [c.readline()["id"] for _ in range(300)]
        assert len(recorded(log)) < 300, "test too slow to exercise draining"
        assert d.stop() == 0
        got = [x[0] for x in recorded(log)]
        assert got == ids, "lost %d acknowledged signals" % (len(ids) - len(got))
        assert ", 0 undelivered" in d.read_log()
        with open(log) as f:
            assert f.read().endswith("shutdown\n")  # Shutdown was the last call


def test_stop_reports_undelivered():
    with Daemon({}) as d:
        log = d.path("m.log")
        d.write_config({"m": mock_backend("m", log, delay="100ms")}, main="drain_timeout: 300ms\n")
        d.start()
        c = d.client()
        for i in range(50):
            c.send(signal_obj())
        for _ in range(50):
            c.readline()
        assert d.stop() == 0
        log_text = d.read_log()
        assert "could not be delivered before the drain timeout" in log_text or "undelivered" in log_text
        assert ", 0 undelivered" not in log_text


def test_malformed_input_keeps_connection_usable():
    with Daemon({}) as d:
        d.write_config({"m": mock_backend("m", d.path("m.log"))})
        d.start()
        c = d.client()
        cases = [
            (b"{not json\n", "invalid JSON"),
            (b"[1, 2]\n", "expected a JSON object"),
            (b"\n", "empty line"),
            (b'{"scenario": 5}\n', "scenario: expected a string"),
            (b'{"scenario": "s", "source": {"Ip": "300.1.1.1"}}\n', "source.Ip: '300.1.1.1' is not an IPv4 or IPv6 address"),
            (b'{"scenario": "s", "start_at": "tomorrow"}\n', "start_at:"),
            (b'{"signal": {"scenario": "s"}, "ack": "eventually"}\n', "ack: expected"),
            (b'{"signal": {"scenario": "s"}, "extra": 1}\n', "envelope: unknown key 'extra'"),
            (b'{"op": "status"}\n', "only served on the admin socket"),
            (b'\xff\xfe garbage\n', "invalid JSON"),
        ]
        for data, expect in cases:
            c.send_raw(data)
            r = c.readline()
            assert not r["ok"] and expect in r["error"], (data, r)
        assert c.request(signal_obj())["ok"]  # still usable
        assert d.status()["signals"]["rejected"] >= 9
        d.stop()


def test_oversized_line():
    with Daemon({}) as d:
        d.write_config({"m": mock_backend("m", d.path("m.log"))}, main="sockets:\n  max_line: 4K\n")
        d.start()
        c = d.client()
        big = '{"scenario": "%s"}\n' % ("x" * 10000)
        c.send_raw(big)
        r = c.readline()
        assert not r["ok"] and "max_line" in r["error"], r
        # a huge line arriving slowly, without a newline yet, is refused early too
        c.send_raw("{" + " " * 20000)
        r = c.readline()
        assert not r["ok"] and "longer than max_line" in r["error"], r
        c.send_raw(" " * 5000 + "}\n")  # the rest of it is skipped
        assert c.request(signal_obj())["ok"]
        d.stop()


def test_half_written_line_at_disconnect():
    with Daemon({}) as d:
        log = d.path("m.log")
        d.write_config({"m": mock_backend("m", log)})
        d.start()
        c = d.client()
        c.send_raw('{"scenario": "complete"}\n{"scenario": "trunc')
        c.shutdown_write()
        r1 = c.readline()
        r2 = c.readline()
        assert r1["ok"], r1
        # end of input ends the last line: it is parsed (and here it is not JSON)
        assert not r2["ok"] and "invalid JSON" in r2["error"], r2
        c.close()
        wait_for(lambda: len(recorded(log)) == 1, what="the complete signal to arrive")
        # an abrupt close with a partial line is not a crash either
        c = d.client()
        c.send_raw('{"scenario": "abrupt')
        c.close()
        assert d.client().request(signal_obj())["ok"]
        d.stop()


def test_pipelining_and_slow_reader():
    with Daemon({}) as d:
        d.write_config({"n": "name: n\npath: null\n"})
        d.start()
        c = d.client()
        n = 20000
        payload = "".join('{"scenario": "s%d"}\n' % i for i in range(n))
        # a client that writes everything before reading a single reply
        c.send_raw(payload)
        ids = [c.readline()["id"] for _ in range(n)]
        assert ids == sorted(ids) and len(set(ids)) == n
        # another client is served while this one does not read
        slow = d.client()
        slow.send_raw(payload)
        other = d.client()
        assert other.request(signal_obj())["ok"]
        for _ in range(n):
            slow.readline()
        d.stop()


def test_many_connections_and_idle_clients():
    with Daemon({}) as d:
        d.write_config({"n": "name: n\npath: null\n"})
        d.start()
        idle = [d.client() for _ in range(100)]
        for c in idle[:50]:
            c.send_raw('{"scen')  # stuck mid-line
        c = d.client()
        assert c.request(signal_obj())["ok"]
        assert d.status()["connections"] >= 101
        for x in idle:
            x.close()
        d.stop()


def test_idle_half_line_is_disconnected():
    with Daemon({}) as d:
        d.write_config({"n": "name: n\npath: null\n"}, main="sockets:\n  client_timeout: 1s\n")
        d.start()
        idle = d.client()
        idle.send_raw('{"scenario": "never fin')
        r = idle.readline()   # within about two status ticks after the second
        assert not r["ok"] and "client_timeout" in r["error"], r
        try:
            idle.readline()
            assert False, "connection should be closed"
        except EOFError:
            pass
        busy = d.client()     # a client that keeps sending is not affected
        for _ in range(3):
            assert busy.request(signal_obj())["ok"]
            time.sleep(0.6)
        d.stop()


def test_check_config_errors():
    import subprocess
    cases = [
        ("queue:\n  on_full: explode\n", {}, "spillway.yaml:2:12: queue.on_full: expected block, drop_oldest or drop_newest"),
        ("drain_timout: 5s\n", {}, "spillway.yaml:1:1: unknown key 'drain_timout'; did you mean 'drain_timeout'?"),
        (None, {"m": "name: m\npath: %s\nconfig:\n  moed: ok\n" % MOCK}, "m.yaml:4:3: backend 'm' (plugin mock): unknown config key 'moed'; did you mean 'mode'?"),
        (None, {"m": "name: m\npath: %s\nconfig:\n  delay: soon\n" % MOCK}, "config.delay: expected a duration"),
        (None, {"m": "name: m\npath: %s\nqueue_size: -1\n" % MOCK}, "m.yaml:3:13: queue_size: expected a non-negative integer"),
        (None, {"m": "name: m\npath: nowhere\n"}, "does not exist"),
        (None, {}, "no backend is configured"),
    ]
    for main, backends, expect in cases:
        with Daemon(backends, main=main) as d:
            p = subprocess.run(d.args(["--check-config"]), capture_output=True, text=True)
            assert p.returncode == 1, (expect, p)
            assert expect in p.stderr, (expect, p.stderr)
    with Daemon({"m": mock_backend("m")}) as d:
        p = subprocess.run(d.args(["--check-config"]), capture_output=True, text=True)
        assert p.returncode == 0 and "configuration OK (1 backends: m" in p.stdout, p
    # outside the service there is no credentials directory: a credential is
    # not an error for --check-config, it is reported as unchecked
    with Daemon({"m": mock_backend("m", secret="${CREDENTIAL:token}")}) as d:
        env = {k: v for k, v in os.environ.items() if k != "CREDENTIALS_DIRECTORY"}
        p = subprocess.run(d.args(["--check-config"]), capture_output=True, text=True, env=env)
        assert p.returncode == 0 and "1 ${CREDENTIAL:...} value(s) not checked" in p.stdout, p
        d.start(wait=False)   # the daemon itself needs the credential
        assert d.proc.wait(20) != 0
        assert "credential 'token'" in d.read_log() and "LoadCredential" in d.read_log(), d.read_log()


def test_socket_activation():
    import shutil
    if not shutil.which("systemd-socket-activate"):
        raise SkipTest("systemd-socket-activate not installed")
    with Daemon({}) as d:
        d.write_config({"m": mock_backend("m", d.path("m.log"))})
        os.makedirs(d.run_dir)
        ingest, admin = d.path("act-ingest.sock"), d.path("act-admin.sock")
        import subprocess
        from spwtest import SPILLWAYD, PLUGIN_DIR
        log = open(d.log_path, "ab")
        proc = subprocess.Popen(["systemd-socket-activate", "-l", ingest, "--fdname=ingest", "-l", admin, "--fdname=admin",
                                 SPILLWAYD, "-c", d.config, "--plugin-dir", PLUGIN_DIR, "--state-dir", d.state_dir,
                                 "--allow-unsafe-plugins", "--log-target", "console"], stdout=log, stderr=subprocess.STDOUT)
        d.proc = proc
        try:
            wait_for(lambda: os.path.exists(admin), what="activation sockets")
            c = Client(ingest)   # the first connection starts spillwayd
            r = c.request(signal_obj())
            assert r["ok"], r
            c2 = Client(admin)
            st = c2.request({"op": "status"})
            assert st["ok"] and st["backends"][0]["name"] == "m"
            # the daemon did not create its own sockets
            assert not os.path.exists(d.ingest)
            c3 = Client(ingest)
            r = c3.request({"op": "status"})
            assert not r["ok"] and "admin socket" in r["error"]  # names were honoured
            assert "socket activation" in d.read_log()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)


def test_sd_notify_lifecycle():
    with Daemon({}) as d:
        d.write_config({"m": mock_backend("m", d.path("m.log"))})
        d.start(notify=True)
        wait_for(lambda: d.notify.seen("READY=1"), what="READY=1")
        wait_for(lambda: [m for m in d.notify.seen("STATUS=") if "1/1 backends up" in m], what="STATUS line")
        c = d.client()
        for _ in range(3):
            c.request(signal_obj())
        wait_for(lambda: [m for m in d.notify.seen("STATUS=") if "3 signals" in m], what="STATUS to count signals")
        d.signal(signal.SIGHUP)
        wait_for(lambda: d.notify.seen("RELOADING=1"), what="RELOADING=1")
        wait_for(lambda: len(d.notify.seen("READY=1")) >= 2, what="READY=1 after reload")
        d.stop()
        assert d.notify.seen("STOPPING=1")


# Two block-policy backends, each reached by its own scenario.
TWO_BLOCKED_PROFILES = """profile: to_a
filter: "sig.Scenario == 'a'"
outputs:
  - plugin: a
---
profile: to_b
filter: "sig.Scenario == 'b'"
outputs:
  - plugin: b
"""


def fill_block_queue(d, c, backend, scenario, **extra):
    """One signal the worker takes (and sleeps on), one that fills the queue of 1."""
    assert c.request(signal_obj(scenario=scenario, **extra))["ok"]
    wait_for(lambda: d.backend_status(backend)["queue"]["depth"] == 0, what="%s's worker to take a signal" % backend)
    assert c.request(signal_obj(scenario=scenario, **extra))["ok"]


def test_park_timer_uses_the_earliest_deadline():
    # A signal waiting on a backend with block_timeout 500ms is answered
    # after 500ms even when a later signal waits on a backend with a long
    # block_timeout (the single timer used to be re-armed to the newest
    # deadline, and the first one waited for room instead).
    with Daemon({}) as d:
        d.write_config({"a": mock_backend("a", delay="4s", queue_size=1, on_full="block", block_timeout="500ms", max_retry=0),
                        "b": mock_backend("b", delay="4s", queue_size=1, on_full="block", block_timeout="10s", max_retry=0)},
                       profiles=TWO_BLOCKED_PROFILES)
        d.start()
        filler = d.client()
        fill_block_queue(d, filler, "a", "a")
        fill_block_queue(d, filler, "b", "b")
        c1, c2 = d.client(), d.client()
        t0 = time.monotonic()
        c1.send(signal_obj(scenario="a"))     # waits on a (500ms)
        wait_for(lambda: d.status()["parked"] == 1, what="the first signal to wait")
        c2.send(signal_obj(scenario="b"))     # waits on b (10s)
        wait_for(lambda: d.status()["parked"] == 2, what="the second signal to wait")
        r1 = c1.readline()
        waited = time.monotonic() - t0
        assert not r1["ok"] and "block_timeout" in r1["error"], r1
        assert waited < 2.0 * SLOW, "answered after %.2fs, block_timeout is 500ms" % waited
        r2 = c2.readline()                     # b's worker makes room after ~4s
        assert r2["ok"], r2
        assert d.stop() == 0


def test_waiting_signals_on_different_backends_do_not_wait_for_each_other():
    # a is slow to make room, b quick: the signal waiting on b must not
    # queue up behind the earlier one waiting on a.
    with Daemon({}) as d:
        d.write_config({"a": mock_backend("a", delay="6s", queue_size=1, on_full="block", block_timeout="20s", max_retry=0),
                        "b": mock_backend("b", delay="1s", queue_size=1, on_full="block", block_timeout="20s", max_retry=0)},
                       profiles=TWO_BLOCKED_PROFILES, main="queue:\n  flush_interval: 50ms\ndrain_timeout: 30s\n")
        d.start()
        filler = d.client()
        fill_block_queue(d, filler, "a", "a")
        fill_block_queue(d, filler, "b", "b")
        c1, c2 = d.client(), d.client()
        c1.send(signal_obj(scenario="a"))
        wait_for(lambda: d.status()["parked"] == 1, what="the first signal to wait")
        t0 = time.monotonic()
        c2.send(signal_obj(scenario="b"))
        r2 = c2.readline()
        waited = time.monotonic() - t0
        assert r2["ok"], r2
        assert waited < 3.0 * SLOW, "the signal for b waited %.2fs behind the one for a" % waited
        assert d.status()["parked"] == 1
        assert c1.readline()["ok"]
        assert d.stop() == 0


def test_reload_does_not_duplicate_the_bans_of_a_waiting_signal():
    # A signal waiting for queue room is routed again by a reload: its bans
    # come from the producer's signal and the new profiles, once.
    with Daemon({}) as d:
        profiles = open(os.path.join(SOURCE_ROOT, "tests", "compat", "crowdsec-v0.3.0-profiles.yaml")).read()
        d.write_config({"database": mock_backend("database", d.path("db.log"), delay="2s", queue_size=1, on_full="block",
                                                 block_timeout="20s", max_retry=0)}, profiles=profiles)
        d.start()
        c = d.client()
        fill_block_queue(d, c, "database", "fill", remediation=True)
        c.send(signal_obj(remediation=True, ip="192.0.2.50"))
        wait_for(lambda: d.status()["parked"] == 1, what="the signal to wait for room")
        d.signal(signal.SIGHUP)
        wait_for(lambda: d.status()["reloads"] == 1, what="the reload")
        r = c.readline()
        assert r["ok"] and r.get("bans") == 1, r
        assert d.stop() == 0


def test_config_check_returns_warnings_and_logs_nothing():
    # A profile that makes decisions while no backend stores bans: the
    # running daemon logs it once at start; config.check (admin) returns it
    # in the reply and logs nothing; --check-config prints it.
    profiles = "name: ban_all\nfilters:\n - Alert.Remediation == true\ndecisions:\n - type: ban\n   duration: 4h\n"
    with Daemon({"notify": "name: notify\npath: null\n"}, profiles=profiles) as d:
        d.start()
        what = "profile ban_all makes decisions but no configured backend stores bans"
        assert d.read_log().count(what) == 1, d.read_log()
        r = d.admin_request({"op": "config.check"})
        assert r["ok"] and len(r["warnings"]) == 1 and what in r["warnings"][0], r
        assert "profiles.yaml:1:" in r["warnings"][0], r
        time.sleep(0.2)
        assert d.read_log().count(what) == 1, d.read_log()
        chk = subprocess.run(d.args(["--check-config"]), capture_output=True, text=True, timeout=30)
        assert chk.returncode == 0 and "warning: " in chk.stderr and what in chk.stderr, chk
        assert d.stop() == 0


def test_ban_add_commit_failure_is_an_error():
    # An administrative write is committed before the reply: a failed
    # commit (flush) inside the admin job is an error naming the backend
    # and the plugin's reason, and the ban is not listed.
    with Daemon({}) as d:
        d.write_config({"bans": mock_backend("bans", d.path("bans.log"), mode="flush_permanent")})
        d.start()
        r = d.admin_request({"op": "ban.add", "scope": "ip", "target": "192.0.2.77", "duration": "1h", "reason": "manual"})
        assert not r["ok"], r
        assert "backend 'bans'" in r["error"] and "committing failed" in r["error"], r
        assert "mock: flush failed (permanent)" in r["error"], r
        lst = d.admin_request({"op": "ban.list"})
        assert lst["ok"] and lst["total"] == 0, lst
        assert d.stop() == 0


def test_reload_routes_a_waiting_signal_nowhere():
    # The new profiles send a signal that waits for queue room nowhere:
    # it is accepted with nothing to deliver (it used to wait forever for
    # a "flushed" that no backend owed).
    with Daemon({}) as d:
        backends = {"a": mock_backend("a", delay="3s", queue_size=1, on_full="block", block_timeout="20s", max_retry=0),
                    "b": mock_backend("b")}
        d.write_config(backends, profiles=TWO_BLOCKED_PROFILES)
        d.start()
        filler = d.client()
        fill_block_queue(d, filler, "a", "a")
        c = d.client()
        c.send({"signal": signal_obj(scenario="a"), "ack": "flushed"})
        wait_for(lambda: d.status()["parked"] == 1, what="the signal to wait for room")
        d.write_config(backends, profiles=TWO_BLOCKED_PROFILES.split("---")[1])
        d.signal(signal.SIGHUP)
        r = c.readline()
        assert r["ok"] and r["ack"] == "flushed" and r["backends"] == [], r
        assert d.status()["parked"] == 0
        assert d.stop() == 0


if __name__ == "__main__":
    run([
        test_signal_reaches_every_backend,
        test_flushed_ack_only_after_flush,
        test_group_commit_of_many_producers,
        test_slow_backend_drop_oldest_does_not_slow_others,
        test_block_policy_pushes_back_with_error,
        test_block_policy_waits_for_room,
        test_park_timer_uses_the_earliest_deadline,
        test_waiting_signals_on_different_backends_do_not_wait_for_each_other,
        test_reload_does_not_duplicate_the_bans_of_a_waiting_signal,
        test_reload_routes_a_waiting_signal_nowhere,
        test_transient_failures_are_retried,
        test_retries_exhausted_and_permanent_failures,
        test_flush_failure_reinserts_batch,
        test_init_failure_leaves_others_running,
        test_no_usable_backend_is_a_startup_error,
        test_sigterm_drains_everything_acked,
        test_stop_reports_undelivered,
        test_malformed_input_keeps_connection_usable,
        test_oversized_line,
        test_half_written_line_at_disconnect,
        test_pipelining_and_slow_reader,
        test_many_connections_and_idle_clients,
        test_idle_half_line_is_disconnected,
        test_check_config_errors,
        test_config_check_returns_warnings_and_logs_nothing,
        test_ban_add_commit_failure_is_an_error,
        test_socket_activation,
        test_sd_notify_lifecycle,
    ])
