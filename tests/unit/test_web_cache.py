"""The web caches: a reloaded value, a small LRU, values kept by stamp, the store's measured size."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from condaops.web.cache import LRU, Cached, Stamped
from condaops.web.ops import DiskUsage, disk_usage


class Tick:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def until(check, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_cached_reloads_in_the_background_after_its_ttl() -> None:
    clock, loads = Tick(), []
    cached = Cached(lambda: loads.append(1) or len(loads), ttl=2.0, clock=clock)

    assert cached.get() == 1 and cached.get() == 1  # the first load is waited for
    clock.now = 1.9
    assert cached.get() == 1 and len(loads) == 1
    clock.now = 2.0
    assert cached.get() == 1  # stale: returned at once, the next value loads meanwhile
    assert until(lambda: cached.get() == 2) and len(loads) == 2


def test_cached_never_holds_a_caller_up_behind_a_reload() -> None:
    clock = Tick()
    started, release = threading.Event(), threading.Event()
    values = iter([1, 2])

    def load() -> int:
        value = next(values)
        if value == 2:
            started.set()
            release.wait(5)
        return value

    cached = Cached(load, ttl=1.0, clock=clock)
    assert cached.get() == 1
    clock.now = 5.0
    assert cached.get() == 1 and started.wait(5)
    assert [cached.get() for _ in range(5)] == [1] * 5  # one reload at a time, nobody waits for it
    release.set()
    assert until(lambda: cached.get() == 2)


def test_a_failed_reload_keeps_the_previous_value_and_is_retried_after_the_ttl() -> None:
    clock, calls = Tick(), []

    def load() -> int:
        calls.append(clock.now)
        if len(calls) == 2:
            raise OSError("database is locked")
        return len(calls)

    cached = Cached(load, ttl=1.0, clock=clock)
    assert cached.get() == 1
    clock.now = 1.0
    cached.get()
    assert until(lambda: len(calls) == 2) and until(lambda: not cached._lock.locked())
    assert cached.get() == 1 and len(calls) == 2  # kept, and not retried before the ttl
    clock.now = 2.0
    cached.get()
    assert until(lambda: cached.get() == 3)


def test_cached_with_a_stamp_loads_again_only_when_the_stamp_moved() -> None:
    clock, loads, stamp = Tick(), [], [1]
    cached = Cached(lambda: loads.append(1) or len(loads), ttl=1.0, clock=clock, stamp=lambda: stamp[0])
    assert cached.get() == 1
    for now in (1.0, 2.0, 3.0):  # checked every ttl, unchanged: never loaded again
        clock.now = now
        cached.get()
        assert until(lambda: not cached._lock.locked())
    assert cached.get() == 1 and len(loads) == 1
    assert cached.current() == (1, 1)  # the load it comes from: unchanged while nothing moved
    stamp[0] = 2
    clock.now = 4.0
    cached.get()
    assert until(lambda: cached.get() == 2) and len(loads) == 2
    assert cached.current() == (2, 2)


def test_cached_with_no_ttl_loads_every_time() -> None:
    loads: list[int] = []
    cached = Cached(lambda: loads.append(1) or len(loads), ttl=0)
    assert [cached.get() for _ in range(3)] == [1, 2, 3]


def test_cached_says_whether_a_get_would_wait_for_the_first_load() -> None:
    cached = Cached(lambda: [1], ttl=60)
    assert not cached.loaded
    assert cached.get() == [1] and cached.loaded
    assert Cached(lambda: [1], ttl=0).loaded  # no ttl: every get loads, none waits for another


def test_lru_drops_the_least_recently_used() -> None:
    lru: LRU[str, int] = LRU(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1
    lru.put("c", 3)
    assert (lru.get("a"), lru.get("b"), lru.get("c")) == (1, None, 3)


def test_stamped_reuses_a_value_only_while_its_stamp_is_unchanged() -> None:
    stamp, made, order = ["v1"], [], []
    kept: Stamped[str, str] = Stamped(2)

    def read() -> str:
        order.append("stamp")
        return stamp[0]

    def make(text: str):  # type: ignore[no-untyped-def]
        def produce() -> str:
            order.append("make")
            made.append(text)
            return f"{text}@{stamp[0]}"

        return produce

    assert kept.get("a", read, make("a")) == "a@v1"
    assert order == ["stamp", "make"]  # the stamp is read first: a value is never older than it
    assert kept.get("a", read, make("a")) == "a@v1" and made == ["a"]
    stamp[0] = "v2"
    assert kept.get("a", read, make("a")) == "a@v2" and made == ["a", "a"]
    kept.get("b", read, make("b"))
    kept.get("c", read, make("c"))  # bounded: "a" was the least recently used
    assert kept.get("a", read, make("a")) == "a@v2" and made == ["a", "a", "b", "c", "a"]


def test_stamped_of_size_zero_keeps_nothing_and_reads_no_stamp() -> None:
    kept: Stamped[str, int] = Stamped(0)
    calls = []
    for _ in range(3):
        kept.get("a", lambda: calls.append("stamp") or 1, lambda: calls.append("make") or 2)
    assert calls == ["make"] * 3


def test_disk_usage_counts_hardlinks_once_and_skips_symlinks(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    (tmp_path / "env").mkdir()
    blob = tmp_path / "cache" / "blob"
    blob.write_bytes(os.urandom(64 * 1024))
    os.link(blob, tmp_path / "env" / "blob")
    (tmp_path / "env" / "link").symlink_to(tmp_path / "cache")
    single = disk_usage(tmp_path)

    (tmp_path / "other").write_bytes(os.urandom(64 * 1024))

    assert 64 * 1024 <= single < 2 * 64 * 1024
    assert disk_usage(tmp_path) >= single + 64 * 1024


def test_disk_usage_is_measured_at_most_every_interval(tmp_path: Path) -> None:
    clock, calls = Tick(), []

    def measure(root: Path) -> int:
        calls.append(root)
        return 42 * len(calls)

    usage = DiskUsage(tmp_path, interval=300, clock=clock, measure=measure)
    assert usage.wait() == 42
    clock.now = 299
    assert usage.value() == 42 and len(calls) == 1
    clock.now = 300
    assert usage.wait() == 84 and len(calls) == 2
