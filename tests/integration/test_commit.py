#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Group commit that adapts to load (issue 18): a worker whose queue runs dry
commits at once (after flush_delay), so a producer waiting for each `flushed`
ack is not held for flush_interval; under load signals still share commits;
flush_interval stays the upper bound; CrowdSec's group_wait still batches."""
import time

from spwtest import Daemon, mock_backend, recorded, run, signal_obj

PROFILES = """profile: default_remediation
filter: "sig.Labels.remediation == 'true'"
remediation:
  ban: true
  duration: 4h
outputs:
  - plugin: sqlite
"""

# a flush interval no test can pass by waiting for
LONG = "queue:\n  flush_interval: 60s\n  flush_batch: 100000\n"


def test_lone_flushed_signal_is_committed_at_once_sqlite():
    with Daemon({}) as d:
        d.write_config({"sqlite": "name: sqlite\npath: sqlite\nconfig:\n  db_path: bans.db\n  synchronous: normal\n"},
                       main=LONG, profiles=PROFILES)
        d.start()
        c = d.client()
        times = []
        for i in range(20):
            t0 = time.monotonic()
            sig = signal_obj(ip="192.0.2.%d" % (i + 1), remediation=True)
            sig["stop_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())  # ban active for 4h from now
            r = c.request({"signal": sig, "ack": "flushed"})
            times.append(time.monotonic() - t0)
            assert r["ok"] and r["ack"] == "flushed", r
        # twenty lock-step acks, each committed without waiting for the 60 s interval
        assert max(times) < 5, times
        st = d.backend_status("sqlite")
        assert st["flushes"] >= 20, st  # one commit per lone signal
        rows = d.admin_request({"op": "ban.list", "limit": 0})
        assert rows["ok"] and rows["total"] == 20, rows
        assert d.stop() == 0


def test_flush_delay_waits_for_company():
    with Daemon({}) as d:
        log = d.path("m.log")
        d.write_config({"m": mock_backend("m", log, flush_delay="400ms")}, main=LONG)
        d.start()
        clients = [d.client() for _ in range(6)]
        t0 = time.monotonic()
        for i, c in enumerate(clients):
            c.send({"signal": signal_obj(scenario="p%d" % i), "ack": "flushed"})
        replies = [c.readline() for c in clients]
        elapsed = time.monotonic() - t0
        assert all(r["ok"] and r["ack"] == "flushed" for r in replies), replies
        # the idle worker waited for company: one or two commits, not six,
        # and it did not wait for the 60 s interval
        assert d.backend_status("m")["flushes"] <= 2, d.backend_status("m")
        assert 0.3 < elapsed < 10, elapsed
        assert len(recorded(log)) == 6
        assert d.stop() == 0


def test_flush_interval_bounds_flush_delay():
    # flush_interval stays the upper bound on any signal's wait
    with Daemon({}) as d:
        log = d.path("m.log")
        d.write_config({"m": mock_backend("m", log, flush_interval="300ms", flush_delay="30s")},
                       main="queue:\n  flush_batch: 100000\n")
        d.start()
        c = d.client()
        t0 = time.monotonic()
        c.send({"signal": signal_obj(scenario="first"), "ack": "flushed"})
        r = c.readline()
        assert r["ok"], r
        assert time.monotonic() - t0 < 5, "flush_interval must bound flush_delay"
        assert d.stop() == 0


def test_group_wait_keeps_batching():
    # CrowdSec users who set group_wait asked for batching: a lone signal waits for it
    with Daemon({}) as d:
        log = d.path("m.log")
        d.write_config({"m": mock_backend("m", log, group_wait="700ms")}, main=LONG)
        d.start()
        c = d.client()
        t0 = time.monotonic()
        r = c.request({"signal": signal_obj(), "ack": "flushed"})
        assert r["ok"], r
        assert time.monotonic() - t0 > 0.6, "group_wait must delay the commit"
        assert d.stop() == 0


if __name__ == "__main__":
    run([test_lone_flushed_signal_is_committed_at_once_sqlite, test_flush_delay_waits_for_company,
         test_flush_interval_bounds_flush_delay, test_group_wait_keeps_batching])
