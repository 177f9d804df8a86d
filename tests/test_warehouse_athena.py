"""The Athena runner drives PyAthena (real boto3 underneath) against moto's Athena: the query's
lifecycle (StartQueryExecution, polling GetQueryExecution, GetQueryResults pages), the result's
types, and the bytes-scanned cap. Moto runs no SQL, so the rows it returns are the Athena SQL's own
result computed on DuckDB and registered first; tests/test_warehouse_sql.py proves that SQL."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

import pytest

from costwarden.agent.demo.billing import write_demo_billing
from costwarden.tools.billing.focus import FocusExport
from costwarden.tools.billing.warehouse.export import WarehouseExport
from costwarden.tools.billing.warehouse.queries import FocusQueries, transpile
from costwarden.tools.billing.warehouse.runners import AthenaRunner, WarehouseCapError
from costwarden.tools.billing.warehouse.settings import WarehouseSettings
from tests.fakes.athena import AthenaMotoServer
from tests.warehouse_duckdb import to_duckdb, warehouse_con

NOW = datetime(2026, 3, 5, 7, tzinfo=timezone.utc)
START, END = datetime(2026, 1, 29, 7), datetime(2026, 3, 5, 7)
DIMS = ["provider", "billing_account", "sub_account", "service"]
GB = 10**9


@pytest.fixture(scope="module")
def server():
    s = AthenaMotoServer(page_size=5)
    s.start()
    yield s
    s.stop()


@pytest.fixture
def env(server, monkeypatch: pytest.MonkeyPatch) -> AthenaMotoServer:
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                 "AWS_ENDPOINT_URL": server.endpoint}.items():
        monkeypatch.setenv(k, v)
    server.shim.calls.clear()
    return server


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):
    path = write_demo_billing(tmp_path_factory.mktemp("athena"), NOW)["focus_paths"][0]
    return path, warehouse_con(path)


SETTINGS = WarehouseSettings(kind="athena", table="cur.focus", workgroup="primary", region="us-east-1",
                             output_location="s3://athena-results/costwarden/", max_bytes_scanned=25 * GB)
TYPES = {"VARCHAR": "varchar", "DATE": "date"}


def _athena_result(con: Any, sql: str) -> tuple[list[str], list[str], list[tuple[Any, ...]]]:
    """What Athena returns for `sql` (computed on DuckDB): names, Athena types, rows."""
    cur = con.execute(to_duckdb(sql, "athena"))
    rows = cur.fetchall()
    names = [d[0] for d in cur.description]
    types = ["decimal" if str(d[1]).startswith("DECIMAL") else TYPES.get(str(d[1]), "varchar") for d in cur.description]
    return names, types, rows


def _runner() -> AthenaRunner:
    return AthenaRunner(SETTINGS, poll_interval=0.01)


def test_daily_series_through_pyathena_and_moto_pages(env, data) -> None:
    path, con = data
    sql = transpile(FocusQueries(SETTINGS).daily_spend(DIMS, START, END), "athena", SETTINGS.table)
    env.register_results([_athena_result(con, sql)])
    env.shim.scanned_bytes = 3 * GB
    wh = WarehouseExport(SETTINGS, runner=_runner())
    got = wh.daily_spend(DIMS, START, END)
    local = FocusExport([path]).daily_spend(DIMS, START, END)
    assert len(got) == len(local) > 20
    assert sorted((r.day, r.keys["service"], r.cost.quantize(Decimal("0.01"))) for r in got) == \
        sorted((r.day, r.keys["service"], r.cost.quantize(Decimal("0.01"))) for r in local)
    assert all(isinstance(r.day, date) and isinstance(r.cost, Decimal) for r in got)
    ops = [op for op, _ in env.shim.calls]
    assert ops[0] == "StartQueryExecution" and "GetQueryExecution" in ops
    assert ops.count("GetQueryResults") >= len(local) // 5  # paged, 5 rows a page
    start = env.shim.calls[0][1]
    assert start["QueryString"] == sql and "billing_period IN (" in sql
    assert start["WorkGroup"] == "primary"
    assert start["ResultConfiguration"]["OutputLocation"] == "s3://athena-results/costwarden/"
    assert wh.ledger.used == 3 * GB
    wh.close()


def test_the_cap_stops_later_queries_after_the_scan_that_reaches_it(env, data) -> None:
    _, con = data
    q = FocusQueries(SETTINGS)
    env.register_results([_athena_result(con, transpile(q.total(START, END), "athena", SETTINGS.table))] * 2)
    env.shim.scanned_bytes = 13 * GB
    wh = WarehouseExport(SETTINGS, runner=_runner())
    assert wh.total(START, END)["USD"] > 0
    assert wh.total(START, END)["USD"] > 0  # 26 GB: this one passed the 25 GB cap, already paid for
    starts = sum(op == "StartQueryExecution" for op, _ in env.shim.calls)
    with pytest.raises(WarehouseCapError, match="26,000,000,000 of the 25,000,000,000 bytes"):
        wh.spend_by(["service"], START, END)
    assert sum(op == "StartQueryExecution" for op, _ in env.shim.calls) == starts  # never started
    assert "athena: 2 queries scanned 26,000,000,000 bytes" in wh.ledger.summary()
