"""Build scheduling on APScheduler 4 — the only module that imports apscheduler.

Each queued build becomes a one-off schedule whose id is deterministic
(``build:<ns>/<name>:<spec-hash>``, see ``QueuedBuild.job_id``); adding it again while
it is pending does nothing (``ConflictPolicy.do_nothing``). Jobs run in APScheduler's
thread pool; ``build.concurrency`` is the task's ``max_running_jobs``, which APScheduler
holds across every worker sharing the data store. APScheduler has no retries: failures
are recorded and ``plan`` schedules retries with backoff.

One process (SQLite) keeps the queue in memory: the state DB is the durable record, and a
start re-submits every queued build. Several processes share APScheduler's SQLAlchemy data
store (schema ``apscheduler`` of the PostgreSQL state database) and its PostgreSQL event
broker; ``create_tables`` makes that schema once, under the migration lock.

The state DB's compare-and-set claim (``Recorder.claim``) is the final guard: a job
whose build is no longer queued returns at once, so a duplicate job never runs a build
twice.

Update checks (``updates`` of a source) are recurring schedules, ``updates:<source>``,
with an interval or cron trigger (UTC) from ``updates.schedule``; one runs at a time
across all workers, and runs missed while nothing was up are coalesced into one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack, suppress
from datetime import datetime, timezone

import anyio
from apscheduler import AsyncScheduler, ConflictPolicy, JobReleased, ScheduleLookupError, SchedulerRole
from apscheduler.abc import DataStore, EventBroker
from apscheduler.datastores.memory import MemoryDataStore
from apscheduler.datastores.sqlalchemy import SQLAlchemyDataStore
from apscheduler.eventbrokers.local import LocalEventBroker
from apscheduler.executors.thread import ThreadPoolJobExecutor
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Connection, select
from sqlalchemy.engine import make_url
from sqlalchemy.schema import CreateSchema

from condaops.config.checks import parse_duration
from condaops.reconciler.state.recorder import QueuedBuild

log = logging.getLogger("condaops.schedule")

BUILD_TASK = "condaops.build"
PREVIEW_TASK = "condaops.preview"
PUBLISH_TASK = "condaops.publish"
UPDATE_TASK = "condaops.updates"
UPDATE_PREFIX = "updates:"  # schedule ids: updates:<source>
ADD_CONCURRENCY = 4  # schedules added at once by one submit (below the async engine's pool of 5)
SCHEMA = "apscheduler"  # APScheduler's tables, in their own schema of the state database
ROLES = {"both": SchedulerRole.both, "scheduler": SchedulerRole.scheduler, "worker": SchedulerRole.worker}


def shared(database_url: str) -> bool:
    """Whether the queue can be shared by several processes (PostgreSQL) or lives in memory."""
    return make_url(database_url).get_backend_name() == "postgresql"


def create_tables(conn: Connection) -> None:
    """APScheduler's schema and tables (PostgreSQL), made once by whoever holds the migration
    lock; processes starting later find them and create nothing (no race)."""
    if conn.dialect.name != "postgresql":
        return
    conn.execute(CreateSchema(SCHEMA, if_not_exists=True))
    store = SQLAlchemyDataStore(conn.engine, schema=SCHEMA)
    metadata = store.get_table_definitions()
    metadata.create_all(conn)
    version_table = metadata.tables[f"{SCHEMA}.metadata"]
    if conn.execute(select(version_table.c.schema_version)).scalar() is None:
        conn.execute(version_table.insert(), {"schema_version": 1})


def _backends(database_url: str) -> tuple[DataStore, EventBroker]:
    if not shared(database_url):
        return MemoryDataStore(), LocalEventBroker()
    from apscheduler.eventbrokers.psycopg import PsycopgEventBroker
    from sqlalchemy.ext.asyncio import create_async_engine

    url = make_url(database_url).set(drivername="postgresql+psycopg")
    engine = create_async_engine(url, pool_pre_ping=True)
    return SQLAlchemyDataStore(engine, schema=SCHEMA), PsycopgEventBroker.from_async_sqla_engine(engine)


def publish_slots(concurrency: int) -> int:
    """Publish jobs at once: at most one per core of this host. Publishing is CPU-bound
    (compression, hashing: it keeps a core busy) and holds its buffers while it runs, so
    more jobs than cores would only add memory (10 at once: ~1 GiB measured)."""
    return max(1, min(concurrency, os.cpu_count() or 1))


class BuildScheduler:
    """Queue builds, previews and publish jobs, and (unless ``role`` is ``scheduler``) run them.

    The task callables are blocking; they run in worker threads. ``role`` is ``both`` for
    ``condaops serve`` (schedule and run), ``scheduler`` for the reconciler role and
    ``worker`` for ``condaops worker``. ``slots`` is how many jobs this process runs at
    once (default ``concurrency``); ``concurrency`` holds across all processes.
    """

    def __init__(
        self,
        run_build: Callable[[int], None] | None,
        *,
        concurrency: int,
        run_preview: Callable[[int], None] | None = None,
        run_publish: Callable[[int], None] | None = None,
        database_url: str = "sqlite://",
        role: str = "both",
        slots: int | None = None,
        identity: str = "",
        run_updates: Callable[[str], None] | None = None,
    ) -> None:
        if role != "scheduler" and None in (run_build, run_preview, run_publish):
            raise ValueError("a process that runs jobs needs a callable for every task")
        self._tasks: tuple[tuple[str, Callable[..., None] | None, int], ...] = (
            (BUILD_TASK, run_build, concurrency),
            (PREVIEW_TASK, run_preview, max(1, concurrency // 2)),  # previews never take more than half
            (PUBLISH_TASK, run_publish, publish_slots(concurrency)),
        )
        if run_updates is not None or role == "scheduler":
            self._tasks += ((UPDATE_TASK, run_updates, 1),)  # one update run at a time
        slots = max(slots or concurrency, 1)
        data_store, event_broker = _backends(database_url)
        self._scheduler = AsyncScheduler(
            data_store,
            event_broker,
            identity=identity,
            role=ROLES[role],
            max_concurrent_jobs=slots,
            job_executors={"threadpool": ThreadPoolJobExecutor(max_workers=slots)},
            cleanup_interval=60,
        )
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> BuildScheduler:
        await self._stack.enter_async_context(self._scheduler)
        for task, func, limit in self._tasks:  # a scheduler-only process names the tasks without callables
            if func is None:
                await self._scheduler.configure_task(task, job_executor="threadpool", max_running_jobs=limit)
            else:
                await self._scheduler.configure_task(task, func=func, job_executor="threadpool", max_running_jobs=limit)
        await self._scheduler.start_in_background()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._scheduler.stop()
        await self._stack.aclose()

    def on_job_finished(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever a job of ours finishes, in this process or, through the
        event broker, in any other worker sharing the queue."""
        tasks = {task for task, _, _ in self._tasks}
        self._scheduler.subscribe(
            lambda event: callback() if isinstance(event, JobReleased) and event.task_id in tasks else None,
            {JobReleased},
        )

    async def submit(self, builds: Iterable[QueuedBuild], *, now: datetime | None = None) -> None:
        """Queue builds now; a build already pending under the same job id is left as is."""
        builds = list(builds)
        added = await self._add(BUILD_TASK, [(qb.job_id, qb.build_id) for qb in builds], now)
        for qb in builds:
            if qb.job_id in added:
                log.info("build_scheduled env=%s build=%s job=%s", qb.ref, qb.build_id, qb.job_id)

    async def submit_previews(self, preview_ids: Iterable[int], *, now: datetime | None = None) -> None:
        """Queue change-request preview builds (job id ``preview:<id>``)."""
        await self._add(PREVIEW_TASK, [(f"preview:{i}", i) for i in preview_ids], now)

    async def schedule_updates(self, schedules: dict[str, str]) -> None:
        """Recurring update runs: source -> ``updates.schedule`` (an interval or a cron
        expression). Schedules of sources no longer listed are removed; the others are
        replaced, so a changed schedule takes effect at the next start."""
        wanted = {f"{UPDATE_PREFIX}{source}": text for source, text in schedules.items()}
        for schedule in await self._scheduler.get_schedules():
            if schedule.id.startswith(UPDATE_PREFIX) and schedule.id not in wanted:
                with suppress(ScheduleLookupError):
                    await self._scheduler.remove_schedule(schedule.id)
        for schedule_id, text in sorted(wanted.items()):
            await self._scheduler.add_schedule(
                UPDATE_TASK,
                update_trigger(text),
                id=schedule_id,
                args=[schedule_id.removeprefix(UPDATE_PREFIX)],
                conflict_policy=ConflictPolicy.replace,
            )
            log.info("updates_scheduled id=%s schedule=%s", schedule_id, text)

    async def submit_publish(self, build_ids: Iterable[int], *, now: datetime | None = None) -> None:
        """Queue publishing of finished builds (job id ``publish:<build id>``)."""
        await self._add(PUBLISH_TASK, [(f"publish:{i}", i) for i in build_ids], now)

    async def _add(self, task: str, entries: list[tuple[str, int]], now: datetime | None) -> set[str]:
        """One-off schedules with deterministic ids; returns the ids added.

        An id already pending is kept, unless it is overdue by more than APScheduler's lease:
        a live scheduler turns a due schedule into a job at once, so that one was taken by a
        scheduler that died (APScheduler then waits for an event that never comes: it
        ignores schedules still marked as taken when it computes its next wake-up). It is
        added again, which also wakes the schedulers. An id that already fired is added
        again only once its job has finished (a retry of the same build, a publish whose
        worker died): a fired one-off schedule lingers until APScheduler's clean-up, and its
        job may still run. A duplicate job is harmless: the claim in the state DB runs a
        build once. Two reads per batch, whatever its size: re-submitting a thousand queued
        builds each pass costs no write for those already scheduled."""
        if not entries:
            return set()
        when = now or datetime.now(timezone.utc)
        wanted = {job_id for job_id, _ in entries}
        schedules = {s.id: s for s in await self._scheduler.data_store.get_schedules(wanted)}
        fired = {i for i, s in schedules.items() if s.next_fire_time is None}
        stuck_before = datetime.now(timezone.utc) - self._scheduler.lease_duration
        stuck = {i for i, s in schedules.items() if s.next_fire_time is not None and s.next_fire_time < stuck_before}
        busy = {j.schedule_id for j in await self._scheduler.get_jobs()} if fired else set()
        todo = [
            (job_id, arg)
            for job_id, arg in entries
            if job_id not in schedules or job_id in stuck or (job_id in fired and job_id not in busy)
        ]

        async def add(job_id: str, arg: int) -> None:
            if job_id in stuck:
                log.warning("schedule_stuck id=%s due=%s: added again", job_id, schedules[job_id].next_fire_time)
            if job_id in fired or job_id in stuck:
                with suppress(ScheduleLookupError):
                    await self._scheduler.remove_schedule(job_id)
            await self._scheduler.add_schedule(
                task, DateTrigger(when), id=job_id, args=[arg], conflict_policy=ConflictPolicy.do_nothing
            )

        # Each add is a transaction and a NOTIFY, awaited: ADD_CONCURRENCY adders taking
        # the entries in order overlap their round trips (within the async engine's pool).
        pending = iter(todo)

        async def adder() -> None:
            for job_id, arg in pending:
                await add(job_id, arg)

        async with anyio.create_task_group() as tg:
            for _ in range(min(ADD_CONCURRENCY, len(todo))):
                tg.start_soon(adder)
        return {job_id for job_id, _ in todo}


def update_trigger(text: str) -> IntervalTrigger | CronTrigger:
    """``6h`` / ``86400`` → every so long (first run one interval from now); five fields →
    cron, in UTC. The configuration loader has checked the text's shape."""
    seconds = parse_duration(text)
    if seconds is not None:
        return IntervalTrigger(seconds=seconds)
    return CronTrigger.from_crontab(text, timezone=timezone.utc)
