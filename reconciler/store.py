"""Where things live under the store root. Pure path arithmetic, no IO."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from condaops.reconciler.model import EnvRef


@dataclass(frozen=True, slots=True)
class StoreLayout:
    """``<store>/<ns>/<spec-hash>-<name>`` prefixes behind ``<store>/<ns>/envs/<name>``.

    A preview area (change requests) is a layout rooted inside the store that shares the
    store's caches (``cache_root``), so previews hardlink from the same package cache.
    """

    root: Path
    cache_root: Path | None = None

    def prefix(self, ref: EnvRef, spec_hash: str) -> Path:
        return self.root / ref.namespace / f"{spec_hash}-{ref.name}"

    def env_link(self, ref: EnvRef) -> Path:
        return self.root / ref.namespace / "envs" / ref.name

    def artifacts_dir(self, ref: EnvRef, build_id: int) -> Path:
        return self.root / "artifacts" / ref.namespace / ref.name / str(build_id)

    @property
    def caches(self) -> Path:
        return (self.cache_root or self.root) / ".cache"

    @property
    def cache_dir(self) -> Path:
        return self.caches / "pkgs"

    @property
    def work_dir(self) -> Path:
        return self.root / ".cache" / "work"

    def preview(self, source: str, ref: str, head: str) -> StoreLayout:
        """The isolated area of one change request's head commit: never production paths."""
        slug = "-".join(part for part in ref.removeprefix("refs/").split("/") if part not in ("head", ""))
        return StoreLayout(self.root / "previews" / source / slug / head[:12], cache_root=self.cache_root or self.root)

    def previews_of(self, source: str, ref: str) -> Path:
        """The folder holding every preview area of one change request."""
        return self.preview(source, ref, "x").root.parent

    def relative(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def absolute(self, location: str) -> Path:
        return self.root / location
