"""Unit economics of LLM features as pure functions over aggregated usage (state.usage.UsageGroup).

Why these units: a bill says what was spent, not whether it was worth it. Cost per 1M tokens
compares models, cost per 1,000 requests compares features, and cost per *successful*
interaction is what a product actually sells (failed calls cost money and deliver nothing).
With per-tier revenue, the margin per tier and the features whose cost per user exceeds what
the tier pays (the "unlimited feature" on a flat-price plan) fall out directly.

Unpriced usage (a model with no known price) is counted separately and never as $0.
All monthly figures use 730/24 days per month, the convention of the cloud price calculators.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

from costwarden.state.domain import DAYS_PER_MONTH
from costwarden.state.usage import MILLION, UsageGroup

SUCCESS = "success"


@dataclass(frozen=True)
class UnitCosts:
    key: str
    requests: int
    successes: int
    tokens: int
    cost_usd: Decimal  # priced usage only
    unpriced_requests: int
    per_1m_tokens: Decimal | None
    per_1k_requests: Decimal | None
    per_success: Decimal | None  # all cost (failures included) divided by successful interactions

    def to_dict(self) -> dict[str, object]:
        def num(v: Decimal | None) -> float | None:
            return None if v is None else float(round(v, 6))

        return {"key": self.key, "requests": self.requests, "successes": self.successes, "tokens": self.tokens,
                "cost_usd": num(self.cost_usd), "unpriced_requests": self.unpriced_requests,
                "per_1m_tokens_usd": num(self.per_1m_tokens), "per_1k_requests_usd": num(self.per_1k_requests),
                "per_success_usd": num(self.per_success)}


def unit_costs(groups: Iterable[UsageGroup], key: str = "all") -> UnitCosts:
    """Cost per 1M tokens, per 1,000 requests and per successful interaction of some usage.

    The ratios use priced usage only (an unpriced model must not make a feature look cheap);
    `unpriced_requests` says how much was left out.
    """
    rows = list(groups)
    priced = [g for g in rows if g.cost_usd is not None]
    cost = sum((g.cost_usd for g in priced), Decimal(0))  # type: ignore[misc]
    p_requests = sum(g.requests for g in priced)
    p_tokens = sum(g.input_tokens + g.output_tokens for g in priced)
    p_successes = sum(g.requests for g in priced if g.outcome == SUCCESS)
    return UnitCosts(
        key=key, requests=sum(g.requests for g in rows),
        successes=sum(g.requests for g in rows if g.outcome == SUCCESS),
        tokens=sum(g.input_tokens + g.output_tokens for g in rows), cost_usd=cost,
        unpriced_requests=sum(g.requests for g in rows if g.cost_usd is None),
        per_1m_tokens=cost * MILLION / p_tokens if p_tokens else None,
        per_1k_requests=cost * 1000 / p_requests if p_requests else None,
        per_success=cost / p_successes if p_successes else None,
    )


def unit_costs_by(groups: Iterable[UsageGroup], key: Callable[[UsageGroup], str]) -> list[UnitCosts]:
    """Unit costs per feature, tier, model, ... (any key of a group), most expensive first."""
    buckets: dict[str, list[UsageGroup]] = {}
    for g in groups:
        buckets.setdefault(key(g), []).append(g)
    out = [unit_costs(rows, k) for k, rows in buckets.items()]
    return sorted(out, key=lambda u: (-u.cost_usd, u.key))


@dataclass(frozen=True)
class TierMargin:
    """A tier's month. With unpriced requests, the cost is priced usage only (a lower bound), so the
    margin is an upper bound: `incomplete` says so, and the reports print "at most"."""

    tier: str
    users: int
    revenue_usd_month: Decimal | None  # None: no price for this tier in config
    cost_usd_month: Decimal  # priced usage only
    margin_usd_month: Decimal | None
    cost_per_user_month: Decimal | None
    requests: int = 0
    unpriced_requests: int = 0

    @property
    def incomplete(self) -> bool:
        return self.unpriced_requests > 0


@dataclass(frozen=True)
class OverrunFeature:
    """A feature whose LLM cost per user per month exceeds what the user's tier pays per month."""

    feature: str
    tier: str
    users: int
    cost_per_user_month: Decimal
    tier_price_month: Decimal
    requests: int
    tokens: int


def monthly(amount: Decimal, window_days: float) -> Decimal:
    return amount * DAYS_PER_MONTH / Decimal(str(window_days))


def tier_margins(groups: Iterable[UsageGroup], tier_users: dict[str, int], tier_revenue: dict[str, float],
                 window_days: float) -> list[TierMargin]:
    """Revenue (users x monthly price) against monthly LLM cost, per tier; the requests no price
    covers are counted, never priced at $0."""
    cost: dict[str, Decimal] = {}
    requests: dict[str, int] = {}
    unpriced: dict[str, int] = {}
    for g in groups:
        cost[g.tier] = cost.get(g.tier, Decimal(0)) + (g.cost_usd or Decimal(0))
        requests[g.tier] = requests.get(g.tier, 0) + g.requests
        if g.cost_usd is None:
            unpriced[g.tier] = unpriced.get(g.tier, 0) + g.requests
    out = []
    for tier in sorted(set(cost) | set(tier_revenue)):
        users = tier_users.get(tier, 0)
        c = monthly(cost.get(tier, Decimal(0)), window_days)
        price = tier_revenue.get(tier)
        revenue = Decimal(str(price)) * users if price is not None else None
        out.append(TierMargin(tier, users, revenue, c, revenue - c if revenue is not None else None,
                              c / users if users else None, requests.get(tier, 0), unpriced.get(tier, 0)))
    return out


def overrun_features(groups: Iterable[UsageGroup], feature_tier_users: dict[tuple[str, str], int],
                     tier_revenue: dict[str, float], window_days: float) -> list[OverrunFeature]:
    """Features whose cost per active user per month exceeds the tier's monthly price (worst first)."""
    cells: dict[tuple[str, str], list[UsageGroup]] = {}
    for g in groups:
        cells.setdefault((g.feature, g.tier), []).append(g)
    out = []
    for (feature, tier), rows in cells.items():
        price = tier_revenue.get(tier)
        users = feature_tier_users.get((feature, tier), 0)
        if price is None or users == 0:
            continue
        per_user = monthly(sum((g.cost_usd or Decimal(0) for g in rows), Decimal(0)), window_days) / users
        if per_user > Decimal(str(price)):
            out.append(OverrunFeature(feature, tier, users, per_user, Decimal(str(price)),
                                      sum(g.requests for g in rows),
                                      sum(g.input_tokens + g.output_tokens for g in rows)))
    return sorted(out, key=lambda o: -(o.cost_per_user_month - o.tier_price_month))


@dataclass(frozen=True)
class Reconciliation:
    provider: str
    computed_usd: Decimal  # tokens x price map
    billed_usd: Decimal | None  # FOCUS rows of the same provider and period; None if none matched
    difference_usd: Decimal | None  # billed - computed
    difference_pct: float | None


def reconcile(computed: dict[str, Decimal], billed: dict[str, Decimal]) -> list[Reconciliation]:
    """Token spend drifts from the bill (missed retries, list vs negotiated prices, unlogged calls):
    show both and the difference per provider, the bill being the reference."""
    out = []
    for provider in sorted(set(computed) | set(billed)):
        c = computed.get(provider, Decimal(0))
        b = billed.get(provider)
        diff = b - c if b is not None else None
        pct = float(diff / b * 100) if diff is not None and b else None
        out.append(Reconciliation(provider, c, b, diff, round(pct, 2) if pct is not None else None))
    return out
