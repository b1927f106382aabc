"""BuildScheduler on APScheduler 4: deterministic job ids, concurrency, retries, recovery from a dead scheduler."""

from __future__ import annotations

import threading
import time

import anyio
import pytest
from sqlalchemy import Engine, text

from condaops.reconciler.model import EnvRef
from condaops.reconciler.runtime import prepare_database
from condaops.reconciler.schedule import BuildScheduler
from condaops.reconciler.state.db import make_engine
from condaops.reconciler.state.recorder import QueuedBuild
from tests.support.postgres import fresh_database

pytestmark = pytest.mark.anyio

REF = EnvRef("team", "ml")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Runs:
    """A build callable that records calls and how many ran at once."""

    def __init__(self, duration: float = 0.0) -> None:
        self.duration = duration
        self.calls: list[int] = []
        self.running = 0
        self.peak = 0
        self.lock = threading.Lock()

    def __call__(self, build_id: int) -> None:
        with self.lock:
            self.calls.append(build_id)
            self.running += 1
            self.peak = max(self.peak, self.running)
        time.sleep(self.duration)
        with self.lock:
            self.running -= 1


def scheduler(runs: Runs, concurrency: int) -> BuildScheduler:
    return BuildScheduler(runs, run_preview=Runs(), run_publish=Runs(), concurrency=concurrency)


async def wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)


async def test_the_same_build_scheduled_twice_runs_once():
    runs = Runs(duration=0.3)
    async with scheduler(runs, 1) as sched:
        qb = QueuedBuild(1, REF, "a" * 64)
        await sched.submit([qb, qb])
        await sched.submit([qb])
        await wait_for(lambda: runs.calls)
        await anyio.sleep(0.5)
    assert runs.calls == [1]


async def test_a_retry_with_the_same_job_id_runs_after_the_first_fired():
    runs = Runs()
    async with scheduler(runs, 1) as sched:
        await sched.submit([QueuedBuild(1, REF, "a" * 64)])
        await wait_for(lambda: runs.calls == [1])
        await anyio.sleep(0.1)
        await sched.submit([QueuedBuild(2, REF, "a" * 64)])  # the retry: same env, same spec
        await wait_for(lambda: runs.calls == [1, 2])


async def test_concurrency_is_respected():
    runs = Runs(duration=0.3)
    async with scheduler(runs, 2) as sched:
        await sched.submit([QueuedBuild(i, EnvRef("team", f"e{i}"), f"{i:064x}") for i in range(6)])
        await wait_for(lambda: len(runs.calls) == 6 and runs.running == 0)
    assert runs.peak == 2
    assert sorted(runs.calls) == list(range(6))


async def test_a_schedule_left_taken_by_a_dead_scheduler_is_added_again():
    """A scheduler killed while it held a due schedule leaves it marked as taken; the other
    schedulers never wake up for it (APScheduler ignores taken schedules when it computes
    its next wake-up). Submitting the queue again adds such an overdue schedule anew, and
    the build runs. Real PostgreSQL, as several processes share it."""
    with fresh_database() as url:
        engine = make_engine(url)
        prepare_database(engine)
        build = QueuedBuild(7, REF, "b" * 64)
        async with BuildScheduler(None, concurrency=1, database_url=url, role="scheduler", identity="dead") as dead:
            await dead.submit([build])
            await wait_for(lambda: _count(engine, "SELECT count(*) FROM apscheduler.jobs") == 1)
        with engine.begin() as conn:  # as if it had died holding the schedule, before making the job
            conn.execute(
                text(
                    "UPDATE apscheduler.schedules SET acquired_by = 'dead', "
                    "acquired_until = now() + interval '2 seconds', "
                    "next_fire_time = now() - interval '10 minutes' WHERE id = :id"
                ),
                {"id": build.job_id},
            )
            conn.execute(text("DELETE FROM apscheduler.jobs"))
        runs = Runs()
        async with BuildScheduler(
            runs, run_preview=Runs(), run_publish=Runs(), concurrency=1, database_url=url, identity="alive"
        ) as alive:
            await anyio.sleep(4.0)  # the dead one's claim has run out meanwhile, yet nothing wakes this one
            assert runs.calls == []
            await alive.submit([build])  # what the reconciler does on its timer
            await wait_for(lambda: runs.calls == [7], timeout=20)
        engine.dispose()


def _count(engine: Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())
