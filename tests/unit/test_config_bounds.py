"""Numeric settings have bounds, and sizes are read from text: the message names the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from condaops.config import ConfigError, load_settings
from condaops.config.checks import format_size, parse_size


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    (tmp_path / "condaops.yaml").write_text(text)
    return load_settings(tmp_path / "condaops.yaml", environ=env or {}, cwd=tmp_path)


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        (
            "build: {concurrency: 1000000000000000000000000000000}",
            "build.concurrency",
            "must be between 1 and 1024, got 100000000000...(31 digits)",
        ),
        ("build: {retries: 1000}", "build.retries", "must be between 0 and 100, got 1000"),
        ("build: {timeout: 30w}", "build.timeout", "expected a duration"),
        ("build: {timeout: 720h}", "build.timeout", "must be between 1s and 168h, got 720h"),
        ("build: {lease: 2h}", "build.lease", "must be between 3s and 1h, got 2h"),
        ("build: {backoff_max: 1440h}", "build.backoff_max", "must be between 0.1s and 720h, got 1440h"),
        ("web: {page_cache: 99999999999}", "web.page_cache", "must be between 0 and 1000000"),
        ("dynamic: {concurrency: 65}", "dynamic.concurrency", "must be between 1 and 64, got 65"),
        ("dynamic: {max_packages: 0}", "dynamic.max_packages", "must be between 1 and 100, got 0"),
        ("dynamic: {rate: 0}", "dynamic.rate", "must be between 1 and 100000"),
        ("dynamic: {queue: -1}", "dynamic.queue", "must be between 0 and 10000"),
        ("registry: {max_blob_size: 10}", "registry.max_blob_size", "must be between 1MiB and 1TiB, got 10 bytes"),
        ("registry: {max_blob_size: lots}", "registry.max_blob_size", "use bytes or text such as 512MiB"),
        ("registry: {max_uploads: 0}", "registry.max_uploads", "must be between 1 and 100000, got 0"),
        ("registry: {upload_max_age: 5s}", "registry.upload_max_age", "must be between 1m and 720h, got 5s"),
        ("registry: {gc_interval: 10s}", "registry.gc_interval", "must be between 0 or 1m and 168h, got 10s"),
        ("min_free_space: 2PiB", "min_free_space", "must be between 0 and 1PiB"),
        ("sources: [{directory: a, interval: 8w}]", "sources[0].interval", "expected a duration"),
        ("sources: [{directory: a, interval: 200h}]", "sources[0].interval", "must be between 0.1s and 168h"),
    ],
    ids=lambda v: v if len(v) < 30 else None,
)
def test_out_of_bounds_values_name_the_key(tmp_path: Path, text: str, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert caught.value.key == key
    assert message in str(caught.value)


def test_a_huge_number_from_a_variable_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, "prune: false\n", {"CONDAOPS_BUILD__CONCURRENCY": "1" + "0" * 30})
    assert "build.concurrency" in str(caught.value) and "(set by CONDAOPS_BUILD__CONCURRENCY)" in str(caught.value)


def test_sizes_and_zero_intervals_are_read(tmp_path: Path) -> None:
    settings = load(tmp_path, "registry: {max_blob_size: 2GiB, gc_interval: 0}\nmin_free_space: 500MB\n")
    assert settings.registry.max_blob_size == 2 * 1024**3
    assert settings.registry.gc_interval == 0
    assert settings.min_free_space == 500 * 1000**2


@pytest.mark.parametrize(
    ("text", "size"),
    [("1048576", None), ("512MiB", 512 * 1024**2), ("1Gi", 1024**3), ("20G", 20 * 1000**3), ("1.5KB", 1500)],
    ids=["digits-text", "mib", "gi", "g", "fraction"],
)
def test_parse_size(text: str, size: int | None) -> None:
    assert parse_size(text) == (size if size is not None else 1048576)


@pytest.mark.parametrize("text", ["", "MB", "1iB", "-1G", "1 TB of disk", "1e9"], ids=repr)
def test_parse_size_refuses(text: str) -> None:
    assert parse_size(text) is None


def test_format_size_round_trips() -> None:
    for size in (0, 1, 1500, 1024, 512 * 1024**2, 20 * 1024**3, 1024**5):
        assert parse_size(format_size(size)) == size
