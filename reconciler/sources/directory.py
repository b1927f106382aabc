"""The directory source: a folder tree of environment files, read into a snapshot.

``read_directory(settings)`` lists the source root (``directory`` / ``path``), places
files with the rules in ``layout``, reads and parses each environment file with
``specfile`` and returns a ``SourceSnapshot``:

* the revision is ``"dir:" + sha256`` over the sorted (relative path, content sha256) of
  the environment and policy files, so it changes exactly when their content or names change;
* policy files (``layout.policy_scope``) are read whole into ``policy_files``;
* a file that cannot be parsed becomes a ``Rejection`` with specfile's reason; one that
  cannot be read (permission, dangling link, FIFO) one with ``FileUnreadable``;
* a tree that cannot be listed (root missing or not a folder, permission denied on any
  folder) gives ``error_reason="SourceUnreadable"`` and no environments: a half-listed
  tree must not look like environments were removed;
* a file or folder that changed while it was read (an editor mid-save, a copy in
  progress) gives ``error_reason="SourceUnsettled"`` and no environments: nothing is
  built from a torn read; the watcher's next signal or the next safety scan retries;
* symlinks are followed only when their target stays inside the root;
* a lockfile beside an environment file (``layout.pair_locks``) is read as bytes, with
  the same care, and attached to its environment; its content counts in the revision.

Re-scans are incremental when a ``SpecCache`` is passed: a file whose (size, mtime,
ctime, inode) is unchanged is neither read nor parsed again, and one whose bytes the
cache knows (by path and content sha256, e.g. from ``parsecache`` on disk) is read and
hashed but not parsed again.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from condaops.config.settings import SourceSettings
from condaops.reconciler.errors import SourceError, SpecError
from condaops.reconciler.lockfiles import LOCK_AMBIGUOUS, LOCK_INVALID, MAX_LOCK_BYTES
from condaops.reconciler.model import DesiredEnv, EnvRef, LockInput, PolicyFile, Rejection, SourceSnapshot
from condaops.reconciler.reasons import Reason
from condaops.reconciler.sources.layout import (
    MAX_DEPTH,
    SPEC_SUFFIXES,
    LockPlacement,
    Placement,
    arrange,
    is_ignored_name,
    lock_kind,
    name_warning,
    pair_locks,
    policy_scope,
)
from condaops.reconciler.spec import MAX_SPEC_BYTES, ParsedSpec  # specfile (rattler, packaging) loads to parse

MAX_POLICY_BYTES = 1 << 20  # as policy.load: a larger policy file is refused there too
SOURCE_UNREADABLE = Reason.SOURCE_UNREADABLE
SOURCE_UNSETTLED = Reason.SOURCE_UNSETTLED
SYMLINK_OUTSIDE = Reason.SYMLINK_OUTSIDE_SOURCE
FILE_UNREADABLE = Reason.FILE_UNREADABLE

StatKey = tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode
Known = tuple[ParsedSpec | None, tuple[str, str] | None]  # a parse outcome: (parsed, (reason, message))


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What one environment file turned out to be."""

    digest: str  # content sha256, or a marker for a file that was not read
    parsed: ParsedSpec | None = None
    problem: tuple[str, str] | None = None  # (reason, message)
    data: bytes | None = None  # a lockfile's bytes (lockfiles are kept, not parsed, here)


class SpecCache:
    """Outcomes of earlier reads, keyed by path and (size, mtime_ns, ctime_ns, inode).

    Keep one per source between scans; ``read_directory`` drops entries of files that
    are gone. Files changed less than ``racy_window`` seconds before a scan are not
    cached: a second write within the filesystem's timestamp granularity could keep the
    same key (git calls this "racily clean").
    """

    def __init__(self, *, racy_window: float = 2.0, known: dict[tuple[str, str], Known] | None = None) -> None:
        self._entries: dict[str, tuple[StatKey, _Outcome]] = {}
        self._racy_window_ns = int(racy_window * 1e9)
        # outcomes by (relative path, content sha256), e.g. kept on disk (``parsecache``):
        # a file with those bytes at that path is not parsed again
        self.known: dict[tuple[str, str], Known] = dict(known or {})
        self.parsed = 0  # files parsed (not taken from ``known``) by this cache's reads

    def outcome_of(self, rel: str, data: bytes) -> _Outcome:
        """Parse ``data`` (the file ``rel``), or take the known outcome of the same bytes."""
        digest = hashlib.sha256(data).hexdigest()
        hit = self.known.get((rel, digest))
        if hit is not None:
            return _Outcome(digest, parsed=hit[0], problem=hit[1])
        outcome = _parse(rel, data, digest)
        self.parsed += 1
        self.known[(rel, digest)] = (outcome.parsed, outcome.problem)
        return outcome

    def keep_known(self, outcomes: dict[str, _Outcome]) -> None:
        """Keep only the known outcomes of these files as they are now (after a full read)."""
        self.known = {
            (rel, o.digest): (o.parsed, o.problem) for rel, o in outcomes.items() if (rel, o.digest) in self.known
        }

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, path: str, key: StatKey) -> _Outcome | None:
        hit = self._entries.get(path)
        return hit[1] if hit is not None and hit[0] == key else None

    def put(self, path: str, info: os.stat_result, outcome: _Outcome, *, now_ns: int) -> None:
        if now_ns - max(info.st_mtime_ns, info.st_ctime_ns) >= self._racy_window_ns:
            self._entries[path] = (_stat_key(info), outcome)

    def keep_only(self, paths: set[str]) -> None:
        for path in self._entries.keys() - paths:
            del self._entries[path]


class _Unsettled(Exception):
    """A file or folder changed while the source was being read."""


@dataclass
class _Listing:
    """Candidate files of a tree, and what was seen of its folders."""

    files: dict[str, str] = field(default_factory=dict)  # relative -> path as walked
    links: set[str] = field(default_factory=set)  # relative paths that are symlinks
    folders: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (mtime_ns, ino)
    rejections: list[tuple[str, str]] = field(default_factory=list)  # (relative, message)


def source_root(settings: SourceSettings) -> Path:
    """The folder environments are read from: ``directory`` joined with ``path``."""
    if settings.directory is None:
        raise ValueError(f"source '{settings.name}' is not a directory source")
    return settings.directory / settings.path if settings.path else settings.directory


class RevisionEntries:
    """What a directory source's revision is hashed from (path -> content digest, as
    ``revision_entries`` gives), kept sorted with each line encoded: after a watcher's
    report of a few files the revision is hashed again without sorting or encoding
    every entry (``digest`` of the same entries gives the same revision)."""

    def __init__(self, found: dict[str, str] | None = None) -> None:
        self._digests: dict[str, str] = {}
        self._paths: list[str] = []  # sorted
        self._lines: list[bytes] = []  # the encoded line of each path, in that order
        if found:
            self.replace(found)

    def __len__(self) -> int:
        return len(self._digests)

    def get(self, path: str) -> str | None:
        return self._digests.get(path)

    def as_dict(self) -> dict[str, str]:
        return dict(self._digests)

    def replace(self, found: dict[str, str]) -> None:
        """Hold exactly ``found``."""
        self._digests = dict(found)
        self._paths = sorted(found)
        self._lines = [_line(rel, found[rel]) for rel in self._paths]

    def update(self, changes: dict[str, str | None]) -> None:
        """Set each path's digest; None removes the path."""
        for rel, content in changes.items():
            at = bisect.bisect_left(self._paths, rel)
            present = at < len(self._paths) and self._paths[at] == rel
            if content is None:
                if present:
                    del self._paths[at], self._lines[at], self._digests[rel]
                continue
            if present:
                self._lines[at] = _line(rel, content)
            else:
                self._paths.insert(at, rel)
                self._lines.insert(at, _line(rel, content))
            self._digests[rel] = content

    def revision(self) -> str:
        """``digest`` of the entries held."""
        return "dir:" + hashlib.sha256(b"".join(self._lines)).hexdigest()


def read_directory(
    settings: SourceSettings, *, cache: SpecCache | None = None, entries: RevisionEntries | None = None
) -> SourceSnapshot:
    """Observe the directory source once (see the module docstring for the rules);
    ``entries``, if given, is set to what the revision was hashed from (path -> content
    digest), for ``dirchanges`` to update it after a watcher's report."""
    cache = SpecCache() if cache is None else cache
    root = source_root(settings)
    try:
        real_root = os.path.realpath(root, strict=True)
        listing = _list_tree(root, real_root)
        layout = arrange(listing.files, source=settings.name, default_namespace=settings.default_namespace)
        read = layout.placements + layout.duplicates
        lock_paths = [rel for rel in listing.files if lock_kind(rel.rsplit("/", 1)[-1])]
        claimed = {p.ref for p in read}
        locks, lock_rejections = pair_locks(
            lock_paths, claimed, source=settings.name, default_namespace=settings.default_namespace
        )
        outcomes = _read_all(read, listing, real_root, cache)
        outcomes |= _read_all(tuple(locks.values()), listing, real_root, cache)
        policies = _read_policy_files(listing, real_root)
        _check_folders(root, listing)
    except _Unsettled as exc:
        return SourceSnapshot(settings.name, None, error=f"{root}: {exc}, will retry", error_reason=SOURCE_UNSETTLED)
    except OSError as exc:
        return _unreadable(settings, root, exc)
    cache.keep_only({listing.files[p.path] for p in read} | {listing.files[p.path] for p in locks.values()})
    cache.keep_known({p.path: outcomes[p.path] for p in read if p.path in outcomes})
    rejections = layout.rejections + lock_rejections
    found = revision_entries(outcomes, rejections, listing, policies)
    if entries is None:
        revision = digest(found)
    else:
        entries.replace(found)
        revision = entries.revision()
    return _snapshot(settings, layout.placements, rejections, listing, outcomes, locks, policies, revision)


def _list_tree(root: Path, real_root: str) -> _Listing:
    """Walk ``root`` down to ``MAX_DEPTH``, skipping ignored names; raises OSError."""
    listing = _Listing()
    pending = [("", str(root), 1)]
    while pending:
        rel_dir, folder, depth = pending.pop()
        try:
            info = os.stat(folder)
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            if not rel_dir:
                raise
            raise _Unsettled(f"folder {rel_dir} disappeared while reading") from None
        listing.folders[folder] = (info.st_mtime_ns, info.st_ino)
        for entry in entries:
            if is_ignored_name(entry.name) and lock_kind(entry.name) is None:
                continue
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if entry.is_dir():
                if depth < MAX_DEPTH:
                    _add_folder(listing, entry, rel, depth, real_root, pending)
            elif entry.name.endswith(SPEC_SUFFIXES) or lock_kind(entry.name) is not None:
                listing.files[rel] = entry.path
                if entry.is_symlink():
                    listing.links.add(rel)
    return listing


def _add_folder(
    listing: _Listing,
    entry: os.DirEntry[str],
    rel: str,
    depth: int,
    real_root: str,
    pending: list[tuple[str, str, int]],
) -> None:
    if entry.is_symlink() and not _inside(real_root, entry.path):
        # Deeper folders can at most hold a misplaced environment.yaml: not worth a report.
        if depth < MAX_DEPTH - 1:
            listing.rejections.append((rel, _outside_message(rel, entry.path)))
        return
    pending.append((rel, entry.path, depth + 1))


def _read_all(
    placements: tuple[Placement | LockPlacement, ...], listing: _Listing, real_root: str, cache: SpecCache
) -> dict[str, _Outcome]:
    outcomes: dict[str, _Outcome] = {}
    scan_started_ns = time.time_ns()
    for placement in placements:
        rel, path = placement.path, listing.files[placement.path]
        if rel in listing.links and not _inside(real_root, path):
            message = _outside_message(rel, path)
            outcomes[rel] = _Outcome(f"outside:{os.path.realpath(path)}", problem=(SYMLINK_OUTSIDE, message))
            continue
        is_lock = isinstance(placement, LockPlacement)
        outcomes[rel] = _read_file(rel, path, cache, scan_started_ns, lock=is_lock)
    return outcomes


def _read_file(rel: str, path: str, cache: SpecCache, scan_started_ns: int, *, lock: bool = False) -> _Outcome:
    """Hash and parse one file, or take it from the cache; raises _Unsettled."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if not os.path.lexists(path):
            raise _Unsettled(f"{rel} disappeared while reading") from None
        return _problem(rel, "is a symlink to a file that does not exist")
    except OSError as exc:
        return _problem(rel, f"cannot be read ({exc.strerror})")
    if not stat.S_ISREG(info.st_mode):
        return _problem(rel, "is not a regular file")
    key = _stat_key(info)
    outcome = cache.get(path, key)
    if outcome is not None:
        return outcome
    if lock and info.st_size > MAX_LOCK_BYTES:
        message = f"{rel}: the lockfile is {info.st_size} bytes, over the {MAX_LOCK_BYTES} byte limit"
        outcome = _Outcome(f"size:{info.st_size}", problem=(LOCK_INVALID, message))
    elif not lock and info.st_size > MAX_SPEC_BYTES:
        outcome = _oversized(rel, path, info.st_size)
    else:
        outcome = _load(rel, path, key, cache, lock=lock)
    if _restat_key(rel, path) != key:
        raise _Unsettled(f"{rel} changed while reading")
    cache.put(path, info, outcome, now_ns=scan_started_ns)
    return outcome


def _load(rel: str, path: str, key: StatKey, cache: SpecCache, *, lock: bool = False) -> _Outcome:
    try:
        # O_NONBLOCK: a FIFO swapped in for a spec must not hang the scan.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise _Unsettled(f"{rel} disappeared while reading") from None
    except OSError as exc:
        return _problem(rel, f"cannot be read ({exc.strerror})")
    with os.fdopen(fd, "rb") as handle:
        if _stat_key(os.fstat(fd)) != key:
            raise _Unsettled(f"{rel} changed while reading")
        # One byte past the size seen (never past the limit): a file that grew is noticed
        # below, and no buffer of the limit's size is allocated per file (10,000 files: 0.13 s).
        data = handle.read(min(key[0], MAX_LOCK_BYTES if lock else MAX_SPEC_BYTES) + 1)
    if len(data) != key[0]:
        raise _Unsettled(f"{rel} changed while reading")
    if lock:
        return _Outcome(hashlib.sha256(data).hexdigest(), data=data)
    return cache.outcome_of(rel, data)


def _restat_key(rel: str, path: str) -> StatKey:
    try:
        return _stat_key(os.stat(path))
    except FileNotFoundError:
        raise _Unsettled(f"{rel} disappeared while reading") from None


def _parse(rel: str, data: bytes, digest: str) -> _Outcome:
    try:
        from condaops.reconciler.specfile import parse_spec_bytes

        return _Outcome(digest, parsed=parse_spec_bytes(data, file=rel))
    except SpecError as err:
        return _Outcome(digest, problem=(err.reason, str(err)))


def _oversized(rel: str, path: str, size: int) -> _Outcome:
    """Let specfile refuse a file over the limit without it being read whole."""
    try:
        from condaops.reconciler.specfile import load_spec_file

        load_spec_file(Path(path), file=rel)
    except SpecError as err:
        return _Outcome(f"size:{size}", problem=(err.reason, str(err)))
    except SourceError:
        raise _Unsettled(f"{rel} disappeared while reading") from None
    raise _Unsettled(f"{rel} shrank while reading")


def _read_policy_files(listing: _Listing, real_root: str) -> tuple[PolicyFile, ...]:
    """The policy files of the tree (root and namespace folders), read whole; raises _Unsettled."""
    found = []
    for rel, path in sorted(listing.files.items()):
        if policy_scope(rel) is None:
            continue
        if rel in listing.links and not _inside(real_root, path):
            found.append(PolicyFile(rel, problem=_outside_message(rel, path)))
            continue
        try:
            with open(path, "rb") as handle:
                data = handle.read(MAX_POLICY_BYTES + 1)
        except FileNotFoundError:
            raise _Unsettled(f"{rel} disappeared while reading") from None
        except OSError as exc:
            found.append(PolicyFile(rel, problem=f"cannot be read ({exc.strerror})"))
            continue
        if len(data) > MAX_POLICY_BYTES:
            found.append(PolicyFile(rel, problem=f"is over the {MAX_POLICY_BYTES} byte limit"))
        else:
            found.append(PolicyFile(rel, data))
    return tuple(found)


def _check_folders(root: Path, listing: _Listing) -> None:
    """Raise _Unsettled if an entry was added, removed or renamed during the scan."""
    for folder, seen in listing.folders.items():
        try:
            info = os.stat(folder)
        except FileNotFoundError:
            info = None
        if info is None or (info.st_mtime_ns, info.st_ino) != seen:
            rel = os.path.relpath(folder, root)
            raise _Unsettled(f"folder {rel} changed while reading")


def _snapshot(
    settings: SourceSettings,
    placements: tuple[Placement, ...],
    layout_rejections: tuple[Rejection, ...],
    listing: _Listing,
    outcomes: dict[str, _Outcome],
    locks: dict[EnvRef, LockPlacement],
    policies: tuple[PolicyFile, ...],
    revision: str,
) -> SourceSnapshot:
    source = settings.name
    envs: list[DesiredEnv] = []
    rejections = list(layout_rejections)
    rejections += [Rejection(None, source, rel, SYMLINK_OUTSIDE, msg) for rel, msg in listing.rejections]
    refused = {r.ref for r in layout_rejections if r.ref is not None and r.reason == LOCK_AMBIGUOUS}
    for placement in placements:
        outcome = outcomes[placement.path]
        if placement.ref in refused:
            continue  # two lockfiles claim it (LockAmbiguous)
        if outcome.parsed is None:
            reason, message = outcome.problem or (FILE_UNREADABLE, placement.path)
            rejections.append(Rejection(placement.ref, source, placement.path, reason, message))
            continue
        lock = None
        if (placed := locks.get(placement.ref)) is not None:
            found = outcomes[placed.path]
            if found.data is None:
                reason, message = found.problem or (FILE_UNREADABLE, placed.path)
                rejections.append(Rejection(placement.ref, source, placed.path, reason, message))
                continue
            lock = LockInput(placed.path, placed.kind, found.data)
        warnings = outcome.parsed.warnings + name_warning(placement.ref.name, outcome.parsed.spec.name)
        spec = outcome.parsed.spec
        envs.append(DesiredEnv(placement.ref, spec, source, placement.path, revision, warnings, lock=lock))
    rejections.sort(key=lambda r: (r.path, r.reason))
    return SourceSnapshot(source, revision, tuple(envs), tuple(rejections), policy_files=policies)


def revision_entries(
    outcomes: dict[str, _Outcome],
    layout_rejections: tuple[Rejection, ...],
    listing: _Listing,
    policies: tuple[PolicyFile, ...] = (),
) -> dict[str, str]:
    """What the revision is hashed from: each file's path and content digest (or marker)."""
    entries = [(rel, outcome.digest) for rel, outcome in outcomes.items()]
    entries += [(f.path, hashlib.sha256(f.data).hexdigest() if f.data is not None else "-") for f in policies]
    entries += [(r.path, "-") for r in layout_rejections if r.path not in outcomes]
    entries += [(rel, "outside") for rel, _ in listing.rejections]
    return dict(entries)


def digest(entries: dict[str, str]) -> str:
    """The revision: ``"dir:" + sha256`` over the sorted (path, content digest) entries."""
    return "dir:" + hashlib.sha256(b"".join(_line(rel, entries[rel]) for rel in sorted(entries))).hexdigest()


def _line(rel: str, content: str) -> bytes:
    return f"{rel}\0{content}\n".encode("utf-8", "surrogateescape")


def _unreadable(settings: SourceSettings, root: Path, exc: OSError) -> SourceSnapshot:
    if not root.exists():
        message = f"source folder {root} does not exist: create it or fix 'directory'/'path'"
    elif isinstance(exc, NotADirectoryError) or not root.is_dir():
        message = f"source {root} is not a folder: fix 'directory'/'path'"
    else:
        where = exc.filename or root
        message = f"source folder {root} cannot be read: {where}: {exc.strerror or exc}"
    return SourceSnapshot(settings.name, None, error=message, error_reason=SOURCE_UNREADABLE)


def _problem(rel: str, what: str) -> _Outcome:
    return _Outcome(f"unreadable:{what}", problem=(FILE_UNREADABLE, f"{rel} {what}"))


def _outside_message(rel: str, path: str) -> str:
    return (
        f"{rel} is a symlink to {os.path.realpath(path)}, outside the source folder: "
        "only links that stay inside it are followed"
    )


def _inside(real_root: str, path: str) -> bool:
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root.rstrip("/") + "/")


def _stat_key(info: os.stat_result) -> StatKey:
    return (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)
