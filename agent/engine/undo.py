"""Undo an executed action with its tool's undo (cap-spend: put the recorded previous limits back).

Why here and not a new lifecycle state: the undo is its own guarded call whose result is logged in
the append-only decision log (stage `undo`, before and after), while the action stays `done`, the
change it made having happened. The undo tool reads the state first and does nothing when the
previous values are already back, so running it twice changes nothing; in dry-run its transport
refuses the update like any other.
"""

from __future__ import annotations

from typing import Any

from costwarden.state.store import Store
from costwarden.tools.errors import ToolError
from costwarden.tools.registry import get_tool


def undo_action(store: Store, providers: Any, action_id: str, *, actor: str) -> str:
    """Run the undo of a `done` action; return done | failed. ToolError (one line) when it has none."""
    row = store.get_action(action_id)
    if row is None:
        raise ToolError(f"undo: no action {action_id!r}")
    if row.status != "done":
        raise ToolError(f"undo: action {action_id} is {row.status}; only an executed (done) action can be undone")
    spec = get_tool(row.tool)
    if spec.undo is None:
        raise ToolError(f"undo: {row.tool} has no undo")
    tool, args = spec.undo(dict(row.args or {}), dict(row.before_state or {}))
    undo = get_tool(tool)
    store.append_decision(stage="undo", decision="started", action_id=action_id, policy=row.policy, actor=actor,
                          reason=f"{tool} back to the recorded before-state", detail={"tool": tool, "args": args})
    try:
        outcome = undo.run(providers.clients_for(undo.provider), **args)
        ok, after, detail = outcome.ok, outcome.after, outcome.detail
    except ToolError as exc:
        ok, after, detail = False, {}, str(exc)
    store.append_decision(stage="undo", decision="done" if ok else "failed", action_id=action_id, policy=row.policy,
                          actor=actor, reason=detail or "previous values restored", detail={"after": after})
    return "done" if ok else "failed"
