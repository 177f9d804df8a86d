"""The SQL that appends to the usage rollup's tables (tools/llm/rollup.py): a batch of canonical rows
read from a file, and the tenant sets and HyperLogLog sketches that aggregate sources send.

Kept apart from the rollup's bookkeeping (stores, watermarks, transactions, folding) because this is
where the per-row cost of an ingest is, and it is easiest to measure and change on its own.
"""

from __future__ import annotations

from typing import Any

from costwarden.tools.llm.fields import UsageAggregate
from costwarden.tools.llm.formats import model_sql, provider_sql
from costwarden.tools.llm.sketch import DUCKDB_HASH

CELL = "hash(feature, tier, model, provider, outcome)"  # the tenants table's key of a cell
TENANT = DUCKDB_HASH.format(x="tenant")  # the tenants table's tenant (the sketches' hash)


def insert_batch(con: Any, source: str, table: str) -> None:
    """Append the batch's rows to every table, grouped.

    A batch names few distinct (feature, tier, model, provider, outcome) combinations, so they
    are normalised once, in a map keyed by the hash of the names as written, and the million
    rows are grouped on numbers (hour, that hash, size buckets) joined to it: grouping on the
    names themselves, then normalising and grouping again, took 2.5 s of a 1M-span read where
    the hourly cells are almost as many as the rows."""
    raw = "hash(feature, tier, model, provider, outcome)"  # the names as written
    con.execute(f"""CREATE OR REPLACE TEMP TABLE names AS
        SELECT raw, feature, tier, model, provider, outcome, {CELL} AS cell
        FROM (SELECT raw, feature, tier, {model_sql('model')} AS model, {provider_sql('provider', 'model')} AS provider,
                     lower(outcome) AS outcome
              FROM (SELECT {raw} AS raw, any_value(feature) feature, any_value(tier) tier, any_value(model) model,
                           any_value(provider) provider, any_value(outcome) outcome
                    FROM (SELECT DISTINCT feature, tier, model, provider, outcome FROM {table}) GROUP BY raw))""")
    rows = f"(SELECT b.*, n.cell FROM (SELECT *, {raw} AS raw FROM {table}) b JOIN names n USING (raw))"
    con.execute(f"""INSERT INTO cells SELECT ?, g.hour, n.feature, n.tier, n.model, n.provider, n.outcome, g.in_le,
            g.out_le, g.n, g.i, g.o, g.cr, g.cw, g.rc, NULL, g.lo, g.hi
        FROM (SELECT hour, cell, in_le, out_le, COUNT(*) n, SUM(input_tokens) i, SUM(output_tokens) o,
                     SUM(cache_read_tokens) cr, SUM(cache_write_tokens) cw, SUM(reported_cost) rc, MIN(ts) lo,
                     MAX(ts) hi FROM {rows} GROUP BY ALL) g
        JOIN (SELECT DISTINCT cell, feature, tier, model, provider, outcome FROM names) n USING (cell)""", [source])
    # md5 (the sketches' hash, tools/llm/sketch.py) once per distinct tenant of the batch, not per row:
    # per row it cost 1.0 s more per million spans than DuckDB's hash()
    con.execute(f"""INSERT INTO tenants SELECT DISTINCT r.hour, r.cell, t.h
        FROM {rows} r JOIN (SELECT tenant, {TENANT} AS h FROM (SELECT DISTINCT tenant FROM {table}
                            WHERE tenant IS NOT NULL)) t USING (tenant)""")
    con.execute("""INSERT INTO cell_names SELECT DISTINCT cell, feature, tier, model, provider, outcome FROM names c
        WHERE NOT EXISTS (SELECT 1 FROM cell_names n WHERE n.cell = c.cell)""")
    con.execute(f"""INSERT INTO prompts SELECT hour, feature, model, hash, SUM(n), SUM(i), SUM(o)
        FROM (SELECT hour, feature, {model_sql('model')} AS model, prompt_hash AS hash, COUNT(*) n,
                     SUM(input_tokens) i, SUM(output_tokens) o
              FROM {table} WHERE prompt_hash IS NOT NULL GROUP BY ALL) GROUP BY ALL""")
    con.execute(f"""INSERT INTO prefixes SELECT hour, feature, model, hash, SUM(n), MIN(p)
        FROM (SELECT hour, feature, {model_sql('model')} AS model, prefix_hash AS hash, COUNT(*) n,
                     MIN(prefix_tokens) p
              FROM {table} WHERE prefix_hash IS NOT NULL GROUP BY ALL) GROUP BY ALL""")
    con.execute("DROP TABLE names")


def add_tenant_sets(con: Any, rows: list[UsageAggregate]) -> None:
    """The tenants a source sent as sets join the files' tenants (merged exactly, by hash)."""
    flat = [(r.hour.replace(tzinfo=None), r.feature, r.tier, r.model, r.provider, r.outcome, t)
            for r in rows for t in r.tenant_ids or ()]
    if flat:
        _insert_keyed(con, flat, ("tenant", "VARCHAR"),
                      f"INSERT INTO tenants SELECT DISTINCT hour, {CELL}, {TENANT} FROM ({{src}})")


def add_sketches(con: Any, rows: list[UsageAggregate]) -> None:
    """The registers of cells a source sent as HyperLogLog sketches (at most 4096 rows a cell),
    passed as one list per cell and unnested by DuckDB (a flat million-element parameter is
    three times slower to hand over)."""
    if rows:
        flat = [(r.hour.replace(tzinfo=None), r.feature, r.tier, r.model, r.provider, r.outcome,
                 list(r.tenant_sketch or ())) for r in rows]
        _insert_keyed(con, flat, ("regs", "INTEGER[]"),
                      f"INSERT INTO sketches SELECT hour, {CELL}, rr >> 6, MAX(rr & 63) "
                      f"FROM (SELECT *, unnest(regs) AS rr FROM ({{src}})) GROUP BY ALL")


def _insert_keyed(con: Any, flat: list[tuple[Any, ...]], last: tuple[str, str], sql: str) -> None:
    """Run `sql` over rows of (hour, feature, tier, model, provider, outcome, last) passed as column
    lists (one statement, not executemany), and name the cells they add."""
    types = ("TIMESTAMP", "VARCHAR", "VARCHAR", "VARCHAR", "VARCHAR", "VARCHAR", last[1])
    cols = ("hour", "feature", "tier", "model", "provider", "outcome", last[0])
    src = "SELECT " + ", ".join(f"unnest(?::{t}[]) AS {c}" for t, c in zip(types, cols))
    lists = [list(c) for c in zip(*flat)]
    con.execute(sql.format(src=src), lists)
    con.execute(f"""INSERT INTO cell_names SELECT * FROM (
            SELECT DISTINCT {CELL} AS cell, feature, tier, model, provider, outcome FROM ({src})) c
        WHERE NOT EXISTS (SELECT 1 FROM cell_names n WHERE n.cell = c.cell)""", lists)
