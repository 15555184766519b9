#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Decision scopes (issue 15) and stored-once signal ids (issue 12) with
the real daemon, a real SQLite file and the real webhook receiver:

  - a Country decision is stored by the ban database under its scope,
    listed (ban list --scope), deleted (ban del Country FR), shown by
    route test as not enforced, forwarded to the webhook with its scope,
    and status says that such bans are not enforced by address;
  - ban del keeps taking an address alone;
  - the spool redelivering signals the database already stored (a crash
    after the commit, before the spool's checkpoint) stores one row each.
"""
import json
import os
import sqlite3
import subprocess
import sys
import time

from spwtest import Daemon, SLOW, SOURCE_ROOT, TEST_PLUGIN_DIR, recorded, run, signal_obj, wait_for

RECEIVER = os.path.join(SOURCE_ROOT, "plugins", "webhook", "tests", "receiver.py")
MAIN = "queue:\n  flush_interval: 50ms\n"


def future(hours):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + hours * 3600))


def scoped_signal(ip="192.0.2.7"):
    """A signal carrying CrowdSec's decisions as the producer made them: one
    on the address, one on the country."""
    return signal_obj(ip=ip, ban_applications=[
        {"MeasureType": "ban", "MeasureSource": "crowdsec", "Until": future(4), "IpText": ip, "Reason": "ssh-bf"},
        {"MeasureType": "ban", "MeasureSource": "crowdsec", "Until": future(4), "Scope": "Country", "Value": "FR",
         "Reason": "geo"},
    ])


class Receiver:
    def __init__(self, d):
        self.record = d.path("requests.jsonl")
        self.proc = subprocess.Popen([sys.executable, RECEIVER, "--port", "0", "--record", self.record,
                                      "--exit-on-stdin-eof"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())

    def bodies(self):
        try:
            with open(self.record) as f:
                return [json.loads(json.loads(l)["body"]) for l in f if l.strip()]
        except FileNotFoundError:
            return []

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def rows(d, *args):
    return json.loads(d.ctl("-o", "json", "ban", "list", *args, check=0).stdout)["rows"]


def test_country_scope_stored_forwarded_not_enforced():
    with Daemon({}) as d:
        rx = Receiver(d)
        try:
            db = d.path("bans.db")
            d.write_config({"bans": "name: bans\npath: sqlite\nconfig:\n  db_path: %s\n" % db,
                            "hook": "name: hook\npath: webhook\nconfig:\n  url: http://127.0.0.1:%d/h\n" % rx.port},
                           main=MAIN)
            d.start()
            r = d.client().request({"signal": scoped_signal(), "ack": "flushed"})
            assert r["ok"], r

            # stored, with its scope, and nothing address-shaped
            c = sqlite3.connect(db)
            got = c.execute("SELECT scope, value, ip_text, hex(start_ip), hex(end_ip) FROM ban_applications"
                            " WHERE scope = 'Country'").fetchall()
            c.close()
            assert got == [("Country", "FR", "Country:FR", "0" * 32, "0" * 32)], got

            # listed, filtered by scope (any case)
            allrows = rows(d)
            assert sorted((x["scope"], x["value"]) for x in allrows) == [("Country", "FR"), ("Ip", "192.0.2.7")], allrows
            assert [(x["scope"], x["value"]) for x in rows(d, "--scope", "country")] == [("Country", "FR")]
            assert [x["value"] for x in rows(d, "--scope", "Ip")] == ["192.0.2.7"]
            assert rows(d, "--scope", "AS") == []
            table = d.ctl("ban", "list", "--no-pager", check=0).stdout
            assert "Country:FR" in table and "Ip:192.0.2.7" in table, table
            bad = d.ctl("ban", "list", "--scope", "no such", check=1)
            assert "not a scope name" in bad.stderr, (bad.stdout, bad.stderr)

            # forwarded to the webhook with its scope
            wait_for(lambda: rx.bodies(), 10, "the webhook delivery")
            bans = [b for body in rx.bodies() for s in body for b in s.get("ban_applications", [])]
            assert {"Scope": "Country", "Value": "FR"}.items() <= [b for b in bans if b["Scope"] == "Country"][0].items(), bans
            assert [b["Value"] for b in bans if b["Scope"] == "Ip"] == ["192.0.2.7"], bans

            # status: how many, and that address-based backends do not enforce them
            ps = d.backend_status("bans")["plugin_status"]
            assert ps.get("other_scope_bans") == "1", ps
            assert "not enforced by address-based backends" in ps.get("other_scopes", ""), ps
            st = d.ctl("status", check=0).stdout
            assert "not enforced by address-based backends" in st, st

            # route test shows the decision and that it is not enforced by address
            p = d.ctl("route", "test", input=json.dumps(scoped_signal()) + "\n", check=0)
            assert "ban: ban Country:FR until" in p.stdout and "not enforced" in p.stdout, p.stdout
            assert "ban: ban Ip:192.0.2.7 until" in p.stdout, p.stdout

            # manual bans of any scope; deletion by scope and value
            assert d.ctl("ban", "add", "username", "mallory", "1h", "brute", "force", check=0).returncode == 0
            assert [x["value"] for x in rows(d, "--scope", "username")] == ["mallory"]
            p = d.ctl("ban", "del", "Country", "FR", check=0)
            assert p.returncode == 0 and p.stdout.strip() == "1 ban(s) deleted", (p.stdout, p.stderr)
            p = d.ctl("ban", "del", "username", "mallory", check=0)
            assert p.stdout.strip() == "1 ban(s) deleted", (p.stdout, p.stderr)
            # an address alone still works, and so does ip ADDRESS
            p = d.ctl("ban", "del", "192.0.2.7", check=0)
            assert p.returncode == 0 and p.stdout.strip() == "1 ban(s) deleted", (p.stdout, p.stderr)
            assert rows(d) == []
            assert d.ctl("ban", "add", "ip", "192.0.2.9", "1h", "x", check=0).returncode == 0
            assert d.ctl("ban", "del", "ip", "192.0.2.9", check=0).stdout.strip() == "1 ban(s) deleted"
            d.stop()
        finally:
            rx.stop()


def truncate_checkpoint(d, backend):
    with open(os.path.join(d.state_dir, "spool", backend, "checkpoint"), "w"):
        pass


def stored(db, sql="SELECT count(*) FROM signal_occurences"):
    c = sqlite3.connect(db)
    try:
        return c.execute(sql).fetchone()[0]
    finally:
        c.close()


def test_redelivered_signal_ids_stored_once():
    with Daemon({}) as d:
        db = d.path("bans.db")
        d.write_config({"bans": "name: bans\npath: sqlite\ndurability: disk\nconfig:\n  db_path: %s\n" % db}, main=MAIN)
        d.start()
        c = d.client()
        for i in range(20):
            c.send({"signal": scoped_signal(ip="192.0.2.%d" % (i + 1)), "ack": "flushed"})
        replies = [c.readline() for _ in range(20)]
        assert all(r["ok"] for r in replies), replies
        ids = sorted(r["id"] for r in replies)
        assert stored(db) == 20
        d.stop()

        # a crash after the database committed, before the spool's
        # checkpoint: the next start delivers the same 20 signals again
        truncate_checkpoint(d, "bans")
        d.start()
        wait_for(lambda: d.backend_status("bans")["spool"]["pending"] == 0, 10 * SLOW, "the replay")
        wait_for(lambda: d.backend_status("bans")["plugin_status"].get("duplicates_skipped") == "20", 10 * SLOW,
                 "20 duplicates counted")
        assert stored(db) == 20
        assert stored(db, "SELECT count(*) FROM ban_applications") == 40  # an Ip and a Country ban each
        got = [r[0] for r in sqlite3.connect(db).execute(
            "SELECT spillway_signal_id FROM signal_occurences ORDER BY 1").fetchall()]
        assert got == ids, (got, ids)
        # new signals are stored as before
        c = d.client()
        assert c.request({"signal": signal_obj(ip="198.51.100.1"), "ack": "flushed"})["ok"]
        assert stored(db) == 21
        d.stop()


SCOPE_PROFILES = """name: country_and_user
filters:
 - Alert.Remediation == true
decisions:
 - type: ban
   duration: 4h
 - type: ban
   duration: 1h
   scope: username
on_success: break
"""


def test_profile_decisions_on_other_scopes():
    """A CrowdSec v1 profile makes decisions on other scopes: the default
    scope is the alert's (Labels.scope Country: the source's country), a
    username decision takes Labels.value; both are stored under their scope
    and listed by it; a signal without a username gets the Country ban only."""
    with Daemon({}, profiles=SCOPE_PROFILES) as d:
        db = d.path("bans.db")
        d.write_config({"bans": "name: bans\npath: sqlite\nconfig:\n  db_path: %s\n" % db}, main=MAIN,
                       profiles=SCOPE_PROFILES)
        d.start()
        c = d.client()
        sig = signal_obj(Labels={"remediation": "true", "scope": "Country", "value": "alice"})
        r = c.request({"signal": sig, "ack": "flushed"})
        assert r["ok"] and r["bans"] == 2, r
        got = sorted((x["scope"], x["value"]) for x in rows(d))
        assert got == [("Country", "FR"), ("username", "alice")], got
        assert [x["value"] for x in rows(d, "--scope", "username")] == ["alice"]
        sig = signal_obj(ip="192.0.2.8", Labels={"remediation": "true", "scope": "Country"}, source={"Ip": "192.0.2.8", "Country": "DE"})
        r = c.request({"signal": sig, "ack": "flushed"})
        assert r["ok"] and r["bans"] == 1, r
        assert sorted(x["value"] for x in rows(d, "--scope", "country")) == ["DE", "FR"]
        d.stop()


def test_old_plugins_never_see_other_scopes():
    """A plugin built against ABI 2.0 (mock20) knows only Ip and Range: a
    Country ban would read to it as 0.0.0.0, so it gets the signal without
    it; a 2.2 plugin (mock) gets it whole."""
    with Daemon({}) as d:
        new, old = d.path("new.log"), d.path("old.log")
        conf = "name: %s\npath: %s\nconfig:\n  record: %s\n"
        d.write_config({"new": conf % ("new", os.path.join(TEST_PLUGIN_DIR, "mock.so"), new),
                        "old": conf % ("old", os.path.join(TEST_PLUGIN_DIR, "mock20.so"), old)}, main=MAIN)
        d.start()
        sig = signal_obj(ip="192.0.2.9", ban_applications=[
            {"MeasureType": "ban", "MeasureSource": "crowdsec", "Until": future(4), "Scope": "Country", "Value": "FR",
             "Reason": "geo"},
            {"MeasureType": "ban", "MeasureSource": "crowdsec", "Until": future(4), "IpText": "192.0.2.9",
             "Reason": "ssh-bf"},
        ])
        assert d.client().request({"signal": sig, "ack": "flushed"})["ok"]
        only_country = signal_obj(ip="192.0.2.10", ban_applications=[
            {"MeasureType": "ban", "MeasureSource": "crowdsec", "Until": future(4), "Scope": "Country", "Value": "DE",
             "Reason": "geo"}])
        assert d.client().request({"signal": only_country, "ack": "flushed"})["ok"]
        assert [r[2] for r in recorded(new)] == ["Country:FR", "Country:DE"], recorded(new)
        assert [r[2] for r in recorded(old)] == ["192.0.2.9", "-"], recorded(old)
        d.stop()


if __name__ == "__main__":
    run([
        test_profile_decisions_on_other_scopes,
        test_old_plugins_never_see_other_scopes,
        test_country_scope_stored_forwarded_not_enforced,
        test_redelivered_signal_ids_stored_once,
    ])
