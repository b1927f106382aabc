"""builds: the policy each build is checked against (rules, hash) and its findings

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("builds") as batch:
        batch.add_column(sa.Column("policy", sa.Text(), nullable=True))
        batch.add_column(sa.Column("policy_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("policy_report", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("builds") as batch:
        batch.drop_column("policy_report")
        batch.drop_column("policy_hash")
        batch.drop_column("policy")
