"""The web caches: a reloaded value, a small LRU, the store's measured size."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from condaops.web.cache import LRU, Cached
from condaops.web.ops import DiskUsage, disk_usage


class Tick:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_cached_reloads_after_its_ttl() -> None:
    clock, loads = Tick(), []
    cached = Cached(lambda: loads.append(1) or len(loads), ttl=2.0, clock=clock)

    assert cached.get() == 1 and cached.get() == 1
    clock.now = 1.9
    assert cached.get() == 1
    clock.now = 2.0
    assert cached.get() == 2 and len(loads) == 2


def test_cached_serves_the_old_value_while_one_caller_reloads() -> None:
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
    results: list[int] = []
    reloader = threading.Thread(target=lambda: results.append(cached.get()))
    reloader.start()
    assert started.wait(5)
    assert cached.get() == 1  # not blocked behind the reload
    release.set()
    reloader.join(5)
    assert results == [2] and cached.get() == 2


def test_lru_drops_the_least_recently_used() -> None:
    lru: LRU[str, int] = LRU(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1
    lru.put("c", 3)
    assert (lru.get("a"), lru.get("b"), lru.get("c")) == (1, None, 3)


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
