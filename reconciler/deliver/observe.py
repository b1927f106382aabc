"""Reading what deliveries need about one environment: the state DB and its prefix.

``snapshot(engine, layout, ref)`` returns an ``EnvSnapshot``: the current build (None when
the environment is retired, never linked or its prefix is gone), the kept builds with
their requested packages, and the kernelspecs and programs the current prefix ships.
Reads only; small (one folder listing per kernel, the package index per kept build).
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

from sqlalchemy import Engine

from condaops.reconciler.deliver.activate import capture
from condaops.reconciler.deliver.kernels import conda_name
from condaops.reconciler.deliver.model import LOGOS, BuildSnapshot, EnvSnapshot, KernelSource
from condaops.reconciler.model import COMPLETED, EnvRef
from condaops.reconciler.spec import Spec, spec_from_canonical
from condaops.reconciler.state.packages import indexed_packages
from condaops.reconciler.state.queries import BuildInfo, env_builds, get_environment, get_specification
from condaops.reconciler.store import StoreLayout

KERNELS_DIR = Path("share") / "jupyter" / "kernels"
_MAX_KERNELS = 50  # an environment shipping more kernelspecs than this is not asking for all of them
_REQUESTED_NAME = re.compile(r"^(?:[^:\s]+::)?([A-Za-z0-9_.\-]+)")
log = logging.getLogger("condaops.deliver")


def snapshot(engine: Engine, layout: StoreLayout, ref: EnvRef, *, platform: str, detail: bool = True) -> EnvSnapshot:
    """What deliveries need to know about ``ref`` now (``platform``: the host's). Without
    ``detail`` (names only) just the current build: no spec, packages, activation, kept
    builds, kernels or programs are read."""
    link = str(layout.env_link(ref).absolute())
    env = get_environment(engine, ref)
    if env is None or env.retired or env.current is None or not env.current.prefix:
        return EnvSnapshot(ref, link, None)
    prefix = layout.absolute(env.current.prefix).absolute()
    if not prefix.is_dir():
        return EnvSnapshot(ref, link, None)
    if not detail:
        b = env.current
        own = BuildSnapshot(b.build_id, str(prefix), b.source_revision, b.spec_hash)
        return EnvSnapshot(ref, link, own, (own,), source_path=b.source_path or env.path, display_name=env.display_name)
    spec = _spec(engine, env.current.spec_hash, ref)
    wanted = _requested(spec, platform)
    variables = spec.variables if spec else ()
    kept = tuple(
        _build(engine, b, layout, wanted, platform, ref, variables) for b in _kept(env_builds(engine, ref), layout)
    )
    current = next((b for b in kept if b.build_id == env.current.build_id), None)
    if current is None:  # the current build shares its prefix with a newer one (a rebuild): list it too
        current = _build(engine, env.current, layout, wanted, platform, ref, variables)
        kept = (current, *kept)
    return EnvSnapshot(
        ref=ref,
        link=link,
        current=current,
        kept=kept,
        source_path=env.current.source_path or env.path,
        kernels=tuple(read_kernels(prefix)),
        programs=frozenset(_programs(prefix / "bin")),
        variables=variables,
        display_name=env.display_name,
    )


def _kept(builds: list[BuildInfo], layout: StoreLayout) -> list[BuildInfo]:
    """Completed builds whose prefix is on disk, newest first, one per prefix (a rebuild of
    the same spec reuses its prefix: only the newest build is what is in it)."""
    seen: set[str] = set()
    kept = []
    for b in sorted(builds, key=lambda b: b.build_id, reverse=True):
        if b.state != COMPLETED or b.collected_at is not None or not b.prefix or b.prefix in seen:
            continue
        seen.add(b.prefix)
        if layout.absolute(b.prefix).is_dir():
            kept.append(b)
    return kept


def _build(
    engine: Engine,
    b: BuildInfo,
    layout: StoreLayout,
    wanted: list[str],
    platform: str,
    ref: EnvRef,
    variables: tuple[tuple[str, str], ...],
) -> BuildSnapshot:
    versions: dict[str, str] = {}
    for p in indexed_packages(engine, b.build_id) or ():
        if p.platform == platform:
            versions.setdefault(p.name.lower(), p.version)
    packages = tuple((name, versions[name]) for name in wanted if name in versions)
    prefix = str(layout.absolute(b.prefix or "").absolute())
    # The scripts see the current spec's variables, as every delivery of the environment
    # sets them (a pinned build's own spec may have had others).
    hooks = capture(b.build_id, prefix, variables, conda_name(ref))
    return BuildSnapshot(b.build_id, prefix, b.source_revision, b.spec_hash, packages, hooks.variables, hooks.path)


def _spec(engine: Engine, spec_hash: str, ref: EnvRef) -> Spec | None:
    canonical = get_specification(engine, spec_hash)
    return spec_from_canonical(json.loads(canonical), name=ref.name) if canonical else None


def _requested(spec: Spec | None, platform: str) -> list[str]:
    """The package names the spec asks for (conda, then pip), lowercase, in spec order."""
    if spec is None:
        return []
    names = []
    for text in (*spec.dependencies_for(platform), *spec.pip_for(platform)):
        match = _REQUESTED_NAME.match(text.strip())
        if match and match.group(1).lower() not in names:
            names.append(match.group(1).lower())
    return names


def read_kernels(prefix: Path) -> list[KernelSource]:
    """The kernelspecs the prefix ships; unreadable ones are logged and skipped."""
    folder = prefix / KERNELS_DIR
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return []
    found = []
    for entry in entries[:_MAX_KERNELS]:
        path = Path(entry.path)
        try:
            data = json.loads((path / "kernel.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            log.warning("kernelspec_unreadable path=%s %s", path, exc)
            continue
        if isinstance(data, dict):
            logos = tuple(name for name in LOGOS if (path / name).is_file())
            found.append(KernelSource(entry.name.lower(), data, path, logos))
    return found


def _programs(bin_dir: Path) -> list[str]:
    try:
        return [e.name for e in os.scandir(bin_dir) if not e.name.startswith(".")]
    except OSError:
        return []
