"""build leases (several workers), publish results, refresh requests from the web role

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("builds") as batch:
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("published_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("publish_error", sa.Text(), nullable=True))
    with op.batch_alter_table("preview_builds") as batch:
        batch.add_column(sa.Column("worker", sa.String(length=256), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("refresh_requested_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("refresh_requested_at")
    with op.batch_alter_table("preview_builds") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("worker")
    with op.batch_alter_table("builds") as batch:
        batch.drop_column("publish_error")
        batch.drop_column("published_at")
        batch.drop_column("lease_until")
