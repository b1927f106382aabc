"""Install solved records into a fresh prefix with py-rattler, and verify the result.

Decisions:

* The prefix must not exist yet (or be an empty folder): builds are immutable.
* rattler installs into a hidden sibling ``.<name>.partial-<id>`` with
  ``alternative_target_prefix`` set to the real prefix (so rewritten files name the
  real path), which is renamed into place only when complete. On failure the staging
  folder is removed once rattler's in-flight link tasks went quiet: rattler returns
  the first error while links already started keep writing, so removing a prefix in
  place let them recreate it. Stragglers can only ever touch the staging folder.
* Packages over ``file://`` are read by rattler without a hash check (over HTTP a
  tampered file fails with a hash mismatch). Before installing, every ``file://``
  archive is hashed here against its record (sha256, else md5); a record with neither
  is refused. (A file changed between this check and rattler's read is not caught.)
* Packages that need no prefix rewriting are hardlinked from ``cache_dir`` when it is
  on the same filesystem, so the cache should live next to the store.
* After linking, ``conda-meta/*.json`` are made world-readable (rattler writes 0600;
  shared multi-user environments need 0644), and rattler's ``CACHEDIR.TAG`` is removed
  from the prefix: an environment is a product, not a cache, and backup or archive
  tools that honour the tag would skip it. No package owns the file.
* Link scripts (``post-link.sh``) follow rattler's default.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import stat
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rattler import MatchSpec, install
from rattler import exceptions as rx

from condaops.reconciler.errors import InstallError, VerifyError
from condaops.reconciler.reasons import Reason

if TYPE_CHECKING:
    from rattler import Client, RepoDataRecord

# Everything rattler raises while fetching, extracting or linking, and our own IO.
_RATTLER_ERRORS: tuple[type[BaseException], ...] = (
    rx.InstallerError,
    rx.TransactionError,
    rx.LinkError,
    rx.ExtractError,
    rx.CacheDirError,
    rx.IoError,
    rx.FetchRepoDataError,
    rx.InvalidMatchSpecError,
    OSError,  # finishing or renaming the staging folder (e.g. a concurrent build won)
)
_CACHEDIR_TAG = "CACHEDIR.TAG"


async def install_prefix(
    records: Sequence[RepoDataRecord],
    prefix: Path,
    *,
    cache_dir: Path,
    client: Client | None = None,
    requested_specs: Iterable[str] = (),
    env_label: str | None = None,
    reporter: object | None = None,
) -> None:
    """Install ``records`` into the new folder ``prefix``; nothing is left on failure.

    ``cache_dir`` is the package cache (used as-is). ``requested_specs`` are the user's
    match specs, recorded in ``conda-meta``. Raises ``InstallError`` (retryable) wrapping
    rattler's error.
    """
    prefix = Path(prefix).absolute()  # placeholders are rewritten to this exact path
    where = f"environment '{env_label}'" if env_label else "the environment"
    _require_fresh(prefix, where)
    verify_file_archives(records, where)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    for stale in prefix.parent.glob(f".{prefix.name}.partial-*"):
        # Left by a worker killed mid-install; this build is ours now (claimed), so nobody
        # else writes there.
        shutil.rmtree(stale, ignore_errors=True)
    staging = prefix.with_name(f".{prefix.name}.partial-{uuid.uuid4().hex[:12]}")
    try:
        specs = [MatchSpec(s)._match_spec for s in requested_specs]  # 0.28: not MatchSpec itself
        await install(
            list(records),
            target_prefix=staging,
            alternative_target_prefix=prefix,  # files name the final path, not the staging one
            cache_dir=Path(cache_dir),
            show_progress=False,
            client=client,
            requested_specs=specs,
            reporter=reporter,  # type: ignore[arg-type]  # structural InstallerReporter (build.installlog)
        )
        finish_prefix(staging)
        os.rename(staging, prefix)  # atomic: the prefix appears complete or not at all
    except _RATTLER_ERRORS as exc:
        await _discard_after_quiet(staging)
        raise InstallError(
            f"{where}: installing {len(records)} packages into {prefix} failed (will retry): {str(exc).strip()}"
        ) from exc
    except BaseException:
        # Cancelled or failed outside rattler: remove what is there without waiting.
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _require_fresh(prefix: Path, where: str) -> None:
    if prefix.is_symlink() or (prefix.exists() and (not prefix.is_dir() or any(prefix.iterdir()))):
        raise InstallError(
            f"{where}: {prefix} already exists and builds never change an existing prefix; "
            "remove the leftover folder or build into a new one",
            reason=Reason.PREFIX_EXISTS,
        )


async def _discard_after_quiet(staging: Path, *, quiet: float = 0.25, limit: float = 15.0) -> None:
    """Remove a failed staging folder once nothing writes into it any more.

    rattler raises the first error while links already started keep running on its own
    threads (measured: a package's files and conda-meta record appear after the
    exception). Removing at once would let them recreate the folder.
    """
    deadline = time.monotonic() + limit
    previous: object = object()
    while time.monotonic() < deadline:
        current = _tree_state(staging)
        if current == previous:
            break
        previous = current
        await asyncio.sleep(quiet)
    shutil.rmtree(staging, ignore_errors=True)


def _tree_state(root: Path) -> frozenset[tuple[str, int, int]] | None:
    if not root.exists():
        return None
    state = set()
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(dirpath, name))
                state.add((os.path.join(dirpath, name), st.st_size, st.st_mtime_ns))
    return frozenset(state)


def verify_file_archives(records: Iterable[RepoDataRecord], where: str = "the environment") -> None:
    """Hash every ``file://`` package against its record; rattler does not (see module doc)."""
    for record in records:
        if not record.url.startswith("file://"):
            continue
        path = _file_url_path(record.url)
        expected, algorithm = _expected_digest(record)
        if expected is None:
            raise InstallError(
                f"{where}: {record.file_name} from {record.url} has no sha256 or md5 in its "
                "repodata, so it cannot be checked; re-index the channel",
                reason=Reason.PACKAGE_UNVERIFIABLE,
            )
        try:
            actual = _digest_file(path, algorithm)
        except OSError as exc:
            raise InstallError(f"{where}: cannot read {path}: {exc}") from exc
        if actual != expected:
            raise InstallError(
                f"{where}: {path} does not match its repodata {algorithm} "
                f"(expected {expected}, got {actual}); the channel is corrupt or was "
                "changed without re-indexing",
                reason=Reason.PACKAGE_HASH_MISMATCH,
            )


def _file_url_path(url: str) -> Path:
    return Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))


def _expected_digest(record: RepoDataRecord) -> tuple[str | None, str]:
    if record.sha256:
        return bytes(record.sha256).hex(), "sha256"
    if record.md5:
        return bytes(record.md5).hex(), "md5"
    return None, "sha256"


def _digest_file(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def finish_prefix(prefix: Path) -> None:
    """Make package metadata world-readable and drop rattler's ``CACHEDIR.TAG``."""
    readable = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
    for meta in (prefix / "conda-meta").glob("*.json"):
        mode = meta.stat().st_mode
        if mode & readable != readable:
            meta.chmod(stat.S_IMODE(mode) | readable)
    tag = prefix / _CACHEDIR_TAG
    if tag.is_file() and not tag.is_symlink():
        tag.unlink()


def conda_meta_name(record: RepoDataRecord) -> str:
    """``conda-meta/<name>-<version>-<build>.json`` file name of an installed record."""
    return f"{record.name.normalized}-{record.version}-{record.build}.json"


def verify_prefix(prefix: Path, records: Iterable[RepoDataRecord]) -> None:
    """Raise ``VerifyError`` unless every record has its ``conda-meta`` entry in ``prefix``."""
    meta = Path(prefix) / "conda-meta"
    missing = sorted(n for n in map(conda_meta_name, records) if not (meta / n).is_file())
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise VerifyError(
            f"{prefix} is missing the conda-meta records of {len(missing)} packages "
            f"({shown}); the install did not complete, rebuild the environment"
        )
    if not os.access(meta, os.R_OK):
        raise VerifyError(f"{meta} is not readable; check the store's permissions")
