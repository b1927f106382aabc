"""Change requests: what a pull/merge request would change, as a reviewable report.

Pure: ``compare_snapshots`` diffs the desired state at the target branch with the
state at the change request's head; ``ChangeReport`` adds per-environment package diffs
(computed at the edge by solving both sides) and renders Markdown (ready to paste as a
PR comment) or JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from condaops.reconciler.model import DesiredEnv, EnvRef, Rejection, SourceSnapshot
from condaops.reconciler.pkgdiff import PackageDiff, render_markdown

ADDED, CHANGED, REMOVED, UNCHANGED, INVALID = "added", "changed", "removed", "unchanged", "invalid"


@dataclass(frozen=True, slots=True)
class EnvChange:
    """One environment's fate under a change request."""

    ref: EnvRef
    kind: str
    base: DesiredEnv | None = None
    head: DesiredEnv | None = None
    rejection: Rejection | None = None

    @property
    def path(self) -> str:
        env = self.head or self.base
        return env.path if env else (self.rejection.path if self.rejection else "")


def compare_snapshots(base: SourceSnapshot, head: SourceSnapshot) -> list[EnvChange]:
    """Environments added, changed, removed or made invalid by ``head``, relative to ``base``."""
    before = {e.ref: e for e in base.envs}
    after = {e.ref: e for e in head.envs}
    invalid = {r.ref: r for r in head.rejections if r.ref is not None}
    out: list[EnvChange] = []
    for ref in sorted(before.keys() | after.keys() | invalid.keys()):
        b, h = before.get(ref), after.get(ref)
        if ref in invalid:
            out.append(EnvChange(ref, INVALID, b, None, invalid[ref]))
        elif b is None:
            out.append(EnvChange(ref, ADDED, None, h))
        elif h is None:
            out.append(EnvChange(ref, REMOVED, b, None))
        elif b.spec.spec_hash != h.spec.spec_hash:
            out.append(EnvChange(ref, CHANGED, b, h))
        else:
            out.append(EnvChange(ref, UNCHANGED, b, h))
    return out


@dataclass(frozen=True, slots=True)
class EnvReport:
    change: EnvChange
    diffs: dict[str, PackageDiff] = field(default_factory=dict)  # platform -> diff
    error: str | None = None  # e.g. the head spec does not solve


@dataclass(frozen=True, slots=True)
class ChangeReport:
    """The review report for one change request."""

    source: str
    ref: str
    base_revision: str | None
    head_revision: str | None
    envs: tuple[EnvReport, ...]
    unnamed_rejections: tuple[Rejection, ...] = ()

    @property
    def changed(self) -> tuple[EnvReport, ...]:
        return tuple(e for e in self.envs if e.change.kind != UNCHANGED)

    @property
    def has_changes(self) -> bool:
        return bool(self.changed) or bool(self.unnamed_rejections)

    @property
    def has_errors(self) -> bool:
        return any(e.error or e.change.kind == INVALID for e in self.envs) or bool(self.unnamed_rejections)

    def to_data(self) -> dict[str, object]:
        return {
            "source": self.source,
            "ref": self.ref,
            "base_revision": self.base_revision,
            "head_revision": self.head_revision,
            "changes": self.has_changes,
            "environments": [
                {
                    "environment": str(e.change.ref),
                    "change": e.change.kind,
                    "path": e.change.path,
                    "base_spec_hash": e.change.base.spec.spec_hash if e.change.base else None,
                    "head_spec_hash": e.change.head.spec.spec_hash if e.change.head else None,
                    "error": e.error or (e.change.rejection.message if e.change.rejection else None),
                    "packages": {p: d.to_data() for p, d in sorted(e.diffs.items())},
                }
                for e in self.changed
            ],
            "rejected_files": [
                {"path": r.path, "reason": r.reason, "message": r.message} for r in self.unnamed_rejections
            ],
        }


def render_report(report: ChangeReport, fmt: str = "markdown") -> str:
    if fmt == "json":
        return json.dumps(report.to_data(), indent=2, sort_keys=True)
    head = (report.head_revision or "?")[:12]
    base = (report.base_revision or "?")[:12]
    lines = [f"### condaops: `{report.ref}` ({head}) against {base}", ""]
    if not report.has_changes:
        return "\n".join(lines + ["No environment changes."])
    summary = {k: sum(1 for e in report.changed if e.change.kind == k) for k in (ADDED, CHANGED, REMOVED, INVALID)}
    lines.append(", ".join(f"{n} {k}" for k, n in summary.items() if n) + ".")
    for e in report.changed:
        lines += ["", f"#### `{e.change.ref}` — {e.change.kind} (`{e.change.path}`)"]
        if e.change.rejection is not None:
            lines.append(f"> **{e.change.rejection.reason}**: {e.change.rejection.message}")
            continue
        if e.error:
            lines.append(f"> **cannot be built**: {e.error}")
            continue
        for platform, diff in sorted(e.diffs.items()):
            counts = ", ".join(f"{n} {k}" for k, n in diff.counts().items()) or "no package changes"
            lines += ["", f"<details><summary>{platform}: {counts}</summary>", ""]
            lines += render_markdown(diff)
            lines += ["", "</details>"]
    for r in report.unnamed_rejections:
        lines += ["", f"> `{r.path}`: **{r.reason}**: {r.message}"]
    return "\n".join(lines)
