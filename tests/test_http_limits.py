"""The public endpoint under load and abuse: the real uvicorn server on 127.0.0.1, real sockets.

Bounded in count and time: 200 concurrent clicks, 100 slow-loris connections, 10 oversized
bodies of 100 MB each, a handful of malformed requests.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from costwarden.agent.server.http import HttpServer, Limits, Response
from costwarden.agent.server.metrics import ProcessCounters, render
from costwarden.agent.server.slack_http import InteractionHandler
from tests.fakes.slack import interaction, sign
from tests.test_approvals import ALICE, BOB, SECRET, refusals, slack, world  # noqa: F401 - fixtures
from costwarden.tools.slack import APPROVE

URL = "/slack/interactions"


def post(port: int, body: bytes, headers: dict[str, str], timeout: float = 30) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{URL}", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def raw(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send bytes as they are; the server's answer until it closes (or the first 64 KB)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while len(out) < 65536:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out and (b"Connection: close" in out or b"connection: close" in out):
                continue
        return out


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def bare():
    """A server with /healthz and a 1 s header deadline: cheap enough for the connection tests."""
    counters = ProcessCounters()
    server = HttpServer("127.0.0.1", 0, {("GET", "/healthz"): lambda _h, _b: Response(200, {"status": "ok"}),
                                         ("POST", URL): lambda _h, b: Response(200, {"bytes": len(b)})},
                        limits=Limits(header_timeout_s=1.0, body_timeout_s=1.0), counters=counters)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def signed(tmp_path, no_costwarden_env):
    """The real interactions route on an empty store: for requests that must never reach an action."""
    from costwarden.agent.config import Settings, SlackSettings
    from costwarden.state.store import Store
    from tests.fakes.slack import TEAM_ID

    settings = Settings(state_dir=tmp_path / "state", slack=SlackSettings(signing_secret=SECRET, team_id=TEAM_ID))
    store = Store(settings.db_url)
    handler = InteractionHandler(settings, store, lambda: {}, background=False)
    server = HttpServer("127.0.0.1", 0, {("POST", URL): handler}, counters=handler.counters)
    server.start()
    yield {"server": server, "store": store, "actions": {"llm-finetune-01": "act_does_not_exist"}}
    server.stop()
    store.close()


def test_200_concurrent_signed_clicks_execute_exactly_once(world, aws):
    store, target, port = world["store"], world["actions"]["llm-finetune-01"], world["server"].port

    def one(i: int) -> int:
        body = interaction(ALICE if i % 2 else BOB, APPROVE, target)
        return post(port, body, sign(body, SECRET), timeout=60)[0]

    started = time.monotonic()
    with ThreadPoolExecutor(200) as pool:
        statuses = list(pool.map(one, range(200)))
    assert statuses == [200] * 200  # every request answered
    assert aws.calls.count("StopInstances") == 1
    assert store.get_action(target).status == "done"
    assert time.monotonic() - started < 45


def test_slow_loris_connections_do_not_starve_healthz_and_are_cut_off(bare):
    slow = []
    try:
        for _ in range(100):
            s = socket.create_connection(("127.0.0.1", bare.port), timeout=5)
            s.sendall(b"POST /slack/interactions HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # and never the rest
            slow.append(s)
        t0 = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{bare.port}/healthz", timeout=1) as r:
            assert r.status == 200
        assert time.monotonic() - t0 < 1
        time.sleep(1.5)  # past the header deadline: the server has closed them
        for s in slow:
            s.settimeout(2)
            assert s.recv(1024) == b""
    finally:
        for s in slow:
            s.close()
    assert bare.counters.snapshot()["http_refusals"]["header_timeout"] == 100


def test_headers_sent_in_pieces_past_the_limit_are_refused(bare):
    with socket.create_connection(("127.0.0.1", bare.port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        for _ in range(40):
            try:
                s.sendall(b"X-Pad: " + b"a" * 1000 + b"\r\n")
            except OSError:
                break
            time.sleep(0.002)
        assert 400 <= status_of(s.recv(4096)) < 500


def test_a_body_that_trickles_in_is_408(bare):
    with socket.create_connection(("127.0.0.1", bare.port), timeout=5) as s:
        s.sendall(b"POST /slack/interactions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        assert status_of(s.recv(4096)) == 408


def _flood(port: int, chunked: bool, total: int = 100 << 20) -> int | None:
    """Push up to `total` bytes at the server; its status line, or None if it hung up first."""
    piece = b"x" * (1 << 20)
    head = (b"Transfer-Encoding: chunked\r\n" if chunked else b"Content-Length: %d\r\n" % total)
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(b"POST /slack/interactions HTTP/1.1\r\nHost: x\r\n" + head
                  + b"Content-Type: application/x-www-form-urlencoded\r\n\r\n")
        sent = 0
        try:
            while sent < total:
                s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                sent += len(piece)
        except OSError:
            pass  # the server closed after its 413: what we want
        try:
            answer = s.recv(4096)
        except OSError:
            return None
        return status_of(answer) if answer else None
    finally:
        s.close()


def test_oversized_bodies_are_refused_while_reading_and_memory_stays_flat(signed):
    world = signed
    port = world["server"].port
    base, peak, done = rss_bytes(), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(10) as pool:
            answers = list(pool.map(lambda i: _flood(port, chunked=bool(i % 2)), range(10)))
    finally:
        done.set()
        sampler.join()
    assert set(answers) <= {413, None} and answers.count(413) >= 5  # refused, never read to the end
    assert peak[0] - base < 64 << 20, f"RSS grew by {(peak[0] - base) >> 20} MB"
    print(f"10 x 100 MB bodies: RSS peak {(peak[0] - base) / 2**20:.1f} MB above {base / 2**20:.0f} MB")
    assert time.monotonic() - started < 20
    counted = world["server"].counters.snapshot()["http_refusals"]
    assert counted["body_too_large"] == 10
    assert world["store"].decisions() == []  # nothing reached the database


@pytest.mark.parametrize("request_bytes", [
    b"POST /slack/interactions HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"POST /slack/interactions HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"POST /slack/interactions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
    b"GARBAGE\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n",
], ids=["negative-length", "non-numeric-length", "conflicting-lengths", "garbage", "huge-header"])
def test_malformed_requests_are_4xx_and_the_server_lives_on(bare, request_bytes):
    assert 400 <= status_of(raw(bare.port, request_bytes)) < 500
    assert sum(bare.counters.snapshot()["http_refusals"].values()) == 1
    with urllib.request.urlopen(f"http://127.0.0.1:{bare.port}/healthz", timeout=2) as r:
        assert r.status == 200


def test_unsigned_and_malformed_slack_requests_are_4xx_counted_and_not_written(signed, caplog):
    world = signed
    store, target, port = world["store"], world["actions"]["llm-finetune-01"], world["server"].port
    body = interaction(ALICE, APPROVE, target)
    json_headers = {**sign(body, SECRET), "Content-Type": "application/json"}
    assert post(port, body, json_headers)[0] == 415  # a signed click, but not as Slack sends it
    bad_utf8 = body + b"%ff\xff\xfe"
    assert post(port, bad_utf8, sign(bad_utf8, SECRET))[0] == 400
    huge_ts = {**sign(body, SECRET), "X-Slack-Request-Timestamp": "9" * 400}
    assert post(port, body, huge_ts)[0] == 401
    for _ in range(30):  # a flood of unsigned clicks
        assert post(port, body, {"Content-Type": "application/x-www-form-urlencoded"})[0] == 401
    assert store.decisions() == []
    counted = world["server"].counters.snapshot()["http_refusals"]
    assert counted == {"content_type": 1, "bad_encoding": 1, "bad_timestamp": 1, "missing_signature": 30}
    logged = [r for r in caplog.records if r.getMessage() == "slack interaction refused"]
    assert 3 <= len(logged) <= 15  # the first few of each reason, not one line per request
    text = render(store, world["server"].counters, {}).decode()
    assert 'costwarden_http_refusals_total{reason="missing_signature"} 30.0' in text


def test_a_signed_click_from_another_workspace_or_app_changes_nothing(world, aws):
    store, target, port = world["store"], world["actions"]["llm-finetune-01"], world["server"].port
    body = interaction(ALICE, APPROVE, target, team="T0SOMEONEELSE")
    status, answer = post(port, body, sign(body, SECRET))
    assert status == 403 and "workspace" in answer["error"]
    assert store.get_action(target).status == "awaiting_approval" and "StopInstances" not in aws.calls
    assert [d for d in store.decisions(action_id=target) if d.stage == "approval"] == []

    pinned = world["settings"].model_copy(update={"slack": world["settings"].slack.model_copy(
        update={"api_app_id": "A0COSTWARDEN"})})
    handler = InteractionHandler(pinned, store, lambda: {}, background=False)
    other_app = interaction(ALICE, APPROVE, target, app="A0IMPOSTOR")
    assert handler(_lower(sign(other_app, SECRET)), other_app).status == 403
    assert handler.counters.snapshot()["http_refusals"] == {"wrong_app": 1}
    assert world["server"].counters.snapshot()["http_refusals"] == {"wrong_workspace": 1}


def _lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def test_socket_mode_clicks_obey_the_pins_too(signed):
    from costwarden.agent.server.slack_http import Interactions
    from tests.fakes.slack import block_actions

    store = signed["store"]
    settings = signed["server"].routes[("POST", URL)].settings
    interactions = Interactions(settings, store, lambda: {}, background=False)
    foreign = block_actions(ALICE, APPROVE, "act_x")
    foreign["team"]["id"] = "T0SOMEONEELSE"
    assert interactions.handle(foreign, transport="socket").status == 403
    assert store.decisions() == [] and interactions.counters.snapshot()["http_refusals"] == {"wrong_workspace": 1}
    assert interactions.handle(block_actions(ALICE, APPROVE, "act_x"), transport="socket").status == 404  # ours


def test_a_flood_of_garbage_logs_a_few_lines_not_one_each(bare, caplog):
    for _ in range(20):
        assert status_of(raw(bare.port, b"GARBAGE\r\n\r\n")) == 400
    lines = [r for r in caplog.records if r.getMessage() in ("Invalid HTTP request received.", "http request refused")]
    assert 1 <= len(lines) <= 10  # 5 a minute for each of the two messages
    assert bare.counters.snapshot()["http_refusals"] == {"malformed_request": 20}
