"""Dynamic images: ``GET /v2/dynamic/<pkg>/<pkg.ge.1.0>/manifests/latest`` asks for an image.

The registry never builds: it serves, authenticates and refuses. Solving and building
are the reconciler's, behind the narrow ``DynamicBuilder`` interface handed to the
registry at start-up (``registry_router(..., dynamic_builder=...)``).

The registry app asks ``prepare(route, caller)`` of the gate ``dynamic_gate`` returns
before each operation. With ``dynamic.enabled`` (``DynamicImages``):

* a manifest request for tag ``latest`` of a ``dynamic/...`` repository makes sure the
  image is in the registry, tagged ``latest`` in that repository; then the ordinary
  handler serves it. Other tags, digests, blobs and tag lists are served as for any
  repository (reads follow the visibility of the ``dynamic`` namespace, ``web.auth``);
* pushes into ``dynamic/`` are refused (``DENIED``): the namespace belongs to this service.

Making sure, cheapest first:

1. the path is parsed (``dynamic_path``) and the builder gives its **request key** (what
   is asked: packages, channels, platform; no IO). A request key seen before points at
   an image (``dynamic_index``): it is tagged in the repository and served. No solve.
2. Otherwise the request is new: with ``dynamic.require_token`` it needs a token (401);
   each client may make ``dynamic.rate`` new requests a minute (429 with
   ``Retry-After``); at most ``dynamic.concurrency`` solve or build at once, and
   ``dynamic.queue`` more may wait (429 beyond). The builder **solves** it; the records
   it solved to give the **solved key**. An image of that key is reused — the spellings
   ``bzip2.ge.1.0.1`` and ``bzip2.ge.1.0.2`` share one image — else the builder **builds**
   it into the canonical repository. Identical requests in flight share one task (a
   client that gives up does not cancel it); so do different requests that solve alike.
3. Every pull is noted in the index (aliases and last use), which ``registry.collect``
   uses to keep the ``dynamic.keep`` most recently used images.

Refusals are ``RegistryError``\\s in the spec's vocabulary (the builder raises them for
what it finds: ``NAME_UNKNOWN`` for a package no channel has, ``MANIFEST_UNKNOWN`` for an
unsatisfiable request, ``DENIED`` for a channel outside ``channels.allowed`` or a full
disk, ``UNAVAILABLE`` when it may work later).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, TypeVar

import anyio
import anyio.to_thread

from condaops.config.settings import Settings
from condaops.registry.access import Reader
from condaops.registry.api import Registry
from condaops.registry.auth import CHALLENGE
from condaops.registry.dynamic_index import DynamicImage, DynamicIndex
from condaops.registry.dynamic_path import NAMESPACE, DynamicRequest, is_dynamic_name, parse_dynamic_name
from condaops.registry.errors import (
    DENIED,
    NAME_UNKNOWN,
    TOOMANYREQUESTS,
    UNAUTHORIZED,
    UNAVAILABLE,
    RegistryError,
)
from condaops.registry.layout import blob_key
from condaops.registry.manifests import Descriptor
from condaops.registry.protocol import parse_digest
from condaops.registry.ratelimit import RateLimiter
from condaops.registry.routes import Route
from condaops.registry.storage import Storage
from condaops.registry.store import RegistryStore

T = TypeVar("T")
LATEST = "latest"
log = logging.getLogger("condaops.registry.dynamic")


@dataclass(frozen=True)
class Solved:
    """A dynamic request, solved. ``key`` names the solved package records (equal records,
    equal keys: the image's identity); ``detail`` is the builder's own (the records)."""

    key: str
    packages: int
    detail: Any = field(default=None, compare=False, repr=False)


class DynamicBuilder(Protocol):
    """What the registry needs from the side that builds (the reconciler's
    ``DynamicImageBuilder``). ``solve`` and ``build`` block (they run in worker threads)
    and refuse with ``RegistryError``."""

    def request_key(self, request: DynamicRequest) -> str:
        """A digest of what ``request`` asks for, with the channels and platform it would
        be solved against; cheap, no IO."""
        ...

    def solve(self, request: DynamicRequest) -> Solved:
        """Solve ``request`` (no install)."""
        ...

    def build(self, solved: Solved, repository: str, tags: Sequence[str]) -> Descriptor:
        """Build the image of ``solved`` and store it in this registry's ``repository``,
        tagged ``tags``; return its manifest's descriptor."""
        ...


@dataclass(frozen=True)
class Caller:
    """Who asks: the reader of the request and the client's address."""

    reader: Reader = field(default_factory=Reader)
    address: str = "-"

    @property
    def identity(self) -> str:
        """What the rate limit counts by: the token if there is one, else the address."""
        viewer = self.reader.viewer
        if self.reader.pusher or viewer.authenticated:
            held = ",".join(sorted(viewer.granted)) + ("*" if self.reader.everything else "")
            return "token:" + hashlib.sha256(held.encode()).hexdigest()[:16]
        return f"address:{self.address}"


def dynamic_gate(
    settings: Settings, storage: Storage, builder: DynamicBuilder | None = None
) -> DynamicImages | DynamicOff:
    """What the registry app consults before each operation (see module doc)."""
    return DynamicImages(settings, storage, builder) if settings.dynamic.enabled else DynamicOff(storage)


class DynamicOff:
    """``dynamic.enabled`` is false: a ``dynamic/...`` repository that nobody pushed does
    not exist, and the 404 says why. (One that was pushed is served as usual.)"""

    def __init__(self, storage: Storage) -> None:
        self._store = RegistryStore(storage)

    async def prepare(self, route: Route, caller: Caller | None = None) -> None:
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
    """Serves dynamic images: finds them, or asks the builder (see module doc)."""

    def __init__(self, settings: Settings, storage: Storage, builder: DynamicBuilder | None) -> None:
        self.settings = settings.dynamic
        self.builder = builder
        self.index = DynamicIndex(storage)
        self._registry = Registry(storage)
        self._rate = RateLimiter(settings.dynamic.rate)
        self._pending: dict[str, asyncio.Future[DynamicImage]] = {}  # request key -> its task
        self._building: dict[str, asyncio.Future[DynamicImage]] = {}  # solved key -> its build
        self._limiter: anyio.CapacityLimiter | None = None  # made in the event loop, on first use

    async def prepare(self, route: Route, caller: Caller | None = None) -> None:
        if not is_dynamic_name(route.name):
            return
        if route.is_push:
            raise RegistryError(
                DENIED,
                f"'{route.name}' is in the {NAMESPACE}/ namespace, which only the registry "
                "itself writes; push to another repository",
            )
        if route.operation == "get_manifest" and route.argument == LATEST:
            await self.ensure(route.name, caller or Caller())

    async def ensure(self, name: str, caller: Caller) -> Descriptor:
        """The image repository ``name`` asks for, tagged ``latest`` there."""
        request = parse_dynamic_name(name, max_packages=self.settings.max_packages)
        builder = self._builder()
        request_key = builder.request_key(request)
        image = await anyio.to_thread.run_sync(self.index.resolved, request_key)
        if image is None:
            future = self._pending.get(request_key)
            if future is None:
                self._admit(caller)
                future = self._start(self._pending, request_key, partial(self._find_or_build, request, request_key))
            image = await asyncio.shield(future)  # a client giving up leaves it running
        await anyio.to_thread.run_sync(self._serve_as, name, request_key, image)
        return image.descriptor

    def _builder(self) -> DynamicBuilder:
        if self.builder is None:
            raise RegistryError(
                UNAVAILABLE,
                "this registry process cannot build dynamic images (no builder was started with it); "
                "serve it with `condaops serve`",
            )
        return self.builder

    def _admit(self, caller: Caller) -> None:
        """Token, rate and queue limits for a request that will solve (see module doc)."""
        reader = caller.reader
        if self.settings.require_token and not (reader.pusher or reader.viewer.authenticated):
            raise RegistryError(
                UNAUTHORIZED,
                "new dynamic images need a token here (dynamic.require_token): log in with a read token",
                headers={"WWW-Authenticate": CHALLENGE},
            )
        if len(self._pending) >= self.settings.concurrency + self.settings.queue:
            raise RegistryError(
                TOOMANYREQUESTS,
                f"{len(self._pending)} dynamic images are being solved or built, the most this registry "
                "takes (dynamic.concurrency + dynamic.queue); try again in a minute",
                headers={"Retry-After": "60"},
            )
        wait = self._rate.take(caller.identity)
        if wait is not None:
            seconds = max(1, round(wait + 0.5))
            raise RegistryError(
                TOOMANYREQUESTS,
                f"this client asked for {self.settings.rate} new dynamic images within a minute "
                f"(dynamic.rate); try again in {seconds} s (images built before are served at once)",
                headers={"Retry-After": str(seconds)},
            )

    def _start(
        self, table: dict[str, asyncio.Future[DynamicImage]], key: str, make: Callable[[], Awaitable[DynamicImage]]
    ) -> asyncio.Future[DynamicImage]:
        """One task per key in ``table`` while it runs."""
        future = asyncio.ensure_future(make())
        table[key] = future
        future.add_done_callback(partial(_settled, table, key))
        return future

    async def _find_or_build(self, request: DynamicRequest, request_key: str) -> DynamicImage:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.settings.concurrency)
        builder = self._builder()
        async with self._limiter:
            solved = await _blocking(builder.solve, request)
            image = await anyio.to_thread.run_sync(self.index.get, solved.key)
            if image is not None:
                log.info("dynamic_reused name=%s key=%s digest=%s", request.canonical_name, solved.key, image.digest)
                return image
            future = self._building.get(solved.key)
            if future is None:
                make = partial(self._build, solved, request.canonical_name, request_key)
                future = self._start(self._building, solved.key, make)
            return await asyncio.shield(future)

    async def _build(self, solved: Solved, repository: str, request_key: str) -> DynamicImage:
        builder = self._builder()
        descriptor = await _blocking(builder.build, solved, repository, [LATEST, spec_tag(request_key)])
        touched = await anyio.to_thread.run_sync(self.index.record, solved.key, descriptor, repository, request_key)
        return touched.image

    def _serve_as(self, name: str, request_key: str, image: DynamicImage) -> None:
        """Tag ``image`` ``latest`` in repository ``name`` and note the pull (blocking)."""
        current = self._registry.resolve(name, LATEST)
        if current is None or current.digest != image.digest:
            body = self._registry.storage.read(blob_key(parse_digest(image.digest)))
            if body is None:
                raise RegistryError(UNAVAILABLE, f"the manifest of dynamic image {image.digest} is missing; try again")
            self._registry.put_manifest(name, body, media_type=image.media_type, tags=[LATEST, spec_tag(request_key)])
            log.info("dynamic_aliased name=%s key=%s digest=%s", name, image.key, image.digest)
        touched = self.index.record(image.key, image.descriptor, name, request_key)
        for repository in touched.dropped:
            remove_alias(self._registry, repository, image.digest)


def spec_tag(request_key: str) -> str:
    """The tag naming what a repository's ``latest`` was asked as."""
    return f"spec-{request_key[:12]}"


def remove_alias(registry: Registry, repository: str, digest: str) -> bool:
    """Remove a dynamic repository whose ``latest`` is still ``digest`` (blocking)."""
    current = registry.resolve(repository, LATEST)
    if current is not None and current.digest != digest:
        return False  # it serves another image now
    registry.remove_repository(repository)
    return True


async def _blocking(call: Callable[..., T], *args: Any) -> T:
    """A builder call in a worker thread; anything but a refusal becomes UNAVAILABLE."""
    started = time.monotonic()
    try:
        return await anyio.to_thread.run_sync(partial(call, *args))
    except RegistryError:
        raise
    except Exception as exc:  # the builder's boundary: a bug must not become a 500 with a traceback
        log.exception("dynamic_builder_crashed call=%s", getattr(call, "__name__", call))
        raise RegistryError(
            UNAVAILABLE, f"the dynamic image could not be built ({type(exc).__name__}); try again later"
        ) from exc
    finally:
        log.debug("dynamic_builder_call seconds=%.3f", time.monotonic() - started)


def _settled(table: dict[str, asyncio.Future[Any]], key: str, future: asyncio.Future[Any]) -> None:
    table.pop(key, None)
    if not future.cancelled():
        future.exception()  # retrieved: waiters that left must not leave it unreported
