"""A directory source's next snapshot from the last one and the files a watcher reported.

``apply_changes(settings, last, entries, changed, cache)`` re-reads only the reported
environment files (modified, added or removed) and returns the snapshot a full
``read_directory`` would give, or None when the report is not of that simple kind — the
root or a folder, a policy file, a lockfile, a symlink, a name claimed twice, anything a
lockfile pairs with — and the caller reads the tree in full. The revision stays the
digest of every file's content: ``entries`` (``RevisionEntries``, as ``read_directory``
set it) is updated for the reported files and hashed again. Every environment whose file
was not reported is handed back as the same object: a pass costs what changed.

A report the watcher could not make (an NFS server without timestamps, a change while
the watcher restarted) is found at the periodic full check, which reads the tree in full.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Collection

from condaops.config.settings import SourceSettings
from condaops.reconciler.model import DesiredEnv, EnvRef, Rejection, SourceSnapshot
from condaops.reconciler.sources.directory import (
    FILE_UNREADABLE,
    RevisionEntries,
    SpecCache,
    _read_file,
    _Unsettled,
    source_root,
)
from condaops.reconciler.sources.layout import (
    POLICY_FILE_NAMES,
    Placement,
    classify,
    lock_kind,
    name_warning,
)
from condaops.reconciler.sources.patch import MAX_CHANGED, Holders, patchable, patched


def apply_changes(
    settings: SourceSettings,
    last: SourceSnapshot,
    entries: RevisionEntries,
    changed: Collection[str],
    cache: SpecCache,
) -> SourceSnapshot | None:
    """The snapshot after the reported changes, or None: read the tree in full."""
    if not changed or len(changed) > MAX_CHANGED or not patchable(last):
        return None
    root = str(source_root(settings))
    places: dict[str, EnvRef] = {}
    for rel in changed:
        found = classify(rel, default_namespace=settings.default_namespace)
        name = rel.rsplit("/", 1)[-1]
        if not isinstance(found, Placement) or name in POLICY_FILE_NAMES or lock_kind(name) is not None:
            return None
        places[rel] = found.ref
    return _apply(settings, last, entries, places, root, cache)


def _apply(
    settings: SourceSettings,
    last: SourceSnapshot,
    entries: RevisionEntries,
    places: dict[str, EnvRef],
    root: str,
    cache: SpecCache,
) -> SourceSnapshot | None:
    """The reported files read again; every other environment is handed back as the
    same object (its ``revision`` is the one it was read at: no work per environment
    for the new revision)."""
    holders = Holders(last)
    updated: dict[str, str | None] = {}
    fresh: dict[str, tuple[EnvRef, DesiredEnv | Rejection | None]] = {}
    scan_started_ns = time.time_ns()
    for rel, ref in places.items():
        if holders.path(ref) not in (None, rel) or any(ref == r for r, _ in fresh.values()):
            return None  # another file claims the same environment: duplicates are decided in full
        path = os.path.join(root, rel)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            updated[rel] = None
            fresh[rel] = (ref, None)
            continue
        except OSError:
            return None
        if not stat.S_ISREG(info.st_mode):
            return None  # a symlink or a folder: its rules are the full read's
        try:
            outcome = _read_file(rel, path, cache, scan_started_ns)
        except _Unsettled:
            return None
        updated[rel] = outcome.digest
        if outcome.parsed is None:
            reason, message = outcome.problem or (FILE_UNREADABLE, rel)
            fresh[rel] = (ref, Rejection(ref, settings.name, rel, reason, message))
        else:
            warnings = outcome.parsed.warnings + name_warning(ref.name, outcome.parsed.spec.name)
            fresh[rel] = (ref, DesiredEnv(ref, outcome.parsed.spec, settings.name, rel, "", warnings))
    entries.update(updated)
    return patched(last, fresh, entries.revision())
