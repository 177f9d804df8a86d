"""LLM token usage: the detectors' and reports' view of the process's hourly usage rollup.

`UsageLog(paths)` brings the shared rollup (tools/llm/rollup.py) up to date with the files, reading
only what they gained since the last sweep, and answers small aggregates over a time window. Files
hold OpenTelemetry GenAI spans (flat records, or OTLP JSON as the Collector's file exporter writes
it, plain or gzip) or LiteLLM proxy spend logs, one JSON document per line (tools/llm/formats.py).
Windows select whole hours: an hour counts when it starts inside [start, end).

Fields read from each record, at the top level or under "attributes" (OTLP: span, then resource
attributes; every spelling in tools/llm/fields.py):

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

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from costwarden.state.usage import UsageGroup
from costwarden.tools.billing.paths import expand_paths
from costwarden.tools.errors import BillingInputError
from costwarden.tools.llm.formats import BEYOND, INPUT_BUCKETS, OUTPUT_BUCKETS
from costwarden.tools.llm.rollup import RETENTION_DAYS, UsageRollup
from costwarden.tools.llm.sketch import DUCKDB_RANK, DUCKDB_REGISTER, estimate_from
from costwarden.tools.llm_prices import PriceMap, normalise_model

if TYPE_CHECKING:
    from costwarden.tools.billing.settings import BillingSettings

__all__ = ["INPUT_BUCKETS", "OUTPUT_BUCKETS", "ModelDay", "RepeatStats", "SizeCell", "UsageLog", "release_stores", "shared_rollup"]


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


_ROLLUPS: OrderedDict[tuple[str, ...], UsageRollup] = OrderedDict()
_ROLLUPS_LOCK = threading.Lock()
_KEEP = 8  # rollups kept per process (one per configured set of paths; tests make many)


def shared_rollup(paths: Sequence[str | Path], store: str | None = None, *,
                  retention_days: int = RETENTION_DAYS) -> UsageRollup:
    """The process's rollup for these paths (or for this store file, whatever paths it is given):
    the collectors, budgets and reports of one sweep all read the same one."""
    key = ("store", str(store)) if store else ("paths", *map(str, paths))
    with _ROLLUPS_LOCK:
        rollup = _ROLLUPS.get(key)
        if rollup is None:
            # a store another process holds is waited for, then one error: never a silent fallback to
            # memory, which would answer from whatever this process happens to read
            rollup = UsageRollup(str(store) if store else None, retention_days=retention_days)
            _ROLLUPS[key] = rollup
            while len(_ROLLUPS) > _KEEP:
                _, dropped = _ROLLUPS.popitem(last=False)  # not closed: a UsageLog may still hold it
                dropped.release()  # ... but a store file is let go (it reopens on use)
        _ROLLUPS.move_to_end(key)
        return rollup


def release_stores() -> None:
    """Let go of every store file this process holds (after a sweep: a CLI run beside the daemon
    can then open it); each reopens on its next use."""
    with _ROLLUPS_LOCK:
        rollups = list(_ROLLUPS.values())
    for rollup in rollups:
        rollup.release()


def open_usage(billing: BillingSettings) -> UsageLog:
    """The token usage a configuration names: its files and, when set, LiteLLM's database, in the
    one rollup of this process (BillingInputError if it names none, or one cannot be read).
    Within a sweep, `UsageSession.open` (tools/llm/session.py) reads it once for every policy."""
    url = billing.litellm_database_url.get_secret_value() if billing.litellm_database_url else None
    return UsageLog(billing.usage_paths, store=billing.usage_store, litellm_url=url,
                    litellm_source=billing.litellm_database_source, retention_days=billing.usage_retention_days)


def litellm_source_key(url: str) -> str:
    """The rollup's name for a LiteLLM database: its URL without the password."""
    from sqlalchemy.engine import make_url

    try:
        return "litellm:" + make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - LiteLLMDatabase reports a bad URL in one line
        return "litellm:(unparsed url)"


def sync_litellm(rollup: UsageRollup, source: str, url: str, mode: str) -> int:
    """Bring the rollup up to date with LiteLLM's database: only the whole periods since the
    stored watermark are read (each once), and they land with their new watermark in one
    transaction; return the number of cells read."""
    from costwarden.tools.llm.litellm_db import LiteLLMDatabase

    mark = rollup.watermark(source)
    db = LiteLLMDatabase(url, source=mode)  # type: ignore[arg-type]
    try:
        rows, upto = db.read(datetime.fromisoformat(mark) if mark else None)
    finally:
        db.close()
    rollup.add_aggregates(source, rows, upto.isoformat())
    return len(rows)


class UsageLog:
    """The usage in `paths`, synced into the shared rollup; all methods return small aggregates."""

    def __init__(self, paths: Sequence[str | Path], store: str | None = None, *,
                 litellm_url: str | None = None, litellm_source: str = "auto",
                 retention_days: int = RETENTION_DAYS) -> None:
        self.files = expand_paths(None, paths) if paths else []
        if not self.files and not litellm_url:
            raise BillingInputError("no usage files given")
        source = litellm_source_key(litellm_url) if litellm_url else None
        self.rollup = shared_rollup([*map(str, paths), *([source] if source else [])], store,
                                    retention_days=retention_days)
        try:
            if self.files:
                self.rollup.sync(self.files)
        except OSError as exc:
            raise BillingInputError(f"{exc.filename or ', '.join(self.files)}: cannot read: {exc.strerror}") from None
        if litellm_url and source:
            sync_litellm(self.rollup, source, litellm_url, litellm_source)

    def _where(self, start: datetime | date | None, end: datetime | date | None) -> tuple[str, list[Any]]:
        clauses, params = ["TRUE"], []
        if start is not None:
            clauses.append("hour >= ?")
            params.append(_naive(start))
        if end is not None:
            clauses.append("hour < ?")
            params.append(_naive(end))
        return " AND ".join(clauses), params

    def count(self) -> int:
        return int(self.rollup.query("SELECT COALESCE(SUM(requests), 0) FROM cells")[0][0])

    def span(self) -> tuple[datetime, datetime] | None:
        row = self.rollup.query("SELECT MIN(min_ts), MAX(max_ts) FROM cells")[0]
        return None if row[0] is None else (row[0], row[1])

    def groups(self, start: datetime | date | None = None, end: datetime | date | None = None,
               prices: PriceMap | None = None) -> list[UsageGroup]:
        """Usage per (feature, tier, model, provider, outcome), priced when a PriceMap is given."""
        where, params = self._where(start, end)
        keys = "feature, tier, model, provider, outcome"
        rows = self.rollup.query(
            f"SELECT {keys}, SUM(requests) n, SUM(input_tokens) i, SUM(output_tokens) o, SUM(cache_read_tokens) cr "
            f"FROM cells WHERE {where} GROUP BY ALL ORDER BY ALL", params)
        users = self._users(keys, start, end)
        out = []
        for f, t, m, p, o, n, i, oo, c in rows:
            cost = None
            if prices is not None:
                price = prices.price(m)
                cost = price.cost(int(i), int(oo), int(c)) if price else None
            u = users.get((f, t, m, p, o), 0)
            out.append(UsageGroup(f, t, normalise_model(m), p, o, int(n), u, int(i), int(oo), int(c), cost))
        return out

    def _users(self, keys: str, start: datetime | date | None,
               end: datetime | date | None) -> dict[tuple[Any, ...], int]:
        """Distinct tenants per `keys` (a tenant counts once however many cells and hours it appears
        in): COUNT(DISTINCT) of the tenant hashes when no sketch falls in the group, else the
        HyperLogLog estimate of the union of the sketches and the exact tenants' registers
        (tools/llm/sketch.py, about 1.6% standard error). Counts are never added up."""
        where, params = self._where(start, end)
        reg, rank = DUCKDB_REGISTER.format(h="tenant"), DUCKDB_RANK.format(h="tenant")
        rows = self.rollup.query(
            f"WITH ex AS (SELECT {keys}, tenant FROM tenants JOIN cell_names USING (cell) WHERE {where}), "
            f"sk AS (SELECT {keys}, reg, rank FROM sketches JOIN cell_names USING (cell) WHERE {where}), "
            f"regs AS (SELECT {keys}, reg, MAX(rank) r FROM (SELECT * FROM sk UNION ALL "
            f"SELECT {keys}, {reg}, {rank} FROM ex SEMI JOIN (SELECT DISTINCT {keys} FROM sk) USING ({keys})) "
            f"GROUP BY ALL), "
            f"est AS (SELECT {keys}, COUNT(*) filled, SUM(pow(2, -r)) inv FROM regs GROUP BY ALL), "
            f"exact AS (SELECT {keys}, COUNT(DISTINCT tenant) u FROM ex GROUP BY ALL) "
            f"SELECT {keys}, u, filled, inv FROM exact FULL JOIN est USING ({keys})", params + params)
        return {tuple(key): int(u or 0) if filled is None else round(estimate_from(int(filled), float(inv)))
                for *key, u, filled, inv in rows}

    def users_estimated(self, start: datetime | date | None = None, end: datetime | date | None = None) -> bool:
        """Whether distinct-user counts of this window are HyperLogLog estimates (about 1.6% standard
        error) rather than exact: some source sent a sketch for an hour in it."""
        where, params = self._where(start, end)
        return bool(self.rollup.query(f"SELECT EXISTS (SELECT 1 FROM sketches WHERE {where})", params)[0][0])

    def tier_users(self, start: datetime | date | None = None, end: datetime | date | None = None) -> dict[str, int]:
        """Distinct tenants per tier (a tenant counts once however many features it uses)."""
        return {t: n for (t,), n in self._users("tier", start, end).items()}

    def feature_tier_users(self, start: datetime | date | None = None,
                           end: datetime | date | None = None) -> dict[tuple[str, str], int]:
        return {(f, t): n for (f, t), n in self._users("feature, tier", start, end).items()}

    def tenant_requests(self, start: datetime | date | None = None, end: datetime | date | None = None,
                        keys: str = "feature, tier") -> dict[tuple[str, ...], list[float]]:
        """Requests per tenant, per `keys` ("feature, tier" or "tier"), for quota sizing. The rollup keeps
        tenants per hour and cell, not their request counts: a cell-hour's requests are shared evenly
        among its tenants (exact when one tenant is alone in it, as is usual for a user's hour on
        one feature). Tenants a source sent only as a HyperLogLog sketch (LiteLLM cell-hours with more
        than 16) have no identity to share requests with and are left out here."""
        where, params = self._where(start, end)
        rows = self.rollup.query(
            f"WITH n AS (SELECT hour, feature, tier, model, provider, outcome, SUM(requests) n FROM cells "
            f"WHERE {where} GROUP BY ALL), "
            f"d AS (SELECT DISTINCT hour, cell, tenant FROM tenants WHERE {where}), "
            f"k AS (SELECT hour, cell, tenant, COUNT(*) OVER (PARTITION BY hour, cell) k FROM d), "
            f"j AS (SELECT c.feature, c.tier, k.tenant, n.n / k.k AS share FROM k JOIN cell_names c USING (cell) "
            f"JOIN n ON n.hour = k.hour AND n.feature IS NOT DISTINCT FROM c.feature "
            f"AND n.tier IS NOT DISTINCT FROM c.tier AND n.model IS NOT DISTINCT FROM c.model "
            f"AND n.provider IS NOT DISTINCT FROM c.provider AND n.outcome IS NOT DISTINCT FROM c.outcome) "
            f"SELECT {keys}, SUM(share) FROM j GROUP BY {keys}, tenant ORDER BY ALL", params + params)
        out: dict[tuple[str, ...], list[float]] = {}
        for *key, n in rows:
            out.setdefault(tuple(key), []).append(float(n))
        return out

    def daily(self, start: datetime | date | None = None, end: datetime | date | None = None) -> list[ModelDay]:
        where, params = self._where(start, end)
        rows = self.rollup.query(
            f"SELECT feature, model, CAST(hour AS DATE) AS day, SUM(requests), SUM(input_tokens), SUM(output_tokens), "
            f"SUM(cache_read_tokens) FROM cells WHERE {where} GROUP BY ALL ORDER BY ALL", params)
        return [ModelDay(f, m, d, int(n), int(i), int(o), int(c)) for f, m, d, n, i, o, c in rows]

    def size_cells(self, start: datetime | date | None = None, end: datetime | date | None = None) -> list[SizeCell]:
        """A 2-D histogram of request sizes per (feature, model), on fixed bucket edges (sources that
        report only aggregates have no sizes and are left out)."""
        where, params = self._where(start, end)
        rows = self.rollup.query(
            f"SELECT feature, model, in_le, out_le, SUM(requests), SUM(input_tokens), SUM(output_tokens), "
            f"SUM(cache_read_tokens) FROM cells WHERE {where} AND in_le IS NOT NULL GROUP BY ALL ORDER BY ALL", params)
        return [SizeCell(f, m, None if ib == BEYOND else ib, None if ob == BEYOND else ob, int(n), int(i), int(o),
                         int(c)) for f, m, ib, ob, n, i, o, c in rows]

    def repeats(self, start: datetime | date | None = None, end: datetime | date | None = None) -> list[RepeatStats]:
        where, params = self._where(start, end)
        sql = f"""
        WITH fp AS (SELECT feature, model, SUM(n) AS n, SUM(input_tokens) AS si, SUM(output_tokens) AS so
                    FROM prompts WHERE {where} GROUP BY feature, model, hash),
        fpa AS (SELECT feature, model, SUM(n) AS hashed, SUM(n - 1) AS again, SUM((si * (n - 1)) // n) AS again_in,
                       SUM((so * (n - 1)) // n) AS again_out FROM fp GROUP BY ALL),
        px AS (SELECT feature, model, SUM(n) AS n, MIN(prefix_tokens) AS mp
               FROM prefixes WHERE {where} GROUP BY feature, model, hash),
        pxa AS (SELECT feature, model, SUM(n) AS prefixed, SUM((n - 1) * mp) AS again_prefix FROM px GROUP BY ALL),
        base AS (SELECT feature, model, SUM(cache_read_tokens) AS cached FROM cells
                 WHERE {where} AND in_le IS NOT NULL GROUP BY ALL)
        SELECT b.feature, b.model, COALESCE(hashed, 0), COALESCE(again, 0), COALESCE(again_in, 0),
               COALESCE(again_out, 0), COALESCE(prefixed, 0), COALESCE(again_prefix, 0), b.cached
        FROM base b LEFT JOIN fpa USING (feature, model) LEFT JOIN pxa USING (feature, model)
        ORDER BY ALL"""
        return [RepeatStats(f, m, int(h), int(a), int(ai), int(ao), int(p), int(ap), int(c))
                for f, m, h, a, ai, ao, p, ap, c in self.rollup.query(sql, params * 3)]

    def close(self) -> None:
        """Let go of the store file, so another process (a CLI run beside the daemon) can open it; the
        rollup itself is shared by the process and reopens the file on its next use."""
        self.rollup.release()


def _naive(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo is None else value.astimezone(timezone.utc).replace(tzinfo=None)
    return datetime(value.year, value.month, value.day)
