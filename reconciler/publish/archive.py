"""Deterministic tar archives: the one writer behind conda-pack tarballs and image layers.

Reproducible outputs (ARCHITECTURE.md): the same files give the same bytes. So every
entry has a fixed mtime (``FIXED_MTIME``, 0 = the epoch, as ``SOURCE_DATE_EPOCH=0``),
uid/gid 0 with empty user and group names, only its permission bits, no xattrs or other
PAX records; entries are written in the order the caller gives (callers sort); hardlinks
become regular files (a sorted order may put a link before its target). Compression is
fixed too: gzip with mtime 0 and no file name in its header; zstd at a fixed level without
content size, fed in any sizes: single-threaded (image layers) the same blocks are cut
whatever the sizes of the writes; in zstd's worker mode (``zstd_workers=1``: the
conda-pack tarball) the input is cut into fixed ``ZSTD_JOB_SIZE`` jobs. Either way the
output does not depend on how the stream is fed and is reproducible on any machine.
Single-threaded, the compression runs in the writing thread with the GIL released, so
several archives written at once still use every core; in worker mode a zstd thread
compresses while the writing thread reads, hashes and builds tar headers. Memory per
open stream (measured: 6 streams fed 8 MiB each): ~6.5 MiB single-threaded, ~8.7 MiB in
worker mode with 1 MiB jobs, ~13 MiB with zstd's default job size. The tarball is the
longest stream of a publish job (the layers are written two at a time beside it), so it
alone gets worker mode: single-threaded everywhere the job took 1.19× the ``conda-pack``
CLI, worker mode everywhere 1.01× but a higher peak (docs/benchmarks.md, publishing).
The digest of the compressed file and of the tar inside it are computed while writing
(one pass over the data).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import stat
import typing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import zstandard

FIXED_MTIME = 0
BLOCK, RECORD = 512, 20 * 512  # tar blocks; archives end on a whole record, as tar writes them
REGULAR, DIRECTORY, SYMLINK = b"0", b"5", b"2"
GNU_MAGIC = b"ustar  \0"
_NAME = 100  # bytes of a name in the header; longer ones go before it in a GNU long-name record
_WHOLE = 1 << 20  # files up to this size are read whole (larger ones in chunks: bounded buffers per thread)
GZIP, ZSTD, PLAIN = "gzip", "zstd", "none"
GZIP_LEVEL, ZSTD_LEVEL = 6, 4  # zstd 4: conda-pack's own default level
ZSTD_JOB_SIZE = 1 << 20  # zstd's worker mode: see the module doc (changing it changes those digests)
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

    def write(self, data: bytes) -> int:  # type: ignore[override]  # a write-only sink: tarfile passes bytes, not the Buffer the base class declares
        view = memoryview(data)
        self.sha256.update(view)
        self.size += len(view)
        self.target.write(view)
        return len(view)

    def hexdigest(self) -> str:
        return self.sha256.hexdigest()


@dataclass(frozen=True, slots=True)
class Written:
    """What ``write_archive`` produced: the digest/size of the file and of its tar."""

    path: Path
    sha256: str
    size: int
    tar_sha256: str  # an OCI layer's diff_id is over the uncompressed tar
    tar_size: int


def write_archive(
    path: Path,
    entries: Iterable[Entry],
    compression: str = GZIP,
    level: int | None = None,
    *,
    tar_digest: bool = True,
    zstd_workers: int = 0,
) -> Written:
    """Write ``entries`` as a deterministic tar to ``path`` (compressed as asked, at
    ``level`` or the format's default); ``tar_digest`` False skips hashing the tar inside
    (``tar_sha256`` is then empty: only image layers need it); ``zstd_workers`` 1 puts a
    zstd stream in worker mode (its own compressing thread, ``ZSTD_JOB_SIZE`` jobs)."""
    with open(path, "wb") as raw:
        outer = HashingWriter(raw)
        with _compressor(outer, compression, level, zstd_workers) as packed:
            inner = HashingWriter(packed) if tar_digest else _CountingWriter(packed)
            for entry in entries:
                add_entry(inner, entry)
            finish_tar(inner)
    return Written(path, outer.sha256.hexdigest(), outer.size, inner.hexdigest(), inner.size)


def _compressor(
    target: HashingWriter, compression: str, level: int | None = None, zstd_workers: int = 0
) -> contextlib.AbstractContextManager[Any]:
    if compression == GZIP:
        # filename="" and mtime=0: nothing about the host or the time lands in the header.
        return gzip.GzipFile(filename="", mode="wb", fileobj=target, compresslevel=level or GZIP_LEVEL, mtime=0)
    if compression == ZSTD:
        params = zstandard.ZstdCompressionParameters.from_level(
            level or ZSTD_LEVEL,
            threads=zstd_workers,
            job_size=ZSTD_JOB_SIZE if zstd_workers else 0,
            write_content_size=0,
        )
        compressor = zstandard.ZstdCompressor(compression_params=params)
        return compressor.stream_writer(typing.cast(BinaryIO, target), closefd=False)
    if compression == PLAIN:
        return contextlib.nullcontext(target)
    raise ValueError(f"unknown compression {compression!r}")


def add_entry(out: Any, entry: Entry) -> None:
    """Append one normalized member to the tar stream ``out`` (a ``HashingWriter``)."""
    if entry.data is not None:
        _member(out, entry.name, REGULAR, entry.mode if entry.mode is not None else 0o644, entry.data)
        return
    if entry.source is None:
        _member(out, entry.name, DIRECTORY, entry.mode if entry.mode is not None else 0o755)
        return
    st = os.lstat(entry.source)
    mode = entry.mode if entry.mode is not None else stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(entry.source)
        if entry.rewrite is not None:  # an absolute link into the prefix moves with it
            target = entry.rewrite(target.encode()).decode()
        _member(out, entry.name, SYMLINK, mode, linkname=target)
    elif stat.S_ISDIR(st.st_mode):
        _member(out, entry.name, DIRECTORY, mode)
    elif st.st_size <= _WHOLE or (entry.rewrite is not None and _same_size_chunks(entry.rewrite) is None):
        data = _read(entry.source, st.st_size)
        _member(out, entry.name, REGULAR, mode, entry.rewrite(data) if entry.rewrite else data)
    else:
        _large_member(out, entry, mode, st.st_size)


def _same_size_chunks(rewrite: Callable[[bytes], bytes]) -> Callable[[Iterable[bytes]], Iterable[bytes]] | None:
    """The rewrite's piecewise form when it keeps the length (binary relocation), else None."""
    return getattr(rewrite, "same_size_chunks", None)


def _member(out: Any, name: str, kind: bytes, mode: int, data: bytes = b"", linkname: str = "") -> None:
    out.write(tar_header(name, kind, mode, len(data), linkname))
    if data:
        out.write(data)
        out.write(_padding(len(data)))


def _read(path: Path, size: int) -> bytes:
    """A whole file, with the fewest calls (most files of an environment are small; the
    per-file cost of buffered ``open`` shows when there are thousands)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, size + 1)  # one byte more: a file that grew is read whole below
        while len(data) > size and (more := os.read(fd, _CHUNK)):
            data += more
        return data
    finally:
        os.close(fd)


def _large_member(out: Any, entry: Entry, mode: int, size: int) -> None:
    """A file too large to hold whole: copied in chunks (through the rewrite's piecewise
    form when it has one, which keeps the length), its size checked (a file that changes
    while archived would leave a corrupt tar)."""
    out.write(tar_header(entry.name, REGULAR, mode, size))
    copied = 0
    with open(entry.source, "rb") as fh:  # type: ignore[arg-type]  # entry.source is a path or an open descriptor; open() takes both

        def pieces() -> Iterator[bytes]:
            nonlocal copied
            while chunk := fh.read(min(_CHUNK, size - copied)):
                copied += len(chunk)
                yield chunk

        chunked = _same_size_chunks(entry.rewrite) if entry.rewrite is not None else None
        written = 0
        for piece in chunked(pieces()) if chunked is not None else pieces():
            out.write(piece)
            written += len(piece)
    if copied != size or written != size:
        raise OSError(f"{entry.source} changed size while it was archived ({size} -> {copied} bytes)")
    out.write(_padding(size))


def finish_tar(out: Any) -> None:
    """The end-of-archive marker (two empty blocks), padded to a whole record, as tar does."""
    out.write(b"\0" * (2 * BLOCK))
    out.write(b"\0" * (-out.size % RECORD))


def tar_header(name: str, kind: bytes, mode: int, size: int = 0, linkname: str = "") -> bytes:
    """A GNU tar header for a normalized member (owner 0:0, no user names, mtime
    ``FIXED_MTIME``), preceded by GNU long-name records for a name or link target over
    100 bytes. Written here rather than by ``tarfile``: ``TarInfo.tobuf`` costs ~40 µs a
    member (a quarter of publishing a 5,000-file environment) and its bytes have changed
    between Python versions, which would change every layer digest."""
    if kind == DIRECTORY and not name.endswith("/"):
        name += "/"
    raw_name, raw_link = name.encode("utf-8", "surrogateescape"), linkname.encode("utf-8", "surrogateescape")
    out = b""
    if len(raw_name) > _NAME:
        out += _long_record(raw_name, b"L")
    if len(raw_link) > _NAME:
        out += _long_record(raw_link, b"K")
    return out + _header(raw_name[:_NAME], kind, mode, size, raw_link[:_NAME], GNU_MAGIC)


def _long_record(value: bytes, kind: bytes) -> bytes:
    payload = value + b"\0"
    return _header(b"././@LongLink", kind, 0, len(payload), b"", GNU_MAGIC) + payload + _padding(len(payload))


def _header(name: bytes, kind: bytes, mode: int, size: int, linkname: bytes, magic: bytes) -> bytes:
    fields = [
        name.ljust(100, b"\0"),
        _octal(mode & 0o7777, 8),
        _octal(0, 8),  # uid
        _octal(0, 8),  # gid
        _octal(size, 12),
        _octal(FIXED_MTIME, 12),
        b"        ",  # the checksum, computed over the header with spaces here
        kind,
        linkname.ljust(100, b"\0"),
        magic,
        b"\0" * (32 + 32 + 8 + 8 + 155),  # user and group names, device numbers, name prefix
    ]
    block = b"".join(fields).ljust(BLOCK, b"\0")
    checksum = b"%06o\0" % sum(block)
    return block[:148] + checksum + block[155:]


def _octal(value: int, digits: int) -> bytes:
    if value < 8 ** (digits - 1):
        return b"%0*o\0" % (digits - 1, value)
    return b"\x80" + value.to_bytes(digits - 1, "big")  # GNU base-256 for sizes of 8 GiB and more


def _padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


class _CountingWriter:
    """A ``HashingWriter`` without the hash (when the tar's own digest is not needed)."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        self.target.write(data)
        return len(data)

    def hexdigest(self) -> str:
        return ""


def parent_dirs(names: Iterable[str]) -> list[str]:
    """Every ancestor folder of ``names`` (``a/b/c`` → ``a``, ``a/b``), sorted."""
    out: set[str] = set()
    for name in names:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            out.add("/".join(parts[:i]))
    return sorted(out)
