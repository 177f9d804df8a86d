"""runs.api_calls: the cloud API calls each run sent, by service and operation.

Nullable: rows written before it read as "not counted".

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("api_calls", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:  # SQLite: batch mode copes with any version's ALTER limits
        batch.drop_column("api_calls")
