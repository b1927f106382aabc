"""Dynamic images: ``GET /v2/dynamic/<pkg>/<pkg.ge.1.0>/manifests/latest`` builds on request.

The registry app asks ``prepare(route)`` of the gate ``dynamic_gate`` returns before each
operation. With ``dynamic.enabled`` (``DynamicImages``):

* a manifest request for tag ``latest`` of a ``dynamic/...`` repository makes sure the
  image is in the registry, then the ordinary handler serves it (content negotiation,
  HEAD, digests: nothing special). Other tags, digests, blobs and tag lists are served as
  for any repository, so real clients pull dynamic images like any other;
* pushes into ``dynamic/`` are refused (``DENIED``): the namespace belongs to this service.

Making sure: the path is parsed (``dynamic_path``) into match specs and a canonical
repository name; the specification is those specs with ``channels.default`` and the host's
Linux platform, and its spec hash is the cache key: the canonical repository tagged
``spec-<hash[:12]>`` is the cached image. A miss solves, installs into
``<store>/dynamic/<hash[:12]>``, builds the image with the publish code and pushes it to the
canonical repository (tags ``latest`` and ``spec-...``). Any other ordering of the same
packages is an alias: the same manifest, tagged in the requested repository. A changed
``channels.default`` changes the hash and so builds anew; a channel that gains versions
does not (cached means cached).

One build per spec hash at a time: concurrent requests await the same task (a client that
gives up does not cancel it), and a file lock next to the prefix keeps processes sharing
the store from building the same spec twice. At most ``dynamic.concurrency`` builds run,
each in a worker thread, never on the event loop.

Refusals are ``RegistryError``\\s in the spec's vocabulary: a bad path ``NAME_INVALID``; a
package in none of the channels ``NAME_UNKNOWN``; an unsatisfiable request
``MANIFEST_UNKNOWN`` with the solver's reason on one line; ``channels.default`` outside
``channels.allowed`` ``DENIED``; channels, disk or time running out ``UNAVAILABLE``.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import shutil
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from rattler import Gateway, Subdir
from rattler import exceptions as rx

from condaops.config.settings import ChannelSettings, Settings
from condaops.reconciler.build.channels import build_client, host_platform, resolve_channels, spec_channels
from condaops.reconciler.build.install import install_prefix
from condaops.reconciler.build.solve import solve_platforms
from condaops.reconciler.errors import (
    BuildTimeoutError,
    ChannelNotAllowedError,
    CondaopsError,
    SolveError,
    TransientError,
)
from condaops.reconciler.model import EnvRef
from condaops.reconciler.publish.base import base_for
from condaops.reconciler.publish.build import PublishRequest, build_image
from condaops.reconciler.publish.naming import SHORT
from condaops.reconciler.publish.push import push_image
from condaops.reconciler.publish.targets import BuiltinTarget
from condaops.reconciler.spec import Dependency, Spec
from condaops.reconciler.store import StoreLayout
from condaops.registry.api import Descriptor, Registry
from condaops.registry.dynamic_path import NAMESPACE, DynamicRequest, is_dynamic_name, parse_dynamic_name
from condaops.registry.errors import DENIED, MANIFEST_UNKNOWN, NAME_UNKNOWN, UNAVAILABLE, RegistryError
from condaops.registry.routes import Route
from condaops.registry.storage import Storage
from condaops.registry.store import RegistryStore

T = TypeVar("T")
LATEST = "latest"
log = logging.getLogger("condaops.registry.dynamic")


def dynamic_gate(settings: Settings, storage: Storage) -> DynamicImages | DynamicOff:
    """What the registry app consults before each operation (see module doc)."""
    return DynamicImages(settings, storage) if settings.dynamic.enabled else DynamicOff(storage)


class DynamicOff:
    """``dynamic.enabled`` is false: a ``dynamic/...`` repository that nobody pushed does
    not exist, and the 404 says why. (One that was pushed is served as usual.)"""

    def __init__(self, storage: Storage) -> None:
        self._store = RegistryStore(storage)

    async def prepare(self, route: Route) -> None:
        if not route.is_push and is_dynamic_name(route.name):
            await anyio.to_thread.run_sync(self._require_repository, route.name)

    def _require_repository(self, name: str) -> None:
        try:
            self._store.tags(name)
        except RegistryError as exc:
            if exc.code != NAME_UNKNOWN:
                raise
            raise RegistryError(
                NAME_UNKNOWN,
                f"there is no repository '{name}': dynamic images are off (dynamic.enabled is false); "
                "an administrator can turn them on",
                detail={"name": name},
            ) from None


class DynamicImages:
    """Builds dynamic images on request and answers later requests from the registry."""

    def __init__(self, settings: Settings, storage: Storage, *, platform: str | None = None) -> None:
        self.settings = settings
        self.platform = platform or linux_platform(host_platform())
        self._registry = Registry(storage)
        self._target = BuiltinTarget(self._registry)  # never closed: the storage is the app's
        self._store = RegistryStore(storage)
        self._layout = StoreLayout.of(settings)
        self._pending: dict[str, asyncio.Future[Descriptor]] = {}
        self._limiter: anyio.CapacityLimiter | None = None  # made in the event loop, on first use

    async def prepare(self, route: Route) -> None:
        if not is_dynamic_name(route.name):
            return
        if route.is_push:
            raise RegistryError(
                DENIED,
                f"'{route.name}' is in the {NAMESPACE}/ namespace, which only the registry "
                "itself writes; push to another repository",
            )
        if route.operation == "get_manifest" and route.argument == LATEST:
            await self.ensure(route.name)

    async def ensure(self, name: str) -> Descriptor:
        """The image repository ``name`` asks for, built unless cached, tagged ``latest`` there."""
        request = parse_dynamic_name(name, max_packages=self.settings.dynamic.max_packages)
        denied = denied_channels(self.settings.channels)
        if denied:
            raise RegistryError(
                DENIED,
                f"dynamic images are built from channels.default, and {', '.join(denied)} "
                "is not in channels.allowed; an administrator must allow it or change "
                "channels.default",
            )
        spec = dynamic_spec(request, self.settings.channels.default, self.platform)
        image = await asyncio.shield(self._obtain(request, spec))  # a client giving up leaves it running
        if name != request.canonical_name:
            await anyio.to_thread.run_sync(self._alias, name, request.canonical_name, image, spec_tag(spec))
        return image

    def _obtain(self, request: DynamicRequest, spec: Spec) -> asyncio.Future[Descriptor]:
        """The one task that finds or builds ``spec``'s image; joined while it runs."""
        key = spec.spec_hash
        future = self._pending.get(key)
        if future is None:
            future = asyncio.ensure_future(self._find_or_build(request, spec))
            self._pending[key] = future
            future.add_done_callback(partial(self._settled, key))
        return future

    def _settled(self, key: str, future: asyncio.Future[Descriptor]) -> None:
        self._pending.pop(key, None)
        if not future.cancelled():
            future.exception()  # retrieved: waiters that left must not leave it unreported

    async def _find_or_build(self, request: DynamicRequest, spec: Spec) -> Descriptor:
        found = await anyio.to_thread.run_sync(self._cached, request, spec)
        if found is not None:
            return found
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.settings.dynamic.concurrency)
        return await anyio.to_thread.run_sync(self._build_once, request, spec, limiter=self._limiter)

    def _cached(self, request: DynamicRequest, spec: Spec) -> Descriptor | None:
        found = self._registry.resolve(request.canonical_name, spec_tag(spec))
        if found is not None:
            log.debug(
                "dynamic_cached name=%s spec_hash=%s digest=%s", request.canonical_name, spec.spec_hash, found.digest
            )
        return found

    def _build_once(self, request: DynamicRequest, spec: Spec) -> Descriptor:
        """Build under the spec's file lock (other processes), unless one was just built."""
        with _exclusive(self.prefix(spec).with_suffix(".lock")):
            found = self._cached(request, spec)
            if found is not None:
                return found
            try:
                return self._build(request, spec)
            except CondaopsError as exc:
                refusal = refusal_for(exc, request.canonical_name)
                log.warning(
                    "dynamic_build_failed name=%s spec_hash=%s code=%s message=%s",
                    request.canonical_name,
                    spec.spec_hash,
                    refusal.code.name,
                    refusal.message,
                )
                raise refusal from exc

    def prefix(self, spec: Spec) -> Path:
        return self.settings.store / NAMESPACE / spec.spec_hash[:SHORT]

    def _build(self, request: DynamicRequest, spec: Spec) -> Descriptor:
        name, platform, started = request.canonical_name, self.platform, time.monotonic()
        run = partial(run_bounded, deadline=started + self.settings.build.timeout, label=name)
        channels = self.settings.channels
        client, repodata = build_client(channels.mirrors, alias=channels.alias), self._layout.caches / "repodata"
        log.info("dynamic_build_started name=%s spec_hash=%s platform=%s", name, spec.spec_hash, platform)
        try:
            solved = run(
                lambda: solve_platforms(
                    spec, [platform], channels=channels, client=client, cache_dir=repodata, env_label=name
                )
            )
        except SolveError as exc:
            raise self._unsolvable(request, spec, client, run, exc) from exc
        records, prefix = solved[platform], self.prefix(spec)
        if prefix.exists():  # installed by a build that never reached the registry
            shutil.rmtree(prefix)
        run(
            lambda: install_prefix(
                records,
                prefix,
                cache_dir=self._layout.cache_dir,
                client=client,
                requested_specs=spec.dependencies_for(platform),
                env_label=name,
            )
        )
        work = self._layout.work_dir / f"{NAMESPACE}-{spec.spec_hash[:SHORT]}"
        req = PublishRequest(
            ref=EnvRef(NAMESPACE, spec.spec_hash[:SHORT]),
            build_id=0,
            spec_hash=spec.spec_hash,
            prefix=prefix,
            artifacts_dir=work,
            work_dir=work,
            platform=platform,
            records=records,
            requested_specs=spec.dependencies_for(platform),
            version=spec_tag(spec),
        )
        try:
            base = base_for(self.settings, self._layout.root, platform)  # the same base as published images
            built = build_image(req, self.settings.publish, base)
            image = push_image(self._target, name, built.image, [LATEST, spec_tag(spec)])
        except OSError as exc:
            raise TransientError(f"writing the image of {name} failed: {exc}", reason="ImageFailed") from exc
        finally:
            shutil.rmtree(work, ignore_errors=True)
        log.info(
            "dynamic_built name=%s spec_hash=%s packages=%d layers=%d digest=%s seconds=%.3f",
            name,
            spec.spec_hash,
            len(records),
            len(built.image.layers),
            image.digest,
            time.monotonic() - started,
        )
        return image

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
            f"{', '.join(request.match_specs)} cannot be solved from {where}: "
            f"{reason}",
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

    def _alias(self, name: str, canonical: str, image: Descriptor, tag: str) -> None:
        """Tag the canonical image ``latest`` in repository ``name`` (another ordering)."""
        current = self._registry.resolve(name, LATEST)
        if current is not None and current.digest == image.digest:
            return
        body = self._store.manifest(canonical, image.digest).body
        self._registry.put_manifest(name, body, media_type=image.media_type, tags=[LATEST, tag])
        log.info("dynamic_aliased name=%s canonical=%s digest=%s", name, canonical, image.digest)


# --- small pure helpers -------------------------------------------------------------------


def dynamic_spec(request: DynamicRequest, channels: tuple[str, ...], platform: str) -> Spec:
    """The specification of a dynamic image; its hash is the cache key."""
    deps = tuple(sorted(Dependency(text) for text in request.match_specs))
    return Spec(channels=tuple(channels), dependencies=deps, platforms=(platform,), name=request.canonical_name)


def spec_tag(spec: Spec) -> str:
    return f"spec-{spec.spec_hash[:SHORT]}"


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
    """The registry error a failed build answers with."""
    if isinstance(exc, RegistryError):
        return exc
    message = one_line(exc.message)
    if isinstance(exc, ChannelNotAllowedError):
        return RegistryError(DENIED, message)
    if isinstance(exc, TransientError):
        return RegistryError(UNAVAILABLE, f"dynamic image '{name}' could not be built now; try again later: {message}")
    return RegistryError(MANIFEST_UNKNOWN, f"dynamic image '{name}' cannot be built: {message}")


def run_bounded(make: Callable[[], Awaitable[T]], *, deadline: float, label: str) -> T:
    """Run a rattler coroutine on this (worker) thread, stopped at ``deadline``."""

    async def bounded() -> T:
        return await asyncio.wait_for(make(), timeout=max(0.0, deadline - time.monotonic()))  # type: ignore[arg-type]

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
