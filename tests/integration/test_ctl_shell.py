#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""spillwayctl where operators meet it: the completion scripts as
`meson install` puts them, loaded by the real shells (bash -i with
bash-completion, zsh with compinit, fish), typed into under tmux; and the
terminal views (`send` progress, `top`) read from a tmux pane.

Needs tmux, bash-completion, zsh and fish (tools/install-deps --test); a
missing one makes its test skip (exit 77), never pass."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

from spwtest import SLOW, Daemon, SkipTest, mock_backend, run, signal_obj, wait_for

BUILD_ROOT = os.environ.get("SPW_BUILD_ROOT", "")
SQLITE = "name: bans\npath: sqlite\nconfig:\n  db_path: bans.db\n"
PROFILES = """profile: default_remediation
filter: "sig.Labels.remediation == 'true'"
remediation:
  ban: true
  duration: 4h
outputs:
  - plugin: bans
"""


def need(*tools):
    for t in tools:
        if not shutil.which(t) and not os.path.exists(t):
            raise SkipTest("%s is not installed (tools/install-deps --test)" % t)


def banning(ip):
    s = signal_obj(ip=ip, remediation=True)
    now = time.time()
    s["start_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 20))
    s["stop_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    return s


class Tmux:
    """A terminal: one tmux server of its own running `command`."""
    n = 0

    def __init__(self, command, env, width=160, height=40):
        Tmux.n += 1
        self.base = ["tmux", "-L", "spw%d-%d" % (os.getpid(), Tmux.n), "-f", "/dev/null"]
        subprocess.run(self.base + ["new-session", "-d", "-x", str(width), "-y", str(height), command],
                       env=env, check=True)

    def type(self, text):
        subprocess.run(self.base + ["send-keys", "-l", "--", text], check=True)

    def key(self, *keys):
        subprocess.run(self.base + ["send-keys"] + list(keys), check=True)

    def screen(self):
        return subprocess.run(self.base + ["capture-pane", "-p"], capture_output=True, text=True).stdout

    def line(self):
        """The last non-empty line: where the cursor's command line is."""
        lines = [l.rstrip() for l in self.screen().splitlines() if l.strip()]
        return lines[-1] if lines else ""

    def wait(self, pred, timeout, what):
        last = [""]

        def check():
            last[0] = self.screen()
            return pred(last[0])
        try:
            return wait_for(check, timeout, what, interval=0.1)
        except AssertionError as e:
            raise AssertionError("%s; the screen:\n%s" % (e, last[0]))

    def close(self):
        subprocess.run(self.base + ["kill-server"], capture_output=True)


class Installed:
    """This build installed with `meson install --destdir`: where the
    completion files landed, and a PATH with the installed spillwayctl."""

    def __init__(self):
        self.dest = tempfile.mkdtemp(prefix="spw-install-")
        p = subprocess.run(["meson", "install", "-C", BUILD_ROOT, "--destdir", self.dest, "--no-rebuild", "--quiet"],
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stdout + p.stderr
        files = json.loads(subprocess.run(["meson", "introspect", BUILD_ROOT, "--installed"], capture_output=True,
                                          text=True, check=True).stdout).values()
        found = {os.path.basename(f): self.dest + f for f in files}
        self.bash = found.get("spillwayctl") if "bash-completion" in found.get("spillwayctl", "") else \
            next((self.dest + f for f in files if f.endswith("/bash-completion/completions/spillwayctl")), None)
        self.zsh = found.get("_spillwayctl")
        self.fish = found.get("spillwayctl.fish")
        self.ctl = next(self.dest + f for f in files if f.endswith("/bin/spillwayctl"))
        assert self.bash and self.zsh and self.fish, "completion files not installed: %s" % sorted(found)
        # where each shell looks, relative to the data directory
        assert self.bash.endswith("/share/bash-completion/completions/spillwayctl"), self.bash
        assert re.search(r"/share/zsh/(vendor-completions|site-functions)/_spillwayctl$", self.zsh), self.zsh
        assert self.fish.endswith("/share/fish/vendor_completions.d/spillwayctl.fish"), self.fish
        self.datadir = self.bash[:-len("/bash-completion/completions/spillwayctl")]
        self.home = tempfile.mkdtemp(prefix="spw-home-")

    def env(self, d):
        e = {k: v for k, v in os.environ.items() if not k.startswith("SPILLWAY_")}
        e.update({"PATH": os.path.dirname(self.ctl) + ":" + os.environ.get("PATH", "/usr/bin:/bin"),
                  "HOME": self.home, "XDG_DATA_DIRS": self.datadir + ":/usr/local/share:/usr/share",
                  "XDG_CONFIG_HOME": os.path.join(self.home, ".config"), "SPILLWAY_ADMIN_SOCKET": d.admin,
                  "TERM": "xterm", "LC_ALL": "C.UTF-8", "HISTFILE": "/dev/null"})
        return e

    def cleanup(self):
        shutil.rmtree(self.dest, ignore_errors=True)
        shutil.rmtree(self.home, ignore_errors=True)


def ban_daemon():
    d = Daemon({"bans": SQLITE}, profiles=PROFILES)
    d.start()
    c = d.client()
    assert c.request({"signal": banning("192.0.2.7"), "ack": "flushed"})["ok"]
    c.close()
    d.ctl("ban", "add", "range", "198.51.100.0/24", "1h", "manual", check=0)
    d.ctl("ban", "add", "Country", "FR", "1h", "geo", check=0)
    with open(d.path("signals.jsonl"), "w") as f:
        f.write(json.dumps(signal_obj()) + "\n")
    return d


# What typing then Tab must turn the command line into: (typed, after Tab).
CASES = [
    ("spillwayctl ba", "spillwayctl ban "),
    ("spillwayctl ban l", "spillwayctl ban list "),
    ("spillwayctl ban list --ba", "spillwayctl ban list --backend "),
    ("spillwayctl ban list --backend ", "spillwayctl ban list --backend bans "),        # from the daemon
    ("spillwayctl ban del ip ", "spillwayctl ban del ip 192.0.2.7 "),                  # active targets
    ("spillwayctl ban del range ", "spillwayctl ban del range 198.51.100.0/24 "),
    ("spillwayctl ban del Country ", "spillwayctl ban del Country FR "),                # any scope's values
    ("spillwayctl dead", "spillwayctl deadletter "),
    ("spillwayctl deadletter l", "spillwayctl deadletter list "),
    ("spillwayctl -o js", "spillwayctl -o json "),
    ("spillwayctl status --no-p", "spillwayctl status --no-pager "),
    ("spillwayctl send --ack f", "spillwayctl send --ack flushed "),
    ("spillwayctl send DIR/sig", "spillwayctl send DIR/signals.jsonl "),              # file names
]


def interactive(shell_cmd, setup, inst, d):
    """Type each case into the shell under tmux, Tab, read the line."""
    t = Tmux(shell_cmd, inst.env(d))
    try:
        t.type(setup + '; PS1="RE""ADY> "')
        t.key("Enter")
        t.wait(lambda s: any(l.rstrip() == "READY>" for l in s.splitlines()), 60, "the shell's prompt after setup")
        for typed, want in CASES:
            typed, want = typed.replace("DIR", d.dir), want.replace("DIR", d.dir)
            t.type(typed)
            t.key("Tab")
            try:
                t.wait(lambda s: [l for l in s.splitlines() if l.strip()][-1].rstrip() == "READY> " + want.rstrip(),
                       15, "%r + Tab to give %r" % (typed, want))
            finally:
                t.key("C-u")
                time.sleep(0.2)
        # two candidates: Tab Tab lists them
        t.type("spillwayctl -o ")
        t.key("Tab")
        time.sleep(0.3)
        t.key("Tab")
        screen = t.wait(lambda s: all(w in s for w in ("human", "json", "raw")) and s, 15, "-o's values listed")
        print("# %s: spillwayctl -o <Tab><Tab>:" % shell_cmd.split()[0])
        for line in [l for l in screen.splitlines() if l.strip()][-4:]:
            print("#   " + line.rstrip())
        t.key("C-u")
    finally:
        t.close()


def test_bash_completion_installed_and_loaded_by_bash_i():
    need("tmux", "bash", "/usr/share/bash-completion/bash_completion")
    inst = Installed()
    try:
        with ban_daemon() as d:
            # bash-completion finds it on demand in XDG_DATA_DIRS, as it
            # finds /usr/share/bash-completion/completions/ in the package
            interactive("bash --norc --noprofile -i", "source /usr/share/bash-completion/bash_completion", inst, d)
            d.stop()
    finally:
        inst.cleanup()


def test_zsh_completion():
    need("tmux", "zsh")
    inst = Installed()
    try:
        with ban_daemon() as d:
            fdir = os.path.dirname(inst.zsh)
            interactive("zsh -f", "fpath=(%s $fpath); autoload -Uz compinit; compinit -u -D" % fdir, inst, d)
            d.stop()
    finally:
        inst.cleanup()


def test_fish_completion():
    need("fish")
    inst = Installed()
    try:
        with ban_daemon() as d:
            # fish loads vendor completions from XDG_DATA_DIRS itself;
            # `complete -C` runs its real completion engine on a line
            for typed, want in CASES:
                typed, want = typed.replace("DIR", d.dir), want.replace("DIR", d.dir)
                p = subprocess.run(["fish", "-c", "complete -C %s" % shlex_quote(typed)], capture_output=True, text=True,
                                   env=inst.env(d), timeout=60 * SLOW)
                last = want.rstrip().split(" ")[-1]
                cands = [l.split("\t")[0] for l in p.stdout.splitlines()]
                prefix = typed.split(" ")[-1]
                # fish prints whole tokens (files with their directory)
                assert last in cands or (prefix and last in [prefix[:len(prefix) - len(os.path.basename(prefix))] + c for c in cands]) \
                    or last.endswith("signals.jsonl") and any(c.endswith("signals.jsonl") for c in cands), \
                    (typed, want, p.stdout, p.stderr)
            p = subprocess.run(["fish", "-c", "complete -C 'spillwayctl -o '"], capture_output=True, text=True, env=inst.env(d))
            assert p.stdout.split() == ["human", "json", "raw"], p.stdout
            d.stop()
    finally:
        inst.cleanup()


def shlex_quote(s):
    import shlex
    return shlex.quote(s)


def test_send_progress_in_a_terminal():
    need("tmux")
    from spwtest import SPILLWAYCTL
    with Daemon({"m": mock_backend("m", delay="2ms")}) as d:
        d.start()
        f = d.path("many.jsonl")
        with open(f, "w") as fh:
            for i in range(1500):
                fh.write(json.dumps(signal_obj(scenario="p/%d" % i)) + "\n")
        t = Tmux("sh -c '%s -s %s send --ack flushed %s; echo EXIT=$?; sleep 600'" % (SPILLWAYCTL, d.admin, f),
                 dict(os.environ, TERM="xterm"))
        try:
            def midway(s):
                m = re.search(r"sent (\d+), acknowledged (\d+), rejected 0, (\d+) signals/s", s)
                return m and 0 < int(m.group(2)) < 1500 and int(m.group(3)) > 0 and m
            seen = t.wait(midway, 30, "a progress line with some signals acknowledged")
            t.wait(lambda s: "EXIT=0" in s, 60 * SLOW, "send to finish")
            screen = t.screen()
            assert re.search(r"1500 signals sent to %s in [\d.]+s: 1500 acknowledged flushed, 0 rejected \(\d+ signals/s\)"
                             % re.escape(d.admin), screen), screen
            assert "acknowledged 1500" not in screen, "the progress line was left on the screen:\n" + screen
            print("# send in a terminal, mid-way: %s" % seen.group(0))
        finally:
            t.close()
        d.stop()


def test_top_in_a_terminal():
    need("tmux")
    from spwtest import SPILLWAYCTL
    with Daemon({"bans": SQLITE, "m": mock_backend("m")}, profiles=PROFILES) as d:
        d.start()
        stop = threading.Event()

        def producer():
            c = d.client()
            i = 0
            while not stop.is_set():
                c.request({"signal": banning("203.0.113.%d" % (i % 200)), "ack": "queued"})
                i += 1
                time.sleep(0.005)
            c.close()
        th = threading.Thread(target=producer)
        th.start()
        t = Tmux("sh -c '%s -s %s top -d 0.3; echo TOP-EXIT=$?; sleep 600'" % (SPILLWAYCTL, d.admin),
                 dict(os.environ, TERM="xterm"), width=130, height=20)
        try:
            def live(s):
                m = re.search(r"^bans +running +([\d.]+) +([\d.]+) +\d+/10000 +\d+%", s, re.M)
                b = re.search(r"bans: (\d+) active", s)
                return m and float(m.group(1)) > 0 and b and int(b.group(1)) > 0 and s
            screen = t.wait(live, 30, "top to show signals/s in and the ban count")
            assert "BACKEND" in screen and "RETRIES" in screen and "DROPS" in screen and "LAST ERROR" in screen, screen
            assert re.search(r"signals in: [\d.]+/s accepted", screen), screen
            assert "q: quit" in screen, screen
            # it refreshes: the clock and counters change
            first = screen
            t.wait(lambda s: s != first and live(s), 10, "a new frame")
            print("# spillwayctl top, captured from tmux:")
            for line in t.screen().splitlines():
                if line.strip():
                    print("#   " + line.rstrip())
            t.type("q")
            t.wait(lambda s: "TOP-EXIT=0" in s, 10, "q to quit top")
        finally:
            stop.set()
            th.join()
            t.close()
        d.stop()


def test_top_in_a_terminal_waits_for_the_daemon():
    """On a terminal an unreachable daemon is shown and retried, not fatal:
    the screen comes back when the daemon does."""
    need("tmux")
    from spwtest import SPILLWAYCTL
    with Daemon({"m": mock_backend("m")}) as d:
        t = Tmux("sh -c '%s -s %s top -d 0.3; echo TOP-EXIT=$?; sleep 600'" % (SPILLWAYCTL, d.admin),
                 dict(os.environ, TERM="xterm"), width=200, height=20)
        try:
            t.wait(lambda s: "spillwayd unreachable: cannot connect to %s" % d.admin in s and "retrying every 0.3s" in s,
                   20, "top to show the unreachable daemon")
            d.start()
            t.wait(lambda s: re.search(r"^m +running", s, re.M), 30, "top to show the daemon once it runs")
            t.type("q")
            t.wait(lambda s: "TOP-EXIT=0" in s, 10, "q to quit top")
        finally:
            t.close()
        d.stop()


if __name__ == "__main__":
    run([test_bash_completion_installed_and_loaded_by_bash_i, test_zsh_completion, test_fish_completion,
         test_send_progress_in_a_terminal, test_top_in_a_terminal, test_top_in_a_terminal_waits_for_the_daemon])
