"""From a Git tree to a snapshot: walk, incremental update, parse, place.

The same outcome as the directory source for the same files — ``layout`` places them,
``specfile`` parses them, rejections carry the same reasons — plus the Git-only rules
in ``gitrules`` (links, submodules, unsafe names).

* ``walk_tree`` lists a tree once, depth-first with an explicit stack, loading one tree
  object at a time and never a blob: memory grows with the number of candidate files,
  not with the repository;
* ``update_listing`` applies ``tree_changes`` between two trees to a previous listing
  (milliseconds for a few changed files among thousands), or says a full walk is needed;
* ``SpecCache`` keeps parse outcomes by blob SHA: an unchanged, renamed or copied file
  is never read again. A blob over ``MAX_SPEC_BYTES`` is refused from its header alone;
* ``build_snapshot`` places the files and turns outcomes into envs and rejections, and
  reads the policy files (``layout.policy_scope``) into ``policy_files``;
* a lockfile beside an environment file (``layout.pair_locks``) is read as bytes (at most
  ``MAX_LOCK_BYTES``, refused from the blob's header) and attached to its environment.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from dulwich.diff_tree import tree_changes
from dulwich.object_store import BaseObjectStore
from dulwich.objects import Blob, Tree, TreeEntry

from condaops.reconciler.errors import SpecError
from condaops.reconciler.lockfiles import LOCK_INVALID, MAX_LOCK_BYTES
from condaops.reconciler.model import DesiredEnv, EnvRef, LockInput, PolicyFile, Rejection, SourceSnapshot
from condaops.reconciler.reasons import Reason
from condaops.reconciler.sources.gitmirror import blob_size
from condaops.reconciler.sources.gitrules import (
    UNSUPPORTED_TREE_ENTRY,
    Judgement,
    Unsupported,
    is_tree,
    judge_leaf,
    judge_name,
    judge_path,
    split_path,
)
from condaops.reconciler.sources.layout import (
    MAX_DEPTH,
    LockPlacement,
    Misplaced,
    Placement,
    arrange,
    classify,
    lock_kind,
    name_warning,
    pair_locks,
    policy_scope,
)
from condaops.reconciler.sources.patch import MAX_CHANGED, Holders, patchable, patched
from condaops.reconciler.specfile import MAX_SPEC_BYTES, ParsedSpec, parse_spec_bytes

FILE_UNREADABLE = Reason.FILE_UNREADABLE
SPEC_TOO_LARGE = Reason.SPEC_TOO_LARGE


class MissingObject(Exception):
    """An object the mirror should hold is not there: the mirror is broken."""


@dataclass
class Listing:
    """What one tree holds for the layout: candidate files and warnings.

    Placing ten thousand paths costs tens of milliseconds, too much to repeat at every
    commit, so ``placed`` memoizes ``layout.classify`` per path and ``layout`` keeps the
    placement until a path appears or disappears (a changed file keeps its place).
    """

    files: dict[str, bytes] = field(default_factory=dict)  # path -> blob SHA (hex)
    unsupported: dict[str, str] = field(default_factory=dict)  # path -> message
    placed: dict[str, Placement | Misplaced | None] = field(default_factory=dict)
    layout: tuple[tuple[Placement, ...], tuple[Rejection, ...]] | None = None

    def copy(self) -> Listing:
        return Listing(dict(self.files), dict(self.unsupported), dict(self.placed), self.layout)

    def add(self, judged: Judgement, sha: bytes) -> None:
        if isinstance(judged, Unsupported):
            self.unsupported[judged.path] = judged.message
            return
        if judged.path not in self.files:
            self.layout = None
        self.files[judged.path] = sha

    def remove(self, judged: Judgement) -> None:
        if isinstance(judged, Unsupported):
            self.unsupported.pop(judged.path, None)
        elif self.files.pop(judged.path, None) is not None:
            self.placed.pop(judged.path, None)
            self.layout = None


# --- listing ------------------------------------------------------------------------------


def walk_tree(store: BaseObjectStore, tree_sha: bytes | None) -> Listing:
    """List the tree ``tree_sha`` (None: an empty listing); raises ``MissingObject``."""
    listing = Listing()
    pending: list[tuple[tuple[str, ...], bytes]] = [((), tree_sha)] if tree_sha else []
    while pending:
        parent, sha = pending.pop()
        for entry in _tree(store, sha).iteritems():
            name = entry.path.decode("utf-8", "surrogateescape")
            verdict = judge_name(parent, name)
            if verdict is False:
                continue
            if isinstance(verdict, Unsupported):
                listing.add(verdict, entry.sha)
                continue
            parts = (*parent, name)
            if is_tree(entry.mode):
                if len(parts) < MAX_DEPTH:
                    pending.append((parts, entry.sha))
            elif judged := judge_leaf(parts, entry.mode):
                listing.add(judged, entry.sha)
    return listing


def update_listing(store: BaseObjectStore, base: Listing, old_tree: bytes, new_tree: bytes) -> Listing | None:
    """``base`` (the listing of ``old_tree``) changed into the listing of ``new_tree``;
    None when an unsafe name is involved: those are reported per folder, so only a
    full walk reports them the same way."""
    listing = base.copy()
    try:
        for change in tree_changes(store, old_tree, new_tree):
            old, new = _judge(change.old), _judge(change.new)
            if _is_unsafe(old) or _is_unsafe(new):
                return None
            if old is not None and old != new:  # a file changed in place keeps its place
                listing.remove(old)
            if new is not None and change.new is not None:
                listing.add(new, change.new.sha)
    except KeyError as exc:
        raise MissingObject(f"object {exc} is missing from the mirror") from None
    return listing


def _judge(entry: TreeEntry | None) -> Judgement | None:
    # dulwich 0.2x reports a missing side as an entry of Nones, 1.x as None.
    if entry is None or entry.path is None or entry.mode is None:
        return None
    return judge_path(split_path(entry.path), entry.mode)


def _is_unsafe(judged: Judgement | None) -> bool:
    return isinstance(judged, Unsupported) and judged.unsafe


def _tree(store: BaseObjectStore, sha: bytes) -> Tree:
    try:
        obj = store[sha]
    except KeyError:
        raise MissingObject(f"tree {sha.decode()} is missing from the mirror") from None
    if not isinstance(obj, Tree):
        raise MissingObject(f"object {sha.decode()} is not a tree")
    return obj


# --- parsing ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Problem:
    """Why a blob is not a spec, without the file name (the same blob may have several)."""

    reason: str
    detail: str
    line: int | None = None
    key: str | None = None

    def message(self, path: str) -> str:
        return str(SpecError(self.detail, file=path, line=self.line, key=self.key, reason=self.reason))


Outcome = ParsedSpec | _Problem


class SpecCache:
    """Parse outcomes by blob SHA. ``keep_only`` after each read bounds it to one tree."""

    def __init__(self) -> None:
        self._outcomes: dict[bytes, Outcome] = {}
        self._locks: dict[bytes, bytes | _Problem] = {}
        self.reads = 0  # blobs read and parsed, for tests and benchmarks

    def __len__(self) -> int:
        return len(self._outcomes)

    def outcome(self, store: BaseObjectStore, sha: bytes) -> Outcome:
        found = self._outcomes.get(sha)
        if found is None:
            found = self._outcomes[sha] = _read_blob(store, sha)
            self.reads += 1
        return found

    def lock_bytes(self, store: BaseObjectStore, sha: bytes) -> bytes | _Problem:
        """A lockfile's bytes (kept by blob SHA like parse outcomes), or why they cannot be used."""
        found = self._locks.get(sha)
        if found is None:
            found = self._locks[sha] = _read_lock_blob(store, sha)
            self.reads += 1
        return found

    def keep_only(self, shas: Iterable[bytes]) -> None:
        keep = set(shas)
        self._outcomes = {sha: o for sha, o in self._outcomes.items() if sha in keep}
        self._locks = {sha: o for sha, o in self._locks.items() if sha in keep}


def _read_blob(store: BaseObjectStore, sha: bytes) -> Outcome:
    size = blob_size(store, sha)
    if size is not None and size > MAX_SPEC_BYTES:
        return _Problem(
            SPEC_TOO_LARGE,
            f"the file is {size} bytes, over the {MAX_SPEC_BYTES} byte limit "
            "for environment files; commit only the environment file itself",
        )
    try:
        blob = store[sha]
    except KeyError:
        raise MissingObject(f"blob {sha.decode()} is missing from the mirror") from None
    if not isinstance(blob, Blob):
        return _Problem(FILE_UNREADABLE, "is not a file in the Git tree")
    try:
        return parse_spec_bytes(blob.as_raw_string(), file="")
    except SpecError as err:
        return _Problem(err.reason, err.detail, err.line, err.key)


def _read_lock_blob(store: BaseObjectStore, sha: bytes) -> bytes | _Problem:
    size = blob_size(store, sha)
    if size is not None and size > MAX_LOCK_BYTES:
        return _Problem(LOCK_INVALID, f"the lockfile is {size} bytes, over the {MAX_LOCK_BYTES} byte limit")
    try:
        blob = store[sha]
    except KeyError:
        raise MissingObject(f"blob {sha.decode()} is missing from the mirror") from None
    if not isinstance(blob, Blob):
        return _Problem(FILE_UNREADABLE, "is not a file in the Git tree")
    data = blob.as_raw_string()
    if len(data) > MAX_LOCK_BYTES:
        return _Problem(LOCK_INVALID, f"the lockfile is {len(data)} bytes, over the {MAX_LOCK_BYTES} byte limit")
    return data


# --- snapshot -----------------------------------------------------------------------------


def place(
    listing: Listing, *, source: str, default_namespace: str
) -> tuple[tuple[Placement, ...], tuple[Rejection, ...]]:
    """``layout.arrange`` over the listing, classifying only paths not seen before."""
    if listing.layout is not None:
        return listing.layout
    claims: dict[EnvRef, list[str]] = {}
    rejections: list[Rejection] = []
    for path in listing.files:
        if path not in listing.placed:
            listing.placed[path] = classify(path, default_namespace=default_namespace)
        found = listing.placed[path]
        if isinstance(found, Placement):
            claims.setdefault(found.ref, []).append(path)
        elif isinstance(found, Misplaced):
            rejections.append(Rejection(found.ref, source, found.path, found.reason, found.message))
    singles = [Placement(ref, paths[0]) for ref, paths in claims.items() if len(paths) == 1]
    claimed_twice = [p for paths in claims.values() if len(paths) > 1 for p in paths]
    if claimed_twice:  # rare: let arrange word the rejection exactly as for directories
        duplicates = arrange(claimed_twice, source=source, default_namespace=default_namespace)
        rejections += duplicates.rejections
    listing.layout = (tuple(sorted(singles, key=lambda p: (p.ref.namespace, p.ref.name))), tuple(rejections))
    return listing.layout


def patch_snapshot(
    store: BaseObjectStore,
    base: Listing,
    last: SourceSnapshot,
    listing: Listing,
    cache: SpecCache,
    *,
    default_namespace: str,
    revision: str,
) -> SourceSnapshot | None:
    """The snapshot of a commit from the last one (``last``, of the listing ``base``)
    when only environment files changed between them: those blobs are parsed, every
    other environment is the same object (``patch.patched``). None when the change is
    not of that kind (a policy file, a lockfile, a misplaced or unsupported entry, a
    name claimed twice, many files): ``build_snapshot`` then. Raises ``MissingObject``."""
    if not patchable(last) or listing.unsupported != base.unsupported:
        return None
    changed = {path for path, _ in listing.files.items() ^ base.files.items()}
    if len(changed) > MAX_CHANGED:
        return None
    fresh: dict[str, tuple[EnvRef, DesiredEnv | Rejection | None]] = {}
    source = last.source
    holders = Holders(last)
    for path in changed:
        found = classify(path, default_namespace=default_namespace)
        if not isinstance(found, Placement) or policy_scope(path) is not None or lock_kind(path.rsplit("/", 1)[-1]):
            return None
        ref = found.ref
        if holders.path(ref) not in (None, path) or any(ref == r for r, _ in fresh.values()):
            return None  # another file claims the same environment: duplicates are decided in full
        sha = listing.files.get(path)
        if sha is None:
            fresh[path] = (ref, None)
            continue
        outcome = cache.outcome(store, sha)
        if isinstance(outcome, _Problem):
            fresh[path] = (ref, Rejection(ref, source, path, outcome.reason, outcome.message(path)))
        else:
            warnings = outcome.warnings + name_warning(ref.name, outcome.spec.name)
            fresh[path] = (ref, DesiredEnv(ref, outcome.spec, source, path, revision, warnings))
    return patched(last, fresh, revision)


def build_snapshot(
    store: BaseObjectStore,
    listing: Listing,
    cache: SpecCache,
    *,
    source: str,
    default_namespace: str,
    revision: str,
) -> SourceSnapshot:
    """The snapshot of one commit; raises ``MissingObject``."""
    placements, placing = place(listing, source=source, default_namespace=default_namespace)
    rejections = list(placing)
    rejections += [
        Rejection(None, source, path, UNSUPPORTED_TREE_ENTRY, message) for path, message in listing.unsupported.items()
    ]
    claimed = {p.ref for p in placements} | {r.ref for r in placing if r.ref is not None}
    lock_paths = [path for path in listing.files if lock_kind(path.rsplit("/", 1)[-1])]
    locks, lock_rejections = pair_locks(lock_paths, claimed, source=source, default_namespace=default_namespace)
    rejections += lock_rejections
    refused = {r.ref for r in lock_rejections if r.ref is not None}  # LockAmbiguous
    envs: list[DesiredEnv] = []
    for placement in placements:
        if placement.ref in refused:
            continue
        outcome = cache.outcome(store, listing.files[placement.path])
        if isinstance(outcome, _Problem):
            rejections.append(
                Rejection(placement.ref, source, placement.path, outcome.reason, outcome.message(placement.path))
            )
            continue
        lock = _lock_input(store, cache, listing, locks.get(placement.ref))
        if isinstance(lock, Rejection):
            rejections.append(Rejection(placement.ref, source, lock.path, lock.reason, lock.message))
            continue
        warnings = outcome.warnings + name_warning(placement.ref.name, outcome.spec.name)
        envs.append(DesiredEnv(placement.ref, outcome.spec, source, placement.path, revision, warnings, lock=lock))
    rejections.sort(key=lambda r: (r.path, r.reason))
    policies = tuple(
        _policy_file(store, path, sha) for path, sha in sorted(listing.files.items()) if policy_scope(path) is not None
    )
    return SourceSnapshot(source, revision, tuple(envs), tuple(rejections), policy_files=policies)


def _policy_file(store: BaseObjectStore, path: str, sha: bytes) -> PolicyFile:
    """A policy file's bytes (policy files are few and small: read at every new commit)."""
    size = blob_size(store, sha)
    if size is not None and size > MAX_SPEC_BYTES:
        return PolicyFile(path, problem=f"is {size} bytes, over the {MAX_SPEC_BYTES} byte limit")
    try:
        blob = store[sha]
    except KeyError:
        raise MissingObject(f"blob {sha.decode()} is missing from the mirror") from None
    if not isinstance(blob, Blob):
        return PolicyFile(path, problem="is not a file in the Git tree")
    return PolicyFile(path, blob.as_raw_string())


def _lock_input(
    store: BaseObjectStore, cache: SpecCache, listing: Listing, placed: LockPlacement | None
) -> LockInput | Rejection | None:
    if placed is None:
        return None
    data = cache.lock_bytes(store, listing.files[placed.path])
    if isinstance(data, _Problem):
        return Rejection(placed.ref, "", placed.path, data.reason, f"{placed.path}: {data.detail}")
    return LockInput(placed.path, placed.kind, data)
