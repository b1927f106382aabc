"""One update run for one source (a scheduled job: ``updates.schedule``).

1. read the target branch (its own mirror: ``gitrepo``) or the folder, as the service
   would: locks judged, stale ones rejected (``desired.effective``);
2. solve every selected environment again: a locked one from its lock's platforms with
   the cooldown (``locks.relock``); an unlocked one as a rebuild today would (no
   cooldown: rebuilds have none), compared with its current build's packages;
3. record a report per environment (``update_reports``: site, ``status --json``);
4. for locked environments with a changed solution, group them into branches and, per
   branch, ``plan.decide``: push a commit of the new locks on top of the target
   (compare-and-swap), keep, close or hold; record the decision and hand it to the
   publisher, which talks to the forge on its own thread.

Failures never escape: an unreachable remote or channel is logged (``updates_failed``)
and the next run tries again; one environment that does not solve is reported as such.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine

from condaops.config import Settings, SourceSettings
from condaops.reconciler.build.channels import spec_channels
from condaops.reconciler.build.locked import LockedEnv, lock_digest, read_lock
from condaops.reconciler.desired import effective
from condaops.reconciler.errors import CondaopsError
from condaops.reconciler.locks.relock import Relocked, relock
from condaops.reconciler.locks.write import render_lock
from condaops.reconciler.model import DesiredEnv, SourceSnapshot
from condaops.reconciler.pkgdiff import PackageDiff, Pkg, diff_packages, rattler_compare
from condaops.reconciler.reasons import Reason
from condaops.reconciler.state.packages import indexed_packages
from condaops.reconciler.state.queries import get_environment
from condaops.reconciler.state.update_queries import get_update_branch, list_update_branches
from condaops.reconciler.state.update_recorder import BranchRecord, ReportRecord, UpdateRecorder
from condaops.reconciler.store import StoreLayout
from condaops.reconciler.updates import plan, render
from condaops.reconciler.updates.gitrepo import UpdateRepo
from condaops.reconciler.updates.publish import branch_page

log = logging.getLogger("condaops.updates")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class RunSummary:
    source: str
    revision: str | None
    checked: int
    decisions: dict[str, str]  # branch -> push | keep | close | hold | open
    error: str | None = None


class UpdateJob:
    """Runs update checks; ``notify(source, branch)`` hears of every recorded branch."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        clock: Callable[[], datetime] = utcnow,
        notify: Callable[[str, str], None] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.clock = clock
        self.recorder = UpdateRecorder(engine, clock)
        self.notify = notify or (lambda source, branch: None)
        self.cache = StoreLayout.of(settings).caches
        self._environ = environ
        self._running: dict[str, threading.Lock] = {}

    def __call__(self, source: str) -> None:
        """The scheduled task: never raises."""
        try:
            self.run(source)
        except Exception:  # a job must end as an outcome, whatever broke
            log.exception("updates_crashed source=%s", source)

    def run(self, name: str) -> RunSummary:
        src = next((s for s in self.settings.sources if s.name == name and s.updates is not None), None)
        if src is None or src.updates is None:
            return RunSummary(name, None, 0, {}, "no updates configured for this source")
        guard = self._running.setdefault(name, threading.Lock())
        if not guard.acquire(blocking=False):
            return RunSummary(name, None, 0, {}, "a run of this source is still going")
        try:
            return self._run(src)
        finally:
            guard.release()

    def _run(self, src: SourceSettings) -> RunSummary:
        started = time.perf_counter()
        up = src.updates
        assert up is not None
        repo = UpdateRepo(src, self.cache / "updates", environ=self._environ) if src.git else None
        try:
            try:
                target, branches, raw = self._read(src, repo)
            except CondaopsError as exc:
                log.warning("updates_failed source=%s reason=%s %s", src.name, exc.reason, exc)
                return RunSummary(src.name, None, 0, {}, str(exc))
            snap = effective(raw, self.settings)
            chosen = set(plan.selected([e.ref for e in snap.envs], up.environments))
            envs = [e for e in snap.envs if e.ref in chosen]
            cutoff = self.clock() - timedelta(seconds=up.cooldown) if up.cooldown else None
            updates, reports = self._solve_all(src, envs, snap, cutoff)
            self.recorder.record_reports(src.name, reports, keep=chosen)
            decisions = {}
            if repo is not None and up.pull_requests and target is not None:
                decisions = self._branches(src, repo, target, branches, updates)
        finally:
            if repo is not None:
                repo.close()
        log.info(
            "updates_checked source=%s revision=%s environments=%d proposed=%d decisions=%s seconds=%.3f",
            src.name,
            (snap.revision or "")[:12],
            len(envs),
            len(updates),
            ",".join(f"{b}={d}" for b, d in sorted(decisions.items())) or "-",
            time.perf_counter() - started,
        )
        return RunSummary(src.name, snap.revision, len(envs), decisions)

    def _read(self, src: SourceSettings, repo: UpdateRepo | None) -> tuple[str | None, dict[str, str], SourceSnapshot]:
        if repo is None:
            from condaops.reconciler.sources.directory import read_directory

            snap = read_directory(src)
            if snap.error:
                raise CondaopsError(snap.error, reason=snap.error_reason)
            return None, {}, snap
        up = src.updates
        assert up is not None
        target, branches = repo.fetch(up.branch_prefix)
        if target is None:
            raise CondaopsError(f"branch '{src.branch}' does not exist", reason=Reason.SOURCE_BRANCH_MISSING)
        return target, branches, repo.snapshot(target)

    # --- solving ----------------------------------------------------------------------------

    def _solve_all(
        self, src: SourceSettings, envs: Sequence[DesiredEnv], snap: SourceSnapshot, cutoff: datetime | None
    ) -> tuple[list[plan.EnvUpdate], list[ReportRecord]]:
        up = src.updates
        assert up is not None
        updates, reports = [], []
        for env in envs:
            report: ReportRecord | None
            branch = plan.branch_name(env.ref, prefix=up.branch_prefix, group=up.group)
            locked = env.spec.lock is not None and env.lock is not None
            try:
                if locked:
                    update, report = self._locked(src, env, snap.revision, cutoff, branch)
                    updates += [update] if update else []
                else:
                    report = self._unlocked(src, env, snap.revision)
            except CondaopsError as exc:
                report = ReportRecord(env.ref, src.name, snap.revision, False, locked, error=f"{exc.reason}: {exc}")
                log.warning("updates_env_failed source=%s env=%s reason=%s", src.name, env.ref, exc.reason)
            if report is not None:
                reports.append(report)
        return updates, reports

    def _locked(
        self, src: SourceSettings, env: DesiredEnv, revision: str | None, cutoff: datetime | None, branch: str
    ) -> tuple[plan.EnvUpdate | None, ReportRecord]:
        assert env.lock is not None
        current = read_lock(env.lock.data, env.lock.kind, path=env.lock.path)
        label = str(env.ref)
        new = relock(
            env.spec,
            current.platforms,
            settings=self.settings,
            cache=self.cache,
            label=label,
            current=current,
            cutoff=cutoff,
        )
        digest = lock_digest(new.records, new.pip)
        diffs = _diffs(_packages_of_lock(current), _packages_of(new))
        report = ReportRecord(
            env.ref,
            src.name,
            revision,
            digest != current.digest,
            locked=True,
            branch=branch,
            packages={p: d.to_data() for p, d in diffs.items() if not d.empty},
            held=new.held,
        )
        if digest == current.digest:
            return None, report
        data = render_lock(
            current.kind,
            new.records,
            new.pip,
            spec=env.spec,
            ref=env.ref,
            channels=spec_channels(env.spec, self.settings.channels, label),
            source_path=env.path,
        )
        return plan.EnvUpdate(env.ref, env.path, env.lock.path, data, digest, diffs, new.held), report

    def _unlocked(self, src: SourceSettings, env: DesiredEnv, revision: str | None) -> ReportRecord | None:
        info = get_environment(self.engine, env.ref)
        if info is None or info.current is None or info.current.spec_hash != env.spec.spec_hash:
            return None  # not built (yet) as the file wants it: a rebuild is coming anyway
        built = indexed_packages(self.engine, info.current.build_id) or []
        platforms = sorted({p.platform for p in built})
        new = relock(env.spec, platforms, settings=self.settings, cache=self.cache, label=str(env.ref))
        old: dict[str, list[Pkg]] = {}
        for p in built:
            old.setdefault(p.platform, []).append(
                Pkg(
                    p.name,
                    p.version,
                    p.build or "",
                    (p.channel or "").rstrip("/"),
                    "pypi" if p.manager == "pypi" else "conda",
                )
            )
        diffs = _diffs(old, _packages_of(new))
        changed = {p: d.to_data() for p, d in diffs.items() if not d.empty}
        return ReportRecord(env.ref, src.name, revision, bool(changed), packages=changed)

    # --- branches ---------------------------------------------------------------------------

    def _branches(
        self, src: SourceSettings, repo: UpdateRepo, target: str, remote: dict[str, str], updates: list[plan.EnvUpdate]
    ) -> dict[str, str]:
        up = src.updates
        assert up is not None
        proposals = {
            b: plan.Proposal(b, tuple(u))
            for b, u in plan.grouped(updates, prefix=up.branch_prefix, group=up.group).items()
        }
        known = {b.branch for b in list_update_branches(self.engine, source=src.name)}
        decisions = {}
        for branch in sorted(set(proposals) | known):
            head = remote.get(branch)
            state = plan.BranchState(head, ours=head is not None and repo.is_ours(head, branch))
            recorded = get_update_branch(self.engine, src.name, branch)
            was = (
                plan.Recorded(recorded.state, recorded.digest, recorded.head_sha, recorded.dismissed_digest)
                if recorded
                else None
            )
            decision = plan.decide(proposals.get(branch), state, was)
            decisions[branch] = decision.kind
            if self._act(src, repo, target, branch, proposals.get(branch), state, decision):
                self.notify(src.name, branch)
        return decisions

    def _act(
        self,
        src: SourceSettings,
        repo: UpdateRepo,
        target: str,
        branch: str,
        proposal: plan.Proposal | None,
        state: plan.BranchState,
        decision: plan.Decision,
    ) -> bool:
        """Carry one decision out; whether the forge has something new to hear."""
        up = src.updates
        assert up is not None
        refs = proposal.refs if proposal else list(_recorded_envs(self.engine, src.name, branch))
        if decision.kind == plan.HOLD:
            return self.recorder.record_branch(
                src.name, branch, BranchRecord(plan.HELD_STATE, refs, note=decision.message)
            )
        if decision.kind == plan.CLOSE:
            return self.recorder.record_branch(
                src.name, branch, BranchRecord(plan.CLOSED_STATE, refs, note=decision.message)
            )
        if proposal is None or decision.kind == plan.KEEP:
            return False  # on the branch already, or dismissed by a person: nothing new to say
        title = render.title(proposal)
        body = render.body(src.name, proposal, cooldown=up.cooldown, branch_url=branch_page(src, branch))
        head = state.head
        if decision.kind == plan.PUSH:
            files = {u.lock_path: u.data for u in proposal.updates}
            head = repo.commit(target, files, render.commit_message(proposal, title), up.author)
            try:
                repo.push(branch, expected=state.head, new=head)
            except CondaopsError as exc:
                log.warning("update_not_pushed source=%s branch=%s reason=%s %s", src.name, branch, exc.reason, exc)
                return False
            log.info("update_pushed source=%s branch=%s commit=%s", src.name, branch, head[:12])
        record = BranchRecord(plan.OPEN_STATE, refs, proposal.digest, head, target, title, body)
        return self.recorder.record_branch(src.name, branch, record)


def _recorded_envs(engine: Engine, source: str, branch: str) -> tuple[str, ...]:
    found = get_update_branch(engine, source, branch)
    return found.environments if found else ()


def _packages_of_lock(locked: LockedEnv) -> dict[str, list[Pkg]]:
    records = {p: list(r) for p, r in locked.records.items()}
    return _packages_of(Relocked(records, {p: list(v) for p, v in locked.pip.items()}))


def _packages_of(solved: Relocked) -> dict[str, list[Pkg]]:
    out: dict[str, list[Pkg]] = {}
    for platform, records in solved.records.items():
        out[platform] = [
            Pkg(r.name.normalized, str(r.version), str(r.build), str(r.channel or "").rstrip("/")) for r in records
        ]
        out[platform] += [Pkg(x.name, x.version, manager="pypi") for x in solved.pip.get(platform, ())]
    return out


def _diffs(old: Mapping[str, list[Pkg]], new: Mapping[str, list[Pkg]]) -> dict[str, PackageDiff]:
    return {p: diff_packages(old.get(p, []), new.get(p, []), rattler_compare) for p in sorted(set(old) | set(new))}
