"""change reviews: merge base and target, forge publication, reused previews

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("change_requests") as batch:
        batch.add_column(sa.Column("target_revision", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("reason", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("title", sa.Text(), nullable=True))
        batch.add_column(sa.Column("version", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("published_version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("comment_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("published_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("publish_error", sa.Text(), nullable=True))
    with op.batch_alter_table("preview_builds") as batch:
        batch.add_column(sa.Column("reused", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("preview_builds") as batch:
        batch.drop_column("reused")
    with op.batch_alter_table("change_requests") as batch:
        for name in (
            "publish_error",
            "published_at",
            "comment_id",
            "published_version",
            "version",
            "title",
            "reason",
            "target_revision",
        ):
            batch.drop_column(name)
