"""What a build holds that never changes once recorded (builds are immutable): its locked
packages (from the package index, else its pixi.lock) and its specification, read once
and kept in small LRUs by build id and spec hash."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup
from sqlalchemy import Engine

from condaops.reconciler.state.packages import LockedPackage, indexed_packages, read_locked_packages
from condaops.reconciler.state.queries import BuildInfo, get_specification
from condaops.web.cache import LRU
from condaops.web.fragments import Fragments
from condaops.web.views import spec_document

log = logging.getLogger("condaops.web")

PIXI_LOCK = "pixi-lock"


@dataclass(frozen=True, slots=True)
class LockedSet:
    """The locked packages of a build and where they were read from."""

    packages: list[LockedPackage]
    origin: str  # "index" or "pixi.lock"


class BuildContents:
    """Locked packages and specifications, cached (they never change)."""

    def __init__(
        self, engine: Engine, fragments: Fragments, store_file: Callable[[str], Path | None], *, size: int = 1024
    ) -> None:
        self.engine = engine
        self.fragments = fragments
        self.store_file = store_file
        self._packages: LRU[int, LockedSet] = LRU(size)
        self._specs: LRU[str, str | None] = LRU(size)
        self._spec_text: LRU[str, str] = LRU(size)

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
