"""spend-anomaly: fires on a spike and on a 10x cost-per-request jump after a model change;
stays quiet on a weekly rhythm and on steady spend."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from costwarden.policies.detectors.base import DetectContext, Price
from costwarden.policies.detectors.spend_anomaly import SpendAnomaly, SpendAnomalyParams
from costwarden.state.domain import Observation, Resource, Series

NOW = datetime(2025, 3, 29, 6, tzinfo=timezone.utc)  # a Saturday morning: the last complete day is Friday 28th


def ctx() -> DetectContext:
    return DetectContext(policy="p", run_id="r", now=NOW, price_of=lambda r: Price(None, "none"))


def series(name: str, values: list[float]) -> Series:
    start = datetime(2025, 3, 28, tzinfo=timezone.utc) - timedelta(days=len(values) - 1)
    return Series(name, [((start + timedelta(days=i)).timestamp(), v) for i, v in enumerate(values)])


def obs(costs: list[float], requests: list[float] | None = None, daily_models: list | None = None,
        rtype: str = "billing.focus", **attrs: object) -> Observation:
    s = {"cost_usd": series("cost_usd", costs)}
    if requests is not None:
        s["requests"] = series("requests", requests)
    r = Resource("focus", "123", "global", rtype, "AWS/Amazon EC2", attrs={"daily_models": daily_models or [], **attrs})
    return Observation(r, s)


def weekly(weeks: int, weekday: float, weekend: float) -> list[float]:
    # the series ends on Friday 28 March 2025; build Saturday-first weeks
    out = []
    for i in range(weeks * 7):
        d = datetime(2025, 3, 28) - timedelta(days=weeks * 7 - 1 - i)
        out.append(weekend if d.weekday() >= 5 else weekday)
    return out


def test_spike_fires():
    values = [100 + (i % 3) for i in range(27)] + [400]
    f = SpendAnomaly(SpendAnomalyParams()).detect(obs(values), ctx())
    assert f is not None
    assert f.evidence["signal"] == "daily_spend" and f.evidence["day"] == "2025-03-28"
    assert f.evidence["expected_usd"] == 101 and f.evidence["robust_z"] > 4
    # excess x days per month (299 x 30.42 = $9,094.58) capped by the series' own monthly spend
    own_monthly = (sum(values) / len(values)) * 730 / 24
    assert float(f.monthly_waste_usd) == round(own_monthly, 2) < 299 * 730 / 24


def test_weekly_rhythm_does_not_fire_but_a_weekday_spike_does():
    d = SpendAnomaly(SpendAnomalyParams())
    quiet_weekend = weekly(4, weekday=500, weekend=50)
    assert d.detect(obs(quiet_weekend), ctx()) is None  # Friday at 500 is normal for a Friday
    spiky = quiet_weekend[:-1] + [1500]
    f = d.detect(obs(spiky), ctx())
    assert f is not None and f.evidence["method"].startswith("same-weekday")


def test_steady_spend_and_short_history_do_not_fire():
    d = SpendAnomaly(SpendAnomalyParams())
    assert d.detect(obs([100.0] * 28), ctx()) is None
    assert d.detect(obs([1.0, 1.0, 500.0]), ctx()) is None  # three days are not a history


def test_expensive_library_update_fires_with_the_model_change():
    days = [(datetime(2025, 3, 28) - timedelta(days=13 - i)).date().isoformat() for i in range(14)]
    requests = [1000.0] * 14
    costs = [2.0] * 13 + [20.0]  # $0.002 -> $0.02 per request
    models = [[d, "gpt-4o-mini", 1000, 2.0] for d in days[:-1]] + [[days[-1], "gpt-4o", 1000, 20.0]]
    f = SpendAnomaly(SpendAnomalyParams(min_excess_usd_per_day=1000)).detect(
        obs(costs, requests, models, rtype="llm.feature"), ctx())
    assert f is not None
    ev = f.evidence
    assert ev["signal"] == "cost_per_request_jump" and ev["jump_factor"] == 10.0
    assert (ev["model_before"], ev["model_now"], ev["model_changed"]) == ("gpt-4o-mini", "gpt-4o", True)
    assert ev["day_requests"] == 1000 and f.confidence == "high"


def test_falling_traffic_with_the_same_unit_cost_does_not_fire():
    requests = [1000.0] * 13 + [300.0]
    costs = [2.0] * 13 + [0.6]
    assert SpendAnomaly(SpendAnomalyParams()).detect(obs(costs, requests, rtype="llm.feature"), ctx()) is None


def test_new_spend_is_its_own_signal_with_severity_by_amount_not_z():
    scope = {"data_start": "2025-03-01", "data_end": "2025-03-28", "scope_daily_usd": 1000.0}
    f = SpendAnomaly(SpendAnomalyParams()).detect(obs([0.0] * 27 + [600.0], **scope), ctx())
    assert f is not None and f.evidence["signal"] == "new_spend" and "robust_z" not in f.evidence
    assert f.monthly_waste_usd <= Decimal(600) * Decimal(730) / 24 / 28 + Decimal("0.01")  # the series' month
    assert f.severity == "medium"
    # a series whose first row is the judged day is new spend too, when the scope has history
    f = SpendAnomaly(SpendAnomalyParams()).detect(obs([600.0], **scope), ctx())
    assert f is not None and f.evidence["signal"] == "new_spend"


def test_sparse_series_and_immaterial_excess_are_not_findings():
    d = SpendAnomaly(SpendAnomalyParams())
    sparse = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 40.0] * 4
    assert d.detect(obs(sparse[:-1] + [900.0]), ctx()) is None  # spend on 4 of 27 days: no z-score
    spike = [100 + (i % 3) for i in range(27)] + [400]
    assert d.detect(obs(spike, scope_daily_usd=40_000.0), ctx()) is None  # $299 is under 1% of $40,000/day
    assert d.detect(obs(spike, scope_daily_usd=20_000.0), ctx()) is not None  # ...and over 1% of $20,000
    assert SpendAnomaly(SpendAnomalyParams(min_share_of_scope=0.001)).detect(
        obs(spike, scope_daily_usd=40_000.0), ctx()) is not None


def test_a_series_is_judged_on_its_own_last_day_within_the_lag_not_on_a_stale_one():
    spike = [100 + (i % 3) for i in range(27)] + [400]  # ends on Friday 28 March
    d = SpendAnomaly(SpendAnomalyParams())
    lagging = d.detect(obs(spike, data_start="2025-02-01", data_end="2025-03-28"), ctx())
    assert lagging is not None and lagging.evidence["day"] == "2025-03-28"
    later = DetectContext(policy="p", run_id="r", now=NOW + timedelta(days=10), price_of=lambda r: Price(None, "none"))
    # the export goes on to 6 April without this series: it stopped, and is not reported on 28 March
    assert d.detect(obs(spike, data_start="2025-02-01", data_end="2025-04-06"), later) is None
