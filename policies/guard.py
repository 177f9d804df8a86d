"""The guard: policy limits decide, per action, skip | report | needs_approval | auto, with a reason.

Pure and deterministic. Nothing an LLM writes reaches these inputs, so no model output can
change a decision. Dry-run does not change the decision either: the audit shows what the
policy *would* do, and the act step is what refuses to do it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from costwarden.policies.schema import ChangeWindow, Policy
from costwarden.state.domain import AUTO, NEEDS_APPROVAL, REPORT, SKIP, PlannedAction


@dataclass
class GuardContext:
    now: datetime
    recently_acted: set[str] = field(default_factory=set)  # resource keys inside their cooldown
    counted: int = 0  # actions this run already let through (approval or auto)
    flagged: int = 0  # distinct resources the policy flagged this run (for max_resources)


def protection_match(tags: dict[str, str], protected: dict[str, str]) -> str | None:
    for key, value in protected.items():
        if key in tags and str(tags[key]).lower() == str(value).lower():
            return f"{key}={tags[key]}"
    return None


def in_window(now: datetime, window: ChangeWindow) -> bool:
    local = now.astimezone(ZoneInfo(window.timezone))
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[local.weekday()]
    t = local.time().replace(tzinfo=None)
    if window.start <= window.end:
        return day in window.days and window.start <= t < window.end
    # a window that crosses midnight belongs to the day it starts on
    if t >= window.start:
        return day in window.days
    yesterday = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(local.weekday() - 1) % 7]
    return t < window.end and yesterday in window.days


def decide(policy: Policy, action: PlannedAction, tags: dict[str, str], ctx: GuardContext) -> tuple[str, str]:
    limits = policy.limits
    hit = protection_match(tags, limits.protected_tags)
    if hit:
        return SKIP, f"protected resource ({hit}); never acted on"
    if policy.max_resources is not None and ctx.flagged > policy.max_resources:
        return REPORT, (f"max-resources guard: the policy flagged {ctx.flagged} resources, more than "
                        f"max-resources={policy.max_resources}; it acts on none")
    if action.resource_key in ctx.recently_acted:
        return SKIP, (f"cooldown: an action on this resource is still open or ran within the last "
                      f"{limits.cooldown_hours:g}h")
    if policy.mode == "report":
        return REPORT, "policy mode is report"
    if action.report_reason:
        return REPORT, action.report_reason
    if ctx.counted >= limits.max_actions_per_run:
        return REPORT, f"limit reached: max_actions_per_run={limits.max_actions_per_run}"
    env = tags.get(limits.environment_tag, "")
    if env and env.lower() in {e.lower() for e in limits.approval_environments}:
        ctx.counted += 1
        return NEEDS_APPROVAL, f"environment {limits.environment_tag}={env} always needs approval"
    if policy.mode == "approve":
        ctx.counted += 1
        return NEEDS_APPROVAL, "policy mode is approve"
    if action.destructive:
        ctx.counted += 1
        return NEEDS_APPROVAL, "destructive action needs approval even in auto mode"
    if action.approval_reason:
        ctx.counted += 1
        return NEEDS_APPROVAL, action.approval_reason
    cap = Decimal(str(limits.max_monthly_usd_per_auto_action))
    if action.projected_monthly_savings_usd > cap:
        ctx.counted += 1
        return NEEDS_APPROVAL, (f"touches ${action.projected_monthly_savings_usd:,.2f}/month, over the auto limit "
                                f"max_monthly_usd_per_auto_action={cap:,.0f}")
    if limits.change_windows and not any(in_window(ctx.now, w) for w in limits.change_windows):
        return REPORT, "outside every change window; will act in the next window"
    ctx.counted += 1
    return AUTO, "within policy limits for automatic action"
