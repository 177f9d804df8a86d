"""The SQL that turns one JSON-lines file of token usage into canonical usage rows.

Three encodings share a file and one scan: flat GenAI records (attributes at the top level or
under an `attributes` object, as Costwarden's OTLP spool and most loggers write them), LiteLLM
proxy spend logs, and OTLP JSON as the OpenTelemetry Collector's file exporter writes it
(`resourceSpans` -> `scopeSpans` -> `spans`, attributes as typed key/value lists, resource
attributes inherited by every span). DuckDB's `read_json` parses each line once against an
explicit schema (keys absent from a line are NULL, unknown keys are skipped), which is an order of
magnitude faster than extracting JSON paths from raw text line by line.

Attribute spellings come from tools/llm/fields.py; the first spelling present wins and a span's
own attribute wins over its resource's.
"""

from __future__ import annotations

import re
from typing import Any

from costwarden.tools.duckdb_sql import ident, sql_str
from costwarden.tools.llm.fields import OTEL_ATTRIBUTES
from costwarden.tools.llm_prices import PROVIDER_PREFIXES

# time keys of flat records (top level or under `attributes`); LiteLLM's startTime is top level
TIME_KEYS = ("timestamp", "start_time")
LITELLM_KEYS = ("request_id", "spend", "prompt_tokens", "completion_tokens", "model", "model_group",
                "custom_llm_provider", "end_user", "user", "status", "startTime")
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "prefix_tokens")
INPUT_BUCKETS = (128, 256, 512, 1024, 2048, 4096, 8192)  # upper edges; beyond the last is BEYOND
OUTPUT_BUCKETS = (64, 128, 256, 512, 1024, 2048)
BEYOND = 2_147_483_647  # stored bucket edge of "more than the last edge" (NULL means "size unknown")

_ATTR_KEYS = tuple(dict.fromkeys(k for keys in OTEL_ATTRIBUTES.values() for k in keys))
_KV = ("STRUCT(key VARCHAR, value STRUCT(stringValue VARCHAR, intValue VARCHAR, doubleValue VARCHAR, "
       "boolValue VARCHAR))[]")


_TOP = (*_ATTR_KEYS, *TIME_KEYS, "startTimeUnixNano", "spanId", "traceId", *LITELLM_KEYS)
_NESTED = (*_ATTR_KEYS, *TIME_KEYS, "startTimeUnixNano")
SPELLINGS = tuple(dict.fromkeys((*_TOP, "request_tags", "resourceSpans")))  # every key the reader looks at
_KEY_RE = re.compile(rb'"(' + b"|".join(re.escape(k.encode()) for k in SPELLINGS) + rb')"')
SAMPLE = 1 << 20  # bytes sniffed for the keys a chunk uses
_ESCAPED_KEY = r'\\u[0-9a-fA-F]{4}(?:[^"\\]|\\.)*"\s*:'  # RE2: a \u escape in a key (anchored on the rare backslash)
_NULL = "NULL::VARCHAR"  # a field none of whose spellings the chunk carries


def _columns(keys: frozenset[str] | None = None) -> str:
    """The read_json schema: every key any of the three encodings carries (or only `keys`), as text."""
    def has(k: str) -> bool:
        return keys is None or k in keys

    cols = {k: "VARCHAR" for k in _TOP if has(k)}
    attrs = ", ".join(f"{ident(k)} VARCHAR" for k in _NESTED if has(k))
    if has("request_tags"):
        cols["request_tags"] = "JSON"
    if attrs:
        cols["attributes"] = f"STRUCT({attrs})"
    if has("resourceSpans"):
        span = (f"STRUCT(traceId VARCHAR, spanId VARCHAR, startTimeUnixNano VARCHAR, attributes {_KV}, "
                f"status STRUCT(code VARCHAR))")
        cols["resourceSpans"] = f"STRUCT(resource STRUCT(attributes {_KV}), scopeSpans STRUCT(spans {span}[])[])[]"
    return "{" + ", ".join(f"{sql_str(k)}: {sql_str(v)}" for k, v in cols.items()) + "}"


COLUMNS = _columns()


# DuckDB's JSON reader sizes its per-thread buffers by maximum_object_size: 64 MB made a 10M-span
# OTLP read peak at 1.15 GB, 16 MB at about 300 MB less. DuckDB 2 reads longer lines anyway; an older
# DuckDB refuses them, and the chunk is read again with the larger size (rollup.py).
OBJECT_SIZES = (16 << 20, 64 << 20)


def read_json_sql(path: str, keys: frozenset[str] | None = None, max_object: int = OBJECT_SIZES[0]) -> str:
    columns = COLUMNS if keys is None else _columns(keys)
    return (f"read_json({sql_str(path)}, format='newline_delimited', columns={columns}, "
            f"maximum_object_size={max_object})")


def present_keys(con: Any, path: str) -> frozenset[str] | None:
    """The spellings one file uses, or None (read with the full schema) when that cannot be told.

    Materialising a column costs the JSON reader about as much as parsing, even when every value
    is NULL, so a chunk is read with only the keys it carries: those seen in its first megabyte,
    provided one RE2 scan of the whole chunk finds none of the others (a key first used late in
    the file sends the chunk down the full schema). A key's name inside a string value only adds
    a column; results never depend on the sniff."""
    with open(path, "rb") as fh:
        keys = frozenset(k.decode() for k in _KEY_RE.findall(fh.read(SAMPLE)))
    absent = [k for k in SPELLINGS if k not in keys]
    if not absent or "resourceSpans" in keys:
        return None  # OTLP: ~100 spans a line, so flat columns cost little and the scan would not pay
    pattern = '"(' + "|".join(re.escape(k) for k in absent) + ')"'
    try:  # ... nor any key written with a \u escape, which the sniff cannot read (backslashes are rare)
        late = con.execute("SELECT regexp_matches(content, ?) OR (contains(content, '\\u') AND "
                           "regexp_matches(content, ?)) FROM read_text(?)", [pattern, _ESCAPED_KEY, path]).fetchone()[0]
    except Exception:  # noqa: BLE001 - not valid UTF-8 text, say: the full schema reports it
        return None
    return None if late or not keys else keys


def _first(*exprs: str | None) -> str:
    """The first non-NULL of `exprs`; None (a column the chunk does not carry) is left out."""
    kept = [e for e in exprs if e is not None and e != _NULL]
    return _NULL if not kept else kept[0] if len(kept) == 1 else f"COALESCE({', '.join(kept)})"


class _Cols:
    """Column references of a flat record; with `keys`, only those the chunk carries (others are None)."""

    def __init__(self, keys: frozenset[str] | None) -> None:
        self.keys = keys

    def top(self, k: str, expr: str | None = None) -> str | None:
        return (expr or ident(k)) if self.keys is None or k in self.keys else None

    def both(self, k: str) -> tuple[str | None, str | None]:
        """Spelling `k` at the top level, then under `attributes`."""
        return self.top(k), self.top(k, f"attributes.{ident(k)}")

    def flat(self, field: str) -> str:
        """A canonical field of a flat record: each spelling at the top level, then under `attributes`."""
        return _first(*(e for k in OTEL_ATTRIBUTES[field] for e in self.both(k)))


def _kv(attrs: str, keys: str, key: str) -> str:
    # list_position over the keys listed once per span: ~40% faster than a list_filter per key
    v = f"{attrs}[list_position({keys}, {sql_str(key)})].value"
    return f"COALESCE({v}.stringValue, {v}.intValue, {v}.doubleValue, {v}.boolValue)"


def _otlp(field: str) -> str:
    """A canonical field of an OTLP span: span attributes, then resource attributes, spelling by spelling."""
    keys = OTEL_ATTRIBUTES[field]
    return _first(*(_kv("span.attributes", "skeys", k) for k in keys), *(_kv("rattrs", "rkeys", k) for k in keys))


def _tag(prefix: str) -> str:
    return (f"regexp_replace(list_filter(json_extract_string(request_tags, '$[*]'), "
            f"lambda x: starts_with(x, '{prefix}:'))[1], '^{prefix}:', '')")


def _ts(nanos: str, raw: str) -> str:
    numeric = f"TRY_CAST({raw} AS DOUBLE)"
    # nanoseconds fit BIGINT until 2262; HUGEINT arithmetic cost 0.3 s of CPU per million spans
    return (f"CASE WHEN {nanos} IS NOT NULL THEN make_timestamp(TRY_CAST({nanos} AS BIGINT) // 1000) "
            f"WHEN {numeric} IS NOT NULL THEN make_timestamp(CAST({numeric} * 1000000 AS BIGINT)) "
            f"ELSE CAST(TRY_CAST({raw} AS TIMESTAMPTZ) AS TIMESTAMP) END")


_USER = "NULLIF(\"user\", '')"


def _flat_select(keys: frozenset[str] | None) -> str:
    # the requested model groups usage: it is what the feature's code asks for (and what a library
    # update changes); dated snapshots in gen_ai.response.model would split one feature's history
    c = _Cols(keys)
    model = _first(c.flat("request_model"), c.flat("response_model"), c.top("model"))
    raw_ts = _first(*(e for k in TIME_KEYS for e in c.both(k)), c.top("startTime"))
    tokens = {"input_tokens": _first(c.flat("input_tokens"), c.top("prompt_tokens")),
              "output_tokens": _first(c.flat("output_tokens"), c.top("completion_tokens")),
              "cache_read_tokens": c.flat("cache_read_tokens"), "cache_write_tokens": c.flat("cache_write_tokens"),
              "prefix_tokens": c.flat("prefix_tokens")}
    span_id, request_id = c.top("spanId"), c.top("request_id")
    ids = ([f"WHEN {span_id} IS NOT NULL THEN hash({_first(c.top('traceId'), chr(39) * 2)} || ':' || {span_id})"]
           if span_id else [])
    ids += [f"WHEN {request_id} IS NOT NULL THEN hash('litellm:' || {request_id})"] if request_id else []
    error = c.flat("error_type")
    tags = c.top("request_tags") is not None
    return f"""
    SELECT {f"CASE {' '.join(ids)} END" if ids else "NULL::UBIGINT"} AS id,
      {_ts(_first(*c.both("startTimeUnixNano")), raw_ts)} AS ts,
      {model} AS model,
      {_first(c.flat("provider"), c.top("custom_llm_provider"))} AS provider,
      {", ".join(f"{e} AS {n}" for n, e in tokens.items())},
      {_first(c.flat("feature"), _tag("feature") if tags else None, c.top("model_group"), "'unattributed'")} AS feature,
      {_first(c.flat("tenant"), c.top("end_user", "NULLIF(end_user, '')"), c.top("user", _USER))} AS tenant,
      {_first(c.flat("tier"), _tag("tier") if tags else None, "'unknown'")} AS tier,
      {_first(c.flat("outcome"), c.top("status"),
              f"CASE WHEN {error} IS NOT NULL THEN 'failure' END" if error != _NULL else None,
              "'unknown'")} AS outcome,
      {c.flat("prompt_hash")} AS prompt_hash, {c.flat("prefix_hash")} AS prefix_hash,
      {_first(c.flat("reported_cost"), c.top("spend"))} AS reported_cost
    FROM src{" WHERE resourceSpans IS NULL" if c.top("resourceSpans") else ""}"""


def _otlp_select() -> str:
    model = _first(_otlp("request_model"), _otlp("response_model"))
    status = "CAST(span.status.code AS VARCHAR)"
    outcome = _first(_otlp("outcome"), f"CASE WHEN {_otlp('error_type')} IS NOT NULL THEN 'failure' END",
                     f"CASE WHEN {status} IN ('2', 'STATUS_CODE_ERROR') THEN 'failure' END", "'unknown'")
    return f"""
    SELECT CASE WHEN span.spanId IS NOT NULL THEN hash(COALESCE(span.traceId, '') || ':' || span.spanId) END AS id,
      {_ts("span.startTimeUnixNano", "NULL")} AS ts, {model} AS model, {_otlp("provider")} AS provider,
      {", ".join(f"{_otlp(n)} AS {n}" for n in TOKEN_FIELDS)},
      {_first(_otlp("feature"), "'unattributed'")} AS feature, {_otlp("tenant")} AS tenant,
      {_first(_otlp("tier"), "'unknown'")} AS tier, {outcome} AS outcome,
      {_otlp("prompt_hash")} AS prompt_hash, {_otlp("prefix_hash")} AS prefix_hash,
      {_otlp("reported_cost")} AS reported_cost
    FROM (SELECT span, rattrs, list_transform(span.attributes, lambda a: a.key) AS skeys,
                 list_transform(rattrs, lambda a: a.key) AS rkeys
          FROM (SELECT rattrs, unnest(ss.spans) AS span
          FROM (SELECT rs.resource.attributes AS rattrs, unnest(rs.scopeSpans) AS ss
                FROM (SELECT unnest(resourceSpans) AS rs FROM src WHERE resourceSpans IS NOT NULL))))"""


def _bucket(col: str, edges: tuple[int, ...]) -> str:
    return "CASE " + " ".join(f"WHEN {col} <= {e} THEN {e}" for e in edges) + f" ELSE {BEYOND} END"


def model_sql(col: str) -> str:
    """The model name without a provider prefix (`openai/gpt-4o` -> `gpt-4o`); applied to grouped rows."""
    return f"regexp_replace(TRIM({col}), '^(?i:{'|'.join(PROVIDER_PREFIXES)})/', '')"


def provider_sql(provider: str, model: str) -> str:
    """The provider as reported, else the model's prefix, lower-cased; applied to grouped rows."""
    return (f"lower(COALESCE({provider}, CASE WHEN contains({model}, '/') THEN split_part({model}, '/', 1) END, "
            f"'unknown'))")


def batch_sql(path: str, keys: frozenset[str] | None = None, max_object: int = OBJECT_SIZES[0]) -> str:
    """Canonical rows of one file, with `problem` naming the first thing wrong with a row (or NULL).

    Model, provider and outcome stay as written: they are normalised after grouping
    (tools/llm/rollup.py), on thousands of cells rather than millions of rows."""
    n = {f: f"n_{f}" for f in TOKEN_FIELDS}
    checks = [("model IS NULL", "no model"), ("ts IS NULL", "no readable time")]
    checks += [(f"{f} IS NOT NULL AND ({n[f]} IS NULL OR {n[f]} < 0)", f"{f.replace('_', ' ')} is not a non-negative integer")
               for f in TOKEN_FIELDS]
    problem = "CASE " + " ".join(f"WHEN {c} THEN {sql_str(p)}" for c, p in checks) + " END"
    return f"""
    WITH src AS (SELECT * FROM {read_json_sql(path, keys, max_object)}),
    rows AS ({_flat_select(keys)}{f" UNION ALL BY NAME {_otlp_select()}" if _Cols(keys).top("resourceSpans") else ""}),
    typed AS (SELECT *, {", ".join(f"TRY_CAST({f} AS BIGINT) AS {n[f]}" for f in TOKEN_FIELDS)} FROM rows)
    SELECT id, ts, date_trunc('hour', ts) AS hour, model, provider,
      {", ".join(f"COALESCE({n[f]}, 0) AS {f}" for f in TOKEN_FIELDS)},
      feature, tenant, tier, outcome, prompt_hash, prefix_hash, TRY_CAST(reported_cost AS DOUBLE) AS reported_cost,
      {_bucket(f"COALESCE({n['input_tokens']}, 0)", INPUT_BUCKETS)} AS in_le,
      {_bucket(f"COALESCE({n['output_tokens']}, 0)", OUTPUT_BUCKETS)} AS out_le,
      {problem} AS problem
    FROM typed"""
