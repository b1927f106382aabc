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
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone

import anyio
from anyio import to_thread
from sqlalchemy import Engine

from condaops.config import ConfigError, Settings
from condaops.reconciler.changereqs.publish import ReviewPublisher
from condaops.reconciler.model import BuildOutcome
from condaops.reconciler.notify import StatusNotifier
from condaops.reconciler.plan import BUILD
from condaops.reconciler.schedule import BuildScheduler, create_tables, shared
from condaops.reconciler.service import PassResult, Reconciler
from condaops.reconciler.state.db import make_engine, migrate
from condaops.reconciler.state.queries import count_active_builds, list_environments, unpublished_builds
from condaops.reconciler.state.review_queries import count_active_previews
from condaops.reconciler.status import derive_state
from condaops.reconciler.worker import BuildWorker, LeaseKeeper, PreviewWorker
from condaops.web.metrics import ServiceMetrics

log = logging.getLogger("condaops.runtime")
REFRESH_POLL = 1.0  # seconds between looks for webhook refresh requests from web-role processes


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


ROLES = ("all", "web", "reconciler", "worker")


def _update_service(settings: Settings, engine: Engine, *, runs_jobs: bool, clock: Callable[[], datetime]):  # type: ignore[no-untyped-def]
    """Update pull requests (``reconciler.updates``), loaded only when a source asks for them."""
    if not any(s.updates is not None for s in settings.sources):
        return None
    from condaops.reconciler.updates.service import UpdateService

    return UpdateService(settings, engine, runs_jobs=runs_jobs, clock=clock)


def prepare_database(engine: Engine) -> None:
    """State schema (Alembic) and the scheduler's tables, once, under the migration lock."""
    migrate(engine, also=[create_tables])


class Runtime:
    """One process: the state DB and, by ``role``, the reconcile loop (``reconciler``), the
    web server (``web``), the build workers (``worker``) or all three (``all``).

    ``all`` is the single-host default (SQLite works); every other role shares PostgreSQL
    with the others: the state, APScheduler's queue and its event broker.
    """

    def __init__(
        self, settings: Settings, *, role: str = "all", slots: int | None = None, clock: Callable[[], datetime] = utcnow
    ) -> None:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
        if role != "all" and not shared(settings.database_url):
            raise ConfigError(
                f"the {role} role shares its state and queue with other processes: set "
                "database to postgresql+psycopg://user@host/db (SQLite is for one process)",
                key="database",
                file=str(settings.config_file or "") or None,
            )
        self.settings = settings
        self.role = role
        self.slots = slots
        self.clock = clock
        self.engine = make_engine(settings.database_url)
        prepare_database(self.engine)
        self.shared = shared(settings.database_url)
        self.reconciler = Reconciler(settings, self.engine, clock=clock)
        self.metrics = ServiceMetrics()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self.notifier = StatusNotifier(settings, self.engine)  # commit statuses (Git sources that ask)
        self.reviews = ReviewPublisher(settings, self.engine, self.reconciler.changes.recorder)  # PR comments
        if role in ("all", "reconciler"):
            self.reconciler.changes.listeners.append(self.reviews.on_change)
        self.runs_jobs = role in ("all", "worker")
        self.updates = _update_service(settings, self.engine, runs_jobs=self.runs_jobs, clock=clock)
        self._publisher: Callable[[int], None] | None = None
        if self.runs_jobs:
            self.worker = BuildWorker(settings, self.reconciler.recorder)
            self.previewer = PreviewWorker(settings, self.reconciler.changes.recorder, name=self.worker.name)
            for job in (self.worker, self.previewer):
                job.listeners.append(self._on_build_event)
            self.worker.listeners.append(self.notifier.on_build_event)
            if role == "all":
                self.previewer.listeners.append(self.reviews.on_preview)
            self.worker.listeners.append(self.reconciler.deliveries.on_build_event)  # kernels, modulefiles, names
            lease = settings.build.lease
            renew = self.reconciler.recorder.renew_publish
            self._publish_leases = LeaseKeeper(lambda ids: renew(ids, self.worker.name, lease=lease), lease)
        self._delivered = False  # every environment's deliveries checked once per start (settings may have changed)

    def publish(self, build_id: int) -> None:
        """The publish job; the publishing code (image layers, registry) loads on first use.
        A build is published once: the job first claims it in the state DB (another queued
        job for it, here or in another process, returns at once). Whatever happens, the
        build ends up handled (``published_at``), never re-run forever."""
        recorder = self.reconciler.recorder
        if not recorder.claim_publish(build_id, self.worker.name, lease=self.settings.build.lease):
            log.debug("publish_skipped build=%s reason=NotClaimed", build_id)
            return
        self._publish_leases.hold(build_id)
        try:
            if self._publisher is None:
                from condaops.reconciler.publish.job import PublishJob

                self._publisher = PublishJob(self.settings, self.reconciler.recorder, name=self.worker.name)
            self._publisher(build_id)
        except Exception as exc:  # PublishJob records its own failures; this is the case it could not
            log.exception("publish_crashed build=%s", build_id)
            self.reconciler.recorder.add_artifacts(build_id, [], error=f"InternalError: {type(exc).__name__}: {exc}")
        finally:
            self._publish_leases.release(build_id)
            self.wake()

    # --- wake-ups from other threads ----------------------------------------------

    def _on_build_event(self, build_id: int, outcome: BuildOutcome | None) -> None:
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
        jobs = self.runs_jobs
        return BuildScheduler(
            self.worker if jobs else None,
            concurrency=self.settings.build.concurrency,
            run_preview=self.previewer if jobs else None,
            run_publish=self.publish if jobs else None,
            database_url=self.settings.database_url,
            slots=self.slots,
            role={"all": "both", "reconciler": "scheduler", "worker": "worker"}[self.role],
            identity=self.worker.name if jobs else "",
            run_updates=self.updates.job if self.updates else None,
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
        if self.updates is not None:  # update pull requests, likewise
            await to_thread.run_sync(self.updates.catch_up)
        return result

    # --- one pass, then the builds it queued --------------------------------------

    async def run_once(self, *, wait_retries: bool = False) -> Summary:
        """Reconcile once and run the queued builds; with ``wait_retries`` also their retries."""
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
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

    async def serve(self, *, web: bool = True, stop: anyio.Event | None = None) -> None:
        """Run this process's role until ``stop`` is set (or cancelled)."""
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        stop = stop or anyio.Event()
        reconciles = self.role in ("all", "reconciler")
        scheduling = nullcontext(None) if self.role == "web" else self._scheduler()
        async with scheduling as sched, anyio.create_task_group() as tg:
            if reconciles:
                assert sched is not None
                sched.on_job_finished(self.wake)  # also jobs other processes ran (event broker)
                await self._submit_recovered(sched, everything=not self.shared)
                if self.updates is not None:
                    await self.updates.schedule(sched)
                for watcher in self._watchers():
                    tg.start_soon(watcher, stop)
                if self.shared:
                    tg.start_soon(self._take_refresh_requests, stop)
            server = self._web_server() if web and self.role != "worker" else None
            if server is not None and self.role != "reconciler" and self.settings.registry.gc_interval > 0:
                tg.start_soon(self._collect_registry, stop)
            server_done = anyio.Event()
            if server is not None:

                async def run_server() -> None:
                    try:
                        await server.serve()
                    except SystemExit:  # uvicorn's way out when it cannot listen (it logged why)
                        pass
                    finally:
                        server_done.set()
                    if not server.started:  # stop rather than run on without the server
                        stop.set()

                tg.start_soon(run_server)

            async def wake_on_stop() -> None:
                await stop.wait()
                self.wake()

            tg.start_soon(wake_on_stop)
            try:
                if reconciles:
                    assert sched is not None
                    await self._pass_loop(sched, stop)
                else:
                    await stop.wait()
            finally:
                if server is not None:  # let uvicorn finish its lifespan before cancelling the rest
                    server.should_exit = True
                    with anyio.move_on_after(10):
                        await server_done.wait()
                tg.cancel_scope.cancel()
        await to_thread.run_sync(lambda: self.notifier.close(timeout=10.0))
        await to_thread.run_sync(lambda: self.reviews.close(timeout=10.0))
        if self.updates is not None:
            await to_thread.run_sync(lambda: self.updates.close(timeout=10.0))  # type: ignore[union-attr]
        self.reconciler.close()
        if server is not None and not server.started:
            raise ConfigError(
                f"the web server could not listen on {self.settings.web.listen} (see the error "
                "above): free the port, or set another web.listen (or --no-web)",
                key="web.listen",
            )

    async def _collect_registry(self, stop: anyio.Event) -> None:
        """Every ``registry.gc_interval``: abandoned uploads and surplus dynamic images go
        (``registry.collect``; idempotent, so every process serving the registry may run it)."""
        from condaops.registry.backends import open_storage
        from condaops.registry.collect import collect_registry

        storage = open_storage(self.settings)
        try:
            while not stop.is_set():
                with anyio.move_on_after(self.settings.registry.gc_interval):
                    await stop.wait()
                if stop.is_set():
                    return
                try:
                    await to_thread.run_sync(lambda: collect_registry(self.settings, storage))
                except Exception:  # storage trouble: try again next time, the service goes on
                    log.warning("registry_gc_failed", exc_info=True)
        finally:
            storage.close()

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
            await anyio.sleep(max(0.05, took))  # coalesce bursts of wake-ups into one pass

    def _watchers(self) -> list[Callable[[anyio.Event], object]]:
        """One watcher task per directory source; each change asks for a pass."""
        from condaops.reconciler.sources.watch import DirectoryWatcher

        def task(src):  # type: ignore[no-untyped-def]
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

    def _web_server(self):  # type: ignore[no-untyped-def]
        """uvicorn on ``web.listen``: the whole site (roles all and web), or only the
        operations endpoints (reconciler role: its pass and source figures)."""
        import uvicorn

        host, _, port = self.settings.web.listen.rpartition(":")
        config = uvicorn.Config(
            self._web_app(), host=host.strip("[]"), port=int(port), log_level="warning", lifespan="on", access_log=False
        )  # requests are counted in /metrics
        return uvicorn.Server(config)

    def _dynamic_builder(self, storage):  # type: ignore[no-untyped-def]
        """What builds dynamic images for the registry (the registry never builds), or None."""
        if not self.settings.dynamic.enabled:
            return None
        from condaops.reconciler.dynamic_builder import DynamicImageBuilder
        from condaops.registry.api import Registry

        return DynamicImageBuilder(self.settings, Registry(storage))

    def _web_app(self):  # type: ignore[no-untyped-def]
        from condaops.web.app import create_app, create_ops_app

        if self.role == "reconciler":
            return create_ops_app(self.settings, self.engine, metrics=self.metrics)
        from condaops.registry.app import registry_router
        from condaops.registry.backends import open_storage
        from condaops.web.hooks import hooks_router

        storage = open_storage(self.settings)
        registry = registry_router(
            self.settings,
            storage,
            observe=lambda method, status, got, sent: self.metrics.registry_request(
                method, status, bytes_in=got, bytes_out=sent
            ),
            dynamic_builder=self._dynamic_builder(storage),
        )
        hooks = hooks_router(self.settings, self.refresh)
        return create_app(
            self.settings, self.engine, metrics=self.metrics, routers=[registry, hooks], sources_gate=self.role == "all"
        )
