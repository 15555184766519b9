#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The README's quick start runs as printed, so the README cannot drift.

The code blocks after `<!-- readme-test: setup -->` and `<!-- readme-test:
try -->` in README.md are taken apart into commands (continuation lines
joined, comments dropped) and run verbatim with bash, in a directory laid
out like a checkout: tools/ and etc/ of this source tree, and build/quick
pointing at this build (so tools/quickstart's meson and ninja steps find
it configured and built). `tools/quickstart` runs as the README says, in the
foreground; `tools/run-tests` is the command that runs this test, so it is
the one command not run. A line `#> TEXT` under a command is output that
command must print (stdout or stderr); every command must exit 0.
Ctrl-C (SIGINT) then has to stop the daemon with status 0.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

from spwtest import SLOW, SOURCE_ROOT, run, sanitizer_report, wait_for

BUILD_ROOT = os.environ.get("SPW_BUILD_ROOT", "")
README = os.path.join(SOURCE_ROOT, "README.md")


def blocks(text):
    """{name: code} of the fenced blocks following <!-- readme-test: NAME -->."""
    return {m.group(1): m.group(2) for m in
            re.finditer(r"<!-- readme-test: (\S+) -->\s*\n```[a-z]*\n(.*?)```", text, re.S)}


def commands(code):
    """[[command, [expected output lines]]] of a block."""
    out, cur = [], None
    for line in code.splitlines():
        if cur is not None:
            cur += "\n" + line
            if not line.endswith("\\"):
                out.append([cur, []])
                cur = None
            continue
        if line.startswith("#>"):
            assert out, "'#>' before any command: %r" % line
            out[-1][1].append(line[2:].strip())
        elif not line.strip() or line.lstrip().startswith("#"):
            continue
        elif line.endswith("\\"):
            cur = line
        else:
            out.append([line, []])
    assert cur is None, "unfinished continuation line in the README: %r" % cur
    return out


def test_readme_blocks_parse():
    b = blocks(open(README).read())
    assert set(b) >= {"setup", "try"}, "README.md lost its readme-test markers: %s" % sorted(b)
    setup = [c for c, _ in commands(b["setup"])]
    assert [c.split()[0] for c in setup] == ["tools/quickstart", "tools/run-tests"], setup
    tried = commands(b["try"])
    assert len(tried) >= 5 and all(e for c, e in tried if "ban list -o raw" in c or "send" in c), tried
    # no command of the quick start needs a tool the quick start does not install
    for c, _ in tried:
        assert "socat" not in c and "nc -U" not in c, c


def test_quickstart_commands_verbatim():
    assert BUILD_ROOT, "SPW_BUILD_ROOT is not set"
    b = blocks(open(README).read())
    tmp = tempfile.mkdtemp(prefix="spw-readme-")
    os.chmod(tmp, 0o755)
    for d in ("tools", "etc"):
        os.symlink(os.path.join(SOURCE_ROOT, d), os.path.join(tmp, d))
    os.makedirs(os.path.join(tmp, "build"))
    os.symlink(BUILD_ROOT, os.path.join(tmp, "build", "quick"))
    log_path = os.path.join(tmp, "quickstart.log")
    proc = None
    ok = False
    try:
        with open(log_path, "wb") as log:
            for cmd, _ in commands(b["setup"]):
                if cmd.split()[0] == "tools/run-tests":
                    continue    # the test command itself, which runs this test
                proc = subprocess.Popen(["bash", "-c", cmd], cwd=tmp, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)

        def up():
            if proc.poll() is not None:
                raise AssertionError("tools/quickstart exited with %s:\n%s" % (proc.returncode, open(log_path).read()))
            return os.path.exists(os.path.join(tmp, "run", "admin.sock"))
        wait_for(up, 180, "tools/quickstart to start spillwayd")
        printed = open(log_path).read()
        for what in ("quickstart: checking the build dependencies", "quickstart: building in build/quick",
                     "quickstart: starting spillwayd"):
            assert what in printed, "quick start did not say %r:\n%s" % (what, printed)
        for cmd, expected in commands(b["try"]):
            p = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=tmp, capture_output=True, text=True,
                               timeout=60 * SLOW, stdin=subprocess.DEVNULL)
            assert p.returncode == 0, "README command failed (exit %d): %s\nstdout: %s\nstderr: %s" % (
                p.returncode, cmd, p.stdout, p.stderr)
            for e in expected:
                assert e in p.stdout + p.stderr, "README says %r prints %r; it printed:\n%s%s" % (cmd, e, p.stdout, p.stderr)
            # the quick start prints the same check command as the README
            if "--check-config" in cmd:
                assert cmd in open(log_path).read(), "tools/quickstart does not print %r" % cmd
        # Ctrl-C drains and exits, as the quick start says
        os.killpg(proc.pid, signal.SIGINT)
        rc = proc.wait(30 * SLOW)
        text = open(log_path).read()
        assert rc == 0, "spillwayd exited %d after Ctrl-C:\n%s" % (rc, text)
        report = sanitizer_report(text)
        assert not report, "sanitizer report:\n" + report
        ok = True
    finally:
        if proc and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if ok or not os.environ.get("SPW_KEEP_TEST_DIRS"):
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run([test_readme_blocks_parse, test_quickstart_commands_verbatim])
