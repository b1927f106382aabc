"""The state DB through the one recorder, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, create_engine, text

from condaops.reconciler.model import ArtifactRecord, BuildOutcome, DesiredEnv, EnvRef, Policy, SourceSnapshot
from condaops.reconciler.plan import plan
from condaops.reconciler.spec import Dependency, Spec
from condaops.reconciler.state.db import make_engine, migrate
from condaops.reconciler.state.queries import (
    count_active_builds,
    environment_stamp,
    environments_stamp,
    get_build,
    list_environments,
    load_recorded,
    unpublished_builds,
)
from condaops.reconciler.state.recorder import Recorder
from tests.support.ci import skip_or_fail
from tests.support.clock import T0, Clock

PG_URL = os.environ.get("CONDAOPS_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REF = EnvRef("team", "ml")


def _postgres_engine() -> Iterator[Engine]:
    """A fresh schema in the real PostgreSQL; skip (or fail on CI) when it is not there."""
    try:
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any connection problem means "not available"
        skip_or_fail(f"PostgreSQL not reachable at {PG_URL}: {exc}")
    schema = f"t_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine = create_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
        migrate(eng)
        yield eng
        eng.dispose()
    else:
        for eng in _postgres_engine():
            migrate(eng)
            migrate(eng)  # idempotent
            yield eng


def spec(version: str) -> Spec:
    return Spec(channels=("conda-forge",), dependencies=(Dependency(f"python {version}.*"),))


def desired(version: str) -> SourceSnapshot:
    env = DesiredEnv(REF, spec(version), "src", "team/ml.yaml", f"rev-{version}")
    return SourceSnapshot("src", f"rev-{version}", envs=(env,))


def do_plan(recorder: Recorder, engine: Engine, version: str, clock: Clock):  # type: ignore[no-untyped-def]
    return recorder.apply_plan(plan([desired(version)], load_recorded(engine), policy=Policy(), now=clock()))


OK = BuildOutcome(True, "BuildSucceeded", prefix="team/x-ml", linked=True)


def test_a_build_is_claimed_once_and_becomes_current(engine: Engine):
    clock = Clock(T0)
    rec = Recorder(engine, clock)
    (queued,) = do_plan(rec, engine, "3.12", clock)
    assert queued.job_id == f"build:team/ml:{spec('3.12').spec_hash}"
    assert do_plan(rec, engine, "3.12", clock) == []  # planned again: already queued
    ticket = rec.claim(queued.build_id, "w1")
    assert ticket is not None and ticket.spec == spec("3.12") and ticket.source_path == "team/ml.yaml"
    assert rec.claim(queued.build_id, "w2") is None  # never run twice
    assert rec.may_link(queued.build_id)
    rec.finish(queued.build_id, OK)
    (env,) = list_environments(engine)
    assert env.current and env.current.build_id == queued.build_id
    assert env.current.source_revision == "rev-3.12"
    assert load_recorded(engine)[REF].current_spec_hash == spec("3.12").spec_hash
    assert do_plan(rec, engine, "3.12", clock) == []  # up to date


def test_a_superseded_build_is_not_linked(engine: Engine):
    clock = Clock(T0)
    rec = Recorder(engine, clock)
    (first,) = do_plan(rec, engine, "3.12", clock)
    assert rec.claim(first.build_id, "w1")
    (second,) = do_plan(rec, engine, "3.13", clock)  # the spec changed while building
    assert not rec.may_link(first.build_id)
    rec.finish(first.build_id, BuildOutcome(True, "Superseded", prefix="team/a-ml"))
    assert rec.may_link(second.build_id) is False  # not claimed yet
    assert rec.claim(second.build_id, "w1")
    assert rec.may_link(second.build_id)


def test_a_newer_spec_cancels_the_queued_one(engine: Engine):
    clock = Clock(T0)
    rec = Recorder(engine, clock)
    (first,) = do_plan(rec, engine, "3.12", clock)
    (second,) = do_plan(rec, engine, "3.13", clock)
    assert get_build(engine, first.build_id).state == "canceled"  # type: ignore[union-attr]
    assert get_build(engine, first.build_id).reason == "Superseded"  # type: ignore[union-attr]
    assert rec.claim(first.build_id, "w1") is None
    assert count_active_builds(engine) == 1


def test_interrupted_builds_go_back_to_the_queue(engine: Engine):
    clock = Clock(T0)
    rec = Recorder(engine, clock)
    (queued,) = do_plan(rec, engine, "3.12", clock)
    assert rec.claim(queued.build_id, "w1")
    assert rec.requeue_abandoned(everything=True) == [queued.build_id]
    info = get_build(engine, queued.build_id)
    assert (info.state, info.reason, info.started_at) == ("queued", "Interrupted", None)  # type: ignore[union-attr]
    assert [q.build_id for q in rec.queued()] == [queued.build_id]
    assert rec.claim(queued.build_id, "w2") is not None


def test_a_build_whose_lease_expired_is_requeued_and_its_old_worker_fenced_out(engine: Engine):
    clock = Clock(T0)
    rec = Recorder(engine, clock)
    (queued,) = do_plan(rec, engine, "3.12", clock)
    assert rec.claim(queued.build_id, "w1", lease=60)
    clock.now += timedelta(seconds=40)
    assert rec.renew([queued.build_id], "w1", lease=60) == set()  # held: renewed until +100 s
    clock.now += timedelta(seconds=59)
    assert rec.requeue_abandoned() == []  # a live worker's build is left alone
    clock.now += timedelta(seconds=2)  # w1 stopped renewing (killed): the lease ran out
    assert rec.requeue_abandoned() == [queued.build_id]
    assert rec.claim(queued.build_id, "w2", lease=60) is not None
    # w1 comes back (it was only stalled): it no longer holds the build and records nothing.
    assert rec.renew([queued.build_id], "w1", lease=60) == {queued.build_id}
    assert not rec.may_link(queued.build_id, "w1") and rec.may_link(queued.build_id, "w2")
    assert rec.finish(queued.build_id, OK, "w1") is False
    assert get_build(engine, queued.build_id).state == "building"  # type: ignore[union-attr]
    assert rec.finish(queued.build_id, OK, "w2") is True
    assert get_build(engine, queued.build_id).state == "completed"  # type: ignore[union-attr]


def test_every_change_an_environment_page_shows_moves_its_stamp(engine: Engine):
    """The status site reuses a rendered environment page while ``environment_stamp`` is
    unchanged, and its list of environments while ``environments_stamp`` is, so every
    recorded change to an environment, its builds or their files must move both
    (build-level ones through ``state_version``); lease renewals and plans that change
    nothing must not."""
    clock = Clock(T0)
    rec = Recorder(engine, clock)
    seen = []

    def version(expect_change: bool) -> int:
        stamp = environment_stamp(engine, REF)
        assert stamp is not None
        listed = environments_stamp(engine)  # what the list of all environments is checked by
        if seen:
            assert (stamp != seen[-1][0]) is expect_change, (stamp, seen[-1][0])
            assert (listed != seen[-1][1]) is expect_change, (listed, seen[-1][1])
        seen.append((stamp, listed))
        return stamp[0]

    (first,) = do_plan(rec, engine, "3.12", clock)
    start = version(False)
    assert do_plan(rec, engine, "3.12", clock) == [] and version(False) == start  # nothing new
    rec.claim(first.build_id, "w1")
    assert version(True) == start + 1
    clock.now += timedelta(seconds=5)
    rec.renew([first.build_id], "w1", lease=60)
    assert version(False) == start + 1  # a lease renewal is not shown anywhere
    rec.finish(first.build_id, OK, "w1")
    assert version(True) == start + 2
    rec.add_artifacts(first.build_id, [ArtifactRecord("image", "team/ml@sha256:ab", 10, "ab" * 32)])
    assert version(True) == start + 3
    (second,) = do_plan(rec, engine, "3.13", clock)
    assert version(True) > start + 3
    rec.claim(second.build_id, "w1")
    version(True)
    assert rec.requeue_abandoned(everything=True) == [second.build_id]
    version(True)
    rec.record_rollback(REF, first.build_id)
    version(True)
    rec.record_collected([second.build_id])
    version(True)
    other = DesiredEnv(EnvRef("team", "other"), spec("3.12"), "src", "team/other.yaml", "rev-gone")
    rec.apply_plan(
        plan(
            [SourceSnapshot("src", "rev-gone", envs=(other,))],
            load_recorded(engine),
            policy=Policy(prune=True),
            now=clock(),
        )
    )
    version(True)  # retired: its file is gone
    assert environment_stamp(engine, EnvRef("team", "nowhere")) is None


def test_webhook_refresh_requests_pass_through_the_database(engine: Engine):
    rec = Recorder(engine, Clock(T0))
    assert rec.take_refresh_requests() == []
    rec.request_refresh(["repo", "other", "repo"])
    assert rec.take_refresh_requests() == ["other", "repo"]
    assert rec.take_refresh_requests() == []  # taken once


def test_current_builds_wait_for_their_publish_job(engine: Engine):
    clock = Clock(T0)
    rec = Recorder(engine, clock)
    (queued,) = do_plan(rec, engine, "3.12", clock)
    rec.claim(queued.build_id, "w1")
    assert unpublished_builds(engine) == []  # not finished yet
    rec.finish(queued.build_id, OK, "w1")
    assert unpublished_builds(engine) == [queued.build_id]
    rec.add_artifacts(queued.build_id, [], error="PushRefused: registry.example: 401")
    assert unpublished_builds(engine) == []  # handled, even though it failed (see publish_error)


def test_failures_are_recorded_and_retried_after_backoff(engine: Engine):
    clock = Clock(T0)
    rec = Recorder(engine, clock)
    (queued,) = do_plan(rec, engine, "3.12", clock)
    rec.claim(queued.build_id, "w1")
    rec.finish(queued.build_id, BuildOutcome(False, "ChannelUnreachable", "x.yaml: down", retryable=True))
    p = plan([desired("3.12")], load_recorded(engine), policy=Policy(backoff=30), now=clock())
    assert [(a.kind, a.reason) for a in p.actions] == [("wait", "RetryPending")]
    clock.now += timedelta(seconds=31)
    (retry,) = do_plan(rec, engine, "3.12", clock)
    info = get_build(engine, retry.build_id)
    assert (info.attempt, info.reason) == (2, "RetryScheduled")  # type: ignore[union-attr]


def test_timestamps_are_utc_aware(engine: Engine):
    clock = Clock(T0)
    rec = Recorder(engine, clock)
    (queued,) = do_plan(rec, engine, "3.12", clock)
    info = get_build(engine, queued.build_id)
    assert info.queued_at == clock.now and info.queued_at.tzinfo is not None  # type: ignore[union-attr]
