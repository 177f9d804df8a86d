"""A FOCUS export loaded into DuckDB as a warehouse table would hold it, and a runner that executes a
warehouse dialect's SQL there (transpiled back by sqlglot): the proof that the SQL sent to Athena and
BigQuery computes the same numbers as the local reader, on the same rows."""

from __future__ import annotations

from typing import Any

import sqlglot
from sqlglot import exp

from costwarden.tools.billing.warehouse.runners import ScanLedger
from costwarden.tools.duckdb_sql import connect, sql_str

TABLES = {"athena": "cur.focus", "bigquery": "proj.billing.focus"}


def load_table(con: Any, csv_path: str, table: str) -> None:
    """The CSV typed as the warehouse types it (TIMESTAMP, DECIMAL), with the partition columns
    AWS Data Exports (billing_period 'YYYY-MM') and BigQuery (_PARTITIONTIME, the day) add."""
    parts = table.split(".")
    if len(parts) == 3:
        con.execute(f"ATTACH ':memory:' AS {parts[0]}")
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {'.'.join(parts[:-1])}")
    con.execute(f"""CREATE TABLE {table} AS
        SELECT * REPLACE (CAST(ChargePeriodStart AS TIMESTAMPTZ) AS ChargePeriodStart,
                          CAST(ChargePeriodEnd AS TIMESTAMPTZ) AS ChargePeriodEnd,
                          CAST(NULLIF(BilledCost, '') AS DECIMAL(38, 17)) AS BilledCost,
                          CAST(NULLIF(EffectiveCost, '') AS DECIMAL(38, 17)) AS EffectiveCost),
               strftime(CAST(ChargePeriodStart AS TIMESTAMPTZ), '%Y-%m') AS billing_period,
               date_trunc('day', CAST(ChargePeriodStart AS TIMESTAMPTZ)) AS _PARTITIONTIME
        FROM read_csv({sql_str(csv_path)}, all_varchar=true, header=true)""")


def to_duckdb(sql: str, dialect: str) -> str:
    """A warehouse query as DuckDB SQL. BigQuery's BIGNUMERIC (38 fractional digits) becomes
    DECIMAL(38,17), the local reader's type, rather than sqlglot's default DECIMAL(38,5)."""
    tree = sqlglot.parse_one(sql, read=dialect)
    if dialect == "bigquery":
        tree = tree.transform(lambda n: exp.DataType.build("DECIMAL(38, 17)")
                              if isinstance(n, exp.DataType) and n.this == exp.DataType.Type.BIGDECIMAL else n)
    return tree.sql(dialect="duckdb")


class DuckDBRunner:
    """Runs a warehouse dialect's SQL on DuckDB; records what it ran."""

    def __init__(self, con: Any, dialect: str) -> None:
        self.con, self.dialect = con, dialect
        self.sent: list[str] = []

    def run(self, name: str, sql: str, ledger: ScanLedger) -> list[tuple[Any, ...]]:
        ledger.check(name)
        self.sent.append(sql)
        rows = self.con.execute(to_duckdb(sql, self.dialect)).fetchall()
        ledger.add(name, 0)
        return rows

    def close(self) -> None:
        pass


def warehouse_con(csv_path: str) -> Any:
    con = connect()
    for table in TABLES.values():
        load_table(con, csv_path, table)
    return con
