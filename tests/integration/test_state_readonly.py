"""``state.readonly`` (the read commands' DB-API reader) answers as ``state.queries``
does, on SQLite and on the real PostgreSQL, and reads only what the migrated schema has."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect

from condaops.reconciler.model import (
    ArtifactRecord,
    BuildOutcome,
    DesiredEnv,
    EnvRef,
    Policy,
    Rejection,
    SourceSnapshot,
)
from condaops.reconciler.plan import plan
from condaops.reconciler.spec import Dependency, Spec
from condaops.reconciler.state import readonly
from condaops.reconciler.state.db import make_engine, migrate
from condaops.reconciler.state.queries import (
    env_builds,
    get_environment,
    list_environments,
    list_rejected_files,
    load_recorded,
)
from condaops.reconciler.state.readonly import StateMissing, StateUnavailable, open_reader
from condaops.reconciler.state.recorder import Recorder
from tests.support.clock import T0, Clock
from tests.support.postgres import fresh_database

pytestmark = pytest.mark.integration

REFS = [EnvRef("team", n) for n in ("a", "b", "c", "d")] + [EnvRef("lab", "x")]


def _spec(version: str) -> Spec:
    return Spec(channels=("conda-forge",), dependencies=(Dependency(f"python {version}.*"),))


def _snapshot(version: str, refs: list[EnvRef]) -> SourceSnapshot:
    envs = tuple(DesiredEnv(r, _spec(version), "src", f"{r.namespace}/{r.name}.yaml", f"rev-{version}") for r in refs)
    bad = Rejection(None, "src", "bad name/x.yaml", "NameInvalid", "not a name")
    return SourceSnapshot("src", f"rev-{version}", envs=envs, rejections=(bad,))


def _fill(url: str) -> None:
    """Environments in every state the CLI shows: linked with artifacts, failed and
    retryable, building, queued over a linked build, retired; a rejected file."""
    engine = make_engine(url)
    migrate(engine)
    clock = Clock(T0)
    rec = Recorder(engine, clock)

    def apply(version: str, refs: list[EnvRef]):  # type: ignore[no-untyped-def]
        snap = _snapshot(version, refs)
        rec.record_snapshot(snap)
        rec.record_rejected_files([snap])
        return rec.apply_plan(plan([snap], load_recorded(engine), policy=Policy(), now=clock()))

    queued = {q.ref: q for q in apply("3.11", REFS)}
    for ref in REFS:
        clock.now += timedelta(seconds=3)
        build_id = queued[ref].build_id
        rec.claim(build_id, "w1")
        clock.now += timedelta(seconds=40)
        if ref.name == "b":
            rec.finish(build_id, BuildOutcome(False, "SolveFailed", message="nothing provides x", retryable=True))
        elif ref.name != "c":
            rec.finish(
                build_id, BuildOutcome(True, "BuildSucceeded", prefix=f"{ref.namespace}/x-{ref.name}", linked=True)
            )
    rec.add_artifacts(queued[REFS[0]].build_id, [ArtifactRecord("image", "team/a@sha256:ab", 10, "ab" * 32)])
    rec.add_artifacts(queued[REFS[0]].build_id, [ArtifactRecord("sbom", "team/a/sbom.json", 5, None)])
    clock.now += timedelta(minutes=5)
    apply("3.12", [REFS[0], REFS[3], REFS[4]])  # a new spec queued over a linked build
    rec.record_retired(REFS[4], "Retired", "by hand")
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        found = f"sqlite:///{tmp_path / 'state.db'}"
        _fill(found)
        yield found
    else:
        with fresh_database() as found:
            _fill(found)
            yield found


def test_every_answer_is_the_sqlalchemy_readers(url: str) -> None:
    engine = make_engine(url, create=False)
    try:
        with open_reader(url) as db:
            for retired in (False, True):
                assert db.list_environments(include_retired=retired) == list_environments(
                    engine, include_retired=retired
                )
            assert len(db.list_environments(include_retired=True)) == len(REFS)
            assert db.list_rejected_files() == list_rejected_files(engine) != []
            for ref in [*REFS, EnvRef("no", "such")]:
                assert db.get_environment(ref) == get_environment(engine, ref)
                assert db.env_builds(ref) == env_builds(engine, ref)
            assert len(db.env_builds(REFS[0])) == 2 and db.env_builds(REFS[0])[1].artifacts  # newest first
            recorded = load_recorded(engine)
            assert db.recorded(lambda prefix: True) == recorded
            gone = db.recorded(lambda prefix: prefix != "team/x-a")  # a vanished prefix is seen
            assert not gone[REFS[0]].prefix_present and gone[REFS[3]].prefix_present
            times = [b.queued_at for b in db.env_builds(REFS[0])]
            assert all(t.utcoffset() == timedelta(0) for t in times)  # aware UTC on both backends
    finally:
        engine.dispose()


def test_every_column_it_reads_is_in_the_migrated_schema(url: str) -> None:
    """The statements name ``table.column`` through their aliases: each must exist in
    the schema the migrations create (so the reader cannot drift from it)."""
    aliases = {"e": "environments", "n": "namespaces", "b": "builds", "s": "specifications"}
    aliases |= {"cb": "builds", "cs": "specifications"}
    engine = make_engine(url, create=False)
    try:
        found = inspect(engine)
        columns = {t: {c["name"] for c in found.get_columns(t)} for t in found.get_table_names()}
    finally:
        engine.dispose()
    statements = [readonly._ENVS, readonly._BUILDS, readonly._LATEST, readonly._RECORDED]
    used = {(aliases[a], c) for sql in statements for a, c in re.findall(r"\b([a-z]{1,2})\.([a-z_]+)\b", sql)}
    assert len(used) > 40
    assert {(t, c) for t, c in used if c not in columns[t]} == set()
    for table, names in {
        "artifacts": ("build_id", "kind", "location", "id"),
        "rejected_files": ("source", "path", "reason", "message", "revision", "first_seen_at"),
        "alembic_version": ("version_num",),
    }.items():
        assert set(names) <= columns[table]


def test_it_creates_nothing_and_names_what_is_missing(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "state.db"
    with pytest.raises(StateMissing, match="no state database at"):
        open_reader(f"sqlite:///{db}")
    assert not db.parent.exists()
    db.parent.mkdir()
    sqlite3.connect(db).close()  # an empty file: no schema
    with pytest.raises(StateMissing, match="has no condaops schema"):
        open_reader(f"sqlite:///{db}")
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32))")
    conn.execute("INSERT INTO alembic_version VALUES ('0001')")
    conn.commit()
    conn.close()
    with pytest.raises(StateUnavailable, match=r"at schema revision 0001, this condaops reads .*condaops migrate"):
        open_reader(f"sqlite:///{db}")


def test_it_writes_nothing(url: str) -> None:
    with open_reader(url) as db, pytest.raises(Exception, match="(?i)read.?only"):
        db._rows("DELETE FROM rejected_files")
    if url.startswith("postgresql"):  # the URL's own options are kept beside read-only
        with open_reader(f"{url}?options=-c%20statement_timeout%3D4321") as db:
            assert db._rows("SHOW statement_timeout") == [("4321ms",)]
            assert db._rows("SHOW default_transaction_read_only") == [("on",)]


def test_a_password_is_never_shown() -> None:
    assert readonly.shown_url("postgresql+psycopg://me:s3cret@db/x") == "postgresql+psycopg://me:***@db/x"
    with pytest.raises(StateUnavailable) as err:
        open_reader("mysql://me:s3cret@db/x")
    assert "s3cret" not in str(err.value)
