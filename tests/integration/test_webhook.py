#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The webhook backend inside the real daemon, against a real HTTP server on
loopback (plugins/webhook/tests/receiver.py): batching driven by the
daemon's flushes, a hanging endpoint that holds up nobody else, an endpoint
down at start that comes back, permanent errors, secrets in headers."""
import json
import os
import socket
import subprocess
import sys
import time

from spwtest import Daemon, SOURCE_ROOT, mock_backend, recorded, run, signal_obj, wait_for

RECEIVER = os.path.join(SOURCE_ROOT, "plugins", "webhook", "tests", "receiver.py")


class Receiver:
    def __init__(self, d, plan=None, port=0):
        self.record = d.path("requests-%d.jsonl" % time.monotonic_ns())
        args = [sys.executable, RECEIVER, "--port", str(port), "--record", self.record, "--exit-on-stdin-eof"]
        if plan is not None:
            args += ["--plan", json.dumps(plan)]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())

    def requests(self):
        try:
            with open(self.record) as f:
                return [json.loads(l) for l in f if l.strip()]
        except FileNotFoundError:
            return []

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def webhook_backend(name, url, **config):
    lines = ["name: %s" % name, "path: webhook", "config:", "  url: %s" % url]
    for k, v in config.items():
        if isinstance(v, dict):
            lines.append("  %s:" % k)
            lines += ["    %s: %s" % (hk, json.dumps(hv)) for hk, hv in v.items()]
        else:
            lines.append("  %s: %s" % (k, json.dumps(v) if isinstance(v, str) else v))
    return "\n".join(lines) + "\n"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_batches_follow_group_threshold():
    with Daemon({}) as d:
        rx = Receiver(d)
        try:
            d.write_config({"hook": webhook_backend("hook", "http://127.0.0.1:%d/hook" % rx.port,
                                                    group_threshold=10, group_wait="300ms")})
            d.start()
            c = d.client()
            for i in range(25):
                c.send({"signal": signal_obj(scenario="s%d" % i), "ack": "flushed"})
            replies = [c.readline() for _ in range(25)]
            assert all(r["ok"] for r in replies), replies
            reqs = rx.requests()
            sizes = [len(json.loads(r["body"])) for r in reqs]
            assert sum(sizes) == 25 and max(sizes) <= 10, sizes
            assert len(reqs) <= 5, sizes
            names = [s["scenario"] for r in reqs for s in json.loads(r["body"])]
            assert sorted(names) == sorted("s%d" % i for i in range(25))
            st = d.backend_status("hook")
            assert st["plugin_status"].get("last_http_status") == "200", st
            d.stop()
        finally:
            rx.stop()


def test_hanging_endpoint_holds_up_nobody_else():
    with Daemon({}) as d:
        rx = Receiver(d, plan={"default": {"hang": True}})
        try:
            other = d.path("other.log")
            d.write_config({"hook": webhook_backend("hook", "http://127.0.0.1:%d/" % rx.port, timeout="1s",
                                                    connect_timeout="1s", group_threshold=1),
                            "other": mock_backend("other", other)},
                           main="queue:\n  flush_interval: 50ms\n  max_retry: 1\n  retry_backoff: 100ms\n"
                                "  on_full: drop_oldest\nstuck_timeout: 30s\ndrain_timeout: 1s\n")
            d.start()
            c = d.client()
            t0 = time.monotonic()
            for i in range(20):
                r = c.request(signal_obj(scenario="s%d" % i))
                assert r["ok"], r
            assert time.monotonic() - t0 < 2, "the producer waited for the hanging endpoint"
            wait_for(lambda: len(recorded(other)) == 20, timeout=5, what="the other backend to get everything")
            # the webhook timed out, retried, and reports why
            wait_for(lambda: d.backend_status("hook")["failed"] >= 1, timeout=20, what="the webhook to give up on a signal")
            st = d.backend_status("hook")
            assert st["retried"] >= 1 and "Timeout" in st["last_error"] or "timed out" in st["last_error"].lower(), st
            assert not d.status().get("watchdog_withheld")
            d.stop()
        finally:
            rx.stop()


def test_endpoint_down_then_back():
    with Daemon({}) as d:
        port = free_port()
        d.write_config({"hook": webhook_backend("hook", "http://127.0.0.1:%d/" % port, group_threshold=100,
                                                timeout="2s", connect_timeout="1s")},
                       main="queue:\n  flush_interval: 50ms\n  max_retry: 50\n  retry_backoff: 100ms\n  retry_backoff_max: 300ms\n")
        d.start()
        c = d.client()
        for i in range(10):
            assert c.request(signal_obj(scenario="s%d" % i))["ok"]
        wait_for(lambda: d.backend_status("hook")["retried"] >= 2, what="retries while the endpoint is down")
        assert "connect" in d.backend_status("hook")["last_error"].lower(), d.backend_status("hook")
        rx = Receiver(d, port=port)
        try:
            wait_for(lambda: sum(len(json.loads(r["body"])) for r in rx.requests()) >= 10, timeout=15,
                     what="queued signals to arrive once the endpoint is back")
            names = [s["scenario"] for r in rx.requests() for s in json.loads(r["body"])]
            assert sorted(set(names)) == sorted("s%d" % i for i in range(10)), names
            assert d.backend_status("hook")["failed"] == 0
            d.stop()
        finally:
            rx.stop()


def test_permanent_error_is_not_retried():
    with Daemon({}) as d:
        rx = Receiver(d, plan={"default": {"status": 400, "body": "bad payload: missing text"}})
        try:
            d.write_config({"hook": webhook_backend("hook", "http://user:pw@127.0.0.1:%d/x" % rx.port, group_threshold=1)},
                           main="queue:\n  flush_interval: 50ms\n  max_retry: 5\n  retry_backoff: 50ms\n")
            d.start()
            c = d.client()
            r = c.request({"signal": signal_obj(), "ack": "flushed"})
            assert not r["ok"] and "400" in r["error"], r
            assert "bad payload" in r["error"] and "pw@" not in r["error"], r  # body shown, credentials not
            assert len(rx.requests()) == 1  # no retry
            st = d.backend_status("hook")
            assert st["failed"] == 1 and st["retried"] == 0, st
            d.stop()
        finally:
            rx.stop()


def test_headers_from_env_and_credentials():
    with Daemon({}) as d:
        rx = Receiver(d)
        try:
            creds = d.path("creds")
            os.makedirs(creds)
            with open(os.path.join(creds, "hook-token"), "w") as f:
                f.write("s3cret-from-credential\n")
            d.write_config({"hook": webhook_backend("hook", "http://127.0.0.1:%d/" % rx.port, group_threshold=1,
                                                    headers={"Authorization": "Bearer ${CREDENTIAL:hook-token}",
                                                             "X-Env": "${SPW_TEST_HEADER}"})})
            d.start(env={"CREDENTIALS_DIRECTORY": creds, "SPW_TEST_HEADER": "from-env"})
            c = d.client()
            assert c.request({"signal": signal_obj(), "ack": "flushed"})["ok"]
            h = {k.lower(): v for k, v in rx.requests()[0]["headers"].items()}
            assert h["authorization"] == "Bearer s3cret-from-credential", h
            assert h["x-env"] == "from-env", h
            # the secret is masked where the daemon logs the config map
            assert "s3cret" not in d.read_log()
            d.stop()
        finally:
            rx.stop()


if __name__ == "__main__":
    run([test_batches_follow_group_threshold, test_hanging_endpoint_holds_up_nobody_else, test_endpoint_down_then_back,
         test_permanent_error_is_not_retried, test_headers_from_env_and_credentials])
