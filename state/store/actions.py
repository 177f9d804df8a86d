"""Actions and their approvals: the claim before a cloud call, the votes, the protections.

Every change of an action's status is one `UPDATE ... WHERE status IN (...)`, so retries, double
clicks and replicas cannot both win.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from costwarden.state.clock import utcnow
from costwarden.state.domain import PlannedAction
from costwarden.state.models import ActionRow, ApprovalRow, DecisionRow, ProtectionRow
from costwarden.state.store.db import Database, as_utc


class ActionRecords(Database):
    # --- actions ----------------------------------------------------------------------------
    def add_action(self, run_id: str, a: PlannedAction, *, policy_hash: str) -> None:
        """Record a planned action together with the guard's decision, in one transaction."""
        with self.session() as s:
            s.add(ActionRow(
                id=a.id, run_id=run_id, finding_id=a.finding_id, policy=a.policy, action=a.action, tool=a.tool,
                args=a.args, resource_key=a.resource_key, decision=a.decision, reason=a.reason, status=a.status,
                idempotency_key=a.id, projected_monthly_savings_usd=a.projected_monthly_savings_usd,
            ))
            s.add(DecisionRow(run_id=run_id, action_id=a.id, policy=a.policy, policy_hash=policy_hash,
                              stage="guard", decision=a.decision, reason=a.reason,
                              detail={"tool": a.tool, "args": a.args}))

    def get_action(self, action_id: str) -> ActionRow | None:
        with self.session() as s:
            return s.get(ActionRow, action_id)

    def actions_for_run(self, run_id: str) -> list[ActionRow]:
        with self.session() as s:
            return list(s.scalars(select(ActionRow).where(ActionRow.run_id == run_id).order_by(ActionRow.created_at)))

    def claim_action(self, action_id: str, *, from_statuses: tuple[str, ...], before_state: dict[str, Any] | None,
                     run_id: str | None, policy: str, policy_hash: str, actor: str = "costwarden") -> bool:
        """Atomically move an action to `pending` before its cloud call.

        Only one caller can win (`UPDATE ... WHERE status IN (...)`), which is what makes
        execution idempotent across retries, double clicks and replicas.
        """
        with self.session() as s:
            res = s.execute(update(ActionRow)
                            .where(ActionRow.id == action_id, ActionRow.status.in_(from_statuses))
                            .values(status="pending", before_state=before_state, updated_at=utcnow()))
            won = res.rowcount == 1
            s.add(DecisionRow(run_id=run_id, action_id=action_id, policy=policy, policy_hash=policy_hash,
                              stage="execute", decision="claimed" if won else "already-claimed", actor=actor,
                              reason="action written as pending before the cloud call" if won
                              else "action was not in a claimable state; nothing executed",
                              detail={"before": before_state}))
            return won

    def complete_action(self, action_id: str, *, ok: bool, after_state: dict[str, Any] | None, error: str | None,
                        run_id: str | None, policy: str, policy_hash: str) -> None:
        with self.session() as s:
            s.execute(update(ActionRow).where(ActionRow.id == action_id)
                      .values(status="done" if ok else "failed", after_state=after_state, error=error,
                              updated_at=utcnow()))
            s.add(DecisionRow(run_id=run_id, action_id=action_id, policy=policy, policy_hash=policy_hash,
                              stage="verify", decision="done" if ok else "failed",
                              reason=error or "new state verified", detail={"after": after_state}))

    def set_action_status(self, action_id: str, status: str) -> None:
        with self.session() as s:
            s.execute(update(ActionRow).where(ActionRow.id == action_id).values(status=status, updated_at=utcnow()))

    def recent_actions_on(self, resource_key: str, since: datetime) -> list[ActionRow]:
        """Actions that block a new one on this resource: any still open (waiting for a human,
        approved, in flight), and any completed within the cooldown."""
        from sqlalchemy import and_, or_

        with self.session() as s:
            return list(s.scalars(select(ActionRow).where(
                ActionRow.resource_key == resource_key,
                or_(ActionRow.status.in_(("awaiting_approval", "approved", "pending")),
                    and_(ActionRow.status == "done", ActionRow.updated_at >= since)))))

    def actions_in_limbo(self) -> list[ActionRow]:
        """Actions written as pending whose completion was never recorded (a crash in between)."""
        with self.session() as s:
            return list(s.scalars(select(ActionRow).where(ActionRow.status == "pending")))

    # --- approvals --------------------------------------------------------------------------
    def request_approval(self, action_id: str, *, ttl: timedelta | None, policy: str = "", required: int = 1) -> None:
        with self.session() as s:
            now = utcnow()
            s.add(ApprovalRow(action_id=action_id, policy=policy, required=required, votes=[], requested_at=now,
                              expires_at=now + ttl if ttl else None))

    def set_approval_message(self, action_id: str, *, channel: str, ts: str) -> None:
        with self.session() as s:
            s.execute(update(ApprovalRow).where(ApprovalRow.action_id == action_id).values(channel=channel, message_ts=ts))

    def get_approval(self, action_id: str) -> tuple[ApprovalRow, ActionRow] | None:
        with self.session() as s:
            row = s.execute(select(ApprovalRow, ActionRow).join(ActionRow, ApprovalRow.action_id == ActionRow.id)
                            .where(ApprovalRow.action_id == action_id)).first()
            return (row[0], row[1]) if row else None

    def pending_approvals(self) -> list[tuple[ApprovalRow, ActionRow]]:
        with self.session() as s:
            rows = s.execute(select(ApprovalRow, ActionRow).join(ActionRow, ApprovalRow.action_id == ActionRow.id)
                             .where(ApprovalRow.status == "pending").order_by(ApprovalRow.requested_at))
            return [(a, b) for a, b in rows]

    def vote(self, action_id: str, *, actor: str, decision: str, now: datetime | None = None,
             snooze: timedelta | None = None, detail: dict[str, Any] | None = None) -> str:
        """Apply one human decision atomically; return what it did.

        approved | recorded (more approvers needed) | rejected | snoozed | expired | duplicate |
        already-<status> | unknown. `detail` (e.g. the transport a click came by) is kept on the
        decision row. Only the caller that gets `approved` may resume the action:
        the status change and the version bump happen in one `UPDATE ... WHERE status='pending'
        AND version=?`, so concurrent clicks, replays and replicas cannot both win.
        """
        now = now or utcnow()
        for _ in range(10):
            with self.session() as s:
                row = s.scalar(select(ApprovalRow).where(ApprovalRow.action_id == action_id))
                if row is None:
                    return "unknown"
                if row.status != "pending":
                    return f"already-{row.status}"
                guard = (ApprovalRow.action_id == action_id, ApprovalRow.status == "pending",
                         ApprovalRow.version == row.version)
                if row.expires_at is not None and as_utc(row.expires_at) <= now:
                    if s.execute(update(ApprovalRow).where(*guard).values(
                            status="expired", decided_at=now, version=row.version + 1)).rowcount:
                        s.execute(update(ActionRow).where(ActionRow.id == action_id,
                                                          ActionRow.status == "awaiting_approval")
                                  .values(status="expired", updated_at=now))
                        s.add(DecisionRow(action_id=action_id, policy=row.policy, stage="approval", decision="expired",
                                          actor=actor, reason="the approval window had closed; action withdrawn",
                                          detail=detail))
                        return "expired"
                    continue
                votes = list(row.votes or [])
                values: dict[str, Any] = {"version": row.version + 1}
                if decision == "approve":
                    if actor in votes:
                        return "duplicate"
                    votes.append(actor)
                    values["votes"] = votes
                    outcome = "approved" if len(votes) >= row.required else "recorded"
                    if outcome == "approved":
                        values.update(status="approved", decided_at=now, decided_by=", ".join(votes))
                elif decision == "reject":
                    outcome = "rejected"
                    values.update(status="rejected", decided_at=now, decided_by=actor)
                elif decision == "snooze":
                    outcome = "snoozed"
                    base = max(as_utc(row.expires_at), now) if row.expires_at else now
                    values["expires_at"] = base + (snooze or timedelta(hours=24))
                else:
                    raise ValueError(f"unknown decision {decision!r}")
                if not s.execute(update(ApprovalRow).where(*guard).values(**values)).rowcount:
                    continue  # another decision landed first: read again
                if outcome in ("approved", "rejected"):
                    s.execute(update(ActionRow).where(ActionRow.id == action_id, ActionRow.status == "awaiting_approval")
                              .values(status=outcome, updated_at=now))
                reason = {"approved": f"approved by {', '.join(votes)}",
                          "recorded": f"approval {len(votes)} of {row.required} recorded",
                          "rejected": "rejected", "snoozed": f"snoozed until {values.get('expires_at')}"}[outcome]
                s.add(DecisionRow(action_id=action_id, policy=row.policy, stage="approval", decision=outcome,
                                  actor=actor, reason=reason, detail=detail))
                return outcome
        return "conflict"

    def expire_due(self, now: datetime | None = None) -> list[str]:
        """Withdraw every pending approval whose window has closed; return their action ids."""
        now = now or utcnow()
        with self.session() as s:
            due = [a for a, exp in s.execute(select(ApprovalRow.action_id, ApprovalRow.expires_at)
                                             .where(ApprovalRow.status == "pending", ApprovalRow.expires_at.is_not(None)))
                   if as_utc(exp) <= now]
        return [a for a in due if self.vote(a, actor="costwarden", decision="approve", now=now) == "expired"]

    def protect(self, resource_key: str, *, actor: str, reason: str) -> bool:
        with self.session() as s:
            if s.get(ProtectionRow, resource_key) is not None:
                return False
            s.add(ProtectionRow(resource_key=resource_key, actor=actor, reason=reason))
            s.add(DecisionRow(stage="protect", decision="protected", actor=actor, reason=reason,
                              detail={"resource": resource_key}))
            return True

    def protected_keys(self) -> set[str]:
        with self.session() as s:
            return set(s.scalars(select(ProtectionRow.resource_key)))
