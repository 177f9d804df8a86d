"""The BigQuery runner drives the real google-cloud-bigquery client against a local fake of
jobs.query / getQueryResults (tests/fakes/bigquery.py), which executes the SQL it is sent: the
totals come back through the client's paging equal to the local reader's, and the allowance of
bytes is enforced by the dry-run estimate and maximumBytesBilled."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from costwarden.agent.demo.billing import write_demo_billing
from costwarden.tools.billing.focus import FocusExport
from costwarden.tools.billing.warehouse.export import WarehouseExport
from costwarden.tools.billing.warehouse.runners import WarehouseCapError, WarehouseQueryError
from costwarden.tools.billing.warehouse.settings import WarehouseSettings
from tests.fakes.bigquery import FakeBigQuery
from tests.warehouse_duckdb import warehouse_con

NOW = datetime(2026, 3, 5, 7, tzinfo=timezone.utc)
START, END = datetime(2026, 1, 29, 7), datetime(2026, 3, 5, 7)
MB = 1024**2


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):
    path = write_demo_billing(tmp_path_factory.mktemp("bq"), NOW)["focus_paths"][0]
    return path, warehouse_con(path)


@pytest.fixture
def fake(data):
    f = FakeBigQuery(data[1], bytes_per_query=40 * MB, page_size=7).start()
    yield f
    f.stop()


def _export(fake: FakeBigQuery, limit: int = 10 * 1024**3) -> WarehouseExport:
    s = WarehouseSettings(kind="bigquery", table="proj.billing.focus", project="proj", location="US",
                          partition_column="_PARTITIONTIME", partition_format="timestamp",
                          max_bytes_scanned=limit, endpoint_url=fake.endpoint)
    return WarehouseExport(s, tag_map={"team": ["team"]})


def test_daily_series_come_back_through_paging_equal_to_the_local_reader(data, fake) -> None:
    path, _ = data
    local = FocusExport([path], tag_map={"team": ["team"]})
    wh = _export(fake)
    dims = ["provider", "billing_account", "sub_account", "service"]
    got, want = wh.daily_spend(dims, START, END), local.daily_spend(dims, START, END)
    assert len(want) > 3 * fake.page_size  # several pages
    assert sorted((r.day, r.keys["service"], r.cost.quantize(Decimal("0.01"))) for r in got) == \
        sorted((r.day, r.keys["service"], r.cost.quantize(Decimal("0.01"))) for r in want)
    assert {k: v.quantize(Decimal("0.01")) for k, v in wh.total(START, END).items()} == \
        {k: v.quantize(Decimal("0.01")) for k, v in local.total(START, END).items()}
    local.close()
    pages = [p for m, p, q in fake.requests if m == "GET" and "/queries/" in p]
    assert pages, "the client fetched further pages with getQueryResults"
    posts = [b for m, p, b in fake.requests if m == "POST"]
    assert [bool(b.get("dryRun")) for b in posts] == [True, False, True, False]  # estimate, then run
    assert all(int(b["maximumBytesBilled"]) > 0 for b in posts if not b.get("dryRun"))
    assert wh.ledger.used == 2 * 40 * MB and len(wh.ledger.queries) == 2
    wh.close()


def test_the_estimate_refuses_a_query_past_the_allowance_before_it_runs(fake) -> None:
    wh = _export(fake, limit=60 * MB)
    wh.total(START, END)  # 40 MB of 60
    with pytest.raises(WarehouseCapError, match="estimated 41,943,040 bytes"):
        wh.spend_by(["service"], START, END)
    assert [bool(b.get("dryRun")) for m, p, b in fake.requests if m == "POST"] == [True, False, True]


def test_maximum_bytes_billed_is_the_remaining_allowance_and_its_refusal_is_an_error(fake) -> None:
    """An estimate can fall short (BigQuery cannot always estimate a view): the job's own
    maximumBytesBilled, the allowance left, is what stops it, and that is an error, not $0."""
    wh = _export(fake, limit=100 * MB)
    fake.bytes_per_query = 30 * MB
    wh.total(START, END)
    run = [b for m, p, b in fake.requests if m == "POST" and not b.get("dryRun")][-1]
    assert int(run["maximumBytesBilled"]) == 100 * MB
    wh.total(START, END)
    assert wh.ledger.remaining == 40 * MB
    fake.dry_run_bytes = 0  # the estimate says nothing; the run would process 50 MB
    fake.bytes_per_query = 50 * MB
    with pytest.raises(WarehouseQueryError, match="bytes billed"):
        wh.total(START, END)
    run = [b for m, p, b in fake.requests if m == "POST" and not b.get("dryRun")][-1]
    assert int(run["maximumBytesBilled"]) == 40 * MB
    assert wh.ledger.used == 60 * MB  # the refused job processed nothing


def test_a_bad_query_is_an_error_never_zero(fake) -> None:
    wh = _export(fake)
    wh.queries.settings = wh.settings.model_copy(update={"columns": {"service": "NoSuchColumn"}})
    with pytest.raises(WarehouseQueryError, match="bigquery: query 'spend_by' failed"):
        wh.spend_by(["service"], START, END)
