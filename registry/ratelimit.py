"""A per-client rate limit: a token bucket per client, in memory, bounded in size.

Each client may take ``per_minute`` tokens a minute, at most ``per_minute`` at once (a
burst); an empty bucket answers how many seconds until the next token. The table keeps
the ``max_clients`` most recently seen clients: one that is forgotten starts over with a
full bucket, which errs towards letting a request through, never towards growing.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self, per_minute: int, *, clock: Callable[[], float] = time.monotonic, max_clients: int = 10_000
    ) -> None:
        self.capacity = float(per_minute)
        self.refill = per_minute / 60.0  # tokens per second
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, client: str) -> float | None:
        """Take a token for ``client``: None when allowed, else the seconds to wait."""
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.pop(client, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.refill)
            wait = None if tokens >= 1 else (1 - tokens) / self.refill
            self._buckets[client] = (tokens - 1 if wait is None else tokens, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        return wait
