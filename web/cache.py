"""Small thread-safe caches shared by the web parts: a value reloaded at most every
``ttl`` seconds, a bounded least-recently-used map, and one whose values are reused only
while the data they were made from is unchanged."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from condaops.reconciler.lru import LRU

__all__ = ["LRU", "Cached", "Stamped"]

log = logging.getLogger("condaops.web")

T = TypeVar("T")
K = TypeVar("K")


class Cached(Generic[T]):
    """A value reloaded at most every ``ttl`` seconds. Only the first load is waited for:
    after that, a stale value is returned at once while one background thread loads the
    next, so a reload never holds up a request, even one served on the event loop
    (``web.placement``). With ``stamp`` (a cheap read of what the value depends on), the
    background thread reads the stamp first and loads again only when it changed. A failed
    reload keeps the previous value and is tried again after ``ttl``; ``ttl`` <= 0 loads on
    every call. ``current()`` also names the load the value comes from (a number that
    grows with every load that brought a new value), for what is derived from it."""

    def __init__(
        self,
        load: Callable[[], T],
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        stamp: Callable[[], Hashable] | None = None,
    ) -> None:
        self._load = load
        self._stamp = stamp or (lambda: None)
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()  # held by the one load in progress
        self._value: _Loaded[T] | None = None
        self._loads = itertools.count(1)

    @property
    def loaded(self) -> bool:
        """Whether a value is there (``get`` answers without waiting for a first load)."""
        return self._value is not None or self.ttl <= 0

    def get(self) -> T:
        return self.current()[0]

    def current(self) -> tuple[T, int]:
        """The value and which load it comes from (as ``get``)."""
        if self.ttl <= 0:
            return self._load(), next(self._loads)
        current = self._value
        if current is None:
            with self._lock:
                if self._value is None:
                    stamp = self._stamp()  # read before the value: the value is never older than it
                    self._value = _Loaded(self._load(), self._clock(), stamp, next(self._loads))
                return self._value.value, self._value.load
        if self._clock() - current.at >= self.ttl and self._lock.acquire(blocking=False):
            threading.Thread(target=self._reload, args=(current,), name="condaops-cache", daemon=True).start()
        return current.value, current.load

    def _reload(self, previous: _Loaded[T]) -> None:
        value, stamp, load = previous.value, previous.stamp, previous.load
        try:
            stamp = self._stamp()
            if stamp is None or stamp != previous.stamp:  # no stamp: always load
                value, load = self._load(), next(self._loads)
        except Exception:  # the previous value stays; the next reload is due after ttl
            log.warning("cache_reload_failed", exc_info=True)
            stamp, load = previous.stamp, previous.load
        finally:
            self._value = _Loaded(value, self._clock(), stamp, load)
            self._lock.release()


@dataclass(frozen=True, slots=True)
class _Loaded(Generic[T]):
    value: T
    at: float  # clock() when loaded (or found unchanged)
    stamp: Hashable
    load: int  # which load brought the value


class Stamped(Generic[K, T]):
    """Values kept with the stamp of the data they were made from (a version read before
    making them), reused only while the stamp read now is the same; ``size`` 0 keeps none
    (and reads no stamp)."""

    def __init__(self, size: int) -> None:
        self._items: LRU[K, tuple[Hashable, T]] | None = LRU(size) if size > 0 else None

    def get(self, key: K, read_stamp: Callable[[], Hashable], produce: Callable[[], T]) -> T:
        if self._items is None:
            return produce()
        stamp = read_stamp()  # before produce(): what it makes is never older than the stamp
        hit = self._items.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        value = produce()
        self._items.put(key, (stamp, value))
        return value
