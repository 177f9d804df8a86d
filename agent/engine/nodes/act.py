"""act: execute the actions the guard let through automatically. Never in dry-run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from costwarden.agent.engine.context import SweepContext
from costwarden.agent.engine.execute import execute_action
from costwarden.agent.engine.nodes.state import SweepState
from costwarden.state.domain import AUTO, PlannedAction
from costwarden.state.lifecycle import ActionStatus

if TYPE_CHECKING:
    from langgraph.runtime import Runtime  # LangGraph passes it; a one-shot audit never imports it


def act(state: SweepState, runtime: Runtime[SweepContext]) -> dict[str, Any]:
    ctx = runtime.context
    if state.get("dry_run"):
        return {}
    out = []
    for d in state.get("actions", []):
        a = PlannedAction.from_dict(d)
        if a.decision == AUTO and a.status == ActionStatus.PLANNED:
            lp = ctx.policies[a.policy]
            ctx.progress(f"act: {a.tool} {a.args}")
            result = execute_action(ctx.store, ctx.providers, a, run_id=state["run_id"], policy_hash=lp.content_hash)
            a.status = result if result != "already-claimed" else a.status
        out.append(a.to_dict())
    return {"actions": out}
