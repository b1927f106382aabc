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

from condaops.config import Settings
from condaops.reconciler.build.runner import BuildContext, run_build
from condaops.reconciler.model import BuildOutcome
from condaops.reconciler.state.recorder import Recorder
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
            log.info("build_skipped build=%s reason=NotQueued", build_id)
            return
        self._tell(build_id, None)
        log.info("build_started build=%s env=%s spec=%s attempt=%s",
                 build_id, ticket.ref, ticket.spec_hash[:12], ticket.attempt)
        outcome = run_build(ticket, self.ctx)
        self.recorder.finish(build_id, outcome)
        log.log(logging.INFO if outcome.ok else logging.WARNING,
                "build_finished build=%s env=%s ok=%s reason=%s %s",
                build_id, ticket.ref, outcome.ok, outcome.reason, "" if outcome.ok else outcome.message)
        self._tell(build_id, outcome)

    def _tell(self, build_id: int, outcome: BuildOutcome | None) -> None:
        for listener in self.listeners:
            try:
                listener(build_id, outcome)
            except Exception:  # a broken listener must not fail the build record
                log.exception("listener_failed build=%s", build_id)
