"""build_packages: the package index (locked packages of every build)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21

One row per locked package per platform of a build, written once by the recorder when
the build finishes (``condaops.reconciler.state.packages.record_build_packages``).
Builds are immutable, so rows are never updated. The web search ("which environments
have openssl 3.3?") reads it instead of every build's pixi.lock.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "build_packages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("build_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("manager", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("build", sa.String(length=256), nullable=True),
        sa.Column("build_number", sa.Integer(), nullable=True),
        sa.Column("channel", sa.Text(), nullable=True),
        sa.Column("subdir", sa.String(length=32), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["build_id"], ["builds.id"], name="fk_build_packages_build", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("build_packages", schema=None) as batch_op:
        batch_op.create_index("ix_build_packages_build", ["build_id", "platform"], unique=False)
        batch_op.create_index("ix_build_packages_name", ["name", "version"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("build_packages", schema=None) as batch_op:
        batch_op.drop_index("ix_build_packages_name")
        batch_op.drop_index("ix_build_packages_build")
    op.drop_table("build_packages")
