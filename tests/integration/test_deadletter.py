#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Issue 12's remaining pieces with the real daemon: `spillwayctl deadletter
list|retry|drop` over the admin ops, and the rate-limited failure log's
final "N more" line, printed once a burst of failures ends (not only when
a later failure happens to come)."""
import csv
import io
import json
import os
import re

from spwtest import MOCK, SLOW, Daemon, mock_backend, run, signal_obj, wait_for

MAIN = "queue:\n  flush_interval: 50ms\n  retry_backoff: 50ms\n  retry_backoff_max: 200ms\ndrain_timeout: 1s\n"


def mock_disk(name, record, mode):
    return ("name: %s\npath: %s\ndurability: disk\nconfig:\n  record: %s\n  mode: %s\n" % (name, MOCK, record, mode))


def send(d, objs):
    c = d.client()
    for o in objs:
        c.send(o)
    return [c.readline() for _ in objs]


def test_deadletter_commands():
    with Daemon({}) as d:
        d.write_config({"m": mock_disk("m", d.path("rec.log"), "permanent")}, main=MAIN)
        d.start()
        replies = send(d, [signal_obj(scenario="dl%d" % i) for i in range(5)])
        assert all(r["ok"] for r in replies), replies
        ids = [r["id"] for r in replies]
        path = os.path.join(d.state_dir, "spool", "m", "dead-letter")
        wait_for(lambda: os.path.exists(path) and len(open(path).readlines()) == 5, 10 * SLOW, "5 dead letters")

        # list: a table, JSON, CSV
        p = d.ctl("deadletter", "list", "m", check=0)
        lines = p.stdout.splitlines()
        assert [h.strip() for h in lines[0].split("|")] == ["Signal id", "Rejected at", "Scenario", "Reason"], p.stdout
        assert lines[-1] == "5 dead letters", p.stdout
        for i, sid in enumerate(ids):
            row = [c.strip() for c in lines[1 + i].split("|")]
            assert row[0] == str(sid) and row[2] == "dl%d" % i and "rejected" in row[3], row
        p = d.ctl("deadletter", "list", "m", "--limit", "2", check=0)
        assert "3 more dead letters not shown" in p.stdout, p.stdout
        j = json.loads(d.ctl("-o", "json", "deadletter", "list", "m", check=0).stdout)
        assert j["total"] == 5 and [e["id"] for e in j["entries"]] == ids, j
        rows = list(csv.reader(io.StringIO(d.ctl("-o", "raw", "deadletter", "list", "m", check=0).stdout)))
        assert rows[0] == ["id", "at", "scenario", "reason", "line"], rows[0]
        assert [int(r[0]) for r in rows[1:]] == ids and json.loads(rows[1][4])["scenario"] == "dl0", rows

        # retry two: queued again with their ids (this mock rejects them again)
        p = d.ctl("deadletter", "retry", "m", str(ids[0]), str(ids[1]), check=0)
        assert p.stdout.strip() == "2 dead letter(s) queued again", (p.stdout, p.stderr)
        wait_for(lambda: json.loads(d.ctl("-o", "json", "deadletter", "list", "m", check=0).stdout)["total"] == 5,
                 10 * SLOW, "rejected again")
        again = [e["id"] for e in json.loads(d.ctl("-o", "json", "deadletter", "list", "m", check=0).stdout)["entries"]]
        assert sorted(again) == sorted(ids), again

        # drop one by id, then the rest with --all
        p = d.ctl("deadletter", "drop", "m", str(ids[2]), check=0)
        assert p.stdout.strip() == "1 dead letter(s) dropped", (p.stdout, p.stderr)
        p = d.ctl("deadletter", "drop", "m", "--all", check=0)
        assert p.stdout.strip() == "4 dead letter(s) dropped", (p.stdout, p.stderr)
        assert d.ctl("deadletter", "list", "m", check=0).stdout.strip() == "No dead letters in backend m."

        # usage and errors: nothing by accident, clear messages
        p = d.ctl("deadletter", "drop", "m", check=2)
        assert "ID... | --all" in p.stderr, p.stderr
        p = d.ctl("deadletter", "retry", "m", "abc", check=2)
        assert "'abc' is not a signal id" in p.stderr, p.stderr
        p = d.ctl("deadletter", "list", "nosuch", check=1)
        assert "no running backend 'nosuch'" in p.stderr, p.stderr
        d.stop()


def test_deadletter_memory_backend_refused():
    with Daemon({"m": mock_backend("m")}) as d:
        d.start()
        p = d.ctl("deadletter", "list", "m", check=1)
        assert "durability: memory" in p.stderr, p.stderr
        d.stop()


def test_failure_log_final_summary():
    """50 permanent failures at once: 20 are logged (the rate limit's burst),
    then one line says how many more, within the limit's 10 s window, with
    no further failure to trigger it."""
    with Daemon({}) as d:
        d.write_config({"m": mock_backend("m", d.path("rec.log"), mode="permanent")}, main=MAIN)
        d.start()
        assert all(r["ok"] for r in send(d, [signal_obj(scenario="f%d" % i) for i in range(50)]))
        wait_for(lambda: d.backend_status("m")["failed"] == 50, 10 * SLOW, "50 failures")
        logged = len(re.findall(r"backend m: signal \d+ \(f\d+\) not delivered", d.read_log()))
        assert logged == 20, logged
        wait_for(lambda: "backend m: 30 more failed signals not logged (rate limit)" in d.read_log(), 15 * SLOW,
                 "the final summary line")
        d.stop()
        assert d.read_log().count("more failed signals not logged") == 1, d.log_tail()


def test_failure_log_summary_at_stop():
    """A burst still inside its window when the daemon stops: summed up at
    the stop."""
    with Daemon({}) as d:
        d.write_config({"m": mock_backend("m", d.path("rec.log"), mode="permanent")}, main=MAIN)
        d.start()
        assert all(r["ok"] for r in send(d, [signal_obj(scenario="g%d" % i) for i in range(25)]))
        wait_for(lambda: d.backend_status("m")["failed"] == 25, 10 * SLOW, "25 failures")
        d.stop()
        assert "backend m: 5 more failed signals not logged (rate limit)" in d.read_log(), d.log_tail()


if __name__ == "__main__":
    run([
        test_deadletter_commands,
        test_deadletter_memory_backend_refused,
        test_failure_log_final_summary,
        test_failure_log_summary_at_stop,
    ])
