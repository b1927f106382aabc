"""What every request handler shares: settings, the state DB, caches, the access policy.

One ``WebContext`` per app, handed to handlers by dependency injection. Everything read
from the state DB goes through ``condaops.reconciler.state.queries`` / ``.packages``.

Caches, and why they are safe:

* the list of environments with their derived state is checked every ``cache_seconds``,
  in the background, and loaded again when ``queries.environments_stamp`` moved (the
  overview, namespace pages, lists and search share it; a page may be that many seconds
  behind, plus the time a reload takes; the environment page, the build page and its live
  log are not); pages and API lists made only from it are kept as long (``memo``);
* what belongs to one build never changes (builds are immutable): its locked packages are
  kept per build id, specifications per hash, in small LRUs; rendered pieces of pages made
  only of such data are kept by ``fragments.Fragments``;
* rendered environment pages (``pages``, ``web.page_cache`` of them) are kept with the
  environment's stamp (``queries.environment_stamp``: its ``state_version``, which the
  recorder raises in the same transaction as every change to the environment, its builds
  and their files, with its row). A page is reused only while a fresh read of the stamp,
  one indexed query, is equal, so it is never behind the state DB. The stamp is read
  before the data the page is made from, so a page can be newer than its stamp, never
  older.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from markupsafe import Markup
from sqlalchemy import Engine

from condaops.config import Settings
from condaops.reconciler.buildlog import LOG_KIND
from condaops.reconciler.model import EnvRef
from condaops.reconciler.sources.revisions import RevisionReader
from condaops.reconciler.state.packages import LockedPackage, indexed_packages, read_locked_packages
from condaops.reconciler.state.queries import (
    ArtifactInfo,
    BuildInfo,
    EnvInfo,
    EnvView,
    environment_stamp,
    environment_view,
    environments_stamp,
    get_build,
    get_environment,
    get_specification,
    list_environments,
)
from condaops.reconciler.store import StoreLayout
from condaops.registry.backends import open_storage
from condaops.registry.layout import blob_key
from condaops.registry.protocol import Digest
from condaops.registry.storage import Storage
from condaops.web.access import AccessPolicy, Viewer
from condaops.web.cache import LRU, Cached, Stamped
from condaops.web.fragments import Fragments
from condaops.web.health import BADGE_TITLES
from condaops.web.metrics import ServiceMetrics
from condaops.web.render import Renderer
from condaops.web.views import EnvRow, env_rows, spec_document, valid_name

log = logging.getLogger("condaops.web")

T = TypeVar("T")
PIXI_LOCK = "pixi-lock"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True, slots=True)
class LockedSet:
    """The locked packages of a build and where they were read from."""

    packages: list[LockedPackage]
    origin: str  # "index" or "pixi.lock"


class WebContext:
    """Shared by all handlers of one app."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        metrics: ServiceMetrics,
        clock: Callable[[], datetime] = utcnow,
        cache_seconds: float = 2.0,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.metrics = metrics
        self.clock = clock
        self.layout = StoreLayout.of(settings)
        self.access = AccessPolicy(settings.web.auth)
        self.revisions = RevisionReader(settings.sources)
        self.renderer = Renderer(globals={"describe": self.revisions.describe, "badge_titles": BADGE_TITLES})
        self.fragments = Fragments(self.renderer, describe=self.revisions.describe)
        self.retries = settings.build.retries
        self._rows = Cached(self._load_rows, cache_seconds, stamp=lambda: environments_stamp(engine))
        self._packages: LRU[int, LockedSet] = LRU(1024)
        self._specs: LRU[str, str | None] = LRU(1024)
        self._spec_text: LRU[str, str] = LRU(1024)
        self._memo: LRU[Hashable, tuple[float, Any]] = LRU(512)
        self.pages: Stamped[Hashable, str] = Stamped(settings.web.page_cache)
        self.cache_seconds = cache_seconds
        self._storage: Storage | None = None  # registry object storage, opened on first use

    def memo(self, key: Hashable, produce: Callable[[], T], *, seconds: float | None = None) -> T:
        """``produce()``, reused for ``cache_seconds`` (or ``seconds``) under ``key`` (pages
        and lists that depend only on the cached environment list and the key)."""
        if self.cache_seconds <= 0:
            return produce()
        hit = self._memo.get(key)
        now = time.monotonic()
        if hit is not None and now - hit[0] < (self.cache_seconds if seconds is None else seconds):
            return hit[1]
        value = produce()
        self._memo.put(key, (now, value))
        return value

    def packages_html(self, build: BuildInfo) -> tuple[Markup, str] | None:
        """The locked-packages tables of a build as HTML (escaped when rendered) and where
        they were read from; rendered once per build, which never changes."""
        locked = self.packages(build)
        if locked is None:
            return None
        return self.fragments.packages(build.build_id, locked.packages), locked.origin

    def spec_text(self, spec_hash: str | None) -> str:
        """A specification as YAML for the page (cached like the JSON it comes from)."""
        if not spec_hash:
            return ""
        cached = self._spec_text.get(spec_hash)
        if cached is None:
            canonical = self.specification(spec_hash)
            cached = spec_document(canonical)
            if canonical is not None:
                self._spec_text.put(spec_hash, cached)
        return cached

    def specification(self, spec_hash: str) -> str | None:
        """A specification's canonical JSON (immutable: identified by its hash)."""
        cached = self._specs.get(spec_hash)
        if cached is None:
            cached = get_specification(self.engine, spec_hash)
            if cached is not None:
                self._specs.put(spec_hash, cached)
        return cached

    # --- environments -----------------------------------------------------------------

    def _load_rows(self) -> list[EnvRow]:
        return env_rows(list_environments(self.engine), retries=self.retries)

    def rows_generation(self) -> int:
        """Which load of the environment list is current (it changes with every reload
        that found a change; asking starts a reload when one is due)."""
        return id(self._rows.get())  # the list is kept until replaced: its id names it

    def all_rows(self) -> list[EnvRow]:
        """Every live environment, whoever asks (for aggregate metrics only)."""
        return self._rows.get()

    def rows(self, viewer: Viewer) -> list[EnvRow]:
        """Live environments the viewer may see, by namespace and name."""
        return [r for r in self._rows.get() if self.access.can_see(viewer, r.ref.namespace)]

    def visible_namespaces(self, viewer: Viewer) -> set[str] | None:
        """The namespaces ``viewer`` may read, or None for all of them."""
        if viewer.everything or not self.access.enabled:
            return None
        return {r.ref.namespace for r in self._rows.get() if self.access.can_see(viewer, r.ref.namespace)}

    def namespace_exists(self, namespace: str, viewer: Viewer) -> bool:
        return self.access.can_see(viewer, namespace) and any(r.ref.namespace == namespace for r in self._rows.get())

    def environment(self, namespace: str, name: str, viewer: Viewer) -> EnvInfo:
        """One environment (retired ones too); 404 when unknown or not visible."""
        return self._one(namespace, name, viewer, lambda ref: get_environment(self.engine, ref))

    def environment_stamp(self, namespace: str, name: str, viewer: Viewer) -> tuple[Any, ...]:
        """What changes whenever the environment's page would (``queries.environment_stamp``);
        404 when unknown or not visible."""
        return self._one(namespace, name, viewer, lambda ref: environment_stamp(self.engine, ref))

    def environment_view(
        self, namespace: str, name: str, viewer: Viewer, *, history_limit: int, history_offset: int
    ) -> EnvView:
        """An environment with a page of its builds; 404 when unknown or not visible."""
        return self._one(
            namespace,
            name,
            viewer,
            lambda ref: environment_view(self.engine, ref, history_limit=history_limit, history_offset=history_offset),
        )

    def _one(self, namespace: str, name: str, viewer: Viewer, read: Callable[[EnvRef], T | None]) -> T:
        """``read`` of one environment the viewer may see; 404 when it is not visible or
        ``read`` finds nothing (the same answer, so hidden names are not revealed)."""
        found = None
        if valid_name(namespace) and valid_name(name) and self.access.can_see(viewer, namespace):
            found = read(EnvRef(namespace, name))
        if found is None:
            raise NotFoundException(f"no environment {namespace}/{name}")
        return found

    def build(self, build_id: int, viewer: Viewer) -> BuildInfo:
        build = get_build(self.engine, build_id) if 0 < build_id < 2**63 else None
        if build is None or not self.access.can_see(viewer, build.ref.namespace):
            raise NotFoundException(f"no build {build_id}")
        return build

    # --- files of builds ----------------------------------------------------------------

    def store_file(self, location: str) -> Path | None:
        """The file at a store-relative location from the state DB, if it is a regular
        file inside the store (a recorded location never leads elsewhere)."""
        root = self.layout.root.resolve()
        path = (root / location).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return None
        return path

    def artifact_file(self, artifact: ArtifactInfo) -> Path | None:
        return self.store_file(artifact.location)

    def artifact_url(self, artifact: ArtifactInfo) -> str | None:
        """A presigned object-storage URL for an artifact the publish job pushed (tarball,
        lockfiles: registry blobs named by their sha256), when the registry keeps its blobs
        in S3 with redirects on; None means serve the file from the store."""
        storage = self._object_storage()
        if storage is None or not artifact.sha256:
            return None
        key = blob_key(Digest("sha256", artifact.sha256))
        if storage.size(key) != artifact.size:
            return None
        return storage.download_url(key)

    def _object_storage(self) -> Storage | None:
        settings = self.settings.storage
        if settings.backend != "s3" or not settings.s3_redirect:
            return None
        if self._storage is None:
            self._storage = open_storage(self.settings)
        return self._storage

    def image_record(self, build: BuildInfo) -> dict[str, Any] | None:
        """The build's ``image.json`` (what publishing pushed where), or None."""
        location = build.artifacts.get("image")
        path = self.store_file(location) if location else None
        try:
            found = json.loads(path.read_text(encoding="utf-8")) if path else None
        except (OSError, ValueError):
            return None
        return found if isinstance(found, dict) else None

    def log_file(self, build: BuildInfo) -> Path | None:
        """The build's log: recorded as an artifact once finished; while it runs, where the
        runner writes it."""
        location = build.artifacts.get(LOG_KIND)
        if location is None:
            location = self.layout.relative(self.layout.build_log(build.ref, build.build_id))
        return self.store_file(location)

    def packages(self, build: BuildInfo) -> LockedSet | None:
        """The locked packages of a build: from the package index, else its pixi.lock."""
        cached = self._packages.get(build.build_id)
        if cached is not None:
            return cached
        indexed = indexed_packages(self.engine, build.build_id)
        if indexed is not None:
            found = LockedSet(indexed, "index")
        else:
            location = build.artifacts.get(PIXI_LOCK)
            path = self.store_file(location) if location else None
            if path is None:
                return None
            try:
                found = LockedSet(read_locked_packages(path), "pixi.lock")
            except Exception:  # an unreadable lockfile hides the table, it does not break the page
                log.warning("pixi_lock_unreadable build=%s path=%s", build.build_id, path, exc_info=True)
                return None
        self._packages.put(build.build_id, found)
        return found


CtxDep = NamedDependency[WebContext]
"""A handler parameter named ``ctx`` receives the app's WebContext."""
