"""Giving freed memory back to the system after a job (glibc ``malloc_trim``)."""

from __future__ import annotations

import ctypes.util
import threading
from pathlib import Path

import pytest

from condaops.reconciler.build.memory import release_memory


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads /proc")
def test_memory_freed_in_a_worker_thread_goes_back_to_the_system() -> None:
    glibc = "libc.so" in (ctypes.util.find_library("c") or "")
    kept: list[bytes] = []

    def churn() -> None:  # ~100 MB of blocks in this thread's arena; a few stay (fragmentation)
        blocks = [bytes(1000) + bytes([i % 256]) for i in range(100_000)]
        kept.extend(blocks[::200])
        del blocks

    thread = threading.Thread(target=churn)
    thread.start()
    thread.join()
    before = _rss_kib()
    release_memory()
    release_memory()  # again: harmless
    if glibc:  # without the trim, the freed pages between the kept blocks stay resident
        assert _rss_kib() < before - 50_000
    assert len(kept) == 500


def test_arenas_are_capped_unless_the_operator_chose(monkeypatch: pytest.MonkeyPatch) -> None:
    from condaops.reconciler.build.memory import limit_arenas

    glibc = "libc.so" in (ctypes.util.find_library("c") or "")
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert limit_arenas() is glibc
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_arenas() is False
