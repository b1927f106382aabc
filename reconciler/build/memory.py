"""Giving memory back to the system after a build or a publish job.

A build (rattler's install) and a publish job (reading files, compressing layers) each
allocate tens of MiB in the worker thread that runs them. glibc's allocator keeps what
such threads free in their own arenas, so a long-running ``serve`` that ran ten builds at
once holds on to most of that peak long after (measured: 363–396 MiB settled against 138
MiB idle). ``malloc_trim(0)`` returns the free pages of every arena to the system.

It is a no-op where the C library has no ``malloc_trim`` (musl, macOS). The call walks
the arenas once (a few milliseconds); it runs after each job, never during one.

``limit_arenas`` caps glibc's malloc arenas (``M_ARENA_MAX``; glibc's default is 8 per
core): each worker thread that meets contention gets an arena of its own and keeps its
fragments there. Measured with ``benchmarks/bench_memory.py`` (10 builds at once with
publishing): peak 353 → 279 MiB and settled 345 → 217 MiB with two arenas. A
``MALLOC_ARENA_MAX`` set by the operator wins (glibc reads it at start).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger("condaops.memory")
M_ARENA_MAX = -8  # mallopt parameter (malloc.h)
ARENAS = 2
_lock = threading.Lock()
_trim: Callable[[int], int] | None = None
_loaded = False


def _libc_function(function: str) -> Callable[..., int] | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return getattr(libc, function, None) if libc is not None else None


def _load() -> Callable[[int], int] | None:
    return _libc_function("malloc_trim")


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas for the threads created from now on (call at start,
    before the worker threads). False where it does not apply (set by the operator, or
    not glibc)."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    mallopt = _libc_function("mallopt")
    if mallopt is None or _load() is None:  # mallopt without malloc_trim: not glibc's allocator
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))


def release_memory() -> None:
    """Return the allocator's free pages to the system (glibc ``malloc_trim``)."""
    global _trim, _loaded
    with _lock:
        if not _loaded:
            _trim, _loaded = _load(), True
        if _trim is None:
            return
        try:
            _trim(0)
        except Exception:  # never let housekeeping fail a job
            log.debug("malloc_trim_failed", exc_info=True)
