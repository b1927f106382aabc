"""Pushes within bounds: blob size, open upload sessions, free disk space (a real, small
tmpfs filled by a push), abandoned sessions purged. Pulls keep working throughout."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from condaops.config.settings import RegistrySettings, Settings
from condaops.registry.app import create_registry_app
from condaops.registry.backends import open_storage
from condaops.registry.layout import UPLOADS, upload_key
from condaops.registry.protocol import digest_of
from tests.support.registry_clients import TOKEN, serve_asgi
from tests.support.tmpfs import small_tmpfs

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {TOKEN}"}
MiB = 1024 * 1024


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., httpx.Client]]:
    """``serve(store=..., min_free_space=..., **registry)`` → a client of a fresh registry."""
    import contextlib

    with contextlib.ExitStack() as stack:

        def start(store: Path | None = None, min_free_space: int = 0, **registry: object) -> httpx.Client:
            settings = Settings(
                store=store or tmp_path / "store",
                min_free_space=min_free_space,
                registry=RegistrySettings(push_tokens=(TOKEN,), **registry),  # type: ignore[arg-type]
            )
            host = stack.enter_context(serve_asgi(create_registry_app(settings)))
            return stack.enter_context(httpx.Client(base_url=f"http://{host}", headers=AUTH, timeout=60))

        yield start


def code(response: httpx.Response) -> str:
    return str(response.json()["errors"][0]["code"])


def start_session(client: httpx.Client, name: str = "ns/env") -> str:
    started = client.post(f"/v2/{name}/blobs/uploads/")
    assert started.status_code == 202, started.text
    return str(started.headers["Location"])


def test_a_blob_over_the_limit_is_refused_before_and_while_it_arrives(serve: Callable[..., httpx.Client]) -> None:
    client = serve(max_blob_size=MiB)
    big = b"x" * (MiB + 1)
    announced = client.post("/v2/ns/env/blobs/uploads/", params={"digest": str(digest_of(big))}, content=big)
    assert (announced.status_code, code(announced)) == (413, "SIZE_INVALID")
    assert "registry.max_blob_size" in announced.json()["errors"][0]["message"]

    def streamed() -> Iterator[bytes]:  # no Content-Length: refused once the limit is passed
        for _ in range(4):
            yield b"y" * (MiB // 2)

    location = start_session(client)
    refused = client.patch(location, content=streamed())
    assert (refused.status_code, code(refused)) == (413, "SIZE_INVALID")
    location = start_session(client)
    assert client.patch(location, content=b"z" * (MiB // 2 + 10)).status_code == 202
    second = client.patch(location, content=b"z" * (MiB // 2))  # the session's chunks together
    assert (second.status_code, code(second)) == (413, "SIZE_INVALID")


def test_open_sessions_are_capped_and_abandoned_ones_purged(serve: Callable[..., httpx.Client], tmp_path: Path) -> None:
    client = serve(max_uploads=2, upload_max_age=3600)
    first, _ = start_session(client), start_session(client)
    refused = client.post("/v2/ns/env/blobs/uploads/")
    assert (refused.status_code, code(refused)) == (429, "TOOMANYREQUESTS")
    assert refused.headers["Retry-After"] == "60" and "registry.max_uploads" in refused.text
    storage = open_storage(Settings(store=tmp_path / "store"))
    abandoned = first.rsplit("/", 1)[1]
    state = json.loads(storage.read(f"{upload_key(abandoned)}/state.json") or b"{}")
    storage.write(f"{upload_key(abandoned)}/state.json", json.dumps({**state, "started": 0}).encode())
    assert client.post("/v2/ns/env/blobs/uploads/").status_code == 202  # the abandoned one made room
    assert abandoned not in storage.list(UPLOADS) and len(storage.list(UPLOADS)) == 2


def test_pushes_stop_at_the_free_space_floor_pulls_go_on(serve: Callable[..., httpx.Client]) -> None:
    client = serve(min_free_space=1024**5)  # more than any disk has: every push is below the floor
    blob = b"layer"
    refused = client.post("/v2/ns/env/blobs/uploads/", params={"digest": str(digest_of(blob))}, content=blob)
    assert (refused.status_code, code(refused)) == (507, "DENIED")
    assert "min_free_space" in refused.json()["errors"][0]["message"]
    manifest = client.put("/v2/ns/env/manifests/v1", content=b"{}", headers={"Content-Type": "application/json"})
    assert manifest.status_code == 507
    assert client.get("/v2/").status_code == 200
    assert client.get("/v2/ns/env/tags/list").status_code == 404  # pulls answer as usual


def test_a_push_that_fills_the_disk_is_refused_and_leaves_nothing(
    serve: Callable[..., httpx.Client], tmp_path: Path
) -> None:
    with small_tmpfs(tmp_path / "small", "3m") as store:
        client = serve(store=store)
        small = b"fits"
        digest = str(digest_of(small))
        assert client.post("/v2/ns/env/blobs/uploads/", params={"digest": digest}, content=small).status_code == 201
        big = b"b" * (4 * MiB)
        announced = client.post("/v2/ns/env/blobs/uploads/", params={"digest": str(digest_of(big))}, content=big)
        assert (announced.status_code, code(announced)) == (507, "DENIED")  # refused at its headers
        assert "free, and pushes stop at" in announced.json()["errors"][0]["message"]

        def streamed() -> Iterator[bytes]:  # no Content-Length: the disk fills while it arrives
            yield from (big[i : i + MiB] for i in range(0, len(big), MiB))

        full = client.post("/v2/ns/env/blobs/uploads/", params={"digest": str(digest_of(big))}, content=streamed())
        assert (full.status_code, code(full)) == (507, "DENIED")
        assert "no space left" in full.json()["errors"][0]["message"]
        assert not list((store / "registry" / ".scratch").iterdir())  # the partial body is gone
        assert client.get(f"/v2/ns/env/blobs/{digest}").status_code in (200, 404)  # still answering
        assert client.head(f"/v2/ns/env/blobs/{digest}").status_code == 200
