"""The gate's tier-margin check: a change that lifts a pricing tier's LLM cost per user above the
tier's price is flagged, whatever the percentage threshold says.

Why a check of its own: a model swap on one feature can add little to the total bill and still turn a
flat-priced tier unprofitable (the negative-margin finding, before it ships). Each priced change on a
feature adds its monthly delta to the tiers that feature serves, split by the feature's requests in
each tier; a tier's cost per user after = (its monthly LLM cost now + its share of the deltas) / its
users. Pure: the tiers' figures come from the usage data and `billing.tier_revenue_usd_month`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import BaseModel

from costwarden.policies.gate.cost import ChangeReport, GateReport
from costwarden.state.domain import DAYS_PER_MONTH
from costwarden.state.usage import UsageGroup


@dataclass(frozen=True)
class TierUsage:
    tier: str
    price_usd_month: float
    users: int
    cost_month_usd: float  # the tier's LLM cost a month now, every feature
    feature_requests: dict[str, float] = field(default_factory=dict)  # feature -> its requests in this tier


class TierMarginFlag(BaseModel):
    tier: str
    features: list[str]
    price_usd_month: float
    users: int
    cost_per_user_before_usd: float
    cost_per_user_after_usd: float
    summary: str


def tier_usage(groups: Iterable[UsageGroup], days: float, users: dict[str, int],
               prices: dict[str, float]) -> list[TierUsage]:
    """Per priced tier with users: its monthly cost (priced groups, scaled from `days`) and each
    feature's requests in it. Tiers without a price or users are left out: nothing to compare to."""
    scale = float(DAYS_PER_MONTH) / max(days, 1.0)
    cost: dict[str, float] = {}
    reqs: dict[str, dict[str, float]] = {}
    for g in groups:
        if not g.tier or g.tier not in prices:
            continue
        cost[g.tier] = cost.get(g.tier, 0.0) + float(g.cost_usd or 0) * scale
        per = reqs.setdefault(g.tier, {})
        per[g.feature] = per.get(g.feature, 0.0) + g.requests
    return [TierUsage(t, prices[t], users[t], cost[t], reqs[t]) for t in sorted(cost) if users.get(t)]


def tier_margin_flags(changes: Iterable[ChangeReport], tiers: list[TierUsage]) -> list[TierMarginFlag]:
    """The tiers whose cost per user a set of changes lifts above their price."""
    changes = [c for c in changes if c.priced and c.feature and c.delta_monthly_usd]
    feature_total: dict[str, float] = {}
    for t in tiers:
        for f, n in t.feature_requests.items():
            feature_total[f] = feature_total.get(f, 0.0) + n
    flags = []
    for t in tiers:
        added, names = 0.0, []
        for c in changes:
            share = t.feature_requests.get(c.feature or "", 0.0) / (feature_total.get(c.feature or "") or 1.0)
            if share > 0:
                added += float(c.delta_monthly_usd or 0) * share
                names.append(c.feature or "")
        before, after = t.cost_month_usd / t.users, (t.cost_month_usd + added) / t.users
        if added > 0 and after > t.price_usd_month:
            was = " (already above it)" if before > t.price_usd_month else ""
            flags.append(TierMarginFlag(
                tier=t.tier, features=sorted(set(names)), price_usd_month=t.price_usd_month, users=t.users,
                cost_per_user_before_usd=round(before, 2), cost_per_user_after_usd=round(after, 2),
                summary=f"tier `{t.tier}`: LLM cost per user ${before:,.2f} -> ${after:,.2f}/month, above its "
                        f"${t.price_usd_month:,.2f} price{was} ({', '.join(sorted(set(names)))})"))
    return flags


def with_tier_margins(report: GateReport, tiers: list[TierUsage]) -> GateReport:
    """The report with its tier flags; any flag fails the gate and says why in the headline's warnings."""
    flags = tier_margin_flags(report.changes, tiers)
    if not flags:
        return report
    return report.model_copy(update={"tier_margins": flags, "exceeded": True,
                                     "warnings": [*report.warnings, *(f.summary for f in flags)]})
