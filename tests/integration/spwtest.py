# SPDX-License-Identifier: MIT
"""Test harness for Spillway integration tests: the real spillwayd over its
real sockets, with temporary configuration folders.

Paths come from the environment set by tests/meson.build:
  SPILLWAYD, SPILLWAYCTL, SPW_PLUGIN_DIR (staged plugins), SPW_TEST_PLUGIN_DIR
  (mock plugins), SPW_SOURCE_ROOT, SPW_BUILD_ROOT.
Each test file is a program: it runs its test functions in order, prints
one line per test and exits 1 if any failed, 77 (meson's "skipped") if none
failed but some were skipped, 0 only if every test ran and passed.

Every daemon is checked when it stops, whatever the test does: Daemon.stop()
fails unless spillwayd exited with the expected status (0 by default), and
leaving the `with Daemon(...)` block stops a still-running daemon the same
way. Either fails on a sanitizer report (AddressSanitizer, LeakSanitizer,
UndefinedBehaviorSanitizer's "runtime error:", ThreadSanitizer) in its log,
and on a crash (killed by SIGSEGV, SIGABRT, ...) that no test asked for.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

SPILLWAYD = os.environ.get("SPILLWAYD", "spillwayd")
SPILLWAYCTL = os.environ.get("SPILLWAYCTL", "spillwayctl")
PLUGIN_DIR = os.environ.get("SPW_PLUGIN_DIR", "")
TEST_PLUGIN_DIR = os.environ.get("SPW_TEST_PLUGIN_DIR", "")
SOURCE_ROOT = os.environ.get("SPW_SOURCE_ROOT", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
MOCK = os.path.join(TEST_PLUGIN_DIR, "mock.so")
# Sanitizer builds are slower: scale timeouts.
SLOW = float(os.environ.get("SPW_TIME_SCALE", "1"))


# What a sanitizer writes when it finds something (the report goes to the
# daemon's stderr, which is its log here).
SANITIZER_REPORT = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|WARNING: ThreadSanitizer|"
                              r"ThreadSanitizer: reported|runtime error: |SUMMARY: UndefinedBehaviorSanitizer|"
                              r"ERROR: (?:Memory|Thread|Undefined)Sanitizer")
CRASH_SIGNALS = (signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGILL, signal.SIGFPE)


def sanitizer_report(text):
    """The lines around the first sanitizer report in text, or None."""
    m = SANITIZER_REPORT.search(text)
    if not m:
        return None
    start = text.rfind("\n", 0, max(0, m.start() - 2000)) + 1
    return text[start:m.end() + 4000]


def listening(path, pid=None):
    """A unix socket is bound to path and listening, read from the socket
    table of pid's network namespace (/proc/PID/net/unix; the tests' own
    without pid), without connecting to it. A path missing from the table
    (a namespace we cannot see) counts as listening once the file exists."""
    found = False
    try:
        with open("/proc/%d/net/unix" % pid if pid else "/proc/net/unix") as f:
            next(f)
            for line in f:
                parts = line.split()
                # Num RefCount Protocol Flags Type St Inode Path; flag 0x10000: __SO_ACCEPTCON
                if len(parts) >= 8 and parts[7] == path:
                    found = True
                    if int(parts[3], 16) & 0x10000:
                        return True
    except (OSError, ValueError, StopIteration):
        pass
    return not found and os.path.exists(path)


def wait_for(cond, timeout=10.0, what="condition", interval=0.02):
    deadline = time.monotonic() + timeout * SLOW
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout * SLOW, what))
        time.sleep(interval)


def start_mariadb(password):
    """A MariaDB server of the test's own (plugins/mysql/tests/mariadb-server.sh,
    gone with this process), with a database `spillway` and a user `spw`
    with `password`. Returns (its folder, its variables: MYSQL_SOCKET...).
    Skips where the mysql backend or MariaDB is not installed."""
    server = os.path.join(SOURCE_ROOT, "plugins", "mysql", "tests", "mariadb-server.sh")
    if not os.path.exists(os.path.join(PLUGIN_DIR, "mysql.so")):
        raise SkipTest("the mysql backend is not built (meson -Dmysql=enabled)")
    d = tempfile.mkdtemp(prefix="spw-mariadb-")
    p = subprocess.run([server, "start", d, "--watch-pid", str(os.getpid()), "--cleanup"], capture_output=True, text=True)
    if p.returncode == 77:
        shutil.rmtree(d, ignore_errors=True)
        raise SkipTest("MariaDB server binaries are not installed")
    assert p.returncode == 0, p.stderr
    env = dict(line.split("=", 1) for line in p.stdout.split())
    subprocess.run([server, "sql", d, "CREATE DATABASE spillway; CREATE USER 'spw'@'localhost' IDENTIFIED BY '%s'; "
                    "GRANT ALL ON spillway.* TO 'spw'@'localhost'" % password], check=True, capture_output=True)
    return d, env


def signal_obj(scenario="crowdsecurity/ssh-bf", ip="192.0.2.7", remediation=None, **extra):
    s = {"scenario": scenario, "events_count": 6, "start_at": "2024-01-01T10:00:00Z",
         "stop_at": "2024-01-01T10:00:20Z", "source": {"Ip": ip, "Country": "FR"}}
    if remediation is not None:
        s["Labels"] = {"remediation": "true" if remediation else "false"}
    s.update(extra)
    return s


class Client:
    """A connection to one of the daemon's sockets, line-oriented."""

    def __init__(self, path, timeout=10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout * SLOW)
        self.sock.connect(path)
        self.buf = b""

    def send_raw(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def send(self, obj):
        self.send_raw(json.dumps(obj) + "\n")

    def readline(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed by spillwayd (buffer: %r)" % self.buf[:200])
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def request(self, obj):
        self.send(obj)
        return self.readline()

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def close(self):
        self.sock.close()


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setblocking(False)
        self.messages = []

    def poll(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return self.messages
            for line in data.decode().split("\n"):
                if line:
                    self.messages.append(line)

    def seen(self, prefix):
        return [m for m in self.poll() if m.startswith(prefix)]

    def close(self):
        self.sock.close()


class Daemon:
    """A spillwayd with its own configuration folder."""

    def __init__(self, backends, main=None, profiles=None, name="spw"):
        self.dir = tempfile.mkdtemp(prefix="spw-test-")
        os.chmod(self.dir, 0o755)
        self.run_dir = os.path.join(self.dir, "run")
        self.state_dir = os.path.join(self.dir, "state")
        os.makedirs(self.state_dir)
        os.makedirs(os.path.join(self.dir, "plugins", "backend"))
        self.config = os.path.join(self.dir, "spillway.yaml")
        self.write_config(backends, main, profiles)
        self.proc = None
        self.notify = None
        self.log_path = os.path.join(self.dir, "spillwayd.log")
        self._checked = None   # the proc whose exit status a check looked at

    @property
    def ingest(self):
        return os.path.join(self.run_dir, "ingest.sock")

    @property
    def admin(self):
        return os.path.join(self.run_dir, "admin.sock")

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def write_config(self, backends, main=None, profiles=None):
        bdir = os.path.join(self.dir, "plugins", "backend")
        for f in os.listdir(bdir):
            os.unlink(os.path.join(bdir, f))
        with open(self.config, "w") as f:
            f.write(main if main is not None else "queue:\n  flush_interval: 50ms\n")
        for name, text in backends.items():
            with open(os.path.join(bdir, name + ".yaml"), "w") as f:
                f.write(text)
        ppath = os.path.join(self.dir, "profiles.yaml")
        if profiles is not None:
            with open(ppath, "w") as f:
                f.write(profiles)
        elif os.path.exists(ppath):
            os.unlink(ppath)

    def args(self, extra=()):
        return [SPILLWAYD, "-c", self.config, "--plugin-dir", PLUGIN_DIR, "--state-dir", self.state_dir,
                "--runtime-dir", self.run_dir, "--allow-unsafe-plugins", "--log-target", "console"] + list(extra)

    def start(self, extra=(), env=None, notify=False, wait=True, watchdog_usec=None):
        e = dict(os.environ)
        if notify:
            self.notify = NotifySocket(os.path.join(self.dir, "notify.sock"))
            e["NOTIFY_SOCKET"] = self.notify.path
        if env:
            e.update(env)
        self.log = open(self.log_path, "ab")
        if watchdog_usec:
            # WATCHDOG_PID must be the daemon's own pid: start it through a
            # shell that exports it and execs.
            cmd = ["/bin/sh", "-c", 'export WATCHDOG_PID=$$ WATCHDOG_USEC=%d; exec "$@"' % watchdog_usec, "sh"] + self.args(extra)
        else:
            cmd = self.args(extra)
        self.proc = subprocess.Popen(cmd, env=e, stdout=self.log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=10.0):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("spillwayd exited with %s during start:\n%s" % (self.proc.returncode, self.read_log()))
            # listening, not only bound: bind() creates the file before listen()
            return listening(self.admin, self.proc.pid) and listening(self.ingest, self.proc.pid)
        wait_for(ready, timeout, "spillwayd to open its sockets")

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def client(self, admin=False, timeout=10.0):
        return Client(self.admin if admin else self.ingest, timeout)

    def admin_request(self, obj):
        c = self.client(admin=True)
        try:
            return c.request(obj)
        finally:
            c.close()

    def status(self):
        return self.admin_request({"op": "status"})

    def backend_status(self, name):
        for b in self.status()["backends"]:
            if b["name"] == name:
                return b
        raise AssertionError("no backend %s in status" % name)

    def ctl(self, *args, input=None, check=None):
        env = dict(os.environ, SPILLWAY_ADMIN_SOCKET=self.admin, SPILLWAY_INGEST_SOCKET=self.ingest)
        p = subprocess.run([SPILLWAYCTL] + list(args), input=input, capture_output=True, text=True, env=env, timeout=60 * SLOW)
        if check is not None and p.returncode != check:
            raise AssertionError("spillwayctl %s exited %d (expected %d)\nstdout: %s\nstderr: %s" %
                                 (" ".join(args), p.returncode, check, p.stdout, p.stderr))
        return p

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=30.0, expect=0):
        """SIGTERM, wait, and check: the exit status is `expect` (None: any
        status) and the log holds no sanitizer report. Returns the status."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._checked = self.proc
                raise AssertionError("spillwayd did not stop within %.0fs:\n%s" % (timeout, self.read_log()))
        if not self.proc:
            return None
        self.check_exit(expect)
        return self.proc.returncode

    def check_exit(self, expect=0):
        """Fail unless the (exited) daemon's status is `expect` (None: any
        status but a crash) and its log holds no sanitizer report."""
        self._checked = self.proc
        rc = self.proc.returncode
        if expect is not None and rc != expect:
            raise AssertionError("spillwayd exited with status %s, expected %s; its log:\n%s" %
                                 (rc, expect, self.log_tail()))
        if expect is None and rc is not None and rc < 0 and -rc in CRASH_SIGNALS:
            raise AssertionError("spillwayd was killed by %s; its log:\n%s" % (signal.Signals(-rc).name, self.log_tail()))
        self.check_sanitizers()

    def check_sanitizers(self):
        report = sanitizer_report(self.read_log())
        if report:
            raise AssertionError("sanitizer report in spillwayd's log (%s):\n%s" % (self.log_path, report))

    def log_tail(self, n=60):
        return "\n".join(self.read_log().splitlines()[-n:])

    def cleanup(self, failing=False):
        """Stop and remove everything. Unless the test is already failing
        (then the daemon is killed), a daemon still running is stopped with
        SIGTERM and must exit 0; one that exited without stop() must not
        have crashed; and the log must hold no sanitizer report."""
        error = None
        try:
            if self.proc and self.proc.poll() is None:
                if failing:
                    self.proc.kill()
                    self.proc.wait()
                else:
                    try:
                        self.stop()
                    except AssertionError as e:
                        error = e
            elif self.proc and not failing and getattr(self, "_checked", None) is not self.proc:
                try:
                    self.check_exit(None)
                except AssertionError as e:
                    error = e
            if not failing and error is None and self.proc:
                try:
                    self.check_sanitizers()
                except AssertionError as e:
                    error = e
            elif failing:
                report = sanitizer_report(self.read_log())
                if report:
                    print("# sanitizer report in spillwayd's log:\n" + report, flush=True)
        finally:
            if self.proc and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            if self.notify:
                self.notify.close()
            if os.environ.get("SPW_KEEP_TEST_DIRS") or error is not None:
                print("# kept", self.dir)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)
        if error is not None:
            raise error


def mock_backend(name, record=None, **config):
    lines = ["name: %s" % name, "path: %s" % MOCK]
    queue_keys = {k: config.pop(k) for k in list(config) if k in
                  ("queue_size", "on_full", "block_timeout", "flush_interval", "flush_delay", "flush_batch", "max_retry",
                   "retry_backoff", "retry_backoff_max")}
    for k, v in queue_keys.items():
        lines.append("%s: %s" % (k, v))
    lines.append("config:")
    if record:
        lines.append("  record: %s" % record)
    for k, v in config.items():
        lines.append("  %s: %s" % (k, json.dumps(v) if isinstance(v, str) else v))
    if len(lines) and lines[-1] == "config:":
        lines.pop()
    return "\n".join(lines) + "\n"


def recorded(path):
    """Lines a mock backend committed: list of (id, scenario, target)."""
    try:
        with open(path) as f:
            out = []
            for line in f:
                parts = line.split()
                if parts and parts[0].isdigit():
                    out.append((int(parts[0]), parts[1], parts[2]))
            return out
    except FileNotFoundError:
        return []


def run(tests):
    """Run test functions; print a line each. Exit 1 if any failed, else 77
    (meson's skip code) if any was skipped, else 0."""
    failed = skipped = passed = 0
    only = os.environ.get("SPW_ONLY")
    for t in tests:
        if only and only not in t.__name__:
            continue
        t0 = time.monotonic()
        try:
            t()
            passed += 1
            print("ok - %s (%.2fs)" % (t.__name__, time.monotonic() - t0), flush=True)
        except SkipTest as e:
            skipped += 1
            print("ok - %s # SKIP %s" % (t.__name__, e), flush=True)
        except Exception:
            failed += 1
            print("not ok - %s" % t.__name__, flush=True)
            traceback.print_exc()
            sys.stdout.flush()
    print("# %d passed, %d failed, %d skipped" % (passed, failed, skipped), flush=True)
    sys.exit(1 if failed else 77 if skipped else 0)


class SkipTest(Exception):
    pass


def _enter(self):
    return self


def _exit(self, exc_type, exc, tb):
    self.cleanup(failing=exc_type is not None)
    return False


Daemon.__enter__ = _enter
Daemon.__exit__ = _exit
