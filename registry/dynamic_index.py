"""What the registry knows about the dynamic images it holds, kept on its storage.

One record per image, keyed by its **solved key** (a digest of the package records the
request solved to, computed by the builder): two requests that solve to the same records
share one image. A record lists the image's manifest and its **aliases**: each repository
the image is tagged ``latest`` in (``dynamic/tool.ge.1.0.1``, ``dynamic/libtool-data/tool``
...) with the request key it was asked for by and when it was last pulled. A small file
per request key points at the image, so a repeated request is served without solving::

    _dynamic/images/<solved key>.json     the record (JSON)
    _dynamic/requests/<request key>       the solved key it resolved to

Aliases are capped (``MAX_ALIASES`` per image, least recently pulled dropped first), so
a client inventing spellings that solve alike cannot grow an image's footprint without
bound; whole images are collected by ``registry.collect``. Updates are last-writer-wins:
the figures are for choosing what to collect, a lost update costs nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

from condaops.registry.manifests import Descriptor
from condaops.registry.storage import Storage

ROOT = "_dynamic"
MAX_ALIASES = 100  # repositories one image may be tagged in; spellings beyond push out the stalest
TOUCH_EVERY = 60.0  # seconds: a pull updates the record at most this often (per alias)


@dataclass(frozen=True)
class Alias:
    request: str  # the request key it was asked for by
    used: float  # last pull (epoch seconds)


@dataclass(frozen=True)
class DynamicImage:
    key: str
    digest: str
    media_type: str
    size: int
    created: float
    used: float
    uses: int = 0
    aliases: dict[str, Alias] = field(default_factory=dict)  # repository -> alias

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, self.size)


@dataclass(frozen=True)
class Touched:
    """The record after a pull, and the aliases that pull pushed out (to remove)."""

    image: DynamicImage
    dropped: dict[str, Alias]


def image_key(key: str) -> str:
    return f"{ROOT}/images/{key}.json"


def request_key(key: str) -> str:
    return f"{ROOT}/requests/{key}"


def touch(image: DynamicImage, repository: str, request: str, now: float, *, limit: int = MAX_ALIASES) -> Touched:
    """``image`` pulled through ``repository`` (asked as ``request``) at ``now``; the
    stalest aliases beyond ``limit`` are dropped. Pure."""
    aliases = {**image.aliases, repository: Alias(request, now)}
    ranked = sorted(aliases.items(), key=lambda item: item[1].used, reverse=True)
    kept, dropped = dict(ranked[:limit]), dict(ranked[limit:])
    return Touched(replace(image, used=now, uses=image.uses + 1, aliases=kept), dropped)


def needs_write(image: DynamicImage, repository: str, request: str, now: float) -> bool:
    """Whether a pull changes the record enough to write it (pure)."""
    alias = image.aliases.get(repository)
    return alias is None or alias.request != request or now - alias.used >= TOUCH_EVERY


class DynamicIndex:
    """The records on one registry storage (blocking)."""

    def __init__(self, storage: Storage, clock: Callable[[], float] = time.time) -> None:
        self.storage = storage
        self.clock = clock

    def resolved(self, request: str) -> DynamicImage | None:
        """The image a request key resolved to before, if it is still held."""
        raw = self.storage.read(request_key(request))
        return self.get(raw.decode().strip()) if raw else None

    def get(self, key: str) -> DynamicImage | None:
        raw = self.storage.read(image_key(key))
        return _load(raw) if raw else None

    def all(self) -> list[DynamicImage]:
        found = []
        for name in self.storage.list(f"{ROOT}/images"):
            raw = self.storage.read(f"{ROOT}/images/{name}")
            if raw and name.endswith(".json"):
                found.append(_load(raw))
        return found

    def record(self, key: str, image: Descriptor, repository: str, request: str) -> Touched:
        """Note a pull of image ``key`` through ``repository``; writes only when needed."""
        now = self.clock()
        current = self.get(key) or DynamicImage(key, image.digest, image.media_type, image.size, now, now)
        if not needs_write(current, repository, request, now):
            return Touched(current, {})
        touched = touch(current, repository, request, now)
        self.storage.write(request_key(request), key.encode())
        self._save(touched.image)
        for dropped in touched.dropped.values():
            if all(a.request != dropped.request for a in touched.image.aliases.values()):
                self.storage.delete(request_key(dropped.request))
        return touched

    def remove(self, image: DynamicImage) -> None:
        for alias in image.aliases.values():
            self.storage.delete(request_key(alias.request))
        self.storage.delete(image_key(image.key))

    def _save(self, image: DynamicImage) -> None:
        self.storage.write(image_key(image.key), json.dumps(asdict(image), sort_keys=True).encode())


def _load(raw: bytes) -> DynamicImage:
    data = json.loads(raw)
    aliases = {name: Alias(**alias) for name, alias in data.pop("aliases", {}).items()}
    return DynamicImage(**data, aliases=aliases)
