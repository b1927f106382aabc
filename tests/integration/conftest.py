"""Fixtures for end-to-end tests: a condaops project (config + environment files) whose
channels are real conda channels served over HTTP on 127.0.0.1, reached through
``channels.mirrors`` exactly as an air-gapped site reaches its mirror."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from condaops.reconciler import cli
from tests.support.channels import PackageSpec, ServedURL, make_channel

ALIAS = "https://conda.anaconda.org/"


@dataclass
class Project:
    """A folder with condaops.yaml, an ``envs/`` source tree and a store."""

    root: Path
    capsys: pytest.CaptureFixture[str]
    config: dict = field(default_factory=dict)

    @property
    def config_file(self) -> Path:
        return self.root / "condaops.yaml"

    @property
    def envs(self) -> Path:
        return self.root / "envs"

    @property
    def store(self) -> Path:
        return self.root / "store"

    def write_config(self, **overrides: object) -> None:
        data = {**self.config, **overrides}
        self.config = data
        self.config_file.write_text(yaml.safe_dump(data, sort_keys=False))

    def write_env(self, rel: str, content: str | bytes) -> Path:
        path = self.envs / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return path

    def cli(self, *args: str) -> tuple[int, str, str]:
        """Run ``condaops --config <file> ARGS`` in-process; return (exit, stdout, stderr)."""
        self.capsys.readouterr()
        code = cli.main(["--config", str(self.config_file), *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def status(self) -> dict[str, dict]:
        code, out, _ = self.cli("status", "--json")
        assert code == 0
        return {f"{i['namespace']}/{i['name']}": i for i in json.loads(out)}

    def link(self, ref: str) -> Path:
        ns, name = ref.split("/")
        return self.store / ns / "envs" / name


@pytest.fixture
def project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., Project]:
    """``project(mirrors={canonical: url}, **settings)`` → a ready Project."""

    def make(mirrors: Mapping[str, str], **settings: object) -> Project:
        p = Project(tmp_path / "project", capsys)
        p.envs.mkdir(parents=True)
        base = {
            "store": "store",
            "sources": [{"directory": "envs"}],
            "channels": {"default": ["testchan"], "alias": ALIAS, "mirrors": {k: [str(v)] for k, v in mirrors.items()}},
            "platforms": ["linux-64"],
            "build": {"retries": 1, "backoff": "1s", "concurrency": 2},
        }
        for key, value in settings.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                base[key] = {**base[key], **value}  # type: ignore[dict-item]
            else:
                base[key] = value
        p.write_config(**base)
        return p

    return make


def tool_packages(versions: Iterable[str] = ("1.0", "2.0")) -> list[PackageSpec]:
    """A small real package family: ``tool`` (a bin/ script) on ``libtool-data``."""
    pkgs = [PackageSpec("libtool-data", "1.0", files={"share/tool/data.txt": "prefix=PREFIX_PLACEHOLDER\n"})]
    for v in versions:
        pkgs.append(PackageSpec("tool", v, depends=("libtool-data",), executables=("tool",)))
    return pkgs


@pytest.fixture
def tool_channel(tmp_path_factory: pytest.TempPathFactory, http_channel) -> ServedURL:  # type: ignore[no-untyped-def]
    """``tool`` 1.0 and 2.0 in a channel served on 127.0.0.1 (mirror of ``testchan``)."""
    root = tmp_path_factory.mktemp("testchan")
    make_channel(root, tool_packages())
    return http_channel(root)


@pytest.fixture
def empty_channel(tmp_path_factory: pytest.TempPathFactory, http_channel) -> ServedURL:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("emptychan")
    (root / "linux-64").mkdir()
    make_channel(root, [])
    return http_channel(root)


@pytest.fixture
def dyn_channel(tmp_path_factory: pytest.TempPathFactory, http_channel) -> ServedURL:  # type: ignore[no-untyped-def]
    """The channel dynamic images are built from (tests/support/dynamic.py)."""
    from tests.support.dynamic import channel_packages

    root = tmp_path_factory.mktemp("dynchan")
    make_channel(root, channel_packages(tool_packages(("1.0",))))
    return http_channel(root)


@pytest.fixture
def dynamic_registry(tmp_path: Path, dyn_channel: ServedURL):  # type: ignore[no-untyped-def]
    """``serve(dynamic=..., allowed=..., auth=...)`` → a registry serving dynamic images."""
    from tests.support.dynamic import dynamic_servers

    with dynamic_servers(tmp_path / "store", dyn_channel) as serve:
        yield serve


@pytest.fixture
def builds():  # type: ignore[no-untyped-def]
    """``builds()``: the dynamic builds started so far (their log lines)."""
    from tests.support.dynamic import build_log

    with build_log() as started:
        yield started
