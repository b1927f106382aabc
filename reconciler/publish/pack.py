"""The conda-pack tarball of a built prefix, byte-identical for the same lock.

conda-pack decides what goes in: every file of the prefix, conda-meta rewritten, shebangs
made relocatable, a ``conda-unpack`` script and ``activate``/``deactivate``. Its own
archive writer decides how, and keeps the files' real mtimes, owners and order; so
conda-pack's ``Packer`` is handed a collector instead of an archive: it records what
conda-pack adds (files by path, generated content as bytes), and ``archive.write_archive``
writes that in one pass: sorted entries, mtime 0, uid/gid 0, no user names, hardlinks as
files, compressed with a fixed gzip header or zstd (and hashed while written). No
intermediate tar is written or read back.

Files that name the build prefix keep naming it (``conda-unpack`` rewrites them where the
archive is unpacked), so two tarballs are identical when the lock *and the store path*
are: rebuilding a spec lands in the same ``<store>/<ns>/<spec-hash>-<name>``.

``Packer`` is conda-pack's internal class (its ``pack`` uses it the same way); the
``conda-pack`` pin in pyproject.toml keeps it stable.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import conda_pack
from conda_pack.core import Packer

from condaops.reconciler.errors import BuildError, StalledError
from condaops.reconciler.publish.archive import GZIP, ZSTD, Entry, Written, write_archive
from condaops.reconciler.reasons import Reason

PACK_KIND = "conda-pack"
FORMATS = {"tar.zst": ZSTD, "tar.gz": GZIP}


class PackError(BuildError, StalledError):
    """conda-pack refused the prefix (e.g. files changed behind conda's back)."""

    reason = Reason.PACK_FAILED


class _Collector:
    """What conda-pack's ``Packer`` adds, as ``Entry`` objects (the archive interface it
    calls: ``add`` and ``add_bytes``). Package files are kept as paths (in the prefix or
    the package cache: conda-pack takes unmodified files from there) and read when the
    archive is written. What ``Packer.finish`` adds are conda-pack's scripts and temporary
    files it deletes right after adding them: with ``finishing`` set, their content is
    read at once."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.finishing = False

    def add(self, source: str, target: str) -> None:
        if not self.finishing:
            self.entries[target] = Entry(target, Path(source))
            return
        mode = stat.S_IMODE(os.lstat(source).st_mode)
        self.entries[target] = Entry(target, data=Path(source).read_bytes(), mode=mode)

    def add_bytes(self, source: str, data: bytes, target: str) -> None:
        self.entries[target] = Entry(target, data=data, mode=stat.S_IMODE(os.lstat(source).st_mode))


def pack_file_name(name: str, fmt: str) -> str:
    """``<name>.tar.zst``: the tarball's name in the artifacts folder."""
    return f"{name}.{fmt}"


def pack_prefix(prefix: Path, output: Path, *, fmt: str = "tar.zst") -> Written:
    """Write the deterministic conda-pack tarball of ``prefix`` to ``output``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown conda-pack format {fmt!r}; use one of {', '.join(FORMATS)}")
    output.parent.mkdir(parents=True, exist_ok=True)
    collector = _Collector()
    try:
        env = conda_pack.CondaEnv.from_prefix(str(prefix), ignore_missing_files=True)
        packer = Packer(str(prefix), collector)
        for file in env.files:
            packer.add(file)
        collector.finishing = True
        packer.finish()
    except conda_pack.CondaPackException as exc:
        raise PackError(f"conda-pack cannot pack {prefix}: {exc}") from exc
    partial = output.with_name(f".{output.name}.partial")
    try:
        entries = [collector.entries[k] for k in sorted(collector.entries)]
        written = write_archive(
            partial, entries, FORMATS[fmt], tar_digest=False, zstd_workers=1
        )  # the long pole: archive.py
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    return Written(output, written.sha256, written.size, written.tar_sha256, written.tar_size)
