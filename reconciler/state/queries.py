"""Read-only queries over the state DB, returning plain dataclasses (never ORM rows).

The dataclasses and shared statements live in ``rows``; what the plan reads in
``recorded``. Both are re-exported here, where readers have always found them.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, cast

from sqlalchemy import Engine, bindparam, func, select
from sqlalchemy.orm import Session

from condaops.reconciler.model import DeliveryRecord, EnvRef
from condaops.reconciler.state.recorded import current_prefixes, load_recorded
from condaops.reconciler.state.rows import (
    ARTIFACTS_BY_BUILD,
    BUILD_COLUMNS,
    BUILDS_BY_ID,
    ENV_COLUMNS,
    ENVS,
    ArtifactInfo,
    BuildInfo,
    BuildList,
    EnvInfo,
    EnvView,
    RejectedFileInfo,
    SourceInfo,
    build_info,
    env_info,
    load_builds,
)
from condaops.reconciler.state.schema import (
    Build,
    Delivery,
    Environment,
    Namespace,
    RejectedFile,
    SourceState,
    Specification,
)

__all__ = [
    "ArtifactInfo",
    "BuildInfo",
    "BuildList",
    "EnvInfo",
    "EnvView",
    "RejectedFileInfo",
    "SourceInfo",
    "current_prefixes",
    "load_recorded",
]


def list_environments(engine: Engine, *, include_retired: bool = False) -> list[EnvInfo]:
    with engine.connect() as conn:
        latest = select(Build.environment_id, func.max(Build.id)).group_by(Build.environment_id)
        latest_ids: dict[int, int] = dict(conn.execute(latest).all())
        query = ENVS if include_retired else ENVS.where(Environment.retired_at.is_(None))
        envs = conn.execute(query.order_by(Namespace.name, Environment.name)).all()
        wanted = {latest_ids[e[0]] for e in envs if e[0] in latest_ids} | {e[7] for e in envs if e[7]}
        builds = load_builds(conn, wanted)
        return [env_info(e, builds, latest_ids.get(e[0])) for e in envs]


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
        builds = load_builds(conn, ids)
    return [builds[i] for i in ids]


_DELIVERIES = (
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
_DELIVERIES_OF_ONE = _DELIVERIES.where(Namespace.name == bindparam("ns"), Environment.name == bindparam("name"))


def list_deliveries(engine: Engine, refs: Collection[EnvRef] | None = None) -> dict[EnvRef, list[DeliveryRecord]]:
    """What is recorded as delivered (kernels, modulefiles, names) per environment, in a
    stable order (kind, then name); of ``refs`` only, when given."""
    wanted = None if refs is None else set(refs)
    query, params = _DELIVERIES, {}
    if wanted is not None and len(wanted) == 1:  # an environment page: one prepared statement
        (only,) = wanted
        query, params = _DELIVERIES_OF_ONE, {"ns": only.namespace, "name": only.name}
    found: dict[EnvRef, list[DeliveryRecord]] = {}
    with engine.connect() as conn:
        for ns, name, *rest in conn.execute(query, params):
            ref = EnvRef(ns, name)
            if wanted is None or ref in wanted:
                found.setdefault(ref, []).append(DeliveryRecord(*cast("list[Any]", rest)))  # columns in field order
    return found


def get_build(engine: Engine, build_id: int) -> BuildInfo | None:
    with engine.connect() as conn:
        return load_builds(conn, [build_id]).get(build_id)


def build_ref(engine: Engine, build_id: int) -> EnvRef | None:
    """The environment a build belongs to, in one statement (a worker's listeners ask this
    after every build)."""
    with engine.connect() as conn:
        row = conn.execute(
            select(Namespace.name, Environment.name)
            .join(Environment, Environment.namespace_id == Namespace.id)
            .join(Build, Build.environment_id == Environment.id)
            .where(Build.id == build_id)
        ).first()
    return EnvRef(row[0], row[1]) if row else None


def list_sources(engine: Engine) -> list[SourceInfo]:
    with Session(engine) as s:
        return [
            SourceInfo(r.name, r.revision, r.fetched_at, r.last_success_at, r.error_reason, r.error_message)
            for r in s.scalars(select(SourceState).order_by(SourceState.name))
        ]


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

_LATEST_BUILD = select(func.max(Build.id)).where(Build.environment_id == Environment.id).scalar_subquery()
_BUILD_COUNT = select(func.count(Build.id)).where(Build.environment_id == Environment.id).scalar_subquery()
_ENV_VIEW = (
    select(*ENV_COLUMNS, _LATEST_BUILD, _BUILD_COUNT)
    .join(Namespace, Environment.namespace_id == Namespace.id)
    .where(Namespace.name == bindparam("ns"), Environment.name == bindparam("name"))
)
# The view's own first query with the version in front: the two cannot drift apart.
_ENV_STAMP = _ENV_VIEW.with_only_columns(Environment.state_version, *_ENV_VIEW.selected_columns)
_HISTORY = (
    select(*BUILD_COLUMNS)
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
        env, latest_id, total = row[:-2], cast("int | None", row[-2]), cast(int, row[-1])
        page: list[Any] = []
        if history_limit:
            params = {"env": env[0], "limit": history_limit, "offset": history_offset}
            page = list(conn.execute(_HISTORY, params))
        missing = {i for i in (env[7], latest_id) if i} - {r[0] for r in page}
        rows = page + (list(conn.execute(BUILDS_BY_ID, {"ids": sorted(missing)})) if missing else [])
        files: dict[int, list[ArtifactInfo]] = {}
        for a in conn.execute(ARTIFACTS_BY_BUILD, {"ids": [r[0] for r in rows]}) if rows else ():
            files.setdefault(a[0], []).append(ArtifactInfo(*a))
        builds = {r[0]: build_info(r, {a.kind: a.location for a in files.get(r[0], ())}) for r in rows}
        history = BuildList(total, [builds[r[0]] for r in page])
        return EnvView(env_info(env, builds, latest_id), history, files)


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
        builds = load_builds(conn, page)
        return BuildList(total, [builds[i] for i in page])


def build_artifacts(engine: Engine, build_id: int) -> list[ArtifactInfo]:
    """Every artifact of one build, by kind."""
    with engine.connect() as conn:
        found = [ArtifactInfo(*a) for a in conn.execute(ARTIFACTS_BY_BUILD, {"ids": [build_id]})]
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
        return [max((end - start).total_seconds(), 0.0) for start, end in rows if start is not None and end is not None]
