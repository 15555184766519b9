# SPDX-License-Identifier: MIT
"""The disk spool (durability: disk, issue 12): a `queued` acknowledgement
means the signal is kept — across kill -9, a stop with the backend down, a
torn spool tail, a full disk — and is delivered exactly once or, for at most
the batch in flight at a crash, twice with the same signal id.

Short mode (the test command): 20,000 signals and 10 kills -9.
SPW_SPOOL_LONG=1: 50,000 signals and 20 kills.
"""
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

from spwtest import Daemon, MOCK, SLOW, SOURCE_ROOT, SkipTest, run, signal_obj, wait_for

RECEIVER = os.path.join(SOURCE_ROOT, "plugins", "webhook", "tests", "receiver.py")
LONG = bool(os.environ.get("SPW_SPOOL_LONG"))


def recorded(path):
    """Lines the mock committed, (id, scenario, target); a line the mock is
    still writing (no newline yet) is left for the next look."""
    try:
        with open(path) as f:
            data = f.read()
    except FileNotFoundError:
        return []
    out = []
    for line in data.split("\n")[:-1]:
        parts = line.split()
        if len(parts) == 3 and parts[0].isdigit():
            out.append((int(parts[0]), parts[1], parts[2]))
    return out


def mock_disk(name, record, mode="ok", queue=None, **config):
    lines = ["name: %s" % name, "path: %s" % MOCK, "durability: disk"]
    for k, v in (queue or {}).items():
        lines.append("%s: %s" % (k, v))
    lines += ["config:", "  record: %s" % record, "  mode: %s" % mode]
    for k, v in config.items():
        lines.append("  %s: %s" % (k, v))
    return "\n".join(lines) + "\n"


MAIN = "queue:\n  flush_interval: 50ms\n  retry_backoff: 50ms\n  retry_backoff_max: 200ms\ndrain_timeout: 1s\n"


def send_all(d, objs, window=64):
    """Pipelined: returns the replies in order (None for those a broken
    connection left unanswered)."""
    c = d.client()
    replies = []
    sent = 0
    try:
        while len(replies) < len(objs):
            while sent < len(objs) and sent - len(replies) < window:
                c.send(objs[sent])
                sent += 1
            replies.append(c.readline())
    finally:
        c.close()
    return replies


def spool_dir(d, name):
    return os.path.join(d.state_dir, "spool", name)


def test_queued_ack_after_spool_write_and_segments_removed():
    with Daemon({}) as d:
        rec = d.path("rec.log")
        d.write_config({"m": mock_disk("m", rec)}, main=MAIN)
        d.start()
        n = 2000
        replies = send_all(d, [signal_obj(scenario="s%d" % i) for i in range(n)])
        assert all(r["ok"] and r["ack"] == "queued" for r in replies), [r for r in replies if not r["ok"]][:3]
        ids = [r["id"] for r in replies]
        wait_for(lambda: len(recorded(rec)) >= n, 20 * SLOW, "all signals committed")
        got = [x[0] for x in recorded(rec)]
        assert got == ids, "order or content differs"
        wait_for(lambda: d.backend_status("m")["spool"]["pending"] == 0, 10, "spool pending back to 0")
        d.stop()
        sd = spool_dir(d, "m")
        assert os.path.exists(os.path.join(sd, "checkpoint")), os.listdir(sd)
        # everything committed: a restart replays nothing
        d.start()
        time.sleep(0.5)
        d.stop()
        assert len(recorded(rec)) == n, "a committed signal was delivered again"


def test_flushed_acks_through_a_small_memory_window():
    # queue_size 4: most signals go through the disk and are read back; a
    # producer waiting for `flushed` still gets its answer, in order
    with Daemon({}) as d:
        rec = d.path("rec.log")
        d.write_config({"m": mock_disk("m", rec, queue={"queue_size": 4})}, main=MAIN)
        d.start()
        n = 500
        replies = send_all(d, [{"signal": signal_obj(scenario="f%d" % i), "ack": "flushed"} for i in range(n)], window=200)
        assert all(r["ok"] and r["ack"] == "flushed" for r in replies), [r for r in replies if not r["ok"]][:2]
        assert [x[0] for x in recorded(rec)] == [r["id"] for r in replies]
        d.stop()


def test_reloads_changing_a_disk_backend_lose_nothing():
    # a changed backend starts beside the old one, which drains: both share
    # the spool, the new one consumes (signals the old one had not committed
    # are read again: duplicates, never losses)
    with Daemon({}) as d:
        rec = d.path("rec.log")
        d.write_config({"m": mock_disk("m", rec, delay="200us")}, main=MAIN)
        d.start()
        n, reloads = 6000, 5
        objs = [signal_obj(scenario="r%d" % i) for i in range(n)]
        c = d.client()
        acked, inflight, i, done_reloads = [], 0, 0, 0
        while i < n or inflight:
            while i < n and inflight < 64:
                c.send(objs[i])
                i += 1
                inflight += 1
            r = c.readline()
            inflight -= 1
            assert r["ok"], r
            acked.append(r["id"])
            if done_reloads < reloads and len(acked) >= (done_reloads + 1) * n // (reloads + 1):
                done_reloads += 1
                d.write_config({"m": mock_disk("m", rec, delay="%dus" % (200 + done_reloads))}, main=MAIN)
                d.signal(signal.SIGHUP)
        c.close()
        wait_for(lambda: set(acked) <= set(x[0] for x in recorded(rec)), 60 * SLOW, "every acked signal", interval=0.2)
        got = [x[0] for x in recorded(rec)]
        dup = len(got) - len(set(got))
        print("# %d reloads during %d signals: acked %d, delivered %d, duplicated %d" % (done_reloads, n, len(acked), len(got), dup))
        assert done_reloads == reloads
        assert dup <= reloads * 1000, dup
        d.stop()


def test_sigterm_with_backend_down_loses_nothing():
    with Daemon({}) as d:
        rec = d.path("rec.log")
        d.write_config({"m": mock_disk("m", rec, mode="transient", fail_count=0)}, main=MAIN)
        d.start()
        n = 300
        replies = send_all(d, [signal_obj(scenario="s%d" % i) for i in range(n)])
        assert all(r["ok"] for r in replies)
        ids = [r["id"] for r in replies]
        time.sleep(0.3)
        assert d.backend_status("m")["spool"]["pending"] == n
        assert d.stop() == 0
        log = d.read_log()
        assert "%d undelivered" % n in log, log[-2000:]
        assert recorded(rec) == []
        # the backend is back: everything is delivered, in order, once
        d.write_config({"m": mock_disk("m", rec)}, main=MAIN)
        d.start()
        wait_for(lambda: len(recorded(rec)) >= n, 20 * SLOW, "replay")
        time.sleep(0.3)
        assert [x[0] for x in recorded(rec)] == ids
        assert "replaying %d signals" % n in d.read_log()
        d.stop()


def test_transient_failures_retry_past_max_retry():
    with Daemon({}) as d:
        rec = d.path("rec.log")
        # fails 30 times: far more than max_retry (2), with a spool it keeps trying
        d.write_config({"m": mock_disk("m", rec, mode="transient", queue={"max_retry": 2}, fail_count=30)}, main=MAIN)
        d.start()
        r = d.client().request(signal_obj())
        assert r["ok"]
        wait_for(lambda: len(recorded(rec)) == 1, 30 * SLOW, "delivery after 30 transient failures")
        assert d.backend_status("m")["failed"] == 0
        d.stop()


def test_permanent_rejection_goes_to_dead_letter():
    with Daemon({}) as d:
        rec = d.path("rec.log")
        d.write_config({"m": mock_disk("m", rec, mode="permanent")}, main=MAIN)
        d.start()
        replies = send_all(d, [signal_obj(scenario="dl%d" % i) for i in range(5)])
        assert all(r["ok"] for r in replies)
        path = os.path.join(spool_dir(d, "m"), "dead-letter")
        wait_for(lambda: os.path.exists(path) and len(open(path).readlines()) == 5, 10, "dead letters")
        entries = [json.loads(l) for l in open(path)]
        assert [e["id"] for e in entries] == [r["id"] for r in replies]
        assert all("rejected" in e["reason"] for e in entries), entries[0]
        assert json.loads(entries[0]["line"])["scenario"] == "dl0"
        wait_for(lambda: d.backend_status("m")["spool"]["pending"] == 0, 10, "dead letters committed")
        # the admin ops: list, retry (queued again with their ids: rejected
        # again here), drop
        lst = d.admin_request({"op": "deadletter.list", "backend": "m"})
        assert lst["ok"] and lst["total"] == 5 and lst["entries"][0]["id"] == replies[0]["id"], lst
        r = d.admin_request({"op": "deadletter.retry", "backend": "m", "ids": [replies[0]["id"], replies[1]["id"]]})
        assert r == {"ok": True, "backend": "m", "requeued": 2}, r
        wait_for(lambda: d.admin_request({"op": "deadletter.list", "backend": "m"})["total"] == 5, 10, "rejected again")
        ids = [e["id"] for e in d.admin_request({"op": "deadletter.list", "backend": "m"})["entries"]]
        assert sorted(ids) == sorted(x["id"] for x in replies), ids
        r = d.admin_request({"op": "deadletter.drop", "backend": "m", "all": True})
        assert r == {"ok": True, "backend": "m", "dropped": 5}, r
        assert d.admin_request({"op": "deadletter.list", "backend": "m"})["total"] == 0
        assert not d.admin_request({"op": "deadletter.drop", "backend": "m"})["ok"]  # ids or all
        d.stop()


def test_corrupt_tail_is_truncated_and_reported():
    with Daemon({}) as d:
        rec = d.path("rec.log")
        d.write_config({"m": mock_disk("m", rec, mode="transient", fail_count=0)}, main=MAIN)
        d.start()
        n = 100
        replies = send_all(d, [signal_obj(scenario="c%d" % i) for i in range(n)])
        ids = [r["id"] for r in replies]
        d.proc.kill()
        d.proc.wait()
        os.unlink(d.ingest), os.unlink(d.admin)
        sd = spool_dir(d, "m")
        segs = sorted(f for f in os.listdir(sd) if f.endswith(".seg") and os.path.getsize(os.path.join(sd, f)) > 0)
        # a torn write: half a header and garbage after the last record
        with open(os.path.join(sd, segs[-1]), "ab") as f:
            f.write(b"\x40\x00\x00\x00\x12\x34" + os.urandom(50))
        d.write_config({"m": mock_disk("m", rec)}, main=MAIN)
        d.start()
        wait_for(lambda: len(recorded(rec)) >= n, 20 * SLOW, "replay after truncation")
        assert [x[0] for x in recorded(rec)] == ids
        log = d.read_log()
        assert "torn or corrupt tail: 56 bytes cut" in log, log[-3000:]
        d.stop()
        # a record damaged in the middle of the log: cut there, the rest of
        # that segment is lost, reported
        d.write_config({"m": mock_disk("m", rec, mode="transient", fail_count=0)}, main=MAIN)
        d.start()
        replies = send_all(d, [signal_obj(scenario="x%d" % i) for i in range(10)])
        d.proc.kill()
        d.proc.wait()
        os.unlink(d.ingest), os.unlink(d.admin)
        segs = sorted(f for f in os.listdir(sd) if f.endswith(".seg") and os.path.getsize(os.path.join(sd, f)) > 0)
        p = os.path.join(sd, segs[-1])
        size = os.path.getsize(p)
        with open(p, "r+b") as f:
            f.seek(size - 5)
            f.write(b"XXXXX")  # inside the last record's line: its CRC fails
        before = len(recorded(rec))
        d.write_config({"m": mock_disk("m", rec)}, main=MAIN)
        d.start()
        wait_for(lambda: len(recorded(rec)) >= before + 9, 20 * SLOW, "the 9 intact records")
        time.sleep(0.3)
        assert [x[0] for x in recorded(rec)[before:]] == [r["id"] for r in replies[:9]]
        d.stop()


def fill_spool_then_replay(d, rec, queue, refusal):
    """Sends 400 large signals to a backend that keeps failing until the spool
    refuses some with `refusal`, then restarts on a working backend and checks
    that exactly the acknowledged ones are delivered, in order."""
    d.write_config({"m": mock_disk("m", rec, mode="transient", queue=queue, fail_count=0)}, main=MAIN)
    d.start()
    big = "x" * 4000
    replies = send_all(d, [signal_obj(scenario="f%d" % i, Alert_message=big) for i in range(400)])
    ok = [r for r in replies if r["ok"]]
    refused = [r for r in replies if not r["ok"]]
    assert ok and refused, (len(ok), len(refused))
    assert refusal in refused[0]["error"], refused[0]
    d.stop()
    d.write_config({"m": mock_disk("m", rec)}, main=MAIN)
    d.start()
    wait_for(lambda: len(recorded(rec)) >= len(ok), 20 * SLOW, "the acknowledged ones")
    time.sleep(0.3)
    assert [x[0] for x in recorded(rec)] == [r["id"] for r in ok]
    d.stop()


def test_full_spool_refuses_with_errors():
    with Daemon({}) as d:
        rec = d.path("rec.log")
        fill_spool_then_replay(d, rec, {"spool_max_size": "1M", "on_full": "drop_newest"}, "spool is full")


def test_disk_full_on_the_spool_filesystem():
    if os.geteuid() != 0:
        raise SkipTest("needs root to mount a small tmpfs")
    with Daemon({}) as d:
        rec = d.path("rec.log")
        sd = os.path.join(d.state_dir, "spool")
        os.makedirs(sd)
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", sd], capture_output=True).returncode != 0:
            raise SkipTest("cannot mount a tmpfs here")
        try:
            fill_spool_then_replay(d, rec, None, "No space left on device")
        finally:
            if d.proc and d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait()
            subprocess.run(["umount", "-l", sd])


class Receiver:
    def __init__(self, d, port):
        self.record = d.path("requests-%d.jsonl" % time.monotonic_ns())
        args = [sys.executable, RECEIVER, "--port", str(port), "--record", self.record, "--exit-on-stdin-eof"]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def delivered_ids(d):
    out = []
    for f in sorted(os.listdir(d.dir)):
        if f.startswith("requests-"):
            with open(os.path.join(d.dir, f)) as fh:
                for line in fh:
                    req = json.loads(line)
                    if req.get("response") != 200:
                        continue
                    body = json.loads(req["body"])
                    hdr = req["headers"].get("X-Spillway-Signal-Id")
                    ids = [s["spillway_signal_id"] for s in body]
                    assert hdr == ",".join(str(i) for i in ids), (hdr, ids)
                    out += ids
    return out


def test_kill9_during_a_stream_loses_no_acknowledged_signal():
    n = 50000 if LONG else 20000
    kills = 20 if LONG else 10
    batch = 100
    rnd = random.Random(int(os.environ.get("SPW_SEED", "12")))
    with Daemon({}) as d:
        port = free_port()
        hook = ("name: hook\npath: webhook\ndurability: disk\nflush_batch: %d\n"
                "config:\n  url: http://127.0.0.1:%d/hook\n  group_threshold: %d\n  group_wait: 20ms\n"
                "  timeout: 2s\n  connect_timeout: 1s\n" % (batch, port, batch))
        d.write_config({"hook": hook}, main=MAIN)
        rx = Receiver(d, port)
        d.start()
        kill_at = sorted(rnd.sample(range(n // 20, n - n // 20), kills))
        down_from, down_to = kill_at[kills // 3], kill_at[2 * kills // 3]  # the receiver is down between
        acked, refused, unanswered = [], 0, 0
        objs = [signal_obj(scenario="k%d" % i) for i in range(n)]
        i = 0
        c = d.client()
        inflight = 0
        window = 64
        t0 = time.monotonic()
        while i < n or inflight:
            if kill_at and i >= kill_at[0] and inflight:
                kill_at.pop(0)
                d.proc.kill()
                d.proc.wait()
                c.close()
                unanswered += inflight
                inflight = 0
                if rx and down_from <= i < down_to:
                    rx.stop()
                    rx = None
                if rx is None and i >= down_to:
                    rx = Receiver(d, port)
                for sock in (d.ingest, d.admin):  # left behind by the kill
                    os.unlink(sock)
                d.start()
                c = d.client()
                continue
            while i < n and inflight < window:
                c.send(objs[i])
                i += 1
                inflight += 1
            r = c.readline()
            inflight -= 1
            if r["ok"]:
                acked.append(r["id"])
            else:
                refused += 1
        c.close()
        if rx is None:
            rx = Receiver(d, port)
        stream_s = time.monotonic() - t0
        want = set(acked)

        def all_there():
            return want <= set(delivered_ids(d))
        wait_for(all_there, 120 * SLOW, "every acknowledged signal delivered", interval=0.5)
        d.stop()
        rx.stop()
        got = delivered_ids(d)
        lost = len(want - set(got))
        dup = len(got) - len(set(got))
        line = ("kill -9 x%d, %d signals: acked %d, refused %d, unanswered at a kill %d, delivered %d (distinct %d), "
                "lost %d, duplicated %d (bound %d), stream %.1fs" %
                (kills, n, len(acked), refused, unanswered, len(got), len(set(got)), lost, dup, kills * batch, stream_s))
        print("# " + line, flush=True)
        with open(os.environ.get("SPW_SPOOL_REPORT", os.devnull), "a") as f:
            f.write(line + "\n")
        assert lost == 0, line
        assert dup <= kills * batch, line


# ---------------------------------------------------------------- the SQLite file watch

import sqlite3


def sqlite_disk(db, watch="1s"):
    return ("name: bans\npath: sqlite\ndurability: disk\nconfig:\n  db_path: %s\n  watch_interval: %s\n" % (db, watch))


def stored(db):
    try:
        c = sqlite3.connect(db)
        try:
            return c.execute("SELECT count(*) FROM signal_occurences").fetchone()[0]
        finally:
            c.close()
    except sqlite3.Error:
        return -1


def plugin_state(d):
    return d.backend_status("bans").get("plugin_status", {}).get("database", "")


def test_sqlite_deleted_database_keeps_signals():
    with Daemon({}) as d:
        db = d.path("bans.db")
        d.write_config({"bans": sqlite_disk(db)}, main=MAIN)
        d.start()
        assert all(r["ok"] for r in send_all(d, [signal_obj(ip="192.0.2.%d" % (i + 1)) for i in range(20)]))
        wait_for(lambda: stored(db) == 20, 10, "the first 20 stored")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db + suffix):
                os.unlink(db + suffix)
        wait_for(lambda: plugin_state(d).startswith("failed: the database file was deleted"), 5, "the watch to notice")
        replies = send_all(d, [signal_obj(ip="198.51.100.%d" % (i + 1)) for i in range(30)])
        assert all(r["ok"] and r["ack"] == "queued" for r in replies)
        time.sleep(1.0)
        st = d.backend_status("bans")
        assert st["flushed"] == 20, st  # nothing acknowledged as stored into the unlinked file
        assert st["spool"]["pending"] == 30, st
        assert "the database file was deleted" in st.get("last_error", ""), st
        d.stop()
        assert "30 signals not delivered yet; kept in its spool" in d.read_log()
        # the next start makes a new file and delivers what the spool kept
        d.start()
        wait_for(lambda: stored(db) == 30, 10, "the 30 kept signals stored in the new file")
        d.stop()


def test_sqlite_overwritten_database_fails_the_backend():
    with Daemon({}) as d:
        db = d.path("bans.db")
        d.write_config({"bans": sqlite_disk(db)}, main=MAIN)
        d.start()
        assert d.client().request(signal_obj())["ok"]
        wait_for(lambda: stored(db) == 1, 10, "stored")
        with open(db, "r+b") as f:  # same inode, garbage over the header
            f.write(os.urandom(4096))
        wait_for(lambda: "overwritten" in plugin_state(d), 5, "the watch to notice")
        assert d.client().request(signal_obj(ip="192.0.2.99"))["ok"]
        time.sleep(0.5)
        st = d.backend_status("bans")
        assert st["flushed"] == 1 and st["spool"]["pending"] == 1, st
        d.stop()


def test_sqlite_replaced_database_fails_the_backend():
    with Daemon({}) as d:
        db = d.path("bans.db")
        d.write_config({"bans": sqlite_disk(db, watch="0")}, main=MAIN)  # noticed at the next commit
        d.start()
        assert d.client().request(signal_obj())["ok"]
        wait_for(lambda: stored(db) == 1, 10, "stored")
        os.rename(db, db + ".old")
        with open(db, "wb") as f:
            f.write(b"")
        r = d.client().request(signal_obj(ip="192.0.2.98"))
        assert r["ok"]
        wait_for(lambda: plugin_state(d).startswith("failed: the database file was replaced"), 5, "the commit check")
        assert d.backend_status("bans")["flushed"] == 1
        d.stop()


def test_sqlite_unwritable_wal_is_an_init_error_and_a_reload_recovers():
    with Daemon({}) as d:
        db = d.path("bans.db")
        # a second backend keeps the daemon up while this one cannot start
        d.write_config({"bans": sqlite_disk(db), "other": "name: other\npath: %s\n" % MOCK}, main=MAIN)
        d.start()
        assert d.client().request({"signal": signal_obj(), "ack": "flushed"})["ok"]
        d.proc.kill()  # may leave the -wal and -shm files behind
        d.proc.wait()
        os.unlink(d.ingest), os.unlink(d.admin)
        wal = db + "-wal"
        if not os.path.exists(wal):  # SQLite removed it at its last close: an empty one is valid
            open(wal, "wb").close()
        if os.geteuid() == 0:
            if subprocess.run(["chattr", "+i", wal], capture_output=True).returncode != 0:
                raise SkipTest("chattr +i is not supported here (root ignores file modes)")
            undo = ["chattr", "-i", wal]
        else:
            os.chmod(wal, 0o400)
            undo = ["chmod", "0600", wal]
        try:
            d.start()
            st = d.backend_status("bans")
            assert st["state"] == "failed", st
            assert wal in st["error"] and "not writable" in st["error"] and "then reload" in st["error"], st
        finally:
            subprocess.run(undo)
        d.signal(signal.SIGHUP)
        wait_for(lambda: d.backend_status("bans")["state"] == "running", 10, "the reload to start the backend")
        r = d.client().request({"signal": signal_obj(ip="192.0.2.55"), "ack": "flushed"})
        assert r["ok"] and r["ack"] == "flushed", r  # committed by the recovered backend
        d.stop()


if __name__ == "__main__":
    run([
        test_queued_ack_after_spool_write_and_segments_removed,
        test_flushed_acks_through_a_small_memory_window,
        test_sigterm_with_backend_down_loses_nothing,
        test_reloads_changing_a_disk_backend_lose_nothing,
        test_transient_failures_retry_past_max_retry,
        test_permanent_rejection_goes_to_dead_letter,
        test_corrupt_tail_is_truncated_and_reported,
        test_full_spool_refuses_with_errors,
        test_disk_full_on_the_spool_filesystem,
        test_kill9_during_a_stream_loses_no_acknowledged_signal,
        test_sqlite_deleted_database_keeps_signals,
        test_sqlite_overwritten_database_fails_the_backend,
        test_sqlite_replaced_database_fails_the_backend,
        test_sqlite_unwritable_wal_is_an_init_error_and_a_reload_recovers,
    ])
