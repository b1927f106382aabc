"""Deterministic tar archives: the one writer behind conda-pack tarballs and image layers.

Reproducible outputs (ARCHITECTURE.md): the same files give the same bytes. So every
entry has a fixed mtime (``FIXED_MTIME``, 0 = the epoch, as ``SOURCE_DATE_EPOCH=0``),
uid/gid 0 with empty user and group names, only its permission bits, no xattrs or other
PAX records; entries are written in the order the caller gives (callers sort); hardlinks
become regular files (a sorted order may put a link before its target). Compression is
fixed too: gzip with mtime 0 and no file name in its header; zstd at a fixed level without
content size, in zstd's worker mode (``threads=1``): its output does not depend on the
number of workers nor on how the stream is fed (zstd ≥ 1.5 guarantees it), so it is
reproducible on any machine, and the compression runs in zstd's own thread while Python
builds the tar headers. The digest of the compressed file and of the tar inside it are
computed while writing (one pass over the data).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import stat
import tarfile
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import zstandard

FIXED_MTIME = 0
GZIP, ZSTD, PLAIN = "gzip", "zstd", "none"
GZIP_LEVEL, ZSTD_LEVEL = 6, 4  # zstd 4: conda-pack's own default level
ZSTD_WORKERS = 1  # worker mode; any value >= 1 gives the same bytes
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Entry:
    """One archive member: ``name`` in the archive, taken from ``source`` on disk (or
    ``data`` when given); ``source`` None with no data is a directory. A regular file's
    content passes through ``rewrite`` when one is given (prefix relocation)."""

    name: str
    source: Path | None = None
    data: bytes | None = None
    mode: int | None = None  # permission bits; default from source, 0o755 dirs, 0o644 data
    rewrite: Callable[[bytes], bytes] | None = None


class HashingWriter(io.RawIOBase):
    """A write-only file that counts and sha256-hashes what passes through to ``target``."""

    def __init__(self, target: BinaryIO) -> None:
        self.target = target
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:  # tarfile asks where it is; nothing here seeks
        return self.size

    def write(self, data: bytes) -> int:  # type: ignore[override]
        view = memoryview(data)
        self.sha256.update(view)
        self.size += len(view)
        self.target.write(view)
        return len(view)


@dataclass(frozen=True, slots=True)
class Written:
    """What ``write_archive`` produced: the digest/size of the file and of its tar."""

    path: Path
    sha256: str
    size: int
    tar_sha256: str  # an OCI layer's diff_id is over the uncompressed tar
    tar_size: int


def write_archive(path: Path, entries: Iterable[Entry], compression: str = GZIP, level: int | None = None) -> Written:
    """Write ``entries`` as a deterministic tar to ``path`` (compressed as asked, at
    ``level`` or the format's default)."""
    with open(path, "wb") as raw:
        outer = HashingWriter(raw)
        with _compressor(outer, compression, level) as packed:
            inner = HashingWriter(packed)
            with tarfile.open(fileobj=inner, mode="w", format=tarfile.GNU_FORMAT) as tar:  # type: ignore[arg-type]
                for entry in entries:
                    add_entry(tar, entry)
    return Written(path, outer.sha256.hexdigest(), outer.size, inner.sha256.hexdigest(), inner.size)


def _compressor(
    target: HashingWriter, compression: str, level: int | None = None
) -> contextlib.AbstractContextManager[Any]:
    if compression == GZIP:
        # filename="" and mtime=0: nothing about the host or the time lands in the header.
        return gzip.GzipFile(filename="", mode="wb", fileobj=target, compresslevel=level or GZIP_LEVEL, mtime=0)
    if compression == ZSTD:
        params = zstandard.ZstdCompressor(level=level or ZSTD_LEVEL, threads=ZSTD_WORKERS, write_content_size=False)
        return params.stream_writer(typing.cast(BinaryIO, target), closefd=False)
    if compression == PLAIN:
        return contextlib.nullcontext(target)
    raise ValueError(f"unknown compression {compression!r}")


def add_entry(tar: tarfile.TarFile, entry: Entry) -> None:
    """Append one normalized member."""
    info = tarfile.TarInfo(entry.name)
    info.mtime = FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if entry.data is not None:
        info.size, info.mode = len(entry.data), entry.mode if entry.mode is not None else 0o644
        tar.addfile(info, io.BytesIO(entry.data))
        return
    if entry.source is None:
        info.type, info.mode = tarfile.DIRTYPE, entry.mode if entry.mode is not None else 0o755
        tar.addfile(info)
        return
    st = os.lstat(entry.source)
    if entry.rewrite is not None and stat.S_ISREG(st.st_mode):
        data = entry.rewrite(Path(entry.source).read_bytes())
        info.size, info.mode = len(data), entry.mode if entry.mode is not None else stat.S_IMODE(st.st_mode)
        tar.addfile(info, io.BytesIO(data))
        return
    info.mode = entry.mode if entry.mode is not None else stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(entry.source)
        if entry.rewrite is not None:  # an absolute link into the prefix moves with it
            target = entry.rewrite(target.encode()).decode()
        info.type, info.linkname = tarfile.SYMTYPE, target
        tar.addfile(info)
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    else:
        info.size = st.st_size
        with open(entry.source, "rb") as fh:
            tar.addfile(info, fh)


def parent_dirs(names: Iterable[str]) -> list[str]:
    """Every ancestor folder of ``names`` (``a/b/c`` → ``a``, ``a/b``), sorted."""
    out: set[str] = set()
    for name in names:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            out.add("/".join(parts[:i]))
    return sorted(out)
