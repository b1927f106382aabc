"""Reading what lockfiles say, for everyone who only reads them.

The build writes lockfiles (``build/lock.py``); the site, the package index, the SBOM and
the checks of committed locks read them back. Those readers share what is here, so none
of them needs the build code: how URLs appear in lockfiles (credentials removed) and the
full conda records of a ``pixi.lock`` (rattler is imported when one is read).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from condaops.reconciler.errors import StalledError
from condaops.reconciler.reasons import Reason

if TYPE_CHECKING:
    from rattler import RepoDataRecord

PIXI_ENVIRONMENT = "default"  # pixi's name for the one environment of a lockfile
_TOKEN_RE = re.compile(r"/t/[^/]+(?=/)")


class LockReadError(StalledError):
    """A pixi.lock that condaops wrote cannot be read back as expected."""

    reason = Reason.LOCK_FAILED


def redact_url(url: str) -> str:
    """``url`` without user/password and anaconda.org-style ``/t/<token>`` segments."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    path = _TOKEN_RE.sub("", parts.path)
    return urlunsplit((parts.scheme, netloc, path, parts.query, parts.fragment))


def channel_url(url: str) -> str:
    """A channel URL as lockfiles show it: redacted, without trailing slash."""
    return redact_url(url).rstrip("/")


def sorted_records(records: Iterable[RepoDataRecord]) -> list[RepoDataRecord]:
    """Records in the order lockfiles list them: name, subdir, file name."""
    return sorted(records, key=lambda r: (r.name.normalized, r.subdir, r.file_name))


def read_pixi_lock(path: Path) -> dict[str, list[RepoDataRecord]]:
    """The full conda records per platform from a pixi.lock written by condaops."""
    from rattler import LockFile  # ~0.1 s: only when a lock is read

    environment = LockFile.from_path(path).environment(PIXI_ENVIRONMENT)
    if environment is None:
        raise LockReadError(f"{path}: no '{PIXI_ENVIRONMENT}' environment in this pixi.lock")
    return {p: sorted_records(r) for p, r in sorted(environment.conda_repodata_records().items())}
