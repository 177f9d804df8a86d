"""Start-up reconciliation: settle actions a crash left between `pending` and `done`.

The resource's real state decides. If the change is there, the action is recorded as done
(without calling the cloud again); if not, it is recorded as interrupted, and the next sweep
re-plans it under a new id through the guard. Either way nothing runs twice and nothing is
forgotten.
"""

from __future__ import annotations

import logging
from typing import Any

from state.store import Store
from tools.registry import get_tool

log = logging.getLogger("costwarden.reconcile")


def reconcile_pending(store: Store, providers: Any) -> dict[str, int]:
    counts = {"done": 0, "interrupted": 0, "unreadable": 0}
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
        else:
            store.set_action_status(row.id, "interrupted")
            store.append_decision(stage="reconcile", decision="interrupted", action_id=row.id, run_id=row.run_id,
                                  policy=row.policy, reason="not applied before a restart; the next sweep re-plans it",
                                  detail={"observed": state})
            counts["interrupted"] += 1
        log.info("reconciled action %s", row.id, extra={"action_id": row.id, "policy": row.policy})
    return counts
