"""Reading sources for the reconcile pass: one reader keeps what each source needs between
passes (a Git mirror and its last read, a directory's parse cache and last snapshot).

A directory source that a watcher reports on (``follow``) is read again only when the
watcher reported a change, or at the periodic full check (``rescan``); one without a
watcher is read at every pass. A Git source asks its remote every time (``ls-remote``: the
last snapshot comes back as it was when the branch did not move).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from condaops.config import SourceSettings
from condaops.reconciler.model import SourceSnapshot


class SourceReader:
    """Observes sources, keeping a parse cache per source so unchanged files are not re-read."""

    def __init__(self) -> None:
        self._caches: dict[str, object] = {}
        self._forced: set[str] = set()
        self._forced_lock = threading.Lock()
        self._followed: dict[str, _Follow] = {}  # directory sources a watcher reports on
        self._last: dict[str, SourceSnapshot] = {}

    @contextmanager
    def follow(self, name: str, *, ready: Callable[[], bool] = lambda: True) -> Iterator[Callable[[object], None]]:
        """While the block runs, a watcher reports on directory source ``name``: it is read
        again only after ``changed(paths)`` was called (and at ``rescan``), once
        ``ready()`` says the watcher is watching (until then, at every read)."""
        with self._forced_lock:
            self._followed[name] = _Follow(ready)
        try:
            yield lambda paths: self._mark(name)
        finally:
            with self._forced_lock:
                self._followed.pop(name, None)

    def rescan(self) -> None:
        """Read every followed source again at its next read (the periodic full check)."""
        with self._forced_lock:
            for follow in self._followed.values():
                follow.dirty = True

    def _mark(self, name: str) -> None:
        with self._forced_lock:
            if name in self._followed:
                self._followed[name].dirty = True

    def _unchanged(self, name: str) -> SourceSnapshot | None:
        """The last snapshot of a followed source nothing was reported on since; else None
        (and the source counts as read from now: a report during the read marks it again)."""
        with self._forced_lock:
            follow = self._followed.get(name)
            last = self._last.get(name)
            if follow is None or not follow.ready():
                return None
            if not follow.dirty and last is not None and last.error is None:
                return last
            follow.dirty = False
            return None

    def force(self, names: Iterable[str]) -> None:
        """Skip the failure backoff at the next read of these Git sources (thread-safe)."""
        with self._forced_lock:
            self._forced.update(names)

    def git_source(self, name: str):  # type: ignore[no-untyped-def]
        """The ``GitSource`` this reader keeps for source ``name`` (after its first read), or None."""
        from condaops.reconciler.sources.git import GitSource

        source = self._caches.get(name)
        return source if isinstance(source, GitSource) else None

    def _take_forced(self, name: str) -> bool:
        with self._forced_lock:
            if name in self._forced:
                self._forced.discard(name)
                return True
            return False

    def __call__(self, src: SourceSettings) -> SourceSnapshot:
        if src.directory is not None:
            from condaops.reconciler.sources.directory import SpecCache, read_directory

            unchanged = self._unchanged(src.name)
            if unchanged is not None:
                return unchanged
            cache = self._caches.setdefault(src.name, SpecCache())
            snapshot = self._last[src.name] = read_directory(src, cache=cache)  # type: ignore[arg-type]
            return snapshot
        if src.git is not None:
            import tempfile
            from pathlib import Path

            from condaops.reconciler.sources.git import GitSource

            source = self._caches.get(src.name)
            if not isinstance(source, GitSource) or source.settings != src:
                if isinstance(source, GitSource):
                    source.close()
                mirrors = src.mirror_dir
                if mirrors is None:  # set by load_settings; hand-made settings get a folder per reader
                    if "/git-mirrors" not in self._caches:  # "/" cannot start a source name
                        self._caches["/git-mirrors"] = tempfile.TemporaryDirectory(prefix="condaops-git-")
                    mirrors = Path(self._caches["/git-mirrors"].name)  # type: ignore[attr-defined]
                source = self._caches[src.name] = GitSource(src, cache_dir=mirrors)
            return source.read(force=self._take_forced(src.name))
        return SourceSnapshot(
            source=src.name,
            revision=None,
            error=f"source '{src.name}': neither 'directory' nor 'git' is set",
            error_reason="SourceUnsupported",
        )

    def close(self) -> None:
        """Close kept Git sources and remove a temporary mirror folder."""
        for kept in self._caches.values():
            close = getattr(kept, "close", None) or getattr(kept, "cleanup", None)
            if close is not None:
                close()
        self._caches.clear()
        self._last.clear()


@dataclass(slots=True)
class _Follow:
    ready: Callable[[], bool]
    dirty: bool = True  # read once more after following starts


def read_source(src: SourceSettings) -> SourceSnapshot:
    """Observe one source's current revision with a reader used once."""
    reader = SourceReader()
    try:
        return reader(src)
    finally:
        reader.close()
