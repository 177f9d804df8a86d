"""Start-up reconciliation: settle actions a crash left between `pending` and `done`.

The resource's real state decides. If the change is there, the action is recorded as done
(without calling the cloud again); if not, it is recorded as interrupted, and the next sweep
re-plans it under a new id through the guard. A resumable tool (ToolSpec.resume: a resize that
stopped an instance to change it) is instead run again, since it reads where it stopped and does
only the rest. Either way nothing runs twice and nothing is forgotten.
"""

from __future__ import annotations

import logging
from typing import Any

from costwarden.state.store import Store
from costwarden.tools.registry import get_tool

log = logging.getLogger("costwarden.reconcile")


def reconcile_pending(store: Store, providers: Any) -> dict[str, int]:
    counts = {"done": 0, "interrupted": 0, "unreadable": 0, "resumed": 0, "failed": 0, "deferred": 0}
    for row in store.actions_in_limbo():
        try:
            spec = get_tool(row.tool)
            state = spec.observe(providers.clients_for(spec.provider), **row.args)
        except Exception as exc:  # noqa: BLE001 - leave it pending and say why; retry next start
            counts["unreadable"] += 1
            store.append_decision(stage="reconcile", decision="unreadable", action_id=row.id, run_id=row.run_id,
                                  policy=row.policy, reason=f"cannot read the resource's state: {exc}")
            log.warning("action %s left pending: cannot read state", row.id, extra={"action_id": row.id})
            continue
        if spec.is_done(state):
            store.complete_action(row.id, ok=True, after_state=state, error=None, run_id=row.run_id,
                                  policy=row.policy, policy_hash="reconcile")
            store.append_decision(stage="reconcile", decision="done", action_id=row.id, run_id=row.run_id,
                                  policy=row.policy, reason="found already applied after a restart; not called again")
            counts["done"] += 1
        elif spec.resume:
            counts[_resume(store, providers, spec, row, state)] += 1
        else:
            store.set_action_status(row.id, "interrupted")
            store.append_decision(stage="reconcile", decision="interrupted", action_id=row.id, run_id=row.run_id,
                                  policy=row.policy, reason="not applied before a restart; the next sweep re-plans it",
                                  detail={"observed": state})
            counts["interrupted"] += 1
        log.info("reconciled action %s", row.id, extra={"action_id": row.id, "policy": row.policy})
    return counts


def _resume(store: Store, providers: Any, spec: Any, row: Any, state: dict[str, Any]) -> str:
    """Finish a resumable action (ToolSpec.resume) by running its tool again: it was approved or
    allowed once and cut off half-way, and the tool reads the real state to do only what is left.
    In dry-run nothing may change, so it stays pending until a start without dry-run."""
    if getattr(providers, "dry_run", False):
        store.append_decision(stage="reconcile", decision="deferred", action_id=row.id, run_id=row.run_id,
                              policy=row.policy, reason="cut off half-way; dry-run is on, so it is finished at the "
                              "next start without dry-run", detail={"observed": state})
        return "deferred"
    try:
        out = spec.run(providers.clients_for(spec.provider), **row.args)
        ok, after, error = out.ok, out.after, (None if out.ok else out.detail)
    except Exception as exc:  # noqa: BLE001 - the record must close with the reason
        ok, after, error = False, None, str(exc) or exc.__class__.__name__
    store.complete_action(row.id, ok=ok, after_state=after, error=error, run_id=row.run_id, policy=row.policy,
                          policy_hash="reconcile")
    store.append_decision(stage="reconcile", decision="resumed" if ok else "failed", action_id=row.id,
                          run_id=row.run_id, policy=row.policy,
                          reason=("cut off half-way before a restart; finished by running it again from the "
                                  "state found") if ok else f"cut off half-way; running it again failed: {error}",
                          detail={"observed": state})
    return "resumed" if ok else "failed"
