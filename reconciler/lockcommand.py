"""``condaops lock``: write or refresh the committed lockfiles of a working tree.

Run in a clone (or in a directory source's folder): the environment files are found with
the sources' layout rules, each chosen environment is solved for every configured
platform (its own ``platforms:``, else ``platforms``) with the site's channels and
mirrors, and its lock is written beside it — the lock it already has, in the same format,
else ``<ns>/<name>.conda-lock.yml`` (``--format pixi`` for pixi.lock). No conda and no
conda-lock executable are needed. ``--check`` writes nothing and says which locks are
missing or stale (exit 1), for a pre-commit hook or CI.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from condaops.config import Settings, SourceSettings
from condaops.reconciler.build.channels import spec_channels
from condaops.reconciler.build.lock import CONDA_LOCK
from condaops.reconciler.desired import effective
from condaops.reconciler.errors import CondaopsError
from condaops.reconciler.locks.relock import relock
from condaops.reconciler.locks.write import lock_path_for, render_lock
from condaops.reconciler.model import DesiredEnv, LockInput, SourceSnapshot
from condaops.reconciler.reasons import Reason
from condaops.reconciler.sources.directory import read_directory
from condaops.reconciler.store import StoreLayout


class LockCommandError(CondaopsError):
    """``condaops lock`` cannot run as asked (exit 2); the message says what to change."""

    reason = Reason.LOCK_COMMAND_FAILED


@dataclass(frozen=True, slots=True)
class LockRequest:
    patterns: tuple[str, ...] = ()  # NS/NAME globs; none: every environment
    root: Path = Path(".")  # the working tree (the repository's root, or a directory source's folder)
    path: str | None = None  # the sub-folder holding the environments (default: the source's path)
    source: str | None = None  # the configured source whose settings apply
    kind: str | None = None  # conda-lock | pixi-lock; default: the existing lock's, else conda-lock
    platforms: tuple[str, ...] = ()  # default: the environment's configured platforms
    cutoff: datetime | None = None  # propose nothing uploaded after this (--cooldown)


@dataclass(frozen=True, slots=True)
class Locked:
    env: str
    path: str
    platforms: dict[str, int]  # platform -> conda packages
    changed: bool
    removed: str | None = None  # a lock of the other format, replaced


def working_tree(settings: Settings, request: LockRequest) -> tuple[SourceSettings, Path]:
    """The source whose layout and namespace apply, and the folder its environments are in."""
    named = [s for s in settings.sources if request.source in (None, s.name)]
    if request.source is not None and not named:
        known = ", ".join(s.name for s in settings.sources) or "none"
        raise LockCommandError(f"no source named '{request.source}' in the configuration (sources: {known})")
    source = named[0] if len(named) == 1 else SourceSettings(name="worktree", directory=request.root)
    sub = request.path if request.path is not None else source.path
    root = request.root / sub if sub not in ("", ".") else request.root
    if not root.is_dir():
        raise LockCommandError(f"{root} is not a folder: run condaops lock in the clone, or pass --path")
    return source, root


def read_tree(settings: Settings, request: LockRequest) -> tuple[SourceSnapshot, SourceSnapshot]:
    """The working tree as read (raw) and as the service judges it (locks checked)."""
    source, root = working_tree(settings, request)
    local = SourceSettings(name=source.name, directory=root, default_namespace=source.default_namespace)
    raw = read_directory(local)
    if raw.error:
        raise LockCommandError(raw.error)
    return raw, effective(raw, settings)


def chosen(envs: Sequence[DesiredEnv], patterns: Sequence[str]) -> list[DesiredEnv]:
    if not patterns:
        return list(envs)
    picked = [e for e in envs if any(fnmatch.fnmatchcase(str(e.ref), p) for p in patterns)]
    if not picked:
        known = ", ".join(str(e.ref) for e in envs) or "none"
        raise LockCommandError(f"no environment matches {' '.join(patterns)} (environments here: {known})")
    return picked


def lock_environments(settings: Settings, request: LockRequest, *, cache: Path) -> list[Locked]:
    """Solve and write the lock of each chosen environment; returns what was written."""
    raw, _ = read_tree(settings, request)
    _, root = working_tree(settings, request)
    defaults = effective(replace(raw, envs=tuple(replace(e, lock=None) for e in raw.envs)), settings)
    done = []
    for env in chosen(defaults.envs, request.patterns):
        existing = next((e.lock for e in raw.envs if e.ref == env.ref), None)
        done.append(_lock_one(settings, request, env, existing, root, cache))
    return done


def _lock_one(
    settings: Settings, request: LockRequest, env: DesiredEnv, existing: LockInput | None, root: Path, cache: Path
) -> Locked:
    kind = request.kind or (existing.kind if existing else CONDA_LOCK)
    platforms = list(request.platforms or env.spec.platforms)
    solved = relock(env.spec, platforms, settings=settings, cache=cache, label=str(env.ref), cutoff=request.cutoff)
    data = render_lock(
        kind,
        solved.records,
        solved.pip,
        spec=env.spec,
        ref=env.ref,
        channels=spec_channels(env.spec, settings.channels, str(env.ref)),
        source_path=env.path,
    )
    rel = existing.path if existing and existing.kind == kind else lock_path_for(env.path, kind)
    target = root / rel
    changed = not target.is_file() or target.read_bytes() != data
    if changed:
        target.write_bytes(data)
    removed = None
    if existing is not None and existing.path != rel:
        (root / existing.path).unlink(missing_ok=True)  # two locks would make the environment LockAmbiguous
        removed = existing.path
    counts = {p: len(v) for p, v in sorted(solved.records.items())}
    return Locked(str(env.ref), rel, counts, changed, removed)


def check_locks(settings: Settings, request: LockRequest) -> list[str]:
    """Problems of the chosen environments' locks (missing, stale, invalid), one line each."""
    raw, judged = read_tree(settings, request)
    picked = chosen(raw.envs, request.patterns)
    refs = {e.ref for e in picked}
    locked = {e.ref for e in judged.envs if e.spec.lock is not None}
    problems = [
        f"{r.reason}: {r.message}"
        for r in judged.rejections
        if r.reason.startswith("Lock") and (r.ref is None or r.ref in refs)
    ]
    for env in picked:
        rejected = any(r.ref == env.ref for r in judged.rejections)
        if env.ref not in locked and not rejected:
            problems.append(f"{env.path}: {env.ref} has no lockfile: run condaops lock {env.ref}")
    return problems


def run_lock_command(settings: Settings, args: argparse.Namespace) -> int:
    """``condaops lock``: write (or with ``--check``, verify) the locks; the exit status."""
    request = LockRequest(
        patterns=tuple(args.environments),
        root=args.dir,
        path=args.path,
        source=args.source,
        kind={"conda-lock": "conda-lock", "pixi": "pixi-lock"}.get(args.format or ""),
        platforms=tuple(args.platform),
        cutoff=datetime.now(timezone.utc) - timedelta(days=args.cooldown) if args.cooldown > 0 else None,
    )
    as_json = bool(getattr(args, "json", False))
    if args.check:
        problems = check_locks(settings, request)
        if as_json:
            print(json.dumps({"problems": problems}, indent=2))
        for line in [] if as_json else problems:
            print(line)
        print(f"condaops: {len(problems)} lock problem(s)", file=sys.stderr)
        return 1 if problems else 0
    done_all = lock_environments(settings, request, cache=StoreLayout.of(settings).caches)
    if as_json:
        print(json.dumps({"locks": [_locked_item(d) for d in done_all]}, indent=2))
        return 0
    for done in done_all:
        sizes = ", ".join(f"{p}: {n} packages" for p, n in done.platforms.items())
        what = "wrote" if done.changed else "unchanged"
        gone = f"; removed {done.removed}" if done.removed else ""
        print(f"{what} {done.path} ({done.env}; {sizes}){gone}")
    return 0


def _locked_item(done: Locked) -> dict[str, object]:
    """One lockfile of ``lock --json``."""
    return {
        "environment": done.env,
        "path": done.path,
        "changed": done.changed,
        "packages": done.platforms,  # platform -> conda packages locked
        "removed": done.removed,
    }
