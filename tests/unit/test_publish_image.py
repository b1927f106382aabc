"""Image config and manifest (pure), ``created_time``, and layers written from a built
prefix with the prefix relocated."""

from __future__ import annotations

import hashlib
import io
import json
import json as _json
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
import zstandard

from condaops.reconciler.publish.assemble import created_time, describe
from condaops.reconciler.publish.image import (
    LAYER_FORMATS,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    ImageError,
    Layer,
    image_architecture,
    image_config,
    image_manifest,
    sha256_digest,
    write_layers,
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


def test_labels_go_into_the_config_over_the_base_labels() -> None:
    base = {"config": {"Labels": {"vendor": "base", "org.opencontainers.image.title": "base"}, "Env": ["A=b"]}}
    config = json.loads(
        image_config(
            [LAYER],
            image_prefix="/opt/env",
            architecture="amd64",
            base=base,
            labels={"org.opencontainers.image.title": "t"},
        )
    )
    assert config["config"]["Labels"] == {"vendor": "base", "org.opencontainers.image.title": "t"}
    assert config["config"]["Env"][0] == "A=b"


def test_description_names_the_requested_packages_with_their_versions() -> None:
    records = [SimpleNamespace(name=n, version=v) for n, v in [("python", "2.7.18"), ("flask", "1.1.2"), ("zlib", "1")]]
    described = describe(records, ["python=2.7", "flask"])
    assert described == "conda environment: flask 1.1.2, python 2.7.18 (+1 dependencies)"
    assert describe(records, []) == "conda environment: 3 packages"


def _record(name: str, paths: list[dict]) -> str:
    files = [p["_path"] for p in paths]
    return _json.dumps({"name": name, "files": files, "paths_data": {"paths": paths}})


def _built_prefix(root: Path) -> Path:
    """A prefix as rattler leaves it: a binary placeholder padded with NULs, a text
    placeholder, an entry point, an unowned script and binary, an absolute link."""
    prefix = root / "store" / ("0" * 64 + "-env")
    me = str(prefix).encode()
    (prefix / "conda-meta").mkdir(parents=True)
    (prefix / "bin").mkdir()
    (prefix / "lib").mkdir()
    (prefix / "lib/libbin.so").write_bytes(b"\x7fELF" + me + b"/share\0" + b"\0" * 20 + b"tail")
    (prefix / "lib/tool.pc").write_text(f"prefix={prefix}\nlibdir={prefix}/lib\n")
    (prefix / "bin/entry").write_text(f"#!{prefix}/bin/python\nimport tool\n")
    (prefix / "bin/entry").chmod(0o755)
    (prefix / "bin/plain").write_bytes(b"\0" + me)  # no placeholder recorded: left alone
    (prefix / "conda-meta/tool-1-0.json").write_text(
        _record(
            "tool",
            [
                {"_path": "lib/libbin.so", "prefix_placeholder": "/ph" * 40, "file_mode": "binary"},
                {
                    "_path": "lib/tool.pc",
                    "prefix_placeholder": "/ph" * 40,
                    "file_mode": "text",
                    "sha256_in_prefix": "0" * 64,
                    "size_in_bytes": 1,
                },
                {"_path": "bin/entry", "path_type": "unix_python_entry_point", "sha256": "0" * 64},
                {"_path": "bin/plain"},
            ],
        )
    )
    (prefix / "bin/pip-script").write_text(f"#!{prefix}/bin/python\n")
    (prefix / "lib/pip-native.so").write_bytes(b"\0" + me)
    (prefix / "lib/abs-link").symlink_to(prefix / "lib/tool.pc")
    return prefix


def _layer_files(layer: Layer) -> dict[str, tarfile.TarInfo | bytes]:
    raw = zstandard.ZstdDecompressor().stream_reader(layer.file.open("rb")).read()
    out: dict[str, tarfile.TarInfo | bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        for member in tar:
            extracted = tar.extractfile(member) if member.isfile() else None
            out[member.name] = extracted.read() if extracted else member
    return out


def test_layers_hold_the_built_prefix_relocated(tmp_path: Path) -> None:
    prefix = _built_prefix(tmp_path)
    layers = write_layers(prefix, "/opt/env", tmp_path / "out", budget=10)
    assert [layer.packages for layer in layers] == [("tool",), ()]
    assert all(layer.media_type == OCI_LAYER_ZSTD for layer in layers)
    tool, rest = _layer_files(layers[0]), _layer_files(layers[1])
    binary = tool["opt/env/lib/libbin.so"]
    assert binary == b"\x7fELF/opt/env/share\0" + b"\0" * (len(str(prefix)) - 8) + b"\0" * 20 + b"tail"
    assert tool["opt/env/lib/tool.pc"] == b"prefix=/opt/env\nlibdir=/opt/env/lib\n"
    assert tool["opt/env/bin/entry"] == b"#!/opt/env/bin/python\nimport tool\n"
    assert tool["opt/env/bin/plain"] == b"\0" + str(prefix).encode()
    pc = tool["opt/env/lib/tool.pc"]
    (meta,) = [json.loads(v) for k, v in tool.items() if k.startswith("opt/env/conda-meta/")]  # type: ignore[arg-type]
    assert list(tool)[-1] == "opt/env/conda-meta/tool-1-0.json"  # written after the files it describes
    entry = next(e for e in meta["paths_data"]["paths"] if e["_path"] == "lib/tool.pc")
    assert (entry["sha256_in_prefix"], entry["size_in_bytes"]) == (hashlib.sha256(pc).hexdigest(), len(pc))
    script = next(e for e in meta["paths_data"]["paths"] if e["_path"] == "bin/entry")
    assert script["sha256"] == hashlib.sha256(tool["opt/env/bin/entry"]).hexdigest()  # type: ignore[arg-type]
    assert rest["opt/env/bin/pip-script"] == b"#!/opt/env/bin/python\n"
    assert rest["opt/env/lib/pip-native.so"] == b"\0" + str(prefix).encode()  # unowned binaries: unchanged
    link = rest["opt/env/lib/abs-link"]
    assert isinstance(link, tarfile.TarInfo) and link.linkname == "/opt/env/lib/tool.pc"
    again = write_layers(prefix, "/opt/env", tmp_path / "again", budget=10)
    assert [layer.digest for layer in again] == [layer.digest for layer in layers]


def test_gzip_layers_on_request(tmp_path: Path) -> None:
    gzip = LAYER_FORMATS["gzip"]
    layers = write_layers(_built_prefix(tmp_path), "/opt/env", tmp_path / "out", budget=10, layer_format=gzip)
    assert {layer.media_type for layer in layers} == {"application/vnd.oci.image.layer.v1.tar+gzip"}
    assert all(layer.file.read_bytes()[:2] == b"\x1f\x8b" for layer in layers)


def test_an_image_prefix_longer_than_the_build_prefix_is_refused(tmp_path: Path) -> None:
    prefix = _built_prefix(tmp_path)
    with pytest.raises(ImageError, match="choose a shorter publish.image_prefix"):
        write_layers(prefix, "/opt/" + "x" * len(str(prefix)), tmp_path / "out", budget=10)
