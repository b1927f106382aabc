"""Solve a specification for one or more platforms with py-rattler.

One ``Gateway`` per call fetches repodata (platform subdir + ``noarch``) for every
platform, through the mirror client, and caches it on disk under ``cache_dir``. A fresh
gateway per call means a channel that changed between builds is never served from
rattler's in-memory cache.

rattler's exceptions are mapped here, at the boundary:

* ``SolverError``, invalid match specs or platforms → ``SolveError`` (change the spec);
* ``GatewayError`` / fetch errors → ``ChannelError`` (retried with backoff);
* channels outside ``channels.allowed`` → ``ChannelNotAllowedError`` (before any IO).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rattler import Gateway, Subdir, solve
from rattler import exceptions as rx

from condaops.reconciler.build.channels import (
    VirtualPackageVersions,
    build_client,
    canonical_match_spec,
    spec_channels,
    virtual_packages_for,
)
from condaops.reconciler.errors import ChannelError, SolveError

if TYPE_CHECKING:
    from rattler import Client, RepoDataRecord

    from condaops.config.settings import ChannelSettings
    from condaops.reconciler.spec import Spec

# Spec-side problems: retrying cannot help, the spec must change.
_SPEC_ERRORS: tuple[type[BaseException], ...] = (
    rx.InvalidMatchSpecError,
    rx.InvalidVersionSpecError,
    rx.InvalidVersionError,
    rx.InvalidPackageNameError,
    rx.ParseSubdirError,
    rx.InvalidChannelError,
    rx.InvalidUrlError,
)
# Fetching problems: the channel (or our way to it) may come back.
_CHANNEL_ERRORS: tuple[type[BaseException], ...] = (rx.GatewayError, rx.FetchRepoDataError)


async def solve_platforms(
    spec: Spec,
    platforms: Sequence[str],
    *,
    channels: ChannelSettings,
    cache_dir: Path,
    client: Client | None = None,
    env_label: str | None = None,
    virtual_versions: VirtualPackageVersions | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, list[RepoDataRecord]]:
    """Solve ``spec`` for each of ``platforms``; records keep canonical channel URLs.

    ``cache_dir`` is the repodata cache folder (used as-is). ``client`` defaults to one
    built from ``channels.mirrors``. ``virtual_versions`` replaces the detected (host) and
    default (other platforms) virtual packages. ``env_label`` names the environment in
    error messages. ``options`` are more arguments of ``rattler.solve`` per platform
    (``locked_packages``, ``pinned_packages``, ``constraints``: re-locking with a cooldown).
    """
    if not platforms:
        raise ValueError("solve_platforms needs at least one platform")
    urls = spec_channels(spec, channels, env_label)
    if client is None:
        client = build_client(channels.mirrors, alias=channels.alias)
    gateway = Gateway(cache_dir=Path(cache_dir), client=client)
    solved: dict[str, list[RepoDataRecord]] = {}
    for platform in platforms:
        specs = [canonical_match_spec(s, channels.alias) for s in spec.dependencies_for(platform)]
        extra = (options or {}).get(platform, {})
        solved[platform] = await _solve_one(
            gateway, urls, specs, platform, virtual_versions, _label(env_label, spec), extra
        )
    return solved


async def _solve_one(
    gateway: Gateway,
    urls: list[str],
    specs: list[str],
    platform: str,
    virtual_versions: VirtualPackageVersions | None,
    label: str,
    extra: Mapping[str, Any] | None = None,
) -> list[RepoDataRecord]:
    where = f"{label} for {platform}"
    try:
        subdirs = [Subdir(platform), Subdir("noarch")]  # an unknown platform fails here
        virtual = virtual_packages_for(platform, virtual_versions)
        if not specs:
            return []
        return await solve(
            sources=urls,
            specs=specs,
            gateway=gateway,
            platforms=subdirs,
            virtual_packages=virtual,
            **(extra or {}),
        )
    except rx.SolverError as exc:
        raise SolveError(
            f"{where} cannot be solved from {', '.join(urls)}; change its dependencies:\n{str(exc).strip()}"
        ) from exc
    except _SPEC_ERRORS as exc:
        raise SolveError(f"{where} has an invalid entry; fix it: {exc}") from exc
    except _CHANNEL_ERRORS as exc:
        raise ChannelError(
            f"{where}: a channel could not be fetched (will retry; check channels.mirrors "
            f"if it persists): {str(exc).strip()}"
        ) from exc


def _label(env_label: str | None, spec: Spec) -> str:
    name = env_label or spec.name
    return f"environment '{name}'" if name else "the environment"
