"""Disk space for builds: a floor checked before writing, and a full disk recognised.

A build (and a dynamic image) refuses to start installing while the store's disk has
less than ``min_free_space`` free, and a build that runs out of space on the way —
rattler, uv or the lockfile writers hitting ``ENOSPC`` — fails with the reason
``DiskFull``. Both are transient: the build is retried with backoff once space is freed
(``condaops gc``), and the runner removes the half prefix as for any failure.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from condaops.config.checks import format_size
from condaops.reconciler.errors import BuildError, TransientError
from condaops.reconciler.reasons import Reason

DISK_FULL = Reason.DISK_FULL  # the store's disk is full or below min_free_space: retried later
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# How a full disk reads in messages of tools that do not keep the OSError (rattler, uv).
_FULL_TEXTS = ("no space left on device", "os error 28", "disk quota exceeded", "errno 28")


class DiskFullError(BuildError, TransientError):
    """The disk holding the store is full, or below ``min_free_space``."""

    reason = DISK_FULL
    retryable = True


def free_bytes(path: Path) -> int | None:
    """Free bytes on the file system holding ``path`` (or its nearest existing parent)."""
    for candidate in (path, *path.parents):
        try:
            return shutil.disk_usage(candidate).free
        except FileNotFoundError:
            continue
        except OSError:
            return None
    return None


def require_free_space(path: Path, floor: int, label: str) -> None:
    """``DiskFullError`` when the disk holding ``path`` has less than ``floor`` bytes free."""
    free = free_bytes(path)
    if free is not None and free < floor:
        raise DiskFullError(
            f"{label}: the disk holding {path} has {format_size(free)} free, below min_free_space "
            f"({format_size(floor)}); free space (condaops gc) and it is retried"
        )


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc``, or anything it was raised from, says the disk is full."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _FULL_ERRNOS:
            return True
        text = str(current).lower()
        if any(marker in text for marker in _FULL_TEXTS):
            return True
        current = current.__cause__ or current.__context__
    return False
