"""The Git source: a branch (and sub-folder) of a Git remote, read into snapshots.

``GitSource(settings, cache_dir=...)`` keeps a bare mirror in ``cache_dir/<name>.git``
and what it read last. Each ``read()``:

1. lists the remote's refs (``ls-remote``); if the branch still points at the commit read
   last, the last snapshot is returned as it is — one round trip, nothing parsed;
2. otherwise fetches the new commit into the mirror (objects already there are not
   fetched again) and sets the ref there itself;
3. lists the sub-folder's tree: when the new commit descends from the last one, by
   applying ``tree_changes`` to the last listing; after a force-push or rewritten history,
   by walking the new tree in full. Specs are parsed once per blob (``gittree``).

The revision is the commit SHA; each environment's ``path`` is relative to ``path``.
Outcomes, never exceptions:

* branch gone → ``error_reason="SourceBranchMissing"``: nothing is retired;
* remote unreachable or credentials refused → ``SourceUnreachable`` / ``SourceAuthFailed``,
  and later reads wait ``gitrules.retry_delay`` (doubling up to 8 intervals) before
  contacting the remote again, returning the same error meanwhile;
* a broken mirror is re-created and fetched again once; if that fails too,
  ``SourceUnreadable``;
* a commit without environments, or without the sub-folder, → an empty snapshot, no error
  (the planner retires nothing from it unless the source has ``allow_empty``);
* ``path`` naming a file → ``SourceUnreadable``.

``list_refs``, ``read_ref`` and ``read_revision`` serve change requests
(``refs/pull/*/head``...): a snapshot of any ref or fetched commit, read against the
branch's listing so only the differences are parsed; ``history`` answers questions about
the mirror's history (merge bases, commit details, file texts: ``githistory``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from dulwich.errors import ChecksumMismatch, ObjectFormatException
from dulwich.objects import Commit, ShaFile, Tree
from dulwich.repo import Repo

from condaops.config.settings import SourceSettings
from condaops.reconciler.model import SourceSnapshot
from condaops.reconciler.names import ref_glob_problem
from condaops.reconciler.reasons import Reason
from condaops.reconciler.sources.gitmirror import (
    MAX_PACKS,
    consolidate_packs,
    open_mirror,
    pack_count,
    remove_mirror,
)
from condaops.reconciler.sources.gitremote import Remote, RemoteError
from condaops.reconciler.sources.gitrules import (
    glob_prefix,
    is_tree,
    matching_refs,
    may_retry,
    retry_delay,
)
from condaops.reconciler.sources.gittree import (
    Listing,
    MissingObject,
    SpecCache,
    build_snapshot,
    patch_snapshot,
    update_listing,
    walk_tree,
)

log = logging.getLogger("condaops.sources.git")

SOURCE_BRANCH_MISSING = Reason.SOURCE_BRANCH_MISSING
SOURCE_REF_MISSING = Reason.SOURCE_REF_MISSING
SOURCE_UNREADABLE = Reason.SOURCE_UNREADABLE
ANCESTRY_LIMIT = 1000  # commits walked to tell a fast-forward from rewritten history

Clock = Callable[[], float]
T = TypeVar("T")


class _PathIsFile(Exception):
    """The configured sub-folder is not a folder in this commit."""


@dataclass(frozen=True, slots=True)
class _Read:
    """One commit as read: enough to answer the next poll and diff the next commit."""

    commit: bytes
    tree: bytes | None  # the sub-folder's tree; None when the commit lacks it
    listing: Listing
    snapshot: SourceSnapshot


@dataclass(frozen=True, slots=True)
class _Failure:
    count: int
    at: float
    snapshot: SourceSnapshot


class GitSource:
    """Reads one Git source; keep one per source between polls. Thread-safe."""

    def __init__(
        self,
        settings: SourceSettings,
        *,
        cache_dir: Path,
        clock: Clock = time.monotonic,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.mirror_path = cache_dir / f"{settings.name}.git"
        self._remote = Remote(settings, environ=environ)
        self._clock = clock
        self._branch_ref = f"refs/heads/{settings.branch}"
        self._subdir = [p.encode() for p in settings.path.split("/") if p not in ("", ".")]
        self._repo: Repo | None = None
        self._specs = SpecCache()
        self._last: _Read | None = None
        self._failure: _Failure | None = None
        self._lock = threading.Lock()

    # --- public ---------------------------------------------------------------------------

    def read(self, *, force: bool = False) -> SourceSnapshot:
        """The branch's current snapshot. ``force`` skips the wait after failures (a
        webhook or a user asked for a refresh)."""
        with self._lock:
            now = self._clock()
            failure = self._failure
            if failure and not force and not may_retry(failure.count, self.settings.interval, now - failure.at):
                return failure.snapshot
            try:
                snapshot = self._read_branch()
            except RemoteError as err:
                return self._failed(err, now)
            except OSError as exc:
                return self._mirror_unusable(exc)
            self._failure = None
            return snapshot

    def read_ref(self, ref: str) -> SourceSnapshot:
        """A snapshot of ``ref`` (e.g. ``refs/pull/7/head``) as the remote has it now.

        Independent of ``read()``'s state and backoff; failures are error snapshots
        (``SourceRefMissing``, ``SourceUnreachable``...)."""
        with self._lock:
            try:
                snapshot = self._fetch_and_read(ref, branch=False)
            except RemoteError as err:
                return self._error(err.message, err.reason)
            except OSError as exc:
                return self._mirror_unusable(exc)
            if snapshot is None:
                return self._error(f"{self._remote.display}: ref {ref} does not exist", SOURCE_REF_MISSING)
            return snapshot

    def read_revision(self, sha: str) -> SourceSnapshot:
        """A snapshot of commit ``sha``, already in the mirror (a merge base, say); an
        error snapshot (``SourceUnreadable``) when it is not there."""
        with self._lock:
            try:
                return self._read_commit(sha.encode(), branch=False)
            except MissingObject as exc:
                return self._error(f"commit {sha[:12]} cannot be read from the mirror ({exc})", SOURCE_UNREADABLE)
            except OSError as exc:
                return self._mirror_unusable(exc)

    def history(self, question: Callable[[Repo], T]) -> T:
        """``question(mirror)`` under this source's lock: ``githistory`` functions."""
        with self._lock:
            return question(self._mirror())

    def list_refs(self, patterns: Iterable[str]) -> dict[str, str]:
        """Remote refs matching ref globs (``refs/pull/*/head``): name -> commit SHA.

        Raises ``RemoteError`` (a transient ``SourceError``) when the remote cannot be
        listed — an empty answer must not be mistaken for "no change requests"."""
        patterns = list(patterns)
        for pattern in patterns:
            if problem := ref_glob_problem(pattern):
                raise ValueError(problem)
        with self._lock:
            refs = self._remote.list_refs(glob_prefix(p) for p in patterns)
        return matching_refs(refs, patterns)

    @property
    def parsed_blobs(self) -> int:
        """Blobs read and parsed so far: what incremental reads keep small."""
        return self._specs.reads

    def close(self) -> None:
        """Release the mirror's files; the source may be read again afterwards."""
        with self._lock:
            self._close_repo()

    def __enter__(self) -> GitSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the branch -----------------------------------------------------------------------

    def _read_branch(self) -> SourceSnapshot:
        head = self._remote.list_refs([self._branch_ref]).get(self._branch_ref)
        if head is not None and self._last is not None and self._last.commit == head.encode():
            return self._last.snapshot  # the cheap poll: nothing new
        snapshot = None if head is None else self._fetch_and_read(self._branch_ref, branch=True)
        return self._branch_missing() if snapshot is None else snapshot  # None: gone, maybe since ls-remote

    def _fetch_and_read(self, ref: str, *, branch: bool) -> SourceSnapshot | None:
        """Fetch ``ref`` and read its commit; None if the remote has no such ref. A broken
        mirror is re-created and fetched again, once."""
        for attempt in (1, 2):
            try:
                found = self._fetch([ref])
                if ref not in found:
                    return None
                return self._read_commit(found[ref].encode(), branch=branch)
            except MissingObject as exc:
                if attempt == 2:
                    message = f"the local mirror {self.mirror_path} cannot be read ({exc}); retried at the next poll"
                    return self._error(message, SOURCE_UNREADABLE)
                self._reset_mirror(str(exc))
        raise AssertionError("unreachable")

    def _branch_missing(self) -> SourceSnapshot:
        message = (
            f"{self._remote.display}: branch '{self.settings.branch}' does not exist (deleted or "
            "renamed?); the last good state is kept: restore the branch or fix 'branch'"
        )
        log.warning("git_branch_missing source=%s branch=%s", self.settings.name, self.settings.branch)
        return self._error(message, SOURCE_BRANCH_MISSING)

    def _failed(self, err: RemoteError, now: float) -> SourceSnapshot:
        count = self._failure.count + 1 if self._failure else 1
        delay = retry_delay(count, self.settings.interval)
        snapshot = self._error(f"{err.message}; next attempt in {delay:g}s", err.reason)
        self._failure = _Failure(count, now, snapshot)
        log.warning(
            "git_source_failed source=%s reason=%s failures=%d retry_in=%gs %s",
            self.settings.name,
            err.reason,
            count,
            delay,
            err.message,
        )
        return snapshot

    def _mirror_unusable(self, exc: OSError) -> SourceSnapshot:
        """The mirror's folder cannot be written (permissions, disk full): a local problem."""
        where = exc.filename or self.mirror_path
        message = (
            f"the local mirror cannot be written: {where}: {exc.strerror or exc}; "
            "fix the folder ('mirror_dir', default <store>/.cache/git)"
        )
        log.warning("git_mirror_unusable source=%s %s", self.settings.name, message)
        return self._error(message, SOURCE_UNREADABLE)

    def _error(self, message: str, reason: str) -> SourceSnapshot:
        return SourceSnapshot(self.settings.name, None, error=self._remote.redact(message), error_reason=reason)

    # --- mirror ---------------------------------------------------------------------------

    def _mirror(self) -> Repo:
        if self._repo is None:
            self._repo = open_mirror(self.mirror_path)
        return self._repo

    def _fetch(self, refs: list[str]) -> dict[str, str]:
        started = time.perf_counter()
        try:
            found = self._remote.fetch(self._mirror(), refs)
        except (KeyError, ChecksumMismatch, ObjectFormatException) as exc:
            # The mirror claimed objects it does not have, or holds damaged ones.
            raise MissingObject(f"fetching into the mirror failed: {type(exc).__name__}") from None
        log.info(
            "git_fetched source=%s refs=%s seconds=%.3f",
            self.settings.name,
            ",".join(f"{r}={s[:12]}" for r, s in found.items()),
            time.perf_counter() - started,
        )
        if pack_count(self._mirror()) > MAX_PACKS:
            self._close_repo()
            try:
                consolidate_packs(self.mirror_path)
            except OSError as exc:  # housekeeping: the packs are still valid as they are
                log.warning("git_packs_not_merged source=%s %s", self.settings.name, exc)
        return found

    def _close_repo(self) -> None:
        if self._repo is not None:
            self._repo.close()
            self._repo = None

    def _reset_mirror(self, problem: str) -> None:
        log.warning("git_mirror_reset source=%s path=%s %s", self.settings.name, self.mirror_path, problem)
        self._close_repo()
        remove_mirror(self.mirror_path)
        self._last = None

    # --- reading a commit -----------------------------------------------------------------

    def _read_commit(self, commit: bytes, *, branch: bool) -> SourceSnapshot:
        """Read ``commit`` against the branch's last read; raises ``MissingObject``. Only a
        branch read becomes the new base; the spec cache keeps the blobs of both."""
        read = self._read_tree(commit, self._last, check_ancestry=branch)
        if branch:
            self._last = read
        if read.snapshot.error is None:
            branch_blobs = self._last.listing.files.values() if self._last else ()
            self._specs.keep_only([*branch_blobs, *read.listing.files.values()])
        return read.snapshot

    def _read_tree(self, commit: bytes, base: _Read | None, *, check_ancestry: bool) -> _Read:
        try:
            tree = self._subtree(commit)
        except _PathIsFile:
            message = (
                f"{self._remote.display}: '{self.settings.path}' is not a folder in commit "
                f"{commit.decode()[:12]}; fix 'path'"
            )
            return _Read(commit, None, Listing(), self._error(message, SOURCE_UNREADABLE))
        started = time.perf_counter()
        listing, mode = self._listing(commit, tree, base, check_ancestry)
        store = self._mirror().object_store
        snapshot = None
        if mode != "full" and base is not None:  # only what the tree diff changed
            snapshot = patch_snapshot(
                store,
                base.listing,
                base.snapshot,
                listing,
                self._specs,
                default_namespace=self.settings.default_namespace,
                revision=commit.decode(),
            )
            mode = mode if snapshot is not None else f"{mode}, snapshot in full"
        if snapshot is None:
            snapshot = build_snapshot(
                store,
                listing,
                self._specs,
                source=self.settings.name,
                default_namespace=self.settings.default_namespace,
                revision=commit.decode(),
            )
        log.info(
            "git_read source=%s revision=%s mode=%s envs=%d rejections=%d seconds=%.3f",
            self.settings.name,
            commit.decode()[:12],
            mode,
            len(snapshot.envs),
            len(snapshot.rejections),
            time.perf_counter() - started,
        )
        return _Read(commit, tree, listing, snapshot)

    def _listing(
        self, commit: bytes, tree: bytes | None, base: _Read | None, check_ancestry: bool
    ) -> tuple[Listing, str]:
        store = self._mirror().object_store
        if base is None or base.tree is None or tree is None:
            return walk_tree(store, tree), "full"
        if base.tree == tree:
            return base.listing, "unchanged"
        if check_ancestry and not self._descends(commit, base.commit):
            # Tree diffs do not depend on history, but a rewrite is rare: start afresh.
            log.warning(
                "git_history_rewritten source=%s old=%s new=%s: reading the tree in full",
                self.settings.name,
                base.commit.decode()[:12],
                commit.decode()[:12],
            )
            return walk_tree(store, tree), "full"
        updated = update_listing(store, base.listing, base.tree, tree)
        return (updated, "incremental") if updated is not None else (walk_tree(store, tree), "full")

    def _subtree(self, commit: bytes) -> bytes | None:
        """The sub-folder's tree in ``commit``; None if the commit has no such folder."""
        obj = self._object(commit)
        if not isinstance(obj, Commit):
            raise MissingObject(f"{commit.decode()} is not a commit")
        tree = obj.tree
        for name in self._subdir:
            entries = self._object(tree)
            if not isinstance(entries, Tree):
                raise MissingObject(f"{tree.decode()} is not a tree")
            if name not in entries:
                return None
            mode, tree = entries[name]
            if not is_tree(mode):
                raise _PathIsFile
        return tree

    def _object(self, sha: bytes) -> ShaFile:
        try:
            return self._mirror().object_store[sha]
        except KeyError:
            raise MissingObject(f"object {sha.decode()} is missing from the mirror") from None

    def _descends(self, commit: bytes, ancestor: bytes) -> bool:
        """Whether ``ancestor`` is within ``ANCESTRY_LIMIT`` commits behind ``commit``."""
        store = self._mirror().object_store
        pending, seen = deque([commit]), {commit}
        while pending and len(seen) <= ANCESTRY_LIMIT:
            current = pending.popleft()
            if current == ancestor:
                return True
            try:
                found = store[current]
                parents = found.parents if isinstance(found, Commit) else []
            except KeyError:
                continue  # beyond the mirror's history: not a known ancestor
            for parent in parents:
                if parent not in seen:
                    seen.add(parent)
                    pending.append(parent)
        return False
