"""The one place that records outcomes in the state DB.

Plans, claims, build outcomes, links, rollbacks, retirements and source fetches are all
written here, change-request reviews and previews next door (``review_recorder``); nothing
else in condaops writes to the state DB.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.orm import Session

from condaops.reconciler.model import (
    BUILDING,
    CANCELED,
    COMPLETED,
    FAILED,
    QUEUED,
    ArtifactRecord,
    BuildOutcome,
    BuildTicket,
    DeliveryRecord,
    EnvRef,
    Rejection,
    SourceSnapshot,
)
from condaops.reconciler.plan import BUILD, REJECT, RETIRE, SOURCE_REMOVED_KEPT, Action, Plan
from condaops.reconciler.reasons import Reason
from condaops.reconciler.spec import spec_from_canonical
from condaops.reconciler.state.locks import keep_lock, lock_bytes
from condaops.reconciler.state.packages import record_build_packages
from condaops.reconciler.state.schema import (
    Artifact,
    Build,
    Delivery,
    Environment,
    Namespace,
    PreviewBuild,
    RejectedFile,
    SourceState,
    Specification,
)

Clock = Callable[[], datetime]

INTERRUPTED = Reason.INTERRUPTED
PIXI_LOCK_KIND = "pixi-lock"  # build.lock.PIXI_LOCK (the state layer does not import build steps)
SUPERSEDED = Reason.SUPERSEDED


@dataclass(frozen=True, slots=True)
class QueuedBuild:
    build_id: int
    ref: EnvRef
    spec_hash: str

    @property
    def job_id(self) -> str:
        """Deterministic: the same build of the same spec is never queued twice."""
        return f"build:{self.ref}:{self.spec_hash}"


class Recorder:
    """Writes to the state DB. Each method is one transaction."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    # --- sources and plans --------------------------------------------------------

    def record_snapshot(self, snap: SourceSnapshot) -> None:
        now = self.clock()
        with Session(self.engine) as s, s.begin():
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
        with Session(self.engine) as s, s.begin():
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
                    row = kept.get(path)
                    if row is None:
                        row = RejectedFile(source=snap.source, path=path, reason=rej.reason, message=rej.message)
                        row.revision, row.first_seen_at = snap.revision, self.clock()
                        s.add(row)
                        fresh.append(rej)
                    elif (row.reason, row.message) != (rej.reason, rej.message):
                        row.reason, row.message = rej.reason, rej.message
        return fresh

    def request_refresh(self, names: Iterable[str]) -> None:
        """A webhook asked for these sources to be read now (the web role tells the
        reconciler role through the database)."""
        now = self.clock()
        with Session(self.engine) as s, s.begin():
            for name in set(names):
                row = s.scalar(select(SourceState).where(SourceState.name == name))
                if row is None:
                    row = SourceState(name=name)
                    s.add(row)
                row.refresh_requested_at = now

    def take_refresh_requests(self) -> list[str]:
        """The sources a webhook asked to read, clearing the requests."""
        with Session(self.engine) as s, s.begin():
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
        queued: list[QueuedBuild] = []
        with Session(self.engine) as s, s.begin():
            envs = _EnvCache(s)
            specs = self._specifications(s, plan)
            for action in plan.actions:
                if action.kind == BUILD:
                    queued.append(self._queue(s, envs, specs, action))
                elif action.kind == REJECT:
                    self._reject(envs, action)
                elif action.kind == RETIRE:
                    env = envs.get(action.ref)
                    if env is not None:
                        self._retire(env, action.reason, action.message)
                elif action.desired is not None:
                    self._refresh(envs.get_or_create(action.ref), action)
                elif action.reason == SOURCE_REMOVED_KEPT:
                    self._removed(envs.get(action.ref), action)
        return queued

    def _removed(self, env: Environment | None, action: Action) -> None:
        """The file is gone and the environment kept: noted once, with the first revision
        without it (its current build stays linked; nothing is retried)."""
        if env is None or env.removed_at is not None:
            return
        env.removed_at = self.clock()
        env.removed_revision = action.revision
        _changed(env)

    def _retire(self, env: Environment, reason: str, message: str) -> None:
        """Retired: no current build any more (its link goes; its builds and lockfiles stay,
        and gc may reclaim the prefixes). Coming back, it is built like a new environment."""
        env.retired_at = self.clock()
        env.retired_reason, env.retired_message = reason, message
        env.current_build_id = None
        _changed(env)

    def record_retired(self, ref: EnvRef, reason: str, message: str) -> bool:
        """Retire an environment on purpose (``condaops retire``); False if it is not known."""
        with Session(self.engine) as s, s.begin():
            env = _EnvCache(s).get(ref)
            if env is None:
                return False
            self._retire(env, reason, message)
            return True

    @staticmethod
    def _specifications(s: Session, plan: Plan) -> dict[str, Specification]:
        """The specifications a plan builds, loaded in one query."""
        hashes = {a.spec_hash for a in plan.actions if a.kind == BUILD and a.spec_hash}
        if not hashes:
            return {}
        return {sp.sha256: sp for sp in s.scalars(select(Specification).where(Specification.sha256.in_(hashes)))}

    def _queue(self, s: Session, envs: _EnvCache, specs: dict[str, Specification], action: Action) -> QueuedBuild:
        assert action.desired is not None and action.spec_hash is not None
        existed = envs.get(action.ref) is not None
        env = envs.get_or_create(action.ref)
        self._refresh(env, action)
        env.source_revision = action.desired.revision
        env.retired_at = env.retired_reason = env.retired_message = None
        if env.pinned_spec_hash != action.spec_hash:
            env.pinned_spec_hash = None
        spec = specs.get(action.spec_hash)
        if spec is None:
            spec = specs[action.spec_hash] = Specification(
                sha256=action.spec_hash, canonical=action.desired.spec.canonical_json()
            )
            s.add(spec)
        if existed:  # a newer spec supersedes a build still waiting in the queue
            _changed(env)  # and a new build joins its history
            s.execute(
                update(Build)
                .where(Build.environment_id == env.id, Build.state == QUEUED)
                .values(state=CANCELED, reason=SUPERSEDED, finished_at=self.clock())
                .execution_options(synchronize_session=False)
            )
        build = Build(
            environment=env,
            specification=spec,
            state=QUEUED,
            attempt=action.attempt,
            reason=action.reason,
            message=action.message,
            source=action.desired.source,
            source_revision=action.desired.revision,
            source_path=action.desired.path,
            lock_path=keep_lock(s, action.desired.spec, action.desired.lock),
            queued_at=self.clock(),
            policy=action.desired.policy,
            policy_hash=action.desired.policy_hash,
        )
        s.add(build)
        s.flush()
        return QueuedBuild(build.id, action.ref, action.spec_hash)

    def _refresh(self, env: Environment, action: Action) -> None:
        """Keep where the desired file lives up to date; a valid file clears a rejection.

        ``source_revision`` is the revision the desired spec was last queued at: it is not
        rewritten on passes where nothing changed for this environment (a directory's
        revision changes with any file, and rewriting thousands of rows per pass is waste).
        """
        d = action.desired
        assert d is not None
        warnings = json.dumps(list(d.warnings)) if d.warnings else None
        before = (env.source, env.path, env.source_revision, env.desired_spec_hash, env.warnings, env.rejection_reason)
        if env.source != d.source:
            env.source = d.source
        if env.path != d.path:
            env.path = d.path
        if env.source_revision is None:
            env.source_revision = d.revision
        if env.desired_spec_hash != action.spec_hash:
            env.desired_spec_hash = action.spec_hash
        if env.warnings != warnings:
            env.warnings = warnings
        if env.display_name != d.spec.display_name:
            env.display_name = d.spec.display_name
            _changed(env)
        if env.rejection_reason is not None:
            env.rejection_reason = env.rejection_message = None
        if env.removed_at is not None:  # the file is back
            env.removed_at = env.removed_revision = None
            _changed(env)
        if before != (env.source, env.path, env.source_revision, env.desired_spec_hash, env.warnings, None):
            _changed(env)

    def _reject(self, envs: _EnvCache, action: Action) -> None:
        env = envs.get_or_create(action.ref)
        rej = action.rejection
        if rej is not None and env.source is None:
            env.source, env.path = rej.source, rej.path
        if env.rejection_reason != action.reason or env.rejection_message != action.message:
            env.rejection_reason = action.reason
            env.rejection_message = action.message
            _changed(env)
        if env.removed_at is not None:  # the file is back, if not valid yet
            env.removed_at = env.removed_revision = None
            _changed(env)

    # --- builds -------------------------------------------------------------------

    def claim(self, build_id: int, worker: str, *, lease: float = 60.0) -> BuildTicket | None:
        """Move a queued build to building, held by ``worker`` for ``lease`` seconds (renewed
        while it runs); None if it is not queued any more."""
        now = self.clock()
        with Session(self.engine) as s, s.begin():
            res = s.execute(
                update(Build)
                .where(Build.id == build_id, Build.state == QUEUED)
                .values(state=BUILDING, started_at=now, worker=worker, lease_until=now + timedelta(seconds=lease))
            )
            if res.rowcount != 1:
                return None
            _builds_changed(s, [build_id])
            b = s.get(Build, build_id)
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
        with Session(self.engine) as s:
            b = s.get(Build, build_id)
            if b is None or b.state != BUILDING or (worker is not None and b.worker != worker):
                return False
            env = b.environment
            return env.retired_at is None and env.desired_spec_hash == b.specification.sha256

    def renew(self, build_ids: Iterable[int], worker: str, *, lease: float) -> set[int]:
        """Extend ``worker``'s lease on these builds; return the ids it no longer holds."""
        return _renew(self.engine, Build, build_ids, worker, self.clock() + timedelta(seconds=lease))

    def finish(self, build_id: int, outcome: BuildOutcome, worker: str | None = None) -> bool:
        """Store a build's outcome; a linked success becomes the current build. Given
        ``worker``, only while that worker still holds the build (False otherwise)."""
        with Session(self.engine) as s, s.begin():
            b = s.get(Build, build_id)
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
            _changed(b.environment)
            return True

    def requeue_abandoned(self, *, everything: bool = False) -> list[int]:
        """Builds whose worker stopped renewing its lease (killed, host lost) go back to the
        queue; with ``everything``, every build left ``building`` (a single-process start:
        nothing else can be running them)."""
        return _requeue(self.engine, Build, self.clock(), everything, reason=INTERRUPTED)

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

    # --- operator actions ---------------------------------------------------------

    def record_rollback(self, ref: EnvRef, build_id: int) -> None:
        with Session(self.engine) as s, s.begin():
            env = _EnvCache(s).get(ref)
            assert env is not None
            env.current_build_id = build_id
            env.pinned_spec_hash = env.desired_spec_hash
            _changed(env)

    def record_collected(self, build_ids: Iterable[int]) -> None:
        ids = list(build_ids)
        with Session(self.engine) as s, s.begin():
            s.execute(update(Build).where(Build.id.in_(ids)).values(collected_at=self.clock()))
            _builds_changed(s, ids)

    def claim_publish(self, build_id: int, worker: str, *, lease: float) -> bool:
        """Take the publishing of a build for ``worker`` (renewed while it runs); False when
        it was published already or another worker holds it: a build is published once,
        however many publish jobs were queued for it (SQLite and PostgreSQL alike)."""
        now = self.clock()
        with Session(self.engine) as s, s.begin():
            res = s.execute(
                update(Build)
                .where(
                    Build.id == build_id,
                    Build.published_at.is_(None),
                    or_(Build.publish_lease_until.is_(None), Build.publish_lease_until < now),
                )
                .values(publisher=worker, publish_lease_until=now + timedelta(seconds=lease))
            )
            return res.rowcount == 1

    def renew_publish(self, build_ids: Iterable[int], worker: str, *, lease: float) -> set[int]:
        """Extend ``worker``'s hold on publishing these builds; return those it lost."""
        wanted = set(build_ids)
        if not wanted:
            return set()
        with Session(self.engine) as s, s.begin():
            held = set(
                s.scalars(
                    update(Build)
                    .where(Build.id.in_(wanted), Build.publisher == worker, Build.published_at.is_(None))
                    .values(publish_lease_until=self.clock() + timedelta(seconds=lease))
                    .returning(Build.id)
                )
            )
        return wanted - held

    def add_artifacts(self, build_id: int, artifacts: Iterable[ArtifactRecord], *, error: str | None = None) -> bool:
        """Record what the publish job wrote for a build: one row per kind (publishing again
        replaces the row, never duplicates it), ``published_at`` and ``publish_error`` (None
        when all went well). False when the build is not recorded (any more)."""
        with Session(self.engine) as s, s.begin():
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
            _changed(b.environment)
            return True

    def record_deliveries(self, ref: EnvRef, deliveries: Iterable[DeliveryRecord]) -> bool:
        """Replace what is recorded as delivered for ``ref`` (kernels, modulefiles, names);
        True if that changed. Unchanged deliveries write nothing (a start-up pass over every
        environment leaves the environment pages as they are)."""
        wanted = {(d.kind, d.name): d for d in deliveries}
        with Session(self.engine) as s, s.begin():
            env = _EnvCache(s).get(ref)
            if env is None:
                return False
            rows = {(r.kind, r.name): r for r in s.scalars(select(Delivery).where(Delivery.environment_id == env.id))}
            changed = False
            for key, row in rows.items():
                if key not in wanted:
                    s.delete(row)
                    changed = True
            for key, d in wanted.items():
                row = rows.get(key)
                values = (d.build_id, d.path, d.use, d.error)
                if row is not None and (row.build_id, row.path, row.use, row.error) == values:
                    continue
                if row is None:
                    row = Delivery(environment_id=env.id, kind=d.kind, name=d.name)
                    s.add(row)
                row.build_id, row.path, row.use, row.error = values
                row.updated_at = self.clock()
                changed = True
            if changed:
                _changed(env)
            return changed


def _linked_lock(env: Environment, build: Build) -> str | None:
    """The pixi.lock of the environment's linked build when it is of ``build``'s spec (its
    prefix is the one ``build`` would install into), else None."""
    current = env.current_build
    if current is None or current.specification_id != build.specification_id or current.collected_at is not None:
        return None
    return next((a.location for a in current.artifacts if a.kind == PIXI_LOCK_KIND), None)


class _EnvCache:
    """Environments of one transaction, loaded once (a plan may touch thousands)."""

    def __init__(self, s: Session) -> None:
        self.s = s
        self.namespaces = {n.name: n for n in s.scalars(select(Namespace))}
        self.envs = {EnvRef(e.namespace.name, e.name): e for e in s.scalars(select(Environment).join(Namespace))}

    def get(self, ref: EnvRef) -> Environment | None:
        return self.envs.get(ref)

    def get_or_create(self, ref: EnvRef) -> Environment:
        env = self.envs.get(ref)
        if env is None:
            ns = self.namespaces.get(ref.namespace)
            if ns is None:
                ns = self.namespaces[ref.namespace] = Namespace(name=ref.namespace)
                self.s.add(ns)
            env = self.envs[ref] = Environment(namespace=ns, name=ref.name)
            self.s.add(env)
        return env


Leased = type[Build] | type[PreviewBuild]


def _renew(engine: Engine, model: Leased, ids: Iterable[int], worker: str, until: datetime) -> set[int]:
    """Extend a worker's leases; return the ids it no longer holds."""
    wanted = set(ids)
    if not wanted:
        return set()
    with Session(engine) as s, s.begin():
        held = set(
            s.scalars(
                update(model)
                .where(model.id.in_(wanted), model.state == BUILDING, model.worker == worker)
                .values(lease_until=until)
                .returning(model.id)
            )
        )
    return wanted - held


def _requeue(engine: Engine, model: Leased, now: datetime, everything: bool, **values: object) -> list[int]:
    """Rows left ``building`` with an expired (or, with ``everything``, any) lease → queued."""
    with Session(engine) as s, s.begin():
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
            if model is Build:
                _builds_changed(s, ids)
        return ids


# --- change counting -------------------------------------------------------------------
# Every write above that changes what an environment shows (its row, its builds, their
# files) also raises ``Environment.state_version`` in the same transaction; lease renewals
# do not. The increment is done by the database (``state_version + 1``), so concurrent
# writers never lose one.


def _changed(env: Environment) -> None:
    """Count a change to ``env`` or its builds (a row not inserted yet starts at 0)."""
    if env.id is not None:
        env.state_version = Environment.state_version + 1  # type: ignore[assignment]


def _builds_changed(s: Session, build_ids: Iterable[int]) -> None:
    """Count a change to the environments of these builds."""
    ids = list(build_ids)
    for start in range(0, len(ids), 500):  # bounded IN lists
        owners = select(Build.environment_id).where(Build.id.in_(ids[start : start + 500]))
        s.execute(
            update(Environment)
            .where(Environment.id.in_(owners))
            .values(state_version=Environment.state_version + 1)
            .execution_options(synchronize_session=False)
        )
