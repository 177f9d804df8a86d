"""FOCUS ingest: exact decimals, string account ids, 1.3 column names, one cost column, clear errors."""

from __future__ import annotations

import csv
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from tools.billing.focus import BillingInputError, FocusExport

HEADER = ["BillingAccountId", "SubAccountId", "ProviderName", "ServiceName", "ChargeCategory", "BillingCurrency",
          "ChargePeriodStart", "ChargePeriodEnd", "BilledCost", "EffectiveCost", "ResourceId", "Tags",
          "CommitmentDiscountStatus"]


def write_csv(path: Path, rows: list[dict], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in header})
    return path


def row(day: str, service: str, cost: str, *, billed: str | None = None, account: str = "012345678901",
        category: str = "Usage", tags: str = "", end: str | None = None, resource: str = "r-1", **kw) -> dict:
    return {"BillingAccountId": account, "SubAccountId": account, "ProviderName": "AWS", "ServiceName": service,
            "ChargeCategory": category, "BillingCurrency": "USD", "ChargePeriodStart": f"{day}T00:00:00Z",
            "ChargePeriodEnd": end or f"{day}T01:00:00Z", "BilledCost": billed if billed is not None else cost,
            "EffectiveCost": cost, "ResourceId": resource, "Tags": tags, **kw}


def test_totals_are_exact_decimals_and_account_ids_stay_strings(tmp_path):
    rows = [row("2025-01-01", "Amazon EC2", "0.10000000000000001") for _ in range(10)]
    rows.append(row("2025-01-02", "Amazon S3", "1.5", account="000000000042"))
    f = write_csv(tmp_path / "focus.csv", rows)
    fx = FocusExport([f])
    assert fx.total() == {"USD": Decimal("2.50000000000000010")}  # a float sum would lose the last digits
    by_account = {r.keys["billing_account"]: r.cost for r in fx.spend_by(["billing_account"])}
    assert set(by_account) == {"012345678901", "000000000042"}  # leading zeros kept
    assert fx.row_count() == 11


def test_effective_cost_is_reported_never_the_sum_of_both(tmp_path):
    f = write_csv(tmp_path / "c.csv", [
        row("2025-01-01", "Savings Plans", "0", billed="100", category="Purchase"),  # purchase: billed only
        row("2025-01-01", "Amazon EC2", "100", billed="0"),  # committed usage: effective only
        row("2025-01-01", "Credits", "-20", category="Credit", resource=""),  # negative, null ResourceId
    ])
    assert FocusExport([f]).total() == {"USD": Decimal(80)}
    assert FocusExport([f], cost_column="BilledCost").total() == {"USD": Decimal(80)}
    services = {r.keys["service"]: r.cost for r in FocusExport([f]).spend_by(["service"])}
    assert services == {"Amazon EC2": Decimal(100), "Savings Plans": Decimal(0), "Credits": Decimal(-20)}


def test_many_files_by_glob_parquet_and_focus_13_provider_column(tmp_path):
    import duckdb

    write_csv(tmp_path / "a.csv", [row("2025-01-01", "Amazon EC2", "2")])
    header13 = [("ServiceProviderName" if h == "ProviderName" else h) for h in HEADER]
    r13 = row("2025-01-02", "Compute Engine", "3")
    r13["ServiceProviderName"] = r13.pop("ProviderName").replace("AWS", "Google Cloud")
    write_csv(tmp_path / "b.csv", [r13], header13)
    src = write_csv(tmp_path / "p.src", [row("2025-01-03", "Amazon S3", "5")])
    duckdb.sql(f"COPY (SELECT * FROM read_csv('{src}', all_varchar=true)) TO '{tmp_path / 'c.parquet'}' (FORMAT parquet)")
    fx = FocusExport([str(tmp_path / "*.csv"), tmp_path / "c.parquet"])
    assert len(fx.files) == 3
    providers = {r.keys["provider"]: r.cost for r in fx.spend_by(["provider"])}
    assert providers == {"AWS": Decimal(7), "Google Cloud": Decimal(3)}


def test_daily_spend_spreads_multi_day_rows_and_filters_by_mapped_tag(tmp_path):
    f = write_csv(tmp_path / "d.csv", [
        row("2025-01-01", "Support", "31", end="2025-02-01T00:00:00Z", tags='{"team": "web"}'),  # a monthly row
        row("2025-01-05", "Amazon EC2", "7", tags='{"app": "search", "cost": 3}'),
    ])
    fx = FocusExport([f], tag_map={"team": ["team", "app"]})
    days = {(r.keys["service"], r.day): r.cost for r in fx.daily_spend(["service"])}
    assert days[("Support", date(2025, 1, 1))] == Decimal(1) and days[("Support", date(2025, 1, 31))] == Decimal(1)
    assert sum(v for (s, _), v in days.items() if s == "Support") == Decimal(31)
    teams = {r.keys["team"]: r.cost for r in fx.spend_by(["team"])}
    assert teams == {"web": Decimal(31), "search": Decimal(7)}
    jan5 = fx.daily_spend(["service"], start=date(2025, 1, 5), end=date(2025, 1, 6), filters={"team": "search"})
    assert [(r.day, r.cost) for r in jan5] == [(date(2025, 1, 5), Decimal(7))]


def test_missing_required_column_names_file_and_column(tmp_path):
    f = write_csv(tmp_path / "x.csv", [row("2025-01-01", "EC2", "1")], [h for h in HEADER if h != "EffectiveCost"])
    with pytest.raises(BillingInputError) as e:
        FocusExport([f])
    assert str(e.value) == f"{f}: missing required FOCUS column 'EffectiveCost'"


def test_unparseable_amount_names_file_column_and_row(tmp_path):
    good = write_csv(tmp_path / "good.csv", [row("2025-01-01", "EC2", "1")])
    bad = write_csv(tmp_path / "bad.csv", [row("2025-01-01", "EC2", "1"), row("2025-01-02", "EC2", "12,50", billed="1")])
    fx = FocusExport([good, bad])
    with pytest.raises(BillingInputError) as e:
        fx.total()
    assert str(e.value) == f"{bad}: column 'EffectiveCost', data row 2: cannot read '12,50' as a decimal amount"
    assert "\n" not in str(e.value)


def test_no_matching_file_is_an_error(tmp_path):
    with pytest.raises(BillingInputError, match="no file matches"):
        FocusExport([str(tmp_path / "*.csv")])
    with pytest.raises(BillingInputError, match="no such file"):
        FocusExport([tmp_path / "nope.csv"])
