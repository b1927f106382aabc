"""The built-in registry as a Python API, for the build pipeline: no HTTP, no token.

Narrow on purpose: put a blob, put a manifest (optionally tagged), resolve a reference,
list tags. Content is checked exactly as a push over HTTP is (digests, referenced blobs,
manifest shape); refusals raise ``RegistryError`` (a ``CondaopsError``), storage failures
``StorageError`` (transient). Blocking: call it from a worker thread in async code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from condaops.config.settings import Settings
from condaops.registry.backends import open_storage
from condaops.registry.errors import NAME_UNKNOWN, RegistryError
from condaops.registry.manifests import Descriptor
from condaops.registry.protocol import Digest, check_name, check_tag, digest_of, is_digest, parse_digest
from condaops.registry.storage import Storage
from condaops.registry.store import RegistryStore
from condaops.registry.uploads import read_file_chunks, spool_chunks, store_spooled

__all__ = ["Descriptor", "Registry", "open_registry"]

OCTET_STREAM = "application/octet-stream"


class Registry:
    """Put and look up content of the built-in registry directly on its storage."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._store = RegistryStore(storage)

    def put_blob(self, data: bytes | Path, media_type: str = OCTET_STREAM, *, digest: str | None = None) -> Descriptor:
        """Store a blob (bytes, or a file that is read in chunks, never whole); return its
        descriptor. Storing a blob that is already there is cheap and changes nothing; when
        the caller knows the ``digest`` and the registry has that blob, nothing is read."""
        if digest is not None:
            known = self._store.blob_size(parse_digest(digest))
            if known is not None:
                return Descriptor(media_type, digest, known)
        chunks = read_file_chunks(data) if isinstance(data, Path) else (data,)
        spooled = spool_chunks(chunks, self.storage.scratch)
        stored = Digest("sha256", spooled.sha256)
        if self._store.blob_size(stored) is None:
            store_spooled(self.storage, spooled, stored)
        else:
            spooled.path.unlink(missing_ok=True)
        return Descriptor(media_type, str(stored), spooled.size)

    def put_manifest(
        self, name: str, manifest: bytes, *, media_type: str | None = None, tags: Sequence[str] = ()
    ) -> Descriptor:
        """Store a manifest in repository ``name`` and point each of ``tags`` at it.

        Its blobs (or, for an index, its manifests) must be stored first. ``media_type`` is
        needed only when the manifest has no ``mediaType`` field.
        """
        check_name(name)
        for tag in tags:
            check_tag(tag)
        pushed = None
        for reference in tags or ("",):
            # By digest when untagged; each tag goes through the same checks as a push.
            ref = reference or str(digest_of(manifest))
            pushed = self._store.put_manifest(name, ref, manifest, media_type)
        assert pushed is not None
        return Descriptor(pushed.media_type, str(pushed.digest), pushed.size)

    def resolve(self, name: str, reference: str) -> Descriptor | None:
        """The manifest a tag or digest names in ``name``, or None."""
        check_name(name)
        if is_digest(reference):
            parse_digest(reference)
        else:
            check_tag(reference)
        digest = self._store.resolve(name, reference)
        if digest is None:
            return None
        found = self._store.manifest(name, str(digest))
        return Descriptor(found.media_type, str(found.digest), len(found.body))

    def tags(self, name: str) -> list[str]:
        """The tags of ``name`` in lexical order; empty when the repository does not exist."""
        check_name(name)
        try:
            return self._store.tags(name)
        except RegistryError as exc:
            if exc.code == NAME_UNKNOWN:
                return []
            raise

    def delete_tag(self, name: str, tag: str) -> bool:
        """Remove tag ``tag`` of ``name`` (its manifest stays, by digest); False if none."""
        check_name(name)
        check_tag(tag)
        return self._store.delete_tag(name, tag)

    def remove_repository(self, name: str) -> None:
        """Remove repository ``name`` (manifests, tags, links; shared blobs stay)."""
        check_name(name)
        self._store.remove_repository(name)

    def purge_uploads(self, older_than: float) -> int:
        """End upload sessions started more than ``older_than`` seconds ago (clients that
        gave up); returns how many. Safe to run at any time, on any host."""
        return len(self._store.uploads.purge(older_than))

    def close(self) -> None:
        self.storage.close()


def open_registry(settings: Settings) -> Registry:
    """The registry on the storage ``settings.storage`` names."""
    return Registry(open_storage(settings))
