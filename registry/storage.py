"""The one small interface registry content is kept behind (``backends`` opens one).

Keys are relative, ``/``-separated paths (``blobs/sha256/ab/ab12...``); the registry's layout
(``condaops.registry.layout``) decides them, a backend only stores bytes under them. Every
write is atomic: a reader sees the old object or the whole new one, never a part. Large
data never passes through memory: it is moved or uploaded from a local file, and read back
as a stream of chunks.

Backends: ``FilesystemStorage`` (default, ``<store>/registry``) and ``S3Storage``
(S3-compatible object storage through boto3; downloads may be presigned redirects).
"""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path

CHUNK_SIZE = 1024 * 1024  # streaming unit: large enough that per-chunk overhead vanishes


class Storage(ABC):
    """Bytes under keys; the registry's only way to reach disk or object storage.

    ``scratch`` is a local folder for data being received; ``put_file`` from there is a
    rename on the filesystem backend.
    """

    scratch: Path

    @abstractmethod
    def size(self, key: str) -> int | None:
        """The object's size in bytes, or None if there is none."""

    @abstractmethod
    def read(self, key: str) -> bytes | None:
        """A small object's content (manifests, links), or None if there is none."""

    @abstractmethod
    def write(self, key: str, data: bytes) -> None:
        """Create or replace a small object atomically."""

    @abstractmethod
    def put_file(self, key: str, source: Path) -> None:
        """Store a local file under ``key`` atomically; ``source`` is consumed (moved away)."""

    @abstractmethod
    def move(self, source_key: str, key: str) -> None:
        """Rename an object (replacing ``key`` atomically)."""

    @abstractmethod
    def concat(self, key: str, parts: Sequence[str], algorithm: str) -> str:
        """Store the parts one after another under ``key``; return the hex digest of it all."""

    @abstractmethod
    def stream(self, key: str, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        """The object's bytes from ``start``, ``length`` of them (all if None), in chunks.

        Raises ``KeyError`` (on the first ``next``) when there is no such object.
        """

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """The names directly under ``prefix`` (objects and sub-folders), sorted."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object; missing is fine."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> None:
        """Remove everything under ``prefix``; missing is fine."""

    def download_url(self, key: str) -> str | None:
        """A URL clients may be redirected to for ``key``; None means stream it ourselves."""
        return None

    def local_path(self, key: str) -> Path | None:
        """The local file holding ``key`` when there is one (the filesystem backend)."""
        return None

    def free_space(self) -> int | None:
        """Bytes free where data is written; None when unknown. The default is the local
        disk received data waits on (``scratch``): object storage has no such figure."""
        return disk_free(self.scratch)

    def check(self) -> None:  # noqa: B027 - optional: most backends have nothing to check
        """Fail early with ``StorageConfigError`` when the storage cannot be used."""

    def close(self) -> None:  # noqa: B027 - optional: most backends hold nothing open
        """Release clients and connections."""


def disk_free(path: Path) -> int | None:
    """Free bytes on the file system holding ``path`` (or its nearest existing parent)."""
    for candidate in (path, *path.parents):
        try:
            return shutil.disk_usage(candidate).free
        except FileNotFoundError:
            continue
        except OSError:
            return None
    return None
