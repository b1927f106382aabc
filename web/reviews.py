"""Change-request reviews for the site and the API: recorded reviews turned into plain
view data (lists, package tables, file diffs, previews, links to the forge).

Reviews span namespaces: with access control on, only readers of every namespace see
them (``visible``). A change request is addressed as ``<source>/<key>``: its number
(``refs/pull/7/head`` → ``7``), else its ref as a slug (``summary.ref_key``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from litestar.exceptions import NotFoundException

from condaops.config import SourceSettings
from condaops.reconciler.changereqs.summary import PreviewLine, Verdict, ref_key, review_verdict
from condaops.reconciler.forge import links
from condaops.reconciler.state.review_queries import (
    ChangeRequestInfo,
    PreviewInfo,
    list_change_requests,
    list_previews,
)
from condaops.web.access import Viewer
from condaops.web.context import WebContext

KINDS = ("added", "changed", "removed", "invalid", "policy")


@dataclass(frozen=True, slots=True)
class ReviewRow:
    """One change request in the list."""

    source: str
    ref: str
    key: str
    title: str | None
    state: str
    verdict: Verdict
    counts: dict[str, int]
    head: str
    updated_at: datetime
    error: str | None
    url: str
    pr_url: str | None


@dataclass(frozen=True, slots=True)
class PreviewView:
    preview_id: int
    environment: str
    state: str
    reason: str | None
    message: str | None
    url: str  # its page, with the live log
    reused_url: str | None  # the build it reuses


@dataclass(frozen=True, slots=True)
class EnvView:
    environment: str
    change: str
    path: str
    file_url: str | None
    error: str | None
    reason: str | None
    target: dict[str, Any] | None
    platforms: list[tuple[str, list[dict[str, Any]]]]
    diff_lines: list[tuple[str, str]]  # (css class, line)
    preview: PreviewView | None
    policy: list[dict[str, Any]] = field(default_factory=list)  # findings on the head (blocking first)

    @property
    def violations(self) -> int:
        return sum(1 for v in self.policy if v.get("level") == "error")

    @property
    def blocked(self) -> bool:
        return self.violations > 0


@dataclass(frozen=True, slots=True)
class ReviewDetail:
    row: ReviewRow
    info: ChangeRequestInfo
    report: dict[str, Any] | None
    envs: list[EnvView]
    notes: list[dict[str, str]]
    commit: dict[str, str] | None
    commit_url: str | None
    forge: dict[str, Any]
    previews: list[PreviewView] = field(default_factory=list)


def visible(ctx: WebContext, viewer: Viewer) -> bool:
    return viewer.everything or not ctx.access.enabled


def review_rows(ctx: WebContext, viewer: Viewer) -> list[ReviewRow]:
    if not visible(ctx, viewer):
        return []
    sources = _sources(ctx)
    out = []
    for cr in list_change_requests(ctx.engine):
        previews = _head_previews(ctx, cr)
        out.append(_row(cr, sources.get(cr.source), previews))
    return out


def review_detail(ctx: WebContext, viewer: Viewer, source: str, key: str) -> ReviewDetail:
    cr = find_change_request(ctx, viewer, source, key)
    src = _sources(ctx).get(cr.source)
    previews = _head_previews(ctx, cr)
    row = _row(cr, src, previews)
    report = json.loads(cr.report_json) if cr.report_json else None
    by_env = {str(p.ref): p for p in previews}
    changed = (report or {}).get("environments", [])
    envs = [_env_view(e, src, cr, by_env.get(e["environment"]), row.url) for e in changed]
    forge = {
        "comment_id": cr.comment_id,
        "published": cr.published_version is not None and cr.published_version >= cr.version,
        "published_at": cr.published_at,
        "error": cr.publish_error,
    }
    return ReviewDetail(
        row,
        cr,
        report,
        envs,
        (report or {}).get("notes", []),
        (report or {}).get("head_commit"),
        links.commit_url(src, cr.head_revision) if src else None,
        forge,
        [_preview_view(p, row.url) for p in previews],
    )


def find_change_request(ctx: WebContext, viewer: Viewer, source: str, key: str) -> ChangeRequestInfo:
    if visible(ctx, viewer):
        found = [c for c in list_change_requests(ctx.engine, source=source) if ref_key(c.ref) == key]
        if found:
            return found[0]  # open ones first
    raise NotFoundException(f"no change request {source}/{key}")


def find_preview(ctx: WebContext, viewer: Viewer, source: str, key: str, preview_id: int) -> tuple[Any, PreviewInfo]:
    cr = find_change_request(ctx, viewer, source, key)
    for p in list_previews(ctx.engine, source=cr.source, ref=cr.ref):
        if p.preview_id == preview_id:
            return cr, p
    raise NotFoundException(f"no preview {preview_id} of {source}/{key}")


def _sources(ctx: WebContext) -> dict[str, SourceSettings]:
    return {s.name: s for s in ctx.settings.sources}


def _head_previews(ctx: WebContext, cr: ChangeRequestInfo) -> list[PreviewInfo]:
    items = list_previews(ctx.engine, source=cr.source, ref=cr.ref)
    return sorted(
        (p for p in items if p.head_revision == cr.head_revision and p.state != "canceled"), key=lambda p: str(p.ref)
    )


def _row(cr: ChangeRequestInfo, src: SourceSettings | None, previews: list[PreviewInfo]) -> ReviewRow:
    report = json.loads(cr.report_json) if cr.report_json else None
    lines = [PreviewLine(str(p.ref), p.state, p.reason, p.message, p.reused) for p in previews]
    verdict = review_verdict(error=cr.error, report=report, previews=lines, closed=cr.state != "open")
    key = ref_key(cr.ref)
    return ReviewRow(
        cr.source,
        cr.ref,
        key,
        cr.title,
        cr.state,
        verdict,
        dict((report or {}).get("counts") or {}),
        cr.head_revision,
        cr.updated_at,
        cr.error,
        f"/change-requests/{cr.source}/{key}",
        links.pull_request_url(src, key) if src else None,
    )


def _env_view(
    e: dict[str, Any], src: SourceSettings | None, cr: ChangeRequestInfo, p: PreviewInfo | None, base: str
) -> EnvView:
    platforms = []
    for platform, kinds in sorted((e.get("packages") or {}).items()):
        rows = [{**c, "kind": kind} for kind, changes in kinds.items() for c in changes]
        platforms.append((platform, sorted(rows, key=lambda r: (r["name"], r["manager"]))))
    exists_in_head = e.get("change") != "removed"
    revision = cr.head_revision if exists_in_head else (cr.base_revision or "")
    file_url = links.file_url(src, revision, e["path"]) if src is not None else None
    return EnvView(
        e["environment"],
        e["change"],
        e["path"],
        file_url if src else None,
        e.get("error"),
        e.get("reason"),
        e.get("target"),
        platforms,
        diff_lines(e.get("file_diff") or ""),
        _preview_view(p, base) if p else None,
        list(e.get("policy") or ()),
    )


def diff_lines(text: str) -> list[tuple[str, str]]:
    """Each line of a unified diff with its class: ``add``, ``del``, ``hunk``, ``file`` or ``ctx``."""
    out = []
    for line in text.splitlines():
        if line.startswith(("+++", "---")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "ctx"
        out.append((kind, line))
    return out


def _preview_view(p: PreviewInfo, base: str) -> PreviewView:
    reused = None
    if p.reused:
        kind, _, number = p.reused.partition(":")
        reused = f"/builds/{number}" if kind == "build" else f"{base}/previews/{number}"
    url = f"{base}/previews/{p.preview_id}"
    return PreviewView(p.preview_id, str(p.ref), p.state, p.reason, p.message, url, reused)
