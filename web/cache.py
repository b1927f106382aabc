"""Two small thread-safe caches shared by the web parts: a value reloaded at most every
``ttl`` seconds, and a bounded least-recently-used map."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
K = TypeVar("K")


class Cached(Generic[T]):
    """A value reloaded at most every ``ttl`` seconds; one loader at a time, and while it
    loads, other callers get the previous value instead of waiting."""

    def __init__(self, load: Callable[[], T], ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._load = load
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._value: tuple[T, float] | None = None

    def get(self) -> T:
        current = self._value
        if current is not None and self._clock() - current[1] < self.ttl:
            return current[0]
        if current is not None and not self._lock.acquire(blocking=False):
            return current[0]  # someone is reloading: serve the previous value meanwhile
        if current is None:
            self._lock.acquire()
        try:
            current = self._value
            if current is not None and self._clock() - current[1] < self.ttl:
                return current[0]
            value = self._load()
            self._value = (value, self._clock())
            return value
        finally:
            self._lock.release()


class LRU(Generic[K, T]):
    """A small thread-safe least-recently-used map."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, T] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> T | None:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: K, value: T) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
