"""negative-margin: the quota math's invariants (Hypothesis), the detector on a losing tier and on
healthy or unpriced ones, and per-tenant requests from the real rollup."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costwarden.policies.detectors.base import DetectContext, Price
from costwarden.policies.detectors.negative_margin import NegativeMargin, NegativeMarginParams
from costwarden.policies.quota import capped_requests, restore_margin
from costwarden.state.domain import DAYS_PER_MONTH, Observation, Resource
from costwarden.tools.llm.usage import UsageLog

NOW = datetime(2025, 3, 21, 12, tzinfo=timezone.utc)
users_st = st.lists(st.floats(0, 5_000, allow_nan=False), min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(users=users_st, cpr=st.floats(0.0001, 1.0), price=st.floats(1, 500), target=st.floats(0, 0.95))
def test_the_proposed_quota_meets_the_target_is_maximal_and_counts_right(users, cpr, price, target):
    q = restore_margin(users, cpr, price, target)
    ceiling = price * (1 - target)
    budget = ceiling * len(users) / cpr
    if q is None:  # no cap needed: the tier already meets the target
        assert sum(users) <= budget
        return
    n = q.requests_per_user
    assert capped_requests(users, n) <= budget  # capping at N meets the target...
    assert q.cost_per_user_after_usd <= ceiling * (1 + 1e-9)
    assert capped_requests(users, n + 1) > budget  # ...and N + 1 would not: N is the largest
    assert 0 <= q.saving_usd <= sum(users) * cpr * (1 + 1e-9)  # never more than the tier costs
    assert q.users_touched == len([r for r in users if r > n])
    assert q.requests_removed == pytest.approx(sum(max(0.0, r - n) for r in users))


def ctx() -> DetectContext:
    return DetectContext(policy="p", run_id="r", now=NOW, price_of=lambda r: Price(None, "none"))


def obs(window_days: float = 30, **tier) -> Observation:
    line = {"requests": 0, "unpriced_requests": 0, "cost_usd": 0.0, "price_usd_month": 20.0, "user_requests": [], **tier}
    return Observation(Resource("llm", "openai", "global", "llm.feature", "agent-chat",
                                attrs={"window_days": window_days, "tiers": {"starter": line}}))


def test_a_losing_tier_gets_a_quota_that_restores_the_target_margin():
    # 10 users, 30 days (scale 30.4/30): 8 light users at 100 requests, 2 heavy at 2,000; $0.05 a request
    users = [100.0] * 8 + [2000.0] * 2
    o = obs(user_requests=users, requests=int(sum(users)), cost_usd=sum(users) * 0.05)
    f = NegativeMargin(NegativeMarginParams(target_margin=0.5)).detect(o, ctx())
    assert f is not None
    (line,) = f.evidence["tiers"]
    scale = float(DAYS_PER_MONTH) / 30
    assert line["cost_per_user_month"] == pytest.approx(sum(users) * 0.05 * scale / 10, abs=0.01)
    assert line["margin"] < 0
    n = line["quota_requests_per_user_month"]
    assert line["users_touched"] == 2 and n > 100 * scale  # only the heavy users are capped
    assert line["cost_per_user_month_after"] <= 10.0  # $20 x (1 - 50%)
    assert float(f.monthly_waste_usd) == line["saving_usd_month"] <= line["cost_usd_month"]
    assert f.rationale.startswith(f"starter: cap agent-chat at {n:,} requests per user per month")
    assert "touches 2 of them" in f.rationale and "50% margin" in f.rationale


def test_healthy_small_or_unpriced_tiers_are_no_finding_and_unpriced_is_insufficient_data():
    d = NegativeMargin(NegativeMarginParams())
    healthy = [100.0] * 10  # $0.01 a request: $1 per user-month against $20
    assert d.detect(obs(user_requests=healthy, requests=1000, cost_usd=10.0), ctx()) is None
    too_few = [5000.0] * 2
    assert d.detect(obs(user_requests=too_few, requests=10_000, cost_usd=500.0), ctx()) is None
    c = ctx()
    losing_but_unpriced = obs(user_requests=[3000.0] * 10, requests=30_000, cost_usd=900.0, unpriced_requests=5)
    assert d.detect(losing_but_unpriced, c) is None
    assert c.insufficient and "unpriced" in c.insufficient[0]["reason"] and c.insufficient[0]["detector"] == "negative-margin"
    c = ctx()
    assert d.detect(obs(user_requests=[3000.0] * 10, requests=30_000, cost_usd=900.0, price_usd_month=None), c) is None
    assert "no price for tier starter" in c.insufficient[0]["reason"]


def test_tenant_requests_from_the_rollup_split_each_hours_requests_among_its_tenants(tmp_path: Path):
    rows = []
    for tenant, hour, n in (("a", 10, 5), ("b", 12, 1)):  # alone in their hours; both in hour 11 (2 + 2)
        for i in range(n):
            rows.append({"timestamp": f"2025-03-01T{hour}:{i:02d}:00Z", "tenant": tenant})
    rows += [{"timestamp": "2025-03-01T11:00:00Z", "tenant": t} for t in ("a", "b", "a", "b")]
    path = tmp_path / "u.jsonl"
    path.write_text("".join(json.dumps({"timestamp": r["timestamp"], "attributes": {
        "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5,
        "costwarden.feature": "chat", "costwarden.tier": "starter", "costwarden.tenant": r["tenant"]}}) + "\n"
        for r in rows))
    got = UsageLog([path]).tenant_requests()
    # a: 5 alone + half of hour 11's 4; b: 1 alone + the other half
    assert sorted(got[("chat", "starter")]) == [3.0, 7.0]
    assert sum(got[("chat", "starter")]) == len(rows)



def test_by_tier_judges_a_tiers_whole_usage_and_a_mismatched_policy_says_so(tmp_path: Path, no_costwarden_env):
    from costwarden.agent.config import Settings
    from costwarden.agent.demo.billing import write_demo_billing
    from costwarden.agent.engine.sweep import run_sweep
    from costwarden.policies.loader import load_policies
    from costwarden.tools.billing.settings import BillingSettings

    now = datetime(2025, 3, 20, 9, tzinfo=timezone.utc)
    billing = BillingSettings.model_validate(write_demo_billing(tmp_path, now=now))
    pack = tmp_path / "tiers.yml"
    pack.write_text("policies:\n"
                    "  - {name: tiers, resource: llm.tier, mode: report, filters: [{type: negative-margin, by: tier}]}\n"
                    "  - {name: wrong, resource: llm.tier, mode: report, filters: [{type: negative-margin}]}\n")
    result = run_sweep(Settings(state_dir=tmp_path / "state", billing=billing), load_policies([pack]),
                       dry_run=True, now=now)
    assert result.errors == []
    (f,) = result.findings  # starter loses money; pro and enterprise do not
    assert (f.resource_type, f.resource_id, f.policy) == ("llm.tier", "starter", "tiers")
    (line,) = f.evidence["tiers"]
    assert line["users"] == 20 and line["margin"] < 0 and line["cost_per_user_month_after"] <= 20 * 0.4
    assert f.rationale.startswith(f"starter: cap LLM use at {line['quota_requests_per_user_month']:,} requests")
    assert any("by: feature-tier reads llm.feature resources, not llm.tier" in w for w in result.warnings)
