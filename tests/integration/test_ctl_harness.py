#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The harness cannot lie: a skipped test makes the program exit 77 (meson's
skip code), and a daemon that exits with the wrong status, crashes, or whose
log holds a sanitizer report fails the test that ran it, whether the test
calls stop() or leaves it to the `with` block."""
import os
import shutil
import signal
import subprocess
import sys
import textwrap

from spwtest import Daemon, mock_backend, run, signal_obj


def expect_failure(fn, needle):
    try:
        fn()
    except AssertionError as e:
        assert needle in str(e), "wrong failure: %s" % e
        return
    raise AssertionError("no failure (expected one mentioning %r)" % needle)


def started():
    d = Daemon({})
    d.write_config({"m": mock_backend("m", d.path("m.log"))})
    d.start()
    return d


def test_clean_stop_passes():
    with started() as d:
        assert d.client().request(signal_obj())["ok"]
        assert d.stop() == 0


def test_wrong_exit_status_fails_stop():
    d = started()
    try:
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        expect_failure(d.stop, "exited with status -9, expected 0")
        assert d.stop(expect=-9) == -9
    finally:
        d.cleanup(failing=True)


def test_crash_fails_cleanup():
    d = started()
    d.proc.send_signal(signal.SIGABRT)
    d.proc.wait()
    expect_failure(d.cleanup, "killed by SIGABRT")
    shutil.rmtree(d.dir)   # kept for a post-mortem: this failure was wanted


def test_still_running_is_stopped_and_checked_at_cleanup():
    d = started()
    pid = d.proc.pid
    d.cleanup()     # SIGTERM, exit 0: fine
    assert d.proc.returncode == 0
    assert not os.path.exists("/proc/%d/cmdline" % pid) or d.proc.poll() is not None


def sanitizer_case(line):
    def case():
        d = started()
        with open(d.log_path, "ab") as f:   # as the sanitizer runtime writes it to stderr
            f.write(("==%d==%s\n    #0 0x55 in main\n" % (d.proc.pid, line)).encode())
        expect_failure(d.stop, "sanitizer report")
        d.cleanup(failing=True)
        # and at cleanup when the test never calls stop()
        d = started()
        with open(d.log_path, "ab") as f:
            f.write((line + "\n").encode())
        expect_failure(d.cleanup, "sanitizer report")
        shutil.rmtree(d.dir)
    return case


def test_sanitizer_reports_fail():
    for line in ("ERROR: AddressSanitizer: heap-use-after-free on address 0x6020",
                 "ERROR: LeakSanitizer: detected memory leaks",
                 "src/engine/queue.c:42:7: runtime error: signed integer overflow",
                 "WARNING: ThreadSanitizer: data race (pid=1)"):
        sanitizer_case(line)()


def test_skip_exits_77():
    here = os.path.dirname(os.path.abspath(__file__))
    prog = textwrap.dedent("""
        import sys
        sys.path.insert(0, %r)
        from spwtest import SkipTest, run
        def test_a(): pass
        def test_b(): raise SkipTest("no tool")
        def test_c(): raise AssertionError("boom")
        run([test_a, test_b] + ([test_c] if sys.argv[1:] == ["fail"] else []))
    """ % here)
    p = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True)
    assert p.returncode == 77, p
    assert "ok - test_b # SKIP no tool" in p.stdout and "# 1 passed, 0 failed, 1 skipped" in p.stdout, p.stdout
    p = subprocess.run([sys.executable, "-c", prog, "fail"], capture_output=True, text=True)
    assert p.returncode == 1, p


if __name__ == "__main__":
    run([test_clean_stop_passes, test_wrong_exit_status_fails_stop, test_crash_fails_cleanup,
         test_still_running_is_stopped_and_checked_at_cleanup, test_sanitizer_reports_fail, test_skip_exits_77])
