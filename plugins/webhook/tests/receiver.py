#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A scriptable HTTP(S) receiver for webhook tests (Python 3 stdlib only).

Listens on 127.0.0.1 (a TCP port, 0 = any free one) or on a unix socket,
optionally with TLS (and optionally requiring a client certificate), answers
every request according to a JSON "plan", and records every request as one
JSON line in a file, flushed before the answer is sent. When it is listening
it prints the port number (TCP) or "ready" (unix socket) on stdout. It exits
on SIGTERM or SIGINT (and, with --exit-on-stdin-eof, when stdin closes, so a
test that dies takes its receiver with it). SIGHUP re-reads --plan-file and
restarts the request count at 1.

The plan (--plan JSON or --plan-file FILE):

    {
      "responses": [ RESPONSE, ... ],  # for requests 1, 2, 3 ... in order
      "default":   RESPONSE            # for every request after those
    }

A bare list is taken as "responses". RESPONSE is an object:

    status        HTTP status (default 200)
    body          response body (default "ok")
    headers       {name: value} extra response headers
    retry_after   value of a Retry-After header (seconds or an HTTP date)
    delay         seconds to wait before answering
    hang          true: never answer; the connection stays open until the
                  client gives up or the receiver stops
    drop          true: close the connection without answering
    close         true: answer with "Connection: close" and close

Each record line:

    {"n": 1, "time": 1700000000.123, "method": "POST", "path": "/hook",
     "headers": {"Content-Type": "application/json", ...},
     "body": "...", "peer": "127.0.0.1:40112", "tls": false,
     "client_cert": null, "response": 200}

where "peer" is the client's address and port ("unix" on a unix socket; the
same peer on successive requests means the connection was kept alive),
"client_cert" the common name of a verified client certificate, and
"response" the status sent, or "hang" / "drop".
"""

import argparse
import http.server
import json
import os
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time

stopping = threading.Event()


class State:
    def __init__(self, plan, plan_file, record, verbose):
        self.lock = threading.Lock()
        self.plan = plan
        self.plan_file = plan_file
        self.count = 0
        self.record = open(record, "a", encoding="utf-8") if record else None
        self.verbose = verbose

    def next_response(self):
        with self.lock:
            self.count += 1
            n = self.count
            responses = self.plan.get("responses", [])
            if n <= len(responses):
                spec = responses[n - 1]
            else:
                spec = self.plan.get("default", {})
            return n, dict(spec or {})

    def write(self, entry):
        if not self.record:
            return
        line = json.dumps(entry, ensure_ascii=False)
        with self.lock:
            self.record.write(line + "\n")
            self.record.flush()

    def reload(self):
        if not self.plan_file:
            return
        plan = load_plan(None, self.plan_file)
        with self.lock:
            self.plan = plan
            self.count = 0


def load_plan(text, path):
    if path:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    if not text:
        return {}
    plan = json.loads(text)
    if isinstance(plan, list):
        plan = {"responses": plan}
    if not isinstance(plan, dict):
        raise ValueError("the plan must be a JSON object or list")
    return plan


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real endpoint
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stall
    def version_string(self):
        return "spillway-test-receiver"

    def log_message(self, format, *args):
        if self.server.state.verbose:
            sys.stderr.write("receiver: " + (format % args) + "\n")

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def handle_any(self):
        state = self.server.state
        body = self.read_body()
        n, spec = state.next_response()
        if spec.get("hang"):
            outcome = "hang"
        elif spec.get("drop"):
            outcome = "drop"
        else:
            outcome = int(spec.get("status", 200))
        headers = {}
        for name, value in self.headers.items():
            headers[name] = headers[name] + ", " + value if name in headers else value
        client_cert = None
        if isinstance(self.connection, ssl.SSLSocket):
            cert = self.connection.getpeercert()
            if cert:
                client_cert = dict(x[0] for x in cert.get("subject", ())).get("commonName")
        state.write({
            "n": n,
            "time": time.time(),
            "method": self.command,
            "path": self.path,
            "headers": headers,
            "body": body.decode("utf-8", errors="replace"),
            "peer": "%s:%d" % self.client_address[:2] if isinstance(self.client_address, tuple) else "unix",
            "tls": isinstance(self.connection, ssl.SSLSocket),
            "client_cert": client_cert,
            "response": outcome,
        })

        if spec.get("delay"):
            stopping.wait(float(spec["delay"]))
        if outcome == "hang":
            stopping.wait()
            self.close_connection = True
            return
        if outcome == "drop":
            self.close_connection = True
            return
        payload = spec.get("body", "ok").encode("utf-8")
        self.send_response(outcome)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        if "retry_after" in spec:
            self.send_header("Retry-After", str(spec["retry_after"]))
        for name, value in (spec.get("headers") or {}).items():
            self.send_header(name, str(value))
        if spec.get("close"):
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = handle_any


class UnixHandler(Handler):
    disable_nagle_algorithm = False  # TCP_NODELAY does not apply to unix sockets

    def address_string(self):
        return "unix"


class TCPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        if self.state.verbose:
            sys.stderr.write("receiver: error with %r: %r\n" % (client_address, sys.exc_info()[1]))


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if self.state.verbose:
            sys.stderr.write("receiver: error: %r\n" % (sys.exc_info()[1],))


def main():
    ap = argparse.ArgumentParser(description="Scriptable HTTP(S) receiver for webhook tests.")
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free port, printed)")
    where.add_argument("--unix", metavar="PATH", help="listen on a unix stream socket instead")
    ap.add_argument("--cert", help="TLS: server certificate chain (PEM)")
    ap.add_argument("--key", help="TLS: server private key (PEM)")
    ap.add_argument("--client-ca", help="TLS: require a client certificate signed by this CA (PEM)")
    ap.add_argument("--plan", help="response plan as JSON text")
    ap.add_argument("--plan-file", help="response plan in a JSON file (re-read on SIGHUP)")
    ap.add_argument("--record", help="append every request as a JSON line to this file")
    ap.add_argument("--exit-on-stdin-eof", action="store_true", help="exit when stdin is closed")
    ap.add_argument("--verbose", action="store_true", help="log requests and errors to stderr")
    args = ap.parse_args()

    try:
        plan = load_plan(args.plan, args.plan_file)
    except (OSError, ValueError) as e:
        sys.stderr.write("receiver: bad plan: %s\n" % e)
        return 2
    state = State(plan, args.plan_file, args.record, args.verbose)

    if args.unix:
        try:
            os.unlink(args.unix)
        except FileNotFoundError:
            pass
        server = UnixServer(args.unix, UnixHandler)
    else:
        server = TCPServer(("127.0.0.1", args.port), Handler)
    server.state = state

    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        if args.client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(args.client_ca)
        # handshake in the connection's own thread, not in accept()
        server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)

    def stop(signum, frame):
        stopping.set()

    def reload(signum, frame):
        state.reload()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)

    if args.exit_on_stdin_eof:
        def watch_stdin():
            try:
                # the raw fd: a buffered reader's lock would stall shutdown
                while os.read(0, 4096):
                    pass
            except OSError:
                pass
            stopping.set()
        threading.Thread(target=watch_stdin, daemon=True).start()

    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    print("ready" if args.unix else server.server_address[1], flush=True)

    while not stopping.wait(0.05):
        pass
    server.shutdown()
    server.server_close()
    if args.unix:
        try:
            os.unlink(args.unix)
        except OSError:
            pass
    if state.record:
        state.record.close()
    sys.stdout.flush()
    # connection threads may still hang on purpose: do not wait for them
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
