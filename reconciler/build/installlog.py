"""Download and install progress written to the build log, so a build that spends most of
its time downloading does not look stalled (the site follows the log live).

``InstallLog`` is a py-rattler ``InstallerReporter`` (structural: only the callbacks it
needs). rattler calls it from its own threads; logging is thread-safe and each line is
one record. Lines are bounded: per package one line when its download starts (with its
size when known) and one when it finishes; progress of large downloads at most every
``PROGRESS_SECONDS``; linking as a count every ``LINK_EVERY`` packages.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

PROGRESS_SECONDS = 2.0
LINK_EVERY = 25


def _mib(size: int | None) -> str:
    return "?" if size is None else f"{size / 1048576:.1f} MiB"


class InstallLog:
    """Writes ``download_started``, ``download_progress``, ``downloaded``, ``linked`` lines."""

    def __init__(self, log: logging.Logger, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = log
        self._clock = clock
        self._lock = threading.Lock()
        self._names: dict[int, str] = {}  # cache entry / download token -> package name
        self._downloads: dict[int, tuple[str, float, float]] = {}  # token -> (name, started, last line)
        self._tokens = 0
        self._total = 0
        self._linked = 0
        self._downloaded = 0

    def _token(self) -> int:
        with self._lock:
            self._tokens += 1
            return self._tokens

    def on_transaction_start(self, total_operations: int) -> None:
        self._total = total_operations
        self._log.info("install_started packages=%d", total_operations)

    def on_populate_cache_start(self, operation: int, package_name: str) -> int:
        token = self._token()
        self._names[token] = package_name
        return token

    def on_download_start(self, cache_entry: int) -> int:
        token = self._token()
        name = self._names.get(cache_entry, "?")
        now = self._clock()
        self._downloads[token] = (name, now, now)
        self._log.info("download_started package=%s", name)
        return token

    def on_download_progress(self, download_idx: int, progress: int, total: int | None) -> None:
        found = self._downloads.get(download_idx)
        now = self._clock()
        if found is None or now - found[2] < PROGRESS_SECONDS:
            return
        name, started, _ = found
        self._downloads[download_idx] = (name, started, now)
        share = f" ({100 * progress // total}%)" if total else ""
        self._log.info("download_progress package=%s got=%s of=%s%s", name, _mib(progress), _mib(total), share)

    def on_download_completed(self, download_idx: int) -> None:
        found = self._downloads.pop(download_idx, None)
        if found is None:
            return
        with self._lock:
            self._downloaded += 1
            done = self._downloaded
        name, started, _ = found
        self._log.info("downloaded package=%s seconds=%.1f count=%d", name, self._clock() - started, done)

    def on_populate_cache_complete(self, cache_entry: int) -> None:
        self._names.pop(cache_entry, None)

    def on_link_start(self, operation: int, package_name: str) -> int:
        return operation

    def on_link_complete(self, index: int) -> None:
        with self._lock:
            self._linked += 1
            linked = self._linked
        if linked % LINK_EVERY == 0 or linked == self._total:
            self._log.info("linked packages=%d of=%d", linked, self._total)

    def on_transaction_complete(self) -> None:
        self._log.info("install_finished linked=%d downloaded=%d", self._linked, self._downloaded)
