#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Escalating bans (issue 15) and the ban sync (issue 13) with the real
daemon and a real SQLite ban database: a profiles.yaml in CrowdSec's
current documented form bans a repeat offender 4h, then 8h, then 12h
(also across a restart: the ban-history index is loaded from the
database), GetDecisionsSinceCount counts only the window, a ban backend
without a change log refuses the helpers at load, and sync_interval is
checked with the duration grammar."""
import calendar
import subprocess
import time

from spwtest import Daemon, run, signal_obj, wait_for

SQLITE = "name: sqlite\npath: sqlite\nconfig:\n  db_path: bans.db\n"

# CrowdSec's documentation (profiles, "duration_expr"), unchanged
PROFILES = """name: default_ip_remediation
filters:
 - Alert.Remediation == true && Alert.GetScope() == "Ip"
decisions:
 - type: ban
   duration: 4h
duration_expr: Sprintf('%dh', (GetDecisionsCount(Alert.GetValue()) + 1) * 4)
on_success: break
"""

SINCE_PROFILES = """name: recent_repeat
filters:
 - Alert.Remediation == true && Alert.GetScope() == "Ip"
decisions:
 - type: ban
   duration: 1h
duration_expr: Sprintf('%dh', GetDecisionsSinceCount(Alert.GetValue(), "24h") * 10 + 1)
on_success: break
"""


def alert(ip):
    s = signal_obj(ip=ip, remediation=True)
    now = time.time()
    s["start_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 20))
    s["stop_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    return s


def ban_hours(d, ip):
    """Send one alert for ip (ack flushed); the hours its ban lasts, from ban list."""
    r = d.client().request({"signal": alert(ip), "ack": "flushed"})
    assert r["ok"] and r.get("bans") == 1, r
    lst = d.admin_request({"op": "ban.list"})
    rows = [row for row in lst["rows"] if row["iptext"] == ip]
    assert len(rows) == 1, lst
    until = calendar.timegm(time.strptime(rows[0]["until"].split(".")[0].rstrip("Z"), "%Y-%m-%dT%H:%M:%S"))
    return round((until - time.time()) / 3600)


def test_repeat_offender_4h_8h_12h_across_restart():
    with Daemon({"sqlite": SQLITE}, profiles=PROFILES) as d:
        d.start()
        assert ban_hours(d, "192.0.2.7") == 4
        assert ban_hours(d, "192.0.2.7") == 8
        # another address starts at 4h
        assert ban_hours(d, "192.0.2.8") == 4
        log = d.read_log()
        assert "profile default_ip_remediation: ban 192.0.2.7 for 8h" in log, log
        d.stop()
        # a restart: the index is loaded from the database (superseded bans count)
        d.start()
        assert ban_hours(d, "192.0.2.7") == 12
        assert ban_hours(d, "192.0.2.8") == 8
        st = d.status()
        h = st.get("ban_history")
        assert h and h["records"] >= 5 and h["lookups"] >= 2 and h["hits"] >= 2, st
        d.stop()


def test_since_count_counts_the_window_only():
    with Daemon({"sqlite": SQLITE}, profiles=SINCE_PROFILES) as d:
        d.start()
        assert ban_hours(d, "198.51.100.4") == 1
        assert ban_hours(d, "198.51.100.4") == 11
        d.stop()


def test_manual_ban_counts_through_the_change_log():
    # a ban made through spillwayctl does not go through routing: it
    # reaches the index through the change log, within sync_interval
    with Daemon({"sqlite": SQLITE}, main="queue:\n  flush_interval: 50ms\nbans:\n  sync_interval: 100ms\n",
                profiles=PROFILES) as d:
        d.start()
        d.ctl("ban", "add", "ip", "203.0.113.9", "1h", "manual", check=0)
        time.sleep(0.5)
        r = d.client().request({"signal": alert("203.0.113.9"), "ack": "flushed"})
        assert r["ok"] and r.get("bans") == 1, r
        # (the manual ban stays: a routed ban never replaces one; the log has the decision)
        wait_for(lambda: "ban 203.0.113.9 for 8h" in d.read_log(), 5, "the 8h decision in the log")
        assert d.status()["ban_history"]["sync"]["walks"] >= 3, d.status()
        d.stop()


def test_helpers_refused_without_a_change_log():
    # the mock 2.0 plugin keeps no change log: the helpers cannot be answered
    import os
    from spwtest import TEST_PLUGIN_DIR
    mock20 = "name: db\npath: %s\nconfig:\n  record: x.log\n" % os.path.join(TEST_PLUGIN_DIR, "mock20.so")
    with Daemon({"db": mock20}, profiles=PROFILES) as d:
        p = subprocess.run(d.args(["--check-config"]), capture_output=True, text=True)
        assert p.returncode == 1, p
        assert "GetDecisionsCount() needs the ban history" in p.stderr, p.stderr


def test_sync_interval_is_a_duration():
    with Daemon({"sqlite": SQLITE}, main="bans:\n  sync_interval: soon\n") as d:
        p = subprocess.run(d.args(["--check-config"]), capture_output=True, text=True)
        assert p.returncode == 1 and "sync_interval" in p.stderr and "soon" in p.stderr, p.stderr
    with Daemon({"sqlite": SQLITE}, main="bans:\n  sync_interval: 1ms\n") as d:
        p = subprocess.run(d.args(["--check-config"]), capture_output=True, text=True)
        assert p.returncode == 1 and "too short" in p.stderr, p.stderr


if __name__ == "__main__":
    run([test_repeat_offender_4h_8h_12h_across_restart, test_since_count_counts_the_window_only,
         test_manual_ban_counts_through_the_change_log, test_helpers_refused_without_a_change_log,
         test_sync_interval_is_a_duration])
