"""The hourly usage rollup: every token-usage source lands here once, and every reader queries it.

Append-only DuckDB tables hold what the detectors and reports need, at one row per hour and
cell rather than per request:

- `cells`: (hour, feature, tier, model, provider, outcome, input/output size bucket) -> requests,
  tokens, reported cost, first/last timestamp;
- `tenants`: the distinct tenants of each (hour, feature, tier, model, provider, outcome), so
  distinct-user counts over any window stay exact; stored as 64-bit hashes of the cell
  (`cell_names` maps it back) and of the tenant (tools/llm/sketch.py's md5-based hash, the one
  the sketches use), 24 bytes a row, since this table grows with tenants x cells x hours;
- `sketches`: HyperLogLog registers (hour, cell, register -> rank) of cells whose source sent a
  sketch instead of its tenants (a LiteLLM cell-hour with more than 16): merged with the exact
  tenants' registers by the readers, never summed;
- `prompts` / `prefixes`: per (hour, feature, model, prompt or prefix hash) counts and token sums,
  which is all the repeat (cache opportunity) arithmetic needs;
- `seen`: a 64-bit hash of every span / request id with its hour, so a span delivered twice counts
  once (a retry carries the span's own start time, so looking in the batch's hours suffices, and
  zone maps keep that lookup proportional to the batch, not to everything seen).

Files are read from watermarks (tools/llm/tail.py), so a sweep reads only what was appended;
`add_aggregates` takes rows a source already aggregated (LiteLLM's daily tables) under its own
text watermark. Each ingest appends its rows and folds the hours the rollup already had (the hour
the last sweep stopped in), so tables hold one row per key at a cost proportional to what was read.
A store file keeps it across restarts (billing.usage_store, by default <state_dir>/usage.duckdb);
without one it lives in memory.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from costwarden.tools.duckdb_sql import connect, first_line
from costwarden.tools.errors import BillingInputError
from costwarden.tools.llm import tail
from costwarden.tools.llm.fields import UsageAggregate
from costwarden.tools.llm.formats import OBJECT_SIZES, batch_sql, present_keys
from costwarden.tools.llm.locate import first_problem
from costwarden.tools.llm.rollup_insert import add_sketches, add_tenant_sets, insert_batch

TENANT_HASH = "md5-64"  # the `tenants` table's hash; a store written with another one is rebuilt
_VERSION_MARK = "rollup:tenant_hash"

STORE_WAIT_S = 120.0  # how long to wait for a store another process holds (a daemon's sweep)
RETENTION_DAYS = 400  # hours of usage kept behind the newest (billing.usage_retention_days): a year and a month
DEDUP_DAYS = 35  # span ids kept to count a retried span once (as long as the OTLP spool keeps its files)
KEYS = "hour, feature, tier, model, provider, outcome"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS cells (source VARCHAR, hour TIMESTAMP, feature VARCHAR, tier VARCHAR, model VARCHAR,
    provider VARCHAR, outcome VARCHAR, in_le INTEGER, out_le INTEGER, requests BIGINT, input_tokens BIGINT,
    output_tokens BIGINT, cache_read_tokens BIGINT, cache_write_tokens BIGINT, reported_cost DOUBLE,
    tenants BIGINT, min_ts TIMESTAMP, max_ts TIMESTAMP);
CREATE TABLE IF NOT EXISTS tenants (hour TIMESTAMP, cell UBIGINT, tenant UBIGINT);
CREATE TABLE IF NOT EXISTS sketches (hour TIMESTAMP, cell UBIGINT, reg SMALLINT, rank TINYINT);
CREATE TABLE IF NOT EXISTS cell_names (cell UBIGINT, feature VARCHAR, tier VARCHAR, model VARCHAR, provider VARCHAR,
    outcome VARCHAR);
CREATE TABLE IF NOT EXISTS prompts (hour TIMESTAMP, feature VARCHAR, model VARCHAR, hash VARCHAR, n BIGINT,
    input_tokens BIGINT, output_tokens BIGINT);
CREATE TABLE IF NOT EXISTS prefixes (hour TIMESTAMP, feature VARCHAR, model VARCHAR, hash VARCHAR, n BIGINT,
    prefix_tokens BIGINT);
CREATE TABLE IF NOT EXISTS seen (hour TIMESTAMP, id UBIGINT);
CREATE TABLE IF NOT EXISTS files (path VARCHAR PRIMARY KEY, dev UBIGINT, ino UBIGINT, size BIGINT,
    mtime_ns BIGINT, "offset" BIGINT, head VARCHAR);
CREATE TABLE IF NOT EXISTS marks (source VARCHAR PRIMARY KEY, watermark VARCHAR);
"""
_CELL_TYPES = ("VARCHAR", "TIMESTAMP", "VARCHAR", "VARCHAR", "VARCHAR", "VARCHAR", "VARCHAR", "INTEGER", "INTEGER",
               "BIGINT", "BIGINT", "BIGINT", "BIGINT", "BIGINT", "DOUBLE", "BIGINT", "TIMESTAMP", "TIMESTAMP")
_AGG_TEXT = ("feature", "tier", "model", "provider", "outcome")
_AGG_NUMBERS = ("requests", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                "reported_cost", "tenants")
_FOLD = {  # each table's rows folded to one per key; {where} selects the hours folded
    "cells": f"SELECT source, {KEYS}, in_le, out_le, SUM(requests), SUM(input_tokens), SUM(output_tokens), "
             f"SUM(cache_read_tokens), SUM(cache_write_tokens), SUM(reported_cost), SUM(tenants), MIN(min_ts), "
             f"MAX(max_ts) FROM cells WHERE {{where}} GROUP BY ALL",
    "tenants": "SELECT DISTINCT * FROM tenants WHERE {where}",
    "sketches": "SELECT hour, cell, reg, MAX(rank) FROM sketches WHERE {where} GROUP BY ALL",
    "prompts": "SELECT hour, feature, model, hash, SUM(n), SUM(input_tokens), SUM(output_tokens) FROM prompts "
               "WHERE {where} GROUP BY ALL",
    "prefixes": "SELECT hour, feature, model, hash, SUM(n), MIN(prefix_tokens) FROM prefixes WHERE {where} GROUP BY ALL",
}


@contextmanager
def transaction(con: Any) -> Iterator[Any]:
    """One DuckDB transaction on `con`: committed when the block ends, rolled back when it raises."""
    con.execute("BEGIN")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


class UsageRollup:
    """One process's rollup over a set of usage files (and any aggregate sources added to it)."""

    def __init__(self, store: str | None = None, *, wait_s: float = STORE_WAIT_S,
                 retention_days: int = RETENTION_DAYS) -> None:
        self.lock = threading.RLock()
        self.store = store
        self.wait_s = wait_s
        self.retention_days = retention_days
        self._con: Any = None
        if store:
            self._open_store()
        else:
            self._con = connect()
            # compressed like a database file (dictionaries, bit-packing): the 1M-span benchmark's
            # tables take 43 MB instead of 112 MB, and reading is no slower
            self._con.execute("ATTACH ':memory:' AS rollup (COMPRESS)")
            self._con.execute("USE rollup")
            self._con.execute(_SCHEMA)
            self._check_version()
        self.records_read = 0  # records parsed by this process (what an incremental sweep saves)

    @property
    def con(self) -> Any:
        """The connection; a store released after a sweep is opened again on first use."""
        if self._con is None:
            self._open_store()
        return self._con

    def _open_store(self) -> None:
        """Open the store file, waiting while another process holds it.

        DuckDB lets one process write a database file and no other process open it meanwhile, not
        even read-only. The daemon holds the store only during a sweep (`release()` after it), so a
        CLI run beside it waits for the sweep to end; after `wait_s` it stops with one line rather
        than reading into memory and answering from a partial history."""
        import duckdb

        assert self.store
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                con = duckdb.connect(self.store)
                break
            except Exception as exc:  # noqa: BLE001
                held = "lock" in str(exc).lower()
                if held and time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                why = (f"held by another process for more than {self.wait_s:g} s (a daemon's sweep?): "
                       if held else "cannot open: ")
                raise BillingInputError(f"billing.usage_store {self.store}: {why}{first_line(exc)}") from None
        con.execute("SET TimeZone='UTC'")
        con.execute(_SCHEMA)
        self._con = con
        self._check_version()

    def _check_version(self) -> None:
        """A store whose tenants were hashed another way (DuckDB's hash(), before the sketches) cannot
        be merged with md5-hashed tenants or sketches: it is emptied, file watermarks and source
        marks included, so the next sync reads every source again."""
        con = self._con
        row = con.execute("SELECT watermark FROM marks WHERE source = ?", [_VERSION_MARK]).fetchone()
        if row is not None and row[0] == TENANT_HASH:
            return
        with transaction(con):
            for name in ("cells", "tenants", "sketches", "cell_names", "prompts", "prefixes", "seen", "files",
                         "marks"):
                con.execute(f"DELETE FROM {name}")
            con.execute("INSERT INTO marks VALUES (?, ?)", [_VERSION_MARK, TENANT_HASH])

    def release(self) -> None:
        """Close a store file so other processes can open it (the next use opens it again); an
        in-memory rollup is kept."""
        with self.lock:
            if self.store and self._con is not None:
                self._con.close()
                self._con = None

    # -- files --------------------------------------------------------------------------------
    def sync(self, files: Sequence[str]) -> None:
        """Read what each file gained since its watermark; a bad file is one BillingInputError."""
        with self.lock:
            marks = {r[0]: tail.FileMark(*r) for r in self.con.execute("SELECT * FROM files").fetchall()}
            by_inode = {(m.dev, m.ino): m for m in marks.values()}
            workdir = None
            try:
                for path in dict.fromkeys(files):  # a file two globs both match is read once
                    st = os.stat(path)
                    mark = marks.get(path)
                    if tail.unchanged(st, mark):
                        continue
                    moved = by_inode.get((st.st_dev, st.st_ino))  # renamed by rotation: keep its place
                    if (mark is None or (mark.dev, mark.ino) != (st.st_dev, st.st_ino)) and moved is not None:
                        mark = moved
                    offset = tail.resume_offset(path, st, mark)
                    workdir = workdir or tail.make_workdir()
                    ingested = False
                    for chunk in tail.chunks(path, offset, workdir):
                        self._ingest(chunk, st)
                        ingested = True
                    if not ingested:  # nothing whole was added (or a renamed file): its mark moves on anyway
                        self._save_mark(tail.mark_after(path, st, offset))
                    if mark is not None and mark.path != path:  # the old name now holds another file, or none
                        self.con.execute("DELETE FROM files WHERE path = ? AND dev = ? AND ino = ?",
                                         [mark.path, mark.dev, mark.ino])
            finally:
                if workdir:
                    tail.remove_workdir(workdir)
            if workdir:  # something was read
                self.prune()

    def prune(self) -> None:
        """Drop what is older than the retention behind the newest hour held, and span ids older than
        DEDUP_DAYS: a daemon's store would otherwise grow with every span it ever read (the ids alone
        are 16 bytes a span). Measured from the data, not the clock, so history read late is kept
        as long as history read on time. A span retried more than DEDUP_DAYS after it started
        counts again."""
        from datetime import timedelta

        with self.lock:
            newest = self.con.execute("SELECT MAX(hour) FROM cells").fetchone()[0]
            if newest is None:
                return
            keep, ids = newest - timedelta(days=self.retention_days), newest - timedelta(days=DEDUP_DAYS)
            with transaction(self.con) as con:
                for table in ("cells", "tenants", "sketches", "prompts", "prefixes"):
                    con.execute(f"DELETE FROM {table} WHERE hour < ?", [keep])
                con.execute("DELETE FROM seen WHERE hour < ?", [ids])

    def _ingest(self, chunk: tail.Chunk, st: os.stat_result) -> None:
        con = self.con
        keys = present_keys(con, chunk.path)
        for size in OBJECT_SIZES:
            try:
                con.execute(f"CREATE OR REPLACE TEMP TABLE batch AS {batch_sql(chunk.path, keys, size)}")
                break
            except Exception as exc:  # noqa: BLE001 - DuckDB's parse and type errors
                if size != OBJECT_SIZES[-1] and "maximum_object_size" in str(exc):
                    continue  # a line longer than the buffer, on a DuckDB that refuses those
                self._raise_located(chunk, f"cannot read: {first_line(exc)}")
        bad = con.execute("SELECT problem, COUNT(*) FROM batch WHERE problem IS NOT NULL GROUP BY 1 "
                          "ORDER BY 2 DESC LIMIT 1").fetchone()
        if bad:
            self._raise_located(chunk, f"{bad[1]} records with {bad[0]}")
        # a span seen before (in this chunk or any earlier one) counts once; the usual chunk has no
        # repeat, and then the batch is used as it is instead of being copied
        lo, hi = con.execute("SELECT MIN(hour), MAX(hour) FROM batch").fetchone()
        seen = "(SELECT hour, id FROM seen WHERE hour BETWEEN ? AND ?)"
        repeats = con.execute(f"SELECT (SELECT COUNT(id) - COUNT(DISTINCT id) FROM batch) + (SELECT COUNT(*) "
                              f"FROM batch b SEMI JOIN {seen} s ON s.id = b.id AND s.hour = b.hour)",
                              [lo, hi]).fetchone()[0]
        try:
            with transaction(con):
                if repeats:
                    con.execute(f"""CREATE OR REPLACE TEMP TABLE fresh AS SELECT * FROM batch b
                        WHERE b.id IS NULL OR NOT EXISTS (SELECT 1 FROM {seen} s WHERE s.id = b.id AND s.hour = b.hour)
                        QUALIFY b.id IS NULL OR row_number() OVER (PARTITION BY b.id) = 1""", [lo, hi])
                table = "fresh" if repeats else "batch"
                con.execute(f"INSERT INTO seen SELECT hour, id FROM {table} WHERE id IS NOT NULL")
                self._append(chunk.source, table, lo, hi)
                self._save_mark(tail.mark_after(chunk.source, st, chunk.end))
                self.records_read += int(con.execute("SELECT COUNT(*) FROM batch").fetchone()[0])
        finally:
            con.execute("DROP TABLE IF EXISTS batch; DROP TABLE IF EXISTS fresh")

    def _save_mark(self, mark: tail.FileMark) -> None:
        self.con.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)",
                         [mark.path, mark.dev, mark.ino, mark.size, mark.mtime_ns, mark.offset, mark.head])

    def _append(self, source: str, table: str, lo: Any, hi: Any) -> None:
        """Group the new rows on their keys as written, then normalise model and provider names on the
        (much smaller) grouped result and group once more; then fold the hours the rollup already
        had rows of, so it keeps one row per key.

        Appended data is in time order, so those are the hour a sweep stopped in (and a late file's
        hours): folding them costs what was appended. A periodic fold of whole tables instead made
        the sweep that triggered it pay for everything read before (13.9 s, 9% of a 10M-span read)."""
        con = self.con
        overlap = [r[0] for r in con.execute(
            f"SELECT DISTINCT hour FROM cells WHERE hour BETWEEN ? AND ? "
            f"AND hour IN (SELECT DISTINCT hour FROM {table})", [lo, hi]).fetchall()]
        insert_batch(self.con, source, table)
        if overlap:
            self._fold("hour BETWEEN ? AND ? AND list_contains(?, hour)", [min(overlap), max(overlap), overlap])

    def _raise_located(self, chunk: tail.Chunk, fallback: str) -> None:
        """A one-line error naming the file and, when it can be found, the line."""
        base = tail.lines_before(chunk.source, chunk.start) if chunk.start else 0
        with open(chunk.path, "rb") as fh:
            found = first_problem(fh, base + 1)
        raise BillingInputError(f"{chunk.source}:{found[0]}: {found[1]}" if found else f"{chunk.source}: {fallback}")

    # -- other sources ------------------------------------------------------------------------
    def add_aggregates(self, source: str, rows: list[UsageAggregate], watermark: str) -> None:
        """Rows a source aggregated itself. They replace the source's earlier rows of the same hours
        (re-reading an unfinished day is idempotent), and `watermark` is stored in one transaction."""
        with self.lock:
            with transaction(self.con) as con:
                hours = sorted({r.hour.replace(tzinfo=None) for r in rows})
                if hours:
                    con.execute("DELETE FROM cells WHERE source = ? AND list_contains(?, hour)", [source, hours])
                if rows:
                    # one statement over column lists: executemany costs DuckDB ~1 ms a row (13 s for the
                    # 16,710 cells of a million spend-log rows), this 0.1 s
                    hour = [r.hour.replace(tzinfo=None) for r in rows]
                    cols = [[source] * len(rows), hour, *([getattr(r, f) for r in rows] for f in _AGG_TEXT),
                            [None] * len(rows), [None] * len(rows),
                            *([getattr(r, f) for r in rows] for f in _AGG_NUMBERS), hour, hour]
                    # tenants sent as a set or a sketch are merged with the others by the readers: not summed
                    cols[-3] = [None if r.tenant_ids is not None or r.tenant_sketch is not None else r.tenants
                                for r in rows]
                    con.execute(f"INSERT INTO cells SELECT {', '.join(f'unnest(?::{t}[])' for t in _CELL_TYPES)}", cols)
                add_tenant_sets(con, [r for r in rows if r.tenant_ids is not None])
                add_sketches(con, [r for r in rows if r.tenant_sketch is not None])
                con.execute("INSERT OR REPLACE INTO marks VALUES (?, ?)", [source, watermark])
            if rows:
                self.prune()

    def watermark(self, source: str) -> str | None:
        """The text watermark `add_aggregates` last stored for `source` (None: never read)."""
        with self.lock:
            row = self.con.execute("SELECT watermark FROM marks WHERE source = ?", [source]).fetchone()
        return None if row is None else row[0]

    def file_marks(self) -> dict[str, tail.FileMark]:
        with self.lock:
            return {r[0]: tail.FileMark(*r) for r in self.con.execute("SELECT * FROM files").fetchall()}

    # -- upkeep -------------------------------------------------------------------------------
    def compact(self) -> None:
        """Fold every table to one row per key (appends fold as they go; this is for rows written
        by older versions)."""
        with self.lock:
            with transaction(self.con):
                self._fold("TRUE", [])

    def _fold(self, where: str, params: list[Any]) -> None:
        """Replace the rows `where` selects by their fold, inside the caller's transaction."""
        con = self.con
        for table, sql in _FOLD.items():
            con.execute(f"CREATE OR REPLACE TEMP TABLE folded AS {sql.format(where=where)}", params)
            con.execute(f"DELETE FROM {table} WHERE {where}", params)
            con.execute(f"INSERT INTO {table} SELECT * FROM folded")
        con.execute("DROP TABLE folded")

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.lock:
            return self.con.execute(sql, params or []).fetchall()

    def close(self) -> None:
        with self.lock:
            if self._con is not None:
                self._con.close()
                self._con = None
