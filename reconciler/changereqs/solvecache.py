"""Solves a review reuses: packages per platform by spec hash and channel state.

A review solves the merge base's and the head's version of every environment a change
request touches (and the target's, when the target moved). When only the target moves,
the same specs come back: this cache answers them without solving again, as long as the
channels did not change.

*Channel state* is a digest of the content hashes rattler records for every repodata it
fetched into the review's repodata cache (``*.info.json``: URL and ``blake2_hash``): any
solve that sees a channel change (a review's, or a production build's sharing the cache)
changes it, and every entry solved before no longer matches. ``max_age`` bounds how long a
channel change nobody has fetched yet can go unseen. Bounded: ``limit`` entries, least
recently used dropped first. Only answers are kept (packages and the solved records, or
"does not solve"); transient failures (an unreachable channel) are never cached.

Policies are not part of an answer: a review checks the cached records against the policy
that applies now, so a policy change is never hidden by a cached solve.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from condaops.reconciler.pkgdiff import Pkg

CACHE_LIMIT = 1024  # specs kept (package names and versions, and what policies read: under 1 KiB a package)
MAX_AGE = 3600.0  # seconds an answer is trusted without a solve noticing a channel change

Packages = dict[str, list[Pkg]]  # platform -> locked packages
Records = dict[str, list[Any]]  # platform -> solved conda records, as policies read them (CheckedRecords)


@dataclass(frozen=True, slots=True)
class Solved:
    """One spec's answer: its packages and the conda records policies are checked against,
    or why it does not solve."""

    packages: Packages | None = None
    error: str | None = None
    records: Records | None = None


def channel_state(repodata_dir: Path) -> str:
    """A digest of the repodata content rattler holds in ``repodata_dir`` (empty: "")."""
    entries = []
    for info in sorted(repodata_dir.glob("*.info.json")) if repodata_dir.is_dir() else ():
        try:
            data = json.loads(info.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # being written by a solve right now: that solve will change the state anyway
        entries.append(f"{data.get('url')} {data.get('blake2_hash') or data.get('etag')}")
    return hashlib.sha256("\n".join(entries).encode()).hexdigest() if entries else ""


class SolveCache:
    """Thread-safe; counts ``hits`` (solves avoided) and ``misses`` (solves run)."""

    def __init__(
        self, *, limit: int = CACHE_LIMIT, max_age: float = MAX_AGE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.max_age = max_age
        self.clock = clock
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[str, ...], tuple[float, Solved]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...]) -> Solved | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None or self.clock() - found[0] > self.max_age:
                self._entries.pop(key, None)
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found[1]

    def put(self, key: tuple[str, ...], value: Solved) -> None:
        with self._lock:
            self._entries[key] = (self.clock(), value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.limit:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
