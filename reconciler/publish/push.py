"""Pushing a build's image and its artifacts to one target (``targets.Target``).

The image is pushed blob by blob (layers, config), then its manifest with every tag. The
lockfiles and the conda-pack tarball are OCI artifacts whose ``subject`` is the image, so
clients find them with the referrers API (``oras discover``, or the referrers tag schema
where a registry has no such API); they are pushed untagged. Blobs already stored (layers
a previous build pushed) cost a hash (built-in) or a HEAD request (external) and nothing more.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from condaops.reconciler.publish.image import OCI_CONFIG, OCI_MANIFEST, Image, canonical_json
from condaops.reconciler.publish.targets import Target
from condaops.registry.api import Descriptor

LOCKFILES_ARTIFACT = "application/vnd.condaops.lockfiles.v1"
PACK_ARTIFACT = "application/vnd.condaops.conda-pack.v1"
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
TITLE = "org.opencontainers.image.title"
MEDIA_TYPES = {
    ".yml": "application/yaml",
    ".yaml": "application/yaml",
    ".lock": "text/plain",
    ".zst": "application/vnd.conda-pack.tar+zstd",
    ".gz": "application/vnd.conda-pack.tar+gzip",
}


@dataclass(frozen=True, slots=True)
class Pushed:
    """Where a push put things: the target, the repository and the manifest descriptors
    (``artifact_types``: the artifact type of each of ``artifacts``, in order)."""

    name: str
    image: Descriptor
    tags: tuple[str, ...]
    artifacts: tuple[Descriptor, ...] = ()
    target: str = "builtin"
    artifact_types: tuple[str, ...] = ()
    builtin: bool = False  # the target is this service's own registry


def push_image(target: Target, name: str, image: Image, tags: Sequence[str]) -> Descriptor:
    """Store ``image``'s blobs and manifest in ``name`` and point ``tags`` at it."""
    for layer in image.layers:
        target.put_blob(name, layer.file, layer.media_type, digest=layer.digest)  # a layer it has is not re-read
    target.put_blob(name, image.config, OCI_CONFIG)
    return target.put_manifest(name, image.manifest, media_type=OCI_MANIFEST, tags=list(tags))


def push_artifact(
    target: Target,
    name: str,
    files: Sequence[Path],
    *,
    artifact_type: str,
    subject: Descriptor,
    annotations: Mapping[str, str] | None = None,
) -> Descriptor:
    """Store ``files`` as one OCI artifact attached to ``subject``; untagged."""
    empty = target.put_blob(name, b"{}", EMPTY_CONFIG)
    layers = []
    for path in sorted(files, key=lambda p: p.name):
        blob = target.put_blob(name, path, media_type_of(path))
        layers.append({**_descriptor(blob), "annotations": {TITLE: path.name}})
    manifest: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": _descriptor(empty),
        "layers": layers,
        "subject": _descriptor(subject),
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    return target.put_manifest(name, canonical_json(manifest), media_type=OCI_MANIFEST)


def media_type_of(path: Path) -> str:
    return MEDIA_TYPES.get(path.suffix, "application/octet-stream")


def _descriptor(d: Descriptor) -> dict[str, object]:
    return {"mediaType": d.media_type, "digest": d.digest, "size": d.size}
