"""Benchmark: the OTLP/HTTP receiver's sustained spans per second and its response times (issue 18).

The receiver runs in its own process, as in the daemon: the real HTTP server (uvicorn, h11) with
the POST /v1/traces route, bearer token on, spooling with an fsync before every 2xx. Senders are
threads in this process on keep-alive connections posting pre-built ExportTraceServiceRequests of
`--batch` GenAI spans (protobuf, gzip optional), for `--seconds`. Afterwards the spool is counted:
every acknowledged span must be there (the run fails otherwise).

Prints spans/s, requests/s, p50/p99/max response time, the spool's size per span, and the load
average (the machine is shared, so figures move with it). Targets: >= 20,000 spans/s, p99 < 200 ms.

    python bench/otlp_receiver.py [--seconds 20] [--batch 512] [--senders 4] [--gzip] [--json]
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TOKEN = "bench-token"

SERVER = """
import sys, time
from costwarden.agent.config import Settings
from costwarden.agent.server.http import HttpServer
from costwarden.agent.server.otlp import otlp_routes
settings = Settings(state_dir=sys.argv[1], otlp={"enabled": True, "bearer_token": sys.argv[2]})
server = HttpServer("127.0.0.1", 0, otlp_routes(settings, "127.0.0.1"))
server.start()
print(server.port, flush=True)
sys.stdin.read()  # until the benchmark closes our stdin
server.stop()
"""


def batch(n: int, size: int) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    def kv(k: str, v: object) -> KeyValue:
        return KeyValue(key=k, value=AnyValue(int_value=v) if isinstance(v, int) else AnyValue(string_value=str(v)))

    spans = []
    for i in range(size):
        sid = n * size + i + 1
        spans.append(Span(trace_id=sid.to_bytes(16, "big"), span_id=sid.to_bytes(8, "big"), name="chat gpt-4o-mini",
                          start_time_unix_nano=time.time_ns(), end_time_unix_nano=time.time_ns(), attributes=[
            kv("gen_ai.operation.name", "chat"), kv("gen_ai.provider.name", "openai"),
            kv("gen_ai.request.model", "gpt-4o-mini"), kv("gen_ai.response.model", "gpt-4o-mini-2024-07-18"),
            kv("gen_ai.usage.input_tokens", 200 + i), kv("gen_ai.usage.output_tokens", 40),
            kv("gen_ai.response.id", f"chatcmpl-{sid}"), kv("costwarden.tenant", f"t{i % 97}"),
            kv("http.url", "https://api.openai.com/v1/chat/completions")]))
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=Resource(attributes=[kv("service.name", "bench"), kv("costwarden.feature", "helpdesk")]),
        scope_spans=[ScopeSpans(spans=spans)])]).SerializeToString()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--senders", type=int, default=4)
    ap.add_argument("--gzip", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    bodies = [batch(n, args.batch) for n in range(16)]
    if args.gzip:
        bodies = [gzip.compress(b, 1) for b in bodies]
    headers = {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {TOKEN}"}
    if args.gzip:
        headers["Content-Encoding"] = "gzip"

    with tempfile.TemporaryDirectory() as state:
        proc = subprocess.Popen([sys.executable, "-c", SERVER, state, TOKEN], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        port = int(proc.stdout.readline())
        latencies: list[float] = []
        failures = [0]
        lock = threading.Lock()
        stop = time.monotonic() + args.seconds

        def sender(k: int) -> None:
            con = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            mine, i = [], k
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                con.request("POST", "/v1/traces", body=bodies[i % len(bodies)], headers=headers)
                r = con.getresponse()
                r.read()
                mine.append(time.perf_counter() - t0)
                if r.status != 200:
                    failures[0] += 1
                i += args.senders
            con.close()
            with lock:
                latencies.extend(mine)

        started = time.monotonic()
        threads = [threading.Thread(target=sender, args=(k,)) for k in range(args.senders)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        proc.stdin.close()
        proc.wait(30)
        spool = list((Path(state) / "otlp").glob("spool-*.jsonl"))
        lines = sum(f.read_bytes().count(b"\n") for f in spool)
        size = sum(f.stat().st_size for f in spool)

    latencies.sort()
    ok = len(latencies) - failures[0]
    result = {
        "spans_per_s": round(ok * args.batch / elapsed), "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 1),
        "max_ms": round(latencies[-1] * 1000, 1), "requests": len(latencies), "failed": failures[0],
        "spans_acknowledged": ok * args.batch, "spans_spooled": lines,
        "spool_bytes_per_span": round(size / max(1, lines), 1), "batch": args.batch, "senders": args.senders,
        "gzip": args.gzip, "seconds": round(elapsed, 1), "loadavg": os.getloadavg()[0],
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>22}: {v}")
    return 0 if lines >= ok * args.batch and not failures[0] else 1


if __name__ == "__main__":
    sys.exit(main())
