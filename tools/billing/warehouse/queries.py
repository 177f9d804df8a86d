"""One definition per billing question, written once in DuckDB's dialect and transpiled by sqlglot
to the warehouse's (Athena is Trino SQL; BigQuery GoogleSQL).

The questions are the ones the local reader (tools/billing/focus.py) answers, with its rules:
one cost column summed as DECIMAL(38,17), text dimensions trimmed (blank is NULL), a window is
[start, end) by ChargePeriodStart, and in daily series a row spanning several days is spread
evenly over them (a day counts when its midnight is in the window). Every query also restricts
the partition column to the window's partitions, so the warehouse prunes what it reads.

Values (dates, filter values, tag keys) are inlined as quoted literals: sqlglot re-emits them
per dialect, and PyAthena/BigQuery parameter styles differ. Nothing here runs a query.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlglot
from sqlglot import exp

from costwarden.tools.billing.columns import AMOUNT, DIMENSIONS, utc_naive
from costwarden.tools.billing.warehouse.settings import WarehouseSettings
from costwarden.tools.duckdb_sql import ident, sql_str
from costwarden.tools.errors import BillingInputError

TABLE = "cw_focus_table"  # the placeholder the real table replaces in the parsed query
Dialect = str  # "duckdb", "athena" or "bigquery"
MAX_SPAN_DAYS = 31  # the longest charge period: a billing period (a month)
_SIMPLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Query:
    """One question: its name (for logs and errors), DuckDB-dialect SQL and result column count."""

    name: str
    sql: str


def _ts(value: datetime | date) -> str:
    """A UTC instant literal: TIMESTAMP WITH TIME ZONE on Athena, TIMESTAMP on BigQuery."""
    return f"CAST('{utc_naive(value):%Y-%m-%d %H:%M:%S.%f}+00' AS TIMESTAMPTZ)"


def _ceil_day(value: datetime | date) -> date:
    t = utc_naive(value)
    return t.date() if t == datetime(t.year, t.month, t.day) else t.date() + timedelta(days=1)


class FocusQueries:
    """The query definitions of one warehouse table, cost column and tag map (DuckDB dialect)."""

    def __init__(self, settings: WarehouseSettings, cost_column: str = "EffectiveCost",
                 tag_map: dict[str, list[str]] | None = None) -> None:
        self.settings = settings
        self.cost = "effective_cost" if cost_column == "EffectiveCost" else "billed_cost"
        self.tag_map = tag_map or {}

    # -- building blocks ---------------------------------------------------------------------
    def col(self, name: str) -> str:
        return ident(self.settings.column(name))

    def amount(self, name: str) -> str:
        return f"CAST({self.col(name)} AS {AMOUNT})"

    def dim(self, dim: str) -> str:
        """A dimension's SQL: a FOCUS text column (trimmed, blank is NULL) or a Tags key (JSON text or
        an Athena map; exact key match: list each spelling in tag_map, the local reader ignores case)."""
        if dim in DIMENSIONS:
            return f"NULLIF(TRIM({self.col(dim)}), '')"
        keys = [dim[4:]] if dim.startswith("tag:") else self.tag_map.get(dim)
        if keys is None:
            raise BillingInputError(f"unknown billing dimension {dim!r}; use one of {', '.join(DIMENSIONS)}, "
                                    f"tag:<key> or a mapped tag ({', '.join(sorted(self.tag_map)) or 'none mapped'})")
        if not keys:
            return "CAST(NULL AS VARCHAR)"
        exprs = []
        for key in keys:
            if self.settings.tags_format == "map":  # element_at: NULL for a missing key (a subscript fails)
                exprs.append(f"NULLIF(TRIM(element_at({self.col('tags')}, {sql_str(key)})), '')")
                continue
            path = f"$.{key}" if _SIMPLE_KEY.match(key) else '$."' + key.replace('"', '\\"') + '"'
            exprs.append(f"NULLIF(TRIM(json_extract_string({self.col('tags')}, {sql_str(path)})), '')")
        return exprs[0] if len(exprs) == 1 else f"COALESCE({', '.join(exprs)})"

    def partition(self, start: datetime | date, end: datetime | date, *, spans: bool = False) -> str:
        """The partition predicate of [start, end) widened by the slack days ('TRUE' without a column).

        `spans`: the rows overlapping the window, not only those starting in it (daily series). A row
        lies in its billing period's month partition, but in a day partition only on its first day, so
        day partitions are read from a billing period (MAX_SPAN_DAYS) earlier."""
        s = self.settings
        if not s.partition_column:
            return "TRUE"
        col = s.partition_column  # validated: a plain name, left unquoted (_PARTITIONTIME is a pseudo-column)
        back = MAX_SPAN_DAYS if spans and s.partition_format != "month" else 0
        lo = utc_naive(start).date() - timedelta(days=s.partition_slack_days + back)
        hi = _ceil_day(end) + timedelta(days=s.partition_slack_days)
        if s.partition_format == "month":
            months, m = [], date(lo.year, lo.month, 1)
            while m < hi:
                months.append(f"'{m:%Y-%m}'")
                m = date(m.year + m.month // 12, m.month % 12 + 1, 1)
            return f"{col} IN ({', '.join(months)})"
        if s.partition_format == "date":
            return f"{col} >= DATE '{lo.isoformat()}' AND {col} < DATE '{hi.isoformat()}'"
        return f"{col} >= {_ts(lo)} AND {col} < {_ts(hi)}"

    def where(self, start: datetime | date, end: datetime | date, filters: dict[str, str] | None) -> str:
        clauses = [self.partition(start, end), f"{self.col('charge_start')} >= {_ts(start)}",
                   f"{self.col('charge_start')} < {_ts(end)}"]
        clauses += [f"{self.dim(d)} = {sql_str(v)}" for d, v in (filters or {}).items()]
        return " AND ".join(clauses)

    # -- the questions -------------------------------------------------------------------------
    def total(self, start: datetime | date, end: datetime | date, filters: dict[str, str] | None = None) -> Query:
        return Query("total", f"SELECT {self.dim('currency')} AS currency, SUM({self.amount(self.cost)}) AS cost "
                              f"FROM {TABLE} WHERE {self.where(start, end, filters)} GROUP BY 1 ORDER BY 1")

    def spend_by(self, dims: Sequence[str], start: datetime | date, end: datetime | date,
                 filters: dict[str, str] | None = None) -> Query:
        select = "".join(f"{self.dim(d)} AS d{i}, " for i, d in enumerate(dims))
        n = len(dims) + 1
        return Query("spend_by", f"SELECT {select}{self.dim('currency')} AS currency, "
                                 f"SUM({self.amount(self.cost)}) AS cost FROM {TABLE} "
                                 f"WHERE {self.where(start, end, filters)} "
                                 f"GROUP BY {', '.join(str(i) for i in range(1, n + 1))} ORDER BY cost DESC")

    def daily_spend(self, dims: Sequence[str], start: datetime | date, end: datetime | date,
                    filters: dict[str, str] | None = None) -> Query | None:
        """Spend per UTC day; None when the window holds no day's midnight (no query to run).

        The days are a literal calendar joined on each row's span: portable (no range/sequence
        functions), and it reads only the rows that overlap the window."""
        first, last = _ceil_day(start), _ceil_day(end) - timedelta(days=1)
        if last < first:
            return None
        days = ", ".join(f"(DATE '{first + timedelta(days=i)}')" for i in range((last - first).days + 1))
        cs, ce = self.col("charge_start"), self.col("charge_end")
        select = "".join(f"{self.dim(d)} AS d{i}, " for i, d in enumerate(dims))
        group = "".join(f"d{i}, " for i in range(len(dims)))
        span_end = last + timedelta(days=1)
        where = " AND ".join([self.partition(first, span_end, spans=True), f"{cs} < {_ts(span_end)}", f"{ce} > {_ts(first)}"]
                             + [f"{self.dim(d)} = {sql_str(v)}" for d, v in (filters or {}).items()])
        sql = f"""
        WITH spans AS (
            SELECT {select}{self.dim('currency')} AS currency, {self.amount(self.cost)} AS cost,
                   CAST({cs} AS DATE) AS first_day, CAST({ce} - INTERVAL 1 MILLISECOND AS DATE) AS end_day
            FROM {TABLE} WHERE {where}
        ), rows AS (
            SELECT {group}currency, cost, first_day, GREATEST(first_day, end_day) AS last_day,
                   DATE_DIFF('day', first_day, GREATEST(first_day, end_day)) + 1 AS n_days
            FROM spans
        ), calendar AS (
            SELECT day FROM (VALUES {days}) AS t(day)
        )
        SELECT {group}currency, calendar.day AS day,
               SUM(CASE WHEN n_days = 1 THEN cost ELSE CAST(CAST(cost AS {AMOUNT}) / n_days AS {AMOUNT}) END) AS cost
        FROM rows JOIN calendar ON calendar.day >= rows.first_day AND calendar.day <= rows.last_day
        GROUP BY {group}currency, calendar.day ORDER BY {group}currency, day"""
        return Query("daily_spend", sql)

    def unused_commitments(self, start: datetime | date, end: datetime | date) -> Query:
        """Unused commitment spend, valued in EffectiveCost whatever the cost column (see focus.py)."""
        return Query("unused_commitments",
                     f"SELECT {self.dim('provider')} AS provider, {self.dim('service')} AS service, "
                     f"{self.dim('currency')} AS currency, SUM({self.amount('effective_cost')}) AS cost "
                     f"FROM {TABLE} WHERE {self.where(start, end, None)} "
                     f"AND TRIM({self.col('commitment_status')}) = 'Unused' GROUP BY 1, 2, 3 ORDER BY 4 DESC")

    def period(self, start: datetime | date, end: datetime | date) -> Query:
        """The first ChargePeriodStart and last ChargePeriodEnd of the rows starting in [start, end)."""
        return Query("period", f"SELECT MIN({self.col('charge_start')}) AS first_start, "
                               f"MAX({self.col('charge_end')}) AS last_end FROM {TABLE} "
                               f"WHERE {self.where(start, end, None)}")


def _bigquery_types(node: exp.Expression) -> exp.Expression:
    """DECIMAL(38,17) is BIGNUMERIC on BigQuery (NUMERIC keeps only 9 fractional digits)."""
    if isinstance(node, exp.DataType) and node.this == exp.DataType.Type.DECIMAL:
        return exp.DataType.build("BIGDECIMAL")
    return node


def transpile(query: Query, dialect: Dialect, table: str) -> str:
    """The query in the warehouse's dialect, reading `table` (`db.table` or `project.dataset.table`)."""
    tree = sqlglot.parse_one(query.sql, read="duckdb")
    if not isinstance(tree, exp.Select):  # read-only by construction: nothing else is ever sent
        raise BillingInputError(f"warehouse query '{query.name}' is not a SELECT")
    parts = table.split(".")  # validated names; quoted, so a project id with '-' stays one identifier
    target = exp.table_(parts[-1], db=parts[-2], catalog=parts[0] if len(parts) == 3 else None, quoted=True)
    tree = tree.transform(lambda n: target.copy() if isinstance(n, exp.Table) and n.name == TABLE else n)
    if dialect == "bigquery":
        tree = tree.transform(_bigquery_types)
    return tree.sql(dialect=dialect)
