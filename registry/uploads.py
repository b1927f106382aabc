"""Blob upload sessions kept on storage, so a chunked upload survives across requests,
processes and (with S3) hosts.

A session is ``_uploads/<id>/state.json`` (repository, start time, the chunks' sizes and
sha256) plus one object per chunk. Each request body is first received into a local file
and hashed on the way (``Spooled``); finishing a one-chunk upload therefore needs no second
read: the chunk's hash is compared with the digest and the chunk renamed into place.
Several chunks are joined (and hashed) by the storage. A blob is only ever stored under a
digest its bytes were checked against.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from condaops.registry.errors import (
    BLOB_UPLOAD_INVALID,
    BLOB_UPLOAD_UNKNOWN,
    DIGEST_INVALID,
    RegistryError,
    StorageError,
    StorageFullError,
)
from condaops.registry.layout import UPLOADS, blob_key, upload_key
from condaops.registry.protocol import Digest
from condaops.registry.storage import CHUNK_SIZE, Storage


@dataclass(frozen=True)
class Spooled:
    """Data received into a local file, with its size and sha256 (hex)."""

    path: Path
    size: int
    sha256: str


@dataclass
class _Part:
    size: int
    sha256: str


@dataclass
class _State:
    name: str
    started: float
    parts: list[_Part] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(p.size for p in self.parts)


class SpoolWriter:
    """Receives data into a new file in ``scratch``, hashing it on the way (blocking)."""

    def __init__(self, scratch: Path) -> None:
        try:
            scratch.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=scratch, prefix="body-")
        except OSError as exc:
            raise _scratch_failed(scratch, exc) from exc
        self.path = Path(name)
        self._file = os.fdopen(fd, "wb")
        self._hasher = hashlib.sha256()
        self._size = 0

    def write_all(self, chunks: Iterable[bytes]) -> None:
        try:
            for chunk in chunks:
                self._hasher.update(chunk)
                self._file.write(chunk)
                self._size += len(chunk)
        except OSError as exc:
            raise _scratch_failed(self.path, exc) from exc

    def finish(self) -> Spooled:
        try:
            self._file.close()
        except OSError as exc:  # buffered data meets a full disk at close
            self.path.unlink(missing_ok=True)
            raise _scratch_failed(self.path, exc) from exc
        return Spooled(self.path, self._size, self._hasher.hexdigest())

    def abort(self) -> None:
        with contextlib.suppress(OSError):  # unwritten data on a full disk: it goes anyway
            self._file.close()
        self.path.unlink(missing_ok=True)


def _scratch_failed(path: Path, exc: OSError) -> StorageError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFullError(f"registry storage: no space left to receive data in {path.parent}; free some space")
    return StorageError(f"registry storage: cannot receive data in {path.parent} ({exc.strerror or exc})")


def spool_chunks(chunks: Iterable[bytes], scratch: Path) -> Spooled:
    """Receive chunks into a new file in ``scratch``."""
    writer = SpoolWriter(scratch)
    try:
        writer.write_all(chunks)
    except BaseException:
        writer.abort()
        raise
    return writer.finish()


def read_file_chunks(path: Path, chunk_size: int = CHUNK_SIZE) -> Iterable[bytes]:
    with open(path, "rb") as file:
        while chunk := file.read(chunk_size):
            yield chunk


def store_spooled(storage: Storage, data: Spooled, digest: Digest) -> None:
    """Store received data as the blob ``digest`` after checking it (DIGEST_INVALID)."""
    try:
        actual = data.sha256 if digest.algorithm == "sha256" else _hash_file(data.path, digest.algorithm)
        _verify(digest, actual)
        storage.put_file(blob_key(digest), data.path)
    finally:
        data.path.unlink(missing_ok=True)


class Uploads:
    """The upload sessions of one registry."""

    def __init__(self, storage: Storage, clock: Callable[[], float] = time.time) -> None:
        self.storage = storage
        self.clock = clock

    def start(self, name: str) -> str:
        upload_id = uuid.uuid4().hex
        self._save(upload_id, _State(name, self.clock()))
        return upload_id

    def size(self, name: str, upload_id: str) -> int:
        """Bytes received so far; BLOB_UPLOAD_UNKNOWN for no such session in ``name``."""
        return self._load(name, upload_id).size

    def append(self, name: str, upload_id: str, data: Spooled, start: int | None = None) -> int:
        """Add a chunk (``start`` from Content-Range, if sent); return the new size."""
        try:
            state = self._load(name, upload_id)
            if start is not None and start != state.size:
                raise RegistryError(
                    BLOB_UPLOAD_INVALID,
                    f"the chunk starts at byte {start} but the upload holds {state.size} bytes; send chunks in order",
                    status=416,
                    headers={"Range": f"0-{max(state.size - 1, 0)}"},
                )
            if data.size:
                self.storage.put_file(self._part_key(upload_id, len(state.parts)), data.path)
                state.parts.append(_Part(data.size, data.sha256))
                self._save(upload_id, state)
        finally:
            data.path.unlink(missing_ok=True)
        return state.size

    def finish(self, name: str, upload_id: str, digest: Digest, data: Spooled | None = None) -> int:
        """Check the whole upload against ``digest`` and store it as that blob; the session
        ends either way. Returns the blob's size."""
        if data is not None:
            self.append(name, upload_id, data)
        state = self._load(name, upload_id)
        try:
            self._assemble(upload_id, state, digest)
        finally:
            self.storage.delete_prefix(upload_key(upload_id))
        return state.size

    def cancel(self, name: str, upload_id: str) -> None:
        self._load(name, upload_id)
        self.storage.delete_prefix(upload_key(upload_id))

    def purge(self, older_than: float, *, dry_run: bool = False) -> list[str]:
        """End sessions started more than ``older_than`` seconds ago (abandoned by clients);
        ``dry_run`` only names them."""
        purged = []
        for upload_id in self.storage.list(UPLOADS):
            raw = self.storage.read(f"{upload_key(upload_id)}/state.json")
            started = json.loads(raw)["started"] if raw else 0.0
            if self.clock() - started > older_than:
                if not dry_run:
                    self.storage.delete_prefix(upload_key(upload_id))
                purged.append(upload_id)
        return purged

    def _assemble(self, upload_id: str, state: _State, digest: Digest) -> None:
        target = blob_key(digest)
        parts = [self._part_key(upload_id, i) for i in range(len(state.parts))]
        if not parts:
            _verify(digest, hashlib.new(digest.algorithm, b"").hexdigest())
            self.storage.write(target, b"")
        elif len(parts) == 1 and digest.algorithm == "sha256":
            _verify(digest, state.parts[0].sha256)
            self.storage.move(parts[0], target)
        else:
            joined = f"{upload_key(upload_id)}/joined"
            _verify(digest, self.storage.concat(joined, parts, digest.algorithm))
            self.storage.move(joined, target)

    def _part_key(self, upload_id: str, index: int) -> str:
        return f"{upload_key(upload_id)}/{index:06d}"

    def _load(self, name: str, upload_id: str) -> _State:
        raw = self.storage.read(f"{upload_key(upload_id)}/state.json")
        if raw is None:
            raise _unknown(upload_id)
        data = json.loads(raw)
        if data["name"] != name:
            raise _unknown(upload_id)  # sessions belong to the repository they were started in
        return _State(data["name"], data["started"], [_Part(**p) for p in data["parts"]])

    def _save(self, upload_id: str, state: _State) -> None:
        self.storage.write(f"{upload_key(upload_id)}/state.json", json.dumps(asdict(state)).encode())


def _verify(digest: Digest, actual_hex: str) -> None:
    if actual_hex != digest.hex:
        raise RegistryError(
            DIGEST_INVALID,
            f"the uploaded content has digest {digest.algorithm}:{actual_hex}, not {digest}",
            detail={"expected": str(digest), "actual": f"{digest.algorithm}:{actual_hex}"},
        )


def _unknown(upload_id: str) -> RegistryError:
    return RegistryError(BLOB_UPLOAD_UNKNOWN, f"there is no upload session '{upload_id}' in this repository")


def _hash_file(path: Path, algorithm: str) -> str:
    hasher = hashlib.new(algorithm)
    for chunk in read_file_chunks(path):
        hasher.update(chunk)
    return hasher.hexdigest()
