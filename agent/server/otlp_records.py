"""OTLP trace requests (protobuf or JSON) -> the flat usage records the spool keeps.

A record is `{"spanId", "traceId", "startTimeUnixNano", "attributes": {...}}`: hex ids, the start
time as a decimal string (as OTLP JSON writes 64-bit integers), and only the attributes listed in
tools/llm/fields.py (span attributes over resource attributes), so prompt text or other payloads a
span may carry never reach the disk.

What happens to a span:
- no model (`gen_ai.request.model` / `gen_ai.response.model`): not a GenAI call; skipped, not an error;
- bad ids, no start time, or a token count that is not a non-negative integer: rejected, counted in
  the response's partial_success with the first reason;
- otherwise: one record.
A request whose structure is not OTLP at all is MalformedRequest (the receiver answers 400).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from costwarden.tools.llm.fields import OTEL_ATTRIBUTES

KEEP = frozenset(k for keys in OTEL_ATTRIBUTES.values() for k in keys)
MODEL_KEYS = OTEL_ATTRIBUTES["request_model"] + OTEL_ATTRIBUTES["response_model"]
COUNT_KEYS = frozenset(k for f in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                                   "reasoning_tokens", "prefix_tokens") for k in OTEL_ATTRIBUTES[f])
COST_KEYS = frozenset(OTEL_ATTRIBUTES["reported_cost"])
STATUS_ERROR = 2  # Status.StatusCode STATUS_CODE_ERROR
_HEX = re.compile(r"[0-9a-fA-F]+")


class MalformedRequest(ValueError):
    """The payload is not an OTLP trace request: the whole request is refused (400)."""


@dataclass
class Batch:
    records: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0
    skipped: int = 0
    first_error: str | None = None

    def reject(self, reason: str) -> None:
        self.rejected += 1
        if self.first_error is None:
            self.first_error = reason


def _count(value: Any) -> int | None:
    """A token count: an int, an integral float or a decimal string; None if not a non-negative integer."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return value if isinstance(value, int) and value >= 0 else None


def _add(batch: Batch, trace_id: str, span_id: str, start: Any, attrs: dict[str, Any], error_status: bool) -> None:
    model = next((attrs[k] for k in MODEL_KEYS if isinstance(attrs.get(k), str) and attrs[k].strip()), None)
    if model is None:
        batch.skipped += 1
        return
    if not (len(span_id) == 16 and _HEX.fullmatch(span_id) and span_id.strip("0")):
        batch.reject(f"span {span_id!r}: spanId is not 8 non-zero bytes")
        return
    if not (len(trace_id) == 32 and _HEX.fullmatch(trace_id) and trace_id.strip("0")):
        batch.reject(f"span {span_id}: traceId is not 16 non-zero bytes")
        return
    nanos = _count(start)
    if not nanos:
        batch.reject(f"span {span_id}: no startTimeUnixNano")
        return
    for key in COUNT_KEYS.intersection(attrs):
        n = _count(attrs[key])
        if n is None:
            batch.reject(f"span {span_id}: {key} is not a non-negative integer")
            return
        attrs[key] = n
    for key in COST_KEYS.intersection(attrs):
        v = attrs[key]
        try:
            attrs[key] = float(v) if not isinstance(v, bool) else None
        except (TypeError, ValueError):
            attrs[key] = None
        if attrs[key] is None or attrs[key] != attrs[key] or attrs[key] < 0:
            batch.reject(f"span {span_id}: {key} is not a non-negative number")
            return
    if error_status and "error.type" not in attrs:
        attrs["error.type"] = "_OTHER"  # the semantic conventions' fallback for an error without a type
    batch.records.append({"spanId": span_id.lower(), "traceId": trace_id.lower(), "startTimeUnixNano": str(nanos),
                          "attributes": attrs})


# --- protobuf ------------------------------------------------------------------------------------
def _proto_attrs(attributes: Any, into: dict[str, Any]) -> dict[str, Any]:
    for kv in attributes:
        if kv.key in KEEP:
            kind = kv.value.WhichOneof("value")
            if kind in ("string_value", "int_value", "double_value", "bool_value"):
                into[kv.key] = getattr(kv.value, kind)
    return into


def from_protobuf(body: bytes) -> Batch:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    try:
        req = ExportTraceServiceRequest.FromString(body)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise MalformedRequest(f"not an ExportTraceServiceRequest: {exc}") from None
    batch = Batch()
    for rs in req.resource_spans:
        resource = _proto_attrs(rs.resource.attributes, {})
        for ss in rs.scope_spans:
            for span in ss.spans:
                attrs = _proto_attrs(span.attributes, dict(resource))
                _add(batch, span.trace_id.hex(), span.span_id.hex(), span.start_time_unix_nano, attrs,
                     span.status.code == STATUS_ERROR)
    return batch


# --- JSON ----------------------------------------------------------------------------------------
_VALUE_KEYS = {"stringValue": "s", "string_value": "s", "intValue": "i", "int_value": "i",
               "doubleValue": "d", "double_value": "d", "boolValue": "b", "bool_value": "b"}


def _get(obj: dict[str, Any], camel: str, snake: str, kind: type, default: Any) -> Any:
    """A field by its lowerCamelCase name or its proto name (receivers accept both)."""
    value = obj.get(camel, obj.get(snake, default))
    if value is None:
        return default
    if not isinstance(value, kind):
        raise MalformedRequest(f"{camel} is not a JSON {kind.__name__.replace('dict', 'object').replace('list', 'array')}")
    return value


def _json_attrs(attributes: list[Any], into: dict[str, Any]) -> dict[str, Any]:
    for kv in attributes:
        if not isinstance(kv, dict):
            raise MalformedRequest("an attribute is not a JSON object")
        key = kv.get("key")
        if key not in KEEP or not isinstance(kv.get("value"), dict):
            continue
        for name, v in kv["value"].items():
            kind = _VALUE_KEYS.get(name)
            if kind == "i" and isinstance(v, str) and re.fullmatch(r"-?\d+", v.strip()):
                v = int(v)  # OTLP JSON writes 64-bit integers as strings
            if kind is not None:
                into[key] = v
                break
    return into


def from_json(body: bytes) -> Batch:
    import json

    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedRequest(f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise MalformedRequest("the request is not a JSON object")
    batch = Batch()
    for rs in _get(doc, "resourceSpans", "resource_spans", list, []):
        if not isinstance(rs, dict):
            raise MalformedRequest("a resourceSpans entry is not a JSON object")
        resource = _json_attrs(_get(_get(rs, "resource", "resource", dict, {}), "attributes", "attributes", list, []), {})
        for ss in _get(rs, "scopeSpans", "scope_spans", list, []):
            if not isinstance(ss, dict):
                raise MalformedRequest("a scopeSpans entry is not a JSON object")
            for span in _get(ss, "spans", "spans", list, []):
                if not isinstance(span, dict):
                    raise MalformedRequest("a span is not a JSON object")
                attrs = _json_attrs(_get(span, "attributes", "attributes", list, []), dict(resource))
                status = _get(span, "status", "status", dict, {})
                _add(batch, str(span.get("traceId", span.get("trace_id", ""))),
                     str(span.get("spanId", span.get("span_id", ""))),
                     span.get("startTimeUnixNano", span.get("start_time_unix_nano")), attrs,
                     status.get("code") in (STATUS_ERROR, "STATUS_CODE_ERROR"))
    return batch
