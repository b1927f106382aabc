"""One reconcile pass: read sources, observe the store, plan, record, repair links.

Synchronous and blocking (file and DB IO); the serve loop runs it in a thread.

A pass costs what changed, as Flux decides "up to date" by comparing the recorded
revision instead of redoing the work. Between full checks a pass re-plans only the
environments whose desired file changed (sources hand back the same objects for
unchanged files; ``desired.DesiredState``), whose record moved (``state_version``;
``state.recorded.RecordedState``) or whose retry fell due, and touches only their rows,
prefixes and links; when nothing changed it records the source fetches and stops. Every
``reconcile.full_check`` seconds (and at the first pass) the full check re-reads every
source in full, checks every linked prefix and link on disk and plans every environment:
a deleted prefix, a broken link or a link moved by hand are found there.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Collection, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Engine

from condaops.config import Settings, SourceSettings
from condaops.reconciler.build.link import read_link, swap_link
from condaops.reconciler.desired import DesiredState, policy_of
from condaops.reconciler.model import DesiredEnv, EnvRef, RecordedEnv, Rejection, SourceSnapshot
from condaops.reconciler.names import shown
from condaops.reconciler.plan import RETIRE, WAIT, Action, Plan, of_only, plan
from condaops.reconciler.retire import retire_environment, withdraw_deliveries
from condaops.reconciler.sources.reader import SourceReader, read_source
from condaops.reconciler.state.queries import current_prefixes, get_build
from condaops.reconciler.state.recorded import RecordedState
from condaops.reconciler.state.recorder import QueuedBuild, Recorder
from condaops.reconciler.store import StoreLayout

log = logging.getLogger("condaops.reconcile")

Clock = Callable[[], datetime]
Report = Callable[[object], None]  # a watcher's report of changed paths
FETCH_RECORD_EVERY = 10.0  # seconds between records of an unchanged source's fetch

__all__ = ["PassResult", "Reconciler", "SourceReader", "policy_of", "read_source"]


@dataclass(frozen=True, slots=True)
class PassResult:
    plan: Plan  # the standing decision for every environment (this pass's and earlier ones)
    queued: tuple[QueuedBuild, ...]
    snapshots: tuple[SourceSnapshot, ...] = ()
    previews: tuple[int, ...] = ()  # change-request preview builds queued by this pass
    full: bool = False  # this pass was a full check
    planned: int = 0  # environments decided in this pass


def observe(engine: Engine, layout: StoreLayout) -> dict[EnvRef, RecordedEnv]:
    """Recorded state, corrected by what is on disk (a vanished prefix needs a rebuild)."""
    root = str(layout.root)
    state = RecordedState(engine)
    state.reload()
    state.observe(list(state.records), lambda prefix: os.path.isdir(os.path.join(root, prefix)))
    return state.envs()


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
        self._read = reader or SourceReader(parse_cache=self.layout.caches / "specs")
        from condaops.reconciler.changereqs.tracking import ChangeRequests

        self.changes = ChangeRequests(
            settings, engine, clock=clock, git_source=getattr(self._read, "git_source", lambda name: None)
        )
        self._desired = DesiredState(settings)
        self._recorded = RecordedState(engine)
        self._inputs: dict[str, SourceSnapshot] = {}  # the effective snapshots the standing plan was made from
        self._standing: dict[EnvRef, Action] = {}  # every environment's latest decision
        self._plan = Plan()
        self._full_at: datetime | None = None
        self._fetches: dict[str, tuple[object, datetime]] = {}  # per source: what was recorded, when

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

    def follow(self, name: str, *, ready: Callable[[], bool] = lambda: True) -> AbstractContextManager[Report]:
        """While the block runs, a watcher reports on directory source ``name`` with the
        callable it yields: the source is read again only after a report (and at the full
        check). A custom reader reads at every pass."""
        follow = getattr(self._read, "follow", None)
        return follow(name, ready=ready) if follow is not None else nullcontext(lambda paths: None)

    def snapshots(self) -> list[SourceSnapshot]:
        return [self._desired(self._read(src)) for src in self.settings.sources]

    def observed(self) -> dict[EnvRef, RecordedEnv]:
        return observe(self.engine, self.layout)

    def plan(self, snapshots: list[SourceSnapshot] | None = None) -> Plan:
        """The full plan (every environment), from the sources and the state DB as they are."""
        snaps = self.snapshots() if snapshots is None else snapshots
        return plan(snaps, self.observed(), policy=policy_of(self.settings), now=self.clock())

    def _present(self, prefix: str) -> bool:
        return os.path.isdir(os.path.join(self.layout.root, prefix))

    # --- the pass -------------------------------------------------------------------------

    def reconcile_once(self) -> PassResult:
        now = self.clock()
        full = self._full_at is None or (now - self._full_at).total_seconds() >= self.settings.reconcile.full_check
        if full:
            rescan = getattr(self._read, "rescan", None)
            if rescan is not None:
                rescan()
        snaps = self.snapshots()
        for snap in snaps:
            self._record_fetch(snap, now, full)
            if snap.error:
                log.warning("source_unreadable source=%s reason=%s %s", snap.source, snap.error_reason, snap.error)
        moved = [s for s in snaps if self._inputs.get(s.source) is not s]
        rejections_moved = full or any(_rejections(self._inputs.get(s.source)) != s.rejections for s in moved)
        desired = None if self._full_at is None else self._desired_moved(moved)
        if full:
            # The records are re-read by what moved (every recorded write moves a version);
            # in full only at the first pass. Every prefix is looked at on disk.
            (self._recorded.reload if self._full_at is None else self._recorded.refresh)()
            self._full_at = now
            self._recorded.observe(list(self._recorded.records), self._present)
            only: set[EnvRef] | None = None
        else:
            only = None if desired is None else desired | self._changed(now)
        self._inputs = {s.source: s for s in snaps}
        previews = self._sync_changes(snaps)
        if only is not None and not only and not rejections_moved:
            return PassResult(self._plan, (), tuple(snaps), tuple(previews))
        recorded = self._recorded.envs(only)
        p = plan(snaps, recorded, policy=policy_of(self.settings), now=now, only=only)
        renamed = self.deliveries.renamed(_of(snaps, only), recorded)  # condaops: display_name: changed, no rebuild
        # A full check records only what differs from the standing decisions (or whose file
        # changed): the rows of the others already say what their decision writes.
        recorded_plan = p if only is not None or desired is None else self._news(p, desired)
        queued = self.recorder.apply_plan(_at_revisions(recorded_plan, snaps))
        if rejections_moved:
            self._record_rejected(snaps)
        for action in p.by_kind(RETIRE):
            retire_environment(self.settings, self.layout, action.ref, action.reason, also=self._withdraw)
        self.repair_links(None if only is None else only)
        self.deliveries.sync_many(renamed)
        for a in p.changes:
            log.info("planned action=%s env=%s reason=%s %s", a.kind, a.ref, a.reason, a.message)
        self._stand(p, only)
        return PassResult(self._plan, tuple(queued), tuple(snaps), tuple(previews), full=full, planned=len(p.actions))

    def _record_fetch(self, snap: SourceSnapshot, now: datetime, full: bool) -> None:
        """Record a source's fetch: at once when its revision or error changed, else at most
        every ``FETCH_RECORD_EVERY`` seconds or the source's ``interval`` (a write per pass
        and source is most of a pass where nothing changed; readiness wants a fetch
        recorded within three intervals)."""
        key = (snap.revision, snap.error, snap.error_reason)
        last = self._fetches.get(snap.source)
        every = min([FETCH_RECORD_EVERY] + [s.interval for s in self.settings.sources if s.name == snap.source])
        if not full and last is not None and last[0] == key and (now - last[1]).total_seconds() < every:
            return
        self.recorder.record_snapshot(snap)
        self._fetches[snap.source] = (key, now)

    def _desired_moved(self, moved: list[SourceSnapshot]) -> set[EnvRef] | None:
        """The environments whose desired file changed since the last pass; None: all of
        them (a source turned readable or unreadable, empty or not)."""
        refs: set[EnvRef] = set()
        for snap in moved:
            old = self._inputs.get(snap.source)
            if old is None or _source_changed(old, snap):
                return None
            changed = self._desired.changed_refs(snap.source)
            if changed is None:  # made effective in full: compare every environment
                refs |= _env_changes(old, snap)
                continue
            # Only the files made anew can differ; rejections are few: compared whole.
            refs |= changed
            if old.rejections != snap.rejections:
                refs |= {r.ref for r in set(old.rejections) ^ set(snap.rejections) if r.ref is not None}
        return refs

    def _news(self, p: Plan, desired: set[EnvRef]) -> Plan:
        """The actions of a full plan that differ from the standing ones, or whose file changed."""
        standing = self._standing
        fresh = tuple(a for a in p.actions if a.ref in desired or _gist(standing.get(a.ref)) != _gist(a))
        return Plan(fresh, p.notes, p.unnamed_rejections)

    def _changed(self, now: datetime) -> set[EnvRef]:
        """The environments whose record moved (or whose prefix vanished with it), or whose
        retry fell due: decided again in a pass between full checks."""
        refs = self._recorded.refresh()
        refs |= self._recorded.observe(refs, self._present)
        wakeup = self._plan.next_wakeup()
        if wakeup is not None and wakeup <= now:  # a retry fell due
            refs |= {r for r, a in self._standing.items() if a.kind == WAIT and a.not_before and a.not_before <= now}
        return refs

    def _stand(self, p: Plan, only: set[EnvRef] | None) -> None:
        """Keep every environment's latest decision: the plan a caller sees for the pass."""
        if only is None:
            self._standing = {a.ref: a for a in p.actions}
        else:
            for ref in only:
                self._standing.pop(ref, None)
            self._standing.update((a.ref, a) for a in p.actions)
        self._plan = _StandingPlan(tuple(self._standing.values()), p.notes, p.unnamed_rejections)

    def _record_rejected(self, snaps: list[SourceSnapshot]) -> None:
        for rejected in self.recorder.record_rejected_files(snaps):
            log.warning(
                "file_rejected source=%s path=%s reason=%s %s",
                rejected.source,
                shown(rejected.path),
                rejected.reason,
                rejected.message,
            )

    def _sync_changes(self, snaps: list[SourceSnapshot]) -> list[int]:
        try:
            return self.changes.sync_all({s.source: s for s in snaps})
        except Exception:  # reviews are a side show: a failure here must not fail the pass
            log.exception("change_requests_failed")
            return []

    def repair_links(self, refs: Collection[EnvRef] | None = None) -> None:
        """Make every environment link (of ``refs`` only, when given) point at its recorded
        current build (observed ≠ recorded).

        Cheap on the common path: the link text is compared with what ``swap_link`` writes
        (``../<spec-hash>-<name>``); only a mismatch costs a resolve and a swap."""
        prefixes = current_prefixes(self.engine, refs)
        root = str(self.layout.root)
        for ref, prefix in prefixes.items():
            try:  # strings, not paths: this runs for every environment at the full check
                if os.readlink(os.path.join(root, ref.namespace, "envs", ref.name)) == _link_text(ref, prefix):
                    continue
            except OSError:
                pass  # no link yet, or not a link
            link = self.layout.env_link(ref)
            target = self.layout.absolute(prefix)
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


class _StandingPlan(Plan):
    """A plan whose next wake-up is worked out once (every pass between full checks asks)."""

    __slots__ = ("_wakeup",)
    _wakeup: datetime | None

    def next_wakeup(self) -> datetime | None:
        try:
            return self._wakeup
        except AttributeError:
            object.__setattr__(self, "_wakeup", Plan.next_wakeup(self))
            return self._wakeup


def _gist(action: Action | None) -> tuple[object, ...] | None:
    """What recording an action writes, apart from its desired file (compared separately)."""
    if action is None:
        return None
    return (action.kind, action.reason, action.message, action.spec_hash, action.attempt, action.revision)


def _at_revisions(p: Plan, snaps: list[SourceSnapshot]) -> Plan:
    """The plan with each desired environment at its source's current revision: a source
    hands back an unchanged file's environment as read at an earlier revision, and what
    is recorded (the revision a build was queued at) is the current one."""
    revisions = {s.source: s.revision for s in snaps}
    stale = [a for a in p.actions if a.desired is not None and a.desired.revision != revisions.get(a.desired.source)]
    if not stale:
        return p
    actions = tuple(
        replace(a, desired=replace(a.desired, revision=revisions[a.desired.source] or a.desired.revision))
        if a.desired is not None and a.desired.revision != revisions.get(a.desired.source)
        else a
        for a in p.actions
    )
    return Plan(actions, p.notes, p.unnamed_rejections)


def _of(snaps: list[SourceSnapshot], only: set[EnvRef] | None) -> list[SourceSnapshot]:
    """The snapshots with the environments of ``only`` alone (all, given None)."""
    if only is None:
        return snaps
    return [replace(s, envs=tuple(of_only(s.envs, only))) if only else replace(s, envs=()) for s in snaps]


def _link_text(ref: EnvRef, prefix: str) -> str:
    """What ``swap_link`` writes into ``<ns>/envs/<name>`` for a prefix (store-relative)."""
    head, _, rest = prefix.partition("/")
    if head == ref.namespace and rest and "/" not in rest:
        return f"../{rest}"
    return os.path.relpath(prefix, os.path.join(ref.namespace, "envs"))


def _rejections(snap: SourceSnapshot | None) -> tuple[Rejection, ...] | None:
    return None if snap is None else snap.rejections


def _source_changed(old: SourceSnapshot, new: SourceSnapshot) -> bool:
    """Whether a source changed in a way that decides for all of its environments."""
    return (
        old.error != new.error
        or old.error_reason != new.error_reason
        or bool(old.envs or old.rejections) != bool(new.envs or new.rejections)
    )


def _by_ref(snap: SourceSnapshot) -> dict[EnvRef, DesiredEnv | Rejection]:
    found: dict[EnvRef, DesiredEnv | Rejection] = {e.ref: e for e in snap.envs}
    for rej in snap.rejections:
        if rej.ref is not None:
            found[rej.ref] = rej  # a ref with a rejection is decided again whenever it moves
    return found


def _env_changes(old: SourceSnapshot, new: SourceSnapshot) -> set[EnvRef]:
    """The environments whose desired file changed between two snapshots of a source (not
    the revision alone: a directory's moves with any file, a commit's with every commit)."""
    before, after = _by_ref(old), _by_ref(new)
    changed = set(before.keys() ^ after.keys())
    for ref in before.keys() & after.keys():
        a, b = before[ref], after[ref]
        if a is b:
            continue
        if isinstance(a, DesiredEnv) and isinstance(b, DesiredEnv):
            if (a.spec, a.spec.display_name, a.path, a.source, a.warnings, a.policy, a.lock) != (
                b.spec,
                b.spec.display_name,  # not part of the spec's equality, shown by deliveries
                b.path,
                b.source,
                b.warnings,
                b.policy,
                b.lock,
            ):
                changed.add(ref)
        elif a != b:
            changed.add(ref)
    return changed
