"""The gate's tier-margin check: a change lifting a tier's LLM cost per user above its price fails the
gate even under the percentage threshold (real git, real usage rollup, LiteLLM price-map prices)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from costwarden.policies.gate.cost import ChangeReport
from costwarden.policies.gate.margins import TierUsage, tier_margin_flags
from tests.test_gate import Git, gate, model_cost

MONTH_PER_10_DAYS = Decimal(730) / Decimal(24) / Decimal(10)


def _usage(path: Path) -> Path:
    """Ten days: 10 starter users on `chat` (gpt-4o-mini, 2M input + 0.5M output tokens each), 2 pro users
    on `search`; records on the first and the last hour, so the totals are 10 days' usage."""
    rows = []
    for ts in ("2025-05-01T00:00:00Z", "2025-05-10T23:00:00Z"):
        for u in range(10):
            rows.append({"timestamp": ts, "attributes": {
                "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 1_000_000,
                "gen_ai.usage.output_tokens": 250_000, "costwarden.feature": "chat", "costwarden.tier": "starter",
                "costwarden.tenant": f"s{u}"}})
        for u in range(2):
            rows.append({"timestamp": ts, "attributes": {
                "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 1000,
                "gen_ai.usage.output_tokens": 100, "costwarden.feature": "search", "costwarden.tier": "pro",
                "costwarden.tenant": f"p{u}"}})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_model_swap_that_makes_a_tier_lose_money_fails_the_gate(tmp_path, capsys):
    g = Git(tmp_path / "repo")
    g.commit({"services/chat/client.py": 'MODEL = "gpt-4o-mini"\n'}, "base")
    g.commit({"services/chat/client.py": 'MODEL = "gpt-4o"\n'}, "head")
    usage = _usage(tmp_path / "u.jsonl")
    config = tmp_path / "c.yml"
    config.write_text("billing:\n  tier_revenue_usd_month: {starter: 20, pro: 99}\n")
    args = ("--base", "HEAD~1", "--usage", str(usage), "--threshold-pct", "1000000")

    code, doc = gate(g, *args, "--config", str(config), capsys=capsys)

    [flag] = doc["tier_margins"]
    per_user_in, per_user_out = 2_000_000 * MONTH_PER_10_DAYS, 500_000 * MONTH_PER_10_DAYS
    after = float(model_cost("gpt-4o", per_user_in, per_user_out))
    before = float(model_cost("gpt-4o-mini", per_user_in, per_user_out))
    assert flag["tier"] == "starter" and flag["features"] == ["chat"] and flag["users"] == 10
    assert abs(flag["cost_per_user_before_usd"] - before) < 0.02 and abs(flag["cost_per_user_after_usd"] - after) < 0.02
    assert after > 20 > before
    assert doc["exceeded"] is True and code == 1
    assert any("tier `starter`" in w and "above its $20.00 price" in w for w in doc["warnings"])

    # the same pull request without tier prices: only the (very high) threshold applies
    code, doc = gate(g, *args, capsys=capsys)
    assert code == 0 and doc["tier_margins"] == []


def _change(feature: str, delta: float) -> ChangeReport:
    return ChangeReport(file="f.py", line=1, old_file=None, kind="model", key="MODEL", status="modified", old="a",
                        new="b", old_count=None, new_count=None, summary="", feature=feature, basis="", priced=True,
                        old_monthly_usd=0, new_monthly_usd=delta, delta_monthly_usd=delta, delta_pct=None)


def test_deltas_are_split_by_the_feature_requests_in_each_tier():
    tiers = [TierUsage("starter", 20, 10, 150.0, {"chat": 300}), TierUsage("pro", 99, 5, 100.0, {"chat": 100})]
    # $400 more on chat: 3/4 to starter (+$30/user -> $45), 1/4 to pro (+$20/user -> $40, under $99)
    [flag] = tier_margin_flags([_change("chat", 400)], tiers)
    assert flag.tier == "starter" and flag.cost_per_user_after_usd == 45.0 and flag.cost_per_user_before_usd == 15.0
    assert tier_margin_flags([_change("chat", -400)], tiers) == []  # savings never flag
    assert tier_margin_flags([_change("other", 10_000)], tiers) == []  # a feature no tier uses
    losing = [TierUsage("starter", 20, 10, 250.0, {"chat": 1})]
    assert "already above it" in tier_margin_flags([_change("chat", 1)], losing)[0].summary
