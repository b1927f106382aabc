"""A source's next snapshot from its last one and the few environments that changed.

Both sources use it when they know which files changed (the directory source from a
watcher's report, ``dirchanges``; the Git source from a tree diff, ``gittree``): the
environments of every other file are handed back as the very objects of the last
snapshot, so a pass after a one-file change does no work per environment. Each keeps
the ``revision`` it was read at (``DesiredEnv.revision``); the snapshot's is the new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from operator import attrgetter

from condaops.reconciler.lockfiles import LOCK_AMBIGUOUS, LOCK_INVALID, LOCK_WITHOUT_SPEC
from condaops.reconciler.model import DesiredEnv, EnvRef, Rejection, SourceSnapshot
from condaops.reconciler.sources.layout import DUPLICATE_ENVIRONMENT

_WHOLE_REASONS = frozenset({LOCK_AMBIGUOUS, LOCK_INVALID, LOCK_WITHOUT_SPEC, DUPLICATE_ENVIRONMENT})
MAX_CHANGED = 256  # more files changed at once (a checkout, a large merge): read in full

Fresh = Mapping[str, tuple[EnvRef, DesiredEnv | Rejection | None]]  # by path; None: the file went
_PATH = attrgetter("path")
_REF_KEY = attrgetter("ref.namespace", "ref.name")


def patchable(last: SourceSnapshot) -> bool:
    """Whether ``last`` can be patched: read without error, and no environment decided by
    more than its own file (lockfiles, a name claimed twice)."""
    if last.error is not None:
        return False
    if any(r.reason in _WHOLE_REASONS for r in last.rejections):
        return False
    return not any(e.lock is not None for e in last.envs)


class Holders:
    """Which file holds an environment of a snapshot (an environment or a named
    rejection). Looked up with list scans in C (no index built per environment): a few
    changed files cost a few scans."""

    def __init__(self, last: SourceSnapshot) -> None:
        self._last = last
        self._keys: list[tuple[str, str]] | None = None
        self._named = {r.ref: r.path for r in last.rejections if r.ref is not None}

    def path(self, ref: EnvRef) -> str | None:
        if self._keys is None:
            self._keys = list(map(_REF_KEY, self._last.envs))
        try:
            return self._last.envs[self._keys.index((ref.namespace, ref.name))].path
        except ValueError:
            return self._named.get(ref)


def patched(last: SourceSnapshot, fresh: Fresh, revision: str) -> SourceSnapshot:
    """``last`` with the files of ``fresh`` read again (their environments replaced,
    added or dropped), at ``revision``; every other environment is the same object, in
    the same order. The callers made sure no other file holds a changed environment."""
    if not fresh:
        return replace(last, revision=revision)
    envs: list[DesiredEnv | None] = list(last.envs)
    paths = list(map(_PATH, last.envs))
    named = {r.ref: r for r in last.rejections if r.ref is not None}
    added: list[DesiredEnv] = []
    dropped = False
    for path, (ref, item) in fresh.items():
        named.pop(ref, None)
        try:
            at = paths.index(path)
        except ValueError:
            at = -1
        if isinstance(item, DesiredEnv):
            item = replace(item, revision=revision)
            if at >= 0:
                envs[at] = item
            else:
                added.append(item)
        else:
            if at >= 0:
                envs[at], dropped = None, True
            if isinstance(item, Rejection):
                named[ref] = item
    kept = [e for e in envs if e is not None] if dropped else envs
    if added:
        kept = sorted([*kept, *added], key=_REF_KEY)
    rejections = [r for r in last.rejections if r.ref is None] + list(named.values())
    rejections.sort(key=lambda r: (r.path, r.reason))
    return SourceSnapshot(last.source, revision, tuple(kept), tuple(rejections), policy_files=last.policy_files)  # type: ignore[arg-type]  # no None left in kept
