"""The real PostgreSQL on 127.0.0.1:5432 (trust auth): skip when it is not there, fail on CI."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.support.ci import skip_or_fail

PG_URL = os.environ.get("CONDAOPS_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def require_postgres() -> None:
    """Skip (or fail on CI, where it must be there) when PostgreSQL is not reachable."""
    try:
        engine = create_engine(PG_URL)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any connection problem means "not available"
        skip_or_fail(f"PostgreSQL not reachable at {PG_URL} (set CONDAOPS_TEST_POSTGRES): {exc}")


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty database for one test (several processes may share it); dropped after."""
    require_postgres()
    name = f"condaops_t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
