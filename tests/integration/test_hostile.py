#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A hostile producer against the real daemon (issue 11): what it sends must
not forge log lines, and what the operator loads must not weaken the daemon."""
import calendar
import json
import os
import shutil
import socket
import subprocess
import time

from spwtest import SLOW, TEST_PLUGIN_DIR, Client, Daemon, mock_backend, recorded, run, signal_obj, wait_for

FORGED = "spillway: admin: ban.flush (peer uid 0 gid 0 pid 1)"


def test_producer_strings_cannot_forge_log_lines():
    with Daemon({}) as d:
        d.write_config({"m": mock_backend("m", d.path("m.log"), mode="permanent")})
        d.start()
        c = d.client()
        scenario = "evil\n" + FORGED + "\r\x1b[2K\x1b]0;pwned\x07"
        r = c.request(signal_obj(scenario=scenario))
        assert r["ok"], r  # queued; the backend then rejects it and the daemon logs why
        wait_for(lambda: "not delivered" in d.read_log(), what="the rejection warning")
        log = d.read_log()
        lines = log.splitlines()
        assert not any(line.startswith(FORGED) for line in lines), log
        assert "\x1b" not in log and "\r" not in log and "\x07" not in log, repr(log[-500:])
        # the text is still there, visibly escaped
        assert "evil\\n" + FORGED + "\\r\\e[2K\\e]0;pwned\\x07" in log, log
        assert d.stop() == 0


def test_plugin_with_executable_stack_is_refused():
    xstack = os.path.join(os.path.dirname(TEST_PLUGIN_DIR), "mock_execstack.so")
    if not os.path.exists(xstack):
        raise AssertionError("the execstack control plugin was not built: %s" % xstack)
    with Daemon({}) as d:
        shutil.copy(xstack, d.path("xstack.so"))
        d.write_config({"x": "name: x\npath: %s\n" % d.path("xstack.so"),
                        "n": "name: n\npath: null\n"})
        d.start(wait=False)
        assert d.proc.wait(30) != 0
        log = d.read_log()
        assert "x.yaml:1: backend 'x'" in log and "cannot be loaded: it asks for an executable stack" in log, log
        # --check-config says the same without starting
        p = subprocess.run(d.args(["--check-config"]), capture_output=True, text=True, timeout=60)
        assert p.returncode != 0 and "executable stack" in p.stdout + p.stderr, (p.returncode, p.stdout, p.stderr)


def test_idle_ingest_connections_cannot_lock_the_operator_out():
    """Item 1: each socket has its own limit, one uid cannot take the whole
    ingest socket, and spillwayctl says "unreachable" (3) when refused."""
    main = "sockets:\n  max_connections: 12\n  max_connections_per_uid: 6\n  max_admin_connections: 2\n"
    with Daemon({}) as d:
        d.write_config({"n": "name: n\npath: null\n"}, main=main)
        d.start()
        held = [Client(d.ingest) for _ in range(6)]
        for c in held:  # all really accepted
            assert c.request(signal_obj())["ok"]
        # the 7th from the same uid is refused with a reason
        c = Client(d.ingest)
        r = c.readline()
        assert not r["ok"] and "max_connections_per_uid" in r["error"] and r.get("refused"), r
        c.close()
        # the ingest side being busy leaves the admin socket alone
        d.ctl("status", check=0)
        # fill the admin socket: 2 + root's reserve of 4
        admins = [Client(d.admin) for _ in range(6)]
        for a in admins:
            assert a.request({"op": "status"})["ok"]
        p = d.ctl("status")
        assert p.returncode == 3, (p.returncode, p.stderr)
        assert "refused" in p.stderr and "max_admin_connections" in p.stderr, p.stderr
        for a in admins:
            a.close()
        wait_for(lambda: d.ctl("status").returncode == 0, what="room on the admin socket")
        for c in held:
            c.close()
        assert d.stop() == 0


def test_connections_that_send_nothing_are_disconnected():
    with Daemon({}) as d:
        d.write_config({"n": "name: n\npath: null\n"}, main="sockets:\n  idle_timeout: 1s\nstatus_interval: 100ms\n")
        d.start()
        quiet = Client(d.ingest)
        busy = Client(d.ingest)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.5 * SLOW:
            assert busy.request(signal_obj())["ok"]
            time.sleep(0.2)
        r = quiet.readline()
        assert not r["ok"] and "idle_timeout" in r["error"], r
        assert quiet.sock.recv(100) == b""
        assert busy.request(signal_obj())["ok"]  # a client that talks is kept
        assert d.stop() == 0


def test_last_line_without_newline_at_eof_is_accepted():
    with Daemon({}) as d:
        log = d.path("m.log")
        d.write_config({"m": mock_backend("m", log)})
        d.start()
        c = d.client()
        c.send_raw('{"scenario": "one"}\n{"scenario": "last"}')
        c.shutdown_write()
        assert c.readline()["ok"]
        assert c.readline()["ok"]
        wait_for(lambda: len(recorded(log)) == 2, what="both signals")
        assert d.stop() == 0


def test_every_line_before_eof_is_answered_when_the_daemon_yields():
    """Found by fuzz-admin: a client that pipelines lines and closes its side
    lost the lines after a yield (a connection is served 20 ms per turn of
    the loop): when the replies so far completed meanwhile (a flushed ack)
    and were written, the connection was closed with lines still unread.
    Heavy routing (a profile whose match costs its whole budget, ~70 ms)
    makes every line yield."""
    heavy = "([a-p]?){1000}([a-p]?){1000}z"  # as test_attack's regex bomb
    profiles = ("profile: heavy\nfilter: \"sig.Alert_message matches '%s'\"\noutputs:\n  - plugin: n\n"
                "---\nprofile: all\nfilter: \"true\"\noutputs:\n  - plugin: n\n" % heavy)
    with Daemon({"n": "name: n\npath: null\n"}, profiles=profiles) as d:
        d.start()
        n = 6
        c = Client(d.ingest, timeout=60 * SLOW)
        lines = [json.dumps({"signal": signal_obj(scenario="s%d" % i, alert_message="a" * 4000), "ack": "flushed"})
                 for i in range(n)]
        c.send_raw("\n".join(lines))  # the last one without a newline, ended by EOF
        c.shutdown_write()
        data = b""
        while True:
            chunk = c.sock.recv(1 << 20)
            if not chunk:
                break
            data += chunk
        c.close()
        replies = data.splitlines()
        assert len(replies) == n, (len(replies), replies)
        assert all(json.loads(r)["ok"] for r in replies), replies
        assert d.stop() == 0


def test_signal_member_that_is_not_an_object():
    with Daemon({}) as d:
        d.write_config({"n": "name: n\npath: null\n"})
        d.start()
        c = d.client()
        for bad in ("x", 1, [], None):
            r = c.request({"signal": bad})
            assert not r["ok"] and "signal: expected an object" in r["error"], (bad, r)
        assert d.stop() == 0


SQLITE = "name: sqlite\npath: sqlite\nconfig:\n  db_path: bans.db\n"


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def ban_signal(ip_text, stop_at, until, ip="192.0.2.99", **ban):
    s = signal_obj(ip=ip)
    s["start_at"] = s["stop_at"] = stop_at
    b = {"IpText": ip_text, "Until": until, "MeasureType": "ban", "Reason": "hostile test"}
    b.update(ban)
    s["ban_applications"] = [b]
    return s


def active_until(d, ip_text):
    """The until of ip_text's active ban (seconds since the epoch), or None."""
    lst = d.admin_request({"op": "ban.list", "limit": 0})
    assert lst["ok"], lst
    rows = [r for r in lst["rows"] if r["iptext"] == ip_text]
    assert len(rows) <= 1, rows
    if not rows:
        return None
    return calendar.timegm(time.strptime(rows[0]["until"].split(".")[0].rstrip("Z"), "%Y-%m-%dT%H:%M:%S"))


def test_automatic_ban_cannot_cover_the_internet():
    """Item 2: nothing broader than /16 (IPv4) or /32 (IPv6) from producers;
    the admin only with force."""
    with Daemon({"sqlite": SQLITE}) as d:
        d.start()
        c = d.client()
        now = time.time()
        for wide, canon in (("0.0.0.0/0", "0.0.0.0/0"), ("::/0", "::/0"), ("1.2.3.4/0", "0.0.0.0/0"),
                            ("10.0.0.0/8", "10.0.0.0/8"), ("2001:db8::/16", "2001::/16")):
            r = c.request({"signal": ban_signal(wide, iso(now), iso(now + 3600)), "ack": "flushed"})
            assert r["ok"] and "bans" not in r, (wide, r)
            assert canon + ": broader than" in r["bans_refused"] and "bans.min_prefix_v" in r["bans_refused"], r
        # what the limits allow goes through
        for ok in ("198.51.100.0/24", "10.1.0.0/16", "2001:db8::/32"):
            r = c.request({"signal": ban_signal(ok, iso(now), iso(now + 3600)), "ack": "flushed"})
            assert r["ok"] and r.get("bans") == 1 and "bans_refused" not in r, (ok, r)
        lst = d.admin_request({"op": "ban.list", "limit": 0})
        assert sorted(x["iptext"] for x in lst["rows"]) == ["10.1.0.0/16", "198.51.100.0/24", "2001:db8::/32"], lst
        assert "ban of 0.0.0.0/0 refused: broader than /16 (bans.min_prefix_v4)" in d.read_log(), d.read_log()
        # the admin: refused unless forced
        p = d.ctl("ban", "add", "range", "0.0.0.0/0", "1h", "oops")
        assert p.returncode == 1 and "broader than /16" in p.stderr and "--force" in p.stderr, (p.returncode, p.stderr)
        d.ctl("ban", "add", "range", "0.0.0.0/2", "1h", "really", "--force", check=0)
        assert active_until(d, "0.0.0.0/2") is not None
        # ...but not over bans.never_ban (0.0.0.0/1 holds 127.0.0.0/8), even forced
        p = d.ctl("ban", "add", "range", "0.0.0.0/1", "1h", "really", "--force")
        assert p.returncode == 1 and "overlaps bans.never_ban entry 127.0.0.0/8" in p.stderr, (p.returncode, p.stderr)
        assert d.stop() == 0


def test_bans_cannot_be_lifted_or_shortened():
    """Item 3: until counts from reception, capped; a new ban extends, never
    shortens or expires; automatic bans never replace manual ones."""
    with Daemon({"sqlite": SQLITE}, main="bans:\n  max_duration: 48h\n") as d:
        d.start()
        c = d.client()

        def send(ip, stop_at, until):
            r = c.request({"signal": ban_signal(ip, stop_at, until), "ack": "flushed"})
            assert r["ok"], r
            return r

        # the admin bans for 720h; a producer's 4h ban dated 2000 must not lift it
        d.ctl("ban", "add", "ip", "192.0.2.50", "720h", "manual", check=0)
        t0 = time.time()
        send("192.0.2.50", "2000-01-01T00:00:00Z", "2000-01-01T04:00:00Z")
        u = active_until(d, "192.0.2.50")
        assert u is not None and u > t0 + 719 * 3600, (u, t0)
        # ...nor a longer automatic one replace it
        send("192.0.2.50", iso(t0), iso(t0 + 40 * 3600))
        assert active_until(d, "192.0.2.50") > t0 + 719 * 3600
        # a ban dated in 2000 lasts its 4h from now, not already expired
        send("192.0.2.51", "2000-01-01T00:00:00Z", "2000-01-01T04:00:00Z")
        u = active_until(d, "192.0.2.51")
        assert u is not None and abs(u - (t0 + 4 * 3600)) < 120, (u, t0)
        # a shorter one does not shorten it; a longer one extends it
        send("192.0.2.51", iso(t0), iso(t0 + 3600))
        assert abs(active_until(d, "192.0.2.51") - (t0 + 4 * 3600)) < 120
        send("192.0.2.51", iso(t0), iso(t0 + 8 * 3600))
        assert abs(active_until(d, "192.0.2.51") - (t0 + 8 * 3600)) < 120
        # stop_at centuries ahead: still 4h from now; a century-long ban: capped at max_duration
        send("192.0.2.52", "2500-01-01T00:00:00Z", "2500-01-01T04:00:00Z")
        assert abs(active_until(d, "192.0.2.52") - (t0 + 4 * 3600)) < 120
        send("192.0.2.53", iso(t0), "2999-01-01T00:00:00Z")
        assert abs(active_until(d, "192.0.2.53") - (t0 + 48 * 3600)) < 120
        # a ban that ends before its own stop_at is refused, and lifts nothing
        r = send("192.0.2.51", iso(t0), iso(t0 - 60))
        assert "bans" not in r and "expired" in r["bans_refused"], r
        assert abs(active_until(d, "192.0.2.51") - (t0 + 8 * 3600)) < 120
        # a producer cannot pass its ban off as manual
        send("192.0.2.54", iso(t0), iso(t0 + 3600))
        c.request({"signal": ban_signal("192.0.2.54", iso(t0), iso(t0 + 1800), MeasureSource="cscli"), "ack": "flushed"})
        send("192.0.2.54", iso(t0), iso(t0 + 7200))
        assert abs(active_until(d, "192.0.2.54") - (t0 + 7200)) < 120
        # the admin can still delete
        d.ctl("ban", "del", "ip", "192.0.2.50", check=0)
        assert active_until(d, "192.0.2.50") is None
        assert d.stop() == 0


def test_ban_delete_mapped_ipv4_and_invalid_utf8_rows():
    """Item 6: ::ffff:1.2.3.4 is one target whichever way it is written; a
    row holding invalid UTF-8 still gives valid JSON."""
    import json
    import sqlite3
    with Daemon({"sqlite": SQLITE}) as d:
        d.start()
        now = time.time()
        d.ctl("ban", "add", "ip", "::ffff:1.2.3.4", "1h", "mapped", check=0)
        c = d.client()
        r = c.request({"signal": ban_signal("::FFFF:1.2.3.5", iso(now), iso(now + 3600)), "ack": "flushed"})
        assert r["ok"] and r["bans"] == 1, r
        lst = d.admin_request({"op": "ban.list", "ip": "::ffff:1.2.3.4"})
        assert [x["iptext"] for x in lst["rows"]] == ["1.2.3.4"], lst
        r = d.admin_request({"op": "ban.delete", "scope": "ip", "target": "::ffff:1.2.3.4"})
        assert r["ok"] and r["count"] == 1, r
        r = d.admin_request({"op": "ban.delete", "scope": "ip", "target": "1.2.3.5"})
        assert r["ok"] and r["count"] == 1, r
        # a row written by something else, with bytes that are not UTF-8
        d.ctl("ban", "add", "ip", "192.0.2.77", "1h", "fine", check=0)
        db = sqlite3.connect(d.path("state", "bans.db") if os.path.exists(d.path("state", "bans.db")) else d.path("bans.db"))
        db.execute("UPDATE ban_applications SET reason = CAST(X'6261649fff20c3' AS TEXT) WHERE ip_text = '192.0.2.77'")
        db.commit()
        db.close()
        p = d.ctl("-o", "json", "ban", "list", check=0)
        rows = json.loads(p.stdout)
        text = json.dumps(rows)
        assert "192.0.2.77" in text and "bad\\ufffd\\ufffd \\ufffd" in text, text
        assert d.stop() == 0


def test_field_size_caps():
    """Item 4: documented per-field limits, with errors naming the field."""
    with Daemon({"n": "name: n\npath: null\n"}) as d:
        d.start()
        c = d.client()
        assert c.request(signal_obj(alert_message="m" * 16384))["ok"]
        r = c.request(signal_obj(alert_message="m" * 1000000))  # before: stored as is, 1 MB a signal
        assert not r["ok"] and "alert_message: 1000000 bytes, longer than the limit of 16384" in r["error"], r
        r = c.request(signal_obj(scenario="s" * 5000))
        assert not r["ok"] and "scenario" in r["error"] and "limit of 4096" in r["error"], r
        r = c.request(signal_obj(Labels={"k%d" % i: "v" for i in range(65)}))
        assert not r["ok"] and "Labels: 65 members" in r["error"], r
        r = c.request(signal_obj(events_sequence=[{"serialized": "e" * 16000}] * 17))
        assert not r["ok"] and "events_sequence" in r["error"] and "262144" in r["error"], r
        assert c.request(signal_obj())["ok"]
        assert d.stop() == 0


def fail2ban_signal(ip, jail="sshd"):
    """What the shipped fail2ban action's actionban pipes into spillwayctl:
    its _signal program, taken from etc/fail2ban/action.d/spillway.conf."""
    import configparser
    cp = configparser.RawConfigParser()
    cp.read(os.path.join(os.environ["SPW_SOURCE_ROOT"], "etc", "fail2ban", "action.d", "spillway.conf"))
    code = cp.get("Definition", "_signal").replace("%%", "%")
    p = subprocess.run(["python3", "-c", code, "fail2ban/" + jail, ip, "5", "600", str(time.time()),
                        "Failed password for root from " + ip], capture_output=True, text=True, check=True)
    return p.stdout


def test_never_ban_holds_for_every_ban_source():
    """Item 2: bans.never_ban (default loopback and link-local) is refused
    whatever made the ban: a producer's ban_applications, a profile, the
    admin's ban add (even with --force), a CrowdSec alert over HTTP and the
    fail2ban action. Each source also bans an address outside the list, so
    the refusal is the list's doing."""
    import socket as _s
    s = _s.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    main = ("queue:\n  flush_interval: 50ms\n"
            "sockets:\n  http: 127.0.0.1:%d\n  http_token: tok\n  crowdsec_decisions: apply\n"
            "bans:\n  never_ban: 127.0.0.0/8, ::1, 198.51.100.0/24\n" % port)
    profiles = ("profile: ban_remediation\nfilter: \"sig.Labels.remediation == 'true'\"\n"
                "remediation:\n  ban: true\n  duration: 1h\noutputs:\n  - plugin: sqlite\n"
                "---\nprofile: store_all\nfilter: \"true\"\noutputs:\n  - plugin: sqlite\n")
    with Daemon({"sqlite": SQLITE}, main=main, profiles=profiles) as d:
        d.start()
        wait_for(lambda: _port_open(port), 10, "the HTTP port")
        c = d.client()
        now = time.time()

        def banned():
            lst = d.admin_request({"op": "ban.list", "limit": 0})
            assert lst["ok"], lst
            return {x["iptext"] for x in lst["rows"]}

        # 1. a producer's own ban (no profile involved: no remediation label)
        for ip, refused in (("127.0.0.1", True), ("192.0.2.61", False)):
            r = c.request({"signal": ban_signal(ip, iso(now), iso(now + 3600)), "ack": "flushed"})
            assert r["ok"], r
            if refused:
                assert "bans" not in r and "127.0.0.1: it overlaps bans.never_ban entry 127.0.0.0/8" in r["bans_refused"], r
            else:
                assert r.get("bans") == 1 and "bans_refused" not in r, r
        assert "ban of 127.0.0.1 refused: it overlaps bans.never_ban entry 127.0.0.0/8" in d.read_log()
        # a range that contains a never_ban entry is refused too
        r = c.request({"signal": ban_signal("198.51.0.0/16", iso(now), iso(now + 3600)), "ack": "flushed"})
        assert "198.51.0.0/16: it overlaps bans.never_ban entry 198.51.100.0/24" in r.get("bans_refused", ""), r
        # 2. a profile's ban
        for ip in ("198.51.100.7", "192.0.2.62"):
            sig = signal_obj(ip=ip, remediation=True)
            r = c.request({"signal": sig, "ack": "flushed"})
            assert r["ok"], r
        # 3. the admin, even with --force
        for args in (("ip", "127.0.0.1"), ("ip", "::1"), ("range", "198.51.0.0/16")):
            p = d.ctl("ban", "add", *args, "1h", "oops", "--force")
            assert p.returncode == 1 and "overlaps bans.never_ban entry" in p.stderr and "spillway.yaml" in p.stderr, \
                (args, p.returncode, p.stderr)
        d.ctl("ban", "add", "ip", "192.0.2.63", "1h", "manual", check=0)
        # 4. a CrowdSec alert over HTTP, its decision applied
        import http.client, json
        for ip in ("127.0.0.9", "192.0.2.64"):
            alert = {"scenario": "crowdsecurity/ssh-bf", "message": "m", "events_count": 1,
                     "start_at": iso(now), "stop_at": iso(now),
                     "source": {"scope": "Ip", "value": ip, "ip": ip},
                     "decisions": [{"duration": "3h59m0s", "origin": "crowdsec", "scenario": "crowdsecurity/ssh-bf",
                                    "scope": "Ip", "type": "ban", "value": ip}]}
            h = http.client.HTTPConnection("127.0.0.1", port, timeout=30 * SLOW)
            h.request("POST", "/v1/crowdsec/alerts?ack=flushed", body=json.dumps([alert]).encode(),
                      headers={"Content-Type": "application/json", "Authorization": "Bearer tok"})
            resp = h.getresponse()
            body = json.loads(resp.read())
            h.close()
            assert resp.status == 200, body
        # 5. the fail2ban action (fail2ban itself ignores 127.0.0.1/8 by default:
        # here a jail that does not, like ignoreself = false)
        for ip in ("127.0.0.5", "192.0.2.65"):
            d.ctl("send", "--ack", "flushed", "-", input=fail2ban_signal(ip), check=0)
        got = banned()
        assert got == {"192.0.2.61", "192.0.2.62", "192.0.2.63", "192.0.2.64", "192.0.2.65"}, got
        assert d.stop() == 0
    # the list is checked at load, naming the file; "none" empties it
    with Daemon({"sqlite": SQLITE}, main="bans:\n  never_ban: 127.0.0.0/8, 10.0.0.1/8\n") as d:
        p = subprocess.run(d.args(["--check-config"]), capture_output=True, text=True, timeout=60)
        assert p.returncode != 0 and "spillway.yaml: bans.never_ban: '10.0.0.1/8' is not an IP address or CIDR range" \
            in p.stdout + p.stderr, (p.stdout, p.stderr)
    with Daemon({"sqlite": SQLITE}, main="bans:\n  never_ban: none\n") as d:
        d.start()
        d.ctl("ban", "add", "ip", "127.0.0.1", "1h", "allowed now", check=0)
        assert d.stop() == 0


def _port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False


if __name__ == "__main__":
    run([test_producer_strings_cannot_forge_log_lines, test_plugin_with_executable_stack_is_refused,
         test_idle_ingest_connections_cannot_lock_the_operator_out, test_connections_that_send_nothing_are_disconnected,
         test_last_line_without_newline_at_eof_is_accepted, test_every_line_before_eof_is_answered_when_the_daemon_yields,
         test_signal_member_that_is_not_an_object,
         test_automatic_ban_cannot_cover_the_internet, test_bans_cannot_be_lifted_or_shortened,
         test_ban_delete_mapped_ipv4_and_invalid_utf8_rows,
         test_field_size_caps, test_never_ban_holds_for_every_ban_source])
