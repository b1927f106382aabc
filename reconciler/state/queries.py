"""Read-only queries over the state DB, returning plain dataclasses (never ORM rows)."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, select
from sqlalchemy.orm import Session, aliased

from condaops.reconciler.model import DeliveryRecord, EnvRef, RecordedBuild, RecordedEnv
from condaops.reconciler.state.schema import (
    Artifact,
    Build,
    Delivery,
    Environment,
    Namespace,
    RejectedFile,
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
    published_at: datetime | None = None  # the publish job ran (publish_error says how it went)
    publish_error: str | None = None
    policy_report: str | None = None  # JSON list of policy findings; None: no policy applied
    lock_path: str | None = None  # the committed lockfile the build installed (no solve)


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
    removed_at: datetime | None = None  # its file disappeared (kept: prune is off)
    removed_revision: str | None = None  # the first source revision without the file
    retired_reason: str | None = None  # Retired (condaops retire) or SourceRemoved (prune)
    retired_message: str | None = None
    display_name: str | None = None  # the file's condaops: display_name:


@dataclass(frozen=True, slots=True)
class SourceInfo:
    name: str
    revision: str | None
    fetched_at: datetime | None
    last_success_at: datetime | None
    error_reason: str | None
    error_message: str | None


@dataclass(frozen=True, slots=True)
class ArtifactInfo:
    """One file a build produced; ``location`` is relative to the store root."""

    build_id: int
    kind: str
    location: str
    size: int | None
    sha256: str | None


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
                select(
                    Build.environment_id,
                    Build.id,
                    Specification.sha256,
                    Build.state,
                    Build.attempt,
                    Build.reason,
                    Build.retryable,
                    Build.finished_at,
                    Build.policy_hash,
                )
                .join(Specification)
                .where(Build.id.in_(list(latest_ids.values())))
            )
            for env_id, bid, sha, state, attempt, reason, retryable, finished, policy_hash in rows:
                latest[env_id] = RecordedBuild(bid, sha, state, attempt, reason, retryable, finished, policy_hash)
        env_rows = s.execute(
            select(
                Environment.id,
                Namespace.name,
                Environment.name,
                Environment.source,
                cur_spec.sha256,
                Environment.retired_at,
                Environment.pinned_spec_hash,
                Environment.display_name,
            )
            .join(Namespace)
            .outerjoin(cur, Environment.current_build_id == cur.id)
            .outerjoin(cur_spec, cur.specification_id == cur_spec.id)
        )
        out: dict[EnvRef, RecordedEnv] = {}
        for env_id, ns, name, source, cur_hash, retired_at, pinned, display_name in env_rows:
            ref = EnvRef(ns, name)
            out[ref] = RecordedEnv(
                ref=ref,
                source=source,
                current_spec_hash=cur_hash,
                latest=latest.get(env_id),
                retired=retired_at is not None,
                pinned_spec_hash=pinned,
                prefix_present=True,
                display_name=display_name,
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


# Column lists and statements built once: the status site reads these many times per
# second, and plain rows from prepared statements are several times cheaper than ORM
# objects. The results are the same dataclasses.
_ENV_COLUMNS = (
    Environment.id,
    Namespace.name,
    Environment.name,
    Environment.source,
    Environment.path,
    Environment.source_revision,
    Environment.desired_spec_hash,
    Environment.current_build_id,
    Environment.pinned_spec_hash,
    Environment.retired_at,
    Environment.rejection_reason,
    Environment.rejection_message,
    Environment.warnings,
    Environment.removed_at,
    Environment.removed_revision,
    Environment.retired_reason,
    Environment.retired_message,
    Environment.display_name,
)
_BUILD_COLUMNS = (
    Build.id,
    Namespace.name,
    Environment.name,
    Specification.sha256,
    Build.state,
    Build.attempt,
    Build.reason,
    Build.message,
    Build.retryable,
    Build.prefix,
    Build.source,
    Build.source_revision,
    Build.source_path,
    Build.queued_at,
    Build.started_at,
    Build.finished_at,
    Build.collected_at,
    Build.timings,
    Build.published_at,
    Build.publish_error,
    Build.policy_report,
    Build.lock_path,
)
_ENVS = select(*_ENV_COLUMNS).join(Namespace, Environment.namespace_id == Namespace.id)
_ENV_BY_NAME = _ENVS.where(Namespace.name == bindparam("ns"), Environment.name == bindparam("name"))
_BUILDS_BY_ID = (
    select(*_BUILD_COLUMNS)
    .join(Specification, Build.specification_id == Specification.id)
    .join(Environment, Build.environment_id == Environment.id)
    .join(Namespace, Environment.namespace_id == Namespace.id)
    .where(Build.id.in_(bindparam("ids", expanding=True)))
)
_ARTIFACTS_BY_BUILD = (
    select(Artifact.build_id, Artifact.kind, Artifact.location, Artifact.size, Artifact.sha256)
    .where(Artifact.build_id.in_(bindparam("ids", expanding=True)))
    .order_by(Artifact.build_id, Artifact.id)
)
_LOCATIONS_BY_BUILD = (
    select(Artifact.build_id, Artifact.kind, Artifact.location)
    .where(Artifact.build_id.in_(bindparam("ids", expanding=True)))
    .order_by(Artifact.build_id, Artifact.id)
)
_CHUNK = 500  # ids per IN (...) list


def _load_builds(conn: Connection, ids: Collection[int]) -> dict[int, BuildInfo]:
    """BuildInfo by id, with artifact locations, in two queries per chunk of ids."""
    wanted = sorted(set(ids))
    rows: list[Any] = []
    locations: dict[int, dict[str, str]] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        rows += conn.execute(_BUILDS_BY_ID, {"ids": chunk}).all()
        for build_id, kind, location in conn.execute(_LOCATIONS_BY_BUILD, {"ids": chunk}):
            locations.setdefault(build_id, {})[kind] = location
    return {r[0]: _build_row(r, locations.get(r[0], {})) for r in rows}


def _build_row(r: Any, artifacts: dict[str, str]) -> BuildInfo:
    return BuildInfo(
        build_id=r[0],
        ref=EnvRef(r[1], r[2]),
        spec_hash=r[3],
        state=r[4],
        attempt=r[5],
        reason=r[6],
        message=r[7],
        retryable=r[8],
        prefix=r[9],
        source=r[10],
        source_revision=r[11],
        source_path=r[12],
        queued_at=r[13],
        started_at=r[14],
        finished_at=r[15],
        collected_at=r[16],
        timings=json.loads(r[17]) if r[17] else {},
        artifacts=artifacts,
        published_at=r[18],
        publish_error=r[19],
        policy_report=r[20],
        lock_path=r[21],
    )


def _env_info(row: Any, builds: dict[int, BuildInfo], latest_id: int | None) -> EnvInfo:
    (
        _,
        ns,
        name,
        source,
        path,
        revision,
        desired,
        current_id,
        pinned,
        retired_at,
        rejection_reason,
        rejection_message,
        warnings,
        removed_at,
        removed_revision,
        retired_reason,
        retired_message,
        display_name,
    ) = row
    return EnvInfo(
        ref=EnvRef(ns, name),
        source=source,
        path=path,
        source_revision=revision,
        desired_spec_hash=desired,
        current_build_id=current_id,
        pinned_spec_hash=pinned,
        retired=retired_at is not None,
        rejection_reason=rejection_reason,
        rejection_message=rejection_message,
        warnings=tuple(json.loads(warnings)) if warnings else (),
        current=builds.get(current_id) if current_id else None,
        latest=builds.get(latest_id) if latest_id else None,
        removed_at=removed_at,
        removed_revision=removed_revision,
        retired_reason=retired_reason,
        retired_message=retired_message,
        display_name=display_name,
    )


def list_environments(engine: Engine, *, include_retired: bool = False) -> list[EnvInfo]:
    with engine.connect() as conn:
        latest = select(Build.environment_id, func.max(Build.id)).group_by(Build.environment_id)
        latest_ids: dict[int, int] = dict(conn.execute(latest).all())
        query = _ENVS if include_retired else _ENVS.where(Environment.retired_at.is_(None))
        envs = conn.execute(query.order_by(Namespace.name, Environment.name)).all()
        wanted = {latest_ids[e[0]] for e in envs if e[0] in latest_ids} | {e[7] for e in envs if e[7]}
        builds = _load_builds(conn, wanted)
        return [_env_info(e, builds, latest_ids.get(e[0])) for e in envs]


def get_environment(engine: Engine, ref: EnvRef) -> EnvInfo | None:
    """One environment (retired ones too), as ``list_environments`` gives it."""
    view = environment_view(engine, ref, history_limit=0)
    return view.env if view else None


def env_builds(engine: Engine, ref: EnvRef) -> list[BuildInfo]:
    """All builds of one environment, newest first."""
    with engine.connect() as conn:
        ids = list(
            conn.scalars(
                select(Build.id)
                .join(Environment, Build.environment_id == Environment.id)
                .join(Namespace, Environment.namespace_id == Namespace.id)
                .where(Namespace.name == ref.namespace, Environment.name == ref.name)
                .order_by(Build.id.desc())
            )
        )
        builds = _load_builds(conn, ids)
    return [builds[i] for i in ids]


def list_deliveries(engine: Engine, refs: Collection[EnvRef] | None = None) -> dict[EnvRef, list[DeliveryRecord]]:
    """What is recorded as delivered (kernels, modulefiles, names) per environment, in a
    stable order (kind, then name); of ``refs`` only, when given."""
    query = (
        select(
            Namespace.name,
            Environment.name,
            Delivery.kind,
            Delivery.name,
            Delivery.build_id,
            Delivery.path,
            Delivery.use,
            Delivery.error,
        )
        .join(Environment, Delivery.environment_id == Environment.id)
        .join(Namespace, Environment.namespace_id == Namespace.id)
        .order_by(Namespace.name, Environment.name, Delivery.kind, Delivery.name)
    )
    wanted = None if refs is None else set(refs)
    if wanted is not None and len(wanted) == 1:
        (only,) = wanted
        query = query.where(Namespace.name == only.namespace, Environment.name == only.name)
    found: dict[EnvRef, list[DeliveryRecord]] = {}
    with engine.connect() as conn:
        for ns, name, *rest in conn.execute(query):
            ref = EnvRef(ns, name)
            if wanted is None or ref in wanted:
                found.setdefault(ref, []).append(DeliveryRecord(*rest))
    return found


def get_build(engine: Engine, build_id: int) -> BuildInfo | None:
    with engine.connect() as conn:
        return _load_builds(conn, [build_id]).get(build_id)


def list_sources(engine: Engine) -> list[SourceInfo]:
    with Session(engine) as s:
        return [
            SourceInfo(r.name, r.revision, r.fetched_at, r.last_success_at, r.error_reason, r.error_message)
            for r in s.scalars(select(SourceState).order_by(SourceState.name))
        ]


@dataclass(frozen=True, slots=True)
class RejectedFileInfo:
    """A file of a source that cannot be an environment (no valid name from its path)."""

    source: str
    path: str
    reason: str
    message: str
    revision: str | None
    first_seen_at: datetime


def list_rejected_files(engine: Engine) -> list[RejectedFileInfo]:
    with Session(engine) as s:
        rows = s.scalars(select(RejectedFile).order_by(RejectedFile.source, RejectedFile.path))
        return [RejectedFileInfo(r.source, r.path, r.reason, r.message, r.revision, r.first_seen_at) for r in rows]


def unpublished_builds(engine: Engine) -> list[int]:
    """Current builds the publish job has not handled yet (none after it ran, even failed)."""
    with Session(engine) as s:
        return list(
            s.scalars(
                select(Build.id)
                .join(Environment, Environment.current_build_id == Build.id)
                .where(Build.published_at.is_(None), Build.collected_at.is_(None), Environment.retired_at.is_(None))
                .order_by(Build.id)
            )
        )


def count_active_builds(engine: Engine) -> int:
    """Builds queued or running."""
    with Session(engine) as s:
        return s.scalar(select(func.count()).select_from(Build).where(Build.state.in_(["queued", "building"]))) or 0


# --- for the status site and API ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BuildList:
    """One page of builds, newest first, and how many there are in all."""

    total: int
    items: list[BuildInfo]


@dataclass(frozen=True, slots=True)
class EnvView:
    """An environment with one page of its builds and the files of the builds loaded."""

    env: EnvInfo
    history: BuildList
    artifacts: dict[int, list[ArtifactInfo]]  # build id -> files, for every build loaded


_LATEST_BUILD = select(func.max(Build.id)).where(Build.environment_id == Environment.id).scalar_subquery()
_BUILD_COUNT = select(func.count(Build.id)).where(Build.environment_id == Environment.id).scalar_subquery()
_ENV_VIEW = (
    select(*_ENV_COLUMNS, _LATEST_BUILD, _BUILD_COUNT)
    .join(Namespace, Environment.namespace_id == Namespace.id)
    .where(Namespace.name == bindparam("ns"), Environment.name == bindparam("name"))
)
# The view's own first query with the version in front: the two cannot drift apart.
_ENV_STAMP = _ENV_VIEW.with_only_columns(Environment.state_version, *_ENV_VIEW.selected_columns)
_HISTORY = (
    select(*_BUILD_COLUMNS)
    .join(Specification, Build.specification_id == Specification.id)
    .join(Environment, Build.environment_id == Environment.id)
    .join(Namespace, Environment.namespace_id == Namespace.id)
    .where(Build.environment_id == bindparam("env"))
    .order_by(Build.id.desc())
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)


def environment_view(
    engine: Engine, ref: EnvRef, *, history_limit: int = 20, history_offset: int = 0
) -> EnvView | None:
    """What an environment page shows, usually in three queries on one connection."""
    with engine.connect() as conn:
        row = conn.execute(_ENV_VIEW, {"ns": ref.namespace, "name": ref.name}).first()
        if row is None:
            return None
        env, latest_id, total = row[:-2], row[-2], row[-1]
        page: list[Any] = []
        if history_limit:
            params = {"env": env[0], "limit": history_limit, "offset": history_offset}
            page = list(conn.execute(_HISTORY, params))
        missing = {i for i in (env[7], latest_id) if i} - {r[0] for r in page}
        rows = page + (list(conn.execute(_BUILDS_BY_ID, {"ids": sorted(missing)})) if missing else [])
        files: dict[int, list[ArtifactInfo]] = {}
        for a in conn.execute(_ARTIFACTS_BY_BUILD, {"ids": [r[0] for r in rows]}) if rows else ():
            files.setdefault(a[0], []).append(ArtifactInfo(*a))
        builds = {r[0]: _build_row(r, {a.kind: a.location for a in files.get(r[0], ())}) for r in rows}
        history = BuildList(total, [builds[r[0]] for r in page])
        return EnvView(_env_info(env, builds, latest_id), history, files)


def environments_stamp(engine: Engine) -> tuple[int, int]:
    """Changes whenever ``list_environments`` would: the number of environments and the sum
    of their ``state_version`` (every version only grows, and every change the list shows
    raises one)."""
    with engine.connect() as conn:
        count, total = conn.execute(select(func.count(Environment.id), func.sum(Environment.state_version))).one()
    return count, total or 0


def environment_stamp(engine: Engine, ref: EnvRef) -> tuple[Any, ...] | None:
    """What changes whenever an environment's page would: its ``state_version`` (raised by
    the recorder with every change to the environment, its builds and their files) with its
    row, newest build and build count; None when there is no such environment. One
    indexed query: a reader compares it with the stamp it read before rendering."""
    with engine.connect() as conn:
        row = conn.execute(_ENV_STAMP, {"ns": ref.namespace, "name": ref.name}).first()
    return tuple(row) if row is not None else None


def list_builds(
    engine: Engine,
    *,
    ref: EnvRef | None = None,
    namespaces: Collection[str] | None = None,
    limit: int = 50,
    offset: int = 0,
) -> BuildList:
    """Builds (of one environment, of some namespaces, or of all), newest first, one page."""
    env_ids = select(Environment.id).join(Namespace, Environment.namespace_id == Namespace.id)
    where = []
    if ref is not None:
        env_id = env_ids.where(Namespace.name == ref.namespace, Environment.name == ref.name).scalar_subquery()
        where.append(Build.environment_id == env_id)
    if namespaces is not None:
        where.append(Build.environment_id.in_(env_ids.where(Namespace.name.in_(list(namespaces)))))
    with engine.connect() as conn:
        total = conn.scalar(select(func.count(Build.id)).where(*where)) or 0
        page = list(conn.scalars(select(Build.id).where(*where).order_by(Build.id.desc()).limit(limit).offset(offset)))
        builds = _load_builds(conn, page)
        return BuildList(total, [builds[i] for i in page])


def build_artifacts(engine: Engine, build_id: int) -> list[ArtifactInfo]:
    """Every artifact of one build, by kind."""
    with engine.connect() as conn:
        found = [ArtifactInfo(*a) for a in conn.execute(_ARTIFACTS_BY_BUILD, {"ids": [build_id]})]
    return sorted(found, key=lambda a: a.kind)


def get_specification(engine: Engine, spec_hash: str) -> str | None:
    """The canonical JSON of a specification, as recorded."""
    with engine.connect() as conn:
        return conn.scalar(select(Specification.canonical).where(Specification.sha256 == spec_hash))


def count_builds_by_state(engine: Engine) -> dict[str, int]:
    """Number of builds per stored state (queued, building, completed, failed, canceled)."""
    with engine.connect() as conn:
        return dict(conn.execute(select(Build.state, func.count()).group_by(Build.state)).all())


def finished_build_durations(engine: Engine) -> list[float]:
    """Seconds from start to finish of every build that ran to an end."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Build.started_at, Build.finished_at).where(
                Build.started_at.is_not(None), Build.finished_at.is_not(None)
            )
        )
        return [max((end - start).total_seconds(), 0.0) for start, end in rows]
