"""Push targets, base images and rollback against Debian's ``docker-registry`` (distribution
2.8) with htpasswd basic auth, so credentials are really checked; pulled back with skopeo,
oras (oras-py) and podman.

distribution 2.8 has no referrers API: the lockfiles and tarball artifacts are found
through the OCI referrers tag schema (``sha256-<hex>`` tags an index of them).
"""

from __future__ import annotations

import base64
import contextlib
import json
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from litestar.testing import TestClient

from condaops.config import load_settings
from condaops.reconciler.model import EnvRef
from condaops.reconciler.operations import rollback
from condaops.reconciler.publish.archive import Entry, write_archive
from condaops.reconciler.publish.image import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, canonical_json, sha256_digest
from condaops.reconciler.publish.push import LOCKFILES_ARTIFACT, PACK_ARTIFACT
from condaops.reconciler.publish.sbom import SBOM_ARTIFACT
from condaops.reconciler.state.db import make_engine
from condaops.reconciler.state.queries import build_artifacts, get_build
from condaops.reconciler.state.recorder import Recorder
from condaops.reconciler.store import StoreLayout
from condaops.web.app import create_app
from tests.integration.conftest import ALIAS, Project
from tests.integration.test_publish import image_record, publish, tool_env
from tests.support.ci import skip_or_fail
from tests.support.registry_clients import (
    docker_registry,
    oras_client,
    podman_client,
    require_tool,
    skopeo,
)

pytestmark = pytest.mark.integration

USER, PASSWORD = "ci", "s3cret-password-for-tests"
INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass(frozen=True)
class AuthRegistry:
    host: str
    folder: Path

    def get(self, path: str, accept: str = OCI_MANIFEST) -> bytes:
        auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        request = urllib.request.Request(
            f"http://{self.host}/v2/{path}", headers={"Accept": accept, "Authorization": f"Basic {auth}"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.read()


def bcrypt_line(user: str, password: str) -> str:
    """An htpasswd line; the lowest bcrypt cost keeps every checked request fast."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt
    except ImportError:  # Python 3.13 removed it
        skip_or_fail("the crypt module (Python < 3.13) is needed to write a bcrypt htpasswd file")
    return f"{user}:{crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))}"


@contextlib.contextmanager
def htpasswd_registry(folder: Path) -> Iterator[AuthRegistry]:
    """docker-registry on 127.0.0.1 that wants basic auth for everything."""
    with docker_registry(folder, htpasswd=bcrypt_line(USER, PASSWORD) + "\n") as server:
        yield AuthRegistry(server.host, folder)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[AuthRegistry]:
    with htpasswd_registry(tmp_path / "docker-registry") as running:
        yield running


def target(host: str, **extra: object) -> dict:
    return {
        "name": "mirror",
        "url": host,
        "repository": "mirror",
        "username": USER,
        "password_env": "REG_PASS",
        "insecure": True,
        **extra,
    }


@pytest.fixture
def pushing(project, tool_channel, registry: AuthRegistry) -> Project:  # type: ignore[no-untyped-def]
    """``team/Tool`` pushed to the built-in registry and to ``mirror`` (the htpasswd registry)."""
    return project(
        {ALIAS + "testchan": tool_channel},
        publish={"enabled": False},
        registry={"push": ["builtin", target(registry.host)]},
    )


GOOD = {"REG_PASS": PASSWORD}


def build_and_push(p: Project, constraint: str, environ: dict[str, str] = GOOD) -> dict:
    p.write_env("team/Tool.yaml", tool_env(constraint))
    code, _, err = p.cli("reconcile", "--once", "--wait")
    assert code == 0, err
    item = p.status()["team/Tool"]
    publish(p, item["build_id"], environ)
    return p.status()["team/Tool"]


def engine_of(p: Project):  # type: ignore[no-untyped-def]
    return make_engine(load_settings(p.config_file, environ={}).database_url)


def test_push_to_an_authenticated_registry_and_pull_back(
    pushing: Project, registry: AuthRegistry, tmp_path: Path
) -> None:
    item = build_and_push(pushing, "tool=1.0")
    record = image_record(item)
    engine = engine_of(pushing)
    assert get_build(engine, item["build_id"]).publish_error is None  # type: ignore[union-attr]
    assert set(record["targets"]) == {"builtin", "mirror"}
    assert record["targets"]["mirror"]["repository"] == "mirror/team/tool"
    ref = f"docker://{registry.host}/mirror/team/tool"
    creds = f"--creds={USER}:{PASSWORD}"
    info = json.loads(skopeo("inspect", "--tls-verify=false", creds, f"{ref}:latest").stdout)
    assert info["Digest"] == record["manifest_digest"]  # the same bytes as in the built-in registry
    assert {"latest", "build-1", f"spec-{item['spec_hash'][:12]}"} <= set(info["RepoTags"])
    annotations = json.loads(registry.get(f"mirror/team/tool/manifests/{record['manifest_digest']}"))["annotations"]
    assert annotations["io.condaops.spec-hash"] == item["spec_hash"]
    assert {
        "org.opencontainers.image.source",
        "org.opencontainers.image.revision",
        "org.opencontainers.image.created",
    } <= set(annotations)
    skopeo(
        "copy",
        "--src-tls-verify=false",
        f"--src-creds={USER}:{PASSWORD}",
        f"{ref}:build-1",
        f"oci:{tmp_path / 'copy'}:x",
    )

    # No referrers API in distribution 2.8: the tag schema index lists both artifacts.
    tag = record["manifest_digest"].replace(":", "-")
    index = json.loads(registry.get(f"mirror/team/tool/manifests/{tag}", INDEX))
    by_type = {m["artifactType"]: m["digest"] for m in index["manifests"]}
    assert set(by_type) == {LOCKFILES_ARTIFACT, PACK_ARTIFACT, SBOM_ARTIFACT}

    client = oras_client(registry.host, token=None)
    client.auth.set_basic_auth(USER, PASSWORD)
    out = tmp_path / "pulled"
    files = client.pull(target=f"{registry.host}/mirror/team/tool@{by_type[LOCKFILES_ARTIFACT]}", outdir=str(out))
    assert sorted(Path(f).name for f in files) == [
        "conda-linux-64.lock",
        "conda-lock.yml",
        "environment.yaml",
        "pixi.lock",
    ]
    assert (out / "conda-lock.yml").read_bytes() == Path(item["artifacts"]["conda-lock"]).read_bytes()


def test_wrong_password_fails_publishing_not_the_build(pushing: Project, registry: AuthRegistry) -> None:
    item = build_and_push(pushing, "tool=1.0", {"REG_PASS": "not-the-password"})
    assert item["state"] == "ready"
    engine = engine_of(pushing)
    publication = get_build(engine, item["build_id"])
    assert publication is not None and publication.published_at is not None
    error = publication.publish_error or ""
    assert error.startswith("PushRefused:") and "'mirror'" in error and registry.host in error
    assert "refused the credentials" in error and "not-the-password" not in error
    assert set(image_record(item)["targets"]) == {"builtin"}  # the other target still got the build
    log = Path(item["artifacts"]["log"]).read_text()
    assert "publish_failed" in log and "not-the-password" not in log
    # Users see why: in `condaops history`, the API and the build page.
    code, out, _ = pushing.cli("history", "team/Tool", "--json")
    assert code == 0 and json.loads(out)[0]["publish_error"] == error
    settings = load_settings(pushing.config_file, environ={})
    with TestClient(create_app(settings, engine)) as client:
        assert client.get(f"/api/v1/builds/{item['build_id']}").json()["publish_error"] == error
        page = client.get(f"/builds/{item['build_id']}").text
    assert "failed: PushRefused:" in page


def test_publishing_twice_changes_nothing(pushing: Project, registry: AuthRegistry) -> None:
    item = build_and_push(pushing, "tool=1.0")
    engine = engine_of(pushing)
    first = {(a.kind, a.location, a.sha256) for a in build_artifacts(engine, item["build_id"]) if a.kind != "log"}
    publish(pushing, item["build_id"], GOOD)
    again = build_artifacts(engine, item["build_id"])
    assert len(again) == len({a.kind for a in again})  # one row per kind
    assert {(a.kind, a.location, a.sha256) for a in again if a.kind != "log"} == first
    tag = image_record(item)["manifest_digest"].replace(":", "-")
    assert len(json.loads(registry.get(f"mirror/team/tool/manifests/{tag}", INDEX))["manifests"]) == 3
    assert get_build(engine, item["build_id"]).publish_error is None  # type: ignore[union-attr]


def test_a_collected_build_is_not_published(pushing: Project) -> None:
    pushing.write_env("team/Tool.yaml", tool_env("tool=1.0"))
    assert pushing.cli("reconcile", "--once", "--wait")[0] == 0
    item = pushing.status()["team/Tool"]
    import shutil

    shutil.rmtree(pushing.link("team/Tool").resolve())  # as garbage collection would, after a rollback
    publish(pushing, item["build_id"], GOOD)
    error = get_build(engine_of(pushing), item["build_id"]).publish_error  # type: ignore[union-attr]
    assert error is not None and error.startswith("PrefixCollected:")


def test_rollback_moves_latest_in_every_target(pushing: Project, registry: AuthRegistry) -> None:
    one = image_record(build_and_push(pushing, "tool=1.0"))
    two = image_record(build_and_push(pushing, "tool=2.0"))
    assert sha256_digest(registry.get("mirror/team/tool/manifests/latest")) == two["manifest_digest"]
    settings = load_settings(pushing.config_file, environ={})
    settings = replace(settings, publish=replace(settings.publish, enabled=True))
    engine = make_engine(settings.database_url)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REG_PASS", PASSWORD)
        rollback(
            engine,
            Recorder(engine, lambda: datetime.now(UTC)),
            StoreLayout(settings.store),
            EnvRef("team", "Tool"),
            1,
            settings=settings,
        )
    assert sha256_digest(registry.get("mirror/team/tool/manifests/latest")) == one["manifest_digest"]
    from condaops.registry.api import open_registry

    builtin = open_registry(settings)
    try:
        assert builtin.resolve("team/tool", "latest").digest == one["manifest_digest"]  # type: ignore[union-attr]
    finally:
        builtin.close()


# --- base images ----------------------------------------------------------------------------


def push_busybox_base(registry: AuthRegistry, tmp_path: Path) -> str:
    """``base/busybox:1``: busybox-static as ``/bin/sh`` (and friends), pushed with skopeo."""
    busybox = Path(require_tool("busybox", "busybox-static"))
    layout = tmp_path / "base-layout"
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    layer = write_archive(
        tmp_path / "busybox.tar.gz",
        [
            Entry("bin/"),
            Entry("bin/busybox", busybox, mode=0o755),
            Entry("bin/sh", busybox, mode=0o755),
            Entry("bin/echo", busybox, mode=0o755),
        ],
    )
    (blobs / layer.sha256).write_bytes(layer.path.read_bytes())
    config = canonical_json(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/usr/bin:/bin", "BASE_VAR=from-base"], "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer.tar_sha256}"]},
            "history": [{"created_by": "busybox-static"}],
        }
    )
    (blobs / sha256_digest(config).split(":")[1]).write_bytes(config)
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": f"sha256:{layer.sha256}", "size": layer.size}],
        }
    )
    (blobs / sha256_digest(manifest).split(":")[1]).write_bytes(manifest)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": OCI_MANIFEST,
                        "digest": sha256_digest(manifest),
                        "size": len(manifest),
                        "annotations": {"org.opencontainers.image.ref.name": "1"},
                    }
                ],
            }
        )
    )
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        f"--dest-creds={USER}:{PASSWORD}",
        f"oci:{layout}:1",
        f"docker://{registry.host}/base/busybox:1",
    )
    return f"sha256:{layer.sha256}"


def test_image_on_a_base_from_another_registry_runs_in_podman(
    project,
    tool_channel,
    registry: AuthRegistry,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    runc = require_tool("runc", "runc")
    base_layer = push_busybox_base(registry, tmp_path)
    p = project(
        {ALIAS + "testchan": tool_channel},
        registry={"push": ["builtin", target(registry.host)]},
        publish={"enabled": False, "image_base": f"{registry.host}/base/busybox:1"},
    )
    item = build_and_push(p, "tool=1.0")
    record = image_record(item)
    # busybox-static has no C library: pushed (its shell runs the tool's script), reported as not runnable.
    error = get_build(engine_of(p), item["build_id"]).publish_error or ""  # type: ignore[union-attr]
    assert error.startswith("ImageNotRunnable: team/Tool: the base") and "has no GNU C library" in error
    assert record["runnable"] is False and "has no GNU C library" in record["not_runnable"]
    assert record["base"]["reference"] == f"{registry.host}/base/busybox:1"
    assert record["layers"][0]["digest"] == base_layer  # the base's layers first, unchanged
    assert (p.store / ".cache/base-images/blobs/sha256" / base_layer.split(":")[1]).is_file()  # cached by digest
    config = json.loads(registry.get(f"mirror/team/tool/blobs/{record['config_digest']}", "*/*"))
    assert config["config"]["Cmd"] == ["/bin/sh"]
    assert "PATH=/opt/env/bin:/usr/bin:/bin" in config["config"]["Env"]
    assert {"BASE_VAR=from-base", "CONDA_PREFIX=/opt/env", "GREETING=hello"} <= set(config["config"]["Env"])

    image = f"{registry.host}/mirror/team/tool:latest"
    with podman_client(tmp_path / "pm") as pm:
        pm("pull", "--tls-verify=false", f"--creds={USER}:{PASSWORD}", image)
        out = pm("--runtime", runc, "run", "--rm", "--network=none", image, "tool").stdout
        env = pm(
            "--runtime",
            runc,
            "run",
            "--rm",
            "--network=none",
            image,
            "sh",
            "-c",
            "echo $CONDA_PREFIX $BASE_VAR $GREETING",
        ).stdout
    assert out.strip() == "tool 1.0 /opt/env"
    assert env.split() == ["/opt/env", "from-base", "hello"]

    # Publishing again uses the cached base: the same image, to the byte.
    publish(p, item["build_id"], GOOD)
    assert image_record(p.status()["team/Tool"])["manifest_digest"] == record["manifest_digest"]
