"""guard: the policy's limits decide each action; the decision and its reason are recorded."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from costwarden.agent.engine.context import SweepContext
from costwarden.agent.engine.nodes.state import SweepState
from costwarden.policies.guard import GuardContext, decide
from costwarden.state.domain import AUTO, NEEDS_APPROVAL, REPORT, SKIP, Finding, PlannedAction
from costwarden.state.lifecycle import ActionStatus

if TYPE_CHECKING:
    from langgraph.runtime import Runtime  # LangGraph passes it; a one-shot audit never imports it

STATUS_AFTER_GUARD = {SKIP: ActionStatus.SKIPPED, REPORT: ActionStatus.REPORTED,
                      NEEDS_APPROVAL: ActionStatus.AWAITING_APPROVAL, AUTO: ActionStatus.PLANNED}


def guard(state: SweepState, runtime: Runtime[SweepContext]) -> dict[str, Any]:
    ctx = runtime.context
    run_id = state["run_id"]
    findings = {d["id"]: Finding.from_dict(d) for d in state.get("findings", [])}
    per_policy: dict[str, GuardContext] = {}
    out: list[PlannedAction] = []
    for d in state.get("actions", []):
        a = PlannedAction.from_dict(d)
        lp = ctx.policies[a.policy]
        stored = ctx.store.get_action(a.id) if ctx.resumed else None
        if stored is not None:  # a dead attempt of this fan-out job planned it: its record (and claim) stands
            a.decision, a.reason, a.status = stored.decision, stored.reason, ActionStatus(stored.status)
            out.append(a)
            continue
        # a fanned-out part counts what the whole run flagged so far (detect), a sweep what it flagged
        gctx = per_policy.setdefault(a.policy, GuardContext(now=ctx.now, flagged=state.get("flagged_in_run", {}).get(
            a.policy, len({f.resource_id for f in findings.values() if f.policy == a.policy}))))
        since = ctx.now - timedelta(hours=lp.policy.limits.cooldown_hours)
        if ctx.store.recent_actions_on(a.resource_key, since):
            gctx.recently_acted.add(a.resource_key)
        a.decision, a.reason = decide(lp.policy, a, findings[a.finding_id].tags, gctx)
        if state.get("dry_run") and a.decision in (NEEDS_APPROVAL, AUTO):
            a.status = ActionStatus.DRY_RUN
        else:
            a.status = STATUS_AFTER_GUARD[a.decision]
        ctx.store.add_action(run_id, a, policy_hash=lp.content_hash)
        if a.status == ActionStatus.AWAITING_APPROVAL:
            rules = lp.policy.approval
            ctx.store.request_approval(a.id, ttl=timedelta(hours=lp.policy.limits.approval_ttl_hours), policy=a.policy,
                                       required=2 if a.destructive and rules.two_approvers_for_destructive else 1)
        out.append(a)
    return {"actions": [a.to_dict() for a in out]}
