"""Change requests of Git sources: keep a review of every open pull/merge request.

Each pass, for every Git source with ``change_requests: true``: list the refs matching
``change_refspecs``; review the ones whose head commit (or whose target branch) moved
since their last review — read the ref, diff it against the branch, solve both sides —
and record the report; close the ones whose ref disappeared, and forget closed ones after
``change_grace``. Reviews never touch production environments, links or tags.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine

from condaops.config import Settings, SourceSettings
from condaops.reconciler.changes import ADDED, CHANGED
from condaops.reconciler.errors import CondaopsError
from condaops.reconciler.model import BUILDING, SourceSnapshot
from condaops.reconciler.review import review_snapshots
from condaops.reconciler.state.queries import list_change_requests, list_previews
from condaops.reconciler.state.recorder import ChangeRequestRecorder
from condaops.reconciler.store import StoreLayout

log = logging.getLogger("condaops.changes")


class ChangeRequests:
    """Reviews open change requests; ``git_source(name)`` gives the reader's GitSource."""

    def __init__(
        self, settings: Settings, engine: Engine, *, clock: Callable[[], datetime], git_source: Callable[[str], object]
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.clock = clock
        self.git_source = git_source
        self.recorder = ChangeRequestRecorder(engine, clock)
        self.layout = StoreLayout.of(settings)
        self.repodata_cache = self.layout.caches / "repodata"

    def sync_all(self, snapshots: dict[str, SourceSnapshot]) -> list[int]:
        """Review every source's change requests; returns the preview builds to schedule."""
        previews: list[int] = []
        for src in self.settings.sources:
            base = snapshots.get(src.name)
            if src.change_requests and src.git is not None and base is not None and base.error is None:
                try:
                    previews += self.sync(src, base)
                except CondaopsError as exc:  # e.g. the refs could not be listed: try next pass
                    log.warning("change_requests_unavailable source=%s %s", src.name, exc)
        return previews

    def sync(self, src: SourceSettings, base: SourceSnapshot) -> list[int]:
        """Review what moved; returns the ids of the preview builds queued in this pass."""
        git = self.git_source(src.name)
        if git is None:
            return []
        refs: dict[str, str] = git.list_refs(src.change_refspecs)  # type: ignore[attr-defined]
        known = {c.ref: c for c in list_change_requests(self.engine, source=src.name) if c.state == "open"}
        previews: list[int] = []
        for ref, head in sorted(refs.items()):
            old = known.get(ref)
            if old is not None and old.head_revision == head and old.base_revision == base.revision:
                continue  # nothing moved on either side
            previews += self._review(src, git, ref, head, base)
        for ref in self.recorder.close_missing(src.name, refs):
            log.info("change_request_closed source=%s ref=%s", src.name, ref)
        grace = timedelta(seconds=src.change_grace)
        for ref in self.recorder.forget_closed(src.name, closed_before=self.clock() - grace):
            shutil.rmtree(self.layout.previews_of(src.name, ref), ignore_errors=True)
            log.info("change_request_forgotten source=%s ref=%s", src.name, ref)
        return previews

    def _review(self, src: SourceSettings, git: object, ref: str, head: str, base: SourceSnapshot) -> list[int]:
        snapshot: SourceSnapshot = git.read_ref(ref)  # type: ignore[attr-defined]
        if snapshot.error:
            self.recorder.record_review(
                src.name, ref, head, base=base.revision, report=None, error=f"{snapshot.error_reason}: {snapshot.error}"
            )
            return []
        try:
            report = review_snapshots(self.settings, base, snapshot, ref=ref, repodata_cache=self.repodata_cache)
        except CondaopsError as exc:
            self.recorder.record_review(src.name, ref, head, base=base.revision, report=None, error=str(exc))
            return []
        head = snapshot.revision or head
        self.recorder.record_review(src.name, ref, head, base=base.revision, report=report, error=None)
        log.info(
            "change_request_reviewed source=%s ref=%s head=%s changes=%s errors=%s",
            src.name,
            ref,
            head[:12],
            report.has_changes,
            report.has_errors,
        )
        self._drop_old_areas(src.name, ref, head)
        # Preview what would be built: environments added or changed that solve (the
        # report's environments already carry the effective specs).
        buildable = [
            e.change.head for e in report.changed if e.change.kind in (ADDED, CHANGED) and e.change.head and not e.error
        ]
        return self.recorder.queue_previews(src.name, ref, head, buildable)

    def _drop_old_areas(self, source: str, ref: str, head: str) -> None:
        """A new head supersedes the preview areas of earlier heads (none is running: the
        queued ones are canceled, and a running one finishes into its own area first)."""
        busy = {p.head_revision[:12] for p in list_previews(self.engine, source=source, ref=ref) if p.state == BUILDING}
        keep = {head[:12]} | busy
        folder = self.layout.previews_of(source, ref)
        for area in folder.iterdir() if folder.is_dir() else ():
            if area.name not in keep:
                shutil.rmtree(area, ignore_errors=True)
