"""Registry storage backends (filesystem, S3 on moto), upload sessions, the repository store
and the internal Python API — the same tests on both backends."""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from condaops.registry.api import Registry
from condaops.registry.errors import RegistryError
from condaops.registry.fs_storage import FilesystemStorage
from condaops.registry.layout import blob_key
from condaops.registry.protocol import Digest, digest_of
from condaops.registry.storage import Storage
from condaops.registry.store import RegistryStore
from condaops.registry.uploads import Spooled, spool_chunks
from tests.support.registry_clients import fake_aws_credentials, moto_s3, new_bucket

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with fake_aws_credentials(), moto_s3() as url:
        yield url


OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"


@pytest.fixture(params=["filesystem", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "filesystem":
        return FilesystemStorage(tmp_path / "registry", chunk_size=64 * 1024)
    from condaops.registry.s3_storage import S3Storage

    endpoint = request.getfixturevalue("moto_endpoint")
    s3 = S3Storage(
        bucket=new_bucket(endpoint),
        prefix="/condaops/",
        endpoint=endpoint,
        region="us-east-1",
        scratch=tmp_path / "scratch",
        chunk_size=64 * 1024,
    )
    s3.check()
    return s3


def spooled(storage: Storage, data: bytes) -> Spooled:
    return spool_chunks([data], storage.scratch)


# --- the storage interface ----------------------------------------------------------------


def test_small_objects(storage: Storage) -> None:
    assert storage.read("a/b") is None
    assert storage.size("a/b") is None

    storage.write("a/b", b"one")
    storage.write("a/b", b"three")  # replaced
    storage.write("a/c/d", b"")

    assert storage.read("a/b") == b"three"
    assert storage.size("a/b") == 5
    assert storage.size("a/c/d") == 0
    assert storage.list("a") == ["b", "c"]
    assert storage.list("a/") == ["b", "c"]
    assert storage.list("nothing") == []
    storage.delete("a/b")
    storage.delete("a/b")  # missing is fine
    assert storage.read("a/b") is None
    storage.delete_prefix("a")
    assert storage.list("a") == []


def test_put_file_consumes_the_source(storage: Storage, tmp_path: Path) -> None:
    source = storage.scratch / "upload"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(b"x" * 1000)

    storage.put_file("blobs/x", source)

    assert not source.exists()
    assert storage.read("blobs/x") == b"x" * 1000


def test_stream_in_chunks_and_ranges(storage: Storage) -> None:
    data = os.urandom(300 * 1024)
    storage.write("big", data)

    chunks = list(storage.stream("big"))
    assert b"".join(chunks) == data
    assert max(len(c) for c in chunks) <= 64 * 1024  # never the whole object at once
    assert b"".join(storage.stream("big", 1000, 5000)) == data[1000:6000]
    assert b"".join(storage.stream("big", len(data) - 10)) == data[-10:]
    assert b"".join(storage.stream("big", 5, 0)) == b""
    with pytest.raises(KeyError):
        next(storage.stream("missing"))


def test_concat_and_move(storage: Storage) -> None:
    storage.write("parts/0", b"hello ")
    storage.write("parts/1", b"world")

    digest = storage.concat("joined", ["parts/0", "parts/1"], "sha256")
    storage.move("joined", "final")

    assert digest == hashlib.sha256(b"hello world").hexdigest()
    assert storage.read("final") == b"hello world"
    assert storage.read("joined") is None


def test_download_url(storage: Storage) -> None:
    storage.write("blob", b"content")
    url = storage.download_url("blob")
    if isinstance(storage, FilesystemStorage):
        assert url is None
        assert storage.local_path("blob") is not None
        return
    assert url is not None
    with urllib.request.urlopen(url) as response:  # a presigned URL needs no credentials
        assert response.read() == b"content"


# --- upload sessions ----------------------------------------------------------------------


def test_chunked_upload_survives_a_new_store(storage: Storage) -> None:
    data = os.urandom(200_000)
    first = RegistryStore(storage)
    upload = first.uploads.start("ns/env")
    assert first.uploads.append("ns/env", upload, spooled(storage, data[:70_000]), start=0) == 70_000

    second = RegistryStore(storage)  # another request, process or host
    assert second.uploads.size("ns/env", upload) == 70_000
    second.uploads.append("ns/env", upload, spooled(storage, data[70_000:150_000]), start=70_000)
    size = second.uploads.finish("ns/env", upload, digest_of(data), spooled(storage, data[150_000:]))

    assert size == len(data)
    assert b"".join(storage.stream(blob_key(digest_of(data)))) == data
    assert storage.list("_uploads") == []


def test_single_chunk_upload_is_moved_into_place(storage: Storage) -> None:
    store = RegistryStore(storage)
    upload = store.uploads.start("ns/env")
    store.uploads.append("ns/env", upload, spooled(storage, b"abc"))

    store.uploads.finish("ns/env", upload, digest_of(b"abc"))

    assert storage.read(blob_key(digest_of(b"abc"))) == b"abc"


def test_empty_upload(storage: Storage) -> None:
    store = RegistryStore(storage)
    upload = store.uploads.start("ns/env")
    store.uploads.finish("ns/env", upload, digest_of(b""))
    assert storage.size(blob_key(digest_of(b""))) == 0


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_wrong_digest_ends_the_session(storage: Storage, algorithm: str) -> None:
    store = RegistryStore(storage)
    upload = store.uploads.start("ns/env")
    store.uploads.append("ns/env", upload, spooled(storage, b"abc"))
    wrong = digest_of(b"abd", algorithm)

    with pytest.raises(RegistryError) as caught:
        store.uploads.finish("ns/env", upload, wrong)

    assert caught.value.code.name == "DIGEST_INVALID"
    assert caught.value.detail == {"expected": str(wrong), "actual": str(digest_of(b"abc", algorithm))}
    assert store.blob_size(wrong) is None
    with pytest.raises(RegistryError, match="no upload session"):
        store.uploads.size("ns/env", upload)


def test_sha512_upload(storage: Storage) -> None:
    store = RegistryStore(storage)
    upload = store.uploads.start("ns/env")
    store.uploads.finish("ns/env", upload, digest_of(b"abc", "sha512"), spooled(storage, b"abc"))
    assert storage.read(blob_key(digest_of(b"abc", "sha512"))) == b"abc"


def test_out_of_order_chunk(storage: Storage) -> None:
    store = RegistryStore(storage)
    upload = store.uploads.start("ns/env")
    store.uploads.append("ns/env", upload, spooled(storage, b"abc"))

    with pytest.raises(RegistryError) as caught:
        store.uploads.append("ns/env", upload, spooled(storage, b"def"), start=10)

    assert caught.value.status == 416
    assert caught.value.headers["Range"] == "0-2"
    assert store.uploads.size("ns/env", upload) == 3


def test_sessions_belong_to_their_repository(storage: Storage) -> None:
    store = RegistryStore(storage)
    upload = store.uploads.start("ns/env")
    with pytest.raises(RegistryError) as caught:
        store.uploads.size("ns/other", upload)
    assert caught.value.code.name == "BLOB_UPLOAD_UNKNOWN"


def test_purge_abandoned_sessions(storage: Storage) -> None:
    now = [1000.0]
    store = RegistryStore(storage, clock=lambda: now[0])
    old = store.uploads.start("ns/env")
    now[0] += 7200
    fresh = store.uploads.start("ns/env")

    assert store.uploads.purge(older_than=3600) == [old]
    assert store.uploads.size("ns/env", fresh) == 0


# --- the repository store and the internal API --------------------------------------------


def image_manifest(config: bytes, layer: bytes, **extra: object) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": CONFIG_TYPE, "digest": str(digest_of(config)), "size": len(config)},
            "layers": [{"mediaType": "application/octet-stream", "digest": str(digest_of(layer)), "size": len(layer)}],
            **extra,
        }
    ).encode()


def test_api_put_and_resolve(storage: Storage, tmp_path: Path) -> None:
    registry = Registry(storage)
    layer_file = tmp_path / "layer.tar"
    layer_file.write_bytes(os.urandom(100_000))
    layer = registry.put_blob(layer_file, "application/vnd.oci.image.layer.v1.tar")
    config = registry.put_blob(b"{}", CONFIG_TYPE)
    assert layer.size == 100_000
    assert layer_file.exists()  # a file is read, never moved away
    assert registry.put_blob(b"{}", CONFIG_TYPE) == config  # again: nothing changes

    manifest = image_manifest(b"{}", layer_file.read_bytes())
    pushed = registry.put_manifest("ns/env", manifest, tags=["2026.11.20", "latest"])

    assert pushed.digest == str(digest_of(manifest))
    assert pushed.media_type == OCI_MANIFEST
    assert registry.tags("ns/env") == ["2026.11.20", "latest"]
    assert registry.tags("ns/unknown") == []
    assert registry.resolve("ns/env", "latest") == pushed
    assert registry.resolve("ns/env", pushed.digest) == pushed
    assert registry.resolve("ns/env", "nope") is None
    assert registry.resolve("ns/other", pushed.digest) is None  # manifests belong to a repository


def test_manifest_needs_its_blobs(storage: Storage) -> None:
    registry = Registry(storage)
    registry.put_blob(b"{}")

    with pytest.raises(RegistryError) as caught:
        registry.put_manifest("ns/env", image_manifest(b"{}", b"layer"), tags=["v1"])

    assert caught.value.code.name == "MANIFEST_BLOB_UNKNOWN"
    assert caught.value.detail == {"digest": str(digest_of(b"layer"))}
    assert registry.tags("ns/env") == []


def test_manifest_sizes_must_match(storage: Storage) -> None:
    registry = Registry(storage)
    registry.put_blob(b"{}")
    registry.put_blob(b"layer")
    manifest = json.loads(image_manifest(b"{}", b"layer"))
    manifest["layers"][0]["size"] = 4

    with pytest.raises(RegistryError, match="gives blob .* a size of 4 bytes; it has 5"):
        registry.put_manifest("ns/env", json.dumps(manifest).encode())


def test_index_needs_its_manifests(storage: Storage) -> None:
    registry = Registry(storage)
    registry.put_blob(b"{}")
    registry.put_blob(b"layer")
    child = registry.put_manifest("ns/env", image_manifest(b"{}", b"layer"))
    index = json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [child.to_json()]}
    ).encode()

    with pytest.raises(RegistryError) as caught:
        registry.put_manifest("ns/other", index, tags=["v1"])
    assert caught.value.code.name == "MANIFEST_BLOB_UNKNOWN"
    assert registry.put_manifest("ns/env", index, tags=["v1"]).media_type == "application/vnd.oci.image.index.v1+json"


def test_referrers_are_indexed_by_subject(storage: Storage) -> None:
    registry = Registry(storage)
    store = RegistryStore(storage)
    registry.put_blob(b"{}")
    registry.put_blob(b"layer")
    subject = registry.put_manifest("ns/env", image_manifest(b"{}", b"layer"), tags=["v1"])
    lock = registry.put_manifest(
        "ns/env",
        image_manifest(b"{}", b"layer", artifactType="application/vnd.condaops.lock", subject=subject.to_json()),
    )

    found = store.referrers("ns/env", Digest("sha256", subject.digest.split(":")[1]))

    assert [(r.digest, r.artifact_type) for r in found] == [(lock.digest, "application/vnd.condaops.lock")]
    assert store.referrers("ns/other", Digest("sha256", subject.digest.split(":")[1])) == []


def test_put_manifest_by_digest_checks_it(storage: Storage) -> None:
    store = RegistryStore(storage)
    Registry(storage).put_blob(b"{}")
    Registry(storage).put_blob(b"layer")
    manifest = image_manifest(b"{}", b"layer")

    with pytest.raises(RegistryError) as caught:
        store.put_manifest("ns/env", str(digest_of(b"other")), manifest, OCI_MANIFEST)
    assert caught.value.code.name == "DIGEST_INVALID"
    pushed = store.put_manifest("ns/env", str(digest_of(manifest)), manifest, OCI_MANIFEST)
    assert store.tags("ns/env") == []  # a repository without tags, but with a manifest
    assert store.manifest("ns/env", str(pushed.digest)).body == manifest
