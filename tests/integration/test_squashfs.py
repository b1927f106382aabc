"""Squashfs images of builds (``publish.squashfs``), checked with squashfs-tools.

Builds run through the CLI and are published by ``PublishJob``, as in test_publish.py;
the image is unpacked with ``unsquashfs`` and compared file by file with the prefix, and
two builds of the same lock (rebuilt into the same prefix) give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from condaops.config.settings import Settings
from condaops.reconciler.publish.squashfs import PREFIX_ANNOTATION, SQUASHFS_ARTIFACT, squashfs_command
from condaops.registry.app import create_registry_app
from tests.integration.conftest import ALIAS, Project
from tests.integration.test_publish import fetch_json, publish, tool_env
from tests.support.ci import skip_or_fail
from tests.support.registry_clients import require_tool, serve_asgi

pytestmark = pytest.mark.integration


@pytest.fixture
def site(project, tool_channel) -> Project:  # type: ignore[no-untyped-def]
    return project({ALIAS + "testchan": tool_channel}, publish={"enabled": False, "squashfs": True})


def build(p: Project, constraint: str) -> dict:
    p.write_env("team/tool.yaml", tool_env(constraint))
    code, _, err = p.cli("reconcile", "--once", "--wait")
    assert code == 0, err
    publish(p, p.status()["team/tool"]["build_id"])
    return p.status()["team/tool"]


def tree(root: Path) -> dict[str, tuple[str, str]]:
    """Relative path -> (type and mode, content digest or link target), for comparing trees."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                what = f"link:{os.readlink(path)}"
            elif stat.S_ISDIR(st.st_mode):
                what = "dir"
            else:
                what = hashlib.sha256(path.read_bytes()).hexdigest()
            found[str(path.relative_to(root))] = (oct(st.st_mode), what)
    return found


def test_the_image_holds_the_prefix_and_the_same_lock_gives_the_same_bytes(site: Project, tmp_path: Path) -> None:
    unsquashfs = require_tool("unsquashfs", "squashfs-tools")
    first = build(site, "tool=1.0")
    build(site, "tool=2.0")
    third = build(site, "tool=1.0")  # the same spec again: rebuilt into the same prefix
    assert third["build_prefix"] == first["build_prefix"] and third["build_id"] == 3
    image = Path(third["artifacts"]["squashfs"])
    assert image.name == "tool.sqsh"
    assert image.read_bytes() == Path(first["artifacts"]["squashfs"]).read_bytes()

    out = tmp_path / "unpacked"
    subprocess.run([unsquashfs, "-quiet", "-no-progress", "-d", str(out), str(image)], check=True, timeout=120)
    prefix = site.store / third["build_prefix"]
    assert tree(out) == tree(prefix)
    listing = subprocess.run([unsquashfs, "-lln", str(image)], capture_output=True, text=True, check=True).stdout
    entries = [line for line in listing.splitlines() if line.startswith(("-", "d", "l"))]
    assert entries and all(" 0/0 " in line and " 1970-01-01 00:00 " in line for line in entries)


def test_squashfuse_mounts_it(site: Project, tmp_path: Path) -> None:
    """Mounted without root privileges' kernel help (FUSE), as users on a cluster do. The
    programs inside name the build's prefix: that is where a site mounts the image."""
    squashfuse = require_tool("squashfuse", "squashfuse")
    item = build(site, "tool=1.0")
    mount = tmp_path / "mnt"
    mount.mkdir()
    done = subprocess.run([squashfuse, item["artifacts"]["squashfs"], str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        skip_or_fail(f"squashfuse cannot mount here (no FUSE?): {done.stderr.strip()}")
    try:
        prefix = site.store / item["build_prefix"]
        assert tree(mount) == tree(prefix)
        out = subprocess.run([mount / "bin" / "tool"], capture_output=True, text=True, check=True).stdout.split()
        assert out == ["tool", "1.0", str(prefix)]
    finally:
        unmount = ["fusermount", "-u", str(mount)] if shutil.which("fusermount") else ["umount", str(mount)]
        subprocess.run(unmount, check=False, timeout=30)


def test_the_image_is_attached_with_its_mount_point(site: Project) -> None:
    site.write_config(publish={"enabled": False, "squashfs": True, "image": True, "push": True})
    item = build(site, "tool=1.0")
    digest = json.loads(Path(item["artifacts"]["image"]).read_text())["manifest_digest"]
    with serve_asgi(create_registry_app(Settings(store=site.store))) as host:
        referrers = fetch_json(host, f"team/tool/referrers/{digest}", "application/vnd.oci.image.index.v1+json")
        (sqsh,) = [r for r in referrers["manifests"] if r["artifactType"] == SQUASHFS_ARTIFACT]
        manifest = fetch_json(host, f"team/tool/manifests/{sqsh['digest']}")
    assert manifest["annotations"][PREFIX_ANNOTATION] == str(site.store / item["build_prefix"])
    (layer,) = manifest["layers"]
    assert layer["size"] == Path(item["artifacts"]["squashfs"]).stat().st_size


def test_the_image_is_listed_and_downloadable_from_the_site(site: Project) -> None:
    from litestar.testing import TestClient

    from condaops.config import load_settings
    from condaops.reconciler.state.db import make_engine
    from condaops.web.app import create_app

    require_tool("mksquashfs", "squashfs-tools")
    item = build(site, "tool=1.0")
    settings = load_settings(site.config_file, environ={})
    engine = make_engine(settings.database_url)
    try:
        with TestClient(create_app(settings, engine, cache_seconds=0)) as client:
            listed = client.get(f"/api/v1/builds/{item['build_id']}/artifacts").json()
            page = client.get(f"/builds/{item['build_id']}").text
            download = client.get(f"/builds/{item['build_id']}/artifacts/squashfs")
    finally:
        engine.dispose()
    assert "squashfs" in json.dumps(listed) and f"/builds/{item['build_id']}/artifacts/squashfs" in page
    assert download.status_code == 200 and download.content == Path(item["artifacts"]["squashfs"]).read_bytes()
    assert 'filename="tool.sqsh"' in download.headers["content-disposition"]


def test_mksquashfs_missing_is_a_publish_problem_not_a_failed_build(site: Project) -> None:
    site.write_env("team/tool.yaml", tool_env("tool=1.0"))
    code, _, err = site.cli("reconcile", "--once", "--wait")
    assert code == 0, err
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", "/nonexistent")  # no mksquashfs on PATH
        publish(site, 1)
    item = site.status()["team/tool"]
    assert item["state"] == "ready" and "squashfs" not in item["artifacts"]
    assert "conda-pack" in item["artifacts"]  # the other outputs still ran
    code, out, _ = site.cli("history", "team/tool", "--json")
    assert "SquashfsFailed: publish.squashfs is on but mksquashfs is not installed" in out


def test_the_command_is_reproducible_by_construction() -> None:
    command = squashfs_command(Path("/p"), Path("/o.sqsh"), compression="zstd")
    for flags in (["-all-root"], ["-mkfs-time", "0"], ["-all-time", "0"], ["-no-xattrs"], ["-noappend"]):
        assert any(command[i : i + len(flags)] == flags for i in range(len(command)))
