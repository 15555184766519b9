#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A hostile producer against the real daemon (issue 11): what it sends must
not forge log lines, and what the operator loads must not weaken the daemon."""
import os
import shutil
import subprocess

from spwtest import TEST_PLUGIN_DIR, Daemon, mock_backend, run, signal_obj, wait_for

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


if __name__ == "__main__":
    run([test_producer_strings_cannot_forge_log_lines, test_plugin_with_executable_stack_is_refused])
