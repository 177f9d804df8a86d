"""Realized savings of executed LLM actions from the usage rollup: the feature before vs after the change.

An LLM action's args name its feature (and tier, for a cap) and its basis (policies/llm_savings.py);
the time it was applied is when the store verified it. The window before the change and the one after
are equally long (`window_days`, the after one cut at `now`), read from the same rollup the detectors
use and priced with one price map. route-model's actions are measured the same way: they name
their feature, and their basis is the default, cost per request.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from costwarden.policies.llm_savings import Basis, LlmRealized, UsageWindow, realized_llm
from costwarden.tools.llm.collect import covered_days
from costwarden.tools.llm.usage import UsageLog
from costwarden.tools.llm_prices import PriceMap


def _naive(t: datetime) -> datetime:
    return t.astimezone(timezone.utc).replace(tzinfo=None) if t.tzinfo else t


def usage_window(log: UsageLog, prices: PriceMap, feature: str | None, tier: str | None,
                 start: datetime, end: datetime) -> UsageWindow:
    """The feature's (and tier's) requests, priced cost and users in [start, end)."""
    start, end = _naive(start), _naive(end)
    requests = unpriced = 0
    cost = 0.0
    for g in log.groups(start, end, prices=prices):
        if (feature is not None and g.feature != feature) or (tier is not None and g.tier != tier):
            continue
        requests += g.requests
        if g.cost_usd is None:
            unpriced += g.requests
        else:
            cost += float(g.cost_usd)
    if feature is not None and tier is not None:
        users = log.feature_tier_users(start, end).get((feature, tier), 0)
    elif tier is not None:
        users = log.tier_users(start, end).get(tier, 0)
    else:
        users = 0  # per user needs a tier: a feature's users across tiers pay different prices
    days = covered_days(log, start, end) if requests else 0.0
    return UsageWindow(start, end, days, requests, cost, unpriced, users)


def measure_llm_action(log: UsageLog, prices: PriceMap, args: dict[str, Any], acted_at: datetime,
                       now: datetime, *, window_days: float = 14.0, feature: str | None = None) -> LlmRealized:
    """Before: [acted_at - window, acted_at); after: [acted_at, min(now, acted_at + window))."""
    width = timedelta(days=window_days)
    feature = args.get("feature") or feature
    tier = args.get("tier")
    basis: Basis = "cost_per_user" if args.get("basis") == "cost_per_user" else "cost_per_request"
    before = usage_window(log, prices, feature, tier, acted_at - width, acted_at)
    after = usage_window(log, prices, feature, tier, acted_at, min(now, acted_at + width))
    return realized_llm(before, after, basis)


def record_llm_realized(store: Any, action: Any, finding: Any, acted_at: datetime, now: datetime, billing: Any,
                        held: bool, state: dict[str, Any]) -> dict[str, Any]:
    """Measure one executed LLM action from the usage rollup and save it (method `usage`).

    Without usage configured, or while a side of the change lacks data, the figure is None (with the
    reason), never a projection passed off as a measurement.
    """
    from decimal import Decimal

    from costwarden.state.domain import HOURS_PER_MONTH
    from costwarden.tools.llm.usage import open_usage

    feature = finding.resource_id if finding is not None and finding.resource_type == "llm.feature" else None
    measured: LlmRealized | None = None
    reason = "no usage configured (billing.usage_paths)"
    if billing is not None and getattr(billing, "has_usage", False):
        log = open_usage(billing)
        measured = measure_llm_action(log, PriceMap(billing.price_overrides), dict(action.args or {}), acted_at, now,
                                      window_days=float(billing.usage_window_days), feature=feature)
        reason = measured.reason
    monthly = None if measured is None else measured.realized_monthly_usd
    hours = Decimal(str(round((now - acted_at).total_seconds() / 3600, 2)))
    store.save_realized(action.id, method="usage", hourly_usd=Decimal(str(monthly or 0)) / HOURS_PER_MONTH,
                        acted_at=acted_at, observed_until=now, held=held, last_state=str(state.get("state", ""))[:60],
                        hours_observed=hours, hours_held=hours if held else Decimal(0),
                        realized_usd=Decimal(str(round((monthly or 0) * float(hours) / float(HOURS_PER_MONTH), 2))),
                        realized_monthly_usd=None if monthly is None else Decimal(str(monthly)),
                        billing_monthly_usd=None)
    return {"action_id": action.id, "resource": action.resource_key, "state": state.get("state"), "held": held,
            "method": "usage", "basis": None if measured is None else measured.basis, "reason": reason,
            **({} if measured is None else measured.figures),
            "realized_monthly_usd": monthly, "projected_monthly_usd": float(action.projected_monthly_savings_usd)}
