"""Recording a plan: environments, specifications and queued builds, in bulk.

``record_plan(s, plan, now)`` writes what a plan's actions change, in one transaction of
the caller (a ``RecordingSession``): only the environments the actions name are read
(all of them in one query when the plan is large), only rows whose values differ are
written, and new rows go in with one multi-row INSERT per table (``executemany``; the ids
come back with ``RETURNING``, on SQLite and PostgreSQL alike). A first pass over 10,000
new environments is a handful of statements, not 40,000 ORM objects; a pass where nothing
changed writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, tuple_, update

from condaops.reconciler.model import CANCELED, QUEUED, DesiredEnv, EnvRef
from condaops.reconciler.plan import BUILD, REJECT, RETIRE, SOURCE_REMOVED_KEPT, Action, Plan
from condaops.reconciler.reasons import Reason
from condaops.reconciler.state.locks import keep_lock
from condaops.reconciler.state.schema import Build, Environment, Namespace, Specification
from condaops.reconciler.state.session import RecordingSession, insert_ids

SUPERSEDED = Reason.SUPERSEDED
_CHUNK = 500  # rows per IN (...) list
_LOAD_ALL = 200  # more environments named than this: read them all in one query

# The columns of an environment a plan writes (and compares before writing).
_FIELDS = (
    "source",
    "path",
    "source_revision",
    "desired_spec_hash",
    "warnings",
    "rejection_reason",
    "rejection_message",
    "removed_at",
    "removed_revision",
    "retired_at",
    "retired_reason",
    "retired_message",
    "current_build_id",
    "pinned_spec_hash",
    "display_name",
)
_COLUMNS = tuple(getattr(Environment, f) for f in _FIELDS)


@dataclass(frozen=True, slots=True)
class QueuedBuild:
    build_id: int
    ref: EnvRef
    spec_hash: str

    @property
    def job_id(self) -> str:
        """Deterministic: the same build of the same spec is never queued twice."""
        return f"build:{self.ref}:{self.spec_hash}"


def find_environment(s: RecordingSession | Any, ref: EnvRef) -> Environment | None:
    """One environment's ORM row (retired ones too), or None."""
    return s.scalar(
        select(Environment).join(Namespace).where(Namespace.name == ref.namespace, Environment.name == ref.name)
    )


def _touches(action: Action) -> bool:
    """Whether an action writes to its environment's row."""
    return action.kind in (BUILD, REJECT, RETIRE) or action.desired is not None or action.reason == SOURCE_REMOVED_KEPT


def record_plan(s: RecordingSession, plan: Plan, now: datetime) -> list[QueuedBuild]:
    """Record a plan's changes; return the builds to hand to the scheduler."""
    actions = [a for a in plan.actions if _touches(a)]
    if not actions:
        return []
    rows = _load(s, {a.ref for a in actions})
    wanted: dict[EnvRef, dict[str, Any]] = {}
    for action in actions:  # one action per environment
        before = rows.get(action.ref)
        after = _apply(dict(before or _blank()), action, now, existed=before is not None)
        if after is not None:
            wanted[action.ref] = after
    ids = {ref: row["id"] for ref, row in rows.items()}
    ids |= _insert_new(s, {ref: row for ref, row in wanted.items() if ref not in rows})
    changed = [row for ref, row in wanted.items() if row != rows.get(ref, row)]  # existing rows carry their id
    for start in range(0, len(changed), _CHUNK):
        s.execute(update(Environment), changed[start : start + _CHUNK])
    builds = [a for a in actions if a.kind == BUILD]
    return _queue(s, builds, ids, set(rows), now) if builds else []


def _blank() -> dict[str, Any]:
    return {f: None for f in _FIELDS}


def _apply(row: dict[str, Any], action: Action, now: datetime, *, existed: bool) -> dict[str, Any] | None:
    """The row as ``action`` leaves it; None when it leaves no row (nothing to retire)."""
    if action.kind == RETIRE:
        if not existed:
            return None
        row.update(retired_at=now, retired_reason=action.reason, retired_message=action.message)
        row["current_build_id"] = None
    elif action.kind == REJECT:
        rej = action.rejection
        if rej is not None and row["source"] is None:
            row["source"], row["path"] = rej.source, rej.path
        row["rejection_reason"], row["rejection_message"] = action.reason, action.message
        row["removed_at"] = row["removed_revision"] = None  # the file is back, if not valid yet
    elif action.desired is not None:
        _refresh(row, action)
        if action.kind == BUILD:
            row["source_revision"] = action.desired.revision
            row["retired_at"] = row["retired_reason"] = row["retired_message"] = None
            if row["pinned_spec_hash"] != action.spec_hash:
                row["pinned_spec_hash"] = None
    elif action.reason == SOURCE_REMOVED_KEPT:
        # The file is gone and the environment kept: noted once, with the first revision
        # without it (its current build stays linked; nothing is retried).
        if not existed or row["removed_at"] is not None:
            return row if existed else None
        row["removed_at"], row["removed_revision"] = now, action.revision
    return row


def _refresh(row: dict[str, Any], action: Action) -> None:
    """Keep where the desired file lives up to date; a valid file clears a rejection.

    ``source_revision`` is the revision the desired spec was last queued at: it is not
    rewritten on passes where nothing changed for this environment (a directory's
    revision changes with any file, and rewriting thousands of rows per pass is waste)."""
    d = action.desired
    assert d is not None
    row["source"], row["path"] = d.source, d.path
    if row["source_revision"] is None:
        row["source_revision"] = d.revision
    row["desired_spec_hash"] = action.spec_hash
    row["warnings"] = json.dumps(list(d.warnings)) if d.warnings else None
    row["display_name"] = d.spec.display_name  # deliveries show it; not part of the spec hash
    row["rejection_reason"] = row["rejection_message"] = None
    row["removed_at"] = row["removed_revision"] = None  # the file is back


def _load(s: RecordingSession, refs: set[EnvRef]) -> dict[EnvRef, dict[str, Any]]:
    """The recorded rows of these environments (those that exist), as plain dicts."""
    query = select(Environment.id, Namespace.name, Environment.name, *_COLUMNS).join(
        Namespace, Environment.namespace_id == Namespace.id
    )
    found: list[Any] = []
    if len(refs) > _LOAD_ALL:
        found = list(s.execute(query))
    else:
        pairs = sorted((r.namespace, r.name) for r in refs)
        for start in range(0, len(pairs), _CHUNK):
            where = tuple_(Namespace.name, Environment.name).in_(pairs[start : start + _CHUNK])
            found += s.execute(query.where(where))
    out = {}
    for env_id, ns, name, *values in found:
        ref = EnvRef(ns, name)
        if ref in refs:
            out[ref] = {"id": env_id, **dict(zip(_FIELDS, values, strict=True))}
    return out


def _insert_new(s: RecordingSession, new: dict[EnvRef, dict[str, Any]]) -> dict[EnvRef, int]:
    """Insert environments (and their namespaces) that are not recorded yet; their ids."""
    if not new:
        return {}
    namespaces = dict(s.execute(select(Namespace.name, Namespace.id)).all())
    missing = sorted({ref.namespace for ref in new} - namespaces.keys())
    if missing:
        inserted = s.execute(
            insert(Namespace).returning(Namespace.name, Namespace.id, sort_by_parameter_order=True),
            [{"name": ns} for ns in missing],
        )
        namespaces |= dict(inserted.all())
    refs = sorted(new)
    params = [{"namespace_id": namespaces[ref.namespace], "name": ref.name, **new[ref]} for ref in refs]
    ids = dict(zip(refs, insert_ids(s, Environment, params), strict=True))
    s.created_envs.update(ids.values())  # a new environment starts at state_version 0
    return ids


def _specifications(s: RecordingSession, builds: Sequence[Action]) -> dict[str, int]:
    """Specification ids by hash, inserting those not recorded yet."""
    canonical: dict[str, DesiredEnv] = {a.spec_hash: a.desired for a in builds if a.spec_hash and a.desired}
    hashes = sorted(canonical)
    ids: dict[str, int] = {}
    for start in range(0, len(hashes), _CHUNK):
        query = select(Specification.sha256, Specification.id).where(
            Specification.sha256.in_(hashes[start : start + _CHUNK])
        )
        ids.update(s.execute(query).all())
    missing = [h for h in hashes if h not in ids]
    rows = [{"sha256": h, "canonical": canonical[h].spec.canonical_json()} for h in missing]
    ids.update(zip(missing, insert_ids(s, Specification, rows), strict=True))
    return ids


def _queue(
    s: RecordingSession, builds: Sequence[Action], ids: dict[EnvRef, int], existed: set[EnvRef], now: datetime
) -> list[QueuedBuild]:
    """New builds; a newer spec supersedes a build of the same environment still queued."""
    specs = _specifications(s, builds)
    older = sorted(ids[a.ref] for a in builds if a.ref in existed)
    for start in range(0, len(older), _CHUNK):
        s.execute(
            update(Build)
            .where(Build.environment_id.in_(older[start : start + _CHUNK]), Build.state == QUEUED)
            .values(state=CANCELED, reason=SUPERSEDED, finished_at=now)
            .execution_options(synchronize_session=False)
        )
    rows = [_build_row(s, a, ids[a.ref], specs[a.spec_hash], now) for a in builds]  # type: ignore[index]  # every ref and spec hash was inserted just above
    return [QueuedBuild(i, a.ref, a.spec_hash) for i, a in zip(insert_ids(s, Build, rows), builds, strict=True)]  # type: ignore[arg-type]  # a build action has its spec hash


def _build_row(s: RecordingSession, action: Action, env_id: int, spec_id: int, now: datetime) -> dict[str, Any]:
    d = action.desired
    assert d is not None
    return {
        "environment_id": env_id,
        "specification_id": spec_id,
        "state": QUEUED,
        "attempt": action.attempt,
        "reason": action.reason,
        "message": action.message,
        "retryable": False,
        "source": d.source,
        "source_revision": d.revision,
        "source_path": d.path,
        "lock_path": keep_lock(s, d.spec, d.lock),
        "queued_at": now,
        "policy": d.policy,
        "policy_hash": d.policy_hash,
    }
