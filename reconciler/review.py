"""Reviewing a change request: read both sides, solve both, diff the packages.

Used by ``condaops plan --git ... --ref ... --base ...`` (a PR check anyone can run in
CI on a plain clone, no server needed) and by the change-request previews of a running
service. Solving needs no install: a diff is between two locks.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Sequence
from pathlib import Path

from condaops.config import Settings, SourceSettings
from condaops.reconciler.build.channels import host_platform
from condaops.reconciler.build.pip import lock_pip, python_version
from condaops.reconciler.build.solve import solve_platforms
from condaops.reconciler.changes import (
    ADDED,
    CHANGED,
    REMOVED,
    ChangeReport,
    EnvChange,
    EnvReport,
    compare_snapshots,
)
from condaops.reconciler.errors import CondaopsError, SourceError
from condaops.reconciler.model import SourceSnapshot
from condaops.reconciler.pkgdiff import Pkg, diff_packages, rattler_compare
from condaops.reconciler.service import effective
from condaops.reconciler.spec import Spec

SOLVE_CONCURRENCY = 4


def full_ref(ref: str) -> str:
    """``main`` → ``refs/heads/main``; ``refs/pull/7/head`` and ``HEAD`` stay as they are."""
    return ref if ref.startswith("refs/") or ref == "HEAD" else f"refs/heads/{ref}"


def review_git(settings: Settings, *, git: str, ref: str, base: str, path: str = "") -> ChangeReport:
    """Compare ``ref`` with ``base`` of the repository at ``git`` (URL or local path)."""
    from condaops.reconciler.sources.git import GitSource

    branch = base.removeprefix("refs/heads/")
    src = SourceSettings(name="review", git=git, branch=branch, path=path, default_namespace="default")
    with tempfile.TemporaryDirectory(prefix="condaops-review-") as tmp:
        source = GitSource(src, cache_dir=Path(tmp))
        try:
            base_snap = _checked(source.read(force=True), f"base branch '{branch}'")
            head_snap = _checked(source.read_ref(full_ref(ref)), f"ref '{ref}'")
        finally:
            source.close()
        return review_snapshots(settings, base_snap, head_snap, ref=ref, repodata_cache=Path(tmp) / "repodata")


def _checked(snap: SourceSnapshot, what: str) -> SourceSnapshot:
    if snap.error:
        raise SourceError(f"cannot read {what}: {snap.error}", reason=snap.error_reason or "SourceUnreadable")
    return snap


def review_snapshots(
    settings: Settings, base: SourceSnapshot, head: SourceSnapshot, *, ref: str, repodata_cache: Path
) -> ChangeReport:
    """Diff two snapshots and solve the environments they change."""
    base, head = effective(base, settings), effective(head, settings)
    changes = compare_snapshots(base, head)
    reports = asyncio.run(_solve_all(settings, changes, repodata_cache))
    unnamed = tuple(r for r in head.rejections if r.ref is None)
    return ChangeReport(head.source, ref, base.revision, head.revision, tuple(reports), unnamed)


async def _solve_all(settings: Settings, changes: Sequence[EnvChange], cache: Path) -> list[EnvReport]:
    limit = asyncio.Semaphore(SOLVE_CONCURRENCY)

    async def one(change: EnvChange) -> EnvReport:
        if change.kind not in (ADDED, CHANGED, REMOVED):
            return EnvReport(change)
        async with limit:
            return await _solve_change(settings, change, cache)

    return list(await asyncio.gather(*(one(c) for c in changes)))


async def _solve_change(settings: Settings, change: EnvChange, cache: Path) -> EnvReport:
    label = str(change.ref)
    try:
        old = await _packages(settings, change.base.spec, cache, label) if change.base else {}
    except CondaopsError:
        old = {}  # the base does not solve (any more): everything in head shows as added
    try:
        new = await _packages(settings, change.head.spec, cache, label) if change.head else {}
    except CondaopsError as exc:
        return EnvReport(change, error=" ".join(str(exc).split()))
    platforms = sorted(old.keys() | new.keys())
    return EnvReport(change, {p: diff_packages(old.get(p, []), new.get(p, []), rattler_compare) for p in platforms})


async def _packages(settings: Settings, spec: Spec, cache: Path, label: str) -> dict[str, list[Pkg]]:
    """The locked conda (and pip) packages of ``spec`` for each of its platforms."""
    platforms = sorted(set(spec.platforms) or {host_platform()})
    records = await solve_platforms(spec, platforms, channels=settings.channels, cache_dir=cache, env_label=label)
    out: dict[str, list[Pkg]] = {}
    for platform, recs in records.items():
        pkgs = [Pkg(r.name.normalized, str(r.version), str(r.build), str(r.channel or "").rstrip("/")) for r in recs]
        pkgs += await asyncio.to_thread(_pip_packages, settings, spec, platform, recs, cache / "pip" / label)
        out[platform] = pkgs
    return out


def _pip_packages(settings: Settings, spec: Spec, platform: str, records: list, workdir: Path) -> list[Pkg]:  # type: ignore[type-arg]
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
