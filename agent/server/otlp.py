"""POST /v1/traces: the OTLP/HTTP trace receiver, so applications or a Collector export GenAI spans here.

Per the OTLP/HTTP specification: protobuf (`application/x-protobuf`) and JSON (`application/json`)
bodies, optionally gzip-compressed; the answer is an ExportTraceServiceResponse in the request's
encoding, with `partial_success` counting spans refused one by one (bad ids, bad token counts) and
naming the first reason. Whole-request failures carry a google.rpc.Status body: 400 malformed,
401 no/wrong bearer token, 413 over a size cap (before or after decompression), 415 an unknown
content type or encoding, 503 with Retry-After when the spool cannot be written (senders retry).

The 2xx is sent only after the spool's fsync (agent/server/otlp_spool.py): nothing acknowledged is lost.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import zlib
from typing import Any

from costwarden.agent.config import Settings
from costwarden.agent.server.http import Response
from costwarden.agent.server.metrics import ProcessCounters
from costwarden.agent.server.otlp_records import Batch, MalformedRequest, from_json, from_protobuf
from costwarden.agent.server.otlp_spool import Spool, SpoolError
from costwarden.state.errors import CostwardenError

log = logging.getLogger("costwarden.otlp")

PROTOBUF, JSON = "application/x-protobuf", "application/json"
# google.rpc.Code values for the Status body of an error
_CODES = {400: 3, 401: 16, 413: 8, 415: 3, 503: 14}


class OtlpStartError(CostwardenError):
    """The receiver's configuration is unsafe or unusable: the daemon does not start."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _status_proto(code: int, message: str) -> bytes:
    """google.rpc.Status{code=1, message=2} by hand: opentelemetry-proto does not ship it."""
    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)
    msg = message.encode()
    return b"\x08" + varint(code) + b"\x12" + varint(len(msg)) + msg


class OtlpReceiver:
    """A route handler `(headers, body) -> Response`; `max_body` is its own body cap for the HTTP server."""

    def __init__(self, settings: Settings, spool: Spool, counters: ProcessCounters | None = None) -> None:
        cfg = settings.otlp
        self.spool = spool
        self.max_body = cfg.max_request_bytes
        self.max_decompressed = cfg.max_decompressed_bytes
        self.retry_after = cfg.retry_after_seconds
        self._token = cfg.bearer_token.get_secret_value().encode() if cfg.bearer_token else None
        self.counters = counters or ProcessCounters()

    def _error(self, status: int, message: str, ctype: str, headers: dict[str, str] | None = None) -> Response:
        code = _CODES.get(status, 2)
        if ctype == PROTOBUF:
            return Response(status, _status_proto(code, message), PROTOBUF, headers)
        return Response(status, {"code": code, "message": message}, JSON, headers)

    def _authorized(self, headers: dict[str, str]) -> bool:
        if self._token is None:
            return True
        scheme, _, given = headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._token)

    def _inflate(self, body: bytes, encoding: str) -> bytes:
        if encoding in ("", "identity"):
            if len(body) > self.max_decompressed:
                raise _Refusal(413, f"request body too large (limit {self.max_decompressed} bytes)")
            return body
        if encoding != "gzip":
            raise _Refusal(415, f"unsupported Content-Encoding {encoding!r} (use gzip or none)")
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out = d.decompress(body, self.max_decompressed + 1)
        except zlib.error as exc:
            raise _Refusal(400, f"not valid gzip: {exc}") from None
        if len(out) > self.max_decompressed or d.unconsumed_tail:
            raise _Refusal(413, f"decompressed body too large (limit {self.max_decompressed} bytes)")
        if not d.eof:
            raise _Refusal(400, "not valid gzip: truncated")
        return out

    def __call__(self, headers: dict[str, str], body: bytes) -> Response:
        resp = self._answer(headers, body)
        self.counters.add("otlp_requests", {str(resp.status): 1})
        return resp

    def before_body(self, headers: dict[str, str]) -> Response | None:
        """401 before the body is read: a sender without the token cannot make us buffer 8 MiB."""
        if self._authorized(headers):
            return None
        self.counters.add("otlp_requests", {"401": 1})
        return self._error(401, "missing or wrong bearer token", _reply_type(headers), {"WWW-Authenticate": "Bearer"})

    def _answer(self, headers: dict[str, str], body: bytes) -> Response:
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        reply = _reply_type(headers)
        if not self._authorized(headers):  # when called without the HTTP server's before_body
            return self._error(401, "missing or wrong bearer token", reply, {"WWW-Authenticate": "Bearer"})
        if ctype not in (PROTOBUF, JSON):
            return self._error(415, f"unsupported Content-Type {ctype or 'none'!r} (use {PROTOBUF} or {JSON})", reply)
        try:
            raw = self._inflate(body, headers.get("content-encoding", "").strip().lower())
            batch = from_protobuf(raw) if ctype == PROTOBUF else from_json(raw)
        except _Refusal as exc:
            return self._error(exc.status, exc.message, reply)
        except MalformedRequest as exc:
            return self._error(400, str(exc), reply)
        try:
            self.spool.append(batch.records)
        except SpoolError as exc:
            log.error("OTLP spans refused: the spool cannot be written", extra={"error": str(exc)})
            return self._error(503, "spans cannot be stored now; retry later", reply,
                               {"Retry-After": str(self.retry_after)})
        self._count(batch)
        return self._accepted(batch, reply)

    def _count(self, batch: Batch) -> None:
        self.counters.add("otlp_spans", {"accepted": len(batch.records), "rejected": batch.rejected,
                                         "skipped": batch.skipped})

    def _accepted(self, batch: Batch, ctype: str) -> Response:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTracePartialSuccess,
            ExportTraceServiceResponse,
        )

        resp = ExportTraceServiceResponse()
        if batch.rejected:
            resp.partial_success.CopyFrom(ExportTracePartialSuccess(rejected_spans=batch.rejected,
                                                                    error_message=batch.first_error or ""))
        if ctype == PROTOBUF:
            return Response(200, resp.SerializeToString(), PROTOBUF)
        body: dict[str, Any] = {}
        if batch.rejected:  # proto3 JSON: int64 as a decimal string
            body["partialSuccess"] = {"rejectedSpans": str(batch.rejected), "errorMessage": batch.first_error or ""}
        return Response(200, json.dumps(body), JSON)


def _reply_type(headers: dict[str, str]) -> str:
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    return ctype if ctype in (PROTOBUF, JSON) else JSON


class _Refusal(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def otlp_routes(settings: Settings, host: str, counters: ProcessCounters | None = None) -> dict[tuple[str, str], Any]:
    """The receiver's route when `otlp.enabled`, else none; refuses an open receiver on a public address."""
    cfg = settings.otlp
    if not cfg.enabled:
        return {}
    if cfg.bearer_token is None and not cfg.allow_unauthenticated and not is_loopback(host):
        raise OtlpStartError(f"otlp.bearer_token: the OTLP receiver on {host} (not loopback) needs a token "
                             "(or otlp.allow_unauthenticated: true)")
    try:
        spool = Spool(settings.otlp_spool_dir, cfg.spool_retention_days)
    except SpoolError as exc:
        raise OtlpStartError(str(exc)) from None
    return {("POST", "/v1/traces"): OtlpReceiver(settings, spool, counters)}
