"""The state DB read with the DB-API alone, for the read commands (``status``,
``history``, ``plan``): plain SQL, plain dataclasses, no SQLAlchemy.

A command that prints and exits cannot afford SQLAlchemy: importing it and its ORM
costs more than the CLI's whole 250 ms budget (docs/architecture.md, "Two readers of
the state DB"). This module opens the database read-only with the standard library's
``sqlite3`` (``mode=ro``: nothing is created, not even an empty file) or with
``psycopg`` for PostgreSQL, checks the schema revision against the newest migration
file, and answers the few questions the read commands ask with the dataclasses the
SQLAlchemy readers return (``infos``, ``model.RecordedEnv``), so the CLI renders both
alike. It reads; every write goes through ``recorder``. The statements name the
migrated schema's tables and columns: tests/integration/test_state_readonly.py runs
them on SQLite and on PostgreSQL and compares every answer with ``queries``'.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from condaops.reconciler.errors import CondaopsError
from condaops.reconciler.model import EnvRef, RecordedBuild, RecordedEnv
from condaops.reconciler.state.infos import BuildInfo, EnvInfo, RejectedFileInfo, build_info, env_info

MIGRATIONS = Path(__file__).with_name("migrations")
_CHUNK = 500  # ids per IN (...) list


class StateUnavailable(CondaopsError):
    """The state DB is missing or at another schema revision than this condaops (read
    commands neither create nor migrate it). Never recorded: the command stops with it."""


class StateMissing(StateUnavailable):
    """There is no state DB (or no condaops schema in it) yet."""


def head_revision() -> str:
    """The newest schema revision this condaops knows: migration files are numbered
    ``NNNN_*.py`` with revision ``NNNN`` (tests/unit/test_state_open.py checks it against
    Alembic), so no migration script is imported."""
    return max(p.name[:4] for p in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))


# --- opening --------------------------------------------------------------------------

_URL = re.compile(r"^(?P<kind>sqlite|postgresql)(?:\+(?P<driver>[A-Za-z0-9_]+))?://(?P<rest>.*)$", re.DOTALL)


def shown_url(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"^([^:/]+://[^:/@]*):[^@]*@", r"\1:***@", url)


class Reader:
    """One read-only connection to the state DB and the questions the CLI asks it."""

    def __init__(self, conn: Any, *, postgres: bool) -> None:
        self._conn = conn
        self.postgres = postgres

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self.postgres:
            sql = sql.replace("?", "%s")
        cur = self._conn.cursor()
        try:
            cur.execute(sql, tuple(params))
            return list(cur.fetchall())
        finally:
            cur.close()

    # --- environments and builds ------------------------------------------------------

    def list_environments(self, *, include_retired: bool = False) -> list[EnvInfo]:
        """As ``queries.list_environments``: every environment by namespace and name, with
        its current build and its newest one."""
        latest_ids = dict(self._rows("SELECT environment_id, MAX(id) FROM builds GROUP BY environment_id"))
        where = "" if include_retired else " WHERE e.retired_at IS NULL"
        envs = [_env_row(r) for r in self._rows(f"{_ENVS}{where} ORDER BY n.name, e.name")]
        wanted = {latest_ids[e[0]] for e in envs if e[0] in latest_ids} | {e[7] for e in envs if e[7]}
        builds = self.load_builds(wanted)
        return [env_info(e, builds, latest_ids.get(e[0])) for e in envs]

    def get_environment(self, ref: EnvRef) -> EnvInfo | None:
        """One environment (retired ones too), as ``list_environments`` gives it."""
        found = self._rows(f"{_ENVS} WHERE n.name = ? AND e.name = ?", (ref.namespace, ref.name))
        if not found:
            return None
        env = _env_row(found[0])
        (latest_id,) = self._rows("SELECT MAX(id) FROM builds WHERE environment_id = ?", (env[0],))[0]
        builds = self.load_builds({i for i in (env[7], latest_id) if i})
        return env_info(env, builds, latest_id)

    def env_builds(self, ref: EnvRef) -> list[BuildInfo]:
        """Every build of one environment, newest first (``queries.env_builds``)."""
        ids = [
            r[0]
            for r in self._rows(
                "SELECT b.id FROM builds b JOIN environments e ON b.environment_id = e.id "
                "JOIN namespaces n ON e.namespace_id = n.id WHERE n.name = ? AND e.name = ? ORDER BY b.id DESC",
                (ref.namespace, ref.name),
            )
        ]
        builds = self.load_builds(ids)
        return [builds[i] for i in ids]

    def load_builds(self, ids: Collection[int]) -> dict[int, BuildInfo]:
        """BuildInfo by id, with artifact locations (``rows.load_builds``)."""
        found: dict[int, BuildInfo] = {}
        for chunk in _chunks(ids):
            marks = ", ".join("?" * len(chunk))
            rows = self._rows(f"{_BUILDS} WHERE b.id IN ({marks})", chunk)
            locations: dict[int, dict[str, str]] = {}
            for build_id, kind, location in self._rows(
                f"SELECT build_id, kind, location FROM artifacts WHERE build_id IN ({marks}) ORDER BY build_id, id",
                chunk,
            ):
                locations.setdefault(build_id, {})[kind] = location
            for r in rows:
                found[r[0]] = build_info(_build_row(r), locations.get(r[0], {}))
        return found

    def list_rejected_files(self) -> list[RejectedFileInfo]:
        """Files that could not become environments, by source and path."""
        rows = self._rows(
            "SELECT source, path, reason, message, revision, first_seen_at FROM rejected_files ORDER BY source, path"
        )
        return [
            RejectedFileInfo(source, path, reason, message, revision, _utc(seen) or datetime.min)  # NOT NULL
            for source, path, reason, message, revision, seen in rows
        ]

    # --- what plan compares with ------------------------------------------------------

    def recorded(self, present: Callable[[str], bool]) -> dict[EnvRef, RecordedEnv]:
        """What ``plan`` reads (``recorded.load_recorded``), each linked prefix looked
        for on disk with ``present(prefix)`` (``service.observe``)."""
        latest = {
            r[0]: RecordedBuild(r[1], r[2], r[3], r[4], r[5], bool(r[6]), _utc(r[7]), r[8]) for r in self._rows(_LATEST)
        }
        out: dict[EnvRef, RecordedEnv] = {}
        for env_id, ns, name, source, cur_hash, retired_at, pinned, prefix, display_name in self._rows(_RECORDED):
            ref = EnvRef(ns, name)
            linked = prefix if retired_at is None else None
            out[ref] = RecordedEnv(
                ref=ref,
                source=source,
                current_spec_hash=cur_hash,
                latest=latest.get(env_id),
                retired=retired_at is not None,
                pinned_spec_hash=pinned,
                prefix_present=present(linked) if linked else True,
                display_name=display_name,
            )
        return out


def open_reader(url: str, *, shown_as: str | None = None) -> Reader:
    """A read-only ``Reader`` on an existing state DB at this condaops' schema revision:
    no file, folder or table is created and nothing is migrated. ``StateUnavailable``
    says what is wrong and what to run; ``shown_as`` names the database in it."""
    where = shown_as or shown_url(url)
    match = _URL.match(url)
    if match is None:
        raise StateUnavailable(f"{where}: not a sqlite:// or postgresql:// database URL")
    if match["kind"] == "sqlite":
        reader = Reader(_sqlite(match["rest"], where), postgres=False)
    else:
        reader = Reader(_postgres(match["rest"], where), postgres=True)
    try:
        found = _schema_revision(reader, where)
    except BaseException:
        reader.close()
        raise
    problem = revision_problem(found, where)
    if problem is not None:
        reader.close()
        raise problem
    return reader


def revision_problem(found: str | None, where: str) -> StateUnavailable | None:
    """None when a state DB at schema revision ``found`` is readable by this condaops, else
    the error saying which side to upgrade (both readers of the state DB use it)."""
    head = head_revision()
    if found == head:
        return None
    newer = found is not None and found > head
    hint = "upgrade condaops to read it" if newer else "run `condaops migrate` (or start `condaops serve`)"
    return StateUnavailable(
        f"the state database at {where} is at schema revision {found or 'none'}, this condaops reads {head}: {hint}"
    )


def _sqlite(rest: str, where: str) -> Any:
    import sqlite3

    path, _, _query = rest[1:].partition("?") if rest.startswith("/") else ("", "", "")
    if path in ("", ":memory:") or not Path(path).is_file():
        raise StateMissing(f"no state database at {where}")
    # mode=ro: never creates the file; a WAL database is read as its writers left it
    conn = sqlite3.connect(f"file:{quote(os.path.abspath(path))}?mode=ro", uri=True, timeout=30)
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def _postgres(rest: str, where: str) -> Any:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        url = f"postgresql://{rest}"
        # every statement in a read-only transaction (the server refuses any write),
        # after the URL's own options (a search_path, say)
        options = f"{conninfo_to_dict(url).get('options') or ''} -c default_transaction_read_only=on".strip()
        conn = psycopg.connect(make_conninfo(url, options=options), autocommit=True)
    except psycopg.Error as exc:
        raise StateMissing(f"the state database at {where} cannot be reached ({type(exc).__name__})") from exc
    return conn


def _schema_revision(reader: Reader, where: str) -> str | None:
    try:
        rows = reader._rows("SELECT version_num FROM alembic_version")
    except Exception as exc:  # the driver's own "no such table" (sqlite3 or psycopg)
        raise StateMissing(f"the state database at {where} has no condaops schema ({type(exc).__name__})") from exc
    return rows[0][0] if rows else None


# --- statements and row conversion --------------------------------------------------

# Column for column as rows.ENV_COLUMNS and rows.BUILD_COLUMNS (infos.env_info, build_info).
_ENVS = (
    "SELECT e.id, n.name, e.name, e.source, e.path, e.source_revision, e.desired_spec_hash, e.current_build_id, "
    "e.pinned_spec_hash, e.retired_at, e.rejection_reason, e.rejection_message, e.warnings, e.removed_at, "
    "e.removed_revision, e.retired_reason, e.retired_message, e.display_name "
    "FROM environments e JOIN namespaces n ON e.namespace_id = n.id"
)
_BUILDS = (
    "SELECT b.id, n.name, e.name, s.sha256, b.state, b.attempt, b.reason, b.message, b.retryable, b.prefix, "
    "b.source, b.source_revision, b.source_path, b.queued_at, b.started_at, b.finished_at, b.collected_at, "
    "b.timings, b.published_at, b.publish_error, b.policy_report, b.lock_path "
    "FROM builds b JOIN specifications s ON b.specification_id = s.id "
    "JOIN environments e ON b.environment_id = e.id JOIN namespaces n ON e.namespace_id = n.id"
)
# As recorded._LATEST and recorded._ENVS: the newest build of each environment, and each
# environment with its linked build's spec and prefix.
_LATEST = (
    "SELECT b.environment_id, b.id, s.sha256, b.state, b.attempt, b.reason, b.retryable, b.finished_at, "
    "b.policy_hash FROM builds b JOIN specifications s ON b.specification_id = s.id "
    "WHERE b.id IN (SELECT MAX(id) FROM builds GROUP BY environment_id)"
)
_RECORDED = (
    "SELECT e.id, n.name, e.name, e.source, cs.sha256, e.retired_at, e.pinned_spec_hash, cb.prefix, "
    "e.display_name FROM environments e JOIN namespaces n ON e.namespace_id = n.id "
    "LEFT OUTER JOIN builds cb ON e.current_build_id = cb.id "
    "LEFT OUTER JOIN specifications cs ON cb.specification_id = cs.id"
)
_ENV_TIMES = (9, 13)  # retired_at, removed_at
_BUILD_TIMES = (13, 14, 15, 16, 18)  # queued, started, finished, collected, published


def _utc(value: Any) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite keeps text, PostgreSQL timestamptz)."""
    if value is None:
        return None
    at = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc)


def _env_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(_utc(v) if i in _ENV_TIMES else v for i, v in enumerate(row))


def _build_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    out = [_utc(v) if i in _BUILD_TIMES else v for i, v in enumerate(row)]
    out[8] = bool(out[8])  # retryable: SQLite keeps 0/1
    return tuple(out)


def _chunks(ids: Collection[int]) -> Iterator[list[int]]:
    ordered = sorted(set(ids))
    for start in range(0, len(ordered), _CHUNK):
        yield ordered[start : start + _CHUNK]
