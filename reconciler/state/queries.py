"""Read-only queries over the state DB, returning plain dataclasses (never ORM rows)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, aliased

from condaops.reconciler.model import EnvRef, RecordedBuild, RecordedEnv
from condaops.reconciler.state.schema import (
    Artifact,
    Build,
    Environment,
    Namespace,
    SourceState,
    Specification,
)


@dataclass(frozen=True, slots=True)
class BuildInfo:
    build_id: int
    ref: EnvRef
    spec_hash: str
    state: str
    attempt: int
    reason: str | None
    message: str | None
    retryable: bool
    prefix: str | None
    source: str | None
    source_revision: str | None
    source_path: str | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    collected_at: datetime | None
    timings: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)  # kind -> location (store-relative)


@dataclass(frozen=True, slots=True)
class EnvInfo:
    ref: EnvRef
    source: str | None
    path: str | None
    source_revision: str | None
    desired_spec_hash: str | None
    current_build_id: int | None
    pinned_spec_hash: str | None
    retired: bool
    rejection_reason: str | None
    rejection_message: str | None
    warnings: tuple[str, ...]
    current: BuildInfo | None
    latest: BuildInfo | None  # most recent build of the desired spec


@dataclass(frozen=True, slots=True)
class SourceInfo:
    name: str
    revision: str | None
    fetched_at: datetime | None
    last_success_at: datetime | None
    error_reason: str | None
    error_message: str | None


def _latest_ids(s: Session) -> dict[int, int]:
    """environment id -> id of its most recent build."""
    rows = s.execute(select(Build.environment_id, func.max(Build.id)).group_by(Build.environment_id))
    return {env_id: build_id for env_id, build_id in rows}


def load_recorded(engine: Engine) -> dict[EnvRef, RecordedEnv]:
    """What ``plan`` needs, for every environment, in three queries."""
    cur = aliased(Build)
    cur_spec = aliased(Specification)
    with Session(engine) as s:
        latest_ids = _latest_ids(s)
        latest: dict[int, RecordedBuild] = {}
        if latest_ids:
            rows = s.execute(
                select(Build.environment_id, Build.id, Specification.sha256, Build.state, Build.attempt,
                       Build.reason, Build.retryable, Build.finished_at)
                .join(Specification)
                .where(Build.id.in_(list(latest_ids.values())))
            )
            for env_id, bid, sha, state, attempt, reason, retryable, finished in rows:
                latest[env_id] = RecordedBuild(bid, sha, state, attempt, reason, retryable, finished)
        rows = s.execute(
            select(Environment.id, Namespace.name, Environment.name, Environment.source,
                   cur_spec.sha256, Environment.retired_at, Environment.pinned_spec_hash, cur.prefix)
            .join(Namespace)
            .outerjoin(cur, Environment.current_build_id == cur.id)
            .outerjoin(cur_spec, cur.specification_id == cur_spec.id)
        )
        out: dict[EnvRef, RecordedEnv] = {}
        for env_id, ns, name, source, cur_hash, retired_at, pinned, prefix in rows:
            ref = EnvRef(ns, name)
            out[ref] = RecordedEnv(
                ref=ref,
                source=source,
                current_spec_hash=cur_hash,
                latest=latest.get(env_id),
                retired=retired_at is not None,
                pinned_spec_hash=pinned,
                prefix_present=True,
            )
        return out


def current_prefixes(engine: Engine) -> dict[EnvRef, str]:
    """Linked prefix per live environment (for observing the disk)."""
    with Session(engine) as s:
        rows = s.execute(
            select(Namespace.name, Environment.name, Build.prefix)
            .join(Namespace)
            .join(Build, Environment.current_build_id == Build.id)
            .where(Environment.retired_at.is_(None))
        )
        return {EnvRef(ns, n): p for ns, n, p in rows if p}


def _build_info(b: Build, ref: EnvRef) -> BuildInfo:
    return BuildInfo(
        build_id=b.id,
        ref=ref,
        spec_hash=b.specification.sha256,
        state=b.state,
        attempt=b.attempt,
        reason=b.reason,
        message=b.message,
        retryable=b.retryable,
        prefix=b.prefix,
        source=b.source,
        source_revision=b.source_revision,
        source_path=b.source_path,
        queued_at=b.queued_at,
        started_at=b.started_at,
        finished_at=b.finished_at,
        collected_at=b.collected_at,
        timings=json.loads(b.timings) if b.timings else {},
        artifacts={a.kind: a.location for a in b.artifacts},
    )


def list_environments(engine: Engine, *, include_retired: bool = False) -> list[EnvInfo]:
    with Session(engine) as s:
        latest_ids = _latest_ids(s)
        wanted = set(latest_ids.values())
        envs = list(s.scalars(select(Environment).join(Namespace).order_by(Namespace.name, Environment.name)))
        wanted |= {e.current_build_id for e in envs if e.current_build_id}
        builds = {b.id: b for b in s.scalars(select(Build).where(Build.id.in_(wanted)))} if wanted else {}
        # Latest build *of the desired spec*, falling back to the latest of any spec.
        out = []
        for e in envs:
            if e.retired_at is not None and not include_retired:
                continue
            ref = EnvRef(e.namespace.name, e.name)
            cur = builds.get(e.current_build_id) if e.current_build_id else None
            lat = builds.get(latest_ids.get(e.id, -1))
            out.append(
                EnvInfo(
                    ref=ref,
                    source=e.source,
                    path=e.path,
                    source_revision=e.source_revision,
                    desired_spec_hash=e.desired_spec_hash,
                    current_build_id=e.current_build_id,
                    pinned_spec_hash=e.pinned_spec_hash,
                    retired=e.retired_at is not None,
                    rejection_reason=e.rejection_reason,
                    rejection_message=e.rejection_message,
                    warnings=tuple(json.loads(e.warnings)) if e.warnings else (),
                    current=_build_info(cur, ref) if cur else None,
                    latest=_build_info(lat, ref) if lat else None,
                )
            )
        return out


def env_builds(engine: Engine, ref: EnvRef) -> list[BuildInfo]:
    """All builds of one environment, newest first."""
    with Session(engine) as s:
        env = s.scalar(
            select(Environment).join(Namespace).where(Namespace.name == ref.namespace, Environment.name == ref.name)
        )
        if env is None:
            return []
        rows = s.scalars(select(Build).where(Build.environment_id == env.id).order_by(Build.id.desc()))
        return [_build_info(b, ref) for b in rows]


def get_build(engine: Engine, build_id: int) -> BuildInfo | None:
    with Session(engine) as s:
        b = s.get(Build, build_id)
        if b is None:
            return None
        env = b.environment
        return _build_info(b, EnvRef(env.namespace.name, env.name))


def list_sources(engine: Engine) -> list[SourceInfo]:
    with Session(engine) as s:
        return [
            SourceInfo(r.name, r.revision, r.fetched_at, r.last_success_at, r.error_reason, r.error_message)
            for r in s.scalars(select(SourceState).order_by(SourceState.name))
        ]


def artifact_locations(engine: Engine) -> set[str]:
    with Session(engine) as s:
        return set(s.scalars(select(Artifact.location)))


def count_active_builds(engine: Engine) -> int:
    """Builds queued or running."""
    with Session(engine) as s:
        return s.scalar(select(func.count()).select_from(Build).where(Build.state.in_(["queued", "building"]))) or 0
