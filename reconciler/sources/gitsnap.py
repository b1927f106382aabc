"""Snapshots of any commit of any repository (a CI checkout, say), read as a Git source
reads its branch: the same listing, layout and parsing (``gittree``); and, when a folder
holds no environment file, the folders that do.
"""

from __future__ import annotations

from dulwich.objects import Blob, Commit, Tree
from dulwich.repo import BaseRepo

from condaops.config.settings import SourceSettings
from condaops.reconciler.errors import SourceError
from condaops.reconciler.model import SourceSnapshot
from condaops.reconciler.sources.gitrules import is_tree
from condaops.reconciler.sources.gittree import MissingObject, SpecCache, build_snapshot, walk_tree
from condaops.reconciler.sources.layout import ENV_FILE_STEM
from condaops.reconciler.specfile import MAX_SPEC_BYTES, parse_spec_bytes

SEARCH_DEPTH = 6  # folders below the root searched for environment files
SEARCH_ENTRIES = 20000  # tree entries looked at, at most
SEARCH_BLOBS = 200  # candidate files parsed, at most


def snapshot_at(repo: BaseRepo, commit: str, source: SourceSettings, cache: SpecCache) -> SourceSnapshot:
    """The source's environments in ``commit`` (its ``path`` sub-folder; missing: empty).
    Raises ``SourceError`` when the commit or its objects are not in the repository."""
    store = repo.object_store
    parts = [p for p in source.path.split("/") if p not in ("", ".")]
    try:
        tree = subtree(repo, commit, parts)
        listing = walk_tree(store, tree)
        return build_snapshot(
            store, listing, cache, source=source.name, default_namespace=source.default_namespace, revision=commit
        )
    except (MissingObject, KeyError) as exc:
        raise SourceError(f"commit {commit[:12]} cannot be read from the repository ({exc})") from None


def subtree(repo: BaseRepo, commit: str, parts: list[str]) -> bytes | None:
    """The tree of folder ``parts`` in ``commit``; None when there is no such folder.
    Raises ``SourceError`` when ``parts`` names a file."""
    obj = repo.object_store[commit.encode()]
    if not isinstance(obj, Commit):
        raise SourceError(f"{commit[:12]} is not a commit")
    sha = obj.tree
    for name in parts:
        tree = repo.object_store[sha]
        if not isinstance(tree, Tree) or name.encode() not in tree:
            return None
        mode, sha = tree[name.encode()]
        if not is_tree(mode):
            raise SourceError(f"'{'/'.join(parts)}' is a file in commit {commit[:12]}, not a folder; fix the path")
    return sha


def spec_folders(repo: BaseRepo, commit: str, *, limit: int = 5) -> list[str]:
    """Folders of ``commit`` that hold environment files (``<ns>/<name>.yaml`` or
    ``<ns>/<name>/environment.yaml`` below them), most files first: what to pass as the
    path. Bounded: the search looks at ``SEARCH_ENTRIES`` entries and parses at most
    ``SEARCH_BLOBS`` files."""
    store = repo.object_store
    root = repo.object_store[commit.encode()]
    if not isinstance(root, Commit):
        return []
    counts: dict[str, int] = {}
    pending: list[tuple[tuple[str, ...], bytes]] = [((), root.tree)]
    seen = parsed = 0
    while pending and seen < SEARCH_ENTRIES:
        parent, sha = pending.pop()
        tree = store[sha]
        if not isinstance(tree, Tree):
            continue
        for entry in tree.iteritems():
            seen += 1
            name = entry.path.decode("utf-8", "replace")
            if name.startswith("."):
                continue
            parts = (*parent, name)
            if is_tree(entry.mode):
                if len(parts) < SEARCH_DEPTH:
                    pending.append((parts, entry.sha))
            elif name.endswith((".yaml", ".yml")) and len(parts) >= 2 and parsed < SEARCH_BLOBS:
                parsed += 1
                if _is_spec(store, entry.sha):
                    up = 3 if name.rsplit(".", 1)[0] == ENV_FILE_STEM else 2
                    folder = "/".join(parts[:-up]) if len(parts) > up else "."
                    counts[folder] = counts.get(folder, 0) + 1
    return [f for f, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][:limit]


def _is_spec(store: object, sha: bytes) -> bool:
    blob = store[sha]  # type: ignore[index]  # the object store, kept untyped so tests can pass a dict
    if not isinstance(blob, Blob) or blob.raw_length() > MAX_SPEC_BYTES:
        return False
    try:
        parsed = parse_spec_bytes(blob.as_raw_string(), file="")
    except Exception:  # noqa: BLE001 - any file that does not parse is simply not an environment
        return False
    return bool(parsed.spec.dependencies)
