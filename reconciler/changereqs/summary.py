"""A recorded review summed up: its verdict (a commit status), the PR comment, the number
a ref carries. Pure: recorded data in, text out.

The verdict is ``success`` when every changed environment solves, breaks no blocking
policy rule (warnings allowed) and its preview builds (when previews run), ``pending``
while previews are queued or building, ``failure`` with the first reason otherwise — for
a policy violation, the rule, its file and the package.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from condaops.reconciler.forge.api import FAILURE, PENDING, SUCCESS
from condaops.reconciler.policy.findings import ERROR, INVALID

_NUMBERED = re.compile(r"^refs/(?:pull|merge-requests)/(\d+)/(?:head|merge)$")
PREVIEW_ACTIVE = ("queued", "building")
KIND_LABELS = {"policy": "policy changed"}  # kinds of change as counts name them


def ref_number(ref: str) -> str | None:
    """``refs/pull/7/head`` and ``refs/merge-requests/7/head`` → ``"7"``; others: None."""
    found = _NUMBERED.match(ref)
    return found.group(1) if found else None


def ref_key(ref: str) -> str:
    """How a change request is named in URLs: its number, else its ref without ``refs/``
    and ``/head``, slashes turned into dashes (``heads-review-x``)."""
    number = ref_number(ref)
    if number is not None:
        return number
    return "-".join(p for p in ref.removeprefix("refs/").split("/") if p not in ("head", ""))


def review_marker(source: str, ref: str) -> str:
    """The hidden line that finds our comment again, after a restart too."""
    return f"<!-- condaops-review source={source} ref={ref} -->"


@dataclass(frozen=True, slots=True)
class PreviewLine:
    environment: str
    state: str
    reason: str | None = None
    message: str | None = None
    reused: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    state: str  # pending | success | failure
    description: str


def review_verdict(
    *, error: str | None, report: Mapping[str, Any] | None, previews: Sequence[PreviewLine], closed: bool = False
) -> Verdict:
    if closed:
        return Verdict(SUCCESS, "closed: the ref is gone")
    if error:
        return Verdict(FAILURE, error)
    envs = (report or {}).get("environments", [])
    broken = [e for e in envs if e.get("error")]
    if broken or (report or {}).get("rejected_files"):
        names = ", ".join(f"{e['environment']} ({e.get('reason') or 'invalid'})" for e in broken[:3])
        return Verdict(FAILURE, f"{len(broken) or 'some'} environment(s) cannot be built: {names or 'see the review'}")
    blocked = [(e["environment"], v) for e in envs for v in e.get("policy") or () if v.get("level") == ERROR]
    if blocked:
        (name, v), count = blocked[0], len({n for n, _ in blocked})
        more = f" (and {count - 1} more environment(s))" if count > 1 else ""
        if v["rule"] == INVALID:  # the message names the file and the key
            return Verdict(FAILURE, f"{name}{more}: a policy file cannot be read: {v['message']}")
        return Verdict(FAILURE, f"{name} breaks policy rule {v['rule']} ({v['origin']}){more}: {v['message']}")
    failed = [p for p in previews if p.state == "failed"]
    if failed:
        first = failed[0]
        return Verdict(FAILURE, f"preview of {first.environment} failed: {first.reason}: {first.message or ''}")
    active = [p for p in previews if p.state in PREVIEW_ACTIVE]
    if active:
        return Verdict(PENDING, f"previews building: {len(previews) - len(active)} of {len(previews)} done")
    if not envs:
        return Verdict(SUCCESS, "no environment changes")
    built = " and builds" if previews else ""
    warnings = sum(len(e.get("policy") or ()) for e in envs)
    warned = f"; {warnings} policy warning(s)" if warnings else ""
    return Verdict(SUCCESS, f"{_counts(report)}: every changed environment solves{built}{warned}")


def _counts(report: Mapping[str, Any] | None) -> str:
    counts = (report or {}).get("counts") or {}
    return ", ".join(f"{n} {KIND_LABELS.get(k, k)}" for k, n in counts.items()) or "changes"


def comment_body(
    *,
    source: str,
    ref: str,
    markdown: str | None,
    error: str | None,
    previews: Sequence[PreviewLine],
    verdict: Verdict,
    page_url: str | None,
) -> str:
    """The one comment on the PR: the review, the previews, the verdict, a link to the page."""
    icon = {SUCCESS: "✅", PENDING: "⏳", FAILURE: "❌"}.get(verdict.state, "")
    lines = [review_marker(source, ref), f"**condaops review** {icon} {verdict.state}: {verdict.description}", ""]
    if error:
        lines += [f"> {error}", ""]
    if markdown:
        lines += [markdown, ""]
    if previews:
        lines += ["#### Previews", "", "| environment | preview |", "| --- | --- |"]
        lines += [f"| `{p.environment}` | {_preview_text(p)} |" for p in previews]
        lines.append("")
    if page_url:
        lines.append(f"[Review page]({page_url}) · updated on every push (this comment is edited in place)")
    return "\n".join(lines).rstrip() + "\n"


def _preview_text(p: PreviewLine) -> str:
    if p.reused:
        return f"{p.state} (reused {p.reused.replace(':', ' ')})"
    text = p.state if not p.reason else f"{p.state}: {p.reason}"
    if p.state == "failed" and p.message:
        text += f" — {' '.join(p.message.split())[:300]}"
    return text.replace("|", "\\|")
