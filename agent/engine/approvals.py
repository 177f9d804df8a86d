"""Human approval: one small LangGraph thread per action that needs a person.

    (sweep: guard -> approve posts the message) ... wait --interrupt()--> execute -> notify

The thread (id `approval:<action id>`) pauses in `wait` with `interrupt()`, checkpointed
(agent/engine/sweep.py open_checkpointer: in the PostgreSQL database all replicas share, else in
SQLite in `state_dir`), so a click days later, in another process or on another replica,
resumes it. Before anything resumes, the decision is claimed atomically in the store
(`Store.vote`): only the click that moves the approval out of `pending` resumes the thread, so
double clicks, replays and replicas execute nothing twice. `execute` then claims the action
itself (`pending` before the cloud call).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt

from costwarden.agent.config import Settings
from costwarden.agent.engine.context import Providers
from costwarden.agent.engine.execute import execute_action
from costwarden.agent.engine.sweep import open_checkpointer
from costwarden.state.domain import PlannedAction
from costwarden.state.store import Store, as_utc
from costwarden.tools.errors import ToolError

log = logging.getLogger("costwarden.approvals")


@dataclass
class ApprovalContext:
    settings: Settings
    store: Store
    providers: Providers
    slack: Any | None  # tools.slack.SlackNotifier


class ApprovalState(TypedDict, total=False):
    action_id: str
    decision: str  # approved | rejected | expired
    actor: str
    result: str


def slack_for(settings: Settings) -> Any | None:
    if not settings.slack.enabled:
        return None
    from costwarden.tools.slack import SlackNotifier

    assert settings.slack.bot_token is not None
    return SlackNotifier(settings.slack.bot_token.get_secret_value(), base_url=settings.slack.base_url)


def thread_config(action_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": f"approval:{action_id}"}}


# --- nodes ----------------------------------------------------------------------------------
def wait(state: ApprovalState, runtime: Runtime[ApprovalContext]) -> dict[str, Any]:
    # Nothing with side effects before interrupt(): on resume this node runs again from here.
    answer = interrupt({"action_id": state["action_id"]})
    return {"decision": answer["decision"], "actor": answer.get("actor", "")}


def execute(state: ApprovalState, runtime: Runtime[ApprovalContext]) -> dict[str, Any]:
    ctx = runtime.context
    if state.get("decision") != "approved":
        return {"result": state.get("decision", "")}
    row = ctx.store.get_action(state["action_id"])
    if row is None:
        return {"result": "unknown"}
    guard_rows = [d for d in ctx.store.decisions(action_id=row.id) if d.stage == "guard"]
    a = PlannedAction(id=row.id, finding_id=row.finding_id, policy=row.policy, action=row.action, tool=row.tool,
                      args=row.args, projected_monthly_savings_usd=row.projected_monthly_savings_usd,
                      resource_key=row.resource_key, decision=row.decision, reason=row.reason, status=row.status)
    result = execute_action(ctx.store, ctx.providers, a, run_id=row.run_id,
                            policy_hash=guard_rows[0].policy_hash if guard_rows else "", actor=state.get("actor", ""))
    return {"result": result}


def notify(state: ApprovalState, runtime: Runtime[ApprovalContext]) -> dict[str, Any]:
    ctx = runtime.context
    update_message(ctx, state["action_id"], outcome_text(ctx.store, state))
    return {}


def build_approval_graph(checkpointer: Any) -> Any:
    g = StateGraph(ApprovalState, context_schema=ApprovalContext)
    g.add_node("wait", wait)
    g.add_node("execute", execute)
    g.add_node("notify", notify)
    g.add_edge(START, "wait")
    g.add_edge("wait", "execute")
    g.add_edge("execute", "notify")
    g.add_edge("notify", END)
    return g.compile(checkpointer=checkpointer)


# --- messages -------------------------------------------------------------------------------
def outcome_text(store: Store, state: ApprovalState) -> str:
    who = state.get("actor") or "costwarden"
    decision = state.get("decision")
    if decision == "approved":
        row = store.get_action(state["action_id"])
        detail = f": {row.error}" if row is not None and row.error else ""
        return f":white_check_mark: Approved by {who}. Action {state.get('result', '')}{detail}."
    if decision == "rejected":
        return f":no_entry: Rejected by {who}. Nothing was changed."
    if decision == "expired":
        return ":hourglass: Withdrawn: nobody decided before the approval expired. Nothing was changed."
    return f"Closed ({decision})."


def _message(store: Store, action_id: str, outcome: str | None) -> tuple[str, list[dict[str, Any]]] | None:
    from costwarden.tools.slack import approval_blocks

    pair = store.get_approval(action_id)
    if pair is None:
        return None
    approval, action = pair
    finding = store.get_finding(action.finding_id)
    if finding is None:
        return None
    f = {c: getattr(finding, c) for c in ("resource_id", "resource_type", "account", "region", "evidence",
                                           "monthly_waste_usd", "rationale")}
    a = {"id": action.id, "action": action.action, "policy": action.policy, "reason": action.reason,
         "projected_monthly_savings_usd": action.projected_monthly_savings_usd}
    expires = as_utc(approval.expires_at).strftime("%Y-%m-%d %H:%M UTC") if approval.expires_at else "never"
    text = f"Costwarden asks to {action.action} {finding.resource_id} (${float(finding.monthly_waste_usd):,.2f}/month)"
    return text, approval_blocks(a, f, expires=expires, required=approval.required, votes=list(approval.votes or []),
                                 outcome=outcome)


def post_request(settings: Settings, store: Store, slack: Any | None, action_id: str, channel: str | None) -> bool:
    """Post the approval message. A failure leaves the approval pending (and listed by
    `costwarden approvals list`), and is recorded: nothing is lost."""
    if slack is None:
        return False
    channel = channel or settings.slack.channel
    msg = _message(store, action_id, None)
    if msg is None or not channel:
        return False
    try:
        ch, ts = slack.post(channel, *msg)
    except ToolError as exc:
        store.append_decision(stage="approval", decision="not-posted", action_id=action_id,
                              reason=f"{exc}; the action stays pending (costwarden approvals list)")
        log.warning("approval message not posted", extra={"action_id": action_id, "error": str(exc)})
        return False
    store.set_approval_message(action_id, channel=ch, ts=ts)
    return True


def update_message(ctx: ApprovalContext, action_id: str, outcome: str | None) -> None:
    pair = ctx.store.get_approval(action_id)
    if ctx.slack is None or pair is None or not pair[0].message_ts:
        return
    msg = _message(ctx.store, action_id, outcome)
    if msg is None:
        return
    try:
        ctx.slack.update(pair[0].channel, pair[0].message_ts, *msg)
    except ToolError as exc:
        log.warning("approval message not updated", extra={"action_id": action_id, "error": str(exc)})


# --- entry points ---------------------------------------------------------------------------
def _context(settings: Settings, store: Store) -> ApprovalContext:
    return ApprovalContext(settings, store, Providers(settings, dry_run=settings.dry_run), slack_for(settings))


def open_threads(settings: Settings, store: Store, action_ids: list[str]) -> None:
    """Start one approval thread per action; each runs until it pauses in `wait`."""
    if not action_ids:
        return
    ctx = _context(settings, store)
    with open_checkpointer(settings) as saver:
        graph = build_approval_graph(saver)
        for action_id in action_ids:
            graph.invoke({"action_id": action_id}, thread_config(action_id), context=ctx)


def _resume(settings: Settings, store: Store, action_id: str, payload: dict[str, str]) -> dict[str, Any]:
    ctx = _context(settings, store)
    with open_checkpointer(settings) as saver:
        graph = build_approval_graph(saver)
        cfg = thread_config(action_id)
        if not graph.get_state(cfg).interrupts:
            # the checkpoint is gone (new volume, wiped state, another replica's SQLite file):
            # start the thread, then resume it; the store still holds everything it needs
            log.warning("approval thread has no checkpoint here; restarting it from the store",
                        extra={"action_id": action_id})
            graph.invoke({"action_id": action_id}, cfg, context=ctx)
        return graph.invoke(Command(resume=payload), cfg, context=ctx)


def decide(settings: Settings, store: Store, action_id: str, *, actor: str, decision: str,
           snooze_hours: float = 24.0) -> str:
    """Apply a human decision (approve | reject | snooze); resume the thread if it is final."""
    outcome = store.vote(action_id, actor=actor, decision=decision, snooze=timedelta(hours=snooze_hours))
    if outcome in ("approved", "rejected", "expired"):
        _resume(settings, store, action_id, {"decision": outcome, "actor": actor})
    elif outcome in ("recorded", "snoozed"):
        update_message(_context(settings, store), action_id, None)  # shows the votes so far, or the new expiry
    log.info("approval decision", extra={"action_id": action_id, "actor": actor, "decision": decision,
                                         "outcome": outcome})
    return outcome


def expire_due(settings: Settings, store: Store) -> list[str]:
    """Withdraw approvals whose window closed; close their threads and messages."""
    expired = store.expire_due()
    for action_id in expired:
        _resume(settings, store, action_id, {"decision": "expired", "actor": "costwarden"})
    return expired
