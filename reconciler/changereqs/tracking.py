"""Change requests of Git sources: keep a review of every open pull/merge request.

Each pass, for every Git source with ``change_requests: true``: list the refs matching
``change_refspecs``; review the ones whose head commit (or whose target branch) moved
since their last review — read the ref, find the merge base of head and target, compare
the merge base with the head (``compare``), solve what changed (``review``, cached: a
target push that leaves the head alone solves nothing new), check the head's solves
against its policy — and record the report; queue previews of what the head adds or
changes and its policy allows (``previews``: never twice for one head); close the ones
whose ref disappeared, and forget closed ones after ``change_grace``. Reviews never touch
production environments, links or tags.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from condaops.config import Settings, SourceSettings
from condaops.reconciler.changereqs.compare import (
    ADDED,
    CHANGED,
    FORCE_PUSHED,
    MERGE_BASE_MISSING,
    ChangeReport,
    Note,
)
from condaops.reconciler.changereqs.previews import areas_to_keep, preview_requests
from condaops.reconciler.changereqs.render import render_report
from condaops.reconciler.changereqs.review import ReviewInput, review
from condaops.reconciler.changereqs.solvecache import SolveCache
from condaops.reconciler.errors import CondaopsError
from condaops.reconciler.model import SourceSnapshot
from condaops.reconciler.reasons import Reason
from condaops.reconciler.sources.githistory import commit_info, descends, file_text, merge_base
from condaops.reconciler.state.review_queries import built_specs, list_change_requests, list_previews
from condaops.reconciler.state.review_recorder import ReviewRecord, ReviewRecorder
from condaops.reconciler.store import StoreLayout

if TYPE_CHECKING:
    from condaops.reconciler.sources.git import GitSource

log = logging.getLogger("condaops.changes")

# A review that failed for one of these is not tried again until head or target moves.
FINAL_REASONS = frozenset({MERGE_BASE_MISSING, Reason.SOURCE_REF_MISSING})

Listener = Callable[[str, str], None]  # (source, ref): its review or previews changed


class ChangeRequests:
    """Reviews open change requests; ``git_source(name)`` gives the reader's GitSource."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        clock: Callable[[], datetime],
        git_source: Callable[[str], "GitSource | None"],
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.clock = clock
        self.git_source = git_source
        self.recorder = ReviewRecorder(engine, clock)
        self.layout = StoreLayout.of(settings)
        self.repodata_cache = self.layout.caches / "repodata"
        self.cache = SolveCache()
        self.listeners: list[Listener] = []

    def sync_all(self, snapshots: dict[str, SourceSnapshot]) -> list[int]:
        """Review every source's change requests; returns the preview builds to schedule."""
        previews: list[int] = []
        for src in self.settings.sources:
            target = snapshots.get(src.name)
            if src.change_requests and src.git is not None and target is not None and target.error is None:
                try:
                    previews += self.sync(src, target)
                except CondaopsError as exc:  # e.g. the refs could not be listed: try next pass
                    log.warning("change_requests_unavailable source=%s %s", src.name, exc)
        return previews

    def sync(self, src: SourceSettings, target: SourceSnapshot) -> list[int]:
        """Review what moved; returns the ids of the preview builds queued in this pass."""
        git = self.git_source(src.name)
        if git is None:
            return []
        refs: dict[str, str] = git.list_refs(src.change_refspecs)
        known = {c.ref: c for c in list_change_requests(self.engine, source=src.name) if c.state == "open"}
        previews: list[int] = []
        for ref, head in sorted(refs.items()):
            old = known.get(ref)
            if old is not None and old.head_revision == head and old.target_revision == target.revision:
                if old.error is None or old.reason in FINAL_REASONS:
                    continue  # nothing moved on either side
            previews += self._review(src, git, ref, target, old.head_revision if old else None)
        for ref in self.recorder.close_missing(src.name, refs):
            log.info("change_request_closed source=%s ref=%s", src.name, ref)
            self._tell(src.name, ref)
        grace = timedelta(seconds=src.change_grace)
        for ref in self.recorder.forget_closed(src.name, closed_before=self.clock() - grace):
            shutil.rmtree(self.layout.previews_of(src.name, ref), ignore_errors=True)
            log.info("change_request_forgotten source=%s ref=%s", src.name, ref)
        return previews

    def _review(
        self, src: SourceSettings, git: GitSource, ref: str, target: SourceSnapshot, old: str | None
    ) -> list[int]:
        head_snap: SourceSnapshot = git.read_ref(ref)
        if head_snap.error or head_snap.revision is None:
            return self._failed(src, ref, head_snap.revision or "", target, head_snap.error_reason, head_snap.error)
        head = head_snap.revision
        ask = git.history
        found = ask(lambda repo: merge_base(repo, head, target.revision or ""))
        if found.sha is None:
            message = (
                f"{ref} ({head[:12]}) and '{src.branch}' ({(target.revision or '?')[:12]}) share no history "
                f"(a fork with rewritten history?): rebase the change onto '{src.branch}'"
            )
            return self._failed(src, ref, head, target, MERGE_BASE_MISSING, message)
        base_snap = target if found.sha == target.revision else git.read_revision(found.sha)
        if base_snap.error:
            return self._failed(src, ref, head, target, base_snap.error_reason, base_snap.error)
        notes: tuple[Note, ...] = ()
        if old is not None and old != head and not ask(lambda repo: descends(repo, head, old)):
            notes = (Note(FORCE_PUSHED, f"the head was rewritten: {old[:12]} is not in the history of {head[:12]}"),)
        info = ask(lambda repo: commit_info(repo, head))
        given = ReviewInput(
            ref,
            target,
            base_snap,
            head_snap,
            head_commit=info.to_data() if info else None,
            texts=lambda rev, path: ask(lambda repo: file_text(repo, rev, _joined(src.path, path))),
            notes=notes,
        )
        hits, misses = self.cache.hits, self.cache.misses
        try:
            report = review(self.settings, given, cache=self.cache, repodata=self.repodata_cache)
        except CondaopsError as exc:  # a channel cannot be reached: told, and tried again next pass
            return self._failed(src, ref, head, target, exc.reason, str(exc), merge_base=found.sha)
        self._record(src.name, ref, report)
        log.info(
            "change_request_reviewed source=%s ref=%s head=%s merge_base=%s changes=%s errors=%s violations=%s "
            "solved=%d cached=%d",
            src.name,
            ref,
            head[:12],
            found.sha[:12],
            report.has_changes,
            report.has_errors,
            report.has_violations,
            self.cache.misses - misses,
            self.cache.hits - hits,
        )
        queued = self._queue_previews(src.name, ref, report)
        if old != head:
            self._drop_old_areas(src.name, ref, head)
        self._tell(src.name, ref)
        return queued

    def _record(self, source: str, ref: str, report: ChangeReport) -> None:
        record = ReviewRecord(
            head=report.head_revision or "",
            target=report.target_revision,
            merge_base=report.base_revision,
            report_json=render_report(report, "json"),
            report_markdown=render_report(report, "markdown"),
            has_changes=report.has_changes,
            has_errors=report.has_errors or report.has_violations,  # a blocking policy rule is a problem too
        )
        self.recorder.record_review(source, ref, record)

    def _failed(
        self,
        src: SourceSettings,
        ref: str,
        head: str,
        target: SourceSnapshot,
        reason: str | None,
        message: str | None,
        *,
        merge_base: str | None = None,
    ) -> list[int]:
        reason = reason or Reason.REVIEW_FAILED
        record = ReviewRecord(head, target.revision, merge_base, error=f"{reason}: {message}", reason=reason)
        self.recorder.record_review(src.name, ref, record)
        log.warning("change_request_unreviewed source=%s ref=%s reason=%s %s", src.name, ref, reason, message)
        self._tell(src.name, ref)
        return []

    def _queue_previews(self, source: str, ref: str, report: ChangeReport) -> list[int]:
        """Preview what would be built: environments added or changed that solve and pass
        their policy (a build of a blocked one would fail with ``PolicyViolation``)."""
        envs = [
            e.change.head
            for e in report.changed
            if e.change.kind in (ADDED, CHANGED) and e.change.head and not e.error and not e.blocked
        ]
        built = built_specs(self.engine, {e.spec.spec_hash for e in envs})
        requests = preview_requests(
            envs, built, change_request=(source, ref), exists=lambda p: self.layout.absolute(p).is_dir()
        )
        return self.recorder.queue_previews(source, ref, report.head_revision or "", requests)

    def _drop_old_areas(self, source: str, ref: str, head: str) -> None:
        """A new head supersedes the preview areas of earlier heads (none is running: the
        queued ones are canceled, and a running one finishes into its own area first)."""
        folder = self.layout.previews_of(source, ref)
        relative = PurePosixPath(self.layout.relative(folder))
        keep = areas_to_keep(head, list_previews(self.engine, source=source, ref=ref), relative)
        for area in folder.iterdir() if folder.is_dir() else ():
            if area.name not in keep:
                shutil.rmtree(area, ignore_errors=True)

    def _tell(self, source: str, ref: str) -> None:
        for listener in self.listeners:
            try:
                listener(source, ref)
            except Exception:  # a listener (the forge publisher) must never fail a pass
                log.exception("change_request_listener_failed source=%s ref=%s", source, ref)


def _joined(root: str, path: str) -> str:
    return "/".join(p for p in (*root.split("/"), *path.split("/")) if p not in ("", "."))
