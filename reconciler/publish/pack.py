"""The conda-pack tarball of a built prefix, byte-identical for the same lock.

conda-pack decides what goes in (every file of the prefix, conda-meta rewritten, shebangs
made relocatable, a ``conda-unpack`` script and ``activate``/``deactivate``) but not how:
it keeps the files' real mtimes, owners and names, and appends its scripts last. So the
archive is written uncompressed by conda-pack into a scratch folder, then rewritten by
``archive.copy_archive``: sorted entries, mtime 0, uid/gid 0, no user names, hardlinks
as files, compressed with a fixed gzip header or single-threaded zstd.

Files that name the build prefix keep naming it (``conda-unpack`` rewrites them where the
archive is unpacked), so two tarballs are identical when the lock *and the store path*
are: rebuilding a spec lands in the same ``<store>/<ns>/<spec-hash>-<name>``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import conda_pack

from condaops.reconciler.errors import BuildError, StalledError
from condaops.reconciler.publish.archive import GZIP, ZSTD, Written, copy_archive

PACK_KIND = "conda-pack"
FORMATS = {"tar.zst": ZSTD, "tar.gz": GZIP}


class PackError(BuildError, StalledError):
    """conda-pack refused the prefix (e.g. files changed behind conda's back)."""

    reason = "PackFailed"


def pack_file_name(name: str, fmt: str) -> str:
    """``<name>.tar.zst``: the tarball's name in the artifacts folder."""
    return f"{name}.{fmt}"


def pack_prefix(prefix: Path, output: Path, *, fmt: str = "tar.zst", scratch: Path | None = None) -> Written:
    """Write the deterministic conda-pack tarball of ``prefix`` to ``output``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown conda-pack format {fmt!r}; use one of {', '.join(FORMATS)}")
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".pack-", dir=scratch or output.parent) as tmp:
        plain = Path(tmp) / "env.tar"
        try:
            conda_pack.pack(prefix=str(prefix), output=str(plain), format="tar", force=True, ignore_missing_files=True)
        except conda_pack.CondaPackException as exc:
            raise PackError(f"conda-pack cannot pack {prefix}: {exc}") from exc
        partial = output.with_name(f".{output.name}.partial")
        written = copy_archive(plain, partial, FORMATS[fmt])
        partial.replace(output)
    return Written(output, written.sha256, written.size, written.tar_sha256, written.tar_size)
