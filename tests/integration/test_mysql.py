#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The mysql backend inside the real daemon against a real MariaDB server
started by the test: signals become bans, `spillwayctl ban` works, a second
daemon (another host) sharing the database sees the same bans, and the
password comes from a credential without ever being logged."""
import json
import os
import shutil
import subprocess
import time

from spwtest import SOURCE_ROOT, Daemon, run, signal_obj, start_mariadb

SERVER = os.path.join(SOURCE_ROOT, "plugins", "mysql", "tests", "mariadb-server.sh")
PROFILES = """profile: default_remediation
filter: "sig.Labels.remediation == 'true' && not sig.Whitelisted"
remediation:
  ban: true
  duration: 4h
outputs:
  - plugin: bans
"""


def start_server():
    return start_mariadb("Pw-123-secret")


def backend(sock):
    return ("name: bans\npath: mysql\nconfig:\n  db_socket: %s\n  db_username: spw\n"
            "  db_password: ${CREDENTIAL:db-password}\n  db_name: spillway\n" % sock)


def now_signal(ip):
    s = signal_obj(ip=ip, remediation=True)
    s["stop_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    s["start_at"] = s["stop_at"]
    return s


def test_two_hosts_share_one_ban_list():
    d, env = start_server()
    try:
        creds = os.path.join(d, "creds")
        os.makedirs(creds)
        with open(os.path.join(creds, "db-password"), "w") as f:
            f.write("Pw-123-secret\n")
        cred_env = {"CREDENTIALS_DIRECTORY": creds}
        with Daemon({"bans": backend(env["MARIADB_SOCKET"])}, profiles=PROFILES) as host1, \
             Daemon({"bans": backend(env["MARIADB_SOCKET"])}, profiles=PROFILES) as host2:
            host1.start(env=cred_env)
            host2.start(env=cred_env)
            c = host1.client()
            for ip in ("192.0.2.10", "2001:db8::10"):
                assert c.request({"signal": now_signal(ip), "ack": "flushed"})["ok"]
            host2.ctl("ban", "add", "range", "198.51.100.0/24", "1h", "from", "host2", check=0)
            for h in (host1, host2):
                j = json.loads(h.ctl("-o", "json", "ban", "list", check=0).stdout)
                assert sorted(r["iptext"] for r in j["rows"]) == ["192.0.2.10", "198.51.100.0/24", "2001:db8::10"], j
            # a deletion on one host is seen by the other
            host1.ctl("ban", "del", "ip", "192.0.2.10", check=0)
            j = json.loads(host2.ctl("-o", "json", "ban", "list", check=0).stdout)
            assert "192.0.2.10" not in [r["iptext"] for r in j["rows"]], j
            # restarting a host keeps everything (it is in the server)
            host1.stop()
            host1.start(env=cred_env)
            assert json.loads(host1.ctl("-o", "json", "ban", "list", check=0).stdout)["total"] == 2
            for h in (host1, host2):
                assert "Pw-123-secret" not in h.read_log()
                h.stop()
    finally:
        subprocess.run([SERVER, "stop", d], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


def test_wrong_password_fails_that_backend_only():
    d, env = start_server()
    try:
        bad = backend(env["MARIADB_SOCKET"]).replace("${CREDENTIAL:db-password}", "wrong")
        with Daemon({"bans": bad, "n": "name: n\npath: null\n"}) as h:
            h.start()
            st = {b["name"]: b for b in h.status()["backends"]}
            assert st["bans"]["state"] == "failed" and "denied" in st["bans"]["error"].lower(), st
            assert st["n"]["state"] == "running"
            h.stop()
    finally:
        subprocess.run([SERVER, "stop", d], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    run([test_two_hosts_share_one_ban_list, test_wrong_password_fails_that_backend_only])
