#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The nftables backend under a real systemd with the shipped drop-in
(plugins/nftables/spillway.service.d/nftables.conf, installed where the
spillway-plugin-nftables package puts it): the sandboxed, unprivileged
service programs nftables, a deleted table comes back from the SQLite ban
database by the time `systemctl restart` returns (READY=1), and the
exposure `systemd-analyze security` measures with the drop-in is printed.

The container is test_systemd.py's (same staging of the build, same boot),
with its own network namespace (--private-network: nspawn then keeps
CAP_NET_ADMIN, and the host's firewall is never touched). Root only; exits
77 (SKIP) saying why otherwise."""
import os
import re
import shutil
import signal
import sys
import time
import atexit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_systemd as S  # noqa: E402

SRC = os.environ.get("SPW_SOURCE_ROOT", "")
DROPIN = os.path.join(SRC, "plugins", "nftables", "spillway.service.d", "nftables.conf")

PROFILES = """\
profile: bans
filter: "sig.Labels.remediation == 'true'"
remediation:
  ban: true
  duration: 4h
outputs:
  - plugin: db
  - plugin: nftables
"""


class NftSystem(S.System):
    @S.check("with the nftables drop-in, the service starts and its nftables backend runs")
    def t_start(self):
        self.c.run("systemd-sysusers", check=True)
        self.c.run("systemctl", "start", "spillway.socket", "spillway-admin.socket", check=True)
        self.c.run("systemctl", "start", "spillway.service", check=True)
        self.wait_active()
        caps = self.svc("AmbientCapabilities", "CapabilityBoundingSet", "User", "DropInPaths", "PrivateUsers",
                        "RestrictAddressFamilies", "PrivateNetwork")
        root_nft = self.c.run("nft", "list", "tables")
        if self.backend("nftables").get("state") != "running":
            raise AssertionError("nftables backend not running; unit: %s; root's nft: rc %d %s" %
                                 (caps, root_nft.returncode, root_nft.stderr.strip()))
        assert "cap_net_admin" in caps["AmbientCapabilities"].lower(), caps
        return "User=%s, %s" % (caps.get("User"), caps["AmbientCapabilities"])

    @S.check("spillwayctl ban add reaches the kernel set of the sandboxed service")
    def t_ban(self):
        self.c.run("spillwayctl", "ban", "add", "ip", "192.0.2.7", "1h", "systemtest", check=True)
        self.c.run("spillwayctl", "ban", "add", "range", "2001:db8::/64", "1h", "systemtest", check=True)
        out = self.c.run("nft", "list", "table", "inet", "spillway", check=True).stdout
        assert "192.0.2.7" in out and "2001:db8::/64" in out, out
        return "192.0.2.7 and 2001:db8::/64 in table inet spillway"

    @S.check("a deleted table is rebuilt from SQLite before READY=1 (systemctl restart)")
    def t_restart(self):
        self.c.run("systemctl", "stop", "spillway.service", check=True)
        self.c.run("nft", "delete", "table", "inet", "spillway", check=True)
        t = time.monotonic()
        # Type=notify: start returns once READY=1 was sent
        self.c.run("systemctl", "start", "spillway.service", check=True)
        took = time.monotonic() - t
        out = self.c.run("nft", "list", "table", "inet", "spillway", check=True).stdout
        assert "192.0.2.7" in out and "2001:db8::/64" in out, out
        return "start to READY=1 %.2fs, both bans back" % took

    @S.check("systemd-analyze security with the nftables drop-in (printed)")
    def t_security_dropin(self):
        p = self.c.run("systemd-analyze", "security", "--no-pager", "spillway.service")
        m = re.search(r"Overall exposure level for spillway.service: ([0-9.]+) (\w+)", p.stdout)
        assert m, p.stdout + p.stderr
        print("#   systemd-analyze security spillway.service with nftables.conf: %s %s" % (m.group(1), m.group(2)))
        for line in p.stdout.splitlines():
            if line.startswith("✗"):
                print("#     " + re.sub(r"\s{2,}", "  ", line.strip()))
        assert float(m.group(1)) <= 2.5, m.group(0)
        return "exposure %s %s" % (m.group(1), m.group(2))


def main():
    S.preflight()
    if not os.path.exists(DROPIN):
        S.skip("the drop-in %s is missing" % DROPIN)
    if not shutil.which("nft"):
        S.skip("nft is not installed (Debian: nftables)")
    c = S.Container()
    c.extra_nspawn_args = ["--private-network"]

    def on_signal(signum, frame):
        raise SystemExit(128 + signum)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    atexit.register(c.cleanup)
    try:
        usr = c.prepare()
        if not os.path.exists(os.path.join(usr + S.PLUGINDIR[len("/usr"):], "nftables.so")):
            S.skip("the nftables backend is not built (meson -Dnftables=enabled)")
        # where spillway-plugin-nftables installs it
        d = os.path.join(usr, "lib", "systemd", "system", "spillway.service.d")
        os.makedirs(d, exist_ok=True)
        shutil.copy(DROPIN, d)
        cfg = S.Config(c.conf, 0)
        cfg.backends = {"db": "name: db\npath: sqlite\n",
                        "nftables": "name: nftables\npath: nftables\nflush_interval: 20ms\n"}
        cfg.profiles = PROFILES
        cfg.write("ban_backend: db\nqueue:\n  flush_interval: 50ms\nbans:\n  sync_interval: 500ms\n")
        st = c.boot(usr)
        print("# container %s booted: %s" % (c.name, st), flush=True)
        sysd = NftSystem(c, None, cfg)
        steps = [sysd.t_start, sysd.t_ban, sysd.t_restart, sysd.t_security_dropin]
        print("1..%d" % len(steps), flush=True)
        for step in steps:
            if not step():
                break
        if S.Check.failed:
            for line in c.run("journalctl", "--no-pager", "-u", "spillway.service", "-n", "40").stdout.splitlines():
                print("#   " + line)
    finally:
        c.cleanup()
    print("# %d passed, %d failed" % (S.Check.passed, len(S.Check.failed)))
    sys.exit(1 if S.Check.failed or S.Check.passed == 0 else 0)


if __name__ == "__main__":
    main()
