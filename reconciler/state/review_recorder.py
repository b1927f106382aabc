"""Records change-request reviews, their previews and their publication on the forge.

Part of the one recorder (``recorder``): every write to ``change_requests`` and
``preview_builds`` is here. Each method is one transaction. Every change to what a review
shows raises ``ChangeRequest.version`` in the same transaction, so the forge publisher
knows what it has not posted yet (``published_version``), across restarts too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, delete, select, update
from sqlalchemy.orm import Session

from condaops.reconciler.model import (
    BUILDING,
    CANCELED,
    COMPLETED,
    FAILED,
    QUEUED,
    BuildOutcome,
    BuildTicket,
    EnvRef,
    LockInput,
)
from condaops.reconciler.reasons import Reason
from condaops.reconciler.spec import spec_from_canonical
from condaops.reconciler.state.locks import keep_lock, lock_bytes
from condaops.reconciler.state.outcomes import Clock, renew_leases, requeue_leased
from condaops.reconciler.state.queueing import SUPERSEDED
from condaops.reconciler.state.schema import ChangeRequest, PreviewBuild
from condaops.reconciler.state.session import recording

PREVIEW_REUSED = Reason.PREVIEW_REUSED  # a build of the same spec exists (production or another preview): used as is


@dataclass(frozen=True, slots=True)
class ReviewRecord:
    """One review's outcome, rendered by the caller (the state package knows no reports)."""

    head: str
    target: str | None
    merge_base: str | None
    report_json: str | None = None
    report_markdown: str | None = None
    has_changes: bool = False
    has_errors: bool = False
    error: str | None = None  # the review could not be made
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class PreviewRequest:
    """A preview to record for a head: queued to build, or ``reuse`` an existing build."""

    ref: EnvRef
    path: str
    spec_hash: str
    canonical: str
    reuse: Reuse | None = None
    lock: LockInput | None = None  # the committed lockfile a locked spec installs


@dataclass(frozen=True, slots=True)
class Reuse:
    """An existing build of the same spec: its prefix and files (store-relative)."""

    origin: str  # "build:<id>" or "preview:<id>"
    prefix: str
    artifacts: dict[str, str]
    message: str


class ReviewRecorder:
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    def record_review(self, source: str, ref: str, review: ReviewRecord) -> None:
        now = self.clock()
        with recording(self.engine) as s:
            row = _find(s, source, ref)
            if row is None:
                row = ChangeRequest(source=source, ref=ref, opened_at=now, version=0)
                s.add(row)
            row.state, row.head_revision, row.closed_at = "open", review.head, None
            row.base_revision, row.target_revision = review.merge_base, review.target
            row.updated_at, row.error, row.reason = now, review.error, review.reason
            row.has_changes = review.has_changes
            row.has_errors = bool(review.error) or review.has_errors
            row.report_json, row.report_markdown = review.report_json, review.report_markdown
            _bump(row)

    def close_missing(self, source: str, open_refs: Iterable[str]) -> list[str]:
        """Close the change requests of ``source`` whose ref is gone; returns their refs."""
        keep = set(open_refs)
        with recording(self.engine) as s:
            rows = s.scalars(select(ChangeRequest).where(ChangeRequest.source == source, ChangeRequest.state == "open"))
            closed = [row for row in rows if row.ref not in keep]
            for row in closed:
                row.state, row.closed_at = "closed", self.clock()
                _bump(row)
            return [row.ref for row in closed]

    def forget_closed(self, source: str, *, closed_before: datetime) -> list[str]:
        """Drop reviews (and their preview builds) closed longer ago than the grace period;
        returns their refs, so the caller removes their preview areas."""
        with recording(self.engine) as s:
            rows = list(
                s.scalars(
                    select(ChangeRequest).where(
                        ChangeRequest.source == source,
                        ChangeRequest.state == "closed",
                        ChangeRequest.closed_at < closed_before,
                    )
                )
            )
            for row in rows:
                s.execute(delete(PreviewBuild).where(PreviewBuild.change_request_id == row.id))
                s.delete(row)
            return [row.ref for row in rows]

    def record_title(self, source: str, ref: str, title: str | None) -> None:
        with recording(self.engine) as s:
            row = _find(s, source, ref)
            if row is not None and title and row.title != title:
                row.title = title[:500]

    def record_publication(
        self, source: str, ref: str, *, version: int, comment_id: str | None, error: str | None
    ) -> None:
        """What the forge publisher achieved for ``version`` of a review: posted (``error``
        None) or not, and the comment it edits from now on."""
        with recording(self.engine) as s:
            row = _find(s, source, ref)
            if row is None:
                return
            if comment_id is not None:
                row.comment_id = comment_id
            row.publish_error = error
            if error is None:
                row.published_version, row.published_at = version, self.clock()

    # --- preview builds -----------------------------------------------------------

    def queue_previews(self, source: str, ref: str, head: str, wanted: Sequence[PreviewRequest]) -> list[int]:
        """Record the previews of ``head``: environments that already have one for this head
        are left alone (a target push never re-runs them), a spec built before is reused,
        the rest is queued. Queued previews of earlier heads are superseded. Returns the ids
        to schedule."""
        now = self.clock()
        with recording(self.engine) as s:
            cr = _find(s, source, ref)
            if cr is None:
                return []
            s.execute(
                update(PreviewBuild)
                .where(
                    PreviewBuild.change_request_id == cr.id,
                    PreviewBuild.state == QUEUED,
                    PreviewBuild.head_revision != head,
                )
                .values(state=CANCELED, reason=SUPERSEDED, finished_at=now)
            )
            have = {
                (p.namespace, p.name, p.spec_hash)
                for p in s.scalars(
                    select(PreviewBuild).where(
                        PreviewBuild.change_request_id == cr.id,
                        PreviewBuild.head_revision == head,
                        PreviewBuild.state != CANCELED,
                    )
                )
            }
            rows = [_preview_row(s, cr.id, head, w, now) for w in wanted if (*_key(w.ref), w.spec_hash) not in have]
            s.add_all(rows)
            if rows:
                _bump(cr)
            s.flush()
            return [r.id for r in rows if r.state == QUEUED]

    def claim_preview(
        self, preview_id: int, worker: str, *, lease: float = 60.0
    ) -> tuple[BuildTicket, str, str, str] | None:
        """(ticket, source, ref, head) of a queued preview now building; None if not queued."""
        now = self.clock()
        with recording(self.engine) as s:
            res = s.execute(
                update(PreviewBuild)
                .where(PreviewBuild.id == preview_id, PreviewBuild.state == QUEUED)
                .values(state=BUILDING, started_at=now, worker=worker, lease_until=now + timedelta(seconds=lease))
            )
            if cast("CursorResult[Any]", res).rowcount != 1:  # an UPDATE's result is a cursor result
                return None
            row = s.get(PreviewBuild, preview_id)
            cr = s.get(ChangeRequest, row.change_request_id)  # type: ignore[union-attr]  # the row exists: the UPDATE above matched it
            assert row is not None and cr is not None
            _bump(cr)
            spec = spec_from_canonical(json.loads(row.canonical), name=row.name)
            ticket = BuildTicket(
                build_id=row.id,
                ref=EnvRef(row.namespace, row.name),
                spec=spec,
                spec_hash=row.spec_hash,
                attempt=1,
                source=cr.source,
                source_revision=row.head_revision,
                source_path=row.path,
                lock_path=row.lock_path,
                lock_data=lock_bytes(s, spec),
            )
            return ticket, cr.source, cr.ref, row.head_revision

    def renew_previews(self, preview_ids: Iterable[int], worker: str, *, lease: float) -> set[int]:
        return renew_leases(self.engine, PreviewBuild, preview_ids, worker, self.clock() + timedelta(seconds=lease))

    def finish_preview(
        self, preview_id: int, outcome: BuildOutcome, worker: str | None = None, *, reused: str | None = None
    ) -> bool:
        with recording(self.engine) as s:
            row = s.get(PreviewBuild, preview_id)
            if row is None:  # the change request was forgotten meanwhile
                return False
            if worker is not None and (row.state != BUILDING or row.worker != worker):
                return False  # taken over after this worker's lease expired
            row.state = COMPLETED if outcome.ok else FAILED
            row.reason, row.message, row.prefix = outcome.reason, outcome.message, outcome.prefix
            row.artifacts = json.dumps({a.kind: a.location for a in outcome.artifacts})
            row.reused = reused
            row.finished_at = self.clock()
            row.lease_until = None
            cr = s.get(ChangeRequest, row.change_request_id)
            if cr is not None:
                _bump(cr)
            return True

    def recover_previews(self, *, everything: bool = False) -> list[int]:
        """Previews whose worker stopped renewing (or, with ``everything``, all left
        building) go back to the queue; returns every queued preview."""
        requeue_leased(self.engine, PreviewBuild, self.clock(), everything)
        with Session(self.engine) as s:
            return list(s.scalars(select(PreviewBuild.id).where(PreviewBuild.state == QUEUED)))


def _find(s: Session, source: str, ref: str) -> ChangeRequest | None:
    return s.scalar(select(ChangeRequest).where(ChangeRequest.source == source, ChangeRequest.ref == ref))


def _key(ref: EnvRef) -> tuple[str, str]:
    return ref.namespace, ref.name


def _bump(cr: ChangeRequest) -> None:
    """Count a change the forge has not seen yet (done by the database: no lost updates)."""
    if cr.id is not None:
        cr.version = ChangeRequest.version + 1  # a SQL expression: the database adds one
    else:
        cr.version = (cr.version or 0) + 1


def _preview_row(s: Session, cr_id: int, head: str, wanted: PreviewRequest, now: datetime) -> PreviewBuild:
    spec = spec_from_canonical(json.loads(wanted.canonical))
    row = PreviewBuild(
        change_request_id=cr_id,
        head_revision=head,
        namespace=wanted.ref.namespace,
        name=wanted.ref.name,
        path=wanted.path,
        spec_hash=wanted.spec_hash,
        canonical=wanted.canonical,
        state=QUEUED,
        queued_at=now,
        lock_path=keep_lock(s, spec, wanted.lock),
    )
    if wanted.reuse is not None:
        row.state, row.reason, row.message = COMPLETED, PREVIEW_REUSED, wanted.reuse.message
        row.prefix, row.reused = wanted.reuse.prefix, wanted.reuse.origin
        row.artifacts = json.dumps(wanted.reuse.artifacts)
        row.started_at = row.finished_at = now
    return row
