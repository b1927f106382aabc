"""Solving an environment again for its lock: ``condaops lock`` and update pull requests.

``relock`` solves a spec for each platform (py-rattler, the site's channels and mirrors)
and locks its ``pip:`` dependencies (uv). With the environment's current lock and a
*cooldown* cut-off, it proposes no package version uploaded after the cut-off:

* a version is as old as the record says: ``indexed_timestamp`` (when the channel got it)
  when the channel records it, else ``timestamp`` (when it was built); a record with
  neither counts as old enough (nothing tells otherwise);
* the newest solution is proposed (the current lock is no preference: an update wants
  the new versions);
* a changed package younger than the cut-off is held: pinned to its locked version when
  the lock has it, else excluded (``constraints``), and the solve runs again, at most
  ``MAX_ROUNDS`` times. A solve that fails with those holds keeps that platform's lock as
  it is (nothing is proposed until the new versions are old enough);
* rattler's own ``exclude_newer`` is not used: it also drops locked versions younger than
  the cut-off, so a lock made yesterday would be "updated" to older packages;
* pip packages are locked with uv's ``--exclude-newer``; when that would move a locked pip
  package to an older version, the platform's pip locks stay as they are.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rattler import RepoDataRecord

from condaops.config import Settings
from condaops.reconciler.build.locked import LockedEnv
from condaops.reconciler.build.pip import PipLock, lock_pip, python_version
from condaops.reconciler.build.solve import solve_platforms
from condaops.reconciler.errors import SolveError
from condaops.reconciler.pkgdiff import rattler_compare
from condaops.reconciler.spec import Spec

MAX_ROUNDS = 8  # solves per update at most (each round holds back more young versions)


@dataclass(frozen=True)
class Relocked:
    """A new solution: records and pip locks per platform, and what the cooldown held back."""

    records: dict[str, list[RepoDataRecord]]
    pip: dict[str, list[PipLock]] = field(default_factory=dict)
    held: tuple[str, ...] = ()  # "name version (platform)": newer than the cut-off, not proposed


def uploaded(record: RepoDataRecord) -> datetime | None:
    """When the channel got this version (or, unrecorded, when it was built)."""
    return getattr(record, "indexed_timestamp", None) or record.timestamp


def relock(
    spec: Spec,
    platforms: Sequence[str],
    *,
    settings: Settings,
    cache: Path,
    label: str,
    current: LockedEnv | None = None,
    cutoff: datetime | None = None,
) -> Relocked:
    """Solve ``spec`` (effective, without its lock) for ``platforms``; see the module doc.
    ``cache`` holds the repodata and uv caches. Raises ``SolveError``, ``ChannelError``..."""
    spec = spec.unlocked
    locked = {p: list(current.records.get(p, ())) for p in platforms} if current else {}
    records, held = asyncio.run(_solve_cooled(spec, platforms, settings, cache, label, locked, cutoff))
    pip = {}
    for platform in platforms:
        if spec.pip_for(platform):
            mine = list(current.pip.get(platform, ())) if current else []
            pip[platform] = _lock_pip(spec, platform, records[platform], settings, cache, label, mine, cutoff)
    return Relocked(records, pip, tuple(held))


async def _solve_cooled(
    spec: Spec,
    platforms: Sequence[str],
    settings: Settings,
    cache: Path,
    label: str,
    locked: Mapping[str, list[RepoDataRecord]],
    cutoff: datetime | None,
) -> tuple[dict[str, list[RepoDataRecord]], list[str]]:
    out: dict[str, list[RepoDataRecord]] = {}
    held: list[str] = []
    for platform in platforms:
        current = locked.get(platform, [])
        pins: dict[str, RepoDataRecord] = {}
        excluded: list[str] = []
        for _ in range(MAX_ROUNDS):
            options: dict[str, Any] = {"pinned_packages": list(pins.values())}
            if excluded:
                options["constraints"] = excluded
            try:
                solved = await solve_platforms(
                    spec,
                    [platform],
                    channels=settings.channels,
                    cache_dir=cache / "repodata",
                    env_label=label,
                    options={platform: options},
                )
            except SolveError:
                if not pins and not excluded:
                    raise  # the spec itself does not solve
                solved = {platform: current}  # the holds leave no solution: keep the lock as it is
            young = _young(solved[platform], current, cutoff)
            if not young:
                break
            for record in young:
                name = record.name.normalized
                held.append(f"{name} {record.version} ({platform})")
                old = next((r for r in current if r.name.normalized == name), None)
                if old is not None:
                    pins[name] = old
                else:
                    excluded.append(f"{name} !={record.version}")
        else:
            solved = {platform: current}
        out[platform] = solved[platform]
    return out, sorted(set(held))


def _young(
    records: Sequence[RepoDataRecord], current: Sequence[RepoDataRecord], cutoff: datetime | None
) -> list[RepoDataRecord]:
    """Records that change the lock and were uploaded after ``cutoff``."""
    if cutoff is None:
        return []
    have = {(r.name.normalized, str(r.version), r.build) for r in current}
    young = []
    for record in records:
        when = uploaded(record)
        if (record.name.normalized, str(record.version), record.build) not in have and when and when > cutoff:
            young.append(record)
    return young


def _lock_pip(
    spec: Spec,
    platform: str,
    records: Sequence[RepoDataRecord],
    settings: Settings,
    cache: Path,
    label: str,
    current: list[PipLock],
    cutoff: datetime | None,
) -> list[PipLock]:
    version = python_version(records)
    if version is None:
        return current
    locks = lock_pip(
        spec.pip_for(platform),
        python_version=version,
        platform=platform,
        settings=settings.pip,
        workdir=cache / "pip-work" / label.replace("/", "-") / platform,
        timeout=settings.build.timeout,
        cache_dir=cache / "uv",
        exclude_newer=cutoff,
    )
    before = {lock.name: lock.version for lock in current}
    if cutoff is not None and any(rattler_compare(before.get(x.name, x.version), x.version) > 0 for x in locks):
        return current  # the cooldown would move a locked pip package back: keep them
    return locks
