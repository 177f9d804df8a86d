"""Realized savings of an LLM action (cap-spend, route-model): a feature's usage before and after the
change, priced the same way. Pure math; the usage windows come from the rollup (agent/engine/realized_llm.py).

Why "at the same prices": both windows are priced with one price map, so a provider's price change
is not mistaken for a saving (or a loss) of the action.

Two bases, chosen by the action:
- `cost_per_request` (a cheaper model): saving = (cost per request before - after) x requests a month
  after; what the traffic after the change would have cost at the old cost per request, less what it cost.
- `cost_per_user` (a cap on a tier's use): saving = (cost per user-month before - after) x users after;
  a cap lowers the requests per user, not the cost of each one.

Missing data is never zero: a window with no requests, unpriced requests or (per user) no users gives
no figure, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from costwarden.state.domain import DAYS_PER_MONTH

Basis = Literal["cost_per_request", "cost_per_user"]
MONTH_DAYS = float(DAYS_PER_MONTH)


@dataclass(frozen=True)
class UsageWindow:
    """One side of the change: the feature's (and tier's) usage in [start, end)."""

    start: datetime
    end: datetime
    days: float  # days with data inside the window (a log may cover less than the window)
    requests: int
    cost_usd: float  # priced requests only
    unpriced_requests: int
    users: int

    @property
    def cost_per_request(self) -> float | None:
        return self.cost_usd / self.requests if self.requests and not self.unpriced_requests else None

    @property
    def cost_per_user_month(self) -> float | None:
        if not self.users or self.days <= 0 or self.unpriced_requests or not self.requests:
            return None
        return self.cost_usd * (MONTH_DAYS / self.days) / self.users

    @property
    def requests_per_month(self) -> float:
        return self.requests * MONTH_DAYS / self.days if self.days > 0 else 0.0


@dataclass(frozen=True)
class LlmRealized:
    basis: Basis
    before: UsageWindow
    after: UsageWindow
    realized_monthly_usd: float | None  # None: not measurable yet (reason says why); may be negative
    reason: str = ""

    @property
    def figures(self) -> dict[str, float | None]:
        b, a = self.before, self.after
        return {"cost_per_request_before_usd": b.cost_per_request, "cost_per_request_after_usd": a.cost_per_request,
                "cost_per_user_month_before_usd": b.cost_per_user_month,
                "cost_per_user_month_after_usd": a.cost_per_user_month,
                "requests_before": float(b.requests), "requests_after": float(a.requests),
                "realized_monthly_usd": self.realized_monthly_usd}


def _missing(w: UsageWindow, side: str, basis: Basis) -> str:
    if w.requests == 0 or w.days <= 0:
        return f"no requests {side} the change"
    if w.unpriced_requests:
        return f"{w.unpriced_requests:,} unpriced requests {side} the change"
    if basis == "cost_per_user" and not w.users:
        return f"no users recorded {side} the change"
    return ""


def realized_llm(before: UsageWindow, after: UsageWindow, basis: Basis) -> LlmRealized:
    """The action's monthly saving as measured, or None with the reason when a side lacks data."""
    why = _missing(before, "before", basis) or _missing(after, "after", basis)
    if why:
        return LlmRealized(basis, before, after, None, why)
    if basis == "cost_per_request":
        cb, ca = before.cost_per_request, after.cost_per_request
        assert cb is not None and ca is not None
        return LlmRealized(basis, before, after, round((cb - ca) * after.requests_per_month, 2))
    ub, ua = before.cost_per_user_month, after.cost_per_user_month
    assert ub is not None and ua is not None
    return LlmRealized(basis, before, after, round((ub - ua) * after.users, 2))
