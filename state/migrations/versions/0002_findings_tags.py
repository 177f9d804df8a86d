"""findings.tags: the resource's tags (team, owner, env...) for the per-team digest.

Nullable: rows written before it read as untagged.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("findings", sa.Column("tags", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("findings") as batch:  # SQLite: batch mode copes with any version's ALTER limits
        batch.drop_column("tags")
