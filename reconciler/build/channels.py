"""Channels, mirrors and virtual packages for solving and installing.

Pure functions turn what a spec says (``conda-forge``, ``defaults``, full URLs,
``channel::pkg`` prefixes) into canonical channel URLs, check them against
``channels.allowed`` and describe the virtual packages of a target platform. The two
functions at the bottom build rattler objects (``build_client``, ``virtual_packages_for``).

Canonical URLs have no trailing slash (``https://conda.anaconda.org/conda-forge``). They
are what lockfiles record: mirrors only change where bytes are fetched from, via rattler's
``MirrorMiddleware``, so a lock made on an air-gapped site is valid anywhere.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from condaops.reconciler.errors import ChannelNotAllowedError

if TYPE_CHECKING:
    from rattler import Client, GenericVirtualPackage, VirtualPackage

    from condaops.config.settings import ChannelSettings
    from condaops.reconciler.spec import Spec

# conda's meaning of ``defaults`` on Linux and macOS (Windows adds msys2, not offered
# here). Sites without Internet mirror both URLs.
DEFAULTS_CHANNELS: tuple[str, ...] = (
    "https://repo.anaconda.com/pkgs/main",
    "https://repo.anaconda.com/pkgs/r",
)
# ``pkgs/main`` and friends live on repo.anaconda.com, not behind the channel alias.
_ANACONDA_REPO = "https://repo.anaconda.com/"
# Written in environment files to say "do not add defaults"; not a channel.
_NOT_CHANNELS = frozenset({"nodefaults"})
_URL_SCHEMES = ("http://", "https://", "file://", "s3://", "gcs://", "oci://")


def channel_urls(name: str, alias: str) -> tuple[str, ...]:
    """Canonical URLs for one channel as written by a user.

    ``conda-forge`` → ``<alias>conda-forge``; full URLs are kept (trailing slash
    removed); absolute paths become ``file://`` URLs; ``defaults`` expands to
    ``DEFAULTS_CHANNELS``; ``pkgs/<x>`` is on repo.anaconda.com; ``nodefaults`` is none.
    """
    text = name.strip()
    if text in _NOT_CHANNELS:
        return ()
    if text == "defaults":
        return DEFAULTS_CHANNELS
    if text.startswith(_URL_SCHEMES):
        return (text.rstrip("/"),)
    if text.startswith("/"):
        return (PurePosixPath(text).as_uri().rstrip("/"),)
    text = text.strip("/")
    if text.startswith("pkgs/"):
        return (_ANACONDA_REPO + text,)
    return (alias.rstrip("/") + "/" + text,)


def split_channel_prefix(match_spec: str) -> tuple[str | None, str]:
    """``conda-forge::numpy >=2`` → (``conda-forge``, ``numpy >=2``); no prefix → (None, spec).

    The first ``::`` splits: a URL channel may contain ``:`` (a port) but never ``::``.
    Bracket forms (``numpy[channel=x]``) are left to rattler.
    """
    channel, sep, rest = match_spec.partition("::")
    if not sep:
        return None, match_spec
    return channel.strip(), rest.strip()


def canonical_match_spec(match_spec: str, alias: str) -> str:
    """The match spec with a ``channel::`` prefix replaced by its canonical URL.

    rattler resolves short names in match specs against its own default alias; writing
    the URL makes ``channel::pkg`` select the same channel the gateway fetched.
    """
    channel, rest = split_channel_prefix(match_spec)
    if channel is None:
        return match_spec
    urls = channel_urls(channel, alias)
    if not urls:
        return rest
    # ``defaults::x`` names a group; main is where conda looks first.
    return f"{urls[0]}::{rest}"


def spec_channel_names(spec: Spec, default: Sequence[str]) -> list[str]:
    """Channel names in priority order: the spec's (or ``default``), then ``::`` prefixes."""
    names = list(spec.channels or default)
    for dep in spec.dependencies:
        channel, _ = split_channel_prefix(dep.text)
        if channel is not None and channel not in names:
            names.append(channel)
    return names


def resolve_channels(names: Iterable[str], alias: str) -> list[str]:
    """Canonical URLs for ``names``, first occurrence wins (order is priority)."""
    seen: dict[str, None] = {}
    for name in names:
        for url in channel_urls(name, alias):
            seen.setdefault(url, None)
    return list(seen)


def check_allowed(
    urls: Iterable[str],
    allowed: Iterable[str],
    *,
    alias: str,
    env_label: str | None = None,
) -> None:
    """Raise ``ChannelNotAllowedError`` for the first URL outside ``allowed``.

    ``allowed`` entries are written like spec channels (names or URLs); empty allows all.
    """
    permitted = set(resolve_channels(allowed, alias))
    if not permitted:
        return
    for url in urls:
        if url not in permitted:
            who = f"environment '{env_label}'" if env_label else "this environment"
            raise ChannelNotAllowedError(
                f"{who} uses channel '{url}', which is not in channels.allowed "
                f"({', '.join(sorted(permitted))}); remove it from the spec or ask an "
                "administrator to allow it"
            )


def spec_channels(spec: Spec, settings: ChannelSettings, env_label: str | None = None) -> list[str]:
    """The canonical, allowed channel URLs a spec solves against, in priority order."""
    urls = resolve_channels(spec_channel_names(spec, settings.default), settings.alias)
    check_allowed(urls, settings.allowed, alias=settings.alias, env_label=env_label)
    return urls


def normalize_mirrors(mirrors: Mapping[str, Sequence[str]], alias: str) -> dict[str, list[str]]:
    """``channels.mirrors`` in the form rattler's ``MirrorMiddleware`` matches.

    rattler matches by URL prefix and joins the rest onto the mirror URL; both sides end
    in ``/`` so ``https://host/conda-forge`` never matches ``https://host/conda-forge-x``
    and a mirror path is never truncated by the join. Keys may be channel names.
    """
    result: dict[str, list[str]] = {}
    for key, targets in mirrors.items():
        # A URL key may be any prefix (a whole host); anything else is a channel name.
        key_urls = (key.rstrip("/"),) if key.startswith(_URL_SCHEMES) else channel_urls(key, alias)
        values = [t.rstrip("/") + "/" for t in ([targets] if isinstance(targets, str) else targets)]
        for url in key_urls:
            result[url + "/"] = values
    return result


# --- virtual packages -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VirtualPackageVersions:
    """What a target system is assumed to offer when it is not this machine.

    Defaults follow common practice for lock tools: a glibc 2.28 / kernel 4.18 Linux
    (RHEL 8 era) and macOS 13. ``cuda`` adds ``__cuda`` when set.
    """

    linux: str = "4.18"
    glibc: str = "2.28"
    osx: str = "13.0"
    win: str = "0"
    cuda: str | None = None


DEFAULT_VIRTUAL_VERSIONS = VirtualPackageVersions()

# ``__archspec`` build strings per platform (rattler's generic micro-architectures).
_ARCHSPEC: dict[str, str] = {
    "linux-64": "x86_64",
    "linux-aarch64": "aarch64",
    "linux-ppc64le": "ppc64le",
    "linux-s390x": "s390x",
    "osx-64": "x86_64",
    "osx-arm64": "m1",
}  # Windows gets ``__win`` only; packages there rarely depend on micro-architectures.


def virtual_package_triples(
    platform: str, versions: VirtualPackageVersions = DEFAULT_VIRTUAL_VERSIONS
) -> list[tuple[str, str, str]]:
    """(name, version, build string) of the virtual packages of ``platform``."""
    os_name = platform.split("-", 1)[0]
    triples: list[tuple[str, str, str]] = []
    if os_name == "linux":
        triples += [("__linux", versions.linux, "0"), ("__glibc", versions.glibc, "0")]
    elif os_name == "osx":
        triples.append(("__osx", versions.osx, "0"))
    elif os_name == "win":
        triples.append(("__win", versions.win, "0"))
    if os_name in ("linux", "osx"):
        triples.append(("__unix", "0", "0"))
    if platform in _ARCHSPEC:
        triples.append(("__archspec", "1", _ARCHSPEC[platform]))
    if versions.cuda:
        triples.append(("__cuda", versions.cuda, "0"))
    return triples


def host_platform() -> str:
    """The conda platform of this machine (``linux-64``...)."""
    from rattler import Subdir  # local: the pure functions above must not need rattler

    return str(Subdir.current())


def virtual_packages_for(
    platform: str, versions: VirtualPackageVersions | None = None
) -> list[GenericVirtualPackage | VirtualPackage]:
    """Virtual packages for solving ``platform``.

    Explicit ``versions`` always win. Otherwise this machine's own platform is detected
    (``VirtualPackage.detect()``) and any other platform gets the defaults.
    """
    from rattler import BuildString, GenericVirtualPackage, PackageName, Version, VirtualPackage

    if versions is None and platform == host_platform():
        return list(VirtualPackage.detect())
    return [
        GenericVirtualPackage(PackageName(name), Version(version), BuildString(build))
        for name, version, build in virtual_package_triples(platform, versions or DEFAULT_VIRTUAL_VERSIONS)
    ]


def build_client(
    mirrors: Mapping[str, Sequence[str]],
    *,
    alias: str,
    max_retries: int = 3,
    timeout: int | None = None,
) -> Client:
    """A rattler ``Client`` that fetches canonical URLs from their mirrors.

    Retries cover short blips within one build (a dead host costs ~7 s with 3 retries);
    longer outages surface as ``ChannelError`` and are retried by the scheduler.
    No authentication middleware: it would read the invoking user's keyring.
    """
    from rattler.networking import Client, MirrorMiddleware, RetryMiddleware

    middlewares: list[object] = []
    if max_retries > 0:
        middlewares.append(RetryMiddleware(max_retries))
    normalized = normalize_mirrors(mirrors, alias)
    if normalized:
        middlewares.append(MirrorMiddleware(normalized))
    return Client(middlewares or None, timeout=timeout)  # type: ignore[arg-type]  # py-rattler's stub wants a list; None means no middleware


_CLIENTS: dict[tuple[object, ...], Client] = {}
_CLIENTS_LIMIT = 8
_clients_lock = threading.Lock()


def shared_client(mirrors: Mapping[str, Sequence[str]], *, alias: str) -> Client:
    """``build_client`` made once per process for the same mirrors and alias and shared by
    the builds (its connection pool too): making one costs ~4 ms of CPU, which every build
    paid before. The Rust client is safe to share between threads and event loops. At most
    ``_CLIENTS_LIMIT`` are kept (settings rarely change in a process)."""
    key = (alias, tuple(sorted((k, tuple(v)) for k, v in mirrors.items())))
    with _clients_lock:
        found = _CLIENTS.get(key)
        if found is None:
            if len(_CLIENTS) >= _CLIENTS_LIMIT:
                _CLIENTS.pop(next(iter(_CLIENTS)))
            found = _CLIENTS[key] = build_client(mirrors, alias=alias)
        return found
