"""Reading pushed manifests and building referrers indexes (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from condaops.registry.errors import RegistryError
from condaops.registry.manifests import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    manifest_media_type,
    parse_manifest,
    referrer,
    referrers_index,
)

D1, D2, D3 = ("sha256:" + c * 64 for c in "123")
CONFIG = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D1, "size": 2}
LAYER = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": D2, "size": 10}


def image(**extra: Any) -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": CONFIG, "layers": [LAYER], **extra}


def body(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


def test_image_manifest_lists_its_blobs() -> None:
    manifest = parse_manifest(body(image()), OCI_MANIFEST)

    assert manifest.media_type == OCI_MANIFEST
    assert [b.digest for b in manifest.blobs] == [D1, D2]
    assert manifest.children == ()
    assert manifest.subject is None
    assert manifest.artifact_type == CONFIG["mediaType"]  # the spec's fallback


def test_artifact_with_subject() -> None:
    data = image(
        artifactType="application/vnd.condaops.lock",
        subject={"mediaType": OCI_MANIFEST, "digest": D3, "size": 5},
        annotations={"org.condaops.env": "ns/env"},
    )
    manifest = parse_manifest(body(data), None)

    assert manifest.subject == Descriptor(OCI_MANIFEST, D3, 5)
    assert manifest.artifact_type == "application/vnd.condaops.lock"
    assert referrer(manifest, D1, 123).to_json() == {
        "mediaType": OCI_MANIFEST,
        "digest": D1,
        "size": 123,
        "artifactType": "application/vnd.condaops.lock",
        "annotations": {"org.condaops.env": "ns/env"},
    }


def test_index_lists_its_manifests() -> None:
    data = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": D3, "size": 7, "platform": {"os": "linux", "architecture": "amd64"}}
        ],
    }
    manifest = parse_manifest(body(data), OCI_INDEX)

    assert manifest.blobs == ()
    assert [c.digest for c in manifest.children] == [D3]
    assert manifest.artifact_type is None


def test_foreign_layers_keep_their_urls() -> None:
    layer = {
        **LAYER,
        "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "urls": ["https://example.com/layer"],
    }
    data = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": CONFIG, "layers": [layer]}
    assert parse_manifest(body(data), DOCKER_MANIFEST).blobs[1].urls == ("https://example.com/layer",)


@pytest.mark.parametrize(
    ("data", "content_type", "expected"),
    [
        ({"mediaType": OCI_MANIFEST}, None, OCI_MANIFEST),
        ({"mediaType": OCI_MANIFEST}, OCI_MANIFEST, OCI_MANIFEST),
        ({}, DOCKER_MANIFEST, DOCKER_MANIFEST),
        ({}, f"{DOCKER_LIST}; charset=utf-8", DOCKER_LIST),
        ({"mediaType": OCI_INDEX}, "application/json", OCI_INDEX),
        ({}, None, OCI_MANIFEST),
        ({"manifests": []}, None, OCI_INDEX),
        ({}, "application/octet-stream", OCI_MANIFEST),
    ],
    ids=[
        "declared",
        "both-equal",
        "content-type",
        "params",
        "generic-type",
        "image-shape",
        "index-shape",
        "octet-stream",
    ],
)
def test_manifest_media_type(data: dict[str, Any], content_type: str | None, expected: str) -> None:
    assert manifest_media_type(data, content_type) == expected


@pytest.mark.parametrize(
    ("raw", "content_type", "message"),
    [
        (b"{not json", None, "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, None, "nests 100000 levels deep; at most 64"),
        (b"[]", None, "JSON object"),
        (body({**image(), "schemaVersion": 1}), None, "schemaVersion 2"),
        (body(image()), DOCKER_MANIFEST, "differs from the Content-Type"),
        (body({**image(), "mediaType": "application/vnd.oci.artifact.manifest.v1+json"}), None, "not supported"),
        (body({**image(), "config": None}), None, "'config' must be a descriptor"),
        (body({**image(), "layers": {}}), None, "'layers' must be a list"),
        (body(image(layers=[{**LAYER, "digest": "sha256:nope"}])), None, "'layers[0].digest'"),
        (body(image(layers=[{**LAYER, "size": -1}])), None, "'layers[0].size'"),
        (body(image(layers=[{**LAYER, "size": True}])), None, "'layers[0].size'"),
        (body(image(layers=[{**LAYER, "mediaType": ""}])), None, "'layers[0].mediaType'"),
        (body(image(annotations={"a": 1})), None, "'annotations'"),
        (body(image(artifactType=5)), None, "'artifactType' must be a string"),
        (body(image(subject={"digest": D1})), None, "'subject.mediaType'"),
    ],
    ids=[
        "not-json",
        "deep",
        "not-object",
        "schema-1",
        "type-mismatch",
        "artifact-manifest",
        "no-config",
        "layers-map",
        "bad-digest",
        "negative-size",
        "bool-size",
        "empty-type",
        "annotation-int",
        "artifact-type-int",
        "subject-incomplete",
    ],
)
def test_parse_manifest_refuses(raw: bytes, content_type: str | None, message: str) -> None:
    with pytest.raises(RegistryError) as caught:
        parse_manifest(raw, content_type)
    assert caught.value.code.name == "MANIFEST_INVALID"
    assert message in caught.value.message


def test_referrers_index_filters_and_sorts() -> None:
    sbom = Descriptor(OCI_MANIFEST, D2, 1, "application/spdx+json")
    lock = Descriptor(OCI_MANIFEST, D1, 1, "application/vnd.condaops.lock")
    other = Descriptor(OCI_MANIFEST, D3, 1, "application/spdx+json")

    everything = referrers_index([sbom, lock, other], None)
    assert everything["mediaType"] == OCI_INDEX
    assert [m["digest"] for m in everything["manifests"]] == [D1, D2, D3]
    only_sboms = referrers_index([sbom, lock, other], "application/spdx+json")
    assert [m["digest"] for m in only_sboms["manifests"]] == [D2, D3]
    assert referrers_index([], None) == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
