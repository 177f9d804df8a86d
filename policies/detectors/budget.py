"""budget: spend of a feature, team, account or service against its monthly budget, with a
forecast of month-end spend.

Forecast = month-to-date spend + (mean daily spend of the last `trailing_days` complete days,
whichever month they fall in) x days left in the month, so a runaway budget shows from the 1st. A trailing mean and not the month's average, because a budget
alarm must react to this week's burn rate (a runaway feature) rather than to the quiet first
days of the month. The overrun is in the evidence and sets the severity; the finding's monthly
waste is $0, because the spend behind an overrun is waste only where another finding says so.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from pydantic import Field

from costwarden.policies.detectors.base import DetectContext, Detector, DetectorParams, severity_for
from costwarden.policies.registry import detectors
from costwarden.state.domain import Finding, Observation


class BudgetParams(DetectorParams):
    alert_at_pct: float = Field(100.0, gt=0, description="Fire when the forecast reaches this % of the budget.")
    trailing_days: int = Field(7, ge=1, le=31, description="The burn rate is the mean of this many last complete days.")
    min_days_elapsed: int = Field(3, ge=1, description=(
        "No forecast from fewer complete days of history than this (in this month or the one before)."))


def budget_month(now: datetime) -> date:
    """The first day of the month a budget is judged in: the month of `now`, except at midnight on the
    1st (`--as-of` the last day of a month), which judges the month that has just closed."""
    return (now - timedelta(microseconds=1)).date().replace(day=1)


def unseen_days(now: datetime, data_start: date | None) -> list[date]:
    """The complete days of the budget month before the data starts (an export that begins on the
    10th): unknown, not $0, so the forecast estimates them at the burn rate."""
    if data_start is None:
        return []
    month_start = budget_month(now)
    month_end = month_start + timedelta(days=calendar.monthrange(month_start.year, month_start.month)[1])
    stop = min(data_start, now.date(), month_end)
    return [date.fromordinal(o) for o in range(month_start.toordinal(), stop.toordinal())]


def forecast_month_end(daily: dict[date, float], now: datetime, trailing_days: int,
                       data_start: date | None = None) -> tuple[float, float, int]:
    """(month-to-date, forecast, trailing days the rate is the mean of) for the budget month of `now`.

    The burn rate is the mean of the last `trailing_days` complete days whichever month they fall
    in (not before the series' first day), so a runaway scope is forecast from the 1st of the month
    on, not only once the month has a few days of its own.
    Days of the month before `data_start` are forecast at the burn rate like the days left: the
    month-to-date counts only what was seen.
    """
    month_start = budget_month(now)
    days_in_month = calendar.monthrange(month_start.year, month_start.month)[1]
    month_end = month_start + timedelta(days=days_in_month)
    today = now.date()  # its midnight has passed: days before it are complete
    complete = [date.fromordinal(o) for o in range(month_start.toordinal(), min(today, month_end).toordinal())]
    first = min(daily, default=today)
    trailing = [date.fromordinal(o) for o in range(max(first.toordinal(), today.toordinal() - trailing_days),
                                                  today.toordinal())]
    done = sum(daily.get(d, 0.0) for d in complete)
    mtd = done + (daily.get(today, 0.0) if today < month_end else 0.0)
    rate = sum(daily.get(d, 0.0) for d in trailing) / len(trailing) if trailing else 0.0
    left = days_in_month - len(complete) + len(unseen_days(now, data_start))  # today is not complete: left
    return mtd, done + rate * left, len(trailing)


def _scope(attrs: dict[str, object]) -> str:
    return "all spend" if attrs.get("scope") == "total" else f"{attrs.get('scope')}={attrs.get('value')}"


@detectors.register("budget")
class Budget(Detector):
    resource_types = ("billing.budget",)
    permissions = ()  # reads files and the price map, no cloud API
    Params = BudgetParams
    params: BudgetParams

    def detect(self, obs: Observation, ctx: DetectContext) -> Finding | None:
        p = self.params
        attrs = obs.resource.attrs
        budget = float(attrs.get("monthly_budget_usd") or 0)
        series = obs.series.get("cost_usd")
        if budget <= 0 or series is None:
            return None
        now = ctx.now.astimezone(timezone.utc)
        month = budget_month(now)
        today = min(now.date(), month.replace(day=calendar.monthrange(month.year, month.month)[1]))
        daily = {datetime.fromtimestamp(t, tz=timezone.utc).date(): v for t, v in series.points}
        start = date.fromisoformat(str(attrs["data_start"])) if attrs.get("data_start") else None
        mtd, forecast, elapsed = forecast_month_end(daily, now, p.trailing_days, start)
        unseen = unseen_days(now, start)
        if elapsed < p.min_days_elapsed or forecast < budget * p.alert_at_pct / 100:
            return None
        evidence = {
            "signal": "budget_forecast",
            "scope": attrs.get("scope"), "value": attrs.get("value"), "source": attrs.get("source"),
            "month": month.strftime("%Y-%m"), "monthly_budget_usd": budget,
            "month_to_date_usd": round(mtd, 2), "forecast_usd": round(forecast, 2),
            "forecast_pct_of_budget": round(forecast / budget * 100, 1), "alert_at_pct": p.alert_at_pct,
            "complete_days": elapsed, "trailing_days": p.trailing_days,
            "method": f"month-to-date + mean of the last {p.trailing_days} complete days (whichever month) "
                      f"x days left",
        }
        if start is not None:
            evidence["data_start"] = start.isoformat()
            evidence["unseen_days_estimated"] = len(unseen)
        if unseen:
            evidence["method"] += (f"; the {len(unseen)} day{'s' if len(unseen) != 1 else ''} of {month:%B} before "
                                   f"the data starts ({start}) estimated at the same rate")
        for k in ("requests", "input_tokens", "output_tokens"):
            if k in attrs:
                evidence[f"month_to_date_{k}"] = attrs[k]
        overrun = max(0.0, forecast - budget)
        evidence["forecast_overrun_usd"] = round(overrun, 2)
        # An overrun is not waste: the spend behind it is already counted by the findings that
        # explain it (an idle GPU, an oversized model), so the total must not count it twice.
        f = self.finding(obs, ctx, evidence=evidence, monthly_waste=Decimal(0), confidence="medium")
        f.severity = severity_for(overrun)
        f.rationale = f.evidence["summary"] = (f"budget {obs.resource.resource_id} ({_scope(attrs)}): "
                       f"${mtd:,.2f} spent by {today.isoformat()}, forecast ${forecast:,.2f} for "
                       f"{month.strftime('%B')} against ${budget:,.2f}"
                       + (f" ({len(unseen)} unseen day{'s' if len(unseen) != 1 else ''} before the data starts on "
                          f"{start} estimated at the burn rate)." if unseen else "."))
        return f
