"""The build job: claim a queued build, run its steps, record the outcome.

This is the callable APScheduler runs (in a worker thread). The claim is a
compare-and-set in the state DB, so a duplicate or stale job returns at once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import replace

from condaops.config import Settings
from condaops.reconciler.build.runner import BuildContext, run_build
from condaops.reconciler.model import BuildOutcome
from condaops.reconciler.state.recorder import ChangeRequestRecorder, Recorder
from condaops.reconciler.store import StoreLayout

log = logging.getLogger("condaops.worker")

Listener = Callable[[int, BuildOutcome | None], None]


def warm_imports() -> None:
    """Import conda-lock's lockfile models ahead of the first lock step.

    The import costs ~0.5 s (its package pulls in its whole CLI); done in a daemon thread
    at start it overlaps with solving and installing, which run in Rust without the GIL.
    """

    def load() -> None:
        try:
            import conda_lock.lockfile  # noqa: F401
            import conda_lock.lockfile.v2prelim.models  # noqa: F401
        except Exception:  # the lock step will import again and report properly
            log.debug("warm_imports_failed", exc_info=True)

    threading.Thread(target=load, name="condaops-warm-imports", daemon=True).start()


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class BuildWorker:
    """Callable job: ``worker(build_id)``. ``listeners`` hear about starts (None) and ends."""

    def __init__(self, settings: Settings, recorder: Recorder, *, name: str | None = None) -> None:
        self.settings = settings
        self.recorder = recorder
        self.name = name or worker_name()
        self.listeners: list[Listener] = []
        self.ctx = BuildContext(settings=settings, layout=StoreLayout(settings.store), may_link=recorder.may_link)
        warm_imports()

    def __call__(self, build_id: int) -> None:
        ticket = self.recorder.claim(build_id, self.name)
        if ticket is None:
            # Expected when a build is submitted again while it runs: the claim is the guard.
            log.debug("build_skipped build=%s reason=NotQueued", build_id)
            return
        tell(self.listeners, build_id, None)
        log.info("build_started build=%s env=%s spec=%s attempt=%s",
                 build_id, ticket.ref, ticket.spec_hash[:12], ticket.attempt)
        outcome = run_build(ticket, self.ctx)
        self.recorder.finish(build_id, outcome)
        log.log(logging.INFO if outcome.ok else logging.WARNING,
                "build_finished build=%s env=%s ok=%s reason=%s %s",
                build_id, ticket.ref, outcome.ok, outcome.reason, "" if outcome.ok else outcome.message)
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

    def __init__(self, settings: Settings, recorder: ChangeRequestRecorder, *, name: str | None = None) -> None:
        self.settings = replace(settings, publish=replace(settings.publish, enabled=False))
        self.recorder = recorder
        self.name = name or worker_name()
        self.layout = StoreLayout(settings.store)
        self.listeners: list[Listener] = []

    def __call__(self, preview_id: int) -> None:
        claimed = self.recorder.claim_preview(preview_id, self.name)
        if claimed is None:
            return
        ticket, source, ref, head = claimed
        area = self.layout.preview(source, ref, head)
        ctx = BuildContext(settings=self.settings, layout=area, may_link=lambda _build_id: True)
        log.info("preview_started preview=%s source=%s ref=%s env=%s", preview_id, source, ref, ticket.ref)
        outcome = run_build(ticket, ctx)
        # Locations are recorded relative to the store, like production builds.
        outcome = replace(outcome, prefix=_store_relative(area, self.layout, outcome.prefix),
                          artifacts=tuple(replace(a, location=_store_relative(area, self.layout, a.location) or "")
                                          for a in outcome.artifacts))
        self.recorder.finish_preview(preview_id, outcome)
        log.info("preview_finished preview=%s env=%s ok=%s reason=%s", preview_id, ticket.ref, outcome.ok,
                 outcome.reason)
        tell(self.listeners, preview_id, outcome)


def _store_relative(area: StoreLayout, store: StoreLayout, location: str | None) -> str | None:
    return store.relative(area.absolute(location)) if location else None
