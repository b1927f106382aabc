"""The bare mirror a Git source is fetched into, and reading objects from it with care.

The mirror is ``<cache_dir>/<source>.git``, a bare repository written only by dulwich.
Refs are set by the reader after each fetch, so the next fetch tells the server what is
already here and only new objects travel.

* ``open_mirror`` opens it, creating it if missing and re-creating it if it is broken
  (it is a cache: everything in it can be fetched again);
* ``blob_size`` reads an object's size from its header — the loose object's first bytes,
  or the pack entry's header (and, for a delta, the first bytes of the delta) — so an
  oversized file is refused without being inflated into memory;
* ``consolidate_packs`` merges the small packs each fetch leaves behind (lookups scan
  every pack) into one, bounded in memory by ``MERGE_BYTES`` of pack data.
"""

from __future__ import annotations

import logging
import os
import shutil
import zlib
from pathlib import Path

from dulwich.errors import NotGitRepository
from dulwich.object_store import BaseObjectStore
from dulwich.pack import Pack
from dulwich.repo import Repo

log = logging.getLogger("condaops.sources.git")

MAX_PACKS = 16  # more packs than this after a fetch: merge the small ones
MERGE_BYTES = 32 << 20  # at most this much pack data is merged (and held in memory) at once
_HEADER_READ = 4096  # bytes read at a pack offset: the entry header plus a delta's start
_OFS_DELTA, _REF_DELTA = 6, 7


def open_mirror(path: Path) -> Repo:
    """The bare repository at ``path``; created when missing, re-created when broken."""
    if path.exists():
        try:
            return Repo(str(path), bare=True)
        except (NotGitRepository, OSError, ValueError, KeyError) as exc:
            log.warning("git_mirror_reset path=%s problem=%s", path, type(exc).__name__)
            remove_mirror(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return Repo.init_bare(str(path), mkdir=True)


def remove_mirror(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def blob_size(store: BaseObjectStore, sha: bytes) -> int | None:
    """The size of object ``sha`` without reading it whole; None if it cannot be told
    this way (the caller then reads the object)."""
    objects_dir = getattr(store, "path", None)
    if objects_dir is not None:
        loose = os.path.join(objects_dir, sha[:2].decode(), sha[2:].decode())
        if os.path.exists(loose):
            return _loose_size(loose)
    for pack in getattr(store, "packs", ()):
        try:
            offset = pack.index.object_offset(sha)
        except KeyError:
            continue
        if offset is None:
            continue
        return _packed_size(pack.data.path, offset)
    return None


def _loose_size(path: str) -> int | None:
    with open(path, "rb") as fh:
        head = zlib.decompressobj().decompress(fh.read(_HEADER_READ), 64)
    kind_size, sep, _ = head.partition(b"\0")
    if not sep:
        return None
    _, _, size = kind_size.partition(b" ")
    return int(size) if size.isdigit() else None


def _packed_size(path: str | os.PathLike[str], offset: int) -> int | None:
    """Pack entry header: type in bits 4-6 of the first byte, size in 4 + 7n bits."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read(_HEADER_READ)
    kind, size, index = (data[0] >> 4) & 7, data[0] & 0x0F, 1
    shift = 4
    while data[index - 1] & 0x80:
        size |= (data[index] & 0x7F) << shift
        shift, index = shift + 7, index + 1
    if kind not in (_OFS_DELTA, _REF_DELTA):
        return size
    if kind == _OFS_DELTA:
        while data[index] & 0x80:
            index += 1
        index += 1
    else:
        index += 20
    # A delta starts with two varints: the base's size, then the result's size.
    delta = zlib.decompressobj().decompress(data[index:], 32)
    _, pos = _varint(delta, 0)
    result, _ = _varint(delta, pos)
    return result


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        shift, pos = shift + 7, pos + 1
        if not byte & 0x80:
            return value, pos


def pack_count(repo: Repo) -> int:
    return len(repo.object_store.packs)


def consolidate_packs(path: Path) -> None:
    """Merge the smallest packs of the mirror at ``path`` into one (the caller has closed
    its handle on the mirror). The largest pack — usually the first clone — is kept."""
    repo = Repo(str(path), bare=True)
    try:
        store = repo.object_store
        packs = sorted(store.packs, key=lambda p: os.path.getsize(p.data.path))
        chosen: list[Pack] = []
        total = 0
        for pack in packs[:-1]:
            size = os.path.getsize(pack.data.path)
            if chosen and total + size > MERGE_BYTES:
                break
            chosen.append(pack)
            total += size
        if len(chosen) < 2:
            return
        objects = [(obj, None) for pack in chosen for obj in pack.iterobjects()]
        store.add_objects(objects)
        files = [f for pack in chosen for f in (pack.data.path, pack.index.path)]  # type: ignore[attr-defined]  # a disk pack's index is a file
        for pack in chosen:
            pack.close()
    finally:
        repo.close()
    for file in files:
        os.remove(file)
    log.info("git_packs_merged path=%s packs=%d bytes=%d", path, len(chosen), total)
