"""Which files of a prefix go into which image layer — one layer per package, grouped.

Every conda package becomes its own layer (its files plus its ``conda-meta`` record), so
a new build that changes one package re-uses every other layer's blob. Registries and
runtimes cope badly with many layers, so above ``budget`` layers packages are grouped
the way nixery does it: packages ranked by popularity × size keep their own layer (the
ones most likely to be shared and most costly to re-fetch), the long tail shares one.
Popularity is how many builds use the package when the caller knows it, else 1 (size
alone). Files no package owns (``pip:`` installs, ``conda-meta/history``) form a last
layer of their own.

Layers are written from the built prefix itself: ``layer_entries`` gives the files that
name the build prefix a ``relocate`` rewrite (see ``relocate``), chosen from what the
package records say about each file (its placeholder's mode, entry-point scripts).

``plan_layers`` is pure; ``prefix_packages`` reads a prefix's ``conda-meta``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from condaops.reconciler.publish.archive import Entry, parent_dirs
from condaops.reconciler.publish.relocate import BINARY, ENTRY_POINT, TEXT, Relocation

META = "conda-meta"
REST = "(unowned files)"
UNOWNED = "unowned"  # relocation mode of files no package lists: text files only


@dataclass(frozen=True, slots=True)
class PackageFiles:
    """The files of one installed package, relative to the prefix."""

    name: str
    files: tuple[str, ...]  # includes conda-meta/<name>-<version>-<build>.json
    size: int
    relocate: Mapping[str, str] = field(default_factory=dict)  # file -> text/binary: it names the prefix


@dataclass(frozen=True, slots=True)
class LayerPlan:
    """The packages (by name) one layer holds; ``rest`` adds the unowned files."""

    packages: tuple[str, ...]
    rest: bool = False

    @property
    def label(self) -> str:
        names = list(self.packages) + ([REST] if self.rest else [])
        return ", ".join(names)


def plan_layers(
    packages: Sequence[PackageFiles], *, budget: int, popularity: Mapping[str, int] | None = None
) -> list[LayerPlan]:
    """Layers for ``packages``: at most ``budget`` (≥ 2), the unowned files last. Pure."""
    if budget < 2:
        raise ValueError("a layer budget below 2 leaves no room for packages and unowned files")
    ranked = sorted(packages, key=lambda p: (-_score(p, popularity), p.name))
    if len(ranked) <= budget - 1:
        own, tail = ranked, []
    else:
        own, tail = ranked[: budget - 2], ranked[budget - 2 :]
    layers = [LayerPlan((p.name,)) for p in sorted(own, key=lambda p: p.name)]
    if tail:
        layers.append(LayerPlan(tuple(sorted(p.name for p in tail))))
    layers.append(LayerPlan((), rest=True))
    return layers


def _score(package: PackageFiles, popularity: Mapping[str, int] | None) -> int:
    return max(1, (popularity or {}).get(package.name, 1)) * max(1, package.size)


def prefix_packages(prefix: Path) -> list[PackageFiles]:
    """The packages installed in ``prefix`` with their files (missing files left out)."""
    out = []
    root = str(prefix)
    for meta in sorted((prefix / META).glob("*.json")):
        record = json.loads(meta.read_text(encoding="utf-8"))
        sizes = {f: _size(f"{root}/{f}") for f in {*record.get("files", []), f"{META}/{meta.name}"}}
        files = sorted(f for f, size in sizes.items() if size is not None)
        size = sum(s for s in sizes.values() if s is not None)
        out.append(PackageFiles(str(record["name"]), tuple(files), size, relocation_modes(record)))
    return out


def _size(path: str) -> int | None:
    """The size of ``path`` (not following a link), None when it is missing."""
    try:
        return os.lstat(path).st_size
    except FileNotFoundError:
        return None


def relocation_modes(record: Mapping[str, Any]) -> dict[str, str]:
    """The files of a ``conda-meta`` record that name the prefix, with how to rewrite them:
    those with a placeholder (text or binary, as the package declares) and entry points."""
    modes = {}
    for entry in (record.get("paths_data") or {}).get("paths") or []:
        path = entry.get("_path")
        if entry.get("prefix_placeholder") and entry.get("file_mode") in (TEXT, BINARY):
            modes[path] = entry["file_mode"]
        elif entry.get("path_type") == ENTRY_POINT:
            modes[path] = TEXT
    return modes


def unowned_files(prefix: Path, packages: Sequence[PackageFiles]) -> list[str]:
    """Files, symlinks and empty folders of ``prefix`` that no package lists."""
    owned = {f for p in packages for f in p.files}
    found = []
    for dirpath, dirs, files in os.walk(prefix):
        rel = os.path.relpath(dirpath, prefix)
        for name in sorted(files) + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
            path = name if rel == "." else f"{rel}/{name}"
            if path not in owned:
                found.append(path)
        if not files and not dirs and rel != ".":
            found.append(rel + "/")
    return sorted(found)


def layer_entries(
    prefix: Path, image_prefix: str, files: Sequence[str], relocate: Mapping[str, str] | None = None
) -> list[Entry]:
    """Tar entries placing ``files`` (relative to ``prefix``) under ``image_prefix``,
    with every parent folder, sorted (folders before what they hold). Files in
    ``relocate`` (path -> ``text``, ``binary`` or ``UNOWNED``) have ``prefix`` replaced by
    ``image_prefix`` in their content; the package records (``conda-meta/*.json``) come
    last, so that they can list the relocated files' new digests (``Relocation``)."""
    root = image_prefix.strip("/")
    modes = relocate or {}
    relocation = Relocation(str(prefix), image_prefix)
    names = {f"{root}/{f.rstrip('/')}": f.rstrip("/") for f in files}
    entries = {d: Entry(d + "/") for d in parent_dirs(names) if d}
    records = []
    for name, rel in names.items():
        source = prefix / rel
        if source.is_dir() and not source.is_symlink():
            entries[name] = Entry(name + "/", source)
        elif rel.startswith(f"{META}/") and rel.endswith(".json"):
            records.append(Entry(name, source, rewrite=relocation.patch_record))
        else:
            mode = modes.get(rel)
            rewrite = relocation.rewrite(rel, None if mode == UNOWNED else mode) if mode else None
            entries[name] = Entry(name, source, rewrite=rewrite)
    return [entries[k] for k in sorted(entries)] + sorted(records, key=lambda e: e.name)
