"""The long-running loops: ``reconcile --once`` and ``serve``.

Wires the state DB, the reconciler, the scheduler and the workers together. Passes are
triggered by source changes (watchers), by finished builds, by due retries and by a
periodic safety timer; every pass is the same ``Reconciler.reconcile_once``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

import anyio
from anyio import to_thread

from condaops.config import Settings
from condaops.reconciler.model import BuildOutcome
from condaops.reconciler.notify import StatusNotifier
from condaops.reconciler.plan import BUILD
from condaops.reconciler.schedule import BuildScheduler
from condaops.reconciler.service import Reconciler
from condaops.reconciler.state.db import make_engine, migrate
from condaops.reconciler.state.queries import count_active_builds, count_active_previews, list_environments
from condaops.reconciler.status import derive_state
from condaops.reconciler.worker import BuildWorker, PreviewWorker
from condaops.web.metrics import ServiceMetrics

log = logging.getLogger("condaops.runtime")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True, slots=True)
class Summary:
    """Environment counts by state after a run."""

    counts: dict[str, int]
    failed: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.failed


class Runtime:
    """One process's view: state DB, reconciler and an in-process build worker."""

    def __init__(self, settings: Settings, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.clock = clock
        self.engine = make_engine(settings.database_url)
        migrate(self.engine)
        self.reconciler = Reconciler(settings, self.engine, clock=clock)
        self.worker = BuildWorker(settings, self.reconciler.recorder)
        self.previewer = PreviewWorker(settings, self.reconciler.changes.recorder)
        self.previewer.listeners.append(self._on_build_event)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self.worker.listeners.append(self._on_build_event)
        self.metrics = ServiceMetrics()
        self.notifier = StatusNotifier(settings, self.engine)  # commit statuses (Git sources that ask)
        self.worker.listeners.append(self.notifier.on_build_event)

    # --- wake-ups from other threads ----------------------------------------------

    def _on_build_event(self, build_id: int, outcome: BuildOutcome | None) -> None:
        if outcome is not None:
            self.wake()

    def wake(self) -> None:
        """Ask for a reconcile pass soon (thread-safe)."""
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def refresh(self, source_names: Iterable[str]) -> None:
        """Read these sources now, skipping any failure backoff (a webhook asked; thread-safe)."""
        self.reconciler.force_read(source_names)
        self.wake()

    async def _wait_for_wake(self, timeout: float) -> None:
        assert self._wake is not None
        with anyio.move_on_after(max(timeout, 0.0)):
            await self._wake.wait()
        self._wake.clear()

    def _scheduler(self) -> BuildScheduler:
        return BuildScheduler(self.worker, concurrency=self.settings.build.concurrency, run_preview=self.previewer)

    # --- one pass, then the builds it queued --------------------------------------

    async def run_once(self, *, wait_retries: bool = False) -> Summary:
        """Reconcile once and run the queued builds; with ``wait_retries`` also their retries."""
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        async with self._scheduler() as sched:
            await sched.submit(await to_thread.run_sync(self.reconciler.recover))
            await sched.submit_previews(await to_thread.run_sync(self.reconciler.changes.recorder.recover_previews))
            while True:
                result = await to_thread.run_sync(self.reconciler.reconcile_once)
                await sched.submit(result.queued)
                await sched.submit_previews(result.previews)
                await self._until_idle()
                if not wait_retries:
                    break
                nxt = await to_thread.run_sync(self._next_step)
                if nxt is None:
                    break
                await self._sleep_until(nxt)
        await to_thread.run_sync(self.notifier.drain, 30.0)  # --once exits next: send the last statuses
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

    async def _until_idle(self) -> None:
        while await to_thread.run_sync(self._active_builds):
            await self._wait_for_wake(1.0)

    def _active_builds(self) -> int:
        return count_active_builds(self.engine) + count_active_previews(self.engine)

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

    async def serve(self, *, web: bool = True, stop: anyio.Event | None = None) -> None:
        """Run until ``stop`` is set (or cancelled): watchers, passes, builds and the web server."""
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        stop = stop or anyio.Event()
        async with self._scheduler() as sched, anyio.create_task_group() as tg:
            await sched.submit(await to_thread.run_sync(self.reconciler.recover))
            await sched.submit_previews(await to_thread.run_sync(self.reconciler.changes.recorder.recover_previews))
            for watcher in self._watchers():
                tg.start_soon(watcher, stop)
            server = self._web_server() if web else None
            server_done = anyio.Event()
            if server is not None:

                async def run_server() -> None:
                    try:
                        await server.serve()
                    finally:
                        server_done.set()

                tg.start_soon(run_server)

            async def wake_on_stop() -> None:
                await stop.wait()
                self.wake()

            tg.start_soon(wake_on_stop)
            try:
                await self._pass_loop(sched, stop)
            finally:
                if server is not None:  # let uvicorn finish its lifespan before cancelling the rest
                    server.should_exit = True
                    with anyio.move_on_after(10):
                        await server_done.wait()
                tg.cancel_scope.cancel()
        await to_thread.run_sync(lambda: self.notifier.close(timeout=10.0))

    async def _pass_loop(self, sched: BuildScheduler, stop: anyio.Event) -> None:
        interval = min((s.interval for s in self.settings.sources), default=60.0)
        while not stop.is_set():
            started = time.monotonic()
            try:
                result = await to_thread.run_sync(self.reconciler.reconcile_once)
                await sched.submit(result.queued)
                await sched.submit_previews(result.previews)
                # Builds queued by another process (CLI, a previous run) are picked up too.
                await sched.submit(await to_thread.run_sync(self.reconciler.recorder.queued))
                nxt = result.plan.next_wakeup()
                self.metrics.observe_reconcile(time.monotonic() - started)
                for snap in result.snapshots:
                    self.metrics.source_fetched(snap.source, ok=snap.error is None)
            except Exception:  # a pass must never take the service down
                log.exception("reconcile_failed")
                self.metrics.observe_reconcile(time.monotonic() - started, ok=False)
                nxt = None
            timeout = interval
            if nxt is not None:
                timeout = min(timeout, max((nxt - self.clock()).total_seconds(), 0.0))
            await self._wait_for_wake(timeout)
            await anyio.sleep(0.05)  # coalesce bursts of wake-ups into one pass

    def _watchers(self) -> list[Callable[[anyio.Event], object]]:
        """One watcher task per directory source; each change asks for a pass."""
        from condaops.reconciler.sources.watch import DirectoryWatcher

        def task(src):  # type: ignore[no-untyped-def]
            async def watch(stop: anyio.Event) -> None:
                watcher = DirectoryWatcher(src)
                async with anyio.create_task_group() as tg:
                    async def stopper() -> None:
                        await stop.wait()
                        watcher.stop()

                    tg.start_soon(stopper)
                    await watcher.run(lambda paths: self.wake())
                    tg.cancel_scope.cancel()

            return watch

        return [task(src) for src in self.settings.sources if src.directory is not None]

    def _web_server(self):  # type: ignore[no-untyped-def]
        import uvicorn

        from condaops.registry.app import registry_router
        from condaops.registry.storage import open_storage
        from condaops.web.app import create_app
        from condaops.web.hooks import hooks_router

        host, _, port = self.settings.web.listen.rpartition(":")
        registry = registry_router(self.settings, open_storage(self.settings),
                                   observe=lambda method, status, got, sent: self.metrics.registry_request(
                                       method, status, bytes_in=got, bytes_out=sent))
        hooks = hooks_router(self.settings, self.refresh)
        app = create_app(self.settings, self.engine, metrics=self.metrics, routers=[registry, hooks])
        config = uvicorn.Config(app, host=host.strip("[]"), port=int(port), log_level="warning", lifespan="on")
        return uvicorn.Server(config)
