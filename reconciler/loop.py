"""The reconcile loop: passes, the builds they queue, and what wakes them.

Passes are triggered by source changes (watchers), by finished builds, by due retries,
by webhooks and by a periodic safety timer; every pass is the same
``Reconciler.reconcile_once``. ``run_once`` is ``condaops reconcile``; ``serve`` is the
loop of ``condaops serve`` (roles ``all``, ``reconciler`` and ``worker``). What the loop
runs and talks to is handed in by the composition root (``reconciler.runtime``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import anyio
from anyio import to_thread

from condaops.reconciler.model import BuildOutcome
from condaops.reconciler.plan import BUILD
from condaops.reconciler.schedule import BuildScheduler
from condaops.reconciler.service import PassResult, Reconciler
from condaops.reconciler.state.queries import count_active_builds, list_environments, unpublished_builds
from condaops.reconciler.state.review_queries import count_active_previews
from condaops.reconciler.status import derive_state

log = logging.getLogger("condaops.runtime")
REFRESH_POLL = 1.0  # seconds between looks for webhook refresh requests from web-role processes
SCHEDULER_ROLES = {"all": "both", "reconciler": "scheduler", "worker": "worker"}


class PassMetrics(Protocol):
    """Where the loop reports its passes (``web.metrics.ServiceMetrics``)."""

    def observe_reconcile(self, seconds: float, *, ok: bool = True) -> None: ...
    def source_fetched(self, source: str, *, ok: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class Summary:
    """Environment counts by state after a run."""

    counts: dict[str, int]
    failed: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass
class Jobs:
    """What this process runs from the queue (``None``: another process runs it)."""

    build: Callable[[int], None] | None = None
    preview: Callable[[int], None] | None = None
    publish: Callable[[int], None] | None = None
    updates: Any = None  # reconciler.updates.service.UpdateService, when a source asks for updates
    identity: str = ""


class ReconcileLoop:
    """Passes and their builds for one process of ``role`` (all, reconciler or worker)."""

    def __init__(
        self,
        reconciler: Reconciler,
        jobs: Jobs,
        *,
        role: str,
        shared: bool,
        slots: int | None,
        metrics: PassMetrics,
        notifier: Any,
        reviews: Any,
        clock: Callable[[], datetime],
    ) -> None:
        self.reconciler = reconciler
        self.settings = reconciler.settings
        self.engine = reconciler.engine
        self.jobs = jobs
        self.role = role
        self.shared = shared
        self.slots = slots
        self.metrics = metrics
        self.notifier = notifier
        self.reviews = reviews
        self.clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._delivered = False  # every environment's deliveries checked once per start (settings may have changed)

    # --- wake-ups from other threads ----------------------------------------------

    def bind(self) -> None:
        """Take wake-ups on the running event loop (call first in ``run_once``/``serve``)."""
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()

    def on_build_event(self, build_id: int, outcome: BuildOutcome | None) -> None:
        if outcome is not None:
            self.wake()

    def wake(self) -> None:
        """Ask for a reconcile pass soon (thread-safe)."""
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def refresh(self, source_names: Iterable[str]) -> None:
        """Read these sources now, skipping any failure backoff (a webhook asked; thread-safe).
        A web-only process asks the reconciler role through the database."""
        if self.role == "web":
            self.reconciler.recorder.request_refresh(source_names)
            return
        self.reconciler.force_read(source_names)
        self.wake()

    async def _wait_for_wake(self, timeout: float) -> None:
        assert self._wake is not None
        with anyio.move_on_after(max(timeout, 0.0)):
            await self._wake.wait()
        self._wake.clear()

    def _scheduler(self) -> BuildScheduler:
        jobs = self.jobs
        return BuildScheduler(
            jobs.build,
            concurrency=self.settings.build.concurrency,
            run_preview=jobs.preview,
            run_publish=jobs.publish,
            database_url=self.settings.database_url,
            slots=self.slots,
            role=SCHEDULER_ROLES[self.role],
            identity=jobs.identity,
            run_updates=jobs.updates.job if jobs.updates else None,
        )

    # --- what a reconciling process submits ------------------------------------------

    async def _submit_recovered(self, sched: BuildScheduler, *, everything: bool) -> None:
        """Builds and previews whose worker is gone go back to the queue; with everything
        else queued (a previous run, the CLI, another process) they are submitted. The first
        time, every environment's deliveries are brought in step with the settings."""
        if not self._delivered:
            self._delivered = True
            await to_thread.run_sync(self.reconciler.deliveries.sync_all)
        await sched.submit(await to_thread.run_sync(lambda: self.reconciler.recover(everything=everything)))
        recover_previews = self.reconciler.changes.recorder.recover_previews
        await sched.submit_previews(await to_thread.run_sync(lambda: recover_previews(everything=everything)))
        await self._submit_publishing(sched)

    async def _submit_publishing(self, sched: BuildScheduler) -> None:
        if self.settings.publish.enabled:
            await sched.submit_publish(await to_thread.run_sync(unpublished_builds, self.engine))

    async def _pass(self, sched: BuildScheduler) -> PassResult:
        result = await to_thread.run_sync(self.reconciler.reconcile_once)
        await sched.submit(result.queued)
        await sched.submit_previews(result.previews)
        await self._submit_publishing(sched)
        if self.reviews.enabled:  # reviews the forge has not seen yet (failures, other processes)
            await to_thread.run_sync(self.reviews.catch_up)
        if self.jobs.updates is not None:  # update pull requests, likewise
            await to_thread.run_sync(self.jobs.updates.catch_up)
        return result

    # --- one pass, then the builds it queued --------------------------------------

    async def run_once(self, *, wait_retries: bool = False) -> Summary:
        """Reconcile once and run the queued builds; with ``wait_retries`` also their retries."""
        self.bind()
        async with self._scheduler() as sched:
            await self._submit_recovered(sched, everything=not self.shared)
            while True:
                await self._pass(sched)
                await self._until_idle(sched)
                if not wait_retries:
                    break
                nxt = await to_thread.run_sync(self._next_step)
                if nxt is None:
                    break
                await self._sleep_until(nxt)
        await to_thread.run_sync(self.notifier.drain, 30.0)  # --once exits next: send the last statuses
        if self.reviews.enabled:
            await to_thread.run_sync(self.reviews.catch_up)  # the previews' outcomes, too
            await to_thread.run_sync(self.reviews.drain, 30.0)
        return await to_thread.run_sync(self.summary)

    def _next_step(self) -> datetime | None:
        """Now if a build is due, the next retry time if one waits, None when all is settled."""
        p = self.reconciler.plan()
        if p.by_kind(BUILD):
            return self.clock()
        return p.next_wakeup()

    async def _sleep_until(self, when: datetime) -> None:
        delay = (when - self.clock()).total_seconds()
        if delay > 0:
            log.info("waiting_for_retry seconds=%.1f", delay)
            await anyio.sleep(delay)

    async def _until_idle(self, sched: BuildScheduler) -> None:
        """Until nothing is queued, building or waiting to be published (builds that finish
        meanwhile get their publish job here)."""
        while True:
            await self._submit_publishing(sched)
            if not await to_thread.run_sync(self._active_jobs):
                return
            await self._wait_for_wake(1.0)

    def _active_jobs(self) -> int:
        publishing = len(unpublished_builds(self.engine)) if self.settings.publish.enabled else 0
        return count_active_builds(self.engine) + count_active_previews(self.engine) + publishing

    def summary(self) -> Summary:
        counts: dict[str, int] = {}
        failed = []
        for env in list_environments(self.engine):
            state, _, _ = derive_state(env, retries=self.settings.build.retries)
            counts[state] = counts.get(state, 0) + 1
            if state == "failed":
                failed.append(str(env.ref))
        return Summary(counts, tuple(failed))

    # --- serve ----------------------------------------------------------------------

    async def serve(self, stop: anyio.Event, ready: anyio.Event | None = None) -> None:
        """Schedule (and, by role, reconcile) until ``stop`` is set; ``bind()`` first.
        ``ready`` is set once the scheduler runs and the queue is recovered (the site
        starts then, as it always has)."""
        ready = ready or anyio.Event()
        async with self._scheduler() as sched, anyio.create_task_group() as tg:
            if self.role in ("all", "reconciler"):
                sched.on_job_finished(self.wake)  # also jobs other processes ran (event broker)
                await self._submit_recovered(sched, everything=not self.shared)
                if self.jobs.updates is not None:
                    await self.jobs.updates.schedule(sched)
                for watcher in self._watchers():
                    tg.start_soon(watcher, stop)
                if self.shared:
                    tg.start_soon(self._take_refresh_requests, stop)

                async def wake_on_stop() -> None:
                    await stop.wait()
                    self.wake()

                tg.start_soon(wake_on_stop)
                ready.set()
                await self._pass_loop(sched, stop)
            else:
                ready.set()
                await stop.wait()
            tg.cancel_scope.cancel()

    async def _take_refresh_requests(self, stop: anyio.Event) -> None:
        """Webhooks received by web-role processes arrive as rows in the state DB."""
        while not stop.is_set():
            try:
                names = await to_thread.run_sync(self.reconciler.recorder.take_refresh_requests)
                if names:
                    log.info("refresh_requested sources=%s", ",".join(names))
                    self.refresh(names)
            except Exception:
                log.warning("refresh_requests_failed", exc_info=True)
            await anyio.sleep(REFRESH_POLL)

    async def _pass_loop(self, sched: BuildScheduler, stop: anyio.Event) -> None:
        """Passes on every wake-up (source change, finished job, webhook), on due retries and
        on a timer. A pass that took t seconds is followed by at least t seconds of rest, so
        a stream of finished builds costs at most half of a core; the whole queue is
        re-submitted (builds another process queued, builds whose worker died) on its own,
        slower timer, not on every pass."""
        interval = min((s.interval for s in self.settings.sources), default=60.0)
        recover_every = min(interval, self.settings.build.lease / 2)
        recovered = time.monotonic()
        while not stop.is_set():
            started = time.monotonic()
            try:
                result = await self._pass(sched)
                if started - recovered >= recover_every:
                    await self._submit_recovered(sched, everything=False)
                    recovered = started
                nxt = result.plan.next_wakeup()
                self.metrics.observe_reconcile(time.monotonic() - started)
                for snap in result.snapshots:
                    self.metrics.source_fetched(snap.source, ok=snap.error is None)
            except Exception:  # a pass must never take the service down
                log.exception("reconcile_failed")
                self.metrics.observe_reconcile(time.monotonic() - started, ok=False)
                nxt = None
            took = time.monotonic() - started
            timeout = min(interval, recover_every)
            if nxt is not None:
                timeout = min(timeout, max((nxt - self.clock()).total_seconds(), 0.0))
            await self._wait_for_wake(timeout)
            # Coalesce bursts of wake-ups into one pass; the rest owed for the last pass
            # counts from its end, so a wake-up after a quiet spell (a file change) does
            # not wait for it again.
            await anyio.sleep(max(0.05, took - (time.monotonic() - started - took)))

    def _watchers(self) -> list[Callable[[anyio.Event], Awaitable[None]]]:
        """One watcher task per directory source; each change asks for a pass."""
        from condaops.reconciler.sources.watch import DirectoryWatcher

        def task(src):
            async def watch(stop: anyio.Event) -> None:
                watcher = DirectoryWatcher(src)
                # Passes read this source again only when the watcher reports (or at the full check).
                with self.reconciler.follow(src.name, ready=lambda: watcher.watching) as changed:
                    async with anyio.create_task_group() as tg:

                        async def stopper() -> None:
                            await stop.wait()
                            watcher.stop()

                        tg.start_soon(stopper)

                        def on_change(paths: frozenset[str]) -> None:
                            changed(paths)
                            self.wake()

                        await watcher.run(on_change)
                        tg.cancel_scope.cancel()

            return watch

        return [task(src) for src in self.settings.sources if src.directory is not None]
