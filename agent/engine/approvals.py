"""Human approval: one small LangGraph thread per action that needs a person.

    (sweep: guard -> approve posts the message) ... wait --interrupt()--> execute -> notify

The thread (id `approval:<action id>`) pauses in `wait` with `interrupt()`, checkpointed
(agent/engine/checkpoints.py: in the PostgreSQL database all replicas share, else in SQLite in
`state_dir`), so a click days later, in another process or on another replica, resumes it.
These are the only checkpointed threads: the sweep itself never pauses. Once a thread has
finished, its checkpoints are kept `checkpoint_retention_days` and then deleted
(`prune_finished`). Before anything resumes, the decision is claimed atomically in the store
(`Store.vote`): only the click that moves the approval out of `pending` resumes the thread, so
double clicks, replays and replicas execute nothing twice. `execute` then claims the action
itself (`pending` before the cloud call).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt

from costwarden.agent.config import Settings
from costwarden.agent.engine.checkpoints import open_checkpointer, pg_conninfo, thread_ids
from costwarden.agent.engine.context import Providers
from costwarden.agent.engine.execute import execute_action
from costwarden.state.domain import PlannedAction
from costwarden.state.lifecycle import SYSTEM_ACTOR, TERMINAL, ActionStatus
from costwarden.state.store import Store, as_utc
from costwarden.tools.errors import ToolError
from costwarden.tools.registry import get_tool

log = logging.getLogger("costwarden.approvals")


@dataclass
class ApprovalContext:
    settings: Settings
    store: Store
    providers: Providers
    slack: Any | None  # tools.slack.SlackNotifier


class ApprovalState(TypedDict, total=False):
    action_id: str
    decision: str  # approved | rejected | expired | withdrawn
    actor: str
    reason: str  # why Costwarden withdrew an approved action (reconcile)
    result: str


def slack_for(settings: Settings) -> Any | None:
    if not settings.slack.enabled:
        return None
    from costwarden.tools.slack import SlackNotifier

    assert settings.slack.bot_token is not None
    return SlackNotifier(settings.slack.bot_token.get_secret_value(), base_url=settings.slack.base_url)


THREAD_PREFIX = "approval:"


def thread_config(action_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": THREAD_PREFIX + action_id}}


# --- nodes ----------------------------------------------------------------------------------
def wait(state: ApprovalState, runtime: Runtime[ApprovalContext]) -> dict[str, Any]:
    # Nothing with side effects before interrupt(): on resume this node runs again from here.
    answer = interrupt({"action_id": state["action_id"]})
    return {"decision": answer["decision"], "actor": answer.get("actor", ""), "reason": answer.get("reason", "")}


def execute(state: ApprovalState, runtime: Runtime[ApprovalContext]) -> dict[str, Any]:
    ctx = runtime.context
    if state.get("decision") != ActionStatus.APPROVED:
        return {"result": state.get("decision", "")}
    row = ctx.store.get_action(state["action_id"])
    if row is None:
        return {"result": "unknown"}
    if row.status in TERMINAL:  # settled already (a thread cut off after its action was recorded, then reconciled)
        return {"result": row.status}
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
    who = state.get("actor") or SYSTEM_ACTOR
    decision = state.get("decision")
    if decision == ActionStatus.APPROVED:
        row = store.get_action(state["action_id"])
        detail = f": {row.error}" if row is not None and row.error else ""
        return f":white_check_mark: Approved by {who}. Action {state.get('result', '')}{detail}."
    if decision == ActionStatus.REJECTED:
        return f":no_entry: Rejected by {who}. Nothing was changed."
    if decision == ActionStatus.EXPIRED:
        return ":hourglass: Withdrawn: nobody decided before the approval expired. Nothing was changed."
    if decision == ActionStatus.WITHDRAWN:
        return f":hourglass: Withdrawn: {state.get('reason') or 'it may no longer run'}. Nothing was changed."
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
         "projected_monthly_savings_usd": action.projected_monthly_savings_usd, "change": _change(action),
         "args": action.args or {}}
    expires = as_utc(approval.expires_at).strftime("%Y-%m-%d %H:%M UTC") if approval.expires_at else "never"
    text = f"Costwarden asks to {action.action} {finding.resource_id} (${float(finding.monthly_waste_usd):,.2f}/month)"
    return text, approval_blocks(a, f, expires=expires, required=approval.required, votes=list(approval.votes or []),
                                 outcome=outcome)


def _change(action: Any) -> str:
    """The tool's own one-line account of the change, when it gives one (cap-spend: the new limits)."""
    try:
        spec = get_tool(action.tool)
        return spec.describe(dict(action.args or {})) if spec.describe else ""
    except Exception:  # noqa: BLE001 - the message goes out without the line rather than not at all
        return ""


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


def refresh_message(settings: Settings, store: Store, action_id: str) -> None:
    """Show an action's approval message as it stands now (votes so far, a new expiry)."""
    update_message(_context(settings, store), action_id, None)


def open_threads(settings: Settings, store: Store, action_ids: list[str]) -> None:
    """Start one approval thread per action; each runs until it pauses in `wait`."""
    if not action_ids:
        return
    ctx = _context(settings, store)
    with open_checkpointer(settings) as saver:
        graph = build_approval_graph(saver)
        for action_id in action_ids:
            graph.invoke({"action_id": action_id}, thread_config(action_id), context=ctx)


def resume_thread(settings: Settings, store: Store, action_id: str, payload: dict[str, str]) -> dict[str, Any]:
    """Resume an action's approval thread with a final decision (`store.vote` claimed it first)."""
    ctx = _context(settings, store)
    with open_checkpointer(settings) as saver:
        graph = build_approval_graph(saver)
        cfg = thread_config(action_id)
        snapshot = graph.get_state(cfg)
        if not snapshot.interrupts:
            # the checkpoint is gone (new volume, wiped state, another replica's SQLite file), or
            # the thread was cut off after its decision: start it again, then resume it; the store
            # holds everything it needs
            if snapshot.next:
                log.info("approval thread cut off after its decision; running it again from the store",
                         extra={"action_id": action_id})
            else:
                log.warning("approval thread has no checkpoint here; restarting it from the store",
                            extra={"action_id": action_id})
            graph.invoke({"action_id": action_id}, cfg, context=ctx)
        return graph.invoke(Command(resume=payload), cfg, context=ctx)


def decide(settings: Settings, store: Store, action_id: str, *, actor: str, decision: str,
           snooze_hours: float = 24.0) -> str:
    """Apply a human decision (approve | reject | snooze); resume the thread if it is final."""
    outcome = store.vote(action_id, actor=actor, decision=decision, snooze=timedelta(hours=snooze_hours))
    if outcome in (ActionStatus.APPROVED, ActionStatus.REJECTED, ActionStatus.EXPIRED):
        resume_thread(settings, store, action_id, {"decision": outcome, "actor": actor})
    elif outcome in ("recorded", "snoozed"):
        refresh_message(settings, store, action_id)  # shows the votes so far, or the new expiry
    log.info("approval decision", extra={"action_id": action_id, "actor": actor, "decision": decision,
                                         "outcome": outcome})
    return outcome


def expire_due(settings: Settings, store: Store) -> list[str]:
    """Withdraw approvals whose window closed (the clock's `expire` transition, never a vote);
    close their threads and messages."""
    expired = store.expire_due()
    for action_id in expired:
        resume_thread(settings, store, action_id, {"decision": ActionStatus.EXPIRED.value, "actor": SYSTEM_ACTOR})
    return expired


def finish_approved(settings: Settings, store: Store, action_id: str, *, actor: str) -> dict[str, Any]:
    """Run an approved action whose execution was cut off before its claim (reconcile): the same
    thread, claim -> act -> verify, and the same closing message as a click would have given."""
    return resume_thread(settings, store, action_id, {"decision": ActionStatus.APPROVED.value, "actor": actor})


def finish_cut_threads(settings: Settings, store: Store) -> list[str]:
    """Finish the approval threads a crash cut off after their action was settled in the store
    (executed, or recorded as done by reconcile, or rejected/expired before the thread resumed);
    return the action ids. They run on to `notify`, so each Slack message ends with what
    happened; `execute` sees the settled status and calls nothing. A thread whose action still
    waits for a person, or is approved and unsettled, is left alone."""
    if pg_conninfo(settings.database_url) is None and not settings.checkpoint_path.exists():
        return []
    finished: list[str] = []
    with open_checkpointer(settings) as saver:
        graph = build_approval_graph(saver)
        cut: list[tuple[str, Any]] = []
        for thread_id in thread_ids(saver):
            if not thread_id.startswith(THREAD_PREFIX):
                continue
            snapshot = graph.get_state({"configurable": {"thread_id": thread_id}})
            if snapshot.next:
                cut.append((thread_id.removeprefix(THREAD_PREFIX), snapshot))
        ctx = _context(settings, store) if cut else None
        for action_id, snapshot in cut:
            pair = store.get_approval(action_id)
            if pair is None or pair[1].status not in TERMINAL:
                continue
            approval, _action = pair
            cfg = thread_config(action_id)
            if snapshot.interrupts:  # the decision never reached the thread
                payload = {"decision": str(approval.status), "actor": approval.decided_by or SYSTEM_ACTOR}
                graph.invoke(Command(resume=payload), cfg, context=ctx)
            else:  # cut off in `execute` or `notify`: carry on from the last checkpoint
                graph.invoke(None, cfg, context=ctx)
            finished.append(action_id)
    if finished:
        log.info("approval threads cut off by a crash closed", extra={"threads": len(finished)})
    return finished


def close_withdrawn(settings: Settings, store: Store, action_id: str, *, reason: str) -> None:
    """Close the thread and the Slack message of an approved action reconcile withdrew."""
    resume_thread(settings, store, action_id,
                  {"decision": ActionStatus.WITHDRAWN.value, "actor": SYSTEM_ACTOR, "reason": reason})


def prune_finished(settings: Settings, *, now: datetime | None = None) -> list[str]:
    """Delete the checkpoints of threads that finished `checkpoint_retention_days` ago or more;
    return the thread ids deleted.

    A finished approval thread (executed, rejected, expired) is never read again: a later click
    is refused by the store before any thread resumes, and `resume_thread` would rebuild a
    missing thread from the store anyway. A thread that has not finished (paused in `wait`, or
    cut off after a decision) is never deleted, however old: it is someone's approval. Threads
    with any other id are sweep threads from before sweeps stopped being checkpointed; they
    never paused and nothing resumes them.
    """
    if pg_conninfo(settings.database_url) is None and not settings.checkpoint_path.exists():
        return []  # no approval ever waited here: do not create the file just to look
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=settings.checkpoint_retention_days)
    removed: list[str] = []
    with open_checkpointer(settings) as saver:
        graph = build_approval_graph(saver)
        for thread_id in thread_ids(saver):
            cfg = {"configurable": {"thread_id": thread_id}}
            if thread_id.startswith(THREAD_PREFIX):
                snapshot = graph.get_state(cfg)
                if snapshot.next or snapshot.interrupts:
                    continue
                written = snapshot.created_at
            else:
                latest = saver.get_tuple(cfg)
                written = latest.checkpoint["ts"] if latest is not None else None
            if written is not None and datetime.fromisoformat(written) <= cutoff:
                saver.delete_thread(thread_id)
                removed.append(thread_id)
    if removed:
        log.info("checkpoints of finished threads deleted",
                 extra={"threads": len(removed), "retention_days": settings.checkpoint_retention_days})
    return removed
