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


def _columns() -> str:
    """The read_json schema: every key any of the three encodings carries, as text."""
    flat = {k: "VARCHAR" for k in (*_ATTR_KEYS, *TIME_KEYS, "startTimeUnixNano", "spanId", "traceId")}
    attrs = ", ".join(f"{ident(k)} VARCHAR" for k in (*_ATTR_KEYS, *TIME_KEYS, "startTimeUnixNano"))
    span = (f"STRUCT(traceId VARCHAR, spanId VARCHAR, startTimeUnixNano VARCHAR, attributes {_KV}, "
            f"status STRUCT(code VARCHAR))")
    cols = {**flat, **{k: "VARCHAR" for k in LITELLM_KEYS}, "request_tags": "JSON",
            "attributes": f"STRUCT({attrs})",
            "resourceSpans": f"STRUCT(resource STRUCT(attributes {_KV}), scopeSpans STRUCT(spans {span}[])[])[]"}
    return "{" + ", ".join(f"{sql_str(k)}: {sql_str(v)}" for k, v in cols.items()) + "}"


COLUMNS = _columns()


def read_json_sql(path: str) -> str:
    return f"read_json({sql_str(path)}, format='newline_delimited', columns={COLUMNS}, maximum_object_size=67108864)"


def _first(*exprs: str) -> str:
    return exprs[0] if len(exprs) == 1 else f"COALESCE({', '.join(exprs)})"


def _flat(field: str) -> str:
    """A canonical field of a flat record: each spelling at the top level, then under `attributes`."""
    return _first(*(e for k in OTEL_ATTRIBUTES[field] for e in (ident(k), f"attributes.{ident(k)}")))


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
    return (f"CASE WHEN {nanos} IS NOT NULL THEN make_timestamp(CAST(TRY_CAST({nanos} AS HUGEINT) // 1000 AS BIGINT)) "
            f"WHEN {numeric} IS NOT NULL THEN make_timestamp(CAST({numeric} * 1000000 AS BIGINT)) "
            f"ELSE CAST(TRY_CAST({raw} AS TIMESTAMPTZ) AS TIMESTAMP) END")


_USER = "NULLIF(\"user\", '')"


def _flat_select() -> str:
    # the requested model groups usage: it is what the feature's code asks for (and what a library
    # update changes); dated snapshots in gen_ai.response.model would split one feature's history
    model = _first(_flat("request_model"), _flat("response_model"), "model")
    raw_ts = _first(*(e for k in TIME_KEYS for e in (ident(k), f"attributes.{ident(k)}")), "startTime")
    tokens = {"input_tokens": _first(_flat("input_tokens"), "prompt_tokens"),
              "output_tokens": _first(_flat("output_tokens"), "completion_tokens"),
              "cache_read_tokens": _flat("cache_read_tokens"), "cache_write_tokens": _flat("cache_write_tokens"),
              "prefix_tokens": _flat("prefix_tokens")}
    return f"""
    SELECT CASE WHEN spanId IS NOT NULL THEN hash(COALESCE(traceId, '') || ':' || spanId)
                WHEN request_id IS NOT NULL THEN hash('litellm:' || request_id) END AS id,
      {_ts(_first('"startTimeUnixNano"', 'attributes."startTimeUnixNano"'), raw_ts)} AS ts,
      {model} AS model,
      {_first(_flat("provider"), "custom_llm_provider")} AS provider,
      {", ".join(f"{e} AS {n}" for n, e in tokens.items())},
      {_first(_flat("feature"), _tag("feature"), "model_group", "'unattributed'")} AS feature,
      {_first(_flat("tenant"), "NULLIF(end_user, '')", _USER)} AS tenant,
      {_first(_flat("tier"), _tag("tier"), "'unknown'")} AS tier,
      {_first(_flat("outcome"), "status", f"CASE WHEN {_flat('error_type')} IS NOT NULL THEN 'failure' END",
              "'unknown'")} AS outcome,
      {_flat("prompt_hash")} AS prompt_hash, {_flat("prefix_hash")} AS prefix_hash,
      {_first(_flat("reported_cost"), "spend")} AS reported_cost
    FROM src WHERE resourceSpans IS NULL"""


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


def batch_sql(path: str) -> str:
    """Canonical rows of one file, with `problem` naming the first thing wrong with a row (or NULL).

    Model, provider and outcome stay as written: they are normalised after grouping
    (tools/llm/rollup.py), on thousands of cells rather than millions of rows."""
    n = {f: f"n_{f}" for f in TOKEN_FIELDS}
    checks = [("model IS NULL", "no model"), ("ts IS NULL", "no readable time")]
    checks += [(f"{f} IS NOT NULL AND ({n[f]} IS NULL OR {n[f]} < 0)", f"{f.replace('_', ' ')} is not a non-negative integer")
               for f in TOKEN_FIELDS]
    problem = "CASE " + " ".join(f"WHEN {c} THEN {sql_str(p)}" for c, p in checks) + " END"
    return f"""
    WITH src AS (SELECT * FROM {read_json_sql(path)}),
    rows AS ({_flat_select()} UNION ALL BY NAME {_otlp_select()}),
    typed AS (SELECT *, {", ".join(f"TRY_CAST({f} AS BIGINT) AS {n[f]}" for f in TOKEN_FIELDS)} FROM rows)
    SELECT id, ts, date_trunc('hour', ts) AS hour, model, provider,
      {", ".join(f"COALESCE({n[f]}, 0) AS {f}" for f in TOKEN_FIELDS)},
      feature, tenant, tier, outcome, prompt_hash, prefix_hash, TRY_CAST(reported_cost AS DOUBLE) AS reported_cost,
      {_bucket(f"COALESCE({n['input_tokens']}, 0)", INPUT_BUCKETS)} AS in_le,
      {_bucket(f"COALESCE({n['output_tokens']}, 0)", OUTPUT_BUCKETS)} AS out_le,
      {problem} AS problem
    FROM typed"""
