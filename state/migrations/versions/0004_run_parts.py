"""run_parts: the (policy, account, region) parts of a run fanned out to worker jobs.

A new table: runs swept in one process have no parts.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_parts",
        sa.Column("run_id", sa.String(40), sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("policy", sa.String(200), primary_key=True),
        sa.Column("account", sa.String(40), primary_key=True),
        sa.Column("region", sa.String(40), primary_key=True),
        sa.Column("role_arn", sa.String(300), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(200), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("monthly_waste_usd", sa.Numeric(18, 6), nullable=False),
        sa.Column("projected_monthly_savings_usd", sa.Numeric(18, 6), nullable=False),
        sa.Column("api_calls", sa.JSON(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("run_parts")
