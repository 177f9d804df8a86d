"""Budgets on a short export: days of the month before the data starts are unseen, not $0. The
forecast estimates them at the burn rate and the evidence says so (`data_start`,
`unseen_days_estimated`)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from costwarden.agent.config import Settings
from costwarden.agent.engine.sweep import run_sweep
from costwarden.policies.detectors.base import DetectContext, Price
from costwarden.policies.detectors.budget import Budget, BudgetParams
from costwarden.policies.loader import load_policies
from costwarden.state.domain import Observation, Resource, Series
from costwarden.tools.billing.settings import BillingSettings
from tests.focus_rows import focus_row, write_focus

NOW = datetime(2025, 4, 20, 8, tzinfo=timezone.utc)


def _obs(first: date, days: int, daily: float, budget: float, data_start: date | None) -> Observation:
    points = [(datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp(), daily)
              for d in (first + timedelta(days=i) for i in range(days))]
    attrs = {"scope": "total", "value": None, "source": "focus", "monthly_budget_usd": budget}
    if data_start is not None:
        attrs["data_start"] = data_start.isoformat()
    r = Resource("billing", "-", "global", "billing.budget", "everything", kind="total", state="active", attrs=attrs)
    return Observation(r, {"cost_usd": Series("cost_usd", points)})


def _detect(obs: Observation):
    ctx = DetectContext("budgets", "run_1", NOW, lambda _r: Price(None, "n/a"))
    return Budget(BudgetParams()).detect(obs, ctx)


def test_days_before_the_export_starts_are_estimated_at_the_burn_rate():
    # $100 a day from 10 April (the export's first day) to the 19th: April is $3,000 at that rate
    start = date(2025, 4, 10)
    f = _detect(_obs(start, 10, 100.0, 2_500, start))
    assert f is not None
    ev = f.evidence
    assert ev["data_start"] == "2025-04-10" and ev["unseen_days_estimated"] == 9
    assert ev["month_to_date_usd"] == 1_000  # what was seen, nothing invented
    assert ev["forecast_usd"] == pytest.approx(3_000)  # 1,000 + 100 x (11 days left + 9 unseen)
    assert "9 unseen days before the data starts on 2025-04-10 estimated at the burn rate" in f.rationale
    assert "estimated at the same rate" in ev["method"]
    # read as $0, the same spend forecast $2,100 and the overrun went unseen
    assert _detect(_obs(start, 10, 100.0, 2_500, None)) is None


def test_an_export_from_before_the_month_estimates_nothing():
    start = date(2025, 3, 1)
    f = _detect(_obs(start, 50, 100.0, 2_500, start))
    assert f is not None and f.evidence["unseen_days_estimated"] == 0
    assert f.evidence["forecast_usd"] == pytest.approx(3_000) and "unseen" not in f.rationale


def test_the_sweep_gives_the_budget_the_exports_first_day(tmp_path, no_costwarden_env):
    # the export starts on 10 April; a quiet service's missing days are still real zeros
    rows = [focus_row(date(2025, 4, 10) + timedelta(days=i), "Amazon EC2", 100) for i in range(10)]
    rows += [focus_row(date(2025, 4, 15), "Amazon S3", 1)]
    path = write_focus(tmp_path / "short.csv", rows)
    billing = BillingSettings(focus_paths=[str(path)], budgets=[
        {"name": "everything", "scope": "total", "monthly_usd": 2_500},
        {"name": "storage", "scope": "service", "value": "Amazon S3", "monthly_usd": 0.5}])
    policies = [lp for lp in load_policies([]) if lp.policy.resource == "billing.budget"]
    result = run_sweep(Settings(state_dir=tmp_path / "state", billing=billing), policies, dry_run=True, now=NOW)
    assert result.errors == []
    by = {f.resource_id: f.evidence for f in result.findings if f.detector == "budget"}
    assert by["everything"]["data_start"] == "2025-04-10" and by["everything"]["unseen_days_estimated"] == 9
    rate = (700 + 1) / 7  # the trailing 7 complete days, 13 to 19 April
    assert by["everything"]["month_to_date_usd"] == 1_001
    assert by["everything"]["forecast_usd"] == pytest.approx(1_001 + rate * (11 + 9), abs=0.01)
    # the export's first day, not the scope's: S3's first spend on the 15th does not make 10-14 unseen
    assert by["storage"]["data_start"] == "2025-04-10" and by["storage"]["unseen_days_estimated"] == 9
