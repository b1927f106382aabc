"""Recording what happens to builds after they are queued: claims and leases, outcomes,
publishing, garbage collection and deliveries.

Part of the one recorder (``Recorder`` in ``recorder`` is made of this and the plan side);
each method is one transaction (``session.recording``: every environment it writes to
moves its stamp, lease renewals excepted).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.orm import Session, joinedload

from condaops.reconciler.model import (
    BUILDING,
    COMPLETED,
    FAILED,
    QUEUED,
    ArtifactRecord,
    BuildOutcome,
    BuildTicket,
    DeliveryRecord,
    EnvRef,
)
from condaops.reconciler.reasons import Reason
from condaops.reconciler.spec import spec_from_canonical
from condaops.reconciler.state.locks import lock_bytes
from condaops.reconciler.state.packages import record_build_packages
from condaops.reconciler.state.queueing import QueuedBuild, find_environment
from condaops.reconciler.state.schema import (
    Artifact,
    Build,
    Delivery,
    Environment,
    Namespace,
    PreviewBuild,
    Specification,
)
from condaops.reconciler.state.session import QUIET, recording

Clock = Callable[[], datetime]

INTERRUPTED = Reason.INTERRUPTED
PIXI_LOCK_KIND = "pixi-lock"  # build.lock.PIXI_LOCK (the state layer does not import build steps)


class BuildRecording:
    """The build side of the recorder (mixed into ``Recorder``)."""

    engine: Engine
    clock: Clock

    def claim(self, build_id: int, worker: str, *, lease: float = 60.0) -> BuildTicket | None:
        """Move a queued build to building, held by ``worker`` for ``lease`` seconds (renewed
        while it runs); None if it is not queued any more."""
        now = self.clock()
        with recording(self.engine) as s:
            res = s.execute(
                update(Build)
                .where(Build.id == build_id, Build.state == QUEUED)
                .values(state=BUILDING, started_at=now, worker=worker, lease_until=now + timedelta(seconds=lease))
            )
            if res.rowcount != 1:  # type: ignore[attr-defined]  # an UPDATE's result is a CursorResult
                return None
            b = s.get(Build, build_id, options=_WITH_ENV_SPEC)  # one statement, not four
            assert b is not None
            env = b.environment
            spec = spec_from_canonical(json.loads(b.specification.canonical), name=env.name)
            return BuildTicket(
                build_id=b.id,
                ref=EnvRef(env.namespace.name, env.name),
                spec=spec,
                spec_hash=b.specification.sha256,
                attempt=b.attempt,
                source=b.source,
                source_revision=b.source_revision,
                source_path=b.source_path,
                policy=b.policy,
                recheck_lock=_linked_lock(env, b),
                lock_path=b.lock_path,
                lock_data=lock_bytes(s, spec),
            )

    def may_link(self, build_id: int, worker: str | None = None) -> bool:
        """Whether a finished build is still what its environment wants linked (and, given
        ``worker``, still held by that worker: a build taken over after its lease expired
        is never linked by the worker that lost it)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(Build.state, Build.worker, Environment.retired_at, Environment.desired_spec_hash)
                .join(Environment, Build.environment_id == Environment.id)
                .join(Specification, Build.specification_id == Specification.id)
                .where(Build.id == build_id, Environment.desired_spec_hash == Specification.sha256)
            ).first()
        if row is None or row.state != BUILDING or (worker is not None and row.worker != worker):
            return False
        return row.retired_at is None

    def renew(self, build_ids: Iterable[int], worker: str, *, lease: float) -> set[int]:
        """Extend ``worker``'s lease on these builds; return the ids it no longer holds."""
        return renew_leases(self.engine, Build, build_ids, worker, self.clock() + timedelta(seconds=lease))

    def finish(self, build_id: int, outcome: BuildOutcome, worker: str | None = None) -> bool:
        """Store a build's outcome; a linked success becomes the current build. Given
        ``worker``, only while that worker still holds the build (False otherwise)."""
        with recording(self.engine) as s:
            b = s.get(Build, build_id, options=_WITH_ENV)
            if b is None:
                return False
            if worker is not None and (b.state != BUILDING or b.worker != worker):
                return False
            b.state = COMPLETED if outcome.ok else FAILED
            b.reason = outcome.reason
            b.message = outcome.message
            b.retryable = outcome.retryable
            b.prefix = outcome.prefix
            b.finished_at = self.clock()
            b.lease_until = None
            b.timings = json.dumps(dict(outcome.timings)) if outcome.timings else None
            b.policy_report = outcome.policy_report
            for art in outcome.artifacts:
                s.add(Artifact(build=b, kind=art.kind, location=art.location, size=art.size, sha256=art.sha256))
            if outcome.ok and outcome.records:
                record_build_packages(s, b.id, outcome.records, outcome.pip)
            if outcome.ok and outcome.linked:
                b.environment.current_build_id = b.id
            return True

    def requeue_abandoned(self, *, everything: bool = False) -> list[int]:
        """Builds whose worker stopped renewing its lease (killed, host lost) go back to the
        queue; with ``everything``, every build left ``building`` (a single-process start:
        nothing else can be running them)."""
        return requeue_leased(self.engine, Build, self.clock(), everything, reason=INTERRUPTED)

    def queued(self) -> list[QueuedBuild]:
        with Session(self.engine) as s:
            rows = s.execute(
                select(Build.id, Namespace.name, Environment.name, Specification.sha256)
                .join(Environment, Build.environment_id == Environment.id)
                .join(Namespace)
                .join(Specification)
                .where(Build.state == QUEUED)
                .order_by(Build.id)
            )
            return [QueuedBuild(i, EnvRef(ns, n), h) for i, ns, n, h in rows]

    def record_collected(self, build_ids: Iterable[int]) -> None:
        ids = list(build_ids)
        with recording(self.engine) as s:
            s.execute(update(Build).where(Build.id.in_(ids)).values(collected_at=self.clock()))

    def claim_publish(self, build_id: int, worker: str, *, lease: float) -> bool:
        """Take the publishing of a build for ``worker`` (renewed while it runs); False when
        it was published already or another worker holds it: a build is published once,
        however many publish jobs were queued for it (SQLite and PostgreSQL alike)."""
        now = self.clock()
        with recording(self.engine) as s:
            res = s.execute(
                update(Build)
                .where(
                    Build.id == build_id,
                    Build.published_at.is_(None),
                    or_(Build.publish_lease_until.is_(None), Build.publish_lease_until < now),
                )
                .values(publisher=worker, publish_lease_until=now + timedelta(seconds=lease))
                .execution_options(**QUIET)  # a hold, like a lease: not shown anywhere
            )
            return res.rowcount == 1  # type: ignore[attr-defined]  # an UPDATE's result is a CursorResult

    def renew_publish(self, build_ids: Iterable[int], worker: str, *, lease: float) -> set[int]:
        """Extend ``worker``'s hold on publishing these builds; return those it lost."""
        wanted = set(build_ids)
        if not wanted:
            return set()
        with recording(self.engine) as s:
            held = set(
                s.scalars(
                    update(Build)
                    .where(Build.id.in_(wanted), Build.publisher == worker, Build.published_at.is_(None))
                    .values(publish_lease_until=self.clock() + timedelta(seconds=lease))
                    .returning(Build.id),
                    execution_options=QUIET,
                )
            )
        return wanted - held

    def add_artifacts(self, build_id: int, artifacts: Iterable[ArtifactRecord], *, error: str | None = None) -> bool:
        """Record what the publish job wrote for a build: one row per kind (publishing again
        replaces the row, never duplicates it), ``published_at`` and ``publish_error`` (None
        when all went well). False when the build is not recorded (any more)."""
        with recording(self.engine) as s:
            b = s.get(Build, build_id)
            if b is None:
                return False
            rows = {a.kind: a for a in b.artifacts}
            for art in artifacts:
                row = rows.get(art.kind)
                if row is None:
                    row = rows[art.kind] = Artifact(build=b, kind=art.kind)
                    s.add(row)
                row.location, row.size, row.sha256 = art.location, art.size, art.sha256
            b.published_at = self.clock()
            b.publish_error = error
            b.publish_lease_until = None
            return True

    def record_deliveries(self, ref: EnvRef, deliveries: Iterable[DeliveryRecord]) -> bool:
        """Replace what is recorded as delivered for ``ref`` (kernels, modulefiles, names);
        True if that changed. Unchanged deliveries write nothing (a start-up pass over every
        environment leaves the environment pages as they are)."""
        wanted = {(d.kind, d.name): d for d in deliveries}
        with recording(self.engine) as s:
            env = find_environment(s, ref)
            if env is None:
                return False
            rows = {(r.kind, r.name): r for r in s.scalars(select(Delivery).where(Delivery.environment_id == env.id))}
            changed = False
            for key, row in rows.items():
                if key not in wanted:
                    s.delete(row)
                    changed = True
            for key, d in wanted.items():
                found = rows.get(key)
                values = (d.build_id, d.path, d.use, d.error)
                if found is not None and (found.build_id, found.path, found.use, found.error) == values:
                    continue
                if found is None:
                    found = Delivery(environment_id=env.id, kind=d.kind, name=d.name)
                    s.add(found)
                found.build_id, found.path, found.use, found.error = values
                found.updated_at = self.clock()
                changed = True
            return changed


_WITH_ENV = (joinedload(Build.environment),)
_WITH_ENV_SPEC = (joinedload(Build.environment).joinedload(Environment.namespace), joinedload(Build.specification))


def _linked_lock(env: Environment, build: Build) -> str | None:
    """The pixi.lock of the environment's linked build when it is of ``build``'s spec (its
    prefix is the one ``build`` would install into), else None."""
    current = env.current_build
    if current is None or current.specification_id != build.specification_id or current.collected_at is not None:
        return None
    return next((a.location for a in current.artifacts if a.kind == PIXI_LOCK_KIND), None)


Leased = type[Build] | type[PreviewBuild]


def renew_leases(engine: Engine, model: Leased, ids: Iterable[int], worker: str, until: datetime) -> set[int]:
    """Extend a worker's leases; return the ids it no longer holds (a renewal is not shown
    anywhere: it moves no stamp)."""
    wanted = set(ids)
    if not wanted:
        return set()
    with recording(engine) as s:
        held = set(
            s.scalars(
                update(model)
                .where(model.id.in_(wanted), model.state == BUILDING, model.worker == worker)
                .values(lease_until=until)
                .returning(model.id),
                execution_options=QUIET,
            )
        )
    return wanted - held


def requeue_leased(engine: Engine, model: Leased, now: datetime, everything: bool, **values: object) -> list[int]:
    """Rows left ``building`` with an expired (or, with ``everything``, any) lease → queued."""
    with recording(engine) as s:
        query = select(model.id).where(model.state == BUILDING)
        if not everything:
            query = query.where(or_(model.lease_until.is_(None), model.lease_until < now))
        ids = list(s.scalars(query))
        if ids:
            s.execute(
                update(model)
                .where(model.id.in_(ids), model.state == BUILDING)
                .values(state=QUEUED, started_at=None, worker=None, lease_until=None, **values)
            )
        return ids
