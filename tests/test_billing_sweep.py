"""The billing and token-economics policies of the default pack, end to end through the sweep
graph, on the demo's FOCUS export and OTel usage log (no cloud, no network)."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from costwarden.agent.config import Settings
from costwarden.agent.demo.billing import write_demo_billing
from costwarden.agent.engine.sweep import run_sweep
from costwarden.policies.loader import load_policies
from costwarden.tools.billing.settings import BillingSettings

NOW = datetime(2025, 3, 20, 9, tzinfo=timezone.utc)


def billing_policies():
    return [lp for lp in load_policies([]) if not lp.policy.resource.startswith("aws.")]


@pytest.fixture(scope="module")
def demo_billing(tmp_path_factory) -> dict:
    return write_demo_billing(tmp_path_factory.mktemp("billing"), now=NOW)


def test_sweep_finds_each_seed_scenario(tmp_path, demo_billing, no_costwarden_env):
    settings = Settings(state_dir=tmp_path / "state", billing=BillingSettings.model_validate(demo_billing))
    result = run_sweep(settings, billing_policies(), dry_run=True, now=NOW)
    assert result.errors == [] and result.status == "done"
    by = {(f.detector, f.resource_id): f for f in result.findings}
    helpdesk = by[("oversized-model", "helpdesk")]
    assert helpdesk.evidence["models"][0]["route_to"] == "gpt-4o-mini"
    assert helpdesk.evidence["models"][0]["simple_requests"] == 1200 * 14  # real volumes behind the claim
    update = by[("spend-anomaly", "summarize")]
    assert update.evidence["signal"] == "cost_per_request_jump" and update.evidence["model_changed"] is True
    assert update.evidence["jump_factor"] >= 10
    assert ("cache-opportunity", "docs-search") in by
    cw = by[("spend-anomaly", "AWS/Amazon CloudWatch")]
    assert cw.resource_type == "billing.focus" and cw.evidence["spend_usd"] > 5 * cw.evidence["expected_usd"]
    budget = by[("budget", "research-team")]
    assert budget.evidence["forecast_usd"] > 20000 and budget.monthly_waste_usd == Decimal(0)
    margin = by[("negative-margin", "agent-chat")]  # the unlimited feature: a quota for starter
    assert margin.evidence["tiers"][0]["tier"] == "starter" and margin.evidence["tiers"][0]["users_touched"] == 20
    # steady things stay quiet: EC2 spend, the web team's budget, features without a scenario
    assert not any(k[1] in ("AWS/Amazon EC2", "web-team", "agent-chat") for k in by
                   if k[0] not in ("budget", "negative-margin"))
    assert [k for k in by if k[0] == "negative-margin"] == [("negative-margin", "agent-chat")]
    assert ("budget", "web-team") not in by
    assert any("acme-internal-llm" in w and "unpriced" in w for w in result.warnings)
    # two proposals: llm-margins caps the starter tier's LiteLLM team (for approval); route-model for the
    # helpdesk trap is only reported, no gateway repository being configured
    by_action = {a.action: a for a in result.actions}
    assert sorted(by_action) == ["cap-spend", "route-model"]
    cap, route = by_action["cap-spend"], by_action["route-model"]
    assert (cap.policy, cap.tool, cap.args["target"]) == ("llm-margins", "llm.feature.set_limits", "starter")
    assert cap.decision == "needs_approval" and cap.projected_monthly_savings_usd == margin.monthly_waste_usd
    assert (route.args["feature"], route.decision) == ("helpdesk", "report")


def test_bad_usage_line_is_a_one_line_error_and_the_sweep_goes_on(tmp_path, demo_billing, no_costwarden_env):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"timestamp": "2025-03-19T00:00:00Z", "gen_ai.request.model": "gpt-4o"}\n{oops\n')
    billing = BillingSettings.model_validate({**demo_billing, "usage_paths": [str(bad)], "budgets": []})
    result = run_sweep(Settings(state_dir=tmp_path / "state", billing=billing), billing_policies(), dry_run=True,
                       now=NOW)
    assert result.status == "partial"
    assert f"llm usage: {bad}:2: not valid JSON" in result.errors
    assert any(f.resource_type == "billing.focus" for f in result.findings)  # the FOCUS side still ran


def test_no_billing_configured_means_no_findings_and_no_errors(tmp_path, no_costwarden_env):
    result = run_sweep(Settings(state_dir=tmp_path / "state"), billing_policies(), dry_run=True, now=NOW)
    assert (result.findings, result.errors, result.inventoried) == ([], [], 0)
