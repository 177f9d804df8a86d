"""Execute one approved or automatic action through its guarded tool, exactly once.

Order is the safety model: read the before-state, claim the action atomically as `pending`
(the `claim` transition of state/lifecycle.py: the write that makes a second execution
impossible), call the cloud, verify, record `done` or `failed` with the after-state. A crash
between claim and record leaves `pending`, which start-up reconciliation resolves by reading the
resource's real state.
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from costwarden.state.domain import PlannedAction
from costwarden.state.lifecycle import ActionStatus
from costwarden.state.store import Store
from costwarden.tools.errors import ToolError
from costwarden.tools.registry import get_tool

log = logging.getLogger("costwarden.execute")


def execute_action(store: Store, providers: Any, a: PlannedAction, *, run_id: str | None, policy_hash: str,
                   actor: str = "costwarden") -> str:
    """Return the action's final status: done | failed | already-claimed."""
    spec = get_tool(a.tool)
    clients = providers.clients_for(spec.provider)
    try:
        before = spec.observe(clients, **a.args)
    except (ToolError, ClientError, BotoCoreError) as exc:
        before = {"error": str(exc)}
    if not store.claim_action(a.id, before_state=before, run_id=run_id,
                              policy=a.policy, policy_hash=policy_hash, actor=actor):
        log.info("action already claimed; not executing again", extra={"action_id": a.id})
        return "already-claimed"
    try:
        outcome = spec.run(clients, **a.args)
        ok, after, error = outcome.ok, outcome.after, (None if outcome.ok else outcome.detail)
    except (ToolError, ClientError, BotoCoreError) as exc:
        ok, after, error = False, None, str(exc)
    except Exception as exc:  # noqa: BLE001 - an unexpected bug must still close the record
        ok, after, error = False, None, f"{exc.__class__.__name__}: {exc}"
    store.complete_action(a.id, ok=ok, after_state=after, error=error, run_id=run_id, policy=a.policy,
                          policy_hash=policy_hash)
    return ActionStatus.DONE if ok else ActionStatus.FAILED
