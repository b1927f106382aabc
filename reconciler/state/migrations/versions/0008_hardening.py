"""hardening: publish claims, removed and retired environments, rejected files

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("builds") as batch:
        batch.add_column(sa.Column("publisher", sa.String(length=256), nullable=True))
        batch.add_column(sa.Column("publish_lease_until", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("environments") as batch:
        batch.add_column(sa.Column("retired_reason", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("retired_message", sa.Text(), nullable=True))
        batch.add_column(sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("removed_revision", sa.String(length=128), nullable=True))
    op.create_table(
        "rejected_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=256), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("revision", sa.String(length=128), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "path"),
    )


def downgrade() -> None:
    op.drop_table("rejected_files")
    with op.batch_alter_table("environments") as batch:
        batch.drop_column("removed_revision")
        batch.drop_column("removed_at")
        batch.drop_column("retired_message")
        batch.drop_column("retired_reason")
    with op.batch_alter_table("builds") as batch:
        batch.drop_column("publish_lease_until")
        batch.drop_column("publisher")
