"""The distribution API over HTTP (uvicorn on 127.0.0.1), driven request by request with
httpx: pushing with and without a token, digests, chunked uploads, ranges, negotiation,
tag pages, referrers, mounts, and the S3 backend's redirects."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from condaops.registry.protocol import digest_of
from tests.support.registry_clients import (
    TOKEN,
    RunningRegistry,
    fake_aws_credentials,
    moto_s3,
    new_bucket,
    registry_process,
    registry_servers,
)

pytestmark = pytest.mark.integration

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


ServeRegistry = Callable[..., RunningRegistry]


@pytest.fixture
def serve_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeRegistry]:
    with registry_servers(tmp_path_factory) as serve:
        yield serve


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with fake_aws_credentials(), moto_s3() as url:
        yield url


@pytest.fixture
def registry(serve_registry: ServeRegistry) -> RunningRegistry:
    return serve_registry()


@pytest.fixture
def client(registry: RunningRegistry) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registry.url, timeout=30) as http:
        yield http


def push_blob(client: httpx.Client, name: str, data: bytes) -> str:
    digest = str(digest_of(data))
    response = client.post(f"/v2/{name}/blobs/uploads/", params={"digest": digest}, content=data, headers=AUTH)
    assert response.status_code == 201, response.text
    return digest


def manifest_for(client: httpx.Client, name: str, layer: bytes = b"layer", **extra: Any) -> bytes:
    config = b'{"os": "linux"}'
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": push_blob(client, name, config),
                "size": len(config),
            },
            "layers": [
                {"mediaType": "application/octet-stream", "digest": push_blob(client, name, layer), "size": len(layer)}
            ],
            **extra,
        }
    ).encode()


def put_manifest(
    client: httpx.Client, name: str, ref: str, body: bytes, media_type: str = OCI_MANIFEST
) -> httpx.Response:
    return client.put(f"/v2/{name}/manifests/{ref}", content=body, headers={**AUTH, "Content-Type": media_type})


def error_code(response: httpx.Response) -> str:
    return str(response.json()["errors"][0]["code"])


# --- base, auth ---------------------------------------------------------------------------


def test_base_is_open(client: httpx.Client) -> None:
    for path in ("/v2/", "/v2"):
        response = client.get(path)
        assert response.status_code == 200
        assert response.json() == {}
        assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
        assert response.headers["WWW-Authenticate"] == 'Basic realm="condaops"'


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": "Basic dXNlcjp3cm9uZw=="}],
    ids=["no-token", "wrong-bearer", "wrong-basic"],
)
def test_push_needs_a_token(client: httpx.Client, headers: dict[str, str]) -> None:
    for method, path in [
        ("POST", "/v2/ns/env/blobs/uploads/"),
        ("PUT", "/v2/ns/env/manifests/v1"),
        ("PATCH", "/v2/ns/env/blobs/uploads/0123456789abcdef0123456789abcdef"),
    ]:
        response = client.request(method, path, headers=headers, content=b"x")
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Basic realm="condaops"'
        assert error_code(response) == "UNAUTHORIZED"


def test_basic_auth_with_the_token_as_password(client: httpx.Client) -> None:
    response = client.post("/v2/ns/env/blobs/uploads/", auth=("anyone", TOKEN))
    assert response.status_code == 202


def test_registry_without_tokens_refuses_every_push(serve_registry: ServeRegistry) -> None:
    registry = serve_registry(tokens=())
    response = httpx.post(f"{registry.url}/v2/ns/env/blobs/uploads/", headers=AUTH)
    assert response.status_code == 401


# --- blob uploads -------------------------------------------------------------------------


def test_monolithic_upload_checks_the_digest(client: httpx.Client) -> None:
    wrong = str(digest_of(b"something else"))
    response = client.post("/v2/ns/env/blobs/uploads/", params={"digest": wrong}, content=b"data", headers=AUTH)

    assert response.status_code == 400
    assert error_code(response) == "DIGEST_INVALID"
    assert client.head(f"/v2/ns/env/blobs/{wrong}").status_code == 404
    assert client.head(f"/v2/ns/env/blobs/{digest_of(b'data')}").status_code == 404


def test_chunked_upload(client: httpx.Client) -> None:
    data = os.urandom(150_000)
    started = client.post("/v2/ns/env/blobs/uploads/", headers=AUTH)
    assert started.status_code == 202
    assert started.headers["Range"] == "0-0"
    location, upload_id = started.headers["Location"], started.headers["Docker-Upload-UUID"]
    assert location.endswith(upload_id)

    first = client.patch(location, content=data[:100_000], headers={**AUTH, "Content-Range": "0-99999"})
    assert first.status_code == 202
    assert first.headers["Range"] == "0-99999"
    status = client.get(first.headers["Location"], headers=AUTH)
    assert (status.status_code, status.headers["Range"]) == (204, "0-99999")
    out_of_order = client.patch(location, content=b"x", headers={**AUTH, "Content-Range": "5-5"})
    assert out_of_order.status_code == 416
    assert out_of_order.headers["Range"] == "0-99999"

    digest = str(digest_of(data))
    done = client.put(location, params={"digest": digest}, content=data[100_000:], headers=AUTH)
    assert done.status_code == 201, done.text
    assert done.headers["Docker-Content-Digest"] == digest
    assert done.headers["Location"] == f"/v2/ns/env/blobs/{digest}"
    assert client.get(f"/v2/ns/env/blobs/{digest}").content == data
    assert client.get(location, headers=AUTH).status_code == 404  # the session is over


def test_streamed_patch_without_content_range(client: httpx.Client) -> None:
    """What skopeo and docker do: one PATCH with a chunked body, then an empty PUT."""
    data = os.urandom(3 * 1024 * 1024 + 5)
    location = client.post("/v2/ns/env/blobs/uploads/", headers=AUTH).headers["Location"]

    def body() -> Iterator[bytes]:
        for start in range(0, len(data), 256 * 1024):
            yield data[start : start + 256 * 1024]

    patched = client.patch(location, content=body(), headers=AUTH)
    assert patched.headers["Range"] == f"0-{len(data) - 1}"
    done = client.put(patched.headers["Location"], params={"digest": str(digest_of(data))}, headers=AUTH)
    assert done.status_code == 201


def test_finishing_with_a_wrong_digest(client: httpx.Client) -> None:
    location = client.post("/v2/ns/env/blobs/uploads/", headers=AUTH).headers["Location"]
    client.patch(location, content=b"abc", headers=AUTH)

    no_digest = client.put(location, headers=AUTH)
    wrong = client.put(location, params={"digest": str(digest_of(b"abd"))}, headers=AUTH)

    assert (no_digest.status_code, error_code(no_digest)) == (400, "DIGEST_INVALID")
    assert (wrong.status_code, error_code(wrong)) == (400, "DIGEST_INVALID")
    assert wrong.json()["errors"][0]["detail"]["actual"] == str(digest_of(b"abc"))


def test_cancel_upload(client: httpx.Client) -> None:
    location = client.post("/v2/ns/env/blobs/uploads/", headers=AUTH).headers["Location"]
    assert client.delete(location, headers=AUTH).status_code == 204
    response = client.patch(location, content=b"x", headers=AUTH)
    assert (response.status_code, error_code(response)) == (404, "BLOB_UPLOAD_UNKNOWN")


def test_cross_repository_mount(client: httpx.Client) -> None:
    digest = push_blob(client, "ns/one", b"shared layer")

    mounted = client.post("/v2/ns/two/blobs/uploads/", params={"mount": digest, "from": "ns/one"}, headers=AUTH)
    unknown = str(digest_of(b"never pushed"))
    fallback = client.post("/v2/ns/two/blobs/uploads/", params={"mount": unknown, "from": "ns/one"}, headers=AUTH)

    assert mounted.status_code == 201
    assert mounted.headers["Location"] == f"/v2/ns/two/blobs/{digest}"
    assert mounted.headers["Docker-Content-Digest"] == digest
    assert client.get(f"/v2/ns/two/blobs/{digest}").content == b"shared layer"
    assert fallback.status_code == 202  # the spec: an upload session instead
    assert "/v2/ns/two/blobs/uploads/" in fallback.headers["Location"]


# --- blob downloads -----------------------------------------------------------------------


def test_blob_head_and_ranges(client: httpx.Client) -> None:
    data = bytes(range(256)) * 40
    digest = push_blob(client, "ns/env", data)
    url = f"/v2/ns/env/blobs/{digest}"

    head = client.head(url)
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(data))
    assert head.headers["Docker-Content-Digest"] == digest
    assert head.headers["Accept-Ranges"] == "bytes"
    part = client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert part.content == data[100:200]
    tail = client.get(url, headers={"Range": "bytes=-10"})
    assert (tail.status_code, tail.content) == (206, data[-10:])
    beyond = client.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{len(data)}"
    whole = client.get(url)
    assert (whole.status_code, whole.content) == (200, data)
    assert whole.headers["Content-Type"] == "application/octet-stream"


def test_unknown_blob(client: httpx.Client) -> None:
    digest = str(digest_of(b"nothing"))
    response = client.get(f"/v2/ns/env/blobs/{digest}")
    assert (response.status_code, error_code(response)) == (404, "BLOB_UNKNOWN")
    head = client.head(f"/v2/ns/env/blobs/{digest}")
    assert head.status_code == 404
    assert head.content == b""


# --- manifests ----------------------------------------------------------------------------


def test_manifest_by_tag_and_digest(client: httpx.Client) -> None:
    body = manifest_for(client, "ns/env")
    digest = str(digest_of(body))

    pushed = put_manifest(client, "ns/env", "v1", body)
    assert pushed.status_code == 201, pushed.text
    assert pushed.headers["Docker-Content-Digest"] == digest
    assert pushed.headers["Location"] == f"/v2/ns/env/manifests/{digest}"
    for ref in ("v1", digest):
        for method in ("GET", "HEAD"):
            response = client.request(method, f"/v2/ns/env/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
            assert response.status_code == 200
            assert response.headers["Content-Type"] == OCI_MANIFEST
            assert response.headers["Docker-Content-Digest"] == digest
            assert response.headers["Content-Length"] == str(len(body))
            assert response.content == (body if method == "GET" else b"")


def test_manifest_content_negotiation(client: httpx.Client) -> None:
    put_manifest(client, "ns/env", "v1", manifest_for(client, "ns/env"))

    refused = client.get("/v2/ns/env/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
    listed = client.get("/v2/ns/env/manifests/v1", headers=[("Accept", DOCKER_MANIFEST), ("Accept", OCI_MANIFEST)])

    assert (refused.status_code, error_code(refused)) == (404, "MANIFEST_UNKNOWN")
    assert listed.status_code == 200


def test_docker_manifest_keeps_its_media_type(client: httpx.Client) -> None:
    body = json.loads(manifest_for(client, "ns/env"))
    del body["mediaType"]
    raw = json.dumps(body).encode()

    assert put_manifest(client, "ns/env", "docker", raw, DOCKER_MANIFEST).status_code == 201
    assert client.get("/v2/ns/env/manifests/docker").headers["Content-Type"] == DOCKER_MANIFEST


@pytest.mark.parametrize(
    ("ref", "mutate", "status", "code"),
    [
        ("v1", lambda m: b"{" + m, 400, "MANIFEST_INVALID"),
        ("v1", lambda m: m[:20], 400, "MANIFEST_INVALID"),
        (str(digest_of(b"other")), lambda m: m, 400, "DIGEST_INVALID"),
        (".bad", lambda m: m, 400, "TAG_INVALID"),
        ("v1", lambda m: m + b" " * (4 * 1024 * 1024), 413, "SIZE_INVALID"),
        ("v1", lambda m: b"[" * 100_000 + b"]" * 100_000, 400, "MANIFEST_INVALID"),
        ("v1", lambda m: b'{"a":' * 100_000, 400, "MANIFEST_INVALID"),
    ],
    ids=["bad-json", "truncated", "wrong-digest", "bad-tag", "too-large", "deep-100000", "deep-unclosed"],
)
def test_manifest_refused(client: httpx.Client, ref: str, mutate: Any, status: int, code: str) -> None:
    response = put_manifest(client, "ns/env", ref, mutate(manifest_for(client, "ns/env")))
    assert (response.status_code, error_code(response)) == (status, code)


def test_manifest_blob_unknown(client: httpx.Client) -> None:
    body = json.loads(manifest_for(client, "ns/env"))
    body["layers"][0]["digest"] = str(digest_of(b"not pushed"))

    response = put_manifest(client, "ns/env", "v1", json.dumps(body).encode())

    assert (response.status_code, error_code(response)) == (400, "MANIFEST_BLOB_UNKNOWN")
    assert response.json()["errors"][0]["detail"] == {"digest": str(digest_of(b"not pushed"))}


def test_deleting_is_unsupported(client: httpx.Client) -> None:
    response = client.delete("/v2/ns/env/manifests/v1", headers=AUTH)
    assert (response.status_code, error_code(response)) == (405, "UNSUPPORTED")


def test_unknown_endpoint(client: httpx.Client) -> None:
    response = client.get("/v2/ns/env/whatever")
    assert (response.status_code, error_code(response)) == (404, "NOT_FOUND")


# --- tags and referrers -------------------------------------------------------------------


def test_tag_pages_follow_link_headers(client: httpx.Client) -> None:
    body = manifest_for(client, "ns/env")
    tags = ["v1", "v2", "v10", "latest", "2026.11.20"]
    for tag in tags:
        put_manifest(client, "ns/env", tag, body)

    seen, url, pages = [], "/v2/ns/env/tags/list?n=2", 0
    while url:
        response = client.get(url)
        assert response.status_code == 200
        assert response.json()["name"] == "ns/env"
        seen += response.json()["tags"]
        link = response.headers.get("Link")
        url = link.split(";")[0].strip("<>") if link else ""
        pages += 1

    assert seen == sorted(tags)
    assert pages == 3
    assert client.get("/v2/ns/env/tags/list").json()["tags"] == sorted(tags)
    assert client.get("/v2/ns/env/tags/list", params={"n": "x"}).status_code == 400
    missing = client.get("/v2/ns/missing/tags/list")
    assert (missing.status_code, error_code(missing)) == (404, "NAME_UNKNOWN")


def test_referrers(client: httpx.Client) -> None:
    subject_body = manifest_for(client, "ns/env")
    put_manifest(client, "ns/env", "v1", subject_body)
    subject = {"mediaType": OCI_MANIFEST, "digest": str(digest_of(subject_body)), "size": len(subject_body)}
    referrer_digests = {}
    for artifact_type in ("application/vnd.condaops.lock", "application/spdx+json"):
        body = manifest_for(
            client,
            "ns/env",
            artifactType=artifact_type,
            subject=subject,
            annotations={"org.opencontainers.image.created": "2026-11-20T00:00:00Z"},
        )
        pushed = put_manifest(client, "ns/env", str(digest_of(body)), body)
        assert pushed.status_code == 201
        assert pushed.headers["OCI-Subject"] == subject["digest"]
        referrer_digests[artifact_type] = str(digest_of(body))

    everything = client.get(f"/v2/ns/env/referrers/{subject['digest']}")
    only_locks = client.get(
        f"/v2/ns/env/referrers/{subject['digest']}", params={"artifactType": "application/vnd.condaops.lock"}
    )
    none = client.get(f"/v2/ns/env/referrers/{digest_of(b'no subject')}")

    assert everything.headers["Content-Type"] == OCI_INDEX
    assert {m["digest"] for m in everything.json()["manifests"]} == set(referrer_digests.values())
    created = {"org.opencontainers.image.created": "2026-11-20T00:00:00Z"}
    assert everything.json()["manifests"][0]["annotations"] == created
    assert [m["digest"] for m in only_locks.json()["manifests"]] == [referrer_digests["application/vnd.condaops.lock"]]
    assert only_locks.headers["OCI-Filters-Applied"] == "artifactType"
    assert "OCI-Filters-Applied" not in everything.headers
    assert (none.status_code, none.json()["manifests"]) == (200, [])


# --- the S3 backend -----------------------------------------------------------------------


@pytest.mark.parametrize("redirect", [True, False], ids=["presigned-redirect", "streamed"])
def test_s3_backend(serve_registry: ServeRegistry, moto_endpoint: str, tmp_path: Path, redirect: bool) -> None:
    from condaops.registry.s3_storage import S3Storage  # boto3: imported once moto_s3 found it

    storage = S3Storage(
        bucket=new_bucket(moto_endpoint),
        endpoint=moto_endpoint,
        region="us-east-1",
        redirect=redirect,
        scratch=tmp_path / "scratch",
    )
    registry = serve_registry(storage=storage)
    data = os.urandom(2 * 1024 * 1024)
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        digest = push_blob(client, "ns/env", data)
        put_manifest(client, "ns/env", "v1", manifest_for(client, "ns/env", layer=data))

        response = client.get(f"/v2/ns/env/blobs/{digest}")
        if redirect:
            assert response.status_code == 307
            assert response.headers["Location"].startswith(moto_endpoint)
        followed = client.get(f"/v2/ns/env/blobs/{digest}", follow_redirects=True, headers={"Range": "bytes=10-19"})
        head = client.head(f"/v2/ns/env/blobs/{digest}")
        manifest = client.get("/v2/ns/env/manifests/v1")

    assert (followed.status_code, followed.content) == (206, data[10:20])
    assert (head.status_code, head.headers["Content-Length"]) == (200, str(len(data)))
    assert manifest.status_code == 200


# --- memory -------------------------------------------------------------------------------


def test_big_blobs_are_never_held_in_memory(tmp_path: Path) -> None:
    """Push and pull a 200 MB blob through a registry process; its peak memory stays far
    below the blob's size."""
    size, chunk = 200 * 1024 * 1024, os.urandom(1024 * 1024)
    digest = digest_of(chunk * 200)
    with registry_process(tmp_path / "store") as server, httpx.Client(base_url=f"http://{server.host}") as client:
        baseline = server.peak_rss()
        location = client.post("/v2/ns/env/blobs/uploads/", headers=AUTH).headers["Location"]
        patched = client.patch(location, content=(chunk for _ in range(200)), headers=AUTH, timeout=120)
        done = client.put(patched.headers["Location"], params={"digest": str(digest)}, headers=AUTH, timeout=120)
        assert done.status_code == 201, done.text
        received = 0
        with client.stream("GET", f"/v2/ns/env/blobs/{digest}", timeout=120) as response:
            for part in response.iter_raw(1024 * 1024):
                received += len(part)
        grown = server.peak_rss() - baseline

    assert received == size
    assert grown < 64 * 1024 * 1024, f"the registry grew by {grown // 2**20} MiB for a {size // 2**20} MiB blob"
