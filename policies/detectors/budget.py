"""budget: spend of a feature, team, account or service against its monthly budget, with a
forecast of month-end spend.

Forecast = month-to-date spend + (mean daily spend of the last `trailing_days` complete days)
x days left in the month. A trailing mean and not the month's average, because a budget
alarm must react to this week's burn rate (a runaway feature) rather than to the quiet first
days of the month. The overrun is in the evidence and sets the severity; the finding's monthly
waste is $0, because the spend behind an overrun is waste only where another finding says so.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, timezone
from decimal import Decimal

from pydantic import Field

from costwarden.policies.detectors.base import DetectContext, Detector, DetectorParams, severity_for
from costwarden.policies.registry import detectors
from costwarden.state.domain import Finding, Observation


class BudgetParams(DetectorParams):
    alert_at_pct: float = Field(100.0, gt=0, description="Fire when the forecast reaches this % of the budget.")
    trailing_days: int = Field(7, ge=1, le=31, description="The burn rate is the mean of this many last complete days.")
    min_days_elapsed: int = Field(3, ge=1, description="No forecast from fewer complete days than this.")


def forecast_month_end(daily: dict[date, float], today: date, trailing_days: int) -> tuple[float, float, int]:
    """(month-to-date, forecast, complete days elapsed) for the month of `today`."""
    month_start = today.replace(day=1)
    days_in_month = calendar.monthrange(today.year, today.month)[1]
    complete = [date.fromordinal(o) for o in range(month_start.toordinal(), today.toordinal())]
    mtd = sum(daily.get(d, 0.0) for d in complete) + daily.get(today, 0.0)
    trailing = complete[-trailing_days:]
    rate = sum(daily.get(d, 0.0) for d in trailing) / len(trailing) if trailing else 0.0
    left = days_in_month - len(complete)  # today counts as left: it is not complete
    return mtd, sum(daily.get(d, 0.0) for d in complete) + rate * left, len(complete)


@detectors.register("budget")
class Budget(Detector):
    resource_types = ("billing.budget",)
    Params = BudgetParams
    params: BudgetParams

    def detect(self, obs: Observation, ctx: DetectContext) -> Finding | None:
        p = self.params
        attrs = obs.resource.attrs
        budget = float(attrs.get("monthly_budget_usd") or 0)
        series = obs.series.get("cost_usd")
        if budget <= 0 or series is None:
            return None
        today = ctx.now.date()
        daily = {datetime.fromtimestamp(t, tz=timezone.utc).date(): v for t, v in series.points}
        mtd, forecast, elapsed = forecast_month_end(daily, today, p.trailing_days)
        if elapsed < p.min_days_elapsed or forecast < budget * p.alert_at_pct / 100:
            return None
        evidence = {
            "signal": "budget_forecast",
            "scope": attrs.get("scope"), "value": attrs.get("value"), "source": attrs.get("source"),
            "month": today.strftime("%Y-%m"), "monthly_budget_usd": budget,
            "month_to_date_usd": round(mtd, 2), "forecast_usd": round(forecast, 2),
            "forecast_pct_of_budget": round(forecast / budget * 100, 1), "alert_at_pct": p.alert_at_pct,
            "complete_days": elapsed, "trailing_days": p.trailing_days,
            "method": f"month-to-date + mean of the last {p.trailing_days} complete days x days left",
        }
        for k in ("requests", "input_tokens", "output_tokens"):
            if k in attrs:
                evidence[f"month_to_date_{k}"] = attrs[k]
        overrun = max(0.0, forecast - budget)
        evidence["forecast_overrun_usd"] = round(overrun, 2)
        # An overrun is not waste: the spend behind it is already counted by the findings that
        # explain it (an idle GPU, an oversized model), so the total must not count it twice.
        f = self.finding(obs, ctx, evidence=evidence, monthly_waste=Decimal(0), confidence="medium")
        f.severity = severity_for(overrun)
        f.rationale = f.evidence["summary"] = (f"budget {obs.resource.resource_id} ({attrs.get('scope')}={attrs.get('value')}): "
                       f"${mtd:,.2f} spent by {today.isoformat()}, forecast ${forecast:,.2f} for "
                       f"{today.strftime('%B')} against ${budget:,.2f}.")
        return f
