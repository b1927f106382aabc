"""Alembic migrations build exactly the schema the ORM declares."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import condaops.reconciler.state.packages  # noqa: F401  (registers build_packages)
from condaops.reconciler.state.db import make_engine, migrate
from condaops.reconciler.state.schema import Base


def test_migrations_match_the_models(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    migrate(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata)
    assert diff == []
    engine.dispose()
