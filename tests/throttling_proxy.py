"""A throttling reverse proxy on 127.0.0.1 in front of the moto server, for retry tests.

Real boto3 clients point their endpoint at the proxy. It forwards each request to moto, except
those it throttles: those it answers itself with the throttling error each AWS protocol really
sends, so botocore parses them exactly as it would AWS's:

- EC2 (`ec2` query protocol): HTTP 503, `<Response><Errors><Error><Code>RequestLimitExceeded`.
- STS and other `query` services: HTTP 400, `<ErrorResponse><Error><Type>Sender</Type><Code>Throttling`.
- CloudWatch: its model lists `protocols: [smithy-rpc-v2-cbor, json, query]`, and botocore 1.44
  picks by its own priority (json first), so it sends awsJson 1.0 (`X-Amz-Target:
  GraniteServiceVersion20100801.GetMetricData`). The answer: HTTP 400, `{"__type":
  "com.amazonaws.cloudwatch#ThrottlingException"}` and, CloudWatch being `awsQueryCompatible`,
  `x-amzn-query-error: Throttling;Sender` (botocore reports the code `Throttling`). Should a
  botocore release switch to CBOR (`smithy-protocol: rpc-v2-cbor`), the same error goes as CBOR.
- Other JSON services (SageMaker, Organizations, Cost Explorer, Price List): HTTP 400,
  `{"__type": "ThrottlingException"}` (Cost Explorer's own code is `LimitExceededException`).

Which requests are throttled: a seeded random share (`rate`, e.g. 0.5), and/or the first N sends of
an operation (`first`). The service comes from the request's SigV4 credential scope.
"""

from __future__ import annotations

import http.client
import random
import re
import threading
import urllib.parse
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}


def cbor_map(d: dict[str, str]) -> bytes:
    """A CBOR map of text strings (all a throttling error needs)."""
    def head(major: int, n: int) -> bytes:
        if n < 24:
            return bytes([major << 5 | n])
        if n < 256:
            return bytes([major << 5 | 24, n])
        return bytes([major << 5 | 25]) + n.to_bytes(2, "big")

    out = head(5, len(d))
    for k, v in d.items():
        for s in (k, v):
            b = s.encode()
            out += head(3, len(b)) + b
    return out


def throttling_response(service: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of the throttling error `service` answers in its wire protocol."""
    rid = str(uuid.uuid4())
    if headers.get("smithy-protocol") == "rpc-v2-cbor":
        return 400, {"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor",
                     "x-amzn-query-error": "Throttling;Sender", "x-amzn-requestid": rid}, cbor_map(
            {"__type": "com.amazonaws.cloudwatch#ThrottlingException", "message": "Rate exceeded"})
    if headers.get("x-amz-target") and service == "monitoring":
        body = b'{"__type": "com.amazonaws.cloudwatch#ThrottlingException", "message": "Rate exceeded"}'
        return 400, {"Content-Type": "application/x-amz-json-1.0", "x-amzn-query-error": "Throttling;Sender",
                     "x-amzn-requestid": rid}, body
    if headers.get("x-amz-target"):
        code = "LimitExceededException" if service == "ce" else "ThrottlingException"
        body = f'{{"__type": "{code}", "message": "Rate exceeded"}}'.encode()
        return 400, {"Content-Type": "application/x-amz-json-1.1", "x-amzn-requestid": rid}, body
    if service == "ec2":
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>RequestLimitExceeded</Code>'
                f'<Message>Request limit exceeded.</Message></Error></Errors><RequestID>{rid}</RequestID></Response>')
        return 503, {"Content-Type": "text/xml;charset=UTF-8"}, body.encode()
    body = (f'<ErrorResponse xmlns="https://{service}.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
            f'<Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>{rid}</RequestId></ErrorResponse>')
    return 400, {"Content-Type": "text/xml"}, body.encode()


def operation_of(path: str, headers: dict[str, str], body: bytes) -> str:
    if headers.get("x-amz-target"):
        return headers["x-amz-target"].rsplit(".", 1)[-1]
    if "/operation/" in path:
        return path.rsplit("/operation/", 1)[-1]
    params = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
    return params.get("Action", [path])[0]


class ThrottlingProxy:
    """Forwards to `upstream` (http://host:port); `throttled` counts the answers it made up, by
    (service, operation); `forwarded` the requests that reached moto."""

    def __init__(self, upstream: str, *, rate: float = 0.0, seed: int = 0,
                 first: dict[str, int] | None = None) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        self.lock = threading.Lock()
        self.rate = rate
        self.rng = random.Random(seed)
        self.first = dict(first or {})
        self.throttled: Counter[tuple[str, str]] = Counter()
        self.forwarded: Counter[tuple[str, str]] = Counter()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                m = _SCOPE.search(headers.get("authorization", ""))
                service = m.group(1) if m else "unknown"
                op = operation_of(self.path, headers, body)
                if proxy.should_throttle(service, op):
                    status, out_headers, out = throttling_response(service, headers)
                else:
                    status, out_headers, out = proxy.forward(self.command, self.path, self.headers.items(), body)
                    with proxy.lock:
                        proxy.forwarded[(service, op)] += 1
                self.send_response(status)
                for k, v in out_headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ThrottlingProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def should_throttle(self, service: str, op: str) -> bool:
        with self.lock:
            if self.first.get(op, 0) > 0:
                self.first[op] -= 1
                hit = True
            else:
                hit = self.rate > 0 and self.rng.random() < self.rate
            if hit:
                self.throttled[(service, op)] += 1
            return hit

    def forward(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers={k: v for k, v in headers if k.lower() not in _HOP})
            res = conn.getresponse()
            return res.status, {k: v for k, v in res.getheaders() if k.lower() not in _HOP}, res.read()
        finally:
            conn.close()


def fast_backoff(monkeypatch: Any) -> None:
    """Keep botocore's retry policy (what is retried, how many times) but not its back-off waits:
    1 ms instead of 1 s as the base of the throttling back-off."""
    from botocore.retries.standard import ExponentialBackoff

    monkeypatch.setattr(ExponentialBackoff, "_DEFAULT_BACKOFF_CONFIG",
                        {"throttling_base_scale": 0.001, "non_throttling_base_scale": 0.001})
