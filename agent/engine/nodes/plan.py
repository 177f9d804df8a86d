"""plan: each finding becomes one proposed action per action of its policy.

An action that cannot be planned for one finding (a policy naming evidence that finding lacks)
is an error line for that finding only: the rest of the sweep's plans stand. Every action plans
with the sweep's `now` and price book (PlanContext), the same ones detection used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from costwarden.agent.engine.context import SweepContext
from costwarden.agent.engine.nodes.state import SweepState
from costwarden.policies.actions.base import PlanContext
from costwarden.state.domain import Finding, PlannedAction, short_hash
from costwarden.state.errors import CostwardenError
from costwarden.tools.registry import get_tool

if TYPE_CHECKING:
    from langgraph.runtime import Runtime  # LangGraph passes it; a one-shot audit never imports it


def plan(state: SweepState, runtime: Runtime[SweepContext]) -> dict[str, Any]:
    ctx = runtime.context
    pctx = PlanContext(now=ctx.now, price_of=ctx.prices.hourly)
    planned: list[PlannedAction] = []
    errors: list[str] = []
    for d in state.get("findings", []):
        f = Finding.from_dict(d)
        lp = ctx.policies[f.policy]
        for action in lp.actions:
            if action.for_detectors and f.detector not in action.for_detectors:
                continue
            try:
                call = action.plan(f, pctx)
                args, report_reason = prepared(ctx, call.tool, call.args)
            except CostwardenError as exc:
                errors.append(f"plan: policy {f.policy!r}, action {action.name!r}, {f.resource_id}: {exc}"
                              if call_made(exc) else f"plan: {exc}")
                continue
            planned.append(PlannedAction(
                id="act_" + short_hash(state["run_id"], f.id, action.name),
                finding_id=f.id, policy=f.policy, action=action.name, tool=call.tool, args=args,
                projected_monthly_savings_usd=call.projected_monthly_savings_usd,
                resource_key=f"{f.provider}:{f.account}:{f.region}:{f.resource_id}",
                destructive=action.destructive, approval_reason=call.approval_reason, report_reason=report_reason,
            ))
    return {"actions": [a.to_dict() for a in planned], "errors": errors}


def prepared(ctx: SweepContext, tool: str, args: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The args as the tool's `prepare` completes them (read-only), and its reason to only report."""
    try:
        spec = get_tool(tool)
    except KeyError:  # a tool checked when it runs, not here
        return args, ""
    if spec.prepare is None:
        return args, ""
    return spec.prepare(ctx.providers.clients_for(spec.provider), dict(args))


def call_made(exc: Exception) -> bool:
    """A tool's error (from `prepare`) names neither the policy nor the action: the plan line adds them."""
    from costwarden.tools.errors import ToolError

    return isinstance(exc, ToolError)
