"""oversized-model, cache-opportunity and budget: a case that must fire and one that must not."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from costwarden.policies.detectors.base import DetectContext, Price
from costwarden.policies.detectors.budget import Budget, BudgetParams, forecast_month_end
from costwarden.policies.detectors.cache_opportunity import CacheOpportunity, CacheOpportunityParams
from costwarden.policies.detectors.oversized_model import OversizedModel, OversizedModelParams
from costwarden.state.domain import Observation, Resource, Series
from costwarden.state.usage import TokenPrice

M = Decimal(1_000_000)
PRICES = {
    "gpt-4o": TokenPrice("gpt-4o", Decimal("2.5") / M, Decimal(10) / M, Decimal("1.25") / M, "test"),
    "gpt-4o-mini": TokenPrice("gpt-4o-mini", Decimal("0.15") / M, Decimal("0.6") / M, Decimal("0.075") / M, "test"),
}
NOW = datetime(2025, 3, 21, 12, tzinfo=timezone.utc)


def ctx(now: datetime = NOW) -> DetectContext:
    return DetectContext(policy="p", run_id="r", now=now, price_of=lambda r: Price(None, "none"),
                         token_price=PRICES.get)


def feature(**attrs) -> Observation:
    return Observation(Resource("llm", "openai", "global", "llm.feature", "helpdesk", attrs={"window_days": 30, **attrs}))


def test_oversized_model_fires_on_short_requests_to_a_flagship_with_real_token_counts():
    # 90,000 short requests (input <= 512, output <= 128) and 10,000 long ones on gpt-4o in 30 days
    sizes = [["gpt-4o", 512, 128, 90_000, 30_000_000, 6_000_000, 0],
             ["gpt-4o", 8192, 1024, 10_000, 50_000_000, 8_000_000, 0]]
    f = OversizedModel(OversizedModelParams()).detect(feature(sizes=sizes), ctx())
    assert f is not None
    (line,) = f.evidence["models"]
    assert (line["model"], line["route_to"], line["simple_requests"], line["simple_share"]) == ("gpt-4o", "gpt-4o-mini",
                                                                                               90_000, 0.9)
    # now: 30M x 2.5/M + 6M x 10/M = 135; routed: 30M x 0.15/M + 6M x 0.6/M = 8.1
    assert line["cost_now_usd"] == 135.0 and line["cost_routed_usd"] == 8.1
    assert float(f.monthly_waste_usd) == round(126.9 * 730 / 24 / 30, 2)
    assert line["simple_input_tokens"] == 30_000_000  # the claim cites its token volumes


def test_oversized_model_stays_quiet_on_long_requests_cheap_models_and_unpriced_ones():
    d = OversizedModel(OversizedModelParams())
    long_only = [["gpt-4o", 8192, 1024, 10_000, 50_000_000, 8_000_000, 0], ["gpt-4o", None, None, 5, 10**6, 10**4, 0]]
    assert d.detect(feature(sizes=long_only), ctx()) is None
    already_cheap = [["gpt-4o-mini", 512, 128, 90_000, 30_000_000, 6_000_000, 0]]
    assert d.detect(feature(sizes=already_cheap), ctx()) is None
    c = ctx()
    assert d.detect(feature(sizes=[["mystery-llm", 128, 64, 10**6, 10**8, 10**7, 0]]), c) is None
    assert c.warnings and "unpriced" in c.warnings[0]


def repeats(**kw) -> dict:
    base = {"hashed_requests": 0, "repeat_requests": 0, "repeat_input_tokens": 0, "repeat_output_tokens": 0,
            "prefixed_requests": 0, "repeat_prefix_tokens": 0, "cache_read_tokens": 0}
    return base | kw


def test_cache_opportunity_fires_on_repeated_prompts_and_prefixes():
    r = {"gpt-4o": repeats(hashed_requests=100_000, repeat_requests=40_000, repeat_input_tokens=20_000_000,
                           repeat_output_tokens=4_000_000, prefixed_requests=100_000,
                           repeat_prefix_tokens=60_000_000, cache_read_tokens=10_000_000)}
    f = CacheOpportunity(CacheOpportunityParams()).detect(feature(repeats=r), ctx())
    assert f is not None
    (line,) = f.evidence["models"]
    # response cache: (20M x 2.5 + 4M x 10)/1M x 0.9 = 81; prompt cache: 50M x 1.25/1M = 62.5
    assert line["response_cache_saving_usd"] == 81.0 and line["prompt_cache_saving_usd"] == 62.5
    assert f.evidence["window_saving_usd"] == 143.5


def test_cache_opportunity_quiet_without_repeats_or_hashes():
    d = CacheOpportunity(CacheOpportunityParams())
    assert d.detect(feature(repeats={"gpt-4o": repeats(hashed_requests=1000, repeat_requests=10,
                                                       repeat_input_tokens=1000, repeat_output_tokens=100)}), ctx()) is None
    assert d.detect(feature(repeats={"gpt-4o": repeats()}), ctx()) is None
    assert d.detect(feature(), ctx()) is None


def budget_obs(daily: list[float], budget: float) -> Observation:
    start = datetime(2025, 3, 1, tzinfo=timezone.utc)
    s = Series("cost_usd", [((start + timedelta(days=i)).timestamp(), v) for i, v in enumerate(daily)])
    r = Resource("billing", "all", "global", "billing.budget", "helpdesk-llm",
                 attrs={"monthly_budget_usd": budget, "scope": "feature", "value": "helpdesk", "source": "llm"})
    return Observation(r, {"cost_usd": s})


def test_budget_fires_on_a_forecast_overrun_and_not_under_budget():
    daily = [10.0] * 13 + [50.0] * 7 + [5.0]  # 1-20 March complete, 21st partial; the burn rate rose
    f = Budget(BudgetParams()).detect(budget_obs(daily, 1000), ctx())
    assert f is not None
    # complete days: 130 + 350 = 480; trailing 7-day mean 50 x 11 days left = 550 -> forecast 1030
    assert f.evidence["forecast_usd"] == 1030.0 and f.evidence["month_to_date_usd"] == 485.0
    assert f.evidence["forecast_overrun_usd"] == 30.0 and float(f.monthly_waste_usd) == 0.0
    assert Budget(BudgetParams()).detect(budget_obs(daily, 1200), ctx()) is None
    assert Budget(BudgetParams()).detect(budget_obs(daily[:2], 1), ctx(datetime(2025, 3, 2, tzinfo=timezone.utc))) is None


def test_forecast_at_month_start_has_no_complete_days():
    mtd, forecast, elapsed = forecast_month_end({}, datetime(2025, 3, 1, 9, tzinfo=timezone.utc), 7)
    assert (mtd, forecast, elapsed) == (0.0, 0.0, 0)
    # ...but the trailing days of February make the rate: 31 days left x $100 = $3,100 on the 1st
    feb = {datetime(2025, 2, d).date(): 100.0 for d in range(18, 29)}
    mtd, forecast, elapsed = forecast_month_end(feb, datetime(2025, 3, 1, 9, tzinfo=timezone.utc), 7)
    assert (mtd, forecast, elapsed) == (0.0, 3100.0, 7)
    # at midnight on the 1st (`--as-of` 28 February) the month judged is February, complete
    mtd, forecast, elapsed = forecast_month_end(feb, datetime(2025, 3, 1, tzinfo=timezone.utc), 7)
    assert (mtd, forecast) == (1100.0, 1100.0)
