"""The pure decisions of dynamic images: the registry's gate (registry/dynamic.py) and the
reconciler's builder (reconciler/dynamic_builder.py); building is tested end to end in
tests/integration/test_dynamic_images.py."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from condaops.config.settings import ChannelSettings, DynamicSettings, Settings
from condaops.reconciler.build.disk import DiskFullError
from condaops.reconciler.dynamic_builder import (
    DynamicImageBuilder,
    denied_channels,
    dynamic_spec,
    linux_platform,
    one_line,
    refusal_for,
)
from condaops.reconciler.errors import ChannelError, ChannelNotAllowedError, InstallError, SolveError
from condaops.registry.api import Registry
from condaops.registry.backends import open_storage
from condaops.registry.dynamic import Caller, DynamicImages, DynamicOff, Solved, dynamic_gate, spec_tag
from condaops.registry.dynamic_path import DynamicRequest, parse_dynamic_name
from condaops.registry.errors import (
    DENIED,
    MANIFEST_UNKNOWN,
    NAME_INVALID,
    NAME_UNKNOWN,
    TOOMANYREQUESTS,
    UNAVAILABLE,
    RegistryError,
)
from condaops.registry.manifests import Descriptor
from condaops.registry.routes import parse_route

ALIAS = "https://conda.anaconda.org/"


def request(name: str):  # type: ignore[no-untyped-def]
    return parse_dynamic_name(name, max_packages=10)


def test_the_spec_hash_ignores_order_and_follows_channels_and_platform() -> None:
    one = dynamic_spec(request("dynamic/tool.eq.1.0/libtool-data"), ("testchan",), "linux-64")
    two = dynamic_spec(request("dynamic/libtool-data/tool.eq.1.0"), ("testchan",), "linux-64")
    assert one.spec_hash == two.spec_hash and spec_tag(one.spec_hash) == f"spec-{one.spec_hash[:12]}"
    assert one.dependencies_for("linux-64") == ["libtool-data", "tool ==1.0"]
    assert dynamic_spec(request("dynamic/tool.eq.1.0/libtool-data"), ("other",), "linux-64").spec_hash != one.spec_hash
    assert (
        dynamic_spec(request("dynamic/tool.eq.1.0/libtool-data"), ("testchan",), "linux-aarch64").spec_hash
        != one.spec_hash
    )


@pytest.mark.parametrize(
    ("host", "linux"),
    [
        ("linux-64", "linux-64"),
        ("linux-aarch64", "linux-aarch64"),
        ("osx-arm64", "linux-aarch64"),
        ("osx-64", "linux-64"),
        ("win-64", "linux-64"),
    ],
    ids=lambda v: v,
)
def test_images_are_built_for_the_hosts_linux_platform(host: str, linux: str) -> None:
    assert linux_platform(host) == linux


@pytest.mark.parametrize(
    ("default", "allowed", "denied"),
    [
        (("conda-forge",), (), []),
        (("conda-forge",), ("conda-forge", "bioconda"), []),
        (("conda-forge", "bioconda"), ("conda-forge",), [ALIAS + "bioconda"]),
        (("defaults",), ("conda-forge",), ["https://repo.anaconda.com/pkgs/main", "https://repo.anaconda.com/pkgs/r"]),
    ],
    ids=["anything", "listed", "one-denied", "defaults"],
)
def test_default_channels_outside_allowed_are_denied(default: tuple, allowed: tuple, denied: list) -> None:
    assert denied_channels(ChannelSettings(default=default, allowed=allowed, alias=ALIAS)) == denied


def test_a_conflict_tree_becomes_one_line() -> None:
    tree = (
        "Cannot solve the request because of: app 1.0 cannot be installed because it requires\n"
        "├─ lib <2, which can be installed with any of the following options:\n"
        "│  └─ lib 1.0\n"
        "└─ lib >=2, which cannot be installed because it conflicts with lib <2.\n"
    )
    assert one_line(tree) == (
        "Cannot solve the request because of: app 1.0 cannot be installed because it requires "
        "lib <2, which can be installed with any of the following options: lib 1.0 "
        "lib >=2, which cannot be installed because it conflicts with lib <2."
    )


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (SolveError("x cannot be solved:\nbecause"), MANIFEST_UNKNOWN),
        (ChannelNotAllowedError("channel not allowed"), DENIED),
        (ChannelError("unreachable"), UNAVAILABLE),
        (InstallError("download failed"), UNAVAILABLE),
        (InstallError("failed to link: No space left on device (os error 28)"), DENIED),
        (DiskFullError("below min_free_space"), DENIED),
        (RegistryError(NAME_UNKNOWN, "no package"), NAME_UNKNOWN),
    ],
    ids=["solve", "denied", "channel", "install", "install-disk-full", "disk-full", "registry"],
)
def test_failures_map_to_registry_errors(error: Exception, code: object) -> None:
    refusal = refusal_for(error, "dynamic/x")  # type: ignore[arg-type]
    assert refusal.code == code and "\n" not in refusal.message
    if isinstance(error, DiskFullError) or "os error 28" in str(error):
        assert refusal.status == 507


def settings(tmp_path: Path, **dynamic: object) -> Settings:
    return Settings(store=tmp_path, dynamic=DynamicSettings(**dynamic))  # type: ignore[arg-type]


def gate_of(s: Settings) -> DynamicImages:
    storage = open_storage(s)
    return DynamicImages(s, storage, DynamicImageBuilder(s, Registry(storage), platform="linux-64"))


def test_the_gate_follows_dynamic_enabled(tmp_path: Path) -> None:
    storage = open_storage(settings(tmp_path))
    assert isinstance(dynamic_gate(settings(tmp_path), storage), DynamicOff)
    assert isinstance(dynamic_gate(settings(tmp_path, enabled=True), storage), DynamicImages)


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "dynamic/tool/manifests/latest"), ("POST", "dynamic/tool/blobs/uploads/")],
    ids=["manifest", "upload"],
)
def test_pushes_into_the_dynamic_namespace_are_denied(tmp_path: Path, method: str, path: str) -> None:
    s = settings(tmp_path, enabled=True)
    gate = gate_of(s)
    with pytest.raises(RegistryError, match="only the registry itself writes") as caught:
        asyncio.run(gate.prepare(parse_route(method, path)))
    assert caught.value.code == DENIED and caught.value.status == 403


def test_other_repositories_and_other_references_pass_through(tmp_path: Path) -> None:
    s = settings(tmp_path, enabled=True)
    gate = gate_of(s)
    for method, path in [
        ("PUT", "ns/env/manifests/latest"),
        ("GET", "ns/env/manifests/latest"),
        ("GET", "dynamic/tool/manifests/v1"),
        ("GET", "dynamic/tool/tags/list"),
    ]:
        asyncio.run(gate.prepare(parse_route(method, path)))  # nothing built, nothing refused


def test_a_bad_request_is_refused_before_any_build(tmp_path: Path) -> None:
    s = settings(tmp_path, enabled=True)
    gate = gate_of(s)
    with pytest.raises(RegistryError) as caught:
        asyncio.run(gate.prepare(parse_route("GET", "dynamic/tool.gte.1/manifests/latest")))
    assert caught.value.code == NAME_INVALID
    assert not (tmp_path / "dynamic").exists()


def test_disabled_the_namespace_does_not_exist(tmp_path: Path) -> None:
    s = settings(tmp_path)
    gate = DynamicOff(open_storage(s))
    with pytest.raises(RegistryError, match=r"dynamic\.enabled is false") as caught:
        asyncio.run(gate.prepare(parse_route("GET", "dynamic/tool/manifests/latest")))
    assert caught.value.code == NAME_UNKNOWN and caught.value.status == 404
    asyncio.run(gate.prepare(parse_route("GET", "ns/env/manifests/latest")))  # not its business


class HeldBuilder:
    """A ``DynamicBuilder`` whose solve waits until released, then fails as told: for the
    gate's admission decisions (the real builder is exercised end to end elsewhere)."""

    def __init__(self, failure: Exception) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.failure = failure

    def request_key(self, request: DynamicRequest) -> str:
        return hashlib.sha256(request.canonical_name.encode()).hexdigest()

    def solve(self, request: DynamicRequest) -> Solved:
        self.started.set()
        self.release.wait(10)
        raise self.failure

    def build(self, solved: Solved, repository: str, tags: Sequence[str]) -> Descriptor:
        raise AssertionError("never reached")


def test_requests_beyond_concurrency_and_queue_get_429(tmp_path: Path) -> None:
    s = settings(tmp_path, enabled=True, concurrency=1, queue=0)
    builder = HeldBuilder(RegistryError(MANIFEST_UNKNOWN, "cannot be solved"))
    gate = DynamicImages(s, open_storage(s), builder)

    async def scenario() -> None:
        first = asyncio.ensure_future(gate.ensure("dynamic/a", Caller()))
        await asyncio.to_thread(builder.started.wait, 10)
        with pytest.raises(RegistryError) as caught:
            await gate.ensure("dynamic/b", Caller(address="10.0.0.2"))
        assert (caught.value.code, caught.value.status) == (TOOMANYREQUESTS, 429)
        assert "dynamic.concurrency + dynamic.queue" in caught.value.message
        builder.release.set()
        with pytest.raises(RegistryError) as failed:
            await first
        assert failed.value.code == MANIFEST_UNKNOWN

    asyncio.run(scenario())


def test_a_crashing_builder_is_answered_unavailable(tmp_path: Path) -> None:
    s = settings(tmp_path, enabled=True)
    builder = HeldBuilder(RuntimeError("bug"))
    builder.release.set()
    gate = DynamicImages(s, open_storage(s), builder)
    with pytest.raises(RegistryError) as caught:
        asyncio.run(gate.ensure("dynamic/a", Caller()))
    assert caught.value.code == UNAVAILABLE and "RuntimeError" in caught.value.message


def test_without_a_builder_new_images_are_unavailable(tmp_path: Path) -> None:
    s = settings(tmp_path, enabled=True)
    gate = DynamicImages(s, open_storage(s), None)
    with pytest.raises(RegistryError, match="cannot build dynamic images") as caught:
        asyncio.run(gate.ensure("dynamic/a", Caller()))
    assert caught.value.code == UNAVAILABLE
