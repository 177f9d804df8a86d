"""Budgets from day one: the burn rate is the trailing days whichever month they fall in, so the demo's
runaway research-team budget (~$1,054 a day against $20,000 a month) shows on every day of the month."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from costwarden.agent.config import Settings
from costwarden.agent.demo.billing import write_demo_billing
from costwarden.agent.engine.sweep import run_sweep
from costwarden.policies.loader import load_policies
from costwarden.tools.billing.settings import BillingSettings


@pytest.mark.parametrize("now", [datetime(2025, 4, 1, 8, tzinfo=timezone.utc),
                                 datetime(2025, 4, 2, 8, tzinfo=timezone.utc),
                                 datetime(2025, 4, 15, 8, tzinfo=timezone.utc),
                                 datetime(2025, 4, 30, 23, tzinfo=timezone.utc)])
def test_runaway_budget_shows_on_every_day_of_the_month(now, tmp_path, no_costwarden_env):
    # 45 days of export, so every day of April has a whole month of history behind it
    billing = BillingSettings.model_validate(write_demo_billing(tmp_path, now=now, days=45))
    policies = [lp for lp in load_policies([]) if lp.policy.resource == "billing.budget"]
    result = run_sweep(Settings(state_dir=tmp_path / "state", billing=billing), policies, dry_run=True, now=now)
    assert result.errors == []
    by = {f.resource_id: f for f in result.findings if f.detector == "budget"}
    research = by["research-team"]
    assert research.evidence["month"] == "2025-04" and research.evidence["forecast_usd"] > 20_000
    assert "web-team" not in by  # the steady budget stays quiet, on the 1st too


def test_as_of_the_last_day_judges_the_closed_month(tmp_path, no_costwarden_env):
    # 45 days of export ending on 31 March (a full month: the 14-day default would not overrun);
    # `--as-of 2025-03-31` is a sweep at midnight on 1 April
    billing = BillingSettings.model_validate(write_demo_billing(tmp_path,
                                                                now=datetime(2025, 4, 1, tzinfo=timezone.utc), days=45))
    policies = [lp for lp in load_policies([]) if lp.policy.resource == "billing.budget"]
    result = run_sweep(Settings(state_dir=tmp_path / "state", billing=billing), policies, dry_run=True,
                       now=datetime(2025, 4, 1, tzinfo=timezone.utc))
    research = next(f for f in result.findings if f.resource_id == "research-team")
    assert research.evidence["month"] == "2025-03"
    assert research.evidence["forecast_usd"] == research.evidence["month_to_date_usd"]  # nothing left to forecast
