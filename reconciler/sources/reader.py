"""Reading sources for the reconcile pass: one reader keeps what each source needs between
passes (a Git mirror and its last read, a directory's parse cache and last snapshot).

A directory source that a watcher reports on (``follow``) is read again only when the
watcher reported a change, or at the periodic full check (``rescan``); one without a
watcher is read at every pass. A Git source asks its remote every time (``ls-remote``: the
last snapshot comes back as it was when the branch did not move).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from condaops.config import SourceSettings
from condaops.reconciler.model import SourceSnapshot
from condaops.reconciler.reasons import Reason

if TYPE_CHECKING:
    from condaops.reconciler.sources.directory import RevisionEntries

SAVE_EVERY = 300.0  # seconds between writes of a few new parse results (``_save``)


class SourceReader:
    """Observes sources, keeping a parse cache per source so unchanged files are not re-read."""

    def __init__(self, *, parse_cache: Path | None = None, save_parses: bool = True) -> None:
        """``parse_cache``: a folder where directory sources' parse results are kept by
        content (``parsecache``): read when a source is first read, written after a read
        that parsed something new unless ``save_parses`` is False (``condaops plan``)."""
        self._parse_cache = parse_cache
        self._save_parses = save_parses
        self._fingerprint: str | None = None
        self._saved: dict[str, tuple[int, float]] = {}  # per directory source: parses written, when
        self._caches: dict[str, object] = {}
        self._forced: set[str] = set()
        self._forced_lock = threading.Lock()
        self._followed: dict[str, _Follow] = {}  # directory sources a watcher reports on
        self._last: dict[str, SourceSnapshot] = {}
        self._entries: dict[str, RevisionEntries] = {}  # per directory source: its revision's inputs

    @contextmanager
    def follow(self, name: str, *, ready: Callable[[], bool] = lambda: True) -> Iterator[Callable[[object], None]]:
        """While the block runs, a watcher reports on directory source ``name``: it is read
        again only after ``changed(paths)`` was called (and at ``rescan``), once
        ``ready()`` says the watcher is watching (until then, at every read)."""
        with self._forced_lock:
            self._followed[name] = _Follow(ready)
        try:
            yield lambda paths: self._mark(name, paths)
        finally:
            with self._forced_lock:
                self._followed.pop(name, None)

    def rescan(self) -> None:
        """Read every followed source again, in full, at its next read (the full check)."""
        with self._forced_lock:
            for follow in self._followed.values():
                follow.dirty, follow.paths = True, None

    def _mark(self, name: str, paths: object) -> None:
        with self._forced_lock:
            follow = self._followed.get(name)
            if follow is None:
                return
            follow.dirty = True
            reported = set(paths) if isinstance(paths, set | frozenset | list | tuple) else {"."}
            if follow.paths is not None and "." not in reported:
                follow.paths |= reported
            else:
                follow.paths = None

    def _take(self, name: str) -> tuple[SourceSnapshot | None, set[str] | None]:
        """For a followed source: its last snapshot when nothing was reported since, else
        (None, the reported paths or None for "read in full"); the source counts as read
        from now (a report during the read marks it again). Unfollowed: (None, None)."""
        with self._forced_lock:
            follow = self._followed.get(name)
            last = self._last.get(name)
            if follow is None or not follow.ready():
                return None, None
            if not follow.dirty and last is not None and last.error is None:
                return last, None
            paths, follow.dirty, follow.paths = follow.paths, False, set()
            return None, paths

    def force(self, names: Iterable[str]) -> None:
        """Skip the failure backoff at the next read of these Git sources (thread-safe)."""
        with self._forced_lock:
            self._forced.update(names)

    def git_source(self, name: str):  # GitSource is imported lazily: no annotation
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
            from condaops.reconciler.sources.dirchanges import apply_changes
            from condaops.reconciler.sources.directory import RevisionEntries, SpecCache, read_directory

            unchanged, changed = self._take(src.name)
            if unchanged is not None:
                self._save(src.name, self._caches.get(src.name))  # what a throttled save left
                return unchanged
            cache = self._caches.get(src.name)
            if not isinstance(cache, SpecCache):
                cache = self._caches[src.name] = SpecCache(known=self._load_parses(src.name))
            entries = self._entries.setdefault(src.name, RevisionEntries())
            last = self._last.get(src.name)
            snapshot = None
            if changed and last is not None:  # only what the watcher reported
                snapshot = apply_changes(src, last, entries, changed, cache)
            if snapshot is None:
                snapshot = read_directory(src, cache=cache, entries=entries)
            self._last[src.name] = snapshot
            self._save(src.name, cache)
            return snapshot
        if src.git is not None:
            import tempfile

            from condaops.reconciler.sources.git import GitSource

            source = self._caches.get(src.name)
            if not isinstance(source, GitSource) or source.settings != src:
                if isinstance(source, GitSource):
                    source.close()
                mirrors = src.mirror_dir
                if mirrors is None:  # set by load_settings; hand-made settings get a folder per reader
                    if "/git-mirrors" not in self._caches:  # "/" cannot start a source name
                        self._caches["/git-mirrors"] = tempfile.TemporaryDirectory(prefix="condaops-git-")
                    mirrors = Path(self._caches["/git-mirrors"].name)  # type: ignore[attr-defined]  # this key holds the TemporaryDirectory
                source = self._caches[src.name] = GitSource(src, cache_dir=mirrors)
            return source.read(force=self._take_forced(src.name))
        return SourceSnapshot(
            source=src.name,
            revision=None,
            error=f"source '{src.name}': neither 'directory' nor 'git' is set",
            error_reason=Reason.SOURCE_UNSUPPORTED,
        )

    def _load_parses(self, name: str) -> dict[tuple[str, str], Any]:  # parsecache.Outcome by key
        if self._parse_cache is None:
            return {}
        from condaops.reconciler.sources import parsecache

        self._fingerprint = self._fingerprint or parsecache.fingerprint()
        return parsecache.load(parsecache.cache_file(self._parse_cache, name), self._fingerprint)

    def _save(self, name: str, cache: object) -> None:
        """Write the parse results when a read parsed something new: at once the first
        time or when a tenth of the files is new, else at most every ``SAVE_EVERY``
        seconds (writing 10,000 results takes ~0.2 s: a pass after one edit must not pay
        it; ``plan`` parses what the file lacks)."""
        parsed = getattr(cache, "parsed", 0)
        if self._parse_cache is None or not self._save_parses:
            return
        saved, at = self._saved.get(name, (0, 0.0))
        new = parsed - saved
        if new <= 0:
            return
        now = time.monotonic()
        many = not saved or new * 10 >= len(getattr(cache, "known", ()))
        if not many and now - at < SAVE_EVERY:
            return
        from condaops.reconciler.sources import parsecache

        self._fingerprint = self._fingerprint or parsecache.fingerprint()
        parsecache.save(parsecache.cache_file(self._parse_cache, name), self._fingerprint, cache.known)  # type: ignore[attr-defined]  # a SpecCache
        self._saved[name] = (parsed, now)

    def close(self) -> None:
        """Close kept Git sources and remove a temporary mirror folder."""
        for kept in self._caches.values():
            close = getattr(kept, "close", None) or getattr(kept, "cleanup", None)
            if close is not None:
                close()
        self._caches.clear()
        self._last.clear()
        self._entries.clear()


@dataclass(slots=True)
class _Follow:
    ready: Callable[[], bool]
    dirty: bool = True  # read once more after following starts
    paths: set[str] | None = None  # reported since the last read; None: read in full


def read_source(src: SourceSettings) -> SourceSnapshot:
    """Observe one source's current revision with a reader used once."""
    reader = SourceReader()
    try:
        return reader(src)
    finally:
        reader.close()
