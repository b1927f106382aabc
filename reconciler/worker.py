"""The build job: claim a queued build, run its steps, record the outcome.

This is the callable APScheduler runs (in a worker thread). The claim is a
compare-and-set in the state DB, so a duplicate or stale job returns at once.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from condaops.config import Settings
from condaops.reconciler.build.link import read_link
from condaops.reconciler.build.memory import limit_arenas, release_memory
from condaops.reconciler.build.runner import BuildContext, run_build
from condaops.reconciler.model import BuildOutcome, BuildTicket
from condaops.reconciler.state.recorder import Recorder
from condaops.reconciler.state.review_recorder import PREVIEW_REUSED, ReviewRecorder
from condaops.reconciler.store import StoreLayout

log = logging.getLogger("condaops.worker")

Listener = Callable[[int, BuildOutcome | None], None]


def worker_name() -> str:
    """Unique per process start: ``host:pid:random`` (pids repeat across container restarts)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class LeaseKeeper:
    """Renews this worker's leases on the builds it runs, from one daemon thread.

    ``renew(ids) -> lost ids`` is the recorder's renew. A build whose renewal finds it taken
    over (the lease expired, say while the database was unreachable) is remembered as lost:
    ``held(id)`` turns False and the runner stops at the next step without touching the
    prefix. A failed renewal (database down) is retried at the next tick.
    """

    def __init__(self, renew: Callable[[set[int]], set[int]], lease: float) -> None:
        self._renew = renew
        self._interval = max(lease / 3.0, 0.5)
        self._held: set[int] = set()
        self._lost: set[int] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def hold(self, item_id: int) -> None:
        with self._lock:
            self._held.add(item_id)
            self._lost.discard(item_id)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="condaops-leases", daemon=True)
                self._thread.start()

    def release(self, item_id: int) -> None:
        with self._lock:
            self._held.discard(item_id)

    def held(self, item_id: int) -> bool:
        with self._lock:
            return item_id not in self._lost

    def renew_now(self) -> None:
        with self._lock:
            ids = set(self._held)
        if not ids:
            return
        try:
            lost = self._renew(ids)
        except Exception:  # the database may be briefly unreachable: try again next tick
            log.warning("lease_renewal_failed items=%s", sorted(ids), exc_info=True)
            return
        if lost:
            log.warning("lease_lost items=%s", sorted(lost))
            with self._lock:
                self._lost |= lost & self._held

    def _loop(self) -> None:
        while True:
            time.sleep(self._interval)
            self.renew_now()


class BuildWorker:
    """Callable job: ``worker(build_id)``. ``listeners`` hear about starts (None) and ends."""

    def __init__(self, settings: Settings, recorder: Recorder, *, name: str | None = None) -> None:
        self.settings = settings
        self.recorder = recorder
        self.name = name or worker_name()
        self.listeners: list[Listener] = []
        lease = settings.build.lease
        self.leases = LeaseKeeper(lambda ids: recorder.renew(ids, self.name, lease=lease), lease)
        self.ctx = BuildContext(
            settings=settings,
            layout=StoreLayout.of(settings),
            may_link=lambda build_id: recorder.may_link(build_id, self.name),
            held=self.leases.held,
        )
        limit_arenas()  # before the scheduler's threads: see build/memory.py

    def __call__(self, build_id: int) -> None:
        ticket = self.recorder.claim(build_id, self.name, lease=self.settings.build.lease)
        if ticket is None:
            # Expected when a build is submitted again while it runs: the claim is the guard.
            log.debug("build_skipped build=%s reason=NotQueued", build_id)
            return
        self.leases.hold(build_id)
        try:
            tell(self.listeners, build_id, None)
            log.info(
                "build_started build=%s env=%s spec=%s attempt=%s worker=%s",
                build_id,
                ticket.ref,
                ticket.spec_hash[:12],
                ticket.attempt,
                self.name,
            )
            outcome = run_build(ticket, self.ctx)
            recorded = self.recorder.finish(build_id, outcome, self.name)
        finally:
            self.leases.release(build_id)
            release_memory()  # what the install freed in this thread's arena goes back
        if not recorded:
            log.warning(
                "build_abandoned build=%s env=%s reason=LeaseLost (another worker took it over)", build_id, ticket.ref
            )
            return
        log.log(
            logging.INFO if outcome.ok else logging.WARNING,
            "build_finished build=%s env=%s ok=%s reason=%s %s",
            build_id,
            ticket.ref,
            outcome.ok,
            outcome.reason,
            "" if outcome.ok else outcome.message,
        )
        tell(self.listeners, build_id, outcome)


def tell(listeners: list[Listener], build_id: int, outcome: BuildOutcome | None) -> None:
    """Call each listener; a broken one must not fail the build record."""
    for listener in listeners:
        try:
            listener(build_id, outcome)
        except Exception:
            log.exception("listener_failed build=%s", build_id)


class PreviewWorker:
    """Callable job for change-request previews: the same build steps in the change
    request's preview area, publishing off, linked only inside that area."""

    def __init__(self, settings: Settings, recorder: ReviewRecorder, *, name: str | None = None) -> None:
        self.settings = replace(settings, publish=replace(settings.publish, enabled=False))
        self.recorder = recorder
        self.name = name or worker_name()
        self.layout = StoreLayout.of(settings)
        self.listeners: list[Listener] = []
        lease = settings.build.lease
        self.leases = LeaseKeeper(lambda ids: recorder.renew_previews(ids, self.name, lease=lease), lease)

    def __call__(self, preview_id: int) -> None:
        claimed = self.recorder.claim_preview(preview_id, self.name, lease=self.settings.build.lease)
        if claimed is None:
            return
        ticket, source, ref, head = claimed
        area = self.layout.preview(source, ref, head)
        ctx = BuildContext(
            settings=self.settings,
            layout=area,
            may_link=lambda _id: self.leases.held(preview_id),
            held=self.leases.held,
        )
        log.info("preview_started preview=%s source=%s ref=%s env=%s", preview_id, source, ref, ticket.ref)
        self.leases.hold(preview_id)
        try:
            if _already_built(area, ticket):  # e.g. recovered after its worker died past the link
                prefix = area.prefix(ticket.ref, ticket.spec_hash)
                outcome = BuildOutcome(True, PREVIEW_REUSED, "built before in this area", prefix=area.relative(prefix))
            else:
                outcome = run_build(ticket, ctx)
            # Locations are recorded relative to the store, like production builds.
            outcome = replace(
                outcome,
                prefix=_store_relative(area, self.layout, outcome.prefix),
                artifacts=tuple(
                    replace(a, location=_store_relative(area, self.layout, a.location) or "") for a in outcome.artifacts
                ),
            )
            recorded = self.recorder.finish_preview(preview_id, outcome, self.name)
        finally:
            self.leases.release(preview_id)
        log.info(
            "preview_finished preview=%s env=%s ok=%s reason=%s recorded=%s",
            preview_id,
            ticket.ref,
            outcome.ok,
            outcome.reason,
            recorded,
        )
        if recorded:
            tell(self.listeners, preview_id, outcome)


def _already_built(area: StoreLayout, ticket: BuildTicket) -> bool:
    """The area's link already points at this spec's prefix: a finished build, never rebuilt
    in place (the runner would refuse it: ``PrefixInUse``)."""
    prefix = area.prefix(ticket.ref, ticket.spec_hash)
    return prefix.is_dir() and read_link(area.env_link(ticket.ref)) == prefix.resolve()


def _store_relative(area: StoreLayout, store: StoreLayout, location: str | None) -> str | None:
    return store.relative(area.absolute(location)) if location else None
