"""What the plan needs from the state DB: every environment's recorded state.

Read-only; plain dataclasses (``model.RecordedEnv``), never ORM rows. ``load_recorded``
reads it all; ``RecordedState`` keeps a copy between reconcile passes and re-reads only
the environments whose ``state_version`` moved (every recorded change moves it:
``session``), so a pass where nothing was recorded costs one small query.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, replace

from sqlalchemy import Engine, func, select, tuple_
from sqlalchemy.orm import Session, aliased

from condaops.reconciler.model import EnvRef, RecordedBuild, RecordedEnv
from condaops.reconciler.state.schema import Build, Environment, Namespace, Specification

_CHUNK = 500  # ids per IN (...) list
_CUR = aliased(Build)
_CUR_SPEC = aliased(Specification)
_LATEST = select(
    Build.environment_id,
    Build.id,
    Specification.sha256,
    Build.state,
    Build.attempt,
    Build.reason,
    Build.retryable,
    Build.finished_at,
    Build.policy_hash,
).join(Specification)
_ENVS = (
    select(
        Environment.id,
        Namespace.name,
        Environment.name,
        Environment.source,
        _CUR_SPEC.sha256,
        Environment.retired_at,
        Environment.pinned_spec_hash,
        _CUR.prefix,
        Environment.display_name,
    )
    .join(Namespace)
    .outerjoin(_CUR, Environment.current_build_id == _CUR.id)
    .outerjoin(_CUR_SPEC, _CUR.specification_id == _CUR_SPEC.id)
)


@dataclass(frozen=True, slots=True)
class Recorded:
    """One environment's record: what ``plan`` sees, its id and version, and its linked
    prefix (store-relative; None when it has none or is retired)."""

    env: RecordedEnv
    id: int
    version: int
    prefix: str | None


def _chunks(ids: Collection[int]) -> Iterable[list[int]]:
    ordered = sorted(ids)
    for start in range(0, len(ordered), _CHUNK):
        yield ordered[start : start + _CHUNK]


def _read(s: Session, ids: Collection[int] | None) -> dict[EnvRef, Recorded]:
    """The records of these environments (of all, given None)."""
    newest = select(func.max(Build.id)).group_by(Build.environment_id)
    if ids is None:
        versions = dict(s.execute(select(Environment.id, Environment.state_version)).all())
        builds = list(s.execute(_LATEST.where(Build.id.in_(newest.scalar_subquery()))))
        env_rows = list(s.execute(_ENVS))
    else:
        versions, builds, env_rows = {}, [], []
        for chunk in _chunks(ids):
            versions |= dict(
                s.execute(select(Environment.id, Environment.state_version).where(Environment.id.in_(chunk))).all()
            )
            mine = newest.where(Build.environment_id.in_(chunk)).scalar_subquery()
            builds += s.execute(_LATEST.where(Build.id.in_(mine)))
            env_rows += s.execute(_ENVS.where(Environment.id.in_(chunk)))
    latest = {row[0]: RecordedBuild(*row[1:]) for row in builds}
    out: dict[EnvRef, Recorded] = {}
    for env_id, ns, name, source, cur_hash, retired_at, pinned, prefix, display_name in env_rows:
        ref = EnvRef(ns, name)
        env = RecordedEnv(
            ref=ref,
            source=source,
            current_spec_hash=cur_hash,
            latest=latest.get(env_id),
            retired=retired_at is not None,
            pinned_spec_hash=pinned,
            prefix_present=True,
            display_name=display_name,
        )
        out[ref] = Recorded(env, env_id, versions.get(env_id, 0), None if retired_at is not None else prefix)
    return out


def _all_versions(s: Session) -> dict[int, int]:
    """Every environment's ``(id, state_version)``, through the driver's cursor: SQLAlchemy
    rows for every environment would cost more than the rest of a pass."""
    cursor = s.connection().connection.cursor()
    try:
        cursor.execute("SELECT id, state_version FROM environments")
        return dict(cursor.fetchall())
    finally:
        cursor.close()


def load_recorded(engine: Engine) -> dict[EnvRef, RecordedEnv]:
    """What ``plan`` needs, for every environment, in a few queries."""
    with Session(engine) as s:
        return {ref: r.env for ref, r in _read(s, None).items()}


def current_prefixes(engine: Engine, refs: Collection[EnvRef] | None = None) -> dict[EnvRef, str]:
    """Linked prefix per live environment (of ``refs`` only, when given), for observing the disk."""
    query = (
        select(Namespace.name, Environment.name, Build.prefix)
        .join(Namespace)
        .join(Build, Environment.current_build_id == Build.id)
        .where(Environment.retired_at.is_(None))
    )
    if refs is not None and not refs:
        return {}
    with Session(engine) as s:
        if refs is None or len(refs) > _CHUNK:
            rows = list(s.execute(query))
        else:
            pairs = sorted((r.namespace, r.name) for r in refs)
            rows = list(s.execute(query.where(tuple_(Namespace.name, Environment.name).in_(pairs))))
    wanted = None if refs is None else set(refs)
    return {EnvRef(ns, n): p for ns, n, p in rows if p and (wanted is None or EnvRef(ns, n) in wanted)}


_STAMP = select(
    func.count(Environment.id), func.coalesce(func.sum(Environment.state_version), 0), func.max(Environment.id)
)


class RecordedState:
    """A copy of every environment's record, kept up to date by what changed.

    ``refresh()`` compares the table's stamp (count, sum of versions, newest id: versions
    only grow) with the last one: unchanged, nothing is read; else the ``(id, version)``
    pairs are read and only the environments whose version moved are loaded again.
    ``reload()`` reads everything (the periodic full check). Not thread-safe: one
    reconcile pass at a time uses it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.records: dict[EnvRef, Recorded] = {}
        self._stamp: tuple[int, int, int | None] | None = None
        self._versions: dict[int, int] = {}  # environment id -> the version of its record here
        self._refs: dict[int, EnvRef] = {}  # environment id -> its ref

    def reload(self) -> set[EnvRef]:
        """Read every record again; returns every environment's ref (all count as changed)."""
        with Session(self.engine) as s:
            stamp = s.execute(_STAMP).one()
            self.records = _read(s, None)
        self._stamp = tuple(stamp)  # type: ignore[assignment]  # a Row of three values
        self._versions = {r.id: r.version for r in self.records.values()}
        self._refs = {r.id: ref for ref, r in self.records.items()}
        return set(self.records)

    def refresh(self) -> set[EnvRef]:
        """Bring the copy up to date; the refs whose record changed (all, the first time).

        What moved is found by comparing the ``(id, version)`` pairs as sets, in C: no
        Python work per environment when a few records moved among many."""
        if self._stamp is None:
            return self.reload()
        with Session(self.engine) as s:
            stamp = tuple(s.execute(_STAMP).one())
            if stamp == self._stamp:
                return set()
            now = _all_versions(s)
            moved = {i for i, _ in now.items() - self._versions.items()}
            gone_ids = self._versions.keys() - now.keys()
            fresh = _read(s, moved) if moved else {}
        self._stamp = stamp  # type: ignore[assignment]  # the stamp is None until the first read
        gone = {self._refs[i] for i in gone_ids}
        renamed = {ref for i in moved if (ref := self._refs.get(i)) is not None and ref not in fresh}
        for ref in gone | renamed:
            del self.records[ref]
        for i in gone_ids | moved:
            self._versions.pop(i, None)
            self._refs.pop(i, None)
        self.records.update(fresh)
        for ref, r in fresh.items():
            self._versions[r.id], self._refs[r.id] = r.version, ref
        return set(fresh) | gone | renamed

    def observe(self, refs: Iterable[EnvRef], present: Callable[[str], bool]) -> set[EnvRef]:
        """Check the linked prefixes of these environments on disk (``present(prefix)``);
        the refs whose presence changed (a vanished prefix needs a rebuild)."""
        changed = set()
        for ref in refs:
            r = self.records.get(ref)
            if r is None or r.prefix is None:
                continue
            ok = present(r.prefix)
            if ok != r.env.prefix_present:
                self.records[ref] = replace(r, env=replace(r.env, prefix_present=ok))
                changed.add(ref)
        return changed

    def envs(self, only: Collection[EnvRef] | None = None) -> dict[EnvRef, RecordedEnv]:
        """What ``plan`` reads: every environment's ``RecordedEnv`` (of ``only``, given)."""
        if only is not None:
            return {ref: self.records[ref].env for ref in only if ref in self.records}
        return {ref: r.env for ref, r in self.records.items()}
