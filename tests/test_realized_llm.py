"""Realized savings of LLM actions (cap-spend, route-model) from the usage rollup: the feature's cost
per request or per user-month before and after the change, priced with one price map."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from costwarden.agent.engine.realized_llm import measure_llm_action, usage_window
from costwarden.policies.llm_savings import UsageWindow, realized_llm
from costwarden.tools.llm.usage import UsageLog
from costwarden.tools.llm_prices import PriceMap

ACTED = datetime(2025, 3, 10, tzinfo=timezone.utc)
# price-map prices per request of 1,000 input and 100 output tokens
GPT4O = 1000 * 2.5e-6 + 100 * 1e-5  # $0.0035
MINI = 1000 * 1.5e-7 + 100 * 6e-7  # $0.00021
MONTH = 730 / 24


def write_usage(path: Path, spans: list[tuple[datetime, str, str, str, str]]) -> Path:
    """(time, feature, tier, tenant, model) per request, 1,000 input and 100 output tokens each."""
    with path.open("w", encoding="utf-8") as fh:
        for ts, feature, tier, tenant, model in spans:
            attrs = {"gen_ai.provider.name": "openai", "gen_ai.request.model": model,
                     "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100,
                     "costwarden.feature": feature, "costwarden.tier": tier, "costwarden.tenant": tenant}
            fh.write(json.dumps({"timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "attributes": attrs}) + "\n")
    return path


def hours(start: datetime, n_days: int, every: int = 1) -> list[datetime]:
    return [start + timedelta(hours=h) for h in range(0, n_days * 24, every)]


def capped_tier(tmp_path: Path, acted: datetime = ACTED) -> UsageLog:
    """20 starter users on agent-chat: one request an hour each for 7 days, then one every 4 hours
    (24 a day, then 6); helpdesk, another feature, one request an hour throughout (the log has data in
    every hour of both windows: a window counts the days its log covers)."""
    spans = [(w, "agent-chat", "starter", f"u{u}", "gpt-4o") for w in hours(acted - timedelta(days=7), 14)
             if w < acted or w.hour % 4 == 0 for u in range(20)]
    spans += [(w, "helpdesk", "pro", "p0", "gpt-4o") for w in hours(acted - timedelta(days=7), 14)]
    return UsageLog([write_usage(tmp_path / "usage.jsonl", spans)])


def test_a_cap_is_measured_per_user_month_from_the_tier_usage(tmp_path):
    log = capped_tier(tmp_path)
    args = {"feature": "agent-chat", "tier": "starter", "basis": "cost_per_user"}
    m = measure_llm_action(log, PriceMap({}), args, ACTED, ACTED + timedelta(days=7), window_days=7)
    assert m.before.requests == 20 * 24 * 7 and m.after.requests == 20 * 6 * 7
    assert m.before.users == m.after.users == 20 and m.before.days == m.after.days == 7
    assert m.before.cost_per_user_month == pytest.approx(24 * GPT4O * MONTH, rel=1e-3)
    expected = (24 * GPT4O * MONTH - 6 * GPT4O * MONTH) * 20
    assert m.realized_monthly_usd == pytest.approx(expected, abs=0.05) and m.reason == ""


def test_a_model_route_is_measured_per_request_at_the_same_prices(tmp_path):
    spans = [(w, "helpdesk", "pro", "p0", "gpt-4o" if w < ACTED else "gpt-4o-mini")
             for w in hours(ACTED - timedelta(days=7), 14)]
    log = UsageLog([write_usage(tmp_path / "u.jsonl", spans)])
    m = measure_llm_action(log, PriceMap({}), {"feature": "helpdesk", "from_model": "gpt-4o", "to_model": "gpt-4o-mini"},
                           ACTED, ACTED + timedelta(days=7), window_days=7)
    assert m.basis == "cost_per_request"
    assert m.before.cost_per_request == pytest.approx(GPT4O) and m.after.cost_per_request == pytest.approx(MINI)
    assert m.realized_monthly_usd == pytest.approx((GPT4O - MINI) * 24 * MONTH, abs=0.01)  # 24 requests a day


def test_missing_data_is_no_figure_never_zero(tmp_path):
    log = capped_tier(tmp_path)
    args = {"feature": "agent-chat", "tier": "starter", "basis": "cost_per_user"}
    early = measure_llm_action(log, PriceMap({}), args, ACTED + timedelta(days=7), ACTED + timedelta(days=9))
    assert early.realized_monthly_usd is None and early.reason == "no requests after the change"
    spans = [(w, "f", "t", "x", "gpt-4o" if w < ACTED else "acme-internal-llm")
             for w in hours(ACTED - timedelta(days=2), 4, every=6)]
    unpriced = UsageLog([write_usage(tmp_path / "x.jsonl", spans)])
    m = measure_llm_action(unpriced, PriceMap({}), {"feature": "f"}, ACTED, ACTED + timedelta(days=2), window_days=2)
    assert m.realized_monthly_usd is None and "unpriced requests after" in m.reason


def test_the_window_reads_only_its_feature_and_tier(tmp_path):
    log = capped_tier(tmp_path)
    w = usage_window(log, PriceMap({}), "helpdesk", None, ACTED - timedelta(days=7), ACTED)
    assert w.requests == 7 * 24 and w.users == 0 and w.cost_per_request == pytest.approx(GPT4O)


window = st.builds(lambda req, cost, users, d: UsageWindow(ACTED, ACTED, d, req, cost, 0, users),
                   st.integers(1, 10**6), st.floats(0, 1e5), st.integers(1, 10**4), st.floats(0.5, 60))


@given(window, st.integers(1, 10**6), st.floats(0.5, 60))
def test_same_cost_per_request_saves_nothing_however_volume_moves(before, requests, d):
    after = UsageWindow(ACTED, ACTED, d, requests, before.cost_per_request * requests, 0, before.users)
    assert realized_llm(before, after, "cost_per_request").realized_monthly_usd == pytest.approx(0, abs=0.01)


@given(window, window)
def test_the_saving_changes_sign_when_before_and_after_swap(a, b):
    """Per user: what one change saves, its reverse costs (scaled to each side's users)."""
    forward = realized_llm(a, b, "cost_per_user").realized_monthly_usd
    backward = realized_llm(b, a, "cost_per_user").realized_monthly_usd
    assert forward is not None and backward is not None
    assert (forward > 0.01) <= (backward < 0.01)
