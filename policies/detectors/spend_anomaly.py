"""spend-anomaly: a daily burn that departs from its own history, and the "expensive library update".

Method: a robust z-score of the last complete day against the same series' history,
seasonally adjusted by weekday.

- With at least two weeks of history, the expected value of a day is the median of the same
  weekday in the history, and the spread is the MAD (median absolute deviation) of every
  history day's residual from its own weekday median. Weekends of a B2B product are quiet and
  Mondays busy; comparing a Monday with last week's Mondays, not with Sunday, is what keeps the
  weekly rhythm from being reported every week.
- With one to two weeks, the expected value is the plain median and the spread its MAD.
- Median and MAD, not mean and standard deviation, because the history itself holds spikes: one
  past incident would otherwise inflate the spread and hide the next one. 1.4826 x MAD
  estimates the standard deviation of normal noise, so the threshold reads as "sigmas".
- The spread has a floor (5% of the expected value, at least one cent) so a perfectly flat
  series does not turn a one-cent change into an infinite z-score, and a finding also needs an
  absolute excess (`min_excess_usd_per_day`) so tiny series stay quiet.

The "expensive library update" is checked first on LLM features: a feature whose cost per
request jumped `jump_factor` times or more within a day, with the model it calls having
changed. A spend z-score would catch it only when volume is steady; the cost per request
catches it even when traffic is falling, and names the model change as the cause.

Materiality, because a FinOps practitioner must be able to add the findings up against the bill:

- An anomaly needs history: a series with no spend at all in the history (the history is the
  scope's, from the export's first day, not the series' own first row) is "new spend", its own
  signal, with a severity set by its amount and no z-score (against $0 expected any z is
  meaningless). A sparse series (spend on fewer than `min_history_days` history days) is not
  judged: its median is $0 and any day with spend would look infinitely anomalous.
- A finding needs an excess of at least `min_excess_usd_per_day` and at least
  `min_share_of_scope` of the scope's mean daily spend (the scope being every series of the
  export in that currency, when the collector says what it is).
- The monthly impact is the day's excess over the expected value x 730/24 days (what the change
  costs per month if it persists), capped by the series' own monthly spend: its mean daily spend
  over the scope's window (the `lookback_days` + 1 days up to the export's last complete day, the
  same for every series) x 730/24. The impacts are then additive: their sum can never exceed the
  scope's monthly spend at the same rate, so the findings never out-weigh the bill.
- Each series is judged on its own last complete day, unless that is more than `lag_days` before
  the export's (then on the export's: a series that stopped is not reported on a stale day).
"""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import date, datetime, timezone
from decimal import Decimal

from pydantic import Field

from costwarden.policies.detectors.base import DetectContext, Detector, DetectorParams, severity_for
from costwarden.policies.registry import detectors
from costwarden.state.domain import DAYS_PER_MONTH, Finding, Observation

MAD_TO_SIGMA = 1.4826


class SpendAnomalyParams(DetectorParams):
    lookback_days: int = Field(28, ge=7, le=366, description="History compared against.")
    min_history_days: int = Field(7, ge=3, description="No judgement with fewer history days.")
    z_threshold: float = Field(4.0, gt=0, description="Robust z-score above which a day is anomalous.")
    min_excess_usd_per_day: float = Field(10.0, ge=0, description=(
        "The day must also exceed the expected value by this much."))
    min_share_of_scope: float = Field(0.01, ge=0, le=1, description=(
        "...and by this share of the scope's mean daily spend (the whole export in that currency)."))
    lag_days: int = Field(3, ge=0, le=14, description=(
        "A series whose last day is this many days before the export's is still judged on its own last day "
        "(exports lag by service)."))
    jump_factor: float = Field(5.0, gt=1, description="Cost-per-request ratio that counts as a jump.")
    min_requests: int = Field(50, ge=1, description="Requests on the day for a cost-per-request jump.")


def _day(epoch: float) -> date:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).date()


def _mad(values: list[float]) -> float:
    m = statistics.median(values)
    return statistics.median(abs(v - m) for v in values)


def robust_expectation(history: dict[date, float], target: date) -> tuple[float, float, str]:
    """Expected value and spread (sigma-equivalent) of `target` from the history."""
    values = list(history.values())
    if len(values) >= 14:
        by_weekday: dict[int, list[float]] = {}
        for d, v in history.items():
            by_weekday.setdefault(d.weekday(), []).append(v)
        medians = {wd: statistics.median(vs) for wd, vs in by_weekday.items()}
        residuals = [v - medians[d.weekday()] for d, v in history.items()]
        expected = medians.get(target.weekday(), statistics.median(values))
        spread = MAD_TO_SIGMA * _mad(residuals)
        method = "same-weekday median, MAD of weekday residuals"
    else:
        expected = statistics.median(values)
        spread = MAD_TO_SIGMA * _mad(values)
        method = "median, MAD (under two weeks of history: no weekday adjustment)"
    return expected, max(spread, 0.05 * abs(expected), 0.01), method


@detectors.register("spend-anomaly")
class SpendAnomaly(Detector):
    resource_types = ("billing.focus", "llm.feature")
    permissions = ()  # reads files and the price map, no cloud API
    Params = SpendAnomalyParams
    params: SpendAnomalyParams

    @property
    def lookback_hours(self) -> int:
        return (self.params.lookback_days + 1) * 24

    def detect(self, obs: Observation, ctx: DetectContext) -> Finding | None:
        p = self.params
        series = obs.series.get("cost_usd")
        if series is None or not series.points:
            return None
        attrs = obs.resource.attrs
        daily = {_day(t): v for t, v in series.points}
        # the series is judged on its own last complete day, unless that is more than `lag_days` before
        # the scope's (a series that stopped is not judged on a stale row); one that just started has
        # a history of $0 when the scope has history
        own_last = max((d for d in daily if d < ctx.now.date()), default=None)
        last = date.fromisoformat(attrs["data_end"]) if attrs.get("data_end") else None
        target = own_last
        if last is not None and last < ctx.now.date() and (own_last is None or (last - own_last).days > p.lag_days):
            target = last
        if target is None:
            return None
        own = min(daily)
        scope_first = min(date.fromisoformat(attrs["data_start"]), own) if attrs.get("data_start") else own
        # the scope's history before the day, and the series' own inside it (days before its first
        # row are not "$0 expected" for a z-score)
        window = {d: daily.get(d, 0.0) for d in _days(scope_first, target, p.lookback_days)}
        history = {d: daily.get(d, 0.0) for d in _days(own, target, p.lookback_days)}  # no row: spent nothing
        if len(window) < p.min_history_days:
            return None
        jump = self._library_update(obs, ctx, target, history)
        if jump is not None:
            return jump
        value = daily.get(target, 0.0)
        active = sum(1 for v in history.values() if v > 0)
        floor = max(p.min_excess_usd_per_day, p.min_share_of_scope * float(attrs.get("scope_daily_usd") or 0))
        if last is not None:  # the same window for every series of the scope: the caps add up to its spend
            cap = monthly_spend({d: daily.get(d, 0.0) for d in _days(scope_first, last, p.lookback_days)},
                                daily.get(last, 0.0))
        else:
            cap = monthly_spend(window, value)
        currency = attrs.get("currency", "USD")
        if active == 0:  # new spend: nothing to compare with, so no z-score
            if value < floor:
                return None
            impact = min(Decimal(str(value)) * DAYS_PER_MONTH, cap)
            evidence = {"signal": "new_spend", "day": target.isoformat(), "spend_usd": round(value, 2),
                        "expected_usd": 0.0, "excess_usd": round(value, 2), "history_days": len(window),
                        "floor_usd_per_day": round(floor, 2), "monthly_impact_cap_usd": round(float(cap), 2),
                        "currency": currency}
            evidence.update(_volumes(obs, target))
            f = self.finding(obs, ctx, evidence=evidence, monthly_waste=impact, confidence="low")
            f.severity = severity_for(impact)
            f.rationale = f.evidence["summary"] = (
                f"{obs.resource.resource_id}: new spend of ${value:,.2f} on {target.isoformat()}, with no spend in "
                f"the {len(window)} days before.")
            return f
        if len(history) < p.min_history_days or active < p.min_history_days:  # short or sparse: a median of $0 makes every spend day look infinite
            return None
        expected, spread, method = robust_expectation(history, target)
        z = (value - expected) / spread
        excess = value - expected
        if z < p.z_threshold or excess < floor:
            return None
        evidence = {
            "signal": "daily_spend",
            "day": target.isoformat(), "spend_usd": round(value, 2), "expected_usd": round(expected, 2),
            "excess_usd": round(excess, 2), "robust_z": round(z, 1), "z_threshold": p.z_threshold,
            "method": method, "history_days": len(history), "active_history_days": active,
            "floor_usd_per_day": round(floor, 2), "monthly_impact_cap_usd": round(float(cap), 2),
            "currency": currency,
        }
        evidence.update(_volumes(obs, target))
        f = self.finding(obs, ctx, evidence=evidence,
                         monthly_waste=min(Decimal(str(excess)) * DAYS_PER_MONTH, cap), confidence="medium")
        f.rationale = f.evidence["summary"] = (f"{obs.resource.resource_id} spent ${value:,.2f} on {target.isoformat()} against "
                       f"${expected:,.2f} expected ({method}); robust z {z:.1f}.")
        return f

    def _library_update(self, obs: Observation, ctx: DetectContext, target: date,
                        history: dict[date, float]) -> Finding | None:
        p = self.params
        req = obs.series.get("requests")
        if req is None:
            return None
        requests = {_day(t): v for t, v in req.points}
        cost = {_day(t): v for t, v in obs.series["cost_usd"].points}
        n_today = requests.get(target, 0)
        if n_today < p.min_requests:
            return None
        cpr_today = cost.get(target, 0.0) / n_today
        before = [cost.get(d, 0.0) / requests[d] for d in history if requests.get(d)]
        if len(before) < p.min_history_days // 2 or not before:
            return None
        cpr_before = statistics.median(before)
        if cpr_before <= 0 or cpr_today < p.jump_factor * cpr_before:
            return None
        models = obs.resource.attrs.get("daily_models", [])  # [day iso, model, requests, cost]
        today_mix = Counter({m: n for d, m, n, _ in models if d == target.isoformat()})
        before_mix: Counter[str] = Counter()
        for d, m, n, _ in models:
            if d in {h.isoformat() for h in history}:
                before_mix[m] += n
        model_now = today_mix.most_common(1)[0][0] if today_mix else None
        model_before = before_mix.most_common(1)[0][0] if before_mix else None
        excess = (cpr_today - cpr_before) * n_today
        evidence = {
            "signal": "cost_per_request_jump",
            "day": target.isoformat(), "requests": int(n_today),
            "cost_per_request_usd": round(cpr_today, 6), "cost_per_request_before_usd": round(cpr_before, 6),
            "jump_factor": round(cpr_today / cpr_before, 1), "jump_threshold": p.jump_factor,
            "model_before": model_before, "model_now": model_now,
            "model_changed": model_before is not None and model_now != model_before,
            "spend_usd": round(cost.get(target, 0.0), 2), "excess_usd": round(excess, 2),
        }
        evidence.update(_volumes(obs, target))
        cap = monthly_spend(history, cost.get(target, 0.0))  # LLM features: no scope, their own history
        f = self.finding(obs, ctx, evidence=evidence, monthly_waste=min(Decimal(str(excess)) * DAYS_PER_MONTH, cap),
                         confidence="high" if evidence["model_changed"] else "medium")
        cause = (f" after its model changed from {model_before} to {model_now}" if evidence["model_changed"] else "")
        f.rationale = f.evidence["summary"] = (f"{obs.resource.resource_id}: cost per request rose {evidence['jump_factor']}x on "
                       f"{target.isoformat()} (${cpr_before:.5f} -> ${cpr_today:.5f}){cause}.")
        return f


def _days(first: date, target: date, lookback: int) -> list[date]:
    """The days before `target`, at most `lookback` of them, from `first` on."""
    return [date.fromordinal(o) for o in range(max(first.toordinal(), target.toordinal() - lookback),
                                               target.toordinal())]


def monthly_spend(history: dict[date, float], value: float) -> Decimal:
    """The series' own monthly spend: its mean daily spend over the history and the judged day x 730/24.
    An anomaly's monthly impact never exceeds it (see the module docstring)."""
    total = Decimal(str(sum(history.values()))) + Decimal(str(value))
    return max(Decimal(0), total * DAYS_PER_MONTH / (len(history) + 1))


def _volumes(obs: Observation, target: date) -> dict[str, object]:
    """The observed token volumes of the day, when the series carry them (LLM features)."""
    out: dict[str, object] = {}
    for name in ("requests", "input_tokens", "output_tokens"):
        s = obs.series.get(name)
        if s is not None:
            out[f"day_{name}"] = int(sum(v for t, v in s.points if _day(t) == target))
    return out
