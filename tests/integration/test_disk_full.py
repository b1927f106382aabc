"""A build on a full disk: below ``min_free_space`` it does not start installing, and one
that fills the disk (a real, small tmpfs) fails with ``DiskFull``, leaves no half
prefix, and is built once space is there again."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.integration.conftest import ALIAS
from tests.support.channels import PackageSpec, make_channel
from tests.support.tmpfs import resize_tmpfs, small_tmpfs

pytestmark = pytest.mark.integration


def builds_of(p, ref: str) -> list[dict]:  # type: ignore[no-untyped-def]
    code, out, _ = p.cli("history", ref, "--json")
    assert code == 0
    return list(json.loads(out))


def test_a_build_that_fills_the_disk_fails_with_disk_full_and_is_retried(  # type: ignore[no-untyped-def]
    project, tmp_path_factory: pytest.TempPathFactory, http_channel
) -> None:
    root = tmp_path_factory.mktemp("bigchan")
    big = os.urandom(6 * 1024 * 1024)  # incompressible: 6 MiB in the package, on disk once installed
    make_channel(root, [PackageSpec("big", "1.0", files={"share/big.bin": big}, fmt="conda")])
    channel = http_channel(root)
    p = project({ALIAS + "testchan": channel}, build={"retries": 5, "backoff": "1s"})
    p.write_config(
        database=f"sqlite:///{p.root / 'state.db'}",  # the state stays writable on the full disk
        build={**p.config["build"], "cache_dir": str(p.root / "cache")},  # downloads land elsewhere
    )
    p.write_env("team/big.yaml", "channels: [testchan]\ndependencies: [big]\n")
    with small_tmpfs(p.store, "4m"):
        # Below the floor (min_free_space defaults to 1GiB): refused before installing anything.
        assert p.cli("reconcile", "--once")[0] == 0
        first = builds_of(p, "team/big")[0]
        assert (first["state"], first["reason"]) == ("failed", "DiskFull")
        assert "min_free_space" in first["message"] and "team/big.yaml" in first["message"]
        status = p.status()["team/big"]
        assert (status["state"], status["reason"]) == ("pending", "RetryPending")

        # No floor: the install fills the 4 MiB disk.
        p.write_config(min_free_space=0)
        time.sleep(1.1)  # the first retry's backoff
        assert p.cli("reconcile", "--once")[0] == 0
        second = builds_of(p, "team/big")[0]
        assert (second["state"], second["reason"], second["attempt"]) == ("failed", "DiskFull", 2)
        assert "No space left on device" in second["message"], second["message"]
        leftovers = [d.name for d in (p.store / "team").iterdir() if d.name != "envs"]
        assert leftovers == []  # no half prefix
        assert not p.link("team/big").exists()

        # Space is back: the retry builds it.
        resize_tmpfs(p.store, "64m")
        code, _, err = p.cli("reconcile", "--once", "--wait")
        assert code == 0, err
        assert p.status()["team/big"]["state"] == "ready"
        assert (p.link("team/big") / "share" / "big.bin").read_bytes() == big


def test_publishing_on_a_full_disk_is_recorded_as_disk_full(  # type: ignore[no-untyped-def]
    project, tmp_path_factory: pytest.TempPathFactory, http_channel
) -> None:
    """The build fits, its tarball and image do not: the build stays linked and ready, and
    the publish outcome says DiskFull (what to free), not a generic PublishFailed."""
    root = tmp_path_factory.mktemp("bigchan")
    big = os.urandom(6 * 1024 * 1024)
    make_channel(root, [PackageSpec("big", "1.0", files={"share/big.bin": big}, fmt="conda")])
    channel = http_channel(root)
    p = project({ALIAS + "testchan": channel})
    p.write_config(
        database=f"sqlite:///{p.root / 'state.db'}",
        build={**p.config["build"], "cache_dir": str(p.root / "cache")},
        min_free_space=0,
        publish={"enabled": True},
    )
    p.write_env("team/big.yaml", "channels: [testchan]\ndependencies: [big]\n")
    with small_tmpfs(p.store, "9m"):  # the 6 MiB prefix fits; a second copy (tarball, layers) does not
        code, _, err = p.cli("reconcile", "--once", "--wait")
        assert code == 0, err
        assert p.status()["team/big"]["state"] == "ready"
        build = builds_of(p, "team/big")[0]
        assert build["publish_error"] and build["publish_error"].startswith("DiskFull: "), build["publish_error"]
