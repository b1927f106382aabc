"""Read-only queries for the status site's charts, returning plain dataclasses.

Each answer is bounded: the builds asked for (a page of an environment's history), the
builds of the last day (at most ``DAY_LIMIT``), one row per namespace.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, bindparam, func, or_, select

from condaops.reconciler.state.packages import build_packages
from condaops.reconciler.state.queries import BuildInfo
from condaops.reconciler.state.schema import Artifact, Build, Environment, Namespace

DAY_LIMIT = 20_000  # builds of the last day read for the activity chart


@dataclass(frozen=True, slots=True)
class BuildPoint:
    """One finished build of an environment: when, how long, how it ended, how big."""

    build_id: int
    finished_at: datetime
    seconds: float | None  # None when it never started
    state: str
    size: int | None = None  # sum of its locked packages' sizes (one platform), when indexed


@dataclass(frozen=True, slots=True)
class NamespaceUse:
    """Bytes a namespace holds: its current builds' packages (download sizes, one platform)
    and the files of its builds the store keeps (tarballs, lockfiles, logs)."""

    namespace: str
    packages: int
    artifacts: int


@dataclass(frozen=True, slots=True)
class Timeline:
    """The builds of a window: (queued, left the queue or None while still queued) for
    queue depth, and (finished, state) for outcomes."""

    waits: list[tuple[datetime, datetime | None]]
    outcomes: list[tuple[datetime, str]]


_PER_PLATFORM = (
    select(build_packages.c.build_id, func.sum(build_packages.c.size).label("size"))
    .where(build_packages.c.build_id.in_(bindparam("ids", expanding=True)))
    .group_by(build_packages.c.build_id, build_packages.c.platform)
    .subquery()
)
_BUILD_SIZES = select(_PER_PLATFORM.c.build_id, func.max(_PER_PLATFORM.c.size)).group_by(_PER_PLATFORM.c.build_id)


def build_sizes(engine: Engine, build_ids: Collection[int]) -> dict[int, int]:
    """Sum of the locked packages' sizes of each build (its largest platform), for the
    builds in the package index; one query."""
    if not build_ids:
        return {}
    with engine.connect() as conn:
        return {i: int(size or 0) for i, size in conn.execute(_BUILD_SIZES, {"ids": sorted(set(build_ids))})}


def build_points(builds: Iterable[BuildInfo], sizes: Mapping[int, int]) -> list[BuildPoint]:
    """The finished ones of ``builds`` (newest first, as the history lists them), oldest
    first, with their sizes. Pure."""
    points = [
        BuildPoint(
            build_id=b.build_id,
            finished_at=b.finished_at,
            seconds=max((b.finished_at - b.started_at).total_seconds(), 0.0) if b.started_at else None,
            state=b.state,
            size=sizes.get(b.build_id),
        )
        for b in builds
        if b.finished_at is not None
    ]
    return sorted(points, key=lambda p: p.build_id)


def namespace_use(engine: Engine, namespaces: Collection[str] | None = None) -> list[NamespaceUse]:
    """Bytes per namespace (``NamespaceUse``), live environments only, by name."""
    ns_filter = [Namespace.name.in_(list(namespaces))] if namespaces is not None else []
    with engine.connect() as conn:
        per_platform = (
            select(
                Environment.namespace_id.label("ns"),
                build_packages.c.build_id,
                build_packages.c.platform,
                func.sum(build_packages.c.size).label("size"),
            )
            .join(build_packages, build_packages.c.build_id == Environment.current_build_id)
            .where(Environment.retired_at.is_(None))
            .group_by(Environment.namespace_id, build_packages.c.build_id, build_packages.c.platform)
            .subquery()
        )
        per_build = (
            select(per_platform.c.ns, per_platform.c.build_id, func.max(per_platform.c.size).label("size"))
            .group_by(per_platform.c.ns, per_platform.c.build_id)
            .subquery()
        )
        packages: dict[str, int | None] = dict(
            conn.execute(
                select(Namespace.name, func.sum(per_build.c.size))
                .join(per_build, per_build.c.ns == Namespace.id)
                .where(*ns_filter)
                .group_by(Namespace.name)
            ).all()
        )
        artifacts: dict[str, int | None] = dict(
            conn.execute(
                select(Namespace.name, func.sum(Artifact.size))
                .join(Build, Artifact.build_id == Build.id)
                .join(Environment, Build.environment_id == Environment.id)
                .join(Namespace, Environment.namespace_id == Namespace.id)
                .where(Build.collected_at.is_(None), Environment.retired_at.is_(None), *ns_filter)
                .group_by(Namespace.name)
            ).all()
        )
    names = sorted(set(packages) | set(artifacts))
    return [NamespaceUse(n, int(packages.get(n) or 0), int(artifacts.get(n) or 0)) for n in names]


def timeline(engine: Engine, now: datetime, *, hours: int = 24, namespaces: Collection[str] | None = None) -> Timeline:
    """Builds queued, waiting or finished within the last ``hours`` (at most ``DAY_LIMIT``)."""
    since = now - timedelta(hours=hours)
    where = [or_(Build.queued_at >= since, Build.finished_at >= since, Build.started_at.is_(None))]
    if namespaces is not None:
        where.append(
            Build.environment_id.in_(
                select(Environment.id)
                .join(Namespace, Environment.namespace_id == Namespace.id)
                .where(Namespace.name.in_(list(namespaces)))
            )
        )
    with engine.connect() as conn:
        rows = conn.execute(
            select(Build.queued_at, Build.started_at, Build.finished_at, Build.state)
            .where(*where)
            .order_by(Build.id.desc())
            .limit(DAY_LIMIT)
        ).all()
    waits = []
    for queued, started, finished, _ in rows:
        left = started or finished  # a build canceled while queued leaves the queue when it ends
        if left is None or left >= since:
            waits.append((queued, left))
    outcomes = [(finished, state) for _, _, finished, state in rows if finished is not None and finished >= since]
    return Timeline(waits, outcomes)
