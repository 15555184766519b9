#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""spillwayctl with the real daemon (issue 16): global options in every
position, messages naming the valid options, the exit-code contract, send
to the ingest socket from the quick start's layout, the status verdict and
its colour, the pager of ban list, top without a terminal. What needs a
real terminal runs under a pseudo-terminal here; the shells and tmux are in
test_ctl_shell.py."""
import json
import os
import pty
import select
import subprocess
import time

from spwtest import SLOW, SPILLWAYCTL, Daemon, mock_backend, run, signal_obj, wait_for

SQLITE = "name: bans\npath: sqlite\nconfig:\n  db_path: bans.db\n"
PROFILES = """profile: default_remediation
filter: "sig.Labels.remediation == 'true'"
remediation:
  ban: true
  duration: 4h
outputs:
  - plugin: bans
"""
CSV_HEADER = "source,ip,reason,bans,action,country,as,events_count,expiration,scope,value"


def ctl(*args, env=None, input=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("SPILLWAY_")}
    e.update(env or {})
    return subprocess.run([SPILLWAYCTL] + list(args), capture_output=True, text=True, env=e, input=input, timeout=60 * SLOW)


def on_tty(args, env=None, rows=24, cols=120, timeout=20):
    """Run spillwayctl with stdin/stdout/stderr on a pseudo-terminal of
    rows x cols; returns (exit status, everything it wrote)."""
    import fcntl
    import struct
    import termios
    e = {k: v for k, v in os.environ.items() if not k.startswith("SPILLWAY_")}
    e.update({"TERM": "xterm"})
    e.update(env or {})
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    p = subprocess.Popen([SPILLWAYCTL] + list(args), stdin=slave, stdout=slave, stderr=slave, env=e, close_fds=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout * SLOW
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif p.poll() is not None:
            break
    os.close(master)
    rc = p.wait(10)
    return rc, out.decode(errors="replace")


def banning(ip):
    """A signal that makes a 4h ban from now (signal_obj's times are in 2024)."""
    s = signal_obj(ip=ip, remediation=True)
    now = time.time()
    s["start_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 20))
    s["stop_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    return s


def bans_daemon():
    d = Daemon({"bans": SQLITE, "m": mock_backend("m")}, profiles=PROFILES)
    return d


def test_global_options_in_every_position():
    with bans_daemon() as d:
        d.start()
        c = d.client()
        assert c.request({"signal": banning("192.0.2.7"), "ack": "flushed"})["ok"]
        s = d.admin
        lines = [
            ["-o", "raw", "-s", s, "ban", "list"],
            ["-s", s, "ban", "-o", "raw", "list"],
            ["ban", "list", "-o", "raw", "-s", s],
            ["ban", "-s", s, "list", "--output=raw"],
            ["--output", "raw", "ban", "list", "--socket=" + s],
            ["-oraw", "ban", "list", "-s" + s],
            ["ban", "list", "--limit", "5", "-o", "raw", "--socket", s, "--reason", "ssh"],
            ["ban", "list", "--reason", "ssh", "-s", s, "--limit=5", "-o", "raw"],
        ]
        for args in lines:
            p = ctl(*args)
            assert p.returncode == 0, (args, p.stderr)
            assert p.stdout.splitlines()[0] == CSV_HEADER, (args, p.stdout)
            assert "192.0.2.7" in p.stdout, (args, p.stdout)
        # json in any position too
        for args in (["-o", "json", "-s", s, "status"], ["status", "-o", "json", "-s", s], ["-s", s, "status", "--output=json"]):
            p = ctl(*args)
            assert p.returncode == 0 and json.loads(p.stdout)["ok"], (args, p.stdout, p.stderr)
        # a command's own options before or after its arguments, and between them
        for i, args in enumerate((["ban", "add", "ip", "198.51.100.%d", "1h", "manual", "test", "--remediation", "captcha"],
                                  ["ban", "add", "--remediation", "captcha", "ip", "198.51.100.%d", "1h", "manual", "test"],
                                  ["ban", "add", "ip", "--remediation=captcha", "198.51.100.%d", "1h", "manual", "test"],
                                  ["-s", s, "ban", "--remediation", "captcha", "add", "ip", "198.51.100.%d", "1h", "manual", "test"])):
            args = [a.replace("%d", str(10 + i)) for a in args]
            p = ctl(*(args + ["-s", s]))
            assert p.returncode == 0 and "backend(s) stored the ban" in p.stdout, (args, p.stdout, p.stderr)
            p = ctl("-s", s, "ban", "list", "--ip", "198.51.100.%d" % (10 + i), "-o", "json")
            rows = json.loads(p.stdout)["rows"]
            assert [(r["action"], r["reason"], r["source"]) for r in rows] == [("captcha", "manual test", "cscli")], (args, rows)
        # a value that looks like a command word stays the option's value
        p = ctl("ban", "list", "--reason", "status", "-s", s)
        assert p.returncode == 0 and p.stdout.startswith("No active bans"), p
        # help after a command shows that command
        p = ctl("ban", "list", "--help")
        assert p.returncode == 0 and "Usage: spillwayctl ban list" in p.stdout and "--backend NAME" in p.stdout, p
        d.stop()


def test_unknown_or_misplaced_options_name_the_valid_ones():
    with bans_daemon() as d:
        d.start()
        s = d.admin
        p = ctl("-s", s, "ban", "list", "--frobnicate")
        assert p.returncode == 2, p
        assert "ban list: unknown option '--frobnicate'" in p.stderr, p.stderr
        for o in ("--at TIME", "--ip IP", "--limit N", "--all", "--backend NAME"):
            assert o in p.stderr, (o, p.stderr)
        assert "global options, anywhere on the line" in p.stderr and "-o/--output human|json|raw" in p.stderr, p.stderr
        # an option of another command
        p = ctl("-s", s, "status", "--limit", "5")
        assert p.returncode == 2 and "status: unknown option '--limit'" in p.stderr \
            and "'status' has no options of its own" in p.stderr, p.stderr
        p = ctl("-s", s, "send", "--remediation", "ban")
        assert p.returncode == 2 and "--ack queued|flushed" in p.stderr and "--ingest[=PATH]" in p.stderr, p.stderr
        # a missing value
        p = ctl("-s", s, "ban", "list", "--limit")
        assert p.returncode == 2 and "needs a value" in p.stderr, p.stderr
        p = ctl("ban", "list", "-s")
        assert p.returncode == 2 and "'-s' needs a value" in p.stderr, p.stderr
        # not a global option before the command
        p = ctl("--limit", "5", "-s", s, "ban", "list")
        assert p.returncode == 0, p    # --limit belongs to ban list wherever it is
        p = ctl("--bogus", "-s", s)
        assert p.returncode == 2 and "not a global option" in p.stderr, p.stderr
        p = ctl("-s", s, "bna", "list")
        assert p.returncode == 2 and "unknown command 'bna'" in p.stderr and "ban, deadletter, send" in p.stderr, p.stderr
        p = ctl("-s", s, "ban", "lsit")
        assert p.returncode == 2 and "unknown subcommand 'lsit'" in p.stderr and "list, add, del, flush" in p.stderr, p.stderr
        d.stop()


def test_exit_codes():
    with bans_daemon() as d:
        d.start()
        s = d.admin
        assert ctl("-s", s, "status").returncode == 0
        p = ctl("-s", s, "ban", "add", "ip", "300.1.1.1", "1h", "x")
        assert p.returncode == 1 and "300.1.1.1" in p.stderr, p           # the daemon refused
        assert ctl("-s", s, "ban", "add", "ip", "192.0.2.1", "soon", "x").returncode == 2  # usage
        assert ctl("-s", s, "-o", "yaml", "status").returncode == 2
        p = ctl("-s", d.path("nothing.sock"), "status")
        assert p.returncode == 3 and "cannot connect" in p.stderr, p
        p = ctl("-s", s, "send", input=json.dumps(signal_obj()) + "\n{\"scenario\":1}\n")
        assert p.returncode == 4 and "1 signal acknowledged, 1 failed" in p.stderr, p
        d.stop()


def test_send_reaches_the_ingest_socket():
    """`{"op":"status"}` is an admin request: the ingest socket refuses it,
    the admin socket answers it. That tells which socket send used."""
    with Daemon({"m": mock_backend("m")}) as d:
        d.start()
        op = '{"op":"status"}\n'
        p = ctl("-s", d.admin, "send", input=op)
        assert p.returncode == 0, p   # admin socket
        for args in (["-s", d.admin, "send", "--ingest"],               # ingest.sock beside -s
                     ["send", "--ingest", d.ingest],                    # PATH as the next word
                     ["send", "--ingest=" + d.ingest],
                     ["send", "-", "--ingest", d.ingest]):
            p = ctl(*args, input=op)
            assert p.returncode == 4 and "admin socket" in p.stderr, (args, p)
            p = ctl(*args, input=json.dumps(signal_obj()) + "\n")
            assert p.returncode == 0 and "1 signal acknowledged" in p.stderr, (args, p)
        p = ctl("send", "--ack", "queued", "--ingest", d.ingest, input=json.dumps(signal_obj()) + "\n")
        assert p.returncode == 0 and "1 signal acknowledged queued" in p.stderr, p
        p = ctl("send", "--ingest", input=op, env={"SPILLWAY_INGEST_SOCKET": d.ingest})
        assert p.returncode == 4 and "admin socket" in p.stderr, p
        # a FILE after --ingest is still the file
        f = d.path("one.jsonl")
        with open(f, "w") as fh:
            fh.write(json.dumps(signal_obj()) + "\n")
        p = ctl("-s", d.admin, "send", "--ingest", f)
        assert p.returncode == 0 and "1 signal acknowledged" in p.stderr, p
        # not a terminal: no progress, one summary line
        p = ctl("-s", d.admin, "send", f, "--ack", "flushed")
        assert p.stderr == "1 signal acknowledged flushed, 0 failed\n", p.stderr
        d.stop()


def test_status_verdict_and_facts():
    with Daemon({"good": mock_backend("good"), "bad": mock_backend("bad", mode="init_fail")}) as d:
        d.start()
        p = ctl("-s", d.admin, "status")
        assert p.returncode == 0, p
        first = p.stdout.splitlines()[0]
        assert "degraded: 1/2 backends running; backend bad is" in first, first
        assert "\033[" not in p.stdout, "colour without a terminal"
        js = json.loads(ctl("-s", d.admin, "-o", "json", "status").stdout)
        # the same facts as -o json
        for fact in (js["version"], "pid %d" % js["pid"], js["started"], js["config"],
                     "%d accepted" % js["signals"]["accepted"], "%d oversized lines" % js["signals"]["oversized_lines"]):
            assert str(fact) in p.stdout, (fact, p.stdout)
        for b in js["backends"]:
            assert b["name"] in p.stdout and b["state"] in p.stdout, (b, p.stdout)
        d.stop()
    with Daemon({"good": mock_backend("good")}) as d:
        d.start()
        p = ctl("-s", d.admin, "status")
        assert p.stdout.startswith("● healthy: 1/1 backends running"), p.stdout
        # colour on a terminal, not with NO_COLOR
        rc, out = on_tty(["-s", d.admin, "status"])
        assert rc == 0 and "\033[1;32m● healthy\033[0m" in out, repr(out)
        rc, out = on_tty(["-s", d.admin, "status"], env={"NO_COLOR": "1"})
        assert rc == 0 and "● healthy" in out and "\033[1;" not in out, repr(out)
        d.stop()


def test_ban_list_pages_when_long_on_a_terminal():
    with bans_daemon() as d:
        d.start()
        c = d.client()
        for i in range(40):
            c.send({"signal": banning("203.0.113.%d" % i), "ack": "flushed"})
        for i in range(40):
            assert c.readline()["ok"]
        pager = {"PAGER": "sed s/^/PAGED:/"}
        # 40 rows on a 20-row terminal: paged
        rc, out = on_tty(["-s", d.admin, "ban", "list"], env=pager, rows=20)
        assert rc == 0 and "PAGED:Source | Scope:Value" in out and "PAGED:40 active bans" in out, out
        # SYSTEMD_PAGER first
        rc, out = on_tty(["-s", d.admin, "ban", "list"], env=dict(pager, SYSTEMD_PAGER="sed s/^/SYSTEMD:/"), rows=20)
        assert "SYSTEMD:Source | Scope:Value" in out and "PAGED:" not in out, out
        # --no-pager anywhere, an empty or cat pager: not paged
        for args, env in ((["--no-pager", "-s", d.admin, "ban", "list"], pager),
                          (["-s", d.admin, "ban", "list", "--no-pager"], pager),
                          (["-s", d.admin, "ban", "list"], {"PAGER": ""}),
                          (["-s", d.admin, "ban", "list"], {"PAGER": "cat"})):
            rc, out = on_tty(args, env=env, rows=20)
            assert rc == 0 and "PAGED:" not in out and "40 active bans" in out, (args, env, out)
        # fits on the screen: not paged
        rc, out = on_tty(["-s", d.admin, "ban", "list", "--limit", "3"], env=pager, rows=20)
        assert rc == 0 and "PAGED:" not in out and "37 more bans not shown" in out, out
        # not a terminal: never paged
        p = ctl("-s", d.admin, "ban", "list", env=pager)
        assert "PAGED:" not in p.stdout and "40 active bans" in p.stdout, p.stdout
        d.stop()


def test_send_progress_only_on_a_terminal():
    with Daemon({"m": mock_backend("m", delay="1ms")}) as d:
        d.start()
        f = d.path("many.jsonl")
        with open(f, "w") as fh:
            for i in range(1500):
                fh.write(json.dumps(signal_obj(scenario="p/%d" % i)) + "\n")
            fh.write("{not json\n")
        rc, out = on_tty(["-s", d.admin, "send", "--ack", "flushed", f], timeout=60)
        assert rc == 4, (rc, out)
        assert "sent " in out and ", acknowledged " in out and " signals/s" in out, repr(out)
        assert "many.jsonl:1501: invalid JSON" in out, repr(out)
        assert "1500 signals sent to %s in " % d.admin in out and ": 1500 acknowledged flushed, 1 rejected (" in out, repr(out)
        p = ctl("-s", d.admin, "send", f)
        assert p.returncode == 4 and "sent " not in p.stderr and "\r" not in p.stderr, p.stderr
        d.stop()


def test_top_without_a_terminal():
    with bans_daemon() as d:
        d.start()
        c = d.client()
        assert c.request({"signal": banning("192.0.2.44"), "ack": "flushed"})["ok"]
        p = ctl("-s", d.admin, "top", "-n", "2", "--delay", "0.2")
        assert p.returncode == 0, p
        assert p.stdout.count("BACKEND ") == 2 and "bans: 1 active" in p.stdout, p.stdout
        assert "\033[" not in p.stdout, "screen codes without a terminal"
        rows = [l for l in p.stdout.splitlines() if l.startswith("bans ") or l.startswith("m ")]
        assert len(rows) == 4 and "running" in rows[-1], p.stdout
        p = ctl("-s", d.admin, "-o", "json", "top", "--iterations=2", "-d", "0.2")
        frames = [json.loads(l) for l in p.stdout.splitlines()]
        assert len(frames) == 2 and frames[1]["bans"] == 1 and frames[1]["backends"], p.stdout
        p = ctl("-s", d.path("none.sock"), "top", "-n", "1")
        assert p.returncode == 3, p
        d.stop()


if __name__ == "__main__":
    run([test_global_options_in_every_position, test_unknown_or_misplaced_options_name_the_valid_ones, test_exit_codes,
         test_send_reaches_the_ingest_socket, test_status_verdict_and_facts, test_ban_list_pages_when_long_on_a_terminal,
         test_send_progress_only_on_a_terminal, test_top_without_a_terminal])
