"""Approval requests: the votes of the humans who decide, and expiry by the clock.

A vote and an expiry are different transitions (state/lifecycle.py). Each is one optimistic-locked
`UPDATE approvals ... WHERE status='pending' AND version=?` plus the action's own conditional
move in the same transaction, so concurrent clicks, replays, expiry checks and replicas cannot
both win. Expiry never casts a vote, and Costwarden never votes (`SYSTEM_ACTOR` is refused).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select, update

from costwarden.state.clock import utcnow
from costwarden.state.lifecycle import SYSTEM_ACTOR, ApprovalStatus, Transition, Vote
from costwarden.state.models import ActionRow, ApprovalRow, DecisionRow
from costwarden.state.store.actions import must_move
from costwarden.state.store.db import Database, as_utc

A = ApprovalStatus


def _utc(now: datetime | None) -> datetime:
    return (now or utcnow()).astimezone(timezone.utc)


class ApprovalRecords(Database):
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
                             .where(ApprovalRow.status == A.PENDING).order_by(ApprovalRow.requested_at))
            return [(a, b) for a, b in rows]

    def vote(self, action_id: str, *, actor: str, decision: str, now: datetime | None = None,
             snooze: timedelta | None = None, detail: dict[str, Any] | None = None) -> str:
        """Apply one human decision atomically; return what it did.

        approved | recorded (more approvers needed) | rejected | snoozed | expired | duplicate |
        already-<status> | unknown. `detail` (e.g. the transport a click came by) is kept on the
        decision row. Only the caller that gets `approved` may resume the action. A vote on a
        request whose window has closed expires it (the `expire` transition, not this vote).
        """
        if actor == SYSTEM_ACTOR:
            raise ValueError(f"{SYSTEM_ACTOR!r} never votes; only a person decides an approval")
        try:
            kind = Vote(decision)
        except ValueError:
            raise ValueError(f"unknown decision {decision!r} (approve, reject or snooze)") from None
        now = _utc(now)
        for _ in range(10):
            with self.session() as s:
                row = s.scalar(select(ApprovalRow).where(ApprovalRow.action_id == action_id))
                if row is None:
                    return "unknown"
                if row.status != A.PENDING:
                    return f"already-{row.status}"
                due = row.expires_at is not None and as_utc(row.expires_at) <= now
                if not due:
                    outcome = self._apply_vote(s, row, actor, kind, now, snooze, detail)
                    if outcome is not None:
                        return outcome
                    continue  # another decision landed first: read again
            if due and self.expire(action_id, now=now, detail=detail):
                return "expired"
        return "conflict"

    @staticmethod
    def _apply_vote(s: Any, row: ApprovalRow, actor: str, kind: Vote, now: datetime, snooze: timedelta | None,
                    detail: dict[str, Any] | None) -> str | None:
        votes = list(row.votes or [])
        values: dict[str, Any] = {"version": row.version + 1}
        transition: Transition | None = None
        if kind is Vote.APPROVE:
            if actor in votes:
                return "duplicate"
            votes.append(actor)
            values["votes"] = votes
            outcome = "approved" if len(votes) >= row.required else "recorded"
            if outcome == "approved":
                transition = Transition.APPROVE
                values.update(status=A.APPROVED, decided_at=now, decided_by=", ".join(votes))
        elif kind is Vote.REJECT:
            outcome, transition = "rejected", Transition.REJECT
            values.update(status=A.REJECTED, decided_at=now, decided_by=actor)
        else:
            outcome = "snoozed"
            base = max(as_utc(row.expires_at), now) if row.expires_at else now
            values["expires_at"] = base + (snooze or timedelta(hours=24))
        if not s.execute(update(ApprovalRow).where(ApprovalRow.action_id == row.action_id,
                                                   ApprovalRow.status == A.PENDING,
                                                   ApprovalRow.version == row.version).values(**values)).rowcount:
            return None
        if transition is not None:
            must_move(s, row.action_id, transition, updated_at=now)
        reason = {"approved": f"approved by {', '.join(votes)}",
                  "recorded": f"approval {len(votes)} of {row.required} recorded",
                  "rejected": "rejected", "snoozed": f"snoozed until {values.get('expires_at')}"}[outcome]
        s.add(DecisionRow(action_id=row.action_id, policy=row.policy, stage="approval", decision=outcome,
                          actor=actor, reason=reason, detail=detail))
        return outcome

    def expire(self, action_id: str, *, now: datetime | None = None, detail: dict[str, Any] | None = None) -> bool:
        """Withdraw one pending request whose window has closed; True if this call expired it.

        `UPDATE ... WHERE status='pending' AND version=? AND expires_at <= now`: a snooze or a
        vote committed after the read wins, and the request is simply not expired.
        """
        now = _utc(now)
        with self.session() as s:
            row = s.scalar(select(ApprovalRow).where(ApprovalRow.action_id == action_id))
            if (row is None or row.status != A.PENDING or row.expires_at is None
                    or as_utc(row.expires_at) > now):
                return False
            if not s.execute(update(ApprovalRow).where(
                    ApprovalRow.action_id == action_id, ApprovalRow.status == A.PENDING,
                    ApprovalRow.version == row.version, ApprovalRow.expires_at <= now)
                    .values(status=A.EXPIRED, decided_at=now, version=row.version + 1)
                    .execution_options(synchronize_session=False)).rowcount:  # SQLite reads back naive times
                return False
            must_move(s, action_id, Transition.EXPIRE, updated_at=now)
            s.add(DecisionRow(action_id=action_id, policy=row.policy, stage="approval", decision="expired",
                              actor=SYSTEM_ACTOR, reason="the approval window closed with no decision; action withdrawn",
                              detail=detail))
            return True

    def expire_due(self, now: datetime | None = None) -> list[str]:
        """Expire every pending request whose window has closed; return their action ids."""
        now = _utc(now)
        with self.session() as s:
            due = [a for a, exp in s.execute(select(ApprovalRow.action_id, ApprovalRow.expires_at)
                                             .where(ApprovalRow.status == A.PENDING,
                                                    ApprovalRow.expires_at.is_not(None)))
                   if as_utc(exp) <= now]
        return [a for a in due if self.expire(a, now=now)]
