"""Alembic environment: runs against the connection condaops hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

import condaops.reconciler.state.packages  # noqa: F401  (registers build_packages on Base.metadata)
from condaops.reconciler.state.schema import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = config.attributes["engine"]
        with engine.begin() as conn:
            _configure(conn)
        return
    _configure(connection)


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite needs batch mode for ALTERs
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
