"""Limits on what pushes may take: blob size, open upload sessions, free disk space.

Checked before data is received, so an oversized or unwelcome body is refused at its
headers, and again while a streamed body arrives (it may not announce its length):

* a blob (one monolithic upload, or a session's chunks together) larger than
  ``registry.max_blob_size`` → 413 ``SIZE_INVALID``;
* a new upload session while ``registry.max_uploads`` are open → sessions older than
  ``registry.upload_max_age`` are purged first, then 429 ``TOOMANYREQUESTS``;
* free space where data lands below ``min_free_space`` (or below it once the announced
  body is written) → 507 ``DENIED``. Pulls never check: the site and pulls keep working
  on a full disk.
"""

from __future__ import annotations

from dataclasses import dataclass

from condaops.config.checks import format_size
from condaops.config.settings import Settings
from condaops.registry.errors import DENIED, INSUFFICIENT_STORAGE, SIZE_INVALID, TOOMANYREQUESTS, RegistryError
from condaops.registry.layout import UPLOADS
from condaops.registry.storage import Storage
from condaops.registry.store import RegistryStore


@dataclass(frozen=True, slots=True)
class Quota:
    max_blob_size: int = 20 * 1024**3
    max_uploads: int = 100
    upload_max_age: float = 86400.0
    min_free_space: int = 0

    @classmethod
    def of(cls, settings: Settings) -> Quota:
        r = settings.registry
        return cls(r.max_blob_size, r.max_uploads, r.upload_max_age, settings.min_free_space)


def check_blob_size(quota: Quota, size: int) -> None:
    """SIZE_INVALID (413) when a blob would hold ``size`` bytes, over the limit. Pure."""
    if size > quota.max_blob_size:
        raise RegistryError(
            SIZE_INVALID,
            f"the blob would be {size} bytes; this registry accepts at most "
            f"{format_size(quota.max_blob_size)} per blob (registry.max_blob_size)",
            status=413,
        )


def check_free_space(quota: Quota, storage: Storage, incoming: int = 0) -> None:
    """DENIED (507) when writing ``incoming`` more bytes would leave less than
    ``min_free_space`` free (blocking: a ``statvfs``)."""
    free = storage.free_space()
    if free is None or free - incoming >= quota.min_free_space:
        return
    raise RegistryError(
        DENIED,
        f"the registry's disk has {format_size(max(free, 0))} free, and pushes stop at "
        f"{format_size(quota.min_free_space)} (min_free_space); pulls keep working; free space "
        "(condaops gc) and push again",
        status=INSUFFICIENT_STORAGE,
    )


def check_open_uploads(quota: Quota, store: RegistryStore) -> None:
    """TOOMANYREQUESTS (429) when ``max_uploads`` sessions are open after purging the
    abandoned ones (blocking)."""
    if len(store.storage.list(UPLOADS)) < quota.max_uploads:
        return
    store.uploads.purge(quota.upload_max_age)
    if len(store.storage.list(UPLOADS)) < quota.max_uploads:
        return
    raise RegistryError(
        TOOMANYREQUESTS,
        f"{quota.max_uploads} uploads are open (registry.max_uploads); finish or cancel yours, or try again later",
        headers={"Retry-After": "60"},
    )
