"""The one test clock: time moves only when a test says so (never ``sleep``).

``Clock(start)`` is a callable the code under test takes as its clock. ``start`` is a
``datetime`` (wall-clock code: the recorder, plans, the site) or a number of seconds
(monotonic code: source backoff, rate limits); ``advance(seconds)`` moves it, and
``step`` moves it by itself on every call (code that must see time pass between reads).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Generic, TypeVar

T = TypeVar("T", datetime, float)
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


class Clock(Generic[T]):
    """A settable clock of ``datetime`` or ``float`` seconds (see module doc)."""

    def __init__(self, start: T, *, step: float = 0.0) -> None:
        self.now: T = start
        self.step = step

    def __call__(self) -> T:
        if self.step:
            self.advance(self.step)
        return self.now

    def advance(self, seconds: float) -> None:
        if isinstance(self.now, datetime):
            self.now = self.now + timedelta(seconds=seconds)
        else:
            self.now = self.now + seconds
