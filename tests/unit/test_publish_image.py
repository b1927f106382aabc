"""Image config and manifest (pure), ``created_time`` and copying unowned files."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from condaops.reconciler.publish.build import created_time
from condaops.reconciler.publish.image import (
    OCI_MANIFEST,
    Layer,
    copy_unowned,
    image_architecture,
    image_config,
    image_manifest,
    sha256_digest,
)

LAYER = Layer(Path("l.tar.gz"), "sha256:" + "1" * 64, 10, "sha256:" + "2" * 64, ("tool",))


def test_config_sets_the_environment_and_the_spec_variables() -> None:
    config = json.loads(
        image_config(
            [LAYER], image_prefix="/opt/env", architecture="amd64", variables=[("A", "1"), ("CONDA_PREFIX", "/x")]
        )
    )
    assert config["config"]["Env"] == [
        "PATH=/opt/env/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "CONDA_PREFIX=/x",
        "A=1",
    ]
    assert config["rootfs"] == {"type": "layers", "diff_ids": [LAYER.diff_id]}
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    assert "created" not in config  # no wall clock: the image ID is a function of the lock


def test_manifest_points_at_config_and_layers() -> None:
    config = image_config([LAYER], image_prefix="/opt/env", architecture="arm64")
    manifest = json.loads(image_manifest([LAYER], config, {"b": "2", "a": "1"}))
    assert manifest["mediaType"] == OCI_MANIFEST
    assert manifest["config"]["digest"] == sha256_digest(config)
    assert [layer["digest"] for layer in manifest["layers"]] == [LAYER.digest]
    assert list(manifest["annotations"]) == ["a", "b"]
    assert image_manifest([LAYER], config, {}) == image_manifest([LAYER], config, {})


def test_architectures() -> None:
    assert image_architecture("linux-64") == "amd64"
    assert image_architecture("linux-aarch64") == "arm64"
    assert image_architecture("osx-arm64") is None


def test_created_time_is_the_newest_package_timestamp() -> None:
    records = [
        SimpleNamespace(timestamp=datetime(2021, 1, 2, 3, 4, 5, tzinfo=UTC)),
        SimpleNamespace(timestamp=None),
        SimpleNamespace(timestamp=datetime(2020, 1, 1, tzinfo=UTC)),
    ]
    assert created_time(records) == "2021-01-02T03:04:05Z"
    assert created_time([]) == "1970-01-01T00:00:00Z"


def test_unowned_files_are_copied_with_the_prefix_relocated_in_text(tmp_path: Path) -> None:
    built, staging = tmp_path / "built-env", tmp_path / "staging"
    for root in (built, staging):
        (root / "conda-meta").mkdir(parents=True)
        (root / "conda-meta/py-1-0.json").write_text('{"name": "py", "files": ["bin/py"]}')
        (root / "bin").mkdir()
        (root / "bin/py").write_text("owned")
    (built / "bin/app").write_text(f"#!{built}/bin/py\n")
    (built / "bin/app").chmod(0o755)
    (built / "lib").mkdir()
    (built / "lib/native.so").write_bytes(b"\0" + str(built).encode())
    copied = copy_unowned(built, staging, "/opt/env")
    assert copied == ["bin/app", "lib/native.so"]
    assert (staging / "bin/app").read_text() == "#!/opt/env/bin/py\n"
    assert (staging / "bin/app").stat().st_mode & 0o777 == 0o755
    assert (staging / "lib/native.so").read_bytes() == b"\0" + str(built).encode()  # binaries unchanged
    assert (staging / "bin/py").read_text() == "owned"
