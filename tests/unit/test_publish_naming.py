"""Repository names, tags, annotations and the publish settings keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from condaops.config import ConfigError, load_settings
from condaops.reconciler.model import EnvRef
from condaops.reconciler.publish.naming import build_tags, image_labels, is_git_sha, repository_name
from condaops.registry.protocol import check_name

SHA1 = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(
    "namespace, name, expected",
    [
        ("team", "flask", "team/flask"),
        ("Team", "Flask", "team/flask"),
        ("data-sci", "py3.12_env", "data-sci/py3.12_env"),
        ("a", "x__y", "a/x__y"),
        ("a", "x---y", "a/x---y"),
        ("a", "x._y", "a/x-y"),
        ("a", "x___y", "a/x-y"),
        ("a", "env-", "a/env"),
        ("a", "env_.", "a/env"),
    ],
    ids=[
        "plain",
        "upper",
        "separators",
        "double-underscore",
        "dashes",
        "dot-underscore",
        "triple-underscore",
        "trailing-dash",
        "trailing-run",
    ],
)
def test_repository_names_follow_the_oci_grammar(namespace: str, name: str, expected: str) -> None:
    mapped = repository_name(EnvRef(namespace, name))
    assert mapped == expected
    assert check_name(mapped) == mapped


@pytest.mark.parametrize(
    "revision, linked, expected",
    [
        (SHA1, True, ["latest", "build-7", "spec-abcdef012345", "git-0123456789ab"]),
        (SHA1, False, ["build-7", "spec-abcdef012345", "git-0123456789ab"]),
        ("dir:" + "a" * 64, True, ["latest", "build-7", "spec-abcdef012345"]),
        (None, True, ["latest", "build-7", "spec-abcdef012345"]),
    ],
    ids=["git-linked", "git-not-linked", "directory", "no-revision"],
)
def test_build_tags(revision: str | None, linked: bool, expected: list[str]) -> None:
    assert build_tags(build_id=7, spec_hash="abcdef0123456789" * 4, revision=revision, linked=linked) == expected


@pytest.mark.parametrize(
    "revision, expected",
    [
        (SHA1, True),
        ("f" * 64, True),
        (SHA1.upper(), False),
        (SHA1[:12], False),
        ("dir:" + "a" * 64, False),
        (None, False),
    ],
    ids=["sha1", "sha256", "upper", "short", "directory", "none"],
)
def test_is_git_sha(revision: str | None, expected: bool) -> None:
    assert is_git_sha(revision) is expected


def test_labels_carry_the_oci_keys_and_leave_out_what_is_unknown() -> None:
    ref = EnvRef("team", "Tool")
    common = {"ref": ref, "spec_hash": "h", "version": "build-3", "created": "2021-01-01T00:00:00Z"}
    full = image_labels(**common, source_url="https://x/y.git", revision=SHA1, description="conda environment: x 1")
    assert full == {
        "io.condaops.spec-hash": "h",
        "org.opencontainers.image.created": "2021-01-01T00:00:00Z",
        "org.opencontainers.image.description": "conda environment: x 1",
        "org.opencontainers.image.revision": SHA1,
        "org.opencontainers.image.source": "https://x/y.git",
        "org.opencontainers.image.title": "team/Tool",
        "org.opencontainers.image.version": "build-3",
    }
    bare = image_labels(**common, source_url=None, revision=None, description="d")
    assert "org.opencontainers.image.source" not in bare and "org.opencontainers.image.revision" not in bare


def _load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    file = tmp_path / "condaops.yaml"
    file.write_text(text, encoding="utf-8")
    return load_settings(file, environ={}, cwd=tmp_path)


def test_publish_defaults_and_values(tmp_path: Path) -> None:
    default = load_settings(environ={}, cwd=tmp_path).publish
    assert (default.enabled, default.pack_format, default.image_prefix, default.image_base, default.layer_budget) == (
        True,
        "tar.zst",
        "/opt/env",
        None,
        80,
    )
    assert default.layer_compression == "zstd"
    scratch = _load(tmp_path, "publish:\n  image_base: scratch\n  layer_compression: gzip\n").publish
    assert (scratch.image_base, scratch.layer_compression) == ("scratch", "gzip")
    chosen = _load(
        tmp_path,
        "publish:\n  enabled: true\n  pack_format: tar.gz\n  image_prefix: /opt/conda/envs/x\n  layer_budget: 2\n",
    ).publish
    assert (chosen.enabled, chosen.pack_format, chosen.image_prefix, chosen.layer_budget) == (
        True,
        "tar.gz",
        "/opt/conda/envs/x",
        2,
    )


@pytest.mark.parametrize(
    "text, key, words",
    [
        ("publish:\n  pack_format: zip\n", "publish.pack_format", "tar.zst"),
        ("publish:\n  image_prefix: opt/env\n", "publish.image_prefix", "absolute path"),
        ("publish:\n  image_prefix: /opt/env/\n", "publish.image_prefix", "trailing slash"),
        ("publish:\n  image_prefix: /opt/../env\n", "publish.image_prefix", "absolute path"),
        ("publish:\n  image_base: debian:12\n", "publish.image_base", "not a full image reference"),
        ("publish:\n  image_base: reg.example.org/Debian\n", "publish.image_base", "not a full image reference"),
        ("publish:\n  image_base: Scratch\n", "publish.image_base", "scratch for no base"),
        ("publish:\n  layer_compression: xz\n", "publish.layer_compression", "use one of zstd, gzip"),
        ("publish:\n  layer_budget: 1\n", "publish.layer_budget", "between 2 and 127"),
        ("publish:\n  layer_budget: 500\n", "publish.layer_budget", "between 2 and 127"),
        ("publish:\n  enabeld: true\n", "publish.enabeld", "did you mean 'publish.enabled'"),
    ],
    ids=[
        "format",
        "relative-prefix",
        "trailing-slash",
        "dotdot",
        "base",
        "base-upper",
        "scratch-case",
        "compression",
        "budget-low",
        "budget-high",
        "typo",
    ],
)
def test_bad_publish_settings_name_the_key(tmp_path: Path, text: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    assert key in str(info.value) and words in str(info.value)
