"""Writes about update runs: the update branches (what each proposes, its pull request)
and the per-environment reports. Each method is one transaction."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from condaops.reconciler.model import EnvRef
from condaops.reconciler.state.schema import Environment, Namespace, UpdateBranch, UpdateReport

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class BranchRecord:
    """What an update run decided for one branch."""

    state: str
    environments: Sequence[str]
    digest: str | None = None
    head_sha: str | None = None
    target_sha: str | None = None
    title: str | None = None
    body: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class ReportRecord:
    ref: EnvRef
    source: str
    revision: str | None
    available: bool
    locked: bool = False
    branch: str | None = None
    packages: Mapping[str, Any] | None = None
    held: Sequence[str] = ()
    error: str | None = None


class UpdateRecorder:
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    def record_branch(self, source: str, branch: str, record: BranchRecord) -> bool:
        """Store a decision; the version rises (the forge must hear of it) when anything a
        pull request shows changed. Returns whether it did."""
        with Session(self.engine) as s, s.begin():
            row = s.scalar(select(UpdateBranch).where(UpdateBranch.source == source, UpdateBranch.branch == branch))
            if row is None:
                row = UpdateBranch(source=source, branch=branch, state=record.state, environments="[]", version=0)
                s.add(row)
            shown = (row.state, row.title, row.body, row.note, row.head_sha)
            row.state = record.state
            row.environments = json.dumps(sorted(record.environments))
            for key in ("digest", "head_sha", "target_sha", "title", "body"):
                value = getattr(record, key)
                if value is not None:
                    setattr(row, key, value)
            row.note = record.note
            row.updated_at = self.clock()
            changed = shown != (row.state, row.title, row.body, row.note, row.head_sha)
            if changed:
                row.version = (row.version or 0) + 1
            return changed

    def record_publication(
        self,
        source: str,
        branch: str,
        *,
        version: int,
        pr_number: int | None,
        pr_url: str | None,
        pr_state: str | None,
        error: str | None,
        head: str | None = None,
        dismissed: bool = False,
    ) -> None:
        """What the forge was told (``version``, the branch at ``head``) and what it said;
        ``dismissed``: a person closed the pull request without merging, so its proposal is
        not made again."""
        with Session(self.engine) as s, s.begin():
            row = s.scalar(select(UpdateBranch).where(UpdateBranch.source == source, UpdateBranch.branch == branch))
            if row is None:
                return
            if pr_number is not None:
                row.pr_number, row.pr_url = pr_number, pr_url or row.pr_url
            row.pr_state = pr_state or row.pr_state
            row.publish_error = error
            if error is None and head is not None:
                row.pr_head = head
            if dismissed:
                row.dismissed_digest, row.state = row.digest, "closed"
            if error is None:
                row.published_version, row.published_at = version, self.clock()
            _pages_changed(s, [EnvRef.parse(ref) for ref in json.loads(row.environments or "[]")])

    def record_reports(self, source: str, reports: Iterable[ReportRecord], *, keep: Iterable[EnvRef]) -> None:
        """Replace the reports of ``source``: environments in ``keep`` without a new report
        keep theirs (they could not be looked at this time), the others are dropped."""
        now = self.clock()
        reports = list(reports)
        kept = {(r.namespace, r.name) for r in keep} | {(r.ref.namespace, r.ref.name) for r in reports}
        with Session(self.engine) as s, s.begin():
            rows = {
                (r.namespace, r.name): r for r in s.scalars(select(UpdateReport).where(UpdateReport.source == source))
            }
            for key, old in rows.items():
                if key not in kept:
                    s.delete(old)
            for report in reports:
                key = (report.ref.namespace, report.ref.name)
                row: UpdateReport | None = rows.get(key) or s.scalar(
                    select(UpdateReport).where(UpdateReport.namespace == key[0], UpdateReport.name == key[1])
                )
                if row is None:
                    row = UpdateReport(namespace=key[0], name=key[1])
                    s.add(row)
                row.source, row.checked_at, row.revision = report.source, now, report.revision
                row.available, row.locked, row.branch = report.available, report.locked, report.branch
                row.packages = json.dumps(report.packages) if report.packages else None
                row.held = json.dumps(list(report.held)) if report.held else None
                row.error = report.error
            _pages_changed(s, [r.ref for r in reports])


def _pages_changed(s: Session, refs: Iterable[EnvRef]) -> None:
    """The environments' pages show their update report and pull request: count a change, as
    the recorder does for builds, so the site's page cache renders them again."""
    for ref in refs:
        namespace = select(Namespace.id).where(Namespace.name == ref.namespace).scalar_subquery()
        s.execute(
            update(Environment)
            .where(Environment.namespace_id == namespace, Environment.name == ref.name)
            .values(state_version=Environment.state_version + 1)
        )
