"""A small file system for tests that fill the disk: a size-limited tmpfs mounted by the test.

Mounting needs root (and the right to mount): without it the test is skipped with the
reason, or fails when ``CI=true``, where the suite runs as root.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.support.ci import skip_or_fail


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` (``4m``) at ``path`` for the block; yields ``path``."""
    reason = None
    if os.geteuid() != 0:
        reason = "mounting a size-limited tmpfs needs root"
    path.mkdir(parents=True, exist_ok=True)
    if reason is None:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
            capture_output=True,
            text=True,
        )
        if mounted.returncode != 0:
            reason = f"mount -t tmpfs failed: {mounted.stderr.strip()}"
    if reason is not None:
        skip_or_fail(reason)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def resize_tmpfs(path: Path, size: str) -> None:
    """Give a tmpfs mounted by ``small_tmpfs`` another size (its files stay)."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True, capture_output=True)
