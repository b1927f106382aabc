"""One reconcile pass: read sources, observe the store, plan, record, repair links.

Synchronous and blocking (file and DB IO); the serve loop runs it in a thread.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Engine

from condaops.config import Settings, SourceSettings
from condaops.reconciler.build.link import read_link, swap_link
from condaops.reconciler.desired import effective
from condaops.reconciler.model import EnvRef, Policy, RecordedEnv, SourceSnapshot
from condaops.reconciler.names import shown
from condaops.reconciler.plan import RETIRE, Plan, plan
from condaops.reconciler.reasons import Reason
from condaops.reconciler.retire import retire_environment, withdraw_deliveries
from condaops.reconciler.state.queries import current_prefixes, get_build, load_recorded
from condaops.reconciler.state.recorder import QueuedBuild, Recorder
from condaops.reconciler.store import StoreLayout

log = logging.getLogger("condaops.reconcile")

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class PassResult:
    plan: Plan
    queued: tuple[QueuedBuild, ...]
    snapshots: tuple[SourceSnapshot, ...] = ()
    previews: tuple[int, ...] = ()  # change-request preview builds queued by this pass


class SourceReader:
    """Observes sources, keeping a parse cache per source so unchanged files are not re-read."""

    def __init__(self) -> None:
        self._caches: dict[str, object] = {}
        self._forced: set[str] = set()
        self._forced_lock = threading.Lock()

    def force(self, names: Iterable[str]) -> None:
        """Skip the failure backoff at the next read of these Git sources (thread-safe)."""
        with self._forced_lock:
            self._forced.update(names)

    def git_source(self, name: str):  # type: ignore[no-untyped-def]
        """The ``GitSource`` this reader keeps for source ``name`` (after its first read), or None."""
        from condaops.reconciler.sources.git import GitSource

        source = self._caches.get(name)
        return source if isinstance(source, GitSource) else None

    def _take_forced(self, name: str) -> bool:
        with self._forced_lock:
            if name in self._forced:
                self._forced.discard(name)
                return True
            return False

    def __call__(self, src: SourceSettings) -> SourceSnapshot:
        if src.directory is not None:
            from condaops.reconciler.sources.directory import SpecCache, read_directory

            cache = self._caches.setdefault(src.name, SpecCache())
            return read_directory(src, cache=cache)  # type: ignore[arg-type]
        if src.git is not None:
            import tempfile
            from pathlib import Path

            from condaops.reconciler.sources.git import GitSource

            source = self._caches.get(src.name)
            if not isinstance(source, GitSource) or source.settings != src:
                if isinstance(source, GitSource):
                    source.close()
                mirrors = src.mirror_dir
                if mirrors is None:  # set by load_settings; hand-made settings get a folder per reader
                    if "/git-mirrors" not in self._caches:  # "/" cannot start a source name
                        self._caches["/git-mirrors"] = tempfile.TemporaryDirectory(prefix="condaops-git-")
                    mirrors = Path(self._caches["/git-mirrors"].name)  # type: ignore[attr-defined]
                source = self._caches[src.name] = GitSource(src, cache_dir=mirrors)
            return source.read(force=self._take_forced(src.name))
        return SourceSnapshot(
            source=src.name,
            revision=None,
            error=f"source '{src.name}': neither 'directory' nor 'git' is set",
            error_reason=Reason.SOURCE_UNSUPPORTED,
        )

    def close(self) -> None:
        """Close kept Git sources and remove a temporary mirror folder."""
        for kept in self._caches.values():
            close = getattr(kept, "close", None) or getattr(kept, "cleanup", None)
            if close is not None:
                close()
        self._caches.clear()


def read_source(src: SourceSettings) -> SourceSnapshot:
    """Observe one source's current revision with a reader used once."""
    reader = SourceReader()
    try:
        return reader(src)
    finally:
        reader.close()


def policy_of(settings: Settings) -> Policy:
    b = settings.build
    allow_empty = frozenset(s.name for s in settings.sources if getattr(s, "allow_empty", False))
    return Policy(
        prune=settings.prune, retries=b.retries, backoff=b.backoff, backoff_max=b.backoff_max, allow_empty=allow_empty
    )


def observe(engine: Engine, layout: StoreLayout) -> dict[EnvRef, RecordedEnv]:
    """Recorded state, corrected by what is on disk (a vanished prefix needs a rebuild)."""
    recorded = load_recorded(engine)
    for ref, prefix in current_prefixes(engine).items():
        if ref in recorded and not layout.absolute(prefix).is_dir():
            recorded[ref] = replace(recorded[ref], prefix_present=False)
    return recorded


class Reconciler:
    """Reads desired state, compares with recorded state and records the plan."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        clock: Clock,
        reader: Callable[[SourceSettings], SourceSnapshot] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.clock = clock
        self.layout = StoreLayout.of(settings)
        self.recorder = Recorder(engine, clock)
        from condaops.reconciler.deliver.sync import Deliveries

        self.deliveries = Deliveries(settings, engine, self.recorder)  # kernels, modulefiles, names follow links
        self._withdraw = (withdraw_deliveries(self.deliveries),)  # a retirement's clean-up bound to them
        self._read = reader or SourceReader()
        from condaops.reconciler.changereqs.tracking import ChangeRequests

        self.changes = ChangeRequests(
            settings, engine, clock=clock, git_source=getattr(self._read, "git_source", lambda name: None)
        )

    def close(self) -> None:
        """Release what the source reader keeps open (Git repositories, temporary mirrors)."""
        close = getattr(self._read, "close", None)
        if close is not None:
            close()

    def force_read(self, names: Iterable[str]) -> None:
        """Read these sources at the next pass even while they wait after failures (webhooks)."""
        force = getattr(self._read, "force", None)  # a custom reader has no backoff to skip
        if force is not None:
            force(names)

    def snapshots(self) -> list[SourceSnapshot]:
        return [effective(self._read(src), self.settings) for src in self.settings.sources]

    def observed(self) -> dict[EnvRef, RecordedEnv]:
        return observe(self.engine, self.layout)

    def plan(self, snapshots: list[SourceSnapshot] | None = None) -> Plan:
        snaps = self.snapshots() if snapshots is None else snapshots
        return plan(snaps, self.observed(), policy=policy_of(self.settings), now=self.clock())

    def reconcile_once(self) -> PassResult:
        snaps = self.snapshots()
        for snap in snaps:
            self.recorder.record_snapshot(snap)
            if snap.error:
                log.warning("source_unreadable source=%s reason=%s %s", snap.source, snap.error_reason, snap.error)
        recorded = self.observed()
        p = plan(snaps, recorded, policy=policy_of(self.settings), now=self.clock())
        renamed = self.deliveries.renamed(snaps, recorded)  # condaops: display_name: changed, no rebuild
        queued = self.recorder.apply_plan(p)
        for rejected in self.recorder.record_rejected_files(snaps):
            log.warning(
                "file_rejected source=%s path=%s reason=%s %s",
                rejected.source,
                shown(rejected.path),
                rejected.reason,
                rejected.message,
            )
        for action in p.by_kind(RETIRE):
            retire_environment(self.settings, self.layout, action.ref, action.reason, also=self._withdraw)
        self.repair_links()
        self.deliveries.sync_many(renamed)
        for a in p.changes:
            log.info("planned action=%s env=%s reason=%s %s", a.kind, a.ref, a.reason, a.message)
        previews: list[int] = []
        try:
            previews = self.changes.sync_all({s.source: s for s in snaps})
        except Exception:  # reviews are a side show: a failure here must not fail the pass
            log.exception("change_requests_failed")
        return PassResult(p, tuple(queued), tuple(snaps), tuple(previews))

    def repair_links(self) -> None:
        """Make every environment link point at its recorded current build (observed ≠ recorded).

        Cheap on the common path: the link text is compared with what ``swap_link`` writes
        (``../<spec-hash>-<name>``); only a mismatch costs a resolve and a swap."""
        for ref, prefix in current_prefixes(self.engine).items():
            link = self.layout.env_link(ref)
            target = self.layout.absolute(prefix)
            try:
                if os.readlink(link) == os.path.relpath(target, link.parent):
                    continue
            except OSError:
                pass  # no link yet, or not a link
            if target.is_dir() and read_link(link) != target.resolve():
                swap_link(link, target)
                log.warning("link_repaired env=%s target=%s", ref, prefix)
                self.deliveries.sync(ref)

    def recover(self, *, everything: bool) -> list[QueuedBuild]:
        """Builds whose worker is gone go back to the queue; returns every queued build.

        ``everything`` (a single-process start: nothing else can be building) requeues every
        build left ``building`` and removes its half prefix at once. Otherwise only builds
        whose lease expired are requeued; the worker that claims one removes the half prefix
        before building (``install_step``), so a slow but live worker's files are never
        removed under it by this process."""
        interrupted = self.recorder.requeue_abandoned(everything=everything)
        if everything:
            self.repair_links()
        for build_id in interrupted:
            info = get_build(self.engine, build_id)
            if info is None:
                continue
            prefix = self.layout.prefix(info.ref, info.spec_hash)
            if everything and prefix.exists() and read_link(self.layout.env_link(info.ref)) != prefix.resolve():
                shutil.rmtree(prefix, ignore_errors=True)
            log.warning("build_interrupted build=%s env=%s requeued", build_id, info.ref)
        return self.recorder.queued()
