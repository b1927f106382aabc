"""Does a committed lock still belong to its environment file, and can this host install it?

``lock_problems`` answers with the first few problems, each one line (empty: the lock is
good); the caller (``locks.desired``) turns them into a rejection with a reason:

* ``LockPlatformMissing`` — the lock has no packages for the platform builds run on;
* ``LockStale`` — the lock no longer matches the spec:

  - a conda-lock.yml written by condaops records, per platform, the input hash of the spec
    it was solved from (``lock_input_hash``); a different hash means the spec changed. Locks
    written by conda-lock carry conda-lock's own hash, which depends on its version and its
    virtual-package defaults: it is not recomputed, the packages are checked instead;
  - every conda dependency of the spec (per platform, selectors applied) is satisfied by a
    locked record (version, build; a ``channel::`` prefix by the record's channel);
  - every locked conda package is needed: reachable from the spec's dependencies through
    the records' ``depends`` (``pip`` counts as needed by ``python``, as conda adds it);
  - every locked package comes from one of the spec's channels (a lock cannot bring in a
    channel the spec, or ``channels.allowed``, does not allow);
  - every ``pip:`` requirement is satisfied by a locked pip package, and a spec without
    ``pip:`` locks none.

A dependency a locked record needs but the lock does not hold (virtual packages ``__*``
aside) makes the lock ``LockInvalid``: it cannot be installed as it is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from rattler import MatchSpec, RepoDataRecord

from condaops.reconciler.build.channels import canonical_match_spec, split_channel_prefix
from condaops.reconciler.build.locked import GENERATED_BY, LockedEnv
from condaops.reconciler.lockfiles import LOCK_INVALID, LOCK_PLATFORM_MISSING, LOCK_STALE
from condaops.reconciler.lockread import channel_url
from condaops.reconciler.spec import Spec

MAX_PROBLEMS = 3  # shown in the message; the rest are counted


@dataclass(frozen=True, slots=True)
class LockProblem:
    reason: str
    message: str


def lock_input_hash(spec: Spec, platform: str) -> str:
    """The input of one platform's solve: channels, that platform's dependencies and pip
    requirements, variables. What condaops writes as conda-lock's ``content_hash``."""
    data = {
        "channels": list(spec.channels),
        "dependencies": sorted(spec.dependencies_for(platform)),
        "pip": sorted(spec.pip_for(platform)),
        "variables": dict(sorted(spec.variables)),
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def lock_problems(
    locked: LockedEnv, spec: Spec, *, host: str, channels: Sequence[str], alias: str
) -> list[LockProblem]:
    """Why ``locked`` cannot be installed for ``spec`` on ``host`` (empty: it can).

    ``spec`` is the effective spec without its lock; ``channels`` its canonical channel URLs."""
    if host not in locked.records:
        shown = ", ".join(locked.platforms) or "no platform"
        return [LockProblem(LOCK_PLATFORM_MISSING, f"locks {shown} only; builds here run on {host}")]
    problems: list[LockProblem] = []
    allowed = {channel_url(c) for c in channels}
    for platform in locked.platforms:
        records = list(locked.records.get(platform, ()))
        problems += _hash_problems(locked, spec, platform)
        problems += _channel_problems(records, allowed, platform)
        problems += _conda_problems(records, spec.dependencies_for(platform), platform, alias)
        problems += _pip_problems(locked, spec.pip_for(platform), platform)
    invalid = [p for p in problems if p.reason == LOCK_INVALID]
    return invalid or problems


def _hash_problems(locked: LockedEnv, spec: Spec, platform: str) -> list[LockProblem]:
    recorded = locked.content_hash.get(platform)
    if locked.generated_by != GENERATED_BY or recorded is None:
        return []
    if recorded in (lock_input_hash(spec, platform), spec.spec_hash):
        return []
    return [LockProblem(LOCK_STALE, f"the environment file changed since the {platform} lock was solved")]


def _channel_problems(records: list[RepoDataRecord], allowed: set[str], platform: str) -> list[LockProblem]:
    for record in records:
        channel = channel_url(record.channel or "")
        if channel not in allowed:
            return [
                LockProblem(
                    LOCK_STALE,
                    f"locks {record.name.normalized} from {channel or 'an unknown channel'} ({platform}), "
                    f"which is not one of the spec's channels ({', '.join(sorted(allowed))})",
                )
            ]
    return []


def _conda_problems(
    records: list[RepoDataRecord], dependencies: list[str], platform: str, alias: str
) -> list[LockProblem]:
    by_name = {r.name.normalized: r for r in records}
    problems = []
    roots = set()
    for text in dependencies:
        channel, _ = split_channel_prefix(text)
        spec = MatchSpec(canonical_match_spec(text, alias))
        name = spec.name.normalized if spec.name else ""
        if name.startswith("__"):
            continue  # virtual packages are the host's, never locked
        roots.add(name)
        record = by_name.get(name)
        if record is None or not spec.matches(record) or (channel and not _same_channel(spec, record)):
            found = (
                f"is not satisfied by the locked {name} {record.version}={record.build}" if record else "is not locked"
            )
            problems.append(LockProblem(LOCK_STALE, f"{text} {found} ({platform})"))
    needed = _reachable(roots, by_name)
    for record in records:
        for dep in record.depends:
            dep_name = dep.split(" ", 1)[0]
            if not dep_name.startswith("__") and dep_name not in by_name:
                return [
                    LockProblem(
                        LOCK_INVALID,
                        f"locks {record.name.normalized}, which needs {dep}, but no {dep_name} ({platform})",
                    )
                ]
    extra = sorted(set(by_name) - needed)
    if extra:
        listed = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        problems.append(
            LockProblem(LOCK_STALE, f"locks {listed}, which the environment file no longer needs ({platform})")
        )
    return problems


def _same_channel(spec: MatchSpec, record: RepoDataRecord) -> bool:
    wanted = spec.channel.base_url if spec.channel is not None else None
    return wanted is None or channel_url(str(wanted)) == channel_url(record.channel or "")


def _reachable(roots: set[str], by_name: dict[str, RepoDataRecord]) -> set[str]:
    seen: set[str] = set()
    pending = [r for r in roots if r in by_name]
    while pending:
        name = pending.pop()
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        pending += [d.split(" ", 1)[0] for d in by_name[name].depends]
    if "python" in seen and "pip" in by_name:  # conda adds pip to python; its own deps are python's
        seen.add("pip")
    return seen


def _pip_problems(locked: LockedEnv, requirements: list[str], platform: str) -> list[LockProblem]:
    locks = {canonicalize_name(lock.name): lock for lock in locked.pip.get(platform, ())}
    if not requirements:
        if locks:
            return [LockProblem(LOCK_STALE, f"locks pip packages, but the environment file has no pip: ({platform})")]
        return []
    problems = []
    for text in requirements:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue  # the spec parser refused it already
        lock = locks.get(canonicalize_name(requirement.name))
        if lock is None or not requirement.specifier.contains(lock.version, prereleases=True):
            found = f"is not satisfied by the locked {lock.name} {lock.version}" if lock else "is not locked"
            problems.append(LockProblem(LOCK_STALE, f"pip {text} {found} ({platform})"))
    return problems
