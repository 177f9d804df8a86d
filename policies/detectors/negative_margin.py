"""negative-margin: a tier (or a feature within a tier) whose LLM cost per user exceeds what the
user pays (the "unlimited feature" on a flat-price plan), with the quota that fixes it.

Per tier line of the observation (`by: feature-tier` reads an llm.feature's tiers, `by: tier` an
llm.tier's whole usage): cost per user-month = the window's priced cost x (30.4 / window days) /
the window's active users, where a month is the agent's standard month of 730 hours (30.4 days);
price per user-month is `billing.tier_revenue_usd_month`; gross margin = 1 - cost / price.

A finding when the margin is below zero: the tier loses money on its users. It proposes the
largest monthly request quota per user that brings cost per user down to price x (1 -
`target_margin`), sized from the tier's own requests per user (policies/quota.py): how many
users it touches and what it saves a month. The saving is the monthly waste, never more than the
tier's own cost. A tier with unpriced requests or no price is insufficient data, never $0.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import Field

from costwarden.policies.detectors.base import DetectContext, Detector, DetectorParams
from costwarden.policies.detectors.words import days as day_words
from costwarden.policies.quota import restore_margin
from costwarden.policies.registry import detectors
from costwarden.state.domain import DAYS_PER_MONTH, Finding, Observation

RESOURCE = {"feature-tier": "llm.feature", "tier": "llm.tier"}


class NegativeMarginParams(DetectorParams):
    target_margin: float = Field(0.60, ge=0, lt=1, description="Gross margin the proposed quota restores.")
    by: Literal["tier", "feature-tier"] = Field("feature-tier", description=(
        "Judge each feature within a tier (resource llm.feature) or each tier's whole usage (llm.tier)."))
    min_users: int = Field(3, ge=1, description="No finding for a tier line with fewer active users.")
    min_monthly_spend_usd: float = Field(50.0, ge=0, description="No finding for a tier line costing less a month.")


@detectors.register("negative-margin")
class NegativeMargin(Detector):
    resource_types = ("llm.feature", "llm.tier")
    permissions = ()  # reads files and the price map, no cloud API
    Params = NegativeMarginParams
    params: NegativeMarginParams

    def detect(self, obs: Observation, ctx: DetectContext) -> Finding | None:
        p = self.params
        attrs = obs.resource.attrs
        window_days = float(attrs.get("window_days") or 0)
        if obs.resource.resource_type != RESOURCE[p.by]:  # a policy/`by` mismatch is said, not silent
            msg = (f"negative-margin: by: {p.by} reads {RESOURCE[p.by]} resources, not "
                   f"{obs.resource.resource_type}: nothing judged")
            if msg not in ctx.warnings:
                ctx.warnings.append(msg)
            return None
        if window_days <= 0:
            return None
        scale = float(DAYS_PER_MONTH) / window_days
        lines = []
        for tier, t in sorted(attrs.get("tiers", {}).items()):
            line = self._judge(obs, ctx, tier, t, scale)
            if line is not None:
                lines.append(line)
        if not lines:
            return None
        saving = sum(Decimal(str(x["saving_usd_month"])) for x in lines)
        evidence: dict[str, Any] = {
            "signal": "llm_cost_per_user_above_tier_price", "by": p.by, "window_days": window_days,
            "month": f"{float(DAYS_PER_MONTH):.1f} days (730 hours); window figures x {scale:.3f}",
            "target_margin": p.target_margin, "tiers": lines,
        }
        f = self.finding(obs, ctx, evidence=evidence, monthly_waste=saving, confidence="medium")
        top = max(lines, key=lambda x: x["saving_usd_month"])
        what = f"cap {obs.resource.resource_id} at" if p.by == "feature-tier" else "cap LLM use at"
        f.rationale = f.evidence["summary"] = (
            f"{top['tier']}: {what} {top['quota_requests_per_user_month']:,} requests per user per month. "
            f"{top['users']} users cost ${top['cost_per_user_month']:,.2f}/user-month against a "
            f"${top['price_per_user_month']:,.2f} price (margin {top['margin']:.0%}, over {day_words(window_days)}); "
            f"the quota touches {top['users_touched']} of them and saves ${top['saving_usd_month']:,.2f}/month, "
            f"restoring a {p.target_margin:.0%} margin.")
        return f

    def _judge(self, obs: Observation, ctx: DetectContext, tier: str, t: dict[str, Any],
               scale: float) -> dict[str, Any] | None:
        p = self.params
        users = list(t.get("user_requests") or [])
        where = f"{obs.resource.resource_id}/{tier}" if p.by == "feature-tier" else tier
        if len(users) < p.min_users:
            return None
        cost_month = float(t.get("cost_usd") or 0) * scale
        price = t.get("price_usd_month")
        if t.get("unpriced_requests") or price is None:
            reason = (f"{t['unpriced_requests']:,} unpriced requests" if t.get("unpriced_requests")
                      else f"no price for tier {tier} in billing.tier_revenue_usd_month")
            return self.insufficient(obs, ctx, {"llm_cost_usd": 0.0}, required=1.0,
                                     reason=f"{where}: {reason}: margin not judged")
        if cost_month < p.min_monthly_spend_usd or not t.get("requests"):
            return None
        per_user = cost_month / len(users)
        margin = 1 - per_user / price if price else float("-inf")
        if margin >= 0:
            return None
        cost_per_request = float(t["cost_usd"]) / t["requests"]
        quota = restore_margin([r * scale for r in users], cost_per_request, float(price), p.target_margin)
        if quota is None:
            return None
        return {"tier": tier, "users": len(users), "price_per_user_month": round(float(price), 2),
                "cost_usd_month": round(cost_month, 2), "cost_per_user_month": round(per_user, 2),
                "margin": round(margin, 4), "cost_per_request_usd": round(cost_per_request, 6),
                "requests_per_user_month_max": round(max(users) * scale, 1),
                "requests_per_user_month_median": round(sorted(users)[len(users) // 2] * scale, 1),
                "quota_requests_per_user_month": quota.requests_per_user, "users_touched": quota.users_touched,
                "requests_removed_month": round(quota.requests_removed, 1),
                "saving_usd_month": round(min(quota.saving_usd, cost_month), 2),
                "cost_per_user_month_after": round(quota.cost_per_user_after_usd, 2)}
