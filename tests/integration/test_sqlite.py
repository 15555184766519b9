#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The SQLite ban database with the real daemon and spillwayctl (issue 5):
signals in, `ban list` in three formats with every filter, add/del/flush,
bans surviving a restart, and a database the sqlite3 tool reads."""
import csv
import io
import json
import os
import shutil
import subprocess
import time

from spwtest import Daemon, SkipTest, run, signal_obj

PROFILES = """profile: default_remediation
filter: "sig.Labels.remediation == 'true' && not sig.Whitelisted"
remediation:
  ban: true
  duration: 4h
outputs:
  - plugin: sqlite
"""
SQLITE = "name: sqlite\npath: sqlite\nconfig:\n  db_path: bans.db\n"


def future_signal(ip, scenario="crowdsecurity/ssh-bf", country="FR", asn="64496", org="Example Net", **extra):
    s = signal_obj(scenario=scenario, ip=ip, remediation=True)
    now = time.time()
    s["start_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 20))
    s["stop_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    s["source"].update({"Country": country, "AutonomousSystemNumber": asn, "AutonomousSystemOrganization": org})
    s.update(extra)
    return s


def feed(d, signals):
    c = d.client()
    for s in signals:
        c.send({"signal": s, "ack": "flushed"})
    replies = [c.readline() for _ in signals]
    assert all(r["ok"] for r in replies), replies
    c.close()


def test_ban_list_formats_and_filters():
    with Daemon({"sqlite": SQLITE}, profiles=PROFILES) as d:
        d.start()
        feed(d, [future_signal("192.0.2.7"), future_signal("192.0.2.8", scenario="crowdsecurity/http-probing", country="DE"),
                 future_signal("2001:db8::5", country="NL", asn="64500", org="Other AS"),
                 future_signal("192.0.2.7")])  # a second ban for the same target
        # human: CrowdSec's columns, aligned
        p = d.ctl("ban", "list", check=0)
        lines = p.stdout.splitlines()
        assert lines[0].split(" | ")[0].strip() == "Source", p.stdout
        assert [h.strip() for h in lines[0].split("|")] == ["Source", "Scope:Value", "Reason", "Bans", "Action", "Country", "AS",
                                                         "Events", "Expiration"], lines[0]
        assert "3 active bans" in p.stdout, p.stdout
        row7 = [l for l in lines if "192.0.2.7 " in l][0]
        # the second ban on 192.0.2.7 replaced the first: one active ban per target
        assert [c.strip() for c in row7.split("|")][3] == "1", row7
        # raw: CSV with CrowdSec's header
        p = d.ctl("-o", "raw", "ban", "list", check=0)
        rows = list(csv.reader(io.StringIO(p.stdout)))
        assert rows[0] == ["source", "ip", "reason", "bans", "action", "country", "as", "events_count", "expiration", "scope", "value"], rows[0]
        assert sorted(r[1] for r in rows[1:]) == ["192.0.2.7", "192.0.2.8", "2001:db8::5"], rows
        # json
        p = d.ctl("-o", "json", "ban", "list", check=0)
        j = json.loads(p.stdout)
        assert j["total"] == 3 and {r["iptext"] for r in j["rows"]} == {"192.0.2.7", "192.0.2.8", "2001:db8::5"}
        # filters
        def ips(*args):
            return sorted(r["iptext"] for r in json.loads(d.ctl("-o", "json", "ban", "list", *args, check=0).stdout)["rows"])
        assert ips("--ip", "192.0.2.8") == ["192.0.2.8"]
        assert ips("--range", "192.0.2.0/24") == ["192.0.2.7", "192.0.2.8"]
        assert ips("--range", "2001:db8::/32") == ["2001:db8::5"]
        assert ips("--country", "de") == ["192.0.2.8"]
        assert ips("--reason", "http") == ["192.0.2.8"]
        assert ips("--as", "Other") == ["2001:db8::5"]
        assert ips("--at", "+5h") == []          # expired by then
        assert len(ips("--limit", "1")) == 1
        p = d.ctl("ban", "list", "--limit", "1", check=0)
        assert "2 more bans not shown" in p.stdout, p.stdout
        d.ctl("ban", "list", "--ip", "not-an-ip", check=1)
        d.ctl("ban", "list", "--limit", "zero", check=2)
        d.stop()


def test_ban_add_del_flush_and_restart():
    with Daemon({"sqlite": SQLITE}, profiles=PROFILES) as d:
        d.start()
        p = d.ctl("ban", "add", "ip", "198.51.100.20", "2h", "manual", "ban", "by", "an", "operator", check=0)
        assert "1 backend(s) stored the ban" in p.stdout, p.stdout
        d.ctl("ban", "add", "range", "198.51.100.0/24", "1h", "noisy", "subnet", "--remediation", "captcha", check=0)
        d.ctl("ban", "add", "range", "2001:db8:1::/48", "1h", "v6", "range", check=0)
        j = json.loads(d.ctl("-o", "json", "ban", "list", check=0).stdout)
        by_ip = {r["iptext"]: r for r in j["rows"]}
        assert by_ip["198.51.100.20"]["reason"] == "manual ban by an operator"
        assert by_ip["198.51.100.0/24"]["action"] == "captcha"
        assert "2001:db8:1::/48" in by_ip
        # an address inside a banned range is found by --ip
        ips = {r["iptext"] for r in json.loads(d.ctl("-o", "json", "ban", "list", "--ip", "198.51.100.77", check=0).stdout)["rows"]}
        assert ips == {"198.51.100.0/24"}, ips
        # usage errors are exit 2, refused operations exit 1, with a message on stderr
        p = d.ctl("ban", "add", "ip", "198.51.100.300", "2h", "bad", check=1)
        assert "not an IPv4 or IPv6 address" in p.stderr, p.stderr
        p = d.ctl("ban", "add", "ip", "198.51.100.21", "forever", "bad", check=2)
        assert "DURATION" in p.stderr
        d.ctl("ban", "add", "no/such", "x", "1h", "bad", check=2)  # not a scope name (any other scope is one: Country, host...)
        # restart: the bans are still there
        assert d.stop() == 0
        d.start()
        j = json.loads(d.ctl("-o", "json", "ban", "list", check=0).stdout)
        assert j["total"] == 3, j
        p = d.ctl("ban", "del", "ip", "198.51.100.20", check=0)
        assert "1 ban(s) deleted" in p.stdout, p.stdout
        p = d.ctl("ban", "flush", check=0)
        assert "2 ban(s) deleted" in p.stdout, p.stdout
        assert json.loads(d.ctl("-o", "json", "ban", "list", check=0).stdout)["total"] == 0
        # administrative actions are logged with the peer's credentials
        log = d.read_log()
        assert "admin: ban.add ban 198.51.100.20 for 2h" in log and "peer uid %d" % os.getuid() in log, log
        d.stop()


def test_database_readable_with_sqlite3():
    if not shutil.which("sqlite3"):
        raise SkipTest("sqlite3 command not installed")
    with Daemon({"sqlite": SQLITE}, profiles=PROFILES) as d:
        d.start()
        feed(d, [future_signal("203.0.113.9", events_sequence=[{"time": "2024-01-01T10:00:01Z", "source_ip": "203.0.113.9",
                                                                 "serialized": "{}"}])])
        db = os.path.join(d.state_dir, "bans.db")
        out = subprocess.run(["sqlite3", db, "SELECT s.scenario, b.ip_text, b.measure_type, b.measure_source, "
                              "e.source_ip FROM ban_applications b JOIN signal_occurences s ON b.signal_occurence_id = s.id "
                              "JOIN event_sequences e ON e.signal_occurence_id = s.id WHERE b.deleted_at IS NULL"],
                             capture_output=True, text=True, check=True).stdout
        assert out.strip() == "crowdsecurity/ssh-bf|203.0.113.9|ban|local|203.0.113.9", out
        d.stop()


def test_status_and_metrics():
    with Daemon({"sqlite": SQLITE}, profiles=PROFILES) as d:
        d.start()
        feed(d, [future_signal("192.0.2.%d" % i) for i in range(1, 6)])
        p = d.ctl("status", check=0)
        assert "sqlite" in p.stdout and "running" in p.stdout, p.stdout
        st = json.loads(d.ctl("-o", "json", "status", check=0).stdout)
        b = st["backends"][0]
        assert b["inserted"] == 5 and b["flushed"] == 5 and b["queue"]["capacity"] > 0, b
        m = d.ctl("metrics", check=0).stdout
        assert 'spillway_backend_inserted_total{backend="sqlite"} 5' in m, m
        assert "# TYPE spillway_signals_accepted_total counter" in m
        d.stop()


def test_ctl_unreachable_and_send():
    with Daemon({"sqlite": SQLITE}, profiles=PROFILES) as d:
        p = d.ctl("status", check=3)   # not running: exit 3 and a hint
        assert "cannot connect" in p.stderr and "spillway.socket" in p.stderr, p.stderr
        d.start()
        lines = "\n".join(json.dumps(future_signal("192.0.2.%d" % i)) for i in range(1, 11))
        lines += '\n{"scenario": 5}\n'
        p = d.ctl("send", "--ack", "flushed", "-", input=lines, check=4)
        assert "10 signals acknowledged flushed, 1 failed" in p.stderr, p.stderr
        assert "stdin:11: scenario: expected a string" in p.stderr, p.stderr
        assert json.loads(d.ctl("-o", "json", "ban", "list", check=0).stdout)["total"] == 10
        d.stop()


def test_corrupt_database_leaves_other_backends_running():
    with Daemon({"sqlite": SQLITE, "n": "name: n\npath: null\n"}, profiles=None) as d:
        with open(os.path.join(d.state_dir, "bans.db"), "wb") as f:
            f.write(b"this is not a database, just garbage " * 100)
        d.start()
        st = {b["name"]: b for b in d.status()["backends"]}
        assert st["sqlite"]["state"] == "failed", st
        assert "bans.db" in st["sqlite"]["error"], st["sqlite"]["error"]
        assert st["n"]["state"] == "running"
        assert d.client().request(signal_obj())["ok"]
        d.stop()


def test_outside_reader_does_not_take_the_wal_away():
    # The file watch once read the database header through a descriptor of
    # its own and closed it, which dropped the daemon's POSIX locks on the
    # file: an outside reader (sqlite3, a monitoring script) then believed it
    # was the only connection, checkpointed and deleted the -wal on close, and
    # every later commit went into an unlinked file: acknowledged `flushed`,
    # invisible to others, lost at the next start.
    import sqlite3
    with Daemon({"sqlite": SQLITE}) as d:
        d.start()
        db = d.path("state", "bans.db")
        c = d.client()

        def count():
            con = sqlite3.connect(db)
            try:
                return con.execute("SELECT COUNT(*) FROM signal_occurences").fetchone()[0]
            finally:
                con.close()
        for i in range(1, 6):
            r = c.request({"signal": signal_obj(ip="192.0.2.%d" % i), "ack": "flushed"})
            assert r["ok"], r
            time.sleep(2.5)  # the watch runs every 2 s: let it run between the outside reads
            assert count() == i, (i, count())
        assert os.path.exists(db + "-wal"), "the daemon's -wal file was deleted under it"
        d.proc.kill()
        d.proc.wait()
        for sock in (d.ingest, d.admin):  # left behind by the kill
            os.unlink(sock)
        d.start()
        assert d.status()["ok"]
        assert count() == 5
        assert d.stop() == 0


if __name__ == "__main__":
    run([test_outside_reader_does_not_take_the_wal_away, test_ban_list_formats_and_filters, test_ban_add_del_flush_and_restart, test_database_readable_with_sqlite3,
         test_status_and_metrics, test_ctl_unreachable_and_send, test_corrupt_database_leaves_other_backends_running])
