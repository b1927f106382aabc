"""The ``registry`` and ``storage`` settings: defaults, variables and validation."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

from condaops.config import ConfigError, Settings, load_settings
from condaops.registry.backends import storage_root

TOKEN = "push-token-0123456789"


def load(tmp_path: Path, text: str | None = None, env: Mapping[str, str] | None = None) -> Settings:
    file = None
    if text is not None:
        file = tmp_path / "condaops.yaml"
        file.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_settings(file, environ=dict(env or {}), cwd=tmp_path)


def test_defaults(tmp_path: Path) -> None:
    settings = load(tmp_path)

    assert settings.registry.push_tokens == ()
    assert settings.storage.backend == "filesystem"
    assert storage_root(settings) == tmp_path / ".condaops" / "registry"
    assert settings.storage.s3_redirect is True
    assert settings.storage.s3_url_expiry == 900


def test_s3_from_the_file(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        f"""
        registry:
          push_tokens: [{TOKEN}]
        storage:
          backend: s3
          s3_bucket: artifacts
          s3_prefix: condaops/registry
          s3_endpoint: http://127.0.0.1:9000
          s3_url_expiry: 1h
    """,
    )

    assert settings.registry.push_tokens == (TOKEN,)
    assert settings.storage.s3_bucket == "artifacts"
    assert settings.storage.s3_url_expiry == 3600


def test_variables(tmp_path: Path) -> None:
    env = {
        "CONDAOPS_REGISTRY__PUSH_TOKENS": f"{TOKEN},{TOKEN}-2",
        "CONDAOPS_STORAGE__DIRECTORY": "blobs",
        "CONDAOPS_STORAGE__S3_REDIRECT": "false",
    }
    settings = load(tmp_path, env=env)

    assert settings.registry.push_tokens == (TOKEN, f"{TOKEN}-2")
    assert storage_root(settings) == tmp_path / "blobs"
    assert settings.storage.s3_redirect is False


def test_token_file_must_exist(tmp_path: Path) -> None:
    (tmp_path / "tokens").write_text(TOKEN)
    assert load(tmp_path, "registry: {push_token_file: tokens}").registry.push_token_file == tmp_path / "tokens"

    with pytest.raises(ConfigError, match="registry.push_token_file.*is not a file"):
        load(tmp_path, "registry: {push_token_file: missing}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("registry: {push_tokens: [short]}", "key 'registry.push_tokens[0]': push tokens must be at least 16"),
        ("storage: {backend: gcs}", "unknown storage backend 'gcs'; use one of filesystem, s3"),
        ("storage: {backend: s3}", "key 'storage.s3_bucket': is required when storage.backend is 's3'"),
        ("storage: {s3_bucket: b}", "key 'storage.backend': is 'filesystem' but storage.s3_bucket is set"),
        ("storage: {backend: s3, s3_bucket: b, s3_endpoint: 'minio:9000'}", "must be an http:// or https:// URL"),
        ("storage: {s3_url_expiry: 8w}", "key 'storage.s3_url_expiry': expected a duration"),
        ("storage: {s3_url_expiry: 700000}", "at most 7 days"),
        ("storage: {bucket: b}", "unknown key; did you mean 'storage.s3_bucket'?"),
    ],
    ids=["short-token", "backend", "no-bucket", "bucket-without-s3", "endpoint", "expiry-unit", "expiry-long", "typo"],
)
def test_problems_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert message in str(caught.value)


def test_token_problems_never_repeat_the_token(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, env={"CONDAOPS_REGISTRY__PUSH_TOKENS": "sekrit"})
    assert "sekrit" not in str(caught.value)
    assert "CONDAOPS_REGISTRY__PUSH_TOKENS" in str(caught.value)
