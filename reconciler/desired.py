"""Desired state as the plan and reviews see it: spec defaults filled from settings, and
the policy that applies to each environment.

Its own module so that both the reconcile pass (``service``) and change-request reviews
(``changereqs``) use it without importing each other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from itertools import compress
from operator import attrgetter, is_not

from condaops.config import Settings
from condaops.reconciler.model import DesiredEnv, EnvRef, Policy, SourceSnapshot


def effective(snapshot: SourceSnapshot, settings: Settings) -> SourceSnapshot:
    """Fill spec defaults (channels, platforms) from settings: they are part of the identity;
    give each environment the policy that applies to it (site rules and policy files); and
    turn environments with a committed lockfile into locked specs, or rejections when the
    lock does not fit (``locks.desired``)."""
    from condaops.reconciler.build.channels import channel_urls
    from condaops.reconciler.policy.load import with_policies  # imports rattler: only when reading sources

    channels = settings.channels.default
    platforms = settings.platforms
    envs = tuple(replace(e, spec=e.spec.with_defaults(channels=channels, platforms=platforms)) for e in snapshot.envs)
    alias = settings.channels.alias
    snapshot = with_policies(replace(snapshot, envs=envs), settings, lambda name: channel_urls(name, alias))
    if any(e.lock is not None for e in snapshot.envs):
        from condaops.reconciler.locks.desired import lock_snapshot  # conda-lock: only when needed

        snapshot = lock_snapshot(snapshot, settings)
    return snapshot


_PATH = attrgetter("path")


@dataclass(frozen=True, slots=True)
class _Kept:
    """One environment as last made effective: the raw one it came from, and the result."""

    raw: DesiredEnv
    effective: DesiredEnv


@dataclass(frozen=True, slots=True)
class _Source:
    raw: SourceSnapshot
    inputs: tuple[object, ...]  # what every environment's effective form depends on
    effective: SourceSnapshot
    envs: dict[str, _Kept]  # by path
    aligned: bool = False  # effective.envs[i] is made from raw.envs[i], for every i


class DesiredState:
    """``effective`` for each source, redone only for environments whose file changed.

    Sources hand back the same environment object for an unchanged file (the directory
    source after a watcher's report), or at least the same spec object (the Git source
    per blob, the directory source's parse cache), so an environment whose raw spec,
    path, name, warnings and lock are those of the last read gets its last effective
    form again without filling defaults, merging policies or hashing anything — the very
    object when the source handed back the very object. A change of the source's policy
    files, of the site policy file or of a committed lockfile makes the whole source
    effective again. Not thread-safe."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._sources: dict[str, _Source] = {}
        self._changes: dict[str, set[str] | None] = {}  # per source: paths made anew at the last call
        self._changed_refs: dict[str, set[EnvRef]] = {}  # per source: their environments

    def changed_paths(self, source: str) -> set[str] | None:
        """The paths of the environments the last call for ``source`` made effective anew
        or dropped (their file changed, appeared or went); None: it redid the whole source."""
        return self._changes.get(source)

    def changed_refs(self, source: str) -> set[EnvRef] | None:
        """The environments of ``changed_paths`` (as they were and as they are); None as there."""
        return None if self._changes.get(source) is None else self._changed_refs.get(source, set())

    def __call__(self, raw: SourceSnapshot) -> SourceSnapshot:
        kept = self._sources.get(raw.source)
        if kept is not None and kept.raw is raw:
            self._changes[raw.source] = set()
            self._changed_refs[raw.source] = set()
            return kept.effective
        self._changes[raw.source] = None
        inputs = (raw.policy_files, _site_policy_key(self.settings))
        if raw.error is not None or any(e.lock is not None for e in raw.envs):
            return self._keep(raw, inputs, effective(raw, self.settings))
        if kept is None or kept.inputs != inputs:
            return self._keep(raw, inputs, effective(raw, self.settings))
        known = kept.envs
        quick = self._patch(raw, inputs, kept)
        if quick is not None:
            return quick
        envs: list[DesiredEnv | None] = []
        fresh: list[DesiredEnv] = []
        again: dict[str, _Kept] = {}  # the same file, handed back as another object
        hits = 0
        for env in raw.envs:
            hit = known.get(env.path)
            if hit is not None:
                hits += 1
                if hit.raw is env:
                    envs.append(hit.effective)
                    continue
                if _same_file(hit.raw, env):
                    e = hit.effective
                    e = DesiredEnv(env.ref, e.spec, env.source, env.path, env.revision, env.warnings, e.policy)
                    again[env.path] = _Kept(env, e)
                    envs.append(e)
                    continue
            fresh.append(env)
            envs.append(None)
        made = {e.path: e for e in effective(replace(raw, envs=tuple(fresh)), self.settings).envs} if fresh else {}
        result = tuple(e if e is not None else made[raw_env.path] for e, raw_env in zip(envs, raw.envs, strict=True))
        changed = {e.path for e in fresh}
        refs = {e.ref for e in fresh}
        gone: set[str] = set()
        if hits != len(known):  # some files went
            gone = known.keys() - {e.path for e in raw.envs}
            changed |= gone
            refs |= {known[path].raw.ref for path in gone}
        refs |= {known[path].raw.ref for path in changed if path in known}
        # The kept forms, updated in place for what changed (not rebuilt per environment).
        for path in gone:
            del known[path]
        known.update(again)
        known.update((e.path, _Kept(e, made[e.path])) for e in fresh if e.path in made)
        self._sources[raw.source] = _Source(raw, inputs, replace(raw, envs=result), known, aligned=True)
        self._changes[raw.source] = changed
        self._changed_refs[raw.source] = refs
        return self._sources[raw.source].effective

    def _patch(self, raw: SourceSnapshot, inputs: tuple[object, ...], kept: _Source) -> SourceSnapshot | None:
        """The common case after a one-file change: the same files in the same places,
        all but a few handed back as the very objects of the last read. Those few are
        found with C-level scans (no Python work per environment); None: not that case."""
        old = kept.raw.envs
        if not kept.aligned or len(old) != len(raw.envs):
            return None
        moved = list(compress(range(len(old)), map(is_not, raw.envs, old)))
        if len(moved) > len(old) // 4 + 1 or any(raw.envs[i].path != old[i].path for i in moved):
            return None
        result = list(kept.effective.envs)
        known = kept.envs
        fresh: list[int] = []
        for i in moved:
            env, hit = raw.envs[i], known[old[i].path]
            if _same_file(hit.raw, env):
                e = hit.effective
                result[i] = DesiredEnv(env.ref, e.spec, env.source, env.path, env.revision, env.warnings, e.policy)
                known[env.path] = _Kept(env, result[i])
            else:
                fresh.append(i)
        if fresh:
            made = effective(replace(raw, envs=tuple(raw.envs[i] for i in fresh)), self.settings).envs
            for i, e in zip(fresh, made, strict=True):
                result[i] = e
                known[e.path] = _Kept(raw.envs[i], e)
        self._sources[raw.source] = _Source(raw, inputs, replace(raw, envs=tuple(result)), known, aligned=True)
        self._changes[raw.source] = {raw.envs[i].path for i in fresh}
        self._changed_refs[raw.source] = {raw.envs[i].ref for i in fresh}
        return self._sources[raw.source].effective

    def _keep(self, raw: SourceSnapshot, inputs: tuple[object, ...], eff: SourceSnapshot) -> SourceSnapshot:
        by_path = {e.path: e for e in eff.envs}
        envs = {e.path: _Kept(e, by_path[e.path]) for e in raw.envs if e.path in by_path}
        aligned = list(map(_PATH, raw.envs)) == list(map(_PATH, eff.envs))
        self._sources[raw.source] = _Source(raw, inputs, eff, envs, aligned)
        return eff

    def forget(self) -> None:
        """Make every source effective in full at the next call (the periodic full check)."""
        self._sources.clear()


def _same_file(old: DesiredEnv, new: DesiredEnv) -> bool:
    return (
        old.spec is new.spec
        and old.ref == new.ref
        and old.source == new.source
        and old.warnings == new.warnings
        and old.lock is None
        and new.lock is None
    )


def _site_policy_key(settings: Settings) -> object:
    """What identifies the site policy file's content now (it is read again when it changes)."""
    path = settings.policy.site_file
    if path is None:
        return None
    try:
        info = os.stat(path)
    except OSError as exc:
        return ("unreadable", exc.errno)
    return (info.st_mtime_ns, info.st_size, info.st_ino, settings.channels.alias)


def policy_of(settings: Settings) -> Policy:
    """The parts of the settings ``plan`` decides with."""
    b = settings.build
    allow_empty = frozenset(s.name for s in settings.sources if getattr(s, "allow_empty", False))
    return Policy(
        prune=settings.prune, retries=b.retries, backoff=b.backoff, backoff_max=b.backoff_max, allow_empty=allow_empty
    )
