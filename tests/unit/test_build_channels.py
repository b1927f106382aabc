"""Channel names → canonical URLs, allow-lists, mirrors and virtual packages (pure)."""

from __future__ import annotations

import pytest

from condaops.config.settings import ChannelSettings
from condaops.reconciler.build.channels import (
    DEFAULTS_CHANNELS,
    VirtualPackageVersions,
    canonical_match_spec,
    channel_urls,
    check_allowed,
    normalize_mirrors,
    resolve_channels,
    spec_channel_names,
    spec_channels,
    split_channel_prefix,
    virtual_package_triples,
)
from condaops.reconciler.errors import ChannelNotAllowedError, StalledError
from condaops.reconciler.spec import Dependency, Spec

ALIAS = "https://conda.anaconda.org/"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("conda-forge", ("https://conda.anaconda.org/conda-forge",)),
        ("conda-forge/label/rc", ("https://conda.anaconda.org/conda-forge/label/rc",)),
        ("https://example.org/chan/", ("https://example.org/chan",)),
        ("http://127.0.0.1:8000/ch", ("http://127.0.0.1:8000/ch",)),
        ("file:///srv/chan/", ("file:///srv/chan",)),
        ("/srv/my channel", ("file:///srv/my%20channel",)),
        ("defaults", DEFAULTS_CHANNELS),
        ("pkgs/main", ("https://repo.anaconda.com/pkgs/main",)),
        ("nodefaults", ()),
        (" bioconda ", ("https://conda.anaconda.org/bioconda",)),
    ],
    ids=[
        "short-name",
        "label",
        "url-trailing-slash",
        "url-with-port",
        "file-url",
        "absolute-path",
        "defaults",
        "pkgs-main",
        "nodefaults",
        "whitespace",
    ],
)
def test_channel_urls(name: str, expected: tuple[str, ...]) -> None:
    assert channel_urls(name, ALIAS) == expected


def test_channel_urls_use_the_configured_alias() -> None:
    assert channel_urls("conda-forge", "https://mirror.example/conda") == ("https://mirror.example/conda/conda-forge",)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("numpy >=2", (None, "numpy >=2")),
        ("conda-forge::numpy=1.26", ("conda-forge", "numpy=1.26")),
        ("https://104.17.92.24:443::flask=1.0.2", ("https://104.17.92.24:443", "flask=1.0.2")),
    ],
    ids=["none", "short", "url-with-port"],
)
def test_split_channel_prefix(spec: str, expected: tuple[str | None, str]) -> None:
    assert split_channel_prefix(spec) == expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("numpy", "numpy"),
        ("conda-forge::numpy", "https://conda.anaconda.org/conda-forge::numpy"),
        ("defaults::libgomp", "https://repo.anaconda.com/pkgs/main::libgomp"),
        ("nodefaults::x", "x"),
    ],
    ids=["plain", "short", "defaults-group", "not-a-channel"],
)
def test_canonical_match_spec(spec: str, expected: str) -> None:
    assert canonical_match_spec(spec, ALIAS) == expected


def _spec(channels: tuple[str, ...], *deps: str) -> Spec:
    return Spec(channels=channels, dependencies=tuple(sorted(Dependency(d) for d in deps)))


def test_prefix_channels_follow_spec_channels_in_priority_order() -> None:
    spec = _spec(("conda-forge", "nodefaults"), "python", "bioconda::samtools", "conda-forge::numpy")
    assert spec_channel_names(spec, default=("defaults",)) == ["conda-forge", "nodefaults", "bioconda"]
    assert resolve_channels(spec_channel_names(spec, ()), ALIAS) == [
        "https://conda.anaconda.org/conda-forge",
        "https://conda.anaconda.org/bioconda",
    ]


def test_empty_spec_channels_fall_back_to_the_default() -> None:
    settings = ChannelSettings(default=("defaults",))
    assert spec_channels(_spec((), "python"), settings) == list(DEFAULTS_CHANNELS)


def test_resolve_channels_keeps_first_occurrence() -> None:
    urls = resolve_channels(["conda-forge", "https://conda.anaconda.org/conda-forge/", "pkgs/main", "defaults"], ALIAS)
    assert urls == ["https://conda.anaconda.org/conda-forge", *DEFAULTS_CHANNELS]


@pytest.mark.parametrize(
    ("allowed", "channels"),
    [
        ((), ["https://anything.example/x"]),
        (("conda-forge",), ["https://conda.anaconda.org/conda-forge"]),
        (("https://conda.anaconda.org/conda-forge/",), ["https://conda.anaconda.org/conda-forge"]),
        (("defaults",), ["https://repo.anaconda.com/pkgs/r"]),
    ],
    ids=["empty-allows-all", "by-name", "by-url", "defaults-group"],
)
def test_allowed_channels_pass(allowed: tuple[str, ...], channels: list[str]) -> None:
    check_allowed(channels, allowed, alias=ALIAS, env_label="ns/env")


def test_disallowed_channel_names_channel_and_environment() -> None:
    with pytest.raises(ChannelNotAllowedError) as info:
        check_allowed(
            ["https://conda.anaconda.org/conda-forge", "https://conda.anaconda.org/bioconda"],
            ["conda-forge"],
            alias=ALIAS,
            env_label="science/genomics",
        )
    message = str(info.value)
    assert "https://conda.anaconda.org/bioconda" in message and "'science/genomics'" in message
    assert "channels.allowed" in message
    assert isinstance(info.value, StalledError) and info.value.reason == "ChannelNotAllowed"


def test_prefix_channel_is_checked_against_allowed() -> None:
    settings = ChannelSettings(allowed=("conda-forge",))
    with pytest.raises(ChannelNotAllowedError, match="bioconda"):
        spec_channels(_spec(("conda-forge",), "bioconda::samtools"), settings, env_label="ns/env")


@pytest.mark.parametrize(
    ("mirrors", "expected"),
    [
        (
            {"https://conda.anaconda.org/conda-forge": ["http://127.0.0.1:1"]},
            {"https://conda.anaconda.org/conda-forge/": ["http://127.0.0.1:1/"]},
        ),
        ({"conda-forge": ("http://m/cf/",)}, {"https://conda.anaconda.org/conda-forge/": ["http://m/cf/"]}),
        (
            {"defaults": ["http://m/main", "http://m2/main"]},
            {
                "https://repo.anaconda.com/pkgs/main/": ["http://m/main/", "http://m2/main/"],
                "https://repo.anaconda.com/pkgs/r/": ["http://m/main/", "http://m2/main/"],
            },
        ),
        ({"https://conda.anaconda.org/": "http://m/"}, {"https://conda.anaconda.org/": ["http://m/"]}),
    ],
    ids=["url", "name", "defaults-group", "host-prefix"],
)
def test_normalize_mirrors(mirrors: dict, expected: dict) -> None:
    assert normalize_mirrors(mirrors, ALIAS) == expected


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        (
            "linux-64",
            [
                ("__linux", "4.18", "0"),
                ("__glibc", "2.28", "0"),
                ("__unix", "0", "0"),
                ("__archspec", "1", "x86_64"),
            ],
        ),
        (
            "linux-aarch64",
            [
                ("__linux", "4.18", "0"),
                ("__glibc", "2.28", "0"),
                ("__unix", "0", "0"),
                ("__archspec", "1", "aarch64"),
            ],
        ),
        ("osx-arm64", [("__osx", "13.0", "0"), ("__unix", "0", "0"), ("__archspec", "1", "m1")]),
        ("osx-64", [("__osx", "13.0", "0"), ("__unix", "0", "0"), ("__archspec", "1", "x86_64")]),
        ("win-64", [("__win", "0", "0")]),
        ("noarch", []),
    ],
    ids=["linux-64", "linux-aarch64", "osx-arm64", "osx-64", "win-64", "noarch"],
)
def test_virtual_packages_per_platform(platform: str, expected: list[tuple[str, str, str]]) -> None:
    assert virtual_package_triples(platform) == expected


def test_virtual_package_versions_are_overridable() -> None:
    versions = VirtualPackageVersions(glibc="2.17", linux="3.10", osx="11.0", cuda="12.4")
    assert ("__glibc", "2.17", "0") in virtual_package_triples("linux-64", versions)
    assert ("__linux", "3.10", "0") in virtual_package_triples("linux-64", versions)
    assert ("__osx", "11.0", "0") in virtual_package_triples("osx-arm64", versions)
    assert ("__cuda", "12.4", "0") in virtual_package_triples("linux-64", versions)


def test_builds_share_one_client_per_mirrors_and_alias() -> None:
    from condaops.reconciler.build import channels

    mirrors = {"https://conda.anaconda.org/testchan": ["http://127.0.0.1:1/chan"]}
    one = channels.shared_client(mirrors, alias="https://conda.anaconda.org/")
    assert channels.shared_client(dict(mirrors), alias="https://conda.anaconda.org/") is one
    assert channels.shared_client({}, alias="https://conda.anaconda.org/") is not one
    for i in range(channels._CLIENTS_LIMIT + 2):  # bounded: the oldest go
        channels.shared_client({f"https://example.invalid/{i}": ["http://127.0.0.1:1/x"]}, alias="")
    assert len(channels._CLIENTS) == channels._CLIENTS_LIMIT
