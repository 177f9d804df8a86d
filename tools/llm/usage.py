"""LLM token usage from JSON lines: OpenTelemetry GenAI spans and LiteLLM proxy spend logs.

Files are read by DuckDB as raw lines (one VARCHAR per line, numbered), then every field is a
JSON path in SQL. That keeps memory flat for millions of lines, lets one query accept both
formats (each field is a COALESCE over its OTel and LiteLLM spellings), and lets validation name
the exact file and line of a bad record.

Fields read from each line, at the top level or under "attributes":

| meaning | OpenTelemetry GenAI | LiteLLM spend log |
|---|---|---|
| time | `timestamp`, `start_time` (ISO 8601 or epoch seconds), `startTimeUnixNano` | `startTime` |
| provider | `gen_ai.provider.name`, older `gen_ai.system` | `custom_llm_provider` or the model's prefix |
| model | `gen_ai.request.model`, else `gen_ai.response.model` | `model` |
| input tokens (cached included) | `gen_ai.usage.input_tokens` | `prompt_tokens` |
| output tokens | `gen_ai.usage.output_tokens` | `completion_tokens` |
| cache-read tokens | `gen_ai.usage.cache_read.input_tokens` | - |
| reported cost | `gen_ai.usage.cost.amount` | `spend` |

Costwarden's own attributes (OTel) or their LiteLLM equivalents:

| attribute | meaning | LiteLLM |
|---|---|---|
| `costwarden.feature` | product feature making the call | `request_tags` entry `feature:<name>`, else `model_group` |
| `costwarden.tenant` | customer / end user | `end_user`, else `user` |
| `costwarden.tier` | the customer's pricing tier | `request_tags` entry `tier:<name>` |
| `costwarden.outcome` | `success`, `failure`, ... (an `error.type` means failure) | `status` |
| `costwarden.prompt_hash` | hash of the whole prompt (response-cache candidates) | - |
| `costwarden.prompt_prefix_hash`, `costwarden.prompt_prefix_tokens` | hash and length of the shared prefix (system prompt, few-shot examples) | - |
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from costwarden.state.usage import UsageGroup
from costwarden.tools.billing.paths import expand_paths
from costwarden.tools.duckdb_sql import connect, first_line, sql_str
from costwarden.tools.errors import BillingInputError
from costwarden.tools.llm_prices import PROVIDER_PREFIXES, PriceMap, normalise_model

INPUT_BUCKETS = (128, 256, 512, 1024, 2048, 4096, 8192)  # upper edges; beyond the last is "more"
OUTPUT_BUCKETS = (64, 128, 256, 512, 1024, 2048)


def _attr(name: str) -> str:
    """An attribute at the top level of a line or under `attributes`."""
    path = '"' + name + '"'
    return f"COALESCE(json_extract_string(line, '$.{path}'), json_extract_string(line, '$.attributes.{path}'))"


def _first(*exprs: str) -> str:
    return f"COALESCE({', '.join(exprs)})"


def _tag(prefix: str) -> str:
    return (f"regexp_replace(list_filter(json_extract_string(line, '$.request_tags[*]'), "
            f"lambda x: starts_with(x, '{prefix}:'))[1], '^{prefix}:', '')")


_RAW_TS = _first(_attr("timestamp"), _attr("start_time"), "json_extract_string(line, '$.startTime')")
_NANOS = _attr("startTimeUnixNano")
_TOKENS = {
    "input_tokens": _first(_attr("gen_ai.usage.input_tokens"), "json_extract_string(line, '$.prompt_tokens')"),
    "output_tokens": _first(_attr("gen_ai.usage.output_tokens"), "json_extract_string(line, '$.completion_tokens')"),
    "cache_read_tokens": _attr("gen_ai.usage.cache_read.input_tokens"),
    "prefix_tokens": _attr("costwarden.prompt_prefix_tokens"),
}
# the requested model groups usage: it is what the feature's code asks for (and what a library
# update changes); dated snapshots in gen_ai.response.model would split one feature's history
_MODEL = _first(_attr("gen_ai.request.model"), _attr("gen_ai.response.model"), "json_extract_string(line, '$.model')")


def _ts_expr() -> str:
    numeric = f"TRY_CAST({_RAW_TS} AS DOUBLE)"
    return (f"CASE WHEN {_NANOS} IS NOT NULL THEN make_timestamp(CAST(CAST({_NANOS} AS HUGEINT) // 1000 AS BIGINT)) "
            f"WHEN {numeric} IS NOT NULL THEN make_timestamp(CAST({numeric} * 1000000 AS BIGINT)) "
            f"ELSE CAST(TRY_CAST({_RAW_TS} AS TIMESTAMPTZ) AS TIMESTAMP) END")


_NORMALISED = f"""
SELECT file, line_no,
  {_ts_expr()} AS ts,
  regexp_replace(TRIM({_MODEL}), '^(?i:{"|".join(PROVIDER_PREFIXES)})/', '') AS raw_model,
  lower({_first(_attr("gen_ai.provider.name"), _attr("gen_ai.system"),
               "json_extract_string(line, '$.custom_llm_provider')",
               f"CASE WHEN contains({_MODEL}, '/') THEN split_part({_MODEL}, '/', 1) END", "'unknown'")}) AS provider,
  {", ".join(f"COALESCE(CAST({e} AS BIGINT), 0) AS {n}" for n, e in _TOKENS.items())},
  {_first(_attr("costwarden.feature"), _tag("feature"), "json_extract_string(line, '$.model_group')",
          "'unattributed'")} AS feature,
  {_first(_attr("costwarden.tenant"), "NULLIF(json_extract_string(line, '$.end_user'), '')",
          "NULLIF(json_extract_string(line, '$.user'), '')")} AS tenant,
  {_first(_attr("costwarden.tier"), _tag("tier"), "'unknown'")} AS tier,
  lower({_first(_attr("costwarden.outcome"), "json_extract_string(line, '$.status')",
                f"CASE WHEN {_attr('error.type')} IS NOT NULL THEN 'failure' END", "'unknown'")}) AS outcome,
  {_attr("costwarden.prompt_hash")} AS prompt_hash,
  {_attr("costwarden.prompt_prefix_hash")} AS prefix_hash,
  TRY_CAST({_first(_attr("gen_ai.usage.cost.amount"), "json_extract_string(line, '$.spend')")} AS DOUBLE)
      AS reported_cost
FROM usage_lines WHERE line IS NOT NULL AND TRIM(line) <> ''
"""


@dataclass(frozen=True)
class ModelDay:
    feature: str
    model: str
    day: date
    requests: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int


@dataclass(frozen=True)
class SizeCell:
    """Requests of one (feature, model) whose input and output fall under the given bucket edges."""

    feature: str
    model: str
    input_le: int | None  # None: beyond the last edge
    output_le: int | None
    requests: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int


@dataclass(frozen=True)
class RepeatStats:
    """Repeated prompts of one (feature, model): what a response cache or prompt cache would absorb."""

    feature: str
    model: str
    hashed_requests: int  # requests that carry a prompt hash at all
    repeat_requests: int  # requests whose exact prompt was seen before in the window
    repeat_input_tokens: int
    repeat_output_tokens: int
    prefixed_requests: int
    repeat_prefix_tokens: int  # prefix tokens sent again after the first time
    cache_read_tokens: int  # tokens the provider already served from its prompt cache


class UsageLog:
    """A DuckDB view `usage` over JSON-lines files; all methods return small aggregates."""

    def __init__(self, paths: Sequence[str | Path]) -> None:
        self.con = connect()
        self.files = expand_paths(self.con, paths)
        if not self.files:
            raise BillingInputError("no usage files given")
        parts = [f"SELECT {sql_str(f)} AS file, row_number() OVER () AS line_no, line FROM read_csv({sql_str(f)}, "
                 f"columns={{'line': 'VARCHAR'}}, header=false, delim='\\x1e', quote='', escape='', "
                 f"auto_detect=false)" for f in self.files]
        try:
            self.con.execute("CREATE TEMP TABLE usage_lines AS " + " UNION ALL ".join(parts))
        except Exception as exc:  # noqa: BLE001
            raise BillingInputError(f"{', '.join(self.files)}: cannot read: {first_line(exc)}") from None
        self._validate()
        self.con.execute("CREATE TEMP TABLE usage AS " + _NORMALISED)

    def _validate(self) -> None:
        """Check every line once; the first bad one is a one-line error naming file and line."""
        checks = [
            ("NOT json_valid(line)", "not valid JSON"),
            ("json_type(line) <> 'OBJECT'", "not a JSON object"),
            (f"{_MODEL} IS NULL", "no model (gen_ai.request.model, gen_ai.response.model or model)"),
            (f"{_RAW_TS} IS NULL AND {_NANOS} IS NULL",
             "no time (timestamp, start_time, startTimeUnixNano or startTime)"),
            (f"{_NANOS} IS NULL AND TRY_CAST({_RAW_TS} AS DOUBLE) IS NULL AND TRY_CAST({_RAW_TS} AS TIMESTAMPTZ) IS NULL",
             "unreadable time"),
        ]
        for name, expr in _TOKENS.items():
            checks.append((f"{expr} IS NOT NULL AND (TRY_CAST({expr} AS BIGINT) IS NULL OR TRY_CAST({expr} AS BIGINT) < 0)",
                           f"{name.replace('_', ' ')} is not a non-negative integer"))
        cases = " ".join(f"WHEN {cond} THEN {i}" for i, (cond, _) in enumerate(checks))
        sql = (f"SELECT file, line_no, problem FROM (SELECT file, line_no, CASE {cases} END AS problem "
               f"FROM usage_lines WHERE line IS NOT NULL AND TRIM(line) <> '') "
               f"WHERE problem IS NOT NULL ORDER BY file, line_no LIMIT 1")
        # the CASE short-circuits: JSON functions only see lines that passed json_valid
        row = self.con.execute(sql).fetchone()
        if row:
            raise BillingInputError(f"{row[0]}:{row[1]}: {checks[row[2]][1]}")

    # -- aggregates -----------------------------------------------------------------------------
    def _where(self, start: datetime | date | None, end: datetime | date | None) -> tuple[str, list[Any]]:
        clauses, params = [], []
        if start is not None:
            clauses.append("ts >= ?")
            params.append(_naive(start))
        if end is not None:
            clauses.append("ts < ?")
            params.append(_naive(end))
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", params

    def count(self) -> int:
        return int(self.con.execute("SELECT COUNT(*) FROM usage").fetchone()[0])

    def span(self) -> tuple[datetime, datetime] | None:
        row = self.con.execute("SELECT MIN(ts), MAX(ts) FROM usage").fetchone()
        return None if row[0] is None else (row[0], row[1])

    def groups(self, start: datetime | date | None = None, end: datetime | date | None = None,
               prices: PriceMap | None = None) -> list[UsageGroup]:
        """Usage per (feature, tier, model, provider, outcome), priced when a PriceMap is given."""
        where, params = self._where(start, end)
        rows = self.con.execute(
            f"SELECT feature, tier, raw_model, provider, outcome, COUNT(*), COUNT(DISTINCT tenant), "
            f"SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens) FROM usage {where} "
            f"GROUP BY ALL ORDER BY ALL", params).fetchall()
        out = []
        for f, t, m, p, o, n, u, i, oo, c in rows:
            model = normalise_model(m)
            cost = None
            if prices is not None:
                price = prices.price(m)
                cost = price.cost(int(i), int(oo), int(c)) if price else None
            out.append(UsageGroup(f, t, model, p, o, int(n), int(u), int(i), int(oo), int(c), cost))
        return out

    def tier_users(self, start: datetime | date | None = None, end: datetime | date | None = None) -> dict[str, int]:
        """Distinct tenants per tier (a tenant counts once however many features it uses)."""
        where, params = self._where(start, end)
        return {t: int(n) for t, n in self.con.execute(
            f"SELECT tier, COUNT(DISTINCT tenant) FROM usage {where} GROUP BY 1", params).fetchall()}

    def feature_tier_users(self, start: datetime | date | None = None,
                           end: datetime | date | None = None) -> dict[tuple[str, str], int]:
        where, params = self._where(start, end)
        return {(f, t): int(n) for f, t, n in self.con.execute(
            f"SELECT feature, tier, COUNT(DISTINCT tenant) FROM usage {where} GROUP BY 1, 2", params).fetchall()}

    def daily(self, start: datetime | date | None = None, end: datetime | date | None = None) -> list[ModelDay]:
        where, params = self._where(start, end)
        rows = self.con.execute(
            f"SELECT feature, raw_model, CAST(ts AS DATE) AS day, COUNT(*), SUM(input_tokens), SUM(output_tokens), "
            f"SUM(cache_read_tokens) FROM usage {where} GROUP BY ALL ORDER BY ALL", params).fetchall()
        return [ModelDay(f, m, d, int(n), int(i), int(o), int(c)) for f, m, d, n, i, o, c in rows]

    def size_cells(self, start: datetime | date | None = None, end: datetime | date | None = None) -> list[SizeCell]:
        """A 2-D histogram of request sizes per (feature, model), on fixed bucket edges."""
        where, params = self._where(start, end)

        def bucket(col: str, edges: tuple[int, ...]) -> str:
            return "CASE " + " ".join(f"WHEN {col} <= {e} THEN {e}" for e in edges) + " ELSE NULL END"

        rows = self.con.execute(
            f"SELECT feature, raw_model, {bucket('input_tokens', INPUT_BUCKETS)} AS ib, "
            f"{bucket('output_tokens', OUTPUT_BUCKETS)} AS ob, COUNT(*), SUM(input_tokens), SUM(output_tokens), "
            f"SUM(cache_read_tokens) FROM usage {where} GROUP BY ALL ORDER BY ALL", params).fetchall()
        return [SizeCell(f, m, ib, ob, int(n), int(i), int(o), int(c)) for f, m, ib, ob, n, i, o, c in rows]

    def repeats(self, start: datetime | date | None = None, end: datetime | date | None = None) -> list[RepeatStats]:
        where, params = self._where(start, end)
        sql = f"""
        WITH u AS (SELECT * FROM usage {where}),
        full_prompt AS (
            SELECT feature, raw_model, COUNT(*) - 1 AS again,
                   (SUM(input_tokens) * (COUNT(*) - 1)) // COUNT(*) AS again_in,
                   (SUM(output_tokens) * (COUNT(*) - 1)) // COUNT(*) AS again_out
            FROM u WHERE prompt_hash IS NOT NULL GROUP BY feature, raw_model, prompt_hash),
        prefix AS (
            SELECT feature, raw_model, (COUNT(*) - 1) * MIN(prefix_tokens) AS again_prefix
            FROM u WHERE prefix_hash IS NOT NULL GROUP BY feature, raw_model, prefix_hash),
        base AS (
            SELECT feature, raw_model, COUNT(prompt_hash) AS hashed, COUNT(prefix_hash) AS prefixed,
                   SUM(cache_read_tokens) AS cached
            FROM u GROUP BY feature, raw_model)
        SELECT b.feature, b.raw_model, b.hashed,
               COALESCE(fp.again, 0), COALESCE(fp.again_in, 0), COALESCE(fp.again_out, 0),
               b.prefixed, COALESCE(px.again_prefix, 0), b.cached
        FROM base b
        LEFT JOIN (SELECT feature, raw_model, SUM(again) AS again, SUM(again_in) AS again_in,
                          SUM(again_out) AS again_out FROM full_prompt GROUP BY ALL) fp USING (feature, raw_model)
        LEFT JOIN (SELECT feature, raw_model, SUM(again_prefix) AS again_prefix FROM prefix GROUP BY ALL) px
            USING (feature, raw_model)
        ORDER BY ALL"""
        return [RepeatStats(f, m, int(h), int(a), int(ai), int(ao), int(p), int(ap), int(c))
                for f, m, h, a, ai, ao, p, ap, c in self.con.execute(sql, params).fetchall()]

    def close(self) -> None:
        self.con.close()


def _naive(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo is None else value.astimezone(timezone.utc).replace(tzinfo=None)
    return datetime(value.year, value.month, value.day)

