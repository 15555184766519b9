#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The HTTP ingest (issue 14) with the real daemon, real curl and Python's
http.client: every reply code, NDJSON with ack=flushed landing in SQLite
exactly once, tokens, size limits, slow clients, the connection limit, the
unix socket's peer check, TLS with a certificate made here and renewed by a
reload, and CrowdSec alerts."""
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import time

from spwtest import SLOW, Daemon, SkipTest, mock_backend, run, signal_obj, wait_for

TOKEN = "t0k3n-for-tests"
SQLITE = "name: sqlite\npath: sqlite\nconfig:\n  db_path: bans.db\n"
CURL = shutil.which("curl")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main_yaml(port, extra=""):
    return ("queue:\n  flush_interval: 50ms\nsockets:\n  http: 127.0.0.1:%d\n  http_token: %s\n" % (port, TOKEN)) + extra


def start(backends, extra="", profiles=None):
    port = free_port()
    d = Daemon(backends, main=main_yaml(port, extra), profiles=profiles)
    d.port = port
    d.start()
    wait_for(lambda: port_open(port), 10, "the HTTP port")
    return d


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False


def post(d, path, body, ctype="application/json", token=TOKEN, header="Authorization", timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=timeout * SLOW)
    h = {"Content-Type": ctype}
    if token is not None:
        h[header] = ("Bearer " + token) if header == "Authorization" else token
    c.request("POST", path, body=body if isinstance(body, bytes) else body.encode(), headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict(r.getheaders()), json.loads(data) if data else None


def get(d, path, token=TOKEN):
    c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10 * SLOW)
    c.request("GET", path, headers={"Authorization": "Bearer " + token} if token else {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data.decode()


def metric(d, name):
    _, text = get(d, "/metrics")
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError("no metric %s in:\n%s" % (name, text))


def db_count(d, table="signal_occurences"):
    db = sqlite3.connect(d.path("state", "bans.db"))
    try:
        return db.execute("select count(*) from %s" % table).fetchone()[0]
    finally:
        db.close()


def test_reply_codes():
    with start({"sqlite": SQLITE}) as d:
        sig = signal_obj()
        # 200: one signal, an array, NDJSON; results are the socket protocol's replies
        st, _, r = post(d, "/v1/signals", json.dumps(sig))
        assert st == 200 and r["ok"] and r["accepted"] == 1 and r["results"][0]["ack"] == "queued", (st, r)
        st, _, r = post(d, "/v1/signals?ack=flushed", json.dumps([sig, signal_obj(ip="192.0.2.8")]))
        assert st == 200 and r["accepted"] == 2 and [x["ack"] for x in r["results"]] == ["flushed"] * 2, r
        st, _, r = post(d, "/v1/signals?ack=flushed", "\n".join(json.dumps(signal_obj(ip="192.0.2.%d" % i)) for i in range(3)) + "\n",
                        ctype="application/x-ndjson")
        assert st == 200 and r["accepted"] == 3, r
        assert db_count(d) == 6, db_count(d)
        # the same reply as the unix socket for the same signal (one room)
        line = d.client().request({"signal": sig, "ack": "flushed"})
        assert set(line) == set(r["results"][0]), (line, r["results"][0])

        # 400: nothing of a malformed body is accepted
        before = db_count(d)
        st, _, r = post(d, "/v1/signals", "[%s, {bad" % json.dumps(sig))
        assert st == 400 and "invalid JSON" in r["error"] and "nothing of this body" in r["error"], r
        st, _, r = post(d, "/v1/signals?ack=flushed", json.dumps([sig, dict(sig, source={"Ip": "not-an-ip"})]))
        assert st == 400 and "signal 1" in r["error"] and "source.Ip" in r["error"], r
        st, _, r = post(d, "/v1/signals", json.dumps(sig) + "\n{oops\n", ctype="application/x-ndjson")
        assert st == 400 and "line 2" in r["error"], r
        st, _, r = post(d, "/v1/signals?ack=later", json.dumps(sig))
        assert st == 400 and "ack" in r["error"], r
        time.sleep(0.3)
        assert db_count(d) == before, "a signal of a rejected body was stored"

        # 401: no token, a wrong one, one differing only in the last byte; X-Api-Key works
        for tok in (None, "wrong", TOKEN[:-1] + "X", TOKEN + "X", ""):
            st, h, r = post(d, "/v1/signals", json.dumps(sig), token=tok)
            assert st == 401 and "token" in r["error"], (tok, st, r)
        st, _, r = post(d, "/v1/signals", json.dumps(sig), header="X-Api-Key")
        assert st == 200, (st, r)
        st, _ = get(d, "/metrics", token="wrong")
        assert st == 401
        # 404, 405
        st, _, r = post(d, "/v2/nothing", "{}")
        assert st == 404, st
        st, _ = get(d, "/v1/signals")
        assert st == 405, st
        # healthz needs no token
        st, body = get(d, "/healthz", token=None)
        assert st == 200 and json.loads(body)["up"] == ["sqlite"], body
        # metrics: the same text as the admin op, plus the HTTP counters
        st, text = get(d, "/metrics")
        admin = d.admin_request({"op": "metrics"})
        assert st == 200 and "spillway_signals_accepted_total" in text and "spillway_http_requests_total" in text, text
        assert metric(d, 'spillway_http_refused_total{reason="unauthorized"}') >= 6
        assert metric(d, 'spillway_http_refused_total{reason="malformed"}') >= 4
        assert "spillway_backend_up" in json.dumps(admin)
        # the log never shows a token
        assert TOKEN not in d.read_log() and "wrong" not in d.read_log()
        # a clean stop (sanitizer builds: no leak, no error)
        assert d.stop() == 0, d.read_log()


def test_oversized_bodies():
    with start({"sqlite": SQLITE}, extra="  http_max_body: 64K\n") as d:
        big = json.dumps([signal_obj(ip="192.0.2.%d" % (i % 250)) for i in range(600)])
        assert len(big) > 64 * 1024
        st, _, r = post(d, "/v1/signals", big)
        assert st == 413 and "http_max_body" in r["error"], (st, r)
        if CURL:
            # chunked: no Content-Length, the limit applies while reading
            p = subprocess.run([CURL, "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer " + TOKEN,
                                "-H", "Transfer-Encoding: chunked", "--data-binary", "@-", "http://127.0.0.1:%d/v1/signals" % d.port],
                               input=big.encode(), capture_output=True, timeout=30)
            assert p.stdout == b"413", p
        assert metric(d, 'spillway_http_refused_total{reason="too_large"}') >= 1
        time.sleep(0.2)
        assert db_count(d) == 0
        # just under the limit passes
        st, _, r = post(d, "/v1/signals", json.dumps([signal_obj()] * 100))
        assert st == 200 and r["accepted"] == 100, r


def test_ndjson_10000_flushed_exactly_once():
    with start({"sqlite": SQLITE}, extra="  http_max_body: 64M\n") as d:
        n = 10000
        body = "".join(json.dumps(signal_obj(ip="10.%d.%d.%d" % (i >> 16, (i >> 8) & 255, i & 255), scenario="bulk/%d" % i)) + "\n"
                       for i in range(n))
        t0 = time.monotonic()
        st, _, r = post(d, "/v1/signals?ack=flushed", body, ctype="application/x-ndjson", timeout=120)
        dt = time.monotonic() - t0
        assert st == 200 and r["accepted"] == n and len(r["results"]) == n, (st, r and r.get("accepted"))
        ids = [x["id"] for x in r["results"]]
        assert len(set(ids)) == n and ids == sorted(ids), "ids not unique and in order"
        # every acknowledged signal is in the database, once
        db = sqlite3.connect(d.path("state", "bans.db"))
        rows = db.execute("select scenario, count(*) from signal_occurences group by scenario").fetchall()
        db.close()
        assert len(rows) == n and all(c == 1 for _, c in rows), (len(rows), [x for x in rows if x[1] != 1][:5])
        print("# 10000 NDJSON signals, ack=flushed, one POST: %.2fs (%.0f signals/s)" % (dt, n / dt))


def test_queue_full_503():
    mock = mock_backend("m", queue_size=1, on_full="block", block_timeout="300ms", hang_on="hang/me", hang="3s")
    with start({"m": mock}) as d:
        sigs = [signal_obj(scenario="hang/me")] + [signal_obj(ip="192.0.2.%d" % i) for i in range(5)]
        st, h, r = post(d, "/v1/signals", json.dumps(sigs))
        assert st == 503 and h.get("Retry-After"), (st, h, r)
        oks = [x["ok"] for x in r["results"]]
        assert oks[0] and not oks[-1] and len(oks) == 6, r
        refused = [x for x in r["results"] if not x["ok"]]
        assert "block_timeout" in refused[0]["error"], refused
        assert all("not tried" in x["error"] for x in refused[1:]), refused
        assert metric(d, 'spillway_http_refused_total{reason="queue_full"}') == 1
        # stopping while a request waits on the hung backend: it is answered, nothing leaks
        c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30 * SLOW)
        c.request("POST", "/v1/signals?ack=flushed", body=json.dumps([signal_obj(ip="192.0.2.77")]),
                  headers={"Authorization": "Bearer " + TOKEN})
        time.sleep(0.3)
        assert d.stop() == 0, d.read_log()
        try:
            r = c.getresponse()
            r.read()
        except (http.client.HTTPException, OSError):
            pass


def test_healthz_names_failing_backend():
    with start({"ok": mock_backend("ok"), "broken": mock_backend("broken", mode="init_fail")}) as d:
        def unhealthy():
            st, body = get(d, "/healthz", token=None)
            return st == 503 and json.loads(body)["down"] == ["broken"] and (st, body)
        st, body = wait_for(unhealthy, 10, "healthz to name the failed backend")
        assert json.loads(body)["up"] == ["ok"], body


def test_slow_clients_and_connection_limit():
    with start({"sqlite": SQLITE}, extra="  http_timeout: 2s\n  http_max_connections: 300\n") as d:
        slow = []
        for i in range(200):
            s = socket.create_connection(("127.0.0.1", d.port))
            s.sendall(b"POST /v1/signals HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n")  # and then nothing
            slow.append(s)
        # a normal client is served meanwhile, promptly
        t0 = time.monotonic()
        st, _, r = post(d, "/v1/signals?ack=flushed", json.dumps(signal_obj()))
        assert st == 200 and time.monotonic() - t0 < 2 * SLOW, (st, time.monotonic() - t0)
        # the slow ones are dropped after http_timeout
        wait_for(lambda: metric(d, 'spillway_http_refused_total{reason="timeout"}') >= 200, 15, "slow clients to time out")
        for s in slow:
            s.settimeout(5)
            try:
                assert s.recv(100) == b""
            except ConnectionResetError:
                pass
            s.close()
    with start({"sqlite": SQLITE}, extra="  http_max_connections: 5\n") as d:
        def admin_metric(name):
            for line in d.admin_request({"op": "metrics"})["metrics"].splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[-1])
        # start() probed the port: that connection is gone first
        wait_for(lambda: admin_metric("spillway_http_connections") == 0, 10, "the probe connection to close")
        idle = [socket.create_connection(("127.0.0.1", d.port)) for _ in range(5)]
        try:
            wait_for(lambda: admin_metric("spillway_http_connections") == 5, 10, "5 open HTTP connections")
        except AssertionError:
            raise AssertionError("%s open, %s refused" % (admin_metric("spillway_http_connections"),
                                                          admin_metric('spillway_http_refused_total{reason="connection_limit"}')))
        extra = socket.create_connection(("127.0.0.1", d.port))
        extra.settimeout(5)
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            got = extra.recv(100)
        except ConnectionResetError:
            got = b""
        assert got == b"", got
        for s in idle:
            s.close()
        def served():
            try:
                return get(d, "/healthz")[0] == 200
            except (http.client.HTTPException, OSError):
                return False
        wait_for(served, 5, "room again")
        assert metric(d, 'spillway_http_refused_total{reason="connection_limit"}') >= 1


def test_unix_socket_peer():
    if not CURL:
        raise SkipTest("curl is not installed")
    d = Daemon({"sqlite": SQLITE}, main="queue:\n  flush_interval: 50ms\nsockets:\n  http: 127.0.0.1:%d %s\n" % (free_port(), "@UNIX@"))
    with d:
        path = d.path("run", "http.sock")
        d.write_config({"sqlite": SQLITE}, main=open(d.config).read().replace("@UNIX@", path))
        d.start()
        wait_for(lambda: os.path.exists(path), 5, "the HTTP unix socket")
        sig = json.dumps(signal_obj())
        # our own uid over the unix socket: no token needed (and none is configured)
        p = subprocess.run([CURL, "-s", "-w", "\n%{http_code}", "--unix-socket", path, "-d", sig, "http://localhost/v1/signals?ack=flushed"],
                           capture_output=True, text=True, timeout=30)
        assert p.stdout.endswith("\n200") and '"accepted":1' in p.stdout, p
        if os.getuid() == 0 and shutil.which("setpriv"):
            # another uid is not permitted
            os.chmod(path, 0o666)
            os.chmod(d.path("run"), 0o755)
            os.chmod(d.dir, 0o755)
            p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", CURL, "-s", "-o", "/dev/null", "-w",
                                "%{http_code}", "--unix-socket", path, "-d", sig, "http://localhost/v1/signals"],
                               capture_output=True, text=True, timeout=30)
            assert p.stdout == "401", p
        # over TCP without a configured token: refused
        port = int(open(d.config).read().split("127.0.0.1:")[1].split()[0])
        d.port = port
        st, _, r = post(d, "/v1/signals", sig, token=None)
        assert st == 401, (st, r)
        d.stop()
        assert not os.path.exists(path), "the HTTP unix socket was left behind"


def make_cert(dirpath, name, cn="localhost"):
    crt, key = os.path.join(dirpath, name + ".crt"), os.path.join(dirpath, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt, "-days", "2",
                    "-subj", "/CN=" + cn, "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return crt, key


def served_cert(port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), 5) as raw, ctx.wrap_socket(raw) as s:
        return s.getpeercert(binary_form=True)


def test_tls_and_reload_renews_certificate():
    if not shutil.which("openssl"):
        raise SkipTest("openssl is not installed")
    port = free_port()
    d = Daemon({"sqlite": SQLITE}, main=main_yaml(port, "  http_tls_cert: tls.crt\n  http_tls_key: tls.key\n"))
    with d:
        d.port = port
        crt, key = make_cert(d.dir, "tls", cn="first")
        d.start()
        wait_for(lambda: port_open(port), 10, "the HTTPS port")
        ctx = ssl.create_default_context(cafile=crt)
        c = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10)
        c.request("POST", "/v1/signals?ack=flushed", body=json.dumps(signal_obj()),
                  headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"})
        r = c.getresponse()
        body = json.loads(r.read())
        assert r.status == 200 and body["accepted"] == 1, body
        c.close()
        if CURL:
            p = subprocess.run([CURL, "-s", "--cacert", crt, "-H", "X-Api-Key: " + TOKEN, "https://localhost:%d/metrics" % port],
                               capture_output=True, text=True, timeout=30)
            assert "spillway_http_requests_total" in p.stdout, p
        # plain HTTP to the TLS port is not served
        try:
            st, _, _ = post(d, "/v1/signals", json.dumps(signal_obj()))
            assert False, "plain HTTP answered on the TLS port: %s" % st
        except (http.client.HTTPException, ConnectionError, OSError):
            pass
        first = served_cert(port)
        # renew the files; a reload serves the new certificate on the same socket
        make_cert(d.dir, "tls", cn="second")
        assert d.ctl("reload").returncode == 0
        wait_for(lambda: served_cert(port) != first, 10, "the renewed certificate")
        assert d.stop() == 0, d.read_log()


def test_crowdsec_alerts():
    profiles = """profile: default_remediation
filter: "sig.Labels.remediation == 'true'"
remediation:
  ban: true
  duration: 1h
outputs:
  - plugin: sqlite
"""
    now = time.time()
    def alert(ip, scenario="crowdsecurity/ssh-bf", decisions=True):
        a = {"capacity": 5, "events_count": 6, "leakspeed": "10s", "message": "Ip %s performed '%s'" % (ip, scenario),
             "scenario": scenario, "scenario_hash": "h", "scenario_version": "0.1", "simulated": False, "remediation": True,
             "start_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 5)),
             "stop_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
             "source": {"scope": "Ip", "value": ip, "ip": ip, "cn": "FR", "as_number": "64500", "as_name": "Example"},
             "events": [{"timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
                         "meta": [{"key": "source_ip", "value": ip}, {"key": "user", "value": "root"}]}],
             "meta": [{"key": "service", "value": "ssh"}], "uuid": "u-" + ip, "machine_id": "m1", "some_future_field": {"x": 1}}
        if decisions:
            a["decisions"] = [{"duration": "3h59m0s", "origin": "crowdsec", "scenario": scenario, "scope": "Ip", "type": "ban",
                               "value": ip}]
        return a
    # ignore: Spillway's profiles decide (duration 1h)
    with start({"sqlite": SQLITE}, profiles=profiles) as d:
        st, _, r = post(d, "/v1/crowdsec/alerts?ack=flushed", json.dumps([alert("192.0.2.10"), alert("192.0.2.11")]))
        assert st == 200 and r["accepted"] == 2, r
        out = d.ctl("-o", "json", "ban", "list", check=0).stdout
        bans = json.loads(out)["rows"]
        assert {b["iptext"] for b in bans} >= {"192.0.2.10", "192.0.2.11"}, out
        # a missing required field: 400 naming it, nothing accepted
        bad = alert("192.0.2.12")
        del bad["scenario"]
        st, _, r = post(d, "/v1/crowdsec/alerts", json.dumps([alert("192.0.2.13"), bad]))
        assert st == 400 and "alert 1" in r["error"] and "scenario" in r["error"], r
        assert "192.0.2.13" not in d.ctl("-o", "json", "ban", "list", check=0).stdout
    # apply: CrowdSec's decisions are the bans (3h59m), even without a profile
    with start({"sqlite": SQLITE}, extra="  crowdsec_decisions: apply\n") as d:
        st, _, r = post(d, "/v1/crowdsec/alerts?ack=flushed", json.dumps([alert("192.0.2.20")]))
        assert st == 200 and r["results"][0].get("bans") == 1, r
        db = sqlite3.connect(d.path("state", "bans.db"))
        until = db.execute("select until from ban_applications where ip_text = '192.0.2.20'").fetchone()
        db.close()
        assert until, "no ban from the CrowdSec decision"


def test_token_sources_reload_and_header_limit():
    port = free_port()
    d = Daemon({"sqlite": SQLITE}, main="queue:\n  flush_interval: 50ms\nsockets:\n  http: 127.0.0.1:%d\n"
               "  http_token: ${CREDENTIAL:spillway-http-token}\n  http_max_header: 8K\n" % port)
    with d:
        d.port = port
        creds = d.path("creds")
        os.makedirs(creds)
        with open(os.path.join(creds, "spillway-http-token"), "w") as f:
            f.write("from-credential\n")
        d.start(env={"CREDENTIALS_DIRECTORY": creds})
        wait_for(lambda: port_open(port), 10, "the HTTP port")
        sig = json.dumps(signal_obj())
        assert post(d, "/v1/signals", sig, token="from-credential")[0] == 200
        assert post(d, "/v1/signals", sig, token="from-credential-and-more")[0] == 401
        # a token file; a reload takes it, the old token stops working
        with open(d.path("token"), "w") as f:
            f.write("from-file\n")
        with open(d.config, "w") as f:
            f.write("queue:\n  flush_interval: 50ms\nsockets:\n  http: 127.0.0.1:%d\n  http_token_file: token\n"
                    "  http_max_header: 8K\n" % port)
        assert d.ctl("reload").returncode == 0
        wait_for(lambda: post(d, "/v1/signals", sig, token="from-file")[0] == 200, 10, "the new token")
        assert post(d, "/v1/signals", sig, token="from-credential")[0] == 401
        assert "from-file" not in d.read_log() and "from-credential" not in d.read_log()
        # headers over http_max_header: refused by MHD (431), the connection closed
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            c.request("POST", "/v1/signals", body=sig, headers={"X-Api-Key": "from-file", "X-Padding": "x" * 20000})
            st = c.getresponse().status
        except (http.client.HTTPException, OSError):
            st = None
        assert st in (None, 413, 414, 431), st
        assert post(d, "/v1/signals", sig, token="from-file")[0] == 200
        assert d.stop() == 0, d.read_log()


def test_config_errors():
    for extra, expect in (("  crowdsec_decisions: maybe\n", "crowdsec_decisions: expected"),
                          ("  http_tls_cert: a.crt\n", "http_tls_cert and http_tls_key: give both"),
                          ("  http_max_body: 10\n", "http_max_body")):
        with Daemon({"sqlite": SQLITE}, main=main_yaml(free_port(), extra)) as d:
            p = subprocess.run(d.args(["--check-config"]), capture_output=True, text=True, timeout=30)
            assert p.returncode != 0 and expect in p.stdout + p.stderr, (extra, p)
    # a busy port: spillwayd refuses to start and names it
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    with Daemon({"sqlite": SQLITE}, main=main_yaml(busy.getsockname()[1])) as d:
        d.start(wait=False)
        assert d.proc.wait(30) != 0
        assert "cannot listen on 127.0.0.1:%d" % busy.getsockname()[1] in d.read_log(), d.read_log()
    busy.close()


def test_socket_activation():
    """The fd named "http" from systemd (as spillway-http.socket passes it),
    with no sockets.http in the configuration; its first connection starts
    the daemon."""
    if not shutil.which("systemd-socket-activate"):
        raise SkipTest("systemd-socket-activate not installed")
    from spwtest import PLUGIN_DIR, SPILLWAYD
    port = free_port()
    d = Daemon({"sqlite": SQLITE}, main="queue:\n  flush_interval: 50ms\nsockets:\n  http_token: %s\n" % TOKEN)
    with d:
        d.port = port
        ingest, admin = d.path("act-ingest.sock"), d.path("act-admin.sock")
        log = open(d.log_path, "ab")
        d.proc = subprocess.Popen(["systemd-socket-activate", "-l", ingest, "--fdname=ingest", "-l", admin, "--fdname=admin",
                                   "-l", "127.0.0.1:%d" % port, "--fdname=http",
                                   SPILLWAYD, "-c", d.config, "--plugin-dir", PLUGIN_DIR, "--state-dir", d.state_dir,
                                   "--allow-unsafe-plugins", "--log-target", "console"], stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: port_open(port), 10, "the activation socket")
        st, _, r = post(d, "/v1/signals?ack=flushed", json.dumps(signal_obj()))
        assert st == 200 and r["accepted"] == 1, (st, r, d.read_log())
        assert "HTTP ingest on activated fd" in d.read_log(), d.read_log()
        assert db_count(d) == 1
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(20) == 0, d.read_log()


def test_parked_then_flushed():
    """ack=flushed with a full block queue: the items wait for room in order,
    then for their flush; the reply comes once every item is flushed."""
    mock = mock_backend("m", queue_size=1, on_full="block", block_timeout="10s", hang_on="hang/me", hang="1s")
    with start({"m": mock}) as d:
        sigs = [signal_obj(scenario="hang/me")] + [signal_obj(ip="192.0.2.%d" % i) for i in range(1, 6)]
        t0 = time.monotonic()
        st, _, r = post(d, "/v1/signals?ack=flushed", json.dumps(sigs))
        assert st == 200 and r["accepted"] == 6, (st, r)
        assert [x["ack"] for x in r["results"]] == ["flushed"] * 6, r
        ids = [x["id"] for x in r["results"]]
        assert ids == sorted(ids), ids
        assert time.monotonic() - t0 >= 0.9, "answered before the hung insert finished"
        assert d.stop() == 0, d.read_log()


def test_backend_failure_502():
    with start({"m": mock_backend("m", mode="permanent")}) as d:
        st, _, r = post(d, "/v1/signals?ack=flushed", json.dumps([signal_obj(), signal_obj(ip="192.0.2.9")]))
        assert st == 502 and not r["ok"] and r["refused"] == 2, (st, r)
        assert all(not x["ok"] and x["ack"] == "flushed" and x["error"] for x in r["results"]), r
        # queued: accepted before the backend fails it
        st, _, r = post(d, "/v1/signals", json.dumps(signal_obj()))
        assert st == 200, (st, r)
        assert metric(d, 'spillway_http_responses_total{code="5xx"}') == 1


def mapped_libraries(pid):
    with open("/proc/%d/maps" % pid) as f:
        return {os.path.basename(line.split()[-1]) for line in f if "/" in line}


def test_library_loaded_only_when_configured():
    """libmicrohttpd (and GnuTLS with it) is in the daemon only when an HTTP
    ingest is configured: ~2 MiB of resident memory otherwise (issue 17)."""
    d = Daemon({"sqlite": SQLITE})
    with d:
        d.start()
        libs = mapped_libraries(d.proc.pid)
        assert not any(l.startswith(("libmicrohttpd", "libgnutls")) for l in libs), sorted(libs)
    with start({"sqlite": SQLITE}) as d:
        libs = mapped_libraries(d.proc.pid)
        assert any(l.startswith("libmicrohttpd.so") for l in libs), sorted(libs)
        st, _, r = post(d, "/v1/signals", json.dumps(signal_obj()))
        assert st == 200 and r["accepted"] == 1, (st, r)


if __name__ == "__main__":
    run([test_reply_codes, test_oversized_bodies, test_ndjson_10000_flushed_exactly_once, test_queue_full_503,
         test_healthz_names_failing_backend, test_slow_clients_and_connection_limit, test_unix_socket_peer,
         test_tls_and_reload_renews_certificate, test_crowdsec_alerts, test_token_sources_reload_and_header_limit,
         test_config_errors, test_socket_activation,
         test_parked_then_flushed, test_backend_failure_502, test_library_loaded_only_when_configured])
