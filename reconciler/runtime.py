"""The composition root of the long-running process (``serve``, ``worker``) and of
``reconcile``: it wires the state DB, the reconciler, the workers and the loop
(``reconciler.loop``), the status site, the registry and the webhooks.

Only this module imports the site, the registry's app and the webhooks (an import-linter
contract). Read-only CLI commands never build a ``Runtime``: they open the state DB only
(``reconciler.state.db.open_existing``).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timezone

import anyio
from anyio import to_thread
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from condaops.config import ConfigError, Settings
from condaops.reconciler.changereqs.publish import ReviewPublisher
from condaops.reconciler.jobs import PublishRunner
from condaops.reconciler.loop import Jobs, ReconcileLoop, Summary
from condaops.reconciler.notify import StatusNotifier
from condaops.reconciler.schedule import create_tables, shared
from condaops.reconciler.service import Reconciler
from condaops.reconciler.state.db import head_revision, make_engine, migrate
from condaops.reconciler.worker import BuildWorker, PreviewWorker
from condaops.web.metrics import ServiceMetrics

__all__ = ["ROLES", "Runtime", "Summary", "prepare_database"]

log = logging.getLogger("condaops.runtime")
ROLES = ("all", "web", "reconciler", "worker")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def prepare_database(engine: Engine) -> None:
    """State schema (Alembic) and the scheduler's tables, once, under the migration lock.

    A SQLite state DB already at the newest revision is left alone without loading
    Alembic (one query against the migration files' numbers: ``state.db.head_revision``);
    SQLite has no scheduler tables to create. Anything else migrates as always."""
    if engine.dialect.name == "sqlite" and _sqlite_at_head(engine):
        return
    migrate(engine, also=[create_tables])


def _sqlite_at_head(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            found = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError:  # no schema yet (or no database file): migrate creates it
        return False
    return found == head_revision()


def _update_service(settings: Settings, engine: Engine, *, runs_jobs: bool, clock: Callable[[], datetime]):
    """Update pull requests (``reconciler.updates``), loaded only when a source asks for them."""
    if not any(s.updates is not None for s in settings.sources):
        return None
    from condaops.reconciler.updates.service import UpdateService

    return UpdateService(settings, engine, runs_jobs=runs_jobs, clock=clock)


GC_THRESHOLDS = (50_000, 20, 10)  # Python's default: (700, 10, 10)


def freeze_startup_objects() -> None:
    """Keep the garbage collector's full collections off a serving process's critical path.

    What start-up made (imports, settings, caches, recorded state) is long-lived: it is
    frozen, so full collections no longer walk it; and young collections run every 50,000
    allocations instead of 700, so full ones come rarely. At 10,000 environments, before,
    full collections stopped every thread, the web server's too, for 120-300 ms every few
    seconds while passes and builds ran, and freed nothing (docs/benchmarks.md)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    log.debug("gc_frozen objects=%d", gc.get_freeze_count())


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
        self.settings, self.role, self.clock = settings, role, clock
        self.engine = make_engine(settings.database_url)
        prepare_database(self.engine)
        self.shared = shared(settings.database_url)
        self.reconciler = Reconciler(settings, self.engine, clock=clock)
        self.metrics = ServiceMetrics()
        self.notifier = StatusNotifier(settings, self.engine)  # commit statuses (Git sources that ask)
        self.reviews = ReviewPublisher(settings, self.engine, self.reconciler.changes.recorder)  # PR comments
        if role in ("all", "reconciler"):
            self.reconciler.changes.listeners.append(self.reviews.on_change)
        self.runs_jobs = role in ("all", "worker")
        self.updates = _update_service(settings, self.engine, runs_jobs=self.runs_jobs, clock=clock)
        jobs = Jobs(updates=self.updates)
        self.loop = ReconcileLoop(
            self.reconciler,
            jobs,
            role=role,
            shared=self.shared,
            slots=slots,
            metrics=self.metrics,
            notifier=self.notifier,
            reviews=self.reviews,
            clock=clock,
        )
        if self.runs_jobs:
            self._wire_workers(jobs)

    def _wire_workers(self, jobs: Jobs) -> None:
        """Build, preview and publish jobs, and who hears about their outcomes."""
        self.worker = BuildWorker(self.settings, self.reconciler.recorder)
        self.previewer = PreviewWorker(self.settings, self.reconciler.changes.recorder, name=self.worker.name)
        for job in (self.worker, self.previewer):
            job.listeners.append(self.loop.on_build_event)
        self.worker.listeners.append(self.notifier.on_build_event)
        if self.role == "all":
            self.previewer.listeners.append(self.reviews.on_preview)
        self.worker.listeners.append(self.reconciler.deliveries.on_build_event)  # kernels, modulefiles, names
        publisher = PublishRunner(self.settings, self.reconciler.recorder, name=self.worker.name, done=self.wake)
        jobs.build, jobs.preview, jobs.publish, jobs.identity = self.worker, self.previewer, publisher, self.worker.name

    # --- what the CLI and the web side call -----------------------------------------

    def wake(self) -> None:
        """Ask for a reconcile pass soon (thread-safe)."""
        self.loop.wake()

    def refresh(self, source_names: Iterable[str]) -> None:
        """A webhook asked: read these sources now (thread-safe)."""
        self.loop.refresh(source_names)

    async def run_once(self, *, wait_retries: bool = False) -> Summary:
        """One pass and the builds it queued (``condaops reconcile``)."""
        return await self.loop.run_once(wait_retries=wait_retries)

    def summary(self) -> Summary:
        return self.loop.summary()

    # --- serve ----------------------------------------------------------------------

    async def serve(self, *, web: bool = True, stop: anyio.Event | None = None) -> None:
        """Run this process's role until ``stop`` is set (or cancelled)."""
        self.loop.bind()
        stop = stop or anyio.Event()
        server = self._web_server() if web and self.role != "worker" else None
        server_done, ready = anyio.Event(), anyio.Event()
        if self.role == "web":
            ready.set()
        async with anyio.create_task_group() as tg:
            if server is not None:
                tg.start_soon(self._run_server, server, server_done, stop, ready)
                if self.role != "reconciler" and self.settings.registry.gc_interval > 0:
                    tg.start_soon(self._collect_registry, stop)
            try:
                if self.role == "web":
                    await stop.wait()
                else:
                    await self.loop.serve(stop, ready)
            finally:
                if server is not None and ready.is_set():  # let uvicorn finish its lifespan first
                    server.should_exit = True
                    with anyio.move_on_after(10):
                        await server_done.wait()
                tg.cancel_scope.cancel()
        await self._close()
        if server is not None and ready.is_set() and not server.started:
            raise ConfigError(
                f"the web server could not listen on {self.settings.web.listen} (see the error "
                "above): free the port, or set another web.listen (or --no-web)",
                key="web.listen",
            )

    async def _close(self) -> None:
        await to_thread.run_sync(lambda: self.notifier.close(timeout=10.0))
        await to_thread.run_sync(lambda: self.reviews.close(timeout=10.0))
        if self.updates is not None:
            await to_thread.run_sync(lambda: self.updates.close(timeout=10.0))
        self.reconciler.close()

    @staticmethod
    async def _run_server(server, done: anyio.Event, stop: anyio.Event, ready: anyio.Event) -> None:
        """uvicorn, once the loop is ready (the queue recovered, the watchers started)."""
        try:
            await ready.wait()
            freeze_startup_objects()
            await server.serve()
        except SystemExit:  # uvicorn's way out when it cannot listen (it logged why)
            pass
        finally:
            done.set()
        if not server.started:  # stop rather than run on without the server
            stop.set()

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

    # --- the site, the registry and the webhooks --------------------------------------

    def _web_server(self):
        """uvicorn on ``web.listen``: the whole site (roles all and web), or only the
        operations endpoints (reconciler role: its pass and source figures)."""
        import uvicorn

        host, _, port = self.settings.web.listen.rpartition(":")
        config = uvicorn.Config(
            self._web_app(), host=host.strip("[]"), port=int(port), log_level="warning", lifespan="on", access_log=False
        )  # requests are counted in /metrics
        return uvicorn.Server(config)

    def _dynamic_builder(self, storage):
        """What builds dynamic images for the registry (the registry never builds), or None."""
        if not self.settings.dynamic.enabled:
            return None
        from condaops.reconciler.dynamic_builder import DynamicImageBuilder
        from condaops.registry.api import Registry

        return DynamicImageBuilder(self.settings, Registry(storage))

    def _web_app(self):
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
