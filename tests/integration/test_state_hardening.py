"""State written once: a build is published once however many jobs ask; removed and
retired environments are recorded with their revision and reason; files that cannot be
environments are kept and reported. On SQLite and on the real PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import Engine

from condaops.reconciler.state.queries import get_build
from condaops.reconciler.state.recorder import Recorder
from tests.integration.test_state import OK, Clock, do_plan
from tests.integration.test_state import engine as engine  # noqa: F401 - the SQLite/PostgreSQL fixture


def finished_build(engine: Engine, clock: Clock) -> tuple[Recorder, int]:  # noqa: F811
    rec = Recorder(engine, clock)
    (queued,) = do_plan(rec, engine, "3.12", clock)
    assert rec.claim(queued.build_id, "w1")
    rec.finish(queued.build_id, OK)
    return rec, queued.build_id


def test_a_build_is_published_once_however_many_jobs_race(engine: Engine) -> None:  # noqa: F811
    clock = Clock()
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
