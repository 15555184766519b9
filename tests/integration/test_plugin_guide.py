#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The plugin author's guide works as written: the example in README.md is
built out of tree with `pkg-config --cflags spillway-backend` against the
*installed* header, and the daemon loads and drives it. And the ABI's
promises seen from outside: a plugin built against the 2.0 header works in
the daemon, a secret config value never reaches the log (even at debug),
a missing required key is a configuration error naming it."""
import os
import re
import shutil
import subprocess
import tempfile

from spwtest import Daemon, SOURCE_ROOT, TEST_PLUGIN_DIR, mock_backend, recorded, run, signal_obj, wait_for

BUILD_ROOT = os.environ["SPW_BUILD_ROOT"]


def install_tree(dest):
    subprocess.run(["meson", "install", "-C", BUILD_ROOT, "--destdir", dest, "--no-rebuild", "--quiet",
                    "--tags", "devel"], check=True, capture_output=True)
    for root, _, files in os.walk(dest):
        if "spillway-backend.pc" in files:
            return root
    raise AssertionError("spillway-backend.pc was not installed")


def guide_source():
    with open(os.path.join(SOURCE_ROOT, "README.md")) as f:
        text = f.read()
    m = re.search(r"<!-- plugin-guide:begin -->\s*```c\n(.*?)```\s*<!-- plugin-guide:end -->", text, re.S)
    assert m, "README.md lost its plugin-guide example"
    return m.group(1)


def test_guide_example_builds_out_of_tree_and_loads():
    work = tempfile.mkdtemp(prefix="spw-guide-")
    try:
        dest = os.path.join(work, "dest")
        pcdir = install_tree(dest)
        env = dict(os.environ, PKG_CONFIG_PATH=pcdir, PKG_CONFIG_SYSROOT_DIR=dest)
        cflags = subprocess.run(["pkg-config", "--cflags", "spillway-backend"], env=env, check=True,
                                capture_output=True, text=True).stdout.split()
        assert any(f.startswith("-I" + dest) for f in cflags), cflags
        with open(os.path.join(work, "hello.c"), "w") as f:
            f.write(guide_source())
        so = os.path.join(work, "hello.so")
        # the exact command of the guide (plus -Werror: the example must be clean)
        subprocess.run(["cc", "-O2", "-fPIC", "-shared", "-fvisibility=hidden", "-Wl,-z,noexecstack",
                        "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"] + cflags + ["-o", so, "hello.c"],
                       cwd=work, check=True)
        with Daemon({"hello": "name: hello\npath: %s\nconfig:\n  greeting: hi\n" % so}) as d:
            d.start()
            c = d.client()
            for i in range(3):
                c.send({"signal": signal_obj(scenario="s%d" % i), "ack": "flushed"})
            assert all(c.readline()["ok"] for _ in range(3))
            # one commit of 3, or smaller ones (a worker commits when its
            # queue runs dry): the last says 3 in all
            wait_for(lambda: "signals (3 in all)" in d.read_log(), what="the plugin's flush log line")
            # unknown keys of the plugin's own table are refused by the daemon
            d.stop()
        with Daemon({"hello": "name: hello\npath: %s\nconfig:\n  greetin: hi\n" % so}) as d:
            p = subprocess.run(d.args(["--check-config"]), capture_output=True, text=True)
            assert p.returncode == 1 and "did you mean 'greeting'" in p.stderr, p.stderr
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_header_is_self_contained_c99_and_cxx():
    inc = os.path.join(SOURCE_ROOT, "src", "include")
    work = tempfile.mkdtemp(prefix="spw-hdr-")
    try:
        src = os.path.join(work, "t.c")
        with open(src, "w") as f:
            f.write("#include <spillway/backend.h>\nint main(void) { return SPW_BACKEND_ABI_MAJOR - 2; }\n")
        subprocess.run(["cc", "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-I", inc, "-o",
                        os.path.join(work, "t"), src], check=True)
        if shutil.which("c++"):
            cxx = os.path.join(work, "t.cc")
            shutil.copy(src, cxx)
            subprocess.run(["c++", "-std=c++11", "-Wall", "-Werror", "-I", inc, "-o", os.path.join(work, "tx"), cxx],
                           check=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_plugin_built_against_abi_2_0_works():
    work = tempfile.mkdtemp(prefix="spw-abi20-")
    try:
        rec = os.path.join(work, "rec")
        text = mock_backend("old", record=rec).replace(os.path.join(TEST_PLUGIN_DIR, "mock.so"),
                                                        os.path.join(TEST_PLUGIN_DIR, "mock20.so"))
        assert "mock20.so" in text
        with Daemon({"old": text}) as d:
            d.start()
            c = d.client()
            for i in range(3):
                c.send({"signal": signal_obj(scenario="old%d" % i), "ack": "flushed"})
            assert all(c.readline()["ok"] for _ in range(3))
            assert [r[1] for r in recorded(rec)] == ["old0", "old1", "old2"]
            assert d.backend_status("old")["state"] == "running"
            assert d.stop() == 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


SECRET = "pw-NEVER-LOGGED-8431"


def test_secret_value_never_logged_even_at_debug():
    with Daemon({"m": mock_backend("m", password=SECRET, secret=SECRET, debug="true")}) as d:
        d.start(extra=["--log-level", "debug"])
        c = d.client()
        c.send({"signal": signal_obj(), "ack": "flushed"})
        assert c.readline()["ok"]
        st = d.status()
        assert d.stop() == 0
        log = d.read_log()
        assert "(secret)" in log, log          # the config map logged at start shows the key, not the value
        assert SECRET not in log, log
        assert SECRET not in str(st)
    # a type error on a secret key names the key, never the value
    with Daemon({"w": "name: w\npath: webhook\nconfig:\n  url: https://example.com/\n  headers: %s\n" % SECRET}) as d:
        p = subprocess.run(d.args(["--check-config"]), capture_output=True, text=True)
        assert p.returncode == 1 and "config.headers" in p.stderr, p.stderr
        assert SECRET not in p.stderr + p.stdout, p.stderr


def test_required_key_missing_is_a_config_error():
    with Daemon({"w": "name: w\npath: webhook\nconfig:\n  method: POST\n"}) as d:
        p = subprocess.run(d.args(["--check-config"]), capture_output=True, text=True)
        assert p.returncode == 1, p.stderr
        assert "w.yaml:1:1: backend 'w' (plugin webhook): config.url is required" in p.stderr, p.stderr


if __name__ == "__main__":
    run([test_guide_example_builds_out_of_tree_and_loads, test_header_is_self_contained_c99_and_cxx,
         test_plugin_built_against_abi_2_0_works, test_secret_value_never_logged_even_at_debug,
         test_required_key_missing_is_a_config_error])
