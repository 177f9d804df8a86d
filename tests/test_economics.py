"""Unit economics: per-token / per-request / per-success costs, tier margins, the unlimited feature,
and reconciliation of token spend against the FOCUS bill."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from costwarden.policies.economics import overrun_features, reconcile, tier_margins, unit_costs, unit_costs_by
from costwarden.state.usage import UsageGroup


def g(feature="f", tier="pro", outcome="success", requests=1000, cost="10", users=10, inp=900_000, out=100_000):
    return UsageGroup(feature, tier, "gpt-4o", "openai", outcome, requests, users, inp, out, 0,
                      Decimal(cost) if cost is not None else None)


def test_unit_costs_count_failures_in_cost_per_success_and_never_price_unpriced_as_zero():
    u = unit_costs([g(), g(outcome="failure", requests=250, cost="2.5", inp=225_000, out=25_000),
                    g(cost=None, requests=500)])
    assert (u.requests, u.successes, u.unpriced_requests) == (1750, 1500, 500)
    assert u.cost_usd == Decimal("12.5")
    assert u.per_1m_tokens == Decimal("10")  # 12.5 over 1.25M priced tokens
    assert u.per_1k_requests == Decimal("10")
    assert u.per_success == Decimal("0.0125")  # failures cost money and deliver nothing


def test_unit_costs_by_feature_orders_by_cost():
    rows = unit_costs_by([g("a", cost="1"), g("b", cost="5"), g("a", cost="1")], key=lambda x: x.feature)
    assert [(r.key, r.cost_usd) for r in rows] == [("b", Decimal(5)), ("a", Decimal(2))]


def test_tier_margin_and_the_unlimited_feature():
    # 30 days of usage: starter users of agent-chat cost $900 / 20 users = $45.62 per user-month > $20
    groups = [g("agent-chat", "starter", cost="900"), g("helpdesk", "pro", cost="300")]
    users = {"starter": 20, "pro": 30}
    margins = {m.tier: m for m in tier_margins(groups, users, {"starter": 20, "pro": 99}, window_days=30)}
    assert margins["starter"].revenue_usd_month == Decimal(400)
    assert margins["starter"].margin_usd_month < 0 < margins["pro"].margin_usd_month
    over = overrun_features(groups, {("agent-chat", "starter"): 20, ("helpdesk", "pro"): 30},
                            {"starter": 20, "pro": 99}, window_days=30)
    assert [(o.feature, o.tier) for o in over] == [("agent-chat", "starter")]
    assert round(float(over[0].cost_per_user_month), 2) == round(900 * (730 / 24) / 30 / 20, 2)


def test_reconcile_shows_the_difference_against_the_bill():
    rec = {r.provider: r for r in reconcile({"openai": Decimal(100), "anthropic": Decimal(5)},
                                            {"openai": Decimal(104)})}
    assert rec["openai"].difference_usd == Decimal(4) and rec["openai"].difference_pct == 3.85
    assert rec["anthropic"].billed_usd is None  # no FOCUS rows matched: shown, not hidden


def test_demo_token_cost_reconciles_within_the_invoice_markup(tmp_path):
    from costwarden.agent.demo.billing import write_demo_billing
    from costwarden.tools.billing.focus import FocusExport
    from costwarden.tools.llm.usage import UsageLog
    from costwarden.tools.llm_prices import PriceMap

    cfg = write_demo_billing(tmp_path, now=datetime(2025, 3, 20, tzinfo=timezone.utc))
    computed = sum((x.cost_usd for x in UsageLog(cfg["usage_paths"]).groups(prices=PriceMap())
                    if x.provider == "openai"), Decimal(0))
    billed = FocusExport(cfg["focus_paths"]).total(filters={"provider": "OpenAI"})["USD"]
    (r,) = reconcile({"openai": computed}, {"openai": billed})
    assert 3.8 < r.difference_pct < 3.9  # the demo invoice is 4% above list-price token cost
