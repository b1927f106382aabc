"""Solve and install real packages with py-rattler over HTTP on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from condaops.config.settings import ChannelSettings
from condaops.reconciler.build.channels import VirtualPackageVersions, build_client
from condaops.reconciler.build.install import install_prefix, verify_prefix
from condaops.reconciler.build.solve import solve_platforms
from condaops.reconciler.errors import (
    ChannelError,
    ChannelNotAllowedError,
    InstallError,
    SolveError,
    VerifyError,
)
from condaops.reconciler.spec import Dependency, Spec
from tests.support.channels import PackageSpec, closed_port_url, make_channel

pytestmark = pytest.mark.integration

MAIN = "https://repo.anaconda.com/pkgs/main"
CONDA_FORGE = "https://conda.anaconda.org/conda-forge"

# app needs lib >=2; lib exists as 1.0 and 2.1 (.conda, with a prefix-bearing file).
TOY_PACKAGES = [
    PackageSpec("app", "1.0", depends=("lib >=2",), executables=("app",)),
    PackageSpec("lib", "1.0", fmt="conda", files={"share/lib/version": "1.0\n"}),
    PackageSpec(
        "lib",
        "2.1",
        fmt="conda",
        files={"share/lib/version": "2.1\n", "etc/lib.conf": "prefix=/opt/anaconda1anaconda2anaconda3\n"},
    ),
    PackageSpec("data", "3.0", subdir="noarch", files={"share/data/readme.txt": "noarch data\n"}),
]


def make_spec(channels: tuple[str, ...], *deps: str | Dependency) -> Spec:
    items = tuple(sorted(d if isinstance(d, Dependency) else Dependency(d) for d in deps))
    return Spec(channels=channels, dependencies=items)


def solve(spec: Spec, platforms: list[str], tmp_path: Path, **kwargs) -> dict:
    kwargs.setdefault("channels", ChannelSettings())
    return asyncio.run(solve_platforms(spec, platforms, cache_dir=tmp_path / "repodata", **kwargs))


def install(records, prefix: Path, cache: Path, **kwargs) -> None:
    asyncio.run(install_prefix(records, prefix, cache_dir=cache, **kwargs))


@pytest.fixture
def toy_channel(channel_factory, http_channel):
    root = channel_factory(TOY_PACKAGES, name="toy")
    return root, http_channel(root)


# --- happy paths ------------------------------------------------------------------


def test_own_packages_install_and_run(toy_channel, tmp_path: Path) -> None:
    _, url = toy_channel
    records = solve(make_spec((url,), "app", "data"), ["linux-64"], tmp_path, env_label="toys/app")["linux-64"]
    assert sorted(r.file_name for r in records) == [
        "app-1.0-0.tar.bz2",
        "data-3.0-0.tar.bz2",
        "lib-2.1-0.conda",
    ]

    prefix = tmp_path / "env"
    install(records, prefix, tmp_path / "pkgs", client=build_client({}, alias=""), requested_specs=["app", "data"])

    out = subprocess.run([prefix / "bin" / "app"], capture_output=True, text=True, check=True)
    assert out.stdout == f"app 1.0 {prefix}\n"  # the placeholder was rewritten
    assert (prefix / "etc/lib.conf").read_text() == f"prefix={prefix}\n"
    assert (prefix / "share/data/readme.txt").read_text() == "noarch data\n"
    meta = sorted(p.name for p in (prefix / "conda-meta").glob("*.json"))
    assert meta == ["app-1.0-0.json", "data-3.0-0.json", "lib-2.1-0.json"]
    assert all(stat.S_IMODE(p.stat().st_mode) & 0o044 == 0o044 for p in (prefix / "conda-meta").glob("*.json"))
    assert not (prefix / "CACHEDIR.TAG").exists()
    assert json.loads((prefix / "conda-meta/app-1.0-0.json").read_text())["requested_specs"] == ["app"]
    verify_prefix(prefix, records)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["env", "pkgs", "repodata"]  # no staging left
    assert not any(b".partial-" in p.read_bytes() for p in prefix.rglob("*") if p.is_file())


def test_flask_env_through_a_mirror(realdata_channel, channel_factory, http_channel, tmp_path: Path) -> None:
    main = realdata_channel("defaults-2021-py27-flask")
    r_channel = http_channel(channel_factory([], name="empty-r"))  # `defaults` also means pkgs/r
    settings = ChannelSettings(mirrors={MAIN: (main,), "https://repo.anaconda.com/pkgs/r": (r_channel,)})
    spec = make_spec(("defaults",), "python=2.7", "flask")

    records = solve(spec, ["linux-64"], tmp_path, channels=settings, env_label="web/flask")["linux-64"]

    assert len(records) == 18
    assert all(r.url.startswith(f"{MAIN}/") and r.channel.rstrip("/") == MAIN for r in records)
    assert main.request_count("/linux-64/repodata.json", status=200) == 1
    assert main.request_count("/noarch/repodata.json", status=200) == 1

    client = build_client(settings.mirrors, alias=settings.alias)
    cache = tmp_path / "pkgs"
    timings = []
    for name in ("cold", "warm"):
        started = time.perf_counter()
        install(records, tmp_path / name, cache, client=client, requested_specs=["python=2.7", "flask"])
        timings.append(time.perf_counter() - started)
    print(f"\nflask env install: cold {timings[0]:.2f} s, warm {timings[1]:.2f} s")

    assert main.request_count("/linux-64/python-2.7.18-h15b4118_1.conda") == 1  # fetched once
    for name in ("cold", "warm"):
        out = subprocess.run(
            [tmp_path / name / "bin/python", "-c", "import flask; print(flask.__version__)"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.strip() == "1.1.2"
        # entry points name the final prefix, not the staging folder rattler wrote into
        assert (tmp_path / name / "bin/flask").read_text().splitlines()[0] == f"#!{tmp_path / name}/bin/python2.7"
        verify_prefix(tmp_path / name, records)
    cold, warm = (os.stat(tmp_path / n / "lib/python2.7/os.py") for n in ("cold", "warm"))
    assert (cold.st_dev, cold.st_ino) == (warm.st_dev, warm.st_ino)  # hardlinked from the cache
    assert timings[1] < timings[0]


def test_lock_for_foreign_platforms_with_virtual_packages(realdata_channel, tmp_path: Path) -> None:
    mirror = realdata_channel("conda-forge-py312-deps")
    settings = ChannelSettings(mirrors={CONDA_FORGE: (mirror,)})
    spec = make_spec(
        ("conda-forge",),
        "openssl",
        "libsqlite",
        "tk",
        Dependency("xz", "linux"),
        Dependency("liblzma", "osx"),
    )

    solved = solve(spec, ["linux-64", "osx-arm64"], tmp_path, channels=settings, env_label="cf/libs")

    versions = {p: {r.name.normalized: str(r.version) for r in recs} for p, recs in solved.items()}
    assert versions["linux-64"]["openssl"] == "3.3.1" and "xz" in versions["linux-64"]
    assert versions["osx-arm64"]["openssl"] == "3.6.0" and "liblzma" in versions["osx-arm64"]
    assert "xz" not in versions["osx-arm64"] and "libgcc-ng" not in versions["osx-arm64"]
    assert {r.subdir for r in solved["osx-arm64"]} == {"osx-arm64", "noarch"}
    assert all(r.url.startswith(f"{CONDA_FORGE}/") for recs in solved.values() for r in recs)


def test_virtual_package_versions_decide_what_solves(realdata_channel, tmp_path: Path) -> None:
    mirror = realdata_channel("conda-forge-py312-deps")
    settings = ChannelSettings(mirrors={CONDA_FORGE: (mirror,)})
    old_mac = VirtualPackageVersions(osx="10.15")
    with pytest.raises(SolveError) as info:
        solve(
            make_spec(("conda-forge",), "openssl"),
            ["osx-arm64"],
            tmp_path,
            channels=settings,
            virtual_versions=old_mac,
            env_label="cf/ssl",
        )
    assert "__osx" in str(info.value) and "environment 'cf/ssl' for osx-arm64" in str(info.value)


def test_channel_prefix_selects_a_lower_priority_channel(tmp_path: Path, http_channel) -> None:
    # Two channels behind one alias: short names and `b::app` resolve against it.
    make_channel(tmp_path / "site" / "a", TOY_PACKAGES)
    make_channel(tmp_path / "site" / "b", [PackageSpec("app", "2.0", depends=("lib",), build="b_0")])
    alias = http_channel(tmp_path / "site") + "/"
    settings = ChannelSettings(alias=alias, allowed=("a", "b"))

    plain = solve(make_spec(("a", "b"), "app"), ["linux-64"], tmp_path, channels=settings)["linux-64"]
    prefixed = solve(make_spec(("a",), "b::app"), ["linux-64"], tmp_path, channels=settings)["linux-64"]

    assert {r.name.normalized: r.file_name for r in plain}["app"] == "app-1.0-0.tar.bz2"  # a wins
    chosen = {r.name.normalized: r for r in prefixed}
    assert chosen["app"].file_name == "app-2.0-b_0.tar.bz2"
    assert chosen["app"].channel.rstrip("/") == f"{alias}b" and chosen["lib"].channel.rstrip("/") == f"{alias}a"


# --- errors -----------------------------------------------------------------------


def test_unsatisfiable_spec_is_a_readable_solve_error(toy_channel, tmp_path: Path) -> None:
    _, url = toy_channel
    with pytest.raises(SolveError) as info:
        solve(make_spec((url,), "app", "lib <2"), ["linux-64"], tmp_path, env_label="toys/conflict")
    message = str(info.value)
    assert message.startswith("environment 'toys/conflict' for linux-64 cannot be solved")
    assert "app" in message and "lib" in message and "Cannot solve the request" in message
    assert not info.value.retryable


def test_unknown_package_is_a_solve_error(toy_channel, tmp_path: Path) -> None:
    _, url = toy_channel
    with pytest.raises(SolveError, match="No candidates were found for nosuchpackage"):
        solve(make_spec((url,), "nosuchpackage"), ["linux-64"], tmp_path, env_label="toys/unknown")


def test_invalid_match_spec_is_a_solve_error(toy_channel, tmp_path: Path) -> None:
    _, url = toy_channel
    with pytest.raises(SolveError, match="invalid entry"):
        solve(make_spec((url,), "app >>=<1"), ["linux-64"], tmp_path)


def test_unknown_platform_is_a_solve_error(toy_channel, tmp_path: Path) -> None:
    _, url = toy_channel
    with pytest.raises(SolveError, match="'linux-65' is not a known subdir"):
        solve(make_spec((url,), "app"), ["linux-65"], tmp_path, env_label="toys/app")
    assert url.request_count() == 0


def test_unreachable_channel_is_a_retryable_channel_error(tmp_path: Path) -> None:
    dead = closed_port_url()
    settings = ChannelSettings(mirrors={CONDA_FORGE: (dead,)})
    with pytest.raises(ChannelError) as info:
        solve(
            make_spec(("conda-forge",), "openssl"),
            ["linux-64"],
            tmp_path,
            channels=settings,
            client=build_client(settings.mirrors, alias=settings.alias, max_retries=0),
        )
    assert info.value.retryable and "Connection refused" in str(info.value)


def test_disallowed_channel_is_refused_before_any_request(toy_channel, tmp_path: Path) -> None:
    _, url = toy_channel
    settings = ChannelSettings(allowed=("conda-forge",))
    with pytest.raises(ChannelNotAllowedError, match="'toys/evil'"):
        solve(
            make_spec(("conda-forge",), f"{url}::app"),
            ["linux-64"],
            tmp_path,
            channels=settings,
            env_label="toys/evil",
        )
    assert url.request_count() == 0


def _tamper(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(16)  # same size, different bytes
    path.write_bytes(bytes(data))


def test_tampered_package_over_http_fails_and_leaves_no_prefix(toy_channel, tmp_path: Path) -> None:
    root, url = toy_channel
    records = solve(make_spec((url,), "app"), ["linux-64"], tmp_path)["linux-64"]
    _tamper(root / "linux-64" / "lib-2.1-0.conda")
    prefix = tmp_path / "env"
    with pytest.raises(InstallError) as info:
        install(records, prefix, tmp_path / "pkgs", requested_specs=["app"], env_label="toys/app")
    assert "environment 'toys/app'" in str(info.value) and info.value.retryable
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkgs", "repodata"]  # nor a staging folder


def test_tampered_package_over_file_url_is_caught_before_install(channel_factory, tmp_path: Path) -> None:
    root = channel_factory(TOY_PACKAGES, name="toy-file")
    records = solve(make_spec((root.as_uri(),), "app"), ["linux-64"], tmp_path)["linux-64"]
    _tamper(root / "linux-64" / "app-1.0-0.tar.bz2")
    prefix = tmp_path / "env"
    with pytest.raises(InstallError, match="does not match its repodata sha256") as info:
        install(records, prefix, tmp_path / "pkgs")
    assert info.value.reason == "PackageHashMismatch"
    assert not prefix.exists()


def test_untampered_file_url_channel_installs(channel_factory, tmp_path: Path) -> None:
    root = channel_factory(TOY_PACKAGES, name="toy-file-ok")
    records = solve(make_spec((root.as_uri(),), "app"), ["linux-64"], tmp_path)["linux-64"]
    install(records, tmp_path / "env", tmp_path / "pkgs")
    assert (tmp_path / "env" / "bin" / "app").exists()


def test_missing_package_file_fails_and_leaves_no_prefix(toy_channel, tmp_path: Path) -> None:
    root, url = toy_channel
    records = solve(make_spec((url,), "app"), ["linux-64"], tmp_path)["linux-64"]
    (root / "linux-64" / "app-1.0-0.tar.bz2").unlink()
    prefix = tmp_path / "env"
    with pytest.raises(InstallError):
        install(records, prefix, tmp_path / "pkgs")
    assert not prefix.exists()


def test_existing_prefix_is_never_touched(toy_channel, tmp_path: Path) -> None:
    _, url = toy_channel
    records = solve(make_spec((url,), "app"), ["linux-64"], tmp_path)["linux-64"]
    prefix = tmp_path / "env"
    prefix.mkdir()
    (prefix / "keep.txt").write_text("earlier build")
    with pytest.raises(InstallError, match="already exists") as info:
        install(records, prefix, tmp_path / "pkgs")
    assert info.value.reason == "PrefixExists"
    assert (prefix / "keep.txt").read_text() == "earlier build"


def test_verify_prefix_reports_missing_records(toy_channel, tmp_path: Path) -> None:
    _, url = toy_channel
    records = solve(make_spec((url,), "app"), ["linux-64"], tmp_path)["linux-64"]
    prefix = tmp_path / "env"
    install(records, prefix, tmp_path / "pkgs")
    (prefix / "conda-meta" / "lib-2.1-0.json").unlink()
    with pytest.raises(VerifyError, match=r"lib-2\.1-0\.json"):
        verify_prefix(prefix, records)


def test_environment_without_packages_is_an_empty_prefix(tmp_path: Path) -> None:
    install([], tmp_path / "env", tmp_path / "pkgs")
    assert (tmp_path / "env" / "conda-meta").is_dir()
    verify_prefix(tmp_path / "env", [])
