"""What the forge publishers share (reviews on pull requests, update pull requests): the
sources they serve, one background thread (``ForgeWorker``), the retrying sender, and the
waits a forge asked for, per ``(source, name)`` key.

Callers never block: ``submit`` hands a key to the thread unless the forge asked to wait
for it; ``catch_up``, called on every pass, submits again what is recorded as unpublished
once its wait is over. A subclass says what is unpublished (``unpublished``) and what the
thread does with a key (``handle``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Hashable, Iterable, Mapping

from condaops.config import SourceSettings
from condaops.reconciler.forge.client import Retrying, RetryPolicy
from condaops.reconciler.forge.worker import ForgeWorker

Key = tuple[str, str]  # (source, ref or branch)
RETRY_LATER = 60.0  # seconds before ``catch_up`` tries a failed publication again (unless told otherwise)


class ForgePublisher:
    def __init__(
        self,
        name: str,
        sources: Iterable[SourceSettings],
        *,
        logger: logging.Logger,
        environ: Mapping[str, str] | None,
        policy: RetryPolicy | None,
        clock: Callable[[], float],
    ) -> None:
        self.sources = {s.name: s for s in sources}
        self._environ = os.environ if environ is None else environ
        self._clock = clock
        self._not_before: dict[Key, float] = {}
        self.worker = ForgeWorker(name, self._handle)
        self.sender = Retrying(policy or RetryPolicy(), stop=self.worker.stop, logger=logger)

    @property
    def enabled(self) -> bool:
        return bool(self.sources)

    def submit(self, source: str, name: str) -> None:
        """Hand ``(source, name)`` to the thread (never blocks); while the forge asked to
        wait, ``catch_up`` submits it later instead."""
        if source in self.sources and not self.waiting((source, name)):
            self.worker.submit((source, name), coalesce=True)

    def catch_up(self) -> None:
        """Submit what the forge has not been told yet (after a failure or a restart, or
        changed by another process); called on every pass."""
        now = self._clock()
        for key in [k for k, until in self._not_before.items() if until <= now]:
            del self._not_before[key]  # bounded: only waits still running are kept
        for key in self.unpublished():
            if self._not_before.get(key, 0.0) <= now:
                self.worker.submit(key, coalesce=True)

    def drain(self, timeout: float | None = None) -> bool:
        return self.worker.drain(timeout)

    def close(self, timeout: float = 10.0) -> None:
        self.worker.close(timeout)

    def waiting(self, key: Key) -> bool:
        """Whether the forge asked to wait before ``key`` is tried again."""
        return self._not_before.get(key, 0.0) > self._clock()

    def wait(self, key: Key, seconds: float | None) -> float:
        """Try ``key`` again no sooner than ``seconds`` from now (``RETRY_LATER`` if None);
        returns the wait."""
        wait = seconds or RETRY_LATER
        self._not_before[key] = self._clock() + wait
        return wait

    # --- what a publisher defines -----------------------------------------------------------

    def unpublished(self) -> Iterable[Key]:
        """The keys recorded as not yet told to the forge."""
        raise NotImplementedError

    def handle(self, key: Key) -> None:
        """Publish ``key``'s newest recorded state (on the background thread)."""
        raise NotImplementedError

    def _handle(self, key: Hashable, _payload: object, _superseded: Callable[[], bool]) -> None:
        assert isinstance(key, tuple)  # keys are (source, name): see submit
        source, name = str(key[0]), str(key[1])
        if self.waiting((source, name)):
            return  # submitted before the forge asked to wait: ``catch_up`` submits it later
        self.handle((source, name))
