"""Which storage backend a site's registry uses: ``open_storage(settings)``.

``FilesystemStorage`` (default, ``<store>/registry`` or ``storage.directory``) or
``S3Storage`` (``storage.backend: s3``; boto3 is imported only then). Both implement
``storage.Storage``; this module is the only one that knows them both.
"""

from __future__ import annotations

from pathlib import Path

from condaops.config.settings import Settings
from condaops.registry.storage import Storage


def storage_root(settings: Settings) -> Path:
    """Where the filesystem backend keeps the registry: ``storage.directory`` or
    ``<store>/registry``."""
    return settings.storage.directory or settings.store / "registry"


def open_storage(settings: Settings) -> Storage:
    """The backend ``settings.storage`` names; nothing is contacted until first use."""
    storage = settings.storage
    if storage.backend == "s3":
        from condaops.registry.s3_storage import S3Storage  # boto3 is imported only when used

        return S3Storage(
            bucket=storage.s3_bucket,
            prefix=storage.s3_prefix,
            endpoint=storage.s3_endpoint or None,
            region=storage.s3_region or None,
            redirect=storage.s3_redirect,
            url_expiry=storage.s3_url_expiry,
            scratch=settings.store / "tmp" / "registry",
        )
    from condaops.registry.fs_storage import FilesystemStorage

    return FilesystemStorage(storage_root(settings))
