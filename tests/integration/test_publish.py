"""Publishing end to end: builds through the CLI, published by ``PublishJob`` (the job
the scheduler runs after each linked build), then the tarball, the image and the registry
checked with real tools (skopeo, umoci, podman).

The ``tool`` channel (tests/integration/conftest.py) has ``tool`` 1.0/2.0, whose
``bin/tool`` prints the prefix it was installed for, on ``libtool-data``.
"""

from __future__ import annotations

import json
import tarfile
import urllib.request
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from condaops.config import load_settings
from condaops.config.settings import Settings
from condaops.reconciler.publish.archive import Entry, write_archive
from condaops.reconciler.publish.image import OCI_LAYER_GZIP, OCI_MANIFEST, canonical_json, sha256_digest
from condaops.reconciler.publish.job import PublishJob
from condaops.reconciler.publish.push import LOCKFILES_ARTIFACT, PACK_ARTIFACT
from condaops.reconciler.publish.sbom import SBOM_ARTIFACT
from condaops.reconciler.state.db import make_engine
from condaops.reconciler.state.recorder import Recorder
from condaops.registry.api import Registry
from condaops.registry.app import create_registry_app
from condaops.registry.backends import open_storage
from tests.integration.conftest import ALIAS, Project
from tests.support.registry_clients import oras_client, podman_client, require_tool, run, serve_asgi, skopeo

pytestmark = pytest.mark.integration


def tool_env(constraint: str) -> str:
    return f"channels: [testchan]\ndependencies:\n  - {constraint}\nvariables:\n  GREETING: hello\n"


def publish(p: Project, build_id: int, environ: dict[str, str] | None = None) -> None:
    """Run the publish job for one build, as the scheduler does after it is recorded, with
    ``environ`` set (push target passwords). The projects build with ``publish.enabled:
    false`` (the CLI then neither submits nor waits for publish jobs), so that each test
    runs the job itself, at a known moment."""
    settings = load_settings(p.config_file, environ={})
    settings = replace(settings, publish=replace(settings.publish, enabled=True))
    engine = make_engine(settings.database_url)
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in (environ or {}).items():
                patch.setenv(name, value)
            PublishJob(settings, Recorder(engine, lambda: datetime.now(UTC)))(build_id)
    finally:
        engine.dispose()


def build(p: Project, constraint: str, ref: str = "team/Tool") -> dict:
    """Build ``ref`` with ``constraint``, publish it, and return its status item."""
    p.write_env(f"{ref}.yaml", tool_env(constraint))
    code, _, err = p.cli("reconcile", "--once", "--wait")
    assert code == 0, err
    item = p.status()[ref]
    assert item["state"] == "ready"
    publish(p, item["build_id"])
    return p.status()[ref]


def image_record(item: dict) -> dict:
    return json.loads(Path(item["artifacts"]["image"]).read_text())


@pytest.fixture
def published(project, tool_channel) -> Project:  # type: ignore[no-untyped-def]
    """A project building ``team/Tool`` from the tool channel with publishing on."""
    return project({ALIAS + "testchan": tool_channel}, publish={"enabled": False})


def registry_of(p: Project) -> Registry:
    return Registry(open_storage(Settings(store=p.store)))


def test_same_lock_gives_identical_tarball_and_image(published: Project) -> None:
    first = build(published, "tool=1.0")
    build(published, "tool=2.0")
    third = build(published, "tool=1.0")  # same spec, same lock: rebuilt into the same prefix
    assert third["build_id"] == 3 and third["spec_hash"] == first["spec_hash"]
    assert {"conda-pack", "image"} <= set(first["artifacts"])
    assert Path(first["artifacts"]["conda-pack"]).read_bytes() == Path(third["artifacts"]["conda-pack"]).read_bytes()
    one, three = image_record(first), image_record(third)
    assert one["config_digest"] == three["config_digest"]
    assert one["manifest_digest"] == three["manifest_digest"]
    assert [layer["digest"] for layer in one["layers"]] == [layer["digest"] for layer in three["layers"]]


def test_tarball_entries_are_normalized(published: Project) -> None:
    item = build(published, "tool=1.0")
    path = Path(item["artifacts"]["conda-pack"])
    assert path.name == "Tool.tar.zst"
    import zstandard

    with zstandard.open(path, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
        members = list(tar)
    names = [m.name for m in members]
    assert names == sorted(names)
    assert {"bin/tool", "bin/conda-unpack", "share/tool/data.txt"} <= set(names)
    assert all((m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", "") for m in members)


def test_one_changed_package_reuses_every_other_layer(published: Project) -> None:
    one = image_record(build(published, "tool=1.0"))
    two = image_record(build(published, "tool=2.0"))
    old = {layer["digest"] for layer in one["layers"]}
    shared = [layer for layer in two["layers"] if layer["digest"] in old]
    assert len(two["layers"]) == 4  # the built-in base, libtool-data, tool, unowned files
    assert len(shared) == len(two["layers"]) - 1
    assert [layer["packages"] for layer in two["layers"] if layer["digest"] not in old] == [["tool"]]


def fetch(host: str, path: str, accept: str = OCI_MANIFEST) -> bytes:
    request = urllib.request.Request(f"http://{host}/v2/{path}", headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.read()


def fetch_json(host: str, path: str, accept: str = OCI_MANIFEST) -> dict:
    return json.loads(fetch(host, path, accept))


def test_tags_annotations_and_attached_artifacts(published: Project) -> None:
    first = image_record(build(published, "tool=1.0"))
    second = image_record(build(published, "tool=2.0"))
    spec_hash = published.status()["team/Tool"]["spec_hash"]
    assert second["repository"] == "team/tool"  # lowercased for the registry
    with serve_asgi(create_registry_app(Settings(store=published.store))) as host:
        tags = fetch_json(host, "team/tool/tags/list")["tags"]
        assert {"latest", "build-1", "build-2", f"spec-{spec_hash[:12]}"} <= set(tags)
        assert sha256_digest(fetch(host, "team/tool/manifests/latest")) == second["manifest_digest"]
        assert sha256_digest(fetch(host, "team/tool/manifests/build-1")) == first["manifest_digest"]
        annotations = fetch_json(host, "team/tool/manifests/latest")["annotations"]
        referrers = fetch_json(
            host, f"team/tool/referrers/{second['manifest_digest']}", "application/vnd.oci.image.index.v1+json"
        )["manifests"]
        lockfiles = [r for r in referrers if r["artifactType"] == LOCKFILES_ARTIFACT]
        files = fetch_json(host, f"team/tool/manifests/{lockfiles[0]['digest']}")["layers"]
    assert annotations["io.condaops.spec-hash"] == spec_hash
    assert annotations["org.opencontainers.image.revision"].startswith("dir:")
    assert annotations["org.opencontainers.image.source"].startswith("file://")
    assert annotations["org.opencontainers.image.created"].endswith("Z")
    assert sorted(r["artifactType"] for r in referrers) == sorted([LOCKFILES_ARTIFACT, PACK_ARTIFACT, SBOM_ARTIFACT])
    assert sorted(f["annotations"]["org.opencontainers.image.title"] for f in files) == [
        "conda-linux-64.lock",
        "conda-lock.yml",
        "environment.yaml",
        "pixi.lock",
    ]


def test_oras_pulls_every_artifact_of_a_build(published: Project, tmp_path: Path) -> None:
    """The lockfiles and the conda-pack tarball, found through the referrers API and pulled
    with oras (oras-py) from the built-in registry, are the build's own files."""
    item = build(published, "tool=1.0")
    record = image_record(item)
    local = {
        Path(path).name: Path(path).read_bytes()
        for kind, path in item["artifacts"].items()
        if kind not in ("log", "image")
    }
    with serve_asgi(create_registry_app(Settings(store=published.store))) as host:
        referrers = fetch_json(
            host, f"team/tool/referrers/{record['manifest_digest']}", "application/vnd.oci.image.index.v1+json"
        )["manifests"]
        client = oras_client(host, token=None)  # pulling needs no token
        pulled: dict[str, bytes] = {}
        for artifact in referrers:
            out = tmp_path / artifact["digest"].replace(":", "-")
            for file in client.pull(target=f"{host}/team/tool@{artifact['digest']}", outdir=str(out)):
                pulled[Path(file).name] = Path(file).read_bytes()
    assert sorted(pulled) == sorted(local)  # every artifact but the log and the image record
    assert pulled == local


def test_skopeo_inspects_the_image_served_by_the_registry(published: Project) -> None:
    record = image_record(build(published, "tool=1.0"))
    settings = Settings(store=published.store)
    with serve_asgi(create_registry_app(settings)) as host:
        out = skopeo("inspect", "--tls-verify=false", f"docker://{host}/team/tool:latest").stdout
        raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{host}/team/tool:latest").stdout
        config = json.loads(
            skopeo("inspect", "--config", "--tls-verify=false", f"docker://{host}/team/tool:latest").stdout
        )
    info = json.loads(out)
    assert info["Digest"] == record["manifest_digest"]
    assert "build-1" in info["RepoTags"]
    assert sha256_digest(raw.encode()) == record["manifest_digest"]
    env = config["config"]["Env"]
    assert "PATH=/opt/env/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in env
    assert "CONDA_PREFIX=/opt/env" in env and "GREETING=hello" in env


def test_umoci_unpacks_a_relocated_environment(project, tool_channel, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """gzip layers on request (``publish.layer_compression``): Debian's umoci 0.4.7 reads
    no zstd layers, as older Docker engines do not either."""
    umoci = require_tool("umoci", "umoci")
    published = project({ALIAS + "testchan": tool_channel}, publish={"enabled": False, "layer_compression": "gzip"})
    build(published, "tool=1.0")
    layout = tmp_path / "oci"
    settings = Settings(store=published.store)
    with serve_asgi(create_registry_app(settings)) as host:
        skopeo("copy", "--src-tls-verify=false", f"docker://{host}/team/tool:latest", f"oci:{layout}:latest")
    bundle = tmp_path / "bundle"
    run([umoci, "unpack", "--rootless", "--image", f"{layout}:latest", str(bundle)])
    env = bundle / "rootfs/opt/env"
    assert (env / "bin/tool").read_text() == '#!/bin/sh\necho "tool 1.0 /opt/env"\n'
    assert (env / "share/tool/data.txt").is_file()
    store = str(published.store).encode()
    assert not [f for f in env.rglob("*") if f.is_file() and store in f.read_bytes() and f.parent.name != "conda-meta"]
    assert sorted(p.name for p in (env / "conda-meta").glob("*.json")) == ["libtool-data-1.0-0.json", "tool-1.0-0.json"]


def test_podman_runs_the_environment_on_a_busybox_layer(published: Project, tmp_path: Path) -> None:
    busybox = Path(require_tool("busybox", "busybox-static"))
    runc = require_tool("runc", "runc")
    record = image_record(build(published, "tool=1.0"))
    registry = registry_of(published)
    with serve_asgi(create_registry_app(Settings(store=published.store))) as host, podman_client(tmp_path / "pm") as pm:
        try:
            name = add_shell_layer(host, record, busybox, registry, tmp_path)
        finally:
            registry.close()
        pm("pull", "--tls-verify=false", f"{host}/{name}")
        out = pm("--runtime", runc, "run", "--rm", "--network=none", f"{host}/{name}", "tool").stdout
    assert out.strip() == "tool 1.0 /opt/env"


def add_shell_layer(host: str, record: dict, busybox: Path, registry: Registry, tmp_path: Path) -> str:
    """Push ``team/tool:with-shell``: the published image under a busybox-static layer
    (``/bin/sh``), so its ``#!/bin/sh`` scripts run."""
    layer = write_archive(
        tmp_path / "busybox.tar.gz",
        [Entry("bin/"), Entry("bin/busybox", busybox, mode=0o755), Entry("bin/sh", busybox, mode=0o755)],
    )
    image = fetch_json(host, f"team/tool/manifests/{record['manifest_digest']}")
    config = fetch_json(host, f"team/tool/blobs/{image['config']['digest']}", "*/*")
    blob = registry.put_blob(layer.path, OCI_LAYER_GZIP)
    config["rootfs"]["diff_ids"].insert(0, f"sha256:{layer.tar_sha256}")
    config_blob = registry.put_blob(canonical_json(config), image["config"]["mediaType"])
    image["layers"].insert(0, {"mediaType": OCI_LAYER_GZIP, "digest": blob.digest, "size": blob.size})
    image["config"] = {"mediaType": config_blob.media_type, "digest": config_blob.digest, "size": config_blob.size}
    registry.put_manifest("team/tool", canonical_json(image), media_type=OCI_MANIFEST, tags=["with-shell"])
    return "team/tool:with-shell"


def test_tar_gz_on_request_and_image_off(project, tool_channel) -> None:  # type: ignore[no-untyped-def]
    p = project({ALIAS + "testchan": tool_channel}, publish={"enabled": False, "pack_format": "tar.gz", "image": False})
    item = build(p, "tool=1.0")
    path = Path(item["artifacts"]["conda-pack"])
    data = path.read_bytes()
    assert path.name == "Tool.tar.gz" and data[:2] == b"\x1f\x8b"
    assert data[4:8] == b"\0\0\0\0" and not data[3] & 0x08  # no mtime, no file name in the gzip header
    assert "image" not in item["artifacts"]
    with tarfile.open(path) as tar:
        assert tar.extractfile("bin/tool").read().startswith(b"#!")  # type: ignore[union-attr]


def test_real_python_environment_publishes_reproducibly(project, realdata_channel, empty_channel) -> None:  # type: ignore[no-untyped-def]
    """Real packages (Python 2.7 + flask, noarch python, binary placeholders): build,
    change the spec, change it back — the tarball and every layer come out identical."""
    from tests.integration.test_pipeline import FLASK_ENV, MAIN, R

    served = realdata_channel("defaults-2021-py27-flask")
    p = project({MAIN: served, R: empty_channel}, channels={"default": ["defaults"]}, publish={"enabled": False})
    items = []
    for env in (FLASK_ENV, FLASK_ENV + "  - zlib\n", FLASK_ENV):
        p.write_env("team/flask.yaml", env)
        code, _, err = p.cli("reconcile", "--once", "--wait")
        assert code == 0, err
        publish(p, p.status()["team/flask"]["build_id"])
        items.append(p.status()["team/flask"])
    first, last = items[0], items[2]
    assert first["spec_hash"] == last["spec_hash"] and first["build_id"] != last["build_id"]
    assert Path(first["artifacts"]["conda-pack"]).read_bytes() == Path(last["artifacts"]["conda-pack"]).read_bytes()
    one, three = image_record(first), image_record(last)
    assert len(one["layers"]) == 20  # the built-in base, 18 packages, unowned files
    assert one["layers"] == three["layers"] and one["manifest_digest"] == three["manifest_digest"]
