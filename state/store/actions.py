"""Actions: the record of each planned remediation, its claim before a cloud call, its outcome.

Every change of an action's status goes through `move` (one `UPDATE ... WHERE status IN
(sources)` built from the lifecycle table in state/lifecycle.py), so retries, double clicks and
replicas cannot both win, and no status changes along an edge the table does not list.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from costwarden.state import lifecycle
from costwarden.state.clock import utcnow
from costwarden.state.domain import PlannedAction
from costwarden.state.lifecycle import SYSTEM_ACTOR, ActionStatus, IllegalTransition, Transition
from costwarden.state.models import ActionRow, ApprovalRow, DecisionRow, ProtectionRow
from costwarden.state.store.db import Database

S = ActionStatus


def move(s: Session, action_id: str, transition: Transition, *, to: str | None = None,
         only_from: tuple[str, ...] | None = None, **values: Any) -> bool:
    """Apply one lifecycle transition in session `s`; False when the action is not in a status the
    transition starts from (someone else moved it first). `only_from` narrows the sources."""
    target = lifecycle.target(transition, to)
    srcs = lifecycle.sources(transition)
    if only_from is not None:
        stray = set(only_from) - set(srcs)
        if stray:
            raise IllegalTransition(action_id, transition, ", ".join(sorted(stray)), target)
        srcs = tuple(only_from)
    values.setdefault("updated_at", utcnow())
    res = s.execute(update(ActionRow).where(ActionRow.id == action_id, ActionRow.status.in_(srcs))
                    .values(status=str(target), **values))
    return res.rowcount == 1


def must_move(s: Session, action_id: str, transition: Transition, **kw: Any) -> None:
    """`move`, or IllegalTransition naming the status the action is really in."""
    if not move(s, action_id, transition, **kw):
        current = s.scalar(select(ActionRow.status).where(ActionRow.id == action_id))
        raise IllegalTransition(action_id, transition, current, kw.get("to"))


class ActionRecords(Database):
    def add_action(self, run_id: str, a: PlannedAction, *, policy_hash: str) -> None:
        """Record a planned action together with the guard's decision, in one transaction."""
        kind = Transition.REQUEST_APPROVAL if a.status == S.AWAITING_APPROVAL else Transition.PLAN
        status = lifecycle.check(a.id, kind, None, a.status)
        with self.session() as s:
            s.add(ActionRow(
                id=a.id, run_id=run_id, finding_id=a.finding_id, policy=a.policy, action=a.action, tool=a.tool,
                args=a.args, resource_key=a.resource_key, decision=str(a.decision), reason=a.reason,
                status=str(status), idempotency_key=a.id,
                projected_monthly_savings_usd=a.projected_monthly_savings_usd,
            ))
            s.add(DecisionRow(run_id=run_id, action_id=a.id, policy=a.policy, policy_hash=policy_hash,
                              stage="guard", decision=str(a.decision), reason=a.reason,
                              detail={"tool": a.tool, "args": a.args}))

    def get_action(self, action_id: str) -> ActionRow | None:
        with self.session() as s:
            return s.get(ActionRow, action_id)

    def actions_for_run(self, run_id: str) -> list[ActionRow]:
        with self.session() as s:
            return list(s.scalars(select(ActionRow).where(ActionRow.run_id == run_id).order_by(ActionRow.created_at)))

    def claim_action(self, action_id: str, *, from_statuses: tuple[str, ...] | None = None,
                     before_state: dict[str, Any] | None, run_id: str | None, policy: str, policy_hash: str,
                     actor: str = SYSTEM_ACTOR) -> bool:
        """Atomically move an action to `pending` before its cloud call.

        Only one caller can win (`UPDATE ... WHERE status IN (...)`), which is what makes
        execution idempotent across retries, double clicks and replicas.
        """
        with self.session() as s:
            won = move(s, action_id, Transition.CLAIM, only_from=from_statuses, before_state=before_state)
            s.add(DecisionRow(run_id=run_id, action_id=action_id, policy=policy, policy_hash=policy_hash,
                              stage="execute", decision="claimed" if won else "already-claimed", actor=actor,
                              reason="action written as pending before the cloud call" if won
                              else "action was not in a claimable state; nothing executed",
                              detail={"before": before_state}))
            return won

    def complete_action(self, action_id: str, *, ok: bool, after_state: dict[str, Any] | None, error: str | None,
                        run_id: str | None, policy: str, policy_hash: str) -> None:
        """Record a claimed action's outcome; IllegalTransition if it was not claimed (`pending`)."""
        with self.session() as s:
            must_move(s, action_id, Transition.COMPLETE if ok else Transition.FAIL,
                      after_state=after_state, error=error)
            s.add(DecisionRow(run_id=run_id, action_id=action_id, policy=policy, policy_hash=policy_hash,
                              stage="verify", decision=S.DONE if ok else S.FAILED,
                              reason=error or "new state verified", detail={"after": after_state}))

    def withdraw_action(self, action_id: str, *, reason: str, run_id: str | None = None, policy: str | None = None,
                        stage: str = "reconcile") -> bool:
        """Withdraw an approved, unclaimed action that may no longer run; False if it was claimed
        (or settled) meanwhile. The reason goes to the decision log."""
        with self.session() as s:
            if not move(s, action_id, Transition.WITHDRAW):
                return False
            s.add(DecisionRow(run_id=run_id, action_id=action_id, policy=policy, stage=stage,
                              decision=S.WITHDRAWN, reason=reason))
            return True

    def replan_action(self, action_id: str, *, reason: str, run_id: str | None = None, policy: str | None = None,
                      detail: dict[str, Any] | None = None) -> bool:
        """A claimed action found not applied after a restart: `interrupted`, so the next sweep
        plans it again under a new id through the guard."""
        with self.session() as s:
            if not move(s, action_id, Transition.REPLAN, only_from=(S.PENDING,)):
                return False
            s.add(DecisionRow(run_id=run_id, action_id=action_id, policy=policy, stage="reconcile",
                              decision=S.INTERRUPTED, reason=reason, detail=detail))
            return True

    def release_claim(self, action_id: str, *, reason: str, run_id: str | None = None, policy: str | None = None,
                      detail: dict[str, Any] | None = None) -> bool:
        """A claimed action a person approved, found not applied after a restart: back to `approved`,
        so the approval is not lost; only one caller wins, and the next claim is atomic again."""
        with self.session() as s:
            if not move(s, action_id, Transition.RELEASE):
                return False
            s.add(DecisionRow(run_id=run_id, action_id=action_id, policy=policy, stage="reconcile",
                              decision="released", reason=reason, detail=detail))
            return True

    def set_action_status(self, action_id: str, status: str) -> None:
        """Move an action to `status` along the one transition the table has for it (else
        IllegalTransition): for operators and tests; the engine names its transitions."""
        with self.session() as s:
            current = s.scalar(select(ActionRow.status).where(ActionRow.id == action_id))
            transition = lifecycle.transition_between(current, status)
            if transition is None:
                raise IllegalTransition(action_id, None, current, status)
            must_move(s, action_id, transition, to=status, only_from=(current,))

    def recent_actions_on(self, resource_key: str, since: datetime) -> list[ActionRow]:
        """Actions that block a new one on this resource: any waiting for a human or in flight, an
        approved one while its approval window is open (after that reconcile withdraws it), and
        any approved or completed within the cooldown."""
        now = utcnow()
        with self.read_session() as s:
            return list(s.scalars(
                select(ActionRow).outerjoin(ApprovalRow, ApprovalRow.action_id == ActionRow.id).where(
                    ActionRow.resource_key == resource_key,
                    or_(ActionRow.status.in_((S.AWAITING_APPROVAL, S.PENDING)),
                        and_(ActionRow.status == S.APPROVED,
                             or_(ActionRow.updated_at >= since, ApprovalRow.expires_at > now)),
                        and_(ActionRow.status == S.DONE, ActionRow.updated_at >= since)))))

    def actions_in_limbo(self) -> list[ActionRow]:
        """Actions written as pending whose completion was never recorded (a crash in between)."""
        with self.session() as s:
            return list(s.scalars(select(ActionRow).where(ActionRow.status == S.PENDING)))

    def approved_unclaimed(self) -> list[tuple[ActionRow, ApprovalRow]]:
        """Approved actions nobody claimed (the process died between the vote and the claim)."""
        with self.session() as s:
            rows = s.execute(select(ActionRow, ApprovalRow).join(ApprovalRow, ApprovalRow.action_id == ActionRow.id)
                             .where(ActionRow.status == S.APPROVED).order_by(ActionRow.updated_at))
            return [(a, b) for a, b in rows]

    # --- protections ------------------------------------------------------------------------
    def protect(self, resource_key: str, *, actor: str, reason: str) -> bool:
        with self.session() as s:
            if s.get(ProtectionRow, resource_key) is not None:
                return False
            s.add(ProtectionRow(resource_key=resource_key, actor=actor, reason=reason))
            s.add(DecisionRow(stage="protect", decision="protected", actor=actor, reason=reason,
                              detail={"resource": resource_key}))
            return True

    def protected_keys(self) -> set[str]:
        with self.read_session() as s:
            return set(s.scalars(select(ProtectionRow.resource_key)))
