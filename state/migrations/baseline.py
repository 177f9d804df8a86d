"""The schema of the last release before migrations existed: revision 0001, frozen.

A copy, not an import of state/models.py: the models move on with every migration, while this
is what `create_all` of that release built and what databases it created still hold. Never edit
it; change the schema in a new revision instead. The store also uses it to complete a database
from before Alembic, whose release created missing tables at every start (state/migrate.py).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
)

_MONEY = Numeric(18, 6)


def _ts(name: str, nullable: bool = False) -> Column:
    return Column(name, DateTime(timezone=True), nullable=nullable)


def baseline_metadata() -> MetaData:
    """A fresh MetaData holding the eight tables of revision 0001 (findings without `tags`)."""
    md = MetaData()
    Table("runs", md,
          Column("id", String(40), primary_key=True),
          _ts("started_at"), _ts("finished_at", True),
          Column("status", String(20), nullable=False),
          Column("dry_run", Boolean, nullable=False),
          Column("trigger", String(40), nullable=False),
          Column("policies", JSON, nullable=False),
          Column("errors", JSON, nullable=False),
          Column("monthly_waste_usd", _MONEY, nullable=False),
          Column("projected_monthly_savings_usd", _MONEY, nullable=False))
    Table("findings", md,
          Column("id", String(40), primary_key=True),
          Column("run_id", String(40), ForeignKey("runs.id"), nullable=False, index=True),
          Column("fingerprint", String(40), nullable=False, index=True),
          Column("policy", String(200), nullable=False),
          Column("detector", String(100), nullable=False),
          Column("provider", String(20), nullable=False),
          Column("account", String(64), nullable=False),
          Column("region", String(64), nullable=False),
          Column("resource_id", String(512), nullable=False),
          Column("resource_type", String(100), nullable=False),
          Column("evidence", JSON, nullable=False),
          Column("monthly_waste_usd", _MONEY, nullable=False),
          Column("severity", String(20), nullable=False),
          Column("confidence", String(20), nullable=False),
          Column("rationale", Text, nullable=False),
          _ts("created_at"))
    actions = Table("actions", md,
                    Column("id", String(40), primary_key=True),
                    Column("run_id", String(40), ForeignKey("runs.id"), nullable=False, index=True),
                    Column("finding_id", String(40), ForeignKey("findings.id"), nullable=False),
                    Column("policy", String(200), nullable=False),
                    Column("action", String(100), nullable=False),
                    Column("tool", String(200), nullable=False),
                    Column("args", JSON, nullable=False),
                    Column("resource_key", String(700), nullable=False, index=True),
                    Column("decision", String(20), nullable=False),
                    Column("reason", Text, nullable=False),
                    Column("status", String(20), nullable=False),
                    Column("idempotency_key", String(80), nullable=False, unique=True),
                    Column("projected_monthly_savings_usd", _MONEY, nullable=False),
                    Column("before_state", JSON), Column("after_state", JSON), Column("error", Text),
                    _ts("created_at"), _ts("updated_at"))
    Index("ix_actions_resource_status", actions.c.resource_key, actions.c.status)
    Table("decisions", md,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("run_id", String(40), index=True),
          Column("action_id", String(40), index=True),
          Column("policy", String(200)),
          Column("policy_hash", String(64)),
          Column("stage", String(40), nullable=False),
          Column("decision", String(40), nullable=False),
          Column("reason", Text, nullable=False),
          Column("actor", String(200), nullable=False),
          Column("detail", JSON),
          _ts("created_at"))
    Table("approvals", md,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("action_id", String(40), ForeignKey("actions.id"), nullable=False, unique=True),
          Column("policy", String(200), nullable=False),
          Column("status", String(20), nullable=False),
          Column("required", Integer, nullable=False),
          Column("votes", JSON, nullable=False),
          Column("version", Integer, nullable=False),
          _ts("requested_at"), _ts("expires_at", True), _ts("decided_at", True),
          Column("decided_by", String(200)),
          Column("channel", String(100)),
          Column("message_ts", String(40)))
    Table("protections", md,
          Column("resource_key", String(700), primary_key=True),
          Column("actor", String(200), nullable=False),
          Column("reason", Text, nullable=False),
          _ts("created_at"))
    Table("llm_calls", md,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("run_id", String(40), index=True),
          Column("purpose", String(40), nullable=False),
          Column("model", String(200), nullable=False),
          Column("input_tokens", Integer, nullable=False),
          Column("output_tokens", Integer, nullable=False),
          Column("cost_usd", _MONEY, nullable=False),
          Column("latency_ms", Integer, nullable=False),
          Column("ok", Boolean, nullable=False),
          Column("error", Text),
          _ts("created_at"))
    Table("realized_savings", md,
          Column("action_id", String(40), ForeignKey("actions.id"), primary_key=True),
          Column("method", String(20), nullable=False),
          Column("hourly_usd", _MONEY, nullable=False),
          _ts("acted_at"), _ts("observed_until"),
          Column("held", Boolean, nullable=False),
          Column("last_state", String(60), nullable=False),
          Column("hours_observed", _MONEY, nullable=False),
          Column("hours_held", _MONEY, nullable=False),
          Column("realized_usd", _MONEY, nullable=False),
          Column("realized_monthly_usd", _MONEY),
          Column("billing_monthly_usd", _MONEY),
          _ts("updated_at"))
    return md
