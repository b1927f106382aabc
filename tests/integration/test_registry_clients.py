"""The registry driven by real clients on 127.0.0.1: oras (Python), skopeo, podman, and
Debian's docker-registry (distribution 2.8) as the reference the image must travel to and
from unchanged."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.registry_clients import (
    TOKEN,
    OciImage,
    Podman,
    RunningRegistry,
    docker_registry,
    oras_client,
    podman_client,
    registry_servers,
    skopeo,
    write_oci_layout,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    with registry_servers(tmp_path_factory) as serve:
        yield serve()


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[Podman]:
    with podman_client(tmp_path / "podman") as client:
        yield client


@pytest.fixture
def image(tmp_path: Path) -> OciImage:
    return write_oci_layout(tmp_path / "layout", tag="v1")


def push_with_skopeo(image: OciImage, host: str, name: str = "ns/env", token: str = TOKEN, check: bool = True) -> Any:
    return skopeo(
        "copy",
        image.oci_ref,
        f"docker://{host}/{name}:{image.tag}",
        "--dest-tls-verify=false",
        "--dest-creds",
        f"ci:{token}",
        check=check,
    )


# --- oras ---------------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["monolithic", "chunked"])
def test_oras_push_and_pull(
    registry: RunningRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunked: bool
) -> None:
    monkeypatch.chdir(tmp_path)  # oras-py takes files under the working folder only
    content = b"name: env\ndependencies: [python=3.12]\n" * 100_000  # 3.7 MB: 4 chunks of 1 MiB
    Path("conda-lock.yml").write_bytes(content)
    client = oras_client(registry.host)
    target = f"{registry.host}/ns/env:lock"

    pushed = client.push(
        target=target,
        files=["conda-lock.yml"],
        manifest_annotations={"org.condaops.env": "ns/env"},
        do_chunked=chunked,
        chunk_size=1024 * 1024,
    )
    assert pushed.status_code == 201
    assert client.get_tags(f"{registry.host}/ns/env") == ["lock"]
    pulled = client.pull(target=target, outdir=str(tmp_path / "out"))

    assert [Path(p).name for p in pulled] == ["conda-lock.yml"]
    assert Path(pulled[0]).read_bytes() == content
    manifest = client.get_manifest(target)
    assert manifest["annotations"]["org.condaops.env"] == "ns/env"
    assert manifest["layers"][0]["digest"] == "sha256:" + hashlib.sha256(content).hexdigest()


# --- skopeo -------------------------------------------------------------------------------


def test_skopeo_copy_inspect_and_copy_back(registry: RunningRegistry, image: OciImage, tmp_path: Path) -> None:
    push_with_skopeo(image, registry.host)

    inspected = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{registry.host}/ns/env:v1").stdout)
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/ns/env:v1").stdout
    skopeo("copy", "--src-tls-verify=false", f"docker://{registry.host}/ns/env:v1", f"oci:{tmp_path / 'back'}:v1")
    skopeo("copy", "--src-tls-verify=false", f"docker://{registry.host}/ns/env:v1", f"dir:{tmp_path / 'dir'}")

    assert inspected["Digest"] == image.manifest_digest  # the manifest travelled byte for byte
    assert inspected["RepoTags"] == ["v1"]
    assert inspected["Layers"] == [image.layer_digest]
    assert (inspected["Os"], inspected["Architecture"]) == ("linux", "amd64")
    assert "sha256:" + hashlib.sha256(raw.encode()).hexdigest() == image.manifest_digest
    layer_hex = image.layer_digest.split(":")[1]
    original = (image.layout / "blobs" / "sha256" / layer_hex).read_bytes()
    assert (tmp_path / "back" / "blobs" / "sha256" / layer_hex).read_bytes() == original
    assert (tmp_path / "dir" / layer_hex).read_bytes() == original


def test_skopeo_push_without_a_valid_token_is_refused(registry: RunningRegistry, image: OciImage) -> None:
    without = skopeo(
        "copy", image.oci_ref, f"docker://{registry.host}/ns/env:v1", "--dest-tls-verify=false", check=False
    )
    wrong = push_with_skopeo(image, registry.host, token="wrong-token-0123456789", check=False)

    for result in (without, wrong):
        assert result.returncode != 0
        assert "unauthorized" in result.stderr.lower() or "authentication required" in result.stderr.lower()
    missing = skopeo("inspect", "--tls-verify=false", f"docker://{registry.host}/ns/env:v1", check=False)
    assert missing.returncode != 0


def test_skopeo_second_push_mounts_the_shared_blobs(registry: RunningRegistry, image: OciImage) -> None:
    push_with_skopeo(image, registry.host, "ns/one")
    push_with_skopeo(image, registry.host, "ns/two")

    copied = skopeo(
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--dest-creds",
        f"ci:{TOKEN}",
        f"docker://{registry.host}/ns/one:v1",
        f"docker://{registry.host}/other/env:v1",
    )

    assert "Copying blob" in copied.stdout
    digest = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{registry.host}/other/env:v1").stdout)
    assert digest["Digest"] == image.manifest_digest


# --- podman -------------------------------------------------------------------------------


def test_podman_pull(registry: RunningRegistry, image: OciImage, podman: Podman) -> None:
    push_with_skopeo(image, registry.host)

    podman("pull", "--tls-verify=false", f"{registry.host}/ns/env:v1")
    inspected = json.loads(podman("image", "inspect", f"{registry.host}/ns/env:v1").stdout)[0]

    assert inspected["Digest"] == image.manifest_digest
    assert inspected["Id"] == image.config_digest.split(":")[1]
    assert inspected["Os"] == "linux"


# --- the reference registry ---------------------------------------------------------------


def test_image_travels_to_docker_registry_and_back(registry: RunningRegistry, image: OciImage, tmp_path: Path) -> None:
    push_with_skopeo(image, registry.host)
    with docker_registry(tmp_path / "distribution") as distribution:
        reference = distribution.host
        skopeo(
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            f"docker://{registry.host}/ns/env:v1",
            f"docker://{reference}/ns/env:v1",
        )
        there = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{reference}/ns/env:v1").stdout)
        skopeo(
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--dest-creds",
            f"ci:{TOKEN}",
            f"docker://{reference}/ns/env:v1",
            f"docker://{registry.host}/ns/returned:v1",
        )
        skopeo("copy", "--src-tls-verify=false", f"docker://{reference}/ns/env:v1", f"oci:{tmp_path / 'pulled'}:v1")
    back = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{registry.host}/ns/returned:v1").stdout)

    assert there["Digest"] == back["Digest"] == image.manifest_digest
    index = json.loads((tmp_path / "pulled" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == image.manifest_digest
