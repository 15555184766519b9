#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""fail2ban's Spillway action (etc/fail2ban/action.d/spillway.conf) with a
real fail2ban-server: failed-login lines in a log file the test writes
make fail2ban ban an IP, the action records the ban in spillwayd (visible in
`spillwayctl ban list`), `fail2ban-client set JAIL unbanip` deletes it, and
the action fails clearly when spillwayd is unreachable. Skips (77) when
fail2ban is not installed."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

from spwtest import SLOW, SOURCE_ROOT, SPILLWAYCTL, Daemon, run, wait_for

SQLITE = "name: sqlite\npath: sqlite\nconfig:\n  db_path: bans.db\n"
F2B_SERVER = shutil.which("fail2ban-server")
F2B_CLIENT = shutil.which("fail2ban-client")


class Fail2ban:
    def __init__(self, d, admin_socket):
        self.dir = d.path("fail2ban")
        os.makedirs(os.path.join(self.dir, "action.d"))
        os.makedirs(os.path.join(self.dir, "filter.d"))
        shutil.copy(os.path.join(SOURCE_ROOT, "etc", "fail2ban", "action.d", "spillway.conf"), os.path.join(self.dir, "action.d"))
        self.sock = os.path.join(self.dir, "f2b.sock")
        self.pid = os.path.join(self.dir, "f2b.pid")
        self.log = os.path.join(self.dir, "f2b.log")
        self.authlog = os.path.join(self.dir, "auth.log")
        open(self.authlog, "w").close()
        with open(os.path.join(self.dir, "fail2ban.conf"), "w") as f:
            f.write("[Definition]\nloglevel = INFO\nlogtarget = %s\nsocket = %s\npidfile = %s\ndbfile = :memory:\n"
                    "[Thread]\n" % (self.log, self.sock, self.pid))
        with open(os.path.join(self.dir, "filter.d", "spwtest.conf"), "w") as f:
            f.write("[Definition]\nfailregex = Failed login for \\S+ from <HOST>$\ndatepattern = ^%%Y-%%m-%%dT%%H:%%M:%%S\n")
        with open(os.path.join(self.dir, "jail.conf"), "w") as f:
            f.write("[DEFAULT]\nbackend = polling\nusedns = no\n\n"
                    "[spwtest]\nenabled = true\nfilter = spwtest\nlogpath = %s\nmaxretry = 3\nfindtime = 600\nbantime = 3600\n"
                    "action = spillway[socket=\"%s\", spillwayctl=\"%s\", python=\"%s\"]\n"
                    % (self.authlog, admin_socket, SPILLWAYCTL, sys.executable or "python3"))

    def client(self, *args, check=True):
        p = subprocess.run([F2B_CLIENT, "-c", self.dir, "-s", self.sock, "-p", self.pid] + list(args),
                           capture_output=True, text=True, timeout=60 * SLOW)
        if check and p.returncode != 0:
            raise AssertionError("fail2ban-client %s: %s %s\n%s" % (" ".join(args), p.stdout, p.stderr, self.read_log()))
        return p

    def start(self):
        self.client("-x", "start")
        wait_for(lambda: self.client("ping", check=False).returncode == 0, 20, "fail2ban-server")
        # the jail watches the log once it has started; the polling backend
        # sees a change by the file's stat (one-second mtime): then write
        wait_for(lambda: self.client("status", "spwtest", check=False).returncode == 0, 20, "the jail")
        time.sleep(1.1)

    def stop(self):
        try:
            pid = int(open(self.pid).read().strip())
        except (OSError, ValueError):
            pid = None
        self.client("stop", check=False)
        if pid:
            # the server we started: never leave it behind
            for _ in range(50):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.1)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def fail(self, ip, n):
        with open(self.authlog, "a") as f:
            for _ in range(n):
                f.write("%s Failed login for root from %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), ip))

    def read_log(self):
        try:
            return open(self.log).read()
        except FileNotFoundError:
            return ""


def bans(d):
    p = d.ctl("-o", "json", "ban", "list", check=0)
    return {r["iptext"]: r for r in json.loads(p.stdout)["rows"]}


def test_ban_and_unban():
    with Daemon({"sqlite": SQLITE}) as d:
        d.start()
        f = Fail2ban(d, d.admin)
        try:
            f.start()
            f.fail("198.51.100.23", 4)
            wait_for(lambda: "198.51.100.23" in bans(d), 30, "the fail2ban ban in spillway ban list (fail2ban log:\n%s)" % f.read_log())
            b = bans(d)["198.51.100.23"]
            assert b["reason"] == "fail2ban/spwtest", b
            st = f.client("status", "spwtest").stdout
            assert "198.51.100.23" in st, st
            # the signal carries the matched lines as events
            p = subprocess.run(["sqlite3", d.path("state", "bans.db"),
                                "select scenario, events_count from signal_occurences"], capture_output=True, text=True)
            assert "fail2ban/spwtest|" in p.stdout, p
            p = subprocess.run(["sqlite3", d.path("state", "bans.db"), "select count(*) from event_sequences where serialized "
                                "like '%Failed login for root from 198.51.100.23%'"], capture_output=True, text=True)
            assert int(p.stdout.strip() or 0) >= 3, p
            f.client("set", "spwtest", "unbanip", "198.51.100.23")
            wait_for(lambda: "198.51.100.23" not in bans(d), 20, "the unban to reach spillway (fail2ban log:\n%s)" % f.read_log())
        finally:
            f.stop()


def test_unreachable_fails_clearly():
    with Daemon({"sqlite": SQLITE}) as d:
        d.start()
        f = Fail2ban(d, d.path("run", "nobody-here.sock"))
        try:
            f.start()
            f.fail("198.51.100.99", 4)
            wait_for(lambda: "spillway action: recording the ban of 198.51.100.99" in f.read_log(), 30,
                     "the action's error in fail2ban's log:\n%s" % f.read_log())
            assert "nobody-here.sock" in f.read_log()
            assert "198.51.100.99" not in bans(d)
        finally:
            f.stop()


if __name__ == "__main__":
    if not F2B_SERVER or not F2B_CLIENT:
        print("fail2ban is not installed (tools/install-deps --test installs it): skipping")
        sys.exit(77)
    run([test_ban_and_unban, test_unreachable_fails_clearly])
