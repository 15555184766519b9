#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A reload that changes a backend's target hands the signals still waiting
for the old instance to the new one instead of failing them (issue 21).

The real daemon, a webhook backend and real HTTP receivers on loopback: the
first receiver dies with signals queued ("flushed" producers waiting and
"queued" ones already answered), the configuration is pointed at a second,
live receiver and reloaded. Every accepted signal reaches the new receiver
exactly once, no producer sees an error, and the journal says how many
signals were handed over. Then the same with the mock plugin whose commits
fail: the batch the old instance had inserted is rolled back there and
committed once by the new instance, in submission order. And a changed
backend whose new instance fails to start leaves the old one serving, and
a disk-spooled backend answers the "flushed" producers the old instance
left waiting once the new one has committed their records."""
import collections
import json
import re

from spwtest import Daemon, mock_backend, recorded, run, signal_obj, wait_for
from test_webhook import Receiver, webhook_backend

MAIN = ("queue:\n  flush_interval: 50ms\n  max_retry: 1000\n  retry_backoff: 100ms\n  retry_backoff_max: 300ms\n"
        "drain_timeout: 3s\n")


def handed_over(log):
    return sum(int(n) for n in re.findall(r"handed (\d+) signals over to its new instance", log))


def backends_named(d, name):
    return [b for b in d.status()["backends"] if b["name"] == name]


def test_reload_to_a_live_endpoint_hands_the_queue_over():
    n = 300
    with Daemon({}) as d:
        rx_a = Receiver(d)
        rx_b = None
        try:
            hook = lambda port: webhook_backend("hook", "http://127.0.0.1:%d/hook" % port, group_threshold=50,
                                                timeout="2s", connect_timeout="1s")
            d.write_config({"hook": hook(rx_a.port)}, main=MAIN)
            d.start()
            c = d.client()
            assert c.request({"signal": signal_obj(scenario="before"), "ack": "flushed"})["ok"]
            rx_a.stop()   # the target dies: connection refused from now on

            flushed = d.client()
            for i in range(n):
                flushed.send({"signal": signal_obj(scenario="f%d" % i), "ack": "flushed"})
            queued = d.client()
            for i in range(n):
                r = queued.request(signal_obj(scenario="q%d" % i))
                assert r["ok"], r
            wait_for(lambda: d.backend_status("hook")["retried"] >= 2, what="retries while the endpoint is down")
            assert d.backend_status("hook")["failed"] == 0

            rx_b = Receiver(d)
            d.write_config({"hook": hook(rx_b.port)}, main=MAIN)
            r = d.admin_request({"op": "reload"})
            assert r["ok"], r

            replies = [flushed.readline() for _ in range(n)]
            bad = [r for r in replies if not r["ok"]]
            assert not bad, "%d producers saw an error, e.g. %s" % (len(bad), bad[:3])

            def names():
                return [s["scenario"] for q in rx_b.requests() for s in json.loads(q["body"])]
            wait_for(lambda: len(set(names())) >= 2 * n, timeout=20, what="every queued signal at the new endpoint")
            count = collections.Counter(names())
            want = {"f%d" % i for i in range(n)} | {"q%d" % i for i in range(n)}
            assert set(count) == want, sorted(set(count) ^ want)[:10]
            twice = [k for k, v in count.items() if v > 1]
            assert not twice, "delivered more than once: %s" % twice[:10]

            wait_for(lambda: len(backends_named(d, "hook")) == 1, what="the old instance to stop")
            st = d.backend_status("hook")
            assert st["failed"] == 0 and st["undelivered"] == 0, st
            assert st["flushed"] == 2 * n and st["inherited"] == 2 * n, st
            log = d.read_log()
            assert handed_over(log) == 2 * n, [l for l in log.splitlines() if "handed" in l]
            assert "not delivered" not in log and "undelivered:" not in log, log[-3000:]
            d.stop()
        finally:
            for rx in (rx_a, rx_b):
                if rx:
                    rx.stop()


def test_a_failed_commit_at_the_old_instance_moves_in_order():
    # The old instance inserts fine but cannot commit (its target refuses
    # the commit, again and again); a reload to a working configuration
    # rolls the batch back there and commits it once at the new instance,
    # before what producers send after the reload.
    n = 40
    with Daemon({}) as d:
        old, new = d.path("old.log"), d.path("new.log")
        d.write_config({"m": mock_backend("m", old, mode="flush_transient")}, main=MAIN)
        d.start()
        flushed = d.client()
        for i in range(n):
            flushed.send({"signal": signal_obj(scenario="before-%d" % i), "ack": "flushed"})
        wait_for(lambda: d.backend_status("m")["retried"] >= 2, what="failed commits being retried")
        assert d.backend_status("m")["inserted"] >= 1

        d.write_config({"m": mock_backend("m", new)}, main=MAIN)
        r = d.admin_request({"op": "reload"})
        assert r["ok"], r
        after = d.client()
        for i in range(10):
            assert after.request({"signal": signal_obj(scenario="after-%d" % i), "ack": "flushed"})["ok"]
        replies = [flushed.readline() for _ in range(n)]
        assert all(r["ok"] for r in replies), [r for r in replies if not r["ok"]][:3]

        got = [s for _, s, _ in recorded(new) if s.startswith(("before-", "after-"))]
        assert got == ["before-%d" % i for i in range(n)] + ["after-%d" % i for i in range(10)], got
        assert not [s for _, s, _ in recorded(old) if s.startswith("before-")], "committed at the old instance"
        wait_for(lambda: len(backends_named(d, "m")) == 1, what="the old instance to stop")
        st = d.backend_status("m")
        assert st["failed"] == 0 and st["undelivered"] == 0 and st["inherited"] == n, st
        assert handed_over(d.read_log()) == n
        d.stop()


def test_a_new_instance_that_fails_to_start_leaves_the_old_one_serving():
    # The changed backend's new configuration cannot start: the running
    # instance keeps its queue and keeps serving; the next reload tries the
    # new configuration again.
    with Daemon({}) as d:
        old, other = d.path("old.log"), d.path("other.log")
        d.write_config({"m": mock_backend("m", old, mode="transient", fail_count=3), "other": mock_backend("other", other)},
                       main=MAIN)
        d.start()
        c = d.client()
        c.send({"signal": signal_obj(scenario="queued-before"), "ack": "flushed"})
        d.write_config({"m": mock_backend("m", old, mode="init_fail"), "other": mock_backend("other", other)}, main=MAIN)
        r = d.admin_request({"op": "reload"})
        assert r["ok"], r
        assert c.readline()["ok"]
        assert c.request({"signal": signal_obj(scenario="after"), "ack": "flushed"})["ok"]
        assert [s for _, s, _ in recorded(old)] == ["queued-before", "after"], recorded(old)
        st = d.backend_status("m")
        assert st["state"] == "running" and st["failed"] == 0, st
        assert "the running instance keeps serving" in d.read_log()
        d.stop()


def test_a_disk_backend_answers_flushed_producers_after_the_reload():
    # durability: disk. The new instance shares the spool and reads again
    # what the old one could not commit; the "flushed" producers waiting on
    # the old instance are answered when the new one has committed their
    # records (they used to wait forever).
    n = 20
    with Daemon({}) as d:
        old, new = d.path("old.log"), d.path("new.log")
        d.write_config({"m": mock_backend("m", old, mode="flush_transient") + "durability: disk\n"}, main=MAIN)
        d.start()
        flushed = d.client()
        for i in range(n):
            flushed.send({"signal": signal_obj(scenario="f-%d" % i), "ack": "flushed"})
        queued = d.client()
        for i in range(n):
            assert queued.request(signal_obj(scenario="q-%d" % i))["ok"]
        wait_for(lambda: d.backend_status("m")["retried"] >= 2, what="failed commits being retried")

        d.write_config({"m": mock_backend("m", new) + "durability: disk\n"}, main=MAIN)
        assert d.admin_request({"op": "reload"})["ok"]
        replies = [flushed.readline() for _ in range(n)]
        assert all(r["ok"] for r in replies), [r for r in replies if not r["ok"]][:3]
        got = [s for _, s, _ in recorded(new)]
        assert sorted(got) == sorted(["f-%d" % i for i in range(n)] + ["q-%d" % i for i in range(n)]), got
        assert not recorded(old)
        d.stop()


if __name__ == "__main__":
    run([test_reload_to_a_live_endpoint_hands_the_queue_over, test_a_failed_commit_at_the_old_instance_moves_in_order,
         test_a_new_instance_that_fails_to_start_leaves_the_old_one_serving,
         test_a_disk_backend_answers_flushed_producers_after_the_reload])
