"""Which filesystem a path lives on, and whether inotify can see changes made there.

inotify only reports changes made through the local kernel: on network and cluster
filesystems (NFS, SMB, Lustre, GPFS, CephFS, sshfs, 9p...) edits made on another host
never arrive, so the watcher polls there instead.

``parse_mountinfo`` and ``mount_of`` are pure and tested with sample text;
``filesystem_of`` reads ``/proc/self/mountinfo`` (Linux only; elsewhere it answers None,
and the watcher keeps the platform's native backend).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")

NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "ncpfs",
        "afs",
        "coda",
        "lustre",
        "gpfs",
        "cephfs",
        "ceph",
        "glusterfs",
        "beegfs",
        "panfs",
        "wekafs",
        "ocfs2",
        "gfs2",
        "9p",
        "virtiofs",
        "vboxsf",
        "vmhgfs",
        "sshfs",
        "s3fs",
        "rclone",
        "gcsfuse",
        "juicefs",
        "vmhgfs-fuse",
    }
)

_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True, slots=True)
class Mount:
    """One line of mountinfo: where a filesystem is mounted and what it is."""

    mount_point: str
    fstype: str
    source: str


def parse_mountinfo(text: str) -> list[Mount]:
    """Parse ``/proc/<pid>/mountinfo`` text; malformed lines are skipped.

    Format: ``id parent maj:min root mount-point options [optional...] - fstype source
    super-options``; spaces and other odd bytes in paths are octal-escaped (``\\040``).
    """
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        try:
            sep = fields.index("-", 6)
        except ValueError:
            continue
        if len(fields) < sep + 3:
            continue
        mounts.append(Mount(_unescape(fields[4]), fields[sep + 1], _unescape(fields[sep + 2])))
    return mounts


def mount_of(path: str, mounts: Sequence[Mount]) -> Mount | None:
    """The mount holding the absolute, resolved ``path``: the longest mount-point prefix.

    Among mounts on the same point, the last listed wins (it is the one on top).
    """
    best: Mount | None = None
    for mount in mounts:
        if _contains(mount.mount_point, path) and (best is None or len(mount.mount_point) >= len(best.mount_point)):
            best = mount
    return best


def is_network_fstype(fstype: str) -> bool:
    """Whether inotify misses changes made elsewhere on a filesystem of this type."""
    kind = fstype.lower()
    if kind.startswith("fuse."):
        kind = kind[len("fuse.") :]
    return kind in NETWORK_FILESYSTEMS


def filesystem_of(path: Path, *, mountinfo: Path = MOUNTINFO) -> Mount | None:
    """The mount holding ``path`` (or its nearest existing parent), None if unknown."""
    try:
        text = mountinfo.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return None
    return mount_of(os.path.realpath(_existing(path)), parse_mountinfo(text))


def is_network_path(path: Path, *, mountinfo: Path = MOUNTINFO) -> bool:
    """Whether ``path`` is on a network or cluster filesystem (False when unknown)."""
    mount = filesystem_of(path, mountinfo=mountinfo)
    return mount is not None and is_network_fstype(mount.fstype)


def _existing(path: Path) -> Path:
    # A source root may not exist yet; its parent's filesystem is where it will appear.
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _contains(mount_point: str, path: str) -> bool:
    if mount_point == "/":
        return path.startswith("/")
    return path == mount_point or path.startswith(mount_point.rstrip("/") + "/")


def _unescape(field: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)
