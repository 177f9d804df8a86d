"""Name the first bad line of a usage file, for the one-line error a user gets.

The fast path (tools/llm/formats.py) parses whole files in DuckDB and only learns *that* some
record is bad; this slow path runs only then, line by line in Python, to say *where* and *what*
(`spans.jsonl:3: no model (...)`). It mirrors the SQL's rules; when it finds nothing the caller
falls back to DuckDB's own message.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from costwarden.tools.llm.fields import OTEL_ATTRIBUTES
from costwarden.tools.llm.formats import TIME_KEYS

_NO_MODEL = "no model (gen_ai.request.model, gen_ai.response.model or model)"
_NO_TIME = "no time (timestamp, start_time, startTimeUnixNano or startTime)"
_TOKENS = {"input_tokens": "prompt_tokens", "output_tokens": "completion_tokens", "cache_read_tokens": None,
           "cache_write_tokens": None, "prefix_tokens": None}


def _value(v: Any) -> Any:
    """An OTLP AnyValue as the plain value the flat format would carry."""
    if isinstance(v, dict):
        for k in ("stringValue", "intValue", "doubleValue", "boolValue"):
            if v.get(k) is not None:
                return v[k]
    return None


def _otlp_attrs(items: Any) -> dict[str, Any]:
    return {a["key"]: _value(a.get("value")) for a in items or [] if isinstance(a, dict) and "key" in a}


def _field(attrs: dict[str, Any], name: str) -> Any:
    return next((attrs[k] for k in OTEL_ATTRIBUTES[name] if attrs.get(k) is not None), None)


def _time_problem(nanos: Any, raw: Any) -> str | None:
    if nanos is not None:
        return None if str(nanos).strip().lstrip("-").isdigit() else "unreadable time"
    if raw is None:
        return _NO_TIME
    try:
        float(raw)
        return None
    except (TypeError, ValueError):
        pass
    try:
        datetime.fromisoformat(str(raw).strip())
        return None
    except ValueError:
        return "unreadable time"


def _token_problem(name: str, value: Any) -> str | None:
    if value is None:
        return None
    try:
        ok = int(str(value).strip()) >= 0
    except ValueError:
        ok = False
    return None if ok else f"{name.replace('_', ' ')} is not a non-negative integer"


def record_problem(attrs: dict[str, Any], model: Any, nanos: Any, raw_time: Any,
                   litellm: dict[str, Any] | None = None) -> str | None:
    """What is wrong with one record (flat, LiteLLM or one OTLP span), or None."""
    litellm = litellm or {}
    if model is None:
        return _NO_MODEL
    problem = _time_problem(nanos, raw_time)
    if problem:
        return problem
    for name, alias in _TOKENS.items():
        problem = _token_problem(name, _field(attrs, name) if _field(attrs, name) is not None
                                 else litellm.get(alias) if alias else None)
        if problem:
            return problem
    return None


def line_problem(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return "not a JSON object"
    if "resourceSpans" in obj:
        for rs in obj.get("resourceSpans") or []:
            res = _otlp_attrs((rs.get("resource") or {}).get("attributes"))
            for ss in rs.get("scopeSpans") or []:
                for span in ss.get("spans") or []:
                    attrs = {**res, **_otlp_attrs(span.get("attributes"))}
                    model = _field(attrs, "request_model") or _field(attrs, "response_model")
                    problem = record_problem(attrs, model, span.get("startTimeUnixNano"), None)
                    if problem:
                        return f"span {span.get('spanId', '?')}: {problem}"
        return None
    nested = obj.get("attributes") if isinstance(obj.get("attributes"), dict) else {}
    attrs = {**{k: v for k, v in nested.items() if v is not None}, **{k: v for k, v in obj.items() if v is not None}}
    model = _field(attrs, "request_model") or _field(attrs, "response_model") or obj.get("model")
    raw = next((attrs[k] for k in TIME_KEYS if attrs.get(k) is not None), obj.get("startTime"))
    return record_problem(attrs, model, attrs.get("startTimeUnixNano"), raw, obj)


def first_problem(lines: Iterable[bytes], first_line_no: int) -> tuple[int, str] | None:
    """(line number, problem) of the first bad line; blank lines count but are never bad."""
    for n, raw in enumerate(lines, start=first_line_no):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except ValueError:
            return n, "not valid JSON"
        problem = line_problem(obj)
        if problem:
            return n, problem
    return None
