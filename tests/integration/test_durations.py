#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""One duration grammar (issue 11 item 8, issue 10): `--check-config` used to
accept durations (1e3ms, +5s, 0x10s) that the sqlite plugin then refused
at start, because the daemon and the plugins had three parsers. Now the
same text gets the same answer from the check and from the plugin at
start, for a key the daemon checks from the plugin's key table (sqlite's
busy_timeout), a key every ban database takes (max_records_age) and the
webhook's timeouts; and the documented grammar (Go syntax plus d) is what
both accept."""
import os
import subprocess

from spwtest import listening, Daemon, run, wait_for

# text -> accepted? (Go's time.ParseDuration plus "d"; not negative; at most 2562047h)
CASES = {
    "500ms": True, "4h": True, "1h30m": True, "1.5s": True, ".5s": True, "2d": True, "+5s": True,
    "0": True, "2562047h": True,
    "1e3ms": False, "0x10s": False, "5": False, "5 s": False, "5S": False, "-1s": False,
    "106752d": False, "2562048h": False,
}


def check_and_start(backend, name):
    """(check-config accepted?, its stderr, the backend running after start?)
    A start refused by the daemon (exit status 1) or a backend whose plugin
    refused its config (state failed) both count as not running."""
    with Daemon({name: backend}) as d:
        p = subprocess.run(d.args(["--check-config"]), capture_output=True, text=True, timeout=60)
        d.start(wait=False)
        # listening, not only bound: bind() creates the file before listen()
        wait_for(lambda: d.proc.poll() is not None or (listening(d.admin, d.proc.pid) and listening(d.ingest, d.proc.pid)),
                 20, "spillwayd to start or exit")
        if d.proc.poll() is not None:
            assert d.proc.returncode == 1, d.read_log()
            return p.returncode == 0, p.stderr, False
        wait_for(lambda: d.backend_status(name)["state"] in ("running", "failed"), 20, "the backend to start or fail")
        running = d.backend_status(name)["state"] == "running"
        assert d.stop() == 0, d.read_log()
        return p.returncode == 0, p.stderr, running


def test_sqlite_busy_timeout_and_max_records_age():
    for key in ("busy_timeout", "max_records_age"):
        for text, ok in CASES.items():
            if key == "busy_timeout" and text == "0":
                continue  # 0 is a valid duration but sqlite's own minimum applies: not the grammar's business
            backend = "name: db\npath: sqlite\nconfig:\n  db_path: bans.db\n  %s: \"%s\"\n" % (key, text)
            checked, err, running = check_and_start(backend, "db")
            assert checked == running, (key, text, checked, running, err)
            assert checked == ok, (key, text, "check-config said %s" % checked, err)
            if not ok:
                assert key in err and text in err, (key, text, err)


def test_webhook_timeout():
    for text, ok in CASES.items():
        if text in ("0", "2562047h", "2d", "4h", "1h30m"):
            continue  # the webhook's own range (1ms..24h) applies to these
        backend = "name: hook\npath: webhook\nconfig:\n  url: http://127.0.0.1:9/\n  timeout: \"%s\"\n" % text
        checked, err, running = check_and_start(backend, "hook")
        assert checked == running, (text, checked, running, err)
        assert checked == ok, (text, "check-config said %s" % checked, err)


if __name__ == "__main__":
    run([test_sqlite_busy_timeout_and_max_records_age, test_webhook_timeout])
