"""The update branches in Git: a bare mirror of the source's repository, new locks
committed on top of the target branch, pushes that only land where the branch was seen.

The mirror (``<cache>/updates/<source>.git``) is separate from the reader's: update runs
go on a worker of their own and must never hold the reconcile pass's lock. Everything
goes through the source's ``Remote`` (dulwich, no git binary): the same URL, credentials
(``password_env``/``password_file``, ``ssh_key_file``) and redaction as fetching.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from dulwich.object_store import commit_tree_changes
from dulwich.objects import Blob, Commit
from dulwich.repo import Repo

from condaops.config import SourceSettings
from condaops.reconciler.model import SourceSnapshot
from condaops.reconciler.sources.gitmirror import open_mirror
from condaops.reconciler.sources.gitremote import Remote
from condaops.reconciler.sources.gitsnap import snapshot_at
from condaops.reconciler.sources.gittree import SpecCache
from condaops.reconciler.updates.plan import is_ours

FILE_MODE = 0o100644


class UpdateRepo:
    """One source's repository as update runs see it. Not thread-safe: one run at a time."""

    def __init__(self, source: SourceSettings, cache: Path, *, environ: Mapping[str, str] | None = None) -> None:
        self.source = source
        self.remote = Remote(source, environ=environ)
        self.path = cache / f"{source.name}.git"
        self._repo: Repo | None = None
        self.target_ref = f"refs/heads/{source.branch}"

    @property
    def repo(self) -> Repo:
        if self._repo is None:
            self._repo = open_mirror(self.path)
        return self._repo

    def close(self) -> None:
        if self._repo is not None:
            self._repo.close()
            self._repo = None

    def fetch(self, prefix: str) -> tuple[str | None, dict[str, str]]:
        """The target branch's commit (None: gone) and every update branch under ``prefix``
        (branch name -> commit), their commits fetched into the mirror."""
        branch_refs = f"refs/heads/{prefix.rstrip('/')}/"
        refs = self.remote.list_refs([self.target_ref, branch_refs])
        wanted = [self.target_ref, *(r for r in refs if r.startswith(branch_refs))]
        found = self.remote.fetch(self.repo, [r for r in wanted if r in refs])
        # dulwich keeps the pack a fetch wrote with its index already closed (reading it
        # fails with PackFileDisappeared): open the mirror afresh to read what arrived.
        self.close()
        branches = {r.removeprefix("refs/heads/"): sha for r, sha in found.items() if r != self.target_ref}
        return found.get(self.target_ref), branches

    def snapshot(self, commit: str) -> SourceSnapshot:
        return snapshot_at(self.repo, commit, self.source, SpecCache())

    def is_ours(self, commit: str, branch: str) -> bool:
        obj = self.repo.object_store[commit.encode()]
        return isinstance(obj, Commit) and is_ours(obj.message.decode("utf-8", "replace"), branch)

    def commit(self, parent: str, files: Mapping[str, bytes], message: str, author: str) -> str:
        """A commit on top of ``parent`` whose tree is the parent's with ``files`` (paths below
        the source's ``path``) written; returns its SHA."""
        store = self.repo.object_store
        base = store[parent.encode()]
        assert isinstance(base, Commit)
        changes = []
        for rel, data in sorted(files.items()):
            blob = Blob.from_string(data)
            store.add_object(blob)
            full = "/".join(p for p in (*self.source.path.split("/"), *rel.split("/")) if p not in ("", "."))
            changes.append((full.encode(), FILE_MODE, blob.id))
        commit = Commit()
        commit.tree = commit_tree_changes(store, base.tree, changes)
        commit.parents = [parent.encode()]
        commit.author = commit.committer = author.encode()
        commit.author_time = commit.commit_time = int(time.time())
        commit.author_timezone = commit.commit_timezone = 0
        commit.encoding = b"UTF-8"
        commit.message = message.encode()
        store.add_object(commit)
        return commit.id.decode("ascii")

    def push(self, branch: str, *, expected: str | None, new: str | None) -> None:
        """Set ``branch`` on the remote to ``new`` (None deletes it) if it is at ``expected``."""
        self.remote.push(self.repo, {f"refs/heads/{branch}": (expected, new)})
