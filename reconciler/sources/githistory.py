"""Questions about Git history that change requests ask: merge bases, ancestry, commit
details, a file's text at a commit, and names such as ``HEAD`` or ``origin/main``.

Works on any dulwich repository: a source's bare mirror, or the working tree a CI job
checked out (often shallow: ``git clone --depth 1``). Shallow history is reported as
such (``MergeBase.shallow``), never mistaken for unrelated histories.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from dulwich.graph import find_merge_base
from dulwich.objects import Blob, Commit, Tree
from dulwich.repo import BaseRepo, Repo

from condaops.reconciler.sources.gitrules import is_tree

MAX_FILE_BYTES = 1 << 20  # environment files are refused above this size anyway
ANCESTRY_LIMIT = 5000  # commits walked to tell whether one commit descends from another


@dataclass(frozen=True, slots=True)
class MergeBase:
    """The merge base of two commits; ``sha`` None when none was found, ``shallow`` when
    the history that would hold it was cut off (a shallow clone), not absent."""

    sha: str | None
    shallow: bool = False


@dataclass(frozen=True, slots=True)
class CommitInfo:
    """What a reviewer sees of a commit."""

    sha: str
    author: str
    time: str  # ISO 8601, UTC
    message: str  # the whole message, trailing whitespace removed

    @property
    def subject(self) -> str:
        return self.message.split("\n", 1)[0]

    def to_data(self) -> dict[str, str]:
        return {"sha": self.sha, "author": self.author, "time": self.time, "message": self.message}


def merge_base(repo: BaseRepo, a: str, b: str) -> MergeBase:
    """The best common ancestor of commits ``a`` and ``b`` (hex SHAs)."""
    shallows = repo.get_shallow() if isinstance(repo, Repo) else set()
    try:
        found = find_merge_base(repo, [a.encode(), b.encode()])
    except KeyError:  # a parent is missing from a repository that does not know it is shallow
        return MergeBase(None, shallow=True)
    if found:
        return MergeBase(found[0].decode())
    return MergeBase(None, shallow=bool(shallows))


def descends(repo: BaseRepo, commit: str, ancestor: str, *, limit: int = ANCESTRY_LIMIT) -> bool:
    """Whether ``ancestor`` is ``commit`` or one of its first ``limit`` ancestors."""
    store = repo.object_store
    pending, seen = [commit.encode()], {commit.encode()}
    target = ancestor.encode()
    while pending and len(seen) <= limit:
        current = pending.pop()
        if current == target:
            return True
        try:
            obj = store[current]
        except KeyError:
            continue
        for parent in obj.parents if isinstance(obj, Commit) else ():
            if parent not in seen:
                seen.add(parent)
                pending.append(parent)
    return False


def commit_info(repo: BaseRepo, sha: str) -> CommitInfo | None:
    """Author, time and message of ``sha``; None when the commit is not there."""
    try:
        obj = repo.object_store[sha.encode()]
    except KeyError:
        return None
    if not isinstance(obj, Commit):
        return None
    when = datetime.fromtimestamp(obj.author_time, tz=timezone.utc).isoformat(timespec="seconds")
    author = obj.author.decode("utf-8", "replace")
    message = obj.message.decode("utf-8", "replace").rstrip()
    return CommitInfo(sha, author, when, message)


def file_text(repo: BaseRepo, commit: str, path: str, *, limit: int = MAX_FILE_BYTES) -> str | None:
    """The text of ``path`` (``/``-separated, from the repository root) at ``commit``; None
    when it is not a file there, is larger than ``limit`` or is not UTF-8."""
    store = repo.object_store
    try:
        obj = store[commit.encode()]
        if not isinstance(obj, Commit):
            return None
        sha = obj.tree
        parts = [p for p in path.split("/") if p]
        for i, name in enumerate(parts):
            tree = store[sha]
            if not isinstance(tree, Tree) or name.encode() not in tree:
                return None
            mode, sha = tree[name.encode()]
            if is_tree(mode) != (i < len(parts) - 1):
                return None
        blob = store[sha]
    except KeyError:
        return None
    if not isinstance(blob, Blob) or blob.raw_length() > limit:
        return None
    try:
        return blob.as_raw_string().decode("utf-8")
    except UnicodeDecodeError:
        return None


def resolve(repo: Repo, name: str) -> str | None:
    """The commit a name means, as ``git rev-parse`` would for the usual cases: ``HEAD``
    (detached or not), a full ref, a branch, a remote branch (``origin/main``), a tag or a
    full SHA. None when nothing matches."""
    if len(name) == 40 and all(c in "0123456789abcdef" for c in name):
        return name if name.encode() in repo.object_store else None
    candidates = [name] if name == "HEAD" or name.startswith("refs/") else []
    candidates += [f"refs/heads/{name}", f"refs/remotes/{name}", f"refs/tags/{name}", f"refs/{name}"]
    for ref in candidates:
        try:
            sha = repo.refs[ref.encode()]
        except KeyError:
            continue
        obj = repo.object_store[sha]
        while not isinstance(obj, Commit) and hasattr(obj, "object"):  # annotated tags
            obj = repo.object_store[obj.object[1]]
        return obj.id.decode()
    return None


def history_depth(repo: BaseRepo, sha: str, *, limit: int = ANCESTRY_LIMIT) -> int:
    """How many commits of history ``sha`` has here (itself included), up to ``limit``."""
    store = repo.object_store
    pending, seen = [sha.encode()], {sha.encode()}
    shallows = repo.get_shallow() if isinstance(repo, Repo) else set()
    while pending and len(seen) < limit:
        current = pending.pop()
        if current in shallows:
            continue
        try:
            obj = store[current]
        except KeyError:
            continue
        for parent in obj.parents if isinstance(obj, Commit) else ():
            if parent not in seen and parent in store:
                seen.add(parent)
                pending.append(parent)
    return len(seen)
