"""The package index: the locked packages of every build, in one table.

Reading every build's pixi.lock to answer "which environments have openssl 3.3?" does
not scale, so the recorder writes each finished build's locked packages into
``build_packages`` once (``record_build_packages``; builds are immutable, rows are never
updated). Readers get ``LockedPackage`` dataclasses, never rows.

``read_locked_packages`` reads the same data from a pixi.lock file: the fallback for
builds recorded before the index existed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from condaops.reconciler.lockread import PIXI_ENVIRONMENT, channel_url, read_pixi_lock, redact_url
from condaops.reconciler.model import EnvRef
from condaops.reconciler.state.schema import Base, Environment, Namespace

CONDA, PYPI = "conda", "pypi"

build_packages = Table(
    "build_packages",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("build_id", ForeignKey("builds.id", name="fk_build_packages_build", ondelete="CASCADE"), nullable=False),
    Column("platform", String(32), nullable=False),
    Column("manager", String(16), nullable=False),
    Column("name", String(256), nullable=False),
    Column("version", String(128), nullable=False),
    Column("build", String(256)),
    Column("build_number", Integer),
    Column("channel", Text),
    Column("subdir", String(32)),
    Column("size", BigInteger),
    Column("url", Text, nullable=False),
    Column("sha256", String(64)),
    Index("ix_build_packages_build", "build_id", "platform"),
    Index("ix_build_packages_name", "name", "version"),
)


@dataclass(frozen=True, slots=True, order=True)
class LockedPackage:
    """One locked package of one platform of a build (conda or pypi)."""

    platform: str
    name: str
    version: str
    build: str | None = None
    build_number: int | None = None
    channel: str | None = None
    subdir: str | None = None
    size: int | None = None
    url: str = ""
    sha256: str | None = None
    manager: str = CONDA

    @property
    def key(self) -> tuple[str, str, str]:
        """What a diff matches packages by: (platform, manager, name)."""
        return self.platform, self.manager, self.name


_COLUMNS = tuple(f.name for f in fields(LockedPackage))  # table columns, in field order


@dataclass(frozen=True, slots=True)
class PackageHit:
    """A package found in the current build of an environment."""

    ref: EnvRef
    build_id: int
    package: LockedPackage


@dataclass(frozen=True, slots=True)
class PackageHits:
    total: int
    items: list[PackageHit]


# --- converting -----------------------------------------------------------------------


def locked_packages(
    records: Mapping[str, Sequence[Any]], pip: Mapping[str, Sequence[Any]] | None = None
) -> list[LockedPackage]:
    """Packages from solved records: platform -> ``RepoDataRecord``s (what the build's
    solve step and ``read_pixi_lock`` give) and platform -> ``PipLock``s.

    URLs lose their credentials, as they do in lockfiles.
    """

    out = [
        LockedPackage(
            platform=platform,
            name=r.name.normalized,
            version=str(r.version),
            build=str(r.build),
            build_number=int(r.build_number),
            channel=channel_url(str(r.channel)) if r.channel else None,
            subdir=str(r.subdir),
            size=r.size,
            url=redact_url(str(r.url)),
            sha256=r.sha256.hex() if r.sha256 else None,
        )
        for platform, recs in records.items()
        for r in recs
    ]
    out += [
        LockedPackage(
            platform=platform,
            name=lock.name.lower(),
            version=lock.version,
            url=redact_url(lock.url),
            sha256=lock.sha256,
            manager=PYPI,
        )
        for platform, locks in (pip or {}).items()
        for lock in locks
    ]
    return sorted(out)


def read_locked_packages(path: Path) -> list[LockedPackage]:
    """The packages of a pixi.lock written by condaops (conda and pypi)."""
    from rattler import LockFile

    packages = locked_packages(read_pixi_lock(path))
    environment = LockFile.from_path(path).environment(PIXI_ENVIRONMENT)
    for platform, pypi in (environment.pypi_packages() if environment else {}).items():
        for p in pypi:
            url, _, fragment = str(p.location).partition("#sha256=")
            packages.append(
                LockedPackage(
                    platform=platform,
                    name=p.name.lower(),
                    version=str(p.version),
                    url=url,
                    sha256=fragment or None,
                    manager=PYPI,
                )
            )
    return sorted(packages)


# --- writing (the recorder calls this, inside its transaction) -----------------------


def record_build_packages(
    session: Session,
    build_id: int,
    records: Mapping[str, Sequence[Any]] | Iterable[LockedPackage],
    pip: Mapping[str, Sequence[Any]] | None = None,
) -> int:
    """Index the locked packages of one build; returns the number of rows.

    ``records`` is platform -> ``RepoDataRecord``s (with ``pip`` platform -> ``PipLock``s),
    or ready ``LockedPackage``s. Writing twice replaces the first write.
    """
    packages = locked_packages(records, pip) if isinstance(records, Mapping) else list(records)
    session.execute(delete(build_packages).where(build_packages.c.build_id == build_id))
    if packages:
        rows = [{"build_id": build_id, **{c: getattr(p, c) for c in _COLUMNS}} for p in packages]
        session.execute(insert(build_packages), rows)
    return len(packages)


# --- reading ---------------------------------------------------------------------------


def _package(row: Any) -> LockedPackage:
    return LockedPackage(**{c: getattr(row, c) for c in _COLUMNS})


_PACKAGES_OF_BUILD = select(*(build_packages.c[c] for c in _COLUMNS)).where(
    build_packages.c.build_id == bindparam("build")
)


def indexed_packages(engine: Engine, build_id: int) -> list[LockedPackage] | None:
    """The indexed packages of a build, or None if the build was never indexed."""
    with engine.connect() as conn:
        rows = conn.execute(_PACKAGES_OF_BUILD, {"build": build_id}).all()
    return sorted(LockedPackage(*r) for r in rows) if rows else None


def indexed_build_ids(engine: Engine, build_ids: Iterable[int]) -> set[int]:
    """Which of ``build_ids`` have rows in the index."""
    wanted = list(set(build_ids))
    found: set[int] = set()
    with Session(engine) as s:
        for start in range(0, len(wanted), 500):  # bounded IN lists
            chunk = wanted[start : start + 500]
            found |= set(
                s.scalars(select(build_packages.c.build_id).where(build_packages.c.build_id.in_(chunk)).distinct())
            )
    return found


def version_matches(version: str, prefix: str | None) -> bool:
    """``3.3`` matches 3.3, 3.3.2 and 3.3.2.post1, not 3.30: prefixes end at a segment."""
    return not prefix or version == prefix or version.startswith(prefix + ".")


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def find_current_packages(
    engine: Engine,
    name: str,
    version_prefix: str | None = None,
    *,
    limit: int = 50,
    offset: int = 0,
    namespaces: Collection[str] | None = None,
) -> PackageHits:
    """Live environments whose current build has package ``name`` (a ``*`` glob allowed)
    at a version starting with ``version_prefix`` (segment-wise, see ``version_matches``),
    in ``namespaces`` only if given."""
    bp = build_packages.c
    pattern = _like_escape(name.lower()).replace("*", "%")
    where: list[ColumnElement[bool]] = [
        bp.name.like(pattern, escape="\\") if "*" in name else bp.name == name.lower(),
        Environment.retired_at.is_(None),
    ]
    if namespaces is not None:
        where.append(Namespace.name.in_(list(namespaces)))
    if version_prefix:
        where.append(
            or_(bp.version == version_prefix, bp.version.like(_like_escape(version_prefix) + ".%", escape="\\"))
        )
    base = (
        select(Namespace.name.label("ns"), Environment.name.label("env"), *(bp[c] for c in _COLUMNS), bp.build_id)
        .select_from(build_packages)
        .join(Environment, Environment.current_build_id == bp.build_id)
        .join(Namespace, Environment.namespace_id == Namespace.id)
        .where(*where)
    )
    with Session(engine) as s:
        total = s.scalar(select(func.count()).select_from(base.subquery())) or 0
        rows = s.execute(
            base.order_by(Namespace.name, Environment.name, bp.platform, bp.name).limit(limit).offset(offset)
        ).all()
    return PackageHits(total, [PackageHit(EnvRef(r.ns, r.env), r.build_id, _package(r)) for r in rows])
