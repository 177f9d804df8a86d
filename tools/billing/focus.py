"""FOCUS 1.x billing exports (CSV or Parquet, many files or globs at once) read with DuckDB.

The export is never turned into Python row objects: every question is one aggregate SQL query
over a view of all the files, and only the small result comes back. Why each rule is here:

- CSV is read with every column as VARCHAR and cast explicitly, so an all-digit account id
  such as ``012345678901`` stays a string with its leading zero (type guessing would make it an
  integer) and a bad amount is an error that names the file and column, not a silent NULL.
- Amounts are DECIMAL(38,17): FOCUS amounts carry up to 17 fractional digits, and totals must be
  exact to the cent however many million rows they sum.
- One cost column is reported, EffectiveCost by default. Commitment purchase rows carry
  BilledCost with EffectiveCost 0 and the committed usage rows the reverse, so summing both
  would count a commitment twice.
- FOCUS 1.3 renamed ProviderName to ServiceProviderName; either is accepted (the new one wins).
- ChargePeriod granularity is mixed (hourly, daily and monthly rows in one file): a row spanning
  several days is spread evenly over them in daily views, so a monthly fee does not look like a
  spike on the 1st. Totals over a period are not spread and stay exact.
- Credit rows are negative with a null ResourceId; they are kept, so net spend is right.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from tools.errors import ToolError

AMOUNT = "DECIMAL(38,17)"


class BillingInputError(ToolError):
    """A billing or usage file is missing, lacks a required column or holds an unreadable value."""


# logical name -> (FOCUS column(s), first present wins; SQL type; required)
_TEXT, _TS, _NUM = "text", "timestamp", "amount"
COLUMNS: dict[str, tuple[tuple[str, ...], str, bool]] = {
    "provider": (("ServiceProviderName", "ProviderName"), _TEXT, True),
    "billing_account": (("BillingAccountId",), _TEXT, True),
    "sub_account": (("SubAccountId",), _TEXT, False),
    "service": (("ServiceName",), _TEXT, True),
    "service_category": (("ServiceCategory",), _TEXT, False),
    "region": (("RegionId",), _TEXT, False),
    "resource_id": (("ResourceId",), _TEXT, False),
    "sku_id": (("SkuId",), _TEXT, False),
    "charge_category": (("ChargeCategory",), _TEXT, True),
    "commitment_status": (("CommitmentDiscountStatus",), _TEXT, False),
    "currency": (("BillingCurrency",), _TEXT, True),
    "tags": (("Tags",), _TEXT, False),
    "charge_start": (("ChargePeriodStart",), _TS, True),
    "charge_end": (("ChargePeriodEnd",), _TS, True),
    "billed_cost": (("BilledCost",), _NUM, True),
    "effective_cost": (("EffectiveCost",), _NUM, True),
    "consumed_quantity": (("ConsumedQuantity",), _NUM, False),
}
# dimensions a caller may group by; tag dimensions are "tag:<key>" or a name mapped in TagMap
DIMENSIONS = ("provider", "billing_account", "sub_account", "service", "service_category", "region",
              "charge_category", "currency", "sku_id")
CostColumn = Literal["EffectiveCost", "BilledCost"]


@dataclass(frozen=True)
class SpendRow:
    """One cell of an aggregate: the dimension values, the day (None for a period total) and cost."""

    keys: dict[str, str | None]
    day: date | None
    cost: Decimal
    currency: str


def _connect() -> Any:
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone='UTC'")
    return con


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _ident(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def expand_paths(con: Any, paths: Sequence[str | Path]) -> list[str]:
    """Local paths, globs and (with DuckDB's httpfs) s3:// or gs:// URLs -> the files they name."""
    files: list[str] = []
    for p in paths:
        text = str(p)
        if not any(ch in text for ch in "*?[") and "://" not in text:
            if not Path(text).is_file():
                raise BillingInputError(f"{text}: no such file")
            files.append(text)
            continue
        found = [r[0] for r in con.execute("SELECT file FROM glob(?) ORDER BY file", [text]).fetchall()]
        if not found:
            raise BillingInputError(f"{text}: no file matches")
        files.extend(found)
    return files


def _reader(path: str) -> str:
    lower = path.lower()
    if lower.endswith((".parquet", ".pq")):
        return f"read_parquet({_sql_str(path)})"
    if lower.endswith((".csv", ".csv.gz", ".tsv")):
        return f"read_csv({_sql_str(path)}, all_varchar=true, header=true)"
    raise BillingInputError(f"{path}: not a FOCUS export (expected .csv, .csv.gz or .parquet)")


def _cast(name: str, kind: str, column: str) -> str:
    col = _ident(column)
    if kind == _TEXT:
        return f"NULLIF(TRIM(CAST({col} AS VARCHAR)), '') AS {name}"
    if kind == _TS:
        return f"CAST(CAST(NULLIF(TRIM(CAST({col} AS VARCHAR)), '') AS TIMESTAMPTZ) AS TIMESTAMP) AS {name}"
    return f"CAST(NULLIF(TRIM(CAST({col} AS VARCHAR)), '') AS {AMOUNT}) AS {name}"


_NULL_TYPE = {_TEXT: "VARCHAR", _TS: "TIMESTAMP", _NUM: AMOUNT}


@dataclass
class FocusExport:
    """A DuckDB view named `focus` over every file of one export, with normalised columns.

    Build it once per sweep; each query method runs one aggregate over the files.
    """

    paths: Sequence[str | Path]
    cost_column: CostColumn = "EffectiveCost"
    tag_map: dict[str, list[str]] = field(default_factory=dict)  # e.g. {"feature": ["feature", "app"]}
    files: list[str] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        if self.cost_column not in ("EffectiveCost", "BilledCost"):
            raise BillingInputError(f"cost column {self.cost_column!r}: use EffectiveCost or BilledCost")
        self.con = _connect()
        self.files = expand_paths(self.con, self.paths)
        if not self.files:
            raise BillingInputError("no FOCUS files given")
        self._sources: list[tuple[str, str, dict[str, str]]] = []  # (file, reader, logical -> column)
        parts = []
        for path in self.files:
            reader = _reader(path)
            try:
                cols = [r[0] for r in self.con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()]
            except Exception as exc:  # noqa: BLE001 - duckdb raises many types; the user needs one line
                raise BillingInputError(f"{path}: cannot read: {_first_line(exc)}") from None
            present = set(cols)
            mapping: dict[str, str] = {}
            select = []
            for name, (candidates, kind, required) in COLUMNS.items():
                column = next((c for c in candidates if c in present), None)
                if column is None:
                    if required:
                        raise BillingInputError(f"{path}: missing required FOCUS column '{candidates[0]}'"
                                                + (f" (or '{candidates[1]}')" if len(candidates) > 1 else ""))
                    select.append(f"CAST(NULL AS {_NULL_TYPE[kind]}) AS {name}")
                else:
                    mapping[name] = column
                    select.append(_cast(name, kind, column))
            self._sources.append((path, reader, mapping))
            parts.append(f"SELECT {', '.join(select)}, {_sql_str(path)} AS source_file FROM {reader}")
        self.con.execute("CREATE TEMP VIEW focus AS " + " UNION ALL ".join(parts))

    # -- querying -------------------------------------------------------------------------------
    @property
    def _cost(self) -> str:
        return "effective_cost" if self.cost_column == "EffectiveCost" else "billed_cost"

    def _dim(self, dim: str, params: list[Any]) -> str:
        if dim in DIMENSIONS:
            return dim
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
            params.append('$."' + key.replace('"', '\\"') + '"')
            exprs.append("json_extract_string(tags, ?)")
        return f"COALESCE({', '.join(exprs)})" if len(exprs) > 1 else exprs[0]

    def _where(self, start: datetime | date | None, end: datetime | date | None, params: list[Any],
               filters: dict[str, str] | None = None, *, day_col: str = "charge_start") -> str:
        clauses = []
        if start is not None:
            clauses.append(f"{day_col} >= ?")
            params.append(_ts(start))
        if end is not None:
            clauses.append(f"{day_col} < ?")
            params.append(_ts(end))
        for dim, value in (filters or {}).items():
            clauses.append(f"{self._dim(dim, params)} = ?")
            params.append(value)
        return ("WHERE " + " AND ".join(clauses)) if clauses else ""

    def _run(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        try:
            return self.con.execute(sql, params).fetchall()
        except Exception as exc:  # noqa: BLE001
            import duckdb

            if isinstance(exc, duckdb.ConversionException):
                raise self._diagnose() from None
            raise BillingInputError(f"{', '.join(self.files)}: {_first_line(exc)}") from None

    def _diagnose(self) -> BillingInputError:
        """A cast failed somewhere: find the file, column, row and value, so the user can fix it."""
        for path, reader, mapping in self._sources:
            for name, column in mapping.items():
                kind = COLUMNS[name][1]
                if kind == _TEXT:
                    continue
                target = "TIMESTAMPTZ" if kind == _TS else AMOUNT
                col = _ident(column)
                row = self.con.execute(
                    f"SELECT n, v FROM (SELECT row_number() OVER () AS n, NULLIF(TRIM(CAST({col} AS VARCHAR)), '') AS v "
                    f"FROM {reader}) WHERE v IS NOT NULL AND TRY_CAST(v AS {target}) IS NULL LIMIT 1").fetchone()
                if row:
                    what = "a timestamp" if kind == _TS else "a decimal amount"
                    return BillingInputError(f"{path}: column '{column}', data row {row[0]}: "
                                             f"cannot read {row[1]!r} as {what}")
        return BillingInputError(f"{', '.join(self.files)}: a value could not be converted")

    def total(self, start: datetime | date | None = None, end: datetime | date | None = None,
              filters: dict[str, str] | None = None) -> dict[str, Decimal]:
        """Exact spend per billing currency over [start, end) by ChargePeriodStart."""
        params: list[Any] = []
        where = self._where(start, end, params, filters)
        rows = self._run(f"SELECT currency, SUM({self._cost}) FROM focus {where} GROUP BY 1 ORDER BY 1", params)
        return {cur: Decimal(total or 0) for cur, total in rows}

    def spend_by(self, dims: Sequence[str], start: datetime | date | None = None,
                 end: datetime | date | None = None, filters: dict[str, str] | None = None) -> list[SpendRow]:
        """Exact spend over the period grouped by the dimensions, largest first."""
        params: list[Any] = []
        exprs = [self._dim(d, params) for d in dims]
        where = self._where(start, end, params, filters)
        select = ", ".join(f"{e} AS d{i}" for i, e in enumerate(exprs))
        group = ", ".join(f"d{i}" for i in range(len(exprs)))
        sql = (f"SELECT {select + ', ' if select else ''}currency, SUM({self._cost}) AS cost FROM focus {where} "
               f"GROUP BY {group + ', ' if group else ''}currency ORDER BY cost DESC")
        return [SpendRow(dict(zip(dims, r[:-2])), None, Decimal(r[-1] or 0), r[-2]) for r in self._run(sql, params)]

    def daily_spend(self, dims: Sequence[str], start: datetime | date | None = None,
                    end: datetime | date | None = None, filters: dict[str, str] | None = None) -> list[SpendRow]:
        """Spend per UTC day grouped by the dimensions; rows spanning days are spread evenly."""
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
        """Unused commitment rows (CommitmentDiscountStatus = Unused): paid for, used by nothing."""
        params: list[Any] = []
        where = self._where(start, end, params)
        where = (where + " AND " if where else "WHERE ") + "commitment_status = 'Unused'"
        rows = self._run(f"SELECT provider, service, currency, SUM({self._cost}) FROM focus {where} "
                         f"GROUP BY 1, 2, 3 ORDER BY 4 DESC", params)
        return [SpendRow({"provider": p, "service": s}, None, Decimal(c or 0), cur) for p, s, cur, c in rows]

    def period(self) -> tuple[datetime, datetime] | None:
        row = self._run("SELECT MIN(charge_start), MAX(charge_end) FROM focus", [])[0]
        return None if row[0] is None else (row[0], row[1])

    def row_count(self) -> int:
        return int(self._run("SELECT COUNT(*) FROM focus", [])[0][0])

    def close(self) -> None:
        self.con.close()


def _ts(value: datetime | date) -> datetime:
    """A bound parameter compared with UTC wall-clock timestamps."""
    if isinstance(value, datetime):
        return value if value.tzinfo is None else value.astimezone(timezone.utc).replace(tzinfo=None)
    return datetime(value.year, value.month, value.day)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    return re.sub(r"\s+", " ", text)
