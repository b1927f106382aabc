"""Read-only queries about update branches and update reports; plain dataclasses out."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, bindparam, or_, select
from sqlalchemy.orm import Session

from condaops.reconciler.model import EnvRef
from condaops.reconciler.state.schema import UpdateBranch, UpdateReport


@dataclass(frozen=True, slots=True)
class UpdateBranchInfo:
    source: str
    branch: str
    environments: tuple[str, ...]
    state: str  # open | closed | held
    digest: str | None
    head_sha: str | None
    target_sha: str | None
    title: str | None
    body: str | None
    note: str | None
    dismissed_digest: str | None
    version: int
    published_version: int | None
    pr_number: int | None
    pr_url: str | None
    pr_state: str | None
    pr_head: str | None  # the branch commit the pull request last showed
    publish_error: str | None
    published_at: datetime | None
    updated_at: datetime

    @property
    def published(self) -> bool:
        return self.published_version is not None and self.published_version >= self.version


@dataclass(frozen=True, slots=True)
class UpdateReportInfo:
    ref: EnvRef
    source: str
    checked_at: datetime
    revision: str | None
    available: bool
    locked: bool
    branch: str | None
    packages: dict[str, Any]  # platform -> PackageDiff.to_data()
    held: tuple[str, ...]
    error: str | None


def _branch(row: UpdateBranch) -> UpdateBranchInfo:
    return UpdateBranchInfo(
        source=row.source,
        branch=row.branch,
        environments=tuple(json.loads(row.environments or "[]")),
        state=row.state,
        digest=row.digest,
        head_sha=row.head_sha,
        target_sha=row.target_sha,
        title=row.title,
        body=row.body,
        note=row.note,
        dismissed_digest=row.dismissed_digest,
        version=row.version,
        published_version=row.published_version,
        pr_number=row.pr_number,
        pr_url=row.pr_url,
        pr_state=row.pr_state,
        pr_head=row.pr_head,
        publish_error=row.publish_error,
        published_at=row.published_at,
        updated_at=row.updated_at,
    )


def get_update_branch(engine: Engine, source: str, branch: str) -> UpdateBranchInfo | None:
    with Session(engine) as s:
        row = s.scalar(select(UpdateBranch).where(UpdateBranch.source == source, UpdateBranch.branch == branch))
        return _branch(row) if row else None


def list_update_branches(engine: Engine, *, source: str | None = None) -> list[UpdateBranchInfo]:
    with Session(engine) as s:
        query = select(UpdateBranch).order_by(UpdateBranch.source, UpdateBranch.branch)
        if source is not None:
            query = query.where(UpdateBranch.source == source)
        return [_branch(r) for r in s.scalars(query)]


def unpublished_update_branches(engine: Engine, sources: Collection[str]) -> list[tuple[str, str]]:
    """(source, branch) of update branches with news the forge has not been told."""
    if not sources:
        return []
    with Session(engine) as s:
        rows = s.execute(
            select(UpdateBranch.source, UpdateBranch.branch).where(
                UpdateBranch.source.in_(list(sources)),
                or_(UpdateBranch.published_version.is_(None), UpdateBranch.published_version < UpdateBranch.version),
            )
        )
        return [(src, branch) for src, branch in rows]


_REPORTS = select(UpdateReport)
_REPORT_OF_ONE = _REPORTS.where(UpdateReport.namespace == bindparam("ns"), UpdateReport.name == bindparam("name"))


def update_reports(engine: Engine, refs: Collection[EnvRef] | None = None) -> dict[EnvRef, UpdateReportInfo]:
    """The update reports of every environment (or of ``refs``)."""
    query, params = _REPORTS, {}
    if refs is not None and len(refs) == 1:  # an environment page: one prepared statement
        (only,) = refs
        query, params = _REPORT_OF_ONE, {"ns": only.namespace, "name": only.name}
    elif refs is not None:
        query = query.where(UpdateReport.name.in_({r.name for r in refs}))
    with Session(engine) as s:
        return {
            EnvRef(r.namespace, r.name): UpdateReportInfo(
                ref=EnvRef(r.namespace, r.name),
                source=r.source,
                checked_at=r.checked_at,
                revision=r.revision,
                available=r.available,
                locked=r.locked,
                branch=r.branch,
                packages=json.loads(r.packages) if r.packages else {},
                held=tuple(json.loads(r.held)) if r.held else (),
                error=r.error,
            )
            for r in s.scalars(query, params)
            if refs is None or EnvRef(r.namespace, r.name) in refs
        }
