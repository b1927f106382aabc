"""Pure reading of pushed manifests and building of referrers indexes.

The registry stores manifests byte for byte (their digest is over those bytes); this module
only reads what it must check or index: the media type, the blobs and child manifests a
manifest references, its ``subject`` and what the referrers API reports about it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from condaops.reconciler import boundedjson
from condaops.registry.errors import MANIFEST_INVALID, RegistryError
from condaops.registry.protocol import parse_digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = IMAGE_TYPES | INDEX_TYPES
MANIFEST_MAX_BYTES = 4 * 1024 * 1024  # what the spec asks registries to accept at least


@dataclass(frozen=True)
class Descriptor:
    """What a manifest says about a piece of content it points at."""

    media_type: str
    digest: str
    size: int
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    urls: tuple[str, ...] = ()  # foreign layers: fetched from elsewhere, never pushed here

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.artifact_type:
            data["artifactType"] = self.artifact_type
        if self.annotations:
            data["annotations"] = dict(self.annotations)
        return data


@dataclass(frozen=True)
class Manifest:
    """The parts of a manifest the registry checks and indexes."""

    media_type: str
    blobs: tuple[Descriptor, ...]  # config and layers of an image manifest
    children: tuple[Descriptor, ...]  # manifests of an index
    subject: Descriptor | None
    artifact_type: str | None
    annotations: dict[str, str]


def parse_manifest(body: bytes, content_type: str | None) -> Manifest:
    """Check a pushed manifest; MANIFEST_INVALID says what is wrong with it."""
    try:
        data = boundedjson.loads(body, max_bytes=MANIFEST_MAX_BYTES)
    except boundedjson.JSONRejected as exc:
        raise _invalid(f"the manifest is refused: {exc}") from None
    if not isinstance(data, dict):
        raise _invalid("the manifest must be a JSON object")
    if data.get("schemaVersion") != 2:
        raise _invalid("only schemaVersion 2 manifests (OCI, Docker schema 2) are supported")
    media_type = manifest_media_type(data, content_type)
    is_image = media_type in IMAGE_TYPES
    blobs: tuple[Descriptor, ...] = ()
    children: tuple[Descriptor, ...] = ()
    if is_image:
        blobs = (_descriptor(data.get("config"), "config"), *_descriptors(data.get("layers", []), "layers"))
    else:
        children = _descriptors(data.get("manifests", []), "manifests")
    subject = _descriptor(data["subject"], "subject") if data.get("subject") is not None else None
    artifact_type = _optional_text(data, "artifactType")
    if artifact_type is None and is_image and media_type == OCI_MANIFEST:
        artifact_type = blobs[0].media_type  # the spec: fall back to the config's media type
    return Manifest(media_type, blobs, children, subject, artifact_type, _annotations(data.get("annotations")))


def manifest_media_type(data: dict[str, Any], content_type: str | None) -> str:
    """The manifest's own ``mediaType``, else the request's Content-Type, else the shape.

    Both present and different is refused: the Content-Type served later must be the truth.
    """
    declared = _optional_text(data, "mediaType")
    sent = (content_type or "").split(";", 1)[0].strip().lower() or None
    if sent in ("application/json", "application/octet-stream"):
        sent = None  # generic types say nothing about the manifest
    if declared and sent and declared != sent:
        raise _invalid(f"the manifest's mediaType '{declared}' differs from the Content-Type '{sent}'")
    media_type = declared or sent or (OCI_INDEX if "manifests" in data else OCI_MANIFEST)
    if media_type not in MANIFEST_TYPES:
        raise _invalid(f"manifest media type '{media_type}' is not supported; push an OCI or Docker schema 2 manifest")
    return media_type


def referrer(manifest: Manifest, digest: str, size: int) -> Descriptor:
    """How the referrers API lists ``manifest`` (stored with ``digest`` and ``size``)."""
    return Descriptor(manifest.media_type, digest, size, manifest.artifact_type, manifest.annotations)


def referrers_index(referrers: list[Descriptor], artifact_type: str | None) -> dict[str, Any]:
    """The OCI index the referrers API answers with, filtered by ``artifactType`` if given."""
    chosen = [r for r in referrers if artifact_type is None or r.artifact_type == artifact_type]
    chosen.sort(key=lambda r: r.digest)  # a stable answer for the same set of referrers
    return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [r.to_json() for r in chosen]}


def descriptor_from_json(data: dict[str, Any]) -> Descriptor:
    """Read back a descriptor written by ``Descriptor.to_json``."""
    return _descriptor(data, "descriptor")


def _descriptors(value: Any, key: str) -> tuple[Descriptor, ...]:
    if not isinstance(value, list):
        raise _invalid(f"'{key}' must be a list of descriptors")
    return tuple(_descriptor(item, f"{key}[{i}]") for i, item in enumerate(value))


def _descriptor(value: Any, key: str) -> Descriptor:
    if not isinstance(value, dict):
        raise _invalid(f"'{key}' must be a descriptor (mediaType, digest, size)")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise _invalid(f"'{key}.mediaType' must be a non-empty string")
    if not isinstance(digest, str):
        raise _invalid(f"'{key}.digest' must be a string")
    try:
        parse_digest(digest)
    except RegistryError as exc:
        raise _invalid(f"'{key}.digest': {exc.message}") from None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _invalid(f"'{key}.size' must be a whole number >= 0")
    urls = value.get("urls") or ()
    if not isinstance(urls, list | tuple) or not all(isinstance(u, str) for u in urls):
        raise _invalid(f"'{key}.urls' must be a list of URLs")
    artifact_type = _optional_text(value, "artifactType")
    return Descriptor(media_type, digest, size, artifact_type, _annotations(value.get("annotations")), tuple(urls))


def _optional_text(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(f"'{key}' must be a string")
    return value or None


def _annotations(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise _invalid("'annotations' must map strings to strings")
    return dict(value)


def _invalid(message: str) -> RegistryError:
    return RegistryError(MANIFEST_INVALID, message)
