"""The one place that records outcomes in the state DB.

Plans, claims, build outcomes, links, rollbacks, retirements and source fetches are all
written by ``Recorder``: the source and plan side here (bulk plan writes in ``queueing``),
the build side in ``outcomes``; change-request reviews and previews next door
(``review_recorder``). Nothing else in condaops writes to the state DB. Every write
transaction is a ``session.recording``, which moves the stamps of the environments it
touches on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy import Engine, select, update

from condaops.reconciler.model import EnvRef, Rejection, SourceSnapshot
from condaops.reconciler.plan import Plan
from condaops.reconciler.state.outcomes import INTERRUPTED, PIXI_LOCK_KIND, BuildRecording
from condaops.reconciler.state.queueing import SUPERSEDED, QueuedBuild, find_environment, record_plan
from condaops.reconciler.state.schema import RejectedFile, SourceState
from condaops.reconciler.state.session import recording

Clock = Callable[[], datetime]

__all__ = ["INTERRUPTED", "PIXI_LOCK_KIND", "SUPERSEDED", "Clock", "QueuedBuild", "Recorder"]


class Recorder(BuildRecording):
    """Writes to the state DB. Each method is one transaction."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    # --- sources and plans --------------------------------------------------------

    def record_snapshot(self, snap: SourceSnapshot) -> None:
        now = self.clock()
        with recording(self.engine) as s:
            row = s.scalar(select(SourceState).where(SourceState.name == snap.source))
            if row is None:
                row = SourceState(name=snap.source)
                s.add(row)
            row.fetched_at = now
            row.error_reason = snap.error_reason if snap.error else None
            row.error_message = snap.error
            if snap.error is None:
                row.revision = snap.revision
                row.last_success_at = now

    def record_rejected_files(self, snapshots: Iterable[SourceSnapshot]) -> list[Rejection]:
        """Keep the files of each readable source that cannot be environments (no valid name
        from their path), replacing what was kept for that source; returns those seen for
        the first time (to log). An unreadable source keeps its list as it was."""
        fresh: list[Rejection] = []
        with recording(self.engine) as s:
            for snap in snapshots:
                if snap.error is not None:
                    continue
                wanted = {r.path: r for r in snap.rejections if r.ref is None}
                kept = {
                    row.path: row for row in s.scalars(select(RejectedFile).where(RejectedFile.source == snap.source))
                }
                for path, row in kept.items():
                    if path not in wanted:
                        s.delete(row)
                for path, rej in wanted.items():
                    found = kept.get(path)
                    if found is None:
                        found = RejectedFile(source=snap.source, path=path, reason=rej.reason, message=rej.message)
                        found.revision, found.first_seen_at = snap.revision, self.clock()
                        s.add(found)
                        fresh.append(rej)
                    elif (found.reason, found.message) != (rej.reason, rej.message):
                        found.reason, found.message = rej.reason, rej.message
        return fresh

    def request_refresh(self, names: Iterable[str]) -> None:
        """A webhook asked for these sources to be read now (the web role tells the
        reconciler role through the database)."""
        now = self.clock()
        with recording(self.engine) as s:
            for name in set(names):
                row = s.scalar(select(SourceState).where(SourceState.name == name))
                if row is None:
                    row = SourceState(name=name)
                    s.add(row)
                row.refresh_requested_at = now

    def take_refresh_requests(self) -> list[str]:
        """The sources a webhook asked to read, clearing the requests."""
        with recording(self.engine) as s:
            names = list(
                s.scalars(
                    update(SourceState)
                    .where(SourceState.refresh_requested_at.is_not(None))
                    .values(refresh_requested_at=None)
                    .returning(SourceState.name)
                )
            )
        return sorted(names)

    def apply_plan(self, plan: Plan) -> list[QueuedBuild]:
        """Record a plan's changes; return the builds to hand to the scheduler."""
        with recording(self.engine) as s:
            return record_plan(s, plan, self.clock())

    def record_retired(self, ref: EnvRef, reason: str, message: str) -> bool:
        """Retire an environment on purpose (``condaops retire``): no current build any more
        (its link goes; its builds and lockfiles stay, and gc may reclaim the prefixes).
        Coming back, it is built like a new environment. False if it is not known."""
        with recording(self.engine) as s:
            env = find_environment(s, ref)
            if env is None:
                return False
            env.retired_at = self.clock()
            env.retired_reason, env.retired_message = reason, message
            env.current_build_id = None
            return True

    # --- operator actions ---------------------------------------------------------

    def record_rollback(self, ref: EnvRef, build_id: int) -> None:
        with recording(self.engine) as s:
            env = find_environment(s, ref)
            assert env is not None
            env.current_build_id = build_id
            env.pinned_spec_hash = env.desired_spec_hash
