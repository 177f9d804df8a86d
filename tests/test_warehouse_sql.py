"""Warehouse mode computes what the local reader computes, to the cent: every query definition,
transpiled to Athena's and BigQuery's dialects, run on DuckDB over the same rows as FocusExport."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from costwarden.agent.demo.billing import write_demo_billing
from costwarden.tools.billing.focus import FocusExport
from costwarden.tools.billing.warehouse.export import WarehouseExport
from costwarden.tools.billing.warehouse.queries import FocusQueries, transpile
from costwarden.tools.billing.warehouse.runners import WarehouseCapError
from costwarden.tools.billing.warehouse.settings import WarehouseSettings
from tests.focus_rows import focus_row, write_focus
from tests.warehouse_duckdb import TABLES, DuckDBRunner, warehouse_con

NOW = datetime(2026, 3, 5, 7, tzinfo=timezone.utc)  # a fixed clock: the demo export is built around it
TAG_MAP = {"team": ["team", "Team"], "env": ["env"]}
PARTITIONS = {"athena": ("billing_period", "month"), "bigquery": ("_PARTITIONTIME", "timestamp")}
CENT = Decimal("0.01")


def _settings(dialect: str, cost_column: str = "EffectiveCost") -> WarehouseSettings:
    col, fmt = PARTITIONS[dialect]
    return WarehouseSettings(kind=dialect, table=TABLES[dialect], project="proj", partition_column=col,
                             partition_format=fmt)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, object]:
    d = tmp_path_factory.mktemp("wh")
    path = write_demo_billing(d, NOW)["focus_paths"][0]
    return path, warehouse_con(path)


def _cents(rows: list) -> list:
    return sorted((tuple(sorted((k, str(v)) for k, v in r.keys.items())), str(r.day), r.currency,
                   r.cost.quantize(CENT)) for r in rows)


QUESTIONS = [
    ("total", lambda fx, s, e: {k: v.quantize(CENT) for k, v in fx.total(s, e).items()}),
    ("total team", lambda fx, s, e: {k: v.quantize(CENT) for k, v in fx.total(s, e, {"team": "research"}).items()}),
    ("by provider/service", lambda fx, s, e: _cents(fx.spend_by(["provider", "service"], s, e))),
    ("by team", lambda fx, s, e: _cents(fx.spend_by(["team"], s, e))),
    ("by sub-account", lambda fx, s, e: _cents(fx.spend_by(["sub_account"], s, e))),
    ("by billing account", lambda fx, s, e: _cents(fx.spend_by(["billing_account"], s, e))),
    ("credits/tax (by charge category)", lambda fx, s, e: _cents(fx.spend_by(["charge_category"], s, e))),
    ("daily (anomaly series)", lambda fx, s, e: _cents(
        fx.daily_spend(["provider", "billing_account", "sub_account", "service"], s, e))),
    ("daily budget (team)", lambda fx, s, e: _cents(fx.daily_spend([], s, e, {"team": "research"}))),
    ("daily by env", lambda fx, s, e: _cents(fx.daily_spend(["env"], s, e))),
    ("unused commitments", lambda fx, s, e: _cents(fx.unused_commitments(s, e))),
]
WINDOWS = [  # the collector's lookback window, month to date (budgets), and a window cut mid-day
    (datetime(2026, 1, 29, 7), datetime(2026, 3, 5, 7)),
    (datetime(2026, 3, 1), datetime(2026, 3, 5, 7)),
    (datetime(2026, 2, 25, 13), datetime(2026, 3, 3, 1)),
]


@pytest.mark.parametrize("dialect", ["athena", "bigquery"])
@pytest.mark.parametrize("cost_column", ["EffectiveCost", "BilledCost"])
def test_every_question_matches_the_local_reader_to_the_cent(demo, dialect: str, cost_column: str) -> None:
    path, con = demo
    local = FocusExport([path], cost_column=cost_column, tag_map=TAG_MAP)
    runner = DuckDBRunner(con, dialect)
    wh = WarehouseExport(_settings(dialect), cost_column=cost_column, tag_map=TAG_MAP, runner=runner)
    for start, end in WINDOWS:
        for name, ask in QUESTIONS:
            want, got = ask(local, start, end), ask(wh, start, end)
            assert got == want, (name, start, end)
    assert local.total(*WINDOWS[0])["USD"] > 0  # the demo holds spend: equal totals are not two zeros
    assert any("Purchase" in str(r.keys) for r in local.spend_by(["charge_category"], *WINDOWS[0]))
    assert wh.data_end() == local.data_end()
    local.close()
    # every query sent names the partition column: the warehouse prunes by billing period
    col = PARTITIONS[dialect][0]
    assert runner.sent and all(col in sql for sql in runner.sent)


@pytest.mark.parametrize("dialect", ["athena", "bigquery"])
def test_partition_predicate_is_applied(tmp_path: Path, dialect: str) -> None:
    """A row whose partition lies outside the window's is not read, even though its charge period is
    inside: the predicate is in the SQL that runs, not only in the text."""
    rows = [focus_row(date(2026, 3, 2), "Amazon EC2", "10.00"), focus_row(date(2026, 3, 3), "Amazon S3", "5.00")]
    path = write_focus(tmp_path / "f.csv", rows)
    con = warehouse_con(str(path))
    table = TABLES[dialect]
    col = PARTITIONS[dialect][0]
    value = "'2025-01'" if col == "billing_period" else "TIMESTAMPTZ '2025-01-01 00:00:00+00'"
    con.execute(f"UPDATE {table} SET {col} = {value} WHERE ServiceName = 'Amazon S3'")
    wh = WarehouseExport(_settings(dialect), runner=DuckDBRunner(con, dialect))
    assert wh.total(datetime(2026, 3, 1), datetime(2026, 3, 5)) == {"USD": Decimal("10.00")}


def test_slack_days_and_month_partitions() -> None:
    q = FocusQueries(WarehouseSettings(kind="athena", table="cur.focus", partition_slack_days=3))
    assert q.partition(datetime(2026, 3, 2), datetime(2026, 3, 5)) == "billing_period IN ('2026-02', '2026-03')"
    assert q.partition(datetime(2026, 3, 10), datetime(2026, 3, 20)) == "billing_period IN ('2026-03')"
    assert q.partition(datetime(2026, 12, 10), datetime(2026, 12, 31)) == "billing_period IN ('2026-12', '2027-01')"


@pytest.mark.parametrize("dialect", ["athena", "bigquery"])
def test_transpiled_sql_parses_in_its_dialect_and_names_the_table(dialect: str) -> None:
    q = FocusQueries(_settings(dialect), tag_map=TAG_MAP)
    s, e = datetime(2026, 3, 1), datetime(2026, 3, 5)
    for query in [q.total(s, e), q.spend_by(["service", "team"], s, e), q.daily_spend(["service"], s, e),
                  q.unused_commitments(s, e), q.period(s, e)]:
        sql = transpile(query, dialect, TABLES[dialect])
        tree = sqlglot.parse_one(sql, read=dialect)
        assert {t.name for t in tree.find_all(exp.Table)} >= {"focus"}
        assert "cw_focus_table" not in sql
        if query.name == "period":
            continue
        if dialect == "bigquery":
            assert "BIGNUMERIC" in sql and "DECIMAL(38, 5)" not in sql
        else:
            assert "DECIMAL(38, 17)" in sql and "DOUBLE" not in sql  # Trino divides decimals exactly


def test_an_open_window_is_refused_not_scanned(demo) -> None:
    _, con = demo
    wh = WarehouseExport(_settings("athena"), runner=DuckDBRunner(con, "athena"))
    with pytest.raises(Exception, match="needs a start and an end"):
        wh.total(None, datetime(2026, 3, 5))


def test_a_used_up_allowance_refuses_the_next_query_never_returns_zero(demo) -> None:
    _, con = demo
    wh = WarehouseExport(_settings("athena"), runner=DuckDBRunner(con, "athena"))
    wh.ledger.used = wh.ledger.limit
    with pytest.raises(WarehouseCapError, match="max_bytes_scanned"):
        wh.total(datetime(2026, 3, 1), datetime(2026, 3, 5))


FINE = st.integers(-10**19, 10**19).map(lambda n: Decimal(n) / Decimal(10**17))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 40), st.sampled_from(["EC2", "S3", " RDS ", ""]), FINE,
                          st.sampled_from([1, 1, 3, 31]), st.sampled_from(['{"team": "a"}', '{"Team": "b"}', "{}"])),
                min_size=1, max_size=30),
       st.sampled_from(["athena", "bigquery"]))
def test_property_totals_and_daily_series_match(tmp_path_factory, rows, dialect: str) -> None:
    """Random rows (17-digit amounts, negative credits, multi-day spans, blank services): the
    warehouse's totals and daily series equal the local reader's to the cent."""
    out = []
    for day_i, service, cost, span, tags in rows:
        day = date(2026, 2, 1) + timedelta(days=day_i)
        r = focus_row(day, service, str(cost), tags=tags)
        r["ChargePeriodEnd"] = f"{(day + timedelta(days=span)).isoformat()}T00:00:00Z"
        out.append(r)
    path = write_focus(tmp_path_factory.mktemp("p") / "f.csv", out)
    local = FocusExport([str(path)], tag_map=TAG_MAP)
    wh = WarehouseExport(_settings(dialect), tag_map=TAG_MAP, runner=DuckDBRunner(warehouse_con(str(path)), dialect))
    s, e = datetime(2026, 2, 5, 12), datetime(2026, 3, 10)
    for name, ask in QUESTIONS:
        assert ask(wh, s, e) == ask(local, s, e), name
    local.close()


def test_tags_as_an_athena_map_match_the_local_reader(demo) -> None:
    """AWS Data Exports types Tags as map<string,string>: element_at reads it (NULL when absent)."""
    path, _ = demo
    con = warehouse_con(path)
    con.execute("ALTER TABLE cur.focus ALTER Tags TYPE MAP(VARCHAR, VARCHAR) USING CAST(json(Tags) AS MAP(VARCHAR, VARCHAR))")
    s = WarehouseSettings(kind="athena", table="cur.focus", tags_format="map")
    runner = DuckDBRunner(con, "athena")
    wh = WarehouseExport(s, tag_map=TAG_MAP, runner=runner)
    local = FocusExport([path], tag_map=TAG_MAP)
    start, end = WINDOWS[0]
    for name, ask in QUESTIONS:
        assert ask(wh, start, end) == ask(local, start, end), name
    assert any("ELEMENT_AT" in sql for sql in runner.sent)
    local.close()


def test_map_tags_are_refused_on_bigquery() -> None:
    with pytest.raises(ValueError, match="tags_format 'map' is for Athena"):
        WarehouseSettings(kind="bigquery", table="p.d.t", tags_format="map")
