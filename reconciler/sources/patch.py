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

Fresh = Mapping[EnvRef, DesiredEnv | Rejection | None]  # None: the file went


def patchable(last: SourceSnapshot) -> bool:
    """Whether ``last`` can be patched: read without error, and no environment decided by
    more than its own file (lockfiles, a name claimed twice)."""
    if last.error is not None:
        return False
    if any(r.reason in _WHOLE_REASONS for r in last.rejections):
        return False
    return not any(e.lock is not None for e in last.envs)


def holder_paths(last: SourceSnapshot) -> dict[EnvRef, str]:
    """The path of the file that holds each environment of ``last`` (an environment or a
    named rejection)."""
    held = {e.ref: e.path for e in last.envs}
    held.update((r.ref, r.path) for r in last.rejections if r.ref is not None)
    return held


def patched(last: SourceSnapshot, fresh: Fresh, revision: str) -> SourceSnapshot:
    """``last`` with the environments of ``fresh`` replaced, added or dropped, at
    ``revision``; the others are the same objects, in the same order."""
    envs = {e.ref: e for e in last.envs}
    named = {r.ref: r for r in last.rejections if r.ref is not None}
    same_refs = True
    for ref, item in fresh.items():
        same_refs &= (ref in envs) == isinstance(item, DesiredEnv)
        envs.pop(ref, None)
        named.pop(ref, None)
        if isinstance(item, DesiredEnv):
            envs[ref] = replace(item, revision=revision)
        elif isinstance(item, Rejection):
            named[ref] = item
    if same_refs:  # the same environments: the same order, the others as they were
        new_envs = tuple(envs[e.ref] if e.ref in fresh else e for e in last.envs) if fresh else last.envs
    else:
        new_envs = tuple(sorted(envs.values(), key=attrgetter("ref.namespace", "ref.name")))
    rejections = [r for r in last.rejections if r.ref is None] + list(named.values())
    rejections.sort(key=lambda r: (r.path, r.reason))
    return SourceSnapshot(last.source, revision, new_envs, tuple(rejections), policy_files=last.policy_files)
