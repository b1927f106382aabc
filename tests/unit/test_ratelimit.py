"""The per-client token bucket behind dynamic.rate."""

from __future__ import annotations

from condaops.registry.ratelimit import RateLimiter
from tests.support.clock import Clock


def test_a_burst_then_one_per_interval() -> None:
    clock = Clock(1000.0)
    limiter = RateLimiter(6, clock=clock)  # 6 a minute: one every 10 s
    assert [limiter.take("a") for _ in range(6)] == [None] * 6
    wait = limiter.take("a")
    assert wait is not None and 9.9 < wait <= 10.0
    assert limiter.take("b") is None  # clients are counted apart
    clock.now += 10
    assert limiter.take("a") is None
    assert limiter.take("a") is not None


def test_the_table_stays_bounded() -> None:
    limiter = RateLimiter(1, clock=Clock(1000.0), max_clients=3)
    for client in "abcdef":
        limiter.take(client)
    assert len(limiter._buckets) == 3
    assert limiter.take("a") is None  # forgotten: starts with a full bucket
