"""What every request handler shares: settings, the state DB, caches, the access policy.

One ``WebContext`` per app, handed to handlers by dependency injection. Everything read
from the state DB goes through ``condaops.reconciler.state.queries`` / ``.packages``.
The parts live in their own modules; ``WebContext`` wires them and offers their methods:

* ``web.visible`` — the environment list the viewer may see (``EnvironmentList``) and
  single environments and builds (``Lookups``, 404 when unknown or hidden);
* ``web.build_contents`` — a build's locked packages and specifications (``BuildContents``);
* ``web.store_files`` — the files of builds in the store and object storage (``StoreFiles``);
* ``web.cache`` — the caches themselves.

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

import logging
import time
from collections.abc import Callable, Hashable
from datetime import datetime, timezone
from typing import Any, TypeVar

from litestar.di import NamedDependency
from sqlalchemy import Engine

from condaops.config import Settings
from condaops.reconciler.sources.revisions import RevisionReader
from condaops.reconciler.store import StoreLayout
from condaops.web.access import AccessPolicy
from condaops.web.build_contents import PIXI_LOCK, BuildContents, LockedSet
from condaops.web.cache import LRU, Stamped
from condaops.web.fragments import Fragments
from condaops.web.health import BADGE_TITLES
from condaops.web.metrics import ServiceMetrics
from condaops.web.render import Renderer
from condaops.web.store_files import StoreFiles
from condaops.web.visible import EnvironmentList, Lookups

__all__ = ["PIXI_LOCK", "CtxDep", "LockedSet", "WebContext", "utcnow"]

log = logging.getLogger("condaops.web")

T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


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
        self.cache_seconds = cache_seconds
        self._memo: LRU[Hashable, tuple[float, Any]] = LRU(512)
        self.pages: Stamped[Hashable, str] = Stamped(settings.web.page_cache)
        self.environments = EnvironmentList(engine, self.access, retries=self.retries, cache_seconds=cache_seconds)
        self.lookups = Lookups(engine, self.access)
        self.files = StoreFiles(settings, self.layout)
        self.contents = BuildContents(engine, self.fragments, self.files.store_file)
        # The parts' methods, as handlers have always called them.
        self.rows_generation = self.environments.rows_generation
        self.all_rows = self.environments.all_rows
        self.rows = self.environments.rows
        self.visible_namespaces = self.environments.visible_namespaces
        self.namespace_exists = self.environments.namespace_exists
        self.environment = self.lookups.environment
        self.environment_stamp = self.lookups.environment_stamp
        self.environment_view = self.lookups.environment_view
        self.build = self.lookups.build
        self.store_file = self.files.store_file
        self.artifact_file = self.files.artifact_file
        self.artifact_url = self.files.artifact_url
        self.image_record = self.files.image_record
        self.log_file = self.files.log_file
        self.packages = self.contents.packages
        self.packages_html = self.contents.packages_html
        self.spec_text = self.contents.spec_text
        self.specification = self.contents.specification

    def warm(self) -> None:
        """What the first requests after a start would otherwise wait for, done at start in
        the background (``create_app``'s startup hook): every template compiled, and the
        environment list loaded (the overview's first answer waits for that load only if it
        is still running)."""
        started = time.perf_counter()
        try:
            self.renderer.compile_all()
            if self.cache_seconds > 0:
                self.environments.all_rows()
        except Exception as e:  # the requests will do it (and report what fails)
            log.warning("web_warm_up_failed error=%s", e)
        log.debug("web_warm_up seconds=%.3f", time.perf_counter() - started)

    def memo_get(self, key: Hashable) -> Any | None:
        """What ``memo`` would reuse under ``key`` now, or None (nothing is made)."""
        if self.cache_seconds <= 0:
            return None
        hit = self._memo.get(key)
        return hit[1] if hit is not None and time.monotonic() - hit[0] < self.cache_seconds else None

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


CtxDep = NamedDependency[WebContext]
"""A handler parameter named ``ctx`` receives the app's WebContext."""
