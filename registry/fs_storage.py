"""The filesystem storage backend: keys are files under one root folder.

Atomic writes are a temporary file in the destination's folder, flushed to disk, then
renamed over the destination (rename within one filesystem is atomic). Received data waits
in ``<root>/.scratch`` so storing it is a rename, not a copy.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from condaops.registry.errors import StorageError, StorageFullError
from condaops.registry.storage import CHUNK_SIZE, Storage, disk_free

FILE_MODE = 0o644  # mkstemp makes 0600; registry content is readable by the host's users


class FilesystemStorage(Storage):
    """Registry content in a local (or shared) folder."""

    def __init__(self, root: Path, *, chunk_size: int = CHUNK_SIZE) -> None:
        self.root = Path(root)
        self.scratch = self.root / ".scratch"
        self.chunk_size = chunk_size

    def _path(self, key: str) -> Path:
        return self.root / key

    def size(self, key: str) -> int | None:
        try:
            return os.stat(self._path(key)).st_size
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _failed("read", key, exc) from exc

    def read(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _failed("read", key, exc) from exc

    def write(self, key: str, data: bytes) -> None:
        with self._atomic(key) as file:
            file.write(data)

    def put_file(self, key: str, source: Path) -> None:
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if os.stat(source).st_dev == os.stat(target.parent).st_dev:
                _fsync(source)
                os.chmod(source, FILE_MODE)
                os.replace(source, target)
                return
            with open(source, "rb") as src, self._atomic(key) as dst:
                shutil.copyfileobj(src, dst, self.chunk_size)
            os.unlink(source)
        except OSError as exc:
            raise _failed("write", key, exc) from exc

    def move(self, source_key: str, key: str) -> None:
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._path(source_key), target)
        except OSError as exc:
            raise _failed("move", source_key, exc) from exc

    def concat(self, key: str, parts: Sequence[str], algorithm: str) -> str:
        hasher = hashlib.new(algorithm)
        with self._atomic(key) as out:
            for part in parts:
                with open(self._path(part), "rb") as src:
                    while chunk := src.read(self.chunk_size):
                        hasher.update(chunk)
                        out.write(chunk)
        return hasher.hexdigest()

    def stream(self, key: str, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        try:
            fd = os.open(self._path(key), os.O_RDONLY)
        except FileNotFoundError:
            raise KeyError(key) from None
        except OSError as exc:
            raise _failed("read", key, exc) from exc
        try:
            remaining = os.fstat(fd).st_size - start if length is None else length
            offset = start
            while remaining > 0:
                # pread: no shared file position, so no seek per chunk
                chunk = os.pread(fd, min(self.chunk_size, remaining), offset)
                if not chunk:
                    break  # the file shrank: stop rather than spin (blobs never change)
                offset += len(chunk)
                remaining -= len(chunk)
                yield chunk
        finally:
            os.close(fd)

    def list(self, prefix: str) -> list[str]:
        try:
            return sorted(os.listdir(self._path(prefix)))
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise _failed("list", prefix, exc) from exc

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise _failed("delete", key, exc) from exc

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self._path(prefix), ignore_errors=True)

    def free_space(self) -> int | None:
        free = [f for f in (disk_free(self.root), disk_free(self.scratch)) if f is not None]
        return min(free) if free else None

    def local_path(self, key: str) -> Path | None:
        path = self._path(key)
        return path if path.is_file() else None

    def _atomic(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]:
        return _atomic_file(self._path(key))


@contextlib.contextmanager
def _atomic_file(target: Path) -> Iterator[BinaryIO]:
    """Write to a temporary file beside ``target``; rename it over ``target`` on success."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    except OSError as exc:
        raise _failed("write", str(target), exc) from exc
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())  # the content is on disk before its name is
            os.fchmod(file.fileno(), FILE_MODE)
        os.replace(temp, target)
    except OSError as exc:
        raise _failed("write", str(target), exc) from exc
    finally:
        temp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _failed(action: str, key: str, exc: OSError) -> StorageError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFullError(f"registry storage: no space left to {action} '{key}'; free some space (condaops gc)")
    return StorageError(
        f"registry storage: cannot {action} '{key}' ({exc.strerror or exc}); check the disk and permissions"
    )
