"""The publish job as a worker runs it: claim the build, hold its lease, publish.

The publishing code (image layers, registry clients) loads on first use, so a process
that never publishes never imports it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from condaops.config import Settings
from condaops.reconciler.state.recorder import Recorder
from condaops.reconciler.worker import LeaseKeeper

log = logging.getLogger("condaops.runtime")


class PublishRunner:
    """``runner(build_id)``: publish one build once. The job first claims it in the state
    DB (another queued job for it, here or in another process, returns at once). Whatever
    happens, the build ends up handled (``published_at``), never re-run forever; ``done``
    is called after each job (it asks for a pass)."""

    def __init__(self, settings: Settings, recorder: Recorder, *, name: str, done: Callable[[], None]) -> None:
        self.settings, self.recorder, self.name, self.done = settings, recorder, name, done
        lease = settings.build.lease
        self._leases = LeaseKeeper(lambda ids: recorder.renew_publish(ids, name, lease=lease), lease)
        self._publisher: Callable[[int], None] | None = None

    def __call__(self, build_id: int) -> None:
        if not self.recorder.claim_publish(build_id, self.name, lease=self.settings.build.lease):
            log.debug("publish_skipped build=%s reason=NotClaimed", build_id)
            return
        self._leases.hold(build_id)
        try:
            if self._publisher is None:
                from condaops.reconciler.publish.job import PublishJob

                self._publisher = PublishJob(self.settings, self.recorder, name=self.name)
            self._publisher(build_id)
        except Exception as exc:  # PublishJob records its own failures; this is the case it could not
            log.exception("publish_crashed build=%s", build_id)
            self.recorder.add_artifacts(build_id, [], error=f"InternalError: {type(exc).__name__}: {exc}")
        finally:
            self._leases.release(build_id)
            self.done()
