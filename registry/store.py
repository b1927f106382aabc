"""Repositories on storage: blobs, manifests, tags, referrers and upload sessions.

The one place that knows how registry content is laid out (see ``layout``) and what must
hold before a manifest is accepted. Both the HTTP API and the internal Python API use it.
Blocking: call it from a worker thread in async code.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from condaops.registry import layout
from condaops.registry.errors import (
    DIGEST_INVALID,
    MANIFEST_BLOB_UNKNOWN,
    MANIFEST_INVALID,
    MANIFEST_UNKNOWN,
    NAME_UNKNOWN,
    SIZE_INVALID,
    RegistryError,
)
from condaops.registry.manifests import (
    MANIFEST_MAX_BYTES,
    Descriptor,
    Manifest,
    descriptor_from_json,
    parse_manifest,
    referrer,
)
from condaops.registry.protocol import Digest, digest_of, is_digest, parse_digest
from condaops.registry.storage import Storage
from condaops.registry.uploads import Uploads


@dataclass(frozen=True)
class StoredManifest:
    digest: Digest
    media_type: str
    body: bytes


@dataclass(frozen=True)
class PushedManifest:
    digest: Digest
    media_type: str
    size: int
    subject: str | None  # the digest of the manifest's subject, for the OCI-Subject header


class RegistryStore:
    """All repositories of one registry on one storage."""

    def __init__(self, storage: Storage, clock: Callable[[], float] = time.time) -> None:
        self.storage = storage
        self.uploads = Uploads(storage, clock)

    # --- blobs ----------------------------------------------------------------------------

    def blob_size(self, digest: Digest) -> int | None:
        return self.storage.size(layout.blob_key(digest))

    # --- manifests ------------------------------------------------------------------------

    def resolve(self, name: str, reference: str) -> Digest | None:
        """The digest a tag points at, or the digest itself if the repository holds it."""
        if is_digest(reference):
            digest = parse_digest(reference)
        else:
            raw = self.storage.read(layout.tag_key(name, reference))
            if raw is None:
                return None
            digest = parse_digest(raw.decode().strip())
        return digest if self.storage.size(layout.revision_key(name, digest)) is not None else None

    def manifest(self, name: str, reference: str) -> StoredManifest:
        """The manifest a tag or digest names; MANIFEST_UNKNOWN if there is none."""
        digest = self.resolve(name, reference)
        media_type = self.storage.read(layout.revision_key(name, digest)) if digest else None
        body = self.storage.read(layout.blob_key(digest)) if digest and media_type is not None else None
        if digest is None or media_type is None or body is None:
            raise RegistryError(
                MANIFEST_UNKNOWN,
                f"manifest '{reference}' is not in repository '{name}'",
                detail={"name": name, "reference": reference},
            )
        return StoredManifest(digest, media_type.decode(), body)

    def put_manifest(self, name: str, reference: str, body: bytes, content_type: str | None) -> PushedManifest:
        """Check and store a manifest under its digest, and under ``reference`` if a tag."""
        if len(body) > MANIFEST_MAX_BYTES:
            message = f"the manifest has {len(body)} bytes; at most {MANIFEST_MAX_BYTES} are accepted"
            raise RegistryError(SIZE_INVALID, message, status=413)
        by_digest = is_digest(reference)
        digest = digest_of(body, parse_digest(reference).algorithm if by_digest else "sha256")
        if by_digest and str(digest) != reference:
            raise RegistryError(
                DIGEST_INVALID,
                f"the manifest's digest is {digest}, not {reference}",
                detail={"expected": reference, "actual": str(digest)},
            )
        manifest = parse_manifest(body, content_type)
        self._check_references(name, manifest)
        if self.storage.size(layout.blob_key(digest)) is None:
            self.storage.write(layout.blob_key(digest), body)
        for linked in (digest, *(parse_digest(b.digest) for b in manifest.blobs if not b.urls)):
            self._link(name, linked)  # before the manifest is visible: its blobs are readable with it
        self.storage.write(layout.revision_key(name, digest), manifest.media_type.encode())
        if manifest.subject is not None:
            entry = referrer(manifest, str(digest), len(body))
            key = layout.referrer_key(name, parse_digest(manifest.subject.digest), digest)
            self.storage.write(key, json.dumps(entry.to_json(), sort_keys=True).encode())
        if not by_digest:  # last: a tag only ever points at a complete manifest
            self.storage.write(layout.tag_key(name, reference), str(digest).encode())
        subject = manifest.subject.digest if manifest.subject else None
        return PushedManifest(digest, manifest.media_type, len(body), subject)

    def _check_references(self, name: str, manifest: Manifest) -> None:
        for blob in manifest.blobs:
            if blob.urls:
                continue  # a foreign layer: clients fetch it from its URLs
            size = self.blob_size(parse_digest(blob.digest))
            if size is None:
                raise RegistryError(
                    MANIFEST_BLOB_UNKNOWN,
                    f"the manifest references blob {blob.digest}, which was not pushed; push it first",
                    detail={"digest": blob.digest},
                )
            if size != blob.size:
                raise RegistryError(
                    MANIFEST_INVALID,
                    f"the manifest gives blob {blob.digest} a size of {blob.size} bytes; it has {size}",
                    detail={"digest": blob.digest, "size": size},
                )
        for child in manifest.children:
            if self.storage.size(layout.revision_key(name, parse_digest(child.digest))) is None:
                raise RegistryError(
                    MANIFEST_BLOB_UNKNOWN,
                    f"the index references manifest {child.digest}, which is not in '{name}'; push it first",
                    detail={"digest": child.digest},
                )

    def _link(self, name: str, digest: Digest) -> None:
        key = layout.layer_key(name, digest)
        if self.storage.size(key) is None:
            self.storage.write(key, b"")

    def repository_has_blob(self, name: str, digest: Digest) -> bool:
        """Whether a manifest of ``name`` references blob ``digest`` (or is it).

        Answered from the repository's ``_layers`` links; repositories pushed before links
        existed are searched once and the link written, so the answer is cheap next time."""
        if self.storage.size(layout.layer_key(name, digest)) is not None:
            return True
        for algorithm in ("sha256", "sha512"):
            for hex_digest in self.storage.list(layout.revisions_key(name, algorithm)):
                stored = Digest(algorithm, hex_digest)
                if stored == digest or digest in self._blobs_of(stored):
                    self._link(name, digest)
                    return True
        return False

    def stored_manifest(self, digest: Digest) -> Manifest | None:
        """The manifest stored as blob ``digest``; None when it is missing or no manifest."""
        body = self.storage.read(layout.blob_key(digest))
        if body is None:
            return None
        try:
            return parse_manifest(body, None)
        except RegistryError:
            return None

    def _blobs_of(self, manifest_digest: Digest) -> set[Digest]:
        manifest = self.stored_manifest(manifest_digest)
        return {parse_digest(b.digest) for b in manifest.blobs} if manifest else set()

    def remove_repository(self, name: str) -> None:
        """Remove a repository's manifests, tags, links and referrers (blobs stay: others may
        share them; ``registry.collect`` sweeps what nothing references). Repositories
        nested under ``name`` (``name/sub``) are not touched."""
        for part in (layout.MANIFESTS, "_layers", "_referrers"):
            self.storage.delete_prefix(f"{layout.repository_key(name)}/{part}")

    def delete_tag(self, name: str, tag: str) -> bool:
        """Remove a tag (the manifest stays, reachable by digest); False if there was none."""
        key = layout.tag_key(name, tag)
        if self.storage.size(key) is None:
            return False
        self.storage.delete(key)
        return True

    # --- listings -------------------------------------------------------------------------

    def repositories(self, limit: int = 100_000) -> list[str]:
        """Every repository that holds a manifest, sorted (at most ``limit``)."""
        found: list[str] = []
        pending = [""]
        while pending and len(found) < limit:
            name = pending.pop()
            prefix = layout.repository_key(name) if name else layout.REPOSITORIES
            children = self.storage.list(prefix)
            if name and layout.MANIFESTS in children:
                found.append(name)
            # Path components start with a letter or digit: "_" folders are the repository's own.
            pending += [f"{name}/{c}" if name else c for c in children if c[:1].isalnum()]
        return sorted(found)

    def tags(self, name: str) -> list[str]:
        """The repository's tags (sorted); NAME_UNKNOWN if it holds no manifest."""
        tags = self.storage.list(layout.tags_key(name))
        if not tags and not self.storage.list(layout.revisions_key(name)):
            raise RegistryError(NAME_UNKNOWN, f"there is no repository '{name}'", detail={"name": name})
        return tags

    def referrers(self, name: str, subject: Digest) -> list[Descriptor]:
        """Descriptors of the manifests in ``name`` whose subject is ``subject``."""
        prefix = layout.referrers_key(name, subject)
        found = []
        for entry in self.storage.list(prefix):
            raw = self.storage.read(f"{prefix}/{entry}")
            if raw is not None:
                found.append(descriptor_from_json(json.loads(raw)))
        return found
