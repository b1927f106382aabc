"""A change request's review as JSON data and as Markdown (a PR comment, the CLI's output).

Pure. The Markdown is what GitHub, GitLab and Gitea render: tables for package changes,
``<details>`` blocks to keep long diffs folded, the environment file's own diff in a
``diff`` code block, policy findings as a list (blocking ones first).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from condaops.reconciler.changereqs.compare import POLICY, ChangeReport, EnvReport
from condaops.reconciler.pkgdiff import PackageDiff, render_markdown
from condaops.reconciler.policy.findings import Violation
from condaops.reconciler.reasons import Reason

MAX_POLICY_LINES = 50  # per environment: a comment stays readable when a rule hits everything
KIND_WORDS = {POLICY: "checked again (policy changed)"}  # in the summary line; others are their kind


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
        "policy_violations": report.has_violations,
        "policy_invalid": report.policy_invalid,
        "target_moved": report.target_moved,
        "counts": report.counts(),
        "notes": [{"reason": n.reason, "message": n.message} for n in report.notes],
        "environments": [_env_data(e) for e in report.changed],
        "rejected_files": [
            {"path": r.path, "reason": r.reason, "message": r.message} for r in report.unnamed_rejections
        ],
    }


def _env_data(e: EnvReport) -> dict[str, Any]:
    target = e.target
    return {
        **_env_identity(e),
        "packages": _diffs(e.diffs),
        "file_diff": e.file_diff,
        "policy": _findings(e.policy),
        "blocked": e.blocked,
        "target": None
        if target is None
        else {
            "message": target.message,
            "spec_hash": target.target.spec.spec_hash if target.target else None,
            "packages": _diffs(target.diffs),
            "error": target.error,
            "policy": _findings(target.policy),
        },
    }


def _env_identity(e: EnvReport) -> dict[str, Any]:
    change = e.change
    return {
        "environment": str(change.ref),
        "change": change.kind,
        "path": change.path,
        "base_spec_hash": change.base.spec.spec_hash if change.base else None,
        "head_spec_hash": change.head.spec.spec_hash if change.head else None,
        "error": e.error or (change.rejection.message if change.rejection else None),
        "reason": change.rejection.reason if change.rejection else (Reason.SOLVE_FAILED if e.error else None),
        "lock": _lock_of(e),
    }


def _findings(findings: Sequence[Violation]) -> list[dict[str, Any]]:
    """Findings as data, blocking ones first (``rule``, ``level``, ``origin`` — the policy
    file —, ``message``, ``platform``, ``package``)."""
    return [asdict(v) for v in _ordered(findings)]


def _ordered(findings: Sequence[Violation]) -> list[Violation]:
    return sorted(findings, key=lambda v: (not v.blocking, v.origin, v.rule, v.package or "", v.platform or ""))


def _lock_of(e: EnvReport) -> dict[str, Any] | None:
    """The committed lockfile of the head (or, removed, of the base) and whether only it changed."""
    change = e.change
    env = change.head or change.base
    if env is None or env.lock is None:
        return None
    only = (
        change.base is not None
        and change.head is not None
        and _unlocked_hash(change.base) == _unlocked_hash(change.head)
    )
    return {"path": env.lock.path, "kind": env.lock.kind, "lock_only": only}


def _unlocked_hash(env: Any) -> str:
    return env.spec.unlocked.spec_hash


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
    lines.append(", ".join(f"{n} {KIND_WORDS.get(k, k)}" for k, n in report.counts().items()) + ".")
    blocked = sum(1 for e in report.changed if e.blocked)
    if blocked:
        lines.append(f"**Policy: {blocked} environment(s) break a blocking rule.**")
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
    kind = "policy changed" if e.change.kind == POLICY else e.change.kind
    lines = [f"#### `{e.change.ref}` — {kind} (`{e.change.path}`)"]
    lock = _lock_of(e)
    if lock is not None:
        what = "Only the lockfile changed" if lock["lock_only"] else "Locked"
        lines += ["", f"{what}: `{lock['path']}` (packages read from the lock, not solved)."]
    if e.change.rejection is not None:
        lines.append(f"> **{e.change.rejection.reason}**: {e.change.rejection.message}")
    elif e.error:
        lines.append(f"> **cannot be built**: {e.error}")
    lines += policy_lines(e.policy)
    lines += diff_lines(e.diffs)
    if e.target is not None:
        lines += ["", f"> **target moved: merged result differs.** {e.target.message}"]
        if e.target.error:
            lines.append(f"> The target's version does not solve: {e.target.error}")
        if e.target.policy:
            lines += ["", "Against the target's policy:", *policy_lines(e.target.policy, heading=False)]
        for platform, diff in sorted(e.target.diffs.items()):
            lines += _folded(f"against the target now, {platform}: {_counts(diff)}", render_markdown(diff))
    if e.file_diff:
        fence = "````" if "```" in e.file_diff else "```"
        lines += _folded("environment file", [f"{fence}diff", e.file_diff.rstrip("\n"), fence])
    return lines


def policy_lines(findings: Sequence[Violation], *, heading: bool = True) -> list[str]:
    """Markdown lines for one environment's policy findings, blocking ones first."""
    if not findings:
        return []
    blocking = sum(v.blocking for v in findings)
    lines = ["", f"**Policy**: {blocking} violation(s), {len(findings) - blocking} warning(s)", ""] if heading else [""]
    ordered = _ordered(findings)
    for v in ordered[:MAX_POLICY_LINES]:
        mark = "❌" if v.blocking else "⚠️"
        where = f" ({v.platform})" if v.platform else ""
        lines.append(f"- {mark} `{v.origin}` **{v.rule}**: {v.message}{where}")
    if len(ordered) > MAX_POLICY_LINES:
        lines.append(f"- … and {len(ordered) - MAX_POLICY_LINES} more")
    return lines


def diff_lines(diffs: dict[str, PackageDiff]) -> list[str]:
    """One folded table of package changes per platform (reviews and update pull requests)."""
    lines: list[str] = []
    for platform, diff in sorted(diffs.items()):
        lines += _folded(f"{platform}: {_counts(diff)}", render_markdown(diff))
    return lines


def _counts(diff: PackageDiff) -> str:
    return ", ".join(f"{n} {k}" for k, n in diff.counts().items()) or "no package changes"


def _folded(summary: str, body: list[str]) -> list[str]:
    return ["", f"<details><summary>{summary}</summary>", "", *body, "", "</details>"]
