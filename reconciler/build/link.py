"""The stable environment path: a symlink swapped atomically.

A new link is created beside the old one under a temporary name and renamed over it
(``rename(2)`` replaces a symlink atomically), so readers see either the old build or
the new one, never a missing path. Link targets are relative, so a store can be moved.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def swap_link(link: Path, target: Path) -> None:
    """Point ``link`` at ``target`` atomically (creating parent folders as needed)."""
    link.parent.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(target, link.parent)
    tmp = link.parent / f".{link.name}.{secrets.token_hex(4)}.tmp"
    os.symlink(rel, tmp)
    try:
        os.replace(tmp, link)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_link(link: Path) -> Path | None:
    """The absolute target of ``link``, or None if there is no link."""
    try:
        rel = os.readlink(link)
    except (FileNotFoundError, OSError):
        return None
    return (link.parent / rel).resolve()


def remove_link(link: Path) -> bool:
    """Remove the link (never its target). True if a link was removed."""
    if link.is_symlink():
        link.unlink()
        return True
    return False
