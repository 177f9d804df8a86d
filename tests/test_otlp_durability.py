"""Nothing acknowledged is lost: a torn spool tail is cut on open, SIGKILL mid-write and SIGTERM lose no 2xx'd span."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
from hypothesis import given, settings as hsettings, strategies as st

from costwarden.agent.server.otlp_spool import Spool, repair_tail
from tests.test_daemon import APPROVE_POLICY, DaemonProc, get, metric
from tests.test_otlp_receiver import PB, TOKEN, genai, request, span


def lines_of(directory: Path) -> list[dict]:
    out = []
    for f in sorted(directory.glob("spool-*.jsonl")):
        data = f.read_bytes()
        assert not data or data.endswith(b"\n"), f"{f.name} has a torn tail"
        out.extend(json.loads(line) for line in data.splitlines())
    return out


@hsettings(max_examples=30, deadline=None)
@given(st.lists(st.text(max_size=40), min_size=1, max_size=20), st.floats(0, 1))
def test_a_torn_tail_is_cut_back_to_the_last_complete_line(tmp_path_factory, texts, cut_at):
    directory = tmp_path_factory.mktemp("spool")
    now = 1_764_600_000.0
    spool = Spool(directory, 35, clock=lambda: now)
    for t in texts:
        spool.append([{"spanId": t}])
    path = spool.path
    spool.close()
    data = path.read_bytes()
    cut = int(len(data) * cut_at)
    path.write_bytes(data[:cut])
    whole = data[:cut].count(b"\n")  # lines that ended before the cut survive, nothing else

    spool = Spool(directory, 35, clock=lambda: now)
    spool.append([{"spanId": "after"}])
    spool.close()
    assert [r["spanId"] for r in lines_of(directory)] == [*texts[:whole], "after"]


def test_repair_tail_of_a_file_without_any_newline(tmp_path):
    f = tmp_path / "x"
    f.write_bytes(b"x" * 200_000)
    fd = os.open(f, os.O_RDWR)
    try:
        assert repair_tail(fd) == 0
    finally:
        os.close(fd)
    assert f.read_bytes() == b""


KILLED_MID_WRITE = textwrap.dedent("""
    import os, sys, time
    from costwarden.agent.server.otlp_spool import Spool
    spool = Spool(sys.argv[1], 35)
    spool.append([{"spanId": f"acked-{i}"} for i in range(100)])
    print("acked", flush=True)
    real_write = os.write
    def half(fd, data):
        n = real_write(fd, bytes(data[: len(data) // 2]))
        print("mid-write", flush=True)
        time.sleep(60)
        return n
    os.write = half
    spool.append([{"spanId": f"never-acked-{i}", "pad": "x" * 100} for i in range(100)])
    print("acked again", flush=True)
""")


def test_sigkill_mid_write_leaves_only_a_torn_tail(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", KILLED_MID_WRITE, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "acked"
        assert proc.stdout.readline().strip() == "mid-write"
    finally:
        proc.kill()
        proc.wait(10)
    (path,) = tmp_path.glob("spool-*.jsonl")
    assert not path.read_bytes().endswith(b"\n")  # the kill did tear the last line
    Spool(tmp_path, 35).close()
    ids = [r["spanId"] for r in lines_of(tmp_path)]
    assert ids[:100] == [f"acked-{i}" for i in range(100)]
    # whole lines of the unacknowledged batch may remain: the sender retries it, readers count a span id once
    assert all(i.startswith("never-acked-") for i in ids[100:])


class Sender:
    """Threads posting 512-span batches with unique span ids; remembers which batches were acknowledged."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/v1/traces"
        self.acked: set[int] = set()
        self.sent: list[int] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.next = 0

    def batch(self, n: int) -> bytes:
        return request([span(n * 512 + i, genai(i)) for i in range(512)])

    def post(self, n: int) -> bool:
        try:
            return httpx.post(self.url, content=self.batch(n), headers=PB, timeout=10).status_code == 200
        except httpx.HTTPError:
            return False

    def run(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                n, self.next = self.next, self.next + 1
                self.sent.append(n)
            if self.post(n):
                with self.lock:
                    self.acked.add(n)


def span_ids(directory: Path) -> set[str]:
    return {r["spanId"] for r in lines_of(directory)}


def expected_ids(batches: set[int]) -> set[str]:
    return {(n * 512 + i + 1).to_bytes(8, "big").hex() for n in batches for i in range(512)}


def test_daemon_sigkill_under_load_then_retry_and_sigterm_lose_nothing(aws, tmp_path):
    otlp = {"otlp": {"enabled": True, "bearer_token": TOKEN}}
    d = DaemonProc(tmp_path, aws.endpoint, dry_run=True, policy=APPROVE_POLICY, extra=otlp)
    d.start()
    spool_dir = d.state / "otlp"
    try:
        sender = Sender(d.port)
        threads = [threading.Thread(target=sender.run) for _ in range(3)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(sender.acked) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        d.proc.send_signal(signal.SIGKILL)  # mid-traffic: some requests are in flight
        d.proc.wait(10)
        sender.stop.set()
        for t in threads:
            t.join(30)
        assert len(sender.acked) >= 6
        assert expected_ids(sender.acked) <= span_ids(spool_dir)  # every 2xx'd span survived the kill

        d.start()  # the sender retries what was not acknowledged
        retry = Sender(d.port)
        unacked = set(sender.sent) - sender.acked
        assert all(retry.post(n) for n in unacked)
        assert expected_ids(set(sender.sent)) <= span_ids(spool_dir)
        text = get(d.port, "/metrics")[1]
        assert (metric(text, 'costwarden_otlp_spans_total{outcome="accepted"}') or 0) == 512 * len(unacked)
        assert (metric(text, 'costwarden_otlp_requests_total{status="200"}') or 0) == len(unacked)

        late = Sender(d.port)
        late.next = max(sender.sent) + 1
        assert late.post(late.next)
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(90) == 0
        assert expected_ids({late.next}) <= span_ids(spool_dir)
    finally:
        d.stop()
