#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Spillway under a real systemd: the shipped units, socket activation, the
sd_notify life cycle, the watchdog, reload, stop, exit on idle, the journal
and the sandbox, in a container booted with systemd-nspawn.

How the container gets Spillway (the choice the brief asks to explain):
the build is installed with `meson install --destdir STAGE`, exactly as a
package would install it, and STAGE/usr is laid read-only over the host's
/usr with `systemd-nspawn --overlay-ro=/usr:STAGE/usr:/usr`. Files meson put
outside /usr (Debian's systemd.pc puts units in /lib/systemd/system) are
merged into STAGE/usr first, as a merged-/usr system has them. So the units
are found where meson installed them, unmodified (their ExecStart= is the
configured sbindir), sysusers.d and the catalog are where systemd looks,
and the daemon runs with its compiled-in paths; nothing is rewritten. The
only test-specific pieces are a writable folder bound over the configuration
directory (the test writes spillway.yaml, backends and profiles there), the
mock plugins copied into the plugin directory, and one drop-in
(spillway.service.d/50-systemtest.conf: a 3 s watchdog and a credential).
The rest of the root is a throw-away skeleton, as in
../shared/recipes/systemd-in-nspawn.sh, whose pitfalls it handles the same
way: chmod 755 on the root, merged-/usr links, /etc/machine-id so that this
is not a first boot, --register=no --keep-unit, nsenter to run commands.

Needs root, systemd-nspawn, nsenter and overlayfs; otherwise it exits 77
(meson: SKIP) saying why, or 1 when SPW_SYSTEM_TESTS=enabled. Prints one
"ok N - name" / "not ok N - name" line per check, then a summary. The
container is powered off and its folders removed on every exit path
(SIGTERM/SIGINT included); if this process is SIGKILLed, nspawn goes on
running in our process group and dies with it.
"""
import atexit
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import traceback

from spwtest import Client, signal_obj

T0 = time.monotonic()
BUILD_ROOT = os.environ.get("SPW_BUILD_ROOT", "")
MOCK = os.path.join(os.environ.get("SPW_TEST_PLUGIN_DIR", ""), "mock.so")
MOCK_EXECSTACK = os.environ.get("SPW_EXECSTACK_PLUGIN", "")
PLUGINDIR = os.environ.get("SPW_PLUGINDIR", "")
CONFDIR = os.environ.get("SPW_CONFDIR", "")
RECEIVER = os.environ.get("WEBHOOK_RECEIVER", "")
MESON = os.environ.get("MESON", "meson")
REQUIRED = os.environ.get("SPW_SYSTEM_TESTS", "auto") == "enabled"
BINDIR = os.environ.get("SPW_BINDIR", "/usr/local/bin")
CONTAINER_PATH = ":".join(dict.fromkeys([BINDIR, os.path.join(os.path.dirname(BINDIR), "sbin"), "/usr/local/sbin",
                                         "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]))

WATCHDOG_SEC = 3           # the drop-in's WatchdogSec=
STUCK_TIMEOUT = 5          # spillway.yaml stuck_timeout: > the webhook's 2 s timeout
SECRET = "s3cr3t-%d" % os.getpid()

MSG = {}                   # MESSAGE_ID name -> id, from src/engine/msgid.h


def skip(why):
    print("1..0 # SKIP system tests under systemd: %s" % why, flush=True)
    sys.exit(1 if REQUIRED else 77)


def preflight():
    if os.geteuid() != 0:
        skip("they need root (systemd-nspawn)")
    for tool in ("systemd-nspawn", "nsenter", "systemd-id128"):
        if not shutil.which(tool):
            skip("%s is not installed (Debian: systemd-container, util-linux)" % tool)
    with open("/proc/filesystems") as f:
        if "overlay" not in f.read():
            skip("the kernel has no overlayfs (modprobe overlay)")
    if not BUILD_ROOT or not os.path.exists(os.path.join(BUILD_ROOT, "meson-private", "install.dat")):
        skip("SPW_BUILD_ROOT does not name a configured meson build directory")
    if not os.path.exists(MOCK):
        skip("the mock plugin %s is not built" % MOCK)
    src = os.environ.get("SPW_SOURCE_ROOT", "")
    with open(os.path.join(src, "src", "engine", "msgid.h")) as f:
        for m in re.finditer(r'#define\s+SPW_MESSAGE_(\w+)\s+"([0-9a-f]{32})"', f.read()):
            MSG[m.group(1)] = m.group(2)


# ------------------------------------------------------------------ checks

class Check:
    n = 0
    passed = 0
    skipped = []
    failed = []


def check(name):
    """Decorator: run the function as one named check, print ok / not ok."""
    def wrap(fn):
        def run(*a, **kw):
            Check.n += 1
            t = time.monotonic()
            try:
                detail = fn(*a, **kw)
            except Exception as e:
                Check.failed.append(name)
                print("not ok %d - %s" % (Check.n, name), flush=True)
                for line in traceback.format_exception(type(e), e, e.__traceback__)[-3:]:
                    for sub in line.rstrip().splitlines():
                        print("#   " + sub)
                sys.stdout.flush()
                return False
            if detail and detail.startswith("SKIP: "):
                # TAP's skip directive; the program exits 77 if nothing failed
                Check.skipped.append(name)
                print("ok %d - %s # SKIP %s" % (Check.n, name, detail[6:]), flush=True)
                return True
            Check.passed += 1
            print("ok %d - %s (%.1fs)%s" % (Check.n, name, time.monotonic() - t, ": " + detail if detail else ""), flush=True)
            return True
        run.check_name = name
        return run
    return wrap


def wait_until(cond, timeout, what, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(interval)


# ------------------------------------------------------------------ the container

class Container:
    def __init__(self):
        self.name = "spwsys%d" % os.getpid()
        self.nspawn = None
        self.leader = None
        self.tmp = tempfile.mkdtemp(prefix="spw-system-")
        os.chmod(self.tmp, 0o755)
        self.skel = os.path.join(self.tmp, "root")
        self.stage = os.path.join(self.tmp, "stage")
        self.conf = os.path.join(self.tmp, "conf")
        self.console = os.path.join(self.tmp, "console.log")

    # --- preparation, on the host

    def install(self):
        """meson install into STAGE, then build the /usr overlay from it."""
        p = subprocess.run([MESON, "install", "-C", BUILD_ROOT, "--no-rebuild", "--quiet", "--destdir", self.stage],
                           capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            raise AssertionError("meson install failed:\n%s%s" % (p.stdout, p.stderr))
        usr = os.path.join(self.stage, "usr")
        os.makedirs(usr, exist_ok=True)
        for top in sorted(os.listdir(self.stage)):
            src = os.path.join(self.stage, top)
            if top in ("bin", "sbin", "lib", "lib64"):          # merged /usr
                shutil.copytree(src, os.path.join(usr, top), symlinks=True, dirs_exist_ok=True)
            elif top not in ("usr", "etc", "var"):
                raise AssertionError("prefix outside /usr is not supported by this test: %s" % src)
        # configuration the build installed outside /usr goes to the skeleton's /etc
        if os.path.isdir(os.path.join(self.stage, "etc")):
            shutil.copytree(os.path.join(self.stage, "etc"), os.path.join(self.skel, "etc"), symlinks=True,
                            dirs_exist_ok=True)
        # test plugins beside the shipped ones (root-owned, 0755: the loader checks)
        pdir = usr + PLUGINDIR[len("/usr"):] if PLUGINDIR.startswith("/usr/") else None
        if not pdir:
            raise AssertionError("plugin directory %s is not under /usr" % PLUGINDIR)
        for src, name in ((MOCK, "mock.so"), (MOCK_EXECSTACK, "mock_execstack.so")):
            if src and os.path.exists(src):
                shutil.copy(src, os.path.join(pdir, name))
                os.chmod(os.path.join(pdir, name), 0o755)
        return usr

    def prepare(self):
        os.makedirs(os.path.join(self.skel, "usr", "lib"))
        os.chmod(self.skel, 0o755)   # mktemp's 0700 would keep non-root services out
        for d in ("bin", "sbin", "lib", "lib64"):
            os.symlink("usr/" + d, os.path.join(self.skel, d))
        shutil.copy("/usr/lib/os-release", os.path.join(self.skel, "usr", "lib"))  # nspawn's OS tree check
        etc = os.path.join(self.skel, "etc")
        os.makedirs(etc)
        # man-db's search path, for systemd-analyze verify's Documentation= check
        if os.path.exists("/etc/manpath.config"):
            shutil.copy("/etc/manpath.config", etc)
        # a machine-id: not a first boot, so no preset-all enabling the host's services
        with open(os.path.join(etc, "machine-id"), "w") as f:
            f.write(subprocess.run(["systemd-id128", "new"], capture_output=True, text=True, check=True).stdout)
        usr = self.install()
        # the test's own configuration folder, bound over the configuration directory
        os.makedirs(self.conf)
        os.chmod(self.conf, 0o755)
        if CONFDIR.startswith("/usr/"):
            os.makedirs(usr + CONFDIR[len("/usr"):], exist_ok=True)
        else:
            os.makedirs(self.skel + CONFDIR, exist_ok=True)
        # the only change to the shipped units: a short watchdog and a credential
        dropin = os.path.join(etc, "systemd", "system", "spillway.service.d")
        os.makedirs(dropin)
        with open(os.path.join(dropin, "50-systemtest.conf"), "w") as f:
            f.write("[Service]\nWatchdogSec=%ds\nLoadCredential=mock-secret:/etc/spillway-test-secret\n" % WATCHDOG_SEC)
        secret = os.path.join(etc, "spillway-test-secret")
        with open(secret, "w") as f:
            f.write(SECRET)
        os.chmod(secret, 0o600)
        return usr

    def boot(self, usr):
        log = open(self.console, "wb")
        cmd = ["systemd-nspawn", "-D", self.skel, "-b", "-M", self.name, "--register=no", "--keep-unit",
               "--console=read-only", "--overlay-ro=/usr:%s:/usr" % usr, "--bind=%s:%s" % (self.conf, CONFDIR),
               "systemd.firstboot=off"]
        cmd[1:1] = list(getattr(self, "extra_nspawn_args", ()))   # nspawn options (before the init's arguments)
        cgroups = self.make_cgroups()
        def into_cgroups():   # in the child, before exec
            for cg in cgroups:
                try:
                    with open(os.path.join(cg, "cgroup.procs"), "w") as f:
                        f.write(str(os.getpid()))
                except OSError:
                    pass
        self.nspawn = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       preexec_fn=into_cgroups)
        def leader():
            if self.nspawn.poll() is not None:
                raise AssertionError("systemd-nspawn exited %s:\n%s" % (self.nspawn.returncode, self.console_text()))
            # nspawn forks a short-lived helper first: wait for the child named systemd
            kids = subprocess.run(["pgrep", "-P", str(self.nspawn.pid), "-x", "systemd"], capture_output=True,
                                  text=True).stdout.split()
            return kids[0] if kids else None
        self.leader = wait_until(leader, 20, "the container's PID 1", 0.05)
        state = []
        def booted():
            if self.nspawn.poll() is not None:
                raise AssertionError("the container died during boot:\n%s" % self.console_text())
            state[:] = [self.run("systemctl", "is-system-running").stdout.strip()]
            return state[0] if state[0] in ("running", "degraded") else None
        try:
            return wait_until(booted, 90, "the container to boot")
        except AssertionError as e:
            jobs = self.run("systemctl", "list-jobs", "--no-pager").stdout
            raise AssertionError("%s (state %s); jobs:\n%s\nconsole:\n%s" % (e, state, jobs, self.console_text()))

    def make_cgroups(self):
        """A cgroup of our own for nspawn, in each hierarchy systemd uses.
        With --keep-unit, nspawn puts the container in fixed sub-cgroups
        ("payload", "supervisor") of its own cgroup: two containers started
        from the same cgroup (this test and the package test, say) would share
        them, and each container's systemd would manage the other's
        processes."""
        made = []
        try:
            with open("/proc/self/cgroup") as f:
                mine = dict((line.split(":", 2)[1], line.split(":", 2)[2].strip()) for line in f if line.count(":") >= 2)
        except OSError:
            return made
        for controllers, root in (("name=systemd", "/sys/fs/cgroup/systemd"), ("", "/sys/fs/cgroup/unified"),
                                  ("", "/sys/fs/cgroup")):
            if controllers not in mine or not os.path.exists(os.path.join(root, "cgroup.procs")):
                continue
            cg = os.path.join(root + mine[controllers], self.name)
            try:
                os.mkdir(cg)
                made.append(cg)
            except OSError:
                pass
            if controllers == "":
                break   # one cgroup2 mount: unified in hybrid mode, or /sys/fs/cgroup itself
        self.cgroups = made
        return made

    def remove_cgroups(self):
        for cg in getattr(self, "cgroups", []):
            # bottom-up; what the container's systemd left behind is empty by now
            for dirpath, dirs, _ in sorted(os.walk(cg), key=lambda w: -w[0].count("/")):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass

    def console_text(self):
        try:
            with open(self.console, "rb") as f:
                return f.read().decode(errors="replace")[-3000:]
        except OSError:
            return ""

    # --- inside the container

    def run(self, *cmd, input=None, timeout=60, check=False):
        # in PID 1's working folder, with a clean environment (not meson's LD_LIBRARY_PATH ...)
        p = subprocess.run(["nsenter", "-t", str(self.leader), "-a", "-w", "env", "-i", "PATH=" + CONTAINER_PATH,
                            "LC_ALL=C.UTF-8"] + list(cmd), input=input, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("%s exited %d\nstdout: %s\nstderr: %s" % (" ".join(cmd), p.returncode, p.stdout,
                                                                          p.stderr))
        return p

    def show(self, unit, *props):
        out = self.run("systemctl", "show", unit, *["-p" + p for p in props], check=True).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def path(self, p):
        """The host's view of a path inside the container."""
        return "/proc/%s/root%s" % (self.leader, p)

    def journal(self, *args):
        out = self.run("journalctl", "--no-pager", "-o", "json", *args).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def cleanup(self):
        if self.nspawn and self.nspawn.poll() is None:
            if self.leader:
                subprocess.run(["nsenter", "-t", str(self.leader), "-a", "systemctl", "poweroff"],
                               capture_output=True, timeout=10)
            try:
                self.nspawn.wait(15)
            except subprocess.TimeoutExpired:
                # last resort, by PID: the container's PID 1, then nspawn
                if self.leader:
                    try:
                        os.kill(int(self.leader), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.5)
                self.nspawn.kill()
                self.nspawn.wait(10)
        self.nspawn = None
        self.remove_cgroups()
        if os.environ.get("SPW_KEEP_TEST_DIRS"):
            print("# kept", self.tmp)
        else:
            # the overlay and binds are gone with the container's mount namespace
            subprocess.run(["rm", "-rf", "--one-file-system", self.tmp])


class Receiver:
    """plugins/webhook/tests/receiver.py on the host's loopback (the
    container shares the host's network namespace)."""

    def __init__(self, tmp):
        self.plan = os.path.join(tmp, "plan.json")
        self.record = os.path.join(tmp, "requests.jsonl")
        self.set_plan({"default": {"hang": True}})
        self.proc = subprocess.Popen([sys.executable, RECEIVER, "--port", "0", "--plan-file", self.plan, "--record",
                                      self.record, "--exit-on-stdin-eof"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())

    def set_plan(self, plan):
        with open(self.plan, "w") as f:
            json.dump(plan, f)

    def reload(self):
        self.proc.send_signal(signal.SIGHUP)

    def requests(self):
        try:
            with open(self.record) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# ------------------------------------------------------------------ configuration

def mock(name, **cfg):
    lines = ["name: %s" % name, "path: %s" % cfg.pop("path", "mock")]
    for k in ("queue_size", "max_retry", "retry_backoff", "flush_interval"):
        if k in cfg:
            lines.append("%s: %s" % (k, cfg.pop(k)))
    lines.append("config:")
    lines += ["  %s: %s" % (k, json.dumps(v)) for k, v in cfg.items()]
    return "\n".join(lines) + "\n"


PROFILES = """\
profile: hook
filter: "sig.Scenario matches '^hook/'"
outputs:
  - plugin: hook
---
profile: wedge
filter: "sig.Scenario == 'wedge'"
outputs:
  - plugin: wedge
---
profile: slow
filter: "sig.Scenario matches '^slow/'"
outputs:
  - plugin: slow
---
profile: default
filter: "not (sig.Scenario matches '^(hook/|slow/|wedge)')"
outputs:
  - plugin: rec
  - plugin: db
"""


class Config:
    def __init__(self, conf, port):
        self.conf = conf
        self.port = port
        self.main = {"stuck_timeout": "%ds" % STUCK_TIMEOUT, "drain_timeout": "10s"}
        self.backends = {
            # secret: from LoadCredential= through ${CREDENTIAL:...}
            "rec": mock("rec", record="/var/lib/spillway/rec.log", secret="${CREDENTIAL:mock-secret}"),
            "db": "name: db\npath: sqlite\n",
            "hook": ("name: hook\npath: webhook\nmax_retry: 20\nretry_backoff: 500ms\nconfig:\n"
                     "  url: http://127.0.0.1:%d/hook\n  timeout: 2s\n" % port),
            "wedge": mock("wedge", record="/var/lib/spillway/wedge.log", hang_on="wedge", hang="300s"),
            "slow": mock("slow", record="/var/lib/spillway/slow.log", delay="20ms", queue_size=1000),
        }
        self.profiles = PROFILES

    def write(self, main_text=None):
        bdir = os.path.join(self.conf, "plugins", "backend")
        os.makedirs(bdir, exist_ok=True)
        for f in os.listdir(bdir):
            os.unlink(os.path.join(bdir, f))
        for name, text in self.backends.items():
            with open(os.path.join(bdir, name + ".yaml"), "w") as f:
                f.write(text)
        with open(os.path.join(self.conf, "profiles.yaml"), "w") as f:
            f.write(self.profiles)
        with open(os.path.join(self.conf, "spillway.yaml"), "w") as f:
            if main_text is not None:
                f.write(main_text)
            else:
                f.write("queue:\n  flush_interval: 100ms\n")
                for k, v in self.main.items():
                    f.write("%s: %s\n" % (k, v))


# ------------------------------------------------------------------ the tests

class System:
    def __init__(self, c, rx, cfg):
        self.c = c
        self.rx = rx
        self.cfg = cfg
        self.ingest = c.path("/run/spillway/ingest.sock")
        self.admin = c.path("/run/spillway/admin.sock")
        self.main_pid = None

    def svc(self, *props):
        return self.c.show("spillway.service", *props)

    def status(self):
        cl = Client(self.admin)
        try:
            return cl.request({"op": "status"})
        finally:
            cl.close()

    def backend(self, name):
        for b in self.status()["backends"]:
            if b["name"] == name:
                return b
        raise AssertionError("no backend %s in status" % name)

    def send(self, sigs, ack="queued"):
        """Send signals over one connection, pipelined; return the replies."""
        cl = Client(self.ingest, timeout=30)
        try:
            for s in sigs:
                cl.send({"signal": s, "ack": ack} if ack != "queued" else s)
            return [cl.readline() for _ in sigs]
        finally:
            cl.close()

    def recorded(self, name):
        try:
            with open(self.c.path("/var/lib/spillway/%s.log" % name)) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def scenarios(self, name):
        return {line.split()[1] for line in self.recorded(name) if line[:1].isdigit()}

    def messages(self, name, *extra):
        return self.c.journal("-u", "spillway.service", "MESSAGE_ID=" + MSG[name], *extra)

    def journal_tail(self, n=25):
        return "\n" + self.c.run("journalctl", "--no-pager", "-u", "spillway.service", "-n", str(n)).stdout

    def cursor(self):
        """The journal's current end, for --after-cursor."""
        e = self.c.journal("-n", "1")
        return e[-1]["__CURSOR"] if e else None

    def wait_active(self, timeout=20):
        return wait_until(lambda: self.svc("ActiveState", "SubState", "MainPID")
                          if self.svc("ActiveState")["ActiveState"] == "active" else None, timeout,
                          "spillway.service to be active")

    # ----------------------------------------------------------------

    @check("sysusers.d creates the spillway user and group")
    def t_sysusers(self):
        self.c.run("systemd-sysusers", check=True)   # as a package's postinst does
        pw = self.c.run("getent", "passwd", "spillway", check=True).stdout.strip()
        gr = self.c.run("getent", "group", "spillway", check=True).stdout.strip()
        assert pw.split(":")[5] == "/var/lib/spillway", pw
        self.spillway_gid = int(gr.split(":")[2])
        assert self.spillway_gid < 1000, gr   # a system group
        return "%s; %s" % (pw, gr)

    @check("systemd-analyze verify passes on every unit")
    def t_verify(self):
        units = ["/usr/lib/systemd/system/" + u for u in ("spillway.socket", "spillway-admin.socket", "spillway.service")]
        for u in units:
            assert os.path.exists(self.c.path(u)), "%s is not installed" % u
        p = self.c.run("systemd-analyze", "verify", *units)
        out = (p.stdout + p.stderr).strip()
        # verify also reports problems in unrelated host units it loads: keep ours
        ours = [line for line in out.splitlines() if "spillway" in line]
        assert p.returncode == 0 and not ours, "rc %d:\n%s" % (p.returncode, out)
        return "3 units, man pages found"

    @check("systemd-analyze security: exposure <= 2.0")
    def t_security(self):
        p = self.c.run("systemd-analyze", "security", "--no-pager", "spillway.service")
        m = re.search(r"Overall exposure level for spillway.service: ([0-9.]+) (\w+)", p.stdout)
        assert m, p.stdout + p.stderr
        exposure = float(m.group(1))
        print("#   systemd-analyze security spillway.service: %s %s" % (m.group(1), m.group(2)))
        for line in p.stdout.splitlines():
            if line.startswith("✗"):
                print("#     " + re.sub(r"\s{2,}", "  ", line.strip()))
        assert exposure <= 2.0, "exposure %.1f" % exposure
        return "exposure %.1f %s" % (exposure, m.group(2))

    @check("sockets listen, spillway.service stays inactive until the first connection")
    def t_sockets(self):
        self.cfg.write()
        self.c.run("journalctl", "--update-catalog", check=True)
        self.c.run("systemctl", "start", "spillway.socket", "spillway-admin.socket", check=True)
        for u in ("spillway.socket", "spillway-admin.socket"):
            assert self.c.run("systemctl", "is-active", u).stdout.strip() == "active", u
        time.sleep(0.5)
        st = self.c.run("systemctl", "is-active", "spillway.service").stdout.strip()
        assert st == "inactive", st
        si, sa = os.stat(self.ingest), os.stat(self.admin)
        assert stat.S_ISSOCK(si.st_mode) and stat.S_IMODE(si.st_mode) == 0o660, oct(si.st_mode)
        assert si.st_uid == 0 and si.st_gid == self.spillway_gid, (si.st_uid, si.st_gid)
        assert stat.S_IMODE(sa.st_mode) == 0o600 and sa.st_uid == 0 and sa.st_gid == 0, (oct(sa.st_mode), sa.st_gid)
        self.ingest_ino = si.st_ino
        return "ingest.sock root:spillway 0660, admin.sock root:root 0600, service inactive"

    @check("spillwayctl on the admin socket activates the service; is-active")
    def t_activate(self):
        p = self.c.run("spillwayctl", "status", timeout=60)
        assert p.returncode == 0, "spillwayctl status exited %d: %s%s" % (p.returncode, p.stdout, p.stderr)
        st = self.c.run("systemctl", "is-active", "spillway.service").stdout.strip()
        assert st == "active", st
        s = self.svc("MainPID", "NRestarts")
        self.main_pid = s["MainPID"]
        return "MainPID %s" % self.main_pid

    @check("time from socket activation to READY=1")
    def t_ready_time(self):
        # the socket's trigger starts the job: the unit leaves "inactive" and
        # the daemon is forked (systemd stamps these two in either order);
        # READY=1 makes it "active"
        s = self.svc("InactiveExitTimestampMonotonic", "ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic")
        leave, fork, ready = (int(s[k]) for k in ("InactiveExitTimestampMonotonic", "ExecMainStartTimestampMonotonic",
                                                   "ActiveEnterTimestampMonotonic"))
        start = min(leave, fork)
        assert 0 < start <= ready, s
        ms = (ready - start) / 1000
        print("#   socket activation -> READY=1: %.1f ms, with 5 backends (sqlite, webhook, 3 mocks)" % ms)
        return "%.1f ms" % ms

    @check("StatusText is the daemon's one-line status")
    def t_status_text(self):
        text = wait_until(lambda: (lambda t: t if "5/5 backends up" in t else None)(self.svc("StatusText")["StatusText"]),
                          5, "StatusText with 5/5 backends up")
        return repr(text)

    @check("backends load under MemoryDenyWriteExecute=yes and the rest of the sandbox")
    def t_sandbox(self):
        s = self.svc("MemoryDenyWriteExecute", "User", "PrivateUsers", "ProtectSystem", "NoNewPrivileges")
        assert s == {"MemoryDenyWriteExecute": "yes", "User": "spillway", "PrivateUsers": "yes", "ProtectSystem": "strict",
                     "NoNewPrivileges": "yes"}, s
        proc = self.c.run("cat", "/proc/%s/status" % self.main_pid, check=True).stdout
        fields = dict(re.findall(r"^(Seccomp|NoNewPrivs|CapEff|CapBnd):\s*(\S+)", proc, re.M))
        assert fields.get("Seccomp") == "2" and fields.get("NoNewPrivs") == "1", fields
        assert int(fields["CapEff"], 16) == 0 and int(fields["CapBnd"], 16) == 0, fields
        st = self.status()
        states = {b["name"]: (b.get("plugin"), b["state"]) for b in st["backends"]}
        for name, plugin in (("db", "sqlite"), ("hook", "webhook"), ("rec", "mock")):
            assert states.get(name) == (plugin, "running"), states
        return "seccomp filter, no capabilities; sqlite, webhook and mock plugins running"

    @check("LoadCredential= supplies a backend secret through ${CREDENTIAL:name}")
    def t_credential(self):
        lines = wait_until(lambda: self.recorded("rec"), 5, "rec.log")
        assert lines[0] == "secret " + SECRET, lines[:2]
        text = self.c.run("journalctl", "--no-pager", "-u", "spillway.service").stdout
        assert SECRET not in text, "the secret leaked into the journal"
        return "mock recorded it, the journal does not show it"

    @check("the ingest socket refuses a user outside the spillway group")
    def t_ingest_refused(self):
        p = self.c.run("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "socat", "-t2", "-",
                       "UNIX-CONNECT:/run/spillway/ingest.sock", input=json.dumps(signal_obj()) + "\n", timeout=20)
        assert p.returncode != 0 and "Permission denied" in p.stderr, (p.returncode, p.stdout, p.stderr)
        assert p.stdout == "", p.stdout
        return "connect: Permission denied"

    @check("the ingest socket takes a spillway group member's signal; the admin socket refuses non-root")
    def t_admin_refused(self):
        member = ["setpriv", "--reuid=65534", "--regid=%d" % self.spillway_gid, "--clear-groups"]
        p = self.c.run(*member, "socat", "-t5", "-", "UNIX-CONNECT:/run/spillway/ingest.sock",
                       input=json.dumps(signal_obj(scenario="perm/member")) + "\n", timeout=20)
        assert p.returncode == 0 and json.loads(p.stdout.splitlines()[0])["ok"], (p.stdout, p.stderr)
        ctl = self.c.run(*member, "spillwayctl", "status", timeout=20)
        assert ctl.returncode == 3 and "ermission denied" in ctl.stderr, (ctl.returncode, ctl.stdout, ctl.stderr)
        p = self.c.run("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "socat", "-t2", "-",
                       "UNIX-CONNECT:/run/spillway/admin.sock", input='{"op":"status"}\n', timeout=20)
        assert p.returncode != 0 and "Permission denied" in p.stderr, (p.returncode, p.stderr)
        s = self.svc("ActiveState", "MainPID")
        assert s == {"ActiveState": "active", "MainPID": self.main_pid}, s
        wait_until(lambda: "perm/member" in self.scenarios("rec"), 5, "the member's signal in rec.log")
        return "spillwayctl status as a group member: exit 3, %r" % ctl.stderr.strip().splitlines()[-1][:90]

    @check("journalctl -u spillway SPILLWAY_BACKEND=... finds structured entries")
    def t_journal_fields(self):
        entries = wait_until(lambda: self.c.journal("-u", "spillway", "SPILLWAY_BACKEND=hook"), 5,
                             "entries with SPILLWAY_BACKEND=hook")
        loaded = [e for e in entries if e.get("MESSAGE_ID") == MSG["BACKEND_LOADED"]]
        assert loaded and loaded[0].get("SPILLWAY_PLUGIN") == "webhook", entries[:2]
        # sent with sd_journal_send (--log-target auto found $JOURNAL_STREAM), not as a stderr line
        assert loaded[0].get("_TRANSPORT") == "journal" and loaded[0].get("SYSLOG_IDENTIFIER") == "spillwayd", loaded[0]
        assert loaded[0].get("PRIORITY") == "6" and loaded[0].get("CODE_FUNC"), loaded[0]
        started = self.messages("STARTED")
        assert started and started[-1].get("SPILLWAY_BACKENDS") == "5", started[-1:]
        return "%d entries, e.g. %r" % (len(entries), loaded[0]["MESSAGE"][:70])

    @check("journalctl -x shows the catalog text")
    def t_catalog(self):
        out = self.c.run("journalctl", "--no-pager", "-x", "-u", "spillway", "MESSAGE_ID=" + MSG["BACKEND_LOADED"],
                         "SPILLWAY_BACKEND=hook", check=True).stdout
        # the catalog's Subject with @SPILLWAY_BACKEND@ substituted, and its body
        assert "Subject: Backend hook loaded" in out and "passed the loader's" in out, out
        return "'Subject: Backend hook loaded' + explanation"

    @check("a slow webhook endpoint under its own timeout does not trip the watchdog")
    def t_slow_webhook(self):
        before = self.svc("MainPID", "NRestarts")
        replies = self.send([signal_obj(scenario="hook/slow-%d" % i) for i in range(3)])
        assert all(r["ok"] for r in replies), replies
        # every request hangs; the webhook gives up after 2 s and the daemon retries:
        # watch for longer than stuck_timeout + WatchdogSec
        time.sleep(STUCK_TIMEOUT + WATCHDOG_SEC + 1)
        hung = [r for r in self.rx.requests() if r.get("response") == "hang"]
        assert len(hung) >= 2, "expected retried requests to the hanging receiver, got %s" % self.rx.requests()
        after = self.svc("MainPID", "NRestarts", "ActiveState", "StatusText")
        assert after["MainPID"] == before["MainPID"] and after["NRestarts"] == before["NRestarts"] == "0", (before, after)
        assert after["ActiveState"] == "active" and "wedged" not in after["StatusText"], after
        assert not self.messages("WATCHDOG_STUCK"), "watchdog pings were withheld"
        assert self.backend("hook")["retried"] >= 1
        # the endpoint recovers: the retried batch is delivered
        self.rx.set_plan({"default": {"status": 200}})
        self.rx.reload()
        wait_until(lambda: any(r.get("response") == 200 for r in self.rx.requests()), 20, "a delivery after recovery")
        return "%d hanging requests over %ds, same MainPID, no restart, delivered after recovery" % (
            len(hung), STUCK_TIMEOUT + WATCHDOG_SEC + 1)

    @check("the watchdog keeps a healthy service up")
    def t_watchdog_healthy(self):
        a = self.svc("WatchdogTimestampMonotonic", "WatchdogUSec", "MainPID", "ActiveEnterTimestampMonotonic")
        time.sleep(WATCHDOG_SEC)
        b = self.svc("WatchdogTimestampMonotonic", "MainPID", "NRestarts")
        assert a["WatchdogUSec"] == "%ds" % WATCHDOG_SEC, a
        assert int(b["WatchdogTimestampMonotonic"]) > int(a["WatchdogTimestampMonotonic"]) > 0, (a, b)
        assert b["MainPID"] == self.main_pid and b["NRestarts"] == "0", b
        up = (int(b["WatchdogTimestampMonotonic"]) - int(a["ActiveEnterTimestampMonotonic"])) / 1e6
        return "WatchdogSec=%ds, pings keep arriving, up %.0fs without a restart" % (WATCHDOG_SEC, up)

    @check("systemctl reload with a valid configuration: the new backend appears, unchanged ones keep running")
    def t_reload_valid(self):
        n_reloaded = len(self.messages("RELOADED"))
        self.cfg.backends["extra"] = mock("extra", record="/var/lib/spillway/extra.log")
        self.cfg.write()
        p = self.c.run("systemctl", "reload", "spillway.service", timeout=60)
        assert p.returncode == 0, p.stderr + self.journal_tail()
        wait_until(lambda: len(self.messages("RELOADED")) > n_reloaded, 10, "the reloaded message")
        s = self.svc("ActiveState", "SubState", "MainPID")
        assert s == {"ActiveState": "active", "SubState": "running", "MainPID": self.main_pid}, s
        assert self.backend("extra")["state"] == "running"
        assert "shutdown" not in self.recorded("rec"), "the unchanged backend rec was restarted"
        replies = self.send([signal_obj(scenario="reload/after")])
        assert replies[0]["ok"], replies
        wait_until(lambda: "reload/after" in self.scenarios("rec"), 5, "a signal after the reload")
        return "6 backends, rec kept its worker"

    @check("systemctl reload with an invalid configuration: the old one keeps running and says why")
    def t_reload_invalid(self):
        n_failed = len(self.messages("RELOAD_FAILED"))
        good = self.svc("StatusText")["StatusText"]
        self.cfg.write(main_text="queue:\n  flush_interval: 100ms\nstuck_timeout: %ds\nstuck_timout: 3s\n" % STUCK_TIMEOUT)
        p = self.c.run("systemctl", "reload", "spillway.service", timeout=60)
        assert p.returncode != 0, "systemctl reload succeeded with an invalid configuration"
        msgs = wait_until(lambda: self.messages("RELOAD_FAILED")[n_failed:], 10, "the reload-failed message")
        assert "stuck_timout" in msgs[-1]["MESSAGE"] and "spillway.yaml:4" in msgs[-1]["MESSAGE"], msgs[-1]["MESSAGE"]
        # READY=1 came back (SubState running, not reload), StatusText says why
        s = wait_until(lambda: (lambda s: s if s["SubState"] == "running" and "reload failed" in s["StatusText"] else None)(
            self.svc("ActiveState", "SubState", "MainPID", "StatusText")), 10, "StatusText naming the failure")
        assert s["ActiveState"] == "active" and s["MainPID"] == self.main_pid, s
        # ExecReload= (spillwayctl reload) logged the same reason
        said = [e["MESSAGE"] for e in self.c.journal("-u", "spillway.service", "-n", "30", "SYSLOG_IDENTIFIER=spillwayctl")]
        assert any("reload failed" in m and "did you mean" in m for m in said), said
        # the old configuration (6 backends) still serves
        assert len(self.status()["backends"]) == 6
        assert self.send([signal_obj(scenario="reload/still")])[0]["ok"]
        wait_until(lambda: "reload/still" in self.scenarios("rec"), 5, "a signal after the failed reload")
        self.cfg.write()
        assert self.c.run("systemctl", "reload", "spillway.service", timeout=60).returncode == 0
        wait_until(lambda: "reload failed" not in self.svc("StatusText")["StatusText"], 10, "a clean StatusText")
        return "systemctl reload exit %d; StatusText %r" % (p.returncode, s["StatusText"][:100])

    @check("a plugin asking for an executable stack is refused under MemoryDenyWriteExecute=yes")
    def t_execstack(self):
        if not MOCK_EXECSTACK:
            return "SKIP: no execstack control plugin built"
        self.cfg.backends["xstack"] = mock("xstack", path="mock_execstack")
        self.cfg.write()
        n_failed = len(self.messages("RELOAD_FAILED"))
        p = self.c.run("systemctl", "reload", "spillway.service", timeout=60)
        assert p.returncode != 0
        msgs = wait_until(lambda: self.messages("RELOAD_FAILED")[n_failed:], 10, "the reload-failed message")
        assert "mock_execstack" in msgs[-1]["MESSAGE"] and "executable stack" in msgs[-1]["MESSAGE"], msgs[-1]["MESSAGE"]
        del self.cfg.backends["xstack"]
        self.cfg.write()
        assert self.c.run("systemctl", "reload", "spillway.service", timeout=60).returncode == 0
        m = msgs[-1]["MESSAGE"]
        return "reload refused: ..." + m[m.index("cannot be loaded"):][:110]

    @check("the watchdog restarts a wedged service (Result=watchdog), the sockets survive")
    def t_watchdog_wedged(self):
        old = self.svc("MainPID", "NRestarts")
        assert self.send([signal_obj(scenario="wedge")])[0]["ok"]
        # stuck_timeout, then WatchdogSec without pings, then SIGABRT and a restart
        results = set()
        def restarted():
            s = self.svc("Result", "NRestarts", "ActiveState", "MainPID")
            results.add(s["Result"])
            return s if s["NRestarts"] != old["NRestarts"] and s["ActiveState"] == "active" else None
        s = wait_until(restarted, STUCK_TIMEOUT + WATCHDOG_SEC + 20, "a restart", 0.05)
        text = self.c.run("journalctl", "--no-pager", "-u", "spillway.service", "-n", "200").stdout
        assert "Failed with result 'watchdog'" in text, text[-2000:]
        stuck = self.messages("WATCHDOG_STUCK")
        assert stuck and "wedge" in stuck[-1]["MESSAGE"], stuck
        assert s["MainPID"] != old["MainPID"] and s["NRestarts"] == "1", s
        self.main_pid = s["MainPID"]
        # the socket units kept the same sockets across the restart
        assert os.stat(self.ingest).st_ino == self.ingest_ino
        assert self.send([signal_obj(scenario="after/restart")])[0]["ok"]
        wait_until(lambda: "after/restart" in self.scenarios("rec"), 5, "a signal after the restart")
        return "%r; Result seen: %s; new MainPID %s" % (stuck[-1]["MESSAGE"][:60], ",".join(sorted(results)), s["MainPID"])

    @check("systemctl stop drains every acknowledged signal and exits 0 within TimeoutStopSec")
    def t_stop_drains(self):
        self.wait_active()
        n = 150
        replies = self.send([signal_obj(scenario="slow/%d" % i) for i in range(n)])
        assert all(r["ok"] for r in replies), [r for r in replies if not r["ok"]][:3]
        # acknowledged, not yet committed by the backend (20 ms per insert)
        pending = n - len(self.scenarios("slow"))
        t = time.monotonic()
        p = self.c.run("systemctl", "stop", "spillway.service", timeout=120)
        took = time.monotonic() - t
        assert p.returncode == 0, p.stderr
        s = self.svc("ActiveState", "Result", "ExecMainStatus", "ExecMainCode", "TimeoutStopUSec")
        assert s["ActiveState"] == "inactive" and s["Result"] == "success" and s["ExecMainStatus"] == "0", s
        got = self.scenarios("slow")
        missing = ["slow/%d" % i for i in range(n) if "slow/%d" % i not in got]
        assert not missing, "%d acknowledged signals lost: %s" % (len(missing), missing[:5])
        stopped = self.messages("STOPPED")
        assert stopped and stopped[-1].get("SPILLWAY_UNDELIVERED") == "0", stopped[-1:]
        assert pending > 0, "everything was delivered before the stop: the test proves nothing"
        return "%d signals acknowledged, %d not yet delivered at stop, all delivered; stop took %.1fs (TimeoutStopSec=%s)" % (
            n, pending, took, s["TimeoutStopUSec"])

    @check("exit_on_idle stops the service, the socket brings it back, nothing is lost")
    def t_exit_on_idle(self):
        self.cfg.main["exit_on_idle"] = "2s"
        self.cfg.write()
        n_started = len(self.messages("STARTED"))
        cursor = self.cursor()
        pids = set()
        sent = []
        # gaps around the idle time, so that connections arrive while it is
        # running, just before it exits, and after it has exited
        # (3.5 s > 2 s + the 0.5 s idle check + the stop: two sure exits)
        for i, gap in enumerate([0, 0.3, 3.5, 0.5, 1.9, 2.1, 3.5, 0.1, 2.0]):
            time.sleep(gap)
            name = "idle/%d" % i
            r = self.send([signal_obj(scenario=name)], ack="flushed" if i % 2 else "queued")[0]
            assert r["ok"], r
            sent.append(name)
            pids.add(self.svc("MainPID")["MainPID"])
        s = wait_until(lambda: (lambda s: s if s["ActiveState"] == "inactive" else None)(
            self.svc("ActiveState", "Result", "ExecMainStatus")), 15, "the service to exit on idle")
        assert s["Result"] == "success" and s["ExecMainStatus"] == "0", s
        systemd_says = [e.get("MESSAGE", "") for e in self.c.journal("-u", "spillway.service", "--after-cursor", cursor)
                        if e.get("_PID") == "1"]
        bad = [m for m in systemd_says if "Failed" in m or "restart" in m.lower()]
        assert not bad, "systemd saw a failure: %s" % bad
        starts = len(self.messages("STARTED")) - n_started
        assert starts >= 3, "expected the socket to start the service at least 3 times, got %d" % starts
        got = self.scenarios("rec")
        missing = [x for x in sent if x not in got]
        assert not missing, "lost: %s" % missing
        for m in self.messages("STOPPED")[-starts:]:
            assert m.get("SPILLWAY_UNDELIVERED") == "0", m
        return "%d signals over %d activations, all delivered, every exit clean" % (len(sent), starts)


def main():
    preflight()
    c = Container()
    rx = None

    def on_signal(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    atexit.register(c.cleanup)

    try:
        t = time.monotonic()
        usr = c.prepare()
        print("# staged the build with meson install (%.1fs)" % (time.monotonic() - t), flush=True)
        if not RECEIVER or not os.path.exists(RECEIVER):
            skip("the webhook receiver (plugins/webhook/tests/receiver.py) is not available")
        rx = Receiver(c.tmp)
        atexit.register(rx.stop)
        t = time.monotonic()
        st = c.boot(usr)
        print("# container %s booted: %s (%.1fs)" % (c.name, st, time.monotonic() - t), flush=True)
        sysd = System(c, rx, Config(c.conf, rx.port))
        steps = [sysd.t_sysusers, sysd.t_verify, sysd.t_security, sysd.t_sockets, sysd.t_activate, sysd.t_ready_time,
                 sysd.t_status_text, sysd.t_sandbox, sysd.t_credential, sysd.t_ingest_refused, sysd.t_admin_refused,
                 sysd.t_journal_fields, sysd.t_catalog, sysd.t_slow_webhook, sysd.t_watchdog_healthy,
                 sysd.t_reload_valid, sysd.t_reload_invalid, sysd.t_execstack, sysd.t_watchdog_wedged,
                 sysd.t_stop_drains, sysd.t_exit_on_idle]
        print("1..%d" % len(steps), flush=True)
        for step in steps:
            step()
            if c.nspawn.poll() is not None:
                print("Bail out! the container died:\n" + c.console_text())
                break
        if Check.failed:
            print("# last journal lines of spillway.service:")
            for line in c.run("journalctl", "--no-pager", "-u", "spillway.service", "-n", "40").stdout.splitlines():
                print("#   " + line)
    finally:
        if rx:
            rx.stop()
        c.cleanup()
    print("# %d passed, %d failed%s, %d skipped; %.0fs in all" % (Check.passed, len(Check.failed),
                                                                (": " + "; ".join(Check.failed)) if Check.failed else "",
                                                                len(Check.skipped), time.monotonic() - T0))
    sys.exit(1 if Check.failed or Check.passed == 0 else 77 if Check.skipped else 0)


if __name__ == "__main__":
    main()
