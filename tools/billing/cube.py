"""The daily cube: one scan of a FOCUS export that answers a sweep's and a report's dozen questions.

Spend is summed per provider, accounts, service, currency, the tag_map dimensions and the first and
last day of the charge period, and shared by every FocusExport of the process over the same
unchanged files and tag_map. Window edges that fall inside a day are read from the rows themselves,
so totals by ChargePeriodStart stay exact to the microsecond. Questions about columns the cube does
not keep (region, SKU, charge category, an unmapped ``tag:<key>``, ...) read the rows instead
(tools/billing/focus.py decides).

The cube is keyed on the mapped tag values, not on the raw ``Tags`` text: an export holds few
distinct Tags strings (hundreds to thousands in millions of rows) but, crossed with days, accounts
and services, raw Tags multiply the cube's groups (557k instead of 82k in the 10M-row benchmark).
The JSON is parsed once per distinct Tags string, never per row: each distinct string gets a class
id (one per combination of mapped values) and the scan joins on them. Parsing per row costs several
times the scan itself (see bench/focus_bench.py).
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from costwarden.tools.billing.columns import (DAY_US, DIMENSIONS, Source, epoch_us, raw_us_sql, tag_value_sql,
                                              us_literal)
from costwarden.tools.duckdb_sql import connect, ident
from costwarden.tools.errors import BillingInputError

CUBE_DIMENSIONS = ("provider", "billing_account", "sub_account", "service", "currency")  # plus mapped tags
TAG_COL, CLASS_COL = "_cw_tags", "_cw_class"  # the tag class table's columns, named unlike any FOCUS column

Run = Callable[[str, list[Any]], list[tuple[Any, ...]]]


@dataclass
class SharedCube:
    """One export's shared DuckDB database; the `cube` table is built in it at most once.

    It also remembers each file's column types (DESCRIBE costs a file open per FocusExport) and
    the first Tags value that is not JSON, reported when a question needs the tags.
    """

    key: tuple[Any, ...]
    db: Any
    built: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    types: dict[str, dict[str, str]] = field(default_factory=dict)
    bad_tags: tuple[str, str] | None = None  # (file, value)


class CubeCache:
    """The process's shared database holding the daily cube of the export read last.

    Keyed by the files (path, size, mtime), the cost column and the tag_map, so a changed export
    is read again. FocusExports use cursors of that database; a replaced database lives on until its
    last cursor closes. One entry: the daemon reads one export, and the cube is small.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.current: SharedCube | None = None

    def cursor(self, key: tuple[Any, ...]) -> tuple[Any, SharedCube]:
        with self.lock:
            if self.current is None or self.current.key != key:
                self.current = SharedCube(key, connect())
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


CUBES = CubeCache()
atexit.register(CUBES.close)


def file_key(files: Sequence[str]) -> tuple[tuple[str, int, int], ...]:
    """What identifies an export's content without reading it: each file's path, size and mtime."""
    out = []
    for f in files:
        st = os.stat(f)
        out.append((f, st.st_size, st.st_mtime_ns))
    return tuple(out)


class DailyCube:
    """The cube of one FocusExport's files: built on the first question, read through `window`.

    `run` executes SQL on the export's cursor (turning DuckDB errors into BillingInputErrors);
    `cost` is the logical amount column reported (effective_cost or billed_cost).
    """

    def __init__(self, shared: SharedCube, sources: list[Source], tag_map: dict[str, list[str]], cost: str,
                 run: Run, case_sensitive: bool = False) -> None:
        self.shared = shared
        self.sources = sources
        self.tag_map = tag_map
        self.case_sensitive = case_sensitive  # how Tags keys are matched (columns.tag_value_sql)
        self.cost = cost
        self.run = run
        # cube columns of the mapped tag dimensions, by position: a tag_map key is any text
        self.tag_cols = {dim: f"tag_{i}" for i, dim in enumerate(sorted(tag_map))}
        self._edges: dict[tuple[int | None, int | None], str] = {}

    def answers(self, dims: Sequence[str], filters: dict[str, str] | None) -> bool:
        """Whether the cube can answer: every dimension and filter is a cube column or a mapped tag."""
        return all(d in CUBE_DIMENSIONS or (d not in DIMENSIONS and d in self.tag_cols)
                   for d in list(dims) + list(filters or {}))

    def ready(self, dims: Sequence[str], filters: dict[str, str] | None) -> None:
        """Build the cube if needed; a question about tags fails if some Tags text is not JSON."""
        self.ensure()
        bad = self.shared.bad_tags
        if bad and any(d in self.tag_cols and d not in DIMENSIONS for d in list(dims) + list(filters or {})):
            raise BillingInputError(f"{bad[0]}: column 'Tags': cannot read {bad[1][:80]!r} as JSON")

    def ensure(self) -> None:
        """Build the cube once per process and export."""
        cube = self.shared
        if cube.built:
            return
        with cube.lock:
            if cube.built:
                return
            staged = self._build_tag_classes()
            parts = []
            for i in range(len(self.sources)):
                if i in staged:  # CSV grouped by raw Tags text: its groups mapped to tag classes
                    parts.append(f"SELECT {', '.join(CUBE_DIMENSIONS)}, {CLASS_COL}, first_day, last_day, "
                                 f"SUM(cost) AS cost, SUM(unused) AS unused, SUM(n) AS n, SUM(chk) AS chk "
                                 f"FROM {staged[i]} "
                                 f"LEFT JOIN cube_tag_class ON tags = {TAG_COL} GROUP BY ALL")
                else:
                    parts.append(self._source_sql(i) + " GROUP BY ALL")
            # group each file's raw values first, normalise the (far fewer) groups after: TRIM and
            # NULLIF on ten million strings cost more than the grouping itself
            # (not grouped again: values equal once trimmed stay separate rows, and every query sums)
            self.run(f"""CREATE OR REPLACE TABLE cube AS
                SELECT {self._normalised()}, first_day, last_day, cost, unused, n, chk
                FROM ({" UNION ALL ".join(parts)}) {self._dims_join()}""", [])
            for name in staged.values():
                self.run(f"DROP TABLE {name}", [])
            cube.built = True

    def window(self, start: datetime | date | None, end: datetime | date | None) -> str:
        """The rows of [start, end) by ChargePeriodStart: whole days from the cube, partial ones from the rows."""
        self.ensure()
        lo_us = None if start is None else epoch_us(start)
        hi_us = None if end is None else epoch_us(end)
        clauses = []
        if lo_us is not None:
            clauses.append(f"first_day >= {-(-lo_us // DAY_US)}")
        if hi_us is not None:
            clauses.append(f"first_day < {hi_us // DAY_US}")
        columns = ", ".join(CUBE_DIMENSIONS + tuple(self.tag_cols.values()))
        src = (f"SELECT {columns}, cost, unused FROM cube"
               + (" WHERE " + " AND ".join(clauses) if clauses else ""))
        edge = self._edge_table(lo_us, hi_us)
        return f"({src} UNION ALL SELECT * FROM {edge})" if edge else f"({src})"

    # -- building -----------------------------------------------------------------------------
    def _normalised(self) -> str:
        """The cube's dimension columns from grouped raw text (and the tag class's mapped values)."""
        return ", ".join([f"NULLIF(TRIM({c}), '') AS {c}" for c in CUBE_DIMENSIONS] + list(self.tag_cols.values()))

    def _dims_join(self) -> str:
        return f"LEFT JOIN cube_tag_dims USING ({CLASS_COL})" if self.tag_cols else ""

    def _build_tag_classes(self) -> dict[int, str]:
        """Tables cube_tag_class (each distinct raw Tags text -> the class of its mapped values) and
        cube_tag_dims (class -> mapped values): the JSON is parsed once per distinct text.

        Parquet sources give their distinct Tags in a pass that reads that one column. A CSV is
        parsed whole whatever is read, so it is grouped by raw Tags instead, into a staging table
        (returned by source index) that the cube then maps to classes.
        """
        staged: dict[int, str] = {}
        if not self.tag_cols:
            return staged
        # one statement per source: DISTINCT over one column alone, and outside a UNION, is several
        # times faster on a Parquet file's dictionary-encoded column than any other form tried
        self.run("CREATE OR REPLACE TEMP TABLE cube_tag_text (t VARCHAR, src INTEGER)", [])
        for i, source in enumerate(self.sources):
            if "tags" not in source.mapping:
                continue
            if source.reader.startswith("read_parquet("):
                distinct = f"(SELECT DISTINCT {source.text('tags')} AS t FROM {source.reader})"
            else:
                staged[i] = f"cube_stage_{i}"
                self.run(f"CREATE OR REPLACE TEMP TABLE {staged[i]} AS "
                         f"{self._source_sql(i, by_tags=True)} GROUP BY ALL", [])
                distinct = f"(SELECT DISTINCT tags AS t FROM {staged[i]})"
            self.run(f"INSERT INTO cube_tag_text SELECT t, {i} FROM {distinct}", [])
        params: list[Any] = []
        mapped = []
        for dim, col in self.tag_cols.items():
            paths = []
            for key in self.tag_map[dim]:
                sql, param = tag_value_sql("j", key, self.case_sensitive)
                params.append(param)
                paths.append(sql)
            expr = paths[0] if len(paths) == 1 else f"COALESCE({', '.join(paths)})" if paths else "NULL"
            mapped.append(f"CAST({expr} AS VARCHAR) AS {col}")
        cols = ", ".join(self.tag_cols.values())
        self.run(f"""CREATE OR REPLACE TABLE cube_tag_class AS
            WITH texts AS (
                SELECT t, MIN(src) AS src, NULLIF(TRIM(t), '') AS tt FROM cube_tag_text WHERE t IS NOT NULL GROUP BY t
            ), parsed AS (
                SELECT t, src, tt, CASE WHEN json_valid(tt) THEN tt END AS j FROM texts
            ), mapped AS (
                SELECT t, src, tt IS NOT NULL AND j IS NULL AS bad, {", ".join(mapped)} FROM parsed
            )
            SELECT t AS {TAG_COL}, CAST(dense_rank() OVER (ORDER BY {cols}) AS INTEGER) AS {CLASS_COL},
                   src, bad, {cols}
            FROM mapped""", params)
        self.run(f"CREATE OR REPLACE TABLE cube_tag_dims AS SELECT DISTINCT {CLASS_COL}, {cols} FROM cube_tag_class",
                 [])
        self.run("DROP TABLE cube_tag_text", [])
        bad = self.run(f"SELECT src, {TAG_COL} FROM cube_tag_class WHERE bad ORDER BY src, {TAG_COL} LIMIT 1", [])
        if bad:
            self.shared.bad_tags = (self.sources[bad[0][0]].path, str(bad[0][1]))
        return staged

    def _source_sql(self, i: int, where: str = "", *, by_tags: bool = False) -> str:
        """One file's rows reduced to the cube's columns (raw text; grouped by the caller).

        The tags column is the tag class (joined on the raw Tags text), or with `by_tags` the raw
        text itself, for a CSV staged before its classes are known.
        """
        source = self.sources[i]
        mapping, types = source.mapping, source.types
        start = raw_us_sql(mapping["charge_start"], types[mapping["charge_start"]])
        end = raw_us_sql(mapping["charge_end"], types[mapping["charge_end"]])
        status = source.text("commitment_status")
        join = ""
        if by_tags:
            tags = f"{source.text('tags')} AS tags"
        elif self.tag_cols and "tags" in mapping:
            tags = CLASS_COL
            join = f"LEFT JOIN cube_tag_class ON {source.text('tags')} = {TAG_COL}"
        else:
            tags = f"CAST(NULL AS INTEGER) AS {CLASS_COL}"
        amount = source.amount(self.cost)
        # unused commitment is valued in EffectiveCost whatever is reported: under BilledCost its
        # rows carry 0 (the purchase row paid for it), and it must not be counted twice with it
        effective = source.amount("effective_cost")
        # the other cost column is read too (and kept, so no optimiser drops it): a value that is not
        # an amount is an error naming its row whichever column is reported, never silently unread
        other = source.amount("billed_cost" if self.cost == "effective_cost" else "effective_cost")
        return (f"SELECT {', '.join(f'{source.text(c)} AS {c}' for c in CUBE_DIMENSIONS)}, {tags}, "
                f"CAST({start} // {DAY_US} AS INTEGER) AS first_day, "
                f"CAST(({end} - 1) // {DAY_US} AS INTEGER) AS last_day, SUM({amount}) AS cost, "
                f"SUM({effective}) FILTER (WHERE TRIM({status}) = 'Unused') AS unused, COUNT(*) AS n, "
                f"SUM({other}) AS chk "
                f"FROM {source.reader} {join} {where}")

    def _edge_table(self, lo_us: int | None, hi_us: int | None) -> str | None:
        """Rows whose ChargePeriodStart falls in the partial days at the window's ends, kept per window."""
        edges = []
        if lo_us is not None and lo_us % DAY_US:
            nxt = (lo_us // DAY_US + 1) * DAY_US
            edges.append((lo_us, nxt if hi_us is None else min(nxt, hi_us)))
        if hi_us is not None and hi_us % DAY_US and (
                lo_us is None or not lo_us % DAY_US or hi_us // DAY_US > lo_us // DAY_US):
            mid = hi_us // DAY_US * DAY_US
            edges.append((mid if lo_us is None else max(mid, lo_us), hi_us))
        edges = [(a, b) for a, b in edges if a < b]
        if not edges:
            return None
        key = (lo_us, hi_us)
        if key not in self._edges:
            name = f"edge_{len(self._edges)}"
            parts = []
            for i, source in enumerate(self.sources):
                column = source.mapping["charge_start"]
                kind = source.types[column]
                if kind.startswith("TIMESTAMP"):  # compare the column itself: row groups are skipped by stats
                    where = " OR ".join(f"({ident(column)} >= {us_literal(a, kind)} AND "
                                        f"{ident(column)} < {us_literal(b, kind)})" for a, b in edges)
                else:
                    us = raw_us_sql(column, kind)
                    where = " OR ".join(f"({us} >= {a} AND {us} < {b})" for a, b in edges)
                parts.append(self._source_sql(i, f"WHERE {where}") + " GROUP BY ALL")
            self.run(f"CREATE TEMP TABLE {name} AS SELECT {self._normalised()}, cost, unused "
                     f"FROM ({' UNION ALL '.join(parts)}) {self._dims_join()}", [])
            self._edges[key] = name
        return self._edges[key]
