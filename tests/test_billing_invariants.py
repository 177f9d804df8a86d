"""Invariants a FinOps practitioner checks first, as properties over generated FOCUS 1.2 exports:

- the monthly waste of the billing findings never exceeds the monthly spend of the scope;
- EffectiveCost and BilledCost are never added, and an unused commitment is never counted twice
  with the purchase that paid for it;
- every report table sums to its total (the rows beyond the top N are an "other" row).

The generator writes what third-party exports hold: a sub-account under two billing accounts,
sparse and brand-new series, spikes, credits, amounts with 17 fractional digits, commitment
purchases (BilledCost, EffectiveCost 0) amortised over used and unused rows (the reverse), and tag
keys spelled `team`, `Team` and `Owner`.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from costwarden.agent.reports.spend import build_report
from costwarden.policies.detectors.base import DetectContext, Price
from costwarden.policies.detectors.spend_anomaly import SpendAnomaly, SpendAnomalyParams
from costwarden.state.domain import DAYS_PER_MONTH
from costwarden.tools.billing.collect import collect_focus
from costwarden.tools.billing.focus import FocusExport
from costwarden.tools.billing.settings import BillingSettings
from costwarden.tools.collectors import CollectPlan, CollectReport, Scope
from tests.focus_rows import focus_row, write_focus

NOW = datetime(2025, 6, 3, 7, tzinfo=timezone.utc)
LAST = date(2025, 6, 2)  # the last complete day
TAGS = ['{"team": "web"}', '{"Team": "data"}', '{"Owner": "ml"}', '{"env": "prod"}', "{}"]
SERVICES = ["Amazon EC2", "Amazon S3", "Amazon RDS", "AWS Lambda", "Amazon CloudWatch", "Amazon SageMaker",
            "Virtual Machines", "Storage", "Azure SQL", "Key Vault"]
FINE = st.integers(0, 10**17 - 1).map(lambda n: Decimal(n) / Decimal(10**17))  # 17 fractional digits


@st.composite
def series_rows(draw: st.DrawFn, days: int) -> list[dict[str, str]]:
    """One daily series: steady, sparse or new, possibly with a spike on the last day."""
    provider = draw(st.sampled_from(["AWS", "Microsoft"]))
    billing_account = draw(st.sampled_from(["900000000001", "900000000002"]))
    sub = draw(st.sampled_from(["012345678901", "111122223333"]))  # repeated under both billing accounts
    service = draw(st.sampled_from(SERVICES))
    level = draw(st.integers(1, 300_000)) / 100
    shape = draw(st.sampled_from(["steady", "sparse", "new"]))
    spike = draw(st.sampled_from([1, 1, 3, 50]))
    tags = draw(st.sampled_from(TAGS))
    rows = []
    for i in range(days):
        day = LAST - timedelta(days=days - 1 - i)
        last = i == days - 1
        if shape == "new" and not last:
            continue
        if shape == "sparse" and not last and draw(st.booleans()):
            continue
        cost = Decimal(str(level)) * (spike if last else 1) + draw(FINE)
        rows.append(focus_row(day, service, str(cost), provider=provider, billing_account=billing_account,
                              sub_account=sub, tags=tags))
    return rows


@st.composite
def commitment_rows(draw: st.DrawFn, days: int) -> list[dict[str, str]]:
    """A commitment bought on the first day and amortised: used + unused EffectiveCost = the purchase."""
    used = [Decimal(draw(st.integers(0, 50_000))) / 100 for _ in range(days)]
    unused = [Decimal(draw(st.integers(0, 20_000))) / 100 for _ in range(days)]
    first = LAST - timedelta(days=days - 1)
    purchase = sum(used, Decimal(0)) + sum(unused, Decimal(0))
    rows = [focus_row(first, "Amazon EC2", "0", billed=str(purchase), category="Purchase")]
    for i in range(days):
        day = first + timedelta(days=i)
        rows.append(focus_row(day, "Amazon EC2", str(used[i]), billed="0", status="Used"))
        rows.append(focus_row(day, "Amazon EC2", str(unused[i]), billed="0", status="Unused"))
    return rows


@st.composite
def exports(draw: st.DrawFn) -> list[dict[str, str]]:
    days = draw(st.integers(10, 35))
    rows: list[dict[str, str]] = []
    for _ in range(draw(st.integers(1, 12))):
        rows += draw(series_rows(days))
    if draw(st.booleans()):
        rows += draw(commitment_rows(days))
    if draw(st.booleans()):  # a credit: negative, on the provider's billing account
        rows.append(focus_row(LAST - timedelta(days=2), "AWS Credits", str(-draw(st.integers(1, 100_000))),
                              category="Credit"))
    return rows


def _write(rows: list[dict[str, str]]) -> Path:
    return write_focus(Path(tempfile.mkdtemp(prefix="cw-prop-")) / "focus.csv", rows)


def _window_days(rows: list[dict[str, str]], lookback: int) -> list[date]:
    first = min(date.fromisoformat(r["ChargePeriodStart"][:10]) for r in rows)
    start = max(first, LAST - timedelta(days=lookback))
    return [start + timedelta(days=i) for i in range((LAST - start).days + 1)]


PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(exports(), st.sampled_from([SpendAnomalyParams(), SpendAnomalyParams(
    z_threshold=0.5, min_excess_usd_per_day=0, min_share_of_scope=0)]))
def test_waste_of_billing_findings_never_exceeds_the_scope_spend(rows, params):
    path = _write(rows)
    billing = BillingSettings(focus_paths=[str(path)])
    plan = CollectPlan(wants=lambda _r: True, metrics=[], lookback_hours=0, now=NOW)
    detector = SpendAnomaly(params)
    ctx = DetectContext(policy="p", run_id="r", now=NOW, price_of=lambda _r: Price(None, "n/a"))
    report = CollectReport()
    findings = [f for o in collect_focus(billing, Scope(regions=[]), plan, report)
                if (f := detector.detect(o, ctx)) is not None]
    assert report.errors == []
    assert len({f.id for f in findings}) == len(findings)  # every dimension is in the id
    # the scope's monthly spend before credits, computed here from the rows, not by the code under test
    window = set(_window_days(rows, params.lookback_days))
    by_series: dict[tuple[str, ...], Decimal] = defaultdict(Decimal)
    for r in rows:
        if date.fromisoformat(r["ChargePeriodStart"][:10]) in window:
            key = (r["ProviderName"], r["BillingAccountId"], r["SubAccountId"], r["ServiceName"])
            by_series[key] += Decimal(r["EffectiveCost"])
    scope_monthly = sum((max(v, Decimal(0)) for v in by_series.values()), Decimal(0)) * DAYS_PER_MONTH / len(window)
    waste = sum((f.monthly_waste_usd for f in findings), Decimal(0))
    assert waste <= scope_monthly + Decimal("0.01") * len(findings)


@PROPERTY
@given(exports())
def test_cost_columns_are_never_added_and_commitments_never_counted_twice(rows):
    path = _write(rows)
    exact = {col: sum((Decimal(r[col]) for r in rows), Decimal(0)) for col in ("EffectiveCost", "BilledCost")}
    unused = sum((Decimal(r["EffectiveCost"]) for r in rows if r["CommitmentDiscountStatus"] == "Unused"), Decimal(0))
    for col in ("EffectiveCost", "BilledCost"):
        fx = FocusExport([str(path)], cost_column=col)
        try:
            assert fx.total().get("USD", Decimal(0)) == exact[col]  # the one column, exactly, never both
            assert sum((r.cost for r in fx.unused_commitments()), Decimal(0)) == unused  # valued once, in EffectiveCost
        finally:
            fx.close()
    # commitments amortised in full and on-demand rows billed as used: the two views agree
    assert exact["EffectiveCost"] == exact["BilledCost"]


@PROPERTY
@given(exports(), st.sampled_from(["EffectiveCost", "BilledCost"]))
def test_every_report_table_sums_to_its_total(rows, cost_column):
    path = _write(rows)
    doc = build_report(BillingSettings(focus_paths=[str(path)], cost_column=cost_column), NOW, anomalies=False)
    b = doc["billing"]
    for table in ("by_service", "by_team"):
        for currency, total in b["total"].items():
            lines = [r for r in b[table] if r["currency"] == currency]
            assert len(lines) <= 16  # the top 15 and one "other" row
            assert abs(sum(r["cost"] for r in lines) - total) <= 0.01 * len(lines), table
