"""FOCUS 1.x billing exports (CSV or Parquet, many files or globs at once) read with DuckDB.

The export is never turned into Python row objects: every question is one aggregate SQL query
over a view of all the files, and only the small result comes back. Why each rule is here:

- Every column is read as its FOCUS meaning, whatever its type in the file (tools/billing/columns.py):
  account ids stay strings, a bad value is an error naming the file, column and row.
- Amounts are DECIMAL(38,17): FOCUS amounts carry up to 17 fractional digits, and totals must be
  exact to the cent however many million rows they sum.
- One cost column is reported, EffectiveCost by default. Commitment purchase rows carry
  BilledCost with EffectiveCost 0 and the committed usage rows the reverse, so summing both
  would count a commitment twice.
- ChargePeriod granularity is mixed (hourly, daily and monthly rows in one file): a row spanning
  several days is spread evenly over them in daily views, so a monthly fee does not look like a
  spike on the 1st. Totals over a period are not spread and stay exact.
- Credit rows are negative with a null ResourceId; they are kept, so net spend is right.
- A sweep and a report ask a dozen questions of the same export: those the daily cube can answer
  (tools/billing/cube.py) come from one shared scan; the others read the rows.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from costwarden.tools.billing.columns import (AMOUNT, COLUMNS, DAY_US, DIMENSIONS, TEXT, TS, CostColumn, Source,
                                              SpendRow, data_end_of, epoch_us, tag_value_sql, utc_naive)
from costwarden.tools.billing.cube import CUBES, DailyCube, file_key
from costwarden.tools.billing.paths import expand_paths
from costwarden.tools.duckdb_sql import first_line, ident
from costwarden.tools.errors import BillingInputError

__all__ = ["BillingInputError", "CostColumn", "FocusExport", "SpendRow"]


def check_not_empty(path: str) -> str | None:
    """An empty file is an error saying so (not "missing column"); a CSV with a header and no rows is
    a warning (it adds nothing, which is worth knowing before trusting a total)."""
    if os.path.getsize(path) == 0:
        raise BillingInputError(f"{path}: empty file (0 bytes): not a FOCUS export")
    lower = path.lower()
    if not lower.endswith((".csv", ".csv.gz", ".tsv")):
        return None
    opener: Any = gzip.open if lower.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            header = fh.readline()
            rest = fh.read(65536)
    except OSError as exc:
        raise BillingInputError(f"{path}: cannot read: {exc}") from None
    if not header.strip():
        raise BillingInputError(f"{path}: empty file (no header): not a FOCUS export")
    if not rest.strip():
        return f"{path}: header only, no rows"
    return None


@dataclass
class FocusExport:
    """A DuckDB view named `focus` over every file of one export, with normalised columns.

    Build it once per sweep; each query method runs one aggregate over the files.
    """

    paths: Sequence[str | Path]
    cost_column: CostColumn = "EffectiveCost"
    tag_map: dict[str, list[str]] = field(default_factory=dict)  # e.g. {"feature": ["feature", "app"]}
    tag_case_sensitive: bool = False  # Tags keys match whatever their case (`Owner` is `owner`)
    files: list[str] = field(default_factory=list, init=False)
    warnings: list[str] = field(default_factory=list, init=False)  # e.g. a file with a header and no rows

    def __post_init__(self) -> None:
        if self.cost_column not in ("EffectiveCost", "BilledCost"):
            raise BillingInputError(f"cost column {self.cost_column!r}: use EffectiveCost or BilledCost")
        self.files = expand_paths(None, self.paths)
        if not self.files:
            raise BillingInputError("no FOCUS files given")
        self.warnings = [w for w in (check_not_empty(f) for f in self.files) if w]
        key = (file_key(self.files), self.cost_column, self.tag_case_sensitive,
               tuple((dim, tuple(self.tag_map[dim])) for dim in sorted(self.tag_map)))
        self.con, shared = CUBES.cursor(key)
        self._sources = [Source.open(self.con, path, shared.types) for path in self.files]
        self.con.execute("CREATE TEMP VIEW focus AS " + " UNION ALL ".join(s.view_select() for s in self._sources))
        self._cube = DailyCube(shared, self._sources, self.tag_map, self._cost, self._run, self.tag_case_sensitive)

    # -- querying -------------------------------------------------------------------------------
    @property
    def _cost(self) -> str:
        return "effective_cost" if self.cost_column == "EffectiveCost" else "billed_cost"

    def _dim(self, dim: str, params: list[Any], *, cube: bool = False) -> str:
        """The SQL of a dimension: a column of `focus`, or of the cube (`cube`) for a mapped tag."""
        if dim in DIMENSIONS:
            return dim
        if cube and dim in self._cube.tag_cols:
            return self._cube.tag_cols[dim]
        keys: list[str]
        if dim.startswith("tag:"):
            keys = [dim[4:]]
        elif dim in self.tag_map:
            keys = list(self.tag_map[dim])
        else:
            raise BillingInputError(f"unknown billing dimension {dim!r}; use one of {', '.join(DIMENSIONS)}, "
                                    f"tag:<key> or a mapped tag ({', '.join(sorted(self.tag_map)) or 'none mapped'})")
        exprs = []
        for key in keys:
            sql, param = tag_value_sql("tags", key, self.tag_case_sensitive)
            params.append(param)
            exprs.append(sql)
        if not exprs:  # a dimension mapped to no key has no value
            return "CAST(NULL AS VARCHAR)"
        return f"COALESCE({', '.join(exprs)})" if len(exprs) > 1 else exprs[0]

    def _where(self, start: datetime | date | None, end: datetime | date | None, params: list[Any],
               filters: dict[str, str] | None = None, *, day_col: str = "charge_start", cube: bool = False) -> str:
        clauses = []
        if start is not None:
            clauses.append(f"{day_col} >= ?")
            params.append(utc_naive(start))
        if end is not None:
            clauses.append(f"{day_col} < ?")
            params.append(utc_naive(end))
        for dim, value in (filters or {}).items():
            clauses.append(f"{self._dim(dim, params, cube=cube)} = ?")
            params.append(value)
        return ("WHERE " + " AND ".join(clauses)) if clauses else ""

    def _run(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        try:
            return self.con.execute(sql, params).fetchall()
        except Exception as exc:  # noqa: BLE001
            import duckdb

            if isinstance(exc, duckdb.ConversionException):
                raise self._diagnose() from None
            raise BillingInputError(f"{', '.join(self.files)}: {first_line(exc)}") from None

    def _diagnose(self) -> BillingInputError:
        """A cast failed somewhere: find the file, column, row and value, so the user can fix it."""
        for source in self._sources:
            path, reader, mapping = source.path, source.reader, source.mapping
            for name, column in mapping.items():
                kind = COLUMNS[name][1]
                if kind == TEXT:
                    continue
                target = "TIMESTAMPTZ" if kind == TS else AMOUNT
                col = ident(column)
                row = self.con.execute(
                    f"SELECT n, v FROM (SELECT row_number() OVER () AS n, NULLIF(TRIM(CAST({col} AS VARCHAR)), '') AS v "
                    f"FROM {reader}) WHERE v IS NOT NULL AND TRY_CAST(v AS {target}) IS NULL LIMIT 1").fetchone()
                if row:
                    what = "a timestamp" if kind == TS else "a decimal amount"
                    return BillingInputError(f"{path}: column '{column}', data row {row[0]}: "
                                             f"cannot read {row[1]!r} as {what}")
        return BillingInputError(f"{', '.join(self.files)}: a value could not be converted")

    # -- questions ------------------------------------------------------------------------------
    def total(self, start: datetime | date | None = None, end: datetime | date | None = None,
              filters: dict[str, str] | None = None) -> dict[str, Decimal]:
        """Exact spend per billing currency over [start, end) by ChargePeriodStart."""
        params: list[Any] = []
        if self._cube.answers([], filters):
            self._cube.ready([], filters)
            source = self._cube.window(start, end)
            where = self._where(None, None, params, filters, cube=True)
            rows = self._run(f"SELECT currency, SUM(cost) FROM {source} {where} GROUP BY 1 ORDER BY 1", params)
        else:
            where = self._where(start, end, params, filters)
            rows = self._run(f"SELECT currency, SUM({self._cost}) FROM focus {where} GROUP BY 1 ORDER BY 1", params)
        return {cur: Decimal(total or 0) for cur, total in rows}

    def spend_by(self, dims: Sequence[str], start: datetime | date | None = None,
                 end: datetime | date | None = None, filters: dict[str, str] | None = None) -> list[SpendRow]:
        """Exact spend over the period grouped by the dimensions, largest first."""
        params: list[Any] = []
        cubed = self._cube.answers(dims, filters)
        exprs = [self._dim(d, params, cube=cubed) for d in dims]
        if cubed:
            self._cube.ready(dims, filters)
            source, cost = self._cube.window(start, end), "cost"
            where = self._where(None, None, params, filters, cube=True)
        else:
            source, cost = "focus", self._cost
            where = self._where(start, end, params, filters)
        select = ", ".join(f"{e} AS d{i}" for i, e in enumerate(exprs))
        group = ", ".join(f"d{i}" for i in range(len(exprs)))
        sql = (f"SELECT {select + ', ' if select else ''}currency, SUM({cost}) AS cost FROM {source} {where} "
               f"GROUP BY {group + ', ' if group else ''}currency ORDER BY cost DESC")
        return [SpendRow(dict(zip(dims, r[:-2])), None, Decimal(r[-1] or 0), r[-2]) for r in self._run(sql, params)]

    def daily_spend(self, dims: Sequence[str], start: datetime | date | None = None,
                    end: datetime | date | None = None, filters: dict[str, str] | None = None) -> list[SpendRow]:
        """Spend per UTC day grouped by the dimensions; rows spanning days are spread evenly."""
        if not self._cube.answers(dims, filters):
            return self._daily_spend_rows(dims, start, end, filters)
        self._cube.ready(dims, filters)
        params: list[Any] = []
        exprs = [self._dim(d, params, cube=True) for d in dims]
        dim_select = "".join(f"{e} AS d{i}, " for i, e in enumerate(exprs))
        group = "".join(f"d{i}, " for i in range(len(exprs)))
        inner = self._where(None, None, params, filters, cube=True)  # dimension filters apply to rows, dates to days
        days = []  # a day counts when its midnight is in [start, end), as in _daily_spend_rows
        if start is not None:
            days.append(f"day >= {-(-epoch_us(start) // DAY_US)}")
        if end is not None:
            days.append(f"day < {-(-epoch_us(end) // DAY_US)}")
        sql = f"""
        WITH rows AS (
            SELECT {dim_select}currency, cost, first_day, last_day, last_day - first_day + 1 AS n_days
            FROM cube {inner}
        ), days AS (
            SELECT {group}currency, first_day AS day, cost FROM rows WHERE n_days <= 1
            UNION ALL
            SELECT {group}currency, t.day, CAST(cost / n_days AS {AMOUNT}) AS cost
            FROM rows, UNNEST(range(first_day, last_day + 1)) AS t(day) WHERE n_days > 1
        )
        SELECT {group}currency, DATE '1970-01-01' + CAST(day AS INTEGER), SUM(cost) FROM days
        {"WHERE " + " AND ".join(days) if days else ""}
        GROUP BY {group}currency, day ORDER BY {group}currency, day"""
        rows = self._run(sql, params)
        n = len(dims)
        return [SpendRow(dict(zip(dims, r[:n])), r[n + 1], Decimal(r[n + 2] or 0), r[n]) for r in rows]

    def _daily_spend_rows(self, dims: Sequence[str], start: datetime | date | None = None,
                          end: datetime | date | None = None,
                          filters: dict[str, str] | None = None) -> list[SpendRow]:
        """daily_spend over the rows themselves, for dimensions the cube does not keep."""
        params: list[Any] = []
        exprs = [self._dim(d, params) for d in dims]
        dim_select = "".join(f"{e} AS d{i}, " for i, e in enumerate(exprs))
        group = "".join(f"d{i}, " for i in range(len(exprs)))
        inner = self._where(None, None, params, filters)  # dimension filters apply to rows, dates to days
        outer_params: list[Any] = []
        where = self._where(start, end, outer_params, day_col="day")
        # one-day rows (hourly, daily) group directly; longer rows are spread over their days
        sql = f"""
        WITH rows AS (
            SELECT {dim_select}currency, {self._cost} AS cost, charge_start, charge_end,
                   date_diff('day', CAST(charge_start AS DATE), CAST(charge_end - INTERVAL 1 MICROSECOND AS DATE)) + 1
                       AS n_days
            FROM focus {inner}
        ), days AS (
            SELECT {group}currency, CAST(charge_start AS DATE) AS day, cost FROM rows WHERE n_days <= 1
            UNION ALL
            SELECT {group}currency, CAST(d AS DATE) AS day, CAST(cost / n_days AS {AMOUNT}) AS cost
            FROM rows, UNNEST(range(CAST(CAST(charge_start AS DATE) AS TIMESTAMP),
                                    CAST(CAST(charge_end - INTERVAL 1 MICROSECOND AS DATE) AS TIMESTAMP)
                                    + INTERVAL 1 DAY, INTERVAL 1 DAY)) AS t(d)
            WHERE n_days > 1
        )
        SELECT {group}currency, day, SUM(cost) FROM days {where}
        GROUP BY {group}currency, day ORDER BY {group}currency, day"""
        rows = self._run(sql, params + outer_params)
        n = len(dims)
        return [SpendRow(dict(zip(dims, r[:n])), r[n + 1], Decimal(r[n + 2] or 0), r[n]) for r in rows]

    def unused_commitments(self, start: datetime | date | None = None,
                           end: datetime | date | None = None) -> list[SpendRow]:
        """Unused commitment rows (CommitmentDiscountStatus = Unused): paid for, used by nothing.

        Valued in EffectiveCost whatever the cost column: under BilledCost these rows carry 0 because
        the purchase row already billed them, so they are part of the total, never added to it."""
        rows = self._run(f"SELECT provider, service, currency, SUM(unused) FROM {self._cube.window(start, end)} "
                         f"WHERE unused IS NOT NULL GROUP BY 1, 2, 3 ORDER BY 4 DESC", [])
        return [SpendRow({"provider": p, "service": s}, None, Decimal(c or 0), cur) for p, s, cur, c in rows]

    def period(self) -> tuple[datetime, datetime] | None:
        row = self._run("SELECT MIN(charge_start), MAX(charge_end) FROM focus", [])[0]
        return None if row[0] is None else (row[0], row[1])

    def data_end(self) -> datetime | None:
        """Midnight after the export's last complete day: see columns.data_end_of."""
        return data_end_of(self.period())

    def data_start(self) -> date | None:
        """The export's first UTC day (of its earliest ChargePeriodStart), read from the daily cube, so
        it costs no scan of the files: budgets estimate the days of the month before it."""
        self._cube.ensure()
        first = self._run("SELECT MIN(first_day) FROM cube", [])[0][0]
        return None if first is None else date.fromordinal(date(1970, 1, 1).toordinal() + int(first))

    def row_count(self) -> int:
        self._cube.ensure()
        return int(self._run("SELECT COALESCE(SUM(n), 0) FROM cube", [])[0][0])

    def close(self) -> None:
        self.con.close()
