"""Read-only queries about change requests, their previews and the builds previews reuse;
plain dataclasses out (never ORM rows)."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, or_, select
from sqlalchemy.orm import Session

from condaops.reconciler.model import EnvRef
from condaops.reconciler.state.schema import (
    Artifact,
    Build,
    ChangeRequest,
    Environment,
    Namespace,
    PreviewBuild,
    Specification,
)


@dataclass(frozen=True, slots=True)
class ChangeRequestInfo:
    source: str
    ref: str
    state: str
    head_revision: str
    base_revision: str | None  # the merge base
    has_changes: bool
    has_errors: bool
    report_json: str | None
    report_markdown: str | None
    error: str | None
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    target_revision: str | None = None
    reason: str | None = None
    title: str | None = None
    version: int = 0
    published_version: int | None = None
    comment_id: str | None = None
    published_at: datetime | None = None
    publish_error: str | None = None


def _change_request(r: ChangeRequest) -> ChangeRequestInfo:
    return ChangeRequestInfo(
        r.source,
        r.ref,
        r.state,
        r.head_revision,
        r.base_revision,
        r.has_changes,
        r.has_errors,
        r.report_json,
        r.report_markdown,
        r.error,
        r.opened_at,
        r.updated_at,
        r.closed_at,
        r.target_revision,
        r.reason,
        r.title,
        r.version,
        r.published_version,
        r.comment_id,
        r.published_at,
        r.publish_error,
    )


def list_change_requests(engine: Engine, *, source: str | None = None) -> list[ChangeRequestInfo]:
    """Recorded change requests (open first, newest first)."""
    with Session(engine) as s:
        query = select(ChangeRequest).order_by(ChangeRequest.state.desc(), ChangeRequest.updated_at.desc())
        if source is not None:
            query = query.where(ChangeRequest.source == source)
        return [_change_request(r) for r in s.scalars(query)]


def get_change_request(engine: Engine, source: str, ref: str) -> ChangeRequestInfo | None:
    with Session(engine) as s:
        row = s.scalar(select(ChangeRequest).where(ChangeRequest.source == source, ChangeRequest.ref == ref))
        return _change_request(row) if row is not None else None


def unpublished_change_requests(engine: Engine, sources: Collection[str]) -> list[tuple[str, str]]:
    """(source, ref) of reviews with changes the forge has not been told about."""
    if not sources:
        return []
    with Session(engine) as s:
        rows = s.execute(
            select(ChangeRequest.source, ChangeRequest.ref).where(
                ChangeRequest.source.in_(list(sources)),
                or_(ChangeRequest.published_version.is_(None), ChangeRequest.published_version < ChangeRequest.version),
            )
        )
        return [(src, ref) for src, ref in rows]


@dataclass(frozen=True, slots=True)
class PreviewInfo:
    preview_id: int
    ref: EnvRef
    head_revision: str
    spec_hash: str
    state: str
    reason: str | None
    message: str | None
    prefix: str | None
    artifacts: dict[str, str]
    path: str | None = None
    reused: str | None = None  # "build:<id>" / "preview:<id>"
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


def list_previews(engine: Engine, *, source: str, ref: str) -> list[PreviewInfo]:
    """Preview builds of one change request, newest first."""
    with Session(engine) as s:
        rows = s.scalars(
            select(PreviewBuild)
            .join(ChangeRequest)
            .where(ChangeRequest.source == source, ChangeRequest.ref == ref)
            .order_by(PreviewBuild.id.desc())
        )
        return [_preview(r) for r in rows]


def get_preview(engine: Engine, preview_id: int) -> tuple[str, str, PreviewInfo] | None:
    """(source, ref, preview) of one preview build."""
    with Session(engine) as s:
        row = s.get(PreviewBuild, preview_id)
        cr = s.get(ChangeRequest, row.change_request_id) if row is not None else None
        return (cr.source, cr.ref, _preview(row)) if row is not None and cr is not None else None


def _preview(r: PreviewBuild) -> PreviewInfo:
    return PreviewInfo(
        r.id,
        EnvRef(r.namespace, r.name),
        r.head_revision,
        r.spec_hash,
        r.state,
        r.reason,
        r.message,
        r.prefix,
        json.loads(r.artifacts) if r.artifacts else {},
        r.path,
        r.reused,
        r.queued_at,
        r.started_at,
        r.finished_at,
    )


@dataclass(frozen=True, slots=True)
class BuiltSpec:
    """A finished, still present build of a spec: what a preview of the same spec reuses."""

    origin: str  # "build:<id>" or "preview:<id>"
    ref: EnvRef
    prefix: str
    artifacts: dict[str, str]
    change_request: tuple[str, str] | None = None  # (source, ref) of a preview


def built_specs(engine: Engine, spec_hashes: Collection[str]) -> dict[str, list[BuiltSpec]]:
    """Completed production builds (not collected) and built previews of these specs,
    newest first per spec."""
    wanted = list(spec_hashes)
    if not wanted:
        return {}
    out: dict[str, list[BuiltSpec]] = {}
    with Session(engine) as s:
        builds = s.execute(
            select(Build.id, Specification.sha256, Namespace.name, Environment.name, Build.prefix)
            .join(Specification)
            .join(Environment, Build.environment_id == Environment.id)
            .join(Namespace)
            .where(
                Specification.sha256.in_(wanted),
                Build.state == "completed",
                Build.prefix.is_not(None),
                Build.collected_at.is_(None),
            )
            .order_by(Build.id.desc())
        ).all()
        files: dict[int, dict[str, str]] = {}
        for build_id, kind, location in s.execute(
            select(Artifact.build_id, Artifact.kind, Artifact.location).where(
                Artifact.build_id.in_([b[0] for b in builds])
            )
        ):
            files.setdefault(build_id, {})[kind] = location
        for build_id, spec_hash, ns, name, prefix in builds:
            found = BuiltSpec(f"build:{build_id}", EnvRef(ns, name), prefix or "", files.get(build_id, {}))
            out.setdefault(spec_hash, []).append(found)
        previews = s.execute(
            select(PreviewBuild, ChangeRequest.source, ChangeRequest.ref)
            .join(ChangeRequest)
            .where(
                PreviewBuild.spec_hash.in_(wanted),
                PreviewBuild.state == "completed",
                PreviewBuild.reused.is_(None),
                PreviewBuild.prefix.is_not(None),
            )
            .order_by(PreviewBuild.id.desc())
        )
        for p, source, ref in previews:
            artifacts = json.loads(p.artifacts) if p.artifacts else {}
            where = (source, ref)
            found = BuiltSpec(f"preview:{p.id}", EnvRef(p.namespace, p.name), p.prefix or "", artifacts, where)
            out.setdefault(p.spec_hash, []).append(found)
    return out


def count_active_previews(engine: Engine) -> int:
    with Session(engine) as s:
        return (
            s.scalar(
                select(func.count()).select_from(PreviewBuild).where(PreviewBuild.state.in_(["queued", "building"]))
            )
            or 0
        )
