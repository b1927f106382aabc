"""Package diffs between two locks: added, removed, upgraded, downgraded, rebuilt.

Pure: the version order is passed in (``compare``), so this module imports nothing
beyond the standard library; ``rattler_compare`` at the bottom is the edge adapter that
orders versions exactly as conda does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

ADDED, REMOVED, UPGRADED, DOWNGRADED, REBUILT = "added", "removed", "upgraded", "downgraded", "rebuilt"
KINDS = (ADDED, REMOVED, UPGRADED, DOWNGRADED, REBUILT)

Compare = Callable[[str, str], int]  # <0, 0, >0 like cmp(a, b)


@dataclass(frozen=True, slots=True, order=True)
class Pkg:
    """One locked package, as much as a diff needs."""

    name: str
    version: str
    build: str = ""
    channel: str = ""
    manager: str = "conda"  # conda | pypi

    @property
    def key(self) -> tuple[str, str]:
        return self.manager, self.name

    def label(self) -> str:
        return f"{self.version}={self.build}" if self.build else self.version


@dataclass(frozen=True, slots=True)
class Change:
    kind: str
    name: str
    manager: str
    old: Pkg | None
    new: Pkg | None

    def describe(self) -> str:
        if self.old is None:
            return f"{self.name} {self.new.label()}" if self.new else self.name
        if self.new is None:
            return f"{self.name} {self.old.label()}"
        return f"{self.name} {self.old.label()} → {self.new.label()}"


@dataclass(frozen=True, slots=True)
class PackageDiff:
    changes: tuple[Change, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not self.changes

    def of_kind(self, kind: str) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.kind == kind)

    def counts(self) -> dict[str, int]:
        return {k: len(self.of_kind(k)) for k in KINDS if self.of_kind(k)}

    def to_data(self) -> dict[str, list[dict[str, object]]]:
        out: dict[str, list[dict[str, object]]] = {k: [] for k in KINDS}
        for c in self.changes:
            out[c.kind].append(
                {
                    "name": c.name,
                    "manager": c.manager,
                    "old": c.old.version if c.old else None,
                    "new": c.new.version if c.new else None,
                    "old_build": c.old.build if c.old else None,
                    "new_build": c.new.build if c.new else None,
                }
            )
        return out


def diff_packages(old: Iterable[Pkg], new: Iterable[Pkg], compare: Compare) -> PackageDiff:
    """Compare two package sets of one platform, matched by (manager, name)."""
    before = {p.key: p for p in old}
    after = {p.key: p for p in new}
    changes: list[Change] = []
    for key in sorted(before.keys() | after.keys()):
        a, b = before.get(key), after.get(key)
        if a is None:
            changes.append(Change(ADDED, key[1], key[0], None, b))
        elif b is None:
            changes.append(Change(REMOVED, key[1], key[0], a, None))
        elif (a.version, a.build, a.channel) != (b.version, b.build, b.channel):
            order = compare(a.version, b.version)
            kind = UPGRADED if order < 0 else DOWNGRADED if order > 0 else REBUILT
            changes.append(Change(kind, key[1], key[0], a, b))
    return PackageDiff(tuple(changes))


def rattler_compare(a: str, b: str) -> int:
    """conda's version order (py-rattler); falls back to text order for unparseable ones."""
    from rattler import Version

    try:
        va, vb = Version(a), Version(b)
    except Exception:  # noqa: BLE001 - a bad version string still needs an order
        return (a > b) - (a < b)
    return (va > vb) - (va < vb)


def render_markdown(diff: PackageDiff) -> list[str]:
    """Markdown lines: one table row per change."""
    if diff.empty:
        return ["No package changes."]
    lines = ["| change | package | from | to |", "| --- | --- | --- | --- |"]
    for c in diff.changes:
        name = c.name if c.manager == "conda" else f"{c.name} (pip)"
        lines.append(f"| {c.kind} | `{name}` | {c.old.label() if c.old else ''} | {c.new.label() if c.new else ''} |")
    return lines
