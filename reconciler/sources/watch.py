"""Watch a directory source and say when it has settled after a relevant change.

``DirectoryWatcher`` wraps ``watchfiles.awatch``:

* **Backend:** inotify (the platform's native backend) by default; polling when
  ``SourceSettings.polling`` is true, or when it is unset and the root is on a network or
  cluster filesystem (``fstype``), where inotify never hears of edits made on other
  hosts. ``polling: false`` forces the native backend. If the native backend cannot
  start (e.g. the inotify watch limit is reached) the watcher falls back to polling.
* **Filter:** only changes that can alter the layout count (``layout.affects_layout``):
  environment files, folders appearing or vanishing. Editor swap/backup files, hidden
  folders, README and other non-YAML files are ignored.
* **Debounce:** after a relevant change the watcher waits until the tree has been quiet
  for ``quiet`` seconds, then signals once with the set of relative paths that changed,
  so a file written in chunks or a ``git checkout`` of many files gives one signal.
  Irrelevant activity never delays a signal by more than half a quiet period.
  In polling mode the quiet period is at least ``POLL_QUIET_MIN`` (1.1 s): watchfiles'
  poller compares modification times in whole seconds, so a write landing in the same
  second as the previous one is never reported; waiting a full second after the last
  reported change guarantees such a write has landed before the re-scan reads the file.
* **Root lifecycle:** a missing root is checked for every ``root_retry`` seconds; its
  appearance, disappearance or replacement (deleted and re-created, or a symlinked root
  re-pointed) is signalled as ``"."`` so the caller re-scans (a vanished root then reads
  as ``SourceUnreadable``, which retires nothing), and a new root is watched afresh.
* **Stopping:** ``stop()`` (thread-safe, idempotent) ends iteration within about
  ``step`` seconds. A watcher is single-use.

The watcher only says *when* to re-scan; ``read_directory`` decides *what* changed.
Changes it cannot see (a symlink target's companion file, an NFS server without
timestamps) are caught by the caller's periodic safety scan (``SourceSettings.interval``).
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from contextlib import aclosing
from pathlib import Path
from typing import Literal

import anyio
from watchfiles import Change, awatch

from condaops.config.settings import SourceSettings
from condaops.reconciler.sources.directory import source_root
from condaops.reconciler.sources.fstype import MOUNTINFO, is_network_path
from condaops.reconciler.sources.layout import affects_layout

log = logging.getLogger("condaops.sources.watch")

POLL_QUIET_MIN = 1.1  # seconds; see the module docstring
ROOT = "."  # the path reported when the root itself appeared or vanished

OnChange = Callable[[frozenset[str]], Awaitable[object] | object]


class DirectoryWatcher:
    """Signals settled, relevant changes under one directory source's root."""

    def __init__(
        self,
        settings: SourceSettings,
        *,
        quiet: float = 0.5,
        poll_delay: float = 1.0,
        step: float = 0.05,
        root_retry: float = 2.0,
        mountinfo: Path = MOUNTINFO,
    ) -> None:
        """``quiet``: seconds without relevant change before signalling; ``poll_delay``:
        seconds between polls in polling mode; ``step``: watchfiles' grouping window and
        the stop latency; ``root_retry``: seconds between checks for a missing root."""
        self.root = source_root(settings)
        self.quiet = quiet
        self._force_polling = settings.polling
        self._poll_delay_ms = max(1, round(poll_delay * 1000))
        self._step_ms = max(1, round(step * 1000))
        self._tick_ms = max(self._step_ms, round(min(max(quiet / 2, 0.02), 1.0) * 1000))
        self._root_retry = root_retry
        self._mountinfo = mountinfo
        self._polling: bool | None = None
        self._stop = threading.Event()
        self._watching = threading.Event()

    @property
    def polling(self) -> bool:
        """Whether the watcher polls (decided on first use, kept afterwards)."""
        if self._polling is None:
            if self._force_polling is None:
                self._polling = is_network_path(self.root, mountinfo=self._mountinfo)
            else:
                self._polling = self._force_polling
        return self._polling

    @property
    def effective_quiet(self) -> float:
        """The quiet period in use: ``quiet``, raised to ``POLL_QUIET_MIN`` when polling."""
        return max(self.quiet, POLL_QUIET_MIN) if self.polling else self.quiet

    @property
    def watching(self) -> bool:
        """True while a backend is watching the root (changes from now on are seen)."""
        return self._watching.is_set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        """End the watch; iteration finishes within about ``step`` seconds."""
        self._stop.set()

    def __aiter__(self) -> AsyncIterator[frozenset[str]]:
        return self.changes()

    async def run(self, on_change: OnChange) -> None:
        """Call ``on_change(paths)`` (sync or async) for every settled change until stopped."""
        async with aclosing(self.changes()) as changes:
            async for paths in changes:
                result = on_change(paths)
                if inspect.isawaitable(result):
                    await result

    async def changes(self) -> AsyncGenerator[frozenset[str], None]:
        """Yield the relative paths of each settled batch of relevant changes."""
        pending = _Pending()
        while not self.stopped:
            if not os.path.isdir(self.root):
                if pending.paths:  # the root vanished: say so now (it reads as unreadable)
                    yield pending.take()
                if not await self._wait_for_root():
                    return
                pending.add({ROOT})  # appeared: signal once quiet (a copy may be running)
            async with aclosing(self._session(pending)) as batches:
                async for batch in batches:
                    yield batch

    async def _session(self, pending: _Pending) -> AsyncGenerator[frozenset[str], None]:
        """One backend session: ends when stopped or when the root vanishes or is replaced.

        ``pending`` outlives the session, so a replaced root is still debounced.
        """
        real_root = os.path.realpath(self.root)
        identity = _identity(self.root)
        log.info("watch_started root=%s polling=%s", self.root, self.polling)
        try:
            async with aclosing(self._raw_changes(real_root)) as raw_batches:
                async for raw in raw_batches:
                    self._watching.set()
                    pending.add(_relevant(raw, real_root))
                    if _root_deleted(raw, real_root) or _identity(self.root) != identity:
                        pending.add({ROOT})
                        return
                    if pending.quiet_for(self.effective_quiet):
                        yield pending.take()
        except OSError as exc:
            pending.add({ROOT})  # events may have been missed meanwhile: re-scan
            await self._recover(exc)
        finally:
            self._watching.clear()

    def _raw_changes(self, real_root: str) -> AsyncGenerator[set[tuple[Change, str]], None]:
        # Every batch comes back unfiltered (we filter), and an empty one every tick, so
        # the quiet period is measured here, not stretched by ignored activity.
        return awatch(
            real_root,
            watch_filter=None,
            debounce=max(self._step_ms, round(self.effective_quiet * 1000)),
            step=self._step_ms,
            rust_timeout=self._tick_ms,
            yield_on_timeout=True,
            stop_event=self._stop,
            force_polling=self.polling,
            poll_delay_ms=self._poll_delay_ms,
            ignore_permission_denied=True,
        )

    async def _recover(self, exc: OSError) -> None:
        """The backend failed: fall back to polling, or wait before trying again."""
        if not os.path.isdir(self.root):
            return
        if not self.polling:
            log.warning("watch_fallback_polling root=%s error=%s", self.root, exc)
            self._polling = True
            return
        log.warning("watch_failed root=%s error=%s retry_in=%s", self.root, exc, self._root_retry)
        await self._pause(self._root_retry)

    async def _wait_for_root(self) -> bool:
        """Wait until the root is a folder (True) or the watcher is stopped (False)."""
        log.info("watch_waiting root=%s reason=missing", self.root)
        while not self.stopped:
            await self._pause(self._root_retry)
            if os.path.isdir(self.root):
                return True
        return False

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, waking early (within 0.1 s) when stopped."""
        deadline = time.monotonic() + seconds
        while not self.stopped and (left := deadline - time.monotonic()) > 0:
            await anyio.sleep(min(left, 0.1))


class _Pending:
    """Relevant paths seen since the last signal, and when the latest arrived."""

    def __init__(self) -> None:
        self.paths: set[str] = set()
        self.last_change = 0.0

    def add(self, paths: set[str]) -> None:
        if paths:
            self.paths |= paths
            self.last_change = time.monotonic()

    def quiet_for(self, seconds: float) -> bool:
        return bool(self.paths) and time.monotonic() - self.last_change >= seconds

    def take(self) -> frozenset[str]:
        paths, self.paths = frozenset(self.paths), set()
        return paths


def _identity(root: Path) -> tuple[str, int, int] | None:
    """Which folder ``root`` is now (a replaced or re-pointed root is another one)."""
    try:
        info = os.stat(root)
    except OSError:
        return None
    return (os.path.realpath(root), info.st_dev, info.st_ino) if os.path.isdir(root) else None


def _root_deleted(raw: Iterable[tuple[Change, str]], real_root: str) -> bool:
    # A root deleted and re-created at once may get the same inode back: trust the event.
    return any(change == Change.deleted and path == real_root for change, path in raw)


def _relevant(raw: Iterable[tuple[Change, str]], real_root: str) -> set[str]:
    """The relative paths among ``raw`` whose change can alter the source's layout."""
    hits = set()
    for change, path in raw:
        rel = os.path.relpath(path, real_root).replace(os.sep, "/")
        if rel == ".." or rel.startswith("../"):
            continue
        kind: Literal["file", "dir", "gone"]
        if not os.path.lexists(path):
            kind = "gone"
        elif os.path.isdir(path):
            if change == Change.modified:
                continue  # a folder's own mtime: its entries' changes arrive on their own
            kind = "dir"
        else:
            kind = "file"
        if affects_layout(rel, kind=kind):
            hits.add(rel)
    return hits
