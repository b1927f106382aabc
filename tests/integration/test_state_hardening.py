"""State written once: a build is published once however many jobs ask; removed and
retired environments are recorded with their revision and reason; files that cannot be
environments are kept and reported. On SQLite and on the real PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import Engine

from condaops.reconciler.model import Policy, Rejection, SourceSnapshot
from condaops.reconciler.plan import plan
from condaops.reconciler.state.queries import get_build, list_environments, list_rejected_files, load_recorded
from condaops.reconciler.state.recorder import Recorder
from condaops.reconciler.status import derive_state
from tests.integration.test_state import OK, REF, do_plan
from tests.integration.test_state import engine as engine  # noqa: F401 - the SQLite/PostgreSQL fixture
from tests.support.clock import T0, Clock


def finished_build(engine: Engine, clock: Clock) -> tuple[Recorder, int]:  # noqa: F811
    rec = Recorder(engine, clock)
    (queued,) = do_plan(rec, engine, "3.12", clock)
    assert rec.claim(queued.build_id, "w1")
    rec.finish(queued.build_id, OK)
    return rec, queued.build_id


def test_a_build_is_published_once_however_many_jobs_race(engine: Engine) -> None:  # noqa: F811
    clock = Clock(T0)
    rec, build_id = finished_build(engine, clock)
    with ThreadPoolExecutor(max_workers=8) as pool:
        claims = list(pool.map(lambda i: rec.claim_publish(build_id, f"w{i}", lease=60), range(8)))
    assert claims.count(True) == 1
    holder = f"w{claims.index(True)}"
    assert rec.renew_publish([build_id], holder, lease=60) == set()
    assert rec.renew_publish([build_id], "intruder", lease=60) == {build_id}

    clock.now += timedelta(seconds=61)  # the holder died: its lease ran out
    assert rec.claim_publish(build_id, "w-late", lease=60)
    assert rec.add_artifacts(build_id, [], error=None)
    clock.now += timedelta(seconds=3600)
    assert not rec.claim_publish(build_id, "w-again", lease=60)  # published: never again
    assert get_build(engine, build_id).published_at is not None  # type: ignore[union-attr]


def test_a_removed_environment_is_noted_once_and_cleared_when_back(engine: Engine) -> None:  # noqa: F811
    clock = Clock(T0)
    rec, build_id = finished_build(engine, clock)
    gone = SourceSnapshot("src", "rev-without-it")
    for _ in range(2):
        clock.now += timedelta(minutes=1)
        rec.apply_plan(plan([gone], load_recorded(engine), policy=Policy(), now=clock()))
    (env,) = list_environments(engine)
    assert env.removed_revision == "rev-without-it" and env.removed_at == Clock(T0).now + timedelta(minutes=1)
    assert env.current is not None and env.current.build_id == build_id  # still linked
    state, reason, message = derive_state(env, retries=3)
    assert (state, reason) == ("removed", "SourceRemovedKept") and "revision rev-without-;" in (message or "")
    do_plan(rec, engine, "3.12", clock)  # the file is back, unchanged
    (env,) = list_environments(engine)
    assert env.removed_at is None and derive_state(env, retries=3)[0] == "ready"


def test_retirements_are_recorded_with_their_reason(engine: Engine) -> None:  # noqa: F811
    clock = Clock(T0)
    rec, _ = finished_build(engine, clock)
    assert rec.record_retired(REF, "Retired", "retired with `condaops retire` by me")
    assert list_environments(engine) == []
    (env,) = list_environments(engine, include_retired=True)
    assert (env.retired_reason, env.current) == ("Retired", None)
    assert derive_state(env, retries=3) == ("retired", "Retired", "retired with `condaops retire` by me")
    (queued,) = do_plan(rec, engine, "3.12", clock)  # defined again: built like a new environment
    (env,) = list_environments(engine)
    assert env.retired_reason is None and get_build(engine, queued.build_id).reason == "NewEnvironment"  # type: ignore[union-attr]
    pruned = plan(
        [SourceSnapshot("src", "rev-x", envs=())],
        load_recorded(engine),
        policy=Policy(prune=True, allow_empty=frozenset({"src"})),
        now=clock(),
    )
    rec.apply_plan(pruned)
    (env,) = list_environments(engine, include_retired=True)
    assert env.retired_reason == "SourceRemoved" and "rev-x" in (env.retired_message or "")


def test_files_that_name_no_environment_are_kept_per_source(engine: Engine) -> None:  # noqa: F811
    rec = Recorder(engine, Clock(T0))
    bad = Rejection(None, "src", "a..b.yaml", "NameInvalid", "a..b.yaml: environment name 'a..b' ...")
    odd = Rejection(None, "src", "..yaml", "NameInvalid", "..yaml: environment name '.' ...")
    first = rec.record_rejected_files([SourceSnapshot("src", "r1", rejections=(bad, odd))])
    assert first == [bad, odd]
    assert rec.record_rejected_files([SourceSnapshot("src", "r2", rejections=(bad, odd))]) == []  # seen before
    unreadable = SourceSnapshot("src", None, error="unreachable", error_reason="SourceUnreachable")
    assert rec.record_rejected_files([unreadable]) == []
    assert [f.path for f in list_rejected_files(engine)] == ["..yaml", "a..b.yaml"]  # kept while unreadable
    rec.record_rejected_files([SourceSnapshot("src", "r3", rejections=(bad,))])
    (kept,) = list_rejected_files(engine)
    assert (kept.path, kept.revision, kept.reason) == ("a..b.yaml", "r1", "NameInvalid")
