"""approve: ask a human for every action the guard sent to approval.

This node only posts the requests (side effects are fine here: it never pauses). Each action
then gets its own approval thread that waits in `interrupt()` (agent/engine/approvals.py), so one
slow approver never holds up the rest of the sweep or the other approvals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from costwarden.agent.engine.context import SweepContext
from costwarden.agent.engine.nodes.state import SweepState
from costwarden.state.lifecycle import ActionStatus

if TYPE_CHECKING:
    from langgraph.runtime import Runtime  # LangGraph passes it; a one-shot audit never imports it


def approve(state: SweepState, runtime: Runtime[SweepContext]) -> dict[str, Any]:
    from costwarden.agent.engine.approvals import post_request, slack_for

    ctx = runtime.context
    waiting = [a for a in state.get("actions", []) if a["status"] == ActionStatus.AWAITING_APPROVAL]
    if not waiting:
        return {}
    slack = slack_for(ctx.settings)
    warnings = []
    for a in waiting:
        channel = ctx.policies[a["policy"]].policy.approval.channel
        if slack is not None and not post_request(ctx.settings, ctx.store, slack, a["id"], channel):
            warnings.append(f"approval request for {a['id']} not posted to Slack; see `costwarden approvals list`")
    ctx.progress(f"approve: {len(waiting)} actions wait for a human")
    return {"warnings": warnings}
