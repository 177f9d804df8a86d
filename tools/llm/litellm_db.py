"""Token usage from the LiteLLM proxy's own database, aggregated inside the database, read-only.

The proxy writes every request to `LiteLLM_SpendLogs` and keeps daily aggregates next to it.
Costwarden reads, by preference:

- **daily tables** when they hold rows (`LiteLLM_DailyUserSpend`, which gets a row for every request, and
  `LiteLLM_DailyTagSpend` for `feature:<name>` tags): one UsageAggregate per (day, feature, model,
  provider, outcome), stamped at the day's midnight UTC. A day is read once it has ended
  (plus `settle`), since the proxy keeps adding to today's rows. The tag table has one row per
  tag, so tiers cannot be crossed with features there: tier is `unknown`; tenants are not known.
- **`LiteLLM_SpendLogs`** when the daily tables are absent (older proxies): hourly cells with
  `feature:`/`tier:` request tags, distinct tenants (`end_user`, else `user`) and outcomes
  (`status`), read up to the last whole hour that ended `settle` ago (the proxy writes its spend
  logs in batches, so the newest minutes are still arriving). A cell's tenants come back as a set
  when it has at most TENANT_SET_MAX, else as a HyperLogLog sketch computed in the database
  (tools/llm/sketch.py), so the rollup can merge them across cells and hours without summing.

Either way the GROUP BY runs in the database and only the cells come back. `read(since)` returns
the cells of whole periods in [since, watermark) and the watermark to pass next time, so each
period is read exactly once. SQLAlchemy Core: PostgreSQL (the proxy's database) and SQLite
(tests; SQLite has no md5, so the sketch's register and rank are two Python functions registered
on the connection, still called inside SQLite's GROUP BY).
Transactions are read-only (PostgreSQL `SET TRANSACTION READ ONLY`, SQLite `PRAGMA query_only`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from sqlalchemy import DateTime, Float, BigInteger, String, case, column, create_engine, event, func, inspect, \
    literal_column, select, table, text
from sqlalchemy.engine import Connection, Engine

from costwarden.tools.errors import BillingInputError
from costwarden.tools.llm.fields import UsageAggregate
from costwarden.tools.llm.sketch import PG_BITS, PG_RANK, PG_REGISTER, SQLITE_RANK, SQLITE_REGISTER, sqlite_functions

SPEND_LOGS, DAILY_USER, DAILY_TAG = "LiteLLM_SpendLogs", "LiteLLM_DailyUserSpend", "LiteLLM_DailyTagSpend"
TENANT_SET_MAX = 16  # distinct tenants of an hourly cell sent as a set (beyond: a HyperLogLog sketch): a
# cap, so the tenants never come back row by row (64 brought back 940,000 names for a million rows: 53 s, 1.5 GB)
_SUMS = ("prompt_tokens", "completion_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")

_logs = table(SPEND_LOGS, column("startTime", DateTime), column("model", String), column("model_group", String),
              column("custom_llm_provider", String), column("request_tags"), column("end_user", String),
              column("user", String), column("status", String), column("prompt_tokens", BigInteger),
              column("completion_tokens", BigInteger), column("spend", Float))


def _daily(name: str, *extra: str) -> Any:
    return table(name, column("date", String), column("model", String), column("model_group", String),
                 column("custom_llm_provider", String), column("spend", Float), column("api_requests", BigInteger),
                 column("successful_requests", BigInteger), column("failed_requests", BigInteger),
                 *(column(c, BigInteger) for c in _SUMS), *(column(c, String) for c in extra))


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class LiteLLMDatabase:
    def __init__(self, url: str, *, source: Literal["auto", "daily", "spend_logs"] = "auto",
                 settle: timedelta = timedelta(minutes=15), clock: Any = None) -> None:
        self.url = url
        self.source = source
        self.settle = settle
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            try:
                self._engine = create_engine(self.url, pool_pre_ping=True)
                if self._engine.dialect.name == "sqlite":  # no md5 there: the sketch's hash as functions
                    event.listen(self._engine, "connect", lambda dbapi_con, _: sqlite_functions(dbapi_con))
            except Exception as exc:  # noqa: BLE001 - a bad URL or a missing driver: one line
                raise BillingInputError(f"billing.litellm_database_url: {exc.__class__.__name__}: {exc}") from None
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    def read(self, since: datetime | None) -> tuple[list[UsageAggregate], datetime]:
        """Cells of the whole periods in [since, watermark), and the watermark."""
        try:
            with self.engine.connect() as con:
                self.read_only(con)
                tables = set(inspect(con).get_table_names())
                daily = DAILY_USER in tables and (self.source == "daily" or self.source == "auto" and (
                    SPEND_LOGS not in tables or con.execute(select(1).select_from(_daily(DAILY_USER)).limit(1)).first()))
                if self.source == "daily" and DAILY_USER not in tables:
                    raise BillingInputError(f"LiteLLM database: no {DAILY_USER} table (source: daily)")
                if not daily and SPEND_LOGS not in tables:
                    raise BillingInputError(f"LiteLLM database: neither {DAILY_USER} nor {SPEND_LOGS} is there")
                return self._daily(con, since, DAILY_TAG in tables) if daily else self._spend_logs(con, since)
        except BillingInputError:
            raise
        except Exception as exc:  # noqa: BLE001 - unreachable, no permission...: one line, no URL (it holds a password)
            raise BillingInputError(f"LiteLLM database: {exc.__class__.__name__}: "
                                    f"{str(exc).splitlines()[0] if str(exc) else ''}") from None

    def read_only(self, con: Connection) -> None:
        if con.dialect.name == "postgresql":
            con.execute(text("SET TRANSACTION READ ONLY"))
        elif con.dialect.name == "sqlite":
            con.execute(text("PRAGMA query_only = ON"))

    # --- LiteLLM_SpendLogs: hourly ----------------------------------------------------------------------
    def _spend_logs(self, con: Connection, since: datetime | None) -> tuple[list[UsageAggregate], datetime]:
        end = (self.clock() - self.settle).replace(minute=0, second=0, microsecond=0)
        pg = con.dialect.name == "postgresql"
        inner = select(
            _hour(pg).label("hour"),
            func.coalesce(_tag(pg, "feature"), func.nullif(_logs.c.model_group, ""), "unattributed").label("feature"),
            func.coalesce(_tag(pg, "tier"), "unknown").label("tier"),
            func.coalesce(_logs.c.model, "").label("model"),
            func.lower(func.coalesce(func.nullif(_logs.c.custom_llm_provider, ""), _prefix(pg), "unknown")).label("provider"),
            func.lower(func.coalesce(func.nullif(_logs.c.status, ""), "unknown")).label("outcome"),
            func.coalesce(func.nullif(_logs.c.end_user, ""), func.nullif(_logs.c.user, "")).label("tenant"),
            _logs.c.prompt_tokens, _logs.c.completion_tokens, _logs.c.spend,
        ).where(_logs.c.startTime < end.replace(tzinfo=None))
        if since is not None:
            inner = inner.where(_logs.c.startTime >= _utc(since).replace(tzinfo=None))
        s = inner.subquery("s")
        keys = (s.c.hour, s.c.feature, s.c.tier, s.c.model, s.c.provider, s.c.outcome)
        # three levels, one scan: (cell, tenant), then (cell, HyperLogLog register), then cell. A
        # tenant falls in one register, so the cell's distinct count is exact; the tenants come back
        # when a cell has at most TENANT_SET_MAX of them (a set the rollup merges exactly), a larger
        # cell sends the largest rank of each register instead (one array of at most 4096 integers)
        t = select(*keys, s.c.tenant, func.count().label("n"), func.sum(s.c.prompt_tokens).label("i"),
                   func.sum(s.c.completion_tokens).label("o"), func.sum(s.c.spend).label("sp"),
                   *([literal_column(PG_BITS.format(x="s.tenant")).label("b")] if pg else [])
                   ).group_by(*keys, s.c.tenant).subquery("t")
        if pg:
            reg, rank = literal_column(PG_REGISTER.format(b="t.b")), literal_column(PG_RANK.format(b="t.b"))
        else:
            reg, rank = literal_column(SQLITE_REGISTER.format(x="t.tenant")), \
                literal_column(SQLITE_RANK.format(x="t.tenant"))
        tk = (t.c.hour, t.c.feature, t.c.tier, t.c.model, t.c.provider, t.c.outcome)
        r = select(*tk, reg.label("reg"), func.max(rank).label("rk"), func.sum(t.c.n).label("n"),
                   func.sum(t.c.i).label("i"), func.sum(t.c.o).label("o"), func.sum(t.c.sp).label("sp"),
                   func.count(t.c.tenant).label("u"),
                   (func.array_agg(t.c.tenant) if pg else func.json_group_array(t.c.tenant)).label("names")
                   ).group_by(*tk, reg).subquery("r")
        rk_ = (r.c.hour, r.c.feature, r.c.tier, r.c.model, r.c.provider, r.c.outcome)
        u = func.sum(r.c.u)
        names = func.jsonb_agg(r.c.names) if pg else func.json_group_array(func.json(r.c.names))
        packed = r.c.reg * 64 + r.c.rk
        regs = func.array_agg(packed) if pg else func.json_group_array(packed)
        q = select(*rk_, func.sum(r.c.n), func.sum(r.c.i), func.sum(r.c.o), func.sum(r.c.sp), u,
                   case((u <= TENANT_SET_MAX, names), else_=None),
                   case((u > TENANT_SET_MAX, regs), else_=None)).group_by(*rk_)
        out = [UsageAggregate(hour=_as_hour(h), feature=f, tier=t, model=m, provider=p, outcome=o, requests=int(n),
                              input_tokens=int(i or 0), output_tokens=int(oo or 0), cache_read_tokens=0,
                              cache_write_tokens=0, reported_cost=float(c) if c is not None else None,
                              tenants=int(u), tenant_ids=None if u > TENANT_SET_MAX else _names(ids),
                              tenant_sketch=None if u <= TENANT_SET_MAX else _registers(rr))
               for h, f, t, m, p, o, n, i, oo, c, u, ids, rr in con.execute(q)]
        return out, end

    # --- daily tables -----------------------------------------------------------------------------------
    def _daily(self, con: Connection, since: datetime | None, tags: bool) -> tuple[list[UsageAggregate], datetime]:
        end = (self.clock() - self.settle).replace(hour=0, minute=0, second=0, microsecond=0)
        lo = None if since is None else _utc(since).strftime("%Y-%m-%d")
        hi = end.strftime("%Y-%m-%d")
        user = _daily(DAILY_USER)
        totals = _daily_sums(con, user, None, lo, hi)
        tagged = _daily_sums(con, _daily(DAILY_TAG, "tag"), "feature:", lo, hi) if tags else {}
        cells: dict[tuple[str, str, str, str, str], list[float]] = defaultdict(lambda: [0.0] * 7)
        for (day, group, model, provider, feature), v in tagged.items():
            _add(cells[(day, feature, model, provider, "")], v)
            rest = totals.get((day, group, model, provider, ""))
            if rest is not None:  # what the feature tags cover is not untagged usage
                totals[(day, group, model, provider, "")] = [max(0.0, a - b) for a, b in zip(rest, v)]
        for (day, group, model, provider, _), v in totals.items():
            _add(cells[(day, group or "unattributed", model, provider, "")], v)
        out = []
        for (day, feature, model, provider, _), (ok, failed, i, o, cr, cw, spend) in sorted(cells.items()):
            hour = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc)
            common = dict(hour=hour, feature=feature, tier="unknown", model=model, provider=provider, tenants=None)
            if ok or i or o:
                out.append(UsageAggregate(**common, outcome="success", requests=int(ok), input_tokens=int(i),
                                          output_tokens=int(o), cache_read_tokens=int(cr), cache_write_tokens=int(cw),
                                          reported_cost=spend))
            if failed:
                out.append(UsageAggregate(**common, outcome="failure", requests=int(failed), input_tokens=0,
                                          output_tokens=0, cache_read_tokens=0, cache_write_tokens=0, reported_cost=0.0))
        return out, end


def _names(value: Any) -> tuple[str, ...]:
    """A cell's tenant set as PostgreSQL (JSON of arrays, one a register) or SQLite (the same as text)
    returns it."""
    groups = json.loads(value) if isinstance(value, str) else value or ()
    return tuple(sorted(str(t) for g in groups for t in g or () if t is not None))


def _registers(value: Any) -> tuple[int, ...]:
    """A cell's packed registers (register * 64 + rank) as PostgreSQL (an array) or SQLite (JSON) returns
    them; the row of requests without a tenant has no register."""
    items = json.loads(value) if isinstance(value, str) else value or ()
    return tuple(sorted(int(v) for v in items if v is not None))


def _add(into: list[float], values: list[float]) -> None:
    for k, v in enumerate(values):
        into[k] += v


def _daily_sums(con: Connection, t: Any, tag_prefix: str | None, lo: str | None,
                hi: str) -> dict[tuple[str, str, str, str, str], list[float]]:
    """(date, model_group, model, provider, feature) -> [ok, failed, input, output, cache read, cache write, spend]."""
    pg = con.dialect.name == "postgresql"
    provider = func.lower(func.coalesce(func.nullif(t.c.custom_llm_provider, ""), _prefix(pg, t.c.model), "unknown"))
    keys = [t.c.date, func.coalesce(t.c.model_group, ""), func.coalesce(t.c.model, ""), provider]
    if tag_prefix is not None:
        keys.append(func.substr(t.c.tag, len(tag_prefix) + 1))
    # a row without the success/failure split (older proxies) counts its api_requests as successes
    ok = func.sum(func.coalesce(t.c.successful_requests, 0) + func.coalesce(t.c.failed_requests, 0))
    q = select(*keys, func.sum(t.c.api_requests), ok, func.sum(t.c.successful_requests),
               func.sum(t.c.failed_requests), *(func.sum(t.c[c]) for c in _SUMS), func.sum(t.c.spend))
    q = q.where(t.c.date < hi).group_by(*keys)
    if lo is not None:
        q = q.where(t.c.date >= lo)
    if tag_prefix is not None:
        q = q.where(t.c.tag.like(tag_prefix + "%"))
    out = {}
    for row in con.execute(q):
        key = (*(str(x) for x in row[:4]), str(row[4]) if tag_prefix is not None else "")
        api, split, succ, failed, *rest = (float(x or 0) for x in row[len(keys):])
        out[key] = [succ if split else api, failed, *rest]
    return out


def _hour(pg: bool) -> Any:
    if pg:
        return func.date_trunc("hour", _logs.c.startTime)
    return func.strftime("%Y-%m-%d %H:00:00", _logs.c.startTime)


def _as_hour(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return _utc(value)


def _prefix(pg: bool, model: Any = None) -> Any:
    """The provider prefix of a model name ('azure/gpt-4o' -> 'azure'), else NULL."""
    m = _logs.c.model if model is None else model
    if pg:
        return func.nullif(func.split_part(m, "/", 1), m)
    return func.nullif(func.substr(m, 1, func.instr(m, "/") - 1), "")


def _tag(pg: bool, name: str) -> Any:
    """The value of the first `<name>:<value>` entry of request_tags (a JSON array), else NULL."""
    n = len(name) + 2
    if pg:  # one jsonpath call per row: 2.5x faster than a subquery over jsonb_array_elements_text;
        # strict + silent: anything but an array of strings yields NULL, as before
        return literal_column(
            f"substr(jsonb_path_query_first(CAST(\"{SPEND_LOGS}\".request_tags AS jsonb), "
            f"'strict $[*] ? (@ starts with \"{name}:\")', '{{}}', true) #>> '{{}}', {n})")
    return literal_column(
        f"(SELECT substr(value, {n}) FROM json_each(CASE WHEN json_valid(\"{SPEND_LOGS}\".request_tags) "
        f"AND json_type(\"{SPEND_LOGS}\".request_tags) = 'array' THEN \"{SPEND_LOGS}\".request_tags ELSE '[]' END) "
        f"WHERE value LIKE '{name}:%' LIMIT 1)")
