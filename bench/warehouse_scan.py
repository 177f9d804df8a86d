"""Bytes one sweep's warehouse queries would scan, and what that costs on demand.

Athena and BigQuery bill the compressed bytes of the columns a query references, in the partitions
it reads. This writes a FOCUS export as Parquet partitioned by billing_period (as AWS Data Exports
does), takes the SQL of one sweep's billing questions (billing.focus: the lookback daily series;
billing.budget: month to date of each budget; data_start), and sums for each query the compressed
column-chunk sizes of its columns in its partitions. Figures are printed, per row of the export and
scaled to an estate of ROWS_PER_MONTH rows a month.

    python bench/warehouse_scan.py [rows_per_month]
"""

from __future__ import annotations

import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlglot
from sqlglot import exp

from costwarden.agent.demo.billing import write_demo_billing
from costwarden.tools.billing.warehouse.queries import FocusQueries, transpile
from costwarden.tools.billing.warehouse.settings import WarehouseSettings
from costwarden.tools.duckdb_sql import connect

NOW = datetime(2026, 3, 5, 7, tzinfo=timezone.utc)


def main() -> None:
    scale_rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000_000
    d = Path(tempfile.mkdtemp())
    csv = write_demo_billing(d, NOW, days=62)["focus_paths"][0]
    con = connect()
    con.execute(f"""COPY (SELECT * REPLACE (CAST(ChargePeriodStart AS TIMESTAMPTZ) AS ChargePeriodStart,
                          CAST(ChargePeriodEnd AS TIMESTAMPTZ) AS ChargePeriodEnd,
                          CAST(BilledCost AS DECIMAL(38, 17)) AS BilledCost,
                          CAST(EffectiveCost AS DECIMAL(38, 17)) AS EffectiveCost),
                          strftime(CAST(ChargePeriodStart AS TIMESTAMPTZ), '%Y-%m') AS billing_period
                   FROM read_csv('{csv}', all_varchar=true)) TO '{d}/pq' (FORMAT parquet, PARTITION_BY (billing_period))""")
    rows = {p: con.execute(f"SELECT COUNT(*) FROM read_parquet('{d}/pq/billing_period={p}/*.parquet')").fetchone()[0]
            for p in ("2026-01", "2026-02", "2026-03")}
    col_bytes = {}  # (partition, column) -> compressed bytes
    for p in rows:
        for name, size in con.execute(
                f"SELECT path_in_schema, SUM(total_compressed_size) FROM parquet_metadata("
                f"'{d}/pq/billing_period={p}/*.parquet') GROUP BY 1").fetchall():
            col_bytes[(p, name)] = int(size)
    ws = WarehouseSettings(kind="athena", table="cur.focus")
    q = FocusQueries(ws, tag_map={"team": ["team"]})
    now = NOW.replace(tzinfo=None)
    month = now.replace(day=1, hour=0)
    sweep = [q.daily_spend(["provider", "billing_account", "sub_account", "service"], now - timedelta(days=35), now),
             q.daily_spend([], month - timedelta(days=31), now, {"team": "research"}),
             q.daily_spend([], month - timedelta(days=31), now, {"team": "web"}),
             q.period(month - timedelta(days=31), now)]
    total_bytes, total_rows = 0, sum(rows.values())
    for query in sweep:
        tree = sqlglot.parse_one(transpile(query, "athena", "cur.focus"), read="athena")
        cols = {c.name for c in tree.find_all(exp.Column)} & {n for _, n in col_bytes}
        parts = [p for p in rows if f"'{p}'" in tree.sql("athena")]
        b = sum(col_bytes.get((p, c), 0) for p in parts for c in cols)
        total_bytes += b
        print(f"{query.name:12} partitions {parts} columns {len(cols)}: {b:,} bytes")
    read_rows = sum(rows.values())
    per_row = total_bytes / read_rows
    print(f"export rows: {total_rows:,}; one sweep scans {total_bytes:,} bytes = {per_row:.1f} bytes per row of the "
          f"partitions read")
    scaled = per_row * scale_rows * 2  # a sweep reads about two months of partitions
    print(f"scaled to {scale_rows:,} rows a month: {scaled / 1e9:,.1f} GB a sweep -> Athena ${scaled / 1e12 * 5:.2f}, "
          f"BigQuery on-demand ${scaled / 2**40 * 6.25:.2f} (tiny demo files compress worse than a real export)")


if __name__ == "__main__":
    main()
