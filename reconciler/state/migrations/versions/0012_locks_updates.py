"""locks and updates: committed lockfiles installed by builds and previews

Revision ID: 0012
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lock_contents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("digest"),
    )
    with op.batch_alter_table("builds") as batch:
        batch.add_column(sa.Column("lock_path", sa.Text(), nullable=True))
    with op.batch_alter_table("preview_builds") as batch:
        batch.add_column(sa.Column("lock_path", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("preview_builds") as batch:
        batch.drop_column("lock_path")
    with op.batch_alter_table("builds") as batch:
        batch.drop_column("lock_path")
    op.drop_table("lock_contents")
