"""Push targets and base images in the configuration, and the image config on a base. Pure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from condaops.config import ConfigError, load_settings
from condaops.config.settings import PushTargetSettings
from condaops.reconciler.publish.image import Layer, image_config
from condaops.reconciler.publish.targets import OrasTarget


def _load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    (tmp_path / "condaops.yaml").write_text(text)
    return load_settings(tmp_path / "condaops.yaml", environ={})


def test_the_default_target_is_the_builtin_registry(tmp_path: Path) -> None:
    push = load_settings(environ={}, cwd=tmp_path).registry.push
    assert push == (PushTargetSettings(),) and push[0].builtin


def test_an_external_target_is_named_after_its_host(tmp_path: Path) -> None:
    push = _load(
        tmp_path,
        "registry:\n  push:\n    - builtin\n    - url: 127.0.0.1:5000\n      repository: a/b\n"
        "      username: bot\n      password_env: REG_PASS\n      insecure: true\n",
    ).registry.push
    assert [t.name for t in push] == ["builtin", "127.0.0.1-5000"]
    assert (push[1].url, push[1].repository, push[1].insecure, push[1].builtin) == (
        "127.0.0.1:5000",
        "a/b",
        True,
        False,
    )


@pytest.mark.parametrize(
    "items, key, words",
    [
        ("[builtin, builtin]", "registry.push", "more than once"),
        ("[{url: 'http://r.example/x'}]", "registry.push[0].url", "registry host"),
        ("[{repository: foo}]", "registry.push[0].repository", "only to external registries"),
        ("[{url: r.example, username: u}]", "registry.push[0].username", "needs a password"),
        ("[{url: r.example, password_env: A, password_file: /x}]", "registry.push[0].password_file", "only one"),
        ("[{url: r.example, password_env: 1A}]", "registry.push[0].password_env", "environment variable name"),
        ("[{url: r.example, repository: Bad/Name}]", "registry.push[0].repository", "not a repository path"),
        ("[{url: r.example}, {url: r.example}]", "registry.push[1].name", "already the name"),
        ("[{url: r.example, name: builtin}]", "registry.push[0].name", "names the built-in registry"),
        ("[42]", "registry.push[0]", "expected 'builtin' or a mapping"),
    ],
    ids=[
        "builtin-twice",
        "url-path",
        "builtin-repository",
        "user-no-password",
        "two-secrets",
        "bad-variable",
        "bad-prefix",
        "duplicate",
        "reserved-name",
        "not-a-mapping",
    ],
)
def test_bad_push_targets_name_the_key(tmp_path: Path, items: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, f"registry:\n  push: {items}\n")
    assert f"key '{key}'" in str(info.value) and words in str(info.value)


@pytest.mark.parametrize(
    "reference",
    [
        "docker.io/library/debian:12",
        "127.0.0.1:5000/base/busybox",
        "localhost/base@sha256:" + "a" * 64,
        "reg.example.org/a/b:v1@sha256:" + "0" * 64,
    ],
)
def test_image_base_accepts_full_references(tmp_path: Path, reference: str) -> None:
    assert _load(tmp_path, f"publish:\n  image_base: '{reference}'\n").publish.image_base == reference


def test_credentials_never_show_in_repr() -> None:
    target = OrasTarget(
        PushTargetSettings(name="m", url="r.example", username="u", password_env="SECRET"),
        environ={"SECRET": "hunter2"},
    )
    assert "hunter2" not in repr(target) and target.repository("ns/env") == "ns/env"


LAYER = Layer(Path("l.tar.gz"), "sha256:" + "1" * 64, 10, "sha256:" + "2" * 64, ("tool",))
BASE = {
    "architecture": "amd64",
    "os": "linux",
    "created": "2020-01-01T00:00:00Z",
    "config": {"Env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"], "Entrypoint": ["/init"], "User": "app"},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "3" * 64]},
    "history": [{"created_by": "base"}, {"created_by": "ENV LANG", "empty_layer": True}],
}


def test_config_on_a_base_keeps_its_settings_and_puts_the_environment_first() -> None:
    config = json.loads(
        image_config(
            [LAYER], image_prefix="/opt/env", architecture="amd64", variables=[("LANG", "en_US.UTF-8")], base=BASE
        )
    )
    assert config["config"]["Env"] == ["PATH=/opt/env/bin:/usr/bin:/bin", "LANG=en_US.UTF-8", "CONDA_PREFIX=/opt/env"]
    assert (config["config"]["Entrypoint"], config["config"]["User"], config["config"]["WorkingDir"]) == (
        ["/init"],
        "app",
        "/",
    )
    assert config["rootfs"]["diff_ids"] == ["sha256:" + "3" * 64, LAYER.diff_id]
    assert [h["created_by"] for h in config["history"]] == ["base", "ENV LANG", "condaops: tool"]
    assert "created" not in config  # no timestamps: the digest is a function of the lock and the base


def test_config_without_a_base_is_unchanged() -> None:
    plain = json.loads(image_config([LAYER], image_prefix="/opt/env", architecture="amd64"))
    assert plain["config"] == {
        "Env": [
            "PATH=/opt/env/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "CONDA_PREFIX=/opt/env",
        ],
        "WorkingDir": "/",
    }
