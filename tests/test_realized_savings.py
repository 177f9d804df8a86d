"""Realized savings: an instance Costwarden stopped saves its hourly price for every hour it stays
stopped, measured afterwards against the real (moto) resource, recorded in the store and exposed
on /metrics next to the projected figure."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import boto3
import pytest

from costwarden.agent.config import AwsSettings, Settings
from costwarden.agent.engine.context import Providers
from costwarden.agent.demo.estate import DEMO_REGIONS, seed_estate
from costwarden.agent.server.metrics import ProcessCounters, render
from costwarden.agent.engine.realized import refresh_realized
from costwarden.agent.engine.sweep import run_sweep
from costwarden.policies.loader import load_policy_file
from costwarden.policies.savings import advance, realized_from_billing, start
from costwarden.state.store import Store
from tests.test_sweep_e2e import AUTO_POLICY

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)


def test_advance_counts_only_intervals_where_the_change_held() -> None:
    r = start(Decimal("21.96"), T0)
    assert r.realized_monthly_usd is None  # no time has passed: nothing to claim yet
    r = advance(r, T0 + timedelta(hours=10), held=True)
    assert (r.hours_held, r.hours_observed) == (Decimal(10), Decimal(10))
    assert r.realized_usd == Decimal("219.60")
    assert r.realized_monthly_usd == Decimal("16030.80")  # stayed stopped: the projection held
    r = advance(r, T0 + timedelta(hours=20), held=False)  # restarted at some unknown time in between
    assert r.hours_held == Decimal(10) and r.hours_observed == Decimal(20)
    assert r.realized_monthly_usd == Decimal("8015.40")
    assert advance(r, T0 + timedelta(hours=5), held=True) == r  # an older observation changes nothing


def test_billing_measure_compares_days_before_and_after() -> None:
    daily = {date(2026, 11, d): Decimal("527.04") for d in range(1, 8)}
    daily.update({date(2026, 11, 8): Decimal("300"), date(2026, 11, 9): Decimal("0"), date(2026, 11, 10): Decimal("0")})
    m = realized_from_billing(daily, datetime(2026, 11, 8, 9, tzinfo=timezone.utc))
    assert m is not None and (m.days_before, m.days_after) == (7, 2)
    assert m.realized_monthly_usd == Decimal("16030.80")  # 527.04/day x 730/24 days
    assert realized_from_billing(daily, datetime(2026, 11, 10, 9, tzinfo=timezone.utc)) is None  # no day after yet


def test_stopped_instance_realizes_hourly_price_times_hours_stopped(aws, state_dir: Path, tmp_path: Path) -> None:
    ids = seed_estate(aws.endpoint, days=8)
    policy_file = tmp_path / "auto.yml"
    policy_file.write_text(AUTO_POLICY)
    settings = Settings(state_dir=state_dir, aws=AwsSettings(regions=DEMO_REGIONS), dry_run=False)
    result = run_sweep(settings, load_policy_file(policy_file), dry_run=False)
    done = [a for a in result.actions if a.status == "done"]
    assert {a.args["instance_id"] for a in done} == {ids["llm-finetune-01"], ids["llm-finetune-02"]}

    store = Store(settings.db_url)
    executed = store.executed_actions()
    assert len(executed) == 2
    acted_at = max(t for _, _, t in executed)
    providers = Providers(settings, dry_run=True)  # measuring only reads: dry-run clients are enough

    first = refresh_realized(store, providers, now=acted_at + timedelta(hours=36))
    assert len(first) == 2
    for m in first:
        hours = (acted_at + timedelta(hours=36) - next(t for a, _, t in executed if a.id == m["action_id"]))
        expected = 21.96 * hours.total_seconds() / 3600  # p4d.24xlarge on-demand, us-east-1
        assert m["state"] in ("stopping", "stopped") and m["held"] is True
        assert m["realized_usd"] == pytest.approx(expected, abs=0.01)
        assert m["realized_monthly_usd"] == pytest.approx(21.96 * 730, abs=0.01) == m["projected_monthly_usd"]

    # someone starts one instance again: the hours after the last look are not claimed
    restarted = ids["llm-finetune-01"]
    boto3.client("ec2", region_name="us-east-1").start_instances(InstanceIds=[restarted])
    second = {m["resource"].rsplit(":", 1)[-1]: m for m in
              refresh_realized(store, providers, now=acted_at + timedelta(hours=72))}
    assert second[restarted]["held"] is False
    before = {m["resource"].rsplit(":", 1)[-1]: m for m in first}
    assert second[restarted]["realized_usd"] == pytest.approx(before[restarted]["realized_usd"], abs=0.01)
    assert second[restarted]["realized_monthly_usd"] == pytest.approx(21.96 * 730 / 2, rel=0.01)
    still = second[ids["llm-finetune-02"]]
    assert still["held"] is True and still["realized_monthly_usd"] == pytest.approx(21.96 * 730, abs=0.01)

    row = store.get_realized(still["action_id"])
    assert row.method == "state" and float(row.realized_usd) == pytest.approx(still["realized_usd"], abs=0.01)
    text = render(store, ProcessCounters(), {}).decode()
    realized = float(Decimal(str(second[restarted]["realized_monthly_usd"])) + Decimal(str(still["realized_monthly_usd"])))
    assert f"costwarden_realized_savings_monthly_usd {realized}" in text
    assert "costwarden_projected_savings_executed_usd 32061.6" in text
