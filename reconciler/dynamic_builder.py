"""Building dynamic images for the registry: the reconciler's side of ``DynamicBuilder``.

The registry (``condaops.registry.dynamic``) decides what to serve and refuses what it
must; this class solves and builds, and is handed to the registry at start-up (the
registry imports nothing from the build or publish code). It answers in the registry's
vocabulary (``RegistryError``):

* ``request_key`` — the spec hash of the request's specification: its packages with
  ``channels.default`` and the host's Linux platform (a changed ``channels.default``
  asks anew; a channel that gains versions does not);
* ``solve`` — the records the request solves to, and their **solved key**: a digest of
  the records' URLs and hashes and of the image settings (prefix, base, layers),
  so two spellings that solve alike get one image and a changed image layout a new one;
* ``build`` — installs the records into ``<store>/dynamic/<key[:12]>`` under a file lock
  (processes sharing the store never build one key at once), builds the image with the
  publish code, stores it in the registry and removes the prefix: only the image stays.
  Below ``min_free_space`` it refuses (``DENIED``, 507) before installing anything, and an
  image whose packages need a C library the base lacks (``ImageNotRunnable``) is refused
  with ``MANIFEST_UNKNOWN`` saying why, as published images are not offered to run.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import shutil
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from rattler import Gateway, Subdir
from rattler import exceptions as rx

from condaops.config.settings import ChannelSettings, Settings
from condaops.reconciler.build.channels import build_client, host_platform, resolve_channels, spec_channels
from condaops.reconciler.build.disk import DiskFullError, is_disk_full, require_free_space
from condaops.reconciler.build.install import install_prefix
from condaops.reconciler.build.solve import solve_platforms
from condaops.reconciler.errors import (
    BuildTimeoutError,
    ChannelNotAllowedError,
    CondaopsError,
    SolveError,
    StalledError,
    TransientError,
)
from condaops.reconciler.model import EnvRef
from condaops.reconciler.publish.assemble import IMAGE_NOT_RUNNABLE
from condaops.reconciler.publish.base import base_for
from condaops.reconciler.publish.build import PublishRequest, build_image
from condaops.reconciler.publish.glibc import glibc_requirements, image_problem
from condaops.reconciler.publish.naming import SHORT
from condaops.reconciler.publish.push import push_image
from condaops.reconciler.publish.targets import BuiltinTarget
from condaops.reconciler.reasons import Reason
from condaops.reconciler.spec import Dependency, Spec
from condaops.reconciler.store import StoreLayout
from condaops.registry.api import Descriptor, Registry
from condaops.registry.dynamic import Solved
from condaops.registry.dynamic_path import NAMESPACE, DynamicRequest
from condaops.registry.errors import (
    DENIED,
    INSUFFICIENT_STORAGE,
    MANIFEST_UNKNOWN,
    NAME_UNKNOWN,
    UNAVAILABLE,
    RegistryError,
)

T = TypeVar("T")
log = logging.getLogger("condaops.registry.dynamic")


class DynamicImageBuilder:
    """Solves and builds dynamic images into ``registry`` (see module doc)."""

    def __init__(self, settings: Settings, registry: Registry, *, platform: str | None = None) -> None:
        self.settings = settings
        self.platform = platform or linux_platform(host_platform())
        self._target = BuiltinTarget(registry)  # never closed: the registry's storage is the caller's
        self._layout = StoreLayout.of(settings)

    def request_key(self, request: DynamicRequest) -> str:
        return self._spec(request).spec_hash

    def solve(self, request: DynamicRequest) -> Solved:
        denied = denied_channels(self.settings.channels)
        if denied:
            raise RegistryError(
                DENIED,
                f"dynamic images are built from channels.default, and {', '.join(denied)} "
                "is not in channels.allowed; an administrator must allow it or change channels.default",
            )
        spec, name = self._spec(request), request.canonical_name
        run = self._runner(name)
        client = self._client()
        try:
            solved = run(
                lambda: solve_platforms(
                    spec,
                    [self.platform],
                    channels=self.settings.channels,
                    client=client,
                    cache_dir=self._layout.caches / "repodata",
                    env_label=name,
                )
            )
        except SolveError as exc:
            raise self._unsolvable(request, spec, client, run, exc) from exc
        except CondaopsError as exc:
            raise refusal_for(exc, name) from exc
        records = solved[self.platform]
        key = solved_key(records, self.settings)
        log.info("dynamic_solved name=%s packages=%d key=%s", name, len(records), key)
        return Solved(key, len(records), (spec, records))

    def build(self, solved: Solved, repository: str, tags: Sequence[str]) -> Descriptor:
        spec, records = solved.detail
        prefix = self._layout.root / NAMESPACE / solved.key[:SHORT]
        try:
            with _exclusive(prefix.with_suffix(".lock")):
                try:
                    return self._build(spec, records, solved.key, prefix, repository, tags)
                finally:
                    shutil.rmtree(prefix, ignore_errors=True)  # the image holds it now; a failed one is half
        except CondaopsError as exc:
            refusal = refusal_for(exc, repository)
            log.warning(
                "dynamic_build_failed name=%s key=%s code=%s message=%s",
                repository,
                solved.key,
                refusal.code.name,
                refusal.message,
            )
            raise refusal from exc

    def _build(
        self, spec: Spec, records: list[Any], key: str, prefix: Path, repository: str, tags: Sequence[str]
    ) -> Descriptor:
        started = time.monotonic()
        run = self._runner(repository)
        client = self._client()
        log.info("dynamic_build_started name=%s key=%s platform=%s", repository, key, self.platform)
        base = base_for(self.settings, self._layout.root, self.platform)  # the same base as published images
        if base is not None and (problem := image_problem(glibc_requirements(records), base.libc)):
            raise StalledError(  # checked before installing: an image that cannot start is not offered
                f"it would not run: {problem}; choose a base that has the C library the packages need "
                "(publish.image_base, docs/images.md)",
                reason=IMAGE_NOT_RUNNABLE,
            )
        require_free_space(self._layout.root, self.settings.min_free_space, repository)
        shutil.rmtree(prefix, ignore_errors=True)  # left by a build that never reached the registry
        run(
            lambda: install_prefix(
                records,
                prefix,
                cache_dir=self._layout.cache_dir,
                client=client,
                requested_specs=spec.dependencies_for(self.platform),
                env_label=repository,
            )
        )
        work = self._layout.work_dir / f"{NAMESPACE}-{key[:SHORT]}"
        req = PublishRequest(
            ref=EnvRef(NAMESPACE, key[:SHORT]),
            build_id=0,
            spec_hash=spec.spec_hash,
            prefix=prefix,
            artifacts_dir=work,
            work_dir=work,
            platform=self.platform,
            records=records,
            requested_specs=spec.dependencies_for(self.platform),
            version=f"solved-{key[:SHORT]}",
        )
        try:
            built = build_image(req, self.settings.publish, base)
            image = push_image(self._target, repository, built.image, list(tags))
        except OSError as exc:
            raise TransientError(
                f"writing the image of {repository} failed: {exc}", reason=Reason.IMAGE_FAILED
            ) from exc
        finally:
            shutil.rmtree(work, ignore_errors=True)
        log.info(
            "dynamic_built name=%s key=%s packages=%d layers=%d digest=%s seconds=%.3f",
            repository,
            key,
            len(records),
            len(built.image.layers),
            image.digest,
            time.monotonic() - started,
        )
        return image

    def _spec(self, request: DynamicRequest) -> Spec:
        return dynamic_spec(request, self.settings.channels.default, self.platform)

    def _client(self) -> Any:
        return build_client(self.settings.channels.mirrors, alias=self.settings.channels.alias)

    def _runner(self, label: str) -> Callable[[Callable[[], Awaitable[T]]], T]:
        return partial(run_bounded, deadline=time.monotonic() + self.settings.build.timeout, label=label)

    def _unsolvable(
        self, request: DynamicRequest, spec: Spec, client: Any, run: Callable[..., Any], exc: SolveError
    ) -> RegistryError:
        """NAME_UNKNOWN for packages no channel has, else MANIFEST_UNKNOWN with the solver's reason."""
        urls = spec_channels(spec, self.settings.channels)
        where = f"{', '.join(urls)} for {self.platform}"
        known = self._known(urls, client, run)
        unknown = [r.package for r in request.requirements if known is not None and r.package not in known]
        if unknown:
            return RegistryError(
                NAME_UNKNOWN,
                f"dynamic image '{request.canonical_name}': no package named "
                f"{', '.join(unknown)} in {where}; check the name",
                detail={"packages": unknown},
            )
        reason = one_line(str(exc.__cause__ or exc))
        return RegistryError(
            MANIFEST_UNKNOWN,
            f"dynamic image '{request.canonical_name}' cannot be built: "
            f"{', '.join(request.match_specs)} cannot be solved from {where}: {reason}",
            detail={"reason": reason},
        )

    def _known(self, urls: list[str], client: Any, run: Callable[..., Any]) -> set[str] | None:
        """Package names in ``urls`` (repodata is cached by the solve); None when the
        channels cannot be read, so that the solver's reason is what is shown."""
        gateway = Gateway(cache_dir=self._layout.caches / "repodata", client=client)
        try:
            names = run(lambda: gateway.names(urls, [Subdir(self.platform), Subdir("noarch")]))
        except (rx.GatewayError, rx.FetchRepoDataError, BuildTimeoutError):
            return None
        return {name.normalized for name in names}


# --- small pure helpers -------------------------------------------------------------------


def dynamic_spec(request: DynamicRequest, channels: tuple[str, ...], platform: str) -> Spec:
    """The specification of a dynamic image; its hash is the request key."""
    deps = tuple(sorted(Dependency(text) for text in request.match_specs))
    return Spec(channels=tuple(channels), dependencies=deps, platforms=(platform,), name=request.canonical_name)


def solved_key(records: Sequence[Any], settings: Settings) -> str:
    """The identity of an image built from ``records`` with these publish settings."""
    publish = settings.publish
    lines = sorted(f"{r.url} {_hex(getattr(r, 'sha256', None))}" for r in records)
    lines.append(
        f"image {publish.image_prefix} {publish.image_base or '-'} {publish.layer_budget} {publish.layer_compression}"
    )
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _hex(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return value.hex()
    return str(value or "-")


def linux_platform(host: str) -> str:
    """The Linux platform images are built for on ``host``: itself on Linux, else the
    same CPU family (``osx-arm64`` → ``linux-aarch64``)."""
    if host.startswith("linux-"):
        return host
    return "linux-aarch64" if host.endswith(("arm64", "aarch64")) else "linux-64"


def denied_channels(channels: ChannelSettings) -> list[str]:
    """``channels.default`` URLs that ``channels.allowed`` (when set) does not list."""
    permitted = set(resolve_channels(channels.allowed, channels.alias))
    urls = resolve_channels(channels.default, channels.alias)
    return [url for url in urls if permitted and url not in permitted]


def one_line(text: str) -> str:
    """A multi-line message (rattler's conflict tree) as one line."""
    parts = (line.strip().lstrip("│├└─ ").strip() for line in text.splitlines())
    return " ".join(part for part in parts if part)


def refusal_for(exc: CondaopsError, name: str) -> RegistryError:
    """The registry error a failed solve or build answers with."""
    if isinstance(exc, RegistryError):
        return exc
    message = one_line(exc.message)
    if isinstance(exc, DiskFullError) or is_disk_full(exc):
        return RegistryError(
            DENIED, f"dynamic image '{name}' cannot be built now: {message}", status=INSUFFICIENT_STORAGE
        )
    if isinstance(exc, ChannelNotAllowedError):
        return RegistryError(DENIED, message)
    if isinstance(exc, TransientError):
        return RegistryError(UNAVAILABLE, f"dynamic image '{name}' could not be built now; try again later: {message}")
    return RegistryError(MANIFEST_UNKNOWN, f"dynamic image '{name}' cannot be built: {message}")


def run_bounded(make: Callable[[], Awaitable[T]], *, deadline: float, label: str) -> T:
    """Run a rattler coroutine on this (worker) thread, stopped at ``deadline``."""

    async def bounded() -> T:
        return await asyncio.wait_for(make(), timeout=max(0.0, deadline - time.monotonic()))

    try:
        return asyncio.run(bounded())
    except (asyncio.TimeoutError, TimeoutError) as exc:
        raise BuildTimeoutError(f"{label}: building took longer than build.timeout") from exc


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
