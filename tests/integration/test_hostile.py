#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A hostile producer against the real daemon (issue 11): what it sends must
not forge log lines, and what the operator loads must not weaken the daemon."""
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


def test_signal_member_that_is_not_an_object():
    with Daemon({}) as d:
        d.write_config({"n": "name: n\npath: null\n"})
        d.start()
        c = d.client()
        for bad in ("x", 1, [], None):
            r = c.request({"signal": bad})
            assert not r["ok"] and "signal: expected an object" in r["error"], (bad, r)
        assert d.stop() == 0


if __name__ == "__main__":
    run([test_producer_strings_cannot_forge_log_lines, test_plugin_with_executable_stack_is_refused,
         test_idle_ingest_connections_cannot_lock_the_operator_out, test_connections_that_send_nothing_are_disconnected,
         test_last_line_without_newline_at_eof_is_accepted, test_signal_member_that_is_not_an_object])
