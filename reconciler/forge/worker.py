"""One background thread that talks to forges, so nothing else ever waits for one.

Callers ``submit`` a key (a build id, a change request) with an optional payload and
return at once; the thread calls ``handle(key, payload, superseded)`` for each, in order.
Bounded: beyond ``limit`` waiting items new ones are dropped (and logged), so a dead forge
never eats memory. ``coalesce``: an item whose key is already waiting is not added again
(the handler reads the newest state when it runs). ``superseded()`` tells a handler that
is retrying whether a newer item of the same key is waiting (its retries would be
wasted). ``drain`` waits until everything submitted was handled; ``close`` drains for a
while, then ends backoff waits (``stop``) and the thread.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import partial

log = logging.getLogger("condaops.forge")

Handler = Callable[[Hashable, object, Callable[[], bool]], None]
_STOP = object()


@dataclass(frozen=True, slots=True)
class _Item:
    key: Hashable
    payload: object
    seq: int


class ForgeWorker:
    def __init__(self, name: str, handle: Handler, *, limit: int = 1000, join_timeout: float = 10.0) -> None:
        self.name = name
        self.stop = threading.Event()  # set by close: retry waits end at once
        self._handle = handle
        self._join_timeout = join_timeout
        self._queue: queue.Queue[_Item | object] = queue.Queue(limit)
        self._lock = threading.Condition()
        self._unfinished = 0
        self._latest: dict[Hashable, int] = {}  # key -> seq of its newest item (waiting or running)
        self._waiting: set[Hashable] = set()  # keys with an item not started yet
        self._seq = 0
        self._closed = False
        self._thread: threading.Thread | None = None

    def submit(self, key: Hashable, payload: object = None, *, coalesce: bool = False) -> bool:
        """Hand an item to the thread; False when it was not taken (closed, full, or
        coalesced into one already waiting)."""
        with self._lock:
            if self._closed or (coalesce and key in self._waiting):
                return False
            self._seq += 1
            item = _Item(key, payload, self._seq)
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                log.warning("%s_dropped key=%s reason=QueueFull", self.name, key)
                return False
            self._latest[key] = item.seq
            self._waiting.add(key)
            self._unfinished += 1
            if self._thread is None:  # started lazily: no thread unless there is work
                self._thread = threading.Thread(target=self._run, name=f"condaops-{self.name}", daemon=True)
                self._thread.start()
            return True

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every submitted item was handled; False if ``timeout`` came first."""
        with self._lock:
            return self._lock.wait_for(lambda: self._unfinished == 0, timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Take no more items, handle what waits for up to ``timeout`` seconds, then stop."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is None or self.stop.is_set():
            return
        if not self.drain(timeout):
            log.warning("%s_abandoned items=%d: the forge did not answer in time", self.name, self._unfinished)
        self.stop.set()  # ends backoff waits; a request in flight ends at its timeout
        with contextlib.suppress(queue.Full):  # the thread skips what is left once stopped
            self._queue.put(_STOP, timeout=self._join_timeout)
        thread.join(timeout=1.0)

    def _run(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            assert isinstance(item, _Item)
            with self._lock:
                if self._latest.get(item.key) == item.seq:
                    self._waiting.discard(item.key)
            try:
                if not self.stop.is_set():
                    self._handle(item.key, item.payload, partial(self._superseded, item))
            except Exception:  # the thread must outlive any one item
                log.exception("%s_failed key=%s", self.name, item.key)
            finally:
                self._done(item)

    def _done(self, item: _Item) -> None:
        with self._lock:
            if self._latest.get(item.key) == item.seq:
                del self._latest[item.key]
            self._unfinished -= 1
            self._lock.notify_all()

    def _superseded(self, item: _Item) -> bool:
        with self._lock:
            return self._latest.get(item.key, item.seq) != item.seq
