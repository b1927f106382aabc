"""Where things live under the store root. Pure path arithmetic, no IO."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from condaops.reconciler.buildlog import LOG_FILE
from condaops.reconciler.model import EnvRef

if TYPE_CHECKING:
    from condaops.config import Settings


@dataclass(frozen=True, slots=True)
class StoreLayout:
    """``<store>/<ns>/<spec-hash>-<name>`` prefixes behind ``<store>/<ns>/envs/<name>``.

    Caches (packages, repodata, uv) live in ``<store>/.cache`` unless ``cache`` names
    another folder (``build.cache_dir``: each worker host its own local one). A preview
    area (change requests) is a layout rooted inside the store that shares the store's
    caches, so previews hardlink from the same package cache.
    """

    root: Path
    cache: Path | None = None

    @classmethod
    def of(cls, settings: Settings) -> StoreLayout:
        """The layout a process uses: the store, and this process's cache folder."""
        return cls(settings.store, cache=settings.build.cache_dir)

    def prefix(self, ref: EnvRef, spec_hash: str) -> Path:
        return self.root / ref.namespace / f"{spec_hash}-{ref.name}"

    def env_link(self, ref: EnvRef) -> Path:
        return self.root / ref.namespace / "envs" / ref.name

    def artifacts_dir(self, ref: EnvRef, build_id: int) -> Path:
        return self.root / "artifacts" / ref.namespace / ref.name / str(build_id)

    def build_log(self, ref: EnvRef, build_id: int) -> Path:
        """Where a build writes its log (``buildlog``), before and after it is recorded."""
        return self.artifacts_dir(ref, build_id) / LOG_FILE

    @property
    def caches(self) -> Path:
        return self.cache or self.root / ".cache"

    @property
    def cache_dir(self) -> Path:
        return self.caches / "pkgs"

    @property
    def work_dir(self) -> Path:
        return self.root / ".cache" / "work"

    def preview(self, source: str, ref: str, head: str) -> StoreLayout:
        """The isolated area of one change request's head commit: never production paths."""
        slug = "-".join(part for part in ref.removeprefix("refs/").split("/") if part not in ("head", ""))
        return StoreLayout(self.root / "previews" / source / slug / head[:12], cache=self.caches)

    def previews_of(self, source: str, ref: str) -> Path:
        """The folder holding every preview area of one change request."""
        return self.preview(source, ref, "x").root.parent

    def relative(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def absolute(self, location: str) -> Path:
        return self.root / location
