"""SQLAlchemy tables: runs, findings, actions, the decision audit trail, approvals, LLM calls.

The schema of record is state/migrations/ (Alembic); a change here needs a new revision there.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, Numeric, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from costwarden.state.clock import utcnow

MONEY = Numeric(18, 6)


class Base(DeclarativeBase):
    pass


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(20), default="running")  # running|done|partial|failed
    dry_run: Mapped[bool] = mapped_column(default=True)
    trigger: Mapped[str] = mapped_column(String(40), default="cli")
    policies: Mapped[list[str]] = mapped_column(JSON, default=list)
    errors: Mapped[list[str]] = mapped_column(JSON, default=list)
    monthly_waste_usd: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    projected_monthly_savings_usd: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    # the cloud API calls the run sent, [{"service", "operation", "count"}] as in the audit JSON;
    # NULL in rows written before migration 0003 (and while the run is still going)
    api_calls: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)


class FindingRow(Base):
    __tablename__ = "findings"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    fingerprint: Mapped[str] = mapped_column(String(40), index=True)
    policy: Mapped[str] = mapped_column(String(200))
    detector: Mapped[str] = mapped_column(String(100))
    provider: Mapped[str] = mapped_column(String(20))
    account: Mapped[str] = mapped_column(String(64))
    region: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(String(512))
    resource_type: Mapped[str] = mapped_column(String(100))
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    monthly_waste_usd: Mapped[Decimal] = mapped_column(MONEY)
    severity: Mapped[str] = mapped_column(String(20))
    confidence: Mapped[str] = mapped_column(String(20), default="high")
    rationale: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # the resource's tags (team, owner, env...), for the per-team digest; NULL in rows written before
    # the column existed (migration 0002 adds it to older databases)
    tags: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)


class ActionRow(Base):
    """One proposed or executed remediation. `idempotency_key` makes a second execution impossible."""

    __tablename__ = "actions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    finding_id: Mapped[str] = mapped_column(ForeignKey("findings.id"))
    policy: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    tool: Mapped[str] = mapped_column(String(200))
    args: Mapped[dict[str, Any]] = mapped_column(JSON)
    resource_key: Mapped[str] = mapped_column(String(700), index=True)
    decision: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")
    # an ActionStatus (state/lifecycle.py); it changes only along that module's transition table
    status: Mapped[str] = mapped_column(String(20), default="planned")
    idempotency_key: Mapped[str] = mapped_column(String(80), unique=True)
    projected_monthly_savings_usd: Mapped[Decimal] = mapped_column(MONEY)
    before_state: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after_state: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class DecisionRow(Base):
    """Append-only audit trail: every decision with its reason and the policy's content hash."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str | None] = mapped_column(String(40), index=True)
    action_id: Mapped[str | None] = mapped_column(String(40), index=True)
    policy: Mapped[str | None] = mapped_column(String(200))
    policy_hash: Mapped[str | None] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(40))  # guard | execute | verify | approval | run
    decision: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(200), default="costwarden")
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApprovalRow(Base):
    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    action_id: Mapped[str] = mapped_column(ForeignKey("actions.id"), unique=True)
    policy: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending|approved|rejected|expired
    required: Mapped[int] = mapped_column(Integer, default=1)  # distinct approvers needed
    votes: Mapped[list[str]] = mapped_column(JSON, default=list)  # who approved so far
    version: Mapped[int] = mapped_column(Integer, default=0)  # optimistic lock: every decision bumps it
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(String(200))
    channel: Mapped[str | None] = mapped_column(String(100))
    message_ts: Mapped[str | None] = mapped_column(String(40))


class ProtectionRow(Base):
    """Resources a human protected (Slack's "Protect this resource"): never acted on again."""

    __tablename__ = "protections"

    resource_key: Mapped[str] = mapped_column(String(700), primary_key=True)
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LlmCallRow(Base):
    __tablename__ = "llm_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str | None] = mapped_column(String(40), index=True)
    purpose: Mapped[str] = mapped_column(String(40))  # explain | classify | prioritise
    model: Mapped[str] = mapped_column(String(200))
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    ok: Mapped[bool] = mapped_column(default=True)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


Index("ix_actions_resource_status", ActionRow.resource_key, ActionRow.status)


class RealizedSavingsRow(Base):
    """What an executed action really saved, measured after it (policies/savings.py).

    A table of its own rather than columns on `actions` (it predates migrations, when `create_all`
    could add a missing table but never a missing column). A schema change now is a new revision in
    state/migrations/versions/; tests/test_migrations.py checks these models against the head.
    """

    __tablename__ = "realized_savings"

    action_id: Mapped[str] = mapped_column(ForeignKey("actions.id"), primary_key=True)
    method: Mapped[str] = mapped_column(String(20))  # state | billing
    hourly_usd: Mapped[Decimal] = mapped_column(MONEY)
    acted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    observed_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    held: Mapped[bool] = mapped_column(default=True)  # the change held at the latest observation
    last_state: Mapped[str] = mapped_column(String(60), default="")
    hours_observed: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    hours_held: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    realized_usd: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))  # dollars not spent so far
    realized_monthly_usd: Mapped[Decimal | None] = mapped_column(MONEY)  # the saving's monthly run-rate
    billing_monthly_usd: Mapped[Decimal | None] = mapped_column(MONEY)  # the same, from FOCUS rows, when any
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class RunPartRow(Base):
    """One (policy, account, region) part of a fanned-out run (agent/server/fanout.py): planned by the
    scheduler, swept by one worker job. Its key is the job's identity in the tick, so a retried or
    re-enqueued job finds its part `done` and sweeps nothing twice; the last part to finish closes
    the run with the parts' totals."""

    __tablename__ = "run_parts"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    policy: Mapped[str] = mapped_column(String(200), primary_key=True)
    account: Mapped[str] = mapped_column(String(40), primary_key=True)  # "*": a policy swept whole (not per account)
    region: Mapped[str] = mapped_column(String(40), primary_key=True)
    role_arn: Mapped[str | None] = mapped_column(String(300), nullable=True)  # None: the base credentials
    status: Mapped[str] = mapped_column(String(20), default="queued")  # queued|running|done|partial|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    errors: Mapped[list[str]] = mapped_column(JSON, default=list)
    monthly_waste_usd: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    projected_monthly_savings_usd: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    api_calls: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
