"""Real senders: the official OpenAI instrumentation's spans, exported by the OTLP/HTTP exporter to the receiver.

The `openai` client talks to a small OpenAI-shaped server on 127.0.0.1 (respx does not intercept
openai 3.x); opentelemetry-instrumentation-openai-v2 records the GenAI span; the SDK's
opentelemetry-exporter-otlp-proto-http posts it (protobuf, gzip, bearer token) to POST /v1/traces.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import openai
import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

from costwarden.agent.config import Settings
from costwarden.agent.server.http import HttpServer
from costwarden.agent.server.otlp import otlp_routes
from costwarden.tools.llm.usage import UsageLog

TOKEN = "exporter-token"


class FakeOpenAI(BaseHTTPRequestHandler):
    """POST /v1/chat/completions: usage grows with the prompt; a prompt saying 'fail' gets a 500."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        req = json.loads(self.rfile.read(int(self.headers["content-length"])))
        prompt = req["messages"][-1]["content"]
        if "fail" in prompt:
            status, body = 500, {"error": {"message": "boom", "type": "server_error"}}
        else:
            status, body = 200, {
                "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": req["model"] + "-2024-07-18",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10 * len(prompt), "completion_tokens": 3, "total_tokens": 10 * len(prompt) + 3}}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def openai_server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}/v1"
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def receiver(tmp_path, no_costwarden_env) -> Iterator[tuple[str, Settings]]:
    settings = Settings(state_dir=tmp_path, otlp={"enabled": True, "bearer_token": TOKEN})
    server = HttpServer("127.0.0.1", 0, otlp_routes(settings, "127.0.0.1"))
    server.start()
    yield f"http://127.0.0.1:{server.port}/v1/traces", settings
    server.stop()


def instrumented(endpoint: str, token: str | None, resource: dict[str, str]) -> tuple[TracerProvider, OTLPSpanExporter]:
    exporter = OTLPSpanExporter(endpoint=endpoint, compression=Compression.Gzip, timeout=10,
                                headers={"authorization": f"Bearer {token}"} if token else None)
    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot", **resource}))
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=512))
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    return provider, exporter


def spool_rows(state: Path) -> list[dict]:
    return [json.loads(line) for f in sorted((state / "otlp").glob("spool-*.jsonl"))
            for line in f.read_text().splitlines()]


def test_openai_instrumentation_spans_land_in_the_spool(openai_server, receiver, tmp_path):
    url, settings = receiver
    provider, _ = instrumented(url, TOKEN, {"costwarden.feature": "helpdesk", "costwarden.tier": "free"})
    try:
        client = openai.OpenAI(api_key="sk-test", base_url=openai_server, max_retries=0)
        prompts = ["hi", "hello there", "how are you"]
        for p in prompts:
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": p}])
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "fail"}])
        assert provider.force_flush(10_000)
    finally:
        OpenAIInstrumentor().uninstrument()
        provider.shutdown()

    rows = spool_rows(tmp_path)
    ok = [r for r in rows if r["attributes"]["gen_ai.request.model"] == "gpt-4o-mini"]
    assert sorted(r["attributes"]["gen_ai.usage.input_tokens"] for r in ok) == sorted(10 * len(p) for p in prompts)
    assert all(r["attributes"]["gen_ai.usage.output_tokens"] == 3 for r in ok)
    assert {r["attributes"]["gen_ai.response.model"] for r in ok} == {"gpt-4o-mini-2024-07-18"}
    assert {r["attributes"]["costwarden.feature"] for r in rows} == {"helpdesk"}  # from the resource
    (failed,) = [r for r in rows if r["attributes"]["gen_ai.request.model"] == "gpt-4o"]
    assert failed["attributes"]["error.type"]
    assert len({r["spanId"] for r in rows}) == 4 and all(len(r["traceId"]) == 32 for r in rows)
    assert all(json.dumps(r).count("hello there") == 0 for r in rows)  # prompt text never reaches the disk

    # the sweep's reader sees the same usage, priced by model
    groups = {(g.model, g.outcome): g for g in UsageLog([str(settings.otlp_spool_dir / "spool-*.jsonl")]).groups()}
    assert groups[("gpt-4o-mini", "unknown")].requests == 3
    assert groups[("gpt-4o-mini", "unknown")].input_tokens == sum(10 * len(p) for p in prompts)
    assert groups[("gpt-4o", "failure")].requests == 1


def test_exporter_without_the_token_is_refused_and_nothing_is_spooled(openai_server, receiver, tmp_path):
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    url, _ = receiver
    provider, memory = TracerProvider(), InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    try:
        client = openai.OpenAI(api_key="sk-test", base_url=openai_server, max_retries=0)
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    finally:
        OpenAIInstrumentor().uninstrument()
    spans = memory.get_finished_spans()
    assert len(spans) == 1
    assert OTLPSpanExporter(endpoint=url, timeout=5).export(spans) == SpanExportResult.FAILURE
    assert OTLPSpanExporter(endpoint=url, timeout=5, headers={"authorization": "Bearer nope"}).export(spans) \
        == SpanExportResult.FAILURE
    assert spool_rows(tmp_path) == []
    assert OTLPSpanExporter(endpoint=url, timeout=5, headers={"authorization": f"Bearer {TOKEN}"}).export(spans) \
        == SpanExportResult.SUCCESS
    assert [r["attributes"]["gen_ai.usage.input_tokens"] for r in spool_rows(tmp_path)] == [20]


def otlp_json(request_pb) -> dict:
    """OTLP JSON as the Collector writes it: proto3 JSON with trace and span ids in hex, not base64."""
    import base64

    from google.protobuf.json_format import MessageToDict

    doc = MessageToDict(request_pb)
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for s in ss.get("spans", []):
                for k in ("traceId", "spanId", "parentSpanId"):
                    if k in s:
                        s[k] = base64.b64decode(s[k]).hex()
    return doc


def test_protobuf_and_json_of_the_same_spans_spool_the_same_records(openai_server, tmp_path, no_costwarden_env):
    import httpx
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider, memory = TracerProvider(resource=Resource.create({"costwarden.tier": "pro"})), InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    try:
        client = openai.OpenAI(api_key="sk-test", base_url=openai_server, max_retries=0)
        for p in ("a", "bb", "ccc"):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": p}])
    finally:
        OpenAIInstrumentor().uninstrument()
    encoded = encode_spans(memory.get_finished_spans())

    rows = []
    for kind in ("protobuf", "json"):
        settings = Settings(state_dir=tmp_path / kind, otlp={"enabled": True})
        server = HttpServer("127.0.0.1", 0, otlp_routes(settings, "127.0.0.1"))
        server.start()
        try:
            url = f"http://127.0.0.1:{server.port}/v1/traces"
            if kind == "protobuf":
                r = httpx.post(url, content=encoded.SerializeToString(),
                               headers={"Content-Type": "application/x-protobuf"})
            else:
                r = httpx.post(url, json=otlp_json(encoded))
            assert r.status_code == 200
        finally:
            server.stop()
        rows.append(spool_rows(tmp_path / kind))
    assert len(rows[0]) == 3 and rows[0] == rows[1]
    assert {r["attributes"]["costwarden.tier"] for r in rows[0]} == {"pro"}
