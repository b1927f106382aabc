"""Where things live under the store root. Pure path arithmetic, no IO."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from condaops.reconciler.model import EnvRef


@dataclass(frozen=True, slots=True)
class StoreLayout:
    """``<store>/<ns>/<spec-hash>-<name>`` prefixes behind ``<store>/<ns>/envs/<name>``."""

    root: Path

    def prefix(self, ref: EnvRef, spec_hash: str) -> Path:
        return self.root / ref.namespace / f"{spec_hash}-{ref.name}"

    def env_link(self, ref: EnvRef) -> Path:
        return self.root / ref.namespace / "envs" / ref.name

    def artifacts_dir(self, ref: EnvRef, build_id: int) -> Path:
        return self.root / "artifacts" / ref.namespace / ref.name / str(build_id)

    @property
    def cache_dir(self) -> Path:
        return self.root / ".cache" / "pkgs"

    @property
    def work_dir(self) -> Path:
        return self.root / ".cache" / "work"

    def relative(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def absolute(self, location: str) -> Path:
        return self.root / location
