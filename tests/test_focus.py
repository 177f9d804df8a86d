"""FOCUS ingest: exact decimals, string account ids, 1.3 column names, one cost column, clear errors."""

from __future__ import annotations

import csv
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from costwarden.agent.demo.billing import FOCUS_COLUMNS, FOCUS_VERSIONS, write_demo_billing
from costwarden.tools.billing.focus import BillingInputError, FocusExport

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


@pytest.mark.parametrize("version", FOCUS_VERSIONS)
def test_reader_accepts_every_focus_version_the_demo_emits(version, tmp_path):
    from datetime import datetime, timezone

    cfg = write_demo_billing(tmp_path, now=datetime(2025, 3, 20, 9, tzinfo=timezone.utc), focus_version=version)
    path = Path(cfg["focus_paths"][0])
    with path.open(newline="") as fh:
        assert tuple(next(csv.reader(fh))) == FOCUS_COLUMNS[version]
    assert len(FOCUS_COLUMNS[version]) == {"1.0": 43, "1.2": 57}[version]
    fx = FocusExport([path])
    assert fx.row_count() == 14 * 11 + 2  # 8 instances, S3, CloudWatch and OpenAI a day; the fee; the credit
    by_provider = {r.keys["provider"]: r.cost for r in fx.spend_by(["provider"])}
    assert set(by_provider) == {"AWS", "OpenAI"}
    # the same bill whatever the version: the whole fleet at on-demand prices for 14 days
    ec2 = fx.total(filters={"service": "Amazon EC2"})["USD"]
    assert ec2 == (Decimal("21.96") * 2 + Decimal("55.04") + Decimal("1.212") + Decimal("1.006")
                   + Decimal("0.192") * 3) * 24 * 14
    fx.close()


def test_demo_rejects_an_unknown_focus_version(tmp_path):
    with pytest.raises(ValueError, match="FOCUS version '1.1'"):
        write_demo_billing(tmp_path, focus_version="1.1")


def _hourly(tmp_path, name="h.csv"):
    return write_csv(tmp_path / name, [
        row("2025-01-01", "EC2", "1") | {"ChargePeriodStart": "2025-01-01T10:00:00Z", "ChargePeriodEnd": "2025-01-01T11:00:00Z"},
        row("2025-01-01", "EC2", "2") | {"ChargePeriodStart": "2025-01-01T20:00:00Z", "ChargePeriodEnd": "2025-01-01T21:00:00Z"},
        row("2025-01-02", "EC2", "4") | {"ChargePeriodStart": "2025-01-02T05:00:00Z", "ChargePeriodEnd": "2025-01-02T06:00:00Z"},
        row("2025-01-02", "S3", "8", CommitmentDiscountStatus="Unused")
        | {"ChargePeriodStart": "2025-01-02T23:00:00Z", "ChargePeriodEnd": "2025-01-03T00:00:00Z"},
        row("2025-01-03", "S3", "16") | {"ChargePeriodStart": "2025-01-03T00:00:00Z", "ChargePeriodEnd": "2025-01-04T00:00:00Z"},
    ])


def test_windows_with_partial_days_stay_exact_to_the_microsecond(tmp_path):
    from datetime import datetime

    fx = FocusExport([_hourly(tmp_path)])
    t = lambda *a: datetime(2025, *a)  # noqa: E731
    assert fx.total(t(1, 1, 15), t(1, 2, 6)) == {"USD": Decimal(6)}  # two partial days
    assert fx.total(t(1, 1, 20), t(1, 3)) == {"USD": Decimal(14)}  # a partial start, a midnight end
    assert fx.total(t(1, 1, 11), t(1, 1, 21)) == {"USD": Decimal(2)}  # inside one day
    assert fx.total(t(1, 2, 5), t(1, 2, 5, 0, 0, 1)) == {"USD": Decimal(4)}  # one microsecond
    assert fx.total(t(1, 2, 5, 0, 0, 1), t(1, 2, 23)) == {}  # nothing starts in between
    assert fx.total(date(2025, 1, 2)) == {"USD": Decimal(28)}
    by = {r.keys["service"]: r.cost for r in fx.spend_by(["service"], t(1, 1, 15), t(1, 2, 23, 30))}
    assert by == {"EC2": Decimal(6), "S3": Decimal(8)}
    # the same questions over the rows (charge_category is not a cube column) give the same answers
    assert fx.total(t(1, 1, 15), t(1, 2, 6), filters={"charge_category": "Usage"}) == {"USD": Decimal(6)}
    assert fx.total(t(1, 1, 11), t(1, 1, 21), filters={"charge_category": "Usage"}) == {"USD": Decimal(2)}
    unused = fx.unused_commitments()
    assert [(r.keys["service"], r.cost) for r in unused] == [("S3", Decimal(8))]
    assert fx.unused_commitments(t(1, 3)) == []


def test_cube_answers_match_the_rows_and_a_changed_file_is_read_again(tmp_path):
    import os

    f = _hourly(tmp_path)
    fx = FocusExport([f], tag_map={"team": ["team"]})
    cubed = fx.daily_spend(["service"])
    rows = fx._daily_spend_rows(["service"])  # the row-level path the cube replaces
    assert [(r.keys, r.day, r.cost) for r in cubed] == [(r.keys, r.day, r.cost) for r in rows]
    assert fx.row_count() == 5
    write_csv(f, [row("2025-01-05", "EC2", "7")])
    os.utime(f, ns=(1, 1))  # even with an old mtime, the size changed
    fx2 = FocusExport([f])
    assert fx2.row_count() == 1 and fx2.total() == {"USD": Decimal(7)}


def test_typed_parquet_decimals_timestamps_with_zone_and_string_ids(tmp_path):
    import duckdb

    p = tmp_path / "typed.parquet"
    duckdb.sql(f"""COPY (SELECT '000000000042' AS BillingAccountId, '000000000042' AS SubAccountId,
        'AWS' AS ProviderName, 'Amazon EC2' AS ServiceName, 'Usage' AS ChargeCategory, 'USD' AS BillingCurrency,
        TIMESTAMPTZ '2025-01-01 23:00:00+00' + to_hours(i) AS ChargePeriodStart,
        TIMESTAMPTZ '2025-01-02 00:00:00+00' + to_hours(i) AS ChargePeriodEnd,
        CAST('0.10000000000000001' AS DECIMAL(38,17)) AS BilledCost,
        CAST('0.10000000000000001' AS DECIMAL(38,17)) AS EffectiveCost, '{{"team": "web"}}' AS Tags
        FROM range(3) t(i)) TO '{p}' (FORMAT parquet)""")
    fx = FocusExport([p], tag_map={"team": ["team"]})
    assert fx.total() == {"USD": Decimal("0.30000000000000003")}
    days = [(r.day, r.cost) for r in fx.daily_spend(["billing_account"], filters={"team": "web"})]
    assert days == [(date(2025, 1, 1), Decimal("0.10000000000000001")), (date(2025, 1, 2), Decimal("0.20000000000000002"))]
    assert fx.spend_by(["sub_account"])[0].keys == {"sub_account": "000000000042"}


def _tagged_export(tmp_path):
    """A CSV and a Parquet file sharing Tags texts, and a CSV with no Tags column at all."""
    import duckdb

    web = '{"team": "web", "env": "prod"}'
    a = write_csv(tmp_path / "a.csv", [
        row("2025-01-01", "EC2", "1", tags=web),
        row("2025-01-01", "EC2", "2", tags='{"env": "prod", "team": "web", "x": [1]}'),  # same values, other text
        row("2025-01-01", "EC2", "4", tags='{"owner": "ml", "app": "search"}'),
        row("2025-01-02", "EC2", "8", tags='{"team": 7}'),  # values are not all strings
        row("2025-01-02", "S3", "16", tags="  "),
        row("2025-01-02", "S3", "32", tags="{}"),
        row("2025-01-01", "Support", "31", tags=web, end="2025-02-01T00:00:00Z"),  # spread over 31 days
    ])
    src = write_csv(tmp_path / "b.src", [row("2025-01-02", "EC2", "64", tags=web),
                                         row("2025-01-03", "EC2", "128", tags='{"feature": "chat"}')])
    b = tmp_path / "b.parquet"
    duckdb.sql(f"COPY (SELECT * FROM read_csv('{src}', all_varchar=true)) TO '{b}' (FORMAT parquet)")
    c = write_csv(tmp_path / "c.csv", [row("2025-01-03", "S3", "256")], [h for h in HEADER if h != "Tags"])
    return [a, b, c]


def test_cube_keyed_on_mapped_tags_answers_as_the_rows_do(tmp_path):
    tag_map = {"team": ["team", "owner"], "env": ["env"], "feature": ["feature", "app"]}
    fx = FocusExport(_tagged_export(tmp_path), tag_map=tag_map)
    teams = {r.keys["team"]: r.cost for r in fx.spend_by(["team"])}
    # the tags shared by a.csv and b.parquet are counted once per row, not once per file
    assert teams == {"web": Decimal(98), "ml": Decimal(4), "7": Decimal(8), None: Decimal(432)}
    assert fx.total(filters={"team": "web", "env": "prod"}) == {"USD": Decimal(98)}
    # the same questions over the rows (every row is Usage: the filter only forces the row path)
    usage = {"charge_category": "Usage"}
    for dims in (["team"], ["team", "env"], ["feature", "service"]):
        cubed = sorted(((tuple(r.keys.values()), r.cost) for r in fx.spend_by(dims)), key=repr)
        rows = sorted(((tuple(r.keys.values()), r.cost) for r in fx.spend_by(dims, filters=usage)), key=repr)
        assert cubed == rows, dims
    daily = [(r.keys, r.day, r.cost) for r in fx.daily_spend(["feature", "env"])]
    assert daily == [(r.keys, r.day, r.cost) for r in fx._daily_spend_rows(["feature", "env"])]
    assert fx.total(date(2025, 1, 2), date(2025, 1, 3), filters={"feature": "search"}) == {}
    # an unmapped tag key reads the rows: exactly that key, no fallback to owner
    by_key = {r.keys["tag:team"]: r.cost for r in fx.spend_by(["tag:team"])}
    assert by_key == {"web": Decimal(98), "7": Decimal(8), None: Decimal(436)}
    # two texts with the same mapped values on the same day share one cube cell; other values do not
    cells = fx.con.execute("SELECT COUNT(*) FROM cube WHERE first_day = 20089 AND service = 'EC2'").fetchone()[0]
    assert cells == 2  # web/prod (two texts) and ml/search


def test_the_cube_follows_the_tag_map(tmp_path):
    files = _tagged_export(tmp_path)
    by_team = {r.keys["team"]: r.cost for r in FocusExport(files, tag_map={"team": ["team"]}).spend_by(["team"])}
    by_owner = {r.keys["team"]: r.cost for r in FocusExport(files, tag_map={"team": ["owner"]}).spend_by(["team"])}
    assert by_team["web"] == Decimal(98) and "ml" not in by_team
    assert by_owner == {"ml": Decimal(4), None: Decimal(538)}


def test_tags_that_are_not_json_fail_only_the_questions_about_tags(tmp_path):
    f = write_csv(tmp_path / "t.csv", [row("2025-01-01", "EC2", "1", tags='{"team": "web"}'),
                                       row("2025-01-01", "EC2", "2", tags="team=web")])
    fx = FocusExport([f], tag_map={"team": ["team"]})
    assert fx.total() == {"USD": Decimal(3)}
    assert [(r.keys, r.cost) for r in fx.spend_by(["service"])] == [({"service": "EC2"}, Decimal(3))]
    with pytest.raises(BillingInputError) as e:
        fx.daily_spend([], filters={"team": "web"})
    assert str(e.value) == f"{f}: column 'Tags': cannot read 'team=web' as JSON"
