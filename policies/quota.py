"""Per-user request quotas that restore a tier's margin: pure math, no I/O.

A flat-priced tier loses money when its heavy users cost more than they pay. Capping every user at
N requests a month removes only the requests above N, so the light users are untouched and the
saving comes from the heavy tail. The largest such N that brings the tier's cost per user down to
`price x (1 - target_margin)` is the least intrusive quota that meets the target.

Cost per request is the tier's average (window cost / window requests): a quota caps requests,
not tokens, and the rollup keeps tokens per cell, not per tenant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Quota:
    """The proposed cap and what it does to the tier, all per month."""

    requests_per_user: int  # N: the cap
    users_touched: int  # users with more than N requests a month
    requests_removed: float
    saving_usd: float  # requests removed x cost per request
    cost_after_usd: float
    cost_per_user_after_usd: float


def capped_requests(user_requests: Sequence[float], cap: float) -> float:
    """Requests left when every user is capped at `cap`."""
    return sum(min(r, cap) for r in user_requests)


def largest_cap(user_requests: Sequence[float], budget_requests: float) -> int | None:
    """The largest whole N with sum(min(r, N)) <= budget_requests; None when no cap is needed
    (the users already fit the budget) or there are no users."""
    if not user_requests or budget_requests < 0 or sum(user_requests) <= budget_requests:
        return None
    lo, hi = 0, math.ceil(max(user_requests))  # invariant: capped(lo) <= budget < capped(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if capped_requests(user_requests, mid) <= budget_requests:
            lo = mid
        else:
            hi = mid
    return lo


def restore_margin(user_requests: Sequence[float], cost_per_request: float, price_per_user: float,
                   target_margin: float) -> Quota | None:
    """The quota that brings cost per user to at most price x (1 - target_margin), computed over the
    users in `user_requests` (requests per user per month); None when no cap is needed."""
    users = len(user_requests)
    if users == 0 or cost_per_request <= 0:
        return None
    budget = price_per_user * (1 - target_margin) * users / cost_per_request
    n = largest_cap(user_requests, budget)
    if n is None:
        return None
    total = sum(user_requests)
    kept = capped_requests(user_requests, n)
    removed = total - kept
    return Quota(n, sum(1 for r in user_requests if r > n), removed, removed * cost_per_request,
                 kept * cost_per_request, kept * cost_per_request / users)
