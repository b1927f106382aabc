"""Specifications: the normalized content of an environment.yaml and its identity.

Pure: standard library only, no IO. Parsing files lives in ``specfile.py``.

Identity is the sha256 of the canonical JSON form. Channel order is kept (it is
priority); dependency, pip and platform order is not (they are sets). The ``name:`` key
is informational only: the environment's name comes from its path. So is
``display_name`` (the file's ``condaops: display_name:``, the name its Jupyter kernels
and modules show): renaming an environment for its users never rebuilds it.

A *locked* spec also carries a ``LockPin``: the committed lockfile it installs (its kind
and the digest of its locked packages). The pin is part of the identity, so a changed
lock is a changed spec (a new build), while a spec without a lock hashes as before.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from condaops.reconciler.names import KNOWN_PLATFORMS


@dataclass(frozen=True, slots=True, order=True)
class Dependency:
    """One line of ``dependencies:`` (conda match spec) or of ``pip:`` (requirement).

    ``text`` is normalized (see specfile.normalize_match_spec); ``selector`` is the
    conda-lock style ``# [linux64]`` selector expression, or None for every platform.
    """

    text: str
    selector: str | None = None


@dataclass(frozen=True, slots=True, order=True)
class LockPin:
    """The committed lockfile a locked spec installs instead of solving.

    ``kind`` is ``conda-lock`` or ``pixi-lock``; ``digest`` is the sha256 of the lock's
    packages in canonical form (``condaops.reconciler.build.locked``), so reformatting the
    file or editing its comments does not change it.
    """

    kind: str
    digest: str


MAX_SPEC_BYTES = 1 << 20  # an environment file over this is refused (``specfile``)


@dataclass(frozen=True, slots=True)
class Spec:
    """A normalized environment specification.

    ``channels`` keep their order. ``dependencies`` and ``pip`` are sorted tuples.
    ``platforms`` is sorted; empty means "the configured platforms". ``variables`` are
    sorted (key, value) pairs.
    """

    channels: tuple[str, ...] = ()
    dependencies: tuple[Dependency, ...] = ()
    pip: tuple[Dependency, ...] = ()
    variables: tuple[tuple[str, str], ...] = ()
    platforms: tuple[str, ...] = ()
    name: str | None = field(default=None, compare=False)
    display_name: str | None = field(default=None, compare=False)  # condaops: display_name: (deliveries)
    lock: LockPin | None = None  # set when a committed lockfile is installed instead of solving

    def canonical(self) -> dict[str, object]:
        """The identity-bearing content as plain data (no ``name``; ``lock`` only when set)."""
        data: dict[str, object] = {
            "channels": list(self.channels),
            "dependencies": [_dep_data(d) for d in sorted(self.dependencies)],
            "pip": [_dep_data(d) for d in sorted(self.pip)],
            "variables": {k: v for k, v in sorted(self.variables)},
            "platforms": sorted(self.platforms),
        }
        if self.lock is not None:
            data["lock"] = {"kind": self.lock.kind, "digest": self.lock.digest}
        return data

    def canonical_json(self) -> str:
        return json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))

    @property
    def spec_hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    def with_defaults(self, *, channels: tuple[str, ...], platforms: tuple[str, ...]) -> Spec:
        """The effective spec: empty channels/platforms filled from configuration."""
        return replace(
            self,
            channels=self.channels or tuple(channels),
            platforms=self.platforms or tuple(sorted(platforms)),
        )

    @property
    def unlocked(self) -> Spec:
        """This spec without its lock pin: what a solve would start from."""
        return self if self.lock is None else replace(self, lock=None)

    def dependencies_for(self, platform: str) -> list[str]:
        """Conda match specs that apply to ``platform`` (selectors evaluated)."""
        return [d.text for d in self.dependencies if selector_matches(d.selector, platform)]

    def pip_for(self, platform: str) -> list[str]:
        """pip requirement lines that apply to ``platform`` (selectors evaluated)."""
        return [d.text for d in self.pip if selector_matches(d.selector, platform)]


def _dep_data(dep: Dependency) -> object:
    return dep.text if dep.selector is None else {"spec": dep.text, "selector": dep.selector}


def spec_from_canonical(data: Mapping[str, Any], name: str | None = None) -> Spec:
    """Rebuild a Spec from ``Spec.canonical()`` output (as stored in the state DB)."""

    def deps(items: Sequence[Any] | None) -> tuple[Dependency, ...]:
        out = []
        for item in items or []:
            if isinstance(item, str):
                out.append(Dependency(item))
            else:
                out.append(Dependency(item["spec"], item.get("selector")))
        return tuple(sorted(out))

    variables = data.get("variables") or {}
    lock = data.get("lock")
    return Spec(
        channels=tuple(data.get("channels") or ()),
        dependencies=deps(data.get("dependencies")),
        pip=deps(data.get("pip")),
        variables=tuple(sorted((str(k), str(v)) for k, v in variables.items())),
        platforms=tuple(sorted(data.get("platforms") or ())),
        name=name,
        lock=LockPin(str(lock["kind"]), str(lock["digest"])) if isinstance(lock, dict) else None,
    )


# --- selectors ---------------------------------------------------------------------
# conda-lock evaluates ``# [sel]`` comments per platform; a selector is one name from
# this table, optionally negated with ``not``. Unknown names are rejected by specfile.


_SELECTOR_PLATFORMS: dict[str, frozenset[str]] = {}


def _register_selectors() -> None:
    for p in KNOWN_PLATFORMS:
        os_name, arch = p.split("-")
        names = {os_name, p.replace("-", ""), p.replace("-", "_")}
        if os_name in ("linux", "osx"):
            names.add("unix")
        if os_name == "osx":
            names.add("macos")
        if arch in ("64",):
            names.update({f"{os_name}64", "x86_64"})
        if arch in ("32",):
            names.update({f"{os_name}32", "x86"})
        if arch in ("arm64", "aarch64"):
            names.update({"arm64", "aarch64"})
        if arch == "ppc64le":
            names.add("ppc64le")
        for n in names:
            _SELECTOR_PLATFORMS.setdefault(n, frozenset())
            _SELECTOR_PLATFORMS[n] = _SELECTOR_PLATFORMS[n] | {p}


_register_selectors()
KNOWN_SELECTORS: frozenset[str] = frozenset(_SELECTOR_PLATFORMS)


def normalize_selector(expression: str) -> str | None:
    """``expression`` in canonical form (``linux64``, ``not win``), None if unsupported."""
    words = expression.split()
    negated = len(words) == 2 and words[0] == "not"
    if (len(words) == 1 or negated) and words[-1] in KNOWN_SELECTORS:
        return " ".join(words)
    return None


def selector_matches(selector: str | None, platform: str) -> bool:
    """Whether a dependency with ``selector`` applies to ``platform``.

    Supports a single name or ``not name``; anything else was rejected at parse time.
    """
    if selector is None:
        return True
    words = selector.split()
    negate = len(words) == 2 and words[0] == "not"
    name = words[-1]
    hit = platform in _SELECTOR_PLATFORMS.get(name, frozenset())
    return not hit if negate else hit


@dataclass(frozen=True, slots=True)
class ParsedSpec:
    """A parsed environment file (``specfile``): the spec and one-line warnings about it."""

    spec: Spec
    warnings: tuple[str, ...]
