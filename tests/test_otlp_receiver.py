"""POST /v1/traces on the real HTTP server: protobuf and JSON, gzip, partial success, errors, auth, caps."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from costwarden.agent.config import Settings
from costwarden.agent.server.http import HttpServer
from costwarden.agent.server.otlp import OtlpStartError, otlp_routes
from costwarden.agent.server.otlp_spool import Spool

TOKEN = "t0ken-for-tests"
PB = {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {TOKEN}"}
JS = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}


def kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):
        v = AnyValue(bool_value=value)
    elif isinstance(value, int):
        v = AnyValue(int_value=value)
    elif isinstance(value, float):
        v = AnyValue(double_value=value)
    else:
        v = AnyValue(string_value=str(value))
    return KeyValue(key=key, value=v)


def span(i: int, attrs: dict[str, object], *, error: bool = False, start: int | None = None) -> Span:
    return Span(trace_id=(i + 1).to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"), name="chat",
                start_time_unix_nano=1_764_600_000_000_000_000 + i if start is None else start,
                attributes=[kv(k, v) for k, v in attrs.items()],
                status=Status(code=Status.STATUS_CODE_ERROR if error else Status.STATUS_CODE_OK))


def request(spans: list[Span], resource: dict[str, object] | None = None) -> bytes:
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=Resource(attributes=[kv(k, v) for k, v in (resource or {}).items()]),
        scope_spans=[ScopeSpans(spans=spans)])]).SerializeToString()


def genai(i: int, model: str = "gpt-4o-mini", inp: object = 100, out: object = 20) -> dict[str, object]:
    return {"gen_ai.provider.name": "openai", "gen_ai.request.model": model, "gen_ai.usage.input_tokens": inp,
            "gen_ai.usage.output_tokens": out, "gen_ai.input.messages": f"secret prompt {i}"}


def spooled(state: Path) -> list[dict]:
    return [json.loads(line) for f in sorted((state / "otlp").glob("spool-*.jsonl"))
            for line in f.read_text().splitlines()]


@pytest.fixture
def receiver(tmp_path, no_costwarden_env):
    def start(**otlp: object) -> tuple[str, Settings]:
        settings = Settings(state_dir=tmp_path, otlp={"enabled": True, "bearer_token": TOKEN, **otlp})
        server = HttpServer("127.0.0.1", 0, otlp_routes(settings, "127.0.0.1"))
        server.start()
        servers.append(server)
        return f"http://127.0.0.1:{server.port}/v1/traces", settings

    servers: list[HttpServer] = []
    yield start
    for s in servers:
        s.stop()


def test_protobuf_spans_land_in_the_spool_with_resource_attributes(receiver, tmp_path):
    url, _ = receiver()
    body = request([span(i, {**genai(i), "costwarden.feature": "chat" if i else "search"}) for i in range(3)]
                   + [span(9, {"http.method": "GET"})],  # not a GenAI span: skipped, not rejected
                   resource={"costwarden.tier": "pro", "costwarden.feature": "default", "service.name": "app"})
    r = httpx.post(url, content=body, headers=PB)
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
    resp = ExportTraceServiceResponse.FromString(r.content)
    assert not resp.HasField("partial_success")
    rows = spooled(tmp_path)
    assert [r["spanId"] for r in rows] == [(i + 1).to_bytes(8, "big").hex() for i in range(3)]
    first = rows[0]
    assert first["traceId"] == (1).to_bytes(16, "big").hex()
    assert first["startTimeUnixNano"] == "1764600000000000000"
    assert first["attributes"] == {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
                                   "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 20,
                                   "costwarden.tier": "pro", "costwarden.feature": "search"}
    assert rows[1]["attributes"]["costwarden.feature"] == "chat"  # span attributes win over the resource's
    assert "secret prompt" not in json.dumps(rows)  # only the usage attributes are kept


def test_json_and_gzip_with_partial_success(receiver, tmp_path):
    url, _ = receiver()
    doc = {"resourceSpans": [{"resource": {"attributes": [{"key": "costwarden.tenant",
                                                           "value": {"stringValue": "acme"}}]},
                              "scopeSpans": [{"scope": {"name": "x"}, "spans": [
        {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
         "startTimeUnixNano": "1764600000000000000", "status": {"code": 2},
         "attributes": [{"key": "gen_ai.request.model", "value": {"stringValue": "claude-sonnet-4"}},
                        {"key": "gen_ai.system", "value": {"stringValue": "anthropic"}},
                        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "812"}},
                        {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 40}}]},
        {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203332",
         "startTimeUnixNano": "1764600000000000001",
         "attributes": [{"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "-3"}}]},
        {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "zz",
         "startTimeUnixNano": "1764600000000000002",
         "attributes": [{"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}}]},
    ]}]}]}
    r = httpx.post(url, content=gzip.compress(json.dumps(doc).encode()), headers={**JS, "Content-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    partial = r.json()["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 2
    assert "gen_ai.usage.input_tokens is not a non-negative integer" in partial["errorMessage"]
    (row,) = spooled(tmp_path)
    assert row["spanId"] == "b7ad6b7169203331"
    assert row["attributes"] == {"gen_ai.request.model": "claude-sonnet-4", "gen_ai.system": "anthropic",
                                 "gen_ai.usage.input_tokens": 812, "gen_ai.usage.output_tokens": 40,
                                 "costwarden.tenant": "acme", "error.type": "_OTHER"}

    # the protobuf answer carries the same partial success
    r = httpx.post(url, content=request([span(1, genai(1, inp=-1)), span(2, genai(2))]), headers=PB)
    resp = ExportTraceServiceResponse.FromString(r.content)
    assert resp.partial_success.rejected_spans == 1 and "input_tokens" in resp.partial_success.error_message
    assert len(spooled(tmp_path)) == 2


def test_the_spool_reads_as_token_usage(receiver, tmp_path):
    """The spool's records are what UsageLog (and the sweep) reads: model, tokens, tier, failure."""
    from costwarden.tools.llm.usage import UsageLog

    url, settings = receiver()
    httpx.post(url, content=request([span(i, {**genai(i, inp=10 * (i + 1)), "costwarden.tier": "free"},
                                          error=i == 2) for i in range(3)]), headers=PB).raise_for_status()
    log = UsageLog([str(settings.otlp_spool_dir / "spool-*.jsonl")])
    groups = {g.outcome: g for g in log.groups()}
    assert groups["unknown"].requests == 2 and groups["unknown"].input_tokens == 30
    assert groups["failure"].input_tokens == 30 and groups["failure"].tier == "free"
    assert groups["failure"].model == "gpt-4o-mini"


@pytest.mark.parametrize("headers, body, status", [
    ({"Content-Type": "application/x-protobuf"}, b"", 401),
    ({"Content-Type": "application/x-protobuf", "Authorization": "Bearer wrong"}, b"", 401),
    ({**PB, "Content-Type": "text/plain"}, b"x", 415),
    ({**PB, "Content-Encoding": "br"}, b"x", 415),
    (PB, b"\xff\xff\xff\xff", 400),
    (JS, b"{not json", 400),
    (JS, b'{"resourceSpans": {"a": 1}}', 400),
    (JS, b'{"resourceSpans": [{"scopeSpans": [{"spans": ["x"]}]}]}', 400),
    ({**PB, "Content-Encoding": "gzip"}, b"not gzip at all", 400),
    ({**PB, "Content-Encoding": "gzip"}, gzip.compress(b"x" * 1000, mtime=0)[:20], 400),
])
def test_refusals(receiver, tmp_path, headers, body, status):
    url, _ = receiver()
    r = httpx.post(url, content=body, headers=headers)
    assert r.status_code == status, r.text
    if headers.get("Content-Type") == "application/x-protobuf" and status != 401:
        assert r.headers["content-type"] == "application/x-protobuf"
    if status == 401:
        assert r.headers["www-authenticate"] == "Bearer"
    assert spooled(tmp_path) == []


def test_size_caps_before_and_after_decompression(receiver, tmp_path):
    url, _ = receiver(max_request_bytes=64 * 1024, max_decompressed_bytes=256 * 1024)
    big = request([span(i, genai(i, model="m" * 200)) for i in range(400)])
    assert 64 * 1024 < len(big) < 256 * 1024
    assert httpx.post(url, content=big, headers=PB).status_code == 413
    assert httpx.post(url, content=gzip.compress(big), headers={**PB, "Content-Encoding": "gzip"}).status_code == 200
    bomb = gzip.compress(b"\x00" * (4 << 20))  # 4 MB of zeros in ~4 KB
    assert httpx.post(url, content=bomb, headers={**PB, "Content-Encoding": "gzip"}).status_code == 413
    assert len(spooled(tmp_path)) == 400


def test_a_spool_that_cannot_write_is_503_with_retry_after(receiver, tmp_path, monkeypatch):
    url, _ = receiver(retry_after_seconds=7)
    ok = request([span(0, genai(0))])
    assert httpx.post(url, content=ok, headers=PB).status_code == 200

    def full(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    r = httpx.post(url, content=request([span(1, genai(1))]), headers=PB)
    assert r.status_code == 503 and r.headers["retry-after"] == "7"
    monkeypatch.undo()
    assert [x["spanId"] for x in spooled(tmp_path)] == [(1).to_bytes(8, "big").hex()]  # the failed write was cut
    assert httpx.post(url, content=request([span(1, genai(1))]), headers=PB).status_code == 200  # the retry lands
    assert len(spooled(tmp_path)) == 2


def test_open_receiver_on_a_public_address_refuses_to_start(tmp_path, no_costwarden_env):
    open_cfg = Settings(state_dir=tmp_path, otlp={"enabled": True})
    with pytest.raises(OtlpStartError, match="otlp.bearer_token"):
        otlp_routes(open_cfg, "0.0.0.0")
    assert otlp_routes(open_cfg, "127.0.0.1")  # loopback: local senders only
    assert otlp_routes(Settings(state_dir=tmp_path, otlp={"enabled": True, "allow_unauthenticated": True}), "0.0.0.0")
    assert otlp_routes(Settings(state_dir=tmp_path), "0.0.0.0") == {}


def test_unauthenticated_loopback_receiver_accepts(receiver, tmp_path):
    url, _ = receiver(bearer_token=None)
    r = httpx.post(url, content=request([span(0, genai(0))]), headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 200 and len(spooled(tmp_path)) == 1


def test_spool_rotates_hourly_and_prunes_old_files(tmp_path):
    now = [1_764_600_000.0]
    old = tmp_path / "spool-2020010100.jsonl"
    old.write_text("{}\n")
    spool = Spool(tmp_path, retention_days=35, clock=lambda: now[0])
    assert not old.exists()
    spool.append([{"spanId": "a"}])
    now[0] += 3600
    spool.append([{"spanId": "b"}])
    files = sorted(p.name for p in tmp_path.glob("spool-*.jsonl"))
    assert files == ["spool-2025120114.jsonl", "spool-2025120115.jsonl"]
    spool.close()


def test_config_adds_the_spool_to_usage_paths(tmp_path, no_costwarden_env):
    from costwarden.agent.config import load_settings

    cfg = tmp_path / "c.yml"
    cfg.write_text(f"state_dir: {tmp_path}\notlp:\n  enabled: true\n  bearer_token: abc\n")
    s = load_settings(cfg)
    assert s.billing.usage_paths == [str(tmp_path / "otlp" / "spool-*.jsonl")]
    assert "abc" not in repr(s.otlp)
    s2 = load_settings(cfg, state_dir=tmp_path / "other")
    assert s2.billing.usage_paths == [str(tmp_path / "other" / "otlp" / "spool-*.jsonl")]


def test_batches_above_the_servers_default_cap_are_accepted(receiver, tmp_path):
    """The route carries its own cap (8 MiB): the 1 MiB default for Slack clicks does not apply."""
    url, _ = receiver()
    body = request([span(i, genai(i, model="m" * 300)) for i in range(4000)])
    assert (1 << 20) < len(body) < (8 << 20)
    assert httpx.post(url, content=body, headers=PB).status_code == 200
    assert len(spooled(tmp_path)) == 4000


def test_cli_refuses_an_open_receiver_on_a_public_address(tmp_path, no_costwarden_env, capsys):
    from costwarden.agent.cli.main import main

    cfg = tmp_path / "c.yml"
    cfg.write_text(f"state_dir: {tmp_path / 'state'}\notlp:\n  enabled: true\n")
    assert main(["run", "--config", str(cfg), "--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "otlp.bearer_token" in err and "Traceback" not in err
    assert not (tmp_path / "state" / "costwarden.db").exists()  # refused before the database was touched


def test_without_the_token_the_body_is_never_read(receiver, tmp_path):
    """A 100 MB Content-Length without a token: 401 at once, from the headers alone, and the connection closed."""
    import socket

    url, _ = receiver()
    port = int(url.split(":")[2].split("/")[0])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                  b"Content-Length: 100000000\r\n\r\n" + b"\0" * 1000)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401") and b"connection: close" in head.lower()
    assert b"bearer token" in body and b"\x08\x10" in body  # google.rpc.Status, code 16 (UNAUTHENTICATED)
