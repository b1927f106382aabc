"""Engine creation and schema migrations (Alembic) for the state DB.

Migrations run once at start (``migrate``); on PostgreSQL an advisory lock makes
concurrent starters wait for the first one instead of racing to create the schema.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from condaops.reconciler.state.readonly import (
    MIGRATIONS,
    StateMissing,
    StateUnavailable,
    head_revision,
    revision_problem,
)

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["MIGRATIONS", "StateMissing", "StateUnavailable", "head_revision", "make_engine", "migrate", "open_existing"]
_PG_LOCK_KEY = 0x636F6E64  # "cond": advisory lock id for migrations


def make_engine(url: str, *, create: bool = True) -> Engine:
    """An engine with sane defaults per backend (SQLite: WAL, busy timeout, FKs);
    ``create=False`` leaves a missing SQLite file's folder alone."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if create and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]  # the DB-API connection is typed object by SQLAlchemy's event
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine, *, also: Sequence[Callable[[Connection], None]] = ()) -> None:
    """Bring the schema to the newest revision (idempotent, safe to call at every start);
    then run ``also`` (other schemas to create, e.g. the scheduler's) in the same lock."""
    from alembic import command

    cfg = alembic_config(engine)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            try:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                conn.commit()
                for create in also:
                    create(conn)
                    conn.commit()
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                conn.commit()
        return
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        for create in also:
            create(conn)


def revision(engine: Engine) -> str | None:
    """The schema revision the database is at (None before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def open_existing(url: str, *, shown_as: str | None = None) -> Engine:
    """An engine on an existing state DB at this condaops' schema revision, for reading:
    no file, folder or table is created and nothing is migrated. ``StateUnavailable``
    says what is wrong and what to run; ``shown_as`` names the database in it."""
    parsed = make_url(url)
    where = shown_as or parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        if not Path(parsed.database).is_file():
            raise StateMissing(f"no state database at {where}")
    engine = make_engine(url, create=False)
    try:
        with engine.connect() as conn:
            found = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StateMissing(f"the state database at {where} has no condaops schema ({type(exc).__name__})") from exc
    problem = revision_problem(found, where)
    if problem is not None:
        engine.dispose()
        raise problem
    return engine
