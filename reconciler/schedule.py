"""Build scheduling on APScheduler 4 — the only module that imports apscheduler.

Each queued build becomes a one-off schedule whose id is deterministic
(``build:<ns>/<name>:<spec-hash>``, see ``QueuedBuild.job_id``); adding it again while
it is pending does nothing (``ConflictPolicy.do_nothing``). The build task runs in
APScheduler's thread pool, limited to ``build.concurrency`` running jobs. APScheduler
has no retries: failures are recorded and ``plan`` schedules retries with backoff.

The state DB's compare-and-set claim (``Recorder.claim``) is the final guard: a job
whose build is no longer queued returns at once, so a duplicate job never runs a build
twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack
from datetime import datetime, timezone

from apscheduler import AsyncScheduler, ConflictPolicy, ScheduleLookupError, SchedulerRole
from apscheduler.abc import DataStore, EventBroker
from apscheduler.datastores.memory import MemoryDataStore
from apscheduler.eventbrokers.local import LocalEventBroker
from apscheduler.executors.thread import ThreadPoolJobExecutor
from apscheduler.triggers.date import DateTrigger

from condaops.reconciler.state.recorder import QueuedBuild

log = logging.getLogger("condaops.schedule")

BUILD_TASK = "condaops.build"
PREVIEW_TASK = "condaops.preview"


class BuildScheduler:
    """Queue builds and run them on in-process workers.

    ``run_build(build_id)`` is a blocking callable; it runs in a worker thread.
    ``role`` is ``both`` for ``condaops serve`` (schedule and run), ``scheduler`` for a
    web/reconciler-only process and ``worker`` for ``condaops worker``.
    """

    def __init__(
        self,
        run_build: Callable[[int], None],
        *,
        concurrency: int,
        run_preview: Callable[[int], None] | None = None,
        data_store: DataStore | None = None,
        event_broker: EventBroker | None = None,
        role: str = "both",
        identity: str = "",
    ) -> None:
        self._run_build = run_build
        self._run_preview = run_preview
        self._concurrency = concurrency
        self._scheduler = AsyncScheduler(
            data_store or MemoryDataStore(),
            event_broker or LocalEventBroker(),
            identity=identity,
            role=SchedulerRole[role],
            job_executors={"threadpool": ThreadPoolJobExecutor(max_workers=max(concurrency, 1))},
            cleanup_interval=60,
        )
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> BuildScheduler:
        await self._stack.enter_async_context(self._scheduler)
        await self._scheduler.configure_task(
            BUILD_TASK,
            func=self._run_build,
            job_executor="threadpool",
            max_running_jobs=self._concurrency,
        )
        if self._run_preview is not None:  # previews never take more than half the slots
            await self._scheduler.configure_task(
                PREVIEW_TASK,
                func=self._run_preview,
                job_executor="threadpool",
                max_running_jobs=max(1, self._concurrency // 2),
            )
        await self._scheduler.start_in_background()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._scheduler.stop()
        await self._stack.aclose()

    async def submit(self, builds: Iterable[QueuedBuild], *, now: datetime | None = None) -> None:
        """Queue builds now; a build already pending under the same job id is left as is."""
        when = now or datetime.now(timezone.utc)
        for qb in builds:
            await self._add(BUILD_TASK, qb.job_id, qb.build_id, when)
            log.info("build_scheduled env=%s build=%s job=%s", qb.ref, qb.build_id, qb.job_id)

    async def submit_previews(self, preview_ids: Iterable[int], *, now: datetime | None = None) -> None:
        """Queue change-request preview builds (job id ``preview:<id>``)."""
        when = now or datetime.now(timezone.utc)
        for preview_id in preview_ids:
            await self._add(PREVIEW_TASK, f"preview:{preview_id}", preview_id, when)

    async def _add(self, task: str, job_id: str, arg: int, when: datetime) -> None:
        """A one-off schedule with a deterministic id; a pending one with that id is kept."""
        await self._forget_fired(job_id)
        await self._scheduler.add_schedule(task, DateTrigger(when), id=job_id, args=[arg],
                                           conflict_policy=ConflictPolicy.do_nothing)

    async def _forget_fired(self, schedule_id: str) -> None:
        """A one-off schedule that already fired lingers until APScheduler's clean-up; a
        retry of the same build (same job id) must not be swallowed by it."""
        try:
            schedule = await self._scheduler.get_schedule(schedule_id)
        except ScheduleLookupError:
            return
        if schedule.next_fire_time is None:
            await self._scheduler.remove_schedule(schedule_id)
