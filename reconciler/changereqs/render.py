"""A change request's review as JSON data and as Markdown (a PR comment, the CLI's output).

Pure. The Markdown is what GitHub, GitLab and Gitea render: tables for package changes,
``<details>`` blocks to keep long diffs folded, the environment file's own diff in a
``diff`` code block.
"""

from __future__ import annotations

import json
from typing import Any

from condaops.reconciler.changereqs.compare import ChangeReport, EnvReport
from condaops.reconciler.pkgdiff import PackageDiff, render_markdown


def report_data(report: ChangeReport) -> dict[str, Any]:
    """Everything the review found, as JSON-ready data."""
    return {
        "source": report.source,
        "ref": report.ref,
        "base_revision": report.base_revision,  # the merge base (kept under its first name)
        "merge_base": report.base_revision,
        "target_revision": report.target_revision,
        "head_revision": report.head_revision,
        "head_commit": dict(report.head_commit) if report.head_commit else None,
        "changes": report.has_changes,
        "has_errors": report.has_errors,
        "target_moved": report.target_moved,
        "counts": report.counts(),
        "notes": [{"reason": n.reason, "message": n.message} for n in report.notes],
        "environments": [_env_data(e) for e in report.changed],
        "rejected_files": [
            {"path": r.path, "reason": r.reason, "message": r.message} for r in report.unnamed_rejections
        ],
    }


def _env_data(e: EnvReport) -> dict[str, Any]:
    change, target = e.change, e.target
    return {
        "environment": str(change.ref),
        "change": change.kind,
        "path": change.path,
        "base_spec_hash": change.base.spec.spec_hash if change.base else None,
        "head_spec_hash": change.head.spec.spec_hash if change.head else None,
        "error": e.error or (change.rejection.message if change.rejection else None),
        "reason": change.rejection.reason if change.rejection else ("SolveFailed" if e.error else None),
        "packages": _diffs(e.diffs),
        "file_diff": e.file_diff,
        "target": None
        if target is None
        else {
            "message": target.message,
            "spec_hash": target.target.spec.spec_hash if target.target else None,
            "packages": _diffs(target.diffs),
            "error": target.error,
        },
    }


def _diffs(diffs: dict[str, PackageDiff]) -> dict[str, Any]:
    return {p: d.to_data() for p, d in sorted(diffs.items())}


def render_report(report: ChangeReport, fmt: str = "markdown") -> str:
    if fmt == "json":
        return json.dumps(report_data(report), indent=2, sort_keys=True)
    return "\n".join(markdown_lines(report))


def markdown_lines(report: ChangeReport) -> list[str]:
    head = (report.head_revision or "?")[:12]
    lines = [f"### condaops: `{report.ref}` ({head})", "", _against(report), ""]
    for note in report.notes:
        lines += [f"> **{note.reason}**: {note.message}", ""]
    if not report.has_changes:
        return lines + ["No environment changes."]
    lines.append(", ".join(f"{n} {k}" for k, n in report.counts().items()) + ".")
    for e in report.changed:
        lines += ["", *_env_lines(e)]
    for r in report.unnamed_rejections:
        lines += ["", f"> `{r.path}`: **{r.reason}**: {r.message}"]
    return lines


def _against(report: ChangeReport) -> str:
    base = (report.base_revision or "?")[:12]
    target = (report.target_revision or report.base_revision or "?")[:12]
    if target == base:
        return f"Compared with the target at `{base}` (the merge base)."
    return f"Compared with the merge base `{base}`; the target is now at `{target}`."


def _env_lines(e: EnvReport) -> list[str]:
    lines = [f"#### `{e.change.ref}` — {e.change.kind} (`{e.change.path}`)"]
    if e.change.rejection is not None:
        lines.append(f"> **{e.change.rejection.reason}**: {e.change.rejection.message}")
    elif e.error:
        lines.append(f"> **cannot be built**: {e.error}")
    for platform, diff in sorted(e.diffs.items()):
        lines += _folded(f"{platform}: {_counts(diff)}", render_markdown(diff))
    if e.target is not None:
        lines += ["", f"> **target moved: merged result differs.** {e.target.message}"]
        if e.target.error:
            lines.append(f"> The target's version does not solve: {e.target.error}")
        for platform, diff in sorted(e.target.diffs.items()):
            lines += _folded(f"against the target now, {platform}: {_counts(diff)}", render_markdown(diff))
    if e.file_diff:
        fence = "````" if "```" in e.file_diff else "```"
        lines += _folded("environment file", [f"{fence}diff", e.file_diff.rstrip("\n"), fence])
    return lines


def _counts(diff: PackageDiff) -> str:
    return ", ".join(f"{n} {k}" for k, n in diff.counts().items()) or "no package changes"


def _folded(summary: str, body: list[str]) -> list[str]:
    return ["", f"<details><summary>{summary}</summary>", "", *body, "", "</details>"]
