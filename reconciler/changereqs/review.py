"""Reviewing a change request: solve what it touches, diff the packages.

Input: three snapshots of one source — the target branch now, the merge base of head and
target, and the head — plus, optionally, a way to read environment files' text (for the
file diffs). Every distinct spec involved is solved once, through a ``SolveCache``: the
merge base's and the head's version of each environment the request touches, and the
target's version where the target moved. Solving needs no install: a diff is between two
locks. The head's solve is checked against the head's policy, as a build would check it,
on every platform; the check runs on the (possibly cached) records, never from the cache.
A *locked* version (a committed lockfile) is not solved at all: its packages and records
are read from its lock, so a lockfile-only change shows the diff of the two locks (and the
policy is checked on the locked records). Used by the service (``tracking``) and the CI
check (``check``).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from condaops.config import Settings
from condaops.reconciler.build.channels import host_platform
from condaops.reconciler.build.pip import lock_pip, python_version
from condaops.reconciler.build.solve import solve_platforms
from condaops.reconciler.changereqs.compare import (
    INVALID,
    POLICY,
    SOLVED_KINDS,
    UNCHANGED,
    ChangeReport,
    EnvChange,
    EnvReport,
    Note,
    TargetMove,
    compare_snapshots,
    file_diff,
    target_moves,
    whole_request_notes,
)
from condaops.reconciler.changereqs.solvecache import Packages, Records, SolveCache, Solved, channel_state
from condaops.reconciler.desired import effective
from condaops.reconciler.errors import CondaopsError, TransientError
from condaops.reconciler.model import DesiredEnv, EnvRef, SourceSnapshot
from condaops.reconciler.pkgdiff import PackageDiff, Pkg, diff_packages, rattler_compare
from condaops.reconciler.policy.check import check_policy, checked_record
from condaops.reconciler.policy.findings import Violation
from condaops.reconciler.policy.rules import rules_for
from condaops.reconciler.spec import Spec

SOLVE_CONCURRENCY = 4
Texts = Callable[[str, str], str | None]  # (revision, path under the source root) -> file text


@dataclass(frozen=True, slots=True)
class ReviewInput:
    """What one review compares. ``texts`` reads environment files for their diffs."""

    ref: str
    target: SourceSnapshot
    merge_base: SourceSnapshot
    head: SourceSnapshot
    head_commit: Mapping[str, str] | None = None
    texts: Texts | None = None
    notes: tuple[Note, ...] = ()


def review(settings: Settings, given: ReviewInput, *, cache: SolveCache, repodata: Path) -> ChangeReport:
    """The report of one change request. Raises ``TransientError`` when a channel cannot
    be reached (retried at the next pass); a spec that does not solve is reported."""
    target, base, head = (effective(s, settings) for s in (given.target, given.merge_base, given.head))
    changes = compare_snapshots(base, head)
    moves = target_moves(changes, target) if target.revision != base.revision else {}
    involved = list(_solved_envs(changes, moves))
    specs = {e.spec.spec_hash: (e.spec, str(e.ref)) for e in reversed(involved) if e.spec.lock is None}
    solved = asyncio.run(_solve_all(settings, specs, cache, repodata)) if specs else {}
    solved |= {e.spec.spec_hash: _locked_packages(e) for e in involved if e.spec.lock is not None}
    envs = tuple(_env_report(c, moves, solved, given, base.revision, head.revision) for c in changes)
    unnamed = tuple(r for r in head.rejections if r.ref is None and r not in base.rejections)
    return ChangeReport(
        head.source,
        given.ref,
        base.revision,
        head.revision,
        envs,
        unnamed,
        target_revision=target.revision,
        head_commit=given.head_commit,
        notes=given.notes + whole_request_notes(base, head),
    )


def _solved_envs(changes: list[EnvChange], moves: Mapping[EnvRef, DesiredEnv | None]) -> Iterable[DesiredEnv]:
    for c in changes:
        if c.kind in SOLVED_KINDS:
            yield from (e for e in (c.base, c.head) if e is not None)
            if (moved := moves.get(c.ref)) is not None:
                yield moved


def _env_report(
    change: EnvChange,
    moves: Mapping[EnvRef, DesiredEnv | None],
    solved: Mapping[str, Solved],
    given: ReviewInput,
    base_rev: str | None,
    head_rev: str | None,
) -> EnvReport:
    if change.kind == UNCHANGED:
        return EnvReport(change)
    text = "" if change.kind == POLICY else _file_diff(change, given.texts, base_rev, head_rev)
    if change.kind == INVALID:
        return EnvReport(change, file_diff=text, target=_target_move(change, moves, solved, None))
    old = solved[change.base.spec.spec_hash] if change.base else Solved({})
    new = solved[change.head.spec.spec_hash] if change.head else Solved({})
    target = _target_move(change, moves, solved, new)
    findings = _findings(change.head.policy if change.head else None, new)
    if new.error is not None:
        return EnvReport(change, error=new.error, file_diff=text, target=target, policy=findings)
    if change.kind == POLICY:  # the same spec: only the policy's verdict is news
        return EnvReport(change, target=target, policy=findings)
    # A merge base that does not solve (any more): everything in head shows as added.
    diffs = _diffs(old.packages or {}, new.packages or {})
    return EnvReport(change, diffs, file_diff=text, target=target, policy=findings)


def _findings(policy: str | None, answer: Solved) -> tuple[Violation, ...]:
    """The findings of ``policy`` (None: no rule applies) on a solve; one that does not
    solve carries only the findings of invalid policy files."""
    if policy is None:
        return ()
    return tuple(check_policy(answer.records or {}, rules_for(policy)))


def _target_move(
    change: EnvChange, moves: Mapping[EnvRef, DesiredEnv | None], solved: Mapping[str, Solved], head: Solved | None
) -> TargetMove | None:
    if change.ref not in moves:
        return None
    now = moves[change.ref]
    if now is None:
        message = f"the target removed `{change.path}` since the merge base; update the branch before merging"
        return TargetMove(None, message)
    if change.base is not None and now.spec.spec_hash == change.base.spec.spec_hash:
        return _target_policy_move(change, now, head)
    message = (
        f"the target changed `{now.path}` since the merge base (spec {now.spec.spec_hash[:12]}); "
        "merging combines both changes: update the branch to review the result"
    )
    answer = solved.get(now.spec.spec_hash)
    if answer is None or head is None:  # the head's file is invalid: nothing to compare with
        return TargetMove(now, message)
    if answer.error is not None:
        return TargetMove(now, message, error=answer.error)
    return TargetMove(now, message, _diffs(answer.packages or {}, head.packages or {}))


def _target_policy_move(change: EnvChange, now: DesiredEnv, head: Solved | None) -> TargetMove:
    """The target changed only the policy that applies to this environment. When the request
    leaves that policy alone, merging checks the head's solve against the target's policy:
    its findings are given."""
    message = (
        f"the target changed the policy that applies to `{now.path}` since the merge base; merging checks "
        "this change against it: update the branch to review the result"
    )
    base = change.base
    if head is None or head.error is not None or change.head is None or base is None:
        return TargetMove(now, message)  # nothing solved to check (the head's own error is shown)
    if change.head.policy_hash != base.policy_hash:
        return TargetMove(now, message)  # both changed the policy: merging gives a third one
    return TargetMove(now, message, policy=_findings(now.policy, head))


def _file_diff(change: EnvChange, texts: Texts | None, base_rev: str | None, head_rev: str | None) -> str:
    if texts is None:
        return ""
    old_path = change.base.path if change.base else None
    new_path = change.head.path if change.head else (change.rejection.path if change.rejection else None)
    old = texts(base_rev, old_path) if base_rev and old_path else None
    new = texts(head_rev, new_path) if head_rev and new_path else None
    if old is None and new is None:
        return ""
    return file_diff(old, new, old_path or new_path or "", new_path or old_path or "")


def _diffs(old: dict[str, list[Pkg]], new: dict[str, list[Pkg]]) -> dict[str, PackageDiff]:
    platforms = sorted(old.keys() | new.keys())
    return {p: diff_packages(old.get(p, []), new.get(p, []), rattler_compare) for p in platforms}


# --- solving ---------------------------------------------------------------------------------


async def _solve_all(
    settings: Settings, specs: Mapping[str, tuple[Spec, str]], cache: SolveCache, repodata: Path
) -> dict[str, Solved]:
    """Each spec (hash -> spec and the environment named in errors) solved once, or cached."""
    state = (channel_state(repodata), _settings_digest(settings))
    limit = asyncio.Semaphore(SOLVE_CONCURRENCY)

    async def one(spec_hash: str, spec: Spec, label: str) -> tuple[str, Solved]:
        key = (spec_hash, *state)
        if (found := cache.get(key)) is not None:
            return spec_hash, found
        async with limit:
            try:
                packages, records = await _packages(settings, spec, repodata, label)
                answer = Solved(packages, records=records)
            except TransientError:
                raise  # never cached: the next pass tries again
            except CondaopsError as exc:
                answer = Solved(error=" ".join(str(exc).split()))
        cache.put(solve_key(spec_hash, settings, repodata), answer)
        return spec_hash, answer

    return dict(await asyncio.gather(*(one(h, s, label) for h, (s, label) in sorted(specs.items()))))


def solve_key(spec_hash: str, settings: Settings, repodata: Path) -> tuple[str, str, str]:
    """What a cached answer is filed under: the spec, the channel state and the settings that
    decide a solve. Never the policy: that is checked on the answer's records each time."""
    return spec_hash, channel_state(repodata), _settings_digest(settings)


def _locked_packages(env: DesiredEnv) -> Solved:
    """A locked version's packages, read from its lockfile (no solve)."""
    from condaops.reconciler.build.locked import read_lock

    assert env.lock is not None
    try:
        locked = read_lock(env.lock.data, env.lock.kind, path=env.lock.path)
    except CondaopsError as exc:  # checked when the snapshot was judged; a race at most
        return Solved(error=str(exc))
    out: dict[str, list[Pkg]] = {}
    for platform in locked.platforms:
        recs = locked.records.get(platform, ())
        pkgs = [Pkg(r.name.normalized, str(r.version), str(r.build), str(r.channel or "").rstrip("/")) for r in recs]
        pkgs += [Pkg(lock.name, lock.version, manager="pypi") for lock in locked.pip.get(platform, ())]
        out[platform] = pkgs
    return Solved(out, records={p: [checked_record(r) for r in recs] for p, recs in locked.records.items()})


def _settings_digest(settings: Settings) -> str:
    """What else decides a solve besides the spec: where channels and pip packages come from."""
    return hashlib.sha256(repr((settings.channels, settings.pip)).encode()).hexdigest()[:16]


async def _packages(settings: Settings, spec: Spec, cache: Path, label: str) -> tuple[Packages, Records]:
    """The locked conda (and pip) packages of ``spec`` for each of its platforms, and the
    solved conda records (what a policy is checked against)."""
    platforms = sorted(set(spec.platforms) or {host_platform()})
    records = await solve_platforms(spec, platforms, channels=settings.channels, cache_dir=cache, env_label=label)
    out: Packages = {}
    for platform, recs in records.items():
        pkgs = [Pkg(r.name.normalized, str(r.version), str(r.build), str(r.channel or "").rstrip("/")) for r in recs]
        pkgs += await asyncio.to_thread(_pip_packages, settings, spec, platform, recs, cache.parent / "pip" / label)
        out[platform] = pkgs
    return out, {platform: [checked_record(r) for r in recs] for platform, recs in records.items()}


def _pip_packages(settings: Settings, spec: Spec, platform: str, records: list[Any], workdir: Path) -> list[Pkg]:
    requirements = spec.pip_for(platform)
    version = python_version(records) if requirements else None
    if not requirements or version is None:
        return []
    locks = lock_pip(
        requirements,
        python_version=version,
        platform=platform,
        settings=settings.pip,
        workdir=workdir / platform,
        timeout=settings.build.timeout,
    )
    return [Pkg(lock.name, lock.version, manager="pypi") for lock in locks]
