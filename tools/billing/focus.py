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
- Typed Parquet columns are read as they are (a DECIMAL is not printed and re-parsed; a
  TIMESTAMP WITH TIME ZONE becomes UTC through integer microseconds, not the ICU time zone code,
  which costs more than the rest of a scan); only CSV text is parsed.
- A sweep and a report ask a dozen questions of the same export. One scan builds a "daily cube"
  (spend summed per provider, accounts, service, currency, the tag_map dimensions, first and last
  day of the charge period) shared by every FocusExport of the process over the same unchanged
  files and tag_map; the questions are answered from it. Window edges that fall inside a day are
  read from the rows themselves, so totals by ChargePeriodStart stay exact to the microsecond.
  Questions about columns the cube does not keep (region, SKU, charge category, an unmapped
  ``tag:<key>``, ...) read the rows.
- The cube is keyed on the mapped tag values, not on the raw ``Tags`` text: an export holds few
  distinct Tags strings (hundreds to thousands in millions of rows) but, crossed with days,
  accounts and services, raw Tags multiply the cube's groups (557k instead of 82k in the 10M-row
  benchmark). The JSON is parsed once per distinct Tags string, never per row: each distinct
  string gets a class id (one per combination of mapped values) and the scan joins on them.
  Parsing per row costs several times the scan itself (see bench/focus_bench.py).
"""

from __future__ import annotations

import atexit

import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from costwarden.tools.errors import ToolError

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


def expand_paths(con: Any | None, paths: Sequence[str | Path]) -> list[str]:
    """Local paths, globs and s3:// or gs:// URLs -> the local files they name.

    Remote objects are downloaded to a local cache first (tools/billing/remote.py): DuckDB's
    httpfs would fetch its extension from the internet, which air-gapped hosts cannot. With
    `con` None, a connection is opened only when a glob needs one (each costs tens of ms).
    """
    own = None
    if con is None and any(any(ch in str(p) for ch in "*?[") or "://" in str(p)
                           for p in paths if not str(p).startswith(("s3://", "gs://"))):
        con = own = _connect()
    try:
        return _expand(con, paths)
    finally:
        if own is not None:
            own.close()


def _expand(con: Any, paths: Sequence[str | Path]) -> list[str]:
    files: list[str] = []
    for p in paths:
        text = str(p)
        if text.startswith(("s3://", "gs://")):
            from costwarden.tools.billing.remote import fetch

            files.extend(fetch(text))
            continue
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


_NUMERIC = ("DECIMAL", "DOUBLE", "FLOAT", "REAL", "BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT",
            "UINTEGER", "USMALLINT", "UTINYINT")


def _cast(name: str, kind: str, column: str, sql_type: str = "VARCHAR") -> str:
    """The normalising expression for one column, by its type in the file (CSV: always VARCHAR)."""
    col = _ident(column)
    text = col if sql_type == "VARCHAR" else f"CAST({col} AS VARCHAR)"
    if kind == _TEXT:
        return f"NULLIF(TRIM({text}), '') AS {name}"
    if kind == _TS:
        if sql_type == "TIMESTAMP WITH TIME ZONE":
            return f"make_timestamp(epoch_us({col})) AS {name}"
        if sql_type.startswith("TIMESTAMP") or sql_type == "DATE":
            return f"CAST({col} AS TIMESTAMP) AS {name}"
        return f"make_timestamp(epoch_us(CAST(NULLIF(TRIM({text}), '') AS TIMESTAMPTZ))) AS {name}"
    if sql_type.startswith(_NUMERIC):
        return f"CAST({col} AS {AMOUNT}) AS {name}"
    return f"CAST(NULLIF(TRIM({text}), '') AS {AMOUNT}) AS {name}"


def _raw_us(column: str, sql_type: str) -> str:
    """Microseconds since the epoch (UTC) of a timestamp column, without the ICU time zone code."""
    col = _ident(column)
    if sql_type == "TIMESTAMP WITH TIME ZONE":
        return f"epoch_us({col})"
    if sql_type.startswith("TIMESTAMP") or sql_type == "DATE":
        return f"epoch_us(CAST({col} AS TIMESTAMP))"
    text = col if sql_type == "VARCHAR" else f"CAST({col} AS VARCHAR)"
    return f"epoch_us(CAST(NULLIF(TRIM({text}), '') AS TIMESTAMPTZ))"


def _us_literal(us: int, sql_type: str) -> str:
    """A constant of the column's own type, so DuckDB can skip Parquet row groups by their statistics."""
    text = (_EPOCH + timedelta(microseconds=us)).strftime("%Y-%m-%d %H:%M:%S.%f")
    if sql_type == "TIMESTAMP WITH TIME ZONE":
        return f"TIMESTAMPTZ '{text}+00'"
    return f"TIMESTAMP '{text}'"


_NULL_TYPE = {_TEXT: "VARCHAR", _TS: "TIMESTAMP", _NUM: AMOUNT}


_DAY_US = 86_400_000_000
_EPOCH = datetime(1970, 1, 1)
CUBE_DIMENSIONS = ("provider", "billing_account", "sub_account", "service", "currency")  # plus mapped tags
_TAG_COL, _CLASS_COL = "_cw_tags", "_cw_class"  # names of the tag class table's columns, unlike FOCUS ones


@dataclass
class _Cube:
    """One export's shared DuckDB database; `cube` is built in it at most once.

    It also remembers each file's column types (DESCRIBE costs a file open per FocusExport) and
    the first Tags value that is not JSON, reported when a question needs the tags.
    """

    key: tuple[Any, ...]
    db: Any
    built: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    types: dict[str, dict[str, str]] = field(default_factory=dict)
    bad_tags: tuple[str, str] | None = None  # (file, value)


class _CubeCache:
    """The process's shared database holding the daily cube of the export read last.

    Keyed by the files (path, size, mtime), the cost column and the tag_map, so a changed export
    is read again. FocusExports use cursors of that database; a replaced database lives on until its
    last cursor closes. One entry: the daemon reads one export, and the cube is small.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.current: _Cube | None = None

    def cursor(self, key: tuple[Any, ...]) -> tuple[Any, _Cube]:
        with self.lock:
            if self.current is None or self.current.key != key:
                self.current = _Cube(key, _connect())
            cube = self.current
            cur = cube.db.cursor()
        cur.execute("SET TimeZone='UTC'")
        return cur, cube

    def close(self) -> None:
        """Close the shared database before the interpreter tears DuckDB down (at exit), so no
        half-collected DuckDB object outlives its module: that is what made nanobind print
        reference-leak warnings on exit."""
        with self.lock:
            if self.current is not None:
                self.current.db.close()
                self.current = None


_CUBES = _CubeCache()
atexit.register(_CUBES.close)


def _file_key(files: Sequence[str]) -> tuple[tuple[str, int, int], ...]:
    out = []
    for f in files:
        st = os.stat(f)
        out.append((f, st.st_size, st.st_mtime_ns))
    return tuple(out)


def _us(value: datetime | date) -> int:
    """Microseconds since the epoch of a UTC wall-clock time (see _ts)."""
    delta = _ts(value) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


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
        self.files = expand_paths(None, self.paths)
        if not self.files:
            raise BillingInputError("no FOCUS files given")
        # cube columns of the mapped tag dimensions, by position: a tag_map key is any text
        self._tag_cols = {dim: f"tag_{i}" for i, dim in enumerate(sorted(self.tag_map))}
        self._cube_key = (_file_key(self.files), self.cost_column,
                          tuple((dim, tuple(self.tag_map[dim])) for dim in sorted(self.tag_map)))
        self.con, self._cube = _CUBES.cursor(self._cube_key)
        self._edges: dict[tuple[int | None, int | None], str] = {}
        self._sources: list[tuple[str, str, dict[str, str]]] = []  # (file, reader, logical -> column)
        self._types: list[dict[str, str]] = []  # per source: column -> its SQL type in the file
        parts = []
        for path in self.files:
            reader = _reader(path)
            types = self._cube.types.get(path, {})
            if not types:
                try:
                    types = {r[0]: str(r[1]) for r in self.con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()}
                except Exception as exc:  # noqa: BLE001 - duckdb raises many types; the user needs one line
                    raise BillingInputError(f"{path}: cannot read: {_first_line(exc)}") from None
                self._cube.types[path] = types
            present = set(types)
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
                    select.append(_cast(name, kind, column, types[column]))
            self._sources.append((path, reader, mapping))
            self._types.append(types)
            parts.append(f"SELECT {', '.join(select)}, {_sql_str(path)} AS source_file FROM {reader}")
        self.con.execute("CREATE TEMP VIEW focus AS " + " UNION ALL ".join(parts))

    # -- querying -------------------------------------------------------------------------------
    @property
    def _cost(self) -> str:
        return "effective_cost" if self.cost_column == "EffectiveCost" else "billed_cost"

    def _dim(self, dim: str, params: list[Any], *, cube: bool = False) -> str:
        """The SQL of a dimension: a column of `focus`, or of the cube (`cube`) for a mapped tag."""
        if dim in DIMENSIONS:
            return dim
        if cube and dim in self._tag_cols:
            return self._tag_cols[dim]
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
        if not exprs:  # a dimension mapped to no key has no value
            return "CAST(NULL AS VARCHAR)"
        return f"COALESCE({', '.join(exprs)})" if len(exprs) > 1 else exprs[0]

    def _where(self, start: datetime | date | None, end: datetime | date | None, params: list[Any],
               filters: dict[str, str] | None = None, *, day_col: str = "charge_start", cube: bool = False) -> str:
        clauses = []
        if start is not None:
            clauses.append(f"{day_col} >= ?")
            params.append(_ts(start))
        if end is not None:
            clauses.append(f"{day_col} < ?")
            params.append(_ts(end))
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

    # -- the daily cube ---------------------------------------------------------------------------
    def _cubed(self, dims: Sequence[str], filters: dict[str, str] | None) -> bool:
        """Whether the cube can answer: every dimension and filter is a cube column or a mapped tag."""
        return all(d in CUBE_DIMENSIONS or (d not in DIMENSIONS and d in self._tag_cols)
                   for d in list(dims) + list(filters or {}))

    def _cube_ready(self, dims: Sequence[str], filters: dict[str, str] | None) -> None:
        """Build the cube if needed; a question about tags fails if some Tags text is not JSON."""
        self._ensure_cube()
        bad = self._cube.bad_tags
        if bad and any(d in self._tag_cols and d not in DIMENSIONS for d in list(dims) + list(filters or {})):
            raise BillingInputError(f"{bad[0]}: column 'Tags': cannot read {bad[1][:80]!r} as JSON")

    def _ensure_cube(self) -> None:
        """Build the cube once per process and export (see the module docstring)."""
        cube = self._cube
        if cube.built:
            return
        with cube.lock:
            if cube.built:
                return
            staged = self._build_tag_classes()
            parts = []
            for i in range(len(self._sources)):
                if i in staged:  # CSV grouped by raw Tags text: its groups mapped to tag classes
                    parts.append(f"SELECT {', '.join(CUBE_DIMENSIONS)}, {_CLASS_COL}, first_day, last_day, "
                                 f"SUM(cost) AS cost, SUM(unused) AS unused, SUM(n) AS n FROM {staged[i]} "
                                 f"LEFT JOIN cube_tag_class ON tags = {_TAG_COL} GROUP BY ALL")
                else:
                    parts.append(self._cube_source(i) + " GROUP BY ALL")
            # group each file's raw values first, normalise the (far fewer) groups after: TRIM and
            # NULLIF on ten million strings cost more than the grouping itself
            # (not grouped again: values equal once trimmed stay separate rows, and every query sums)
            self._run(f"""CREATE OR REPLACE TABLE cube AS
                SELECT {self._normalised()}, first_day, last_day, cost, unused, n
                FROM ({" UNION ALL ".join(parts)}) {self._dims_join()}""", [])
            for name in staged.values():
                self._run(f"DROP TABLE {name}", [])
            cube.built = True

    def _normalised(self) -> str:
        """The cube's dimension columns from grouped raw text (and the tag class's mapped values)."""
        return ", ".join([f"NULLIF(TRIM({c}), '') AS {c}" for c in CUBE_DIMENSIONS] + list(self._tag_cols.values()))

    def _dims_join(self) -> str:
        return f"LEFT JOIN cube_tag_dims USING ({_CLASS_COL})" if self._tag_cols else ""

    def _build_tag_classes(self) -> dict[int, str]:
        """Tables cube_tag_class (each distinct raw Tags text -> the class of its mapped values) and
        cube_tag_dims (class -> mapped values): the JSON is parsed once per distinct text.

        Parquet sources give their distinct Tags in a pass that reads that one column. A CSV is
        parsed whole whatever is read, so it is grouped by raw Tags instead, into a staging table
        (returned by source index) that the cube then maps to classes.
        """
        staged: dict[int, str] = {}
        if not self._tag_cols:
            return staged
        # one statement per source: DISTINCT over one column alone, and outside a UNION, is several
        # times faster on a Parquet file's dictionary-encoded column than any other form tried
        self._run("CREATE OR REPLACE TEMP TABLE cube_tag_text (t VARCHAR, src INTEGER)", [])
        for i, (_path, reader, mapping) in enumerate(self._sources):
            if "tags" not in mapping:
                continue
            if reader.startswith("read_parquet("):
                source = f"(SELECT DISTINCT {self._raw(i, 'tags')} AS t FROM {reader})"
            else:
                staged[i] = f"cube_stage_{i}"
                self._run(f"CREATE OR REPLACE TEMP TABLE {staged[i]} AS "
                          f"{self._cube_source(i, by_tags=True)} GROUP BY ALL", [])
                source = f"(SELECT DISTINCT tags AS t FROM {staged[i]})"
            self._run(f"INSERT INTO cube_tag_text SELECT t, {i} FROM {source}", [])
        params: list[Any] = []
        mapped = []
        for dim, col in self._tag_cols.items():
            paths = []
            for key in self.tag_map[dim]:
                params.append('$."' + key.replace('"', '\\"') + '"')
                paths.append("json_extract_string(j, ?)")
            expr = paths[0] if len(paths) == 1 else f"COALESCE({', '.join(paths)})" if paths else "NULL"
            mapped.append(f"CAST({expr} AS VARCHAR) AS {col}")
        cols = ", ".join(self._tag_cols.values())
        self._run(f"""CREATE OR REPLACE TABLE cube_tag_class AS
            WITH texts AS (
                SELECT t, MIN(src) AS src, NULLIF(TRIM(t), '') AS tt FROM cube_tag_text WHERE t IS NOT NULL GROUP BY t
            ), parsed AS (
                SELECT t, src, tt, CASE WHEN json_valid(tt) THEN tt END AS j FROM texts
            ), mapped AS (
                SELECT t, src, tt IS NOT NULL AND j IS NULL AS bad, {", ".join(mapped)} FROM parsed
            )
            SELECT t AS {_TAG_COL}, CAST(dense_rank() OVER (ORDER BY {cols}) AS INTEGER) AS {_CLASS_COL},
                   src, bad, {cols}
            FROM mapped""", params)
        self._run(f"CREATE OR REPLACE TABLE cube_tag_dims AS SELECT DISTINCT {_CLASS_COL}, {cols} FROM cube_tag_class",
                  [])
        self._run("DROP TABLE cube_tag_text", [])
        bad = self._run(f"SELECT src, {_TAG_COL} FROM cube_tag_class WHERE bad ORDER BY src, {_TAG_COL} LIMIT 1", [])
        if bad:
            self._cube.bad_tags = (self._sources[bad[0][0]][0], str(bad[0][1]))
        return staged

    def _raw(self, i: int, name: str) -> str:
        """Source i's column for a logical text name, as VARCHAR (NULL when the file lacks it)."""
        column = self._sources[i][2].get(name)
        if column is None:
            return "CAST(NULL AS VARCHAR)"
        return _ident(column) if self._types[i][column] == "VARCHAR" else f"CAST({_ident(column)} AS VARCHAR)"

    def _amount(self, i: int) -> str:
        column = self._sources[i][2][self._cost]
        return _cast("x", _NUM, column, self._types[i][column]).rsplit(" AS x", 1)[0]

    def _cube_source(self, i: int, where: str = "", *, by_tags: bool = False) -> str:
        """One file's rows reduced to the cube's columns (raw text; grouped by the caller).

        The tags column is the tag class (joined on the raw Tags text), or with `by_tags` the raw
        text itself, for a CSV staged before its classes are known.
        """
        _path, reader, mapping = self._sources[i]
        types = self._types[i]
        start = _raw_us(mapping["charge_start"], types[mapping["charge_start"]])
        end = _raw_us(mapping["charge_end"], types[mapping["charge_end"]])
        status = self._raw(i, "commitment_status")
        join = ""
        if by_tags:
            tags = f"{self._raw(i, 'tags')} AS tags"
        elif self._tag_cols and "tags" in mapping:
            tags = _CLASS_COL
            join = f"LEFT JOIN cube_tag_class ON {self._raw(i, 'tags')} = {_TAG_COL}"
        else:
            tags = f"CAST(NULL AS INTEGER) AS {_CLASS_COL}"
        amount = self._amount(i)
        return (f"SELECT {', '.join(f'{self._raw(i, c)} AS {c}' for c in CUBE_DIMENSIONS)}, {tags}, "
                f"CAST({start} // {_DAY_US} AS INTEGER) AS first_day, "
                f"CAST(({end} - 1) // {_DAY_US} AS INTEGER) AS last_day, SUM({amount}) AS cost, "
                f"SUM({amount}) FILTER (WHERE TRIM({status}) = 'Unused') AS unused, COUNT(*) AS n "
                f"FROM {reader} {join} {where}")

    def _edge_table(self, lo_us: int | None, hi_us: int | None) -> str | None:
        """Rows whose ChargePeriodStart falls in the partial days at the window's ends, kept per window."""
        edges = []
        if lo_us is not None and lo_us % _DAY_US:
            nxt = (lo_us // _DAY_US + 1) * _DAY_US
            edges.append((lo_us, nxt if hi_us is None else min(nxt, hi_us)))
        if hi_us is not None and hi_us % _DAY_US and (
                lo_us is None or not lo_us % _DAY_US or hi_us // _DAY_US > lo_us // _DAY_US):
            mid = hi_us // _DAY_US * _DAY_US
            edges.append((mid if lo_us is None else max(mid, lo_us), hi_us))
        edges = [(a, b) for a, b in edges if a < b]
        if not edges:
            return None
        key = (lo_us, hi_us)
        if key not in self._edges:
            name = f"edge_{len(self._edges)}"
            parts = []
            for i, (_path, _reader, mapping) in enumerate(self._sources):
                column = mapping["charge_start"]
                kind = self._types[i][column]
                if kind.startswith("TIMESTAMP"):  # compare the column itself: row groups are skipped by stats
                    where = " OR ".join(f"({_ident(column)} >= {_us_literal(a, kind)} AND "
                                        f"{_ident(column)} < {_us_literal(b, kind)})" for a, b in edges)
                else:
                    us = _raw_us(column, kind)
                    where = " OR ".join(f"({us} >= {a} AND {us} < {b})" for a, b in edges)
                parts.append(self._cube_source(i, f"WHERE {where}") + " GROUP BY ALL")
            self._run(f"CREATE TEMP TABLE {name} AS SELECT {self._normalised()}, cost, unused "
                      f"FROM ({' UNION ALL '.join(parts)}) {self._dims_join()}", [])
            self._edges[key] = name
        return self._edges[key]

    def _cube_window(self, start: datetime | date | None, end: datetime | date | None) -> str:
        """The rows of [start, end) by ChargePeriodStart: whole days from the cube, partial ones from the rows."""
        self._ensure_cube()
        lo_us = None if start is None else _us(start)
        hi_us = None if end is None else _us(end)
        clauses = []
        if lo_us is not None:
            clauses.append(f"first_day >= {-(-lo_us // _DAY_US)}")
        if hi_us is not None:
            clauses.append(f"first_day < {hi_us // _DAY_US}")
        columns = ", ".join(CUBE_DIMENSIONS + tuple(self._tag_cols.values()))
        src = (f"SELECT {columns}, cost, unused FROM cube"
               + (" WHERE " + " AND ".join(clauses) if clauses else ""))
        edge = self._edge_table(lo_us, hi_us)
        return f"({src} UNION ALL SELECT * FROM {edge})" if edge else f"({src})"

    # -- questions ------------------------------------------------------------------------------
    def total(self, start: datetime | date | None = None, end: datetime | date | None = None,
              filters: dict[str, str] | None = None) -> dict[str, Decimal]:
        """Exact spend per billing currency over [start, end) by ChargePeriodStart."""
        params: list[Any] = []
        if self._cubed([], filters):
            self._cube_ready([], filters)
            source = self._cube_window(start, end)
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
        cubed = self._cubed(dims, filters)
        exprs = [self._dim(d, params, cube=cubed) for d in dims]
        if cubed:
            self._cube_ready(dims, filters)
            source, cost = self._cube_window(start, end), "cost"
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
        if not self._cubed(dims, filters):
            return self._daily_spend_rows(dims, start, end, filters)
        self._cube_ready(dims, filters)
        params: list[Any] = []
        exprs = [self._dim(d, params, cube=True) for d in dims]
        dim_select = "".join(f"{e} AS d{i}, " for i, e in enumerate(exprs))
        group = "".join(f"d{i}, " for i in range(len(exprs)))
        inner = self._where(None, None, params, filters, cube=True)  # dimension filters apply to rows, dates to days
        days = []  # a day counts when its midnight is in [start, end), as in _daily_spend_rows
        if start is not None:
            days.append(f"day >= {-(-_us(start) // _DAY_US)}")
        if end is not None:
            days.append(f"day < {-(-_us(end) // _DAY_US)}")
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
        """Unused commitment rows (CommitmentDiscountStatus = Unused): paid for, used by nothing."""
        rows = self._run(f"SELECT provider, service, currency, SUM(unused) FROM {self._cube_window(start, end)} "
                         f"WHERE unused IS NOT NULL GROUP BY 1, 2, 3 ORDER BY 4 DESC", [])
        return [SpendRow({"provider": p, "service": s}, None, Decimal(c or 0), cur) for p, s, cur, c in rows]

    def period(self) -> tuple[datetime, datetime] | None:
        row = self._run("SELECT MIN(charge_start), MAX(charge_end) FROM focus", [])[0]
        return None if row[0] is None else (row[0], row[1])

    def row_count(self) -> int:
        self._ensure_cube()
        return int(self._run("SELECT COALESCE(SUM(n), 0) FROM cube", [])[0][0])

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
