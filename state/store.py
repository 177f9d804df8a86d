"""The store: one object through which every run, finding, action and decision is written.

Writes happen as the sweep goes (not at its end), each in its own short transaction, so a
crash at any point leaves a truthful record of what was decided and done.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from costwarden.state.domain import Finding, PlannedAction
from costwarden.state.errors import CostwardenError
from costwarden.state.migrate import SchemaError, ensure_schema
from costwarden.state.clock import utcnow
from costwarden.state.models import ActionRow, ApprovalRow, DecisionRow, FindingRow, LlmCallRow, ProtectionRow, Run


class StoreError(CostwardenError, RuntimeError):
    """The database cannot be opened or written; the message names the URL (without secrets)."""


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for messages
        return "<unparseable database url>"


def _journal_wal(cur: Any, patience_s: float = 5.0) -> None:
    """Switch to WAL, retrying: two processes opening a new file at once both try to switch, and
    SQLite answers "database is locked" at once there (the busy timeout does not apply)."""
    import sqlite3
    import time

    deadline = time.monotonic() + patience_s
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _enable_sqlite_wal(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=5000")
        _journal_wal(cur)
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        try:
            if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(url)
            if self.engine.dialect.name == "sqlite":
                _enable_sqlite_wal(self.engine)
            self.migration = ensure_schema(self.engine)  # at head: one SELECT, no Alembic import
        except SchemaError as exc:
            raise SchemaError(f"database {_safe_url(url)}: {exc}") from None
        except ImportError as exc:
            raise StoreError(f"cannot open database {_safe_url(url)}: driver not installed ({exc})") from None
        except (SQLAlchemyError, OSError) as exc:
            detail = getattr(exc, "orig", None) or exc
            raise StoreError(f"cannot open database {_safe_url(url)}: {str(detail).splitlines()[0]}") from None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as s:
            yield s

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            return True
        except SQLAlchemyError:
            return False

    # --- runs -------------------------------------------------------------------------------
    def start_run(self, run_id: str, *, dry_run: bool, policies: list[str], trigger: str) -> None:
        with self.session() as s:
            s.add(Run(id=run_id, dry_run=dry_run, policies=policies, trigger=trigger))
            s.add(DecisionRow(run_id=run_id, stage="run", decision="started",
                              reason=f"{'dry-run' if dry_run else 'live'} sweep of {len(policies)} policies",
                              detail={"trigger": trigger}))

    def finish_run(self, run_id: str, *, status: str, errors: list[str],
                   monthly_waste: Decimal, projected_savings: Decimal) -> None:
        with self.session() as s:
            run = s.get(Run, run_id)
            if run is None:
                raise StoreError(f"unknown run {run_id}")
            run.status = status
            run.errors = list(errors)
            run.finished_at = utcnow()
            run.monthly_waste_usd = monthly_waste
            run.projected_monthly_savings_usd = projected_savings
            s.add(DecisionRow(run_id=run_id, stage="run", decision=status,
                              reason="; ".join(errors)[:2000] if errors else "sweep complete"))

    def get_run(self, run_id: str) -> Run | None:
        with self.session() as s:
            return s.get(Run, run_id)

    def list_runs(self, limit: int = 20) -> list[Run]:
        with self.session() as s:
            return list(s.scalars(select(Run).order_by(Run.started_at.desc()).limit(limit)))

    def interrupt_stale_runs(self) -> int:
        """Runs still `running` at start-up were cut off by a crash or a kill: say so."""
        with self.session() as s:
            stale = list(s.scalars(select(Run).where(Run.status == "running")))
            for run in stale:
                run.status = "interrupted"
                run.finished_at = utcnow()
                s.add(DecisionRow(run_id=run.id, stage="run", decision="interrupted",
                                  reason="the process stopped before the sweep finished"))
                # auto actions it never reached: the next sweep re-plans them under new ids
                s.execute(update(ActionRow).where(ActionRow.run_id == run.id, ActionRow.status == "planned")
                          .values(status="interrupted", updated_at=utcnow()))
            return len(stale)

    def latest_runs_by_policy(self, scan: int = 500) -> dict[str, Run]:
        """The most recent finished run that covered each policy."""
        latest: dict[str, Run] = {}
        with self.session() as s:
            for run in s.scalars(select(Run).where(Run.status.in_(("done", "partial")))
                                 .order_by(Run.started_at.desc()).limit(scan)):
                for name in run.policies or []:
                    latest.setdefault(name, run)
        return latest

    def metrics_snapshot(self) -> dict[str, Any]:
        """Aggregates for /metrics, read at scrape time so every replica reports the same truth."""
        from sqlalchemy import func

        latest = self.latest_runs_by_policy()
        with self.session() as s:
            findings: list[tuple[str, str, int, Decimal]] = []
            for policy, run in latest.items():
                rows = s.execute(select(FindingRow.detector, func.count(), func.coalesce(func.sum(FindingRow.monthly_waste_usd), 0))
                                 .where(FindingRow.run_id == run.id, FindingRow.policy == policy)
                                 .group_by(FindingRow.detector))
                findings.extend((policy, d, n, Decimal(str(w))) for d, n, w in rows)
            actions = [(d, st, n) for d, st, n in s.execute(
                select(ActionRow.decision, ActionRow.status, func.count()).group_by(ActionRow.decision, ActionRow.status))]
            projected = s.execute(select(func.coalesce(func.sum(ActionRow.projected_monthly_savings_usd), 0))
                                  .where(ActionRow.status == "done")).scalar()
            pending = s.execute(select(func.count()).select_from(ApprovalRow).where(ApprovalRow.status == "pending")).scalar()
            runs = [(st, n) for st, n in s.execute(select(Run.status, func.count()).group_by(Run.status))]
            llm = s.execute(select(LlmCallRow.model, func.sum(LlmCallRow.input_tokens), func.sum(LlmCallRow.output_tokens),
                                   func.sum(LlmCallRow.cost_usd)).group_by(LlmCallRow.model)).all()
        durations = {p: (r.finished_at - r.started_at).total_seconds() for p, r in latest.items()
                     if r.finished_at and r.started_at}
        return {"findings": findings, "actions": actions, "executed_projected_savings": Decimal(str(projected or 0)),
                "pending_approvals": int(pending or 0), "runs": runs, "durations": durations,
                "llm": [(m, int(i or 0), int(o or 0), Decimal(str(c or 0))) for m, i, o, c in llm]}

    # --- findings ---------------------------------------------------------------------------
    def add_findings(self, run_id: str, findings: Iterable[Finding]) -> None:
        with self.session() as s:
            for f in findings:
                s.add(FindingRow(
                    id=f.id, run_id=run_id, fingerprint=f.fingerprint, policy=f.policy, detector=f.detector,
                    provider=f.provider, account=f.account, region=f.region, resource_id=f.resource_id,
                    resource_type=f.resource_type, evidence=f.evidence, monthly_waste_usd=f.monthly_waste_usd,
                    severity=f.severity, confidence=f.confidence, rationale=f.rationale, tags=dict(f.tags or {}),
                ))

    def set_rationales(self, rationales: dict[str, str]) -> None:
        with self.session() as s:
            for fid, text in rationales.items():
                s.execute(update(FindingRow).where(FindingRow.id == fid).values(rationale=text))

    def get_finding(self, finding_id: str) -> FindingRow | None:
        with self.session() as s:
            return s.get(FindingRow, finding_id)

    def findings_for_run(self, run_id: str) -> list[FindingRow]:
        with self.session() as s:
            return list(s.scalars(select(FindingRow).where(FindingRow.run_id == run_id).order_by(FindingRow.monthly_waste_usd.desc())))

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
                if row.expires_at is not None and _utc(row.expires_at) <= now:
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
                    base = max(_utc(row.expires_at), now) if row.expires_at else now
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
                   if _utc(exp) <= now]
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

    # --- decisions and llm calls ------------------------------------------------------------
    def append_decision(self, *, stage: str, decision: str, reason: str, run_id: str | None = None,
                        action_id: str | None = None, policy: str | None = None, policy_hash: str | None = None,
                        actor: str = "costwarden", detail: dict[str, Any] | None = None) -> None:
        with self.session() as s:
            s.add(DecisionRow(run_id=run_id, action_id=action_id, policy=policy, policy_hash=policy_hash,
                              stage=stage, decision=decision, reason=reason, actor=actor, detail=detail))

    def decisions(self, *, run_id: str | None = None, action_id: str | None = None) -> list[DecisionRow]:
        q = select(DecisionRow).order_by(DecisionRow.id)
        if run_id:
            q = q.where(DecisionRow.run_id == run_id)
        if action_id:
            q = q.where(DecisionRow.action_id == action_id)
        with self.session() as s:
            return list(s.scalars(q))

    def llm_usage(self, run_id: str) -> tuple[int, Decimal]:
        """The agent's own LLM calls and their cost in one run."""
        from sqlalchemy import func

        with self.session() as s:
            n, cost = s.execute(select(func.count(), func.coalesce(func.sum(LlmCallRow.cost_usd), 0))
                                .where(LlmCallRow.run_id == run_id)).one()
        return int(n), Decimal(str(cost))

    def last_decision_at(self, *, stage: str, decision: str) -> datetime | None:
        from sqlalchemy import func

        with self.session() as s:
            at = s.scalar(select(func.max(DecisionRow.created_at)).where(DecisionRow.stage == stage,
                                                                      DecisionRow.decision == decision))
        return _utc(at) if at is not None else None

    def record_llm_call(self, *, run_id: str | None, purpose: str, model: str, input_tokens: int,
                        output_tokens: int, cost_usd: Decimal, latency_ms: int, ok: bool,
                        error: str | None = None) -> None:
        with self.session() as s:
            s.add(LlmCallRow(run_id=run_id, purpose=purpose, model=model, input_tokens=input_tokens,
                             output_tokens=output_tokens, cost_usd=cost_usd, latency_ms=latency_ms, ok=ok, error=error))

    # --- realized savings and windows (reports) ----------------------------------------------
    def executed_actions(self, since: datetime | None = None) -> list[tuple[ActionRow, FindingRow | None, datetime]]:
        """Actions executed (`done`), with their finding and when the change was verified.

        The verify decision's time is the moment the change was proven; the action's own
        `updated_at` stands in for rows settled without one.
        """
        from sqlalchemy import func

        from costwarden.state.models import RealizedSavingsRow  # noqa: F401 - the table must exist before reports read it

        with self.session() as s:
            verified = dict(s.execute(select(DecisionRow.action_id, func.max(DecisionRow.created_at))
                                      .where(DecisionRow.stage == "verify", DecisionRow.decision == "done")
                                      .group_by(DecisionRow.action_id)).all())
            q = (select(ActionRow, FindingRow).join(FindingRow, ActionRow.finding_id == FindingRow.id, isouter=True)
                 .where(ActionRow.status == "done").order_by(ActionRow.created_at))
            if since is not None:
                q = q.where(ActionRow.updated_at >= since)
            return [(a, f, _utc(verified.get(a.id) or a.updated_at)) for a, f in s.execute(q)]

    def get_realized(self, action_id: str) -> Any:
        from costwarden.state.models import RealizedSavingsRow

        with self.session() as s:
            return s.get(RealizedSavingsRow, action_id)

    def save_realized(self, action_id: str, **values: Any) -> None:
        """Insert or update the realized-savings measurement of one action."""
        from costwarden.state.models import RealizedSavingsRow

        with self.session() as s:
            row = s.get(RealizedSavingsRow, action_id)
            if row is None:
                s.add(RealizedSavingsRow(action_id=action_id, **values))
            else:
                for k, v in values.items():
                    setattr(row, k, v)

    def realized_totals(self) -> dict[str, Decimal]:
        """Projected vs realized monthly savings of every executed action, for /metrics."""
        from sqlalchemy import func

        from costwarden.state.models import RealizedSavingsRow

        with self.session() as s:
            projected, realized, to_date, measured = s.execute(
                select(func.coalesce(func.sum(ActionRow.projected_monthly_savings_usd), 0),
                       func.coalesce(func.sum(RealizedSavingsRow.realized_monthly_usd), 0),
                       func.coalesce(func.sum(RealizedSavingsRow.realized_usd), 0),
                       func.count(RealizedSavingsRow.action_id))
                .select_from(ActionRow)
                .join(RealizedSavingsRow, RealizedSavingsRow.action_id == ActionRow.id, isouter=True)
                .where(ActionRow.status == "done")).one()
        return {"projected_monthly_usd": Decimal(str(projected)), "realized_monthly_usd": Decimal(str(realized)),
                "realized_to_date_usd": Decimal(str(to_date)), "measured_actions": Decimal(int(measured))}

    def window(self, since: datetime) -> dict[str, list[Any]]:
        """Runs started, findings found and actions planned since `since` (any window, not one run)."""
        from costwarden.state.models import RealizedSavingsRow

        with self.session() as s:
            runs = list(s.scalars(select(Run).where(Run.started_at >= since).order_by(Run.started_at)))
            findings = list(s.scalars(select(FindingRow).where(FindingRow.created_at >= since)
                                      .order_by(FindingRow.created_at)))
            actions = list(s.scalars(select(ActionRow).where(ActionRow.created_at >= since)
                                     .order_by(ActionRow.created_at)))
            realized = list(s.scalars(select(RealizedSavingsRow)
                                      .join(ActionRow, RealizedSavingsRow.action_id == ActionRow.id)
                                      .where(ActionRow.created_at >= since)))
        return {"runs": runs, "findings": findings, "actions": actions, "realized": realized}

    def close(self) -> None:
        self.engine.dispose()


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything this store writes is UTC."""
    from datetime import timezone

    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def since_hours(hours: float) -> datetime:
    return utcnow() - timedelta(hours=hours)
