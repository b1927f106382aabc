"""Write transactions of the state DB, and the environment stamps they move on their own.

Every recorder opens its transactions with ``recording(engine)``. Readers that keep
something rendered from an environment (the status site's page cache, the reconcile
pass's copy of the recorded state) compare ``Environment.state_version`` instead of
reloading: so every write to an environment, its builds, their files or its deliveries
must raise it. Nothing is counted by hand: the session notes which environments each
write touches — ORM objects flushed, and ``UPDATE`` / ``DELETE`` / ``INSERT`` statements
on those four tables — and at commit raises each one's ``state_version`` once, in the same
transaction and by the database (``state_version + 1``: concurrent writers never lose
one). Two exceptions, both kept from before:

* a statement that changes nothing a page shows (a lease renewal) passes ``QUIET``;
* an environment inserted in the transaction starts at 0 (the number of environments,
  part of ``environments_stamp``, moves instead); a statement that adds builds only to
  such environments may pass ``QUIET`` to skip the look-up.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event, insert, select, update
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction
from sqlalchemy.orm.util import identity_key

from condaops.reconciler.state.schema import Artifact, Build, Delivery, Environment

QUIET = {"state_version": False}  # execution options of a write no page shows
_CHUNK = 500  # ids per IN (...) list


class RecordingSession(Session):
    """A session that raises the ``state_version`` of every environment it writes to."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.touched_envs: set[int] = set()
        self.touched_builds: set[int] = set()
        self.created_envs: set[int] = set()


@contextmanager
def recording(engine: Engine) -> Iterator[RecordingSession]:
    """One write transaction: committed at the end of the block, rolled back on an error."""
    with RecordingSession(engine) as s, s.begin():
        yield s


def _note(s: RecordingSession, obj: object) -> None:
    if isinstance(obj, Environment):
        s.touched_envs.add(obj.id)
    elif isinstance(obj, Build | Delivery):
        s.touched_envs.add(obj.environment_id)
    elif isinstance(obj, Artifact):
        s.touched_builds.add(obj.build_id)


@event.listens_for(RecordingSession, "after_flush")
def _flushed(s: RecordingSession, _flush: UOWTransaction) -> None:
    """ORM writes: the objects still show their pre-flush state, with their ids assigned."""
    for obj in s.new:
        if isinstance(obj, Environment):
            s.created_envs.add(obj.id)
        else:
            _note(s, obj)
    for obj in s.deleted:
        _note(s, obj)
    for obj in s.dirty:
        if s.is_modified(obj, include_collections=False):
            _note(s, obj)


# What a statement on each table tells about the environments it touches.
_OWNER = {
    Environment.__table__: (Environment.id, "id", True),
    Build.__table__: (Build.environment_id, "environment_id", True),
    Delivery.__table__: (Delivery.environment_id, "environment_id", True),
    Artifact.__table__: (Artifact.build_id, "build_id", False),
}


@event.listens_for(RecordingSession, "do_orm_execute")
def _statement(state: ORMExecuteState) -> None:
    """Statements: the rows an UPDATE or DELETE will touch are looked up first (same
    WHERE clause); an INSERT or an update by primary key names them in its parameters."""
    if not (state.is_update or state.is_delete or state.is_insert):
        return
    if state.execution_options.get("state_version", True) is False:
        return
    s = state.session
    assert isinstance(s, RecordingSession)
    table: Any = getattr(state.statement, "table", None)
    owner = _OWNER.get(table)
    if owner is None:
        return
    column, key, is_env = owner
    found: Iterable[int]
    where = getattr(state.statement, "whereclause", None)
    if where is not None:
        found = s.scalars(select(column).where(where), execution_options=QUIET)
    else:
        params: Any = state.parameters
        rows: list[Any] = params if isinstance(params, list) else [params or {}]
        found = [row[key] for row in rows if row.get(key) is not None]
        if not found and rows and state.is_update:
            raise ValueError("an update without WHERE or ids would touch every environment")
    (s.touched_envs if is_env else s.touched_builds).update(i for i in found if i is not None)


@event.listens_for(RecordingSession, "before_commit")
def _raise_versions(s: RecordingSession) -> None:
    """Count the transaction's changes: each touched environment's version goes up by one."""
    s.flush()
    envs = set(s.touched_envs)
    builds = []
    for build_id in sorted(s.touched_builds):  # a build this session loaded names its owner
        loaded = s.identity_map.get(identity_key(Build, build_id))
        if isinstance(loaded, Build) and loaded.environment_id is not None:
            envs.add(loaded.environment_id)
        else:
            builds.append(build_id)
    for start in range(0, len(builds), _CHUNK):
        owners = select(Build.environment_id).where(Build.id.in_(builds[start : start + _CHUNK]))
        envs.update(s.scalars(owners, execution_options=QUIET))
    ids = sorted(envs - s.created_envs)
    for start in range(0, len(ids), _CHUNK):
        s.execute(
            update(Environment)
            .where(Environment.id.in_(ids[start : start + _CHUNK]))
            .values(state_version=Environment.state_version + 1)
            .execution_options(synchronize_session=False, **QUIET)
        )
    _forget(s)


@event.listens_for(RecordingSession, "after_rollback")
def _forget(s: RecordingSession) -> None:
    s.touched_envs.clear()
    s.touched_builds.clear()
    s.created_envs.clear()


def insert_ids(s: RecordingSession, table: Any, rows: list[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` (dicts with the same keys) into ``table`` (a mapped class); their
    new ids, in order. Noted like any other write (``_statement``).

    On PostgreSQL with psycopg the rows go as one short ``INSERT … RETURNING id``
    executed for every row in a pipeline (``executemany``): the long multi-row
    ``VALUES`` statements SQLAlchemy sends otherwise make psycopg parse every
    placeholder of every statement on the client (most of the time of recording 10,000
    environments). Column defaults and bind conversions are applied as SQLAlchemy does."""
    if not rows:
        return []
    bind = s.connection()
    if bind.dialect.name != "postgresql" or bind.dialect.driver != "psycopg":
        ids: list[int] = []
        for start in range(0, len(rows), _CHUNK):
            statement = insert(table).returning(table.id, sort_by_parameter_order=True)
            ids += s.execute(statement, rows[start : start + _CHUNK]).scalars()
        return ids
    t = table.__table__
    owner = _OWNER.get(t)
    if owner is not None and owner[1] != "id":
        s.touched_envs.update(row[owner[1]] for row in rows if row.get(owner[1]) is not None)
    given = rows[0].keys()
    columns = [c for c in t.columns if c.key in given or (c.default is not None and not c.primary_key)]
    defaults = {
        c.key: c.default.arg(None) if c.default.is_callable else c.default.arg for c in columns if c.key not in given
    }
    processors = [(c.key, c.type.bind_processor(bind.dialect)) for c in columns]
    quote = bind.dialect.identifier_preparer.quote
    sql = (
        f"INSERT INTO {quote(t.name)} ({', '.join(quote(c.name) for c in columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))}) RETURNING {quote(t.c.id.name)}"
    )
    params = [
        tuple(
            (proc(row[key] if key in row else defaults[key]) if proc else (row[key] if key in row else defaults[key]))
            for key, proc in processors
        )
        for row in rows
    ]
    raw: Any = bind.connection.driver_connection
    found: list[int] = []
    with raw.cursor() as cur:
        cur.executemany(sql, params, returning=True)
        while True:
            found.append(cur.fetchone()[0])
            if not cur.nextset():
                break
    return found
