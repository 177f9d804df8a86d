"""cap-spend: put a budget (and optionally rate limits) on the LiteLLM team or key a losing or runaway
LLM feature spends through, via the proxy's management API (tools/litellm_proxy/caps.py).

Which team or key: `targets` maps "feature/tier", "tier" or "feature" to its id (tried in that order),
else `target` is a template (`"{tier}"`, `"team-{feature}"`). Which budget: `max_budget` when the policy
fixes one; else computed from the finding:

- negative-margin (the line of the tier that saves most): the tier's cost after the proposed quota,
  users x cost per user after, i.e. what the feature may spend in that tier at the target margin;
- spend-anomaly on an llm.feature (runaway spend): the feature's normal month, the expected daily
  spend (or the cost per request before the jump x the day's requests) x 30.4 days, plus `headroom`.

The budget is per `budget_duration` (LiteLLM's "30d", "1d", "1mo", ...), scaled from the month.
A finding of another kind, or one naming no team, is a plan error for that finding only.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from costwarden.policies.actions.base import Action, ActionParams, PlanContext, ToolCall
from costwarden.policies.actions.evidence import PlanError
from costwarden.policies.registry import actions
from costwarden.state.domain import DAYS_PER_MONTH, Finding, money

_DURATION = re.compile(r"^(\d+)(s|m|h|d|mo)$")
_DAYS = {"s": 1 / 86400, "m": 1 / 1440, "h": 1 / 24, "d": 1.0, "mo": float(DAYS_PER_MONTH)}


def duration_days(duration: str) -> float:
    """LiteLLM's budget_duration in days ('30d' -> 30, '1mo' -> 30.4, '12h' -> 0.5)."""
    m = _DURATION.match(duration)
    if not m:
        raise ValueError(f"budget_duration {duration!r}: use a number and s, m, h, d or mo (30d, 1mo)")
    return int(m.group(1)) * _DAYS[m.group(2)]


class CapSpendParams(ActionParams):
    scope: Literal["team", "key"] = Field("team", description="Limit a LiteLLM team (/team/update) or key (/key/update).")
    target: str | None = Field(None, description=(
        "Team id or key (its sha256 hash), or a template using {feature} and {tier}: \"{tier}\"."))
    targets: dict[str, str] = Field(default_factory=dict, description=(
        "\"feature/tier\", \"tier\" or \"feature\" -> team id or key; checked before `target`."))
    max_budget: float | None = Field(None, ge=0, description="USD per budget_duration; unset: computed from the finding.")
    budget_duration: str = Field("30d", description="When LiteLLM resets the budget: 30d, 1mo, 7d, 1d, ...")
    headroom: float = Field(0.2, ge=0, le=10, description=(
        "Runaway spend: the computed budget is the feature's normal month x (1 + headroom)."))
    tpm_limit: int | None = Field(None, ge=0, description="Tokens per minute, set with the budget.")
    rpm_limit: int | None = Field(None, ge=0, description="Requests per minute, set with the budget.")

    @field_validator("budget_duration")
    @classmethod
    def _duration(cls, v: str) -> str:
        duration_days(v)
        return v

    @model_validator(mode="after")
    def _needs_a_target(self) -> CapSpendParams:
        if not self.target and not self.targets:
            raise ValueError("cap-spend needs `target` (an id or a \"{tier}\" template) or `targets` (a mapping)")
        return self


def margin_line(finding: Finding) -> dict[str, Any]:
    """The negative-margin tier line whose quota saves most (the one the finding's summary names)."""
    lines = list(finding.evidence.get("tiers") or [])
    if not lines:
        raise PlanError(f"policy {finding.policy!r}, action 'cap-spend': finding {finding.id} has no tier lines")
    return max(lines, key=lambda x: (x.get("saving_usd_month") or 0, x.get("tier", "")))


def normal_month_usd(evidence: dict[str, Any]) -> float | None:
    """A runaway feature's usual monthly spend, from its spend-anomaly evidence; None when it had none."""
    if evidence.get("signal") == "cost_per_request_jump":
        per_day = float(evidence["cost_per_request_before_usd"]) * int(evidence.get("requests") or 0)
    elif evidence.get("signal") == "daily_spend":
        per_day = float(evidence.get("expected_usd") or 0)
    else:
        return None
    return per_day * float(DAYS_PER_MONTH) if per_day > 0 else None


@actions.register("cap-spend")
class CapSpend(Action):
    resource_types = ("llm.feature", "llm.tier")
    permissions = ()  # no cloud API: it calls the LiteLLM proxy's management API with its master key
    Params = CapSpendParams
    params: CapSpendParams

    def _fail(self, finding: Finding, why: str) -> PlanError:
        return PlanError(f"policy {finding.policy!r}, action 'cap-spend': finding {finding.id} "
                         f"({finding.detector} on {finding.resource_id}): {why}")

    def _target(self, finding: Finding, feature: str | None, tier: str | None) -> str:
        p = self.params
        keys = [f"{feature}/{tier}" if feature and tier else None, tier, feature]
        for key in keys:
            if key and key in p.targets:
                return p.targets[key]
        if not p.target:
            raise self._fail(finding, f"no entry in `targets` for {' or '.join(repr(k) for k in keys if k)}")
        try:
            out = p.target.format(feature=feature or "", tier=tier or "")
        except (KeyError, IndexError, ValueError) as exc:
            raise self._fail(finding, f"target template {p.target!r}: {exc}") from None
        if ("{tier}" in p.target and not tier) or ("{feature}" in p.target and not feature) or not out.strip():
            raise self._fail(finding, f"target template {p.target!r} needs a value this finding has not")
        return out

    def plan(self, finding: Finding, ctx: PlanContext) -> ToolCall:
        p = self.params
        feature = finding.resource_id if finding.resource_type == "llm.feature" else None
        if finding.detector == "negative-margin":
            line = margin_line(finding)
            tier = str(line["tier"])
            monthly = float(line["cost_per_user_month_after"]) * int(line["users"])
            saving = money(Decimal(str(line["saving_usd_month"])))
            basis = "cost_per_user"
        elif finding.detector == "spend-anomaly" and feature:
            tier = None
            normal = normal_month_usd(finding.evidence)
            monthly = None if normal is None else normal * (1 + p.headroom)
            saving = money(finding.monthly_waste_usd)
            basis = "cost_per_request"
        else:
            raise self._fail(finding, "cap-spend caps negative-margin findings and spend-anomaly findings on "
                                      "llm.feature; use it in a policy with those filters only")
        if p.max_budget is not None:
            budget = p.max_budget
        elif monthly is None:
            raise self._fail(finding, "no usual spend to size a budget from (new spend): set max_budget")
        else:
            budget = round(monthly * duration_days(p.budget_duration) / float(DAYS_PER_MONTH), 2)
        limits = {"max_budget": budget, "budget_duration": p.budget_duration,
                  "tpm_limit": p.tpm_limit, "rpm_limit": p.rpm_limit}
        args = {"scope": p.scope, "target": self._target(finding, feature, tier), "limits": limits,
                "feature": feature, "tier": tier, "basis": basis}
        return ToolCall(f"{finding.resource_type}.set_limits", args, saving)
