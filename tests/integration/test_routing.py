#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Routing with the real daemon (issue 3): CrowdSec's own profiles files,
unchanged, decide which backends receive a signal and which bans it
carries; `spillwayctl route test` shows it without delivering."""
import calendar
import json
import os
import subprocess
import time

from spwtest import Daemon, SOURCE_ROOT, mock_backend, recorded, run, signal_obj, wait_for

COMPAT = os.path.join(SOURCE_ROOT, "tests", "compat")


def compat(name):
    with open(os.path.join(COMPAT, name)) as f:
        return f.read()


def test_v03_default_profiles_route_and_ban():
    with Daemon({}) as d:
        db = d.path("db.log")
        d.write_config({"database": mock_backend("database", db)}, profiles=compat("crowdsec-v0.3.0-profiles.yaml"))
        d.start()
        c = d.client()
        r = c.request({"signal": signal_obj(remediation=True, ip="192.0.2.7"), "ack": "flushed"})
        assert r["ok"] and r.get("bans") == 1, r
        r = c.request({"signal": signal_obj(scenario="notify-only", remediation=False, ip="192.0.2.8"), "ack": "flushed"})
        assert r["ok"] and "bans" not in r, r    # store: false -> delivered nowhere
        r = c.request({"signal": signal_obj(scenario="whitelisted", remediation=True, ip="192.0.2.9", Whitelisted=True),
                       "ack": "flushed"})
        assert r["ok"] and "bans" not in r, r    # never banned
        rows = recorded(db)
        assert [(x[1], x[2]) for x in rows] == [("crowdsecurity/ssh-bf", "192.0.2.7")], rows
        # the ban lasts 4h from when spillwayd received the signal (not from
        # the producer's stop_at, 2024), listed through the admin socket
        lst = d.admin_request({"op": "ban.list"})
        assert lst["ok"] and [row["iptext"] for row in lst["rows"]] == ["192.0.2.7"], lst
        until = calendar.timegm(time.strptime(lst["rows"][0]["until"].split(".")[0].rstrip("Z"), "%Y-%m-%dT%H:%M:%S"))
        assert abs(until - (time.time() + 4 * 3600)) < 120, lst
        # the decision is in the log with its profile
        assert "profile default_remediation: ban 192.0.2.7 for 4h" in d.read_log(), d.read_log()
        d.stop()


def test_v1_profiles_and_on_success_break():
    # the first profile is CrowdSec's; an Ip remediation stops there
    profiles = compat("crowdsec-v1.4.6-profiles.yaml") + """---
name: notify_ranges
filters:
 - Alert.GetScope() == "Range"
decisions:
 - type: ban
   duration: 1h
   scope: Range
notifications:
 - notify
---
name: reached_only_without_break
filters:
 - Alert.Remediation == true
notifications:
 - notify
"""
    with Daemon({}) as d:
        db = d.path("db.log")
        # notify stores no bans (null plugin): it only gets what `notifications` names
        d.write_config({"sqlite": mock_backend("sqlite", db), "notify": "name: notify\npath: null\n"}, profiles=profiles)
        d.start()
        c = d.client()
        # default_ip_remediation matches and breaks: the later profiles must not run
        r = c.request({"signal": signal_obj(remediation=True, ip="198.51.100.4"), "ack": "flushed"})
        assert r["ok"] and r.get("bans") == 1, r
        assert d.backend_status("notify")["inserted"] == 0
        assert [x[2] for x in recorded(db)] == ["198.51.100.4"]
        sig = signal_obj(scenario="range-scan", remediation=True, ip="198.51.100.5")
        sig["Labels"]["scope"] = "range"
        sig["source"]["Range"] = "198.51.100.0/24"
        r = c.request({"signal": sig, "ack": "flushed"})
        assert r["ok"], r
        assert d.backend_status("notify")["inserted"] == 1
        assert [x[2] for x in recorded(db)] == ["198.51.100.4", "198.51.100.0/24"], recorded(db)
        d.stop()


def test_route_test_command():
    with Daemon({}) as d:
        d.write_config({"database": mock_backend("database", d.path("db.log"))},
                       profiles=compat("crowdsec-v0.3.0-profiles.yaml"))
        d.start()
        lines = "\n".join(json.dumps(s) for s in [
            signal_obj(remediation=True, ip="203.0.113.1"),
            signal_obj(scenario="quiet", remediation=False),
        ]) + "\n"
        p = d.ctl("route", "test", "-", input=lines, check=0)
        out = p.stdout
        assert "profile default_remediation" in out and "-> database" in out, out
        assert "ban: ban Ip:203.0.113.1 until 2024-01-01T14:00:20Z\n" in out, out
        assert "profile default_notification" in out and "(no output)" in out, out
        assert "backends: none (not delivered)" in out, out
        p = d.ctl("-o", "json", "route", "test", "-", input=lines, check=0)
        first = json.loads(p.stdout.splitlines()[0])
        assert first["backends"] == ["database"] and first["bans"][0]["IpText"] == "203.0.113.1"
        # nothing was delivered
        assert recorded(d.path("db.log")) == []
        d.stop()


def test_check_config_reports_profile_errors():
    bad = 'profile: p\nfilter: "sig.Labels.remediation == \'true\' &&"\noutputs:\n  - plugin: database\n'
    with Daemon({"database": mock_backend("database")}, profiles=bad) as d:
        p = subprocess.run(d.args(["--check-config"]), capture_output=True, text=True)
        assert p.returncode == 1, p
        assert "profiles.yaml:2:" in p.stderr, p.stderr
    unknown = 'profile: p\nfilter: ""\noutputs:\n  - plugin: datbase\n'
    with Daemon({"database": mock_backend("database")}, profiles=unknown) as d:
        p = subprocess.run(d.args(["--check-config"]), capture_output=True, text=True)
        assert p.returncode == 1 and "datbase" in p.stderr and "database" in p.stderr, p.stderr
    with Daemon({"database": mock_backend("database")}, profiles=compat("crowdsec-v0.3.0-profiles.yaml")) as d:
        p = subprocess.run(d.args(["--check-config"]), capture_output=True, text=True)
        assert p.returncode == 0 and "configuration OK" in p.stdout, p.stderr


def test_crowdsec_backend_files_load_unchanged():
    # database.yaml names CrowdSec's Go plugin path; it maps to our sqlite plugin
    with Daemon({"database": compat("crowdsec-v0.3.0-database.yaml")}) as d:
        p = subprocess.run(d.args(["--check-config"]), capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
    with Daemon({"http": compat("crowdsec-v1.4.6-http-notification.yaml"),
                 "m": mock_backend("m")}) as d:
        p = subprocess.run(d.args(["--check-config"]), capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        # its url is a placeholder: init fails, the daemon runs with the others
        d.start()
        st = {b["name"]: b for b in d.status()["backends"]}
        assert st["http_default"]["state"] == "failed" and "url" in st["http_default"]["error"], st
        assert st["m"]["state"] == "running"
        d.stop()


if __name__ == "__main__":
    run([test_v03_default_profiles_route_and_ban, test_v1_profiles_and_on_success_break, test_route_test_command,
         test_check_config_reports_profile_errors, test_crowdsec_backend_files_load_unchanged])
